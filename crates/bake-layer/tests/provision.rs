//! The provisioning side of bake-layer: Debian packages (`Source::Deb`,
//! dpkg's database), run-step changes (`Source::Changes`), applying layers
//! to a directory (`apply_layer`, whiteouts) and reading one file out of a
//! stack of layers. Hermetic: packages are assembled here, byte by byte.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bake_digest::Digest;
use bake_layer::{
    Change, Compression, EntryKind, EntrySummary, LayerError, LayerOptions, Source, apply_layer,
    read_file_from_layers, read_layer_entries, write_layer,
};
use tempfile::TempDir;

const EPOCH: u64 = 1_700_000_000;

fn tmp() -> TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn build(sources: &[Source]) -> Result<Vec<u8>, LayerError> {
    let t = tmp();
    let opts = LayerOptions {
        epoch: EPOCH,
        compression: Compression::None,
        tmp_dir: t.path().to_owned(),
        below_links: Default::default(),
    };
    let r = write_layer(sources, &opts, Vec::new()).map(|(bytes, _)| bytes);
    assert_eq!(
        std::fs::read_dir(t.path()).unwrap().count(),
        0,
        "temp files left behind"
    );
    r
}

fn entries(tar: &[u8]) -> Vec<EntrySummary> {
    read_layer_entries(tar).unwrap()
}

fn names(entries: &[EntrySummary]) -> Vec<&str> {
    entries.iter().map(|e| e.path.as_str()).collect()
}

fn find<'a>(entries: &'a [EntrySummary], path: &str) -> &'a EntrySummary {
    entries
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("no entry {path} in {:?}", names(entries)))
}

/// The content of the regular file `path` in a plain tar.
fn content(tar: &[u8], path: &str) -> String {
    let mut archive = tar::Archive::new(tar);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path_bytes().as_ref() == path.as_bytes() {
            let mut s = String::new();
            e.read_to_string(&mut s).unwrap();
            return s;
        }
    }
    panic!("no {path} in the layer");
}

// ---- building packages ----

/// One tar entry for [`tar_of`]: (name, kind, mode, uid, mtime, content or link target).
type T<'a> = (&'a str, char, u32, u64, u64, &'a str);

fn tar_of(entries: &[T<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for &(name, kind, mode, uid, mtime, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_mtime(mtime);
        match kind {
            'd' => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, name, &[][..]).unwrap();
            }
            'l' | 'h' => {
                h.set_entry_type(if kind == 'l' {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                h.set_size(0);
                b.append_link(&mut h, name, data).unwrap();
            }
            'c' => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_size(0);
                b.append_data(&mut h, name, &[][..]).unwrap();
            }
            _ => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, name, data.as_bytes()).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// Raw tar bytes with one regular entry whose name is written as is (the
/// `tar` crate refuses to write `..` names).
fn raw_tar(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.as_mut_bytes()[..name.len()].copy_from_slice(name.as_bytes());
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512) + 1024, 0);
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        let header = format!(
            "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            0,
            0,
            0,
            "100644",
            data.len()
        );
        assert_eq!(header.len(), 60);
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

const HELLO_CONTROL: &str = "Package: hello\nVersion: 1:2.10-3\nArchitecture: amd64\n\
Maintainer: Someone <someone@example.org>\nInstalled-Size: 12\nDepends: libc6 (>= 2.34)\n\
Description: example package\n greets the world\n .\n and nothing else\n";

const CONF_MD5: &str = "00112233445566778899aabbccddeeff";

fn hello_control() -> Vec<u8> {
    let md5sums = format!("{CONF_MD5}  etc/hello.conf\nffffffffffffffffffffffffffffffff  usr/bin/hello\n");
    gzip(&tar_of(&[
        ("./", 'd', 0o755, 0, 0, ""),
        ("./control", 'f', 0o644, 0, 0, HELLO_CONTROL),
        ("./md5sums", 'f', 0o644, 0, 0, &md5sums),
        ("./conffiles", 'f', 0o644, 0, 0, "/etc/hello.conf\n"),
        ("./postinst", 'f', 0o755, 0, 0, "#!/bin/sh\nrm -rf /\n"),
    ]))
}

fn hello_data() -> Vec<u8> {
    tar_of(&[
        ("./", 'd', 0o755, 0, 100, ""),
        ("./etc/", 'd', 0o755, 0, 100, ""),
        ("./etc/hello.conf", 'f', 0o644, 0, 100, "greeting = hi\n"),
        ("./usr/", 'd', 0o755, 0, 100, ""),
        ("./usr/bin/", 'd', 0o755, 0, 100, ""),
        // Packaged in the future: clamped to the epoch.
        (
            "./usr/bin/hello",
            'f',
            0o4755,
            0,
            EPOCH + 999,
            "#!/bin/sh\necho hi\n",
        ),
        ("./usr/bin/hi", 'l', 0o777, 0, 100, "hello"),
        ("./usr/bin/hello2", 'h', 0o755, 0, 100, "./usr/bin/hello"),
        ("./var/", 'd', 0o755, 0, 100, ""),
        ("./var/games/", 'd', 0o2775, 5, 100, ""),
    ])
}

fn hello_deb() -> Vec<u8> {
    ar(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar.gz", &hello_control()),
        ("data.tar.gz", &gzip(&hello_data())),
    ])
}

/// Writes `bytes` as `name` in `dir`; returns the path and its digest.
fn put(dir: &Path, name: &str, bytes: &[u8]) -> (PathBuf, Digest) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    (path, Digest::of(bytes))
}

fn deb(src: &Path, sha256: &Digest) -> Source {
    Source::Deb {
        src: src.to_owned(),
        sha256: sha256.clone(),
    }
}

fn deb_err(bytes: &[u8]) -> String {
    let t = tmp();
    let (path, digest) = put(t.path(), "bad.deb", bytes);
    build(&[deb(&path, &digest)]).unwrap_err().to_string()
}

// ---- deb ----

#[test]
fn a_deb_unpacks_its_data_and_records_itself_for_dpkg() {
    let t = tmp();
    let (path, digest) = put(t.path(), "hello.deb", &hello_deb());
    let tar = build(&[deb(&path, &digest)]).unwrap();
    let e = entries(&tar);
    assert_eq!(
        names(&e),
        [
            "etc/",
            "etc/hello.conf",
            "usr/",
            "usr/bin/",
            "usr/bin/hello",
            "usr/bin/hello2",
            "usr/bin/hi",
            "var/",
            "var/games/",
            "var/lib/",
            "var/lib/dpkg/",
            "var/lib/dpkg/info/",
            "var/lib/dpkg/info/hello.list",
            "var/lib/dpkg/info/hello.md5sums",
            "var/lib/dpkg/status",
        ]
    );
    // Owners and modes as packaged (setuid kept), mtimes clamped.
    let hello = find(&e, "usr/bin/hello");
    assert_eq!((hello.mode, hello.uid, hello.mtime), (0o4755, 0, EPOCH));
    assert_eq!(find(&e, "etc/hello.conf").mtime, 100);
    let games = find(&e, "var/games/");
    assert_eq!((games.mode, games.uid, games.gid), (0o2775, 5, 5));
    assert_eq!(find(&e, "usr/bin/hello2").kind, EntryKind::Hardlink);
    assert_eq!(find(&e, "usr/bin/hi").link_target.as_deref(), Some("hello"));
    // The maintainer script is not in the image, and nothing ran it.
    assert!(!names(&e).iter().any(|n| n.contains("postinst")));

    assert_eq!(
        content(&tar, "var/lib/dpkg/status"),
        format!(
            "Package: hello\nStatus: install ok installed\nVersion: 1:2.10-3\nArchitecture: amd64\n\
             Maintainer: Someone <someone@example.org>\nInstalled-Size: 12\nDepends: libc6 (>= 2.34)\n\
             Conffiles:\n /etc/hello.conf {CONF_MD5}\n\
             Description: example package\n greets the world\n .\n and nothing else\n\n"
        )
    );
    assert_eq!(
        content(&tar, "var/lib/dpkg/info/hello.list"),
        "/.\n/etc\n/etc/hello.conf\n/usr\n/usr/bin\n/usr/bin/hello\n/usr/bin/hi\n/usr/bin/hello2\n/var\n/var/games\n"
    );
    assert!(content(&tar, "var/lib/dpkg/info/hello.md5sums").starts_with(CONF_MD5));
    let status = find(&e, "var/lib/dpkg/status");
    assert_eq!((status.mode, status.uid, status.mtime), (0o644, 0, EPOCH));
}

#[test]
fn the_status_file_merges_below_and_is_sorted_whatever_the_step_order() {
    let t = tmp();
    let (a, da) = put(t.path(), "hello.deb", &hello_deb());
    let other = ar(&[
        ("debian-binary", b"2.0\n"),
        (
            "control.tar",
            &tar_of(&[(
                "control",
                'f',
                0o644,
                0,
                0,
                "Package: aardvark\nVersion: 1\nArchitecture: all\nMulti-Arch: same\nDescription: first\n",
            )]),
        ),
        (
            "data.tar",
            &tar_of(&[("./usr/share/aardvark", 'f', 0o644, 0, 0, "x")]),
        ),
    ]);
    let (b, db) = put(t.path(), "aardvark.deb", &other);
    let below = b"Package: zebra\nStatus: install ok installed\nArchitecture: amd64\n\n\
Package: hello\nStatus: install ok installed\nArchitecture: amd64\nVersion: 0.1\n\n"
        .to_vec();
    let status_of = |sources: &[Source]| content(&build(sources).unwrap(), "var/lib/dpkg/status");
    let one = status_of(&[
        deb(&a, &da),
        deb(&b, &db),
        Source::DpkgBelow {
            status: below.clone(),
        },
    ]);
    let two = status_of(&[Source::DpkgBelow { status: below }, deb(&b, &db), deb(&a, &da)]);
    assert_eq!(one, two);
    let packages: Vec<&str> = one.lines().filter(|l| l.starts_with("Package:")).collect();
    assert_eq!(
        packages,
        ["Package: aardvark", "Package: hello", "Package: zebra"]
    );
    assert!(
        one.contains("Version: 1:2.10-3"),
        "ours replaces the one below: {one}"
    );
    assert!(!one.contains("Version: 0.1"));
    // Multi-Arch: same packages get arch-qualified info files.
    let tar = build(&[deb(&b, &db)]).unwrap();
    assert_eq!(
        content(&tar, "var/lib/dpkg/info/aardvark:all.list"),
        "/usr/share/aardvark\n",
        "the list has the archive's entries, as dpkg writes it"
    );
    // Without a deb, the status below is not written again.
    let tar = build(&[Source::DpkgBelow {
        status: b"Package: x\n".to_vec(),
    }])
    .unwrap();
    assert!(entries(&tar).is_empty());
}

#[test]
fn a_deb_must_match_its_pinned_digest() {
    let t = tmp();
    let (path, _) = put(t.path(), "hello.deb", &hello_deb());
    let wrong = Digest::of(b"something else");
    let err = build(&[deb(&path, &wrong)]).unwrap_err();
    assert_eq!(err.source_index(), Some(0));
    assert_eq!(
        err.to_string(),
        format!(
            "sources[0]: {} has digest {}, but the recipe expects {wrong}",
            path.display(),
            Digest::of(&hello_deb())
        )
    );
}

#[test]
fn malformed_debs_are_refused_with_a_reason() {
    let control = hello_control();
    let data = gzip(&hello_data());
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not an ar archive".to_vec(), "not an ar archive (bad magic)"),
        (b"!<arch>\n".to_vec(), "the debian-binary member is missing"),
        (
            ar(&[("debian-binary", b"2.0\n")]),
            "the control.tar member is missing",
        ),
        (
            ar(&[("debian-binary", b"2.0\n"), ("control.tar.gz", &control)]),
            "the data.tar member is missing",
        ),
        (
            ar(&[("control.tar.gz", &control)]),
            "the first member is \"control.tar.gz\", not debian-binary",
        ),
        (
            ar(&[
                ("debian-binary", b"3.0\n"),
                ("control.tar.gz", &control),
                ("data.tar.gz", &data),
            ]),
            "unsupported package format \"3.0\"",
        ),
        (
            ar(&[
                ("debian-binary", b"2.0\n"),
                ("data.tar.gz", &data),
                ("control.tar.gz", &control),
            ]),
            "data.tar comes before control.tar",
        ),
        (
            ar(&[("debian-binary", b"2.0\n"), ("control.tar.bz2", &control)]),
            "unsupported compression \".bz2\"",
        ),
        (
            ar(&[("debian-binary", b"2.0\n"), ("evil", b"x")]),
            "unexpected member \"evil\"",
        ),
        (
            {
                let mut v = ar(&[
                    ("debian-binary", b"2.0\n"),
                    ("control.tar.gz", &control),
                    ("data.tar.gz", &data),
                ]);
                v.truncate(v.len() - 100);
                v
            },
            "bad.deb (data.tar.gz)",
        ),
        (
            {
                let mut v = ar(&[("debian-binary", b"2.0\n")]);
                v.extend_from_slice(b"control.tar     0           0     0     100644  12x4      `\n");
                v
            },
            "invalid size \"12x4\"",
        ),
        (
            ar(&[
                ("debian-binary", b"2.0\n"),
                (
                    "control.tar",
                    &tar_of(&[(
                        "control",
                        'f',
                        0o644,
                        0,
                        0,
                        "Package: ../../etc\nVersion: 1\nArchitecture: all\n",
                    )]),
                ),
                ("data.tar", &tar_of(&[])),
            ]),
            "invalid package name \"../../etc\"",
        ),
        (
            ar(&[
                ("debian-binary", b"2.0\n"),
                ("control.tar", &tar_of(&[("md5sums", 'f', 0o644, 0, 0, "")])),
                ("data.tar", &tar_of(&[])),
            ]),
            "the control archive has no control file",
        ),
        (
            ar(&[
                ("debian-binary", b"2.0\n"),
                ("control.tar.gz", &control),
                (
                    "data.tar",
                    &raw_tar("../../etc/passwd", b"root::0:0::/:/bin/sh\n"),
                ),
            ]),
            "'..' would leave the unpack directory",
        ),
        (
            ar(&[
                ("debian-binary", b"2.0\n"),
                ("control.tar.gz", &control),
                ("data.tar", &tar_of(&[("./dev/sda", 'c', 0o600, 0, 0, "")])),
            ]),
            "device nodes and fifos are not supported",
        ),
    ];
    for (bytes, want) in cases {
        let err = deb_err(&bytes);
        assert!(err.contains(want), "expected {want:?} in: {err}");
        assert!(err.starts_with("sources[0]: "), "{err}");
    }
}

/// A package built by dpkg-deb itself (xz or zstd data, as Debian ships)
/// unpacks to what `dpkg-deb -c` lists. Skipped where dpkg-deb is missing.
#[test]
fn a_deb_built_by_dpkg_deb_unpacks() {
    if std::process::Command::new("dpkg-deb")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("dpkg-deb is not installed: skipped");
        return;
    }
    let t = tmp();
    let pkg = t.path().join("pkg");
    std::fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(pkg.join("usr/bin")).unwrap();
    std::fs::write(
        pkg.join("DEBIAN/control"),
        "Package: tiny\nVersion: 1.0\nArchitecture: all\nMaintainer: x <x@example.org>\nDescription: tiny\n",
    )
    .unwrap();
    std::fs::write(pkg.join("usr/bin/tiny"), "#!/bin/sh\n").unwrap();
    for dir in ["", "DEBIAN", "usr", "usr/bin"] {
        std::fs::set_permissions(pkg.join(dir), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(pkg.join("usr/bin/tiny"), std::fs::Permissions::from_mode(0o755)).unwrap();
    for compression in ["xz", "zstd", "gzip", "none"] {
        let out = t.path().join(format!("tiny-{compression}.deb"));
        let st = std::process::Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Z", compression, "--build"])
            .arg(&pkg)
            .arg(&out)
            .output()
            .unwrap();
        if !st.status.success() {
            // Older dpkg-deb without zstd: not what this test is about.
            eprintln!(
                "dpkg-deb -Z {compression}: {}",
                String::from_utf8_lossy(&st.stderr)
            );
            continue;
        }
        let bytes = std::fs::read(&out).unwrap();
        let tar = build(&[deb(&out, &Digest::of(&bytes))]).unwrap();
        let e = entries(&tar);
        let tiny = find(&e, "usr/bin/tiny");
        assert_eq!((tiny.mode, tiny.uid, tiny.size), (0o755, 0, 10), "{compression}");
        assert!(
            content(&tar, "var/lib/dpkg/status").starts_with("Package: tiny\nStatus: install ok installed\n")
        );
        assert_eq!(
            content(&tar, "var/lib/dpkg/info/tiny.list"),
            "/.\n/usr\n/usr/bin\n/usr/bin/tiny\n"
        );
    }
}

// ---- Source::Changes ----

fn owner_here(dir: &Path) -> (u32, u32) {
    let m = std::fs::metadata(dir).unwrap();
    (m.uid(), m.gid())
}

#[test]
fn changes_keep_host_metadata_and_write_whiteouts_and_parents() {
    let t = tmp();
    let root = t.path().join("root");
    std::fs::create_dir_all(root.join("etc/app")).unwrap();
    std::fs::create_dir_all(root.join("srv")).unwrap();
    std::fs::set_permissions(root.join("etc/app"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::write(root.join("etc/app/new.conf"), "x\n").unwrap();
    std::fs::set_permissions(
        root.join("etc/app/new.conf"),
        std::fs::Permissions::from_mode(0o4711),
    )
    .unwrap();
    std::os::unix::fs::symlink("../etc/app/new.conf", root.join("srv/link")).unwrap();
    std::fs::write(root.join("srv/a"), "shared\n").unwrap();
    std::fs::hard_link(root.join("srv/a"), root.join("srv/b")).unwrap();
    let (uid, gid) = owner_here(&root);
    let changes = vec![
        Change::Put("/etc/app/new.conf".into()),
        Change::Whiteout("/etc/app/old.conf".into()),
        Change::Whiteout("/gone".into()),
        Change::Put("/srv/link".into()),
        Change::Put("/srv/b".into()),
        Change::Put("/srv/a".into()),
    ];
    let tar = build(&[Source::Changes {
        root: root.clone(),
        changes,
    }])
    .unwrap();
    let e = entries(&tar);
    assert_eq!(
        names(&e),
        [
            ".wh.gone",
            "etc/",
            "etc/app/",
            "etc/app/.wh.old.conf",
            "etc/app/new.conf",
            "srv/",
            "srv/a",
            "srv/b",
            "srv/link"
        ]
    );
    assert!(e.iter().all(|e| e.mtime == EPOCH), "mtimes are the epoch");
    let app = find(&e, "etc/app/");
    assert_eq!(
        (app.mode, app.uid as u32, app.gid as u32),
        (0o750, uid, gid),
        "parents keep their metadata"
    );
    assert_eq!(find(&e, "etc/app/new.conf").mode, 0o4711);
    let wh = find(&e, "etc/app/.wh.old.conf");
    assert_eq!((wh.kind, wh.size, wh.uid), (EntryKind::File, 0, 0));
    assert_eq!(find(&e, "srv/a").kind, EntryKind::File);
    assert_eq!(find(&e, "srv/b").link_target.as_deref(), Some("srv/a"));
    assert_eq!(
        find(&e, "srv/link").link_target.as_deref(),
        Some("../etc/app/new.conf")
    );
}

#[test]
fn changes_refuse_what_a_layer_cannot_hold() {
    let t = tmp();
    let root = t.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join(".wh.sneaky"), "").unwrap();
    let err = build(&[Source::Changes {
        root: root.clone(),
        changes: vec![Change::Put("/.wh.sneaky".into())],
    }])
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "sources[0]: /.wh.sneaky: names with a component starting with `.wh.` cannot be stored in an OCI layer (they mean deletions)"
    );
    if std::process::Command::new("mkfifo")
        .arg(root.join("pipe"))
        .status()
        .is_ok_and(|s| s.success())
    {
        let err = build(&[Source::Changes {
            root: root.clone(),
            changes: vec![Change::Put("/pipe".into())],
        }])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "sources[0]: /pipe: is a fifo: only regular files, directories and symlinks can be kept"
        );
    }
    let err = build(&[Source::Changes {
        root,
        changes: vec![Change::Put("/../x".into())],
    }])
    .unwrap_err();
    assert!(err.to_string().contains("'..' would leave /"), "{err}");
}

// ---- apply_layer ----

fn layer_file(dir: &Path, name: &str, tar: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, tar).unwrap();
    p
}

/// path → (kind, mode, content or target) of everything under `root`.
fn tree(root: &Path) -> BTreeMap<String, (char, u32, String)> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (char, u32, String)>) {
        let mut items: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        items.sort();
        for p in items {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                out.insert(
                    rel,
                    ('l', 0, std::fs::read_link(&p).unwrap().display().to_string()),
                );
            } else if m.is_dir() {
                out.insert(rel, ('d', m.mode() & 0o7777, String::new()));
                walk(root, &p, out);
            } else {
                out.insert(
                    rel,
                    ('f', m.mode() & 0o7777, std::fs::read_to_string(&p).unwrap()),
                );
            }
        }
    }
    walk(root, root, &mut out);
    out
}

#[test]
fn apply_honours_whiteouts_opaque_dirs_and_replacements() {
    let t = tmp();
    let root = t.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let lower = gzip(&tar_of(&[
        ("etc/", 'd', 0o755, 0, 10, ""),
        ("etc/keep", 'f', 0o600, 0, 10, "keep\n"),
        ("etc/gone", 'f', 0o644, 0, 10, "gone\n"),
        ("opt/", 'd', 0o755, 0, 10, ""),
        ("opt/old/", 'd', 0o755, 0, 10, ""),
        ("opt/old/file", 'f', 0o644, 0, 10, "old\n"),
        ("opt/other", 'f', 0o644, 0, 10, "other\n"),
        ("dir-to-file/", 'd', 0o700, 0, 10, ""),
        ("dir-to-file/child", 'f', 0o644, 0, 10, "c\n"),
        ("file-to-dir", 'f', 0o644, 0, 10, "f\n"),
        ("bin/", 'd', 0o755, 0, 10, ""),
        ("bin/tool", 'f', 0o755, 0, 10, "tool\n"),
        ("bin/tool2", 'h', 0o755, 0, 10, "bin/tool"),
        ("bin/sh", 'l', 0o777, 0, 10, "tool"),
        ("dev/", 'd', 0o755, 0, 10, ""),
        ("dev/null", 'c', 0o666, 0, 10, ""),
    ]));
    // The opaque marker comes after a new child: it still applies only to
    // the layers below, as the spec says.
    let upper = tar_of(&[
        ("etc/.wh.gone", 'f', 0o644, 0, 10, ""),
        ("etc/keep", 'f', 0o640, 0, 20, "kept and changed\n"),
        ("opt/new", 'f', 0o644, 0, 20, "new\n"),
        ("opt/.wh..wh..opq", 'f', 0o644, 0, 20, ""),
        ("dir-to-file", 'f', 0o644, 0, 20, "now a file\n"),
        ("file-to-dir/", 'd', 0o711, 0, 20, ""),
        ("file-to-dir/x", 'f', 0o644, 0, 20, "x\n"),
        ("etc/", 'd', 0o750, 0, 20, ""),
        (".wh.missing", 'f', 0o644, 0, 20, ""),
    ]);
    apply_layer(&layer_file(t.path(), "lower.tar.gz", &lower), &root).unwrap();
    apply_layer(&layer_file(t.path(), "upper.tar", &upper), &root).unwrap();
    let got = tree(&root);
    let want: BTreeMap<String, (char, u32, String)> = [
        ("bin", ('d', 0o755, "")),
        ("bin/sh", ('l', 0, "tool")),
        ("bin/tool", ('f', 0o755, "tool\n")),
        ("bin/tool2", ('f', 0o755, "tool\n")),
        ("dev", ('d', 0o755, "")),
        ("dir-to-file", ('f', 0o644, "now a file\n")),
        ("etc", ('d', 0o750, "")),
        ("etc/keep", ('f', 0o640, "kept and changed\n")),
        ("file-to-dir", ('d', 0o711, "")),
        ("file-to-dir/x", ('f', 0o644, "x\n")),
        ("opt", ('d', 0o755, "")),
        ("opt/new", ('f', 0o644, "new\n")),
    ]
    .into_iter()
    .map(|(k, (c, m, s))| (k.to_owned(), (c, m, s.to_owned())))
    .collect();
    assert_eq!(got, want);
    let tool = std::fs::metadata(root.join("bin/tool")).unwrap();
    assert_eq!(tool.nlink(), 2, "hardlink kept");
    assert_eq!(tool.mtime(), 10);
    assert_eq!(
        std::fs::metadata(root.join("etc")).unwrap().mtime(),
        20,
        "dir mtimes set last"
    );
}

#[test]
fn apply_never_writes_outside_the_root() {
    let t = tmp();
    let root = t.path().join("root");
    let outside = t.path().join("outside");
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(&outside).unwrap();
    // A symlink to the host's directory, absolute and relative, then
    // entries through it: they land inside the root.
    let evil = tar_of(&[
        ("abs", 'l', 0o777, 0, 0, outside.to_str().unwrap()),
        ("rel", 'l', 0o777, 0, 0, "../../../../../../../.."),
        ("abs/x", 'f', 0o644, 0, 0, "abs\n"),
        ("rel/tmp/y", 'f', 0o644, 0, 0, "rel\n"),
        ("abs/.wh.z", 'f', 0o644, 0, 0, ""),
    ]);
    std::fs::write(outside.join("z"), "must survive").unwrap();
    apply_layer(&layer_file(t.path(), "evil.tar", &evil), &root).unwrap();
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        1,
        "nothing written outside"
    );
    assert_eq!(
        std::fs::read_to_string(outside.join("z")).unwrap(),
        "must survive"
    );
    let inner = root.join(outside.strip_prefix("/").unwrap());
    assert_eq!(std::fs::read_to_string(inner.join("x")).unwrap(), "abs\n");
    assert_eq!(std::fs::read_to_string(root.join("tmp/y")).unwrap(), "rel\n");

    let err = apply_layer(
        &layer_file(t.path(), "dotdot.tar", &raw_tar("../escape", b"x")),
        &root,
    )
    .unwrap_err();
    assert!(err.to_string().contains("'..' would leave"), "{err}");
    assert!(!t.path().join("escape").exists());

    let loops = tar_of(&[
        ("a", 'l', 0o777, 0, 0, "b"),
        ("b", 'l', 0o777, 0, 0, "a"),
        ("a/x", 'f', 0o644, 0, 0, ""),
    ]);
    let err = apply_layer(&layer_file(t.path(), "loop.tar", &loops), &root).unwrap_err();
    assert!(err.to_string().contains("too many levels of symlinks"), "{err}");
}

#[test]
fn apply_sets_owners_when_root() {
    let t = tmp();
    let root = t.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let (uid, _) = owner_here(&root);
    let id = if uid == 0 { 1234 } else { u64::from(uid) };
    let layer = tar_of(&[("f", 'f', 0o640, id, 0, "x"), ("d/", 'd', 0o700, id, 0, "")]);
    apply_layer(&layer_file(t.path(), "l.tar", &layer), &root).unwrap();
    for p in ["f", "d"] {
        let m = std::fs::metadata(root.join(p)).unwrap();
        assert_eq!((u64::from(m.uid()), u64::from(m.gid())), (id, id), "{p}");
    }
}

#[test]
fn one_file_can_be_read_through_a_stack_of_layers() {
    let t = tmp();
    let status = "/var/lib/dpkg/status";
    let l1 = layer_file(
        t.path(),
        "1.tar",
        &tar_of(&[("var/lib/dpkg/status", 'f', 0o644, 0, 0, "one")]),
    );
    let l2 = layer_file(t.path(), "2.tar", &tar_of(&[("etc/x", 'f', 0o644, 0, 0, "")]));
    let l3 = layer_file(
        t.path(),
        "3.tar.gz",
        &gzip(&tar_of(&[("var/lib/dpkg/status", 'f', 0o644, 0, 0, "three")])),
    );
    let wh = layer_file(
        t.path(),
        "wh.tar",
        &tar_of(&[("var/lib/.wh.dpkg", 'f', 0o644, 0, 0, "")]),
    );
    let opq = layer_file(
        t.path(),
        "opq.tar",
        &tar_of(&[("var/.wh..wh..opq", 'f', 0o644, 0, 0, "")]),
    );
    let both = layer_file(
        t.path(),
        "both.tar",
        &tar_of(&[
            ("var/lib/dpkg/status", 'f', 0o644, 0, 0, "again"),
            ("var/.wh..wh..opq", 'f', 0o644, 0, 0, ""),
        ]),
    );
    let link = layer_file(
        t.path(),
        "link.tar",
        &tar_of(&[("var/lib", 'l', 0o777, 0, 0, "/elsewhere")]),
    );
    let read = |layers: &[&PathBuf]| {
        let layers: Vec<PathBuf> = layers.iter().map(|p| (*p).clone()).collect();
        read_file_from_layers(&layers, status, 1 << 20, &bake_layer::ReadLimits::DEFAULT)
            .unwrap()
            .map(|b| String::from_utf8(b).unwrap())
    };
    assert_eq!(read(&[]), None);
    assert_eq!(read(&[&l1, &l2]).as_deref(), Some("one"));
    assert_eq!(read(&[&l1, &l3, &l2]).as_deref(), Some("three"));
    assert_eq!(read(&[&l1, &wh]), None);
    assert_eq!(read(&[&l1, &opq]), None);
    assert_eq!(
        read(&[&l1, &both]).as_deref(),
        Some("again"),
        "same-layer entries survive the opaque"
    );
    assert_eq!(
        read(&[&l1, &link]),
        None,
        "an ancestor replaced by a symlink hides it"
    );
    let err = read_file_from_layers(&[l3], status, 2, &bake_layer::ReadLimits::DEFAULT).unwrap_err();
    assert!(err.to_string().contains("larger than 2 bytes"), "{err}");
}

/// A `.deb` data archive's file capabilities (GNU tar `--xattrs`, as some
/// packaging tools write them) are kept like an `unpack`'s (issue 16.5).
#[test]
fn a_debs_file_capabilities_are_kept() {
    let caps = bake_layer::FileCaps::parse("cap_net_raw+ep").unwrap().to_xattr();
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("SCHILY.xattr.security.capability", &caps[..])])
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(100);
    h.set_size(3);
    h.set_path("./usr/bin/ping").unwrap();
    h.set_cksum();
    b.append(&h, &b"elf"[..]).unwrap();
    let data = b.into_inner().unwrap();
    let control = gzip(&tar_of(&[("./control", 'f', 0o644, 0, 0, HELLO_CONTROL)]));
    let bytes = ar(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar.gz", &control),
        ("data.tar", &data),
    ]);
    let t = tmp();
    let (path, digest) = put(t.path(), "ping.deb", &bytes);
    let tar = build(&[deb(&path, &digest)]).unwrap();
    let e = entries(&tar);
    assert_eq!(
        find(&e, "usr/bin/ping").xattrs.get("security.capability"),
        Some(&caps.to_vec())
    );
    assert!(find(&e, "var/lib/dpkg/status").xattrs.is_empty());
}
