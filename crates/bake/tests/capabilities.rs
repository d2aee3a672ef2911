//! File capabilities end to end (issue 16.5): declared on `copy`/`file`
//! steps, kept from an `unpack`ed archive and through a `run` step, seen by
//! `getcap` after `umoci unpack`; the same digest twice; other extended
//! attributes dropped with one warning line naming the file.
//!
//! `umoci unpack` sets `security.capability` only as root, so these need
//! root, umoci and getcap (libcap2-bin); the run test also runc and the
//! busybox `.deb` (`cargo xtask test` provides all of them).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const BUSYBOX_DEB: &str = "busybox-static_1.35.0-4+deb12u1+b1_amd64.deb";
const BUSYBOX_SHA: &str = "3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744";

/// `getcap`'s view of each path under `rootfs`: the capability text, or
/// "" for none.
fn getcap(rootfs: &Path, paths: &[&str]) -> Vec<(String, String)> {
    paths
        .iter()
        .map(|p| {
            let file = rootfs.join(p.trim_start_matches('/'));
            assert!(file.symlink_metadata().is_ok(), "{p} is not in the image");
            let out = ok(Command::new("getcap").arg(&file));
            let text = String::from_utf8(out.stdout).unwrap();
            let caps = text
                .trim_end()
                .strip_prefix(file.to_str().unwrap())
                .map_or("", |rest| rest.trim())
                .to_owned();
            ((*p).to_owned(), caps)
        })
        .collect()
}

fn expect(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(p, c)| ((*p).to_owned(), (*c).to_owned()))
        .collect()
}

/// Builds `bake.toml` in `dir` into `layout` without the layer cache;
/// the manifest digest and stderr.
fn build(dir: &Path, layout: &str) -> (String, String) {
    let scratch = dir.join("scratch");
    fs_err::create_dir_all(&scratch).unwrap();
    let out = ok(bake(dir)
        .args([
            "build",
            "bake.toml",
            "--no-cache",
            "--no-log",
            "--layout",
            layout,
            "--json",
        ])
        .env("TMPDIR", &scratch));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["digest"]
            .as_str()
            .unwrap_or_else(|| panic!("no digest in {v}"))
            .to_owned(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn umoci_unpack(dir: &Path, layout: &str) -> PathBuf {
    let bundle = dir.join(format!("{layout}-bundle"));
    ok(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", dir.join(layout).display()))
        .arg(&bundle));
    bundle.join("rootfs")
}

#[test]
#[ignore = "needs root, umoci and getcap; run via cargo xtask test"]
fn declared_capabilities_reach_the_unpacked_image() {
    require("umoci");
    require("getcap");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs_err::create_dir_all(dir.join("tools/sub")).unwrap();
    fs_err::write(dir.join("tools/ping"), "#!/bin/sh\n").unwrap();
    fs_err::write(dir.join("tools/sub/server"), "#!/bin/sh\n").unwrap();
    fs_err::write(dir.join("plain"), "plain\n").unwrap();
    let recipe = r##"epoch = 1700000000
[image]
name = "caps"

[[layer]]
name = "tools"
  [[layer.step]]
  copy = "tools"
  to = "/usr/local/bin"
  mode = 0o755
  capabilities = "cap_net_raw,cap_net_bind_service+ep"
  [[layer.step]]
  copy = "plain"
  to = "/usr/local/bin/plain"
  [[layer.step]]
  file = "/usr/bin/nice"
  content = "#!/bin/sh\n"
  mode = 0o755
  capabilities = "cap_sys_nice+ip"
"##;
    fs_err::write(dir.join("bake.toml"), recipe).unwrap();
    let (first, stderr) = build(dir, "one");
    assert!(!stderr.contains("warning"), "{stderr}");
    let (second, _) = build(dir, "two");
    assert_eq!(first, second, "same recipe, same digest");

    let rootfs = umoci_unpack(dir, "one");
    assert_eq!(
        getcap(
            &rootfs,
            &[
                "/usr/local/bin/ping",
                "/usr/local/bin/sub/server",
                "/usr/local/bin/plain",
                "/usr/bin/nice"
            ]
        ),
        expect(&[
            ("/usr/local/bin/ping", "cap_net_bind_service,cap_net_raw=ep"),
            ("/usr/local/bin/sub/server", "cap_net_bind_service,cap_net_raw=ep"),
            ("/usr/local/bin/plain", ""),
            ("/usr/bin/nice", "cap_sys_nice=ip"),
        ])
    );

    // Another spelling, the same image.
    fs_err::write(
        dir.join("bake.toml"),
        recipe.replace(
            "cap_net_raw,cap_net_bind_service+ep",
            "CAP_NET_BIND_SERVICE,cap_net_raw=pe",
        ),
    )
    .unwrap();
    assert_eq!(build(dir, "three").0, first);
}

/// A tar whose regular files carry `security.capability` (and one also a
/// `user.*` attribute) as PAX records, as GNU tar `--xattrs` writes them.
fn capable_archive(caps: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let files: &[(&str, &[(&str, &[u8])])] = &[
        (
            "usr/local/bin/keep",
            &[
                ("SCHILY.xattr.security.capability", caps),
                ("SCHILY.xattr.user.note", b"hi"),
            ],
        ),
        (
            "usr/local/bin/moved",
            &[("SCHILY.xattr.security.capability", caps)],
        ),
        (
            "usr/local/bin/linked",
            &[("SCHILY.xattr.security.capability", caps)],
        ),
        (
            "usr/local/bin/chmodded",
            &[("SCHILY.xattr.security.capability", caps)],
        ),
        (
            "usr/local/bin/rewritten",
            &[("SCHILY.xattr.security.capability", caps)],
        ),
    ];
    for (name, pax) in files {
        b.append_pax_extensions(pax.iter().map(|(k, v)| (*k, *v)))
            .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(10);
        h.set_path(name).unwrap();
        h.set_cksum();
        b.append(&h, &b"#!/bin/sh\n"[..]).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
#[ignore = "needs root, runc, umoci, getcap and fetched debs; run via cargo xtask test"]
fn capabilities_survive_unpack_and_run_steps() {
    require("runc");
    require("umoci");
    require("getcap");
    let deb = repo().join("recipes/busybox/debs").join(BUSYBOX_DEB);
    assert!(
        deb.is_file(),
        "{} is missing: run `cargo xtask fetch-debs`",
        deb.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs_err::copy(&deb, dir.join("busybox.deb")).unwrap();
    // What setcap cap_net_raw+ep writes.
    let net_raw = [1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    fs_err::write(dir.join("caps.tar"), capable_archive(&net_raw)).unwrap();
    let recipe = format!(
        r##"epoch = 1700000000
[image]
name = "caps"

[[layer]]
name = "base"
  [[layer.step]]
  deb = "busybox.deb"
  sha256 = "{BUSYBOX_SHA}"
  [[layer.step]]
  symlink = "/bin/sh"
  target = "busybox"

[[layer]]
name = "caps"
  [[layer.step]]
  unpack = "caps.tar"

[[layer]]
name = "run"
  # Applied to the run root before the commands: its capabilities are set
  # there, and read back into the layer.
  [[layer.step]]
  file = "/usr/local/bin/declared"
  content = "#!/bin/sh\n"
  mode = 0o755
  capabilities = "cap_net_admin+ep"
  [[layer.step]]
  run = [
    "mv /usr/local/bin/moved /usr/local/bin/moved2",
    "ln /usr/local/bin/linked /usr/local/bin/linked2",
    "chmod 0750 /usr/local/bin/chmodded",
    # busybox cp -a copies mode, owner and times, not extended attributes.
    "cp -a /usr/local/bin/keep /usr/local/bin/copied",
    # Writing to a file clears its capabilities (the kernel's rule).
    "echo '# more' >> /usr/local/bin/rewritten",
  ]
"##
    );
    fs_err::write(dir.join("bake.toml"), recipe).unwrap();
    let (first, stderr) = build(dir, "one");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(
        warnings,
        [
            "warning: layer caps: \"/usr/local/bin/keep\": extended attribute \"user.note\" dropped (only security.capability, on regular files, is kept)"
        ],
        "{stderr}"
    );
    let (second, _) = build(dir, "two");
    assert_eq!(first, second, "same recipe, same digest");

    let rootfs = umoci_unpack(dir, "one");
    let all = [
        "/usr/local/bin/keep",
        "/usr/local/bin/moved2",
        "/usr/local/bin/linked",
        "/usr/local/bin/linked2",
        "/usr/local/bin/chmodded",
        "/usr/local/bin/declared",
        "/usr/local/bin/copied",
        "/usr/local/bin/rewritten",
    ];
    assert_eq!(
        getcap(&rootfs, &all),
        expect(&[
            // Untouched by the run step: the caps layer's.
            ("/usr/local/bin/keep", "cap_net_raw=ep"),
            // Moved, linked, chmodded in the run root: read back from it,
            // so set there when the layers below were applied.
            ("/usr/local/bin/moved2", "cap_net_raw=ep"),
            ("/usr/local/bin/linked", "cap_net_raw=ep"),
            ("/usr/local/bin/linked2", "cap_net_raw=ep"),
            ("/usr/local/bin/chmodded", "cap_net_raw=ep"),
            ("/usr/local/bin/declared", "cap_net_admin=ep"),
            ("/usr/local/bin/copied", ""),
            ("/usr/local/bin/rewritten", ""),
        ])
    );
    assert!(!rootfs.join("usr/local/bin/moved").exists());
}
