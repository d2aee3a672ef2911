//! `bake store verify` and `bake store gc` on layouts and the layer cache:
//! corrupt, missing and stray blobs are reported by digest and path with
//! exit 1; gc removes exactly what nothing reaches (signatures included in
//! what is reached), leaves recent blobs to builds in progress, removes
//! stale temp files, and refuses to guess when a manifest is unreadable.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Output;

use crate::common::*;
use serde_json::Value;

fn recipe(dir: &Path, content: &str) {
    fs_err::write(
        dir.join("bake.toml"),
        format!(
            "[image]\nname = \"s\"\ntags = [\"latest\"]\n\n[[layer]]\nname = \"fixed\"\n[[layer.step]]\nfile = \"/fixed\"\ncontent = \"same\"\n\n[[layer]]\nname = \"moving\"\n[[layer.step]]\nfile = \"/moving\"\ncontent = \"{content}\"\n"
        ),
    )
    .unwrap();
}

fn build(dir: &Path, extra: &[&str]) -> Value {
    let out = ok(bake(dir)
        .args(["build", "bake.toml", "--layout", "layout", "--json"])
        .args(extra));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn store(dir: &Path, args: &[&str]) -> Output {
    bake(dir).arg("store").args(args).output().unwrap()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn blob(dir: &Path, digest: &Value) -> std::path::PathBuf {
    let d = digest.as_str().unwrap();
    dir.join("layout/blobs/sha256")
        .join(d.strip_prefix("sha256:").unwrap())
}

#[test]
fn verify_reports_corrupt_missing_and_stray_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    recipe(dir, "one");
    let v = build(dir, &["--no-cache"]);
    let out = ok(bake(dir).args(["store", "verify", "layout"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("verified 4 blobs"), "{text}");

    // A flipped byte in a layer.
    let layer = blob(dir, &v["layers"][1]["digest"]);
    let mut bytes = fs_err::read(&layer).unwrap();
    bytes[10] ^= 1;
    fs_err::write(&layer, &bytes).unwrap();
    let out = store(dir, &["verify", "layout"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let digest = v["layers"][1]["digest"].as_str().unwrap();
    assert!(
        stdout.contains(&format!(
            "corrupt   {digest} at {}",
            Path::new("layout/blobs/sha256").join(&digest[7..]).display()
        )),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: layout has 1 corrupt, 0 missing and 0 stray blobs"),
        "{stderr}"
    );
    let j = json_of(&store(dir, &["verify", "layout", "--json"]));
    assert_eq!(j["ok"], false);
    assert_eq!(j["corrupt"][0]["digest"], digest);

    // Missing (removed) and stray (a symlink where a blob should be).
    fs_err::remove_file(&layer).unwrap();
    let config = blob(dir, &v["config"]["digest"]);
    let config_bytes = fs_err::read(&config).unwrap();
    fs_err::remove_file(&config).unwrap();
    fs_err::write(dir.join("elsewhere"), &config_bytes).unwrap();
    std::os::unix::fs::symlink(dir.join("elsewhere"), &config).unwrap();
    let j = json_of(&store(dir, &["verify", "layout", "--json"]));
    assert_eq!(j["ok"], false, "{j}");
    let missing: Vec<&str> = j["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert!(missing.contains(&digest), "{j}");
    assert!(
        missing.contains(&v["config"]["digest"].as_str().unwrap()),
        "a symlink is not the blob: {j}"
    );
    assert_eq!(j["notBlobs"][0]["reason"], "a symlink", "{j}");

    // Not a layout at all.
    let out = store(dir, &["verify", "nowhere"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not an OCI image layout"));
    // Neither or both targets: a usage error from bake, exit 1.
    assert_eq!(store(dir, &["verify"]).status.code(), Some(1));
    assert_eq!(
        store(dir, &["verify", "layout", "--cache-dir", "c"])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn gc_removes_exactly_the_unreachable_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    recipe(dir, "one");
    let a = build(dir, &["--no-cache"]);
    // Sign image A under another tag: its signature must survive; then
    // move `latest` to B, leaving A's manifest, config and moving layer
    // unreachable except through... nothing.
    ok(bake(dir)
        .env("BAKE_PASSWORD", "pw")
        .args(["keygen", "--output-prefix", "k"]));
    recipe(dir, "two");
    let b = build(dir, &["--no-cache"]);
    ok(bake(dir).env("BAKE_PASSWORD", "pw").args([
        "sign",
        "oci:layout:latest",
        "--key",
        "k.key",
        "--identity",
        "example.com/s",
    ]));
    let sig_blobs = count_blobs(dir) - 7; // A: 3 own + shared layer; B: 3 own
    assert!(sig_blobs >= 2, "signature manifest and payload");

    // Nothing is older than the default grace: nothing goes.
    let j = json_of(&store(dir, &["gc", "layout", "--json"]));
    assert_eq!(j["removed"].as_array().unwrap().len(), 0, "{j}");
    assert_eq!(j["keptRecent"], 3, "{j}");

    // Dry run with no grace: lists A's manifest, config and moving layer.
    let before = count_blobs(dir);
    let j = json_of(&store(
        dir,
        &["gc", "layout", "--grace", "0", "--dry-run", "--json"],
    ));
    let mut names: Vec<&str> = j["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    names.sort();
    let mut want = vec![
        a["digest"].as_str().unwrap(),
        a["config"]["digest"].as_str().unwrap(),
        a["layers"][1]["digest"].as_str().unwrap(),
    ];
    want.sort();
    assert_eq!(names, want);
    assert_eq!(count_blobs(dir), before, "dry run removes nothing");
    let sizes: u64 = [&a["size"], &a["config"]["size"], &a["layers"][1]["size"]]
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(j["freedBytes"], sizes);

    // For real: gone; B and its signature verify; the store is clean.
    let out = ok(bake(dir).args(["store", "gc", "layout", "--grace", "0"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 3 files"));
    assert_eq!(count_blobs(dir), before - 3);
    for d in &want {
        assert!(!blob(dir, &Value::from(*d)).exists());
    }
    assert!(
        blob(dir, &a["layers"][0]["digest"]).exists(),
        "a layer B shares is kept"
    );
    ok(bake(dir).args(["store", "verify", "layout"]));
    ok(bake(dir).args([
        "verify",
        "oci:layout:latest",
        "--key",
        "k.pub",
        "--identity",
        "example.com/s",
    ]));
    let again = build(dir, &["--no-cache"]);
    assert_eq!(again["digest"], b["digest"]);
    // A second gc finds nothing.
    let j = json_of(&store(dir, &["gc", "layout", "--grace", "0", "--json"]));
    assert_eq!(j["removed"].as_array().unwrap().len(), 0, "{j}");
}

fn count_blobs(dir: &Path) -> usize {
    fs_err::read_dir(dir.join("layout/blobs/sha256")).unwrap().count()
}

#[test]
fn gc_removes_stale_temp_files_and_refuses_unreadable_manifests() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    recipe(dir, "one");
    let v = build(dir, &["--no-cache"]);
    let blobs = dir.join("layout/blobs/sha256");
    let old = filetime::FileTime::from_unix_time(1_600_000_000, 0);
    for (name, stale) in [
        ("blobs/sha256/.tmp-old", true),
        ("blobs/sha256/.tmp-new", false),
        (".tmp-index-old", true),
    ] {
        let p = dir.join("layout").join(name);
        fs_err::write(&p, b"partial").unwrap();
        if stale {
            filetime::set_file_mtime(&p, old).unwrap();
        }
    }
    let out = ok(bake(dir).args(["store", "verify", "layout"]));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("leftover"),
        "listed, not an error"
    );
    let j = json_of(&ok(bake(dir).args(["store", "gc", "layout", "--json"])));
    assert_eq!(j["removed"].as_array().unwrap().len(), 2, "{j}");
    assert!(!blobs.join(".tmp-old").exists() && !dir.join("layout/.tmp-index-old").exists());
    assert!(
        blobs.join(".tmp-new").exists(),
        "a write in progress is left alone"
    );

    // The manifest is missing: gc cannot know what it referenced.
    fs_err::remove_file(blob(dir, &v["digest"])).unwrap();
    let before = fs_err::read_dir(&blobs).unwrap().count();
    let out = store(dir, &["gc", "layout", "--grace", "0"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("which is missing: cannot tell what it references"),
        "{stderr}"
    );
    assert_eq!(
        fs_err::read_dir(&blobs).unwrap().count(),
        before,
        "nothing removed"
    );
}

#[test]
fn cache_verify_and_gc() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    recipe(dir, "one");
    build(dir, &["--cache-dir", "cache"]);
    recipe(dir, "two");
    build(dir, &["--cache-dir", "cache"]);
    let out = ok(bake(dir).args(["store", "verify", "--cache-dir", "cache"]));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("verified 3 blobs"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Records of what layers do to dpkg's status file: one for a layer an
    // entry names (kept), one for a layer none does (removed).
    let entries: Vec<_> = fs_err::read_dir(dir.join("cache/layers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let named: Value = serde_json::from_slice(&fs_err::read(&entries[0]).unwrap()).unwrap();
    let named = named["diffID"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_owned();
    let effects = dir.join("cache/effects");
    fs_err::create_dir_all(&effects).unwrap();
    fs_err::write(effects.join(&named), "bake layer effect 1\nuntouched\n").unwrap();
    let stray = effects.join("a".repeat(64));
    fs_err::write(&stray, "bake layer effect 1\nremoved\n").unwrap();
    // Every entry is still there: gc removes only the stray record.
    let j = json_of(&ok(bake(dir).args([
        "store",
        "gc",
        "--cache-dir",
        "cache",
        "--grace",
        "0",
        "--json",
    ])));
    assert_eq!(j["removed"].as_array().unwrap().len(), 1, "{j}");
    assert_eq!(
        j["removed"][0]["name"],
        format!("cache/effects/{}", "a".repeat(64)),
        "{j}"
    );
    assert!(!stray.exists());
    assert!(effects.join(&named).exists());
    // Drop one entry: its blob goes.
    let entries: Vec<_> = fs_err::read_dir(dir.join("cache/layers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let victim: Value = serde_json::from_slice(&fs_err::read(&entries[0]).unwrap()).unwrap();
    fs_err::remove_file(&entries[0]).unwrap();
    let j = json_of(&ok(bake(dir).args([
        "store",
        "gc",
        "--cache-dir",
        "cache",
        "--grace",
        "0",
        "--json",
    ])));
    assert_eq!(j["removed"][0]["name"], victim["digest"], "{j}");
    ok(bake(dir).args(["store", "verify", "--cache-dir", "cache"]));
    // --cache is the default cache, $XDG_CACHE_HOME/bake.
    fs_err::create_dir(dir.join("xdg")).unwrap();
    fs_err::rename(dir.join("cache"), dir.join("xdg/bake")).unwrap();
    let out = ok(bake(dir)
        .args(["store", "verify", "--cache"])
        .env("XDG_CACHE_HOME", dir.join("xdg")));
    assert!(String::from_utf8_lossy(&out.stdout).contains("verified 2 blobs"));
}
