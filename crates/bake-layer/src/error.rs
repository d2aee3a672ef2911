//! The crate's one error type.

use std::io;
use std::path::PathBuf;

use bake_digest::Digest;

/// Why a layer could not be built or read.
///
/// Every variant that comes from a [`Source`](crate::Source) carries `index`,
/// the position of that source in the slice given to
/// [`write_layer`](crate::write_layer), so the caller can point at the recipe
/// step; see [`LayerError::source_index`]. Host paths are the paths as read;
/// archive entries are the names as stored in the archive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// The build context directory cannot be opened.
    #[error("cannot open build context {path}: {source}")]
    ContextIo {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("build context {path} is not a directory")]
    ContextNotDir { path: PathBuf },
    /// A context-relative path that is absolute or otherwise malformed.
    #[error("invalid build context path {rel:?}: {reason}")]
    BadContextPath { rel: String, reason: &'static str },
    #[error("{rel:?} does not exist in the build context {root}")]
    NotFound { rel: String, root: PathBuf },
    #[error("{rel:?} resolves to {resolved}, which is outside the build context {root}")]
    OutsideContext {
        rel: String,
        resolved: PathBuf,
        root: PathBuf,
    },
    /// Reading a host file or directory failed (the message names the path).
    #[error("sources[{index}]: {source}")]
    Io {
        index: usize,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file's size differs between the walk and the moment it was written.
    #[error("sources[{index}]: {} changed while the layer was being written", esc(path.display()))]
    Changed { index: usize, path: PathBuf },
    #[error(
        "sources[{index}]: {} is a {kind}: only regular files, directories and symlinks can be copied",
        esc(path.display())
    )]
    UnsupportedFile {
        index: usize,
        path: PathBuf,
        kind: &'static str,
    },
    /// A host file name or symlink target that is not UTF-8.
    #[error("sources[{index}]: {}: {what} is not valid UTF-8", esc(path.display()))]
    NotUtf8 {
        index: usize,
        path: PathBuf,
        what: &'static str,
    },
    /// A destination (`to`, `file`, `dir`, `symlink`) that cannot be used.
    #[error("sources[{index}]: invalid image path {path:?}: {reason}")]
    BadImagePath {
        index: usize,
        path: String,
        reason: &'static str,
    },
    /// An entry would be created below a file or symlink of the same layer.
    #[error(
        "sources[{index}]: cannot create /{}: /{} is a {kind} in this layer, not a directory",
        esc(path),
        esc(parent)
    )]
    NotADirectory {
        index: usize,
        path: String,
        parent: String,
        kind: &'static str,
    },
    /// An entry's path goes through the symlinks of the layers below in a
    /// way that cannot be resolved (a loop).
    #[error("sources[{index}]: cannot place /{}: {}", esc(path), esc(reason))]
    BelowLink {
        index: usize,
        path: String,
        reason: String,
    },
    #[error("sources[{index}]: invalid exclude pattern {pattern:?}: {source}")]
    Exclude {
        index: usize,
        pattern: String,
        #[source]
        source: globset::Error,
    },
    /// The archive of an `Unpack` source is corrupt or cannot be read.
    #[error("sources[{index}]: cannot read archive {}{}: {source}", esc(archive.display()), at_entry(.entry))]
    Archive {
        index: usize,
        archive: PathBuf,
        entry: Option<String>,
        #[source]
        source: io::Error,
    },
    /// An archive entry that is refused (escaping path, device node, …).
    #[error("sources[{index}]: archive {}: entry {entry:?}: {}", esc(archive.display()), esc(reason))]
    ArchiveEntry {
        index: usize,
        archive: PathBuf,
        entry: String,
        reason: String,
    },
    /// A layer blob whose bytes are not compressed as its media type says.
    #[error("its media type says {declared}, but its bytes are {actual}")]
    CompressionMismatch {
        declared: &'static str,
        actual: &'static str,
    },
    /// A layer blob that cannot be decompressed or read as a tar to its end.
    #[error("cannot read it as a layer: {source}")]
    Measure {
        #[source]
        source: io::Error,
    },
    #[error("invalid {algorithm} compression level {level}: expected {range}")]
    Level {
        algorithm: &'static str,
        level: i64,
        range: &'static str,
    },
    #[error("cannot create a temporary directory in {path}: {source}")]
    TempDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Writing the layer (or a temporary file) failed.
    #[error("cannot write layer: {source}")]
    Write {
        #[source]
        source: io::Error,
    },
    /// [`read_layer_entries`](crate::read_layer_entries) could not read the layer.
    #[error("cannot read layer{}: {source}", at_entry(.entry))]
    Read {
        entry: Option<String>,
        #[source]
        source: io::Error,
    },
    /// A `.deb` whose bytes do not hash to the digest the recipe pinned.
    #[error("sources[{index}]: {path} has digest {actual}, but the recipe expects {expected}")]
    DebDigest {
        index: usize,
        path: PathBuf,
        expected: Digest,
        actual: Digest,
    },
    /// A `.deb` that is not a valid Debian binary package.
    #[error("sources[{index}]: {path} is not a valid Debian package: {reason}")]
    BadDeb {
        index: usize,
        path: PathBuf,
        reason: String,
    },
    /// A run step's change that cannot be put in a layer.
    #[error("sources[{index}]: /{path}: {reason}")]
    BadChange {
        index: usize,
        path: String,
        reason: String,
    },
    /// [`apply_layer`](crate::apply_layer) or
    /// [`read_file_from_layers`](crate::read_file_from_layers) could not
    /// read a layer, or refused one of its entries.
    #[error("cannot apply layer {layer}{}: {reason}", at_entry(.entry))]
    Apply {
        layer: PathBuf,
        entry: Option<String>,
        reason: String,
    },
    /// Writing into the directory a layer is applied to failed.
    #[error("cannot apply layer {layer}: {path}: {source}")]
    ApplyIo {
        layer: PathBuf,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// `text` with control characters (newlines too) escaped, for errors that
/// show names from archives or file systems: a crafted name must not fake
/// log lines or drive a terminal.
pub(crate) fn esc(text: impl std::fmt::Display) -> String {
    let text = text.to_string();
    if !text.chars().any(char::is_control) {
        return text;
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn at_entry(entry: &Option<String>) -> String {
    match entry {
        Some(e) => format!(" at entry {e:?}"),
        None => String::new(),
    }
}

impl LayerError {
    /// The index of the [`Source`](crate::Source) this error came from, if any.
    pub fn source_index(&self) -> Option<usize> {
        match self {
            LayerError::Io { index, .. }
            | LayerError::Changed { index, .. }
            | LayerError::UnsupportedFile { index, .. }
            | LayerError::NotUtf8 { index, .. }
            | LayerError::BadImagePath { index, .. }
            | LayerError::NotADirectory { index, .. }
            | LayerError::BelowLink { index, .. }
            | LayerError::Exclude { index, .. }
            | LayerError::Archive { index, .. }
            | LayerError::ArchiveEntry { index, .. }
            | LayerError::DebDigest { index, .. }
            | LayerError::BadDeb { index, .. }
            | LayerError::BadChange { index, .. } => Some(*index),
            _ => None,
        }
    }
}
