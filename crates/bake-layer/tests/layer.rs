//! Behaviour of `write_layer` and `read_layer_entries` that users rely on:
//! determinism, normalisation, hardlinks, long names, unpack, errors, and the
//! pinned golden digests.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bake_digest::Digest;
use bake_layer::{
    Compression, Context, CopyMtime, EntryKind, EntrySummary, LayerError, LayerOptions, LayerOutput, Owner,
    Source, read_layer_entries, write_layer,
};
use filetime::FileTime;
use tempfile::TempDir;

const EPOCH: u64 = 1_700_000_000;

fn tmp() -> TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn opts(tmp_dir: &Path, compression: Compression) -> LayerOptions {
    LayerOptions {
        epoch: EPOCH,
        compression,
        tmp_dir: tmp_dir.to_owned(),
        below_links: Default::default(),
    }
}

fn build_with(sources: &[Source], compression: Compression) -> Result<(Vec<u8>, LayerOutput), LayerError> {
    let t = tmp();
    let r = write_layer(sources, &opts(t.path(), compression), Vec::new());
    // Unpack's temp files are gone once write_layer returns.
    assert_eq!(
        fs::read_dir(t.path()).unwrap().count(),
        0,
        "temp files left behind"
    );
    r
}

fn build(sources: &[Source]) -> Vec<u8> {
    build_with(sources, Compression::None).unwrap().0
}

fn entries(sources: &[Source]) -> Vec<EntrySummary> {
    read_layer_entries(&build(sources)[..]).unwrap()
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

fn copy(src: &Path, to: &str) -> Source {
    Source::Copy {
        src: src.to_owned(),
        to: to.into(),
        mode: None,
        owner: Owner::default(),
        exclude: vec![],
        mtime: CopyMtime::Epoch,
        capabilities: None,
    }
}

fn inline(path: &str, content: &[u8]) -> Source {
    Source::Inline {
        path: path.into(),
        content: content.to_vec(),
        mode: 0o644,
        owner: Owner::default(),
        capabilities: None,
    }
}

fn dir(path: &str, mode: u32, uid: u32) -> Source {
    Source::Dir {
        path: path.into(),
        mode,
        owner: Owner { uid, gid: uid },
    }
}

fn symlink(path: &str, target: &str) -> Source {
    Source::Symlink {
        path: path.into(),
        target: target.into(),
        owner: Owner::default(),
    }
}

fn write(path: &Path, content: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn octal(field: &[u8]) -> u64 {
    let s = std::str::from_utf8(field).unwrap().trim_end_matches('\0').trim();
    u64::from_str_radix(s, 8).unwrap()
}

/// Every header block of a plain tar (PAX headers included), checking the
/// stream ends with exactly two zero blocks.
fn raw_headers(tar: &[u8]) -> Vec<[u8; 512]> {
    assert_eq!(tar.len() % 512, 0);
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let h: [u8; 512] = tar[pos..pos + 512].try_into().unwrap();
        if h.iter().all(|&b| b == 0) {
            assert_eq!(tar.len(), pos + 1024, "two zero blocks end the archive");
            assert!(tar[pos..].iter().all(|&b| b == 0));
            return out;
        }
        let size = octal(&h[124..136]) as usize;
        out.push(h);
        pos += 512 + size.div_ceil(512) * 512;
    }
}

// ---------------------------------------------------------------- determinism

/// Builds the same logical tree in `root`, creating things in `forward` or
/// reverse order, with permissions as a umask of 077 or 002 would leave them
/// and the given host mtime.
fn make_tree(root: &Path, forward: bool, strict_umask: bool, mtime: i64) {
    let (fmode_x, fmode, dmode) = if strict_umask {
        (0o700, 0o600, 0o700)
    } else {
        (0o775, 0o664, 0o775)
    };
    let mut steps: Vec<Box<dyn Fn()>> = vec![
        Box::new(move || write(&root.join("bin/tool"), b"#!/bin/sh\necho hi\n", fmode_x)),
        Box::new(move || write(&root.join("etc/conf"), b"key = value\n", fmode)),
        Box::new(move || write(&root.join("etc/empty"), b"", fmode)),
        Box::new(move || write(&root.join("share/doc/readme"), &[b'r'; 3000], fmode)),
        Box::new(move || fs::create_dir_all(root.join("var/empty")).unwrap()),
        Box::new(move || {
            fs::create_dir_all(root.join("bin")).unwrap();
            std::os::unix::fs::symlink("tool", root.join("bin/link")).unwrap();
        }),
    ];
    if !forward {
        steps.reverse();
    }
    for s in steps {
        s();
    }
    for d in ["", "bin", "etc", "share", "share/doc", "var", "var/empty"] {
        fs::set_permissions(root.join(d), fs::Permissions::from_mode(dmode)).unwrap();
    }
    for p in [
        "bin/tool",
        "etc/conf",
        "etc/empty",
        "share/doc/readme",
        "var/empty",
        "bin",
        "etc",
        "",
    ] {
        let t = FileTime::from_unix_time(mtime, 0);
        filetime::set_file_times(root.join(p), t, t).unwrap();
    }
    filetime::set_symlink_file_times(
        root.join("bin/link"),
        FileTime::from_unix_time(mtime, 0),
        FileTime::zero(),
    )
    .unwrap();
}

#[test]
fn same_tree_built_differently_gives_identical_bytes() {
    let a = tmp();
    let b = tmp();
    make_tree(a.path(), true, true, 1_000);
    make_tree(b.path(), false, false, 2_000_000_000);
    for c in [
        Compression::None,
        Compression::Gzip { level: 6 },
        Compression::Zstd { level: 3 },
    ] {
        let (la, oa) = build_with(&[copy(a.path(), "/app")], c).unwrap();
        let (lb, ob) = build_with(&[copy(b.path(), "/app")], c).unwrap();
        assert_eq!(oa, ob, "{c:?}");
        assert!(la == lb, "{c:?}: layers differ");
    }

    let e = entries(&[copy(a.path(), "/app")]);
    assert_eq!(
        names(&e),
        [
            "app/",
            "app/bin/",
            "app/bin/link",
            "app/bin/tool",
            "app/etc/",
            "app/etc/conf",
            "app/etc/empty",
            "app/share/",
            "app/share/doc/",
            "app/share/doc/readme",
            "app/var/",
            "app/var/empty/",
        ]
    );
    let modes: Vec<u32> = e.iter().map(|e| e.mode).collect();
    assert_eq!(
        modes,
        [
            0o755, 0o755, 0o777, 0o755, 0o755, 0o644, 0o644, 0o755, 0o755, 0o644, 0o755, 0o755
        ]
    );
    assert!(e.iter().all(|e| e.mtime == EPOCH && e.uid == 0 && e.gid == 0));
    let empty = find(&e, "app/etc/empty");
    assert_eq!((empty.kind, empty.size), (EntryKind::File, 0));
    assert_eq!(empty.sha256, Some(Digest::of(b"")));
    assert_eq!(find(&e, "app/var/empty/").kind, EntryKind::Dir);
    let link = find(&e, "app/bin/link");
    assert_eq!(
        (link.kind, link.link_target.as_deref()),
        (EntryKind::Symlink, Some("tool"))
    );
    assert_eq!(
        find(&e, "app/share/doc/readme").sha256,
        Some(Digest::of(&[b'r'; 3000]))
    );
}

#[test]
fn headers_are_normalised() {
    let ctx = tmp();
    make_tree(ctx.path(), true, false, 42);
    let sources = [
        copy(ctx.path(), "/app"),
        Source::Inline {
            path: "/etc/motd".into(),
            content: b"hello\n".to_vec(),
            mode: 0o600,
            owner: Owner { uid: 7, gid: 8 },
            capabilities: None,
        },
    ];
    let tar = build(&sources);
    let headers = raw_headers(&tar);
    assert_eq!(headers.len(), 14);
    let mut prev: Vec<u8> = Vec::new();
    for h in &headers {
        let name: Vec<u8> = h[..100].iter().copied().take_while(|&b| b != 0).collect();
        let shown = String::from_utf8_lossy(&name).into_owned();
        assert!(!name.starts_with(b"/") && !name.starts_with(b"./"), "{shown}");
        assert_eq!(
            name.ends_with(b"/"),
            h[156] == b'5',
            "{shown}: dirs and only dirs end with /"
        );
        assert!(
            prev < name,
            "{shown} is not after {}",
            String::from_utf8_lossy(&prev)
        );
        assert_eq!(&h[257..265], b"ustar\x0000", "{shown}");
        assert_eq!(octal(&h[136..148]), EPOCH, "{shown}: mtime");
        assert!(h[265..329].iter().all(|&b| b == 0), "{shown}: uname/gname");
        assert_eq!(&h[329..345], b"0000000\x000000000\0", "{shown}: device numbers");
        assert!(h[345..500].iter().all(|&b| b == 0), "{shown}: no prefix needed");
        assert_ne!(h[156], b'x', "{shown}: no PAX header needed");
        prev = name;
    }
    let motd = headers.iter().find(|h| h.starts_with(b"etc/motd\0")).unwrap();
    assert_eq!(&motd[100..124], b"0000600\x000000007\x000000010\0");
    assert_eq!(octal(&motd[124..136]), 6);
    // Implicit parents: 0o755, 0:0, even next to an owned file.
    let etc = headers.iter().find(|h| h.starts_with(b"etc/\0")).unwrap();
    assert_eq!(&etc[100..124], b"0000755\x000000000\x000000000\0");
}

#[test]
fn output_reports_diff_id_and_size_of_the_uncompressed_tar() {
    let sources = [inline("/a", b"x"), dir("/d", 0o700, 1)];
    let (plain, out) = build_with(&sources, Compression::None).unwrap();
    assert_eq!(out.diff_id, Digest::of(&plain));
    assert_eq!(out.uncompressed_size, plain.len() as u64);
    assert_eq!(out.entries, 2);
    let (gz, gz_out) = build_with(&sources, Compression::Gzip { level: 9 }).unwrap();
    let (zst, zst_out) = build_with(&sources, Compression::Zstd { level: 19 }).unwrap();
    assert_eq!(gz_out, out);
    assert_eq!(zst_out, out);
    let mut back = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, plain);
    assert_eq!(zstd::decode_all(&zst[..]).unwrap(), plain);
}

// ---------------------------------------------------------------- copy

#[test]
fn modes_do_not_leak_from_the_host() {
    let ctx = tmp();
    let root = ctx.path();
    write(&root.join("suid"), b"s", 0o4711);
    write(&root.join("owner-x"), b"x", 0o100);
    write(&root.join("private"), b"p", 0o600);
    write(&root.join("sub/f"), b"f", 0o666);
    fs::set_permissions(root.join("sub"), fs::Permissions::from_mode(0o1777)).unwrap();
    std::os::unix::fs::symlink("private", root.join("ln")).unwrap();

    let e = entries(&[copy(root, "/")]);
    let modes: Vec<(&str, u32)> = e.iter().map(|e| (e.path.as_str(), e.mode)).collect();
    assert_eq!(
        modes,
        [
            ("ln", 0o777),
            ("owner-x", 0o755),
            ("private", 0o644),
            ("sub/", 0o755),
            ("sub/f", 0o644),
            ("suid", 0o755),
        ]
    );

    let explicit = Source::Copy {
        src: root.to_owned(),
        to: "/opt".into(),
        mode: Some(0o4750),
        owner: Owner { uid: 1000, gid: 100 },
        exclude: vec![],
        mtime: CopyMtime::Epoch,
        capabilities: None,
    };
    let e = entries(&[explicit]);
    let got: Vec<(&str, u32, u64, u64)> = e
        .iter()
        .map(|e| (e.path.as_str(), e.mode, e.uid, e.gid))
        .collect();
    assert_eq!(
        got,
        [
            ("opt/", 0o755, 1000, 100),
            ("opt/ln", 0o777, 1000, 100),
            ("opt/owner-x", 0o4750, 1000, 100),
            ("opt/private", 0o4750, 1000, 100),
            ("opt/sub/", 0o755, 1000, 100),
            ("opt/sub/f", 0o4750, 1000, 100),
            ("opt/suid", 0o4750, 1000, 100),
        ]
    );
}

#[test]
fn a_single_file_lands_exactly_at_to() {
    let ctx = tmp();
    write(&ctx.path().join("bin/hello"), b"ELF", 0o755);
    let src = Source::Copy {
        src: ctx.path().join("bin/hello"),
        to: "/usr/local/bin/hello".into(),
        mode: None,
        owner: Owner { uid: 5, gid: 6 },
        exclude: vec![],
        mtime: CopyMtime::Epoch,
        capabilities: None,
    };
    let e = entries(&[src]);
    assert_eq!(
        names(&e),
        ["usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/hello"]
    );
    let f = &e[3];
    assert_eq!(
        (f.kind, f.mode, f.uid, f.gid, f.size),
        (EntryKind::File, 0o755, 5, 6, 3)
    );
    assert!(e[..3].iter().all(|d| d.mode == 0o755 && d.uid == 0 && d.gid == 0));
}

#[test]
fn copy_mtime_source_keeps_host_mtimes_clamped_or_not() {
    let ctx = tmp();
    let root = ctx.path().join("tree");
    write(&root.join("old"), b"-", 0o644);
    write(&root.join("new"), b"-", 0o644);
    let old = (EPOCH - 1000) as i64;
    let new = (EPOCH + 1000) as i64;
    filetime::set_file_mtime(root.join("old"), FileTime::from_unix_time(old, 0)).unwrap();
    filetime::set_file_mtime(root.join("new"), FileTime::from_unix_time(new, 0)).unwrap();
    filetime::set_file_mtime(&root, FileTime::from_unix_time(new, 0)).unwrap();
    let mtimes = |mtime: CopyMtime| {
        let src = Source::Copy {
            src: root.clone(),
            to: "/t".into(),
            mode: None,
            owner: Owner::default(),
            exclude: vec![],
            mtime,
            capabilities: None,
        };
        let e = entries(&[src]);
        ["t/", "t/new", "t/old"].map(|p| find(&e, p).mtime)
    };
    assert_eq!(mtimes(CopyMtime::Epoch), [EPOCH; 3]);
    assert_eq!(mtimes(CopyMtime::Source), [EPOCH, EPOCH, old as u64]);
    assert_eq!(
        mtimes(CopyMtime::SourceUnclamped),
        [new as u64, new as u64, old as u64]
    );
}

#[test]
fn exclude_globs_match_relative_paths() {
    let ctx = tmp();
    let root = ctx.path();
    for p in [
        "a.tmp",
        "keep.txt",
        "sub/b.tmp",
        "sub/c.txt",
        "target/x/y",
        "logs/today",
        "deep/logs/z",
    ] {
        write(&root.join(p), b"-", 0o644);
    }
    let src = Source::Copy {
        src: root.to_owned(),
        to: "/".into(),
        mode: None,
        owner: Owner::default(),
        exclude: vec!["*.tmp".into(), "target/**".into(), "logs".into()],
        mtime: CopyMtime::Epoch,
        capabilities: None,
    };
    assert_eq!(
        names(&entries(&[src])),
        [
            "deep/",
            "deep/logs/",
            "deep/logs/z",
            "keep.txt",
            "sub/",
            "sub/b.tmp",
            "sub/c.txt",
            "target/"
        ]
    );

    let bad = Source::Copy {
        src: root.to_owned(),
        to: "/".into(),
        mode: None,
        owner: Owner::default(),
        exclude: vec!["a[".into()],
        mtime: CopyMtime::Epoch,
        capabilities: None,
    };
    let err = build_with(&[inline("/x", b""), bad], Compression::None).unwrap_err();
    assert!(matches!(err, LayerError::Exclude { index: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("\"a[\""), "{err}");
}

#[test]
fn hardlinks_become_one_file_and_links_to_it() {
    let ctx = tmp();
    let root = ctx.path();
    write(&root.join("z"), b"shared", 0o644);
    fs::hard_link(root.join("z"), root.join("a")).unwrap();
    fs::create_dir(root.join("d")).unwrap();
    fs::hard_link(root.join("z"), root.join("d/m")).unwrap();
    write(&root.join("solo"), b"solo", 0o644);

    let e = entries(&[copy(root, "/h")]);
    let got: Vec<(&str, EntryKind, Option<&str>, u64)> = e
        .iter()
        .map(|e| (e.path.as_str(), e.kind, e.link_target.as_deref(), e.size))
        .collect();
    assert_eq!(
        got,
        [
            ("h/", EntryKind::Dir, None, 0),
            ("h/a", EntryKind::File, None, 6),
            ("h/d/", EntryKind::Dir, None, 0),
            ("h/d/m", EntryKind::Hardlink, Some("h/a"), 0),
            ("h/solo", EntryKind::File, None, 4),
            ("h/z", EntryKind::Hardlink, Some("h/a"), 0),
        ]
    );

    // A later step replacing the group's first member: the next one holds the content.
    let e = entries(&[copy(root, "/h"), inline("/h/a", b"new")]);
    let got: Vec<(&str, EntryKind, Option<&str>, u64)> = e
        .iter()
        .map(|e| (e.path.as_str(), e.kind, e.link_target.as_deref(), e.size))
        .collect();
    assert_eq!(
        got,
        [
            ("h/", EntryKind::Dir, None, 0),
            ("h/a", EntryKind::File, None, 3),
            ("h/d/", EntryKind::Dir, None, 0),
            ("h/d/m", EntryKind::File, None, 6),
            ("h/solo", EntryKind::File, None, 4),
            ("h/z", EntryKind::Hardlink, Some("h/d/m"), 0),
        ]
    );
    assert_eq!(find(&e, "h/d/m").sha256, Some(Digest::of(b"shared")));

    // The tar crate extracts it: the link has the content.
    let out = tmp();
    tar::Archive::new(&build(&[copy(root, "/h")])[..])
        .unpack(out.path())
        .unwrap();
    assert_eq!(fs::read(out.path().join("h/z")).unwrap(), b"shared");
}

#[test]
fn symlinks_are_kept_not_followed() {
    let ctx = tmp();
    let root = ctx.path();
    std::os::unix::fs::symlink("/etc/passwd", root.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../outside", root.join("up")).unwrap();
    std::os::unix::fs::symlink("nowhere", root.join("dangling")).unwrap();
    fs::create_dir(root.join("realdir")).unwrap();
    write(&root.join("realdir/f"), b"f", 0o644);
    std::os::unix::fs::symlink("realdir", root.join("dirlink")).unwrap();

    let e = entries(&[copy(root, "/")]);
    let got: Vec<(&str, EntryKind, Option<&str>)> = e
        .iter()
        .map(|e| (e.path.as_str(), e.kind, e.link_target.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("abs", EntryKind::Symlink, Some("/etc/passwd")),
            ("dangling", EntryKind::Symlink, Some("nowhere")),
            ("dirlink", EntryKind::Symlink, Some("realdir")),
            ("realdir/", EntryKind::Dir, None),
            ("realdir/f", EntryKind::File, None),
            ("up", EntryKind::Symlink, Some("../../outside")),
        ]
    );
}

#[test]
fn special_files_in_the_context_are_refused() {
    let ctx = tmp();
    let sock = ctx.path().join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let err = build_with(&[inline("/x", b""), copy(ctx.path(), "/")], Compression::None).unwrap_err();
    match &err {
        LayerError::UnsupportedFile {
            index: 1,
            path,
            kind: "socket",
        } => assert_eq!(path, &sock),
        other => panic!("{other:?}"),
    }
    assert_eq!(err.source_index(), Some(1));
    assert!(err.to_string().contains("sock is a socket"), "{err}");
}

#[test]
fn non_utf8_host_names_are_refused() {
    use std::os::unix::ffi::OsStrExt;
    let ctx = tmp();
    let bad = ctx.path().join(std::ffi::OsStr::from_bytes(b"bad\xff"));
    write(&bad, b"", 0o644);
    let err = build_with(&[copy(ctx.path(), "/")], Compression::None).unwrap_err();
    assert!(matches!(err, LayerError::NotUtf8 { index: 0, .. }), "{err:?}");
}

// ---------------------------------------------------------------- names

#[test]
fn long_and_non_ascii_names_round_trip() {
    let ctx = tmp();
    let root = ctx.path();
    let seg = "s".repeat(60);
    // 60*2 + separators + a 50-byte name: > 100 bytes, fits the ustar prefix split.
    let mid = format!("{seg}/{seg}/{}", "m".repeat(50));
    // > 255 bytes: only PAX can hold it.
    let long = format!("{seg}/{seg}/{seg}/{seg}/{seg}/{}", "l".repeat(40));
    let unicode = "données/ünïcødé-文件.txt";
    let long_target = format!("/{}", "t".repeat(150));
    write(&root.join(&mid), b"mid", 0o644);
    write(&root.join(&long), b"long", 0o644);
    write(&root.join(unicode), "é".as_bytes(), 0o644);
    std::os::unix::fs::symlink(&long_target, root.join("ln")).unwrap();
    assert!(mid.len() > 100 && mid.len() < 255 && long.len() > 255);

    let sources = [
        copy(root, "/"),
        Source::Inline {
            path: "/big-ids".into(),
            content: vec![],
            mode: 0o644,
            owner: Owner {
                uid: 3_000_000,
                gid: 4_000_000,
            },
            capabilities: None,
        },
    ];
    let tar = build(&sources);

    // Read back with the tar crate: names, targets and ids survive.
    let mut seen = Vec::new();
    let mut archive = tar::Archive::new(&tar[..]);
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let link = entry
            .link_name_bytes()
            .map(|l| String::from_utf8(l.into_owned()).unwrap());
        seen.push((
            path,
            link,
            entry.header().uid().unwrap(),
            entry.header().gid().unwrap(),
        ));
    }
    let has = |p: &str| seen.iter().any(|(s, ..)| s == p);
    assert!(has(&mid) && has(&long) && has(unicode), "{seen:?}");
    let ln = seen.iter().find(|(s, ..)| s == "ln").unwrap();
    assert_eq!(ln.1.as_deref(), Some(long_target.as_str()));
    let ids = seen.iter().find(|(s, ..)| s == "big-ids").unwrap();
    assert_eq!((ids.2, ids.3), (3_000_000, 4_000_000));

    // PAX headers exactly where needed: the >255 file path and its two
    // parent directories that do not fit prefix+name, the long target, the
    // big ids. The 100-255 byte path uses the ustar prefix instead.
    let headers = raw_headers(&tar);
    let pax = headers.iter().filter(|h| h[156] == b'x').count();
    assert_eq!(pax, 5);
    let split = headers
        .iter()
        .find(|h| h[345..].starts_with(format!("{seg}/{seg}\0").as_bytes()));
    assert!(split.is_some_and(|h| h.starts_with(format!("{}\0", "m".repeat(50)).as_bytes())));
    let e = read_layer_entries(&tar[..]).unwrap();
    assert_eq!(find(&e, unicode).sha256, Some(Digest::of("é".as_bytes())));
    assert_eq!(find(&e, &long).sha256, Some(Digest::of(b"long")));

    // Extracted by the tar crate.
    let out = tmp();
    tar::Archive::new(&tar[..]).unpack(out.path()).unwrap();
    assert_eq!(fs::read(out.path().join(&long)).unwrap(), b"long");
    assert_eq!(fs::read(out.path().join(unicode)).unwrap(), "é".as_bytes());
}

// ---------------------------------------------------------------- overrides

#[test]
fn later_sources_override_earlier_ones() {
    let e = entries(&[inline("/etc/x", b"one"), inline("/etc/x", b"two")]);
    assert_eq!(find(&e, "etc/x").sha256, Some(Digest::of(b"two")));

    // A dir step sets /app's mode and owner; a copy into /app merges and keeps them.
    let ctx = tmp();
    write(&ctx.path().join("sub/f"), b"f", 0o644);
    let e = entries(&[dir("/app", 0o750, 1000), copy(ctx.path(), "/app")]);
    let app = find(&e, "app/");
    assert_eq!((app.mode, app.uid), (0o750, 1000));
    assert_eq!(names(&e), ["app/", "app/sub/", "app/sub/f"]);

    // A dir over a dir keeps the children and takes the new metadata.
    let e = entries(&[inline("/d/f", b""), dir("/d", 0o700, 9)]);
    assert_eq!(names(&e), ["d/", "d/f"]);
    assert_eq!(find(&e, "d/").mode, 0o700);

    // A file over a directory replaces the whole subtree.
    let e = entries(&[dir("/a/b", 0o755, 0), inline("/a/c", b""), inline("/a", b"file")]);
    assert_eq!(names(&e), ["a"]);

    // A directory over a file, and a symlink over a file.
    let e = entries(&[
        inline("/d", b""),
        dir("/d", 0o755, 0),
        inline("/s", b""),
        symlink("/s", "d"),
    ]);
    assert_eq!(find(&e, "d/").kind, EntryKind::Dir);
    assert_eq!(find(&e, "s").kind, EntryKind::Symlink);
}

#[test]
fn entries_below_a_file_or_symlink_are_refused() {
    let err = build_with(&[inline("/f", b""), inline("/f/x", b"")], Compression::None).unwrap_err();
    assert!(
        matches!(err, LayerError::NotADirectory { index: 1, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "sources[1]: cannot create /f/x: /f is a file in this layer, not a directory"
    );
    let err = build_with(
        &[symlink("/bin", "usr/bin"), inline("/bin/sh", b"")],
        Compression::None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("/bin is a symlink"), "{err}");
}

#[test]
fn bad_image_paths_are_refused() {
    for (source, want) in [
        (inline("/../x", b""), "'..' would leave /"),
        (inline("relative", b""), "must be an absolute path"),
        (inline("/", b""), "only a directory can be at /"),
        (symlink("/l", ""), "non-empty"),
    ] {
        let err = build_with(&[dir("/ok", 0o755, 0), source], Compression::None).unwrap_err();
        assert!(
            matches!(err, LayerError::BadImagePath { index: 1, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(want), "{err}");
    }
    // "/" as a directory is a no-op; "." and "//" are normalised.
    let e = entries(&[dir("/", 0o700, 0), inline("//usr/./x", b"")]);
    assert_eq!(names(&e), ["usr/", "usr/x"]);
}

// ---------------------------------------------------------------- context

#[test]
fn context_resolves_inside_and_refuses_escapes() {
    let base = tmp();
    let ctx_dir = base.path().join("ctx");
    write(&ctx_dir.join("sub/file"), b"", 0o644);
    write(&base.path().join("outside/secret"), b"", 0o644);
    std::os::unix::fs::symlink("../outside", ctx_dir.join("escape")).unwrap();
    std::os::unix::fs::symlink("sub", ctx_dir.join("inside")).unwrap();

    let ctx = Context::new(&ctx_dir).unwrap();
    let root = fs::canonicalize(&ctx_dir).unwrap();
    assert_eq!(ctx.root(), root);
    assert_eq!(ctx.resolve("sub/file").unwrap(), root.join("sub/file"));
    assert_eq!(ctx.resolve("inside/file").unwrap(), root.join("sub/file"));
    assert_eq!(ctx.resolve("sub/../sub/file").unwrap(), root.join("sub/file"));
    assert_eq!(ctx.resolve("").unwrap(), root);

    for rel in [
        "escape",
        "escape/secret",
        "../outside/secret",
        "sub/../../outside",
    ] {
        let err = ctx.resolve(rel).unwrap_err();
        assert!(matches!(err, LayerError::OutsideContext { .. }), "{rel}: {err:?}");
        assert!(err.to_string().contains("outside the build context"), "{err}");
    }
    assert!(matches!(ctx.resolve("missing"), Err(LayerError::NotFound { .. })));
    assert!(matches!(
        ctx.resolve("/etc"),
        Err(LayerError::BadContextPath { .. })
    ));
    assert!(matches!(
        Context::new(&ctx_dir.join("sub/file")),
        Err(LayerError::ContextNotDir { .. })
    ));
    assert!(matches!(
        Context::new(&base.path().join("nope")),
        Err(LayerError::ContextIo { .. })
    ));
}

// ---------------------------------------------------------------- unpack

struct TarEntry {
    name: &'static str,
    kind: u8,
    data: &'static [u8],
    link: &'static str,
    mode: u32,
    uid: u64,
    mtime: u64,
}

fn te(name: &'static str, kind: u8) -> TarEntry {
    TarEntry {
        name,
        kind,
        data: b"",
        link: "",
        mode: if kind == b'5' { 0o755 } else { 0o644 },
        uid: 0,
        mtime: 100,
    }
}

/// A tar with names written as given (the tar crate's `set_path` would
/// refuse `..`), uname "someone" that must not survive.
fn raw_tar(entries: &[TarEntry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..e.name.len()].copy_from_slice(e.name.as_bytes());
        h.as_old_mut().linkname[..e.link.len()].copy_from_slice(e.link.as_bytes());
        h.set_entry_type(tar::EntryType::new(e.kind));
        h.set_size(e.data.len() as u64);
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.uid);
        h.set_mtime(e.mtime);
        h.set_username("someone").unwrap();
        h.set_cksum();
        b.append(&h, e.data).unwrap();
    }
    b.into_inner().unwrap()
}

fn archive_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    p
}

fn unpack(src: &Path, to: &str) -> Source {
    Source::Unpack {
        src: src.to_owned(),
        to: to.into(),
    }
}

fn sample_archive() -> Vec<u8> {
    raw_tar(&[
        TarEntry {
            data: b"payload",
            mode: 0o4755,
            uid: 1000,
            mtime: 2_000_000_000,
            ..te("./usr/bin/su", b'0')
        },
        TarEntry {
            link: "usr/bin/su",
            ..te("./usr/bin/su-link", b'1')
        },
        TarEntry {
            link: "su",
            ..te("./usr/bin/sym", b'2')
        },
        TarEntry {
            mode: 0o700,
            ..te("./var/", b'5')
        },
        TarEntry {
            data: b"abs",
            ..te("/etc/hostname", b'0')
        },
        te("./", b'5'),
    ])
}

#[test]
fn unpack_plain_gzip_zstd_and_xz_alike() {
    let dir = tmp();
    let plain = sample_archive();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
    xz.write_all(&plain).unwrap();
    let xz = xz.finish().unwrap();

    let layers: Vec<Vec<u8>> = [
        ("a.tar", &plain),
        ("a.tar.gz", &gz),
        ("a.tar.zst", &zst),
        ("a.tar.xz", &xz),
    ]
    .iter()
    .map(|(name, bytes)| build(&[unpack(&archive_file(dir.path(), name, bytes), "/opt")]))
    .collect();
    assert!(layers.iter().all(|l| l == &layers[0]), "same archive, same layer");

    let e = read_layer_entries(&layers[0][..]).unwrap();
    type Row<'a> = (&'a str, EntryKind, u32, u64, u64, Option<&'a str>);
    let got: Vec<Row> = e
        .iter()
        .map(|e| {
            (
                e.path.as_str(),
                e.kind,
                e.mode,
                e.uid,
                e.mtime,
                e.link_target.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            // "./" sets the metadata of the unpack directory itself.
            ("opt/", EntryKind::Dir, 0o755, 0, 100, None),
            ("opt/etc/", EntryKind::Dir, 0o755, 0, EPOCH, None),
            ("opt/etc/hostname", EntryKind::File, 0o644, 0, 100, None),
            ("opt/usr/", EntryKind::Dir, 0o755, 0, EPOCH, None),
            ("opt/usr/bin/", EntryKind::Dir, 0o755, 0, EPOCH, None),
            // mtime clamped to the epoch; setuid from the archive kept.
            ("opt/usr/bin/su", EntryKind::File, 0o4755, 1000, EPOCH, None),
            (
                "opt/usr/bin/su-link",
                EntryKind::Hardlink,
                0o4755,
                1000,
                EPOCH,
                Some("opt/usr/bin/su")
            ),
            ("opt/usr/bin/sym", EntryKind::Symlink, 0o777, 0, 100, Some("su")),
            ("opt/var/", EntryKind::Dir, 0o700, 0, 100, None),
        ]
    );
    assert_eq!(find(&e, "opt/usr/bin/su").sha256, Some(Digest::of(b"payload")));
    // uname/gname are dropped.
    assert!(
        raw_headers(&layers[0])
            .iter()
            .all(|h| h[265..329].iter().all(|&b| b == 0))
    );
}

#[test]
fn unpack_refuses_hostile_archives() {
    let dir = tmp();
    let cases: Vec<(Vec<TarEntry>, &str, &str)> = vec![
        (
            vec![te("../x", b'0')],
            "../x",
            "'..' would leave the unpack directory",
        ),
        (vec![te("a/../../x", b'0')], "a/../../x", "'..' would leave"),
        (
            vec![te("dev/null", b'3')],
            "dev/null",
            "device nodes and fifos are not supported",
        ),
        (vec![te("fifo", b'6')], "fifo", "device nodes and fifos"),
        (
            vec![TarEntry {
                link: "not/here",
                ..te("l", b'1')
            }],
            "l",
            "not a regular file earlier in this archive",
        ),
        (
            vec![TarEntry {
                link: "../../etc/shadow",
                ..te("l", b'1')
            }],
            "l",
            "hardlink target",
        ),
        (
            vec![
                TarEntry {
                    link: "d",
                    ..te("l", b'1')
                },
                te("d/", b'5'),
            ],
            "l",
            "not a regular file",
        ),
    ];
    for (i, (tar_entries, entry, reason)) in cases.into_iter().enumerate() {
        let path = archive_file(dir.path(), &format!("{i}.tar"), &raw_tar(&tar_entries));
        let err = build_with(&[inline("/x", b""), unpack(&path, "/srv")], Compression::None).unwrap_err();
        match &err {
            LayerError::ArchiveEntry {
                index: 1,
                archive,
                entry: e,
                reason: r,
            } => {
                assert_eq!(archive, &path);
                assert_eq!(e, entry);
                assert!(r.contains(reason), "{r}");
            }
            other => panic!("case {i}: {other:?}"),
        }
    }

    // A symlink to /etc, then a file through it: refused, never written via the link.
    let through = raw_tar(&[
        TarEntry {
            link: "/etc",
            ..te("etc", b'2')
        },
        TarEntry {
            data: b"x",
            ..te("etc/passwd", b'0')
        },
    ]);
    let path = archive_file(dir.path(), "through.tar", &through);
    let err = build_with(&[unpack(&path, "/")], Compression::None).unwrap_err();
    assert!(
        matches!(&err, LayerError::ArchiveEntry { index: 0, entry, reason, .. }
            if entry == "etc/passwd" && reason.contains("/etc is a symlink in this layer")),
        "{err:?}"
    );

    // Hardlinks may not reach into another source's files.
    let other = raw_tar(&[TarEntry {
        link: "x",
        ..te("l", b'1')
    }]);
    let path = archive_file(dir.path(), "other.tar", &other);
    let err = build_with(&[inline("/x", b""), unpack(&path, "/")], Compression::None).unwrap_err();
    assert!(
        matches!(err, LayerError::ArchiveEntry { index: 1, .. }),
        "{err:?}"
    );

    // Truncated and garbage input.
    let mut truncated = raw_tar(&[TarEntry {
        data: &[7; 3000],
        ..te("big", b'0')
    }]);
    truncated.truncate(1536);
    let path = archive_file(dir.path(), "trunc.tar", &truncated);
    let err = build_with(&[unpack(&path, "/")], Compression::None).unwrap_err();
    assert!(matches!(err, LayerError::Archive { index: 0, .. }), "{err:?}");
    let path = archive_file(dir.path(), "junk.tar", &[0x55; 2048]);
    let err = build_with(&[unpack(&path, "/")], Compression::None).unwrap_err();
    assert!(matches!(err, LayerError::Archive { index: 0, .. }), "{err:?}");
    assert!(err.to_string().contains("junk.tar"), "{err}");
}

// ---------------------------------------------------------------- compression

#[test]
fn gzip_header_is_pinned() {
    for (level, xfl) in [(1, 4), (6, 0), (9, 2)] {
        let (gz, _) = build_with(&[inline("/a", b"a")], Compression::Gzip { level }).unwrap();
        // magic, deflate, no flags (no name/comment/extra), mtime 0, XFL, OS 255.
        assert_eq!(
            gz[..10],
            [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255],
            "level {level}"
        );
    }
    let (zst, _) = build_with(&[inline("/a", b"a")], Compression::Zstd { level: 3 }).unwrap();
    assert_eq!(zst[..4], [0x28, 0xb5, 0x2f, 0xfd]);
    assert_eq!(zst[4] & 0b100, 0b100, "zstd frame checksum flag is set");
}

#[test]
fn media_types_and_ids() {
    assert_eq!(
        Compression::None.media_type(),
        "application/vnd.oci.image.layer.v1.tar"
    );
    assert_eq!(
        Compression::Gzip { level: 6 }.media_type(),
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(
        Compression::Zstd { level: 3 }.media_type(),
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    assert_eq!(Compression::None.id(), "none");
    assert_eq!(Compression::Gzip { level: 6 }.id(), "gzip-6/zlib-rs/chunked-1MiB");
    assert_eq!(
        Compression::Zstd { level: 3 }.id(),
        "zstd-3/libzstd-1.5.7/chunked-1MiB"
    );
    let err = build_with(&[], Compression::Gzip { level: 0 }).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid gzip compression level 0: expected 1 to 9"
    );
}

/// Regenerate only on purpose, saying why: a change here changes the digest
/// of every image bake builds.
#[test]
fn golden_digests() {
    let sources = [
        dir("/srv/app", 0o750, 1000),
        Source::Inline {
            path: "/srv/app/run.sh".into(),
            content: b"#!/bin/sh\nexec /srv/app/bin \"$@\"\n".to_vec(),
            mode: 0o755,
            owner: Owner { uid: 1000, gid: 1000 },
            capabilities: None,
        },
        inline("/etc/motd", &b"bake golden layer\n".repeat(50)),
        symlink("/usr/bin/app", "/srv/app/run.sh"),
    ];
    let diff_id = "sha256:1fbb42168048d284d97e58d3b0f22633a395978070b9b51b3d047f4ec9e1f3fb";
    for (c, compressed) in [
        (
            Compression::None,
            "sha256:1fbb42168048d284d97e58d3b0f22633a395978070b9b51b3d047f4ec9e1f3fb",
        ),
        (
            Compression::Gzip { level: 6 },
            "sha256:e6a3fe6862dbdc50a8bad576a7275124e12d7c7c89dac69f117ba6c644e77f57",
        ),
        (
            Compression::Zstd { level: 3 },
            "sha256:cb4d5dde47741873cf3cb3dda2696051c3387bd425d61594122d9a370c905da3",
        ),
    ] {
        let (bytes, out) = build_with(&sources, c).unwrap();
        assert_eq!(out.diff_id.to_string(), diff_id, "{c:?}");
        assert_eq!(Digest::of(&bytes).to_string(), compressed, "{c:?}");
    }
}

/// The chunked scheme itself (1 MiB chunks; gzip chunks primed with the
/// previous 32 KiB and joined by sync flushes; one zstd frame per chunk),
/// pinned on a layer of about 2.5 MiB. Regenerate only on purpose.
#[test]
fn golden_digests_across_chunks() {
    // Deterministic, compressible content with matches across chunk edges.
    let mut x: u32 = 12345;
    let mut content = Vec::new();
    while content.len() < 5 << 19 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let word = ["layer ", "chunk ", "digest ", "bake\n", "0xdeadbeef "][(x >> 16) as usize % 5];
        content.extend_from_slice(word.as_bytes());
        if x % 7 == 0 {
            content.extend_from_slice(&x.to_le_bytes());
        }
    }
    let sources = [
        inline("/data/big.txt", &content),
        inline("/data/small", b"tail\n"),
    ];
    let (tar, out) = build_with(&sources, Compression::None).unwrap();
    assert!(tar.len() > (2 << 20) + 1, "the layer spans three chunks");
    let diff_id = out.diff_id.to_string();
    for (c, compressed) in [
        (
            Compression::Gzip { level: 6 },
            "sha256:eb8e3f6531412d9f8b1ff315c23079f30923564b34b622f23c18fd7d7bcbeb90",
        ),
        (
            Compression::Zstd { level: 3 },
            "sha256:9742c93129221c52b4c3d265376e921a82139c4245bf09571693dbce2a08c78b",
        ),
    ] {
        let (bytes, out) = build_with(&sources, c).unwrap();
        assert_eq!(out.diff_id.to_string(), diff_id, "{c:?}");
        assert_eq!(Digest::of(&bytes).to_string(), compressed, "{c:?}");
    }
    assert_eq!(
        diff_id,
        "sha256:af4f6c8000af123873007f3d90b26c1f47ff8414925cc8f52d9812a9b8637c56"
    );
}

/// A plain tar layer from (name, kind, link target) entries.
fn raw_layer(dir: &Path, file: &str, entries: &[(&str, char, &str)]) -> PathBuf {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, target) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(match kind {
            'd' => tar::EntryType::Directory,
            'l' => tar::EntryType::Symlink,
            _ => tar::EntryType::Regular,
        });
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        if *kind == 'l' {
            h.set_link_name(target).unwrap();
        }
        h.set_path(name).unwrap();
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
    }
    let path = dir.join(file);
    fs::write(&path, b.into_inner().unwrap()).unwrap();
    path
}

#[test]
fn the_links_below_fold_like_extraction() {
    let t = tmp();
    let one = raw_layer(
        t.path(),
        "1.tar",
        &[
            ("bin", 'l', "usr/bin"),
            ("lib", 'l', "/usr/lib"),
            ("sbin", 'l', "usr/sbin"),
            ("etc/alternatives/", 'd', ""),
            ("etc/alternatives/awk", 'l', "/usr/bin/mawk"),
            ("opt/a/", 'd', ""),
            ("opt/a/link", 'l', "x"),
            ("var/run", 'l', "/run"),
        ],
    );
    let two = raw_layer(
        t.path(),
        "2.tar",
        &[
            // A whiteout deletes a link, an opaque directory what was below it.
            ("etc/alternatives/.wh..wh..opq", 'f', ""),
            ("etc/alternatives/vi", 'l', "/usr/bin/nvi"),
            ("sbin/.wh..wh..opq", 'f', ""),
            (".wh.lib", 'f', ""),
            // A directory replaces a link at its path; a file a whole tree.
            ("var/run/", 'd', ""),
            ("opt/a", 'f', ""),
        ],
    );
    let links = bake_layer::links_in_layers(&[&one, &two], &bake_layer::ReadLimits::DEFAULT).unwrap();
    let want: Vec<(&str, &str)> = vec![
        ("bin", "usr/bin"),
        ("etc/alternatives/vi", "/usr/bin/nvi"),
        ("sbin", "usr/sbin"),
    ];
    let got: Vec<(&str, &str)> = links.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(got, want);
}

/// The one-pass reading of a base (links and diffIDs together) agrees with
/// the two separate readings, trailing padding after the end-of-archive
/// blocks included, and refuses bytes that are not compressed as declared.
#[test]
fn links_and_diff_ids_in_one_pass_agree_with_two() {
    use bake_layer::LayerCompression;
    let t = tmp();
    let one = raw_layer(t.path(), "1.tar", &[("bin", 'l', "usr/bin"), ("usr/", 'd', "")]);
    // 4 KiB of zeros past the end-of-archive blocks, as many tools pad.
    let mut padded = fs::read(&one).unwrap();
    padded.extend_from_slice(&[0u8; 4096]);
    fs::write(&one, &padded).unwrap();
    let two_tar = raw_layer(t.path(), "2.tar", &[("lib", 'l', "usr/lib")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&fs::read(&two_tar).unwrap()).unwrap();
    let two = t.path().join("2.tar.gz");
    fs::write(&two, gz.finish().unwrap()).unwrap();
    let limits = bake_layer::ReadLimits::DEFAULT;
    let layers = [one.as_path(), two.as_path()];
    let declared = [LayerCompression::None, LayerCompression::Gzip];
    let (links, diff_ids) = bake_layer::links_and_diff_ids(&layers, &declared, &limits).unwrap();
    assert_eq!(links, bake_layer::links_in_layers(&layers, &limits).unwrap());
    assert_eq!(links.len(), 2);
    for (i, layer) in layers.iter().enumerate() {
        let measured =
            bake_layer::measure_layer(fs::File::open(layer).unwrap(), declared[i], &limits).unwrap();
        assert_eq!(diff_ids[i], measured, "layer {i}");
    }
    assert_eq!(diff_ids[0], Digest::of(&padded));
    // A gzip layer declared uncompressed is refused, naming both.
    let err = bake_layer::links_and_diff_ids(&layers, &[LayerCompression::None; 2], &limits).unwrap_err();
    assert!(err.to_string().contains("gzip"), "{err}");
}

#[test]
fn entries_go_through_the_links_below() {
    let t = tmp();
    let ctx = tmp();
    fs::write(ctx.path().join("tool"), "tool").unwrap();
    let mut options = opts(t.path(), Compression::None);
    options.below_links = [("bin", "usr/bin"), ("usr/lib64", "../lib"), ("lib", "usr/lib")]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
    let sources = [
        Source::Copy {
            src: ctx.path().join("tool"),
            to: "/bin/tool".into(),
            mode: Some(0o755),
            owner: Owner::default(),
            exclude: vec![],
            mtime: CopyMtime::Epoch,
            capabilities: None,
        },
        Source::Dir {
            path: "/bin".into(),
            mode: 0o755,
            owner: Owner::default(),
        },
        Source::Inline {
            path: "/usr/lib64/ld.so".into(),
            content: b"ld".to_vec(),
            mode: 0o755,
            owner: Owner::default(),
            capabilities: None,
        },
        // A symlink over a link replaces it (the last component is not
        // followed for anything but a directory).
        Source::Symlink {
            path: "/lib".into(),
            target: "usr/lib".into(),
            owner: Owner::default(),
        },
    ];
    let (tar, _) = write_layer(&sources, &options, Vec::new()).unwrap();
    let names: Vec<String> = read_layer_entries(&tar[..])
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(
        names,
        [
            "lib",
            "usr/",
            "usr/bin/",
            "usr/bin/tool",
            "usr/lib/",
            "usr/lib/ld.so"
        ]
    );
    // Without the links: as written.
    options.below_links.clear();
    let (tar, _) = write_layer(&sources, &options, Vec::new()).unwrap();
    let names: Vec<String> = read_layer_entries(&tar[..])
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(
        names,
        ["bin/", "bin/tool", "lib", "usr/", "usr/lib64/", "usr/lib64/ld.so"]
    );
}
