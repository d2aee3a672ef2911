//! Provisioners end to end: `deb` steps and `run` steps in the runc
//! sandbox, through the real binary, checked with umoci and runc.
//!
//! These need root, runc, umoci and the `.deb`s pinned in
//! `recipes/busybox/debs.lock`; `cargo xtask test` provides all of them
//! (it runs `cargo xtask fetch-debs` first). Plain `cargo test` skips them.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// A context in `dir` with the busybox package and a recipe: a first layer
/// with busybox as /bin/sh, then `extra` (more TOML, e.g. a run layer).
fn busybox_context(dir: &Path, extra: &str) {
    fs_err::copy(fetched(BUSYBOX_DEB), dir.join("busybox.deb")).unwrap();
    let recipe = format!(
        r#"epoch = 1700000000
[image]
name = "t"

[[layer]]
name = "base"
  [[layer.step]]
  deb = "busybox.deb"
  sha256 = "{BUSYBOX_SHA}"
  [[layer.step]]
  symlink = "/bin/sh"
  target = "busybox"
{extra}"#
    );
    fs_err::write(dir.join("bake.toml"), recipe).unwrap();
}

/// `bake build bake.toml --layout layout` in `dir`, with a scratch TMPDIR
/// of its own (returned) so leftovers can be checked.
fn build_in(dir: &Path) -> (std::process::Output, PathBuf) {
    let scratch = dir.join("scratch");
    fs_err::create_dir_all(&scratch).unwrap();
    let out = bake(dir)
        .args(["build", "bake.toml", "--layout", "layout", "--json"])
        .env("TMPDIR", &scratch)
        .output()
        .unwrap();
    (out, scratch)
}

fn umoci_unpack(layout: &Path, bundle: &Path) {
    ok(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", layout.display()))
        .arg(bundle));
}

/// Runs `script` with /bin/sh in a umoci-made bundle under runc; stdout.
fn runc_sh(tmp: &Path, bundle: &Path, script: &str) -> String {
    let config_path = bundle.join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&fs_err::read(&config_path).unwrap()).unwrap();
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(["/bin/sh", "-c", script]);
    fs_err::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
    let id = format!("bake-provision-{}", std::process::id());
    let out = ok(Command::new("runc")
        .arg("--root")
        .arg(tmp.join("runc-state"))
        .args(["run", "-b"])
        .arg(bundle)
        .arg(&id));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
#[ignore = "needs root, runc, umoci and fetched debs; run via cargo xtask test"]
fn the_busybox_recipe_builds_runs_and_lists_its_packages() {
    require("runc");
    require("umoci");
    fetched(BUSYBOX_DEB);
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let v = build_json(tmp.path(), &repo().join("recipes/busybox/bake.toml"), &layout);
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);

    // The setup layer holds the whiteout of a file of the packages layer.
    let setup = layout
        .join("blobs/sha256")
        .join(&layers[1]["digest"].as_str().unwrap()[7..]);
    let listing = ok(Command::new("tar").arg("tzf").arg(&setup)).stdout;
    let listing = String::from_utf8(listing).unwrap();
    assert!(listing.lines().any(|l| l == "etc/.wh.placeholder"), "{listing}");
    assert!(listing.lines().any(|l| l == "bin/ls"), "{listing}");
    for sandbox_made in ["proc/", "dev/", "sys/", "etc/resolv.conf", "etc/hostname"] {
        assert!(
            !listing.lines().any(|l| l == sandbox_made),
            "{sandbox_made} leaked into the layer"
        );
    }

    let bundle = tmp.path().join("bundle");
    umoci_unpack(&layout, &bundle);
    let rootfs = bundle.join("rootfs");
    assert!(
        !rootfs.join("etc/placeholder").exists(),
        "umoci did not honour the whiteout"
    );
    assert_eq!(
        fs_err::read_to_string(rootfs.join("etc/motd")).unwrap(),
        "baked at 1700000000 on bake\n"
    );
    assert_eq!(
        fs_err::read_link(rootfs.join("bin/ls")).unwrap(),
        Path::new("/bin/busybox")
    );
    let status = fs_err::read_to_string(rootfs.join("var/lib/dpkg/status")).unwrap();
    let packages: Vec<&str> = status.lines().filter(|l| l.starts_with("Package: ")).collect();
    assert_eq!(packages, ["Package: busybox-static", "Package: ca-certificates"]);
    assert!(status.contains("Status: install ok installed\n"));
    let list = fs_err::read_to_string(rootfs.join("var/lib/dpkg/info/busybox-static.list")).unwrap();
    assert!(list.lines().any(|l| l == "/bin/busybox"), "{list}");
    let bundle_certs = fs_err::metadata(rootfs.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    assert!(bundle_certs.len() > 100_000);

    // And it runs: busybox works, and its dpkg lists what is installed.
    let out = runc_sh(
        tmp.path(),
        &bundle,
        "busybox echo hello from busybox && dpkg -l && hostname",
    );
    assert!(out.starts_with("hello from busybox\n"), "{out}");
    let listed: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("ii "))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(listed, ["busybox-static", "ca-certificates"], "{out}");
}

#[test]
#[ignore = "needs root, runc and fetched debs; run via cargo xtask test"]
fn run_steps_have_no_network_unless_asked() {
    require("runc");
    // A tiny HTTP server on the host's loopback: reachable from the host's
    // network namespace only.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 15\r\n\r\nfrom the host!\n");
        }
    });
    // (busybox-static's wget crashes in a static-glibc corner; nc does not.)
    let fetch = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 2 127.0.0.1 {port} > /srv/page");

    let off = tempfile::tempdir().unwrap();
    busybox_context(
        off.path(),
        &format!(
            "[[layer]]\nname = \"fetch\"\n  [[layer.step]]\n  dir = \"/srv\"\n  [[layer.step]]\n  run = \"{fetch}\"\n"
        ),
    );
    let (out, _) = build_in(off.path());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("failed with exit code 1"), "{err}");
    assert!(
        err.contains("[fetch] nc: can't connect to remote host (127.0.0.1): Connection refused"),
        "output is streamed with the layer name: {err}"
    );

    let on = tempfile::tempdir().unwrap();
    busybox_context(
        on.path(),
        &format!(
            "[[layer]]\nname = \"fetch\"\n  [[layer.step]]\n  dir = \"/srv\"\n  [[layer.step]]\n  run = \"{fetch}\"\n  network = true\n"
        ),
    );
    let (out, _) = build_in(on.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let blob = on
        .path()
        .join("layout/blobs/sha256")
        .join(&v["layers"][1]["digest"].as_str().unwrap()[7..]);
    let page = ok(Command::new("tar").arg("xzOf").arg(&blob).arg("srv/page")).stdout;
    assert!(
        String::from_utf8_lossy(&page).ends_with("\r\n\r\nfrom the host!\n"),
        "{page:?}"
    );
}

#[test]
#[ignore = "needs root, runc and fetched debs; run via cargo xtask test"]
fn a_failing_command_reports_its_code_and_output_and_leaves_nothing() {
    require("runc");
    let tmp = tempfile::tempdir().unwrap();
    busybox_context(
        tmp.path(),
        "[[layer]]\nname = \"broken\"\n  [[layer.step]]\n  run = [\"true\", \"echo one; echo two >&2; exit 7\"]\n",
    );
    let (out, scratch) = build_in(tmp.path());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bake.toml:16:3: run[1] `echo one; echo two >&2; exit 7` failed with exit code 7"),
        "{err}"
    );
    assert!(
        err.contains("\n  | one\n  | two"),
        "the tail of the output: {err}"
    );
    // The build log has all its output and ends with the error.
    let log = fs_err::read_to_string(tmp.path().join("layout.log")).unwrap();
    assert!(
        log.contains("] [broken] one\n") && log.contains("] [broken] two\n"),
        "{log}"
    );
    assert!(
        log.contains(
            "] error: bake.toml:16:3: run[1] `echo one; echo two >&2; exit 7` failed with exit code 7"
        ),
        "{log}"
    );
    // The first layer's blob is there; nothing of the failed one, no temp
    // files, no tag, and no scratch root left in TMPDIR.
    assert_eq!(assert_store_clean(&tmp.path().join("layout")), 1);
    let index: serde_json::Value =
        serde_json::from_slice(&fs_err::read(tmp.path().join("layout/index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().map_or(0, Vec::len), 0);
    let left: Vec<_> = fs_err::read_dir(&scratch)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // No container of ours is left registered with runc either.
    let list = ok(Command::new("runc").args(["list", "-q"])).stdout;
    assert!(
        !String::from_utf8_lossy(&list).contains("bake-"),
        "runc still lists a container"
    );
}

#[test]
#[ignore = "needs root, runc and fetched debs; run via cargo xtask test"]
fn run_output_streams_with_the_layer_name_and_is_kept_in_the_build_log() {
    require("runc");
    let tmp = tempfile::tempdir().unwrap();
    // 30 lines, more than an error keeps, on stdout and stderr.
    busybox_context(
        tmp.path(),
        "[[layer]]\nname = \"chatty\"\n  [[layer.step]]\n  run = \"for i in $(seq 1 30); do echo out $i; echo err $i >&2; done\"\n",
    );
    let (out, _) = build_in(tmp.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\n[chatty] out 1\n[chatty] err 1\n"), "{err}");
    assert!(err.contains("[chatty] err 30\n"), "{err}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let log = fs_err::read_to_string(tmp.path().join("layout.log")).unwrap();
    assert_eq!(json["log"], "layout.log");
    // Every line, in order, between the layer's start and its result.
    let lines: Vec<&str> = log.lines().map(|l| l.split_once("s] ").unwrap().1).collect();
    let start = lines.iter().position(|l| *l == "layer chatty: building").unwrap();
    let mut expected = Vec::new();
    for i in 1..=30 {
        expected.push(format!("[chatty] out {i}"));
        expected.push(format!("[chatty] err {i}"));
    }
    assert_eq!(lines[start + 1..start + 61], expected[..], "{log}");
    assert!(lines[start + 61].starts_with("layer chatty: built "), "{log}");

    // --quiet keeps the terminal quiet; the log still has it all.
    fs_err::remove_dir_all(tmp.path().join("layout")).unwrap();
    let out = ok(bake(tmp.path()).args([
        "build",
        "bake.toml",
        "--layout",
        "layout",
        "--quiet",
        "--no-cache",
    ]));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = fs_err::read_to_string(tmp.path().join("layout.log")).unwrap();
    assert_eq!(log.matches("] [chatty] ").count(), 60, "{log}");
}

#[test]
#[ignore = "needs root, runc and fetched debs; run via cargo xtask test"]
fn a_command_that_runs_too_long_is_killed() {
    require("runc");
    let tmp = tempfile::tempdir().unwrap();
    busybox_context(
        tmp.path(),
        "[[layer]]\nname = \"slow\"\n  [[layer.step]]\n  run = \"echo started; busybox sleep 60\"\n  timeout = \"2s\"\n",
    );
    let started = std::time::Instant::now();
    let (out, scratch) = build_in(tmp.path());
    assert!(started.elapsed().as_secs() < 30, "the timeout did not stop it");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("was still running after 2s and was killed"), "{err}");
    assert!(err.contains("  | started"), "{err}");
    assert_eq!(fs_err::read_dir(&scratch).unwrap().count(), 0);
}

#[test]
#[ignore = "needs root, runc and fetched debs; run via cargo xtask test"]
fn commands_see_a_fixed_environment_user_and_workdir() {
    require("runc");
    let tmp = tempfile::tempdir().unwrap();
    busybox_context(
        tmp.path(),
        r#"  [[layer.step]]
  file = "/etc/passwd"
  content = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
  [[layer.step]]
  dir = "/work"
  owner = "1000:1000"

[[layer]]
name = "probe"
  [[layer.step]]
  run = "busybox env | busybox sort > env.txt; busybox id > id.txt; busybox pwd > pwd.txt; busybox hostname > host.txt"
  user = "app"
  workdir = "/work"
  env = { GREETING = "hi" }
"#,
    );
    let out = bake(tmp.path())
        .args(["build", "bake.toml", "--layout", "layout", "--json"])
        .env("BAKE_LEAK_CHECK", "host value")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let blob = tmp
        .path()
        .join("layout/blobs/sha256")
        .join(&v["layers"][1]["digest"].as_str().unwrap()[7..]);
    let file = |name: &str| {
        String::from_utf8(
            ok(Command::new("tar")
                .arg("xzOf")
                .arg(&blob)
                .arg(format!("work/{name}")))
            .stdout,
        )
        .unwrap()
    };
    assert_eq!(
        file("env.txt"),
        "GREETING=hi\nHOME=/home/app\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
         PWD=/work\nSHLVL=1\nSOURCE_DATE_EPOCH=1700000000\n"
    );
    assert!(
        file("id.txt").starts_with("uid=1000(app) gid=1000"),
        "{}",
        file("id.txt")
    );
    assert_eq!(file("pwd.txt"), "/work\n");
    assert_eq!(file("host.txt"), "bake\n");
    // What the app user wrote is owned by it in the layer.
    let listing = String::from_utf8(ok(Command::new("tar").arg("tvzf").arg(&blob)).stdout).unwrap();
    let line = listing.lines().find(|l| l.ends_with("work/id.txt")).unwrap();
    assert!(line.contains("1000/1000"), "{line}");
}

#[test]
#[ignore = "needs root, runc and fetched debs; run via cargo xtask test"]
fn deb_steps_check_the_pinned_digest() {
    let tmp = tempfile::tempdir().unwrap();
    busybox_context(tmp.path(), "");
    let text = fs_err::read_to_string(tmp.path().join("bake.toml")).unwrap();
    let wrong = "0".repeat(64);
    fs_err::write(tmp.path().join("bake.toml"), text.replace(BUSYBOX_SHA, &wrong)).unwrap();
    let err = fails(bake(tmp.path()).args(["build", "bake.toml", "--layout", "layout"]));
    assert!(err.starts_with("error: bake.toml:8:3: sources[0]: "), "{err}");
    assert!(
        err.contains(&format!(
            "busybox.deb has digest sha256:{BUSYBOX_SHA}, but the recipe expects sha256:{wrong}"
        )),
        "{err}"
    );
}

/// The busybox image also loads and runs in podman, via a docker-archive.
#[test]
#[ignore = "needs root, runc, podman and fetched debs; run via cargo xtask test"]
fn the_busybox_image_runs_under_podman() {
    require("podman");
    fetched(BUSYBOX_DEB);
    let tmp = tempfile::tempdir().unwrap();
    ok(bake(tmp.path())
        .arg("build")
        .arg(repo().join("recipes/busybox/bake.toml"))
        .args(["--layout", "layout", "--docker-archive", "busybox.tar"]));
    let podman = Podman::new();
    let podman = || podman.cmd();
    ok(podman().args(["load", "-i"]).arg(tmp.path().join("busybox.tar")));
    let out = ok(podman().args([
        "run",
        "--rm",
        "--network=none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "localhost/busybox:latest",
        "-c",
        "cat /etc/motd; ls /etc/placeholder 2>/dev/null || echo whiteout honoured",
    ]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "baked at 1700000000 on bake\nwhiteout honoured\n"
    );
}

/// A `deb` layer on top of another keeps the packages below in dpkg's
/// status file (it merges, never replaces), and the layer's bytes do not
/// depend on the order of its deb steps.
#[test]
#[ignore = "needs fetched debs; run via cargo xtask test"]
fn deb_layers_merge_the_status_below() {
    const CA_DEB: &str = "ca-certificates_20230311+deb12u1_all.deb";
    const CA_SHA: &str = "0d5f444f594e48c1e16a41d8fc628a09b24c658916a1274025c2330f2a802bed";
    let tmp = tempfile::tempdir().unwrap();
    busybox_context(
        tmp.path(),
        &format!(
            "[[layer]]\nname = \"more\"\n  [[layer.step]]\n  deb = \"ca.deb\"\n  sha256 = \"{CA_SHA}\"\n"
        ),
    );
    fs_err::copy(fetched(CA_DEB), tmp.path().join("ca.deb")).unwrap();
    let v = build_json(
        tmp.path(),
        &tmp.path().join("bake.toml"),
        &tmp.path().join("layout"),
    );
    let blob = |i: usize| {
        tmp.path()
            .join("layout/blobs/sha256")
            .join(&v["layers"][i]["digest"].as_str().unwrap()[7..])
    };
    let status = |i: usize| {
        let out = ok(Command::new("tar")
            .arg("xzOf")
            .arg(blob(i))
            .arg("var/lib/dpkg/status"))
        .stdout;
        let text = String::from_utf8(out).unwrap();
        text.lines()
            .filter_map(|l| l.strip_prefix("Package: "))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(status(0), ["busybox-static"]);
    assert_eq!(status(1), ["busybox-static", "ca-certificates"]);

    // Both debs in one layer, in either order: the same layer.
    let layer_of = |first: (&str, &str), second: (&str, &str)| {
        let dir = tempfile::tempdir().unwrap();
        fs_err::copy(fetched(BUSYBOX_DEB), dir.path().join("busybox.deb")).unwrap();
        fs_err::copy(fetched(CA_DEB), dir.path().join("ca.deb")).unwrap();
        fs_err::write(
            dir.path().join("bake.toml"),
            format!(
                "[image]\nname = \"t\"\n[[layer]]\n[[layer.step]]\ndeb = \"{}\"\nsha256 = \"{}\"\n\
                 [[layer.step]]\ndeb = \"{}\"\nsha256 = \"{}\"\n",
                first.0, first.1, second.0, second.1
            ),
        )
        .unwrap();
        let v = build_json(
            dir.path(),
            &dir.path().join("bake.toml"),
            &dir.path().join("layout"),
        );
        v["layers"][0]["diffID"].as_str().unwrap().to_owned()
    };
    let busybox = ("busybox.deb", BUSYBOX_SHA);
    let ca = ("ca.deb", CA_SHA);
    assert_eq!(layer_of(busybox, ca), layer_of(ca, busybox));
}

/// Without root, a run step fails with an error that says so (the `deb`
/// layer below it needs nothing special).
#[test]
#[ignore = "needs root (to drop it), setpriv and fetched debs; run via cargo xtask test"]
fn run_steps_say_when_they_need_root() {
    require("setpriv");
    let tmp = tempfile::tempdir().unwrap();
    busybox_context(tmp.path(), "[[layer]]\n  [[layer.step]]\n  run = \"true\"\n");
    // Let the unprivileged user into the context and write its layout.
    let open = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        fs_err::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    };
    open(tmp.path());
    open(&tmp.path().join("busybox.deb"));
    open(&tmp.path().join("bake.toml"));
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_bake"))
        .args(["build", "bake.toml", "--layout", "layout"])
        .current_dir(tmp.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", tmp.path())
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("bake.toml:15:3: run steps need root privileges (running as uid 65534)"),
        "{err}"
    );
    assert!(err.contains("run bake as root, e.g. with sudo"), "{err}");
}

/// A `deb` whose files are under /bin, installed on a merged-`/usr` base
/// (`/bin -> usr/bin`, as Debian 12 and Ubuntu images are): the files land
/// in /usr/bin, the base's link stays (were it replaced by a directory,
/// extraction would hide /usr/bin), dpkg's list keeps the package's
/// paths, and a `run` step on top sees it all through the link.
#[test]
#[ignore = "needs root, runc, umoci and fetched debs; run via cargo xtask test"]
fn debs_install_through_a_merged_usr_base() {
    require("runc");
    require("umoci");
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_files(
        d,
        &[(
            "base.toml",
            "epoch = 1700000000\n[image]\nname = \"base\"\n[[layer]]\nname = \"fs\"\n\
             [[layer.step]]\ndir = \"/usr/bin\"\n[[layer.step]]\ndir = \"/usr/sbin\"\n\
             [[layer.step]]\nsymlink = \"/bin\"\ntarget = \"usr/bin\"\n\
             [[layer.step]]\nsymlink = \"/sbin\"\ntarget = \"usr/sbin\"\n",
        )],
    );
    ok(bake(d).args(["build", "base.toml", "--layout", "base"]));
    busybox_context(
        d,
        "[[layer]]\nname = \"tools\"\n  [[layer.step]]\n  run = [\"busybox --install -s /bin\"]\n",
    );
    let recipe = fs_err::read_to_string(d.join("bake.toml")).unwrap();
    fs_err::write(
        d.join("bake.toml"),
        recipe.replace(
            "epoch = 1700000000\n",
            "epoch = 1700000000\nbase = \"oci:base:latest\"\n",
        ),
    )
    .unwrap();
    let (out, _) = build_in(d);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "{v}");
    for layer in &layers[1..] {
        let blob = d
            .join("layout/blobs/sha256")
            .join(&layer["digest"].as_str().unwrap()[7..]);
        let listing = String::from_utf8(ok(Command::new("tar").arg("tzf").arg(&blob)).stdout).unwrap();
        assert!(
            !listing.lines().any(|l| l == "bin/" || l.starts_with("bin/")),
            "a layer writes under /bin:\n{listing}"
        );
    }

    let bundle = d.join("bundle");
    umoci_unpack(&d.join("layout"), &bundle);
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        fs_err::read_link(rootfs.join("bin")).unwrap(),
        Path::new("usr/bin")
    );
    assert!(
        fs_err::symlink_metadata(rootfs.join("usr/bin/busybox"))
            .unwrap()
            .is_file()
    );
    assert!(
        fs_err::symlink_metadata(rootfs.join("usr/bin/ls"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let list = fs_err::read_to_string(rootfs.join("var/lib/dpkg/info/busybox-static.list")).unwrap();
    assert!(list.lines().any(|l| l == "/bin/busybox"), "{list}");
    let out = runc_sh(d, &bundle, "ls /bin/busybox /usr/bin/sh && busybox echo merged");
    assert!(out.ends_with("merged\n"), "{out}");
}

/// `bake build` in `dir` with `args` (`--cache-dir …` or `--no-cache`):
/// the image digest, and stderr.
fn build_digest(dir: &Path, layout: &str, args: &[&str]) -> (String, String) {
    let out = ok(bake(dir)
        .args(["build", "bake.toml", "--layout", layout, "--json"])
        .args(args));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["digest"].as_str().unwrap().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[ignore = "needs root, runc and fetched debs; run via cargo xtask test"]
fn run_steps_start_from_the_cached_plain_layers_and_get_the_same_root() {
    require("runc");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files: Vec<(String, String)> = (0..40)
        .map(|i| (format!("app/f-{i:02}.txt"), format!("file {i}\n")))
        .collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    write_files(dir, &refs);
    // The step records the root's readdir order (`find`), so a root made
    // from the plain copies must match the cold one entry for entry.
    busybox_context(
        dir,
        "[[layer]]\nname = \"app\"\n  [[layer.step]]\n  copy = \"app\"\n  to = \"/app\"\n\
         [[layer]]\nname = \"sums\"\n  [[layer.step]]\n  run = [\"cd /app && busybox find / -xdev > /order && busybox sha256sum * > /sums\"]\n",
    );
    let cache = dir.join("cache");
    let cache_arg = ["--cache-dir", cache.to_str().unwrap()];
    let (cold, _) = build_digest(dir, "a", &cache_arg);
    let (uncached, _) = build_digest(dir, "b", &["--no-cache"]);
    assert_eq!(cold, uncached, "a cached and an uncached build differ");

    // Both layers below the run step are kept uncompressed, by diffID.
    let config = |layout: &str| -> serde_json::Value {
        let l = dir.join(layout);
        let index: serde_json::Value =
            serde_json::from_slice(&fs_err::read(l.join("index.json")).unwrap()).unwrap();
        let blob = |d: &str| l.join("blobs/sha256").join(d.strip_prefix("sha256:").unwrap());
        let m: serde_json::Value = serde_json::from_slice(
            &fs_err::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
        )
        .unwrap();
        serde_json::from_slice(&fs_err::read(blob(m["config"]["digest"].as_str().unwrap())).unwrap()).unwrap()
    };
    let diff_ids: Vec<String> = config("a")["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().strip_prefix("sha256:").unwrap().to_owned())
        .collect();
    assert_eq!(diff_ids.len(), 3);
    let plain = cache.join("plain/blobs/sha256");
    let mut kept: Vec<String> = fs_err::read_dir(&plain)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    let mut want = diff_ids[..2].to_vec();
    want.sort();
    assert_eq!(kept, want, "plain copies of the two lower layers");

    // One file of the app changed: the run step runs again, on the cached
    // copy of the base; the image is what an uncached build makes.
    fs_err::write(dir.join("app/f-07.txt"), "changed\n").unwrap();
    let (changed, _) = build_digest(dir, "a", &cache_arg);
    let (changed_uncached, _) = build_digest(dir, "c", &["--no-cache"]);
    assert_ne!(changed, cold);
    assert_eq!(changed, changed_uncached);

    // A damaged copy is noticed before it is used: a warning naming it,
    // the blob is used instead, the image is unchanged, and the copy is
    // made again from the blob.
    let base = plain.join(&diff_ids[0]);
    let mut bytes = fs_err::read(&base).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x20;
    fs_err::write(&base, &bytes).unwrap();
    let out = bake(dir)
        .args(["store", "verify", "--cache-dir", cache.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains(&format!("corrupt   sha256:{}", diff_ids[0])),
        "{report}"
    );
    fs_err::write(dir.join("app/f-07.txt"), "changed again\n").unwrap();
    let (again, err) = build_digest(dir, "a", &cache_arg);
    let (again_uncached, _) = build_digest(dir, "d", &["--no-cache"]);
    assert_eq!(again, again_uncached);
    assert!(
        err.contains(&format!("the uncompressed copy of layer sha256:{}", diff_ids[0])),
        "{err}"
    );
    ok(bake(dir).args(["store", "verify", "--cache-dir", cache.to_str().unwrap()]));
    assert!(base.is_file(), "the copy is made again");

    // gc keeps copies used within its grace period and removes the others.
    ok(bake(dir).args(["store", "gc", "--cache-dir", cache.to_str().unwrap()]));
    assert!(base.is_file());
    let out = ok(bake(dir).args([
        "store",
        "gc",
        "--grace",
        "0",
        "--cache-dir",
        cache.to_str().unwrap(),
    ]));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&diff_ids[0]));
    let left = fs_err::read_dir(&plain).unwrap().count();
    assert_eq!(left, 0, "gc --grace 0 leaves no plain copy");
    // Nothing else went: the next build hits the cache, same image.
    let (after_gc, _) = build_digest(dir, "a", &cache_arg);
    assert_eq!(after_gc, again);
}
