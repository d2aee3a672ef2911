//! Several `bake build` processes at once, sharing one layout and one layer
//! cache: every build succeeds with the digest it has alone, no tag is
//! lost from index.json (its rewrite is locked), and both stores verify.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Stdio;

use crate::common::*;
use serde_json::Value;

/// Recipe `i`: a layer shared by all, one of its own, tag `t{i}`.
fn recipe(dir: &Path, i: usize) -> String {
    let name = format!("r{i}.toml");
    fs_err::write(
        dir.join(&name),
        format!(
            "[image]\nname = \"conc\"\ntags = [\"t{i}\", \"also-{i}\"]\n\
             [[layer]]\nname = \"shared\"\n[[layer.step]]\ncopy = \"shared\"\nto = \"/shared\"\n\
             [[layer]]\nname = \"own\"\n[[layer.step]]\nfile = \"/own\"\ncontent = \"image {i}\"\n"
        ),
    )
    .unwrap();
    name
}

#[test]
fn concurrent_builds_share_a_layout_and_a_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs_err::create_dir(dir.join("shared")).unwrap();
    for f in 0..200 {
        fs_err::write(dir.join(format!("shared/f{f}")), format!("file {f}\n").repeat(50)).unwrap();
    }
    let recipes: Vec<String> = (0..4).map(|i| recipe(dir, i)).collect();
    // Each recipe alone, in its own layout, without a cache: the truth.
    let want: Vec<Value> = recipes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let v = build_json(dir, &dir.join(r), &dir.join(format!("alone{i}")));
            v["digest"].clone()
        })
        .collect();

    for round in 0..3 {
        // Six builds at once: the four recipes, two of them twice.
        let mut children = Vec::new();
        for (i, r) in recipes.iter().chain(&recipes[..2]).enumerate() {
            let child = bake(dir)
                .args([
                    "build",
                    r,
                    "--layout",
                    "shared-layout",
                    "--cache-dir",
                    "shared-cache",
                    "--json",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            children.push((i % 4, child));
        }
        for (i, child) in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}, recipe {i}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["digest"], want[i], "round {round}, recipe {i}");
        }
        // Every tag of every build is there, on the right image.
        let index: Value =
            serde_json::from_slice(&fs_err::read(dir.join("shared-layout/index.json")).unwrap()).unwrap();
        let entries = index["manifests"].as_array().unwrap();
        assert_eq!(entries.len(), 8, "round {round}: {index}");
        for (i, digest) in want.iter().enumerate() {
            for tag in [format!("t{i}"), format!("also-{i}")] {
                let e = entries
                    .iter()
                    .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == tag.as_str())
                    .unwrap_or_else(|| panic!("round {round}: tag {tag} lost: {index}"));
                assert_eq!(&e["digest"], digest, "round {round}: tag {tag}");
            }
        }
        ok(bake(dir).args(["store", "verify", "shared-layout"]));
        ok(bake(dir).args(["store", "verify", "--cache-dir", "shared-cache"]));
    }
}

/// Builds racing to hard-link the same cached layer into one layout leave
/// no temporary link behind. (rename(2) of one hard link over another of
/// the same inode does nothing and succeeds, leaving the source name: the
/// cache must remove its `.tmp-link-*` itself.)
///
#[test]
fn racing_cache_links_leave_no_temp_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs_err::create_dir(dir.join("shared")).unwrap();
    fs_err::write(dir.join("shared/f"), "x").unwrap();
    let r = recipe(dir, 0);
    // Warm the cache, then race builds that only link from it.
    ok(bake(dir).args(["build", &r, "--layout", "warm", "--cache-dir", "cache", "--quiet"]));
    for round in 0..20 {
        let layout = format!("layout{round}");
        let children: Vec<_> = (0..6)
            .map(|_| {
                bake(dir)
                    .args([
                        "build",
                        &r,
                        "--layout",
                        &layout,
                        "--cache-dir",
                        "cache",
                        "--quiet",
                    ])
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            assert!(c.wait_with_output().unwrap().status.success());
        }
        assert_store_clean(&dir.join(&layout));
    }
}
