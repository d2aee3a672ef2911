//! How bake opens a base image on disk (issue 15, items 3, 4 and 5): a base
//! path stays in the build context, every file read from a base is a
//! regular file read within a bound, and a layout's `blobs` directories are
//! never followed through a symlink, for reading, writing or deleting.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;

/// A test's own directories: `ctx` (the build context), `home`, `tmp`,
/// `canary` (a host directory bake must not touch) and `outside` (host
/// files a context may point at).
struct Area {
    dir: tempfile::TempDir,
}

/// What one run of bake printed.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    log: String,
}

impl Area {
    fn new() -> Area {
        let dir = tempfile::tempdir().unwrap();
        for d in ["ctx", "home", "tmp", "canary", "outside"] {
            fs_err::create_dir(dir.path().join(d)).unwrap();
        }
        Area { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn ctx(&self) -> PathBuf {
        self.path("ctx")
    }

    /// Runs bake in the context as a child, killing it (and failing the
    /// test) if it has not ended after 30 s: a hang is the bug here.
    fn bake(&self, args: &[&str]) -> Run {
        let out = self.path("stdout");
        let err = self.path("stderr");
        let log = self.path("build.log");
        let _ = std::fs::remove_file(&log);
        let mut child = bake(&self.ctx())
            .env("TMPDIR", self.path("tmp"))
            .env("HOME", self.path("home"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(30) {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!(
                    "bake {args:?} had to be killed after 30 s; stderr so far: {}",
                    fs_err::read_to_string(&err).unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
        Run {
            code: status.code(),
            stdout: read(&out),
            stderr: read(&err),
            log: read(&log),
        }
    }

    /// `bake build` of a recipe on `base`, with the build log in the area.
    fn build(&self, base: &str) -> Run {
        fs_err::write(
            self.ctx().join("bake.toml"),
            format!(
                "base = \"{base}\"\n[image]\nname = \"hostile\"\n\n[[layer]]\n[[layer.step]]\nfile = \"/x\"\ncontent = \"x\"\n"
            ),
        )
        .unwrap();
        let log = self.path("build.log");
        self.bake(&[
            "build",
            "bake.toml",
            "--layout",
            "layout",
            "--log",
            log.to_str().unwrap(),
        ])
    }

    /// A build that fails with exit 1 and an error naming every piece.
    fn fails(&self, case: &str, base: &str, pieces: &[&str]) -> Run {
        let run = self.build(base);
        assert_eq!(run.code, Some(1), "{case}: {}", run.stderr);
        assert!(run.stderr.starts_with("error: "), "{case}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{case}: {}", run.stderr);
        for p in pieces {
            assert!(run.stderr.contains(p), "{case}: {:?} lacks {p:?}", run.stderr);
        }
        run
    }

    fn canary_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        walk(&self.path("canary"), "", &mut names);
        names.sort();
        names
    }
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    for e in fs_err::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        if e.file_type().unwrap().is_dir() {
            walk(&e.path(), &format!("{name}/"), out);
        }
        out.push(name);
    }
}

fn mkfifo(path: &Path) {
    let st = std::process::Command::new("mkfifo").arg(path).status().unwrap();
    assert!(st.success(), "mkfifo {}", path.display());
}

/// A one-file layer.
fn layer_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_path("etc/base").unwrap();
    h.set_size(4);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    b.append(&h, &b"base"[..]).unwrap();
    b.into_inner().unwrap()
}

fn copy_dir(src: &Path, dst: &Path) {
    for e in fs_err::read_dir(src).unwrap() {
        let e = e.unwrap();
        fs_err::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}

// ---- item 5: `blobs` as a symlink ----------------------------------------

/// A base whose `blobs` links to a host directory: the build fails naming
/// it, and nothing is created where it points.
#[test]
fn a_base_whose_blobs_is_a_symlink_is_refused_and_creates_nothing() {
    let area = Area::new();
    let base = area.ctx().join("base");
    one_layer_layout(&base, &layer_tar());
    fs_err::remove_dir_all(base.join("blobs")).unwrap();
    std::os::unix::fs::symlink(area.path("canary"), base.join("blobs")).unwrap();
    area.fails(
        "blobs link",
        "oci:base:base",
        &[
            "bake.toml:1:8:",
            &format!("{} is a symlink, not a directory", base.join("blobs").display()),
        ],
    );
    assert_eq!(area.canary_names(), Vec::<String>::new());
}

/// `bake store gc` (and `verify`) on a layout whose `blobs` or
/// `blobs/sha256` links to a host directory holding blob-named files: it
/// refuses, naming the link, and deletes nothing there.
#[test]
fn store_gc_never_deletes_through_a_linked_blobs_directory() {
    for link_at in ["blobs", "blobs/sha256"] {
        let area = Area::new();
        let dir = area.ctx().join("layout");
        let (layout, _, _) = one_layer_layout(&dir, &layer_tar());
        // The host directory holds the layout's own blobs (so the index can
        // be followed) and a host file named like an unreferenced blob.
        let canary = area.path("canary");
        let host_blobs = if link_at == "blobs" {
            fs_err::create_dir(canary.join("sha256")).unwrap();
            canary.join("sha256")
        } else {
            canary.clone()
        };
        copy_dir(&dir.join("blobs/sha256"), &host_blobs);
        let precious = bake_digest::Digest::of(b"a host file");
        fs_err::write(host_blobs.join(precious.hex()), b"a host file").unwrap();
        fs_err::write(host_blobs.join(".tmp-host"), b"a host temp file").unwrap();
        let before = area.canary_names();
        fs_err::remove_dir_all(dir.join(link_at)).unwrap();
        std::os::unix::fs::symlink(&canary, dir.join(link_at)).unwrap();
        drop(layout);
        for args in [
            vec!["store", "gc", "layout", "--grace", "0"],
            vec!["store", "gc", "layout", "--grace", "0", "--json"],
            vec!["store", "verify", "layout"],
        ] {
            let run = area.bake(&args);
            assert_eq!(run.code, Some(1), "{link_at} {args:?}: {}", run.stderr);
            assert!(
                run.stderr
                    .contains(&format!("layout/{link_at} is a symlink, not a directory")),
                "{link_at} {args:?}: {}",
                run.stderr
            );
            assert_eq!(area.canary_names(), before, "{link_at} {args:?}");
        }
        assert_eq!(
            fs_err::read(host_blobs.join(precious.hex())).unwrap(),
            b"a host file"
        );
    }
}

/// The layer cache's directories are not followed either.
#[test]
fn store_gc_of_a_cache_never_deletes_through_a_linked_directory() {
    for link_at in ["blobs", "effects", "layers"] {
        let area = Area::new();
        let cache = area.path("home/cache");
        fs_err::create_dir_all(cache.join("blobs/sha256")).unwrap();
        fs_err::create_dir_all(cache.join("effects")).unwrap();
        fs_err::create_dir_all(cache.join("layers")).unwrap();
        let canary = area.path("canary");
        let host = if link_at == "blobs" {
            fs_err::create_dir(canary.join("sha256")).unwrap();
            canary.join("sha256")
        } else {
            canary.clone()
        };
        let precious = bake_digest::Digest::of(b"a host file");
        fs_err::write(host.join(precious.hex()), b"a host file").unwrap();
        fs_err::write(host.join(".tmp-host"), b"a host temp file").unwrap();
        let before = area.canary_names();
        fs_err::remove_dir_all(cache.join(link_at)).unwrap();
        std::os::unix::fs::symlink(&canary, cache.join(link_at)).unwrap();
        let run = area.bake(&[
            "store",
            "gc",
            "--cache-dir",
            cache.to_str().unwrap(),
            "--grace",
            "0",
        ]);
        assert_eq!(run.code, Some(1), "{link_at}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!(
                "{} is a symlink, not a directory",
                cache.join(link_at).display()
            )),
            "{link_at}: {}",
            run.stderr
        );
        assert_eq!(area.canary_names(), before, "{link_at}");
    }
}

// ---- item 4: special files in a base's place -----------------------------

/// A fifo, or a link to `/dev/zero`, as `oci-layout` or `index.json`, or a
/// fifo as a docker-archive base: the build fails promptly naming the file.
#[test]
fn special_files_in_a_base_fail_promptly_naming_the_file() {
    for (name, kind) in [
        ("oci-layout", "fifo"),
        ("oci-layout", "zero"),
        ("index.json", "fifo"),
        ("index.json", "zero"),
    ] {
        let area = Area::new();
        let base = area.ctx().join("base");
        one_layer_layout(&base, &layer_tar());
        let path = base.join(name);
        fs_err::remove_file(&path).unwrap();
        let what = if kind == "fifo" {
            mkfifo(&path);
            "a fifo"
        } else {
            std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
            "a symlink"
        };
        area.fails(
            &format!("{name} {kind}"),
            "oci:base:base",
            &[
                "bake.toml:1:8:",
                &format!("{} is {what}, not a regular file", path.display()),
            ],
        );
    }
    let area = Area::new();
    mkfifo(&area.ctx().join("base.tar"));
    area.fails(
        "docker-archive fifo",
        "docker-archive:base.tar",
        &[
            "bake.toml:1:8:",
            &format!(
                "{} is a fifo, not a regular file",
                area.ctx().join("base.tar").display()
            ),
        ],
    );
}

// ---- item 3: base paths stay in the context; no input bytes echoed -------

/// A fake Docker `config.json` whose credential is `token`, long enough
/// that a tar parser reads its first 512 bytes as a header and the token
/// covers the header's numeric fields (size, mtime, checksum).
fn fake_docker_config(token: &str) -> Vec<u8> {
    let auth = token.repeat(300 / token.len() + 1);
    format!(
        "{{\"auths\": {{\"registry.example.com\": {{\"auth\": \"{auth}\"}}}},\n  \"credsStore\": \"\",\n  \"padding\": \"{}\"}}\n",
        "x".repeat(600)
    )
    .into_bytes()
}

fn unique_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("U2VjcmV0{}x{nanos}", std::process::id())
}

fn assert_token_absent(case: &str, run: &Run, token: &str) {
    for (what, text) in [
        ("stdout", &run.stdout),
        ("stderr", &run.stderr),
        ("build log", &run.log),
    ] {
        assert!(!text.contains(token), "{case}: {what} shows the secret: {text}");
        assert!(!text.contains("auths"), "{case}: {what} shows the file: {text}");
    }
}

/// A docker-archive base that links to a host file (a Docker config with
/// credentials) is refused as outside the context; its bytes are printed
/// nowhere.
#[test]
fn a_docker_archive_base_linking_out_of_the_context_is_refused_unread() {
    let area = Area::new();
    let token = unique_token();
    let secret = area.path("outside/config.json");
    fs_err::write(&secret, fake_docker_config(&token)).unwrap();
    std::os::unix::fs::symlink(&secret, area.ctx().join("base.tar")).unwrap();
    let run = area.fails(
        "docker-archive link out",
        "docker-archive:base.tar",
        &[
            "bake.toml:1:8:",
            "docker-archive:base.tar",
            "\"base.tar\"",
            "outside the build context",
        ],
    );
    assert_token_absent("docker-archive link out", &run, &token);
}

/// The same bytes inside the context, as a (not tar) docker archive: the
/// tar parser's complaint is ours, quoting nothing of the file.
#[test]
fn a_docker_archive_that_is_not_a_tar_is_refused_without_echoing_it() {
    let area = Area::new();
    let token = unique_token();
    fs_err::write(area.ctx().join("base.tar"), fake_docker_config(&token)).unwrap();
    let run = area.fails(
        "not a tar",
        "docker-archive:base.tar",
        &[
            "bake.toml:1:8:",
            &format!(
                "docker archive {}: malformed tar header",
                area.ctx().join("base.tar").display()
            ),
        ],
    );
    assert_token_absent("not a tar", &run, &token);
}

/// An `oci:` base that links to a layout directory outside the context is
/// refused, naming the path.
#[test]
fn an_oci_base_linking_out_of_the_context_is_refused() {
    let area = Area::new();
    one_layer_layout(&area.path("outside/layout"), &layer_tar());
    std::os::unix::fs::symlink(area.path("outside/layout"), area.ctx().join("base")).unwrap();
    area.fails(
        "oci link out",
        "oci:base:base",
        &[
            "bake.toml:1:8:",
            "oci:base",
            "\"base\"",
            "outside the build context",
        ],
    );
    assert!(
        !area.ctx().join("layout/index.json").exists() || {
            let index = fs_err::read_to_string(area.ctx().join("layout/index.json")).unwrap();
            !index.contains("ref.name")
        }
    );
}
