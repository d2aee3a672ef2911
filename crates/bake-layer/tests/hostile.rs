//! Hostile archives (`testdata/hostile/`, made by `hostile/corpus.rs`)
//! through every reader of bake-layer: `unpack` and `deb` sources
//! (`write_layer`), `apply_layer` (a base layer applied for a `run` step),
//! `read_layer_entries` and `read_file_from_layers`. Each case either works
//! as documented or fails with an error naming the archive and the entry;
//! nothing is ever written outside the directories the build owns (checked
//! on disk after every case), no temporary file is left behind, and nothing
//! panics.

#![allow(clippy::unwrap_used)]

#[path = "hostile/corpus.rs"]
mod corpus;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bake_digest::Digest;
use bake_layer::{
    Compression, EntryKind, LayerError, LayerOptions, ReadLimits, Source, apply_layer,
    apply_layer_with_limits, read_file_from_layers, read_layer_entries, read_layer_entries_with_limits,
    write_layer, write_layer_with_limits,
};
use corpus::ESCAPE;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/hostile")
}

fn file(name: &str) -> PathBuf {
    testdata().join(name)
}

/// The checked-in files are exactly what the generator makes (run with
/// `BAKE_REGENERATE_HOSTILE=1` to rewrite them), and every one is listed
/// in the README.
#[test]
fn testdata_matches_the_generator() {
    let dir = testdata();
    let regenerate = std::env::var_os("BAKE_REGENERATE_HOSTILE").is_some_and(|v| v == "1");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap_or_default();
    let mut total = 0;
    for (name, bytes) in corpus::files() {
        let path = dir.join(name);
        total += bytes.len();
        if regenerate {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
            continue;
        }
        let on_disk = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (BAKE_REGENERATE_HOSTILE=1 makes it)", path.display()));
        assert!(on_disk == bytes, "{name} differs from the generator's bytes");
        assert!(
            readme.contains(&format!("`{name}`")),
            "{name} is not described in README.md"
        );
    }
    assert!(
        total < 256 << 10,
        "the hostile corpus should stay small ({total} bytes)"
    );
}

const EPOCH: u64 = 1_700_000_000;

/// A scratch area: `root/` is where layers are applied, `tmp/` the build's
/// temp space, and everything else must stay as it was.
struct Area {
    dir: tempfile::TempDir,
}

impl Area {
    fn new() -> Area {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        std::fs::create_dir(dir.path().join("victim")).unwrap();
        std::fs::write(dir.path().join("victim/passwd"), "root:x:0:0\n").unwrap();
        Area { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn tmp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    /// Nothing escaped: no `ESCAPE` file anywhere outside `root/`, the
    /// victim untouched, the temp space empty.
    fn assert_contained(&self, case: &str) {
        for outside in [
            self.dir.path().join(ESCAPE),
            self.dir.path().parent().unwrap().join(ESCAPE),
            Path::new("/tmp").join(ESCAPE),
            Path::new("/").join(ESCAPE),
            Path::new("/etc").join(ESCAPE),
        ] {
            assert!(
                std::fs::symlink_metadata(&outside).is_err(),
                "{case}: {} was written",
                outside.display()
            );
        }
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["root", "tmp", "victim"], "{case}");
        let victim: Vec<_> = std::fs::read_dir(self.dir.path().join("victim"))
            .unwrap()
            .collect();
        assert_eq!(victim.len(), 1, "{case}: the victim directory changed");
        assert_eq!(
            std::fs::read_to_string(self.dir.path().join("victim/passwd")).unwrap(),
            "root:x:0:0\n",
            "{case}"
        );
        assert_eq!(
            std::fs::read_dir(self.tmp()).unwrap().count(),
            0,
            "{case}: temporary files left behind"
        );
    }
}

fn opts(area: &Area) -> LayerOptions {
    LayerOptions {
        epoch: EPOCH,
        compression: Compression::None,
        tmp_dir: area.tmp(),
        below_links: Default::default(),
    }
}

fn unpack(area: &Area, name: &str, limits: &ReadLimits) -> Result<Vec<u8>, LayerError> {
    let sources = [Source::Unpack {
        src: file(name),
        to: "/".into(),
    }];
    write_layer_with_limits(&sources, &opts(area), limits, Vec::new()).map(|(bytes, _)| bytes)
}

fn deb(area: &Area, name: &str, limits: &ReadLimits) -> Result<Vec<u8>, LayerError> {
    let path = file(name);
    let sha256 = Digest::of(&std::fs::read(&path).unwrap());
    let sources = [Source::Deb { src: path, sha256 }];
    write_layer_with_limits(&sources, &opts(area), limits, Vec::new()).map(|(bytes, _)| bytes)
}

/// What a reader must do with an archive: succeed, or fail with an error
/// whose text contains every one of these pieces.
#[derive(Debug, Clone, Copy)]
enum Want {
    Ok,
    Err(&'static [&'static str]),
}
use Want::{Err as E, Ok as O};

fn check<T>(case: &str, reader: &str, got: Result<T, LayerError>, want: Want) -> Option<T> {
    match (got, want) {
        (Ok(v), Want::Ok) => Some(v),
        (Ok(_), Want::Err(pieces)) => panic!("{case}: {reader} succeeded, expected an error with {pieces:?}"),
        (Err(e), Want::Ok) => panic!("{case}: {reader} failed: {e}"),
        (Err(e), Want::Err(pieces)) => {
            let text = e.to_string();
            for p in pieces {
                assert!(text.contains(p), "{case}: {reader}: {text:?} lacks {p:?}");
            }
            None
        }
    }
}

const DOTDOT: &str = "'..' would leave the unpack directory";
const TRUNCATED: &str = "truncated";
const LIMIT_META: &str = "more than the limit of 1048576 bytes";

/// Every archive of the corpus: what `unpack`, `apply_layer` and
/// `read_layer_entries` must do with it.
fn table() -> Vec<(&'static str, Want, Want, Want)> {
    vec![
        (
            "dotdot.tar",
            E(&["dotdot.tar", "../bake-hostile-escape", DOTDOT]),
            E(&["../bake-hostile-escape", DOTDOT]),
            O,
        ),
        (
            "dotdot-nested.tar",
            E(&["a/../../bake-hostile-escape", DOTDOT]),
            E(&[DOTDOT]),
            O,
        ),
        // A leading `/` is dropped: the entry lands inside the root.
        ("absolute.tar", O, O, O),
        (
            "symlink-escape.tar",
            E(&["cannot create /link/bake-hostile-escape: /link is a symlink in this layer"]),
            O,
            O,
        ),
        (
            "symlink-escape-relative.tar",
            E(&["/link is a symlink in this layer"]),
            O,
            O,
        ),
        (
            "symlink-dir-escape.tar",
            E(&["/link is a symlink in this layer"]),
            O,
            O,
        ),
        (
            "hardlink-escape.tar",
            E(&["entry \"h\"", "hardlink target", DOTDOT]),
            E(&["entry \"h\"", DOTDOT]),
            O,
        ),
        (
            "hardlink-absolute.tar",
            E(&["entry \"h\"", "not a regular file earlier in this archive"]),
            E(&["entry \"h\"", "does not exist"]),
            O,
        ),
        (
            "hardlink-through-symlink.tar",
            E(&["entry \"h\"", "not a regular file earlier in this archive"]),
            E(&["entry \"h\"", "does not exist"]),
            O,
        ),
        (
            "whiteout-escape.tar",
            E(&["entry \".wh..\"", "mean deletions"]),
            E(&["entry \".wh..\"", "a whiteout must name an entry"]),
            O,
        ),
        (
            "device-char.tar",
            E(&["entry \"dev/mem\"", "device nodes and fifos are not supported"]),
            O,
            O,
        ),
        (
            "device-block.tar",
            E(&["entry \"dev/sda\"", "device nodes and fifos are not supported"]),
            O,
            O,
        ),
        (
            "fifo.tar",
            E(&["entry \"run/fifo\"", "device nodes and fifos are not supported"]),
            O,
            O,
        ),
        ("setuid.tar", O, O, O),
        (
            "sparse.tar",
            E(&["entry \"sparse\"", "sparse files are not supported"]),
            E(&["entry \"sparse\"", "unsupported entry type 'S'"]),
            O,
        ),
        (
            "sparse-extended.tar",
            E(&["entry \"sparse\"", "sparse files are not supported"]),
            E(&["entry \"sparse\"", "unsupported entry type 'S'"]),
            O,
        ),
        (
            "non-utf8.tar",
            E(&["not valid UTF-8"]),
            E(&["not valid UTF-8"]),
            O,
        ),
        ("duplicate.tar", O, O, O),
        // Bases whose dpkg database is a link out of the root: symlinks are
        // content (`unpack` keeps them, `apply_layer` makes them inside the
        // root); see `dpkg_status_through_a_base_link_stays_inside_the_root`.
        ("dpkg-status-symlink.tar", O, O, O),
        ("dpkg-dir-symlink.tar", O, O, O),
        (
            "size-beyond-stream.tar",
            E(&["entry \"big\"", TRUNCATED]),
            E(&["entry \"big\"", "unexpected EOF"]),
            E(&["entry \"big\"", TRUNCATED]),
        ),
        (
            "size-base256-huge.tar",
            E(&["entry \"huge\"", TRUNCATED]),
            E(&["entry \"huge\"", "unexpected EOF"]),
            E(&["entry \"huge\"", TRUNCATED]),
        ),
        (
            "pax-size-huge.tar",
            E(&["entry \"f\"", TRUNCATED]),
            E(&["entry \"f\"", "unexpected EOF"]),
            E(&["entry \"f\"", TRUNCATED]),
        ),
        (
            "pax-record-huge.tar",
            E(&[
                "PaxHeaders/f",
                "PAX extended header of 17179869184 bytes",
                LIMIT_META,
            ]),
            E(&["PAX extended header", LIMIT_META]),
            E(&["PAX extended header", LIMIT_META]),
        ),
        (
            "pax-global-huge.tar",
            E(&["GlobalHead", "PAX global header", LIMIT_META]),
            E(&["PAX global header", LIMIT_META]),
            E(&["PAX global header", LIMIT_META]),
        ),
        (
            "gnu-longname-huge.tar",
            E(&["GNU long name record of 1073741824 bytes", LIMIT_META]),
            E(&["GNU long name record", LIMIT_META]),
            E(&["GNU long name record", LIMIT_META]),
        ),
        (
            "gnu-longlink-huge.tar",
            E(&["GNU long link record", LIMIT_META]),
            E(&["GNU long link record", LIMIT_META]),
            E(&["GNU long link record", LIMIT_META]),
        ),
        (
            "pax-malformed.tar",
            E(&["entry \"f\"", "malformed pax extension"]),
            E(&["entry \"f\"", "malformed pax extension"]),
            E(&["entry \"f\"", "malformed pax extension"]),
        ),
        ("bomb.tar.gz", O, O, O),
        ("bomb.tar.zst", O, O, O),
        ("bomb.tar.xz", O, O, O),
        (
            "truncated.tar.gz",
            E(&["truncated.tar.gz"]),
            E(&["truncated.tar.gz"]),
            E(&[]),
        ),
        (
            "truncated-trailer.tar.gz",
            E(&["truncated-trailer.tar.gz"]),
            E(&["truncated-trailer.tar.gz"]),
            E(&[]),
        ),
        (
            "corrupt.tar.gz",
            E(&["corrupt.tar.gz"]),
            E(&["corrupt.tar.gz"]),
            E(&[]),
        ),
        (
            "corrupt-crc.tar.gz",
            E(&["corrupt-crc.tar.gz"]),
            E(&["corrupt-crc.tar.gz"]),
            E(&[]),
        ),
        (
            "truncated.tar.zst",
            E(&["truncated.tar.zst"]),
            E(&["truncated.tar.zst"]),
            E(&[]),
        ),
        (
            "truncated-checksum.tar.zst",
            E(&["truncated-checksum.tar.zst"]),
            E(&["truncated-checksum.tar.zst"]),
            E(&[]),
        ),
        (
            "corrupt.tar.zst",
            E(&["corrupt.tar.zst"]),
            E(&["corrupt.tar.zst"]),
            E(&[]),
        ),
        (
            "truncated.tar.xz",
            E(&["truncated.tar.xz"]),
            E(&["truncated.tar.xz"]),
            E(&[]),
        ),
        (
            "corrupt.tar.xz",
            E(&["corrupt.tar.xz"]),
            E(&["corrupt.tar.xz"]),
            E(&[]),
        ),
        (
            "bzip2.tar.bz2",
            E(&["bzip2.tar.bz2", "bzip2-compressed archives are not supported"]),
            E(&["bzip2-compressed"]),
            E(&["bzip2-compressed"]),
        ),
        (
            "garbage.tar",
            E(&["garbage.tar", "cksum"]),
            E(&["garbage.tar", "cksum"]),
            E(&["cksum"]),
        ),
    ]
}

#[test]
fn every_archive_is_listed() {
    let listed: Vec<&str> = table().iter().map(|t| t.0).collect();
    for (name, _) in corpus::files() {
        if !name.ends_with(".deb") && !name.starts_with("docker-") {
            assert!(listed.contains(&name), "{name} has no expectation in table()");
        }
    }
}

#[test]
fn unpack_refuses_or_contains_every_hostile_archive() {
    for (name, want, _, _) in table() {
        let area = Area::new();
        let got = check(name, "unpack", unpack(&area, name, &ReadLimits::DEFAULT), want);
        area.assert_contained(name);
        let Some(layer) = got else { continue };
        let entries = read_layer_entries(&layer[..]).unwrap();
        let find = |p: &str| entries.iter().find(|e| e.path == p);
        match name {
            "absolute.tar" => {
                let e = find(&format!("tmp/{ESCAPE}")).expect("the entry, made relative");
                assert_eq!(e.kind, EntryKind::File);
            }
            // Policy: setuid/setgid bits are the image's content, kept.
            "setuid.tar" => {
                assert_eq!(find("bin/su").unwrap().mode, 0o4755);
                assert_eq!(find("bin/wall").unwrap().mode, 0o2755);
            }
            // A later entry replaces an earlier one at the same path; a file
            // over a directory replaces its subtree.
            "duplicate.tar" => {
                let conf = find("etc/conf").unwrap();
                assert_eq!((conf.size, conf.mode), (7, 0o600), "the second one wins");
                assert_eq!(entries.iter().filter(|e| e.path == "etc/conf").count(), 1);
                assert_eq!(find("x").unwrap().kind, EntryKind::File);
                assert!(find("x/child").is_none() && find("x/").is_none());
            }
            "bomb.tar.gz" | "bomb.tar.zst" | "bomb.tar.xz" => {
                assert_eq!(find("zeros").unwrap().size, 16 << 20);
            }
            _ => {}
        }
    }
}

#[test]
fn apply_layer_keeps_every_hostile_archive_inside_the_root() {
    for (name, _, want, _) in table() {
        let area = Area::new();
        let root = area.root();
        // What a lower layer left: a symlink pointing out of the root, at
        // the victim, by absolute host path.
        std::os::unix::fs::symlink(area.dir.path().join("victim"), root.join("lower")).unwrap();
        check(name, "apply_layer", apply_layer(&file(name), &root), want);
        area.assert_contained(name);
        let meta = |p: &str| std::fs::symlink_metadata(root.join(p));
        match name {
            "absolute.tar" | "symlink-escape.tar" | "symlink-escape-relative.tar" => {
                // `/tmp` inside the root, whatever way it was named.
                assert!(meta(&format!("tmp/{ESCAPE}")).unwrap().is_file(), "{name}");
            }
            "symlink-dir-escape.tar" => assert!(meta(&format!("tmp/{ESCAPE}/f")).unwrap().is_file()),
            // Device nodes and fifos are skipped: the runtime's /dev is used.
            "device-char.tar" => assert!(meta("dev/mem").is_err()),
            "device-block.tar" => assert!(meta("dev/sda").is_err()),
            "fifo.tar" => assert!(meta("run/fifo").is_err()),
            "setuid.tar" => {
                assert_eq!(meta("bin/su").unwrap().mode() & 0o7777, 0o4755);
                assert_eq!(meta("bin/wall").unwrap().mode() & 0o7777, 0o2755);
            }
            "duplicate.tar" => {
                assert_eq!(
                    std::fs::read_to_string(root.join("etc/conf")).unwrap(),
                    "second\n"
                );
                assert_eq!(meta("etc/conf").unwrap().permissions().mode() & 0o777, 0o600);
                assert!(meta("x").unwrap().is_file());
            }
            _ => {}
        }
    }
}

/// A base layer writing through a symlink a lower layer left, which points
/// out of the root by absolute host path: the write lands inside the root.
#[test]
fn apply_layer_resolves_lower_symlinks_inside_the_root() {
    let area = Area::new();
    let root = area.root();
    let victim = area.dir.path().join("victim");
    std::os::unix::fs::symlink(&victim, root.join("etc")).unwrap();
    std::os::unix::fs::symlink("../../../../../..", root.join("up")).unwrap();
    let tar = corpus::Tar::default()
        .file("etc/passwd", 0o644, b"owned\n")
        .file(&format!("up/{ESCAPE}"), 0o644, b"pwned\n")
        .hardlink("victim-link", "etc/passwd")
        .end();
    let layer = area.tmp().join("layer.tar");
    std::fs::write(&layer, tar).unwrap();
    apply_layer(&layer, &root).unwrap();
    std::fs::remove_file(&layer).unwrap();
    area.assert_contained("lower symlinks");
    let inside = root.join(victim.strip_prefix("/").unwrap()).join("passwd");
    assert_eq!(std::fs::read_to_string(inside).unwrap(), "owned\n");
    assert!(root.join(ESCAPE).is_file(), "`..` stops at the root");
    assert_eq!(
        std::fs::metadata(root.join("victim-link")).unwrap().ino(),
        std::fs::metadata(root.join(victim.strip_prefix("/").unwrap()).join("passwd"))
            .unwrap()
            .ino()
    );
}

/// `apply_layer` keeps the parent directory it resolved while a layer's
/// entries stay in it: an entry that turns that directory (or one above
/// it) into a symlink mid-layer must be seen, both for a directory it
/// replaces and for a symlink leading out of the root.
#[test]
fn apply_layer_sees_a_parent_replaced_in_the_same_layer() {
    let area = Area::new();
    let root = area.root();
    let tar = corpus::Tar::default()
        .dir("b")
        .dir("a")
        .dir("a/c")
        .file("a/c/one", 0o644, b"1\n")
        .symlink("a", "b")
        .file("a/c/two", 0o644, b"2\n")
        .dir("x")
        .dir("x/y")
        .file("x/y/one", 0o644, b"1\n")
        .symlink("x", "../../../../../..")
        .file(&format!("x/{ESCAPE}"), 0o644, b"pwned\n")
        .end();
    let layer = area.tmp().join("layer.tar");
    std::fs::write(&layer, tar).unwrap();
    apply_layer(&layer, &root).unwrap();
    std::fs::remove_file(&layer).unwrap();
    area.assert_contained("a parent replaced mid-layer");
    assert!(root.join("a").is_symlink());
    assert_eq!(std::fs::read_to_string(root.join("b/c/two")).unwrap(), "2\n");
    assert!(
        !root.join("b/c/one").exists(),
        "one went with the directory a replaced"
    );
    assert!(root.join(ESCAPE).is_file(), "`..` stops at the root");
}

/// What `deb` steps read and write over a base whose dpkg database is a
/// link out of the root (to a host canary): the status below is read from
/// the layers only — a link there is no file, so there is none (never the
/// host's); a layer then writing the database (a `deb` step applied for a
/// `run` layer) replaces the link or writes where it leads inside the root.
#[test]
fn dpkg_status_through_a_base_link_stays_inside_the_root() {
    // The corpus's two layers (checked in, pointing at `CANARY_DIR`), made
    // again to point at a canary of this test's own.
    let host = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let canary = host.path().join("canary");
    std::fs::create_dir(&canary).unwrap();
    let content = b"Package: bake-hostile-canary\nStatus: install ok installed\nVersion: 6.6.6\n";
    std::fs::write(canary.join("status"), content).unwrap();
    let c = canary.to_str().unwrap();
    assert_eq!(
        std::fs::read(file("dpkg-status-symlink.tar")).unwrap(),
        corpus::dpkg_status_symlink(corpus::CANARY_DIR)
    );
    assert_eq!(
        std::fs::read(file("dpkg-dir-symlink.tar")).unwrap(),
        corpus::dpkg_dir_symlink(corpus::CANARY_DIR)
    );
    let dir_lands = format!("{}/status", &c[1..]);
    for (name, bytes, lands) in [
        (
            "dpkg-status-symlink.tar",
            corpus::dpkg_status_symlink(c),
            "var/lib/dpkg/status",
        ),
        (
            "dpkg-dir-symlink.tar",
            corpus::dpkg_dir_symlink(c),
            dir_lands.as_str(),
        ),
    ] {
        let area = Area::new();
        let layers = [area.dir.path().join(name)];
        std::fs::write(&layers[0], bytes).unwrap();
        assert_eq!(
            read_file_from_layers(&layers, "/var/lib/dpkg/status", 1 << 20, &ReadLimits::DEFAULT).unwrap(),
            None,
            "{name}"
        );
        assert_eq!(
            bake_layer::file_in_layer(&layers[0], "/var/lib/dpkg/status", 1 << 20, &ReadLimits::DEFAULT)
                .unwrap(),
            bake_layer::FileEffect::Removed,
            "{name}"
        );
        let root = area.root();
        apply_layer(&layers[0], &root).unwrap();
        std::fs::remove_file(&layers[0]).unwrap();
        let db = corpus::Tar::default()
            .file("var/lib/dpkg/status", 0o644, b"Package: mine\n")
            .file("var/lib/dpkg/info/mine.list", 0o644, b"/\n")
            .end();
        let layer = area.dir.path().join("db.tar");
        std::fs::write(&layer, db).unwrap();
        apply_layer(&layer, &root).unwrap();
        std::fs::remove_file(&layer).unwrap();
        area.assert_contained(name);
        let meta = std::fs::symlink_metadata(root.join(lands)).unwrap();
        assert!(meta.is_file(), "{name}: {lands}");
        assert_eq!(std::fs::read(root.join(lands)).unwrap(), b"Package: mine\n");
        // The canary is as it was, and nothing was added beside it.
        assert_eq!(std::fs::read(canary.join("status")).unwrap(), content, "{name}");
        assert_eq!(
            std::fs::read_dir(&canary).unwrap().count(),
            1,
            "{name}: written beside the canary"
        );
    }
}

#[test]
fn read_layer_entries_and_read_file_never_panic() {
    for (name, _, _, want) in table() {
        let bytes = std::fs::read(file(name)).unwrap();
        let got = read_layer_entries(&bytes[..]);
        let entries = check(name, "read_layer_entries", got, want);
        if name == "sparse-extended.tar" {
            // The guard followed the extension block to the next header.
            let names: Vec<_> = entries.unwrap().into_iter().map(|e| e.path).collect();
            assert_eq!(names, ["sparse", "after"]);
        }
        // One file through the whole stack: any answer but a panic.
        let _ = read_file_from_layers(&[file(name)], "/etc/motd", 1 << 20, &ReadLimits::DEFAULT);
    }
    for (name, _) in corpus::files() {
        let bytes = std::fs::read(file(name)).unwrap();
        let _ = read_layer_entries(&bytes[..]);
    }
}

/// Decompression bombs stop at the configured limit, in every reader.
#[test]
fn decompression_bombs_stop_at_the_limit() {
    let small = ReadLimits {
        max_tar_bytes: 1 << 20,
        ..ReadLimits::DEFAULT
    };
    let want = E(&["larger than the limit of 1048576 bytes uncompressed"]);
    for name in ["bomb.tar.gz", "bomb.tar.zst", "bomb.tar.xz"] {
        let area = Area::new();
        check(name, "unpack", unpack(&area, name, &small), want);
        area.assert_contained(name);
        check(
            name,
            "apply_layer",
            apply_layer_with_limits(&file(name), &area.root(), &small),
            want,
        );
        area.assert_contained(name);
        // At most about the limit was written before it stopped.
        let written: u64 = walk_sizes(&area.root());
        assert!(written <= 1 << 20, "{name}: {written} bytes written");
        let bytes = std::fs::read(file(name)).unwrap();
        check(
            name,
            "read_layer_entries",
            read_layer_entries_with_limits(&bytes[..], &small),
            want,
        );
    }
    let area = Area::new();
    check(
        "deb-bomb.deb",
        "deb",
        deb(&area, "deb-bomb.deb", &small),
        E(&["deb-bomb.deb", "larger than the limit"]),
    );
    area.assert_contained("deb-bomb.deb");
    // The limit on metadata records is configurable too.
    let tiny_meta = ReadLimits {
        max_metadata_record: 16,
        ..ReadLimits::DEFAULT
    };
    let long = corpus::Tar::default()
        .pax(&[("path", "a-path-longer-than-sixteen-bytes")])
        .file("p", 0o644, b"")
        .end();
    let err = read_layer_entries_with_limits(&long[..], &tiny_meta).unwrap_err();
    assert!(
        err.to_string().contains("more than the limit of 16 bytes"),
        "{err}"
    );
    assert_eq!(
        read_layer_entries(&long[..]).unwrap()[0].path,
        "a-path-longer-than-sixteen-bytes"
    );
}

fn walk_sizes(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        n += if m.is_dir() {
            walk_sizes(&e.path())
        } else {
            m.len()
        };
    }
    n
}

#[test]
fn hostile_debs_are_refused_by_name() {
    let cases: [(&str, &[&str]); 7] = [
        (
            "deb-dotdot.deb",
            &["deb-dotdot.deb (data.tar)", "./../../bake-hostile-escape", DOTDOT],
        ),
        (
            "deb-symlink-escape.deb",
            &["/usr/link is a symlink in this layer"],
        ),
        (
            "deb-device.deb",
            &["deb-device.deb (data.tar)", "./dev/mem", "device nodes and fifos"],
        ),
        (
            "deb-bad-name.deb",
            &[
                "deb-bad-name.deb is not a valid Debian package",
                "invalid package name \"../../etc\"",
            ],
        ),
        (
            "deb-member-size-huge.deb",
            &["deb-member-size-huge.deb", "the control archive is too large"],
        ),
        (
            "deb-pax-huge.deb",
            &["deb-pax-huge.deb (data.tar)", "PAX extended header", LIMIT_META],
        ),
        ("deb-bomb.deb", &[]),
    ];
    for (name, pieces) in cases {
        let area = Area::new();
        let want = if pieces.is_empty() { O } else { E(pieces) };
        check(name, "deb", deb(&area, name, &ReadLimits::DEFAULT), want);
        area.assert_contained(name);
    }
}

/// The plain `write_layer` uses the default limits.
#[test]
fn default_limits_apply_to_write_layer() {
    let area = Area::new();
    let sources = [Source::Unpack {
        src: file("pax-record-huge.tar"),
        to: "/srv".into(),
    }];
    let err = write_layer(&sources, &opts(&area), Vec::new()).unwrap_err();
    assert_eq!(err.source_index(), Some(0));
    assert!(err.to_string().contains(LIMIT_META), "{err}");
    area.assert_contained("write_layer");
}

// ---------------------------------------------------------------------------
// Issue 15: inputs made in the test, one class each.

/// Unpacks `bytes` (an archive written to the area) with `limits`.
fn unpack_bytes(area: &Area, bytes: &[u8], limits: &ReadLimits) -> Result<Vec<u8>, LayerError> {
    let inputs = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let src = inputs.path().join("archive");
    std::fs::write(&src, bytes).unwrap();
    let sources = [Source::Unpack { src, to: "/x".into() }];
    write_layer_with_limits(&sources, &opts(area), limits, Vec::new()).map(|(bytes, _)| bytes)
}

/// A `.deb` of `data` (a plain data.tar), unpacked with `limits`.
fn deb_bytes(area: &Area, data: &[u8], limits: &ReadLimits) -> Result<Vec<u8>, LayerError> {
    let inputs = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = inputs.path().join("p.deb");
    let bytes = corpus::deb(
        "Package: pkg\nVersion: 1\nArchitecture: all\nDescription: d\n",
        "data.tar",
        data,
    );
    std::fs::write(&path, &bytes).unwrap();
    let sources = [Source::Deb {
        src: path,
        sha256: Digest::of(&bytes),
    }];
    write_layer_with_limits(&sources, &opts(area), limits, Vec::new()).map(|(bytes, _)| bytes)
}

#[test]
fn a_whiteout_in_any_component_of_a_name_is_refused() {
    // `a/.wh.b/c` would leave a directory `.wh.b` in our layer, which
    // unpackers read as "delete a/b" of the base.
    for name in ["a/.wh.b/c", ".wh.etc/passwd", "a/b/.wh..wh..opq/x", "a/.wh.b"] {
        let tar = corpus::Tar::default().file(name, 0o644, b"x").end();
        let want = E(&["archive", "starting with `.wh.`"]);
        let area = Area::new();
        check(
            name,
            "unpack",
            unpack_bytes(&area, &tar, &ReadLimits::DEFAULT),
            want,
        );
        check(name, "deb", deb_bytes(&area, &tar, &ReadLimits::DEFAULT), want);
        area.assert_contained(name);
    }
    // A name that merely contains `.wh.` elsewhere is fine.
    let tar = corpus::Tar::default().file("a/b.wh.c/d", 0o644, b"x").end();
    assert!(unpack_bytes(&Area::new(), &tar, &ReadLimits::DEFAULT).is_ok());
}

#[test]
fn owners_beyond_32_bits_are_refused() {
    for (what, set) in [
        (
            "uid",
            (|h: &mut tar::Header| h.set_uid(1 << 32)) as fn(&mut tar::Header),
        ),
        ("gid", |h: &mut tar::Header| h.set_gid(u64::MAX >> 1)),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_path("big").unwrap();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        set(&mut h);
        h.set_cksum();
        let mut tar = h.as_bytes().to_vec();
        tar.extend_from_slice(&corpus::padded(b"x"));
        tar.extend_from_slice(&[0u8; 1024]);
        let area = Area::new();
        let want = if what == "uid" {
            E(&["big", "its uid", "out of range (0 to 4294967295)"])
        } else {
            E(&["big", "its gid", "out of range (0 to 4294967295)"])
        };
        check(
            what,
            "unpack",
            unpack_bytes(&area, &tar, &ReadLimits::DEFAULT),
            want,
        );
        check(what, "deb", deb_bytes(&area, &tar, &ReadLimits::DEFAULT), want);
    }
    // PAX `uid`/`gid` records (what `tar --format=pax` writes for ids past
    // 7 octal digits) are the owner: in range they are kept, beyond 32 bits
    // refused, not silently replaced by the header's field.
    let pax = |uid: &str| {
        corpus::Tar::default()
            .pax(&[("uid", uid), ("gid", "3000001")])
            .file("owned", 0o644, b"x")
            .end()
    };
    let area = Area::new();
    let layer = unpack_bytes(&area, &pax("3000000"), &ReadLimits::DEFAULT).unwrap();
    let e = read_layer_entries(&layer[..]).unwrap();
    let owned = e.iter().find(|e| e.path == "x/owned").unwrap();
    assert_eq!((owned.uid, owned.gid), (3_000_000, 3_000_001));
    let raw = read_layer_entries(&pax("3000000")[..]).unwrap();
    assert_eq!((raw[0].uid, raw[0].gid), (3_000_000, 3_000_001));
    let applied = area.dir.path().join("pax.tar");
    std::fs::write(&applied, pax("3000000")).unwrap();
    apply_layer(&applied, &area.root()).unwrap();
    let m = std::fs::symlink_metadata(area.root().join("owned")).unwrap();
    assert_eq!((m.uid(), m.gid()), (3_000_000, 3_000_001));
    for (uid, want) in [
        ("4294967296", E(&["owned", "its uid 4294967296", "out of range"])),
        ("12x", E(&["owned", "invalid PAX uid or gid record"])),
    ] {
        check(
            uid,
            "unpack",
            unpack_bytes(&Area::new(), &pax(uid), &ReadLimits::DEFAULT),
            want,
        );
    }
}

#[test]
fn a_zstd_stream_opening_with_a_skippable_frame_is_zstd() {
    let tar = corpus::Tar::default().file("etc/motd", 0o644, b"hello\n").end();
    // A skippable frame (magic 0x184D2A5E, 4 bytes of payload), then the data.
    let mut zst = vec![0x5e, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4];
    zst.extend_from_slice(&corpus::zstd(&tar));
    let layer = unpack_bytes(&Area::new(), &zst, &ReadLimits::DEFAULT).unwrap();
    let names: Vec<_> = read_layer_entries(&layer[..])
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert!(names.iter().any(|n| n == "x/etc/motd"), "{names:?}");
    assert!(read_layer_entries(&zst[..]).is_ok());
    // What pzstd (from the zstd package) writes, when it is installed.
    if let Ok(out) = std::process::Command::new("pzstd")
        .args(["-q", "-c", "-p", "2"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&tar)?;
            child.wait_with_output()
        })
    {
        assert!(out.status.success());
        assert_eq!(
            &out.stdout[1..4],
            &[0x2a, 0x4d, 0x18],
            "pzstd opens with a skippable frame"
        );
        unpack_bytes(&Area::new(), &out.stdout, &ReadLimits::DEFAULT).unwrap();
    }
}

#[test]
fn errors_never_echo_header_bytes_or_raw_control_characters() {
    // A name with a newline, a carriage return and a terminal escape: it
    // must not reach error text raw (it could fake a log line).
    let name = "evil\nerror: everything is fine\r\x1b[2J";
    let tar = corpus::Tar::default()
        .file(name, 0o644, b"x")
        .hardlink("h", "nowhere")
        .end();
    let err = unpack_bytes(&Area::new(), &tar, &ReadLimits::DEFAULT)
        .unwrap_err()
        .to_string();
    assert!(
        !err.contains('\n') && !err.contains('\r') && !err.contains('\x1b'),
        "{err:?}"
    );
    // The same name in every other shape of error: a file where a
    // directory is needed, `..` out of the root, a link out, a device, a
    // name twice as file and directory; unpacked, and applied to a root.
    let shapes = [
        corpus::Tar::default()
            .file(name, 0o644, b"x")
            .file(&format!("{name}/z"), 0o644, b"x")
            .end(),
        corpus::Tar::default()
            .file(&format!("../{name}"), 0o644, b"x")
            .end(),
        corpus::Tar::default().hardlink(name, &format!("/{name}")).end(),
        corpus::Tar::default()
            .symlink(name, "/")
            .file(&format!("{name}/z"), 0o644, b"x")
            .end(),
        corpus::Tar::default()
            .raw(&corpus::header(name.as_bytes(), b'3', 0o644, 0, b""))
            .end(),
        corpus::Tar::default()
            .file(&format!("{name}/x.wh.x/.wh.y"), 0o644, b"")
            .end(),
    ];
    for (i, tar) in shapes.iter().enumerate() {
        let area = Area::new();
        let mut texts = Vec::new();
        if let Err(e) = unpack_bytes(&area, tar, &ReadLimits::DEFAULT) {
            texts.push(("unpack", e.to_string()));
        }
        let layer = area.dir.path().join("layer.tar");
        std::fs::write(&layer, tar).unwrap();
        if let Err(e) = apply_layer(&layer, &area.root()) {
            texts.push(("apply", e.to_string()));
        }
        for (how, text) in texts {
            assert!(
                !text.contains('\n') && !text.contains('\r') && !text.contains('\x1b'),
                "shape {i}, {how}: {text:?}"
            );
        }
    }
    // A numeric field holding someone's secret: named, never quoted.
    let mut h = corpus::header(b"f", b'0', 0o644, 1, b"");
    h[108..116].copy_from_slice(b"TOKEN42\0");
    let mut fixed = tar::Header::from_byte_slice(&h).clone();
    fixed.set_cksum();
    let mut tar = fixed.as_bytes().to_vec();
    tar.extend_from_slice(&corpus::padded(b"x"));
    tar.extend_from_slice(&[0u8; 1024]);
    for (reader, err) in [
        (
            "unpack",
            unpack_bytes(&Area::new(), &tar, &ReadLimits::DEFAULT)
                .map(|_| ())
                .unwrap_err(),
        ),
        (
            "deb",
            deb_bytes(&Area::new(), &tar, &ReadLimits::DEFAULT)
                .map(|_| ())
                .unwrap_err(),
        ),
        (
            "read_layer_entries",
            read_layer_entries(&tar[..]).map(|_| ()).unwrap_err(),
        ),
    ] {
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            text.push_str(&s.to_string());
            source = s.source();
        }
        assert!(!text.contains("TOKEN42"), "{reader}: {text}");
        assert!(
            text.contains("uid field is not a valid number"),
            "{reader}: {text}"
        );
    }
}

#[test]
fn the_entry_count_is_bounded_in_every_reader() {
    let mut t = corpus::Tar::default();
    for i in 0..20 {
        t = t.file(&format!("f{i}"), 0o644, b"");
    }
    let tar = t.end();
    let limits = ReadLimits {
        max_entries: 10,
        ..ReadLimits::DEFAULT
    };
    let want = E(&["more than the limit of 10 entries"]);
    let area = Area::new();
    check("20 entries", "unpack", unpack_bytes(&area, &tar, &limits), want);
    check("20 entries", "deb", deb_bytes(&area, &tar, &limits), want);
    check(
        "20 entries",
        "read_layer_entries",
        read_layer_entries_with_limits(&tar[..], &limits),
        want,
    );
    let path = area.dir.path().join("layer.tar");
    std::fs::write(&path, &tar).unwrap();
    check(
        "20 entries",
        "apply_layer",
        apply_layer_with_limits(&path, &area.root(), &limits),
        want,
    );
    // Exactly at the limit is fine; PAX records are not entries.
    let mut t = corpus::Tar::default();
    for i in 0..10 {
        t = t
            .pax(&[("path", &format!("long-name-{i}"))])
            .file(&format!("f{i}"), 0o644, b"");
    }
    assert!(read_layer_entries_with_limits(&t.end()[..], &limits).is_ok());
}

#[test]
fn copies_and_recipe_paths_cannot_make_whiteouts() {
    let area = Area::new();
    let ctx = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::create_dir_all(ctx.path().join("app/sub")).unwrap();
    std::fs::write(ctx.path().join("app/ok"), "x").unwrap();
    std::fs::write(ctx.path().join("app/sub/.wh.passwd"), "x").unwrap();
    let copy = [Source::Copy {
        src: ctx.path().join("app"),
        to: "/etc".into(),
        mode: None,
        owner: Default::default(),
        exclude: Vec::new(),
        mtime: Default::default(),
        capabilities: None,
    }];
    let err = write_layer(&copy, &opts(&area), Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("app/sub/.wh.passwd") && err.contains("means a deletion"),
        "{err}"
    );
    // Excluded, it is fine.
    let excluded = [Source::Copy {
        src: ctx.path().join("app"),
        to: "/etc".into(),
        mode: None,
        owner: Default::default(),
        exclude: vec!["**/.wh.*".into()],
        mtime: Default::default(),
        capabilities: None,
    }];
    write_layer(&excluded, &opts(&area), Vec::new()).unwrap();
    for path in ["/etc/.wh.passwd", "/.wh..wh..opq", "/a/.wh.b/c"] {
        let inline = [Source::Inline {
            path: path.into(),
            content: b"x".to_vec(),
            mode: 0o644,
            owner: Default::default(),
            capabilities: None,
        }];
        let err = write_layer(&inline, &opts(&area), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("means a deletion"), "{path}: {err}");
    }
    // A run step's change below a `.wh.` directory it made.
    let root = area.dir.path().join("changed");
    std::fs::create_dir_all(root.join("a/.wh.b")).unwrap();
    std::fs::write(root.join("a/.wh.b/c"), "x").unwrap();
    let changes = [Source::Changes {
        root: root.clone(),
        changes: vec![bake_layer::Change::Put("/a/.wh.b/c".into())],
    }];
    let err = write_layer(&changes, &opts(&area), Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a/.wh.b/c") && err.contains("mean deletions"),
        "{err}"
    );
    // A symlink of the layers below leading to a `.wh.` name.
    let mut below = opts(&area);
    below.below_links = [("srv/x".to_owned(), ".wh.y".to_owned())].into_iter().collect();
    let through = [Source::Inline {
        path: "/srv/x/file".into(),
        content: b"x".to_vec(),
        mode: 0o644,
        owner: Default::default(),
        capabilities: None,
    }];
    let err = write_layer(&through, &below, Vec::new()).unwrap_err().to_string();
    assert!(
        err.contains("/srv/.wh.y/file") && err.contains("means a deletion"),
        "{err}"
    );
}
