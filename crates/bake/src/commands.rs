//! Resolves parsed flags against the environment into settings, runs the
//! command, and prints its result for humans or as JSON.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use bake_build::{BuildOutput, BuildSettings};
use serde_json::json;

use crate::cli::{BuildArgs, Cli, Command};

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Build(args) => build(args),
    }
}

/// The environment the build sees, read once, here.
fn build_settings(args: &BuildArgs) -> Result<BuildSettings> {
    let mut cli_vars = Vec::new();
    for v in &args.vars {
        cli_vars.push(bake_recipe::parse_var_override(v)?);
    }
    let env_vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let k = k.into_string().ok()?;
            let name = k.strip_prefix("BAKE_VAR_")?.to_owned();
            Some((name, v.into_string().ok()?))
        })
        .collect();
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if !s.trim().is_empty() => Some(s.trim().parse::<u64>().with_context(|| {
            format!("SOURCE_DATE_EPOCH={s:?} is not a whole number of seconds since 1970")
        })?),
        _ => args.source_date_epoch,
    };
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    Ok(BuildSettings {
        recipe: args.recipe.clone(),
        overrides: bake_recipe::Overrides {
            cli: cli_vars,
            env: env_vars,
        },
        epoch,
        layout: args.layout.clone(),
        out_root: cwd.join("out"),
        docker_archive: args.docker_archive.clone(),
        tmp_dir: std::env::temp_dir(),
    })
}

fn build(args: BuildArgs) -> Result<()> {
    let settings = build_settings(&args)?;
    if !settings.recipe.exists() {
        bail!("recipe {} does not exist", settings.recipe.display());
    }
    let started = std::time::Instant::now();
    let out = bake_build::build(&settings)?;
    let elapsed = started.elapsed();
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let mut text = serde_json::to_string_pretty(&build_json(&out))?;
        text.push('\n');
        stdout.write_all(text.as_bytes())?;
    } else if !args.quiet {
        write_human(&mut stdout, &out, elapsed)?;
    }
    stdout.flush()?;
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
        "epoch": out.epoch,
        "layout": path_string(&out.layout),
        "dockerArchive": out.docker_archive.as_ref().map(path_string),
        "timingsMs": timings,
    })
}

fn path_string(p: &PathBuf) -> String {
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
            if l.from_base { "  (base, reused)" } else { "" },
        )?;
    }
    writeln!(w, "  layout    {}", out.layout.display())?;
    for tag in &out.tags {
        writeln!(w, "  tag       {}:{tag}", out.name)?;
    }
    if let Some(a) = &out.docker_archive {
        writeln!(w, "  archive   {}", a.display())?;
    }
    Ok(())
}

fn human_size(n: u64) -> String {
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
