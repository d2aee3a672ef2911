//! The layer cache: a directory that maps a layer's *cache key* to the layer
//! it built, so an unchanged layer is never re-tarred or re-compressed.
//!
//! ```text
//! CACHE_DIR/
//!   CACHEDIR.TAG
//!   blobs/sha256/<hex>        compressed layers (a BlobStore: atomic, verified)
//!   layers/<key hex>.json     key → {diffID, digest, size, mediaType, blob stat}
//!   stat/<recipe id>          the stat cache: (path, size, mtime, ctime, inode,
//!                             device, mode) → content digest, one per recipe
//!   effects/<diffID hex>      what a layer does to dpkg's status file:
//!                             untouched, removed, or its new content digest
//!   effects/links-<hex>       the symlinks a base leaves (keyed on its
//!                             diffIDs), which the layers above write through
//!   effects/measured-<hex>    a layer blob's compression and diffID, measured
//!                             from its bytes (keyed on the blob's digest)
//!   plain/blobs/sha256/<hex>  uncompressed copies of the layers below `run`
//!                             steps, by diffID (see below)
//! ```
//!
//! **The key** is the sha256 of a canonical, length-prefixed encoding of
//! everything a layer's bytes depend on: [`OUTPUT_FORMAT_VERSION`], the
//! compression id (scheme, level, library), the epoch, each step's
//! definition, the inputs those steps read from the host (for a `copy`, the
//! walk of [`bake_layer::copy_inputs`]: every name, type, size, execute bit,
//! hardlink grouping, symlink target and content digest; for an `unpack`,
//! the archive's content digest); a layer with a `run` step also has the
//! diffIDs of every layer below it, and a layer with `deb` steps (which
//! merges dpkg's status file from below) the digest of that status file as
//! the layers below leave it — so a deb layer is rebuilt when the packages
//! below change, not when any unrelated file below does. The build path, the
//! clock, the host user and the cache's own state are not in it. Anything
//! else that decides a layer's bytes is covered by the output-format
//! version, which changes whenever the bytes for the same key could.
//!
//! **The stat cache** makes an unchanged input cost one `lstat`: a file whose
//! stat tuple matches its record is not read. Like git's index it guards
//! against "racily clean" files: a file modified at or after the moment the
//! build started (as the file system's clock says, from a stamp file in the
//! cache) is hashed but not recorded.
//!
//! **Effects** record, per layer (by diffID, so per content), what it does to
//! dpkg's status file; the status below a deb layer is the fold of its lower
//! layers' effects, so each lower layer is decompressed once, ever, to key
//! the deb layers above it.
//!
//! **Plain layers.** A `run` step starts from a root that every layer below
//! it is applied to. Decompressing those layers (a Debian base is hundreds
//! of MiB of gzip) was most of what a rebuild after a one-file change below
//! the step cost, so the first build keeps each one uncompressed, named by
//! its diffID, and later builds apply that copy. It is written through the
//! store (hashed as it is written, renamed into place only if it hashes to
//! the diffID) and hashed again by the pass that applies it, before
//! anything is changed: a damaged copy is removed and the compressed blob
//! used. Applying the same bytes in the same order, the root is the same
//! as the cold build's, readdir order included. Each use refreshes the
//! copy's mtime; `bake store gc` removes copies unused for longer than its
//! grace period.
//!
//! **Entries** are written atomically (temp file + rename) and checked before
//! use: the blob must be present with the recorded size; when its inode or
//! mtime differ from the record it is re-hashed, and an entry whose blob is
//! missing, short or corrupt is ignored (the layer is rebuilt and the entry
//! replaced). Concurrent builds sharing a cache race to rename identical
//! content, which is harmless. Nothing here is ever part of an image.
//!
//! [`OUTPUT_FORMAT_VERSION`]: crate::OUTPUT_FORMAT_VERSION

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use bake_digest::{Digest, Hasher};
use bake_store::BlobStore;
use fs_err as fs;

/// Why the cache could not be used; every variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("layer cache {path}: {source} (build with --no-cache to do without it)")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("layer cache {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: bake_store::StoreError,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What the cache did during one build.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Input files whose content was read to compute keys.
    pub files_hashed: u64,
    /// Bytes read for those.
    pub bytes_hashed: u64,
    /// Input files whose digest came from the stat cache, unread.
    pub stat_hits: u64,
    /// Layers taken from the cache.
    pub layers_cached: u64,
    /// Layers built (and stored in the cache).
    pub layers_built: u64,
}

/// The stat fields that, unchanged, let a file's recorded digest be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
    dev: u64,
    mode: u32,
}

impl Stat {
    pub(crate) fn of(m: &std::fs::Metadata) -> Stat {
        Stat {
            size: m.len(),
            mtime_ns: m
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(m.mtime_nsec()),
            ctime_ns: m
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(m.ctime_nsec()),
            ino: m.ino(),
            dev: m.dev(),
            mode: m.mode(),
        }
    }
}

/// A layer found in (or written to) the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub diff_id: Digest,
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
}

/// The cache blob's identity when its entry was written: unchanged, the blob
/// is trusted without re-hashing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BlobStat {
    dev: u64,
    ino: u64,
    mtime_ns: i64,
}

impl BlobStat {
    fn of(m: &std::fs::Metadata) -> BlobStat {
        let s = Stat::of(m);
        BlobStat {
            dev: s.dev,
            ino: s.ino,
            mtime_ns: s.mtime_ns,
        }
    }
}

/// An open cache directory.
pub(crate) struct Cache {
    dir: PathBuf,
    store: BlobStore,
    /// Uncompressed layers by diffID.
    plain: BlobStore,
    layers_dir: PathBuf,
    effects_dir: PathBuf,
    stat_file: PathBuf,
    /// The file system's "now" when the build started.
    stamp_ns: i64,
    /// The stat cache as loaded, by path bytes (comparing `PathBuf`s
    /// component by component is what a no-op rebuild would spend most
    /// of its time on).
    old: HashMap<Vec<u8>, (Stat, Digest)>,
    /// What this build confirmed or learnt; saved by [`Cache::save`].
    seen: Mutex<HashMap<Vec<u8>, (Stat, Digest)>>,
    /// Whether `seen` has an entry `old` lacks.
    learnt: AtomicBool,
    files_hashed: AtomicU64,
    bytes_hashed: AtomicU64,
    stat_hits: AtomicU64,
    pub(crate) layers_cached: AtomicU64,
    pub(crate) layers_built: AtomicU64,
    link_seq: AtomicU64,
}

/// Where, in a cache directory, the plain layers' store is rooted.
pub const PLAIN_DIR: &str = "plain";
/// Where, in a cache directory, the entries (`<key>.json`) are.
pub const LAYERS_DIR: &str = "layers";
/// Where, in a cache directory, the layer effects records are.
pub const EFFECTS_DIR: &str = "effects";

/// The blob digests and the diffIDs the entries of the layer cache in `dir`
/// name: what `bake store gc` must keep. Read leniently, as gc must err on
/// keeping: an entry that names a digest keeps it even when a build would
/// find the entry unusable; one that is not JSON keeps nothing (a build
/// treats it as a miss and rewrites it); one that cannot be read at all is
/// an error, so gc deletes nothing it might name. The entry format is this
/// module's, so it is read here and nowhere else.
pub fn cache_references(dir: &Path) -> std::io::Result<(BTreeSet<Digest>, BTreeSet<Digest>)> {
    let mut blobs = BTreeSet::new();
    let mut diff_ids = BTreeSet::new();
    let entries = match std::fs::read_dir(dir.join(LAYERS_DIR)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((blobs, diff_ids)),
        Err(e) => return Err(e),
    };
    for e in entries {
        let path = e?.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            // Replaced or removed meanwhile by a build.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        let digest = |k: &str| v.get(k)?.as_str()?.parse::<Digest>().ok();
        blobs.extend(digest("digest"));
        diff_ids.extend(digest("diffID"));
    }
    Ok((blobs, diff_ids))
}

const STAT_MAGIC: &str = "bake stat cache 1\n";
const EFFECT_MAGIC: &str = "bake layer effect 1\n";
const LINKS_MAGIC: &str = "bake base links 1\n";
const MEASURED_MAGIC: &str = "bake measured layer 1\n";

/// What one layer does to a file of the image (dpkg's status file), by
/// content digest: [`bake_layer::FileEffect`] without the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    Untouched,
    Removed,
    File(Digest),
}

impl Effect {
    pub(crate) fn of(effect: &bake_layer::FileEffect) -> Effect {
        match effect {
            bake_layer::FileEffect::Untouched => Effect::Untouched,
            bake_layer::FileEffect::Removed => Effect::Removed,
            bake_layer::FileEffect::File(bytes) => Effect::File(Digest::of(bytes)),
        }
    }
}

impl Cache {
    /// Opens (creating) the cache in `dir`. `stat_id` names this recipe's
    /// stat cache (recipes do not evict each other's).
    pub(crate) fn open(dir: &Path, stat_id: &str) -> Result<Cache, CacheError> {
        let layers_dir = dir.join(LAYERS_DIR);
        let stat_dir = dir.join("stat");
        let effects_dir = dir.join(EFFECTS_DIR);
        for d in [&layers_dir, &stat_dir, &effects_dir] {
            fs::create_dir_all(d).map_err(io_at(d))?;
        }
        let tag = dir.join("CACHEDIR.TAG");
        if !tag.exists() {
            // Tells backup tools to skip the directory (bford.info/cachedir).
            let _ = fs::write(
                &tag,
                "Signature: 8a477f597d28d172789f06886806bc55\n# bake's layer cache: safe to delete.\n",
            );
        }
        let store = BlobStore::open(dir).map_err(|source| CacheError::Store {
            path: dir.to_owned(),
            source,
        })?;
        let plain_dir = dir.join(PLAIN_DIR);
        let plain = BlobStore::open(&plain_dir).map_err(|source| CacheError::Store {
            path: plain_dir.clone(),
            source,
        })?;
        // The file system's clock, not the process's: what mtimes are
        // compared with.
        let stamp = tempfile::Builder::new()
            .prefix(".stamp-")
            .tempfile_in(&stat_dir)
            .map_err(io_at(&stat_dir))?;
        let stamp_ns = Stat::of(&stamp.as_file().metadata().map_err(io_at(stamp.path()))?).mtime_ns;
        drop(stamp);
        let stat_file = stat_dir.join(stat_id);
        let old = match fs::read(&stat_file) {
            Ok(bytes) => parse_stat_cache(&bytes).unwrap_or_default(),
            Err(_) => HashMap::new(),
        };
        Ok(Cache {
            dir: dir.to_owned(),
            store,
            plain,
            layers_dir,
            effects_dir,
            stat_file,
            stamp_ns,
            old,
            seen: Mutex::new(HashMap::new()),
            learnt: AtomicBool::new(false),
            files_hashed: AtomicU64::new(0),
            bytes_hashed: AtomicU64::new(0),
            stat_hits: AtomicU64::new(0),
            layers_cached: AtomicU64::new(0),
            layers_built: AtomicU64::new(0),
            link_seq: AtomicU64::new(0),
        })
    }

    /// The store the cache keeps its layer blobs in.
    pub(crate) fn store(&self) -> &BlobStore {
        &self.store
    }

    /// The store of uncompressed layers, by diffID (see the module doc).
    pub(crate) fn plain(&self) -> &BlobStore {
        &self.plain
    }

    /// Marks the plain layer `diff_id` as used now (what `bake store gc`
    /// goes by). A copy that cannot be touched is only collected sooner.
    pub(crate) fn touch_plain(&self, diff_id: &Digest) {
        if let Ok(file) = std::fs::File::open(self.plain.path(diff_id)) {
            let _ = file.set_modified(std::time::SystemTime::now());
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            files_hashed: self.files_hashed.load(Ordering::Relaxed),
            bytes_hashed: self.bytes_hashed.load(Ordering::Relaxed),
            stat_hits: self.stat_hits.load(Ordering::Relaxed),
            layers_cached: self.layers_cached.load(Ordering::Relaxed),
            layers_built: self.layers_built.load(Ordering::Relaxed),
        }
    }

    /// The content digests of `files` (host paths with the `lstat` taken
    /// when they were walked), in the same order, from the stat cache where
    /// it still holds, else by reading them on up to `threads` threads.
    pub(crate) fn digests(
        &self,
        files: &[(PathBuf, Stat)],
        threads: usize,
    ) -> Result<Vec<Digest>, CacheError> {
        let mut found: Vec<Option<Digest>> = vec![None; files.len()];
        let mut todo: Vec<usize> = Vec::new();
        {
            let mut seen = lock(&self.seen);
            for (i, (path, stat)) in files.iter().enumerate() {
                let key = path.as_os_str().as_bytes();
                match self.old.get(key) {
                    Some((s, d)) if s == stat => {
                        self.stat_hits.fetch_add(1, Ordering::Relaxed);
                        seen.insert(key.to_vec(), (*stat, d.clone()));
                        found[i] = Some(d.clone());
                    }
                    _ => todo.push(i),
                }
            }
        }
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<(usize, Digest)>> = Mutex::new(Vec::with_capacity(todo.len()));
        let first_error: Mutex<Option<CacheError>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..threads.clamp(1, todo.len().max(1)) {
                s.spawn(|| {
                    let mut buf = vec![0u8; 256 * 1024];
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&i) = todo.get(n) else { return };
                        if lock(&first_error).is_some() {
                            return;
                        }
                        let (path, stat) = &files[i];
                        match self.hash_file(path, stat, &mut buf) {
                            Ok(d) => lock(&results).push((i, d)),
                            Err(e) => {
                                lock(&first_error).get_or_insert(e);
                                return;
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        for (i, digest) in results.into_inner().unwrap_or_else(|p| p.into_inner()) {
            found[i] = Some(digest);
        }
        // Every file is found or hashed by now, or an error was returned.
        found
            .into_iter()
            .zip(files)
            .map(|(d, (path, _))| d.ok_or_else(|| io_at(path)(io::Error::other("was not hashed"))))
            .collect()
    }

    fn hash_file(&self, path: &Path, walked: &Stat, buf: &mut [u8]) -> Result<Digest, CacheError> {
        let mut f = bake_layer::open_input(path).map_err(io_at(path))?;
        let mut h = Hasher::new();
        loop {
            match f.read(buf) {
                Ok(0) => break,
                Ok(n) => h.update(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_at(path)(e)),
            }
        }
        let after = Stat::of(&f.metadata().map_err(io_at(path))?);
        let (digest, len) = h.finish();
        self.files_hashed.fetch_add(1, Ordering::Relaxed);
        self.bytes_hashed.fetch_add(len, Ordering::Relaxed);
        // Recorded only if nothing moved while it was read and it is not
        // racily clean (modified since the build started).
        let racy = walked.mtime_ns >= self.stamp_ns;
        if after == *walked && len == walked.size && !racy {
            let key = path.as_os_str().as_bytes().to_vec();
            lock(&self.seen).insert(key, (*walked, digest.clone()));
            self.learnt.store(true, Ordering::Relaxed);
        }
        Ok(digest)
    }

    /// Writes this build's stat cache (only the files it used), unless it
    /// is what was loaded.
    pub(crate) fn save(&self) -> Result<(), CacheError> {
        let seen = lock(&self.seen);
        if !self.learnt.load(Ordering::Relaxed) && seen.len() == self.old.len() {
            return Ok(());
        }
        let mut entries: Vec<_> = seen.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut text = Vec::with_capacity(seen.len() * 128);
        text.extend_from_slice(STAT_MAGIC.as_bytes());
        for (path, (s, d)) in entries {
            let _ = write!(
                text,
                "{} {} {} {} {} {} {} ",
                d.hex(),
                s.size,
                s.mtime_ns,
                s.ctime_ns,
                s.ino,
                s.dev,
                s.mode
            );
            text.extend_from_slice(path);
            text.push(0);
        }
        write_atomic(&self.stat_file, &text)
    }

    fn entry_path(&self, key: &Digest) -> PathBuf {
        self.layers_dir.join(format!("{}.json", key.hex()))
    }

    /// The entry for `key`, if there is a readable one whose blob is sound.
    pub(crate) fn lookup(&self, key: &Digest) -> Result<Option<Entry>, CacheError> {
        let path = self.entry_path(key);
        let Ok(bytes) = fs::read(&path) else {
            return Ok(None);
        };
        let Some((entry, recorded)) = parse_entry(&bytes) else {
            return Ok(None);
        };
        let blob = self.store.path(&entry.digest);
        let Ok(meta) = fs::metadata(&blob) else {
            return Ok(None);
        };
        if meta.len() != entry.size {
            return Ok(None);
        }
        if BlobStat::of(&meta) != recorded {
            // Touched since recorded (copied, restored, or tampered with):
            // trust it again only if its content still hashes to its name.
            if self.store.verify(&entry.digest).is_err() {
                return Ok(None);
            }
            self.record(key, &entry)?;
        }
        Ok(Some(entry))
    }

    /// Writes the entry for `key` (its blob must be in [`Cache::store`]).
    pub(crate) fn record(&self, key: &Digest, entry: &Entry) -> Result<(), CacheError> {
        let blob = self.store.path(&entry.digest);
        let stat = BlobStat::of(&fs::metadata(&blob).map_err(io_at(&blob))?);
        let json = serde_json::json!({
            "diffID": entry.diff_id.to_string(),
            "digest": entry.digest.to_string(),
            "size": entry.size,
            "mediaType": entry.media_type,
            "blob": { "dev": stat.dev, "ino": stat.ino, "mtimeNs": stat.mtime_ns },
        });
        write_atomic(&self.entry_path(key), json.to_string().as_bytes())
    }

    /// What the layer `diff_id` does to dpkg's status file, if recorded.
    /// An unreadable or malformed record is as good as none.
    pub(crate) fn effect(&self, diff_id: &Digest) -> Option<Effect> {
        let text = fs::read_to_string(self.effects_dir.join(diff_id.hex())).ok()?;
        match text.strip_prefix(EFFECT_MAGIC)?.trim_end() {
            "untouched" => Some(Effect::Untouched),
            "removed" => Some(Effect::Removed),
            other => other.strip_prefix("file ")?.parse().ok().map(Effect::File),
        }
    }

    /// Records what the layer `diff_id` does to dpkg's status file.
    pub(crate) fn record_effect(&self, diff_id: &Digest, effect: &Effect) -> Result<(), CacheError> {
        let what = match effect {
            Effect::Untouched => "untouched".to_owned(),
            Effect::Removed => "removed".to_owned(),
            Effect::File(d) => format!("file {d}"),
        };
        write_atomic(
            &self.effects_dir.join(diff_id.hex()),
            format!("{EFFECT_MAGIC}{what}\n").as_bytes(),
        )
    }

    /// The compression and diffID bake measured for the layer blob `digest`
    /// ([`bake_layer::measure_layer`]), if recorded. Keyed on the blob's
    /// digest, which the store verifies, so the record is a fact about bytes,
    /// never a base's claim. An unreadable or malformed record is none.
    pub(crate) fn measured(&self, digest: &Digest) -> Option<(bake_layer::LayerCompression, Digest)> {
        let text = fs::read_to_string(self.measured_path(digest)).ok()?;
        let (compression, diff_id) = text.strip_prefix(MEASURED_MAGIC)?.trim_end().split_once(' ')?;
        let compression = match compression {
            "none" => bake_layer::LayerCompression::None,
            "gzip" => bake_layer::LayerCompression::Gzip,
            "zstd" => bake_layer::LayerCompression::Zstd,
            _ => return None,
        };
        Some((compression, diff_id.parse().ok()?))
    }

    /// Records what [`bake_layer::measure_layer`] found for the blob `digest`.
    pub(crate) fn record_measured(
        &self,
        digest: &Digest,
        compression: bake_layer::LayerCompression,
        diff_id: &Digest,
    ) -> Result<(), CacheError> {
        let compression = match compression {
            bake_layer::LayerCompression::None => "none",
            bake_layer::LayerCompression::Gzip => "gzip",
            bake_layer::LayerCompression::Zstd => "zstd",
        };
        write_atomic(
            &self.measured_path(digest),
            format!("{MEASURED_MAGIC}{compression} {diff_id}\n").as_bytes(),
        )
    }

    fn measured_path(&self, digest: &Digest) -> PathBuf {
        self.effects_dir.join(format!("measured-{}", digest.hex()))
    }

    /// The symlinks the base with these diffIDs leaves, if recorded. An
    /// unreadable or malformed record is as good as none.
    pub(crate) fn base_links(&self, diff_ids: &[Digest]) -> Option<BTreeMap<String, String>> {
        let text = fs::read_to_string(self.links_path(diff_ids)).ok()?;
        serde_json::from_str(text.strip_prefix(LINKS_MAGIC)?).ok()
    }

    /// Records the symlinks the base with these diffIDs leaves.
    pub(crate) fn record_base_links(
        &self,
        diff_ids: &[Digest],
        links: &BTreeMap<String, String>,
    ) -> Result<(), CacheError> {
        let json = serde_json::to_string(links).unwrap_or_default();
        write_atomic(
            &self.links_path(diff_ids),
            format!("{LINKS_MAGIC}{json}").as_bytes(),
        )
    }

    fn links_path(&self, diff_ids: &[Digest]) -> PathBuf {
        let mut k = KeyWriter::new();
        k.str("base links");
        for d in diff_ids {
            k.str(&d.to_string());
        }
        self.effects_dir.join(format!("links-{}", k.finish().hex()))
    }

    /// Makes the entry's blob present in `layout`: a hard link to the
    /// cache's copy (replacing any other file of that name), or, across file
    /// systems or when the cached file's mode is not what the umask gives
    /// new files, a verified copy.
    pub(crate) fn materialise(&self, entry: &Entry, layout: &BlobStore) -> Result<(), CacheError> {
        let src = self.store.path(&entry.digest);
        let dst = layout.path(&entry.digest);
        let src_meta = fs::metadata(&src).map_err(io_at(&src))?;
        if let Ok(m) = fs::metadata(&dst) {
            if (m.dev(), m.ino()) == (src_meta.dev(), src_meta.ino()) {
                return Ok(());
            }
        }
        let seq = self.link_seq.fetch_add(1, Ordering::Relaxed);
        let tmp = dst.with_file_name(format!(".tmp-link-{}-{seq}", std::process::id()));
        // A blob cached under another umask is copied: a link would give the
        // output the cache's mode.
        if bake_store::linkable(&src_meta) && fs::hard_link(&src, &tmp).is_ok() {
            let renamed = fs::rename(&tmp, &dst).map_err(io_at(&dst));
            // Renaming onto a name that is already a link to the same inode
            // (another build materialised the same layer just now) succeeds
            // without doing anything, leaving `tmp`: remove it either way.
            let _ = fs::remove_file(&tmp);
            return renamed;
        }
        // Another file system: keep a sound copy, else copy, verified.
        if layout.verify(&entry.digest).is_ok() {
            return Ok(());
        }
        let store_err = |source| CacheError::Store {
            path: self.dir.clone(),
            source,
        };
        let mut r = self.store.open_verified(&entry.digest).map_err(store_err)?;
        layout
            .put_reader_expecting(&mut r, &entry.digest)
            .map_err(store_err)?;
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn parse_stat_cache(bytes: &[u8]) -> Option<HashMap<Vec<u8>, (Stat, Digest)>> {
    let rest = bytes.strip_prefix(STAT_MAGIC.as_bytes())?;
    let mut map = HashMap::new();
    for record in rest.split(|&b| b == 0) {
        if record.is_empty() {
            continue;
        }
        let mut fields = record.splitn(8, |&b| b == b' ');
        let mut next = || std::str::from_utf8(fields.next()?).ok();
        let digest = Digest::from_hex(next()?).ok()?;
        let stat = Stat {
            size: next()?.parse().ok()?,
            mtime_ns: next()?.parse().ok()?,
            ctime_ns: next()?.parse().ok()?,
            ino: next()?.parse().ok()?,
            dev: next()?.parse().ok()?,
            mode: next()?.parse().ok()?,
        };
        map.insert(fields.next()?.to_vec(), (stat, digest));
    }
    Some(map)
}

fn parse_entry(bytes: &[u8]) -> Option<(Entry, BlobStat)> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let digest = |k: &str| v.get(k)?.as_str()?.parse::<Digest>().ok();
    let blob = v.get("blob")?;
    Some((
        Entry {
            diff_id: digest("diffID")?,
            digest: digest("digest")?,
            size: v.get("size")?.as_u64()?,
            media_type: v.get("mediaType")?.as_str()?.to_owned(),
        },
        BlobStat {
            dev: blob.get("dev")?.as_u64()?,
            ino: blob.get("ino")?.as_u64()?,
            mtime_ns: blob.get("mtimeNs")?.as_i64()?,
        },
    ))
}

/// Writes `bytes` to `path` atomically (`bake_store::write_atomic`), 0666
/// less the umask, as for blobs.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    bake_store::write_atomic(path, bytes, 0o666).map_err(io_at(path))
}

/// A canonical, length-prefixed encoding fed straight into sha256: the
/// cache key.
pub(crate) struct KeyWriter(Hasher);

impl KeyWriter {
    pub(crate) fn new() -> KeyWriter {
        let mut k = KeyWriter(Hasher::new());
        k.bytes(b"bake layer cache key 1");
        k
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.0.update(&(b.len() as u64).to_le_bytes());
        self.0.update(b);
    }

    pub(crate) fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    pub(crate) fn u64(&mut self, n: u64) {
        self.0.update(&n.to_le_bytes());
    }

    pub(crate) fn finish(self) -> Digest {
        self.0.finish().0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cache_references_keeps_what_any_entry_names() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            cache_references(dir.path()).unwrap(),
            Default::default(),
            "no layers/ yet"
        );
        let layers = dir.path().join(LAYERS_DIR);
        std::fs::create_dir(&layers).unwrap();
        let (a, b, c) = (Digest::of(b"a"), Digest::of(b"b"), Digest::of(b"c"));
        std::fs::write(
            layers.join("k1.json"),
            serde_json::json!({"digest": a.to_string(), "diffID": b.to_string(), "size": 1}).to_string(),
        )
        .unwrap();
        // Unusable for a build (no blob stat), still keeps its blob.
        std::fs::write(layers.join("k2.json"), format!("{{\"digest\": \"{c}\"}}")).unwrap();
        std::fs::write(layers.join("k3.json"), b"{not json").unwrap();
        std::fs::write(
            layers.join(".tmp-x"),
            format!("{{\"digest\": \"{}\"}}", Digest::of(b"t")),
        )
        .unwrap();
        let (blobs, diff_ids) = cache_references(dir.path()).unwrap();
        assert_eq!(blobs, [a, c].into_iter().collect());
        assert_eq!(diff_ids, [b].into_iter().collect());
    }

    #[test]
    fn stat_cache_round_trips_odd_paths() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), "r").unwrap();
        let d = Digest::of(b"x");
        let stat = Stat {
            size: 1,
            mtime_ns: -5,
            ctime_ns: 7,
            ino: 9,
            dev: 10,
            mode: 0o100644,
        };
        for p in ["/a b/c", "/new\nline", "/ü"] {
            lock(&cache.seen).insert(p.as_bytes().to_vec(), (stat, d.clone()));
        }
        cache.learnt.store(true, Ordering::Relaxed);
        cache.save().unwrap();
        let back = parse_stat_cache(&fs::read(dir.path().join("stat/r")).unwrap()).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[&b"/new\nline"[..]], (stat, d));
        assert!(parse_stat_cache(b"something else").is_none());
    }

    #[test]
    fn key_encoding_is_length_prefixed() {
        let key = |parts: &[&str]| {
            let mut k = KeyWriter::new();
            for p in parts {
                k.str(p);
            }
            k.finish()
        };
        assert_ne!(key(&["ab", "c"]), key(&["a", "bc"]));
        assert_eq!(key(&["ab", "c"]), key(&["ab", "c"]));
    }
}
