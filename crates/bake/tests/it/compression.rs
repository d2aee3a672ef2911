//! `--compression` and `--level`: they win over the recipe's `[output]`,
//! change layer digests but not diffIDs, are checked before any work, are
//! part of the cache key and of the lock.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use crate::common::*;

const RECIPE: &str = "epoch = 1700000000\n[image]\nname = \"z\"\n\
[[layer]]\nname = \"app\"\n[[layer.step]]\ncopy = \"app\"\nto = \"/app\"\n";

fn project() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let text: String = (0..4000)
        .map(|i| format!("line {i} of a compressible file\n"))
        .collect();
    write_files(
        d.path(),
        &[("ctx/bake.toml", RECIPE), ("ctx/app/data.txt", &text)],
    );
    d
}

fn build(dir: &Path, layout: &str, extra: &[&str]) -> serde_json::Value {
    let out = ok(bake(dir)
        .args([
            "build",
            "ctx/bake.toml",
            "--layout",
            layout,
            "--json",
            "--cache-dir",
            "cache",
        ])
        .args(extra));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn layer(v: &serde_json::Value) -> &serde_json::Value {
    &v["layers"][0]
}

#[test]
fn the_flag_wins_over_the_recipe_and_keeps_the_diff_ids() {
    let d = project();
    let gzip = build(d.path(), "gzip", &[]);
    assert_eq!(
        layer(&gzip)["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );

    let zstd = build(d.path(), "zstd", &["--compression", "zstd"]);
    assert_eq!(
        layer(&zstd)["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    assert_eq!(layer(&zstd)["diffID"], layer(&gzip)["diffID"]);
    assert_ne!(layer(&zstd)["digest"], layer(&gzip)["digest"]);
    assert_eq!(
        layer(&zstd)["cached"],
        false,
        "another compression is another cache key"
    );

    let zstd19 = build(d.path(), "zstd19", &["--compression", "zstd", "--level", "19"]);
    assert_eq!(layer(&zstd19)["diffID"], layer(&gzip)["diffID"]);
    assert_ne!(layer(&zstd19)["digest"], layer(&zstd)["digest"]);

    let none = build(d.path(), "none", &["--compression", "none"]);
    assert_eq!(
        layer(&none)["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
    // Uncompressed: the blob is the tar itself.
    assert_eq!(layer(&none)["digest"], layer(&gzip)["diffID"]);

    // --level alone applies to the recipe's compression (gzip).
    let gzip1 = build(d.path(), "gzip1", &["--level", "1"]);
    assert_eq!(
        layer(&gzip1)["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_ne!(layer(&gzip1)["digest"], layer(&gzip)["digest"]);

    // The same flags again: from the cache, the same digest.
    let again = build(d.path(), "again", &["--compression", "zstd"]);
    assert_eq!(layer(&again)["cached"], true);
    assert_eq!(again["digest"], zstd["digest"]);
    // And the same as a build without the cache.
    let plain = ok(bake(d.path()).args([
        "build",
        "ctx/bake.toml",
        "--layout",
        "plain",
        "--json",
        "--no-cache",
        "--compression",
        "zstd",
    ]));
    let plain: serde_json::Value = serde_json::from_slice(&plain.stdout).unwrap();
    assert_eq!(plain["digest"], zstd["digest"]);
    assert_store_clean(&d.path().join("zstd"));
}

#[test]
fn bad_levels_are_refused_before_any_work() {
    let d = project();
    for (args, want) in [
        (
            &["--compression", "none", "--level", "3"][..],
            "--level: compression none takes no level",
        ),
        (&["--level", "12"][..], "--level 12: gzip levels are 1 to 9"),
        (
            &["--compression", "zstd", "--level", "0"][..],
            "--level 0: zstd levels are 1 to 19",
        ),
    ] {
        let err = fails(
            bake(d.path())
                .args(["build", "ctx/bake.toml", "--layout", "out"])
                .args(args),
        );
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!d.path().join("out").exists(), "{args:?}: no layout is written");
    }
    // An unknown scheme: clap's usage error, listing the choices.
    let out = bake(d.path())
        .args(["build", "ctx/bake.toml", "--compression", "brotli"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("gzip") && err.contains("zstd") && err.contains("none"),
        "{err}"
    );
}

#[test]
fn the_lock_records_the_effective_compression() {
    let d = project();
    ok(bake(d.path()).args(["lock", "ctx/bake.toml"]));
    let err = fails(bake(d.path()).args(["build", "ctx/bake.toml", "--locked", "--compression", "zstd"]));
    assert!(
        err.contains("compression changed: locked gzip-6/") && err.contains(", now zstd-3/"),
        "{err}"
    );

    ok(bake(d.path()).args(["lock", "ctx/bake.toml", "--compression", "zstd"]));
    let lock = fs_err::read_to_string(d.path().join("ctx/bake.toml.lock")).unwrap();
    assert!(lock.contains("compression = \"zstd-3/"), "{lock}");
    let v = build(d.path(), "locked", &["--locked", "--compression", "zstd"]);
    assert_eq!(
        layer(&v)["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    // Without the flag the recipe says gzip, which the lock no longer does.
    let err = fails(bake(d.path()).args(["build", "ctx/bake.toml", "--locked"]));
    assert!(
        err.contains("compression changed: locked zstd-3/") && err.contains(", now gzip-6/"),
        "{err}"
    );
}

/// A docker-archive base whose layer is an uncompressed tar (what `docker
/// save` writes; here bake's own `--compression none` archive) enters the
/// image compressed with the build's compression (issue 16.7): gzip by
/// default, zstd with `--compression zstd`, with the bytes bake gives the
/// same layer built compressed (one pinned compressor), the diffID of the
/// tar, the same digest from a warm cache, a cold one and none; the build
/// says so once per layer, and a rebuild takes it from the cache.
#[test]
fn a_docker_archive_bases_uncompressed_layers_are_compressed_once() {
    let d = tempfile::tempdir().unwrap();
    // Over 3 MiB: several compression chunks.
    let text: String = (0..100_000)
        .map(|i| format!("line {i} of a compressible file\n"))
        .collect();
    write_files(
        d.path(),
        &[
            ("ctx/bake.toml", RECIPE),
            ("ctx/app/data.txt", &text),
            (
                "ctx/on.toml",
                "base = \"docker-archive:base.tar\"\nepoch = 1700000000\n[image]\nname = \"on\"\n\
                 [[layer]]\nname = \"top\"\n[[layer.step]]\nfile = \"/etc/top\"\ncontent = \"hi\\n\"\n",
            ),
        ],
    );
    let gzip = build(d.path(), "gzip", &[]);
    let zstd = build(d.path(), "zstd", &["--compression", "zstd"]);
    let plain = build(
        d.path(),
        "plain",
        &["--compression", "none", "--docker-archive", "ctx/base.tar"],
    );
    assert_eq!(
        layer(&plain)["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );

    let on = |layout: &str, extra: &[&str]| {
        let out = ok(bake(d.path())
            .args(["build", "ctx/on.toml", "--layout", layout, "--json"])
            .args(extra));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (v, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let said = |stderr: &str| {
        stderr
            .matches("base layer 1: uncompressed in the docker archive")
            .count()
    };
    let (first, stderr) = on("on1", &["--cache-dir", "cache"]);
    let base = layer(&first);
    assert_eq!(base["fromBase"], true);
    assert_eq!(base["compressed"], true);
    assert_eq!(base["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
    assert_eq!(base["diffID"], layer(&plain)["diffID"], "the diffID is the tar's");
    assert_eq!(
        base["digest"],
        layer(&gzip)["digest"],
        "the bytes of bake's own gzip layer"
    );
    assert_eq!(base["size"], layer(&gzip)["size"]);
    assert_eq!(said(&stderr), 1, "{stderr}");
    assert!(
        stderr.contains("compressed with gzip-6/zlib-rs/chunked-1MiB to ")
            && !stderr.contains("from the cache"),
        "{stderr}"
    );

    // Warm cache: not compressed again, the same image.
    let (again, stderr) = on("on2", &["--cache-dir", "cache"]);
    assert_eq!(again["digest"], first["digest"]);
    assert_eq!(said(&stderr), 1, "{stderr}");
    assert!(stderr.contains(", from the cache"), "{stderr}");
    // No cache: compressed again, to the same bytes.
    let (cold, stderr) = on("on3", &["--no-cache"]);
    assert_eq!(cold["digest"], first["digest"]);
    assert!(
        !stderr.contains("from the cache") && said(&stderr) == 1,
        "{stderr}"
    );
    // The manifest names the compressed blob, which is in the layout and sound.
    let layout = d.path().join("on3");
    assert_store_clean(&layout);
    let manifest_digest = first["digest"].as_str().unwrap().strip_prefix("sha256:").unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs_err::read(layout.join("blobs/sha256").join(manifest_digest)).unwrap())
            .unwrap();
    assert_eq!(manifest["layers"][0]["digest"], base["digest"]);
    assert_eq!(manifest["layers"][0]["mediaType"], base["mediaType"]);

    // zstd builds compress it with zstd: bake's own zstd layer's bytes.
    let (z, stderr) = on("onz", &["--cache-dir", "cache", "--compression", "zstd"]);
    assert_eq!(
        layer(&z)["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    assert_eq!(layer(&z)["digest"], layer(&zstd)["digest"]);
    assert_eq!(layer(&z)["diffID"], layer(&plain)["diffID"]);
    assert!(stderr.contains("compressed with zstd-3/"), "{stderr}");
    // With no compression, the tar is kept as it is.
    let (none, stderr) = on("onn", &["--cache-dir", "cache", "--compression", "none"]);
    assert_eq!(layer(&none)["digest"], layer(&plain)["digest"]);
    assert_eq!(layer(&none)["compressed"], false);
    assert_eq!(said(&stderr), 0, "{stderr}");
}
