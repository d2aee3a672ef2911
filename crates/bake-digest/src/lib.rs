//! Content digests: the one `Digest` type every bake crate uses, and readers and
//! writers that hash what passes through them.
//!
//! A [`Digest`] is always `sha256:` followed by 64 lower-case hex digits. It is
//! validated once, when parsed, and trusted afterwards, so code that holds a
//! `Digest` never re-checks it and can safely use [`Digest::hex`] as a file name.
//!
//! ```
//! use bake_digest::Digest;
//! let d = Digest::of(b"hello");
//! assert_eq!(d.to_string(), "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
//! let parsed: Digest = d.to_string().parse().unwrap();
//! assert_eq!(parsed, d);
//! assert!("sha256:XYZ".parse::<Digest>().is_err());
//! ```
//!
//! This crate owns no I/O beyond the `Read`/`Write` adapters and knows nothing
//! of blobs, stores or registries.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A validated `sha256:<64 lower-case hex>` content digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

/// Why a string is not a digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("invalid digest {0:?}: only sha256 digests are supported")]
    Algorithm(String),
    #[error("invalid digest {0:?}: expected 64 lower-case hex digits after \"sha256:\"")]
    Encoding(String),
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_raw(Sha256::digest(bytes).into())
    }

    /// A digest from its 32 raw bytes.
    pub fn from_raw(raw: [u8; 32]) -> Digest {
        Digest {
            hex: hex::encode(raw),
        }
    }

    /// A digest from its 64-digit hex form (no `sha256:` prefix).
    pub fn from_hex(hex: &str) -> Result<Digest, DigestError> {
        if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Digest { hex: hex.to_owned() })
        } else {
            Err(DigestError::Encoding(format!("sha256:{hex}")))
        }
    }

    /// The 64 hex digits, safe to use as a file name.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Always `"sha256"`.
    pub fn algorithm(&self) -> &'static str {
        "sha256"
    }

    /// The first 12 hex digits, for human output.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Digest, DigestError> {
        match s.split_once(':') {
            Some(("sha256", hex)) => Digest::from_hex(hex).map_err(|_| DigestError::Encoding(s.to_owned())),
            _ => Err(DigestError::Algorithm(s.to_owned())),
        }
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An incremental sha256 hasher that also counts bytes.
#[derive(Clone, Default)]
pub struct Hasher {
    inner: Sha256,
    len: u64,
}

impl Hasher {
    pub fn new() -> Hasher {
        Hasher::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest and the number of bytes hashed.
    pub fn finish(self) -> (Digest, u64) {
        (Digest::from_raw(self.inner.finalize().into()), self.len)
    }
}

/// A writer that hashes and counts everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> HashingWriter<W> {
        HashingWriter {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Digest, u64) {
        let (d, n) = self.hasher.finish();
        (self.inner, d, n)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> HashingReader<R> {
        HashingReader {
            inner,
            hasher: Hasher::new(),
        }
    }

    pub fn len(&self) -> u64 {
        self.hasher.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }

    /// The inner reader, the digest and byte count of what was read.
    pub fn finish(self) -> (R, Digest, u64) {
        let (d, n) = self.hasher.finish();
        (self.inner, d, n)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A reader that fails with `InvalidData` at end of stream when the bytes
/// read do not have the expected digest (or size, when given). Use it for
/// every blob read from anywhere: nothing unverified reaches the caller's
/// success path.
pub struct VerifyingReader<R> {
    inner: HashingReader<R>,
    expected: Digest,
    expected_size: Option<u64>,
    done: bool,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, expected: Digest, expected_size: Option<u64>) -> VerifyingReader<R> {
        VerifyingReader {
            inner: HashingReader::new(inner),
            expected,
            expected_size,
            done: false,
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(size) = self.expected_size {
            if self.inner.len() > size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("blob {} is larger than its declared size {size}", self.expected),
                ));
            }
        }
        if n == 0 && !buf.is_empty() && !self.done {
            self.done = true;
            let (actual, len) = self.inner.hasher.clone().finish();
            if let Some(size) = self.expected_size {
                if len != size {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("blob {} has {len} bytes, expected {size}", self.expected),
                    ));
                }
            }
            if actual != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "blob content does not match its digest: expected {}, got {actual}",
                        self.expected
                    ),
                ));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        let s = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let d: Digest = s.parse().unwrap();
        assert_eq!(d, Digest::of(b""));
        assert_eq!(d.to_string(), s);
        assert_eq!(d.short(), "e3b0c44298fc");
    }

    #[test]
    fn rejects_bad_digests() {
        for bad in [
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0",
            "sha256:../../../../etc/passwd000000000000000000000000000000000000000",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn hashing_writer_and_reader_agree() {
        let data = vec![7u8; 100_000];
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        let (out, d, n) = w.finish();
        assert_eq!(out, data);
        assert_eq!(n, 100_000);
        assert_eq!(d, Digest::of(&data));

        let mut r = HashingReader::new(&data[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(r.finish().1, d);
    }

    #[test]
    fn verifying_reader_rejects_wrong_content() {
        let good = Digest::of(b"abc");
        let mut out = Vec::new();
        VerifyingReader::new(&b"abc"[..], good.clone(), Some(3))
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"abc");
        let err = VerifyingReader::new(&b"abd"[..], good.clone(), None)
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        let err = VerifyingReader::new(&b"abcd"[..], good, Some(3))
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(err.to_string().contains("larger"), "{err}");
    }

    #[test]
    fn serde_round_trip() {
        let d = Digest::of(b"x");
        let j = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&j).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"md5:abc\"").is_err());
    }
}
