//! Bad input gets a clear error naming the file and line at fault, exit code
//! 1, and does no damage: no blob is left half-written in the layout.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use crate::common::*;

const HEADER: &str = "[image]\nname = \"bad\"\n";

/// Builds a recipe made of `body` after a two-line header, expecting
/// failure; returns stderr and checks the layout holds no partial blob.
fn build_err(dir: &Path, body: &str, extra: &[&str]) -> String {
    fs_err::write(dir.join("bake.toml"), format!("{HEADER}{body}")).unwrap();
    let err = fails(
        bake(dir)
            .args(["build", "bake.toml", "--layout", "layout"])
            .args(extra),
    );
    let layout = dir.join("layout");
    if layout.join("blobs/sha256").exists() {
        assert_store_clean(&layout);
    }
    err
}

fn assert_at(err: &str, line: usize, words: &[&str]) {
    let at = format!("bake.toml:{line}:");
    assert!(err.contains(&at), "error does not name {at}:\n{err}");
    for w in words {
        assert!(err.contains(w), "error lacks {w:?}:\n{err}");
    }
}

fn ctx() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write_files(d.path(), &[("ok.txt", "fine\n"), ("sub/inner.txt", "inner\n")]);
    d
}

#[test]
fn unknown_key() {
    let d = ctx();
    let err = build_err(d.path(), "colour = \"blue\"\n", &[]);
    assert_at(&err, 3, &["colour"]);
}

#[test]
fn unknown_key_in_step() {
    let d = ctx();
    let err = build_err(
        d.path(),
        "[[layer]]\n[[layer.step]]\ncopy = \"ok.txt\"\nto = \"/ok\"\ntarget = \"/x\"\n",
        &[],
    );
    assert_at(&err, 7, &["target"]);
}

#[test]
fn wrong_type() {
    let d = ctx();
    let err = build_err(
        d.path(),
        "[[layer]]\n[[layer.step]]\nfile = \"/f\"\ncontent = 42\n",
        &[],
    );
    assert_at(&err, 6, &["content"]);
}

#[test]
fn undefined_variable() {
    let d = ctx();
    let err = build_err(
        d.path(),
        "[[layer]]\n[[layer.step]]\nfile = \"/f\"\ncontent = \"v=${nope}\"\n",
        &[],
    );
    assert_at(&err, 6, &["nope"]);
}

#[test]
fn override_of_undeclared_or_mistyped_variable() {
    let d = ctx();
    let body = "[variables]\nport = 80\n[[layer]]\n[[layer.step]]\nfile = \"/f\"\ncontent = \"${port}\"\n";
    let err = build_err(d.path(), body, &["--var", "colour=blue"]);
    assert!(err.contains("colour"), "{err}");
    let err = build_err(d.path(), body, &["--var", "port=eighty"]);
    assert!(err.contains("port") && err.contains("eighty"), "{err}");
    let err = build_err(d.path(), body, &["--var", "novalue"]);
    assert!(err.contains("novalue"), "{err}");
}

#[test]
fn source_outside_context() {
    let d = ctx();
    for src in ["../outside.txt", "sub/../../outside.txt", "/etc/passwd"] {
        let err = build_err(
            d.path(),
            &format!("[[layer]]\n[[layer.step]]\ncopy = \"{src}\"\nto = \"/x\"\n"),
            &[],
        );
        assert_at(&err, 5, &[]);
        assert!(
            err.contains(src) || err.contains("outside") || err.contains("absolute"),
            "{err}"
        );
    }
}

#[test]
fn source_symlink_pointing_out_of_context() {
    let d = ctx();
    std::os::unix::fs::symlink("/etc", d.path().join("etc-link")).unwrap();
    let err = build_err(
        d.path(),
        "[[layer]]\n[[layer.step]]\ncopy = \"etc-link/passwd\"\nto = \"/x\"\n",
        &[],
    );
    assert_at(&err, 5, &["etc-link"]);
}

#[test]
fn missing_source() {
    let d = ctx();
    let err = build_err(
        d.path(),
        "[[layer]]\n[[layer.step]]\ncopy = \"nope.txt\"\nto = \"/x\"\n",
        &[],
    );
    assert_at(&err, 5, &["nope.txt"]);
}

#[test]
fn destination_escaping_root() {
    let d = ctx();
    let err = build_err(
        d.path(),
        "[[layer]]\n[[layer.step]]\ncopy = \"ok.txt\"\nto = \"/../../etc/x\"\n",
        &[],
    );
    assert_at(&err, 6, &["/../../etc/x"]);
    let err = build_err(d.path(), "[[layer]]\n[[layer.step]]\ndir = \"/a/../../b\"\n", &[]);
    assert_at(&err, 5, &[]);
}

#[test]
fn step_with_two_kinds() {
    let d = ctx();
    let err = build_err(
        d.path(),
        "[[layer]]\n[[layer.step]]\ndir = \"/a\"\nfile = \"/b\"\n",
        &[],
    );
    assert!(err.contains("bake.toml:"), "{err}");
}

#[test]
fn missing_base_layout() {
    let d = ctx();
    fs_err::write(
        d.path().join("bake.toml"),
        "base = \"oci:nowhere:1.0\"\n[image]\nname = \"bad\"\n",
    )
    .unwrap();
    let err = fails(bake(d.path()).args(["build", "bake.toml", "--layout", "layout"]));
    assert_at(&err, 1, &["nowhere"]);
}

#[test]
fn base_tag_not_in_layout() {
    let d = ctx();
    copy_tree_shuffled(&repo().join("recipes/site/base"), &d.path().join("base"), 0);
    fs_err::write(
        d.path().join("bake.toml"),
        "base = \"oci:base:2.0\"\n[image]\nname = \"bad\"\n",
    )
    .unwrap();
    let err = fails(bake(d.path()).args(["build", "bake.toml", "--layout", "layout"]));
    assert_at(&err, 1, &["2.0"]);
}

#[test]
fn toml_syntax_error() {
    let d = ctx();
    let err = build_err(d.path(), "[[layer]\n", &[]);
    assert_at(&err, 3, &[]);
}

#[test]
fn missing_recipe_file() {
    let d = ctx();
    let err = fails(bake(d.path()).args(["build", "missing.toml"]));
    assert!(err.contains("missing.toml"), "{err}");
}

#[test]
fn usage_error_exits_2() {
    let d = ctx();
    let out = bake(d.path()).args(["build"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bake(d.path()).args(["frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_explains_itself() {
    let d = ctx();
    let out = ok(bake(d.path()).args(["build", "--help"]));
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--layout",
        "--docker-archive",
        "--var",
        "--json",
        "--source-date-epoch",
        "SOURCE_DATE_EPOCH",
    ] {
        assert!(text.contains(flag), "build --help does not mention {flag}");
    }
}

/// Runs `bake ARGS --json` in `dir`, expecting failure: stdout is one JSON
/// error object (and stderr still has the error).
fn json_err(dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = bake(dir).args(args).arg("--json").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one line of JSON: {stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(v["error"].as_str().unwrap()),
        "stderr {stderr} vs {v}"
    );
    v
}

#[test]
fn json_failures_print_a_json_error_object_on_stdout() {
    let d = ctx();
    fs_err::write(
        d.path().join("bake.toml"),
        format!("{HEADER}[[layer]]\n[[layer.step]]\ncopy = \"missing.txt\"\nto = \"/x\"\n"),
    )
    .unwrap();
    let v = json_err(d.path(), &["build", "bake.toml", "--layout", "layout"]);
    assert_eq!(v["kind"], "step", "{v}");
    assert_eq!(v["position"]["file"], "bake.toml", "{v}");
    assert_eq!(v["position"]["line"], 5, "{v}");
    assert!(v["position"]["column"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["error"].as_str().unwrap().contains("missing.txt"), "{v}");

    fs_err::write(d.path().join("bake.toml"), format!("{HEADER}bogus = 1\n")).unwrap();
    let v = json_err(d.path(), &["build", "bake.toml"]);
    assert_eq!(v["kind"], "recipe", "{v}");
    assert_eq!(v["position"]["line"], 3, "{v}");

    fs_err::write(
        d.path().join("bake.toml"),
        "base = \"oci:nowhere:latest\"\n[image]\nname = \"bad\"\n",
    )
    .unwrap();
    let v = json_err(d.path(), &["build", "bake.toml"]);
    assert_eq!(v["kind"], "base", "{v}");
    assert_eq!(v["position"]["line"], 1, "{v}");

    // Not a recipe error: no position.
    let v = json_err(d.path(), &["build", "no-such.toml"]);
    assert!(v["position"].is_null(), "{v}");
    assert!(v["error"].as_str().unwrap().contains("no-such.toml"), "{v}");

    // Other --json commands too.
    let v = json_err(d.path(), &["diff", "oci:nowhere", "oci:nowhere2"]);
    assert!(v["error"].as_str().unwrap().contains("nowhere"), "{v}");
    let v = json_err(d.path(), &["store", "verify", "nowhere"]);
    assert!(v["error"].is_string(), "{v}");
}
