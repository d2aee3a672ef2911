//! Helpers shared by the `bake` binary's end-to-end tests: run the real
//! binary with a controlled environment, stage recipes in temp dirs, read
//! layouts back.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fs_err as fs;

/// The workspace root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A `bake` command with a scrubbed environment: no SOURCE_DATE_EPOCH, no
/// BAKE_VAR_*, a fixed HOME, run in `cwd`.
pub fn bake(cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bake"));
    c.current_dir(cwd);
    c.env_clear();
    c.env("PATH", std::env::var_os("PATH").unwrap_or_default());
    c.env("HOME", cwd);
    c.env("TMPDIR", std::env::temp_dir());
    c
}

/// Runs `cmd`, panicking with its output if it fails.
pub fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cmd`, expecting failure; returns stderr.
pub fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        !out.status.success(),
        "{cmd:?} unexpectedly succeeded:\nstdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit code 1, stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// `bake build RECIPE --layout LAYOUT --json`, parsed.
pub fn build_json(cwd: &Path, recipe: &Path, layout: &Path) -> serde_json::Value {
    let out = ok(bake(cwd)
        .arg("build")
        .arg(recipe)
        .arg("--layout")
        .arg(layout)
        .arg("--json"));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Copies `src` to `dst` recursively, creating entries in reverse name order
/// (so readdir order differs from the original's) and giving every file the
/// mtime `mtime`.
pub fn copy_tree_shuffled(src: &Path, dst: &Path, mtime: i64) {
    fs::create_dir_all(dst).unwrap();
    let mut entries: Vec<_> = fs::read_dir(src).unwrap().map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.file_name()));
    for e in entries {
        let from = e.path();
        let to = dst.join(e.file_name());
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            copy_tree_shuffled(&from, &to, mtime);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from).unwrap(), &to).unwrap();
        } else {
            fs::copy(&from, &to).unwrap();
        }
        if !ft.is_symlink() {
            filetime::set_file_mtime(&to, filetime::FileTime::from_unix_time(mtime, 0)).unwrap();
        }
    }
    filetime::set_file_mtime(dst, filetime::FileTime::from_unix_time(mtime, 0)).unwrap();
}

/// Stages the repo's `recipes/` under `dst`.
pub fn stage_repo(dst: &Path, mtime: i64) {
    copy_tree_shuffled(&repo().join("recipes"), &dst.join("recipes"), mtime);
}

/// The example recipe names (`recipes/*/bake.toml`), sorted.
pub fn recipe_names() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(repo().join("recipes"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().join("bake.toml").is_file())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// Whether this is the full suite (`cargo xtask test` sets BAKE_TEST_FULL=1),
/// where root, runc and the fetched `.deb`s are available.
pub fn full_suite() -> bool {
    std::env::var_os("BAKE_TEST_FULL").is_some_and(|v| v == "1")
}

/// Whether building recipe `name` needs what only the full suite has: it
/// pins `.deb`s (`debs.lock`, fetched by `cargo xtask fetch-debs`) or has a
/// `run` step (root and runc).
pub fn needs_full_suite(name: &str) -> bool {
    let dir = repo().join("recipes").join(name);
    let text = fs::read_to_string(dir.join("bake.toml")).unwrap_or_default();
    dir.join("debs.lock").is_file()
        || text.lines().any(|l| {
            let l = l.trim_start();
            l.strip_prefix("run")
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
}

/// The example recipes this run can build: all of them under the full
/// suite, else those that need neither root, runc nor fetched `.deb`s.
pub fn buildable_recipe_names() -> Vec<String> {
    recipe_names()
        .into_iter()
        .filter(|name| {
            let skip = !full_suite() && needs_full_suite(name);
            if skip {
                eprintln!("skipping recipe {name}: it needs root, runc and fetched debs (cargo xtask test)");
            }
            !skip
        })
        .collect()
}

/// Every blob in a layout hashes to its name; returns how many there are.
pub fn assert_store_clean(layout: &Path) -> usize {
    let dir = layout.join("blobs/sha256");
    let mut n = 0;
    for e in fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        assert!(
            !name.starts_with(".tmp"),
            "leftover temp file {name} in {}",
            dir.display()
        );
        let bytes = fs::read(e.path()).unwrap();
        assert_eq!(bake_digest::Digest::of(&bytes).hex(), name, "corrupt blob {name}");
        n += 1;
    }
    n
}

/// Writes `files` (path → content) under `dir`.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let p = dir.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
}

/// Whether an external tool is on PATH (tests that need one are `#[ignore]`d
/// and run by `cargo xtask test`, which installs it; there, absence is a
/// failure, not a skip).
pub fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .chain([PathBuf::from("/usr/sbin")])
                .any(|d| d.join(tool).is_file())
        })
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed: run the suite with `cargo xtask test`"
    );
}

/// podman with storage of its own (vfs, runc, cgroupfs, no events), removed
/// with it. Its run root is a short temporary directory in `/tmp`: podman
/// refuses a run root longer than 50 characters, which one below a
/// checkout's `target/` easily is (`cargo xtask test` puts `TMPDIR` there).
pub struct Podman {
    root: tempfile::TempDir,
    run: tempfile::TempDir,
}

impl Podman {
    pub fn new() -> Podman {
        Podman {
            root: tempfile::tempdir().unwrap(),
            run: tempfile::Builder::new()
                .prefix("bake-podman-")
                .tempdir_in("/tmp")
                .unwrap(),
        }
    }

    /// `podman` with the global flags for this storage.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.arg("--root").arg(self.root.path());
        c.arg("--runroot").arg(self.run.path());
        c.args([
            "--storage-driver",
            "vfs",
            "--runtime",
            "runc",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
        ]);
        c
    }
}

/// A layer tar of real directories `dirs`, then symlinks (path, target,
/// any target allowed: the hostile tests' bases).
pub fn links_tar(dirs: &[&str], links: &[(&str, &str)]) -> Vec<u8> {
    let header = |kind: tar::EntryType, mode: u32| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(0);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    };
    let mut b = tar::Builder::new(Vec::new());
    for d in dirs {
        b.append_data(&mut header(tar::EntryType::Directory, 0o755), d, &[][..])
            .unwrap();
    }
    for (path, target) in links {
        b.append_link(&mut header(tar::EntryType::Symlink, 0o777), path, target)
            .unwrap();
    }
    b.into_inner().unwrap()
}

/// A one-layer base layout at `dir` (an uncompressed layer, a minimal
/// amd64 config), tagged `base`; returns it with the manifest's and the
/// layer's digests.
pub fn one_layer_layout(
    dir: &Path,
    layer_bytes: &[u8],
) -> (bake_image::Layout, bake_digest::Digest, bake_digest::Digest) {
    use bake_image::{Descriptor, media_type};
    let layout = bake_image::Layout::create_or_open(dir).unwrap();
    let s = layout.store();
    let layer = Descriptor::new(
        media_type::OCI_LAYER_TAR,
        s.put_bytes(layer_bytes).unwrap(),
        layer_bytes.len() as u64,
    );
    let config = bake_image::canonical_json(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer.digest.to_string()]},
    }));
    s.put_bytes(&config).unwrap();
    let config = Descriptor::of(media_type::OCI_CONFIG, &config);
    let m = bake_image::build_manifest(&config, std::slice::from_ref(&layer), &Default::default());
    s.put_bytes(&m).unwrap();
    let m = Descriptor::of(media_type::OCI_MANIFEST, &m);
    layout.set_tags(&m, &["base".into()]).unwrap();
    (layout, m.digest, layer.digest)
}

/// Writes `mib` MiB of poorly compressible bytes (xorshift from `seed`) to
/// `path`, for builds that must take a while; returns the generator's
/// state, to continue the stream in another file.
pub fn write_noise(path: &Path, mib: usize, seed: u64) -> u64 {
    use std::io::Write;
    let mut x = seed;
    let mut f = fs::File::create(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        f.write_all(&buf).unwrap();
    }
    x
}

/// The seed the tests' noise starts from.
pub const NOISE_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// Waits at most `limit` for `child` to exit; kills it and panics naming
/// `what` if it does not (a hang is a failure, never a stuck suite).
pub fn wait_exit(
    child: &mut std::process::Child,
    limit: std::time::Duration,
    what: &str,
) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {} s", limit.as_secs());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Waits (at most 60 s) until the file `path` contains `text`, while
/// `child` is still running; panics if it ends first.
pub fn wait_for_text(child: &mut std::process::Child, path: &Path, text: &str) {
    let start = std::time::Instant::now();
    while !fs::read_to_string(path).is_ok_and(|l| l.contains(text)) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "ended before {} said {text:?}",
            path.display()
        );
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "{} never said {text:?}",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The busybox package recipes/busybox pins (`debs.lock`), and its sha256.
pub const BUSYBOX_DEB: &str = "busybox-static_1.35.0-4+deb12u1+b1_amd64.deb";
pub const BUSYBOX_SHA: &str = "3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744";

/// A pinned `.deb` of the busybox recipe, fetched by `cargo xtask fetch-debs`
/// (`cargo xtask test` does it first); a clear failure when it is missing.
pub fn fetched(file: &str) -> PathBuf {
    let p = repo().join("recipes/busybox/debs").join(file);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo xtask fetch-debs` (cargo xtask test does)",
        p.display()
    );
    p
}

/// A small deterministic generator (xorshift64) for seeded test inputs:
/// the same seed gives the same sequence on every machine.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below_u64(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.below_u64(n as u64)).unwrap_or(0)
    }
}
