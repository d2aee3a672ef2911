//! `bake check`: the example recipes are reproducible under a varied
//! environment, and deliberately non-reproducible recipes fail with the
//! difference explained and traced to the recipe step that caused it.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use serde_json::Value;

/// Runs `cmd`; returns (exit code, stdout, stderr).
fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `bake check ARGS` in `cwd` with its own TMPDIR `tmpdir`.
fn check(cwd: &Path, tmpdir: &Path, args: &[&str]) -> (i32, String, String) {
    fs_err::create_dir_all(tmpdir).unwrap();
    run(bake(cwd).arg("check").args(args).env("TMPDIR", tmpdir))
}

/// Nothing is left in `tmpdir` (the temporary roots were removed).
fn assert_empty(tmpdir: &Path) {
    let left: Vec<_> = fs_err::read_dir(tmpdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A one-layer recipe copying `data.txt` with the given `mtime` setting.
fn mtime_recipe(dir: &Path, mtime: &str) {
    write_files(
        dir,
        &[
            (
                "bake.toml",
                &format!(
                    "epoch = 1700000000\n\
                     [image]\nname = \"mtimes\"\n\
                     [[layer]]\nname = \"app\"\n\
                     [[layer.step]]\nfile = \"/etc/motd\"\ncontent = \"hi\\n\"\n\
                     [[layer.step]]\ncopy = \"data.txt\"\nto = \"/data.txt\"\nmtime = \"{mtime}\"\n"
                ),
            ),
            ("data.txt", "some data\n"),
        ],
    );
}

#[test]
fn every_example_recipe_passes_bake_check() {
    let names = buildable_recipe_names();
    assert!(!names.is_empty());
    let tmp = tempfile::tempdir().unwrap();
    for name in names {
        let recipe = repo().join(format!("recipes/{name}/bake.toml"));
        let t = tmp.path().join(&name);
        let (code, out, err) = check(tmp.path(), &t, &[recipe.to_str().unwrap()]);
        assert_eq!(code, 0, "recipe {name} is not reproducible:\n{out}\n{err}");
        assert!(out.starts_with("reproducible: sha256:"), "{out}");
        // Progress went to stderr: both builds, and what was varied.
        assert!(
            err.contains("build 1 of 2") && err.contains("build 2 of 2"),
            "{err}"
        );
        assert!(
            err.contains("umask 077") && err.contains("TZ=Asia/Kolkata"),
            "{err}"
        );
        assert_empty(&t);
    }
}

#[test]
fn an_unclamped_copied_mtime_fails_naming_the_cause_and_the_step() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    mtime_recipe(d, "source-unclamped");
    let (code, out, err) = check(d, &d.join("t"), &["bake.toml"]);
    assert_eq!(code, 1, "{out}\n{err}");
    // The diff report, then the step, then the verdict.
    assert!(out.contains("~ data.txt  mtime"), "{out}");
    assert!(out.contains("recipe steps behind the differences:"), "{out}");
    assert!(
        out.contains("  bake.toml:10:1: copy data.txt → /data.txt (layer 1 \"app\")\n    /data.txt: mtime\n"),
        "{out}"
    );
    assert!(!out.contains("/etc/motd"), "{out}");
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("not reproducible: build 1 gave sha256:"),
        "{out}"
    );
    // The variation the difference follows, found by more builds.
    assert!(
        out.contains("the difference follows the context's mtimes after the epoch: a build with build 1's conditions but that one of build 2's differs from build 1 too (6 more builds)\n"),
        "{out}"
    );
    assert!(
        err.contains("finding which variation the difference follows"),
        "{err}"
    );
    assert!(err.contains("build 8 (to find the variation)"), "{err}");
    // Not an error: nothing but progress on stderr.
    assert!(!err.contains("error:"), "{err}");
    assert_empty(&d.join("t"));

    // The same as JSON.
    let (code, out, _) = check(d, &d.join("t"), &["bake.toml", "--json", "--quiet"]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["reproducible"], false);
    let digests = v["digests"].as_array().unwrap();
    assert_eq!(digests.len(), 2);
    assert_ne!(digests[0], digests[1]);
    assert_eq!(v["against"], Value::Null);
    assert_eq!(v["differences"]["layers"][0]["status"], "contentDiffers");
    assert_eq!(v["differences"]["layers"][0]["entries"][0]["path"], "data.txt");
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{v}");
    assert_eq!(steps[0]["path"], "/data.txt");
    assert_eq!(steps[0]["layer"], 1);
    assert_eq!(steps[0]["step"], "bake.toml:10:1");
    assert_eq!(steps[0]["kind"], "copy");
    assert_eq!(steps[0]["cause"], serde_json::json!(["mtime"]));
    assert_eq!(v["follows"]["deterministic"], true);
    assert_eq!(v["follows"]["conditions"], serde_json::json!(["mtimes"]));
    assert_eq!(v["follows"]["builds"], 6);
    assert_empty(&d.join("t"));

    // --no-bisect: two builds only, nothing said of a variation.
    let (code, out, err) = check(d, &d.join("t"), &["bake.toml", "--no-bisect"]);
    assert_eq!(code, 1);
    assert!(!out.contains("the difference follows"), "{out}");
    assert!(!err.contains("build 3"), "{err}");
    let (_, out, _) = check(d, &d.join("t"), &["bake.toml", "--json", "-q", "--no-bisect"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["follows"], Value::Null);
}

/// Clamping to the epoch hides newer host mtimes, not older ones: a
/// checkout older than the epoch leaks them, and the check (whose first
/// copy has mtimes before the epoch) catches it. The default is reproducible.
#[test]
fn a_clamped_source_mtime_fails_too_and_the_default_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    mtime_recipe(d, "source");
    let (code, out, _) = check(d, &d.join("t"), &["bake.toml", "-q"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("    /data.txt: mtime\n"), "{out}");

    mtime_recipe(d, "epoch");
    let (code, out, err) = check(d, &d.join("t"), &["bake.toml", "-q"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("reproducible: sha256:"), "{out}");
    assert!(err.is_empty(), "--quiet: {err}");
}

const GREETING: &str = "epoch = 1700000000\n\
    [variables]\ngreeting = \"hello\"\n\
    [image]\nname = \"greeting\"\n\
    [[layer]]\nname = \"base\"\n\
    [[layer.step]]\ndir = \"/etc\"\n\
    [[layer]]\nname = \"text\"\n\
    [[layer.step]]\nfile = \"/etc/greeting\"\ncontent = \"${greeting}\\n\"\n\
    [[layer.step]]\nsymlink = \"/greeting\"\ntarget = \"etc/greeting\"\n";

#[test]
fn against_an_unchanged_layout_or_its_digest_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_files(d, &[("bake.toml", GREETING)]);
    let built = build_json(d, Path::new("bake.toml"), &d.join("published"));
    let digest = built["digest"].as_str().unwrap();

    let (code, out, err) = check(
        d,
        &d.join("t"),
        &["bake.toml", "--against", "oci:published:latest"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out,
        format!("reproducible: {digest}, the same as oci:published:latest\n")
    );
    // One build only.
    assert!(err.contains("build 2 in") && !err.contains("build 1"), "{err}");

    let (code, out, _) = check(d, &d.join("t"), &["bake.toml", "--against", digest, "--json"]);
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["reproducible"], true);
    assert_eq!(v["digests"], serde_json::json!([digest, digest]));
    assert_eq!(v["against"], digest);
    assert_eq!(v["steps"], serde_json::json!([]));
    assert_empty(&d.join("t"));
}

#[test]
fn against_an_image_of_another_variable_value_fails_naming_the_file_step() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_files(d, &[("bake.toml", GREETING)]);
    let mine = build_json(d, Path::new("bake.toml"), &d.join("mine"));
    let mine = mine["digest"].as_str().unwrap();
    let out = ok(bake(d).args([
        "build",
        "bake.toml",
        "--layout",
        "other",
        "--var",
        "greeting=bonjour",
        "--json",
    ]));
    let other: Value = serde_json::from_slice(&out.stdout).unwrap();
    let other_digest = other["digest"].as_str().unwrap().to_owned();
    assert_ne!(mine, other_digest);

    // A bare digest: only digests can be compared, and it says so.
    let (code, out, _) = check(d, &d.join("t"), &["bake.toml", "-q", "--against", &other_digest]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("not reproducible: built sha256:")
            && out.contains(&format!("expected {other_digest}"))
            && out.contains("only the manifest digests were compared"),
        "{out}"
    );

    // A layout: the difference, and the step behind it. The layer below
    // is identical and not blamed.
    let against = format!("oci:other@{other_digest}");
    let (code, out, _) = check(d, &d.join("t"), &["bake.toml", "-q", "--against", &against]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("layer 1 (bake layer base): identical"), "{out}");
    assert!(
        out.contains(
            "  bake.toml:13:1: file /etc/greeting (layer 2 \"text\")\n    /etc/greeting: content, size\n"
        ),
        "{out}"
    );
    assert!(!out.contains("    /greeting"), "{out}");
    assert!(
        out.trim_end().ends_with(&format!(
            "not reproducible: built {mine}, {against} is {other_digest}"
        )),
        "{out}"
    );

    // With the same variable value, it matches.
    let (code, out, _) = check(
        d,
        &d.join("t"),
        &[
            "bake.toml",
            "-q",
            "--var",
            "greeting=bonjour",
            "--against",
            &against,
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert_empty(&d.join("t"));
}

#[test]
fn keep_prints_roots_that_exist_and_json_lists_them() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_files(d, &[("bake.toml", GREETING)]);
    let (code, out, err) = check(d, &d.join("t"), &["bake.toml", "--keep", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["reproducible"], true);
    assert_eq!(v["differences"], Value::Null);
    let d0 = v["digests"][0].as_str().unwrap();
    assert!(d0.starts_with("sha256:"));
    assert_eq!(v["digests"][1], d0);
    let kept: Vec<PathBuf> = v["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| PathBuf::from(p.as_str().unwrap()))
        .collect();
    assert_eq!(kept.len(), 2);
    for k in &kept {
        assert!(k.starts_with(d.join("t")), "{k:?}");
        assert!(err.contains(&format!("check: kept {}", k.display())), "{err}");
        // The layout and the copied context are there to look at.
        let found: Vec<PathBuf> = walk(k);
        assert!(
            found.iter().any(|p| p.ends_with("context/bake.toml")),
            "{found:?}"
        );
        assert!(found.iter().any(|p| p.ends_with("out/index.json")), "{found:?}");
    }
    // The second copy is deeper, its files stripped of group/other bits.
    use std::os::unix::fs::PermissionsExt;
    let deep = walk(&kept[1])
        .into_iter()
        .find(|p| p.ends_with("context/bake.toml"))
        .unwrap();
    assert!(deep.to_str().unwrap().contains("a deeper/build path"), "{deep:?}");
    let mode = fs_err::metadata(&deep).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs_err::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn only_what_the_recipe_reads_is_copied_and_symlinks_are_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_files(
        d,
        &[
            (
                "ctx/bake.toml",
                "[image]\nname = \"links\"\n[[layer]]\n[[layer.step]]\ncopy = \"via/file.txt\"\nto = \"/f\"\n\
                 [[layer.step]]\ncopy = \"tree\"\nto = \"/t\"\n",
            ),
            ("ctx/real/file.txt", "through a symlinked dir\n"),
            ("ctx/tree/a", "a\n"),
            ("ctx/tree/sub/b", "b\n"),
            ("ctx/unrelated/big", "not read by the recipe\n"),
        ],
    );
    std::os::unix::fs::symlink("real", d.join("ctx/via")).unwrap();
    std::os::unix::fs::symlink("a", d.join("ctx/tree/link")).unwrap();
    let expected = build_json(d, Path::new("ctx/bake.toml"), &d.join("expected"));
    let (code, out, err) = check(d, &d.join("t"), &["ctx/bake.toml", "--keep", "--json", "-q"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["digests"][0], expected["digest"]);
    for k in v["kept"].as_array().unwrap() {
        let found: Vec<String> = walk(Path::new(k.as_str().unwrap()))
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert!(
            found.iter().any(|p| p.ends_with("context/real/file.txt")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|p| p.ends_with("context/tree/sub/b")),
            "{found:?}"
        );
        assert!(!found.iter().any(|p| p.contains("unrelated")), "{found:?}");
    }
}

#[test]
fn a_failing_build_is_an_error_and_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_files(
        d,
        &[(
            "bake.toml",
            "[image]\nname = \"bad\"\n[[layer]]\n[[layer.step]]\ncopy = \"missing\"\nto = \"/m\"\n",
        )],
    );
    let (code, out, err) = check(d, &d.join("t"), &["bake.toml"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("error: build 1 in "), "{err}");
    assert!(err.contains("bake.toml:5:1"), "the child's error is shown: {err}");
    assert_empty(&d.join("t"));
    // Quiet: the child's messages are in the error.
    let (code, _, err) = check(d, &d.join("t"), &["bake.toml", "-q"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: build 1 in ") && err.contains("bake.toml:5:1"),
        "{err}"
    );

    let (code, _, err) = check(d, &d.join("t"), &["nope.toml"]);
    assert_eq!(code, 1);
    assert!(err.contains("recipe nope.toml does not exist"), "{err}");
    let (code, _, _) = check(d, &d.join("t"), &[]);
    assert_eq!(code, 2);
    let out = ok(bake(d).args(["check", "--help"]));
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("Exit status: 0 when reproducible"), "{help}");
}

/// A `run` step writing the time: the layer differs, and the run step is
/// named.
#[test]
#[ignore = "needs root, runc and the fetched busybox .deb; run via cargo xtask test"]
fn a_run_step_writing_the_time_fails_naming_the_run_step() {
    require("runc");
    let deb = BUSYBOX_DEB;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs_err::create_dir_all(d.join("debs")).unwrap();
    fs_err::copy(fetched(deb), d.join("debs").join(deb)).unwrap();
    write_files(
        d,
        &[(
            "bake.toml",
            &format!(
                "epoch = 1700000000\n\
                 [image]\nname = \"stamp\"\n\
                 [[layer]]\nname = \"busybox\"\n\
                 [[layer.step]]\ndeb = \"debs/{deb}\"\n\
                 sha256 = \"3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744\"\n\
                 [[layer.step]]\nsymlink = \"/bin/sh\"\ntarget = \"busybox\"\n\
                 [[layer]]\nname = \"stamp\"\n\
                 [[layer.step]]\nfile = \"/etc/motd\"\ncontent = \"hi\\n\"\n\
                 [[layer.step]]\nrun = \"date +%s%N > /etc/stamp && cat /proc/uptime >> /etc/stamp\"\n"
            ),
        )],
    );
    let (code, out, err) = check(d, &d.join("t"), &["bake.toml"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("~ etc/stamp  content"), "{out}");
    assert!(
        out.contains("  bake.toml:18:1: run \"date +%s%N > /etc/stamp && cat /proc/uptime >> /etc/stamp\" (layer 2 \"stamp\")\n    /etc/stamp: content"),
        "{out}"
    );
    assert!(out.contains("layer 1 (bake layer busybox): identical"), "{out}");
    // The time differs whatever the conditions: build 1's again differs.
    assert!(
        out.contains("the difference follows none of the varied conditions: build 1's own conditions, again, gave sha256:"),
        "{out}"
    );
    assert_empty(&d.join("t"));
}

/// A recipe on a base given by tag: checked against the image built before
/// the tag moved, the base layer differs and the `base` line is named.
#[test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
fn a_moved_base_tag_fails_against_the_old_image_naming_the_base() {
    require("docker-registry");
    let reg = bake_testkit::TestRegistry::start(bake_testkit::TestRegistryOptions::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let base_tag = format!("{}/check/base:v1", reg.host());
    let base = |content: &str| {
        write_files(
            d,
            &[(
                "base/bake.toml",
                &format!(
                    "[image]\nname = \"base\"\n[[layer]]\n[[layer.step]]\nfile = \"/etc/os-release\"\ncontent = \"{content}\\n\"\n"
                ),
            )],
        );
        ok(bake(d).args([
            "build",
            "base/bake.toml",
            "--layout",
            "base-out",
            "--push",
            &base_tag,
            "-q",
        ]));
    };
    base("ID=one");
    write_files(
        d,
        &[(
            "app/bake.toml",
            &format!(
                "base = \"{base_tag}\"\n[image]\nname = \"app\"\n[[layer]]\nname = \"app\"\n[[layer.step]]\nfile = \"/app\"\ncontent = \"app\\n\"\n"
            ),
        )],
    );
    let app_ref = format!("{}/check/app:1", reg.host());
    ok(bake(d).args([
        "build",
        "app/bake.toml",
        "--layout",
        "published",
        "-q",
        "--push",
        &app_ref,
    ]));
    let (code, out, err) = check(d, &d.join("t"), &["app/bake.toml", "-q", "--against", &app_ref]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!(", the same as {app_ref}")), "{out}");
    // While the tag stays put: reproducible, with a warning about the tag.
    let (code, out, err) = check(d, &d.join("t"), &["app/bake.toml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains(&format!("warning: base {base_tag} is a tag")),
        "{err}"
    );

    base("ID=two");
    let (code, out, err) = check(d, &d.join("t"), &["app/bake.toml", "--against", "oci:published"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("~ etc/os-release  content"), "{out}");
    assert!(
        out.contains(&format!(
            "  app/bake.toml:1:8: base image {base_tag} (layer 1 \"base\")\n    /etc/os-release: content"
        )),
        "{out}"
    );
    assert!(out.contains("layer 2 (bake layer app): identical"), "{out}");
    // The same against the pushed copy, pulled from the registry.
    let (code, out, _) = check(d, &d.join("t"), &["app/bake.toml", "-q", "--against", &app_ref]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("  app/bake.toml:1:8: base image "), "{out}");
    assert_empty(&d.join("t"));
}

/// A context with a hard-link group (`bin/tool` and `bin/tool-alias`), a
/// plain file, an empty directory and a symlink.
fn linked_context(dir: &Path) {
    write_files(
        dir,
        &[
            (
                "bake.toml",
                "epoch = 1700000000\n[image]\nname = \"links\"\n\
                 [[layer]]\n[[layer.step]]\ncopy = \"app\"\nto = \"/app\"\n",
            ),
            ("app/bin/tool", "#!/bin/sh\necho tool\n"),
            ("app/README", "readme\n"),
            ("app/same-a", "same\n"),
            ("app/same-b", "same\n"),
        ],
    );
    fs_err::hard_link(dir.join("app/bin/tool"), dir.join("app/bin/tool-alias")).unwrap();
    fs_err::create_dir_all(dir.join("app/empty")).unwrap();
    std::os::unix::fs::symlink("bin/tool", dir.join("app/run")).unwrap();
}

#[test]
fn check_builds_the_image_bake_build_makes_on_a_context_with_hard_links() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("ctx");
    linked_context(&d);
    let built = build_json(&d, &d.join("bake.toml"), &tmp.path().join("layout"));
    let digest = built["digest"].as_str().unwrap();
    let (code, out, err) = check(&d, &tmp.path().join("t1"), &["bake.toml", "--against", digest]);
    assert_eq!(
        code, 0,
        "bake check --against a plain build's digest:\n{out}\n{err}"
    );
    let (code, out, err) = check(&d, &tmp.path().join("t2"), &["bake.toml"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(digest),
        "check names another digest than build:\n{out}"
    );
    assert_empty(&tmp.path().join("t1"));
}

#[test]
fn a_lock_covers_hard_link_grouping() {
    // Locked with two separate files; hard-linking them changes the layer
    // (one file and a link), so --locked must refuse the build.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    linked_context(d);
    ok(bake(d).args(["lock", "bake.toml"]));
    ok(bake(d).args(["build", "bake.toml", "--locked", "-q"]));
    fs_err::remove_file(d.join("app/same-b")).unwrap();
    fs_err::hard_link(d.join("app/same-a"), d.join("app/same-b")).unwrap();
    let err = fails(bake(d).args(["build", "bake.toml", "--locked", "-q"]));
    assert!(
        err.contains("copy app") && err.contains("no longer matches the lock"),
        "{err}"
    );
}

/// Ctrl-C during `bake check` (SIGINT to it alone, or to its whole process
/// group as a terminal sends it): the running child build is stopped, the
/// check exits 130 with one line, and its temporary roots are gone.
#[test]
fn an_interrupted_check_stops_its_build_and_removes_its_roots() {
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // ~64 MiB of poorly compressible data: each build takes seconds.
    write_noise(&d.join("big.bin"), 64, NOISE_SEED);
    write_files(
        d,
        &[(
            "bake.toml",
            "[image]\nname = \"big\"\n[[layer]]\nname = \"big\"\n[[layer.step]]\ncopy = \"big.bin\"\nto = \"/big.bin\"\n",
        )],
    );
    for group in [false, true] {
        let t = d.join("t");
        fs_err::create_dir_all(&t).unwrap();
        let stderr = d.join("stderr");
        let mut child = bake(d)
            .args(["check", "bake.toml"])
            .env("TMPDIR", &t)
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(fs_err::File::create(&stderr).unwrap().into_parts().0)
            .spawn()
            .unwrap();
        // Until the first child build has started.
        wait_for_text(&mut child, &stderr, "check: build 1 of 2");
        let target = if group {
            format!("-{}", child.id())
        } else {
            child.id().to_string()
        };
        let sent = Command::new("kill")
            .args(["-INT", "--", &target])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = wait_exit(
            &mut child,
            std::time::Duration::from_secs(30),
            "bake check after SIGINT",
        );
        let text = fs_err::read_to_string(&stderr).unwrap();
        assert_eq!(status.code(), Some(130), "group {group}: {status:?}: {text}");
        assert!(text.contains("bake: interrupted by SIGINT: "), "{text}");
        // The roots (contexts, layouts, the child's TMPDIR) are gone.
        assert_empty(&t);
    }
}

/// A forward proxy that answers every request with 502 and records the
/// first line of each (`GET http://HOST/v2/… HTTP/1.1`).
fn recording_proxy() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut line = String::new();
            let _ = BufReader::new(&stream).read_line(&mut line);
            log.lock().unwrap().push(line.trim_end().to_owned());
            let _ = stream
                .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (addr, seen)
}

#[test]
fn check_builds_reach_registries_through_the_callers_proxy() {
    // A registry base on a port where nothing listens: reached only through
    // the proxy. The builds of bake check must use it as bake build does
    // (they used to run with the proxy settings cleared).
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs_err::write(
        dir.join("bake.toml"),
        "base = \"127.0.0.1:9/nothing/here:v1\"\n[image]\nname = \"p\"\n[[layer]]\nname = \"a\"\n[[layer.step]]\nfile = \"/a\"\ncontent = \"a\\n\"\n",
    )
    .unwrap();
    let (proxy, seen) = recording_proxy();
    let (code, _, err) = run(bake(dir)
        .args(["build", "bake.toml", "--no-cache"])
        .env("HTTP_PROXY", &proxy)
        .env("TMPDIR", dir));
    assert_eq!(code, 1, "{err}");
    let by_build = seen.lock().unwrap().len();
    assert!(by_build > 0, "bake build did not use the proxy: {err}");
    assert!(
        seen.lock().unwrap()[0].contains("http://127.0.0.1:9/v2/"),
        "{:?}",
        seen.lock().unwrap()
    );
    let check_tmp = dir.join("check-tmp");
    fs_err::create_dir_all(&check_tmp).unwrap();
    let (code, _, err) = run(bake(dir)
        .args(["check", "bake.toml"])
        .env("HTTP_PROXY", &proxy)
        .env("TMPDIR", &check_tmp));
    assert_eq!(code, 1, "{err}");
    assert_empty(&check_tmp);
    assert!(
        seen.lock().unwrap().len() > by_build,
        "bake check's build did not use the proxy: {err}"
    );
}
