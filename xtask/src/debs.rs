//! `cargo xtask fetch-debs`: downloads the Debian packages that example
//! recipes pin in `recipes/*/debs.lock`, with `apt-get download
//! PACKAGE=VERSION`, into the recipe's `debs/` (not committed), and checks
//! each file's sha256 against the lock. `test` and `golden` call it first.
//!
//! A lock line is `PACKAGE VERSION SHA256 FILE`; `#` starts a comment.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// One pinned package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub package: String,
    pub version: String,
    pub sha256: String,
    pub file: String,
}

/// Parses a `debs.lock`.
pub fn parse_lock(text: &str) -> Result<Vec<Pin>> {
    let mut pins = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [package, version, sha256, file] = fields[..] else {
            bail!("line {}: expected `PACKAGE VERSION SHA256 FILE`", n + 1);
        };
        let hex_ok = sha256.len() == 64 && sha256.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !hex_ok {
            bail!("line {}: {sha256:?} is not 64 lower-case hex digits", n + 1);
        }
        if file.contains('/') || !file.ends_with(".deb") {
            bail!("line {}: {file:?} must be a plain `.deb` file name", n + 1);
        }
        pins.push(Pin {
            package: package.to_owned(),
            version: version.to_owned(),
            sha256: sha256.to_owned(),
            file: file.to_owned(),
        });
    }
    Ok(pins)
}

fn sha256_of(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(bake_digest::Digest::of(&bytes).hex().to_owned())
}

/// Every `recipes/*/debs.lock`, sorted.
fn locks(root: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root.join("recipes"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("debs.lock"))
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    Ok(v)
}

/// Fetches what every lock pins and is not already present and intact.
pub fn fetch_all(root: &Path) -> Result<()> {
    for lock in locks(root)? {
        let text = std::fs::read_to_string(&lock).with_context(|| format!("reading {}", lock.display()))?;
        let pins = parse_lock(&text).with_context(|| lock.display().to_string())?;
        let dir = lock.parent().context("lock has a parent")?.join("debs");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for pin in &pins {
            fetch(&dir, pin)?;
        }
    }
    Ok(())
}

fn fetch(dir: &Path, pin: &Pin) -> Result<()> {
    let dest = dir.join(&pin.file);
    if dest.is_file() && sha256_of(&dest)? == pin.sha256 {
        return Ok(());
    }
    let spec = format!("{}={}", pin.package, pin.version);
    eprintln!("xtask: apt-get download {spec}");
    // A fresh directory, so the one file apt leaves there is ours.
    let stage = dir.join(format!(".fetch-{}", std::process::id()));
    std::fs::create_dir_all(&stage)?;
    let result = (|| -> Result<()> {
        let download = || {
            Command::new("apt-get")
                .args(["download", "-q", "-o", "APT::Sandbox::User=root"])
                .arg(&spec)
                .current_dir(&stage)
                .output()
                .context("running apt-get (fetch-debs needs Debian's apt)")
        };
        let mut out = download()?;
        if !out.status.success() {
            // Stale package lists are the usual cause: refresh once.
            let _ = Command::new("apt-get").args(["update", "-qq"]).status();
            out = download()?;
        }
        if !out.status.success() {
            bail!(
                "apt-get download {spec} failed: {}\n\
                 If the mirror no longer has this version, pick a current one (apt-cache policy {}), \
                 then update debs.lock and the recipe's sha256 together and regenerate golden digests.",
                String::from_utf8_lossy(&out.stderr).trim(),
                pin.package
            );
        }
        let got: Vec<PathBuf> = std::fs::read_dir(&stage)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "deb"))
            .collect();
        let [file] = &got[..] else {
            bail!(
                "apt-get download {spec} left {} .deb files, expected one",
                got.len()
            );
        };
        let actual = sha256_of(file)?;
        if actual != pin.sha256 {
            bail!(
                "{spec}: downloaded file has sha256 {actual}, but debs.lock pins {}",
                pin.sha256
            );
        }
        std::fs::rename(file, &dest).with_context(|| format!("moving to {}", dest.display()))?;
        Ok(())
    })();
    std::fs::remove_dir_all(&stage).ok();
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lock_lines() {
        let hex = "3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744";
        let pins = parse_lock(&format!(
            "# comment\n\nbusybox-static 1:1.35 {hex} b_amd64.deb # trailing\n"
        ))
        .unwrap();
        assert_eq!(
            pins,
            [Pin {
                package: "busybox-static".into(),
                version: "1:1.35".into(),
                sha256: hex.into(),
                file: "b_amd64.deb".into(),
            }]
        );
        assert!(parse_lock("a 1 abc x.deb\n").is_err());
        assert!(parse_lock(&format!("a 1 {hex} ../x.deb\n")).is_err());
        assert!(parse_lock("a 1\n").is_err());
    }

    /// The checked-in locks parse, and agree with the recipes next to them.
    #[test]
    fn locks_match_their_recipes() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf);
        let Some(root) = root else { return };
        for lock in locks(&root).unwrap_or_default() {
            let pins = parse_lock(&std::fs::read_to_string(&lock).unwrap_or_default()).unwrap_or_default();
            let recipe = std::fs::read_to_string(lock.with_file_name("bake.toml")).unwrap_or_default();
            assert!(!pins.is_empty(), "{}", lock.display());
            for pin in pins {
                assert!(
                    recipe.contains(&format!("debs/{}", pin.file)) && recipe.contains(&pin.sha256),
                    "{} pins {} with {} but the recipe does not use it",
                    lock.display(),
                    pin.file,
                    pin.sha256
                );
            }
        }
    }
}
