//! `bake check RECIPE`: proves a recipe reproducible by building it twice
//! from scratch in two temporary roots with the host environment varied, and
//! comparing the manifest digests; `--against` compares one such build with
//! a published image instead.
//!
//! Each build is the `bake` binary itself (`bake build --json`) run as a
//! child with a cleared environment, so nothing of this process leaks into
//! it. What differs between the two builds:
//!
//! | | build 1 | build 2 |
//! |---|---|---|
//! | build path | `$TMPDIR/bake-check-…/context` | `$TMPDIR/bake-check-…/a deeper/build path/context` |
//! | context copy | sorted creation order, modes kept, mtimes before the epoch | reverse order, group/other bits stripped, mtimes after the epoch |
//! | umask, TZ, LANG/LC_ALL | 022, UTC, C | 077, Asia/Kolkata, de_DE.UTF-8 |
//! | CPUs (and so threads) | all | one (`taskset`), when there is more than one |
//! | TMPDIR, HOME, cache | fresh in each root | fresh in each root |
//!
//! Only what the recipe reads is copied: the recipe, its `copy`/`unpack`/
//! `deb` sources and a base layout or archive in the context (following
//! symlinks on the way to them, which are copied as symlinks).
//!
//! When the digests differ, bake-diff's report is printed and every
//! differing file is traced back to the recipe step that wrote it: its
//! layer (base layers name the `base` line) and, within the layer, the last
//! step whose destination holds it ([`blame`]).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, anyhow, bail};
use bake_diff::{DiffReport, EntryChange, LayerStatus, Whiteout};
use bake_digest::Digest;
use bake_recipe::{BaseRef, Layer, Recipe, Step, StepKind};
use clap::Parser as _;
use serde_json::{Value, json};
use std::fs;

use crate::cli::{CheckArgs, Cli, Command as CliCommand};
use crate::diff::ImagesDiffer;
use crate::registry::Options;

/// How one of the builds is run: the environment the check varies.
#[derive(Clone, Copy)]
struct Variant {
    /// 1 or 2, for messages.
    number: usize,
    umask: &'static str,
    tz: &'static str,
    lang: &'static str,
    /// Pin the build to one CPU with `taskset`.
    one_cpu: bool,
    /// Create the context copy in reverse path order.
    reverse: bool,
    /// Strip group/other permission bits in the context copy.
    strip_modes: bool,
    /// Give the copied files mtimes after the epoch (else before it).
    mtimes_after_epoch: bool,
    /// Where the context copy goes below the root (a deeper path for one).
    subdir: &'static str,
}

const VARIANTS: [Variant; 2] = [
    Variant {
        number: 1,
        umask: "022",
        tz: "UTC",
        lang: "C",
        one_cpu: false,
        reverse: false,
        strip_modes: false,
        mtimes_after_epoch: false,
        subdir: "",
    },
    Variant {
        number: 2,
        umask: "077",
        tz: "Asia/Kolkata",
        lang: "de_DE.UTF-8",
        one_cpu: true,
        reverse: true,
        strip_modes: true,
        mtimes_after_epoch: true,
        subdir: "a deeper/build path",
    },
];

/// One condition the check varies between its two builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Condition {
    Umask,
    Timezone,
    Locale,
    OneCpu,
    CreationOrder,
    Modes,
    Mtimes,
    Path,
}

impl Condition {
    const ALL: [Condition; 8] = [
        Condition::Umask,
        Condition::Timezone,
        Condition::Locale,
        Condition::OneCpu,
        Condition::CreationOrder,
        Condition::Modes,
        Condition::Mtimes,
        Condition::Path,
    ];

    /// Its name in `--json` output.
    fn key(self) -> &'static str {
        match self {
            Condition::Umask => "umask",
            Condition::Timezone => "TZ",
            Condition::Locale => "LANG",
            Condition::OneCpu => "oneCpu",
            Condition::CreationOrder => "creationOrder",
            Condition::Modes => "modes",
            Condition::Mtimes => "mtimes",
            Condition::Path => "path",
        }
    }

    /// What build 2 had of it, in words.
    fn describe(self, v: &Variant) -> String {
        match self {
            Condition::Umask => format!("umask {}", v.umask),
            Condition::Timezone => format!("TZ={}", v.tz),
            Condition::Locale => format!("LANG={}", v.lang),
            Condition::OneCpu => "one CPU".to_owned(),
            Condition::CreationOrder => "the context's files created in reverse order".to_owned(),
            Condition::Modes => "group/other permission bits stripped in the context".to_owned(),
            Condition::Mtimes => "the context's mtimes after the epoch".to_owned(),
            Condition::Path => format!("the context at another path ({:?} deeper)", v.subdir),
        }
    }

    /// `to`, with this condition taken from `from`.
    fn apply(self, to: &mut Variant, from: &Variant) {
        match self {
            Condition::Umask => to.umask = from.umask,
            Condition::Timezone => to.tz = from.tz,
            Condition::Locale => to.lang = from.lang,
            Condition::OneCpu => to.one_cpu = from.one_cpu,
            Condition::CreationOrder => to.reverse = from.reverse,
            Condition::Modes => to.strip_modes = from.strip_modes,
            Condition::Mtimes => to.mtimes_after_epoch = from.mtimes_after_epoch,
            Condition::Path => to.subdir = from.subdir,
        }
    }
}

/// Which of the varied conditions a difference between the two builds
/// follows, found by more builds ([`find_variation`]).
#[derive(Debug, PartialEq, Eq)]
enum Follows {
    /// Build 1's conditions with these of build 2's (and no other) gave
    /// another digest than build 1's: one condition, or the fewest found
    /// together.
    Conditions(Vec<Condition>),
    /// Build 1's own conditions again gave this other digest: the build is
    /// not deterministic, whatever the conditions.
    Nothing(Digest),
}

/// What the difference between build 1 (digest `a`, the conditions of
/// variant 1) and build 2 (variant 2) follows: `build(conds)` builds with
/// variant 1's conditions but `conds` taken from variant 2, and gives its
/// digest. First variant 1 again (a build that differs from itself follows
/// nothing), then the set of all conditions (which gave another digest) is
/// halved while a half alone still gives another digest than `a`. "Another
/// digest", not build 2's: what follows the clock or the mtimes differs
/// from build to build. At most 1 + 2·3 builds for the 8 conditions.
fn find_variation(
    a: &Digest,
    mut build: impl FnMut(&[Condition]) -> Result<Digest>,
) -> Result<(Follows, usize)> {
    let mut builds = 1;
    let again = build(&[])?;
    if again != *a {
        return Ok((Follows::Nothing(again), builds));
    }
    let mut set = Condition::ALL.to_vec();
    while set.len() > 1 {
        let (x, y) = set.split_at(set.len() / 2);
        builds += 1;
        if build(x)? != *a {
            set = x.to_vec();
            continue;
        }
        builds += 1;
        if build(y)? != *a {
            set = y.to_vec();
            continue;
        }
        // Neither half alone: it takes conditions from both.
        break;
    }
    Ok((Follows::Conditions(set), builds))
}

/// What one build gave, from its `--json` output.
struct Built {
    digest: Digest,
    layout: PathBuf,
    /// Layers inherited from the base (they come first).
    base_layers: usize,
    /// The layer names, in image order.
    layer_names: Vec<String>,
}

/// One differing file (or layer) traced back to the recipe.
struct Blame {
    /// The image path (`/etc/motd`), or `None` for a whole layer
    /// (a compression-only difference).
    path: Option<String>,
    /// 1-based image layer.
    layer: usize,
    layer_name: String,
    /// `file:line:column` of the step (the `base` key for base layers, the
    /// layer table when no step covers the path).
    step: String,
    /// `copy`, `file`, `dir`, `symlink`, `unpack`, `deb`, `run`, `base`, or
    /// `layer`.
    kind: &'static str,
    /// The step in a few words: `copy www → /srv/www`.
    description: String,
    /// What differs: `added`, `removed`, or the changed fields.
    cause: Vec<String>,
}

pub fn check(args: CheckArgs, opts: Options) -> Result<()> {
    if !args.recipe.is_file() {
        bail!("recipe {} does not exist", args.recipe.display());
    }
    // Ctrl-C stops the running child build and removes the temporary roots.
    crate::interrupt::install().context("cannot install the signal handlers")?;
    // The settings a `bake build` with the same flags would use here: the
    // recipe is parsed with the same variables, and the epoch is the same.
    let settings =
        crate::commands::build_settings(&parse_build_args(&args, &args.recipe, Path::new("out"))?)?;
    let mut recipe = bake_build::load_recipe(&settings)?;
    // Refuses a bad --level before any build starts.
    crate::commands::apply_compression(&mut recipe, &args.inputs.compression)?;
    let epoch = bake_build::resolved_epoch(&settings, &recipe).seconds;
    let context = if recipe.context.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        recipe.context.clone()
    };
    let recipe_file = args
        .recipe
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file name", args.recipe.display()))?
        .to_owned();
    let inputs = Inputs::of(&recipe, &context, Path::new(&recipe_file))?;
    let progress = |msg: String| {
        if !args.quiet {
            eprintln!("check: {msg}");
        }
    };
    match &recipe.base {
        BaseRef::Registry { reference } if !reference.contains('@') => progress(format!(
            "warning: base {reference} is a tag, resolved by each build: the check shows only that it did not move meanwhile"
        )),
        _ => {}
    }

    let variants: &[Variant] = if args.against.is_some() {
        &VARIANTS[1..]
    } else {
        &VARIANTS
    };
    let mut roots = Vec::new();
    let result = (|| -> Result<Vec<Built>> {
        let mut built = Vec::new();
        for v in variants {
            let root = tempfile::Builder::new()
                .prefix("bake-check-")
                .tempdir()
                .context("cannot create a temporary directory")?;
            let root_path = root.path().to_owned();
            roots.push(root);
            built.push(build_variant(
                &args,
                &opts,
                v,
                &root_path,
                &inputs,
                Path::new(&recipe_file),
                epoch,
                &progress,
            )?);
        }
        Ok(built)
    })();
    let kept: Vec<PathBuf> = if args.keep {
        roots.into_iter().map(tempfile::TempDir::keep).collect()
    } else {
        Vec::new()
    };
    for k in &kept {
        eprintln!("check: kept {}", k.display());
    }
    let built = result?;

    let follows = if args.against.is_none() && built[0].digest != built[1].digest && !args.no_bisect {
        progress(
            "the builds differ: finding which variation the difference follows (up to 7 more builds; --no-bisect skips this)"
                .to_owned(),
        );
        let mut number = 2;
        let found = find_variation(&built[0].digest, |conds| {
            let mut v = VARIANTS[0];
            for c in conds {
                c.apply(&mut v, &VARIANTS[1]);
            }
            number += 1;
            v.number = number;
            let root = tempfile::Builder::new()
                .prefix("bake-check-")
                .tempdir()
                .context("cannot create a temporary directory")?;
            let built = build_variant(
                &args,
                &opts,
                &v,
                root.path(),
                &inputs,
                Path::new(&recipe_file),
                epoch,
                &progress,
            )?;
            Ok(built.digest)
        })?;
        Some(found)
    } else {
        None
    };

    match &args.against {
        None => compare_builds(&args, &recipe, &context, &built, &kept, follows.as_ref()),
        Some(spec) => compare_against(&args, &opts, spec, &recipe, &context, &built[0], &kept),
    }
}

/// The build flags of `bake check` as `bake build` parses them, with
/// `recipe` and `--layout layout`: exactly what a child build receives.
/// Whether the environment variable `name` reaches `bake check`'s builds
/// (everything else is cleared, so the two builds see only what is varied
/// on purpose). Inputs of the build, the same for both: variables and the
/// epoch. And how this machine reaches registries, so a child can pull the
/// base its parent could: the proxy settings reqwest reads, the CA bundle
/// rustls' platform roots read, and what credential helpers need.
fn passed_to_builds(name: &str) -> bool {
    name.starts_with("BAKE_VAR_")
        || matches!(
            name,
            "PATH"
                | "SOURCE_DATE_EPOCH"
                | "XDG_RUNTIME_DIR"
                | "DBUS_SESSION_BUS_ADDRESS"
                | "SSL_CERT_FILE"
                | "SSL_CERT_DIR"
        )
        || matches!(
            name.to_ascii_uppercase().as_str(),
            "HTTP_PROXY" | "HTTPS_PROXY" | "ALL_PROXY" | "NO_PROXY"
        )
}

fn build_argv(args: &CheckArgs, recipe: &Path, layout: &Path) -> Vec<OsString> {
    // Cold builds (no cache), the caller's inputs, JSON for the digests.
    let mut v: Vec<OsString> = vec![
        "build".into(),
        "--layout".into(),
        layout.into(),
        "--json".into(),
        "--no-cache".into(),
    ];
    if args.quiet {
        v.push("--quiet".into());
    }
    v.extend(args.inputs.to_argv());
    // Last, after `--`: a recipe named `-x.toml` is no flag.
    v.push("--".into());
    v.push(recipe.into());
    v
}

fn parse_build_args(args: &CheckArgs, recipe: &Path, layout: &Path) -> Result<crate::cli::BuildArgs> {
    let argv = std::iter::once(OsString::from("bake")).chain(build_argv(args, recipe, layout));
    match Cli::try_parse_from(argv)?.command {
        CliCommand::Build(b) => Ok(b),
        _ => unreachable!("the argument list starts with `build`"),
    }
}

/// Copies the context into `root` as `v` says and runs `bake build` there.
#[allow(clippy::too_many_arguments)]
fn build_variant(
    args: &CheckArgs,
    opts: &Options,
    v: &Variant,
    root: &Path,
    inputs: &Inputs,
    recipe_file: &Path,
    epoch: u64,
    progress: &dyn Fn(String),
) -> Result<Built> {
    let base = if v.subdir.is_empty() {
        root.to_owned()
    } else {
        root.join(v.subdir)
    };
    let context = base.join("context");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    inputs.materialise(&context, v, epoch, now)?;
    for dir in ["tmp", "home", "cache"] {
        fs::create_dir_all(base.join(dir))?;
    }
    let cpu = if v.one_cpu { one_cpu() } else { None };
    let mut varied = format!(
        "umask {}, TZ={}, LANG={}, {} creation order, mtimes {} the epoch",
        v.umask,
        v.tz,
        v.lang,
        if v.reverse { "reverse" } else { "sorted" },
        if v.mtimes_after_epoch { "after" } else { "before" },
    );
    if v.strip_modes {
        varied.push_str(", group/other permission bits stripped");
    }
    match (&cpu, v.one_cpu) {
        (Some((_, c)), _) => varied.push_str(&format!(", CPU {c} only")),
        (None, true) => varied.push_str(", all CPUs (taskset not found or only one CPU)"),
        (None, false) => varied.push_str(", all CPUs"),
    }
    let of = if args.against.is_some() {
        String::new()
    } else if v.number > 2 {
        " (to find the variation)".to_owned()
    } else {
        " of 2".to_owned()
    };
    progress(format!(
        "build {}{of} in {} ({varied})",
        v.number,
        context.display()
    ));

    let mut cmd = match &cpu {
        Some((taskset, c)) => {
            let mut cmd = Command::new(taskset);
            cmd.arg("-c").arg(c).arg("sh");
            cmd
        }
        None => Command::new("sh"),
    };
    let exe = std::env::current_exe().context("cannot find the bake executable")?;
    cmd.current_dir(&base)
        .env_clear()
        .arg("-c")
        .arg(format!("umask {} && exec \"$0\" \"$@\"", v.umask))
        .arg(exe)
        .args(build_argv(
            args,
            &Path::new("context").join(recipe_file),
            Path::new("out"),
        ))
        .env("TZ", v.tz)
        .env("LANG", v.lang)
        .env("LC_ALL", v.lang)
        .env("TMPDIR", base.join("tmp"))
        .env("HOME", base.join("home"))
        .env("XDG_CACHE_HOME", base.join("cache"))
        .env(
            "DOCKER_CONFIG",
            std::path::absolute(&opts.docker_config_dir).unwrap_or_else(|_| opts.docker_config_dir.clone()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if args.quiet {
            Stdio::piped()
        } else {
            Stdio::inherit()
        });
    for (k, val) in crate::env::Env::get().all() {
        if passed_to_builds(&k.to_string_lossy()) {
            cmd.env(k, val);
        }
    }
    let out = run_child(&mut cmd, &crate::interrupt::current())
        .with_context(|| format!("cannot run bake build in {}", base.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stderr = stderr.trim_end();
        if stderr.is_empty() {
            bail!(
                "build {} in {} failed ({}); its messages are above",
                v.number,
                base.display(),
                out.status
            );
        }
        bail!(
            "build {} in {} failed ({}):\n{stderr}",
            v.number,
            base.display(),
            out.status
        );
    }
    let json: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("build {}: cannot read bake build's --json output", v.number))?;
    let digest = json["digest"]
        .as_str()
        .ok_or_else(|| anyhow!("build {}: no digest in bake build's --json output", v.number))?
        .parse::<Digest>()?;
    let layers = json["layers"].as_array().cloned().unwrap_or_default();
    let built = Built {
        digest,
        layout: base.join("out"),
        base_layers: layers.iter().filter(|l| l["fromBase"] == json!(true)).count(),
        layer_names: layers
            .iter()
            .map(|l| l["name"].as_str().unwrap_or_default().to_owned())
            .collect(),
    };
    progress(format!("build {}: {}", v.number, built.digest));
    Ok(built)
}

/// Runs a child build to its end, like `Command::output`. When `bake
/// check` is interrupted (SIGINT, SIGTERM or SIGHUP, to it alone or to its
/// process group), the child gets SIGTERM — it stops its sandbox and cleans
/// up as on its own interrupt — and once it has exited, the interruption is
/// returned as an error, so the check's temporary roots are removed as on
/// any failure.
fn run_child(cmd: &mut Command, interrupt: &bake_build::Interrupt) -> Result<std::process::Output> {
    let mut child = cmd.spawn()?;
    // Drain the pipes meanwhile, so a chatty child never blocks on them.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let mut passed_on = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if interrupt.is_raised() && !passed_on {
            passed_on = true;
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: kill(2) on our own child's pid, which it keeps
                // until we reap it below.
                #[allow(unsafe_code)]
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let output = std::process::Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    if interrupt.is_raised() {
        bail!("interrupted: the child build was stopped ({})", output.status);
    }
    Ok(output)
}

/// `taskset` and the first CPU this process may run on, when there is more
/// than one to choose from.
fn one_cpu() -> Option<(PathBuf, String)> {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return None;
    }
    let taskset = std::env::split_paths(crate::env::Env::get().path()?)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("taskset"))
        .find(|p| p.is_file())?;
    // "Cpus_allowed_list:\t0-3,8" → "0".
    let cpu = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(|l| {
                    l.trim()
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect::<String>()
                })
        })
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "0".to_owned());
    Some((taskset, cpu))
}

fn compare_builds(
    args: &CheckArgs,
    recipe: &Recipe,
    context: &Path,
    built: &[Built],
    kept: &[PathBuf],
    follows: Option<&(Follows, usize)>,
) -> Result<()> {
    let (a, b) = (&built[0], &built[1]);
    if a.digest == b.digest {
        return verdict_ok(args, &a.digest, &b.digest, None, kept, ", twice");
    }
    let platform = bake_build::platform_of(recipe);
    let load = |n: usize, x: &Built| {
        bake_diff::Image::from_layout(
            format!("build {n}"),
            &x.layout,
            Some(&x.digest.to_string()),
            Some(&platform),
        )
    };
    let report = bake_diff::diff(&load(1, a)?, &load(2, b)?)?;
    let blames = blame(&report, recipe, context, b);
    let verdict = format!(
        "not reproducible: build 1 gave {}, build 2 {}",
        a.digest, b.digest
    );
    verdict_differs(
        args,
        Some(&a.digest),
        &b.digest,
        None,
        Some(&report),
        &blames,
        kept,
        &verdict,
        follows,
    )
}

/// The human line saying what the difference follows.
fn follows_text(follows: &(Follows, usize)) -> String {
    let (f, builds) = follows;
    let v2 = &VARIANTS[1];
    match f {
        Follows::Nothing(d) => format!(
            "the difference follows none of the varied conditions: build 1's own conditions, again, gave {d} ({builds} more build): the build is not deterministic (threads, time, randomness)"
        ),
        Follows::Conditions(c) if c.len() == 1 => format!(
            "the difference follows {}: a build with build 1's conditions but that one of build 2's differs from build 1 too ({builds} more builds)",
            c[0].describe(v2)
        ),
        Follows::Conditions(c) => format!(
            "the difference follows these of build 2's conditions together: {} (a build with build 1's conditions but these differs from build 1 too; neither half of them alone did; {builds} more builds)",
            c.iter().map(|c| c.describe(v2)).collect::<Vec<_>>().join("; ")
        ),
    }
}

fn follows_json(follows: Option<&(Follows, usize)>) -> Value {
    match follows {
        None => Value::Null,
        Some((Follows::Nothing(d), builds)) => json!({
            "deterministic": false,
            "conditions": [],
            "rebuiltDigest": d.to_string(),
            "builds": builds,
        }),
        Some((Follows::Conditions(c), builds)) => json!({
            "deterministic": true,
            "conditions": c.iter().map(|c| c.key()).collect::<Vec<_>>(),
            "description": c.iter().map(|c| c.describe(&VARIANTS[1])).collect::<Vec<_>>(),
            "builds": builds,
        }),
    }
}

fn compare_against(
    args: &CheckArgs,
    opts: &Options,
    spec: &str,
    recipe: &Recipe,
    context: &Path,
    built: &Built,
    kept: &[PathBuf],
) -> Result<()> {
    if spec.starts_with("sha256:") {
        let expected: Digest = spec
            .parse()
            .with_context(|| format!("--against {spec}: not a valid sha256 digest"))?;
        let note = "only the manifest digests were compared: give --against an OCI layout or a registry reference to see why they differ";
        if expected == built.digest {
            return verdict_ok(
                args,
                &expected,
                &built.digest,
                Some(spec),
                kept,
                ", the digest given (only the manifest digests were compared)",
            );
        }
        let verdict = format!(
            "not reproducible: built {}, expected {expected} ({note})",
            built.digest
        );
        return verdict_differs(
            args,
            Some(&expected),
            &built.digest,
            Some(spec),
            None,
            &[],
            kept,
            &verdict,
            None,
        );
    }
    let scratch = tempfile::Builder::new()
        .prefix("bake-check-against-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let platform = bake_build::platform_of(recipe);
    let published = crate::diff::load(
        spec,
        Some(&platform),
        opts,
        scratch.path(),
        &args.inputs.limits.read_limits(),
    )?;
    let ours = bake_diff::Image::from_layout(
        "this build",
        &built.layout,
        Some(&built.digest.to_string()),
        Some(&platform),
    )?;
    let report = bake_diff::diff(&published, &ours)?;
    let theirs = published.manifest_digest().cloned();
    if report.identical {
        return match &theirs {
            Some(t) => verdict_ok(
                args,
                t,
                &built.digest,
                Some(spec),
                kept,
                &format!(", the same as {spec}"),
            ),
            None => verdict_ok(
                args,
                &built.digest,
                &built.digest,
                Some(spec),
                kept,
                &format!(", the same config and layers as {spec} (a docker-archive: no manifest to compare)"),
            ),
        };
    }
    let blames = blame(&report, recipe, context, built);
    let verdict = format!(
        "not reproducible: built {}, {spec} is {}",
        built.digest,
        theirs.as_ref().map_or_else(
            || "a docker-archive (no manifest)".to_owned(),
            ToString::to_string
        )
    );
    verdict_differs(
        args,
        theirs.as_ref(),
        &built.digest,
        Some(spec),
        Some(&report),
        &blames,
        kept,
        &verdict,
        None,
    )
}

fn verdict_ok(
    args: &CheckArgs,
    a: &Digest,
    b: &Digest,
    against: Option<&str>,
    kept: &[PathBuf],
    how: &str,
) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let v = json!({
            "reproducible": true,
            "digests": [a.to_string(), b.to_string()],
            "against": against,
            "differences": null,
            "steps": [],
            "kept": kept.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        });
        writeln!(stdout, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        writeln!(stdout, "reproducible: {b}{how}")?;
    }
    stdout.flush()?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn verdict_differs(
    args: &CheckArgs,
    a: Option<&Digest>,
    b: &Digest,
    against: Option<&str>,
    report: Option<&DiffReport>,
    blames: &[Blame],
    kept: &[PathBuf],
    verdict: &str,
    follows: Option<&(Follows, usize)>,
) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let steps: Vec<Value> = blames
            .iter()
            .map(|x| {
                json!({
                    "path": x.path,
                    "layer": x.layer,
                    "layerName": x.layer_name,
                    "step": x.step,
                    "kind": x.kind,
                    "description": x.description,
                    "cause": x.cause,
                })
            })
            .collect();
        let v = json!({
            "reproducible": false,
            "digests": [a.map(ToString::to_string), b.to_string()],
            "against": against,
            "differences": report,
            "steps": steps,
            "follows": follows_json(follows),
            "kept": kept.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        });
        writeln!(stdout, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        if let Some(r) = report {
            stdout.write_all(r.to_human(args.max_entries).as_bytes())?;
        }
        if report.is_some() && blames.is_empty() {
            writeln!(
                stdout,
                "no layer differs: the difference is in the manifest or config above (the recipe's [image] and [config], or the base's config)"
            )?;
        }
        write_blames(&mut stdout, blames, args.max_entries)?;
        if report.is_some_and(|r| r.config.fields.iter().any(|f| f.field == "created")) {
            writeln!(
                stdout,
                "note: `created` differs: the images were built with different epochs (SOURCE_DATE_EPOCH, --source-date-epoch or the recipe's epoch), which also changes every mtime"
            )?;
        }
        if let Some(f) = follows {
            writeln!(stdout, "{}", follows_text(f))?;
        }
        writeln!(stdout, "{verdict}")?;
    }
    stdout.flush()?;
    Err(ImagesDiffer.into())
}

/// The differing files grouped by the step that made them.
fn write_blames(w: &mut impl Write, blames: &[Blame], max_entries: usize) -> Result<()> {
    if blames.is_empty() {
        return Ok(());
    }
    writeln!(w, "recipe steps behind the differences:")?;
    // Group by (layer, step) in image order.
    let mut groups: BTreeMap<(usize, &str), Vec<&Blame>> = BTreeMap::new();
    for b in blames {
        groups.entry((b.layer, &b.step)).or_default().push(b);
    }
    for ((layer, step), items) in groups {
        let first = items[0];
        writeln!(
            w,
            "  {step}: {} (layer {layer} {:?})",
            first.description, first.layer_name
        )?;
        let shown = if max_entries == 0 {
            items.len()
        } else {
            max_entries
        };
        for b in items.iter().take(shown) {
            let cause = b.cause.join(", ");
            match &b.path {
                Some(p) => writeln!(w, "    {p}: {cause}")?,
                None => writeln!(w, "    the whole layer: {cause}")?,
            }
        }
        if items.len() > shown {
            writeln!(w, "    … and {} more", items.len() - shown)?;
        }
    }
    if blames
        .iter()
        .any(|b| b.kind == "copy" && b.cause.iter().any(|c| c == "mode"))
    {
        writeln!(
            w,
            "note: copied modes are normalised: a file with any execute bit (owner, group or other) becomes 0755, \
             one without 0644, a directory 0755 — so a host mode change shows only when it adds or removes every \
             execute bit; set `mode` on the step to choose the mode"
        )?;
    }
    Ok(())
}

/// Traces each differing layer entry in `report` back to the recipe.
/// `built` is side B of the report (the build whose layers the recipe
/// made).
fn blame(report: &DiffReport, recipe: &Recipe, context: &Path, built: &Built) -> Vec<Blame> {
    let mut out = Vec::new();
    let recipe_pos = recipe.path.display().to_string();
    for l in &report.layers {
        if l.status == LayerStatus::Identical {
            continue;
        }
        let index = l.layer - 1;
        let layer_name = built
            .layer_names
            .get(index)
            .cloned()
            .unwrap_or_else(|| "?".to_owned());
        let recipe_layer = index
            .checked_sub(built.base_layers)
            .and_then(|i| recipe.layers.get(i));
        let is_base = index < built.base_layers;
        let whole = |cause: &str| Blame {
            path: None,
            layer: l.layer,
            layer_name: layer_name.clone(),
            step: match (is_base, recipe_layer) {
                (true, _) => recipe
                    .base_pos
                    .as_ref()
                    .map_or(recipe_pos.clone(), ToString::to_string),
                (false, Some(rl)) => rl.pos.to_string(),
                (false, None) => recipe_pos.clone(),
            },
            kind: if is_base { "base" } else { "layer" },
            description: if is_base {
                format!("base image {}", recipe.base)
            } else {
                format!("layer {layer_name:?}")
            },
            cause: vec![cause.to_owned()],
        };
        match l.status {
            LayerStatus::CompressionOnly => {
                out.push(whole("compression only (the same tar, other compressed bytes)"));
                continue;
            }
            LayerStatus::OnlyInA if index >= built.layer_names.len() => {
                out.push(whole("a layer only the other image has"));
                continue;
            }
            _ => {}
        }
        if l.entries.is_empty() {
            out.push(whole("content"));
            continue;
        }
        for e in &l.entries {
            let path = image_path(e);
            let cause = cause_of(e);
            let mut b = whole("");
            b.path = Some(path.clone());
            b.cause = cause;
            let step = recipe_layer
                .filter(|_| !is_base)
                .and_then(|rl| step_for(rl, context, &path));
            if let Some(step) = step {
                b.step = step.pos.to_string();
                b.kind = step.kind.key();
                b.description = describe(step);
            }
            out.push(b);
        }
    }
    out
}

/// The absolute image path an entry change is about (for a whiteout: the
/// path it deletes).
fn image_path(e: &EntryChange) -> String {
    let raw = match &e.whiteout {
        Some(Whiteout::Deletes(p) | Whiteout::Opaque(p)) => p.as_str(),
        None => e.path.as_str(),
    };
    let p = raw.trim_start_matches("./").trim_matches('/');
    format!("/{p}")
}

fn cause_of(e: &EntryChange) -> Vec<String> {
    use bake_diff::EntryChangeKind as K;
    let what = match (&e.whiteout, e.change) {
        (Some(_), K::Added) => "deleted (whiteout only in this one)",
        (Some(_), K::Removed) => "deleted (whiteout only in the other)",
        (None, K::Added) => "added",
        (None, K::Removed) => "removed",
        (_, K::Changed) => "",
    };
    if !what.is_empty() {
        return vec![what.to_owned()];
    }
    e.fields.iter().map(|f| f.field.clone()).collect()
}

/// How surely a step wrote a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Match {
    /// It names the path, or copies a tree holding it.
    Definite,
    /// It may have written anywhere below its destination (`unpack`) or
    /// anywhere at all (`run`); later, it may have changed what an earlier
    /// step wrote.
    Possible,
    /// A `deb` step: it writes its package's files, wherever they are, but
    /// rarely over what an explicit step wrote.
    Package,
    /// The path is an implicit parent directory of the step's destination.
    Parent,
}

/// The step of `layer` that produced `path` (absolute): the last one that
/// names it, copies it, or may have written it (`unpack`, `run`); else the
/// last `deb`; else the last step that made it as a parent directory.
fn step_for<'r>(layer: &'r Layer, context: &Path, path: &str) -> Option<&'r Step> {
    let mut strong = None;
    let mut package = None;
    let mut parent = None;
    for step in &layer.steps {
        match step_match(step, context, path) {
            Some(Match::Definite | Match::Possible) => strong = Some(step),
            Some(Match::Package) => package = Some(step),
            Some(Match::Parent) => parent = Some(step),
            None => {}
        }
    }
    strong.or(package).or(parent)
}

fn step_match(step: &Step, context: &Path, path: &str) -> Option<Match> {
    let below = |dest: &str| {
        if dest == "/" {
            Some(path.trim_start_matches('/'))
        } else {
            path.strip_prefix(dest).and_then(|r| r.strip_prefix('/'))
        }
    };
    let parent_of = |dest: &str| path == "/" || dest.strip_prefix(path).is_some_and(|r| r.starts_with('/'));
    let exact_or_parent = |dest: &str| {
        if path == dest {
            Some(Match::Definite)
        } else if parent_of(dest) {
            Some(Match::Parent)
        } else {
            None
        }
    };
    match &step.kind {
        StepKind::Copy { src, to, .. } => {
            if path == to {
                return Some(Match::Definite);
            }
            if let Some(rel) = below(to) {
                // Only if the copied tree has it.
                let host = context.join(src).join(rel);
                return host.symlink_metadata().is_ok().then_some(Match::Definite);
            }
            parent_of(to).then_some(Match::Parent)
        }
        StepKind::File { path: dest, .. }
        | StepKind::Dir { path: dest, .. }
        | StepKind::Symlink { path: dest, .. } => exact_or_parent(dest),
        StepKind::Unpack { to, .. } => {
            if path == to || below(to).is_some() {
                Some(Match::Possible)
            } else {
                parent_of(to).then_some(Match::Parent)
            }
        }
        StepKind::Deb { .. } => Some(Match::Package),
        StepKind::Run(_) => Some(Match::Possible),
    }
}

/// A step in a few words.
fn describe(step: &Step) -> String {
    match &step.kind {
        StepKind::Copy { src, to, .. } => format!("copy {src} → {to}"),
        StepKind::File { path, .. } => format!("file {path}"),
        StepKind::Dir { path, .. } => format!("dir {path}"),
        StepKind::Symlink { path, target, .. } => format!("symlink {path} → {target}"),
        StepKind::Unpack { src, to } => format!("unpack {src} → {to}"),
        StepKind::Deb { src, .. } => format!("deb {src}"),
        // Every command, quoted (escapes show newlines and control
        // characters): the one behind a difference may be any of them.
        StepKind::Run(r) => {
            let commands: Vec<String> = r.commands.iter().map(|c| format!("{c:?}")).collect();
            format!("run {}", commands.join(", "))
        }
    }
}

/// A host node to copy.
#[derive(Debug, Clone)]
enum Node {
    Dir {
        mode: u32,
    },
    /// `inode`: (device, inode) when the file has other hard links, so the
    /// copy links the same files together (the layer does: one file, then
    /// links to it).
    File {
        mode: u32,
        inode: Option<(u64, u64)>,
    },
    Symlink {
        target: PathBuf,
    },
    /// A fifo, socket or device, which the build refuses to copy: the copy
    /// holds one too (a fifo or socket: a device needs privileges to make),
    /// so the check's builds fail as the real one does.
    Special {
        socket: bool,
    },
}

fn file_node(meta: &std::fs::Metadata) -> Node {
    use std::os::unix::fs::MetadataExt;
    Node::File {
        mode: mode_of(meta),
        inode: (meta.nlink() > 1).then(|| (meta.dev(), meta.ino())),
    }
}

/// What of the build context the recipe reads, by path relative to it.
struct Inputs {
    context: PathBuf,
    nodes: BTreeMap<PathBuf, Node>,
}

impl Inputs {
    /// The recipe file, every `copy`/`unpack`/`deb` source and a base in
    /// the context, with their parent directories and, for directories,
    /// everything below them.
    fn of(recipe: &Recipe, context: &Path, recipe_file: &Path) -> Result<Inputs> {
        let mut inputs = Inputs {
            context: context.to_owned(),
            nodes: BTreeMap::new(),
        };
        let mut wanted: Vec<PathBuf> = vec![recipe_file.to_owned()];
        match &recipe.base {
            BaseRef::OciLayout { path, .. } | BaseRef::DockerArchive { path } => wanted.push(path.into()),
            BaseRef::Scratch | BaseRef::Registry { .. } => {}
        }
        for layer in &recipe.layers {
            for step in &layer.steps {
                match &step.kind {
                    StepKind::Copy { src, .. } | StepKind::Unpack { src, .. } | StepKind::Deb { src, .. } => {
                        wanted.push(src.into());
                    }
                    _ => {}
                }
            }
        }
        let canonical = context
            .canonicalize()
            .with_context(|| format!("cannot read the build context {}", context.display()))?;
        for w in wanted {
            inputs.add(&canonical, &w, 0)?;
        }
        Ok(inputs)
    }

    /// Adds `rel` (walking it component by component so a symlink on the
    /// way is copied, and followed to its target inside the context).
    /// Missing paths are left out: the build reports them.
    fn add(&mut self, canonical: &Path, rel: &Path, depth: usize) -> Result<()> {
        if depth > 40 {
            return Ok(()); // a symlink loop: the build reports it
        }
        let comps: Vec<Component<'_>> = rel
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        let mut cur = PathBuf::new();
        for (i, c) in comps.iter().enumerate() {
            cur.push(c);
            let host = self.context.join(&cur);
            let Ok(meta) = host.symlink_metadata() else {
                return Ok(());
            };
            let last = i + 1 == comps.len();
            if meta.file_type().is_symlink() {
                self.nodes.insert(
                    cur.clone(),
                    Node::Symlink {
                        target: fs::read_link(&host)?,
                    },
                );
                // Follow it if it stays inside the context.
                let inside = host
                    .canonicalize()
                    .ok()
                    .and_then(|real| real.strip_prefix(canonical).ok().map(Path::to_path_buf));
                if let Some(inside) = inside {
                    let mut next = inside;
                    next.extend(&comps[i + 1..]);
                    self.add(canonical, &next, depth + 1)?;
                }
                return Ok(());
            }
            if meta.is_dir() {
                self.nodes.insert(cur.clone(), Node::Dir { mode: mode_of(&meta) });
                if last {
                    self.add_tree(&cur)?;
                }
            } else if meta.is_file() && last {
                self.nodes.insert(cur.clone(), file_node(&meta));
            } else {
                return Ok(());
            }
        }
        if comps.is_empty() {
            // "." : the whole context.
            self.add_tree(Path::new(""))?;
        }
        Ok(())
    }

    /// Everything below the directory `rel`; symlinks are not followed.
    fn add_tree(&mut self, rel: &Path) -> Result<()> {
        for e in fs::read_dir(self.context.join(rel))? {
            let e = e?;
            let child = rel.join(e.file_name());
            let meta = e.path().symlink_metadata()?;
            let ft = meta.file_type();
            if ft.is_symlink() {
                self.nodes.insert(
                    child,
                    Node::Symlink {
                        target: fs::read_link(e.path())?,
                    },
                );
            } else if ft.is_dir() {
                self.nodes
                    .insert(child.clone(), Node::Dir { mode: mode_of(&meta) });
                self.add_tree(&child)?;
            } else if ft.is_file() {
                self.nodes.insert(child, file_node(&meta));
            } else {
                use std::os::unix::fs::FileTypeExt;
                self.nodes.insert(
                    child,
                    Node::Special {
                        socket: ft.is_socket(),
                    },
                );
            }
        }
        Ok(())
    }

    /// Writes the copy at `dst` as `v` says: creation order, modes, and
    /// mtimes before the epoch (`epoch - 1 - i`, at least 0) or after it
    /// and after now (`max(epoch, now) + 1 + i`), different for each file.
    fn materialise(&self, dst: &Path, v: &Variant, epoch: u64, now: u64) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        // Each entry's mtime follows its place in path order, whatever the
        // creation order: the two conditions vary independently.
        let mut order: Vec<(usize, (&PathBuf, &Node))> = self.nodes.iter().enumerate().collect();
        if v.reverse {
            order.reverse();
        }
        fs::create_dir_all(dst)?;
        let mtime = |i: usize| {
            let i = i as u64;
            if v.mtimes_after_epoch {
                epoch.max(now) + 1 + i
            } else {
                epoch.saturating_sub(1 + i)
            }
        };
        let file_mode = |m: u32| if v.strip_modes { (m & 0o700) | 0o400 } else { m };
        let dir_mode = |m: u32| if v.strip_modes { 0o700 } else { m | 0o700 };
        // Hard-link groups: the first copy of each inode, linked to again.
        let mut linked: BTreeMap<(u64, u64), PathBuf> = BTreeMap::new();
        for &(i, (rel, node)) in &order {
            let to = dst.join(rel);
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent)?;
            }
            match node {
                Node::Dir { .. } => fs::create_dir_all(&to)?,
                Node::File { mode, inode } => {
                    if let Some(first) = inode.and_then(|k| linked.get(&k)) {
                        fs::hard_link(first, &to)?;
                        continue;
                    }
                    fs::copy(self.context.join(rel), &to)?;
                    fs::set_permissions(&to, std::fs::Permissions::from_mode(file_mode(*mode)))?;
                    set_mtime(&to, mtime(i))?;
                    if let Some(k) = inode {
                        linked.insert(*k, to);
                    }
                }
                Node::Symlink { target } => std::os::unix::fs::symlink(target, &to)
                    .with_context(|| format!("cannot make the symlink {}", to.display()))?,
                Node::Special { socket: true } => {
                    std::os::unix::net::UnixListener::bind(&to)
                        .with_context(|| format!("cannot make the socket {}", to.display()))?;
                }
                Node::Special { socket: false } => {
                    let status = std::process::Command::new("mkfifo")
                        .arg(&to)
                        .status()
                        .with_context(|| format!("cannot run mkfifo for {}", to.display()))?;
                    if !status.success() {
                        bail!("cannot make the fifo {}", to.display());
                    }
                }
            }
        }
        // Directories last, deepest first: making their children changed
        // their mtimes.
        for &(i, (rel, node)) in order.iter().rev() {
            if let Node::Dir { mode } = node {
                let to = dst.join(rel);
                set_mtime(&to, mtime(i))?;
                fs::set_permissions(&to, std::fs::Permissions::from_mode(dir_mode(*mode)))?;
            }
        }
        set_mtime(dst, mtime(order.len()))?;
        Ok(())
    }
}

fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

fn set_mtime(path: &Path, secs: u64) -> Result<()> {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    std::fs::File::open(path)
        .and_then(|f| f.set_times(std::fs::FileTimes::new().set_modified(t).set_accessed(t)))
        .with_context(|| format!("cannot set the mtime of {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_get_the_inputs_and_the_way_to_registries_and_nothing_else() {
        for name in [
            "BAKE_VAR_port",
            "SOURCE_DATE_EPOCH",
            "PATH",
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "NO_PROXY",
            "no_proxy",
            "ALL_PROXY",
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
        ] {
            assert!(passed_to_builds(name), "{name}");
        }
        for name in [
            "TZ",
            "LANG",
            "LC_ALL",
            "HOME",
            "TMPDIR",
            "XDG_CACHE_HOME",
            "UMASK",
            "PROXY",
            "BAKE_PASSWORD",
        ] {
            assert!(!passed_to_builds(name), "{name}");
        }
    }

    /// `find_variation` against a model of a build: the digest is another
    /// one each time when the conditions taken from build 2 include all of
    /// `cause` (as for the clock or mtimes), else `a`; or another digest
    /// every time, for a build that is not deterministic.
    #[test]
    fn find_variation_halves_down_to_the_conditions_a_difference_follows() {
        use Condition::*;
        let a = Digest::of(b"a");
        let model = |cause: &'static [Condition]| {
            let a = a.clone();
            let mut tried: Vec<Vec<Condition>> = Vec::new();
            let found = find_variation(&a, |conds| {
                tried.push(conds.to_vec());
                Ok(if cause.iter().all(|c| conds.contains(c)) {
                    Digest::of(format!("{}", tried.len()).as_bytes())
                } else {
                    a.clone()
                })
            })
            .unwrap();
            (found, tried)
        };
        for one in Condition::ALL {
            let cause: &'static [Condition] = Box::leak(Box::new([one]));
            let ((found, builds), tried) = model(cause);
            assert_eq!(found, Follows::Conditions(vec![one]), "{one:?}");
            assert_eq!(builds, tried.len());
            assert!((4..=7).contains(&builds), "{one:?}: {builds}");
            assert_eq!(tried[0], Vec::<Condition>::new(), "build 1's conditions first");
        }
        // Two conditions in different halves: the whole set, together.
        let ((found, builds), _) = model(&[Umask, Path]);
        assert_eq!(found, Follows::Conditions(Condition::ALL.to_vec()));
        assert_eq!(builds, 3);
        // Both in one quarter: that quarter.
        let ((found, _), _) = model(&[Timezone, Umask]);
        assert_eq!(found, Follows::Conditions(vec![Umask, Timezone]));
        // Build 1 again gives another digest: nothing is followed.
        let mut n = 0u8;
        let (found, builds) = find_variation(&a, |_| {
            n += 1;
            Ok(Digest::of(&[n]))
        })
        .unwrap();
        assert_eq!((found, builds), (Follows::Nothing(Digest::of(&[1])), 1));
        // A build that fails is the check's error.
        assert!(find_variation(&a, |_| Err(anyhow!("no space left"))).is_err());
    }

    fn steps(toml: &str) -> Vec<Step> {
        let recipe = bake_recipe::parse(Path::new("bake.toml"), toml, &Default::default()).unwrap();
        recipe.layers.into_iter().flat_map(|l| l.steps).collect()
    }

    #[test]
    fn a_run_step_is_described_by_all_its_commands() {
        let s = steps(
            "[image]\nname = \"x\"\n[[layer]]\n[[layer.step]]\n\
             run = [\"apk add x\", \"date > /built\", \"echo 'a\\nb'\"]\n",
        );
        let d = describe(&s[0]);
        assert_eq!(d, r#"run "apk add x", "date > /built", "echo 'a\nb'""#);
    }

    #[test]
    fn a_copied_mode_difference_explains_normalisation() {
        let blame = |kind: &'static str, cause: &str| Blame {
            path: Some("/app/x".into()),
            layer: 1,
            layer_name: "app".into(),
            step: "bake.toml:4:1".into(),
            kind,
            description: "copy x → /app/x".into(),
            cause: vec![cause.into()],
        };
        let mut out = Vec::new();
        write_blames(&mut out, &[blame("copy", "mode")], 0).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("modes are normalised") && text.contains("0755") && text.contains("`mode`"),
            "{text}"
        );
        let mut out = Vec::new();
        write_blames(&mut out, &[blame("copy", "content"), blame("file", "mode")], 0).unwrap();
        assert!(!String::from_utf8(out).unwrap().contains("normalised"));
    }
}
