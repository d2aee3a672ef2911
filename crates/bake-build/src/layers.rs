//! The layer loop: decides which layers must be built, builds those in
//! parallel, and takes the others from the cache.
//!
//! A layer made only of `copy`, `file`, `dir`, `symlink` and `unpack` steps
//! does not depend on the layers below it: its key is computed up front and
//! every such layer that misses the cache is built at once, several at a
//! time (at most one per core; each also compresses on several threads).
//! Any other layer (`run`, `deb`) depends on what is below: it is built in
//! order, after all layers below it are known. A `run` layer is keyed on
//! the diffIDs of every layer below; a `deb` layer only on dpkg's status
//! file as the layers below leave it (see [`Cache::effect`]).

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bake_digest::Digest;
use bake_image::Descriptor;
use bake_layer::{Context, LayerError, LayerOptions, ReadLimits, Source};
use bake_recipe::{Layer, StepKind};
use bake_store::BlobStore;

use crate::cache::{Cache, Effect, Entry, KeyWriter, Stat};
use crate::{BuildError, BuiltLayer, OUTPUT_FORMAT_VERSION};

/// What a build reports while it runs, for progress displays. Methods are
/// called from several threads at once; indexes count the recipe's layers
/// from 0 (base layers are not reported).
pub trait Progress: Sync {
    /// The recipe's layers, before any work starts.
    fn plan(&self, _names: &[&str]) {}
    /// Layer `index` missed the cache and is being built.
    fn layer_started(&self, _index: usize) {}
    /// `bytes` more compressed bytes of layer `index` were written.
    fn layer_bytes(&self, _index: usize, _bytes: u64) {}
    /// Layer `index` is done, built (in `elapsed`) or taken from the cache.
    fn layer_finished(&self, _index: usize, _layer: &BuiltLayer, _elapsed: Duration) {}
    /// One line printed by a `run` step of layer `index` (stdout and stderr
    /// merged, without its newline), as it arrives. Bytes as the command
    /// wrote them: not necessarily UTF-8. The failing step's last lines are
    /// also in its error.
    fn output(&self, _index: usize, _line: &[u8]) {}
    /// Base layer `index` (from 0), which a docker-archive holds
    /// uncompressed as `from`, is `to` in the image: compressed now with
    /// `compression` (its id), or taken from the cache (`cached`).
    fn base_layer_compressed(
        &self,
        _index: usize,
        _from: &Descriptor,
        _to: &Descriptor,
        _compression: &str,
        _cached: bool,
    ) {
    }
    /// Something about layer `index` the user should know, though the
    /// build goes on: one line, without `warning:` or the layer's name
    /// (e.g. extended attributes the layer could not keep, naming the
    /// file). Given when the layer is built, not when it comes from the
    /// cache.
    fn warning(&self, _index: usize, _message: &str) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}

/// Turns a recipe layer into its tar's sources. `below` holds every layer
/// under it (base first) for layers that depend on them; it is empty for
/// the others. `output` takes each line a `run` step prints.
/// `warn` takes each warning (see [`Progress::warning`]).
pub(crate) type SourcesFn<'a> = dyn Fn(
        &Layer,
        &[BuiltLayer],
        &mut dyn FnMut(&[u8]),
        &mut dyn FnMut(String),
    ) -> Result<Vec<Source>, BuildError>
    + Sync
    + 'a;

/// Everything the loop needs.
pub(crate) struct Plan<'a> {
    pub layers: &'a [Layer],
    pub context: &'a Context,
    pub options: &'a LayerOptions,
    /// Bounds on every archive read (unpack, `.deb` data, lower layers).
    pub limits: &'a ReadLimits,
    pub layout: &'a BlobStore,
    pub cache: Option<&'a Cache>,
    pub base: &'a [BuiltLayer],
    pub sources: &'a SourcesFn<'a>,
    pub progress: &'a dyn Progress,
    /// Raised: no layer starts, and one being written stops at its next
    /// write with [`BuildError::Interrupted`].
    pub interrupt: &'a bake_run::Interrupt,
}

/// Cores this process may use.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Builds (or finds) every layer of the recipe, in recipe order.
pub(crate) fn build_layers(
    plan: &Plan<'_>,
    timings: &mut Vec<(String, Duration)>,
) -> Result<Vec<BuiltLayer>, BuildError> {
    let names: Vec<&str> = plan.layers.iter().map(|l| l.name.as_str()).collect();
    plan.progress.plan(&names);
    let n = plan.layers.len();
    let dependent: Vec<bool> = plan.layers.iter().map(|l| l.reads_below()).collect();
    let started = Instant::now();
    let keying = Mutex::new(Duration::ZERO);
    let mut done: Vec<Option<BuiltLayer>> = (0..n).map(|_| None).collect();

    // Independent layers, several at a time: each job walks and hashes the
    // layer's inputs, looks its key up and builds it on a miss, so hashing
    // one layer overlaps compressing another.
    let independent: Vec<usize> = (0..n).filter(|&i| !dependent[i]).collect();
    let abort = AtomicBool::new(false);
    let results = parallel_map(independent.len(), cores(), |j| {
        if abort.load(Ordering::Relaxed) {
            return Ok(None);
        }
        if plan.interrupt.is_raised() {
            abort.store(true, Ordering::Relaxed);
            return Err(BuildError::Interrupted);
        }
        let i = independent[j];
        let r = keyed(plan, i, &Below::Independent, &keying).and_then(|(key, inputs)| {
            match hit(plan, i, key.as_ref())? {
                Some(layer) => Ok(layer),
                None => build_one(plan, i, &[], key.as_ref(), inputs.as_ref()),
            }
        });
        if r.is_err() {
            abort.store(true, Ordering::Relaxed);
        }
        r.map(Some)
    });
    // Report the failure of the lowest layer that failed.
    for (i, r) in independent.iter().zip(results) {
        if let Some(layer) = r? {
            done[*i] = Some(layer);
        }
    }
    // Dependent layers, in order, on top of everything below.
    for i in (0..n).filter(|&i| dependent[i]) {
        if plan.interrupt.is_raised() {
            return Err(BuildError::Interrupted);
        }
        let mut below: Vec<BuiltLayer> = plan.base.to_vec();
        below.extend(done[..i].iter().flatten().cloned());
        let on = match plan.cache {
            None => Below::Independent,
            Some(_)
                if plan.layers[i]
                    .steps
                    .iter()
                    .any(|s| matches!(s.kind, StepKind::Run(_))) =>
            {
                Below::All(below.iter().map(|l| l.diff_id.clone()).collect())
            }
            Some(cache) => Below::Status(status_below(plan, cache, i, &below)?),
        };
        let (key, inputs) = keyed(plan, i, &on, &keying)?;
        let layer = match hit(plan, i, key.as_ref())? {
            Some(layer) => layer,
            None => build_one(plan, i, &below, key.as_ref(), inputs.as_ref())?,
        };
        done[i] = Some(layer);
    }
    // Time spent computing keys (walks and hashing), summed over layers:
    // it overlaps with building.
    let keying = keying.into_inner().unwrap_or_else(|p| p.into_inner());
    timings.push(("inputs".to_owned(), keying));
    timings.push(("layers".to_owned(), started.elapsed()));
    Ok(done.into_iter().flatten().collect())
}

/// What a layer's key takes from the layers below it.
enum Below {
    /// Nothing: its bytes do not depend on them.
    Independent,
    /// Their diffIDs, base first (a `run` layer sees all of them).
    All(Vec<Digest>),
    /// The digest of dpkg's status file they leave, if any (a `deb` layer
    /// merges it and reads nothing else below).
    Status(Option<Digest>),
}

/// The digest of dpkg's status file as the layers `below` (base first)
/// leave it, from each layer's recorded effect on it; a layer without a
/// record is read once and its effect recorded.
fn status_below(
    plan: &Plan<'_>,
    cache: &Cache,
    index: usize,
    below: &[BuiltLayer],
) -> Result<Option<Digest>, BuildError> {
    let mut status = None;
    for layer in below {
        let effect = match cache.effect(&layer.diff_id) {
            Some(effect) => effect,
            None => {
                let blob = plan.layout.path(&layer.descriptor.digest);
                let effect = bake_layer::file_in_layer(
                    &blob,
                    crate::run::DPKG_STATUS,
                    crate::run::DPKG_STATUS_LIMIT,
                    plan.limits,
                )
                .map_err(|source| BuildError::Step {
                    pos: Box::new(plan.layers[index].pos.clone()),
                    source,
                })?;
                let effect = Effect::of(&effect);
                cache
                    .record_effect(&layer.diff_id, &effect)
                    .map_err(BuildError::Cache)?;
                effect
            }
        };
        match effect {
            Effect::Untouched => {}
            Effect::Removed => status = None,
            Effect::File(digest) => status = Some(digest),
        }
    }
    Ok(status)
}

/// The cache key of layer `index` and what it was computed from (nothing
/// without a cache).
fn keyed(
    plan: &Plan<'_>,
    index: usize,
    below: &Below,
    keying: &Mutex<Duration>,
) -> Result<(Option<Digest>, Option<Inputs>), BuildError> {
    let Some(cache) = plan.cache else {
        return Ok((None, None));
    };
    let started = Instant::now();
    let mut inputs = gather(&plan.layers[index], plan.context)?;
    inputs.digests = cache
        .digests(&inputs.watched, cores())
        .map_err(BuildError::Cache)?;
    let key = key_of(plan, &inputs, below);
    *keying.lock().unwrap_or_else(|p| p.into_inner()) += started.elapsed();
    Ok((Some(key), Some(inputs)))
}

/// Runs `f(0..n)` on up to `threads` threads; results in index order.
pub(crate) fn parallel_map<T: Send>(n: usize, threads: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = threads.clamp(1, n.max(1));
    if threads == 1 {
        return (0..n).map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<(usize, T)>> = Mutex::new(Vec::with_capacity(n));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    let r = f(i);
                    out.lock().unwrap_or_else(|p| p.into_inner()).push((i, r));
                }
            });
        }
    });
    let mut out = out.into_inner().unwrap_or_else(|p| p.into_inner());
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// One part of a layer's key, before file digests are known.
enum Item {
    Bytes(Vec<u8>),
    Tag(&'static [u8]),
    U64(u64),
    /// The content digest of `Inputs::watched[i]`.
    File(usize),
}

/// A layer's key material and the host files it read.
struct Inputs {
    items: Vec<Item>,
    watched: Vec<(PathBuf, Stat)>,
    /// The content digests of `watched`, in order.
    digests: Vec<Digest>,
}

/// Walks what a layer's steps read from the host.
fn gather(layer: &Layer, context: &Context) -> Result<Inputs, BuildError> {
    let mut items = vec![Item::U64(layer.steps.len() as u64)];
    let mut watched = Vec::new();
    for (index, step) in layer.steps.iter().enumerate() {
        let at = |source: LayerError| BuildError::Step {
            pos: Box::new(step.pos.clone()),
            source,
        };
        let io = |path: &PathBuf| {
            let path = path.clone();
            move |source: io::Error| BuildError::Step {
                pos: Box::new(step.pos.clone()),
                source: LayerError::Io { index, path, source },
            }
        };
        // The definition, as the recipe resolved it (variables
        // interpolated, defaults applied; context-relative paths).
        items.push(Item::Bytes(format!("{:?}", step.kind).into_bytes()));
        match &step.kind {
            StepKind::Copy {
                src,
                exclude,
                mtime,
                capabilities,
                ..
            } => copy_items(
                context,
                index,
                step,
                src,
                exclude,
                *mtime,
                *capabilities,
                &mut items,
                &mut watched,
            )?,
            StepKind::Unpack { src, .. } => {
                let host = context.resolve(src).map_err(at)?;
                let m = fs_err::symlink_metadata(&host).map_err(io(&host))?;
                // A fifo or device is refused here, naming the step, before
                // the cache would try to hash it.
                bake_layer::open_input(&host).map_err(io(&host))?;
                items.push(Item::File(watched.len()));
                watched.push((host, Stat::of(&m)));
            }
            // `file`, `dir`, `symlink`: the definition is all there is.
            // `deb` is pinned by its sha256 in the definition; `run` reads
            // only the layers below, which are in the key as diffIDs. A step
            // kind that reads other host files must list them here.
            _ => {}
        }
    }
    Ok(Inputs {
        items,
        watched,
        digests: Vec::new(),
    })
}

/// The key material of one `copy` step (`src`, resolved in `context`):
/// every node the layer walk reads, with what the layer takes from it —
/// name, kind, size, "any x bit", hardlink grouping (first-seen order), link
/// target, content (as a watched file), and the mtime when the step keeps
/// source mtimes; then the capabilities the files get. The lock
/// ([`copy_input_digest`]) uses exactly this.
#[allow(clippy::too_many_arguments)]
fn copy_items(
    context: &Context,
    index: usize,
    step: &bake_recipe::Step,
    src: &str,
    exclude: &[String],
    mtime: bake_recipe::CopyMtime,
    caps: Option<bake_recipe::FileCaps>,
    items: &mut Vec<Item>,
    watched: &mut Vec<(PathBuf, Stat)>,
) -> Result<(), BuildError> {
    let at = |source: LayerError| BuildError::Step {
        pos: Box::new(step.pos.clone()),
        source,
    };
    let io = |path: &PathBuf| {
        let path = path.clone();
        move |source: io::Error| BuildError::Step {
            pos: Box::new(step.pos.clone()),
            source: LayerError::Io { index, path, source },
        }
    };
    // The capabilities every copied file gets: the value written, so
    // spellings of the same capabilities are one key.
    match caps {
        None => items.push(Item::Tag(b"no capabilities")),
        Some(caps) => {
            items.push(Item::Tag(b"capabilities"));
            items.push(Item::Bytes(caps.to_xattr().to_vec()));
        }
    }
    let host = context.resolve(src).map_err(at)?;
    let exclude = context.copy_excludes(&host, exclude);
    let nodes = bake_layer::copy_inputs(index, &host, &exclude).map_err(at)?;
    items.push(Item::U64(nodes.len() as u64));
    let mut groups: HashMap<(u64, u64), u64> = HashMap::new();
    for node in nodes {
        items.push(Item::Bytes(node.rel.into_bytes()));
        let m = &node.metadata;
        if mtime != bake_recipe::CopyMtime::Epoch {
            // `mtime = "source…"`: host mtimes reach the layer.
            items.push(Item::U64(u64::try_from(m.mtime()).unwrap_or(0)));
        }
        let ft = m.file_type();
        if ft.is_dir() {
            items.push(Item::Tag(b"d"));
        } else if ft.is_file() {
            // What the layer takes from a file: size, "any x
            // bit", hardlink grouping (first-seen order), content.
            let group = if m.nlink() > 1 {
                let next = groups.len() as u64 + 1;
                *groups.entry((m.dev(), m.ino())).or_insert(next)
            } else {
                0
            };
            items.push(Item::Tag(b"f"));
            items.push(Item::U64(m.len()));
            items.push(Item::U64(u64::from(m.mode() & 0o111 != 0)));
            items.push(Item::U64(group));
            items.push(Item::File(watched.len()));
            watched.push((node.path, Stat::of(m)));
        } else if ft.is_symlink() {
            let target = fs_err::read_link(&node.path).map_err(io(&node.path))?;
            items.push(Item::Tag(b"l"));
            items.push(Item::Bytes(target.as_os_str().as_bytes().to_vec()));
        } else {
            // What the layer refuses, refused here too (the cache key and
            // the lock read this walk), with the layer's words.
            return Err(at(bake_layer::unsupported_file(index, &node.path, ft)));
        }
    }
    Ok(())
}

/// What the lock records for a `copy` step: a digest over exactly the key
/// material the layer cache uses for it ([`copy_items`], every file's
/// content read and hashed now), the number of files and their bytes.
pub fn copy_input_digest(
    context: &Context,
    step: &bake_recipe::Step,
) -> Result<(Digest, u64, u64), BuildError> {
    let StepKind::Copy {
        src,
        exclude,
        mtime,
        capabilities,
        ..
    } = &step.kind
    else {
        return Err(BuildError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "copy_input_digest takes a copy step",
        )));
    };
    let (mut items, mut watched) = (Vec::new(), Vec::new());
    copy_items(
        context,
        0,
        step,
        src,
        exclude,
        *mtime,
        *capabilities,
        &mut items,
        &mut watched,
    )?;
    let mut digests = Vec::with_capacity(watched.len());
    let mut bytes = 0u64;
    for (path, _) in &watched {
        let file = bake_layer::open_input(path).map_err(|source| BuildError::Step {
            pos: Box::new(step.pos.clone()),
            source: LayerError::Io {
                index: 0,
                path: path.clone(),
                source,
            },
        })?;
        let mut r = bake_digest::HashingReader::new(io::BufReader::with_capacity(256 * 1024, file));
        io::copy(&mut r, &mut io::sink()).map_err(|source| BuildError::Step {
            pos: Box::new(step.pos.clone()),
            source: LayerError::Io {
                index: 0,
                path: path.clone(),
                source,
            },
        })?;
        let (_, d, n) = r.finish();
        bytes += n;
        digests.push(d);
    }
    let mut k = KeyWriter::new();
    k.str("copy inputs");
    encode_items(&mut k, &items, &digests);
    Ok((k.finish(), watched.len() as u64, bytes))
}

fn encode_items(k: &mut KeyWriter, items: &[Item], digests: &[Digest]) {
    for item in items {
        match item {
            Item::Bytes(b) => k.bytes(b),
            Item::Tag(b) => k.bytes(b),
            Item::U64(n) => k.u64(*n),
            // Every watched file has a digest, or `digests` failed.
            Item::File(i) => k.str(digests.get(*i).map_or("", |d| d.hex())),
        }
    }
}

/// The cache key of a layer (see the `cache` module).
fn key_of(plan: &Plan<'_>, inputs: &Inputs, below: &Below) -> Digest {
    let mut k = KeyWriter::new();
    k.u64(u64::from(OUTPUT_FORMAT_VERSION));
    k.str(&plan.options.compression.id());
    k.u64(plan.options.epoch);
    // The base's symlinks decide where entries below them land.
    k.str("through links");
    k.u64(plan.options.below_links.len() as u64);
    for (path, target) in &plan.options.below_links {
        k.str(path);
        k.str(target);
    }
    encode_items(&mut k, &inputs.items, &inputs.digests);
    match below {
        Below::Independent => k.str("independent"),
        Below::All(diff_ids) => {
            k.str("on top of");
            k.u64(diff_ids.len() as u64);
            for d in diff_ids {
                k.str(&d.to_string());
            }
        }
        Below::Status(status) => {
            k.str("on dpkg status");
            k.str(
                &status
                    .as_ref()
                    .map_or_else(|| "none".to_owned(), |d| d.to_string()),
            );
        }
    }
    k.finish()
}

/// The layer from the cache, made present in the layout, if its entry is sound.
fn hit(plan: &Plan<'_>, index: usize, key: Option<&Digest>) -> Result<Option<BuiltLayer>, BuildError> {
    let (Some(cache), Some(key)) = (plan.cache, key) else {
        return Ok(None);
    };
    let Some(entry) = cache.lookup(key).map_err(BuildError::Cache)? else {
        return Ok(None);
    };
    if entry.media_type != plan.options.compression.media_type() {
        return Ok(None);
    }
    cache
        .materialise(&entry, plan.layout)
        .map_err(BuildError::Cache)?;
    cache.layers_cached.fetch_add(1, Ordering::Relaxed);
    let layer = BuiltLayer {
        name: plan.layers[index].name.clone(),
        descriptor: Descriptor::new(entry.media_type, entry.digest, entry.size),
        diff_id: entry.diff_id,
        from_base: false,
        cached: true,
        compressed: false,
    };
    plan.progress.layer_finished(index, &layer, Duration::ZERO);
    Ok(Some(layer))
}

/// Builds one layer into the cache's store (or the layout's, without a
/// cache), then records it under `key` unless an input changed meanwhile.
fn build_one(
    plan: &Plan<'_>,
    index: usize,
    below: &[BuiltLayer],
    key: Option<&Digest>,
    inputs: Option<&Inputs>,
) -> Result<BuiltLayer, BuildError> {
    let layer = &plan.layers[index];
    plan.progress.layer_started(index);
    let started = Instant::now();
    let sources = (plan.sources)(
        layer,
        below,
        &mut |line| plan.progress.output(index, line),
        &mut |message| plan.progress.warning(index, &message),
    )?;
    let store = plan.cache.map_or(plan.layout, |c| c.store());
    let store_err = |source| BuildError::Store {
        layer: layer.name.clone(),
        source,
    };
    let writer = Counting {
        inner: store.writer().map_err(store_err)?,
        index,
        progress: plan.progress,
        interrupt: plan.interrupt,
    };
    let (writer, out) = bake_layer::write_layer_with_limits(&sources, plan.options, plan.limits, writer)
        .map_err(|source| {
            if plan.interrupt.is_raised() {
                // The writer's own error: the temp blob is dropped unnamed.
                return BuildError::Interrupted;
            }
            let pos = source
                .source_index()
                .and_then(|i| layer.steps.get(i))
                .map_or(&layer.pos, |s| &s.pos);
            BuildError::Step {
                pos: Box::new(pos.clone()),
                source,
            }
        })?;
    for dropped in &out.dropped_xattrs {
        plan.progress.warning(index, &dropped.to_string());
    }
    let (digest, size) = writer.inner.finish().map_err(store_err)?;
    let entry = Entry {
        diff_id: out.diff_id,
        digest,
        size,
        media_type: plan.options.compression.media_type().to_owned(),
    };
    if let Some(cache) = plan.cache {
        cache
            .materialise(&entry, plan.layout)
            .map_err(BuildError::Cache)?;
        cache.layers_built.fetch_add(1, Ordering::Relaxed);
        let unchanged = inputs.is_some_and(|g| {
            g.watched
                .iter()
                .all(|(p, s)| std::fs::symlink_metadata(p).is_ok_and(|m| Stat::of(&m) == *s))
        });
        if let (Some(key), true) = (key, unchanged) {
            cache.record(key, &entry).map_err(BuildError::Cache)?;
        }
    }
    let built = BuiltLayer {
        name: layer.name.clone(),
        descriptor: Descriptor::new(entry.media_type, entry.digest, entry.size),
        diff_id: entry.diff_id,
        from_base: false,
        cached: false,
        compressed: false,
    };
    plan.progress.layer_finished(index, &built, started.elapsed());
    Ok(built)
}

/// Reports compressed bytes as they are written, and stops writing when
/// the build is interrupted.
struct Counting<'a, W> {
    inner: W,
    index: usize,
    progress: &'a dyn Progress,
    interrupt: &'a bake_run::Interrupt,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.interrupt.is_raised() {
            return Err(io::Error::other("the build was interrupted"));
        }
        let n = self.inner.write(buf)?;
        self.progress.layer_bytes(self.index, n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
