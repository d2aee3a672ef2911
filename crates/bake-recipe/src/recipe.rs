//! The validated recipe: the types [`crate::parse`] returns.
//!
//! Everything here has already been checked; code that receives a [`Recipe`]
//! does not re-validate names, modes, paths or references.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

pub use bake_caps::FileCaps;
use bake_digest::Digest;

use crate::Pos;

/// A parsed and validated recipe, with every `${variable}` substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// The recipe file, as the caller named it.
    pub path: PathBuf,
    /// The build context: the directory holding the recipe (`.` if the path
    /// has no directory part). Every source path is relative to it.
    pub context: PathBuf,
    /// The recipe's `epoch`, if set. `SOURCE_DATE_EPOCH` and
    /// `--source-date-epoch` take precedence; that is the caller's business.
    pub epoch: Option<u64>,
    /// The image below this one.
    pub base: BaseRef,
    /// Where `base` is written, if it is written at all.
    pub base_pos: Option<Pos>,
    pub image: Image,
    pub output: Output,
    /// The layers in recipe order; never empty layers.
    pub layers: Vec<Layer>,
    pub config: Config,
    /// The final value of every declared variable, overrides applied.
    pub variables: BTreeMap<String, VarValue>,
}

/// `[image]`: what the result is called and what it runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Repository name, as in the OCI distribution spec: lower-case
    /// `[a-z0-9]` components separated by `.`, `_`, `__`, `-`… or `/`.
    pub name: String,
    /// Tags in recipe order, duplicates removed; `["latest"]` by default.
    pub tags: Vec<String>,
    pub platform: Platform,
    pub annotations: BTreeMap<String, String>,
}

/// An OCI platform: `os/architecture[/variant]`, with the same syntax as
/// everywhere else in bake (`bake_oci::Platform`).
pub use bake_oci::Platform;

/// `[output]`: how layers are compressed and where the image is pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub compression: Compression,
    /// The compression level with its default applied (gzip 6, zstd 3);
    /// `None` exactly when `compression` is [`Compression::None`].
    pub level: Option<u32>,
    /// Registry references to push to, as written (interpolated).
    pub push: Vec<String>,
}

impl Default for Output {
    fn default() -> Output {
        Output {
            compression: Compression::Gzip,
            level: Compression::Gzip.default_level(),
            push: Vec::new(),
        }
    }
}

/// Layer compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
    None,
}

impl Compression {
    /// The level used when the recipe names none.
    pub fn default_level(self) -> Option<u32> {
        match self {
            Compression::Gzip => Some(6),
            Compression::Zstd => Some(3),
            Compression::None => None,
        }
    }

    /// The accepted levels, or `None` if this compression takes no level.
    pub fn levels(self) -> Option<std::ops::RangeInclusive<u32>> {
        match self {
            Compression::Gzip => Some(1..=9),
            Compression::Zstd => Some(1..=19),
            Compression::None => None,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::None => "none",
        })
    }
}

/// The image a recipe builds on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BaseRef {
    /// Nothing: the first layer is the whole filesystem.
    #[default]
    Scratch,
    /// `oci:PATH[:TAG|@DIGEST]`: an OCI image layout inside the build
    /// context. `path` is normalised and relative to the context.
    OciLayout {
        path: String,
        tag: Option<String>,
        digest: Option<Digest>,
    },
    /// `docker-archive:PATH`: a `docker save` tarball inside the build context.
    DockerArchive { path: String },
    /// Anything else: a registry reference, kept as written for the
    /// registry crate to parse.
    Registry { reference: String },
}

impl fmt::Display for BaseRef {
    /// The canonical recipe form, e.g. `oci:images/base:v1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BaseRef::Scratch => f.write_str("scratch"),
            BaseRef::OciLayout { path, tag, digest } => {
                write!(f, "oci:{path}")?;
                if let Some(tag) = tag {
                    write!(f, ":{tag}")?;
                }
                if let Some(digest) = digest {
                    write!(f, "@{digest}")?;
                }
                Ok(())
            }
            BaseRef::DockerArchive { path } => write!(f, "docker-archive:{path}"),
            BaseRef::Registry { reference } => f.write_str(reference),
        }
    }
}

/// One `[[layer]]`: one OCI layer made of its steps, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The `name`, or `layer-N` (1-based) by default; unique in the recipe.
    pub name: String,
    /// Where the layer's table starts.
    pub pos: Pos,
    /// Never empty.
    pub steps: Vec<Step>,
}

/// One `[[layer.step]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Where the step's kind key (`copy = …`, `file = …`) is, for errors
    /// found while building.
    pub pos: Pos,
    pub kind: StepKind,
}

/// Numeric owner of an image entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.uid, self.gid)
    }
}

/// What a step does. Sources are normalised relative paths inside the build
/// context (`.` for the whole context); destinations are normalised absolute
/// image paths (no `.`/`..` components, no repeated or trailing `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind {
    /// Copy a file or a directory tree from the context. `mode`, if set,
    /// applies to regular files; `exclude` globs are as written.
    Copy {
        src: String,
        to: String,
        mode: Option<u32>,
        owner: Owner,
        exclude: Vec<String>,
        /// Which mtime the copied entries get (`mtime = …`; default the
        /// epoch).
        mtime: CopyMtime,
        /// File capabilities of every copied regular file
        /// (`capabilities = "cap_net_raw+ep"`).
        capabilities: Option<FileCaps>,
    },
    /// Write a file from inline content; mode defaults to 0o644.
    File {
        path: String,
        content: String,
        mode: u32,
        owner: Owner,
        /// The file's capabilities (`capabilities = "cap_net_raw+ep"`).
        capabilities: Option<FileCaps>,
    },
    /// Make a directory and its parents; mode defaults to 0o755.
    Dir { path: String, mode: u32, owner: Owner },
    /// Make a symlink; `target` is stored as written.
    Symlink {
        path: String,
        target: String,
        owner: Owner,
    },
    /// Unpack a tar archive from the context; `to` defaults to `/`.
    Unpack { src: String, to: String },
    /// Install a Debian package from the context without running its
    /// maintainer scripts: its data archive goes into the layer and dpkg's
    /// database records it. The file must hash to `sha256`.
    Deb { src: String, sha256: Digest },
    /// Run commands with `/bin/sh -c` inside the root filesystem assembled so
    /// far, in a sandbox; what they change becomes the layer.
    Run(RunStep),
}

/// A `copy` step's `mtime`: which modification time the copied files,
/// directories and symlinks get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CopyMtime {
    /// `"epoch"` (the default): the build epoch; host mtimes never leak.
    #[default]
    Epoch,
    /// `"source"`: the host mtime, clamped to the epoch (never later). Only
    /// reproducible where every copied file's mtime is at or after the
    /// epoch.
    Source,
    /// `"source-unclamped"`: the host mtime as it is. Not reproducible: for
    /// debugging (and for `bake check` to catch).
    SourceUnclamped,
}

/// A `run` step's settings, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStep {
    /// The commands, in order; never empty, none empty. Each runs in its own
    /// `sh -c`; the first that fails stops the build.
    pub commands: Vec<String>,
    /// Whether the commands share the host's network (default `false`: a
    /// network namespace of their own with only loopback).
    pub network: bool,
    /// Seconds each command may run (default 600).
    pub timeout: u64,
    /// `UID[:GID]` or `NAME[:GROUP]`, resolved in the image; default root.
    pub user: Option<String>,
    /// Variables added to the fixed environment; never `SOURCE_DATE_EPOCH`.
    pub env: BTreeMap<String, String>,
    /// A normalised absolute path; default `/`.
    pub workdir: Option<String>,
}

impl RunStep {
    /// The timeout when a step names none: ten minutes.
    pub const DEFAULT_TIMEOUT: u64 = 600;
}

impl StepKind {
    /// The recipe key that names this kind: `copy`, `file`, `dir`,
    /// `symlink`, `unpack`, `deb` or `run`.
    pub fn key(&self) -> &'static str {
        match self {
            StepKind::Copy { .. } => "copy",
            StepKind::File { .. } => "file",
            StepKind::Dir { .. } => "dir",
            StepKind::Symlink { .. } => "symlink",
            StepKind::Unpack { .. } => "unpack",
            StepKind::Deb { .. } => "deb",
            StepKind::Run(_) => "run",
        }
    }

    /// Whether what this step makes depends on the layers below it: a
    /// `deb` step merges dpkg's status file below, a `run` step runs on the
    /// whole root below. The others make the same bytes on any base. An
    /// exhaustive match, so a new kind must answer before it compiles (the
    /// layer cache's keys and the build order depend on it).
    pub fn reads_below(&self) -> bool {
        match self {
            StepKind::Copy { .. }
            | StepKind::File { .. }
            | StepKind::Dir { .. }
            | StepKind::Symlink { .. }
            | StepKind::Unpack { .. } => false,
            StepKind::Deb { .. } | StepKind::Run(_) => true,
        }
    }
}

impl Layer {
    /// Whether any step of the layer reads the layers below it
    /// ([`StepKind::reads_below`]).
    pub fn reads_below(&self) -> bool {
        self.steps.iter().any(|s| s.kind.reads_below())
    }
}

/// `[config]`: the image configuration. Every field is "not set" when
/// `None` or empty, meaning inherited from the base image.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// Merged over the base's environment.
    pub env: BTreeMap<String, String>,
    pub user: Option<String>,
    /// A normalised absolute path.
    pub workdir: Option<String>,
    /// Merged over the base's labels.
    pub labels: BTreeMap<String, String>,
    /// Normalised `PORT/PROTO` (`8080/tcp`), duplicates removed.
    pub expose: Vec<String>,
    /// Normalised absolute paths.
    pub volumes: Vec<String>,
    pub stop_signal: Option<String>,
}

/// A variable's value; the type is fixed by the recipe's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarValue {
    String(String),
    Integer(i64),
    Boolean(bool),
}

impl VarValue {
    /// `string`, `integer` or `boolean`.
    pub fn type_name(&self) -> &'static str {
        match self {
            VarValue::String(_) => "string",
            VarValue::Integer(_) => "integer",
            VarValue::Boolean(_) => "boolean",
        }
    }
}

impl fmt::Display for VarValue {
    /// The text `${name}` is replaced with: strings as they are, integers in
    /// decimal, booleans as `true`/`false`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VarValue::String(s) => f.write_str(s),
            VarValue::Integer(i) => write!(f, "{i}"),
            VarValue::Boolean(b) => write!(f, "{b}"),
        }
    }
}
