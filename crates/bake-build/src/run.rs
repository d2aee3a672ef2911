//! Layers that depend on the layers below them: `deb` steps (which merge
//! dpkg's status file from below) and `run` steps (which run in the root
//! filesystem assembled from below).
//!
//! A layer with a `run` step is built by replaying all its steps, in order,
//! on a scratch copy of the image so far (base + every layer below, applied
//! with whiteouts): consecutive non-`run` steps are written as a plain tar
//! and applied, each `run` step executes in the bake-run sandbox. The layer
//! is the difference between the root before its first step and after its
//! last ([`bake_run::diff`]), read back from disk by `Source::Changes`. The
//! scratch root lives until the next such layer starts or the build ends,
//! so nothing is left behind either way.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bake_layer::{Compression, Context, LayerOptions, ReadLimits, Source};
use bake_recipe::{Layer, Recipe, Step, StepKind};
use bake_store::BlobStore;

use crate::{BuildError, BuiltLayer};

/// The file dpkg keeps its package list in, merged by `deb` steps.
pub(crate) const DPKG_STATUS: &str = "/var/lib/dpkg/status";
/// The largest status file read from below (Debian's full archive is ~20 MB).
pub(crate) const DPKG_STATUS_LIMIT: u64 = 256 << 20;

/// Where run layers keep their scratch root while the layer is written:
/// the tmpfs mounted on its `rootfs` (unmounted first when dropped: fields
/// drop in order), the directory, and the lock on its [`LOCK`] file, held
/// as long as the directory lives.
#[derive(Default)]
pub(crate) struct Scratch(Mutex<Option<(bake_run::RootFs, tempfile::TempDir, Arc<std::fs::File>)>>);

/// The name prefix of scratch directories in the temp dir.
const SCRATCH_PREFIX: &str = "bake-run-";
/// The file in a scratch directory its build holds locked: a scratch
/// directory whose lock can be taken belongs to a bake that died.
const LOCK: &str = "lock";

/// Locks a new scratch directory: the lock is taken on a file of another
/// name, then renamed to [`LOCK`], so no other build ever sees it unlocked.
fn lock_scratch(dir: &Path) -> std::io::Result<std::fs::File> {
    let taking = dir.join("lock-taking");
    let file = fs_err::File::create(&taking)?.into_parts().0;
    fs4::FileExt::lock(&file)?;
    fs_err::rename(&taking, dir.join(LOCK))?;
    Ok(file)
}

/// Removes the scratch directories in `tmp_dir` left by builds that died
/// (`kill -9`, a crash): their lock is free. Their containers are killed
/// and deleted first. Best effort: what cannot be removed stays. Links
/// are never followed (only real directories are removed, and
/// `remove_dir_all` does not follow links inside).
fn remove_stale_scratch(tmp_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp_dir) else {
        return;
    };
    for e in entries.flatten() {
        if !e
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(SCRATCH_PREFIX))
        {
            continue;
        }
        let dir = e.path();
        if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let lock = dir.join(LOCK);
        if !std::fs::symlink_metadata(&lock).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let Ok(file) = std::fs::File::open(&lock) else {
            continue;
        };
        if fs4::FileExt::try_lock(&file).is_err() {
            continue;
        }
        bake_run::Sandbox {
            runtime: PathBuf::from("runc"),
            work: dir.join("sandbox"),
            resolv_conf: PathBuf::new(),
            interrupt: bake_run::Interrupt::default(),
            hold: None,
        }
        .kill_all();
        // Its root may still be mounted: a tmpfs holding memory.
        bake_run::rootfs::unmount(&dir.join("rootfs"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Everything [`sources`] needs besides the layer.
pub(crate) struct Env<'a> {
    pub recipe: &'a Recipe,
    pub context: &'a Context,
    pub options: &'a LayerOptions,
    /// Holds the blobs of every layer below (base layers included).
    pub store: &'a BlobStore,
    pub scratch: &'a Scratch,
    /// Keeps the layers below run steps uncompressed, for the next build.
    pub cache: Option<&'a crate::cache::Cache>,
    /// Bounds on every archive read (unpack, `.deb` data, lower layers).
    pub limits: &'a ReadLimits,
    /// Stops a running `run` step (its container is killed); the scratch
    /// root goes with the error.
    pub interrupt: &'a bake_run::Interrupt,
}

/// The sources of `layer`'s tar; `below` holds every layer under it, base
/// first (only read when the layer depends on them). `output` takes each
/// line its `run` steps print, `warn` each warning of the steps applied
/// to a run layer's root (the layer's own are the caller's).
pub(crate) fn sources(
    env: &Env<'_>,
    layer: &Layer,
    below: &[BuiltLayer],
    output: &mut dyn FnMut(&[u8]),
    warn: &mut dyn FnMut(String),
) -> Result<Vec<Source>, BuildError> {
    let has_run = layer.steps.iter().any(|s| matches!(s.kind, StepKind::Run(_)));
    if has_run {
        return run_layer(env, layer, below, output, warn);
    }
    let mut sources = crate::layer_sources(env.recipe, layer, env.context)?;
    if layer.reads_below() {
        let blobs = blob_paths(env.store, below);
        let status = bake_layer::read_file_from_layers(&blobs, DPKG_STATUS, DPKG_STATUS_LIMIT, env.limits)
            .map_err(|source| BuildError::Step {
                pos: Box::new(layer.pos.clone()),
                source,
            })?;
        if let Some(status) = status {
            sources.push(Source::DpkgBelow { status });
        }
    }
    Ok(sources)
}

fn blob_paths(store: &BlobStore, layers: &[BuiltLayer]) -> Vec<PathBuf> {
    layers.iter().map(|l| store.path(&l.descriptor.digest)).collect()
}

/// Applies the layer `lower` to a run step's `rootfs` from its plain tar:
/// the cache's copy when there is one (kept from an earlier build), else
/// decompressed once now (into the cache, or into `scratch` without one)
/// instead of once per reading pass. The bytes applied are the diffID's
/// in every case, so the root is the same, readdir order included.
fn apply_lower(
    env: &Env<'_>,
    lower: &BuiltLayer,
    rootfs: &Path,
    scratch: &Path,
    pos: &bake_recipe::Pos,
    warn: &mut dyn FnMut(String),
) -> Result<(), BuildError> {
    let blob = env.store.path(&lower.descriptor.digest);
    let step = |source: bake_layer::LayerError| BuildError::Step {
        pos: Box::new(pos.clone()),
        source: renamed(source, &blob),
    };
    let diff_id = &lower.diff_id;
    let Some(cache) = env.cache else {
        let store = BlobStore::open(&scratch.join("plain")).map_err(|source| store_err(lower, source))?;
        let plain = decompress_into(&store, &blob, diff_id, lower, env.limits).map_err(|e| e.at(pos))?;
        let applied = bake_layer::apply_layer_with_limits(&plain, rootfs, env.limits);
        fs_err::remove_file(&plain).map_err(BuildError::Io)?;
        return applied.map_err(step);
    };
    let plain = cache.plain().path(diff_id);
    if cache.plain().has(diff_id) {
        match bake_layer::apply_plain_layer(&plain, rootfs, env.limits, diff_id).map_err(step)? {
            bake_layer::PlainApplied::Applied => {
                cache.touch_plain(diff_id);
                return Ok(());
            }
            bake_layer::PlainApplied::Mismatch { actual } => {
                warn(format!(
                    "layer cache: the uncompressed copy of layer {diff_id} ({}) hashes to {actual}: removed, \
                     the layer's blob is used",
                    plain.display()
                ));
                fs_err::remove_file(&plain).map_err(BuildError::Io)?;
            }
        }
    }
    let plain = decompress_into(cache.plain(), &blob, diff_id, lower, env.limits).map_err(|e| e.at(pos))?;
    bake_layer::apply_layer_with_limits(&plain, rootfs, env.limits).map_err(step)
}

/// Why [`decompress_into`] failed.
enum Decompress {
    Layer(bake_layer::LayerError),
    Build(BuildError),
}

impl Decompress {
    fn at(self, pos: &bake_recipe::Pos) -> BuildError {
        match self {
            Decompress::Layer(source) => BuildError::Step {
                pos: Box::new(pos.clone()),
                source,
            },
            Decompress::Build(e) => e,
        }
    }
}

/// Decompresses `blob` into `store` as the blob `diff_id` (renamed into
/// place only if its bytes hash to it); returns its path.
fn decompress_into(
    store: &BlobStore,
    blob: &Path,
    diff_id: &bake_digest::Digest,
    lower: &BuiltLayer,
    limits: &ReadLimits,
) -> Result<PathBuf, Decompress> {
    let build = |source| Decompress::Build(store_err(lower, source));
    let mut writer = store.writer().map_err(build)?;
    bake_layer::decompress_layer(blob, limits, &mut writer).map_err(Decompress::Layer)?;
    writer.finish_expecting(diff_id).map_err(build)?;
    Ok(store.path(diff_id))
}

fn store_err(lower: &BuiltLayer, source: bake_store::StoreError) -> BuildError {
    BuildError::Store {
        layer: format!("{} ({})", lower.name, lower.descriptor.digest),
        source,
    }
}

/// An error applying a plain copy names the layer's blob, as applying the
/// blob itself would have.
fn renamed(error: bake_layer::LayerError, blob: &Path) -> bake_layer::LayerError {
    match error {
        bake_layer::LayerError::Apply { entry, reason, .. } => bake_layer::LayerError::Apply {
            layer: blob.to_owned(),
            entry,
            reason,
        },
        bake_layer::LayerError::ApplyIo { path, source, .. } => bake_layer::LayerError::ApplyIo {
            layer: blob.to_owned(),
            path,
            source,
        },
        other => other,
    }
}

fn run_layer(
    env: &Env<'_>,
    layer: &Layer,
    below: &[BuiltLayer],
    output: &mut dyn FnMut(&[u8]),
    warn: &mut dyn FnMut(String),
) -> Result<Vec<Source>, BuildError> {
    let sandbox = |work: PathBuf, hold: Option<Arc<std::fs::File>>| bake_run::Sandbox {
        runtime: PathBuf::from("runc"),
        work,
        resolv_conf: PathBuf::from("/etc/resolv.conf"),
        interrupt: env.interrupt.clone(),
        hold,
    };
    // Root and runc, before the work of assembling the root filesystem.
    let first_run = layer.steps.iter().find(|s| matches!(s.kind, StepKind::Run(_)));
    sandbox(PathBuf::new(), None)
        .check()
        .map_err(|error| BuildError::Run {
            pos: Box::new(first_run.map_or(&layer.pos, |s| &s.pos).clone()),
            error,
        })?;
    // The previous run layer's root is no longer needed: its tar is written.
    let mut slot = env.scratch.0.lock().unwrap_or_else(|p| p.into_inner());
    *slot = None;
    remove_stale_scratch(&env.options.tmp_dir);
    let scratch = tempfile::Builder::new()
        .prefix(SCRATCH_PREFIX)
        .tempdir_in(&env.options.tmp_dir)
        .map_err(|source| {
            BuildError::Io(std::io::Error::new(
                source.kind(),
                format!(
                    "cannot create a scratch directory in {}: {source}",
                    env.options.tmp_dir.display()
                ),
            ))
        })?;
    let rootfs = scratch.path().join("rootfs");
    let io_at = |path: &Path| {
        let path = path.to_owned();
        move |e: std::io::Error| {
            BuildError::Io(std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
        }
    };
    let lock = Arc::new(lock_scratch(scratch.path()).map_err(io_at(scratch.path()))?);
    fs_err::create_dir(&rootfs).map_err(io_at(&rootfs))?;
    // The same world on every machine: a tmpfs of fixed options, filled
    // in a fixed order (see bake_run::rootfs).
    let mounted = bake_run::RootFs::mount(&rootfs).map_err(|error| BuildError::Run {
        pos: Box::new(first_run.map_or(&layer.pos, |s| &s.pos).clone()),
        error,
    })?;
    for lower in below {
        apply_lower(env, lower, &rootfs, scratch.path(), &layer.pos, warn)?;
    }

    let before = bake_run::Snapshot::take(&rootfs).map_err(|source| BuildError::Run {
        pos: Box::new(layer.pos.clone()),
        error: source,
    })?;
    let mut exclusions = bake_run::Exclusions::default();
    let sandbox = sandbox(scratch.path().join("sandbox"), Some(Arc::clone(&lock)));
    fs_err::create_dir(&sandbox.work).map_err(io_at(&sandbox.work))?;

    // Consecutive non-run steps, written and applied together.
    let mut pending: Vec<Step> = Vec::new();
    let mut first = 0;
    for (i, step) in layer.steps.iter().enumerate() {
        let StepKind::Run(run) = &step.kind else {
            if pending.is_empty() {
                first = i;
            }
            pending.push(step.clone());
            continue;
        };
        apply_steps(env, layer, &pending, first, &rootfs, scratch.path(), warn)?;
        pending.clear();
        let epoch = env.options.epoch;
        let step_spec = bake_run::Step {
            commands: &run.commands,
            network: run.network,
            timeout: Duration::from_secs(run.timeout),
            user: run.user.as_deref(),
            env: &run.env,
            workdir: run.workdir.as_deref(),
            epoch,
        };
        let used = sandbox
            .exec(&rootfs, &step_spec, output)
            .map_err(|error| match error {
                bake_run::RunError::Interrupted { .. } => BuildError::Interrupted,
                error => BuildError::Run {
                    pos: Box::new(step.pos.clone()),
                    error,
                },
            })?;
        exclusions.mounts.extend(used.mounts);
    }
    apply_steps(env, layer, &pending, first, &rootfs, scratch.path(), warn)?;

    let after = bake_run::Snapshot::take(&rootfs).map_err(|source| BuildError::Run {
        pos: Box::new(layer.pos.clone()),
        error: source,
    })?;
    exclusions.mounts.sort();
    exclusions.mounts.dedup();
    let changes = bake_run::diff(&before, &after, &exclusions);
    *slot = Some((mounted, scratch, lock));
    Ok(vec![Source::Changes {
        root: rootfs,
        changes,
    }])
}

/// Writes `steps` (the layer's steps from index `first`) as a plain tar and
/// applies it to `rootfs`. `deb` steps merge the status file found there.
/// What the tar could not keep goes to `warn`.
fn apply_steps(
    env: &Env<'_>,
    layer: &Layer,
    steps: &[Step],
    first: usize,
    rootfs: &Path,
    scratch: &Path,
    warn: &mut dyn FnMut(String),
) -> Result<(), BuildError> {
    if steps.is_empty() {
        return Ok(());
    }
    let part = Layer {
        name: layer.name.clone(),
        pos: layer.pos.clone(),
        steps: steps.to_vec(),
    };
    let mut sources = crate::layer_sources(env.recipe, &part, env.context)?;
    if let (true, Some(status)) = (part.reads_below(), read_plain(rootfs, DPKG_STATUS)) {
        sources.push(Source::DpkgBelow { status });
    }
    let options = LayerOptions {
        compression: Compression::None,
        ..env.options.clone()
    };
    let tar = scratch.join(format!("steps-{first}.tar"));
    let file = fs_err::File::create(&tar).map_err(BuildError::Io)?;
    let step_err = |source: bake_layer::LayerError| {
        let pos = source
            .source_index()
            .and_then(|i| steps.get(i))
            .map_or(&layer.pos, |s| &s.pos);
        BuildError::Step {
            pos: Box::new(pos.clone()),
            source,
        }
    };
    let (_, out) =
        bake_layer::write_layer_with_limits(&sources, &options, env.limits, file).map_err(step_err)?;
    for dropped in &out.dropped_xattrs {
        warn(dropped.to_string());
    }
    bake_layer::apply_layer_with_limits(&tar, rootfs, env.limits).map_err(step_err)?;
    fs_err::remove_file(&tar).map_err(BuildError::Io)?;
    Ok(())
}

/// A regular file in `rootfs` whose every parent is a real directory (no
/// symlink is followed, so nothing outside the root is read).
fn read_plain(rootfs: &Path, image_path: &str) -> Option<Vec<u8>> {
    let mut host = rootfs.to_path_buf();
    let parts: Vec<&str> = image_path.split('/').filter(|p| !p.is_empty()).collect();
    let (last, dirs) = parts.split_last()?;
    for dir in dirs {
        host.push(dir);
        if !std::fs::symlink_metadata(&host).is_ok_and(|m| m.is_dir()) {
            return None;
        }
    }
    host.push(last);
    match std::fs::symlink_metadata(&host) {
        Ok(m) if m.is_file() && m.len() <= DPKG_STATUS_LIMIT => std::fs::read(&host).ok(),
        _ => None,
    }
}
