//! The CLI's side of registries: resolves credentials and transport options
//! from the environment, runs bake-registry's async client on a runtime, and
//! reports transfers (indicatif bars on a terminal, plain lines otherwise).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use bake_digest::Digest;
use bake_image::Layout;
use bake_registry::{
    Direction, DockerConfig, LocalImage, Progress, PushReport, Reference, Registry, RegistryOptions, Skip,
};
use bake_sign::{
    Added, Payload, PublicKey, SigningKey, Verified, append_signature, sig_tag, verify_signatures,
};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::RegistryArgs;
use crate::sign::{Signed, find_tag, sig_config_digest};

/// Registry settings resolved from flags and the environment.
#[derive(Debug, Clone)]
pub struct Options {
    pub insecure: Vec<String>,
    pub docker_config_dir: PathBuf,
    pub quiet: bool,
}

impl Options {
    /// `$DOCKER_CONFIG`, else `~/.docker`.
    pub fn from_args(args: &RegistryArgs, quiet: bool) -> Options {
        Options {
            insecure: args.insecure_registries.clone(),
            docker_config_dir: docker_config_dir(),
            quiet,
        }
    }
}

pub fn docker_config_dir() -> PathBuf {
    crate::env::Env::get().docker_config_dir()
}

/// The registry client every command uses: credentials from the docker
/// config, the insecure hosts asked for.
pub(crate) fn client(opts: &Options) -> Result<Registry> {
    let docker_config = DockerConfig::load(&opts.docker_config_dir)?;
    Ok(Registry::new(RegistryOptions {
        docker_config,
        insecure_registries: opts.insecure.clone(),
        ..RegistryOptions::default()
    })?)
}

/// The async runtime every registry command runs on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A layout's index.json entry must give the size of the manifest it names
/// (bake-registry checks every descriptor below it).
fn check_descriptor_size(dir: &Path, desc: &bake_image::Descriptor, actual: usize) -> Result<()> {
    if desc.size != actual as u64 {
        bail!(
            "size mismatch for manifest {} in {}: its index.json entry gives {} bytes, the blob holds {actual}",
            desc.digest,
            dir.display(),
            desc.size
        );
    }
    Ok(())
}

pub fn parse_reference(s: &str) -> Result<Reference> {
    Ok(s.parse::<Reference>()?)
}

/// The manifest `which` names in a layout and the tags to push it with: the
/// tag itself, or (for a digest or `None`) every tag the layout gives it.
pub fn select(layout: &Layout, which: Option<&str>) -> Result<(bake_image::Descriptor, Vec<String>)> {
    let manifest = layout.resolve(which)?;
    let tags = match which {
        Some(w) if !w.starts_with("sha256:") => vec![w.to_owned()],
        _ => layout
            .index()?
            .iter()
            .filter(|d| d.digest == manifest.digest)
            .filter_map(|d| d.ref_name().map(str::to_owned))
            .collect(),
    };
    Ok((manifest, tags))
}

/// Pushes `manifest` from the layout at `dir` to `reference`, tagged with
/// `tags` (and `reference`'s own tag). Blobs missing there are mounted from
/// `mount_from` (a repository of the same registry, such as the base
/// image's) when it has them. A signature stored in the layout for that
/// manifest is pushed after it.
pub fn push_manifest(
    opts: &Options,
    dir: &Path,
    manifest: &bake_image::Descriptor,
    tags: &[String],
    reference: &str,
    mount_from: Option<&str>,
) -> Result<Vec<PushReport>> {
    let layout = Layout::open(dir)?;
    let target = parse_reference(reference)?;
    let store = layout.store();
    let bytes = store.read_verified(&manifest.digest)?;
    check_descriptor_size(dir, manifest, bytes.len())?;
    let registry = client(opts)?;
    let progress = CliProgress::new(opts.quiet);
    let rt = runtime()?;
    let mut reports = Vec::new();
    let image = LocalImage {
        store,
        manifest: &bytes,
        media_type: &manifest.media_type,
    };
    let report = crate::interrupt::block_on(&rt, async {
        registry
            .push_image(image, &target, tags, mount_from, &progress)
            .await
            .with_context(|| format!("pushing {} to {target}", dir.display()))
    })?;
    reports.push(report);
    let sig = sig_tag(&manifest.digest);
    if let Some(sig_desc) = find_tag(&layout, &sig)? {
        let sig_bytes = store.read_verified(&sig_desc.digest)?;
        check_descriptor_size(dir, &sig_desc, sig_bytes.len())?;
        let repo = target.repository_ref();
        let image = LocalImage {
            store,
            manifest: &sig_bytes,
            media_type: &sig_desc.media_type,
        };
        let report = crate::interrupt::block_on(&rt, async {
            registry
                .push_image(image, &repo, std::slice::from_ref(&sig), None, &progress)
                .await
                .with_context(|| format!("pushing the signature {sig} to {repo}"))
        })?;
        reports.push(report);
    }
    progress.finish();
    Ok(reports)
}

/// The manifest digest a reference names (resolving a tag).
async fn resolve(registry: &Registry, r: &Reference) -> Result<Digest> {
    match r.digest() {
        Some(d) => Ok(d.clone()),
        None => Ok(registry.resolve_digest(r).await?),
    }
}

/// The existing `.sig` manifest and config for `digest`, if any.
async fn existing_signatures(
    registry: &Registry,
    repo: &Reference,
    digest: &Digest,
) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    let sig_ref = repo.with_tag(&sig_tag(digest))?;
    match registry.fetch_manifest(&sig_ref).await {
        Ok(m) => {
            let config = registry.fetch_blob(repo, &sig_config_digest(&m.bytes)?).await?;
            Ok(Some((m.bytes, config)))
        }
        Err(e) if e.status() == Some(404) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Signs the manifest `reference` names, in its registry.
pub fn sign(opts: &Options, reference: &str, identity: Option<&str>, key: &SigningKey) -> Result<Signed> {
    let r = parse_reference(reference)?;
    let repo = r.repository_ref();
    let identity = identity.map_or_else(|| repo.to_string(), str::to_owned);
    let registry = client(opts)?;
    let rt = runtime()?;
    crate::interrupt::block_on(&rt, async {
        let digest = resolve(&registry, &r).await?;
        let payload = Payload::new(&identity, &digest)?.to_bytes();
        let signature = key.sign(&payload);
        let existing = existing_signatures(&registry, &repo, &digest).await?;
        let update = append_signature(
            existing.as_ref().map(|(m, c)| (m.as_slice(), c.as_slice())),
            &payload,
            &signature,
        )?;
        let tag = sig_tag(&digest);
        let added = update.added == Added::New;
        if added {
            let tmp = tempfile::tempdir()?;
            let store = bake_store::BlobStore::open(tmp.path())?;
            store.put_bytes(&update.payload)?;
            store.put_bytes(&update.config)?;
            // Earlier signatures' payloads are already in the repository:
            // the push HEADs every blob and finds them there.
            let image = LocalImage {
                store: &store,
                manifest: &update.manifest,
                media_type: bake_sign::OCI_MANIFEST_MEDIA_TYPE,
            };
            registry
                .push_image(
                    image,
                    &repo,
                    std::slice::from_ref(&tag),
                    None,
                    &CliProgress::new(true),
                )
                .await
                .with_context(|| format!("pushing the signature {tag} to {repo}"))?;
        }
        Ok(Signed {
            manifest: digest,
            identity,
            signature_tag: format!("{repo}:{tag}"),
            added,
        })
    })
}

/// Verifies the signatures of the manifest `reference` names.
pub fn verify(
    opts: &Options,
    reference: &str,
    key: &PublicKey,
    any_identity: bool,
    identity: Option<&str>,
) -> Result<(Digest, Verified)> {
    let r = parse_reference(reference)?;
    let repo = r.repository_ref();
    let expected = if any_identity {
        None
    } else {
        Some(identity.map_or_else(|| repo.to_string(), str::to_owned))
    };
    let registry = client(opts)?;
    let rt = runtime()?;
    rt.block_on(async {
        let digest = resolve(&registry, &r).await?;
        let sig_ref = repo.with_tag(&sig_tag(&digest))?;
        let sig = match registry.fetch_manifest(&sig_ref).await {
            Ok(m) => m,
            Err(e) if e.status() == Some(404) => {
                bail!("{r} ({digest}) is not signed: {sig_ref} does not exist")
            }
            Err(e) => return Err(e.into()),
        };
        // Fetch every payload first (verification itself is synchronous).
        let v: serde_json::Value =
            serde_json::from_slice(&sig.bytes).context("signature manifest is not JSON")?;
        let mut blobs: HashMap<Digest, Vec<u8>> = HashMap::new();
        for layer in v["layers"].as_array().into_iter().flatten() {
            if let Some(d) = layer["digest"].as_str().and_then(|d| d.parse::<Digest>().ok()) {
                if let Ok(bytes) = registry.fetch_blob(&repo, &d).await {
                    blobs.insert(d, bytes);
                }
            }
        }
        let verified = verify_signatures(
            key,
            &sig.bytes,
            |d| {
                blobs
                    .get(d)
                    .cloned()
                    .ok_or_else(|| format!("blob {d} could not be fetched from {repo}"))
            },
            &digest,
            expected.as_deref(),
        )?;
        Ok((digest, verified))
    })
}

/// Writes credentials for `registry` to the docker config.
/// Checks credentials against `registry` before they are saved.
pub fn check_login(
    opts: &Options,
    registry: &str,
    username: &str,
    password: &str,
) -> Result<bake_registry::LoginCheck> {
    let client = Registry::new(RegistryOptions {
        insecure_registries: opts.insecure.clone(),
        ..RegistryOptions::default()
    })?;
    Ok(runtime()?.block_on(client.check_login(registry, username, password))?)
}

pub fn login(registry: &str, username: &str, password: &str) -> Result<PathBuf> {
    let dir = docker_config_dir();
    bake_registry::login(&dir, registry, username, password)?;
    Ok(dir.join("config.json"))
}

/// Transfer progress: bars on a terminal, a line per blob otherwise.
pub struct CliProgress {
    quiet: bool,
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
}

impl CliProgress {
    pub fn new(quiet: bool) -> CliProgress {
        let multi = (!quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        CliProgress {
            quiet,
            multi,
            bars: Mutex::new(HashMap::new()),
        }
    }

    pub fn finish(&self) {
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }

    fn line(&self, s: String) {
        if self.quiet {
            return;
        }
        match &self.multi {
            Some(m) => {
                let _ = m.println(s);
            }
            None => eprintln!("{s}"),
        }
    }
}

fn verb(d: Direction) -> &'static str {
    match d {
        Direction::Upload => "uploading",
        Direction::Download => "downloading",
    }
}

impl Progress for CliProgress {
    fn start(&self, digest: &Digest, size: u64, direction: Direction) {
        match &self.multi {
            Some(m) => {
                let bar = m.add(ProgressBar::new(size));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix} {msg:12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_prefix(digest.short().to_owned());
                bar.set_message(verb(direction));
                if let Ok(mut bars) = self.bars.lock() {
                    bars.insert(digest.clone(), bar);
                }
            }
            None => self.line(format!("{} {digest} ({size} bytes)", verb(direction))),
        }
    }

    fn bytes(&self, digest: &Digest, done: u64) {
        if let Ok(bars) = self.bars.lock() {
            if let Some(b) = bars.get(digest) {
                b.set_position(done);
            }
        }
    }

    fn done(&self, digest: &Digest) {
        if let Ok(mut bars) = self.bars.lock() {
            if let Some(b) = bars.remove(digest) {
                b.finish_and_clear();
            }
        }
        self.line(format!("done        {digest}"));
    }

    fn skipped(&self, digest: &Digest, _size: u64, reason: Skip) {
        let why = match reason {
            Skip::Exists => "exists",
            Skip::Mounted => "mounted",
            Skip::Cached => "cached",
        };
        self.line(format!("{why:11} {digest}"));
    }

    fn retrying(&self, what: &str, attempt: u32, delay: Duration, reason: &str) {
        self.line(format!(
            "retrying {what} (attempt {attempt}) in {:.1}s: {reason}",
            delay.as_secs_f64()
        ));
    }
}

/// What `reference` points at, and the manifest for `platform` (the same
/// digest unless it is a multi-platform index).
pub fn resolve_platform(
    opts: &Options,
    reference: &str,
    platform: &bake_image::Platform,
) -> Result<(Digest, Digest)> {
    let r = parse_reference(reference)?;
    let registry = client(opts)?;
    Ok(runtime()?.block_on(registry.resolve_platform(&r, platform))?)
}
