//! Loading an image to compare: from a blob store, an OCI layout or a
//! docker-archive, through bake-image's verified readers.

use std::path::Path;

use bake_digest::Digest;
use bake_image::{BaseImage, Descriptor, ImageError, Layout, Platform};
use bake_layer::ReadLimits;
use bake_store::BlobStore;
use serde_json::Value;

use crate::DiffError;

/// An image ready to compare: its manifest (if it has one), config and
/// layer descriptors, and the store its layer blobs are read from.
///
/// Loading reads and verifies the manifest and config only; layers are
/// read when [`crate::diff`] needs their entries.
#[derive(Debug, Clone)]
pub struct Image {
    name: String,
    store: BlobStore,
    manifest: Option<(Digest, Value)>,
    base: BaseImage,
    limits: ReadLimits,
}

impl Image {
    /// The image `manifest_or_index` names in `store` (`name` says what it
    /// is in messages and the report).
    ///
    /// For an index, the manifest for `platform` is chosen (`None`:
    /// `linux/amd64`, or the index's only platform). A single manifest is
    /// taken whatever its platform unless `platform` is given, in which
    /// case it must match.
    pub fn from_store(
        name: impl Into<String>,
        store: BlobStore,
        manifest_or_index: &Descriptor,
        platform: Option<&Platform>,
    ) -> Result<Image, DiffError> {
        let name = name.into();
        let err = |source: ImageError| DiffError::Image {
            image: name.clone(),
            source: Box::new(source),
        };
        let base = with_platform(platform, |p| {
            bake_image::load_from_store(&store, manifest_or_index, p)
        })
        .map_err(err)?;
        let manifest = match &base.manifest_digest {
            Some(d) => {
                // Read, verified and size-checked, by load_from_store already.
                let bytes = store.read_verified(d).map_err(|e| err(e.into()))?;
                let json: Value = serde_json::from_slice(&bytes).map_err(|source| {
                    err(ImageError::Json {
                        what: format!("manifest {d}"),
                        source,
                    })
                })?;
                Some((d.clone(), json))
            }
            None => None,
        };
        Ok(Image {
            name,
            store,
            manifest,
            base,
            limits: ReadLimits::DEFAULT,
        })
    }

    /// The image `tag_or_digest` names in the OCI layout at `dir` (see
    /// [`Layout::resolve`]; `None`: the only image there). Blobs are read
    /// in place.
    pub fn from_layout(
        name: impl Into<String>,
        dir: &Path,
        tag_or_digest: Option<&str>,
        platform: Option<&Platform>,
    ) -> Result<Image, DiffError> {
        let name = name.into();
        let err = |source: ImageError| DiffError::Image {
            image: name.clone(),
            source: Box::new(source),
        };
        let layout = Layout::open(dir).map_err(err)?;
        let desc = layout.resolve(tag_or_digest).map_err(err)?;
        Image::from_store(name, layout.store().clone(), &desc, platform)
    }

    /// The image in the docker-archive at `path`, its config and layers
    /// copied (verified) into `scratch`, the archive read within `limits`
    /// (which then also bound reading its layers, see [`Image::with_limits`]).
    /// A docker-archive has no manifest: only its config and layers can be
    /// compared.
    pub fn from_docker_archive(
        name: impl Into<String>,
        path: &Path,
        platform: Option<&Platform>,
        scratch: BlobStore,
        limits: &ReadLimits,
    ) -> Result<Image, DiffError> {
        let name = name.into();
        let base = with_platform(platform, |p| {
            bake_image::load_from_docker_archive_with_limits(path, p, &scratch, limits)
        })
        .map_err(|source| DiffError::Image {
            image: name.clone(),
            source: Box::new(source),
        })?;
        Ok(Image {
            name,
            store: scratch,
            manifest: None,
            base,
            limits: *limits,
        })
    }

    /// Reads this image's layers within `limits` (uncompressed bytes per
    /// layer, bytes per PAX or long-name record) instead of
    /// [`ReadLimits::DEFAULT`]: a layer past them is an error naming it.
    #[must_use]
    pub fn with_limits(mut self, limits: &ReadLimits) -> Image {
        self.limits = *limits;
        self
    }

    /// The limits its layers are read within.
    pub(crate) fn limits(&self) -> &ReadLimits {
        &self.limits
    }

    /// The name given when the image was loaded.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The platform manifest's digest (`None` for a docker-archive).
    pub fn manifest_digest(&self) -> Option<&Digest> {
        self.manifest.as_ref().map(|(d, _)| d)
    }

    /// The manifest as parsed JSON (`None` for a docker-archive).
    pub fn manifest_json(&self) -> Option<&Value> {
        self.manifest.as_ref().map(|(_, j)| j)
    }

    /// The config, its layers and their diffIDs, as bake-image read them.
    pub fn base(&self) -> &BaseImage {
        &self.base
    }

    /// Where the layer blobs are.
    pub fn store(&self) -> &BlobStore {
        &self.store
    }
}

/// Runs `load` for `platform`; with none given, for `linux/amd64`, and if
/// the image turns out to be for one other platform only, for that one.
fn with_platform<T>(
    platform: Option<&Platform>,
    load: impl Fn(&Platform) -> Result<T, ImageError>,
) -> Result<T, ImageError> {
    if let Some(p) = platform {
        return load(p);
    }
    match load(&Platform::linux_amd64()) {
        // A single-platform image for another platform.
        Err(ImageError::PlatformMismatch { found, .. }) => load(&found.parse()?),
        // An index without linux/amd64, but with only one platform.
        Err(ImageError::NoMatchingPlatform { available, .. })
            if !available.contains(", ") && available != "none" =>
        {
            load(&available.parse()?)
        }
        other => other,
    }
}
