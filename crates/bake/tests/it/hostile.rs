//! Hostile inputs through `bake build`: the archives and packages of
//! `testdata/hostile/` in `unpack` and `deb` steps, base layouts and
//! docker-archives made from them. Each fails with exit 1 and an error
//! naming the recipe line, the archive or blob and the entry; nothing is
//! written outside the build's own directories (the build context's
//! `out`, TMPDIR, HOME), no temp file is left, no tag is written, and
//! nothing panics.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use crate::common::*;

fn hostile(name: &str) -> PathBuf {
    repo().join("testdata/hostile").join(name)
}

const ESCAPE: &str = "bake-hostile-escape";

/// A build area: `ctx/` (recipe and inputs), `tmp/` (TMPDIR), `home/`
/// (HOME, so the layer cache), `victim/` (must not change), and the
/// layout at `ctx/layout`.
struct Area {
    dir: tempfile::TempDir,
}

impl Area {
    fn new() -> Area {
        Area::new_in(&std::env::temp_dir())
    }

    /// An area in `parent` (for paths that must not be below `/tmp`).
    fn new_in(parent: &Path) -> Area {
        let dir = tempfile::tempdir_in(parent).unwrap();
        for d in ["canary", "ctx", "tmp", "home", "victim"] {
            fs_err::create_dir(dir.path().join(d)).unwrap();
        }
        fs_err::write(dir.path().join("victim/passwd"), "root:x:0:0\n").unwrap();
        fs_err::write(dir.path().join("canary/status"), CANARY).unwrap();
        Area { dir }
    }

    /// This area's host canary: a dpkg `status` for `bake-hostile-canary`
    /// that hostile bases link their dpkg database to (each test its own).
    fn canary(&self) -> PathBuf {
        self.dir.path().join("canary")
    }

    fn ctx(&self) -> PathBuf {
        self.dir.path().join("ctx")
    }

    fn build(&self, recipe: &str) -> std::process::Output {
        self.build_with(recipe, &[])
    }

    /// [`Area::build`] with more arguments for `bake build`.
    fn build_with(&self, recipe: &str, extra: &[&str]) -> std::process::Output {
        fs_err::write(self.ctx().join("bake.toml"), recipe).unwrap();
        bake(&self.ctx())
            .env("TMPDIR", self.dir.path().join("tmp"))
            .env("HOME", self.dir.path().join("home"))
            .env("RUST_BACKTRACE", "1")
            .args(["build", "bake.toml", "--layout", "layout"])
            .args(extra)
            .output()
            .unwrap()
    }

    /// Fails with exit code 1 and an `error:` naming every piece; then
    /// checks containment. Returns stderr.
    fn fails(&self, case: &str, recipe: &str, pieces: &[&str]) -> String {
        let out = self.build(recipe);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{case}: {stderr}");
        assert!(stderr.starts_with("error: "), "{case}: {stderr}");
        assert!(!stderr.contains("panicked"), "{case}: {stderr}");
        for p in pieces {
            assert!(stderr.contains(p), "{case}: {stderr:?} lacks {p:?}");
        }
        self.assert_contained(case);
        if let Ok(index) = fs_err::read_to_string(self.ctx().join("layout/index.json")) {
            assert!(
                !index.contains("ref.name"),
                "{case}: a failed build tagged something: {index}"
            );
        }
        stderr
    }

    fn assert_contained(&self, case: &str) {
        let root = self.dir.path();
        for outside in [
            root.join(ESCAPE),
            root.parent().unwrap().join(ESCAPE),
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
        let mut names: Vec<String> = fs_err::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["canary", "ctx", "home", "tmp", "victim"], "{case}");
        assert_eq!(
            fs_err::read(self.canary().join("status")).unwrap(),
            CANARY,
            "{case}"
        );
        assert_eq!(
            fs_err::read_dir(self.canary()).unwrap().count(),
            1,
            "{case}: written beside the canary"
        );
        assert_eq!(
            fs_err::read_to_string(root.join("victim/passwd")).unwrap(),
            "root:x:0:0\n",
            "{case}"
        );
        assert_eq!(
            fs_err::read_dir(root.join("victim")).unwrap().count(),
            1,
            "{case}"
        );
        let left: Vec<_> = fs_err::read_dir(root.join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "{case}: temp files left: {left:?}");
        // No file named like an escape anywhere in the build's directories
        // but where an archive is allowed to put it (nowhere, for a failure).
        assert_no_escape_below(root, case);
    }
}

fn assert_no_escape_below(dir: &Path, case: &str) {
    for e in fs_err::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        assert!(name != ESCAPE, "{case}: {} exists", e.path().display());
        if e.file_type().unwrap().is_dir() {
            assert_no_escape_below(&e.path(), case);
        }
    }
}

fn unpack_recipe(archive: &str) -> String {
    format!(
        "[image]\nname = \"hostile\"\n\n[[layer]]\n[[layer.step]]\nunpack = \"{archive}\"\nto = \"/srv\"\n"
    )
}

#[test]
fn hostile_unpack_archives_fail_naming_the_step_archive_and_entry() {
    let cases: &[(&str, &[&str])] = &[
        (
            "dotdot.tar",
            &[
                "\"../bake-hostile-escape\"",
                "'..' would leave the unpack directory",
            ],
        ),
        (
            "dotdot-nested.tar",
            &["\"a/../../bake-hostile-escape\"", "'..' would leave"],
        ),
        (
            "symlink-escape.tar",
            &["cannot create /srv/link/bake-hostile-escape: /srv/link is a symlink in this layer"],
        ),
        (
            "symlink-escape-relative.tar",
            &["/srv/link is a symlink in this layer"],
        ),
        ("hardlink-escape.tar", &["entry \"h\"", "'..' would leave"]),
        (
            "hardlink-absolute.tar",
            &["entry \"h\"", "not a regular file earlier in this archive"],
        ),
        (
            "hardlink-through-symlink.tar",
            &["entry \"h\"", "not a regular file earlier"],
        ),
        ("whiteout-escape.tar", &["entry \".wh..\"", "mean deletions"]),
        (
            "device-char.tar",
            &["entry \"dev/mem\"", "device nodes and fifos are not supported"],
        ),
        ("fifo.tar", &["entry \"run/fifo\"", "device nodes and fifos"]),
        (
            "sparse.tar",
            &["entry \"sparse\"", "sparse files are not supported"],
        ),
        ("size-beyond-stream.tar", &["entry \"big\"", "truncated"]),
        ("pax-size-huge.tar", &["entry \"f\"", "truncated"]),
        (
            "pax-record-huge.tar",
            &["PAX extended header of 17179869184 bytes, more than the limit of 1048576 bytes"],
        ),
        (
            "gnu-longname-huge.tar",
            &["GNU long name record of 1073741824 bytes"],
        ),
        ("pax-malformed.tar", &["entry \"f\"", "malformed pax extension"]),
        ("truncated.tar.gz", &["truncated.tar.gz"]),
        ("truncated-trailer.tar.gz", &["truncated-trailer.tar.gz"]),
        ("corrupt-crc.tar.gz", &["corrupt-crc.tar.gz"]),
        ("truncated.tar.zst", &["truncated.tar.zst"]),
        ("corrupt.tar.xz", &["corrupt.tar.xz"]),
        ("bzip2.tar.bz2", &["bzip2-compressed archives are not supported"]),
        ("garbage.tar", &["garbage.tar"]),
    ];
    for (name, pieces) in cases {
        let area = Area::new();
        fs_err::copy(hostile(name), area.ctx().join(name)).unwrap();
        let mut all = vec!["bake.toml:6:1:", *name];
        all.extend_from_slice(pieces);
        area.fails(name, &unpack_recipe(name), &all);
    }
}

/// What is not refused is contained: an absolute name lands below `to`,
/// setuid bits are kept (the policy), the later duplicate wins.
#[test]
fn accepted_hostile_archives_stay_below_their_destination() {
    let area = Area::new();
    let mut recipe = String::from("[image]\nname = \"hostile\"\n\n[[layer]]\n");
    for name in ["absolute.tar", "setuid.tar", "duplicate.tar", "bomb.tar.zst"] {
        fs_err::copy(hostile(name), area.ctx().join(name)).unwrap();
        recipe.push_str(&format!("[[layer.step]]\nunpack = \"{name}\"\nto = \"/srv\"\n"));
    }
    let out = area.build(&recipe);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    area.assert_contained("accepted");
    let layout = area.ctx().join("layout");
    assert_store_clean(&layout);
    let index: serde_json::Value =
        serde_json::from_slice(&fs_err::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest_digest: bake_digest::Digest =
        index["manifests"][0]["digest"].as_str().unwrap().parse().unwrap();
    let store = bake_store::BlobStore::open(&layout).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&store.read_verified(&manifest_digest).unwrap()).unwrap();
    let layer: bake_digest::Digest = manifest["layers"][0]["digest"].as_str().unwrap().parse().unwrap();
    let entries = bake_layer::read_layer_entries(store.open_verified(&layer).unwrap()).unwrap();
    let find = |p: &str| entries.iter().find(|e| e.path == p);
    assert!(find(&format!("srv/tmp/{ESCAPE}")).is_some());
    assert!(
        entries.iter().all(|e| e.path.starts_with("srv/")),
        "everything below /srv"
    );
    assert_eq!(find("srv/bin/su").unwrap().mode, 0o4755);
    assert_eq!(find("srv/etc/conf").unwrap().size, "second\n".len() as u64);
}

#[test]
fn hostile_debs_fail_naming_the_package_and_entry() {
    let cases: &[(&str, &[&str])] = &[
        (
            "deb-dotdot.deb",
            &[
                "deb-dotdot.deb (data.tar)",
                "./../../bake-hostile-escape",
                "'..' would leave",
            ],
        ),
        (
            "deb-symlink-escape.deb",
            &["/usr/link is a symlink in this layer"],
        ),
        (
            "deb-device.deb",
            &["deb-device.deb (data.tar)", "./dev/mem", "device nodes"],
        ),
        (
            "deb-bad-name.deb",
            &[
                "is not a valid Debian package",
                "invalid package name \"../../etc\"",
            ],
        ),
        ("deb-member-size-huge.deb", &["the control archive is too large"]),
        ("deb-pax-huge.deb", &["PAX extended header of 17179869184 bytes"]),
    ];
    for (name, pieces) in cases {
        let area = Area::new();
        fs_err::copy(hostile(name), area.ctx().join(name)).unwrap();
        let sha = bake_digest::Digest::of(&fs_err::read(hostile(name)).unwrap());
        let recipe = format!(
            "[image]\nname = \"hostile\"\n\n[[layer]]\n[[layer.step]]\ndeb = \"{name}\"\nsha256 = \"{}\"\n",
            sha.hex()
        );
        let mut all = vec!["bake.toml:6:1:", *name];
        all.extend_from_slice(pieces);
        area.fails(name, &recipe, &all);
    }
}

fn base_recipe(base: &str) -> String {
    format!(
        "base = \"{base}\"\n[image]\nname = \"hostile\"\n\n[[layer]]\n[[layer.step]]\nfile = \"/x\"\ncontent = \"x\"\n"
    )
}

#[test]
fn hostile_base_images_fail_naming_the_blob() {
    // A layer whose bytes do not match its digest.
    let area = Area::new();
    let layer = fs_err::read(hostile("setuid.tar")).unwrap();
    let (layout, _m, l) = one_layer_layout(&area.ctx().join("base"), &layer);
    let path = layout.store().path(&l);
    let mut bytes = fs_err::read(&path).unwrap();
    bytes[700] ^= 1;
    fs_err::write(&path, bytes).unwrap();
    area.fails(
        "corrupt layer",
        &base_recipe("oci:base:base"),
        &["bake.toml:1:8:", &format!("blob {l} is corrupt"), "blobs/sha256/"],
    );
    assert!(!area.ctx().join("layout/blobs/sha256").join(l.hex()).exists());

    // A blob that is a symlink to a host file with the right digest.
    let area = Area::new();
    let (layout, _m, l) = one_layer_layout(&area.ctx().join("base"), &layer);
    let path = layout.store().path(&l);
    let host_copy = area.dir.path().join("victim/layer");
    fs_err::rename(&path, &host_copy).unwrap();
    std::os::unix::fs::symlink(&host_copy, &path).unwrap();
    let out = area.build(&base_recipe("oci:base:base"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not a regular file"), "{stderr}");
    fs_err::remove_file(&host_copy).unwrap();
    area.assert_contained("symlinked blob");

    // A manifest of an unknown media type, and an index.json that is huge.
    let area = Area::new();
    let (layout, m, _l) = one_layer_layout(&area.ctx().join("base"), &layer);
    let odd = bake_image::Descriptor::new("application/vnd.evil+json", m.clone(), 10);
    layout.set_tags(&odd, &["base".into()]).unwrap();
    area.fails(
        "unknown media type",
        &base_recipe("oci:base:base"),
        &[
            "bake.toml:1:8:",
            "unsupported media type \"application/vnd.evil+json\"",
        ],
    );
    let f = fs_err::File::create(layout.dir().join("index.json")).unwrap();
    f.set_len(bake_image::MAX_JSON_SIZE + 1).unwrap();
    area.fails(
        "huge index.json",
        &base_recipe("oci:base:base"),
        &["index.json is", "more than the"],
    );
}

#[test]
fn hostile_docker_archive_bases_fail_naming_the_file() {
    for (name, piece) in [
        (
            "docker-layer-escape.tar",
            "manifest.json names an invalid path \"../../../../etc/passwd\"",
        ),
        ("docker-pax-bomb.tar", "PAX extended header of 17179869184 bytes"),
        ("docker-symlink-loop.tar", "is a symlink loop"),
        ("docker-layer-digest-mismatch.tar", "holds content with digest"),
        ("docker-manifest-malformed.tar", "malformed JSON in manifest.json"),
    ] {
        let area = Area::new();
        fs_err::copy(hostile(name), area.ctx().join(name)).unwrap();
        area.fails(
            name,
            &base_recipe(&format!("docker-archive:{name}")),
            &["bake.toml:1:8:", piece],
        );
    }
}

/// Error text from an archive cannot drive the terminal: control
/// characters in what a stranger wrote are shown escaped.
#[test]
fn control_characters_from_archives_are_escaped() {
    let area = Area::new();
    // A header whose checksum field holds an escape sequence.
    let mut h = [0u8; 512];
    h[..4].copy_from_slice(b"evil");
    h[148..156].copy_from_slice(b"\x1b[2J\x1b]0;");
    fs_err::write(area.ctx().join("evil.tar"), h).unwrap();
    // A malformed number is never quoted: the field is named instead.
    let stderr = area.fails(
        "escapes",
        &unpack_recipe("evil.tar"),
        &["evil.tar", "cksum field"],
    );
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
    assert!(!stderr.contains("[2J"), "{stderr:?}");
    // An entry name (quoted in the error) with an escape sequence in it.
    let area = Area::new();
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..12].copy_from_slice(b"../\x1b[2Jevil!");
    h.set_size(0);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut bytes = h.as_bytes().to_vec();
    bytes.extend_from_slice(&[0u8; 1024]);
    fs_err::write(area.ctx().join("evil.tar"), bytes).unwrap();
    let stderr = area.fails("escaped name", &unpack_recipe("evil.tar"), &["evil.tar", "evil!"]);
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
    assert!(stderr.contains("\\u{1b}"), "{stderr:?}");
}

/// The content of each area's host canary (see [`Area::canary`]).
const CANARY: &[u8] = b"Package: bake-hostile-canary\nStatus: install ok installed\nVersion: 6.6.6\n";

/// The layer blobs of the image tagged in `layout`, base first.
fn image_layers(layout: &Path) -> Vec<PathBuf> {
    let index: serde_json::Value =
        serde_json::from_slice(&fs_err::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs_err::read(layout.join("blobs/sha256").join(&manifest[7..])).unwrap())
            .unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            layout
                .join("blobs/sha256")
                .join(&l["digest"].as_str().unwrap()[7..])
        })
        .collect()
}

/// A `deb` step over a base whose dpkg database is a link out of the root
/// (to a host canary holding a status paragraph, or to a host directory):
/// the status below is read from the base's layers only, never through the
/// link on the host; the build succeeds and the image's database is where
/// the link leads inside the image (or replaces the link), holding our
/// package only. Nothing is read from or written to the host path, with
/// and without the layer cache.
#[test]
fn a_deb_step_over_a_hostile_base_reads_only_the_base() {
    let deb = bake_testkit::fixtures::deb("good", &[("./usr/share/good/README", b"good\n")]);
    let sha = bake_digest::Digest::of(&deb);
    let recipe = format!(
        "base = \"oci:base:base\"\n[image]\nname = \"hostile\"\n\n[[layer]]\n[[layer.step]]\n\
         deb = \"good.deb\"\nsha256 = \"{}\"\n",
        sha.hex()
    );
    for no_cache in [false, true] {
        // The shapes of the corpus's `dpkg-*-symlink.tar`, made here to
        // point at this area's own canary.
        for case in ["dpkg-status-symlink", "dpkg-dir-symlink", "victim"] {
            let area = Area::new();
            let victim = area.dir.path().join("victim");
            let canary = area.canary();
            let canary = canary.to_str().unwrap();
            // (base layer, where the image's status ends up)
            let (layer, status_at) = match case {
                // /var/lib/dpkg/status -> the canary's status, absolute.
                "dpkg-status-symlink" => (
                    links_tar(
                        &["var/", "var/lib/", "var/lib/dpkg/"],
                        &[("var/lib/dpkg/status", &format!("{canary}/status"))],
                    ),
                    "/var/lib/dpkg/status".to_owned(),
                ),
                // /var/lib/dpkg -> the canary directory by `..`s.
                "dpkg-dir-symlink" => (
                    links_tar(
                        &["var/", "var/lib/"],
                        &[("var/lib/dpkg", &format!("../../../../../../../../../..{canary}"))],
                    ),
                    format!("{canary}/status"),
                ),
                // Made here: /var/lib/dpkg -> the victim directory, by
                // absolute host path.
                _ => (
                    links_tar(
                        &["var/", "var/lib/"],
                        &[("var/lib/dpkg", victim.to_str().unwrap())],
                    ),
                    format!("{}/status", victim.display()),
                ),
            };
            let case = format!("{case} (no cache: {no_cache})");
            one_layer_layout(&area.ctx().join("base"), &layer);
            fs_err::write(area.ctx().join("good.deb"), &deb).unwrap();
            let extra: &[&str] = if no_cache { &["--no-cache"] } else { &[] };
            let out = area.build_with(&recipe, extra);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{case}: {stderr}");
            // The area's base is in `ctx/base`: contained, victim untouched.
            area.assert_contained(&case);
            let layers = image_layers(&area.ctx().join("layout"));
            let status = bake_layer::read_file_from_layers(
                &layers,
                &status_at,
                1 << 20,
                &bake_layer::ReadLimits::DEFAULT,
            )
            .unwrap()
            .unwrap_or_else(|| panic!("{case}: no status at {status_at}"));
            let status = String::from_utf8(status).unwrap();
            assert!(status.starts_with("Package: good\n"), "{case}: {status}");
            assert!(!status.contains("bake-hostile-canary"), "{case}: {status}");
            assert_eq!(status.matches("Package:").count(), 1, "{case}: {status}");
        }
    }
}

/// A `run` step over a base whose links point out of the root: `/etc` to
/// the victim directory by absolute host path, `/up` by `..`s past the
/// root, `/tmp/x` likewise (under the sandbox's tmpfs), `/var/lib/dpkg` to
/// the host canary. The commands write through them; everything lands in
/// the scratch root (so in the layer, at the link's target inside the
/// image), the host's victim and canary are untouched, and nothing is left
/// outside the build's directories.
#[test]
#[ignore = "needs root, runc and fetched debs; run via cargo xtask test"]
fn a_run_step_over_a_hostile_base_stays_in_its_scratch_root() {
    require("runc");
    // Not below /tmp, which is a fresh tmpfs in the sandbox: what the
    // commands write through /etc must reach the scratch root's disk. The
    // target directory may itself be below /tmp (a checkout in /tmp).
    let target_tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let parent = if target_tmp.starts_with("/tmp") {
        Path::new("/var/tmp")
    } else {
        target_tmp
    };
    let area = Area::new_in(parent);
    let victim = area.dir.path().join("victim");
    let victim_in_image = victim.strip_prefix("/").unwrap().to_str().unwrap().to_owned();
    let up = "../../../../../../../../../../../..";
    let base = links_tar(
        &["tmp/", "var/", "var/lib/"],
        &[
            ("etc", victim.to_str().unwrap()),
            ("up", up),
            ("tmp/x", up),
            ("var/lib/dpkg", &format!("{up}{}", area.canary().display())),
        ],
    );
    one_layer_layout(&area.ctx().join("base"), &base);
    let busybox = fetched(BUSYBOX_DEB);
    fs_err::copy(&busybox, area.ctx().join("busybox.deb")).unwrap();
    let script = [
        // The image's /etc is the victim's path inside the root: absent.
        "(busybox cat /etc/passwd || echo no-host-passwd)",
        "busybox mkdir -p \"$(busybox readlink /etc)\"",
        &format!("echo pwned > /etc/{ESCAPE}"),
        &format!("echo pwned > /up/{ESCAPE}"),
        // dpkg's database went where its link leads in the image (the
        // canary's host path, inside the root); the host's never shows.
        "busybox cat /var/lib/dpkg/status",
        "(busybox ls /tmp/x/ || echo no-tmp-x)",
    ]
    .join(" && ");
    let recipe = format!(
        "epoch = 1700000000\nbase = \"oci:base:base\"\n[image]\nname = \"hostile\"\n\n\
         [[layer]]\nname = \"busybox\"\n\
         [[layer.step]]\ndeb = \"busybox.deb\"\nsha256 = \"{BUSYBOX_SHA}\"\n\
         [[layer.step]]\nsymlink = \"/bin/sh\"\ntarget = \"busybox\"\n\n\
         [[layer]]\nname = \"run\"\n[[layer.step]]\nrun = [{script:?}]\n"
    );
    let out = area.build(&recipe);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for said in ["no-host-passwd", "Package: busybox-static", "no-tmp-x"] {
        assert!(stderr.contains(said), "{said}: {stderr}");
    }
    assert!(!stderr.contains("6.6.6"), "the host canary was read: {stderr}");
    area.assert_contained("run");
    assert!(!victim.join(ESCAPE).exists(), "written through /etc");

    let layers = image_layers(&area.ctx().join("layout"));
    let entries = |layer: &Path| -> Vec<String> {
        bake_layer::read_layer_entries(fs_err::File::open(layer).unwrap())
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect()
    };
    let debs = entries(&layers[1]);
    let status = format!("{}/status", area.canary().strip_prefix("/").unwrap().display());
    assert!(debs.contains(&status), "{status} missing from {debs:?}");
    assert!(!debs.iter().any(|n| n.starts_with("var/lib/dpkg")), "{debs:?}");
    // What the commands wrote, where the links lead inside the image.
    let run = entries(layers.last().unwrap());
    for want in [format!("{victim_in_image}/{ESCAPE}"), ESCAPE.to_owned()] {
        assert!(run.contains(&want), "{want} missing from {run:?}");
    }
    // The links themselves are not replaced.
    for link in ["etc", "etc/", "up", "up/", "var/lib/dpkg", "var/lib/dpkg/"] {
        assert!(!run.iter().any(|n| n == link), "{link} in {run:?}");
    }
}
