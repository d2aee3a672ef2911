//! `bake diff A B`: loads two images from wherever they are (OCI layout,
//! docker-archive, registry) and prints how they differ (bake-diff's
//! report, for people or as JSON).
//!
//! Exit status (decided in `main`): 0 when the images are identical, 1 when
//! they differ — the report is the answer, so it goes to stdout and nothing
//! is printed as an error ([`ImagesDiffer`]) — and 1 with `error:` on
//! stderr when an image cannot be loaded or read.

use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, Result};
use bake_diff::{DiffReport, Image};
use bake_image::{Descriptor, Platform};
use bake_layer::ReadLimits;
use bake_store::BlobStore;

use crate::cli::DiffArgs;
use crate::registry::{self, CliProgress, Options};
use crate::target::Target;

/// Returned by [`diff`] when the images differ: `main` exits 1 without an
/// error message (the report is already on stdout).
#[derive(Debug)]
pub struct ImagesDiffer;

impl std::fmt::Display for ImagesDiffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the images differ")
    }
}

impl std::error::Error for ImagesDiffer {}

pub fn diff(args: DiffArgs, opts: Options) -> Result<()> {
    let platform = args
        .platform
        .as_deref()
        .map(|p| p.parse::<Platform>())
        .transpose()?;
    // Registry pulls and docker-archives land here; removed on return.
    let scratch = tempfile::Builder::new()
        .prefix("bake-diff-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let limits = args.limits.read_limits();
    let a = load(&args.a, platform.as_ref(), &opts, scratch.path(), &limits)?;
    let b = load(&args.b, platform.as_ref(), &opts, scratch.path(), &limits)?;
    let report = bake_diff::diff(&a, &b)?;
    print(&report, args.json, args.max_entries)?;
    if report.identical {
        Ok(())
    } else {
        Err(ImagesDiffer.into())
    }
}

/// Prints `report` on stdout: JSON (every change) or text for people (at
/// most `max_entries` entry changes per layer, 0 for all).
pub fn print(report: &DiffReport, json: bool, max_entries: usize) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    if json {
        let mut text = serde_json::to_string_pretty(report)?;
        text.push('\n');
        stdout.write_all(text.as_bytes())?;
    } else {
        stdout.write_all(report.to_human(max_entries).as_bytes())?;
    }
    stdout.flush()?;
    Ok(())
}

/// Loads the image `spec` names: `docker-archive:FILE` (or a path to a
/// file), an OCI layout (`oci:DIR[:TAG|@DIGEST]` or a layout directory), or
/// a registry reference, pulled into a store under `scratch`. Its layers
/// (and a docker-archive) are read within `limits`.
pub fn load(
    spec: &str,
    platform: Option<&Platform>,
    opts: &Options,
    scratch: &Path,
    limits: &ReadLimits,
) -> Result<Image> {
    let scratch_store = || BlobStore::open(&scratch.join("store"));
    if let Some(path) = spec.strip_prefix("docker-archive:") {
        return Ok(Image::from_docker_archive(
            spec,
            Path::new(path),
            platform,
            scratch_store()?,
            limits,
        )?);
    }
    if Path::new(spec).is_file() {
        return Ok(Image::from_docker_archive(
            spec,
            Path::new(spec),
            platform,
            scratch_store()?,
            limits,
        )?);
    }
    let image = match Target::parse(spec)? {
        Target::Layout { dir, which } => Image::from_layout(spec, &dir, which.as_deref(), platform)?,
        Target::Registry(r) => pull(spec, &r, platform, opts, scratch_store()?)?,
    };
    Ok(image.with_limits(limits))
}

/// Pulls a registry image into `store` and loads it from there.
fn pull(
    spec: &str,
    reference: &str,
    platform: Option<&Platform>,
    opts: &Options,
    store: BlobStore,
) -> Result<Image> {
    let reference = registry::parse_reference(reference)?;
    let client = registry::client(opts)?;
    let wanted = platform.cloned().unwrap_or_else(Platform::linux_amd64);
    let rt = registry::runtime()?;
    let progress = CliProgress::new(opts.quiet);
    let pulled = rt
        .block_on(client.pull_image(&reference, &wanted, &store, &progress))
        .with_context(|| {
            format!("pulling {reference} ({spec:?} is no file or layout here, so it was read as a registry reference)")
        })?;
    progress.finish();
    let desc = Descriptor::new(
        pulled.media_type,
        pulled.manifest_digest,
        pulled.manifest_bytes.len() as u64,
    );
    Ok(Image::from_store(spec, store, &desc, platform)?)
}
