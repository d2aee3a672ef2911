//! Deterministic, normalised tar layers from build-context sources, with
//! pinned compression.
//!
//! An OCI layer is a tar archive of a filesystem change set. Its *diffID* is
//! the sha256 of the uncompressed tar; its *digest* that of the compressed
//! bytes. This crate turns the steps of one recipe layer ([`Source`]s) into
//! that tar, byte for byte the same on every machine, computes the diffID
//! while streaming, compresses, and writes the result to any [`Write`]. The
//! compressed digest is the caller's (its store hashes what it receives).
//!
//! ```
//! use bake_layer::{write_layer, read_layer_entries, Compression, EntryKind, LayerOptions, Owner, Source};
//!
//! let sources = [
//!     Source::Inline { path: "/etc/motd".into(), content: b"hi\n".to_vec(), mode: 0o644, owner: Owner::default(), capabilities: None },
//!     Source::Dir { path: "/var/lib/app".into(), mode: 0o750, owner: Owner { uid: 1000, gid: 1000 } },
//!     Source::Symlink { path: "/usr/bin/app".into(), target: "../local/bin/app".into(), owner: Owner::default() },
//! ];
//! let opts = LayerOptions {
//!     epoch: 1_700_000_000,
//!     compression: Compression::Gzip { level: 6 },
//!     tmp_dir: "/var/tmp".into(), // only `Unpack` sources write there
//!     below_links: Default::default(), // a scratch base: no symlinks below
//! };
//! let (gz, out) = write_layer(&sources, &opts, Vec::new()).unwrap();
//! // Same sources, same bytes: the diffID is a function of the sources.
//! assert_eq!(write_layer(&sources, &opts, Vec::new()).unwrap().0, gz);
//!
//! let entries = read_layer_entries(&gz[..]).unwrap();
//! let names: Vec<_> = entries.iter().map(|e| e.path.as_str()).collect();
//! // Sorted, relative, directories end with "/", implicit parents added.
//! assert_eq!(names, ["etc/", "etc/motd", "usr/", "usr/bin/", "usr/bin/app", "var/", "var/lib/", "var/lib/app/"]);
//! assert_eq!(out.entries, 8);
//! assert!(entries.iter().all(|e| e.mtime == 1_700_000_000));
//! assert_eq!((entries[7].mode, entries[7].uid), (0o750, 1000));
//! assert_eq!(entries[4].kind, EntryKind::Symlink);
//! ```
//!
//! # The entry model
//!
//! [`write_layer`] first collects an *entry map*, keyed by normalised image
//! path (`usr/bin/x`: relative, no `.`/`..`/empty components). Sources are
//! applied in order and a later entry replaces an earlier one at the same
//! path, with the semantics of a filesystem:
//!
//! - a directory over a directory keeps the children and takes the new
//!   metadata; the destination directory of a tree [`Source::Copy`] merges
//!   with a directory already there and keeps *its* metadata (so a `dir` step
//!   that sets the mode and owner of `/app`, followed by a copy into `/app`,
//!   keeps them);
//! - a file or symlink over a directory replaces the whole subtree;
//! - an entry below a file or symlink of the same layer is an error
//!   ([`LayerError::NotADirectory`]): the layer never relies on how an
//!   extractor follows symlinks.
//!
//! Parent directories that no source names are added as `0o755`, uid/gid 0.
//! The root directory itself is never an entry.
//!
//! # Normalisation (the promise)
//!
//! - Entries are sorted by their tar name in byte order; names are relative
//!   (`usr/bin/x`, never `./` or `/`); directories end with `/`.
//! - mtime is the epoch for everything from `Copy`, `Inline`, `Dir` and
//!   `Symlink` (host mtimes never leak) unless a `Copy` asks for host
//!   mtimes ([`CopyMtime`]); `Unpack` entries keep
//!   `min(entry mtime, epoch)`.
//! - uid/gid come from the step (default 0); uname/gname are empty; there is
//!   no atime/ctime; device numbers are 0; the only extended attribute is a
//!   regular file's capabilities (see [below](#extended-attributes)).
//! - Modes of `Copy`: without `mode`, regular files are `0o755` if any
//!   execute bit is set on the host, else `0o644` (the umask never leaks);
//!   directories are `0o755`, symlinks `0o777`. `mode` applies to regular
//!   files only. Setuid/setgid/sticky bits appear only when given explicitly.
//!   `Unpack` keeps the archive's permission bits (`& 0o7777`).
//! - A tree copy is walked with readdir sorted by bytes; symlinks are copied
//!   as symlinks (never followed), the target stored as it is. Sockets, fifos
//!   and devices are errors naming the path. `exclude` globs match paths
//!   relative to the copied directory, with `*` not crossing `/` (`*.tmp` is
//!   top level only, `**/*.tmp` is any depth); an excluded directory drops
//!   its contents, and `target/**` drops the contents but keeps `target/`.
//! - Tar format: ustar headers; a PAX extended header (named
//!   `././@PaxHeader`, records in the fixed order path, linkpath, size, uid,
//!   gid, mtime, `SCHILY.xattr.security.capability`) only for a field that
//!   does not fit: a name that cannot be split into ustar prefix (155) +
//!   name (100), a link target over 100 bytes, a size or mtime of 8 GiB /
//!   2^33 or more, a uid/gid above 0o7777777; or for a regular file's
//!   capabilities. Names are UTF-8 bytes (non-UTF-8 host names are refused).
//!   The archive ends with two zero blocks.
//!
//! # Extended attributes
//!
//! A layer keeps one extended attribute, `security.capability`, on regular
//! files (a hardlink shares its target's): what `setcap cap_net_raw+ep`
//! writes, without which an image's `ping` or port-80 server breaks at run
//! time. It is written as the PAX record
//! `SCHILY.xattr.security.capability` holding the 20-byte
//! `VFS_CAP_REVISION_2` value of a [`FileCaps`] (from the `bake-caps`
//! crate), so every spelling and every source of the same capabilities
//! gives the same bytes. It comes from:
//!
//! - `capabilities` on [`Source::Copy`] (every copied regular file) and
//!   [`Source::Inline`] — host xattrs are never read;
//! - the PAX records of [`Source::Unpack`] and [`Source::Deb`] archives
//!   (revisions 1, 2 and 3 read, revision 2 written; a malformed value is an
//!   error naming the archive and entry);
//! - the run root of [`Source::Changes`] (`lgetxattr`).
//!
//! [`apply_layer`] sets it on disk (`lsetxattr`, after the owner: a chown
//! clears it) so a `run` step sees it. Every other extended attribute met
//! in an archive or a run root (`user.*`, ACLs, a capability on a directory
//! or symlink; not the host's `security.selinux` label of a run root) is
//! dropped and listed in [`LayerOutput::dropped_xattrs`], one
//! [`DroppedXattrs`] per path, for the caller to warn about.
//!
//! # Hardlinks
//!
//! Within one `Copy` source, regular files that share (device, inode) form a
//! group; within one `Unpack` source, a hardlink entry joins the group of the
//! regular file it names, which must be earlier in the same archive (the link
//! takes that file's metadata; its own header's is ignored). When the
//! tar is written, the smallest path of a group that is still in the map is a
//! regular entry and the others are hardlinks to it, so the choice depends
//! only on paths, and a later source that replaces a member just leaves it
//! out of the group.
//!
//! # Unpack
//!
//! The archive (plain, gzip, zstd or xz, detected by magic bytes) is streamed:
//! entry names are made relative to `to`, a `..` that would leave it is an
//! error, regular file contents go to temporary files below a directory
//! created in [`LayerOptions::tmp_dir`] (removed when [`write_layer`]
//! returns), device nodes and fifos are refused. Setuid, setgid and sticky
//! bits are kept as the archive has them: they are the image's content (a
//! `su` or `ping` needs them), and an unpacked file only ever becomes a tar
//! entry or a file in a private (0700) scratch root, never a host binary.
//!
//! Every archive read by this crate (unpack, `.deb` data and control,
//! [`read_layer_entries`], [`apply_layer`]) goes through [`ReadLimits`]:
//! at most 64 GiB of uncompressed tar (a decompression bomb stops there)
//! and 1 MiB per PAX or GNU long-name record, checked before the `tar`
//! crate allocates for it; [`write_layer_with_limits`] and friends take
//! other limits.
//!
//! # Debian packages
//!
//! A [`Source::Deb`] is read as a `.deb` is specified (`deb(5)`): an `ar`
//! archive whose first member is `debian-binary` (format 2.x), then
//! `control.tar[.gz|.xz|.zst]`, then `data.tar[.gz|.xz|.zst]` (members whose
//! names start with `_` are skipped). The whole file must hash to the
//! pinned sha256 before anything is read, and it is hashed again while it is
//! parsed, so a file swapped in between fails too. Every header, name and
//! size is checked: the file comes from a stranger.
//!
//! The data archive's entries are unpacked at `/` exactly like
//! [`Source::Unpack`] (owners and modes as packaged, mtimes clamped to the
//! epoch, no `..` escapes, no device nodes). Maintainer scripts are never
//! run. dpkg's database is written so that `dpkg -l` and `dpkg -L` work:
//!
//! - `/var/lib/dpkg/status`: the paragraphs of the status file below
//!   ([`Source::DpkgBelow`], if given) plus one per package of this layer
//!   (its `control` paragraph with `Status: install ok installed` after
//!   `Package`, and `Conffiles` when it has any), sorted by package name
//!   then architecture; a package of this layer replaces a paragraph of the
//!   same name and architecture;
//! - `/var/lib/dpkg/info/<package>.list` (the package's paths, in archive
//!   order, as dpkg writes them) and `<package>.md5sums` when the package
//!   has them (`<package>:<arch>.*` for `Multi-Arch: same` packages).
//!
//! Dependencies are not resolved: a package is recorded as installed
//! whether or not what it depends on is.
//!
//! # Run-step changes
//!
//! [`Source::Changes`] turns the [`Change`]s a `run` step made to a root
//! filesystem into entries: regular files, directories and symlinks with
//! their mode (`& 0o7777`), uid and gid as found, mtime the epoch, regular
//! files' capabilities as found; regular
//! files of the source that share an inode become hardlinks; sockets are
//! skipped; fifos, devices and names starting with `.wh.` are errors.
//! [`apply_layer`] is the other direction: it applies any layer to a
//! directory the way an OCI runtime would, whiteouts first.
//!
//! # Compression, and why it is pinned
//!
//! The compressed digest is what manifests name, so the compressed *bytes*
//! must be reproducible too, and compression is the slow part of a build, so
//! it runs on all cores without letting the core count reach the bytes. The
//! tar stream is cut into fixed 1 MiB chunks by offset (not by write size),
//! compressed on a small pool of worker threads, and written in order:
//!
//! - gzip is flate2 with the zlib-rs backend, one member with a fixed header
//!   (no file name, mtime 0, OS byte 255) and a fixed level. Each chunk is raw
//!   deflate from a reset compressor primed with the previous chunk's last
//!   32 KiB, ending with a sync flush (the last chunk with the final block),
//!   so the chunks concatenate into one deflate stream, as pigz does; the
//!   trailer holds the chunks' CRC-32s combined and the size.
//! - zstd is libzstd (vendored by the `zstd` crate, pinned exactly): one
//!   single-threaded frame per chunk, checksum and content size on;
//!   concatenated frames are one zstd stream.
//!
//! A chunk's bytes depend only on the chunk, the 32 KiB before it and whether
//! it is the last, so one thread or eight give the same output. Memory stays
//! flat: at most two chunks per worker are in flight, buffers are reused.
//! [`Compression::id`] names scheme, level and library (`gzip-6/zlib-rs/
//! chunked-1MiB`); it belongs in cache keys and the output-format version.
//! Golden tests pin the exact diffID and compressed sha256 of a small layer
//! and of one spanning three chunks, so a library upgrade that changes bytes
//! fails loudly.
//!
//! [`copy_inputs`] lists what a [`Source::Copy`] reads from the host (the
//! same walk and excludes as the layer), for callers that key a cache on it.
//!
//! # What this crate does not do
//!
//! It does not read the environment or the clock (the epoch and temp
//! directory are passed in), does not know about recipes, images or blob
//! stores, and does not compute the compressed digest.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod apply;
mod changes;
mod compress;
mod context;
mod deb;
mod error;
mod identity;
mod inputs;
mod layer;
mod limits;
mod paths;
mod read;
mod tarfmt;
mod xattrs;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use bake_digest::{Digest, HashingWriter};

pub use bake_caps::FileCaps;

pub use apply::{
    FileEffect, PlainApplied, apply_layer, apply_layer_with_limits, apply_plain_layer, decompress_layer,
    file_in_layer, links_and_diff_ids, links_in_layers, read_file_from_layers,
};
pub use bake_store::open_input;
pub use compress::{CHUNK as COMPRESSION_CHUNK, compress_tar, compression_name, decoded_prefix_len};
pub use context::Context;
pub use error::LayerError;
pub use identity::{LayerCompression, measure_layer};
pub use inputs::{InputNode, copy_inputs};
pub use layer::unsupported_file;
pub use limits::{ReadLimits, TarGuard, exceeds_tar_limit};
pub use read::{EntryKind, EntrySummary, HeaderFormat, read_layer_entries, read_layer_entries_with_limits};

/// The owner of the entries a step creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// One step of a layer. Image paths (`to`, `path`) are absolute (`/usr/bin`);
/// `.` components and repeated `/` are normalised and a `..` leaving `/` is
/// an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A host file or directory, resolved by [`Context::resolve`]. A file
    /// (or symlink) lands exactly at `to`, and `exclude` does not apply to
    /// it; a directory's contents go below `to`.
    Copy {
        src: PathBuf,
        to: String,
        /// Mode of the copied regular files (`& 0o7777`).
        mode: Option<u32>,
        owner: Owner,
        exclude: Vec<String>,
        /// Which mtime the copied entries get (default: the epoch).
        mtime: CopyMtime,
        /// Capabilities of every copied regular file.,
        capabilities: Option<FileCaps>,
    },
    /// A regular file with the given content.
    Inline {
        path: String,
        content: Vec<u8>,
        mode: u32,
        owner: Owner,
        capabilities: Option<FileCaps>,
    },
    /// A directory (its parents are implicit).
    Dir { path: String, mode: u32, owner: Owner },
    /// A symlink; `target` is stored as written.
    Symlink {
        path: String,
        target: String,
        owner: Owner,
    },
    /// The entries of a tar archive (plain, gzip, zstd or xz) below `to`.
    Unpack { src: PathBuf, to: String },
    /// A Debian binary package, checked against `sha256`: its data archive
    /// is unpacked at `/` like [`Source::Unpack`], and dpkg's database
    /// records it (see [the `deb` section](crate#debian-packages)).
    Deb { src: PathBuf, sha256: Digest },
    /// The content of `/var/lib/dpkg/status` in the layers below this one,
    /// which the [`Source::Deb`]s of this layer add their packages to. Writes
    /// nothing unless the layer has a `Deb` source.
    DpkgBelow { status: Vec<u8> },
    /// Entries taken as they are from the host directory `root` (the root
    /// filesystem a `run` step changed): metadata kept, mtimes set to the
    /// epoch, deletions as whiteouts (see [`Change`]).
    Changes { root: PathBuf, changes: Vec<Change> },
}

/// Which mtime a [`Source::Copy`] gives the files, directories and
/// symlinks it copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CopyMtime {
    /// The epoch: host mtimes never leak (the default).
    #[default]
    Epoch,
    /// The host mtime, clamped to the epoch (never later; before 1970: 0).
    Source,
    /// The host mtime as it is (before 1970: 0). Not reproducible: for
    /// debugging.
    SourceUnclamped,
}

/// One change of a root filesystem, by absolute image path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// An added or modified entry: a regular file, directory or symlink read
    /// from the root with its mode, uid and gid. Its ancestors are written
    /// with their metadata from the root too, so a layer's implicit parents
    /// never change a lower layer's directories.
    Put(String),
    /// An entry of a lower layer that no longer exists: written as the OCI
    /// whiteout `.wh.<name>` in its parent directory.
    Whiteout(String),
}

/// How the layer tar is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    /// Levels 1 to 9.
    Gzip {
        level: u32,
    },
    /// Levels 1 to 19.
    Zstd {
        level: i32,
    },
}

/// Everything besides the sources that the bytes of a layer depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerOptions {
    /// The build epoch (seconds since 1970): every mtime is this, or earlier.
    pub epoch: u64,
    pub compression: Compression,
    /// Where `Unpack` stores extracted file contents while the layer is built.
    pub tmp_dir: PathBuf,
    /// The symlinks the layers below leave (normalised path without a
    /// leading `/` → target; [`links_in_layers`]). An entry whose path goes
    /// through one of them is written where the link leads (`/bin/sh` over
    /// `bin -> usr/bin` becomes `usr/bin/sh`; a directory entry at `bin`
    /// goes to `usr/bin`), as Docker's `COPY` and dpkg do, so the layer
    /// never replaces a lower symlink to a directory with a directory (on a
    /// merged-`/usr` base that would hide `/usr/bin`). Empty: paths as
    /// written. Not applied to `Changes`, which come from the real root.
    pub below_links: BTreeMap<String, String>,
}

/// What [`write_layer`] reports about the layer it wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerOutput {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Bytes of the uncompressed tar.
    pub uncompressed_size: u64,
    /// Number of tar entries (PAX extended headers not counted).
    pub entries: u64,
    /// The entries whose extended attributes were dropped, by path.
    pub dropped_xattrs: Vec<DroppedXattrs>,
}

/// Extended attributes of one entry that the layer does not keep: all but
/// `security.capability`, and that too on anything but a regular file (see
/// [the crate doc](crate#extended-attributes)). Shown as the warning a
/// build prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedXattrs {
    /// The absolute image path (`/usr/bin/x`).
    pub path: String,
    /// The attribute names, sorted.
    pub names: Vec<String>,
}

impl std::fmt::Display for DroppedXattrs {
    /// `"/usr/bin/x": extended attributes "user.a", "user.b" dropped …`:
    /// path and names quoted and escaped (they come from archives and
    /// commands).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.names.iter().map(|n| format!("{n:?}")).collect();
        write!(
            f,
            "{:?}: extended attribute{} {} dropped (only security.capability, on regular files, is kept)",
            self.path,
            if names.len() == 1 { "" } else { "s" },
            names.join(", ")
        )
    }
}

/// Builds the layer made of `sources` and writes it, compressed, to `out`.
///
/// File contents are streamed from disk; memory grows with the number of
/// entries, not their size. Returns `out` and the layer's diffID, size and
/// entry count. On error, `out` may hold a partial layer.
pub fn write_layer<W: Write>(
    sources: &[Source],
    opts: &LayerOptions,
    out: W,
) -> Result<(W, LayerOutput), LayerError> {
    write_layer_with_limits(sources, opts, &ReadLimits::DEFAULT, out)
}

/// [`write_layer`], reading the archives of `Unpack` and `Deb` sources
/// within `limits` (uncompressed bytes per archive, bytes per PAX or GNU
/// long-name record) instead of [`ReadLimits::DEFAULT`].
pub fn write_layer_with_limits<W: Write>(
    sources: &[Source],
    opts: &LayerOptions,
    limits: &ReadLimits,
    out: W,
) -> Result<(W, LayerOutput), LayerError> {
    opts.compression.validate()?;
    let mut layer = layer::Layer::new(opts.epoch, opts.tmp_dir.clone(), *limits);
    layer.below_links = opts.below_links.clone();
    for (index, source) in sources.iter().enumerate() {
        layer.add(index, source)?;
    }
    // `_tmp` keeps Unpack's temp files until the tar is written.
    let (records, _tmp, dropped_xattrs) = layer.finish()?;
    let write_err = |source| LayerError::Write { source };
    let compressor = compress::Compressor::new(out, opts.compression).map_err(write_err)?;
    let mut tar = HashingWriter::new(compressor);
    let entries = layer::write_records(records, &mut tar)?;
    let (compressor, diff_id, uncompressed_size) = tar.finish();
    let out = compressor.finish().map_err(write_err)?;
    Ok((
        out,
        LayerOutput {
            diff_id,
            uncompressed_size,
            entries,
            dropped_xattrs,
        },
    ))
}
