//! `run` steps over hostile bases and a killed bake: the container runtime
//! never writes to the host through a link in the image (issue 15.2), and
//! a `kill -9` of bake does not leave the sandbox running or its scratch
//! root behind (issue 15.8).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// A build area: `ctx/` (recipe and base), `tmp/` (TMPDIR), `home/`
/// (HOME), `canary/` (a host directory links in the base point to: must
/// stay empty).
struct Area {
    dir: tempfile::TempDir,
}

impl Area {
    fn new() -> Area {
        let dir = tempfile::tempdir().unwrap();
        for d in ["ctx", "tmp", "home", "canary"] {
            fs_err::create_dir(dir.path().join(d)).unwrap();
        }
        Area { dir }
    }

    fn ctx(&self) -> PathBuf {
        self.dir.path().join("ctx")
    }

    fn canary(&self) -> PathBuf {
        self.dir.path().join("canary")
    }

    fn command(&self, recipe: &str) -> std::process::Command {
        fs_err::write(self.ctx().join("bake.toml"), recipe).unwrap();
        let mut c = bake(&self.ctx());
        c.env("TMPDIR", self.dir.path().join("tmp"))
            .env("HOME", self.dir.path().join("home"))
            .args(["build", "bake.toml", "--layout", "layout"]);
        c
    }

    fn build(&self, recipe: &str) -> std::process::Output {
        self.command(recipe).output().unwrap()
    }

    fn assert_canary_empty(&self, case: &str) {
        let left: Vec<_> = fs_err::read_dir(self.canary())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{case}: the runtime wrote to the host: {left:?}");
    }

    /// The entries of TMPDIR (bake's scratch directories).
    fn tmp_entries(&self) -> Vec<String> {
        let mut v: Vec<String> = fs_err::read_dir(self.dir.path().join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }
}

/// A layer tar of real directories `dirs` and symlinks (path, target, any
/// target allowed).
fn links_tar(dirs: &[&str], links: &[(&str, &str)]) -> Vec<u8> {
    let header = |kind: tar::EntryType, mode: u32| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(0);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    };
    let mut b = tar::Builder::new(Vec::new());
    for d in dirs {
        b.append_data(&mut header(tar::EntryType::Directory, 0o755), d, &[][..])
            .unwrap();
    }
    for (path, target) in links {
        b.append_link(&mut header(tar::EntryType::Symlink, 0o777), path, target)
            .unwrap();
    }
    b.into_inner().unwrap()
}

/// A one-layer base layout at `dir`, tagged `base`.
fn base_layout(dir: &Path, layer_bytes: &[u8]) {
    use bake_image::{Descriptor, media_type};
    let layout = bake_image::Layout::create_or_open(dir).unwrap();
    let s = layout.store();
    let layer = Descriptor::new(
        media_type::OCI_LAYER_TAR,
        s.put_bytes(layer_bytes).unwrap(),
        layer_bytes.len() as u64,
    );
    let config = bake_image::canonical_json(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer.digest.to_string()]},
    }));
    s.put_bytes(&config).unwrap();
    let config = Descriptor::of(media_type::OCI_CONFIG, &config);
    let m = bake_image::build_manifest(&config, std::slice::from_ref(&layer), &Default::default());
    s.put_bytes(&m).unwrap();
    let m = Descriptor::of(media_type::OCI_MANIFEST, &m);
    layout.set_tags(&m, &["base".into()]).unwrap();
}

fn run_recipe(extra: &str) -> String {
    format!(
        "base = \"oci:base:base\"\n[image]\nname = \"hostile\"\n\n\
         [[layer]]\n[[layer.step]]\nrun = [\"true\"]\n{extra}"
    )
}

/// More `..` than any scratch root is deep: past the host's `/`.
const UP: &str = "../../../../../../../../../../../../../../../..";

/// Bases whose `/dev`, `/proc`, `/sys`, `/tmp`, the work directory or a
/// parent of it link to a host directory (by absolute path, or by `..`s
/// past the root): the build fails naming the path, before the runtime
/// runs, and nothing appears in the host directory.
#[test]
#[ignore = "needs root and runc; run via cargo xtask test"]
fn a_run_step_never_mounts_or_creates_through_a_link_in_the_image() {
    require("runc");
    for (case, link, relative, extra) in [
        ("/dev absolute", "dev", false, ""),
        ("/dev relative", "dev", true, ""),
        ("/proc relative", "proc", true, ""),
        ("/sys absolute", "sys", false, ""),
        ("/tmp absolute", "tmp", false, ""),
        ("workdir", "w", false, "workdir = \"/w\"\n"),
        ("workdir parent", "w", true, "workdir = \"/w/sub/dir\"\n"),
    ] {
        let area = Area::new();
        let canary = area.canary();
        let target = if relative {
            format!("{UP}{}", canary.display())
        } else {
            canary.display().to_string()
        };
        base_layout(
            &area.ctx().join("base"),
            &links_tar(&["etc/"], &[(link, &target)]),
        );
        let out = area.build(&run_recipe(extra));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{case}: {stderr}");
        let want = format!("/{link} in the image is a symlink (to {target:?})");
        assert!(stderr.contains(&want), "{case}: {stderr:?} lacks {want:?}");
        assert!(!stderr.contains("panicked"), "{case}: {stderr}");
        area.assert_canary_empty(case);
        assert!(
            area.tmp_entries().is_empty(),
            "{case}: left {:?}",
            area.tmp_entries()
        );
    }
}
