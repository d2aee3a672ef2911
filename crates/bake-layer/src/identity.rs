//! What a layer blob really is: its diffID (the sha256 of its uncompressed
//! tar) and its compression, measured from the bytes.
//!
//! A base image *claims* both: the config's `rootfs.diff_ids` and each
//! layer descriptor's media type. Neither is evidence. bake keys shared
//! cache entries on diffIDs (the symlinks a base leaves, what a layer does
//! to dpkg's status, `run` layers) and copies media types into the images
//! it writes, so a base that lies about either could make another recipe's
//! build read its entries, or ship a layer no runtime can unpack.
//! [`measure_layer`] decompresses a blob once and says what it is; callers
//! compare that with the claim before using it.

use std::io::{self, Read};

use bake_digest::{Digest, HashingWriter};

use crate::compress::{Format, decompress_format, sniff_reader};
use crate::error::LayerError;
use crate::limits::{ReadLimits, TarGuard};

/// How a layer blob is compressed, as its media type says or as its bytes
/// show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    /// A plain tar (`application/vnd.oci.image.layer.v1.tar`).
    None,
    /// gzip (`…tar+gzip`).
    Gzip,
    /// zstd (`…tar+zstd`).
    Zstd,
}

impl LayerCompression {
    /// The compression a layer media type declares (OCI and Docker names,
    /// the non-distributable variants included); `None` for a media type
    /// that is not a layer's.
    pub fn of_media_type(media_type: &str) -> Option<LayerCompression> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(LayerCompression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Some(LayerCompression::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Some(LayerCompression::Zstd),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            LayerCompression::None => "an uncompressed tar",
            LayerCompression::Gzip => "gzip",
            LayerCompression::Zstd => "zstd",
        }
    }
}

/// Decompresses the layer blob `r`, which its media type says is
/// compressed with `declared`, and returns its diffID: the sha256 of the
/// whole uncompressed stream.
///
/// The bytes must be what `declared` says (gzip and zstd by their magic
/// numbers, a plain tar by being neither these nor xz/bzip2), and the
/// stream must be a tar within `limits` (it is read through [`TarGuard`]),
/// read to its end.
///
/// ```
/// use bake_layer::{LayerCompression, ReadLimits, measure_layer};
/// let empty_tar = [0u8; 1024];
/// let diff_id = measure_layer(&empty_tar[..], LayerCompression::None, &ReadLimits::DEFAULT).unwrap();
/// assert_eq!(diff_id, bake_digest::Digest::of(&empty_tar));
/// ```
pub fn measure_layer<R: Read>(
    r: R,
    declared: LayerCompression,
    limits: &ReadLimits,
) -> Result<Digest, LayerError> {
    let (format, r) = sniff_reader(r).map_err(|source| LayerError::Measure { source })?;
    check_format(format, declared)?;
    let reader = decompress_format(format, r).map_err(|source| LayerError::Measure { source })?;
    let mut guarded = TarGuard::new(reader, *limits);
    let mut hasher = HashingWriter::new(io::sink());
    io::copy(&mut guarded, &mut hasher).map_err(|source| LayerError::Measure { source })?;
    Ok(hasher.finish().1)
}

/// Whether bytes that sniff as `format` are what `declared` says.
pub(crate) fn check_format(format: Format, declared: LayerCompression) -> Result<(), LayerError> {
    let actual = match format {
        Format::Plain => LayerCompression::None,
        Format::Gzip => LayerCompression::Gzip,
        Format::Zstd => LayerCompression::Zstd,
        Format::Xz | Format::Bzip2 => {
            return Err(LayerError::CompressionMismatch {
                declared: declared.name(),
                actual: if format == Format::Xz { "xz" } else { "bzip2" },
            });
        }
    };
    if actual != declared {
        return Err(LayerError::CompressionMismatch {
            declared: declared.name(),
            actual: actual.name(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Compression;

    fn tar_of(names: &[&str]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for n in names {
            let mut h = tar::Header::new_ustar();
            h.set_size(3);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, n, &b"abc"[..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn compressed(data: &[u8], c: Compression) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = crate::compress::Compressor::with_threads(&mut out, c, 1).unwrap();
        io::Write::write_all(&mut w, data).unwrap();
        w.finish().unwrap();
        out
    }

    #[test]
    fn the_diff_id_is_the_hash_of_the_uncompressed_tar_whatever_the_compression() {
        let tar = tar_of(&["a", "b/c"]);
        let want = Digest::of(&tar);
        let limits = ReadLimits::DEFAULT;
        assert_eq!(
            measure_layer(&tar[..], LayerCompression::None, &limits).unwrap(),
            want
        );
        let gz = compressed(&tar, Compression::Gzip { level: 6 });
        assert_eq!(
            measure_layer(&gz[..], LayerCompression::Gzip, &limits).unwrap(),
            want
        );
        let zst = compressed(&tar, Compression::Zstd { level: 3 });
        assert_eq!(
            measure_layer(&zst[..], LayerCompression::Zstd, &limits).unwrap(),
            want
        );
    }

    #[test]
    fn a_media_type_that_lies_about_the_compression_is_refused() {
        let tar = tar_of(&["a"]);
        let gz = compressed(&tar, Compression::Gzip { level: 6 });
        let zst = compressed(&tar, Compression::Zstd { level: 3 });
        let limits = ReadLimits::DEFAULT;
        for (bytes, declared, actual) in [
            (&tar, LayerCompression::Gzip, "an uncompressed tar"),
            (&gz, LayerCompression::None, "gzip"),
            (&gz, LayerCompression::Zstd, "gzip"),
            (&zst, LayerCompression::Gzip, "zstd"),
        ] {
            let err = measure_layer(&bytes[..], declared, &limits)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("its bytes are {actual}")) && err.contains(declared.name()),
                "{err}"
            );
        }
    }

    #[test]
    fn corrupt_truncated_and_oversized_layers_are_errors() {
        let tar = tar_of(&["a", "b"]);
        let gz = compressed(&tar, Compression::Gzip { level: 6 });
        let limits = ReadLimits::DEFAULT;
        let cut = &gz[..gz.len() - 5];
        assert!(measure_layer(cut, LayerCompression::Gzip, &limits).is_err());
        let mut flipped = gz.clone();
        let n = flipped.len();
        flipped[n - 6] ^= 0xff; // the CRC
        assert!(measure_layer(&flipped[..], LayerCompression::Gzip, &limits).is_err());
        let small = ReadLimits {
            max_tar_bytes: 1024,
            ..ReadLimits::DEFAULT
        };
        let err = measure_layer(&tar[..], LayerCompression::None, &small)
            .unwrap_err()
            .to_string();
        assert!(crate::exceeds_tar_limit(&err), "{err}");
    }

    #[test]
    fn media_types_map_to_their_compression() {
        assert_eq!(
            LayerCompression::of_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Some(LayerCompression::Gzip)
        );
        assert_eq!(
            LayerCompression::of_media_type(Compression::Zstd { level: 3 }.media_type()),
            Some(LayerCompression::Zstd)
        );
        assert_eq!(
            LayerCompression::of_media_type(Compression::None.media_type()),
            Some(LayerCompression::None)
        );
        assert_eq!(
            LayerCompression::of_media_type("application/vnd.oci.image.config.v1+json"),
            None
        );
    }
}
