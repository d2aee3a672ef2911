//! Bounds on what reading one untrusted archive may cost, enforced below
//! the `tar` crate.
//!
//! The `tar` crate reads a PAX extended header or a GNU long name/link
//! record into memory whole, however large its header says it is, and
//! decompression can turn a few kilobytes into terabytes. [`TarGuard`] sits
//! between the (decompressed) stream and `tar::Archive`: it follows the tar
//! stream block by block exactly as the `tar` crate does (header, data
//! rounded up to 512 bytes, a PAX `size` record overriding the next entry's
//! size, GNU sparse extension blocks, the end at the first zero block) and
//! fails the read that would hand over a metadata record larger than
//! [`ReadLimits::max_metadata_record`], or more than
//! [`ReadLimits::max_tar_bytes`] bytes in all, before the `tar` crate has
//! allocated anything for it.

use std::io::{self, Read};

use tar::EntryType;

const BLOCK: u64 = 512;

/// Limits on reading one archive (a layer, an `unpack` archive, a `.deb`'s
/// data or control archive). Each read of an archive starts from zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// The most bytes of uncompressed tar stream (headers, contents and
    /// padding) one archive may have: a bound on decompression bombs, on the
    /// temporary space `unpack` uses and on the bytes `apply_layer` writes.
    /// Default 64 GiB.
    pub max_tar_bytes: u64,
    /// The most bytes one PAX extended header (local or global) or GNU long
    /// name or long link record may have; the `tar` crate holds each in
    /// memory. Default 1 MiB (a path is at most 4 KiB on Linux).
    pub max_metadata_record: u64,
    /// The most entries (files, directories, links…; PAX and GNU metadata
    /// records not counted) one archive may have: each unpacked file takes
    /// a temporary file, each entry memory. Default 1,048,576 — a Debian
    /// base image has about 10,000, a large distribution layer a few
    /// hundred thousand.
    pub max_entries: u64,
}

impl ReadLimits {
    /// 64 GiB of tar, 1 MiB per metadata record, 1,048,576 entries.
    pub const DEFAULT: ReadLimits = ReadLimits {
        max_tar_bytes: 64 << 30,
        max_metadata_record: 1 << 20,
        max_entries: 1 << 20,
    };
}

impl Default for ReadLimits {
    fn default() -> ReadLimits {
        ReadLimits::DEFAULT
    }
}

#[derive(Debug)]
enum State {
    /// Collecting a 512-byte header block.
    Header,
    /// Passing `left` bytes of content and padding; the first `capture`
    /// bytes of them are kept (a PAX extended header's records).
    Data { left: u64, capture: u64 },
    /// Collecting GNU sparse extension blocks, then `size` bytes of data.
    SparseExt { size: u64 },
    /// After the end of the archive (a zero block), or after a header the
    /// `tar` crate will refuse: nothing more is inspected.
    Done,
}

/// A reader that enforces [`ReadLimits`] on the (uncompressed) tar stream
/// it passes through: put it between the stream and `tar::Archive`. It
/// follows the stream block by block as the `tar` crate does and fails the
/// read that would hand over a PAX or GNU long-name record larger than
/// [`ReadLimits::max_metadata_record`] (naming the entry), or more than
/// [`ReadLimits::max_tar_bytes`] bytes in all. Every archive this crate
/// reads goes through one; other crates reading tars from strangers (a
/// docker-archive base) use it too.
///
/// ```
/// use std::io::Read;
/// use bake_layer::{ReadLimits, TarGuard};
///
/// // A PAX extended header whose size field claims 16 GiB.
/// let mut h = tar::Header::new_ustar();
/// h.set_entry_type(tar::EntryType::XHeader);
/// h.set_size(16 << 30);
/// h.set_cksum();
/// let mut archive = tar::Archive::new(TarGuard::new(&h.as_bytes()[..], ReadLimits::DEFAULT));
/// let err = archive.entries().unwrap().next().unwrap().err().unwrap();
/// assert!(err.to_string().contains("more than the limit of 1048576 bytes"));
/// ```
pub struct TarGuard<R> {
    inner: R,
    limits: ReadLimits,
    total: u64,
    state: State,
    block: Box<[u8; BLOCK as usize]>,
    filled: usize,
    /// The records of the PAX extended header being read.
    captured: Option<Vec<u8>>,
    /// The records of the last PAX extended header, for the next entry.
    pending_pax: Option<Vec<u8>>,
    failed: Option<(io::ErrorKind, String)>,
    /// Entries seen (metadata records not counted).
    entries: u64,
}

impl<R: Read> TarGuard<R> {
    /// Guards the tar stream `inner` with `limits`.
    pub fn new(inner: R, limits: ReadLimits) -> TarGuard<R> {
        TarGuard {
            inner,
            limits,
            total: 0,
            state: State::Header,
            block: Box::new([0u8; BLOCK as usize]),
            filled: 0,
            captured: None,
            pending_pax: None,
            failed: None,
            entries: 0,
        }
    }

    /// Follows the stream over `bytes` (just read, not yet handed out).
    fn inspect(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Done => return Ok(()),
                State::Header | State::SparseExt { .. } => {
                    let n = bytes.len().min(BLOCK as usize - self.filled);
                    self.block[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
                    self.filled += n;
                    bytes = &bytes[n..];
                    if self.filled == BLOCK as usize {
                        self.filled = 0;
                        self.block_done()?;
                    }
                }
                State::Data { left, capture } => {
                    let n = bytes.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                    if *capture > 0 {
                        let keep = n.min(usize::try_from(*capture).unwrap_or(usize::MAX));
                        if let Some(c) = self.captured.as_mut() {
                            c.extend_from_slice(&bytes[..keep]);
                        }
                        *capture -= keep as u64;
                    }
                    *left -= n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        self.data_done();
                    }
                }
            }
        }
        Ok(())
    }

    fn data_done(&mut self) {
        if let Some(records) = self.captured.take() {
            self.pending_pax = Some(records);
        }
        self.state = State::Header;
    }

    fn block_done(&mut self) -> Result<(), String> {
        if let State::SparseExt { size } = self.state {
            // `isextended` of a GNU sparse extension block.
            if self.block[504] != 1 {
                self.start_data(size, 0);
            }
            return Ok(());
        }
        if self.block.iter().all(|&b| b == 0) {
            // The `tar` crate stops at the first zero block.
            self.state = State::Done;
            return Ok(());
        }
        let header = tar::Header::from_byte_slice(&self.block[..]);
        let Ok(mut size) = header.entry_size() else {
            // The `tar` crate fails on this header too.
            self.state = State::Done;
            return Ok(());
        };
        let kind = header.entry_type();
        let metadata = matches!(
            kind,
            EntryType::GNULongName | EntryType::GNULongLink | EntryType::XHeader | EntryType::XGlobalHeader
        );
        let recognized = header.as_ustar().is_some() || header.as_gnu().is_some();
        // What the `tar` crate folds into the next entry rather than
        // returning as one.
        let folded = recognized
            && matches!(
                kind,
                EntryType::GNULongName | EntryType::GNULongLink | EntryType::XHeader
            );
        if !metadata {
            if let Some(pax_size) = self.pending_pax.as_deref().and_then(pax_size) {
                size = pax_size;
            }
        }
        if !folded {
            self.pending_pax = None;
        }
        if metadata && size > self.limits.max_metadata_record {
            let what = match kind {
                EntryType::GNULongName => "GNU long name record",
                EntryType::GNULongLink => "GNU long link record",
                EntryType::XHeader => "PAX extended header",
                _ => "PAX global header",
            };
            return Err(format!(
                "entry {:?}: {what} of {size} bytes, more than the limit of {} bytes",
                String::from_utf8_lossy(&header.path_bytes()),
                self.limits.max_metadata_record
            ));
        }
        if !metadata {
            self.entries += 1;
            if self.entries > self.limits.max_entries {
                return Err(format!(
                    "the archive has more than the limit of {} entries",
                    self.limits.max_entries
                ));
            }
        }
        if recognized && kind == EntryType::XHeader {
            self.captured = Some(Vec::with_capacity(usize::try_from(size).unwrap_or(0)));
            self.start_data(size, size);
            return Ok(());
        }
        if !folded && kind == EntryType::GNUSparse {
            match header.as_gnu() {
                Some(gnu) if gnu.is_extended() => {
                    self.state = State::SparseExt { size };
                    return Ok(());
                }
                Some(_) => {}
                None => {
                    self.state = State::Done;
                    return Ok(());
                }
            }
        }
        self.start_data(size, 0);
        Ok(())
    }

    fn start_data(&mut self, size: u64, capture: u64) {
        match size.checked_add(BLOCK - 1) {
            // The `tar` crate fails with "size overflow".
            None => self.state = State::Done,
            Some(padded) => {
                self.state = State::Data {
                    left: padded & !(BLOCK - 1),
                    capture,
                };
                if padded < BLOCK {
                    self.data_done();
                }
            }
        }
    }
}

/// An error the `tar` crate met looking for the next entry, which is about
/// the entry before when that one's content was short: says which.
pub(crate) fn after_entry(last: Option<&str>, e: io::Error) -> io::Error {
    match last {
        Some(name) => io::Error::new(e.kind(), format!("after entry {name:?}: {e}")),
        None => e,
    }
}

/// The `tar` crate's errors can quote what a stranger wrote: the bytes of
/// a malformed numeric field ("numeric field was not a number: …", which
/// has echoed a registry credential file read as an archive) and entry
/// paths unescaped. This keeps the error's kind and says the same in
/// words of ours: a malformed number names only the header field; any
/// other message has its control characters escaped (a name cannot fake a
/// log line) and is cut to 200 characters.
pub(crate) fn scrub(e: io::Error) -> io::Error {
    let msg = e.to_string();
    let text = match msg.find("numeric field") {
        Some(at) => {
            let field = msg
                .split(" when getting ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .filter(|f| f.len() <= 16 && f.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
                .unwrap_or("numeric");
            // What comes before is ours ("after entry \"…\": "), escaped.
            format!(
                "{}the tar header's {field} field is not a valid number",
                &msg[..at]
            )
        }
        None => {
            let mut out = String::new();
            for c in msg.chars() {
                if out.chars().count() >= 200 {
                    out.push('…');
                    break;
                }
                if c.is_control() {
                    out.extend(c.escape_default());
                } else {
                    out.push(c);
                }
            }
            out
        }
    };
    io::Error::new(e.kind(), text)
}

/// The `size` record of PAX extended header records, as the `tar` crate
/// reads it (any malformed record: none).
fn pax_size(records: &[u8]) -> Option<u64> {
    for ext in tar::PaxExtensions::new(records) {
        let ext = ext.ok()?;
        if ext.key() != Ok("size") {
            continue;
        }
        return ext.value().ok()?.parse().ok();
    }
    None
}

/// How [`TarGuard`]'s error for an archive past
/// [`ReadLimits::max_tar_bytes`] starts.
const TOO_LARGE_PREFIX: &str = "the archive is larger than the limit of ";

/// Whether an error's text (however it was wrapped) says an archive went
/// past [`ReadLimits::max_tar_bytes`], so a caller can say how to raise it.
/// Callers wrap the error in their own types, often as text, so the text
/// is what survives.
pub fn exceeds_tar_limit(error_text: &str) -> bool {
    error_text.contains(TOO_LARGE_PREFIX)
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some((kind, msg)) = &self.failed {
            return Err(io::Error::new(*kind, msg.clone()));
        }
        let n = self.inner.read(buf)?;
        let fail = |this: &mut Self, kind: io::ErrorKind, msg: String| {
            this.failed = Some((kind, msg.clone()));
            Err(io::Error::new(kind, msg))
        };
        self.total = self.total.saturating_add(n as u64);
        if self.total > self.limits.max_tar_bytes {
            let msg = format!(
                "{TOO_LARGE_PREFIX}{} bytes uncompressed",
                self.limits.max_tar_bytes
            );
            return fail(self, io::ErrorKind::FileTooLarge, msg);
        }
        if let Err(msg) = self.inspect(&buf[..n]) {
            return fail(self, io::ErrorKind::InvalidData, msg);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: EntryType, name: &str, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_path(name).unwrap();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        h
    }

    fn read_all(data: &[u8], limits: ReadLimits) -> io::Result<Vec<String>> {
        let mut archive = tar::Archive::new(TarGuard::new(data, limits));
        let mut names = Vec::new();
        for e in archive.entries()? {
            let mut e = e?;
            names.push(String::from_utf8_lossy(&e.path_bytes()).into_owned());
            io::copy(&mut e, &mut io::sink())?;
        }
        Ok(names)
    }

    /// The guard follows the stream as the `tar` crate does: PAX records
    /// (with a `size` override), GNU long names, empty and odd-sized
    /// entries, and leaves the archive readable.
    #[test]
    fn ordinary_archives_pass() {
        let mut b = tar::Builder::new(Vec::new());
        let long = "d/".repeat(200) + "file";
        let mut h = header(EntryType::Regular, "x", 3);
        b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
        b.append_pax_extensions([("mtime", &b"1.5"[..])]).unwrap();
        let mut h = header(EntryType::Regular, "odd", 513);
        b.append_data(&mut h, "odd", &[7u8; 513][..]).unwrap();
        let mut h = header(EntryType::Directory, "empty/", 0);
        b.append_data(&mut h, "empty/", &[][..]).unwrap();
        let mut gnu = tar::Header::new_gnu();
        gnu.set_size(1);
        gnu.set_mode(0o644);
        b.append_data(&mut gnu, "g".repeat(300), &b"z"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let names = read_all(&data, ReadLimits::DEFAULT).unwrap();
        assert_eq!(names, [long, "odd".into(), "empty/".into(), "g".repeat(300)]);
        // The whole archive's size passes; half of it does not.
        let exact = ReadLimits {
            max_tar_bytes: data.len() as u64,
            ..ReadLimits::DEFAULT
        };
        read_all(&data, exact).unwrap();
        let short = ReadLimits {
            max_tar_bytes: data.len() as u64 / 2,
            ..ReadLimits::DEFAULT
        };
        let err = read_all(&data, short).unwrap_err();
        assert!(err.to_string().contains("larger than the limit"), "{err}");
        assert!(exceeds_tar_limit(&format!("step 3: {err}")), "{err}");
        assert!(!exceeds_tar_limit(
            "PAX extended header of 9 bytes, more than the limit of 1 bytes"
        ));
    }

    #[test]
    fn pax_size_override_is_followed() {
        // A PAX `size` record that says 1000 while the header says 0: the
        // next header is 1024 bytes later, as the tar crate reads it.
        let mut data = Vec::new();
        let records = b"13 size=1000\n";
        let h = header(EntryType::XHeader, "PaxHeaders/f", records.len() as u64);
        data.extend_from_slice(h.as_bytes());
        let mut block = records.to_vec();
        block.resize(512, 0);
        data.extend_from_slice(&block);
        let h = header(EntryType::Regular, "f", 0);
        data.extend_from_slice(h.as_bytes());
        // The content: 1000 bytes that look like a huge PAX header.
        let fake = header(EntryType::XHeader, "fake", 1 << 40);
        let mut content = fake.as_bytes().to_vec();
        content.resize(1024, 0);
        data.extend_from_slice(&content);
        let h = header(EntryType::Regular, "after", 0);
        data.extend_from_slice(h.as_bytes());
        data.extend_from_slice(&[0u8; 1024]);
        assert_eq!(read_all(&data, ReadLimits::DEFAULT).unwrap(), ["f", "after"]);
    }

    #[test]
    fn huge_metadata_records_are_refused_before_they_are_read() {
        for kind in [
            EntryType::XHeader,
            EntryType::XGlobalHeader,
            EntryType::GNULongName,
            EntryType::GNULongLink,
        ] {
            // The header claims 2 MiB; the stream has only a few bytes of it.
            let mut data = header(kind, "meta", 2 << 20).as_bytes().to_vec();
            data.extend_from_slice(&[b'x'; 512]);
            let err = read_all(&data, ReadLimits::DEFAULT).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert!(
                err.to_string()
                    .contains("of 2097152 bytes, more than the limit of 1048576 bytes"),
                "{kind:?}: {err}"
            );
        }
    }
}
