//! `--max-archive-size` end to end: a decompression bomb in an `unpack` or
//! `deb` step, a docker-archive base and the images `bake diff` compares
//! stop at the limit with an error naming the recipe line and the archive,
//! and a hint; a roomier limit builds the same digest as the default; a
//! malformed size is a usage error. The bombs are `testdata/hostile/`'s
//! (16 MiB of zeros each).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::*;

fn hostile(name: &str) -> PathBuf {
    repo().join("testdata/hostile").join(name)
}

/// A build area: `ctx/` (recipe, inputs, layouts), `tmp/` (TMPDIR) and
/// `home/` (HOME, so the layer cache).
struct Area {
    dir: tempfile::TempDir,
}

impl Area {
    fn new() -> Area {
        let dir = tempfile::tempdir().unwrap();
        for d in ["ctx", "tmp", "home"] {
            fs_err::create_dir(dir.path().join(d)).unwrap();
        }
        Area { dir }
    }

    fn ctx(&self) -> PathBuf {
        self.dir.path().join("ctx")
    }

    fn run(&self, args: &[&str]) -> Output {
        bake(&self.ctx())
            .env("TMPDIR", self.dir.path().join("tmp"))
            .env("HOME", self.dir.path().join("home"))
            .args(args)
            .output()
            .unwrap()
    }

    /// `bake build RECIPE --layout LAYOUT ARGS…`; the manifest digest.
    fn build(&self, recipe: &str, layout: &str, args: &[&str]) -> String {
        let mut all = vec!["build", recipe, "--layout", layout, "--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json["digest"].as_str().unwrap().to_owned()
    }

    /// Runs `args`, which must fail with exit 1, an `error:` holding every
    /// piece, the limit hint, no panic, no temp file left and no layout
    /// tagged. Returns stderr.
    fn refused(&self, args: &[&str], pieces: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        for p in pieces {
            assert!(stderr.contains(p), "{args:?}: {stderr:?} lacks {p:?}");
        }
        assert!(
            stderr.contains("hint: if the archive is trusted, raise the limit with --max-archive-size"),
            "{args:?}: {stderr}"
        );
        let left: Vec<_> = fs_err::read_dir(self.dir.path().join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "{args:?}: temp files left: {left:?}");
        stderr
    }

    fn untagged(&self, layout: &str) {
        if let Ok(index) = fs_err::read_to_string(self.ctx().join(layout).join("index.json")) {
            assert!(
                !index.contains("ref.name"),
                "a failed build tagged {layout}: {index}"
            );
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    fs_err::write(dir.join(name), text).unwrap();
}

#[test]
fn decompression_bombs_stop_at_max_archive_size_and_a_roomier_limit_changes_nothing() {
    let area = Area::new();
    let ctx = area.ctx();
    for name in ["bomb.tar.gz", "bomb.tar.zst", "bomb.tar.xz", "deb-bomb.deb"] {
        fs_err::copy(hostile(name), ctx.join(name)).unwrap();
    }
    for bomb in ["bomb.tar.gz", "bomb.tar.zst", "bomb.tar.xz"] {
        let recipe = format!("{bomb}.toml");
        write(
            &ctx,
            &recipe,
            &format!(
                "[image]\nname = \"bomb\"\n\n[[layer]]\n[[layer.step]]\nunpack = \"{bomb}\"\nto = \"/srv\"\n"
            ),
        );
        // 1M and 1MiB are the same limit; 1MB is 1000000 bytes.
        for (flag, limit) in [("1M", "1048576"), ("1MiB", "1048576"), ("1MB", "1000000")] {
            area.refused(
                &["build", &recipe, "--layout", "small", "--max-archive-size", flag],
                &[
                    &format!("{recipe}:6:1:"),
                    bomb,
                    &format!("larger than the limit of {limit} bytes uncompressed"),
                ],
            );
        }
        area.untagged("small");
    }
    let sha = bake_digest::Digest::of(&fs_err::read(hostile("deb-bomb.deb")).unwrap());
    write(
        &ctx,
        "deb.toml",
        &format!(
            "[image]\nname = \"bomb\"\n\n[[layer]]\n[[layer.step]]\ndeb = \"deb-bomb.deb\"\nsha256 = \"{}\"\n",
            sha.hex()
        ),
    );
    area.refused(
        &[
            "build",
            "deb.toml",
            "--layout",
            "small",
            "--max-archive-size",
            "1M",
            "--no-cache",
        ],
        &[
            "deb.toml:6:1:",
            "deb-bomb.deb",
            "larger than the limit of 1048576 bytes uncompressed",
        ],
    );
    area.untagged("small");

    // Every bomb at once: refused under 1 MiB, built under 32 MiB with the
    // digest the default limit gives (the limit is not part of the image).
    write(
        &ctx,
        "all.toml",
        &format!(
            "[image]\nname = \"bomb\"\n\n[[layer]]\n\
             [[layer.step]]\nunpack = \"bomb.tar.gz\"\nto = \"/gz\"\n\
             [[layer.step]]\nunpack = \"bomb.tar.zst\"\nto = \"/zst\"\n\
             [[layer.step]]\nunpack = \"bomb.tar.xz\"\nto = \"/xz\"\n\
             [[layer.step]]\ndeb = \"deb-bomb.deb\"\nsha256 = \"{}\"\n",
            sha.hex()
        ),
    );
    let roomy = area.build(
        "all.toml",
        "roomy",
        &["--max-archive-size", "32MiB", "--no-cache"],
    );
    let default = area.build("all.toml", "default", &["--no-cache"]);
    assert_eq!(roomy, default);
    // A layer already in the cache is not read again, so not re-checked.
    area.build("all.toml", "warm", &[]);
    let cached = area.build("all.toml", "cached", &["--max-archive-size", "1M"]);
    assert_eq!(cached, default);
}

#[test]
fn docker_archive_bases_and_compared_images_are_read_within_the_limit() {
    let area = Area::new();
    let ctx = area.ctx();
    fs_err::copy(hostile("bomb.tar.zst"), ctx.join("bomb.tar.zst")).unwrap();
    // An image with a 16 MiB layer (a few KiB compressed), as a docker-archive.
    write(
        &ctx,
        "big.toml",
        "[image]\nname = \"big\"\n\n[[layer]]\n[[layer.step]]\nunpack = \"bomb.tar.zst\"\nto = \"/srv\"\n",
    );
    let big = area.build("big.toml", "big", &["--docker-archive", "big.tar"]);
    write(
        &ctx,
        "on-big.toml",
        "base = \"docker-archive:big.tar\"\n\n[image]\nname = \"on-big\"\n\n\
         [[layer]]\n[[layer.step]]\nfile = \"/x\"\ncontent = \"x\"\n",
    );
    area.refused(
        &[
            "build",
            "on-big.toml",
            "--layout",
            "on-big",
            "--max-archive-size",
            "1M",
        ],
        &[
            "on-big.toml:1:",
            "docker-archive:big.tar",
            "larger than the limit of 1048576 bytes uncompressed",
        ],
    );
    area.untagged("on-big");
    area.build("on-big.toml", "on-big", &["--max-archive-size", "20M"]);

    // `bake diff` reads the layers that differ within the limit.
    fs_err::copy(hostile("bomb.tar.gz"), ctx.join("bomb.tar.gz")).unwrap();
    write(
        &ctx,
        "other.toml",
        "[image]\nname = \"other\"\n\n[[layer]]\n[[layer.step]]\nunpack = \"bomb.tar.gz\"\nto = \"/opt\"\n",
    );
    let other = area.build("other.toml", "other", &[]);
    assert_ne!(other, big);
    area.refused(
        &["diff", "big.tar", "oci:other", "--max-archive-size", "1M"],
        &["layer 1", "larger than the limit of 1048576 bytes uncompressed"],
    );
    let out = area.run(&[
        "diff",
        "big.tar",
        "oci:other",
        "--max-archive-size",
        "20M",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["identical"], false, "{report}");
}

#[test]
fn malformed_sizes_are_usage_errors() {
    let area = Area::new();
    write(&area.ctx(), "bake.toml", "[image]\nname = \"x\"\n");
    for (size, why) in [
        ("1.5G", "unknown unit \".5g\""),
        ("lots", "is not a size"),
        ("0", "more than 0"),
        ("99999999999T", "too large"),
    ] {
        for cmd in [
            vec!["build", "bake.toml", "--max-archive-size", size],
            vec!["check", "bake.toml", "--max-archive-size", size],
            vec!["diff", "a", "b", "--max-archive-size", size],
        ] {
            let out = area.run(&cmd);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd:?}: {stderr}");
            assert!(stderr.contains("--max-archive-size"), "{cmd:?}: {stderr}");
            assert!(stderr.contains(why), "{cmd:?}: {stderr}");
        }
    }
    assert!(!area.ctx().join("out").exists());
}
