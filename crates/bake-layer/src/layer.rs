//! The entry map: sources in, sorted tar records out.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::Metadata;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use tar::EntryType;

use crate::limits::{ReadLimits, TarGuard, after_entry};
use crate::paths::{ancestors, follow_links, join, normalise_archive, normalise_dest};
use crate::tarfmt::{self, BLOCK, Meta};
use crate::{CopyMtime, FileCaps, LayerError, Owner, Source};

/// Where a regular file's bytes come from when the tar is written.
#[derive(Debug, Clone)]
pub(crate) enum Content<'a> {
    /// A host file (from `Copy`) or a temp file (from `Unpack`), streamed.
    Disk(PathBuf),
    /// Inline bytes from the recipe.
    Bytes(&'a [u8]),
    /// Bytes this crate generated (dpkg's database).
    Owned(Vec<u8>),
}

#[derive(Debug, Clone)]
pub(crate) enum Kind<'a> {
    Dir,
    File {
        content: Content<'a>,
        size: u64,
        /// Files of one hardlink group share an id (and content and metadata).
        group: Option<usize>,
    },
    Symlink {
        target: String,
    },
}

impl Kind<'_> {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Kind::Dir => "directory",
            Kind::File { .. } => "file",
            Kind::Symlink { .. } => "symlink",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Entry<'a> {
    pub(crate) kind: Kind<'a>,
    pub(crate) meta: Meta,
    /// The source this entry came from, for errors.
    pub(crate) index: usize,
}

/// One tar entry ready to write, in final order.
#[derive(Debug)]
pub(crate) struct Record<'a> {
    name: String,
    kind: EntryType,
    meta: Meta,
    link: Option<String>,
    content: Option<(Content<'a>, u64)>,
    index: usize,
}

/// The layer being assembled: normalised image path → entry. Invariants kept
/// by [`Layer::insert`]: no entry lies below a non-directory entry, and the
/// root (`""`) is never stored.
pub(crate) struct Layer<'a> {
    pub(crate) entries: BTreeMap<String, Entry<'a>>,
    pub(crate) next_group: usize,
    pub(crate) epoch: u64,
    tmp_root: PathBuf,
    tmp: Option<tempfile::TempDir>,
    tmp_count: u64,
    /// Bounds on every archive this layer reads.
    pub(crate) limits: ReadLimits,
    /// Packages of `Deb` sources and the status below (see `deb.rs`).
    pub(crate) dpkg: crate::deb::Dpkg,
    /// The symlinks of the layers below (path → target): entry paths are
    /// resolved through them (see [`follow_links`]).
    pub(crate) below_links: BTreeMap<String, String>,
    /// Off while a `Changes` source is added: a snapshot of the real root
    /// already went through the real symlinks.
    follow: bool,
    /// Extended attributes not kept, by normalised path (for warnings).
    pub(crate) dropped: BTreeMap<String, BTreeSet<String>>,
}

pub(crate) fn io_err(index: usize, path: &Path) -> impl FnOnce(io::Error) -> LayerError + '_ {
    move |source| LayerError::Io {
        index,
        path: path.to_owned(),
        source,
    }
}

pub(crate) fn owner_meta(mode: u32, owner: Owner, epoch: u64) -> Meta {
    Meta {
        mode,
        uid: u64::from(owner.uid),
        gid: u64::from(owner.gid),
        mtime: epoch,
        caps: None,
    }
}

impl<'a> Layer<'a> {
    pub(crate) fn new(epoch: u64, tmp_root: PathBuf, limits: ReadLimits) -> Layer<'a> {
        Layer {
            entries: BTreeMap::new(),
            next_group: 0,
            epoch,
            tmp_root,
            tmp: None,
            tmp_count: 0,
            below_links: BTreeMap::new(),
            follow: true,
            dropped: BTreeMap::new(),
            limits,
            dpkg: Default::default(),
        }
    }

    pub(crate) fn add(&mut self, index: usize, source: &'a Source) -> Result<(), LayerError> {
        let dest = |raw: &str| {
            let bad = |reason| LayerError::BadImagePath {
                index,
                path: raw.to_owned(),
                reason,
            };
            let path = normalise_dest(raw).map_err(bad)?;
            if path.split('/').any(|c| c.starts_with(WHITEOUT)) {
                return Err(bad(WHITEOUT_REASON));
            }
            Ok(path)
        };
        match source {
            Source::Copy {
                src,
                to,
                mode,
                owner,
                exclude,
                mtime,
                capabilities,
            } => {
                let to = dest(to)?;
                let walk = Walk {
                    index,
                    mode: mode.map(|m| m & 0o7777),
                    owner: *owner,
                    exclude: globs(index, exclude)?,
                    links: BTreeMap::new(),
                    mtime: *mtime,
                    caps: *capabilities,
                };
                self.add_copy(walk, src, &to)
            }
            Source::Inline {
                path,
                content,
                mode,
                owner,
                capabilities,
            } => {
                let kind = Kind::File {
                    content: Content::Bytes(content),
                    size: content.len() as u64,
                    group: None,
                };
                let meta = Meta {
                    caps: *capabilities,
                    ..owner_meta(mode & 0o7777, *owner, self.epoch)
                };
                self.insert(index, dest(path)?, Entry { kind, meta, index })
            }
            Source::Dir { path, mode, owner } => {
                let meta = owner_meta(mode & 0o7777, *owner, self.epoch);
                self.insert(
                    index,
                    dest(path)?,
                    Entry {
                        kind: Kind::Dir,
                        meta,
                        index,
                    },
                )
            }
            Source::Symlink { path, target, owner } => {
                if target.is_empty() || target.contains('\0') {
                    return Err(LayerError::BadImagePath {
                        index,
                        path: target.clone(),
                        reason: "a symlink target must be non-empty and contain no NUL byte",
                    });
                }
                let kind = Kind::Symlink {
                    target: target.clone(),
                };
                let meta = owner_meta(0o777, *owner, self.epoch);
                self.insert(index, dest(path)?, Entry { kind, meta, index })
            }
            Source::Unpack { src, to } => {
                let to = dest(to)?;
                self.add_unpack(index, src, &to)
            }
            Source::Deb { src, sha256 } => self.add_deb(index, src, sha256),
            Source::DpkgBelow { status } => {
                self.dpkg.below = Some((index, status.clone()));
                Ok(())
            }
            Source::Changes { root, changes } => {
                self.follow = false;
                let added = self.add_changes(index, root, changes);
                self.follow = true;
                added
            }
        }
    }

    /// Puts `entry` at `path`: a later entry replaces an earlier one; a
    /// directory over a directory keeps the children; a non-directory
    /// replaces a whole subtree. Fails when an ancestor is a non-directory.
    pub(crate) fn insert(&mut self, index: usize, path: String, entry: Entry<'a>) -> Result<(), LayerError> {
        let path = self.below(index, path, matches!(entry.kind, Kind::Dir))?;
        // Names were checked for `.wh.` components before; a symlink of the
        // layers below (`x -> .wh.y`) must not make one either. (A `Changes`
        // source, which writes its own whiteouts, follows no links.)
        if self.follow && path.split('/').any(|c| c.starts_with(WHITEOUT)) {
            return Err(LayerError::BadImagePath {
                index,
                path: format!("/{path}"),
                reason: "a symlink of the layers below leads it to a name starting with `.wh.`, which means a deletion in an OCI layer",
            });
        }
        if path.is_empty() {
            return match entry.kind {
                // The root directory is never an entry of a layer.
                Kind::Dir => Ok(()),
                _ => Err(LayerError::BadImagePath {
                    index,
                    path: "/".to_owned(),
                    reason: "only a directory can be at /",
                }),
            };
        }
        for parent in ancestors(&path) {
            if let Some(e) = self.entries.get(parent) {
                if !matches!(e.kind, Kind::Dir) {
                    return Err(LayerError::NotADirectory {
                        index,
                        parent: parent.to_owned(),
                        kind: e.kind.name(),
                        path: path.clone(),
                    });
                }
                // Ancestors of a stored directory are checked when it was stored.
                break;
            }
        }
        if !matches!(entry.kind, Kind::Dir) {
            let prefix = format!("{path}/");
            let below: Vec<String> = self
                .entries
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, _)| k.clone())
                .collect();
            for k in below {
                self.entries.remove(&k);
            }
        }
        self.entries.insert(path, entry);
        Ok(())
    }

    /// `path` resolved through the symlinks of the layers below (unchanged
    /// when there are none, or for a `Changes` source).
    pub(crate) fn below(&self, index: usize, path: String, follow_last: bool) -> Result<String, LayerError> {
        if !self.follow || self.below_links.is_empty() {
            return Ok(path);
        }
        follow_links(&self.below_links, &path, follow_last, |p| {
            self.entries.contains_key(p)
        })
        .map_err(|reason| LayerError::BelowLink {
            index,
            path: path.clone(),
            reason,
        })
    }

    fn add_copy(&mut self, mut walk: Walk, src: &Path, to: &str) -> Result<(), LayerError> {
        let (index, owner) = (walk.index, walk.owner);
        let meta = fs_err::symlink_metadata(src).map_err(io_err(index, src))?;
        if !meta.is_dir() {
            // A single file (or symlink) goes exactly at `to`.
            return self.add_host_node(&mut walk, src, &meta, to.to_owned());
        }
        // The destination directory merges with one already in the layer
        // (keeping its metadata), else is created like the copied ones.
        let exists = matches!(self.entries.get(to), Some(Entry { kind: Kind::Dir, .. }));
        if !exists {
            let dir = Entry {
                kind: Kind::Dir,
                meta: owner_meta(0o755, owner, self.copy_mtime(&walk, &meta)),
                index,
            };
            self.insert(index, to.to_owned(), dir)?;
        }
        self.walk(&mut walk, src, "", to)
    }

    /// Adds the tree below `dir` depth-first, each directory's children in
    /// byte order. The pending directories are an explicit stack, not
    /// recursion: a context thousands of directories deep must not
    /// overflow the thread's stack.
    fn walk(&mut self, w: &mut Walk, dir: &Path, rel: &str, to: &str) -> Result<(), LayerError> {
        let mut stack = vec![(
            dir.to_owned(),
            rel.to_owned(),
            sorted_names(w.index, dir)?.into_iter(),
        )];
        while let Some((dir, rel, names)) = stack.last_mut() {
            let Some(name) = names.next() else {
                stack.pop();
                continue;
            };
            let host = dir.join(&name);
            let Some(name) = name.to_str() else {
                return Err(LayerError::NotUtf8 {
                    index: w.index,
                    path: host,
                    what: "the file name",
                });
            };
            let rel = join(rel, name);
            if w.exclude.is_match(&rel) {
                continue;
            }
            if name.starts_with(WHITEOUT) {
                return Err(LayerError::BadImagePath {
                    index: w.index,
                    path: host.display().to_string(),
                    reason: WHITEOUT_REASON,
                });
            }
            let meta = fs_err::symlink_metadata(&host).map_err(io_err(w.index, &host))?;
            let dest = join(to, &rel);
            if meta.is_dir() {
                let entry = Entry {
                    kind: Kind::Dir,
                    meta: owner_meta(0o755, w.owner, self.copy_mtime(w, &meta)),
                    index: w.index,
                };
                self.insert(w.index, dest, entry)?;
                let children = sorted_names(w.index, &host)?.into_iter();
                stack.push((host, rel, children));
            } else {
                self.add_host_node(w, &host, &meta, dest)?;
            }
        }
        Ok(())
    }

    /// The mtime a copied host node gets (see [`CopyMtime`]).
    fn copy_mtime(&self, w: &Walk, meta: &Metadata) -> u64 {
        let host = u64::try_from(meta.mtime()).unwrap_or(0);
        match w.mtime {
            CopyMtime::Epoch => self.epoch,
            CopyMtime::Source => host.min(self.epoch),
            CopyMtime::SourceUnclamped => host,
        }
    }

    /// A host regular file or symlink (never followed); anything else is refused.
    fn add_host_node(
        &mut self,
        w: &mut Walk,
        host: &Path,
        meta: &Metadata,
        dest: String,
    ) -> Result<(), LayerError> {
        let ft = meta.file_type();
        let index = w.index;
        let entry = if ft.is_file() {
            // Host permission bits never leak: only "is any x bit set".
            let mode = w
                .mode
                .unwrap_or(if meta.mode() & 0o111 != 0 { 0o755 } else { 0o644 });
            let group = if meta.nlink() > 1 {
                let next = &mut self.next_group;
                Some(*w.links.entry((meta.dev(), meta.ino())).or_insert_with(|| {
                    *next += 1;
                    *next
                }))
            } else {
                None
            };
            Entry {
                kind: Kind::File {
                    content: Content::Disk(host.to_owned()),
                    size: meta.len(),
                    group,
                },
                meta: Meta {
                    caps: w.caps,
                    ..owner_meta(mode, w.owner, self.copy_mtime(w, meta))
                },
                index,
            }
        } else if ft.is_symlink() {
            let target = fs_err::read_link(host).map_err(io_err(index, host))?;
            let Some(target) = target.to_str() else {
                return Err(LayerError::NotUtf8 {
                    index,
                    path: host.to_owned(),
                    what: "the symlink target",
                });
            };
            Entry {
                kind: Kind::Symlink {
                    target: target.to_owned(),
                },
                meta: owner_meta(0o777, w.owner, self.copy_mtime(w, meta)),
                index,
            }
        } else {
            return Err(crate::unsupported_file(index, host, ft));
        };
        self.insert(index, dest, entry)
    }

    fn temp_file(&mut self, index: usize) -> Result<(PathBuf, fs_err::File), LayerError> {
        let dir = match &mut self.tmp {
            Some(dir) => dir,
            slot @ None => slot.insert(
                tempfile::Builder::new()
                    .prefix("bake-layer-")
                    .tempdir_in(&self.tmp_root)
                    .map_err(|source| LayerError::TempDir {
                        path: self.tmp_root.clone(),
                        source,
                    })?,
            ),
        };
        let path = dir.path().join(self.tmp_count.to_string());
        self.tmp_count += 1;
        let file = fs_err::File::create(&path).map_err(io_err(index, &path))?;
        Ok((path, file))
    }

    fn add_unpack(&mut self, index: usize, src: &Path, to: &str) -> Result<(), LayerError> {
        let file = crate::open_input(src).map_err(io_err(index, src))?;
        let reader =
            crate::compress::decompress(io::BufReader::new(file)).map_err(|source| LayerError::Archive {
                index,
                archive: src.to_owned(),
                entry: None,
                source,
            })?;
        self.add_tar(index, src, reader, to, None)
    }

    /// Adds the entries of the (already decompressed) tar stream `reader`
    /// below `to`; `src` names the archive in errors. When `names` is given,
    /// it receives each entry's normalised path below `to`, in archive order.
    pub(crate) fn add_tar<R: Read>(
        &mut self,
        index: usize,
        src: &Path,
        reader: R,
        to: &str,
        mut names: Option<&mut Vec<String>>,
    ) -> Result<(), LayerError> {
        let archive_err = |entry: Option<&str>| {
            let entry = entry.map(str::to_owned);
            move |source| LayerError::Archive {
                index,
                archive: src.to_owned(),
                entry,
                source: crate::limits::scrub(source),
            }
        };
        let refuse = |entry: &str, reason: String| LayerError::ArchiveEntry {
            index,
            archive: src.to_owned(),
            entry: entry.to_owned(),
            reason,
        };

        let mut archive = tar::Archive::new(TarGuard::new(reader, self.limits));
        let mut last: Option<String> = None;
        for item in archive.entries().map_err(archive_err(None))? {
            let mut item = item.map_err(|e| archive_err(None)(after_entry(last.as_deref(), e)))?;
            let raw = item.path_bytes().into_owned();
            last = Some(String::from_utf8_lossy(&raw).into_owned());
            let Ok(name) = String::from_utf8(raw) else {
                let lossy = String::from_utf8_lossy(&item.path_bytes()).into_owned();
                return Err(refuse(&lossy, "the name is not valid UTF-8".to_owned()));
            };
            let header = item.header();
            let kind = header.entry_type();
            if kind.is_pax_global_extensions() {
                continue;
            }
            let rel = normalise_archive(&name).map_err(|r| refuse(&name, r.to_owned()))?;
            // In any component: `a/.wh.b/c` would put a directory
            // `.wh.b` in our layer, which unpackers read as deleting `a/b`.
            if rel.split('/').any(|c| c.starts_with(".wh.")) {
                return Err(refuse(
                    &name,
                    "names with a component starting with `.wh.` mean deletions in an OCI layer and cannot be unpacked"
                        .to_owned(),
                ));
            }
            let path = join(to, &rel);
            if let Some(names) = names.as_deref_mut() {
                if path.contains('\n') {
                    return Err(refuse(&name, "the name contains a newline".to_owned()));
                }
                names.push(path.clone());
            }
            let mode = header.mode().map_err(archive_err(Some(&name)))? & 0o7777;
            let (uid, gid) = entry_owner(&mut item).map_err(archive_err(Some(&name)))?;
            // Owners are 32-bit everywhere a layer is unpacked (GNU tar
            // refuses an archive with more).
            for (what, id) in [("uid", uid), ("gid", gid)] {
                if id > u64::from(u32::MAX) {
                    return Err(refuse(
                        &name,
                        format!("its {what} {id} is out of range (0 to 4294967295)"),
                    ));
                }
            }
            let mtime = entry_mtime(&mut item).map_err(archive_err(Some(&name)))?;
            let xattrs = entry_xattrs(&mut item).map_err(archive_err(Some(&name)))?;
            let regular = matches!(kind, EntryType::Regular | EntryType::Continuous);
            let mut caps = None;
            for (key, value) in xattrs {
                if let (true, true, Some(value)) = (key == bake_caps::XATTR, regular, &value) {
                    let parsed = FileCaps::from_xattr(value).map_err(|e| refuse(&name, e.to_string()))?;
                    caps = Some(parsed);
                } else if kind != EntryType::Link {
                    // A hardlink takes its target's metadata: its own
                    // records are ignored, not dropped.
                    self.drop_xattr(&path, key);
                }
            }
            let meta = Meta {
                mode,
                uid,
                gid,
                mtime: mtime.min(self.epoch),
                caps,
            };
            let link_name = item.link_name_bytes().map(|l| l.into_owned());
            let link = || -> Result<String, LayerError> {
                match link_name.as_deref().map(std::str::from_utf8) {
                    Some(Ok(t)) if !t.is_empty() => Ok(t.to_owned()),
                    _ => Err(refuse(
                        &name,
                        "the link target is missing, empty or not valid UTF-8".to_owned(),
                    )),
                }
            };
            let entry = match kind {
                EntryType::Regular | EntryType::Continuous => {
                    let (tmp, mut out) = self.temp_file(index)?;
                    let size = copy_entry(&mut item, &mut out, &tmp, index, src, &name)?;
                    if size != item.size() {
                        return Err(LayerError::Archive {
                            index,
                            archive: src.to_owned(),
                            entry: Some(name),
                            source: io::Error::new(io::ErrorKind::UnexpectedEof, "the archive is truncated"),
                        });
                    }
                    Entry {
                        kind: Kind::File {
                            content: Content::Disk(tmp),
                            size,
                            group: None,
                        },
                        meta,
                        index,
                    }
                }
                EntryType::Directory => Entry {
                    kind: Kind::Dir,
                    meta,
                    index,
                },
                EntryType::Symlink => Entry {
                    kind: Kind::Symlink { target: link()? },
                    meta: Meta { mode: 0o777, ..meta },
                    index,
                },
                EntryType::Link => {
                    let target = link()?;
                    let target = normalise_archive(&target)
                        .map(|t| join(to, &t))
                        .map_err(|r| refuse(&name, format!("hardlink target {target:?}: {r}")))?;
                    let target = self.below(index, target, false)?;
                    self.link_to(index, &target).ok_or_else(|| {
                        refuse(
                            &name,
                            format!(
                                "hardlink to {target:?}, which is not a regular file earlier in this archive"
                            ),
                        )
                    })?
                }
                EntryType::Char | EntryType::Block | EntryType::Fifo => {
                    return Err(refuse(
                        &name,
                        "device nodes and fifos are not supported".to_owned(),
                    ));
                }
                EntryType::GNUSparse => {
                    return Err(refuse(&name, "sparse files are not supported".to_owned()));
                }
                other => {
                    return Err(refuse(
                        &name,
                        format!("unsupported entry type {:?}", char::from(other.as_byte())),
                    ));
                }
            };
            self.insert(index, path, entry).map_err(|e| match e {
                // Name the archive and entry, not only the step.
                LayerError::NotADirectory {
                    path, parent, kind, ..
                } => refuse(
                    &name,
                    format!(
                        "cannot create /{}: /{} is a {kind} in this layer, not a directory",
                        crate::error::esc(&path),
                        crate::error::esc(&parent)
                    ),
                ),
                other => other,
            })?;
        }
        // What follows the end-of-archive blocks: read through, so a corrupt
        // or truncated compressed stream is an error even there.
        io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(archive_err(None))?;
        Ok(())
    }

    /// A new member of the hardlink group of the regular file at `target`,
    /// if that file came from source `index` (the same archive).
    fn link_to(&mut self, index: usize, target: &str) -> Option<Entry<'a>> {
        let next = &mut self.next_group;
        let e = self.entries.get_mut(target).filter(|e| e.index == index)?;
        let Kind::File { group, .. } = &mut e.kind else {
            return None;
        };
        if group.is_none() {
            *next += 1;
            *group = Some(*next);
        }
        Some(e.clone())
    }

    /// Records that the extended attribute `name` of the entry at `path`
    /// (normalised) is not kept.
    pub(crate) fn drop_xattr(&mut self, path: &str, name: String) {
        self.dropped.entry(path.to_owned()).or_default().insert(name);
    }

    /// Adds implicit parent directories, resolves hardlink groups, and sorts
    /// the entries by their tar name; also returns what was dropped.
    #[allow(clippy::type_complexity)]
    pub(crate) fn finish(
        mut self,
    ) -> Result<
        (
            Vec<Record<'a>>,
            Option<tempfile::TempDir>,
            Vec<crate::DroppedXattrs>,
        ),
        LayerError,
    > {
        self.finish_dpkg()?;
        let mut missing: BTreeMap<String, usize> = BTreeMap::new();
        for (path, entry) in &self.entries {
            for parent in ancestors(path) {
                if missing.contains_key(parent) {
                    break;
                }
                match self.entries.get(parent) {
                    Some(Entry { kind: Kind::Dir, .. }) => break,
                    Some(e) => {
                        // Guarded by `insert`; kept as a check, not a panic.
                        return Err(LayerError::NotADirectory {
                            index: entry.index,
                            path: path.clone(),
                            parent: parent.to_owned(),
                            kind: e.kind.name(),
                        });
                    }
                    None => {
                        missing.insert(parent.to_owned(), entry.index);
                    }
                }
            }
        }
        for (path, index) in missing {
            let meta = owner_meta(0o755, Owner::default(), self.epoch);
            let entry = Entry {
                kind: Kind::Dir,
                meta,
                index,
            };
            self.entries.insert(path, entry);
        }

        // The first path (in byte order) of each hardlink group holds the
        // content; the others link to it. Tar order equals path order for
        // files, so the target always comes first.
        let mut primary: BTreeMap<usize, String> = BTreeMap::new();
        let mut records = Vec::with_capacity(self.entries.len());
        for (path, entry) in std::mem::take(&mut self.entries) {
            let Entry { kind, meta, index } = entry;
            let record = match kind {
                Kind::Dir => Record {
                    name: format!("{path}/"),
                    kind: EntryType::Directory,
                    meta,
                    link: None,
                    content: None,
                    index,
                },
                Kind::Symlink { target } => Record {
                    name: path,
                    kind: EntryType::Symlink,
                    meta,
                    link: Some(target),
                    content: None,
                    index,
                },
                Kind::File { content, size, group } => {
                    let first = group.and_then(|g| match primary.get(&g) {
                        Some(p) => Some(p.clone()),
                        None => {
                            primary.insert(g, path.clone());
                            None
                        }
                    });
                    match first {
                        Some(target) => Record {
                            name: path,
                            kind: EntryType::Link,
                            meta,
                            link: Some(target),
                            content: None,
                            index,
                        },
                        None => Record {
                            name: path,
                            kind: EntryType::Regular,
                            meta,
                            link: None,
                            content: Some((content, size)),
                            index,
                        },
                    }
                }
            };
            records.push(record);
        }
        records.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        let dropped = std::mem::take(&mut self.dropped)
            .into_iter()
            .map(|(path, names)| crate::DroppedXattrs {
                path: format!("/{path}"),
                names: names.into_iter().collect(),
            })
            .collect();
        Ok((records, self.tmp.take(), dropped))
    }
}

/// The names in `dir`, sorted by bytes (readdir order is the file
/// system's).
fn sorted_names(index: usize, dir: &Path) -> Result<Vec<std::ffi::OsString>, LayerError> {
    let mut names = Vec::new();
    for item in fs_err::read_dir(dir).map_err(io_err(index, dir))? {
        names.push(item.map_err(io_err(index, dir))?.file_name());
    }
    names.sort();
    Ok(names)
}

/// A name component that means a deletion in an OCI layer.
const WHITEOUT: &str = ".wh.";
const WHITEOUT_REASON: &str =
    "a name starting with `.wh.` means a deletion in an OCI layer (exclude it, or rename it)";

/// Per-`Copy` state of the tree walk.
struct Walk {
    index: usize,
    mode: Option<u32>,
    owner: Owner,
    exclude: GlobSet,
    /// (dev, ino) → hardlink group, within this one source.
    links: BTreeMap<(u64, u64), usize>,
    mtime: CopyMtime,
    /// Capabilities of the regular files copied.
    caps: Option<FileCaps>,
}

/// Exclude globs for a copy (`*` does not cross `/`); the cache's input walk
/// (`inputs.rs`) uses the same set, so both exclude exactly the same paths.
pub(crate) fn globs(index: usize, patterns: &[String]) -> Result<GlobSet, LayerError> {
    let mut set = GlobSetBuilder::new();
    for p in patterns {
        let glob = GlobBuilder::new(p)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|source| LayerError::Exclude {
                index,
                pattern: p.clone(),
                source,
            })?;
        set.add(glob);
    }
    set.build().map_err(|source| LayerError::Exclude {
        index,
        pattern: patterns.join(", "),
        source,
    })
}

/// The entry's owner: the PAX `uid` and `gid` records if present (what
/// `tar --format=pax` writes for ids beyond the header's 7 octal digits),
/// else the header fields. Range is the caller's to check.
pub(crate) fn entry_owner<R: Read>(item: &mut tar::Entry<'_, R>) -> io::Result<(u64, u64)> {
    let (mut uid, mut gid) = (item.header().uid()?, item.header().gid()?);
    if let Some(exts) = item.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let slot = match ext.key_bytes() {
                b"uid" => &mut uid,
                b"gid" => &mut gid,
                _ => continue,
            };
            let v = std::str::from_utf8(ext.value_bytes()).unwrap_or("");
            *slot = v.parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "invalid PAX uid or gid record (not a decimal number)",
                )
            })?;
        }
    }
    Ok((uid, gid))
}

/// The entry's mtime: the PAX `mtime` record's whole seconds if present
/// (negative → 0), else the header field.
pub(crate) fn entry_mtime<R: Read>(item: &mut tar::Entry<'_, R>) -> io::Result<u64> {
    if let Some(exts) = item.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            if ext.key_bytes() == b"mtime" {
                let v = std::str::from_utf8(ext.value_bytes()).unwrap_or("");
                let whole = v.split('.').next().unwrap_or("");
                if whole.starts_with('-') {
                    return Ok(0);
                }
                return whole
                    .parse()
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "invalid PAX mtime record"));
            }
        }
    }
    item.header().mtime()
}

/// The entry's extended attributes, from its PAX records: `SCHILY.xattr.NAME`
/// (GNU tar, Go, umoci, bsdtar), and `LIBARCHIVE.xattr.NAME` (bsdtar's
/// other spelling: URL-encoded name, base64 value) only by name, for the
/// warning, when no `SCHILY` record has it (the value is then `None`).
#[allow(clippy::type_complexity)]
pub(crate) fn entry_xattrs<R: Read>(
    item: &mut tar::Entry<'_, R>,
) -> io::Result<Vec<(String, Option<Vec<u8>>)>> {
    let mut out: Vec<(String, Option<Vec<u8>>)> = Vec::new();
    let mut other: Vec<String> = Vec::new();
    if let Some(exts) = item.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let key = String::from_utf8_lossy(ext.key_bytes());
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                out.push((name.to_owned(), Some(ext.value_bytes().to_vec())));
            } else if let Some(name) = key.strip_prefix("LIBARCHIVE.xattr.") {
                other.push(name.to_owned());
            }
        }
    }
    for name in other {
        if !out.iter().any(|(n, _)| *n == name) {
            out.push((name, None));
        }
    }
    Ok(out)
}

/// Streams an archive entry's content into a temp file; returns its size.
fn copy_entry<R: Read>(
    item: &mut tar::Entry<'_, R>,
    out: &mut fs_err::File,
    tmp: &Path,
    index: usize,
    archive: &Path,
    name: &str,
) -> Result<u64, LayerError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match item.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(LayerError::Archive {
                    index,
                    archive: archive.to_owned(),
                    entry: Some(name.to_owned()),
                    source,
                });
            }
        };
        out.write_all(&buf[..n]).map_err(io_err(index, tmp))?;
        total += n as u64;
    }
    Ok(total)
}

/// Writes the records as a tar stream (ending with two zero blocks) and
/// returns the number of entries.
pub(crate) fn write_records<W: Write>(records: Vec<Record<'_>>, out: &mut W) -> Result<u64, LayerError> {
    let write_err = |source| LayerError::Write { source };
    let mut buf = vec![0u8; 64 * 1024];
    let mut count = 0;
    for r in records {
        let size = r.content.as_ref().map_or(0, |(_, size)| *size);
        let header = tarfmt::header_bytes(&r.name, r.kind, r.meta, size, r.link.as_deref());
        out.write_all(&header).map_err(write_err)?;
        match r.content {
            Some((Content::Bytes(bytes), _)) => out.write_all(bytes).map_err(write_err)?,
            Some((Content::Owned(bytes), _)) => out.write_all(&bytes).map_err(write_err)?,
            Some((Content::Disk(path), size)) => {
                let mut f = fs_err::File::from_parts(
                    crate::open_input(&path).map_err(io_err(r.index, &path))?,
                    &path,
                );
                stream_exact(&mut f, size, out, &mut buf, r.index, &path)?;
            }
            None => {}
        }
        let pad = (BLOCK - (size % BLOCK as u64) as usize) % BLOCK;
        out.write_all(&[0u8; BLOCK][..pad]).map_err(write_err)?;
        count += 1;
    }
    out.write_all(&[0u8; 2 * BLOCK]).map_err(write_err)?;
    Ok(count)
}

/// Copies exactly `size` bytes of `f` to `out`, failing if the file is now
/// shorter or longer than when it was walked.
fn stream_exact<W: Write>(
    f: &mut fs_err::File,
    size: u64,
    out: &mut W,
    buf: &mut [u8],
    index: usize,
    path: &Path,
) -> Result<(), LayerError> {
    let changed = || LayerError::Changed {
        index,
        path: path.to_owned(),
    };
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match f.read(&mut buf[..want]) {
            Ok(0) => return Err(changed()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(index, path)(e)),
        };
        out.write_all(&buf[..n])
            .map_err(|source| LayerError::Write { source })?;
        left -= n as u64;
    }
    let mut probe = [0u8; 1];
    loop {
        match f.read(&mut probe) {
            Ok(0) => return Ok(()),
            Ok(_) => return Err(changed()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(index, path)(e)),
        }
    }
}

/// The error for a host file a `copy` cannot hold (socket, fifo, device),
/// as the layer and the cache key and the lock (which read the same walk)
/// all report it.
pub fn unsupported_file(index: usize, host: &Path, ft: std::fs::FileType) -> LayerError {
    use std::os::unix::fs::FileTypeExt;
    let kind = if ft.is_socket() {
        "socket"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_char_device() {
        "character device"
    } else {
        "special file"
    };
    LayerError::UnsupportedFile {
        index,
        path: host.to_owned(),
        kind,
    }
}
