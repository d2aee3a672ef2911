//! Base layers a docker-archive holds uncompressed (`docker save` writes
//! plain tars) are compressed for the image, so the layout and a push carry
//! them compressed (issue 16.7: 180 MB to push instead of 68 MB).
//!
//! A docker-archive has no manifest: the digests its layers would have in an
//! image are not fixed by anything in it, so compressing them changes no
//! digest anyone relies on (an OCI layout or registry base, whose manifest
//! names its blobs, is reused byte for byte, compressed or not). The
//! compressed blob is a pure function of the layer's bytes and the build's
//! compression ([`bake_layer::compress_tar`], the pinned chunked compressor
//! every layer bake writes goes through); the diffID stays the sha256 of the
//! uncompressed tar, as the base's config says. With a cache, the result is
//! recorded under (uncompressed digest, compression id, output format
//! version), so a rebuild takes it from there instead of compressing again.

use std::io::{self, Write};

use bake_image::{BaseImage, Descriptor, media_type};
use bake_layer::Compression;
use bake_store::BlobStore;

use crate::cache::{Cache, Entry, KeyWriter};
use crate::{BuildError, Interrupt, OUTPUT_FORMAT_VERSION, Progress};

/// The cache key of `diff_id` compressed with `compression`.
fn key(diff_id: &bake_digest::Digest, compression: &Compression) -> bake_digest::Digest {
    let mut k = KeyWriter::new();
    k.str("base layer compressed");
    k.u64(u64::from(OUTPUT_FORMAT_VERSION));
    k.str(&diff_id.to_string());
    k.str(&compression.id());
    k.finish()
}

/// The descriptors the image uses for `base`'s layers: those of a
/// docker-archive's uncompressed layers replaced by the layer compressed
/// with `compression` (put in `layout`, from `cache` when it has it), the
/// others as they are. Each compressed layer is reported to `progress`.
pub(crate) fn base_layers(
    base: &BaseImage,
    from_docker_archive: bool,
    compression: Compression,
    layout: &BlobStore,
    cache: Option<&Cache>,
    progress: &dyn Progress,
    interrupt: &Interrupt,
) -> Result<Vec<Descriptor>, BuildError> {
    let mut out = Vec::with_capacity(base.layers.len());
    for (index, (layer, diff_id)) in base.layers.iter().zip(&base.diff_ids).enumerate() {
        if !from_docker_archive
            || compression == Compression::None
            || layer.media_type != media_type::OCI_LAYER_TAR
            // An uncompressed layer's digest is its diffID (checked already).
            || &layer.digest != diff_id
        {
            out.push(layer.clone());
            continue;
        }
        if interrupt.is_raised() {
            return Err(BuildError::Interrupted);
        }
        let key = key(diff_id, &compression);
        let found = match cache {
            Some(c) => c
                .lookup(&key)
                .map_err(BuildError::Cache)?
                .filter(|e| &e.diff_id == diff_id && e.media_type == compression.media_type()),
            None => None,
        };
        let cached = found.is_some();
        let entry = match found {
            Some(entry) => entry,
            None => compress(
                layer,
                diff_id,
                compression,
                layout,
                cache.map_or(layout, Cache::store),
                interrupt,
            )?,
        };
        if let Some(c) = cache {
            if !cached {
                c.record(&key, &entry).map_err(BuildError::Cache)?;
            }
            c.materialise(&entry, layout).map_err(BuildError::Cache)?;
        }
        let compressed = Descriptor::new(&entry.media_type, entry.digest, entry.size);
        progress.base_layer_compressed(index, layer, &compressed, &compression.id(), cached);
        out.push(compressed);
    }
    Ok(out)
}

/// Compresses the blob of `layer` in `from` (verified as it is read) into
/// `into`.
fn compress(
    layer: &Descriptor,
    diff_id: &bake_digest::Digest,
    compression: Compression,
    from: &BlobStore,
    into: &BlobStore,
    interrupt: &Interrupt,
) -> Result<Entry, BuildError> {
    let store_err = |source| BuildError::Store {
        layer: format!("base layer {}", layer.digest),
        source,
    };
    let source = from.open_verified(&layer.digest).map_err(store_err)?;
    let blob = into.writer().map_err(store_err)?;
    let writer = Interruptible {
        inner: blob,
        interrupt,
    };
    let writer = bake_layer::compress_tar(source, compression, writer).map_err(|e| {
        if interrupt.is_raised() {
            BuildError::Interrupted
        } else {
            BuildError::Io(io::Error::new(
                e.kind(),
                format!("compressing base layer {}: {e}", layer.digest),
            ))
        }
    })?;
    let (digest, size) = writer.inner.finish().map_err(store_err)?;
    Ok(Entry {
        diff_id: diff_id.clone(),
        digest,
        size,
        media_type: compression.media_type().to_owned(),
    })
}

/// Stops writing when the build is interrupted (the temp blob is dropped).
struct Interruptible<'a, W> {
    inner: W,
    interrupt: &'a Interrupt,
}

impl<W: Write> Write for Interruptible<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.interrupt.is_raised() {
            return Err(io::Error::other("the build was interrupted"));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
