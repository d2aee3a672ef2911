//! `bake store verify` and `bake store gc`: check and clean the
//! content-addressed stores bake writes, an OCI layout or the layer cache.
//!
//! **verify** re-hashes every blob under `blobs/sha256/` (and, in the layer
//! cache, under `plain/blobs/sha256/`) and reports, by
//! digest and path, each blob whose content does not hash to its name,
//! anything there that is not a regular file, and (for a layout) each blob
//! that `index.json` reaches but that is missing; leftover `.tmp-*` files
//! of killed writes are listed but are not errors. Exit 1 on any problem.
//!
//! **gc** removes what nothing references. For a layout: every blob not
//! reachable from `index.json` (manifests → config, layers and subject;
//! indexes → their children; signature manifests are tags, so reachable);
//! it refuses to delete anything when a reachable manifest or index cannot
//! be read, since then it cannot know what that one references. For the
//! layer cache: every blob no `layers/*.json` entry names, and each
//! uncompressed layer copy (`plain/`) not used within the grace period. In
//! both, stale `.tmp-*` files go too. Only what is older than `--grace` (default one
//! hour; by ctime for blobs, which a write, rename or hard link refreshes,
//! by mtime for temp files) is removed, so a build writing into the store
//! right now keeps its blobs until it has tagged them; a layout is locked
//! (as `set_tags` does) while gc decides and deletes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result, bail};
use bake_digest::Digest;
use bake_image::{Layout, MAX_JSON_SIZE, media_type};
use bake_store::{BlobStore, StoreError};
use serde_json::{Value, json};

use crate::cli::{StoreArgs, StoreCommand, StoreTarget};

pub fn run(args: StoreArgs, default_cache: Option<PathBuf>) -> Result<()> {
    match args.command {
        StoreCommand::Verify(a) => verify(&Which::of(&a.target, default_cache)?, a.json),
        StoreCommand::Gc(a) => gc(
            &Which::of(&a.target, default_cache)?,
            a.dry_run,
            Duration::from_secs(a.grace),
            a.json,
        ),
    }
}

/// The store a command works on.
enum Which {
    Layout(PathBuf),
    Cache(PathBuf),
}

impl Which {
    fn of(t: &StoreTarget, default_cache: Option<PathBuf>) -> Result<Which> {
        match (&t.layout, t.cache, &t.cache_dir) {
            (Some(l), false, None) => Ok(Which::Layout(l.clone())),
            (None, _, Some(d)) => Ok(Which::Cache(d.clone())),
            (None, true, None) => match default_cache {
                Some(d) => Ok(Which::Cache(d)),
                None => {
                    bail!("no default layer cache: XDG_CACHE_HOME and HOME are unset; use --cache-dir DIR")
                }
            },
            (None, false, None) => bail!("name a layout directory, or --cache / --cache-dir DIR"),
            _ => bail!("name either a layout directory or the cache, not both"),
        }
    }

    fn root(&self) -> &Path {
        match self {
            Which::Layout(p) | Which::Cache(p) => p,
        }
    }

    /// The store, once its directories are known to be real directories,
    /// not symlinks: verify never reads and gc never deletes through a link
    /// (it could point at any host directory).
    fn store(&self) -> Result<BlobStore> {
        let root = self.root();
        // Refuses a `blobs` or `blobs/sha256` that is a symlink.
        let store = BlobStore::open(root)?;
        if !real_dir(&root.join("blobs/sha256"))? {
            match self {
                Which::Layout(_) => bail!("{} is not an OCI image layout (no blobs/sha256)", root.display()),
                Which::Cache(_) => bail!("{} is not a layer cache (no blobs/sha256)", root.display()),
            }
        }
        if let Which::Cache(_) = self {
            for sub in [bake_build::LAYERS_DIR, bake_build::EFFECTS_DIR] {
                real_dir(&root.join(sub))?;
            }
        }
        Ok(store)
    }

    /// The layer cache's store of uncompressed layers (`plain/`, by
    /// diffID), when there is one; checked like the main store.
    fn plain_store(&self) -> Result<Option<BlobStore>> {
        let Which::Cache(root) = self else { return Ok(None) };
        let dir = root.join(bake_build::PLAIN_DIR);
        if !real_dir(&dir)? {
            return Ok(None);
        }
        let store = BlobStore::open(&dir)?;
        if !real_dir(&dir.join("blobs/sha256"))? {
            return Ok(None);
        }
        Ok(Some(store))
    }
}

/// Whether `path` is a directory (not following a link); an error naming it
/// when it is a symlink or anything else.
fn real_dir(path: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(true),
        Ok(m) => bail!(
            "{} is {}, not a directory: bake does not follow it",
            path.display(),
            bake_store::kind_of(m.file_type())
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot stat {}", path.display())),
    }
}

/// One name in `blobs/sha256/`.
enum Item {
    Blob(Digest, std::fs::Metadata),
    Temp(PathBuf, std::fs::Metadata),
    /// A name that is not a digest, or a blob name that is not a regular file.
    Stray(PathBuf, &'static str),
}

fn list(store: &BlobStore) -> Result<Vec<Item>> {
    let dir = store.root().join("blobs/sha256");
    let mut items = Vec::new();
    let mut names: Vec<_> = fs_err::read_dir(&dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let meta = fs_err::symlink_metadata(&path)?;
        let name = name.to_string_lossy();
        if name.starts_with(".tmp-") {
            items.push(Item::Temp(path, meta));
        } else if let Ok(d) = Digest::from_hex(&name) {
            if meta.is_file() {
                items.push(Item::Blob(d, meta));
            } else {
                items.push(Item::Stray(path, kind(&meta)));
            }
        } else {
            items.push(Item::Stray(path, "not a digest"));
        }
    }
    Ok(items)
}

fn kind(meta: &std::fs::Metadata) -> &'static str {
    let ft = meta.file_type();
    if ft.is_symlink() {
        "a symlink"
    } else if ft.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

fn verify(which: &Which, json_out: bool) -> Result<()> {
    let store = which.store()?;
    let mut blobs = 0u64;
    let mut bytes = 0u64;
    let mut corrupt = Vec::new();
    let mut strays = Vec::new();
    let mut temps = Vec::new();
    let plain = which.plain_store()?;
    let mut items = Vec::new();
    for s in std::iter::once(&store).chain(plain.as_ref()) {
        items.extend(list(s)?.into_iter().map(|i| (s, i)));
    }
    for (store, item) in items {
        match item {
            Item::Blob(d, meta) => {
                blobs += 1;
                bytes += meta.len();
                match store.verify(&d) {
                    Ok(()) => {}
                    Err(StoreError::Corrupt { digest, path, actual }) => corrupt.push((digest, path, actual)),
                    Err(e) => return Err(e).with_context(|| format!("cannot read blob {d}")),
                }
            }
            Item::Temp(p, _) => temps.push(p),
            Item::Stray(p, why) => strays.push((p, why)),
        }
    }
    // A layout must also hold everything its index reaches.
    let (missing, unreadable) = match which {
        Which::Layout(dir) => match Layout::open(dir)
            .map_err(anyhow::Error::from)
            .and_then(|l| reachable(&l, &store))
        {
            Ok(r) => (r.missing, None),
            Err(e) => (BTreeMap::new(), Some(format!("{e:#}"))),
        },
        Which::Cache(_) => (BTreeMap::new(), None),
    };
    let ok = corrupt.is_empty() && strays.is_empty() && missing.is_empty() && unreadable.is_none();
    let mut out = std::io::stdout().lock();
    if json_out {
        let v = json!({
            "store": which.root().display().to_string(),
            "ok": ok,
            "blobs": blobs,
            "bytes": bytes,
            "corrupt": corrupt.iter().map(|(d, p, a)| json!({
                "digest": d.to_string(), "path": p.display().to_string(), "actual": a.to_string(),
            })).collect::<Vec<_>>(),
            "missing": missing.iter().map(|(d, by)| json!({"digest": d.to_string(), "referencedBy": by})).collect::<Vec<_>>(),
            "notBlobs": strays.iter().map(|(p, why)| json!({"path": p.display().to_string(), "reason": why})).collect::<Vec<_>>(),
            "tempFiles": temps.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "unreadable": unreadable,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        for (d, p, a) in &corrupt {
            writeln!(out, "corrupt   {d} at {}: its content hashes to {a}", p.display())?;
        }
        for (d, by) in &missing {
            writeln!(out, "missing   {d} (referenced by {by})")?;
        }
        for (p, why) in &strays {
            writeln!(out, "not a blob {} ({why})", p.display())?;
        }
        if let Some(e) = &unreadable {
            writeln!(out, "unreadable {e}")?;
        }
        for p in &temps {
            writeln!(
                out,
                "leftover  {} (an interrupted write; bake store gc removes it)",
                p.display()
            )?;
        }
        writeln!(
            out,
            "verified {blobs} blobs ({}) in {}",
            crate::commands::human_size(bytes),
            which.root().display()
        )?;
    }
    out.flush()?;
    if !ok {
        let err = anyhow::anyhow!(
            "{} has {} corrupt, {} missing and {} stray blobs{}",
            which.root().display(),
            corrupt.len(),
            missing.len(),
            strays.len(),
            if unreadable.is_some() {
                ", and its index cannot be followed"
            } else {
                ""
            }
        );
        // With --json the report above already says all this.
        return Err(if json_out {
            crate::ReportedInJson(err).into()
        } else {
            err
        });
    }
    Ok(())
}

/// What a layout's index reaches.
struct Reach {
    present: BTreeSet<Digest>,
    /// Reachable blobs that are not in the store, with who names them.
    missing: BTreeMap<Digest, String>,
}

fn is_index_or_manifest(mt: &str) -> bool {
    matches!(
        mt,
        media_type::OCI_MANIFEST
            | media_type::OCI_INDEX
            | media_type::DOCKER_MANIFEST
            | media_type::DOCKER_MANIFEST_LIST
    )
}

/// Walks from `index.json`: every descriptor found in a reachable JSON
/// document (manifest, index, or any JSON blob) is reachable too. A
/// manifest or index that is missing or unreadable is an error: what it
/// references cannot be known.
fn reachable(layout: &Layout, store: &BlobStore) -> Result<Reach> {
    let mut reach = Reach {
        present: BTreeSet::new(),
        missing: BTreeMap::new(),
    };
    let mut queue: Vec<(String, Digest, String)> = layout
        .index()?
        .into_iter()
        .map(|d| (d.media_type, d.digest, "index.json".to_owned()))
        .collect();
    let mut seen = BTreeSet::new();
    while let Some((mt, digest, by)) = queue.pop() {
        if !seen.insert(digest.clone()) {
            continue;
        }
        let size = match store.size(&digest) {
            Ok(s) => s,
            // A symlink or fifo in a blob's place is not the blob.
            Err(StoreError::Missing(..) | StoreError::NotAFile { .. }) => {
                if is_index_or_manifest(&mt) {
                    bail!("{by} references {mt} {digest}, which is missing: cannot tell what it references");
                }
                reach.missing.insert(digest, by);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        reach.present.insert(digest.clone());
        let json_like = is_index_or_manifest(&mt) || mt.ends_with("+json") || mt.ends_with("/json");
        if !json_like || size > MAX_JSON_SIZE {
            if is_index_or_manifest(&mt) {
                bail!(
                    "{mt} {digest} is {size} bytes, more than {MAX_JSON_SIZE}: cannot tell what it references"
                );
            }
            continue;
        }
        let bytes = store
            .read_verified(&digest)
            .with_context(|| format!("cannot read {mt} {digest}, referenced by {by}"))?;
        let doc: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) if is_index_or_manifest(&mt) => {
                bail!("{mt} {digest} is not valid JSON ({e}): cannot tell what it references")
            }
            Err(_) => continue,
        };
        let mut found = Vec::new();
        descriptors(&doc, &mut found);
        for (child_mt, child) in found {
            queue.push((child_mt, child, format!("{digest}")));
        }
    }
    Ok(reach)
}

/// Every `{"digest": "sha256:…", "mediaType": …}` object in `v`.
fn descriptors(v: &Value, out: &mut Vec<(String, Digest)>) {
    match v {
        Value::Object(m) => {
            if let Some(d) = m
                .get("digest")
                .and_then(Value::as_str)
                .and_then(|d| d.parse().ok())
            {
                let mt = m
                    .get("mediaType")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                out.push((mt, d));
            }
            for child in m.values() {
                descriptors(child, out);
            }
        }
        Value::Array(a) => {
            for child in a {
                descriptors(child, out);
            }
        }
        _ => {}
    }
}

fn older_than(t: SystemTime, grace: Duration, now: SystemTime) -> bool {
    now.duration_since(t).is_ok_and(|age| age >= grace)
}

fn ctime(meta: &std::fs::Metadata) -> SystemTime {
    let secs = u64::try_from(meta.ctime()).unwrap_or(0);
    let nanos = u32::try_from(meta.ctime_nsec()).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
}

fn gc(which: &Which, dry_run: bool, grace: Duration, json_out: bool) -> Result<()> {
    let store = which.store()?;
    // A layout is locked while gc decides and deletes, so no tag is added
    // meanwhile; the layer cache has no index to lock (grace protects it).
    let (keep, keep_effects, _lock) = match which {
        Which::Layout(dir) => {
            let layout = Layout::open(dir)?;
            let lock = layout.lock()?;
            (reachable(&layout, &store)?.present, BTreeSet::new(), Some(lock))
        }
        Which::Cache(root) => {
            let (blobs, diff_ids) = bake_build::cache_references(root)
                .with_context(|| format!("cannot read the cache entries in {}", root.display()))?;
            (blobs, diff_ids, None)
        }
    };
    let now = SystemTime::now();
    let mut removed: Vec<(String, u64)> = Vec::new();
    let mut kept_recent = 0u64;
    let mut temp_dirs = vec![which.root().to_path_buf()];
    if let Which::Cache(root) = which {
        temp_dirs.push(root.join(bake_build::LAYERS_DIR));
        temp_dirs.push(root.join(bake_build::EFFECTS_DIR));
    }
    let mut remove = |path: &Path, what: String, size: u64| -> Result<()> {
        if !dry_run {
            match fs_err::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        removed.push((what, size));
        Ok(())
    };
    for item in list(&store)? {
        match item {
            Item::Blob(d, meta) if !keep.contains(&d) => {
                if older_than(ctime(&meta), grace, now) {
                    remove(&store.path(&d), d.to_string(), meta.len())?;
                } else {
                    kept_recent += 1;
                }
            }
            Item::Temp(p, meta) if meta.modified().is_ok_and(|m| older_than(m, grace, now)) => {
                remove(&p, p.display().to_string(), meta.len())?;
            }
            _ => {}
        }
    }
    // The cache's records of what layers do to dpkg's status file
    // (`effects/<diffID hex>`): kept for layers an entry names; others (a
    // base's layers among them) are cheap to recompute once, as are the
    // records of a base's symlinks (`effects/links-<hex>`), removed once
    // older than the grace period.
    if let Which::Cache(root) = which {
        let dir = root.join(bake_build::EFFECTS_DIR);
        if let Ok(entries) = fs_err::read_dir(&dir) {
            for e in entries {
                let e = e?;
                let name = e.file_name().to_string_lossy().into_owned();
                let meta = fs_err::symlink_metadata(e.path())?;
                if name.starts_with(".tmp-") || !meta.is_file() {
                    continue;
                }
                let named = Digest::from_hex(&name).is_ok_and(|d| keep_effects.contains(&d));
                if !named && meta.modified().is_ok_and(|m| older_than(m, grace, now)) {
                    remove(&e.path(), e.path().display().to_string(), meta.len())?;
                }
            }
        }
    }
    // The uncompressed copies of layers below run steps (`plain/`): each
    // use refreshes a copy's mtime, and one unused for longer than the
    // grace period goes, whoever names its diffID (a build without it
    // decompresses the layer again).
    if let Some(plain) = which.plain_store()? {
        for item in list(&plain)? {
            match item {
                Item::Blob(d, meta) => {
                    if meta.modified().is_ok_and(|m| older_than(m, grace, now)) {
                        remove(&plain.path(&d), plain.path(&d).display().to_string(), meta.len())?;
                    } else {
                        kept_recent += 1;
                    }
                }
                Item::Temp(p, meta) if meta.modified().is_ok_and(|m| older_than(m, grace, now)) => {
                    remove(&p, p.display().to_string(), meta.len())?;
                }
                _ => {}
            }
        }
    }
    // Temp files of index.json and cache-entry rewrites.
    for dir in temp_dirs {
        let Ok(entries) = fs_err::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let e = e?;
            let meta = fs_err::symlink_metadata(e.path())?;
            let is_temp = e.file_name().to_string_lossy().starts_with(".tmp-") && meta.is_file();
            if is_temp && meta.modified().is_ok_and(|m| older_than(m, grace, now)) {
                remove(&e.path(), e.path().display().to_string(), meta.len())?;
            }
        }
    }
    let freed: u64 = removed.iter().map(|(_, n)| n).sum();
    let mut out = std::io::stdout().lock();
    if json_out {
        let v = json!({
            "store": which.root().display().to_string(),
            "dryRun": dry_run,
            "removed": removed.iter().map(|(w, n)| json!({"name": w, "size": n})).collect::<Vec<_>>(),
            "freedBytes": freed,
            "kept": keep.len(),
            "keptRecent": kept_recent,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        let verb = if dry_run { "would remove" } else { "removed" };
        for (what, size) in &removed {
            writeln!(out, "{verb} {what} ({})", crate::commands::human_size(*size))?;
        }
        writeln!(
            out,
            "{verb} {} files, {} freed; {} referenced blobs kept{}",
            removed.len(),
            crate::commands::human_size(freed),
            keep.len(),
            if kept_recent > 0 {
                format!(
                    ", {kept_recent} unreferenced but newer than {}s kept",
                    grace.as_secs()
                )
            } else {
                String::new()
            }
        )?;
    }
    Ok(())
}
