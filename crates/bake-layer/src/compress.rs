//! Pinned compression of the layer stream, and format detection for reading.

use std::io::{self, Read, Write};

use crate::{Compression, LayerError};

/// Bytes handed to the compressor per write. Fixed, so the compressor sees
/// the same call sequence whatever the tar writer's or the OS's read sizes.
const CHUNK: usize = 128 * 1024;

impl Compression {
    /// The OCI media type of a layer compressed this way.
    pub fn media_type(&self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip { .. } => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd { .. } => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// A stable identifier of the exact compressor, level and library, for
    /// cache keys and the output-format version: `none`, `gzip-6/zlib-rs`,
    /// `zstd-3/libzstd-1.5.7`. It changes when the bytes could change.
    pub fn id(&self) -> String {
        match self {
            Compression::None => "none".to_owned(),
            Compression::Gzip { level } => format!("gzip-{level}/zlib-rs"),
            Compression::Zstd { level } => {
                format!("zstd-{level}/libzstd-{}", zstd::zstd_safe::version_string())
            }
        }
    }

    /// Checks the level against the range the recipe language allows.
    pub(crate) fn validate(&self) -> Result<(), LayerError> {
        match *self {
            Compression::None => Ok(()),
            Compression::Gzip { level } if (1..=9).contains(&level) => Ok(()),
            Compression::Gzip { level } => Err(LayerError::Level {
                algorithm: "gzip",
                level: i64::from(level),
                range: "1 to 9",
            }),
            Compression::Zstd { level } if (1..=19).contains(&level) => Ok(()),
            Compression::Zstd { level } => Err(LayerError::Level {
                algorithm: "zstd",
                level: i64::from(level),
                range: "1 to 19",
            }),
        }
    }
}

/// The compressing end of the pipeline, fed in fixed-size chunks.
pub(crate) struct Compressor<W: Write> {
    inner: Inner<W>,
    buf: Vec<u8>,
}

enum Inner<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::Encoder<'static, W>),
}

impl<W: Write> Compressor<W> {
    pub(crate) fn new(out: W, compression: Compression) -> io::Result<Compressor<W>> {
        let inner = match compression {
            Compression::None => Inner::None(out),
            // GzBuilder's defaults are the pinned header: no name, no comment,
            // no extra, mtime 0, OS byte 255. Set explicitly so a change of
            // defaults cannot move them (a test checks the bytes too).
            Compression::Gzip { level } => Inner::Gzip(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .operating_system(255)
                    .write(out, flate2::Compression::new(level)),
            ),
            Compression::Zstd { level } => {
                // Single-threaded always: zstd's multi-threaded mode gives
                // other bytes. Frame checksum on, content size off (the size
                // is not known up front when streaming).
                let mut enc = zstd::Encoder::new(out, level)?;
                enc.include_checksum(true)?;
                enc.include_contentsize(false)?;
                Inner::Zstd(enc)
            }
        };
        Ok(Compressor {
            inner,
            buf: Vec::with_capacity(CHUNK),
        })
    }

    fn flush_chunk(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        match &mut self.inner {
            Inner::None(w) => w.write_all(&self.buf)?,
            Inner::Gzip(w) => w.write_all(&self.buf)?,
            Inner::Zstd(w) => w.write_all(&self.buf)?,
        }
        self.buf.clear();
        Ok(())
    }

    /// Writes what is buffered, ends the compressed stream and returns `out`.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.flush_chunk()?;
        match self.inner {
            Inner::None(mut w) => {
                w.flush()?;
                Ok(w)
            }
            Inner::Gzip(w) => {
                let mut w = w.finish()?;
                w.flush()?;
                Ok(w)
            }
            Inner::Zstd(w) => {
                let mut w = w.finish()?;
                w.flush()?;
                Ok(w)
            }
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.flush_chunk()?;
        }
        Ok(n)
    }

    /// Does not flush the compressor: a flush would end a deflate/zstd block
    /// early and change the output bytes.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What the first bytes of a stream say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Plain,
    Gzip,
    Zstd,
    Xz,
    Bzip2,
}

fn sniff(head: &[u8]) -> Format {
    if head.starts_with(&[0x1f, 0x8b]) {
        Format::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Format::Zstd
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Format::Xz
    } else if head.starts_with(b"BZh") {
        Format::Bzip2
    } else {
        Format::Plain
    }
}

/// Detects the compression of `r` by its magic bytes and returns a reader of
/// the decompressed stream. gzip streams may have several members, zstd and
/// xz several frames/streams, as their command-line tools accept.
pub(crate) fn decompress<'r, R: Read + 'r>(mut r: R) -> io::Result<Box<dyn Read + 'r>> {
    let mut head = [0u8; 6];
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = head[..got].to_vec();
    let format = sniff(&head);
    let whole = io::Cursor::new(head).chain(r);
    Ok(match format {
        Format::Plain => Box::new(whole),
        Format::Gzip => Box::new(flate2::read::MultiGzDecoder::new(whole)),
        Format::Zstd => Box::new(zstd::Decoder::new(whole)?),
        Format::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(whole)),
        Format::Bzip2 => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bzip2-compressed archives are not supported (use gzip, zstd or xz)",
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(data: &[u8], c: Compression, piece: usize) -> Vec<u8> {
        let mut w = Compressor::new(Vec::new(), c).unwrap();
        for p in data.chunks(piece) {
            w.write_all(p).unwrap();
            w.flush().unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn output_does_not_depend_on_write_sizes() {
        let data: Vec<u8> = (0..600_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for c in [
            Compression::None,
            Compression::Gzip { level: 6 },
            Compression::Zstd { level: 3 },
        ] {
            let one = compress(&data, c, data.len());
            assert_eq!(one, compress(&data, c, 1), "{c:?}");
            assert_eq!(one, compress(&data, c, 4099), "{c:?}");
            let mut back = Vec::new();
            decompress(&one[..]).unwrap().read_to_end(&mut back).unwrap();
            assert_eq!(back, data, "{c:?}");
        }
    }

    #[test]
    fn sniffs_magic_bytes() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8]), Format::Gzip);
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Format::Zstd);
        assert_eq!(sniff(b"\xfd7zXZ\0"), Format::Xz);
        assert_eq!(sniff(b"BZh9"), Format::Bzip2);
        assert_eq!(sniff(b"usr/"), Format::Plain);
        assert_eq!(sniff(b""), Format::Plain);
    }

    #[test]
    fn levels_are_checked() {
        assert!(Compression::Gzip { level: 0 }.validate().is_err());
        assert!(Compression::Gzip { level: 10 }.validate().is_err());
        assert!(Compression::Zstd { level: 20 }.validate().is_err());
        assert!(Compression::Zstd { level: -1 }.validate().is_err());
        assert!(Compression::Zstd { level: 19 }.validate().is_ok());
        assert!(Compression::Gzip { level: 9 }.validate().is_ok());
    }
}
