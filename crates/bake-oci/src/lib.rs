//! The OCI vocabulary every bake crate shares, with no I/O: the media type
//! names bake reads and writes, the platform syntax and index selection, and canonical JSON — the one way a JSON
//! document bake writes (a config, a manifest, an index, a signature's
//! payload) becomes bytes, so the same value always has the same digest.

mod json;
mod platform;

pub use json::canonical_json;
pub use platform::{InvalidPlatform, Platform};

/// Media type names. The OCI ones are the strings of
/// `oci_spec::image::MediaType` (a test in bake-image checks they agree); the Docker ones
/// are only ever *read*: bake writes OCI media types.
pub mod media_type {
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// Uncompressed OCI layer.
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    /// Gzip-compressed OCI layer.
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// Zstd-compressed OCI layer.
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    /// Docker image manifest, v2 schema 2.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list.
    pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// Docker gzip layer: the same bytes as [`OCI_LAYER_GZIP`].
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// Docker uncompressed layer (rare): the same bytes as [`OCI_LAYER_TAR`].
    pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

    /// The OCI name of a layer media type, if it is one bake can reuse.
    ///
    /// Docker's gzip layer type maps to OCI's: the blob is the same gzip
    /// stream with the same digest, only its name in the manifest changes, so
    /// an image built on a Docker base has a pure OCI manifest.
    pub fn oci_layer(media_type: &str) -> Option<&'static str> {
        match media_type {
            OCI_LAYER_TAR | DOCKER_LAYER_TAR => Some(OCI_LAYER_TAR),
            OCI_LAYER_GZIP | DOCKER_LAYER_GZIP => Some(OCI_LAYER_GZIP),
            OCI_LAYER_ZSTD => Some(OCI_LAYER_ZSTD),
            _ => None,
        }
    }
}
