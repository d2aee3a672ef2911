//! The layer cache end to end: a cached rebuild gives the digest of a cold
//! build, `--json` says which layers came from the cache, and progress
//! lines go to stderr (none with `--quiet`).
#![allow(clippy::unwrap_used)]

use std::path::Path;

use crate::common::*;

const RECIPE: &str = "epoch = 1700000000\n[image]\nname = \"c\"\n\
[[layer]]\nname = \"app\"\n[[layer.step]]\ncopy = \"app\"\nto = \"/app\"\n\
[[layer]]\nname = \"conf\"\n[[layer.step]]\nfile = \"/etc/c.conf\"\ncontent = \"x\"\n";

fn project() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write_files(
        d.path(),
        &[
            ("ctx/bake.toml", RECIPE),
            ("ctx/app/bin/run", "#!/bin/sh\necho hi\n"),
            ("ctx/app/data.txt", "data\n"),
        ],
    );
    // Inputs modified in the clock tick the build starts in are (rightly)
    // re-read next time; old mtimes keep the counts below exact.
    let old = filetime::FileTime::from_unix_time(1_500_000_000, 0);
    for f in ["ctx/app/bin/run", "ctx/app/data.txt"] {
        filetime::set_file_mtime(d.path().join(f), old).unwrap();
    }
    d
}

fn build(dir: &Path, layout: &str, extra: &[&str]) -> (serde_json::Value, String) {
    let out = ok(bake(dir)
        .args(["build", "ctx/bake.toml", "--layout", layout, "--json"])
        .args(extra));
    (
        serde_json::from_slice(&out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn cached(v: &serde_json::Value) -> Vec<bool> {
    v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["cached"].as_bool().unwrap())
        .collect()
}

#[test]
fn a_cached_rebuild_gives_the_cold_digest() {
    let d = project();
    let (cold, stderr) = build(d.path(), "cold", &["--cache-dir", "cache"]);
    assert_eq!(cached(&cold), [false, false]);
    assert!(stderr.contains("layer app: built "), "{stderr}");
    assert!(stderr.contains("layer conf: built "), "{stderr}");

    let (warm, stderr) = build(d.path(), "warm", &["--cache-dir", "cache"]);
    assert_eq!(warm["digest"], cold["digest"]);
    assert_eq!(cached(&warm), [true, true]);
    assert_eq!(warm["cache"]["filesHashed"], 0, "{warm}");
    assert_eq!(warm["cache"]["layersCached"], 2);
    assert!(stderr.contains("layer app: cached"), "{stderr}");

    let (none, _) = build(d.path(), "none", &["--no-cache"]);
    assert_eq!(none["digest"], cold["digest"]);
    assert_eq!(cached(&none), [false, false]);
    assert!(none["cache"].is_null());
    assert!(!d.path().join(".cache").exists(), "--no-cache writes no cache");

    // Every blob in the layout built from the cache is sound.
    assert_store_clean(&d.path().join("warm"));

    // --quiet: nothing on stderr.
    let out = ok(bake(d.path()).args([
        "build",
        "ctx/bake.toml",
        "--layout",
        "q",
        "--cache-dir",
        "cache",
        "-q",
    ]));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty());
}

#[test]
fn the_default_cache_is_under_xdg_cache_home_or_home() {
    let d = project();
    let xdg = d.path().join("xdg");
    let out = ok(bake(d.path())
        .args(["build", "ctx/bake.toml", "--layout", "l", "--json"])
        .env("XDG_CACHE_HOME", &xdg));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(xdg.join("bake/layers").is_dir());
    assert!(!d.path().join(".cache").exists());

    // Without XDG_CACHE_HOME: $HOME/.cache/bake (the tests' HOME is the cwd).
    let (again, _) = build(d.path(), "l2", &[]);
    assert!(d.path().join(".cache/bake/layers").is_dir());
    assert_eq!(again["digest"], v["digest"]);
}

#[test]
fn cache_flags_are_documented() {
    let d = tempfile::tempdir().unwrap();
    let help = String::from_utf8(ok(bake(d.path()).args(["build", "--help"])).stdout).unwrap();
    assert!(help.contains("--cache-dir <DIR>"), "{help}");
    assert!(help.contains("--no-cache"), "{help}");
    let err = bake(d.path())
        .args(["build", "x.toml", "--no-cache", "--cache-dir", "c"])
        .output()
        .unwrap();
    assert_eq!(err.status.code(), Some(2));
}

/// Layers of several compression chunks, gzip and zstd, read back by
/// independent tools: `gzip`/`zstd` test and decompress the blobs to the
/// exact tar, `skopeo` inspects the layouts, `umoci unpack` (gzip) gives
/// the exact bytes.
#[test]
#[ignore = "needs umoci, skopeo, gzip and zstd; run via cargo xtask test"]
fn multi_chunk_layers_are_read_by_external_tools() {
    for tool in ["umoci", "skopeo", "gzip", "zstd"] {
        require(tool);
    }
    let d = tempfile::tempdir().unwrap();
    // ~3.5 MiB: four chunks, compressible with matches across chunk edges.
    let mut big = Vec::new();
    let mut x: u32 = 7;
    while big.len() < 7 << 19 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        big.extend_from_slice(format!("line {} of the big file\n", x % 1000).as_bytes());
    }
    fs_err::create_dir_all(d.path().join("ctx")).unwrap();
    fs_err::write(d.path().join("ctx/big.txt"), &big).unwrap();
    for (compression, tester) in [("gzip", "gzip"), ("zstd", "zstd")] {
        let recipe = format!(
            "[image]\nname = \"big\"\n[output]\ncompression = \"{compression}\"\n\
             [[layer]]\n[[layer.step]]\ncopy = \"big.txt\"\nto = \"/big.txt\"\n"
        );
        fs_err::write(d.path().join("ctx/bake.toml"), recipe).unwrap();
        let layout = format!("layout-{compression}");
        let (v, _) = build(d.path(), &layout, &["--no-cache"]);
        let layer = &v["layers"][0];
        let hex = layer["digest"].as_str().unwrap().strip_prefix("sha256:").unwrap();
        let blob = d.path().join(&layout).join("blobs/sha256").join(hex);
        ok(std::process::Command::new(tester).arg("-t").arg(&blob));
        ok(std::process::Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:latest", d.path().join(&layout).display())));
        // The tar inside, through the tool's own decompressor.
        let tar = ok(std::process::Command::new(tester).arg("-dc").arg(&blob)).stdout;
        let unpacked = d.path().join(format!("unpacked-{compression}"));
        fs_err::create_dir_all(&unpacked).unwrap();
        fs_err::write(d.path().join("layer.tar"), &tar).unwrap();
        ok(std::process::Command::new("tar")
            .arg("-xf")
            .arg(d.path().join("layer.tar"))
            .arg("-C")
            .arg(&unpacked));
        assert!(
            fs_err::read(unpacked.join("big.txt")).unwrap() == big,
            "{compression}: {tester} -dc gave other bytes"
        );
        if compression == "gzip" {
            // umoci 0.4 reads gzip layers only.
            let bundle = d.path().join("bundle");
            ok(std::process::Command::new("umoci")
                .args(["unpack", "--image"])
                .arg(format!("{}:latest", d.path().join(&layout).display()))
                .arg(&bundle));
            assert!(
                fs_err::read(bundle.join("rootfs/big.txt")).unwrap() == big,
                "umoci unpacked other bytes"
            );
        }
    }
}
