//! Applying layers to a directory, as an OCI runtime's image unpacker would
//! (the root filesystem of a `run` step), and reading one file out of a
//! stack of layers.
//!
//! Layers may come from a base image, so they are read as untrusted: names
//! are normalised and may not leave the root, parent directories are
//! resolved inside the root (a symlink is followed as if the root were `/`,
//! never out of it), and the last component of an entry is never followed:
//! whatever is there is removed and recreated.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bake_digest::Digest;
use filetime::FileTime;
use tar::EntryType;

use crate::LayerError;
use crate::limits::{ReadLimits, TarGuard, after_entry};
use crate::paths::{join, normalise_archive, normalise_dest};

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
/// How many symlinks one path may traverse, as Linux's `MAXSYMLINKS`.
const MAX_HOPS: usize = 40;

/// Applies the layer at `layer` (a plain, gzip, zstd or xz tar) to the
/// directory `root`, following the OCI image spec's rules for applying
/// changesets:
///
/// - whiteouts (`.wh.NAME`) and opaque markers (`.wh..wh..opq`) are applied
///   first, to what the layers below left, whatever their position in the
///   archive; they are never created themselves;
/// - a directory over a directory takes the entry's metadata and keeps its
///   children; anything else replaces what was at the path;
/// - owners (numeric), permission bits including setuid/setgid/sticky, and
///   mtimes are set as the entry says; of the extended attributes, only a
///   regular file's capabilities (`SCHILY.xattr.security.capability`, set
///   with `lsetxattr`, which needs `CAP_SETFCAP`), so a `run` step sees
///   them and what it leaves untouched keeps them; a malformed value is
///   an error naming the entry;
/// - device nodes and fifos are skipped (the sandbox's `/dev` is the
///   runtime's), hardlinks must name an entry that exists by then.
///
/// The layer is read twice (whiteouts, then entries), each time within
/// [`ReadLimits::DEFAULT`]. Setting owners other than the caller's needs
/// root.
pub fn apply_layer(layer: &Path, root: &Path) -> Result<(), LayerError> {
    apply_layer_with_limits(layer, root, &ReadLimits::DEFAULT)
}

/// [`apply_layer`] within `limits`: a layer whose uncompressed tar is
/// larger, or with a larger PAX or GNU long-name record, is an error (what
/// was applied before it stays in `root`).
pub fn apply_layer_with_limits(layer: &Path, root: &Path, limits: &ReadLimits) -> Result<(), LayerError> {
    apply(layer, root, limits, None).map(|_| ())
}

/// What [`apply_plain_layer`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlainApplied {
    /// The bytes were the diffID's and the layer is applied.
    Applied,
    /// The bytes hash to `actual`, not to the diffID: nothing was changed.
    Mismatch { actual: Digest },
}

/// [`apply_layer_with_limits`] for an uncompressed layer tar that should be
/// the one whose diffID is `diff_id` (a copy kept by a cache): its bytes
/// are hashed by the first reading pass, and only when they are the
/// diffID's does anything change in `root`. A compressed file is an error.
pub fn apply_plain_layer(
    layer: &Path,
    root: &Path,
    limits: &ReadLimits,
    diff_id: &Digest,
) -> Result<PlainApplied, LayerError> {
    match apply(layer, root, limits, Some(diff_id))? {
        None => Ok(PlainApplied::Applied),
        Some(actual) => Ok(PlainApplied::Mismatch { actual }),
    }
}

/// Writes the uncompressed tar stream of the layer at `layer` (plain, gzip,
/// zstd or xz) to `out`, at most `limits.max_tar_bytes` of it; returns how
/// many bytes that was. The stream is not parsed (whoever reads it as a
/// tar applies the limits on entries).
pub fn decompress_layer(
    layer: &Path,
    limits: &ReadLimits,
    out: &mut dyn io::Write,
) -> Result<u64, LayerError> {
    let ctx = Ctx {
        layer,
        root: Path::new("/"),
        limits: *limits,
    };
    let file = std::fs::File::open(layer).map_err(|e| ctx.read_err("", e))?;
    let reader = crate::compress::decompress(io::BufReader::new(file)).map_err(|e| ctx.read_err("", e))?;
    let mut bounded = reader.take(limits.max_tar_bytes.saturating_add(1));
    let n = io::copy(&mut bounded, out).map_err(|e| ctx.read_err("", e))?;
    if n > limits.max_tar_bytes {
        let too_big = io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the uncompressed layer is more than the limit of {} bytes",
                limits.max_tar_bytes
            ),
        );
        return Err(ctx.read_err("", too_big));
    }
    Ok(n)
}

/// Applies the layer; with `expect`, the layer must be a plain tar whose
/// bytes hash to it, checked before anything changes: a mismatch returns
/// the digest found.
fn apply(
    layer: &Path,
    root: &Path,
    limits: &ReadLimits,
    expect: Option<&Digest>,
) -> Result<Option<Digest>, LayerError> {
    let ctx = Ctx {
        layer,
        root,
        limits: *limits,
    };

    // Pass 1: deletions (and, with `expect`, the digest).
    let mut deletions: Vec<Deletion> = Vec::new();
    let mut hasher = bake_digest::Hasher::new();
    let tap = expect.map(|_| (crate::LayerCompression::None, &mut hasher));
    ctx.for_each_entry_tapped(tap, |name, rel, item| {
        let (parent, base) = split(&rel);
        if base == OPAQUE {
            deletions.push(Deletion::Children(parent.to_owned()));
        } else if base.starts_with(".wh..wh.") {
            // Other AUFS metadata (`.wh..wh.plnk`): meaningless here.
        } else if let Some(target) = base.strip_prefix(WHITEOUT) {
            if target.is_empty() || target == "." || target == ".." {
                return Err(ctx.refuse(name, "a whiteout must name an entry"));
            }
            deletions.push(Deletion::Entry(join(parent, target)));
        }
        let _ = item;
        Ok(())
    })?;
    if let Some(expected) = expect {
        let actual = hasher.finish().0;
        if actual != *expected {
            return Ok(Some(actual));
        }
    }
    for deletion in &deletions {
        ctx.delete(deletion)?;
    }

    // Pass 2: everything else.
    let mut dir_times: Vec<(PathBuf, u64)> = Vec::new();
    let mut parents = Parents::default();
    ctx.for_each_entry(|name, rel, item| {
        // Whatever this entry is, a parent resolved through its path is
        // resolved again.
        parents.invalidate(&rel);
        let (parent, base) = split(&rel);
        if base.starts_with(WHITEOUT) {
            return Ok(());
        }
        let kind = item.header().entry_type();
        let mode = item.header().mode().map_err(|e| ctx.read_err(name, e))? & 0o7777;
        let (uid, gid) = crate::layer::entry_owner(item).map_err(|e| ctx.read_err(name, e))?;
        let mtime = crate::layer::entry_mtime(item).map_err(|e| ctx.read_err(name, e))?;
        if rel.is_empty() {
            return match kind {
                EntryType::Directory => Ok(()),
                _ => Err(ctx.refuse(name, "only a directory can be at /")),
            };
        }
        let owner = |path: &Path| -> Result<(), LayerError> {
            let uid = u32::try_from(uid).map_err(|_| ctx.refuse(name, "uid out of range"))?;
            let gid = u32::try_from(gid).map_err(|_| ctx.refuse(name, "gid out of range"))?;
            std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(ctx.io(path))
        };
        match kind {
            EntryType::Directory => {
                let host = parents.get(&ctx, parent, name)?.join(base);
                let is_dir = std::fs::symlink_metadata(&host).is_ok_and(|m| m.is_dir());
                if !is_dir {
                    remove_any(&host).map_err(ctx.io(&host))?;
                    std::fs::create_dir(&host).map_err(ctx.io(&host))?;
                }
                owner(&host)?;
                std::fs::set_permissions(&host, std::fs::Permissions::from_mode(mode))
                    .map_err(ctx.io(&host))?;
                dir_times.push((host, mtime));
            }
            EntryType::Regular | EntryType::Continuous => {
                let xattrs = crate::layer::entry_xattrs(item).map_err(|e| ctx.read_err(name, e))?;
                let caps = xattrs
                    .into_iter()
                    .find_map(|(key, value)| value.filter(|_| key == bake_caps::XATTR))
                    .map(|value| bake_caps::FileCaps::from_xattr(&value))
                    .transpose()
                    .map_err(|e| ctx.refuse(name, &e.to_string()))?;
                let host = parents.get(&ctx, parent, name)?.join(base);
                let create = || {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&host)
                };
                // Most paths are new: try first, remove what is there only
                // when something is (create_new never follows a symlink).
                let mut out = match create() {
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        remove_any(&host).map_err(ctx.io(&host))?;
                        create()
                    }
                    other => other,
                }
                .map_err(ctx.io(&host))?;
                let size = item.size();
                let copied = io::copy(item, &mut out).map_err(|e| ctx.read_err(name, e))?;
                if copied != size {
                    let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "the layer is truncated");
                    return Err(ctx.read_err(name, eof));
                }
                drop(out);
                owner(&host)?;
                std::fs::set_permissions(&host, std::fs::Permissions::from_mode(mode))
                    .map_err(ctx.io(&host))?;
                // After the owner: a chown clears a file's capabilities.
                if let Some(caps) = caps {
                    crate::xattrs::set_caps(&host, &caps).map_err(ctx.io(&host))?;
                }
                set_mtime(&host, mtime).map_err(ctx.io(&host))?;
            }
            EntryType::Symlink => {
                let target = item
                    .link_name_bytes()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| ctx.refuse(name, "the symlink has no target"))?
                    .into_owned();
                let host = parents.get(&ctx, parent, name)?.join(base);
                remove_any(&host).map_err(ctx.io(&host))?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &host).map_err(ctx.io(&host))?;
                owner(&host)?;
                set_mtime(&host, mtime).map_err(ctx.io(&host))?;
            }
            EntryType::Link => {
                let raw = item
                    .link_name_bytes()
                    .ok_or_else(|| ctx.refuse(name, "the hardlink has no target"))?
                    .into_owned();
                let raw = String::from_utf8(raw)
                    .map_err(|_| ctx.refuse(name, "the hardlink target is not UTF-8"))?;
                let target_rel = normalise_archive(&raw).map_err(|r| ctx.refuse(name, r))?;
                let (tparent, tbase) = split(&target_rel);
                let target = match resolve_dir(root, tparent, false).map_err(ctx.io(root))? {
                    Some(dir) if !tbase.is_empty() => dir.join(tbase),
                    _ => return Err(ctx.refuse(name, &format!("hardlink to {raw:?}, which does not exist"))),
                };
                match std::fs::symlink_metadata(&target) {
                    Ok(m) if !m.is_dir() => {}
                    _ => return Err(ctx.refuse(name, &format!("hardlink to {raw:?}, which is not a file"))),
                }
                let host = parents.get(&ctx, parent, name)?.join(base);
                if host != target {
                    remove_any(&host).map_err(ctx.io(&host))?;
                    std::fs::hard_link(&target, &host).map_err(ctx.io(&host))?;
                }
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {}
            other => {
                return Err(ctx.refuse(
                    name,
                    &format!("unsupported entry type {:?}", char::from(other.as_byte())),
                ));
            }
        }
        Ok(())
    })?;
    // Last, because creating children changed the directories' mtimes. A
    // directory a later entry replaced (by a symlink, say, maybe leading
    // out of the root) or moved under such a symlink is skipped: its path
    // is no longer a chain of real directories inside the root.
    for (dir, mtime) in dir_times.iter().rev() {
        if still_a_dir(root, dir) {
            set_mtime(dir, *mtime).map_err(ctx.io(dir))?;
        }
    }
    Ok(None)
}

/// The content of the regular file at the absolute image path `path` in the
/// filesystem that `layers` (bottom first; plain, gzip, zstd or xz tars)
/// make, honouring whiteouts and opaque directories; `None` if there is no
/// regular file there (absent, deleted, or another kind of entry).
/// A file larger than `limit` bytes is an error; each layer is read within
/// `limits`.
pub fn read_file_from_layers(
    layers: &[PathBuf],
    path: &str,
    limit: u64,
    limits: &ReadLimits,
) -> Result<Option<Vec<u8>>, LayerError> {
    let mut state: Option<Vec<u8>> = None;
    for layer in layers {
        match file_in_layer(layer, path, limit, limits)? {
            FileEffect::Untouched => {}
            FileEffect::Removed => state = None,
            FileEffect::File(bytes) => state = Some(bytes),
        }
    }
    Ok(state)
}

/// What one layer does to the file at an image path, applied on top of
/// whatever is below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileEffect {
    /// The layer leaves the path alone: what is below shows through.
    Untouched,
    /// The layer deletes the path (a whiteout of it or of an ancestor, an
    /// opaque ancestor), or puts something other than a regular file at it
    /// or at an ancestor.
    Removed,
    /// The layer puts a regular file with this content at the path.
    File(Vec<u8>),
}

/// What the layer tar at `layer` (plain, gzip, zstd or xz) does to the
/// regular file at the absolute image path `path`. Reading the layers of
/// an image one by one and folding their effects gives
/// [`read_file_from_layers`]; keeping each layer's effect lets a caller
/// skip re-reading layers it has seen. A file larger than `limit` bytes is
/// an error; the layer is read within `limits`.
pub fn file_in_layer(
    layer: &Path,
    path: &str,
    limit: u64,
    limits: &ReadLimits,
) -> Result<FileEffect, LayerError> {
    let want = normalise_dest(path).map_err(|reason| LayerError::Apply {
        layer: PathBuf::from(path),
        entry: None,
        reason: reason.to_owned(),
    })?;
    let below = |dir: &str| dir.is_empty() || want.starts_with(&format!("{dir}/"));
    let ctx = Ctx {
        layer,
        root: Path::new("/"),
        limits: *limits,
    };
    let mut deleted = false;
    // Some(content) when this layer has an entry at `want` (or replaces
    // an ancestor with a non-directory).
    let mut found: Option<Option<Vec<u8>>> = None;
    ctx.for_each_entry(|name, rel, item| {
        let (parent, base) = split(&rel);
        if base == OPAQUE {
            deleted |= below(parent);
        } else if let Some(target) = base.strip_prefix(WHITEOUT) {
            let target = join(parent, target);
            deleted |= target == want || below(&target);
        } else if rel == want {
            let kind = item.header().entry_type();
            if matches!(kind, EntryType::Regular | EntryType::Continuous) {
                if item.size() > limit {
                    return Err(ctx.refuse(name, &format!("larger than {limit} bytes")));
                }
                let mut bytes = Vec::new();
                item.read_to_end(&mut bytes).map_err(|e| ctx.read_err(name, e))?;
                found = Some(Some(bytes));
            } else {
                found = Some(None);
            }
        } else if !rel.is_empty() && below(&rel) && item.header().entry_type() != EntryType::Directory {
            found = Some(None);
        }
        Ok(())
    })?;
    Ok(match found {
        Some(Some(bytes)) => FileEffect::File(bytes),
        Some(None) => FileEffect::Removed,
        None if deleted => FileEffect::Removed,
        None => FileEffect::Untouched,
    })
}

/// The symlinks that the layers `layers` (compressed or plain tars, lowest
/// first) leave in the image they make: normalised path → target, as OCI
/// extraction would leave them (a later entry at a path replaces a link
/// there, a non-directory replaces a whole subtree, whiteouts and opaque
/// whiteouts delete from the layers below). This is what
/// [`LayerOptions::below_links`](crate::LayerOptions::below_links) takes.
/// Each layer is read once, within `limits`; nothing is written.
pub fn links_in_layers(
    layers: &[&Path],
    limits: &ReadLimits,
) -> Result<std::collections::BTreeMap<String, String>, LayerError> {
    Ok(links_and_measure(layers, None, limits)?.0)
}

/// The symlinks a stack of layers leaves (path → target), and each
/// layer's diffID.
pub type LinksAndDiffIds = (
    std::collections::BTreeMap<String, String>,
    Vec<bake_digest::Digest>,
);

/// [`links_in_layers`], and in the same one pass over each layer what
/// [`measure_layer`](crate::measure_layer) says of it: its diffID, its
/// bytes checked against the compression `declared[i]` its media type
/// names. A base's layers are read once for both on a cold cache.
pub fn links_and_diff_ids(
    layers: &[&Path],
    declared: &[crate::LayerCompression],
    limits: &ReadLimits,
) -> Result<LinksAndDiffIds, LayerError> {
    if declared.len() != layers.len() {
        return Err(LayerError::Measure {
            source: io::Error::new(io::ErrorKind::InvalidInput, "one declared compression per layer"),
        });
    }
    links_and_measure(layers, Some(declared), limits)
}

fn links_and_measure(
    layers: &[&Path],
    declared: Option<&[crate::LayerCompression]>,
    limits: &ReadLimits,
) -> Result<LinksAndDiffIds, LayerError> {
    let mut diff_ids = Vec::new();
    let mut links: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    let remove_tree = |links: &mut std::collections::BTreeMap<String, String>, path: &str| {
        if path.is_empty() {
            links.clear();
            return;
        }
        links.remove(path);
        let prefix = format!("{path}/");
        let below: Vec<String> = links
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in below {
            links.remove(&k);
        }
    };
    for (i, layer) in layers.iter().enumerate() {
        let ctx = Ctx {
            layer,
            root: Path::new("/"),
            limits: *limits,
        };
        // Deletions apply to the layers below only, whatever their place in
        // the archive; this layer's own entries are applied after them.
        let mut deletions: Vec<Deletion> = Vec::new();
        let mut entries: Vec<(String, Option<String>, bool)> = Vec::new();
        let mut hasher = bake_digest::Hasher::new();
        let tap = declared.map(|d| (d[i], &mut hasher));
        ctx.for_each_entry_tapped(tap, |name, rel, item| {
            let (parent, base) = split(&rel);
            if base == OPAQUE {
                deletions.push(Deletion::Children(parent.to_owned()));
            } else if let Some(target) = base.strip_prefix(WHITEOUT) {
                if target.is_empty() || target == "." || target == ".." {
                    return Err(ctx.refuse(name, "a whiteout must name an entry"));
                }
                deletions.push(Deletion::Entry(join(parent, target)));
            } else if !rel.is_empty() {
                let header = item.header();
                let kind = header.entry_type();
                let target = match kind {
                    EntryType::Symlink => item
                        .link_name_bytes()
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .filter(|t| !t.is_empty()),
                    _ => None,
                };
                entries.push((rel, target, kind == EntryType::Directory));
            }
            Ok(())
        })?;
        for deletion in deletions {
            match deletion {
                Deletion::Entry(path) => remove_tree(&mut links, &path),
                Deletion::Children(dir) => {
                    let keep = links.remove(&dir);
                    remove_tree(&mut links, &dir);
                    if let Some(target) = keep {
                        links.insert(dir, target);
                    }
                }
            }
        }
        for (path, target, is_dir) in entries {
            if is_dir {
                // A directory replaces a link at its path, not what is below.
                links.remove(&path);
            } else {
                remove_tree(&mut links, &path);
            }
            if let Some(target) = target {
                links.insert(path, target);
            }
        }
        if declared.is_some() {
            diff_ids.push(hasher.finish().0);
        }
    }
    Ok((links, diff_ids))
}

/// The last parent directory pass 2 resolved, kept while the entries that
/// follow are in it (a layer lists a directory's files together): one
/// `lstat` per path component saved per entry. Kept only when resolving it
/// followed no symlink, so it depends on nothing but the entries at its own
/// path and the paths above it, and forgotten when an entry is at one of
/// those.
#[derive(Default)]
struct Parents {
    last: Option<(String, PathBuf)>,
}

impl Parents {
    fn get(&mut self, ctx: &Ctx<'_>, parent: &str, entry: &str) -> Result<PathBuf, LayerError> {
        if let Some((_, host)) = self.last.as_ref().filter(|(rel, _)| rel == parent) {
            return Ok(host.clone());
        }
        let host = ctx.parent(parent, entry)?;
        let mut literal = ctx.root.to_path_buf();
        literal.extend(parent.split('/').filter(|c| !c.is_empty()));
        self.last = (host == literal).then(|| (parent.to_owned(), host.clone()));
        Ok(host)
    }

    /// Forgets the kept parent if `rel` is it or one of the paths above it.
    fn invalidate(&mut self, rel: &str) {
        let above = |kept: &str| {
            kept == rel || rel.is_empty() || kept.strip_prefix(rel).is_some_and(|rest| rest.starts_with('/'))
        };
        if self.last.as_ref().is_some_and(|(kept, _)| above(kept)) {
            self.last = None;
        }
    }
}

enum Deletion {
    /// `.wh.NAME`: this path.
    Entry(String),
    /// `.wh..wh..opq`: every child of this directory.
    Children(String),
}

struct Ctx<'p> {
    layer: &'p Path,
    root: &'p Path,
    limits: ReadLimits,
}

impl Ctx<'_> {
    fn refuse(&self, entry: &str, reason: &str) -> LayerError {
        LayerError::Apply {
            layer: self.layer.to_owned(),
            entry: Some(entry.to_owned()),
            reason: reason.to_owned(),
        }
    }

    fn read_err(&self, entry: &str, e: io::Error) -> LayerError {
        LayerError::Apply {
            layer: self.layer.to_owned(),
            entry: (!entry.is_empty()).then(|| entry.to_owned()),
            reason: crate::limits::scrub(e).to_string(),
        }
    }

    fn io<'a>(&'a self, path: &'a Path) -> impl FnOnce(io::Error) -> LayerError + 'a {
        move |source| LayerError::ApplyIo {
            layer: self.layer.to_owned(),
            path: path.to_owned(),
            source,
        }
    }

    /// The host directory for the image directory `parent`, created if missing.
    fn parent(&self, parent: &str, entry: &str) -> Result<PathBuf, LayerError> {
        match resolve_dir(self.root, parent, true) {
            Ok(Some(dir)) => Ok(dir),
            Ok(None) => Err(self.refuse(entry, "its parent directory cannot be created")),
            Err(e) => Err(self.refuse(entry, &format!("parent directory: {e}"))),
        }
    }

    fn delete(&self, deletion: &Deletion) -> Result<(), LayerError> {
        let (dir, only) = match deletion {
            Deletion::Entry(path) => {
                let (parent, base) = split(path);
                (parent, Some(base))
            }
            Deletion::Children(dir) => (dir.as_str(), None),
        };
        let Some(host_dir) = resolve_dir(self.root, dir, false).map_err(self.io(self.root))? else {
            return Ok(());
        };
        match only {
            Some(base) => {
                let host = host_dir.join(base);
                remove_any(&host).map_err(self.io(&host))
            }
            None => {
                let children = match std::fs::read_dir(&host_dir) {
                    Ok(children) => children,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(self.io(&host_dir)(e)),
                };
                for child in children {
                    let child = child.map_err(self.io(&host_dir))?.path();
                    remove_any(&child).map_err(self.io(&child))?;
                }
                Ok(())
            }
        }
    }

    /// Calls `f(raw name, normalised path, entry)` for each entry of the
    /// layer but PAX global headers.
    fn for_each_entry(
        &self,
        f: impl FnMut(&str, String, &mut tar::Entry<'_, TarGuard<Box<dyn Read + '_>>>) -> Result<(), LayerError>,
    ) -> Result<(), LayerError> {
        self.for_each_entry_tapped(None, f)
    }

    /// [`Ctx::for_each_entry`]; with `tap`, the layer's bytes must be
    /// compressed as it says, and every decompressed byte (the whole
    /// stream: the diffID's input) also goes to its hasher.
    fn for_each_entry_tapped(
        &self,
        tap: Option<(crate::LayerCompression, &mut bake_digest::Hasher)>,
        mut f: impl FnMut(
            &str,
            String,
            &mut tar::Entry<'_, TarGuard<Box<dyn Read + '_>>>,
        ) -> Result<(), LayerError>,
    ) -> Result<(), LayerError> {
        let file = std::fs::File::open(self.layer).map_err(|e| self.read_err("", e))?;
        let reader: Box<dyn Read + '_> = match tap {
            None => {
                crate::compress::decompress(io::BufReader::new(file)).map_err(|e| self.read_err("", e))?
            }
            Some((declared, hasher)) => {
                let (format, whole) = crate::compress::sniff_reader(io::BufReader::new(file))
                    .map_err(|e| self.read_err("", e))?;
                crate::identity::check_format(format, declared).map_err(|e| LayerError::Apply {
                    layer: self.layer.to_owned(),
                    entry: None,
                    reason: e.to_string(),
                })?;
                let inner =
                    crate::compress::decompress_format(format, whole).map_err(|e| self.read_err("", e))?;
                Box::new(Tap { inner, hasher })
            }
        };
        let mut archive = tar::Archive::new(TarGuard::new(reader, self.limits));
        let mut last: Option<String> = None;
        for item in archive.entries().map_err(|e| self.read_err("", e))? {
            let mut item = item.map_err(|e| self.read_err("", after_entry(last.as_deref(), e)))?;
            if item.header().entry_type().is_pax_global_extensions() {
                continue;
            }
            let raw = item.path_bytes().into_owned();
            let Ok(name) = String::from_utf8(raw) else {
                let lossy = String::from_utf8_lossy(&item.path_bytes()).into_owned();
                return Err(self.refuse(&lossy, "the name is not valid UTF-8"));
            };
            let rel = normalise_archive(&name).map_err(|r| self.refuse(&name, r))?;
            f(&name, rel, &mut item)?;
            last = Some(name);
        }
        // What follows the end-of-archive blocks: read through, so a corrupt
        // or truncated compressed stream is an error even there.
        io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(|e| self.read_err("", e))?;
        Ok(())
    }
}

/// A reader that also hashes what it hands out.
struct Tap<'h, R> {
    inner: R,
    hasher: &'h mut bake_digest::Hasher,
}

impl<R: Read> Read for Tap<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// `a/b/c` → (`a/b`, `c`); `c` → (``, `c`).
fn split(rel: &str) -> (&str, &str) {
    rel.rsplit_once('/').unwrap_or(("", rel))
}

/// Removes whatever is at `path` (a whole tree for a directory, never
/// following a symlink); nothing there is fine.
fn remove_any(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether every component of `dir` below `root` is a directory (no
/// symlink on the way).
fn still_a_dir(root: &Path, dir: &Path) -> bool {
    let Ok(rel) = dir.strip_prefix(root) else {
        return false;
    };
    let mut host = root.to_path_buf();
    rel.components().all(|c| {
        host.push(c);
        std::fs::symlink_metadata(&host).is_ok_and(|m| m.is_dir())
    })
}

fn set_mtime(path: &Path, mtime: u64) -> io::Result<()> {
    let t = FileTime::from_unix_time(i64::try_from(mtime).unwrap_or(i64::MAX), 0);
    filetime::set_symlink_file_times(path, t, t)
}

/// The host path of the image directory `rel` (normalised, relative) inside
/// `root`, resolving symlinks as if `root` were `/` (a `..` or an absolute
/// target never leaves it). Missing directories are created (0o755) when
/// `create`, else `None` is returned. A component that is neither a
/// directory nor a symlink is an error.
pub(crate) fn resolve_dir(root: &Path, rel: &str, create: bool) -> io::Result<Option<PathBuf>> {
    let mut pending: VecDeque<String> = rel.split('/').map(str::to_owned).collect();
    let mut done: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = pending.pop_front() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        let mut host = root.to_path_buf();
        host.extend(&done);
        host.push(&c);
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.is_dir() => done.push(c),
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(io::Error::other(format!(
                        "too many levels of symlinks at /{}",
                        crate::error::esc(rel)
                    )));
                }
                let target = std::fs::read_link(&host)?;
                let Some(target) = target.to_str() else {
                    return Err(io::Error::other(format!(
                        "the symlink {} has a target that is not UTF-8",
                        crate::error::esc(host.display())
                    )));
                };
                if target.starts_with('/') {
                    done.clear();
                }
                for part in target.split('/').rev() {
                    pending.push_front(part.to_owned());
                }
            }
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "/{} is not a directory",
                    crate::error::esc(done.iter().chain([&c]).cloned().collect::<Vec<_>>().join("/"))
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                std::fs::create_dir(&host)?;
                std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o755))?;
                done.push(c);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    let mut host = root.to_path_buf();
    host.extend(&done);
    Ok(Some(host))
}
