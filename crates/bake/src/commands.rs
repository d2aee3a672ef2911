//! Resolves parsed flags against the environment into settings, runs the
//! command, and prints its result for humans or as JSON.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use bake_build::{BuildOutput, BuildSettings};
use serde_json::json;

use crate::cli::{BuildArgs, Cli, Command, LoginArgs, PushArgs};
use crate::registry;
use crate::target::Target;

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Build(args) => build(args),
        Command::Push(args) => push(args),
        Command::Login(args) => login(args),
        Command::Keygen(args) => crate::sign::keygen(args),
        Command::Sign(args) => {
            let opts = registry::Options::from_args(&args.registry, false);
            crate::sign::sign(args, opts)
        }
        Command::Verify(args) => {
            let opts = registry::Options::from_args(&args.registry, true);
            crate::sign::verify(args, opts)
        }
        Command::Diff(args) => {
            let opts = registry::Options::from_args(&args.registry, args.json);
            crate::diff::diff(args, opts)
        }
        Command::Lock(args) => lock(args),
        Command::Check(args) => {
            let opts = registry::Options::from_args(&args.inputs.registry, args.quiet);
            crate::check::check(args, opts)
        }
        Command::Store(args) => crate::store::run(args, default_cache_dir()),
    }
}

/// `$XDG_CACHE_HOME/bake`, else `$HOME/.cache/bake`; none without either.
fn default_cache_dir() -> Option<PathBuf> {
    crate::env::Env::get().default_cache_dir()
}

/// The environment the build sees, read once, here.
/// `--var` flags and `BAKE_VAR_*` variables.
fn overrides(vars: &[String]) -> Result<bake_recipe::Overrides> {
    let mut cli = Vec::new();
    for v in vars {
        cli.push(bake_recipe::parse_var_override(v)?);
    }
    Ok(bake_recipe::Overrides {
        cli,
        env: crate::env::Env::get().bake_vars(),
    })
}

/// The epoch the user named: `--source-date-epoch` wins over
/// `SOURCE_DATE_EPOCH`, which wins over the recipe's `epoch` (bake-build
/// applies that last one). A malformed `SOURCE_DATE_EPOCH` is an error even
/// when the flag wins, so a typo is never silently ignored.
pub(crate) fn resolve_epoch(flag: Option<u64>, env: Option<String>) -> Result<Option<bake_build::Epoch>> {
    let env = match env {
        Some(s) if !s.trim().is_empty() => Some(s.trim().parse::<u64>().map_err(|_| {
            let excerpt: String = s.chars().take(40).collect();
            anyhow::anyhow!("SOURCE_DATE_EPOCH={excerpt:?} is not a whole number of seconds since 1970")
        })?),
        _ => None,
    };
    Ok(match (flag, env) {
        (Some(seconds), _) => Some(bake_build::Epoch {
            seconds,
            source: bake_build::EpochSource::Flag,
        }),
        (None, Some(seconds)) => Some(bake_build::Epoch {
            seconds,
            source: bake_build::EpochSource::Env,
        }),
        (None, None) => None,
    })
}

pub(crate) fn build_settings(args: &BuildArgs) -> Result<BuildSettings> {
    let overrides = overrides(&args.inputs.vars)?;
    let epoch = resolve_epoch(
        args.inputs.source_date_epoch,
        crate::env::Env::get().source_date_epoch(),
    )?;
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    Ok(BuildSettings {
        recipe: args.recipe.clone(),
        overrides,
        epoch,
        layout: args.layout.clone(),
        out_root: cwd.join("out"),
        docker_archive: args.docker_archive.clone(),
        tmp_dir: std::env::temp_dir(),
        cache_dir: if args.no_cache {
            None
        } else {
            args.cache_dir.clone().or_else(default_cache_dir)
        },
        registry: bake_registry::RegistryOptions {
            docker_config: bake_registry::DockerConfig::load(&registry::docker_config_dir())?,
            insecure_registries: args.inputs.registry.insecure_registries.clone(),
            ..bake_registry::RegistryOptions::default()
        },
        locked: args.locked,
        limits: args.inputs.limits.read_limits(),
        // The build log joins these once its path is known (`build`).
        own_outputs: vec![crate::lock::lock_path(&args.recipe)],
        // `build` raises it on a signal (`interrupt::install`).
        interrupt: bake_build::Interrupt::default(),
    })
}

fn build(args: BuildArgs) -> Result<()> {
    let mut settings = build_settings(&args)?;
    settings.interrupt = crate::interrupt::install().context("cannot install the signal handlers")?;
    if !settings.recipe.exists() {
        bail!("recipe {} does not exist", settings.recipe.display());
    }
    let started = std::time::Instant::now();
    let mut recipe = bake_build::load_recipe(&settings)?;
    apply_compression(&mut recipe, &args.inputs.compression)?;
    let log_path = build_log_path(&args, &settings, &recipe)?;
    settings.own_outputs.extend(log_path.clone());
    if args.locked {
        let hidden = bake_build::own_outputs(&recipe, &settings);
        crate::lock::apply_locked(&mut recipe, &hidden)?;
    }
    let hidden = bake_build::hidden_from_copies(&recipe, &settings);
    if !hidden.is_empty() && !args.quiet {
        let list: Vec<String> = hidden.iter().map(|p| p.display().to_string()).collect();
        eprintln!(
            "note: bake's own outputs inside the build context are not copied into the image: {}",
            list.join(", ")
        );
    }
    let log = match log_path {
        Some(path) => {
            let log = crate::progress::BuildLog::create(&path)?;
            log.text(&format!(
                "bake {} build {}",
                env!("CARGO_PKG_VERSION"),
                settings.recipe.display()
            ));
            Some(log)
        }
        None => None,
    };
    let reporter = crate::progress::Reporter::new(args.quiet, log);
    let result = build_and_push(&args, &settings, &recipe, &reporter);
    reporter.finish();
    let log = reporter.log();
    let (out, pushed) = match result {
        Ok(done) => done,
        Err(err) => {
            if let Some(log) = log {
                log.text(&crate::error_text(&err));
                // The build's own error is the one to report.
                let _ = log.finish();
            }
            return Err(err);
        }
    };
    let elapsed = started.elapsed();
    let mut summary = Vec::new();
    write_human(&mut summary, &out, elapsed)?;
    for p in &pushed {
        for r in p["references"].as_array().into_iter().flatten() {
            writeln!(summary, "  pushed    {}", r.as_str().unwrap_or_default())?;
        }
    }
    if let Some(log) = log {
        log.text(&String::from_utf8_lossy(&summary));
        log.finish()?;
    }
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let mut v = build_json(&out);
        v["pushed"] = json!(pushed);
        v["log"] = json!(log.map(|l| path_string(l.path())));
        let mut text = serde_json::to_string_pretty(&v)?;
        text.push('\n');
        stdout.write_all(text.as_bytes())?;
    } else if !args.quiet {
        stdout.write_all(&summary)?;
    }
    stdout.flush()?;
    Ok(())
}

/// `--log`, else `<layout>.log` beside the layout; none with `--no-log`.
/// The default's directory is created (it is where the layout goes).
fn build_log_path(
    args: &BuildArgs,
    settings: &BuildSettings,
    recipe: &bake_recipe::Recipe,
) -> Result<Option<PathBuf>> {
    if args.no_log {
        return Ok(None);
    }
    if let Some(path) = &args.log {
        return Ok(Some(path.clone()));
    }
    let layout = settings
        .layout
        .clone()
        .unwrap_or_else(|| bake_build::default_layout(&settings.out_root, &recipe.image.name));
    let mut path = layout.into_os_string();
    path.push(".log");
    let path = PathBuf::from(path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs_err::create_dir_all(dir).context("cannot create the build log's directory")?;
    }
    Ok(Some(path))
}

/// The build, then its pushes and signatures: the output and what each
/// push reported.
fn build_and_push(
    args: &BuildArgs,
    settings: &BuildSettings,
    recipe: &bake_recipe::Recipe,
    reporter: &crate::progress::Reporter,
) -> Result<(BuildOutput, Vec<serde_json::Value>)> {
    let out = bake_build::build_recipe_with(recipe, settings, reporter)?;
    if let Some(base) = &out.base {
        if base.from_tag && !args.quiet {
            let pinned = registry::parse_reference(&base.reference)
                .map(|r| r.repository_ref().with_digest(base.digest.clone()).to_string())
                .unwrap_or_else(|_| format!("{}@{}", base.reference, base.digest));
            eprintln!(
                "warning: base {} is a tag, resolved now to {}: pin it as {pinned} for a reproducible build",
                base.reference, base.digest,
            );
        }
    }
    // Push and sign only after the build fully succeeded.
    let mut push_targets: Vec<String> = recipe.output.push.clone();
    push_targets.extend(args.push.iter().cloned());
    if args.sign && push_targets.is_empty() {
        bail!("--sign needs somewhere to push: --push REF or [output] push in the recipe");
    }
    let key = match (&args.key, args.sign) {
        (Some(k), true) => Some(crate::sign::load_signing_key(k)?),
        _ => None,
    };
    let opts = registry::Options::from_args(&args.inputs.registry, args.quiet || args.json);
    let mut pushed = Vec::new();
    for target in &push_targets {
        // Base layers already in the same registry are mounted, not uploaded.
        let target_ref = registry::parse_reference(target)?;
        let mount_from = out
            .base
            .as_ref()
            .and_then(|b| registry::parse_reference(&b.reference).ok())
            .filter(|b| b.registry() == target_ref.registry() && b.repository() != target_ref.repository())
            .map(|b| b.repository().to_owned());
        let reports = registry::push_manifest(
            &opts,
            &out.layout,
            &out.manifest,
            &out.tags,
            target,
            mount_from.as_deref(),
        )?;
        let mut entry = json!({
            "reference": target,
            "digest": out.manifest.digest.to_string(),
            "references": reports.first().map(|r| r.references.iter().map(|x| x.to_string()).collect::<Vec<_>>()),
            "uploaded": reports.iter().map(|r| r.uploaded.len()).sum::<usize>(),
            "mounted": reports.iter().map(|r| r.mounted.len()).sum::<usize>(),
        });
        if let Some(key) = &key {
            let repo = registry::parse_reference(target)?.repository_ref();
            let by_digest = format!("{repo}@{}", out.manifest.digest);
            let signed = registry::sign(&opts, &by_digest, None, key)?;
            if !args.quiet && !args.json {
                crate::sign::report_signed(&signed, key);
            }
            entry["signature"] = json!(signed.signature_tag);
        }
        pushed.push(entry);
    }
    Ok((out, pushed))
}

fn push(args: PushArgs) -> Result<()> {
    let opts = registry::Options::from_args(&args.registry, args.quiet || args.json);
    let (dir, which) = match Target::parse(&args.image)? {
        Target::Layout { dir, which } => (dir, which),
        Target::Registry(r) => bail!(
            "{r} is not an OCI layout: push takes oci:DIR[:TAG] (or a layout directory) and a registry reference"
        ),
    };
    let layout = bake_image::Layout::open(&dir)?;
    let (manifest, tags) = registry::select(&layout, which.as_deref())?;
    let reports = registry::push_manifest(&opts, &dir, &manifest, &tags, &args.reference, None)?;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let v: Vec<_> = reports
            .iter()
            .map(|r| {
                json!({
                    "digest": r.digest.to_string(),
                    "references": r.references.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
                    "uploaded": r.uploaded.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                    "mounted": r.mounted.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                    "skipped": r.skipped.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                })
            })
            .collect();
        writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&json!({ "pushed": v }))?
        )?;
    } else if !args.quiet {
        for r in &reports {
            writeln!(
                stdout,
                "pushed {} ({} uploaded, {} mounted, {} already there)",
                r.digest,
                r.uploaded.len(),
                r.mounted.len(),
                r.skipped.len()
            )?;
            for reference in &r.references {
                writeln!(stdout, "  {reference}")?;
            }
        }
    }
    Ok(())
}

fn login(args: LoginArgs) -> Result<()> {
    if !args.password_stdin {
        bail!("give the password on standard input with --password-stdin (never on the command line)");
    }
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        bail!("the password on standard input is empty");
    }
    if !args.no_verify {
        let opts = registry::Options::from_args(&args.registry_args, true);
        match registry::check_login(&opts, &args.registry, &args.username, password).with_context(|| {
            format!(
                "credentials for {} not saved (--no-verify saves them unchecked)",
                args.registry
            )
        })? {
            bake_registry::LoginCheck::Accepted => {
                eprintln!(
                    "{} accepted the credentials of {:?}",
                    args.registry, args.username
                )
            }
            bake_registry::LoginCheck::NotAsked => eprintln!(
                "note: {} asks for no credentials at /v2/, so they could not be checked",
                args.registry
            ),
        }
    }
    let path = registry::login(&args.registry, &args.username, password)?;
    eprintln!("credentials for {} saved in {}", args.registry, path.display());
    Ok(())
}

/// The `--json` build manifest: what CI needs to deploy or roll back by digest.
pub fn build_json(out: &BuildOutput) -> serde_json::Value {
    let layers: Vec<_> = out
        .layers
        .iter()
        .map(|l| {
            json!({
                "name": l.name,
                "digest": l.descriptor.digest.to_string(),
                "diffID": l.diff_id.to_string(),
                "size": l.descriptor.size,
                "mediaType": l.descriptor.media_type,
                "fromBase": l.from_base,
                "cached": l.cached,
                "compressed": l.compressed,
            })
        })
        .collect();
    let timings: serde_json::Map<String, serde_json::Value> = out
        .timings
        .iter()
        .map(|(k, d)| (k.clone(), json!(d.as_secs_f64() * 1000.0)))
        .collect();
    json!({
        "name": out.name,
        "digest": out.manifest.digest.to_string(),
        "mediaType": out.manifest.media_type,
        "size": out.manifest.size,
        "config": {
            "digest": out.config.digest.to_string(),
            "size": out.config.size,
            "mediaType": out.config.media_type,
        },
        "layers": layers,
        "tags": out.tags,
        "platform": out.platform.to_string(),
        "epoch": out.epoch.seconds,
        "epochSource": out.epoch.source.name(),
        "layout": path_string(&out.layout),
        "dockerArchive": out.docker_archive.as_deref().map(path_string),
        "timingsMs": timings,
        "cache": out.cache.map(|c| json!({
            "filesHashed": c.files_hashed,
            "bytesHashed": c.bytes_hashed,
            "statHits": c.stat_hits,
            "layersCached": c.layers_cached,
            "layersBuilt": c.layers_built,
        })),
    })
}

fn path_string(p: &Path) -> String {
    p.display().to_string()
}

fn write_human(w: &mut impl Write, out: &BuildOutput, elapsed: std::time::Duration) -> Result<()> {
    writeln!(
        w,
        "built {} ({}) in {:.2}s",
        out.name,
        out.platform,
        elapsed.as_secs_f64()
    )?;
    writeln!(w, "  manifest  {}", out.manifest.digest)?;
    writeln!(
        w,
        "  config    {}  {}",
        out.config.digest,
        human_size(out.config.size)
    )?;
    writeln!(w, "  layers")?;
    let width = out.layers.iter().map(|l| l.name.len()).max().unwrap_or(0);
    for (i, l) in out.layers.iter().enumerate() {
        writeln!(
            w,
            "    {:>2} {:width$}  {}  {:>9}{}",
            i + 1,
            l.name,
            l.descriptor.digest,
            human_size(l.descriptor.size),
            if l.compressed {
                "  (base, compressed)"
            } else if l.from_base {
                "  (base, reused)"
            } else if l.cached {
                "  (cached)"
            } else {
                ""
            },
        )?;
    }
    writeln!(
        w,
        "  epoch     {} ({})",
        out.epoch.seconds,
        out.epoch.source.name()
    )?;
    writeln!(w, "  layout    {}", out.layout.display())?;
    for tag in &out.tags {
        writeln!(w, "  tag       {}:{tag}", out.name)?;
    }
    if let Some(a) = &out.docker_archive {
        writeln!(w, "  archive   {}", a.display())?;
    }
    Ok(())
}

pub(crate) fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `--compression` and `--level` over the recipe's `[output]`: the scheme
/// from the flag (its default level unless `--level`), else the recipe's.
pub(crate) fn apply_compression(
    recipe: &mut bake_recipe::Recipe,
    args: &crate::cli::CompressionArgs,
) -> Result<()> {
    use crate::cli::CompressionFlag;
    use bake_recipe::Compression;
    let scheme = match args.compression {
        None => recipe.output.compression,
        Some(CompressionFlag::Gzip) => Compression::Gzip,
        Some(CompressionFlag::Zstd) => Compression::Zstd,
        Some(CompressionFlag::None) => Compression::None,
    };
    let level = match (args.level, scheme.levels()) {
        (None, _) if args.compression.is_none() => recipe.output.level,
        (None, _) => scheme.default_level(),
        (Some(_), None) => bail!("--level: compression {scheme} takes no level"),
        (Some(l), Some(range)) if !range.contains(&l) => bail!(
            "--level {l}: {scheme} levels are {} to {}",
            range.start(),
            range.end()
        ),
        (Some(l), Some(_)) => Some(l),
    };
    recipe.output.compression = scheme;
    recipe.output.level = level;
    Ok(())
}

fn lock(args: crate::cli::LockArgs) -> Result<()> {
    let text = fs_err::read_to_string(&args.recipe)?;
    let mut recipe = bake_recipe::parse(&args.recipe, &text, &overrides(&args.vars)?)?;
    apply_compression(&mut recipe, &args.compression)?;
    let base = match &recipe.base {
        bake_recipe::BaseRef::Registry { reference } => {
            let opts = registry::Options::from_args(&args.registry, true);
            let platform = bake_build::platform_of(&recipe);
            let (digest, manifest) = registry::resolve_platform(&opts, reference, &platform)?;
            Some(crate::lock::LockedBase {
                reference: reference.clone(),
                digest,
                manifest,
                platform: platform.to_string(),
            })
        }
        _ => None,
    };
    // What a default `bake build` of this recipe here writes: its copies
    // do not read it, so neither does the lock.
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let layout = bake_build::default_layout(&cwd.join("out"), &recipe.image.name);
    let mut log = layout.clone().into_os_string();
    log.push(".log");
    let mut hidden = vec![
        layout,
        PathBuf::from(log),
        crate::lock::lock_path(&args.recipe),
        std::env::temp_dir(),
    ];
    hidden.extend(default_cache_dir());
    let lock = crate::lock::compute(&recipe, base, &hidden)?;
    let path = crate::lock::lock_path(&args.recipe);
    // 0666 less the umask, like the recipe beside it; synced, so a crash
    // right after `bake lock` cannot leave an empty lock file.
    bake_store::write_atomic(&path, crate::lock::render(&lock).as_bytes(), 0o666)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "locked {} inputs{} in {}",
        lock.inputs.len(),
        if lock.base.is_some() { " and the base" } else { "" },
        path.display()
    );
    Ok(())
}
