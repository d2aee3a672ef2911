//! `bake diff A B` end to end: images built by the real binary from tiny
//! recipes, compared as layouts, docker-archives and registry references;
//! exit codes, the human report and the `--json` shape. (Every kind of
//! difference on hand-made layouts: `crates/bake-diff/tests/diff.rs`.)
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use crate::common::*;

/// Runs `cmd`; returns its exit code, stdout and stderr.
fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `bake diff ARGS…` in `dir`, expecting "the images differ": exit 1, the
/// report on stdout, nothing on stderr. Returns stdout.
fn differs(dir: &Path, args: &[&str]) -> String {
    let (code, out, err) = run(bake(dir).arg("diff").args(args));
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(err, "", "a difference is not an error; stdout:\n{out}");
    out
}

fn assert_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
}

/// A recipe whose every difference-making value is a variable.
const RECIPE: &str = r#"
epoch = 1700000000

[variables]
msg = "hello"
mode = "0644"
owner = "0:0"
target = "app.conf"
level = "info"

[image]
name = "difftest"

[[layer]]
name = "files"

  [[layer.step]]
  file = "/etc/app.conf"
  content = "${msg}\n"
  mode = "${mode}"
  owner = "${owner}"

  [[layer.step]]
  symlink = "/etc/current"
  target = "${target}"

[config]
cmd = ["/bin/app"]
env = { LEVEL = "${level}" }
labels = { tier = "${level}" }
"#;

/// Builds `recipe` (written to DIR/NAME.toml) into the layout DIR/NAME with
/// extra build flags.
fn build(dir: &Path, name: &str, recipe: &str, flags: &[&str]) {
    let path = dir.join(format!("{name}.toml"));
    fs_err::write(&path, recipe).unwrap();
    ok(bake(dir)
        .arg("build")
        .arg(&path)
        .args(["--layout", name, "-q"])
        .args(flags));
}

#[test]
fn identical_builds_exit_0_and_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    build(d, "a", RECIPE, &[]);
    build(d, "b", RECIPE, &[]);
    let digest = serde_json::from_slice::<serde_json::Value>(&fs_err::read(d.join("a/index.json")).unwrap())
        .unwrap()["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    // oci:DIR:TAG against a bare layout directory.
    let out = ok(bake(d).args(["diff", "oci:a:latest", "b"]));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("identical: both images are manifest {digest}\n")
    );
    assert!(out.stderr.is_empty());
    let out = ok(bake(d).args(["diff", "a", &format!("oci:b@{digest}"), "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["identical"], true);
    assert_eq!(v["layers"][0]["status"], "identical");
}

#[test]
fn another_epoch_shows_created_and_mtimes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    build(d, "a", RECIPE, &[]);
    build(d, "b", RECIPE, &["--source-date-epoch", "1700000500"]);
    let out = differs(d, &["oci:a", "oci:b"]);
    assert_lines(
        &out,
        &[
            "a: oci:a (manifest sha256:",
            "manifest: differs (sha256:",
            "config: differs (sha256:",
            "  created: 2023-11-14T22:13:20Z → 2023-11-14T22:21:40Z\n",
            "  history[0].created: 2023-11-14T22:13:20Z → 2023-11-14T22:21:40Z\n",
            "layer 1 (bake layer files): differs (sha256:",
            "  3 entries differ: 0 added, 0 removed, 3 changed (mtime 3)\n",
            "  ~ etc/app.conf  mtime 1700000000 → 1700000500\n",
            "  ~ etc/current  mtime 1700000000 → 1700000500\n",
        ],
    );
}

#[test]
fn content_mode_owner_symlink_env_and_label_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    build(d, "a", RECIPE, &[]);
    build(
        d,
        "b",
        RECIPE,
        &[
            "--var",
            "msg=bonjour",
            "--var",
            "mode=0600",
            "--var",
            "owner=1000:1000",
            "--var",
            "target=other.conf",
            "--var",
            "level=debug",
        ],
    );
    let out = differs(d, &["oci:a", "oci:b"]);
    let (old, new) = (
        bake_digest::Digest::of(b"hello\n"),
        bake_digest::Digest::of(b"bonjour\n"),
    );
    assert_lines(
        &out,
        &[
            &format!(
                "  ~ etc/app.conf  content sha256:{}… → sha256:{}…, size 6 → 8, mode 0644 → 0600, uid 0 → 1000, gid 0 → 1000\n",
                old.short(),
                new.short()
            ),
            "  ~ etc/current  symlink target app.conf → other.conf\n",
            "  config.Env: ~ LEVEL: info → debug\n",
            "  config.Labels: ~ tier: info → debug\n",
        ],
    );
    assert!(!out.contains("created:"), "same epoch:\n{out}");
}

#[test]
fn added_and_removed_files_and_another_compression() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    build(d, "a", RECIPE, &[]);
    let more = RECIPE.replace(
        "  [[layer.step]]\n  symlink = \"/etc/current\"\n  target = \"${target}\"\n",
        "  [[layer.step]]\n  file = \"/etc/new.conf\"\n  content = \"new\\n\"\n",
    );
    build(d, "b", &more, &[]);
    let out = differs(d, &["oci:a", "oci:b"]);
    assert_lines(&out, &["  + etc/new.conf\n", "  - etc/current -> app.conf\n"]);

    // The same tar at two gzip levels: a compression-only difference.
    let level = |n: u32| format!("{RECIPE}\n[output]\ncompression = \"gzip\"\nlevel = {n}\n");
    build(d, "fast", &level(1), &[]);
    build(d, "best", &level(9), &[]);
    let out = differs(d, &["oci:fast", "oci:best"]);
    assert_lines(
        &out,
        &[
            "config: identical\n",
            "layer 1 (bake layer files): compression-only difference, same diffID sha256:",
            "  gzip header: xfl 4 → 2\n",
        ],
    );
}

#[test]
fn a_docker_archive_of_the_same_build_is_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    build(d, "a", RECIPE, &["--docker-archive", "a.tar"]);
    for archive in ["docker-archive:a.tar", "a.tar"] {
        let (code, out, err) = run(bake(d).args(["diff", archive, "oci:a"]));
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.starts_with("identical: the same config sha256:"), "{out}");
    }
}

#[test]
fn json_report_lists_every_change() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    build(d, "a", RECIPE, &[]);
    build(d, "b", RECIPE, &["--var", "msg=bonjour"]);
    let (code, out, err) = run(bake(d).args(["diff", "oci:a", "oci:b", "--json"]));
    assert_eq!((code, err.as_str()), (1, ""));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["identical"], false);
    assert_eq!(v["a"]["name"], "oci:a");
    assert_eq!(v["config"]["identical"], false);
    assert_eq!(v["config"]["diffIds"][0]["index"], 0);
    let layer = &v["layers"][0];
    assert_eq!(layer["layer"], 1);
    assert_eq!(layer["status"], "contentDiffers");
    assert_eq!(layer["createdBy"], "bake layer files");
    assert_eq!(layer["summary"]["changed"], 1);
    let e = &layer["entries"][0];
    assert_eq!(e["path"], "etc/app.conf");
    assert_eq!(e["change"], "changed");
    assert_eq!(e["fields"][0]["field"], "content");
    assert_eq!(e["b"]["mode"], 0o644);
}

#[test]
fn errors_exit_1_with_error_and_usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    build(d, "a", RECIPE, &[]);
    let err = fails(bake(d).args(["diff", "oci:a", "oci:missing"]));
    assert!(
        err.starts_with("error: oci:missing: ") && err.contains("is not an OCI image layout"),
        "{err}"
    );
    let err = fails(bake(d).args(["diff", "oci:a", "docker-archive:nope.tar"]));
    assert!(err.starts_with("error: docker-archive:nope.tar: "), "{err}");
    let (code, _, err) = run(bake(d).args(["diff", "oci:a"]));
    assert_eq!(code, 2, "{err}");
    let out = ok(bake(d).args(["diff", "--help"]));
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.contains("Exit status: 0 when the images are identical; 1 when they differ"),
        "{help}"
    );
}

/// The registry copy of a build against its local layout: identical.
#[test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
fn a_pushed_image_is_identical_to_its_layout() {
    require("docker-registry");
    let own;
    let host = match std::env::var("BAKE_TEST_REGISTRY") {
        Ok(h) => h,
        Err(_) => {
            own = bake_testkit::TestRegistry::start(bake_testkit::TestRegistryOptions::default()).unwrap();
            own.host()
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let target = format!("{host}/diff/pushed");
    build(d, "a", RECIPE, &["--push", &target]);
    let (code, out, err) = run(bake(d).args(["diff", &format!("{target}:latest"), "oci:a"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("identical: both images are manifest sha256:"),
        "{out}"
    );
    // Another build in the registry: a difference, explained (pulled
    // quietly with --json: stderr stays empty).
    let other = format!("{host}/diff/other:debug");
    build(d, "b", RECIPE, &["--var", "level=debug", "--push", &other]);
    let out = differs(d, &[&format!("{target}:latest"), &other, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["config"]["env"][0]["key"], "LEVEL");
    assert_eq!(v["layers"][0]["status"], "identical");
}
