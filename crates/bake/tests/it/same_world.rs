//! `run` steps see the same world on every machine (issue 16.4): whatever
//! file system the build directory is on, the sandbox's root is a tmpfs of
//! fixed options filled in a fixed order, so what a command can see of it
//! (readdir order, `statfs`, the root's mount line) is the same, and so is
//! the layer.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// A file system mounted for the test, unmounted when dropped.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount(args: &[&str], source: &Path, at: &Path) -> Mounted {
    fs_err::create_dir_all(at).unwrap();
    ok(Command::new("mount").args(args).arg(source).arg(at));
    Mounted(at.to_owned())
}

/// What the step records: the readdir order of a directory it fills and of
/// the root, what `statfs` says of `/`, and the root's mount line (its root
/// path, type, source and options; not the host's mount ids or device
/// numbers, which no one can fix).
const SCRIPT: &str = "mkdir /d && for i in $(seq 1 64); do : > /d/f$i; done && \
    find /d > /order-d && find / -maxdepth 1 > /order-root && \
    stat -f -c '%T %b %c %S' / > /statfs && \
    (grep ' / / ' /proc/self/mountinfo | cut -d' ' -f4; grep ' / / ' /proc/self/mountinfo | sed 's/.* - //') > /mount";

fn recipe(dir: &Path) {
    fs_err::create_dir_all(dir.join("debs")).unwrap();
    fs_err::copy(fetched(BUSYBOX_DEB), dir.join("debs").join(BUSYBOX_DEB)).unwrap();
    write_files(
        dir,
        &[(
            "bake.toml",
            &format!(
                "epoch = 1700000000\n[image]\nname = \"world\"\n\
                 [[layer]]\nname = \"busybox\"\n\
                 [[layer.step]]\ndeb = \"debs/{BUSYBOX_DEB}\"\nsha256 = \"{BUSYBOX_SHA}\"\n\
                 [[layer.step]]\nsymlink = \"/bin/sh\"\ntarget = \"busybox\"\n\
                 [[layer]]\nname = \"world\"\n\
                 [[layer.step]]\nrun = {SCRIPT:?}\n"
            ),
        )],
    );
}

/// Builds the recipe in `dir` with its TMPDIR (where the sandbox's root is
/// assembled) below `dir`; returns the manifest digest and the run layer.
fn build_in(dir: &Path) -> (String, PathBuf) {
    recipe(dir);
    let tmp = dir.join("tmp");
    fs_err::create_dir_all(&tmp).unwrap();
    let out = ok(bake(dir).env("TMPDIR", &tmp).args([
        "build",
        "bake.toml",
        "--layout",
        "layout",
        "--no-cache",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let layer = v["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_owned();
    (
        v["digest"].as_str().unwrap().to_owned(),
        dir.join("layout/blobs/sha256").join(layer),
    )
}

fn file_of(layer: &Path, path: &str) -> String {
    let got = bake_layer::read_file_from_layers(
        &[layer.to_owned()],
        path,
        1 << 20,
        &bake_layer::ReadLimits::DEFAULT,
    )
    .unwrap()
    .unwrap_or_else(|| panic!("{path} is not in the run layer"));
    String::from_utf8(got).unwrap()
}

#[test]
#[ignore = "needs root, runc, mkfs.ext4, loop devices and the fetched busybox .deb; run via cargo xtask test"]
fn a_run_step_gives_one_layer_whatever_the_build_directory_is_on() {
    require("runc");
    require("mkfs.ext4");
    let tmp = tempfile::tempdir().unwrap();
    // An ext4 image, loop-mounted, and a tmpfs: two kinds of build
    // directory, with different readdir orders and statfs answers.
    let image = tmp.path().join("ext4.img");
    ok(Command::new("truncate").args(["-s", "256M"]).arg(&image));
    ok(Command::new("mkfs.ext4").arg("-q").arg(&image));
    let ext4 = mount(&["-o", "loop"], &image, &tmp.path().join("ext4"));
    let tmpfs = mount(
        &["-t", "tmpfs", "-o", "size=512m"],
        Path::new("tmpfs"),
        &tmp.path().join("tmpfs"),
    );
    let (a, layer_a) = build_in(&ext4.0.join("build"));
    let (b, layer_b) = build_in(&tmpfs.0.join("build"));
    let what = |layer: &Path| {
        ["/order-d", "/order-root", "/statfs", "/mount"]
            .map(|p| format!("{p}: {}", file_of(layer, p)))
            .join("")
    };
    assert_eq!(what(&layer_a), what(&layer_b), "what the step saw differs");
    assert_eq!(a, b, "one recipe, two digests");
    // And it is the sandbox's own tmpfs that the step saw.
    let seen = what(&layer_a);
    assert!(seen.contains("/statfs: tmpfs 16777216 16777216 4096"), "{seen}");
    assert!(seen.contains("/mount: /\ntmpfs bake rw,"), "{seen}");
    // Nothing stays mounted.
    let mounts = fs_err::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(" - tmpfs bake "), "{mounts}");
    drop((ext4, tmpfs));
}
