//! Project automation, run as `cargo xtask <command>`:
//!
//! * `test`   — the whole suite: installs missing Debian packages (as root),
//!   starts a throwaway registry on 127.0.0.1, runs every test
//!   including the ones that need external tools, stops what it
//!   started; then `cargo fmt --check` and `cargo clippy -D warnings`.
//! * `bench`  — times bake against tar|gzip, pigz, umoci, buildah and
//!   skopeo on generated corpora; writes `BENCHMARKS.md`
//!   (`BAKE_BENCH_SCALE`, `BAKE_BENCH_RUNS`, `BAKE_BENCH_SKIP`).
//! * `golden` — rebuilds every recipe in `recipes/` and rewrites
//!   `testdata/golden/` (do it on purpose, say why in the commit).
//! * `hello`  — regenerates `recipes/hello/hello` from `xtask/src/hello.rs`.
//! * `fetch-debs` — downloads the `.deb`s recipes pin in `debs.lock`
//!   (`test` and `golden` do it first).

mod bench;
mod debs;
mod hello;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Debian packages the full test suite drives.
const PACKAGES: &[(&str, &str)] = &[
    ("docker-registry", "docker-registry"),
    ("skopeo", "skopeo"),
    ("umoci", "umoci"),
    ("runc", "runc"),
    ("podman", "podman"),
    ("oci-image-tool", "oci-image-tool"),
    ("openssl", "openssl"),
    ("jq", "jq"),
    ("zstd", "zstd"),
    // same_world.rs: a loop-mounted ext4 build directory.
    ("e2fsprogs", "mkfs.ext4"),
    ("mount", "losetup"),
    // getcap: file capabilities of unpacked images (issue 16.5).
    ("libcap2-bin", "getcap"),
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("golden") => golden(),
        Some("bench") => bench::bench(&root()),
        Some("fetch-debs") => debs::fetch_all(&root()),
        Some("hello") => {
            let path = root().join("recipes/hello/hello");
            std::fs::write(&path, hello::elf()).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
            Ok(())
        }
        _ => {
            eprintln!("usage: cargo xtask <test [CARGO TEST ARGS]|bench|golden|hello|fetch-debs>");
            std::process::exit(2);
        }
    }
}

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    c.current_dir(root());
    c
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("failed to start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn missing_tools() -> Vec<&'static str> {
    PACKAGES
        .iter()
        .filter(|(_, bin)| {
            !std::env::var_os("PATH")
                .map(|p| {
                    std::env::split_paths(&p)
                        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
                        .any(|d| d.join(bin).is_file())
                })
                .unwrap_or(false)
        })
        .map(|(pkg, _)| *pkg)
        .collect()
}

fn ensure_packages() -> Result<()> {
    let missing = missing_tools();
    if missing.is_empty() {
        return Ok(());
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    if !is_root {
        bail!(
            "missing Debian packages: {} (run as root, or: sudo apt-get install {})",
            missing.join(" "),
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    let still = missing_tools();
    if !still.is_empty() {
        bail!("still missing after apt-get install: {}", still.join(" "));
    }
    Ok(())
}

/// The top-level entries of the shared temp directories, to find what a
/// test left outside its own `TMPDIR`.
fn shared_tmp_entries() -> std::collections::BTreeSet<PathBuf> {
    ["/tmp", "/var/tmp"]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect()
}

/// Untracked files in the checkout that git does not ignore.
fn untracked_files() -> Result<std::collections::BTreeSet<String>> {
    let out = Command::new("git")
        .current_dir(root())
        .args(["status", "--porcelain", "--untracked-files=all"])
        .output()
        .context("running git status")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("?? ").map(str::to_owned))
        .collect())
}

fn test(extra: &[String]) -> Result<()> {
    ensure_packages()?;
    debs::fetch_all(&root())?;
    // The suite gets a TMPDIR of its own, new for each run, so no test can
    // lean on what an earlier run left in /tmp; afterwards nothing may have
    // appeared outside it (in /tmp, /var/tmp or the checkout).
    let tmp = root().join("target/xtask-test-tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let shared_before = shared_tmp_entries();
    let untracked_before = untracked_files()?;
    // A throwaway registry for the suite (tests that need special setups,
    // such as htpasswd auth or a fault proxy, start their own as well).
    let registry = bake_testkit::TestRegistry::start(bake_testkit::TestRegistryOptions::default())
        .context("cannot start docker-registry on 127.0.0.1")?;
    eprintln!(
        "xtask: registry on {} (storage {})",
        registry.host(),
        registry.storage().display()
    );
    // Every test, including the `#[ignore]`d ones that drive external tools.
    // BAKE_TEST_FULL: recipes that need root, runc and fetched .debs are
    // built by the golden and reproducibility tests too. --no-fail-fast: one
    // failing test binary must not hide the others' results.
    let result = run(cargo()
        .env("BAKE_TEST_FULL", "1")
        .env("BAKE_TEST_REGISTRY", registry.host())
        .env("TMPDIR", &tmp)
        .args(["test", "--workspace", "--all-targets", "--no-fail-fast"])
        .args(extra)
        .args(["--", "--include-ignored"]))
    .and_then(|()| run(cargo().env("TMPDIR", &tmp).args(["test", "--workspace", "--doc"])));
    drop(registry); // stops docker-registry and removes its storage
    result?;
    let left: Vec<String> = shared_tmp_entries()
        .difference(&shared_before)
        .map(|p| p.display().to_string())
        .chain(
            untracked_files()?
                .difference(&untracked_before)
                .map(|f| format!("{} (in the checkout)", f)),
        )
        .collect();
    if !left.is_empty() {
        bail!(
            "the tests left files outside their TMPDIR ({}): {}",
            tmp.display(),
            left.join(", ")
        );
    }
    std::fs::remove_dir_all(&tmp).ok();
    // Formatting and lints last, so a style slip never hides a test result.
    // Clippy sees each crate's rust-version (the workspace's), so it also
    // flags std APIs newer than the declared MSRV (incompatible_msrv).
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))
}

fn golden() -> Result<()> {
    debs::fetch_all(&root())?;
    run(cargo().args(["build", "--quiet", "-p", "bake"]))?;
    let bake = root().join("target/debug/bake");
    let golden_dir = root().join("testdata/golden");
    std::fs::create_dir_all(&golden_dir)?;
    let tmp = tempdir()?;
    for recipe in recipes()? {
        let name = recipe
            .parent()
            .and_then(|p| p.file_name())
            .context("recipe dir")?
            .to_string_lossy()
            .into_owned();
        let out = Command::new(&bake)
            .arg("build")
            .arg(&recipe)
            .arg("--layout")
            .arg(tmp.join(&name))
            .arg("--json")
            // Golden digests come from cold builds.
            .arg("--no-cache")
            .env_remove("SOURCE_DATE_EPOCH")
            .output()?;
        if !out.status.success() {
            bail!(
                "building {} failed:\n{}",
                recipe.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let digest = v["digest"].as_str().context("no digest in --json output")?;
        std::fs::write(golden_dir.join(format!("{name}.digest")), format!("{digest}\n"))?;
        println!("{name}: {digest}");
    }
    std::fs::remove_dir_all(&tmp).ok();
    Ok(())
}

/// `recipes/*/bake.toml`, sorted.
fn recipes() -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("recipes"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bake.toml"))
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    Ok(v)
}

fn tempdir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("bake-xtask-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
