//! File capabilities end to end (issue 16.5): declared on `copy`/`file`
//! steps, kept from an `unpack`ed archive and through a `run` step (one
//! that sets them, as `setcap` does, and one that moves, links and chmods
//! files that have them), seen by `getcap` after `umoci unpack`; the same
//! digest twice; other extended attributes dropped with one warning line
//! naming the file.
//!
//! `umoci unpack` sets `security.capability` only as root, so these need
//! root, umoci and getcap (libcap2-bin); the run test also runc and the
//! busybox `.deb` (`cargo xtask test` provides all of them).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

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

/// A 206-byte static x86-64 ELF, `setcap cap_net_raw+ep FILE` in one
/// system call: `setxattr(argv[1], "security.capability", <the 20 bytes
/// setcap writes>, 20, 0)`, exiting with the errno it returns (0 on
/// success). busybox has no setcap, and the host's needs libcap.
fn setcap_net_raw_elf() -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    let name = b"security.capability\0";
    let value = [1u8, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut code = Vec::new();
    code.extend([0xb8, 188, 0, 0, 0]); //               mov  eax, 188      ; setxattr
    code.extend([0x48, 0x8b, 0x7c, 0x24, 0x10]); //     mov  rdi, [rsp+16] ; argv[1]
    code.extend([0x48, 0x8d, 0x35, 29, 0, 0, 0]); //    lea  rsi, [rip+29] ; the name, after the code
    code.extend([0x48, 0x8d, 0x15, 42, 0, 0, 0]); //    lea  rdx, [rip+42] ; the value, after the name
    code.extend([0x41, 0xba, 20, 0, 0, 0]); //          mov  r10d, 20      ; its size
    code.extend([0x45, 0x31, 0xc0]); //                 xor  r8d, r8d      ; flags 0
    code.extend([0x0f, 0x05]); //                       syscall
    code.extend([0x89, 0xc7]); //                       mov  edi, eax
    code.extend([0xf7, 0xdf]); //                       neg  edi           ; -errno, or 0
    code.extend([0xb8, 60, 0, 0, 0]); //                mov  eax, 60       ; exit
    code.extend([0x0f, 0x05]); //                       syscall
    assert_eq!(code.len(), 46);
    let total = (64 + 56 + code.len() + name.len() + value.len()) as u64;
    let mut f = Vec::new();
    f.extend(b"\x7fELF");
    f.extend([2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    f.extend(2u16.to_le_bytes()); // executable
    f.extend(0x3eu16.to_le_bytes()); // x86-64
    f.extend(1u32.to_le_bytes());
    f.extend((BASE + 120).to_le_bytes()); // entry: the code after both headers
    f.extend(64u64.to_le_bytes()); // program headers
    f.extend(0u64.to_le_bytes()); // no sections
    f.extend(0u32.to_le_bytes());
    f.extend(64u16.to_le_bytes());
    f.extend(56u16.to_le_bytes());
    f.extend(1u16.to_le_bytes());
    f.extend(64u16.to_le_bytes());
    f.extend(0u16.to_le_bytes());
    f.extend(0u16.to_le_bytes());
    f.extend(1u32.to_le_bytes()); // PT_LOAD of the whole file, R + X
    f.extend(5u32.to_le_bytes());
    f.extend(0u64.to_le_bytes());
    f.extend(BASE.to_le_bytes());
    f.extend(BASE.to_le_bytes());
    f.extend(total.to_le_bytes());
    f.extend(total.to_le_bytes());
    f.extend(0x1000u64.to_le_bytes());
    f.extend(&code);
    f.extend(name);
    f.extend(value);
    f
}

/// A tar whose regular files carry `security.capability` (and one also a
/// `user.*` attribute) as PAX records, as GNU tar `--xattrs` writes them.
fn capable_archive(caps: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    type Pax<'a> = &'a [(&'a str, &'a [u8])];
    let files: &[(&str, Pax<'_>)] = &[
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
    let deb = fetched(BUSYBOX_DEB);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs_err::copy(&deb, dir.join("busybox.deb")).unwrap();
    fs_err::write(dir.join("setcap-net-raw"), setcap_net_raw_elf()).unwrap();
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
  [[layer.step]]
  file = "/usr/local/bin/below"
  content = "#!/bin/sh\n"
  mode = 0o755

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
  copy = "setcap-net-raw"
  to = "/usr/local/sbin/setcap-net-raw"
  mode = 0o755
  [[layer.step]]
  file = "/usr/local/bin/fresh"
  content = "#!/bin/sh\n"
  mode = 0o755
  [[layer.step]]
  run = [
    # setcap in a run step, on a file of this layer and on one from below.
    "setcap-net-raw /usr/local/bin/fresh",
    # (Not on /bin/busybox, the sandbox's /bin/sh: without NET_RAW in
    # its bounding set, the kernel refuses to exec a file whose effective
    # capabilities it cannot grant.)
    "setcap-net-raw /usr/local/bin/below",
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
        "/usr/local/bin/fresh",
        "/usr/local/bin/below",
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
            // What setcap in the run step wrote.
            ("/usr/local/bin/fresh", "cap_net_raw=ep"),
            ("/usr/local/bin/below", "cap_net_raw=ep"),
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
