//! Listing the entries of a layer (any layer, not only ours).

use std::collections::BTreeMap;
use std::io::{self, Read};

use bake_digest::{Digest, Hasher};
use tar::EntryType;

use crate::LayerError;
use crate::limits::{ReadLimits, TarGuard, after_entry};

/// What kind of filesystem object a tar entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Char,
    Block,
    Fifo,
    /// Any other type flag (the raw byte).
    Other(u8),
}

/// Which tar header format an entry was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HeaderFormat {
    /// POSIX ustar (`ustar\0` `00`), what bake writes (with PAX records when
    /// a field needs them).
    Ustar,
    /// GNU tar's format (`ustar  \0`).
    Gnu,
    /// Pre-POSIX (v7) tar: no magic.
    Old,
}

/// One entry of a layer as [`read_layer_entries`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EntrySummary {
    /// The name as stored (directories end with `/`); non-UTF-8 bytes are
    /// shown as U+FFFD.
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits, including setuid/setgid/sticky (`& 0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    /// Bytes of content (0 for anything but regular files).
    pub size: u64,
    /// Symlink target or hardlink target.
    pub link_target: Option<String>,
    /// sha256 of the content, for regular files.
    pub sha256: Option<Digest>,
    /// The header's user and group names (empty when absent; bake writes
    /// none). PAX `uname`/`gname` records are in [`EntrySummary::pax`].
    pub uname: String,
    pub gname: String,
    /// Device major and minor numbers, for character and block devices.
    pub device: Option<(u32, u32)>,
    /// The header format.
    pub format: HeaderFormat,
    /// The entry's PAX extended header records (values as lossy UTF-8),
    /// except extended attributes, which are in [`EntrySummary::xattrs`].
    pub pax: BTreeMap<String, String>,
    /// Extended attributes (PAX `SCHILY.xattr.NAME` records): name → value.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

/// Lists the entries of a layer, in archive order, decompressing it first
/// (gzip, zstd and xz are detected by their magic bytes; anything else is
/// read as a plain tar). PAX global headers are skipped; file contents are
/// streamed through sha256, never held in memory.
///
/// ```
/// let plain_empty_tar = [0u8; 1024];
/// assert!(bake_layer::read_layer_entries(&plain_empty_tar[..]).unwrap().is_empty());
/// ```
pub fn read_layer_entries<R: Read>(r: R) -> Result<Vec<EntrySummary>, LayerError> {
    read_layer_entries_with_limits(r, &ReadLimits::DEFAULT)
}

/// [`read_layer_entries`] within `limits` instead of
/// [`ReadLimits::DEFAULT`]: a layer whose uncompressed tar is larger, or
/// with a larger PAX or GNU long-name record, is an error.
pub fn read_layer_entries_with_limits<R: Read>(
    r: R,
    limits: &ReadLimits,
) -> Result<Vec<EntrySummary>, LayerError> {
    let read_err = |entry: Option<&str>| {
        let entry = entry.map(str::to_owned);
        move |source| LayerError::Read {
            entry,
            source: crate::limits::scrub(source),
        }
    };
    let reader = crate::compress::decompress(r).map_err(read_err(None))?;
    let mut archive = tar::Archive::new(TarGuard::new(reader, *limits));
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut last: Option<String> = None;
    for item in archive.entries().map_err(read_err(None))? {
        let mut item = item.map_err(|e| read_err(None)(after_entry(last.as_deref(), e)))?;
        let path = String::from_utf8_lossy(&item.path_bytes()).into_owned();
        last = Some(path.clone());
        let header = item.header();
        let kind = match header.entry_type() {
            EntryType::XGlobalHeader => continue,
            EntryType::Regular | EntryType::Continuous => EntryKind::File,
            EntryType::Directory => EntryKind::Dir,
            EntryType::Symlink => EntryKind::Symlink,
            EntryType::Link => EntryKind::Hardlink,
            EntryType::Char => EntryKind::Char,
            EntryType::Block => EntryKind::Block,
            EntryType::Fifo => EntryKind::Fifo,
            other => EntryKind::Other(other.as_byte()),
        };
        let at = Some(path.as_str());
        let mode = header.mode().map_err(read_err(at))? & 0o7777;
        let (uid, gid) = crate::layer::entry_owner(&mut item).map_err(read_err(at))?;
        let mtime = crate::layer::entry_mtime(&mut item).map_err(read_err(at))?;
        let link_target = item
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned());
        let header = item.header();
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let uname = header.username_bytes().map(lossy).unwrap_or_default();
        let gname = header.groupname_bytes().map(lossy).unwrap_or_default();
        let format = if header.as_ustar().is_some() {
            HeaderFormat::Ustar
        } else if header.as_gnu().is_some() {
            HeaderFormat::Gnu
        } else {
            HeaderFormat::Old
        };
        let device = match kind {
            EntryKind::Char | EntryKind::Block => {
                let major = header.device_major().map_err(read_err(at))?;
                let minor = header.device_minor().map_err(read_err(at))?;
                major.zip(minor)
            }
            _ => None,
        };
        let mut pax = BTreeMap::new();
        let mut xattrs = BTreeMap::new();
        if let Some(exts) = item.pax_extensions().map_err(read_err(at))? {
            for ext in exts {
                let ext = ext.map_err(read_err(at))?;
                let key = lossy(ext.key_bytes());
                match key.strip_prefix("SCHILY.xattr.") {
                    Some(name) => {
                        xattrs.insert(name.to_owned(), ext.value_bytes().to_vec());
                    }
                    None => {
                        pax.insert(key, lossy(ext.value_bytes()));
                    }
                }
            }
        }
        let (size, sha256) = if kind == EntryKind::File {
            let mut hasher = Hasher::new();
            loop {
                match item.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => hasher.update(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(read_err(at)(e)),
                }
            }
            let (digest, n) = hasher.finish();
            if n != item.size() {
                let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "the layer is truncated");
                return Err(read_err(at)(eof));
            }
            (n, Some(digest))
        } else {
            (0, None)
        };
        out.push(EntrySummary {
            path,
            kind,
            mode,
            uid,
            gid,
            mtime,
            size,
            link_target,
            sha256,
            uname,
            gname,
            device,
            format,
            pax,
            xattrs,
        });
    }
    // What follows the end-of-archive blocks: read through, so a corrupt or
    // truncated compressed stream is an error even there.
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(read_err(None))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Header details besides bake's own normalised fields: user names,
    /// GNU format, device numbers, PAX records and xattrs.
    #[test]
    fn reports_header_fields() {
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([
            ("SCHILY.xattr.security.capability", &[1u8, 0, 0, 2][..]),
            ("atime", &b"1700000123"[..]),
        ])
        .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_username("root").unwrap();
        h.set_groupname("wheel").unwrap();
        b.append_data(&mut h, "f", &b"hi"[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(EntryType::Char);
        h.set_size(0);
        h.set_mode(0o666);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        b.append_data(&mut h, "dev/null", &[][..]).unwrap();
        let tar = b.into_inner().unwrap();

        let e = read_layer_entries(&tar[..]).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].uname.as_str(), e[0].gname.as_str()), ("root", "wheel"));
        assert_eq!(e[0].format, HeaderFormat::Ustar);
        assert_eq!(e[0].device, None);
        assert_eq!(
            e[0].xattrs,
            BTreeMap::from([("security.capability".to_owned(), vec![1, 0, 0, 2])])
        );
        assert_eq!(
            e[0].pax,
            BTreeMap::from([("atime".to_owned(), "1700000123".to_owned())])
        );
        assert_eq!((e[1].kind, e[1].format), (EntryKind::Char, HeaderFormat::Gnu));
        assert_eq!(e[1].device, Some((1, 3)));
        assert!(e[1].pax.is_empty() && e[1].xattrs.is_empty() && e[1].uname.is_empty());
    }
}
