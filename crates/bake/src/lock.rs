//! `bake lock RECIPE` and `bake build --locked`: every input that can move,
//! pinned in `RECIPE.lock` (TOML, stable order), and checked before a locked
//! build.
//!
//! Pinned: the base image (a registry reference resolved to what it points
//! at and to the platform manifest; a layout or archive by content), the
//! sha256 of every `.deb` and unpacked archive, a Merkle digest of every
//! copied file or tree (names, kinds, the bits that reach the image, link
//! targets, contents), the output-format version and compression. A
//! `--locked` build fails naming the first input that no longer matches and
//! what changed; a registry base given by tag is built from its locked
//! digest, so a moved tag cannot change a locked build.

use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use bake_digest::{Digest, Hasher};
use bake_recipe::{BaseRef, CopyMtime, Recipe, StepKind};

/// One pinned input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// `layer NAME, step N` — stable across edits elsewhere in the recipe.
    pub step: String,
    pub kind: &'static str,
    /// The context path (or reference) it reads.
    pub path: String,
    pub digest: Digest,
    /// Files and bytes behind a tree digest, for messages.
    pub files: u64,
    pub bytes: u64,
}

/// A registry base, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedBase {
    pub reference: String,
    pub digest: Digest,
    pub manifest: Digest,
    pub platform: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub output_format: u32,
    pub compression: String,
    pub base: Option<LockedBase>,
    pub inputs: Vec<Input>,
}

/// `recipe.toml` → `recipe.toml.lock`.
pub fn lock_path(recipe: &Path) -> PathBuf {
    let mut s = recipe.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// Hashes everything the recipe reads from its context. `base` is the
/// registry base's resolution (from the registry for `bake lock`, from the
/// lock itself for `--locked`).
/// `hidden`: what the build writes ([`bake_build::own_outputs`]), which its
/// copies do not read.
pub fn compute(recipe: &Recipe, base: Option<LockedBase>, hidden: &[PathBuf]) -> Result<Lock> {
    let context = bake_layer::Context::new(&recipe.context)?.with_hidden(hidden);
    let mut inputs = Vec::new();
    let mut add =
        |step: String, kind: &'static str, path: &str, (digest, files, bytes): (Digest, u64, u64)| {
            inputs.push(Input {
                step,
                kind,
                path: path.to_owned(),
                digest,
                files,
                bytes,
            });
        };
    match &recipe.base {
        BaseRef::OciLayout { path, .. } | BaseRef::DockerArchive { path } => {
            let resolved = context.resolve(path)?;
            add(
                "base".to_owned(),
                "base",
                path,
                tree_digest(&resolved, &[], CopyMtime::Epoch)?,
            );
        }
        BaseRef::Scratch | BaseRef::Registry { .. } => {}
    }
    for layer in &recipe.layers {
        for (i, step) in layer.steps.iter().enumerate() {
            let name = format!("layer {}, step {}", layer.name, i + 1);
            match &step.kind {
                // Exactly what the layer cache keys the copy on (one walk,
                // one encoding): hardlink grouping and all.
                StepKind::Copy { src, .. } => {
                    add(name, "copy", src, bake_build::copy_input_digest(&context, step)?);
                }
                StepKind::Unpack { src, .. } => {
                    let digest = context
                        .resolve(src)
                        .map_err(anyhow::Error::from)
                        .and_then(|p| file_digest(&p))
                        .with_context(|| format!("{}: unpack {src}", step.pos))?;
                    add(name, "unpack", src, digest);
                }
                StepKind::Deb { src, .. } => {
                    let digest = context
                        .resolve(src)
                        .map_err(anyhow::Error::from)
                        .and_then(|p| file_digest(&p))
                        .with_context(|| format!("{}: deb {src}", step.pos))?;
                    add(name, "deb", src, digest);
                }
                _ => {}
            }
        }
    }
    Ok(Lock {
        output_format: bake_build::OUTPUT_FORMAT_VERSION,
        compression: bake_build::compression_of(recipe).id(),
        base,
        inputs,
    })
}

fn file_digest(path: &Path) -> Result<(Digest, u64, u64)> {
    let mut f = bake_layer::open_input(path)?;
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let (d, n) = h.finish();
    Ok((d, 1, n))
}

/// A Merkle digest over a base layout or docker-archive in the context:
/// each node's relative name, kind, executable bit, link target and
/// content digest (copies use [`bake_build::copy_input_digest`] instead,
/// the layer cache's own key material).
fn tree_digest(src: &Path, exclude: &[String], mtime: CopyMtime) -> Result<(Digest, u64, u64)> {
    let nodes = bake_layer::copy_inputs(0, src, exclude)?;
    let mut h = Hasher::new();
    let (mut files, mut bytes) = (0u64, 0u64);
    for node in nodes {
        let ft = node.metadata.file_type();
        let mut line = String::new();
        let _ = write!(line, "{}\0", node.rel);
        if ft.is_symlink() {
            let target = fs_err::read_link(&node.path)?;
            let _ = write!(line, "l\0{}", target.display());
        } else if ft.is_dir() {
            line.push('d');
        } else if ft.is_file() {
            let (d, _, n) = file_digest(&node.path)?;
            let exec = node.metadata.permissions().mode() & 0o111 != 0;
            let _ = write!(line, "f\0{}\0{d}", if exec { "x" } else { "-" });
            files += 1;
            bytes += n;
        } else {
            line.push('?');
        }
        if mtime != CopyMtime::Epoch {
            use std::os::unix::fs::MetadataExt;
            let _ = write!(line, "\0{}", node.metadata.mtime());
        }
        line.push('\n');
        h.update(line.as_bytes());
    }
    Ok((h.finish().0, files, bytes))
}

/// The lock as TOML, in a fixed order.
pub fn render(lock: &Lock) -> String {
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let mut out = String::new();
    out.push_str("# Written by `bake lock`: every input of the recipe that can move, pinned.\n");
    out.push_str("# `bake build --locked` refuses to build when one no longer matches.\n");
    let _ = writeln!(
        out,
        "version = 1\noutput-format = {}\ncompression = {}",
        lock.output_format,
        q(&lock.compression)
    );
    if let Some(b) = &lock.base {
        let _ = writeln!(
            out,
            "\n[base]\nreference = {}\ndigest = {}\nmanifest = {}\nplatform = {}",
            q(&b.reference),
            q(&b.digest.to_string()),
            q(&b.manifest.to_string()),
            q(&b.platform)
        );
    }
    for i in &lock.inputs {
        let _ = writeln!(
            out,
            "\n[[input]]\nstep = {}\nkind = {}\npath = {}\ndigest = {}\nfiles = {}\nbytes = {}",
            q(&i.step),
            q(i.kind),
            q(&i.path),
            q(&i.digest.to_string()),
            i.files,
            i.bytes
        );
    }
    out
}

/// Parses a lock file.
pub fn parse(path: &Path) -> Result<Lock> {
    let text = fs_err::read_to_string(path)?;
    let v: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not a valid lock file", path.display()))?;
    let bad = |what: &str| anyhow::anyhow!("{}: invalid or missing {what}", path.display());
    let s = |t: &toml::Table, k: &str| {
        t.get(k)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| bad(k))
    };
    let n = |t: &toml::Table, k: &str| {
        t.get(k)
            .and_then(|v| v.as_integer())
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| bad(k))
    };
    let d = |t: &toml::Table, k: &str| -> Result<Digest> { s(t, k)?.parse().map_err(|_| bad(k)) };
    let base = match v.get("base").and_then(|b| b.as_table()) {
        Some(b) => Some(LockedBase {
            reference: s(b, "reference")?,
            digest: d(b, "digest")?,
            manifest: d(b, "manifest")?,
            platform: s(b, "platform")?,
        }),
        None => None,
    };
    let mut inputs = Vec::new();
    for i in v.get("input").and_then(|i| i.as_array()).into_iter().flatten() {
        let t = i.as_table().ok_or_else(|| bad("[[input]]"))?;
        let kind = match s(t, "kind")?.as_str() {
            "copy" => "copy",
            "unpack" => "unpack",
            "deb" => "deb",
            "base" => "base",
            _ => return Err(bad("kind")),
        };
        inputs.push(Input {
            step: s(t, "step")?,
            kind,
            path: s(t, "path")?,
            digest: d(t, "digest")?,
            files: n(t, "files")?,
            bytes: n(t, "bytes")?,
        });
    }
    Ok(Lock {
        output_format: u32::try_from(n(&v, "output-format")?).map_err(|_| bad("output-format"))?,
        compression: s(&v, "compression")?,
        base,
        inputs,
    })
}

/// Compares a fresh computation with the lock file: the first difference,
/// explained, or `Ok`.
pub fn check(lock_file: &Path, locked: &Lock, now: &Lock) -> Result<()> {
    let at = lock_file.display();
    if locked.output_format != now.output_format {
        bail!(
            "{at}: locked for output format {}, this bake writes format {}: run `bake lock` again",
            locked.output_format,
            now.output_format
        );
    }
    if locked.compression != now.compression {
        bail!(
            "{at}: compression changed: locked {}, now {}",
            locked.compression,
            now.compression
        );
    }
    for (l, n) in locked.inputs.iter().zip(&now.inputs) {
        if (l.step.as_str(), l.kind, l.path.as_str()) != (n.step.as_str(), n.kind, n.path.as_str()) {
            bail!(
                "{at}: the recipe's inputs changed: {} {} ({}) is locked where the recipe now has {} {} ({}): run `bake lock` again",
                l.kind,
                l.path,
                l.step,
                n.kind,
                n.path,
                n.step
            );
        }
        if l.digest != n.digest {
            let what = if l.kind == "copy" {
                format!(
                    "{} files, {} bytes when locked; now {} files, {} bytes",
                    l.files, l.bytes, n.files, n.bytes
                )
            } else {
                format!("{} bytes when locked; now {} bytes", l.bytes, n.bytes)
            };
            bail!(
                "{at}: input {} {} ({}) no longer matches the lock: {} → {} ({what})",
                l.kind,
                l.path,
                l.step,
                l.digest,
                n.digest
            );
        }
    }
    if locked.inputs.len() != now.inputs.len() {
        bail!(
            "{at}: the recipe now reads {} inputs, the lock has {}: run `bake lock` again",
            now.inputs.len(),
            locked.inputs.len()
        );
    }
    Ok(())
}

/// For `--locked`: the recipe with its registry base pinned to the locked
/// digest, after checking every input. Fails when there is no lock file.
pub fn apply_locked(recipe: &mut Recipe, hidden: &[PathBuf]) -> Result<()> {
    let path = lock_path(&recipe.path);
    if !path.is_file() {
        bail!(
            "--locked: {} does not exist: run `bake lock {}` first",
            path.display(),
            recipe.path.display()
        );
    }
    let locked = parse(&path)?;
    if let BaseRef::Registry { reference } = &recipe.base {
        match &locked.base {
            Some(b) if &b.reference == reference => {
                recipe.base = BaseRef::Registry {
                    reference: crate::registry::parse_reference(reference)?
                        .repository_ref()
                        .with_digest(b.digest.clone())
                        .to_string(),
                };
            }
            Some(b) => bail!(
                "{}: locked base {} but the recipe now says {reference}: run `bake lock` again",
                path.display(),
                b.reference
            ),
            None => bail!(
                "{}: has no base, but the recipe's base is {reference}: run `bake lock` again",
                path.display()
            ),
        }
    }
    let now = compute(recipe, locked.base.clone(), hidden)?;
    check(&path, &locked, &now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_and_parse_round_trip() {
        let lock = Lock {
            output_format: 2,
            compression: "gzip-6".into(),
            base: Some(LockedBase {
                reference: "r.io/a:1".into(),
                digest: Digest::of(b"i"),
                manifest: Digest::of(b"m"),
                platform: "linux/amd64".into(),
            }),
            inputs: vec![Input {
                step: "layer app, step 1".into(),
                kind: "copy",
                path: "www \"x\"".into(),
                digest: Digest::of(b"t"),
                files: 3,
                bytes: 10,
            }],
        };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.toml.lock");
        fs_err::write(&p, render(&lock)).unwrap();
        assert_eq!(parse(&p).unwrap(), lock);
    }
}
