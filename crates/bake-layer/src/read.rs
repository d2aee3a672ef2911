//! Listing the entries of a layer (any layer, not only ours).

use std::io::{self, Read};

use bake_digest::{Digest, Hasher};
use tar::EntryType;

use crate::LayerError;

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
    let read_err = |entry: Option<&str>| {
        let entry = entry.map(str::to_owned);
        move |source| LayerError::Read { entry, source }
    };
    let reader = crate::compress::decompress(r).map_err(read_err(None))?;
    let mut archive = tar::Archive::new(reader);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    for item in archive.entries().map_err(read_err(None))? {
        let mut item = item.map_err(read_err(None))?;
        let path = String::from_utf8_lossy(&item.path_bytes()).into_owned();
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
        let uid = header.uid().map_err(read_err(at))?;
        let gid = header.gid().map_err(read_err(at))?;
        let mtime = crate::layer::entry_mtime(&mut item).map_err(read_err(at))?;
        let link_target = item
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned());
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
        });
    }
    Ok(out)
}
