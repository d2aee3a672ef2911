//! The build: a parsed [`Recipe`](bake_recipe::Recipe) in, an OCI image out.
//!
//! ```text
//! recipe file ──parse──▶ Recipe ──plan──▶ base + layer sources
//!        ──write_layer──▶ blobs in the layout's store ──assemble──▶ config, manifest
//!        ──▶ index.json tags (+ docker-archive)
//! ```
//!
//! This crate decides *what* is built and in which order; the byte formats
//! belong to `bake-layer` (tar, compression) and `bake-image` (JSON, layouts),
//! storage to `bake-store`. It reads no environment variable and no clock:
//! the epoch, variable overrides, output paths and temp directory arrive in
//! [`BuildSettings`], so the same settings always give the same image.
//!
//! Every error that comes from a recipe line names it: a failing step is
//! reported at the step's `file:line:column`, a bad base at the `base` key.
//!
//! Layers come from the layer cache when nothing they depend on changed, and
//! are otherwise built several at a time (`layers` and `cache` modules; the
//! cache directory is a setting too). Nothing about the cache reaches the
//! image: a cached rebuild gives the digest of a cold build.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bake_digest::Digest;
use bake_image::{BaseImage, ConfigSpec, Descriptor, Layout, Platform};
use bake_layer::{Compression, Context, LayerOptions, ReadLimits, Source};
use bake_recipe::{BaseRef, Pos, Recipe, StepKind};

mod cache;
mod compressed;
mod layers;
mod registry;
mod run;
pub use bake_run::Interrupt;
pub use cache::{CacheError, CacheStats, EFFECTS_DIR, LAYERS_DIR, PLAIN_DIR, cache_references};
use fs_err as fs;
pub use layers::{NoProgress, Progress, copy_input_digest};
pub use registry::ResolvedBase;

/// Version of what bake writes: bumped whenever the same recipe would give
/// different bytes (tar normalisation, compression library, JSON layout).
/// It is part of every cache key, never of the image itself.
///
/// 2: layers compressed in fixed 1 MiB chunks (gzip: one member, chunks
/// joined by sync flushes and primed with the previous 32 KiB; zstd: one
/// frame per chunk, with its content size).
/// 3: entries whose path goes through a symlink of the base are written
/// where the link leads (`LayerOptions::below_links`).
/// 4: a docker-archive base's uncompressed layers are compressed with the
/// build's compression (`compressed` module); regular files keep their
/// capabilities (a PAX `SCHILY.xattr.security.capability` record) from
/// archives and `run` steps, where version 3 dropped them.
pub const OUTPUT_FORMAT_VERSION: u32 = 4;

/// A build epoch and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch {
    /// Seconds since 1970: every timestamp in the image.
    pub seconds: u64,
    pub source: EpochSource,
}

/// Where the build epoch came from, in the order they win: an explicit
/// flag over the environment, the environment over the recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochSource {
    /// `--source-date-epoch`.
    Flag,
    /// The `SOURCE_DATE_EPOCH` environment variable.
    Env,
    /// The recipe's `epoch`.
    Recipe,
    /// None of these: 0.
    Default,
}

impl EpochSource {
    /// How `--json` and the human output name it.
    pub fn name(self) -> &'static str {
        match self {
            EpochSource::Flag => "flag",
            EpochSource::Env => "SOURCE_DATE_EPOCH",
            EpochSource::Recipe => "recipe",
            EpochSource::Default => "default",
        }
    }
}

/// Everything a build needs besides the recipe's own content.
#[derive(Debug, Clone)]
pub struct BuildSettings {
    /// The recipe file.
    pub recipe: PathBuf,
    /// `--var` and `BAKE_VAR_*` overrides.
    pub overrides: bake_recipe::Overrides,
    /// The epoch the caller was given (`--source-date-epoch`, else
    /// `SOURCE_DATE_EPOCH`), which wins over the recipe's `epoch`.
    pub epoch: Option<Epoch>,
    /// Where the OCI layout goes; `None` means `<out_root>/<image name>`.
    pub layout: Option<PathBuf>,
    /// The default parent of layouts (`out/`).
    pub out_root: PathBuf,
    /// Also write a docker-archive tarball here.
    pub docker_archive: Option<PathBuf>,
    /// Scratch space for staging unpacked archives.
    pub tmp_dir: PathBuf,
    /// The layer cache directory; `None` builds every layer.
    pub cache_dir: Option<PathBuf>,
    /// How to reach registries for `base = "REGISTRY/REPO@sha256:…"`.
    pub registry: bake_registry::RegistryOptions,
    /// Refuse base references that are not pinned by digest.
    pub locked: bool,
    /// Bounds on reading every archive the build unpacks: `unpack` and
    /// `.deb` steps, the base's layers (for their symlinks, dpkg status and
    /// `run` steps' root), a docker-archive base. `--max-archive-size` sets
    /// [`ReadLimits::max_tar_bytes`]; a layer taken from the cache is not
    /// read again.
    pub limits: ReadLimits,
    /// Files the caller writes for this build besides what bake-build
    /// writes itself (the build log, the lock file): like the layout, the
    /// docker-archive, the cache and the temp directory, no `copy` reads
    /// them when they lie inside the context ([`own_outputs`]).
    pub own_outputs: Vec<PathBuf>,
    /// Raised (by the caller's signal handler) to stop the build: a running
    /// `run` step's container is killed, a layer being written stops, a
    /// base being pulled is dropped, no tag is set, and the build returns
    /// [`BuildError::Interrupted`] having removed its scratch root and
    /// temp blobs. Never raised by default.
    pub interrupt: Interrupt,
}

/// What the build produced.
#[derive(Debug, Clone)]
pub struct BuildOutput {
    pub name: String,
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub layers: Vec<BuiltLayer>,
    pub tags: Vec<String>,
    pub layout: PathBuf,
    pub docker_archive: Option<PathBuf>,
    pub platform: Platform,
    /// The epoch used and where it came from.
    pub epoch: Epoch,
    pub timings: Vec<(String, Duration)>,
    /// What the layer cache did, when there is one.
    pub cache: Option<CacheStats>,
    /// How a registry base reference was resolved (a tag alone is resolved
    /// now, which the caller should report: it makes the build movable).
    pub base: Option<ResolvedBase>,
}

/// One layer of the image, from the base or built by this recipe.
#[derive(Debug, Clone)]
pub struct BuiltLayer {
    /// The recipe's layer name, or `base` for inherited layers.
    pub name: String,
    pub descriptor: Descriptor,
    pub diff_id: Digest,
    pub from_base: bool,
    /// Taken from the layer cache rather than built.
    pub cached: bool,
    /// A base layer the base held uncompressed (a docker-archive's), which
    /// the image has compressed with the build's compression.
    pub compressed: bool,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Recipe(#[from] Box<bake_recipe::RecipeError>),
    #[error("failed to read recipe {path}: {source}")]
    ReadRecipe { path: PathBuf, source: std::io::Error },
    #[error("{pos}: {source}")]
    Step {
        pos: Box<Pos>,
        source: bake_layer::LayerError,
    },
    /// A `run` step could not run, or failed. (`error` is not a `source`:
    /// its text, with the output's tail, is shown once, here.)
    #[error("{pos}: {error}")]
    Run {
        pos: Box<Pos>,
        error: bake_run::RunError,
    },
    #[error("{pos}: base image {base}: {source}")]
    Base {
        pos: String,
        base: String,
        source: Box<bake_image::ImageError>,
    },
    /// A base path in the context that leaves it (or does not exist).
    #[error("{pos}: base image {base}: {source}")]
    BasePath {
        pos: String,
        base: String,
        source: Box<bake_layer::LayerError>,
    },
    #[error("{pos}: base image {base}: {message}")]
    BaseRejected {
        pos: String,
        base: String,
        message: String,
    },
    #[error("build context {path}: {source}")]
    Context {
        path: PathBuf,
        source: bake_layer::LayerError,
    },
    #[error("layout {path}: {source}")]
    Layout {
        path: PathBuf,
        source: bake_image::ImageError,
    },
    #[error("layer {layer}: {source}")]
    Store {
        layer: String,
        source: bake_store::StoreError,
    },
    #[error("docker archive {path}: {source}")]
    DockerArchive {
        path: PathBuf,
        source: bake_image::ImageError,
    },
    #[error("{0}")]
    Cache(CacheError),
    #[error("{0}")]
    Image(#[from] bake_image::ImageError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// [`BuildSettings::interrupt`] was raised; nothing partial is left.
    #[error("the build was interrupted")]
    Interrupted,
}

impl From<bake_recipe::RecipeError> for BuildError {
    fn from(e: bake_recipe::RecipeError) -> Self {
        BuildError::Recipe(Box::new(e))
    }
}

/// Parses the recipe named in `settings`.
pub fn load_recipe(settings: &BuildSettings) -> Result<Recipe, BuildError> {
    let text = fs::read_to_string(&settings.recipe).map_err(|source| BuildError::ReadRecipe {
        path: settings.recipe.clone(),
        source,
    })?;
    Ok(bake_recipe::parse(&settings.recipe, &text, &settings.overrides)?)
}

/// Builds the recipe named in `settings`.
pub fn build(settings: &BuildSettings) -> Result<BuildOutput, BuildError> {
    let recipe = load_recipe(settings)?;
    build_recipe(&recipe, settings)
}

/// Builds an already parsed recipe.
pub fn build_recipe(recipe: &Recipe, settings: &BuildSettings) -> Result<BuildOutput, BuildError> {
    build_recipe_with(recipe, settings, &NoProgress)
}

/// The epoch a build of `recipe` with `settings` uses: the caller's (flag,
/// else `SOURCE_DATE_EPOCH`), else the recipe's, else 0.
pub fn resolved_epoch(settings: &BuildSettings, recipe: &Recipe) -> Epoch {
    settings.epoch.unwrap_or(match recipe.epoch {
        Some(seconds) => Epoch {
            seconds,
            source: EpochSource::Recipe,
        },
        None => Epoch {
            seconds: 0,
            source: EpochSource::Default,
        },
    })
}

/// Builds an already parsed recipe, reporting progress.
pub fn build_recipe_with(
    recipe: &Recipe,
    settings: &BuildSettings,
    progress: &dyn Progress,
) -> Result<BuildOutput, BuildError> {
    let mut timings = Vec::new();
    let epoch_used = resolved_epoch(settings, recipe);
    let epoch = epoch_used.seconds;
    let platform = platform_of(recipe);
    let layout_dir = settings
        .layout
        .clone()
        .unwrap_or_else(|| settings.out_root.join(&recipe.image.name));
    let layout = Layout::create_or_open(&layout_dir).map_err(|source| BuildError::Layout {
        path: layout_dir.clone(),
        source,
    })?;
    let store = layout.store();

    let started = Instant::now();
    let (base, resolved_base) = load_base(recipe, &platform, store, settings)?;
    timings.push(("base".to_owned(), started.elapsed()));

    let started = Instant::now();
    let context = Context::new(&recipe.context)
        .map_err(|source| BuildError::Context {
            path: recipe.context.clone(),
            source,
        })?
        .with_hidden(&own_outputs(recipe, settings));
    let compression = compression_of(recipe);
    // The layer loop (cache, parallel builds) lives in `layers`.
    let cache = match &settings.cache_dir {
        Some(dir) => Some(cache::Cache::open(dir, &stat_id(recipe, &context)).map_err(BuildError::Cache)?),
        None => None,
    };
    let below_links = match &base {
        Some(base) => base_facts(recipe, base, store, cache.as_ref(), &settings.limits)?,
        None => BTreeMap::new(),
    };
    let options = LayerOptions {
        epoch,
        compression,
        tmp_dir: settings.tmp_dir.clone(),
        below_links,
    };

    let mut layers: Vec<BuiltLayer> = Vec::new();
    if let Some(base) = &base {
        // A docker-archive's uncompressed layers enter the image compressed.
        let descriptors = compressed::base_layers(
            base,
            matches!(recipe.base, BaseRef::DockerArchive { .. }),
            compression,
            store,
            cache.as_ref(),
            progress,
            &settings.interrupt,
        )?;
        for ((descriptor, diff_id), as_stored) in descriptors.iter().zip(&base.diff_ids).zip(&base.layers) {
            layers.push(BuiltLayer {
                name: "base".to_owned(),
                descriptor: descriptor.clone(),
                diff_id: diff_id.clone(),
                from_base: true,
                cached: false,
                compressed: descriptor != as_stored,
            });
        }
    }
    let scratch = run::Scratch::default();
    let run_env = run::Env {
        recipe,
        context: &context,
        options: &options,
        store,
        scratch: &scratch,
        cache: cache.as_ref(),
        limits: &settings.limits,
        interrupt: &settings.interrupt,
    };
    let sources =
        |layer: &bake_recipe::Layer,
         below: &[BuiltLayer],
         output: &mut dyn FnMut(&[u8]),
         warn: &mut dyn FnMut(String)| { run::sources(&run_env, layer, below, output, warn) };
    timings.push(("prepare".to_owned(), started.elapsed()));
    let built = layers::build_layers(
        &layers::Plan {
            layers: &recipe.layers,
            context: &context,
            options: &options,
            limits: &settings.limits,
            layout: store,
            cache: cache.as_ref(),
            base: &layers,
            sources: &sources,
            progress,
            interrupt: &settings.interrupt,
        },
        &mut timings,
    )?;
    if let Some(cache) = &cache {
        cache.save().map_err(BuildError::Cache)?;
    }
    let history: Vec<(Digest, String)> = built
        .iter()
        .map(|l| (l.diff_id.clone(), format!("bake layer {}", l.name)))
        .collect();
    layers.extend(built);

    let started = Instant::now();
    let spec = config_spec(recipe);
    let config_bytes = bake_image::build_config(base.as_ref(), &spec, &platform, epoch, &history)?;
    let config_digest = put(store, &config_bytes, "config")?;
    let config = Descriptor::new(
        bake_image::media_type::OCI_CONFIG,
        config_digest,
        config_bytes.len() as u64,
    );
    let layer_descriptors: Vec<Descriptor> = layers.iter().map(|l| l.descriptor.clone()).collect();
    let manifest_bytes = bake_image::build_manifest(&config, &layer_descriptors, &recipe.image.annotations);
    let manifest_digest = put(store, &manifest_bytes, "manifest")?;
    let mut manifest = Descriptor::new(
        bake_image::media_type::OCI_MANIFEST,
        manifest_digest,
        manifest_bytes.len() as u64,
    );
    manifest.platform = Some(platform.clone());
    // The last moment to stop: after this the image is tagged.
    if settings.interrupt.is_raised() {
        return Err(BuildError::Interrupted);
    }
    layout
        .set_tags(&manifest, &recipe.image.tags)
        .map_err(|source| BuildError::Layout {
            path: layout_dir.clone(),
            source,
        })?;

    let docker_archive = match &settings.docker_archive {
        Some(path) => {
            let repo_tags: Vec<String> = recipe
                .image
                .tags
                .iter()
                .map(|t| format!("{}:{t}", recipe.image.name))
                .collect();
            bake_image::write_docker_archive(store, &manifest, &repo_tags, path).map_err(|source| {
                BuildError::DockerArchive {
                    path: path.clone(),
                    source,
                }
            })?;
            Some(path.clone())
        }
        None => None,
    };
    timings.push(("image".to_owned(), started.elapsed()));

    Ok(BuildOutput {
        name: recipe.image.name.clone(),
        manifest,
        config,
        layers,
        tags: recipe.image.tags.clone(),
        layout: layout_dir,
        docker_archive,
        platform,
        epoch: epoch_used,
        timings,
        cache: cache.as_ref().map(cache::Cache::stats),
        base: resolved_base,
    })
}

/// Checks every claim a base makes about its layers against their bytes
/// before anything uses them — each layer's diffID (the config's
/// `rootfs.diff_ids`) and its compression (the descriptor's media type) —
/// and returns the symlinks its layers leave (`LayerOptions::below_links`:
/// the recipe's layers write through them, so a layer with `/bin/x` on a
/// merged-`/usr` base puts it in `usr/bin` instead of replacing the `/bin`
/// link with a directory). The descriptors' digests and sizes were checked
/// when the blobs entered the store.
///
/// diffIDs key shared cache entries (these symlinks, dpkg effects, `run`
/// layers) and go into our config: a base that claimed another image's
/// diffIDs could otherwise make later builds of other recipes read entries
/// it poisoned. So a cache record keyed on claimed diffIDs is used only
/// once every claim has been verified.
///
/// Each layer is decompressed once, ever, per cache: its measurement is
/// recorded under the blob's verified digest. On a cold cache (or none) the
/// measurement and the symlinks come from one pass over each layer.
fn base_facts(
    recipe: &Recipe,
    base: &BaseImage,
    store: &bake_store::BlobStore,
    cache: Option<&cache::Cache>,
    limits: &ReadLimits,
) -> Result<BTreeMap<String, String>, BuildError> {
    let rejected = |message: String| BuildError::BaseRejected {
        pos: recipe
            .base_pos
            .as_ref()
            .map_or_else(|| recipe.path.display().to_string(), |p| p.to_string()),
        base: recipe.base.to_string(),
        message,
    };
    let at = |i: usize, what: String| format!("layer {} ({}): {what}", i + 1, base.layers[i].digest);
    let mut declared = Vec::with_capacity(base.layers.len());
    for (i, layer) in base.layers.iter().enumerate() {
        declared.push(
            bake_layer::LayerCompression::of_media_type(&layer.media_type)
                .ok_or_else(|| rejected(at(i, format!("unsupported media type {:?}", layer.media_type))))?,
        );
    }
    let blobs: Vec<PathBuf> = base.layers.iter().map(|d| store.path(&d.digest)).collect();
    let blobs: Vec<&Path> = blobs.iter().map(PathBuf::as_path).collect();
    let mut measured: Vec<Option<Digest>> = base
        .layers
        .iter()
        .zip(&declared)
        .map(|(l, d)| {
            cache
                .and_then(|c| c.measured(&l.digest))
                .filter(|(c, _)| c == d)
                .map(|(_, id)| id)
        })
        .collect();
    let record = |i: usize, diff_id: &Digest| -> Result<(), BuildError> {
        match cache {
            Some(c) => c
                .record_measured(&base.layers[i].digest, declared[i], diff_id)
                .map_err(BuildError::Cache),
            None => Ok(()),
        }
    };
    // Looked up now, used only after every claim is verified.
    let cached_links = cache.and_then(|c| c.base_links(&base.diff_ids));
    let mut links = None;
    if measured.iter().any(Option::is_none) {
        if cached_links.is_some() {
            // Only the unmeasured layers need reading: in parallel.
            let todo: Vec<usize> = (0..measured.len()).filter(|&i| measured[i].is_none()).collect();
            let results = layers::parallel_map(todo.len(), layers::cores(), |k| {
                let i = todo[k];
                let blob = store
                    .open_verified(&base.layers[i].digest)
                    .map_err(|e| rejected(at(i, e.to_string())))?;
                bake_layer::measure_layer(blob, declared[i], limits)
                    .map_err(|e| rejected(at(i, e.to_string())))
            });
            for (k, r) in results.into_iter().enumerate() {
                let diff_id = r?;
                record(todo[k], &diff_id)?;
                measured[todo[k]] = Some(diff_id);
            }
        } else {
            // One pass per layer for both (a fresh runner's usual case).
            let (found, diff_ids) = bake_layer::links_and_diff_ids(&blobs, &declared, limits)
                .map_err(|e| rejected(format!("reading its layers: {e}")))?;
            for (i, diff_id) in diff_ids.into_iter().enumerate() {
                record(i, &diff_id)?;
                measured[i] = Some(diff_id);
            }
            links = Some(found);
        }
    }
    for (i, (diff_id, claimed)) in measured.iter().zip(&base.diff_ids).enumerate() {
        if diff_id.as_ref() != Some(claimed) {
            let truth = diff_id
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), |d| d.to_string());
            return Err(rejected(at(
                i,
                format!("its config claims diffID {claimed}, but its content is {truth}"),
            )));
        }
    }
    // Every claim is verified: the diffIDs are the layers' true identities.
    let links = match links.or(cached_links) {
        Some(links) => links,
        None => bake_layer::links_in_layers(&blobs, limits)
            .map_err(|e| rejected(format!("reading the symlinks of its layers: {e}")))?,
    };
    if let Some(cache) = cache {
        cache
            .record_base_links(&base.diff_ids, &links)
            .map_err(BuildError::Cache)?;
    }
    Ok(links)
}

/// Names a recipe's stat cache: its context and file name.
fn stat_id(recipe: &Recipe, context: &Context) -> String {
    let mut id = context.root().as_os_str().as_encoded_bytes().to_vec();
    id.push(0);
    id.extend_from_slice(recipe.path.file_name().unwrap_or_default().as_encoded_bytes());
    Digest::of(&id).hex()[..32].to_owned()
}

fn put(store: &bake_store::BlobStore, bytes: &[u8], what: &str) -> Result<Digest, BuildError> {
    store.put_bytes(bytes).map_err(|source| BuildError::Store {
        layer: what.to_owned(),
        source,
    })
}

/// Everything a build of `recipe` with `settings` writes: the layout, the
/// docker-archive, the cache, the temp directory and
/// [`BuildSettings::own_outputs`]. A `copy` never reads these (see
/// [`Context::with_hidden`]): a recipe copying `.` with the default `out/`
/// inside its context would otherwise take its previous layout, its log
/// and its half-written blobs into the image, and no two builds would agree.
pub fn own_outputs(recipe: &Recipe, settings: &BuildSettings) -> Vec<PathBuf> {
    let mut out = vec![
        settings
            .layout
            .clone()
            .unwrap_or_else(|| default_layout(&settings.out_root, &recipe.image.name)),
        settings.tmp_dir.clone(),
    ];
    out.extend(settings.docker_archive.clone());
    out.extend(settings.cache_dir.clone());
    out.extend(settings.own_outputs.iter().cloned());
    out
}

/// The outputs ([`own_outputs`]) that some `copy` of a directory of
/// `recipe` would have read and so leaves out: for the caller to say so.
pub fn hidden_from_copies(recipe: &Recipe, settings: &BuildSettings) -> Vec<PathBuf> {
    let Ok(context) = Context::new(&recipe.context) else {
        return Vec::new();
    };
    let context = context.with_hidden(&own_outputs(recipe, settings));
    let mut hidden = Vec::new();
    for layer in &recipe.layers {
        for step in &layer.steps {
            if let StepKind::Copy { src, .. } = &step.kind {
                if let Ok(host) = context.resolve(src) {
                    for rel in context.hidden_below(&host) {
                        let path = host.join(rel);
                        if !hidden.contains(&path) {
                            hidden.push(path);
                        }
                    }
                }
            }
        }
    }
    hidden.sort();
    hidden
}

/// The image platform a recipe names.
pub fn platform_of(recipe: &Recipe) -> Platform {
    recipe.image.platform.clone()
}

/// The compression a recipe asks for (its `[output]` settings).
pub fn compression_of(recipe: &Recipe) -> Compression {
    match recipe.output.compression {
        bake_recipe::Compression::Gzip => Compression::Gzip {
            level: recipe.output.level.unwrap_or(6),
        },
        bake_recipe::Compression::Zstd => Compression::Zstd {
            level: recipe.output.level.map_or(3, |l| l as i32),
        },
        bake_recipe::Compression::None => Compression::None,
    }
}

fn load_base(
    recipe: &Recipe,
    platform: &Platform,
    store: &bake_store::BlobStore,
    settings: &BuildSettings,
) -> Result<(Option<BaseImage>, Option<registry::ResolvedBase>), BuildError> {
    let pos = recipe
        .base_pos
        .as_ref()
        .map_or_else(|| recipe.path.display().to_string(), |p| p.to_string());
    // A base in the context stays in it, as `copy` sources do: a symlink
    // (or `..`) out of it is refused before anything is opened.
    let in_context = |base: String, path: &str| {
        Context::new(&recipe.context)
            .and_then(|c| c.resolve(path))
            .map_err(|source| BuildError::BasePath {
                pos: pos.clone(),
                base,
                source: Box::new(source),
            })
    };
    match &recipe.base {
        BaseRef::Scratch => Ok((None, None)),
        BaseRef::OciLayout { path, tag, digest } => {
            let dir = in_context(format!("oci:{path}"), path)?;
            let which = digest.as_ref().map(|d| d.to_string()).or_else(|| tag.clone());
            bake_image::load_from_layout(&dir, which.as_deref(), platform, store)
                .map(|b| (Some(b), None))
                .map_err(|source| BuildError::Base {
                    pos,
                    base: format!("oci:{path}"),
                    source: Box::new(source),
                })
        }
        BaseRef::DockerArchive { path } => bake_image::load_from_docker_archive_with_limits(
            &in_context(format!("docker-archive:{path}"), path)?,
            platform,
            store,
            &settings.limits,
        )
        .map(|b| (Some(b), None))
        .map_err(|source| BuildError::Base {
            pos,
            base: format!("docker-archive:{path}"),
            source: Box::new(source),
        }),
        BaseRef::Registry { reference } => {
            registry::pull_base(reference, &pos, platform, store, settings).map(|(b, r)| (Some(b), Some(r)))
        }
    }
}

fn layer_sources(
    recipe: &Recipe,
    layer: &bake_recipe::Layer,
    context: &Context,
) -> Result<Vec<Source>, BuildError> {
    let owner = |o: &bake_recipe::Owner| bake_layer::Owner {
        uid: o.uid,
        gid: o.gid,
    };
    let mut sources = Vec::with_capacity(layer.steps.len());
    for step in &layer.steps {
        let at = |source| BuildError::Step {
            pos: Box::new(step.pos.clone()),
            source,
        };
        let source = match &step.kind {
            StepKind::Copy {
                src,
                to,
                mode,
                owner: o,
                exclude,
                mtime,
                capabilities,
            } => {
                let src = context.resolve(src).map_err(at)?;
                Source::Copy {
                    exclude: context.copy_excludes(&src, exclude),
                    src,
                    to: to.clone(),
                    mode: *mode,
                    owner: owner(o),
                    mtime: match mtime {
                        bake_recipe::CopyMtime::Epoch => bake_layer::CopyMtime::Epoch,
                        bake_recipe::CopyMtime::Source => bake_layer::CopyMtime::Source,
                        bake_recipe::CopyMtime::SourceUnclamped => bake_layer::CopyMtime::SourceUnclamped,
                    },
                    capabilities: *capabilities,
                }
            }
            StepKind::File {
                path,
                content,
                mode,
                owner: o,
                capabilities,
            } => Source::Inline {
                path: path.clone(),
                content: content.clone().into_bytes(),
                mode: *mode,
                owner: owner(o),
                capabilities: *capabilities,
            },
            StepKind::Dir { path, mode, owner: o } => Source::Dir {
                path: path.clone(),
                mode: *mode,
                owner: owner(o),
            },
            StepKind::Symlink {
                path,
                target,
                owner: o,
            } => Source::Symlink {
                path: path.clone(),
                target: target.clone(),
                owner: owner(o),
            },
            StepKind::Unpack { src, to } => Source::Unpack {
                src: context.resolve(src).map_err(at)?,
                to: to.clone(),
            },
            StepKind::Deb { src, sha256 } => Source::Deb {
                src: context.resolve(src).map_err(at)?,
                sha256: sha256.clone(),
            },
            // Built by `run::sources`, which never passes one here.
            StepKind::Run(_) => continue,
        };
        sources.push(source);
    }
    let _ = recipe;
    Ok(sources)
}

fn config_spec(recipe: &Recipe) -> ConfigSpec {
    let c = &recipe.config;
    ConfigSpec {
        entrypoint: c.entrypoint.clone(),
        cmd: c.cmd.clone(),
        env: c.env.clone(),
        user: c.user.clone(),
        workdir: c.workdir.clone(),
        labels: c.labels.clone(),
        exposed_ports: c.expose.clone(),
        volumes: c.volumes.clone(),
        stop_signal: c.stop_signal.clone(),
    }
}

/// The human name of a layer's position, for messages.
pub fn describe_layers(layers: &[BuiltLayer]) -> BTreeMap<usize, String> {
    layers
        .iter()
        .enumerate()
        .map(|(i, l)| (i, l.name.clone()))
        .collect()
}

/// Where `settings.layout` would put the image for a recipe named `name`.
pub fn default_layout(out_root: &Path, name: &str) -> PathBuf {
    out_root.join(name)
}
