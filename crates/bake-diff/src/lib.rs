//! Explains how two OCI images differ, top-down: manifest, config, then
//! each layer's entries.
//!
//! A digest says *that* two images differ; this crate says *why*. It loads
//! two images ([`Image`]: from a blob store, an OCI layout or a
//! docker-archive), compares them ([`diff`]) and returns a [`DiffReport`]:
//! data that serialises to stable JSON, and renders for people with
//! [`DiffReport::to_human`].
//!
//! # What is compared
//!
//! 1. **Manifest**: `mediaType`, config digest, layer count, annotations
//!    (per key), any other field. Same manifest digest: identical, and
//!    nothing below is read.
//! 2. **Config**: `created`, `author`, platform fields, `Entrypoint`,
//!    `Cmd`, `User`, `WorkingDir`, `StopSignal` and unknown fields as whole
//!    values; `Env` per variable, `Labels`, `ExposedPorts` and `Volumes` per
//!    key; `history` per entry and field; `rootfs.diff_ids` per position.
//! 3. **Layers**, paired by position:
//!    * same digest: identical (not read);
//!    * same diffID, other digest: a *compression-only* difference (the
//!      same tar compressed differently): the sizes and what the
//!      compressed streams' headers say (gzip MTIME, XFL, OS, FNAME);
//!    * otherwise both layers' entries are read
//!      ([`bake_layer::read_layer_entries`]: streamed, contents hashed,
//!      never held) and paired by name: entries added, removed, and changed
//!      with each changed field (content sha256, size, mode, uid/gid,
//!      uname/gname, mtime, link target, type, device numbers, header
//!      format, extended attributes, PAX records); OCI whiteouts
//!      (`.wh.NAME`, `.wh..wh..opq`) are named as the deletions they are;
//!      the same entries in another order are reported as an order
//!      difference;
//!    * a layer only one image has: its entries, as added or removed.
//!
//! Memory grows with the number of entries of the two layers being
//! compared, never with file sizes.
//!
//! # Example
//!
//! Two one-layer images that differ in one environment variable:
//!
//! ```
//! use std::collections::BTreeMap;
//! use bake_image::{media_type, ConfigSpec, Descriptor, Layout, Platform};
//!
//! fn image(dir: &std::path::Path, mode: &str) -> Result<bake_diff::Image, Box<dyn std::error::Error>> {
//!     let layout = Layout::create_or_open(dir)?;
//!     let layer = vec![0u8; 1024]; // an empty tar
//!     let layer = Descriptor::new(media_type::OCI_LAYER_TAR, layout.store().put_bytes(&layer)?, 1024);
//!     let spec = ConfigSpec { env: BTreeMap::from([("MODE".into(), mode.into())]), ..ConfigSpec::default() };
//!     let config = bake_image::build_config(None, &spec, &Platform::linux_amd64(), 0,
//!         &[(layer.digest.clone(), "layer".into())])?;
//!     layout.store().put_bytes(&config)?;
//!     let config = Descriptor::of(media_type::OCI_CONFIG, &config);
//!     let manifest = bake_image::build_manifest(&config, &[layer], &BTreeMap::new());
//!     layout.store().put_bytes(&manifest)?;
//!     layout.set_tags(&Descriptor::of(media_type::OCI_MANIFEST, &manifest), &["latest".into()])?;
//!     Ok(bake_diff::Image::from_layout(mode, dir, Some("latest"), None)?)
//! }
//!
//! let tmp = tempfile::tempdir()?;
//! let a = image(&tmp.path().join("a"), "prod")?;
//! let b = image(&tmp.path().join("b"), "debug")?;
//!
//! let report = bake_diff::diff(&a, &b)?;
//! assert!(!report.identical);
//! assert_eq!(report.config.env[0].key, "MODE");
//! assert!(report.to_human(50).contains("config.Env: ~ MODE: prod → debug"));
//! // The layer is the same blob: not even read.
//! assert_eq!(report.layers[0].status, bake_diff::LayerStatus::Identical);
//!
//! assert!(bake_diff::diff(&a, &a)?.identical);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What this crate does not do
//!
//! It talks to no registry (the caller pulls into a store and uses
//! [`Image::from_store`]), reads no environment or clock, and does not know
//! recipes: mapping a differing file to the step that wrote it is the
//! caller's business.

// Let chains would collapse these, but need Rust 1.88; the MSRV is 1.85.
#![allow(clippy::collapsible_if)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod compare;
mod content;
mod entries;
mod image;
mod layers;
mod render;
mod report;

use std::io;

use bake_digest::Digest;
use bake_image::ImageError;
use bake_layer::LayerError;
use bake_store::StoreError;

pub use image::Image;
pub use report::{
    Change, CompressedDifference, CompressionInfo, ConfigDiff, ContentDiff, DiffReport, EntryChange,
    EntryChangeKind, EntryCounts, EntryInfo, FieldChange, GzipHeader, HistoryChange, ImageSummary,
    IndexChange, KeyChange, LayerDiff, LayerStatus, ManifestDiff, OrderChange, Whiteout,
};

/// What can go wrong loading or reading an image to compare; each variant
/// names the image (as the caller named it) and, for layers, which one.
/// (Sources are boxed to keep `Result`s small.)
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("{image}: {source}")]
    Image {
        image: String,
        #[source]
        source: Box<ImageError>,
    },
    #[error("{image}: layer {layer} ({digest}): {source}")]
    Blob {
        image: String,
        layer: usize,
        digest: Digest,
        #[source]
        source: Box<StoreError>,
    },
    #[error("{image}: layer {layer} ({digest}): {source}")]
    Layer {
        image: String,
        layer: usize,
        digest: Digest,
        #[source]
        source: Box<LayerError>,
    },
    #[error("{image}: layer {layer} ({digest}): {source}")]
    LayerIo {
        image: String,
        layer: usize,
        digest: Digest,
        #[source]
        source: Box<io::Error>,
    },
}

/// Compares `a` with `b` (B relative to A: "added" means only B has it).
///
/// Reads the entries of every pair of layers whose diffIDs differ, and of
/// layers only one image has; fails if such a layer cannot be read or does
/// not match its digest.
pub fn diff(a: &Image, b: &Image) -> Result<DiffReport, DiffError> {
    let manifest = compare::manifest(a, b);
    let config = compare::config(a, b);
    let layers = layers::layers(a, b)?;
    let identical = match (a.manifest_digest(), b.manifest_digest()) {
        (Some(x), Some(y)) => x == y,
        // A docker-archive has no manifest: compare what there is.
        _ => {
            manifest.is_empty()
                && config.identical
                && layers
                    .iter()
                    .all(|l| l.status == LayerStatus::Identical && l.annotations.is_empty())
        }
    };
    Ok(DiffReport {
        identical,
        a: summary(a),
        b: summary(b),
        manifest,
        config,
        layers,
    })
}

fn summary(i: &Image) -> ImageSummary {
    ImageSummary {
        name: i.name().to_owned(),
        manifest: i.manifest_digest().cloned(),
        config: i.base().config_digest.clone(),
        platform: i.base().platform.to_string(),
        layers: i.base().layers.len(),
    }
}
