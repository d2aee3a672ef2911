//! OCI config, manifest and index assembly; OCI layout and docker-archive
//! reading and writing.
//!
//! # The objects
//!
//! An OCI image is three kinds of JSON document and some tarballs, every one
//! stored as a *blob* named by the sha256 of its bytes (its **digest**):
//!
//! * **Layers** are tar archives of filesystem changes, usually compressed.
//!   A layer has two digests: its *digest* is the hash of the bytes as
//!   stored (compressed), its **diffID** the hash of the uncompressed tar.
//!   Manifests name layers by digest; configs by diffID. For an uncompressed
//!   layer the two are equal.
//! * The **config** describes how to run the image (entrypoint, env, user…),
//!   its platform, its `rootfs.diff_ids` (one per layer, in order) and a
//!   `history`. See [`build_config`] and [`ConfigSpec`].
//! * The **manifest** points at one config and the ordered layers through
//!   [`Descriptor`]s (media type, digest, size). Its own digest is *the*
//!   image digest. See [`build_manifest`].
//! * An **index** lists manifests, one per [`Platform`] for multi-platform
//!   images, or one per tag in an image layout. See [`build_index`].
//!
//! # The layout
//!
//! An OCI image layout ([`Layout`]) is a directory:
//!
//! ```text
//! oci-layout          {"imageLayoutVersion":"1.0.0"}
//! index.json          an index; tags are the entries' org.opencontainers.image.ref.name
//! blobs/sha256/<hex>  every blob, named by its digest (a bake_store::BlobStore)
//! ```
//!
//! A docker-archive ([`write_docker_archive`], [`load_from_docker_archive`])
//! is the tarball `docker save` writes: `manifest.json` naming a config and
//! layer files.
//!
//! # Canonical JSON
//!
//! A digest covers bytes, not meaning: the same config written with its keys
//! in another order is another image. So every JSON document this crate
//! writes goes through [`canonical_json`]: compact, object keys sorted
//! bytewise at every level. It never serialises `oci-spec` structs directly
//! (they hold `HashMap`s, whose order changes from run to run) and does not
//! rely on `serde_json::Map`'s order either. (Tests check that what it
//! writes parses as `oci-spec`'s types and that the media-type names in
//! [`media_type`] are `oci-spec`'s.)
//!
//! # Base images
//!
//! [`load_from_layout`], [`load_from_store`] and [`load_from_docker_archive`]
//! read someone else's image into a [`BaseImage`]: its config, and its layers
//! *as they are* (DESIGN.md invariant 6: never re-tarred, never
//! re-compressed). Everything read is verified against its digest, and
//! malformed or unexpected input (bad JSON, unknown media types, missing or
//! corrupt blobs, configs that disagree with their manifests) is an
//! [`ImageError`] naming the blob or path at fault.
//!
//! # Example
//!
//! A one-layer image on `scratch`, written to a layout and tagged:
//!
//! ```
//! use std::collections::BTreeMap;
//! use bake_image::{media_type, ConfigSpec, Descriptor, Layout, Platform};
//!
//! let dir = tempfile::tempdir()?;
//! let layout = Layout::create_or_open(&dir.path().join("hello"))?;
//! let store = layout.store();
//!
//! // A layer: an (empty) uncompressed tar, so its digest is its diffID.
//! let layer = vec![0u8; 1024];
//! let layer = Descriptor::new(media_type::OCI_LAYER_TAR, store.put_bytes(&layer)?, 1024);
//!
//! let spec = ConfigSpec { cmd: Some(vec!["/hello".into()]), ..ConfigSpec::default() };
//! let platform = Platform::linux_amd64();
//! let config = bake_image::build_config(None, &spec, &platform, 0,
//!     &[(layer.digest.clone(), "bake: layer app".into())])?;
//! store.put_bytes(&config)?;
//! let config = Descriptor::of(media_type::OCI_CONFIG, &config);
//!
//! let manifest = bake_image::build_manifest(&config, &[layer], &BTreeMap::new());
//! store.put_bytes(&manifest)?;
//! let manifest = Descriptor::of(media_type::OCI_MANIFEST, &manifest);
//! layout.set_tags(&manifest, &["latest".into()])?;
//!
//! assert_eq!(layout.resolve(Some("latest"))?.digest, manifest.digest);
//! // Same inputs, same bytes, same digest: on any machine, at any time.
//! assert_eq!(manifest.digest.to_string(),
//!     "sha256:57abf5f0bdd9d89914690e7edd931a46436d2fb564dbd1e7c3afade6468d1286");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What this crate does not do
//!
//! It builds no layers (`bake-layer`), talks to no registry
//! (`bake-registry`), reads no clock or environment (the epoch and platform
//! are arguments) and never deletes blobs.

// Tests may unwrap: a panic there is a failed test with its location.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod base;
mod config;
mod descriptor;
mod docker_archive;
mod layout;
mod manifest;
mod time;

use std::io;
use std::path::PathBuf;

use bake_digest::Digest;
use bake_store::StoreError;

pub use bake_oci::canonical_json;
pub use base::{BaseImage, MAX_MANIFEST_SIZE, load_from_layout, load_from_store};
pub use base::{CheckedConfig, check_config};
pub use config::{ConfigSpec, MAX_CONFIG_SIZE, build_config};
pub use descriptor::{Descriptor, Platform, REF_NAME, media_type};
pub use docker_archive::{
    load_from_docker_archive, load_from_docker_archive_with_limits, write_docker_archive,
};
pub use layout::{Layout, LayoutLock, MAX_JSON_SIZE, is_cosign_artifact_tag};
pub use manifest::{Manifest, build_index, build_manifest, parse_index, parse_manifest};
pub use time::{MAX_EPOCH, created_rfc3339};

/// Everything that can go wrong reading or writing images; each variant
/// names the blob, path or reference at fault.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// File system errors (their messages name the path).
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("malformed JSON in {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("unsupported media type {media_type:?} for {what}")]
    UnsupportedMediaType { what: String, media_type: String },
    #[error("{what} has no image for platform {wanted}; available: {available}")]
    NoMatchingPlatform {
        what: String,
        wanted: String,
        available: String,
    },
    #[error("{what} is for platform {found}, not {wanted}")]
    PlatformMismatch {
        what: String,
        wanted: String,
        found: String,
    },
    #[error("{what} lists {diff_ids} diff_ids but the manifest has {layers} layers")]
    LayerCountMismatch {
        what: String,
        layers: usize,
        diff_ids: usize,
    },
    #[error("blob {digest} has {actual} bytes, but its descriptor says {expected}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("layer {what} has diffID {actual}, but the config expects {expected}")]
    DiffIdMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what} is {size} bytes, more than the {limit} allowed")]
    TooLarge { what: String, size: u64, limit: u64 },
    /// What [`build_config`] would write is more than skopeo, podman and
    /// bake's readers accept ([`MAX_CONFIG_SIZE`]); `base` says which base
    /// config it grew from, if any.
    #[error(
        "the image config would be {size} bytes{base}, more than the {limit} that skopeo, podman and bake read back"
    )]
    ConfigTooLarge { size: u64, limit: u64, base: String },
    #[error("{0} is not an OCI image layout: {1}")]
    NotALayout(PathBuf, String),
    #[error("OCI layout {0} holds no images")]
    EmptyLayout(PathBuf),
    #[error("OCI layout {dir} holds several images, name one with a tag or digest; available: {available}")]
    AmbiguousImage { dir: PathBuf, available: String },
    #[error("OCI layout {dir} has no image tagged {tag:?}; available: {available}")]
    TagNotFound {
        dir: PathBuf,
        tag: String,
        available: String,
    },
    #[error("OCI layout {dir} has no manifest or index {digest}")]
    DigestNotFound { dir: PathBuf, digest: Digest },
    #[error("invalid tag {0:?}: letters and digits, separated by one of - . _ : @ + /")]
    InvalidTag(String),
    #[error(transparent)]
    InvalidPlatform(#[from] bake_oci::InvalidPlatform),
    #[error(
        "invalid exposed port {0:?}: expected PORT or PORT/PROTO, PORT in 1-65535, PROTO tcp, udp or sctp"
    )]
    InvalidPort(String),
    #[error("epoch {0} is after 9999-12-31T23:59:59Z, the last instant RFC 3339 can write")]
    EpochOutOfRange(u64),
    #[error("docker archive {path}: {reason}")]
    DockerArchive { path: PathBuf, reason: String },
    #[error("docker archive {path}: {source}")]
    ArchiveIo {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}
