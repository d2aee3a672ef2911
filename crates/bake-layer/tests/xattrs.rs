//! File capabilities (`security.capability`) through every path a layer
//! takes: declared on `Copy`/`Inline`, kept from `Unpack` archives and a
//! run step's root (`Changes`), set on disk by `apply_layer`; every other
//! extended attribute dropped and reported (issue 16.5).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use bake_layer::{
    Change, Compression, DroppedXattrs, EntryKind, EntrySummary, FileCaps, LayerError, LayerOptions,
    LayerOutput, Owner, Source, apply_layer, read_layer_entries, write_layer,
};
use tempfile::TempDir;

const EPOCH: u64 = 1_700_000_000;
const CAPS: &str = "security.capability";

fn tmp() -> TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn build(sources: &[Source]) -> Result<(Vec<u8>, LayerOutput), LayerError> {
    let t = tmp();
    let opts = LayerOptions {
        epoch: EPOCH,
        compression: Compression::None,
        tmp_dir: t.path().to_owned(),
        below_links: Default::default(),
    };
    write_layer(sources, &opts, Vec::new())
}

fn by_path(tar: &[u8]) -> BTreeMap<String, EntrySummary> {
    read_layer_entries(tar)
        .unwrap()
        .into_iter()
        .map(|e| (e.path.clone(), e))
        .collect()
}

fn caps(text: &str) -> FileCaps {
    FileCaps::parse(text).unwrap()
}

fn xattr_of(e: &EntrySummary) -> Option<Vec<u8>> {
    e.xattrs.get(CAPS).cloned()
}

fn inline(path: &str, c: Option<FileCaps>) -> Source {
    Source::Inline {
        path: path.into(),
        content: b"#!/bin/sh\n".to_vec(),
        mode: 0o755,
        owner: Owner::default(),
        capabilities: c,
    }
}

#[test]
fn declared_capabilities_are_one_pax_record_on_regular_files_only() {
    let t = tmp();
    let tree = t.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/a"), "a").unwrap();
    std::fs::write(tree.join("b"), "b").unwrap();
    std::os::unix::fs::symlink("b", tree.join("link")).unwrap();
    let copy = |src: &Path, to: &str, c: Option<FileCaps>| Source::Copy {
        src: src.to_owned(),
        to: to.into(),
        mode: None,
        owner: Owner::default(),
        exclude: vec![],
        mtime: Default::default(),
        capabilities: c,
    };
    let net_raw = caps("cap_net_raw+ep");
    let (tar, out) = build(&[
        copy(&tree, "/opt", Some(net_raw)),
        copy(
            &tree.join("b"),
            "/usr/bin/one",
            Some(caps("cap_net_bind_service=eip")),
        ),
        inline("/usr/bin/ping", Some(caps("CAP_NET_RAW=pe"))),
        inline("/usr/bin/plain", None),
    ])
    .unwrap();
    assert!(out.dropped_xattrs.is_empty());
    let e = by_path(&tar);
    let want = net_raw.to_xattr().to_vec();
    for path in ["opt/b", "opt/sub/a", "usr/bin/ping"] {
        assert_eq!(xattr_of(&e[path]).as_ref(), Some(&want), "{path}");
        assert_eq!(e[path].xattrs.len(), 1, "{path}: nothing but the capabilities");
    }
    assert_eq!(
        xattr_of(&e["usr/bin/one"]),
        Some(caps("cap_net_bind_service+eip").to_xattr().to_vec())
    );
    for path in ["opt/", "opt/sub/", "opt/link", "usr/bin/plain", "usr/bin/"] {
        assert!(
            e[path].xattrs.is_empty() && e[path].pax.is_empty(),
            "{path}: {:?}",
            e[path]
        );
    }

    // Any spelling of the same capabilities: the same bytes.
    let again = build(&[inline("/usr/bin/ping", Some(caps("cap_net_raw=ep")))]).unwrap();
    let other = build(&[inline("/usr/bin/ping", Some(caps("cap_net_raw+p cap_net_raw+e")))]).unwrap();
    assert_eq!(again.0, other.0);
    assert_eq!(again.1.diff_id, other.1.diff_id);
    // And capabilities change the layer.
    let none = build(&[inline("/usr/bin/ping", None)]).unwrap();
    assert_ne!(none.1.diff_id, again.1.diff_id);
}

/// PAX records: (key, value).
type Pax<'a> = &'a [(&'a str, &'a [u8])];

/// A tar of (name, kind, PAX records) entries; `h` entries link to `f`.
fn archive(entries: &[(&str, char, Pax<'_>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for &(name, kind, pax) in entries {
        if !pax.is_empty() {
            b.append_pax_extensions(pax.iter().map(|(k, v)| (*k, *v)))
                .unwrap();
        }
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        h.set_size(0);
        match kind {
            'd' => h.set_entry_type(tar::EntryType::Directory),
            'l' => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_link_name("f").unwrap();
            }
            'h' => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_link_name("f").unwrap();
            }
            _ => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(2);
            }
        }
        h.set_path(name).unwrap();
        h.set_cksum();
        let data: &[u8] = if kind == 'f' { b"x\n" } else { b"" };
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn unpacked_capabilities_are_kept_normalised_and_other_xattrs_dropped_and_reported() {
    let net_raw = caps("cap_net_raw+ep");
    // Revision 3, as a rootless build writes it: namespace root uid 100000.
    let mut v3 = net_raw.to_xattr().to_vec();
    v3[3] = 3;
    v3.extend_from_slice(&100_000u32.to_le_bytes());
    let t = tmp();
    let src = t.path().join("a.tar");
    let caps_key = "SCHILY.xattr.security.capability";
    std::fs::write(
        &src,
        archive(&[
            (
                "f",
                'f',
                &[(caps_key, &v3), ("SCHILY.xattr.user.origin", b"http://x")],
            ),
            ("g", 'h', &[("SCHILY.xattr.user.ignored", b"1")]),
            ("d", 'd', &[(caps_key, &net_raw.to_xattr())]),
            (
                "l",
                'l',
                &[
                    ("SCHILY.xattr.trusted.x", b"1"),
                    ("LIBARCHIVE.xattr.user.lib", b"MQ"),
                ],
            ),
            ("plain", 'f', &[]),
        ]),
    )
    .unwrap();
    let (tar, out) = build(&[Source::Unpack {
        src: src.clone(),
        to: "/bin".into(),
    }])
    .unwrap();
    let e = by_path(&tar);
    let want = Some(net_raw.to_xattr().to_vec());
    assert_eq!(
        xattr_of(&e["bin/f"]),
        want,
        "revision 3 written back as revision 2"
    );
    assert_eq!(e["bin/f"].xattrs.len(), 1);
    assert_eq!(e["bin/g"].kind, EntryKind::Hardlink);
    assert!(e["bin/g"].xattrs.is_empty(), "the hardlink shares bin/f's inode");
    assert!(e["bin/d/"].xattrs.is_empty() && e["bin/l"].xattrs.is_empty());
    assert!(e["bin/plain"].xattrs.is_empty());
    let dropped = |path: &str, names: &[&str]| DroppedXattrs {
        path: path.into(),
        names: names.iter().map(|n| n.to_string()).collect(),
    };
    assert_eq!(
        out.dropped_xattrs,
        [
            dropped("/bin/d", &[CAPS]),
            dropped("/bin/f", &["user.origin"]),
            dropped("/bin/l", &["trusted.x", "user.lib"]),
        ]
    );
    assert_eq!(
        out.dropped_xattrs[2].to_string(),
        "\"/bin/l\": extended attributes \"trusted.x\", \"user.lib\" dropped (only security.capability, on regular files, is kept)"
    );

    // A malformed value is refused, naming the archive and the entry.
    std::fs::write(&src, archive(&[("bad", 'f', &[(caps_key, &[1, 0, 0, 2, 0])])])).unwrap();
    let err = build(&[Source::Unpack {
        src: src.clone(),
        to: "/".into(),
    }])
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("a.tar") && err.contains("\"bad\"") && err.contains("malformed security.capability"),
        "{err}"
    );
}

#[test]
fn a_run_roots_other_xattrs_are_dropped_and_reported() {
    // user.* needs no privilege: what a run step's commands could set.
    let t = tmp();
    let root = t.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/conf"), "x").unwrap();
    xattr::set(root.join("etc/conf"), "user.mime_type", b"text/plain").unwrap();
    xattr::set(root.join("etc"), "user.dir", b"1").unwrap();
    std::fs::write(root.join("etc/plain"), "y").unwrap();
    let (tar, out) = build(&[Source::Changes {
        root: root.clone(),
        changes: vec![Change::Put("/etc/conf".into()), Change::Put("/etc/plain".into())],
    }])
    .unwrap();
    let e = by_path(&tar);
    assert!(e.values().all(|e| e.xattrs.is_empty()));
    // The parent's xattr is not its change: only what changed is reported.
    assert_eq!(
        out.dropped_xattrs,
        [DroppedXattrs {
            path: "/etc/conf".into(),
            names: vec!["user.mime_type".into()]
        }]
    );
}

#[test]
#[ignore = "needs root (CAP_SETFCAP to set security.capability): cargo xtask test"]
fn capabilities_survive_apply_then_changes() {
    let net_raw = caps("cap_net_raw+ep");
    let t = tmp();
    // A lower layer with a capable file, a hardlink to it and a plain file.
    let src = t.path().join("lower.tar");
    std::fs::write(
        &src,
        archive(&[
            (
                "f",
                'f',
                &[("SCHILY.xattr.security.capability", &net_raw.to_xattr())],
            ),
            ("g", 'h', &[]),
            ("plain", 'f', &[]),
        ]),
    )
    .unwrap();
    let (lower, _) = build(&[
        Source::Unpack {
            src,
            to: "/bin".into(),
        },
        inline("/bin/declared", Some(caps("cap_sys_nice+ip"))),
    ])
    .unwrap();
    let layer = t.path().join("layer.tar");
    std::fs::write(&layer, &lower).unwrap();
    let root = t.path().join("root");
    std::fs::create_dir(&root).unwrap();
    apply_layer(&layer, &root).unwrap();
    let on_disk = |p: &str| xattr::get(root.join(p), CAPS).unwrap();
    let want = Some(net_raw.to_xattr().to_vec());
    assert_eq!(on_disk("bin/f"), want, "apply_layer sets the capabilities");
    assert_eq!(on_disk("bin/g"), want, "the hardlink shares them");
    assert_eq!(
        on_disk("bin/declared"),
        Some(caps("cap_sys_nice+ip").to_xattr().to_vec())
    );
    assert_eq!(on_disk("bin/plain"), None);

    // What a run step might do: move, link, chmod; setcap on a plain file.
    std::fs::rename(root.join("bin/f"), root.join("bin/moved")).unwrap();
    std::fs::hard_link(root.join("bin/g"), root.join("bin/linked")).unwrap();
    xattr::set(root.join("bin/plain"), CAPS, &caps("cap_chown+p").to_xattr()).unwrap();
    let (tar, out) = build(&[Source::Changes {
        root: root.clone(),
        changes: vec![
            Change::Put("/bin/declared".into()),
            Change::Put("/bin/linked".into()),
            Change::Put("/bin/moved".into()),
            Change::Put("/bin/plain".into()),
            Change::Whiteout("/bin/f".into()),
        ],
    }])
    .unwrap();
    assert!(out.dropped_xattrs.is_empty(), "{:?}", out.dropped_xattrs);
    let e = by_path(&tar);
    assert_eq!(xattr_of(&e["bin/linked"]), want);
    assert_eq!(
        e["bin/moved"].kind,
        EntryKind::Hardlink,
        "moved and linked share an inode"
    );
    assert_eq!(
        xattr_of(&e["bin/plain"]),
        Some(caps("cap_chown+p").to_xattr().to_vec())
    );
    assert_eq!(
        xattr_of(&e["bin/declared"]),
        Some(caps("cap_sys_nice+ip").to_xattr().to_vec())
    );

    // A chown clears them (the kernel's rule), and the layer says so too.
    std::os::unix::fs::lchown(root.join("bin/declared"), Some(1), Some(1)).unwrap();
    let (tar, _) = build(&[Source::Changes {
        root: root.clone(),
        changes: vec![Change::Put("/bin/declared".into())],
    }])
    .unwrap();
    assert!(by_path(&tar)["bin/declared"].xattrs.is_empty());
}
