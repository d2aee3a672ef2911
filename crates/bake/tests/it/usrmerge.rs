//! Layers on a base whose directories are symlinks (a merged-`/usr` base:
//! `/bin -> usr/bin`): every entry goes where the link leads, as Docker's
//! `COPY` and dpkg put it, so no layer replaces the base's `/bin` link with
//! a directory (which would hide everything in `/usr/bin` once extracted).

#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::path::Path;

use crate::common::*;

/// A base image in `dir/base` whose `/bin` and `/lib` are links into
/// `/usr` (relative and absolute), or real directories when `merged` is
/// false.
fn base(dir: &Path, merged: bool) {
    let links = if merged {
        "[[layer.step]]\nsymlink = \"/bin\"\ntarget = \"usr/bin\"\n\
         [[layer.step]]\nsymlink = \"/lib\"\ntarget = \"/usr/lib\"\n"
    } else {
        "[[layer.step]]\ndir = \"/bin\"\n[[layer.step]]\ndir = \"/lib\"\n"
    };
    write_files(
        dir,
        &[(
            "base.toml",
            &format!(
                "epoch = 1700000000\n[image]\nname = \"base\"\n[[layer]]\nname = \"fs\"\n\
                 [[layer.step]]\ndir = \"/usr/bin\"\n[[layer.step]]\ndir = \"/usr/lib\"\n\
                 [[layer.step]]\nfile = \"/usr/bin/true\"\ncontent = \"base\"\nmode = 0o755\n{links}"
            ),
        )],
    );
    ok(bake(dir).args(["build", "base.toml", "--layout", "base", "--no-cache"]));
}

/// An archive with entries under /bin and /lib, and a hardlink through /bin.
fn tool_tar(path: &Path) {
    let header = |kind: tar::EntryType, size: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(size);
        h
    };
    let mut b = tar::Builder::new(Vec::new());
    let dir = header(tar::EntryType::Directory, 0);
    b.append_data(&mut dir.clone(), "./bin/", &[][..]).unwrap();
    b.append_data(&mut dir.clone(), "./lib/x/", &[][..]).unwrap();
    let file = header(tar::EntryType::Regular, 4);
    b.append_data(&mut file.clone(), "./bin/tool", &b"tool"[..])
        .unwrap();
    b.append_data(&mut file.clone(), "./lib/x/lib.so", &b"elf!"[..])
        .unwrap();
    let mut link = header(tar::EntryType::Link, 0);
    b.append_link(&mut link, "./bin/tool2", "./bin/tool").unwrap();
    fs_err::write(path, b.into_inner().unwrap()).unwrap();
}

/// The app recipe on `oci:base`: a copy to /bin, a `dir` at /bin, an
/// unpack with entries under /bin and /lib.
fn app(dir: &Path) {
    tool_tar(&dir.join("tool.tar"));
    write_files(
        dir,
        &[
            ("hello", "#!/bin/sh\necho hello\n"),
            (
                "app.toml",
                "epoch = 1700000000\nbase = \"oci:base:latest\"\n[image]\nname = \"app\"\n\
                 [[layer]]\nname = \"app\"\n\
                 [[layer.step]]\ncopy = \"hello\"\nto = \"/bin/hello\"\nmode = 0o755\n\
                 [[layer.step]]\ndir = \"/bin\"\n\
                 [[layer.step]]\nunpack = \"tool.tar\"\nto = \"/\"\n",
            ),
        ],
    );
}

/// The entries (name, type, link target) of the last layer of `layout`.
fn last_layer(layout: &Path, v: &serde_json::Value) -> Vec<(String, char, String)> {
    let layers = v["layers"].as_array().unwrap();
    let digest = layers.last().unwrap()["digest"].as_str().unwrap();
    let blob = fs_err::File::open(layout.join("blobs/sha256").join(&digest[7..])).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(blob));
    let mut out = Vec::new();
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let kind = match e.header().entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            _ => 'f',
        };
        let target = e
            .link_name()
            .unwrap()
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default();
        e.read_to_end(&mut Vec::new()).unwrap();
        out.push((name, kind, target));
    }
    out
}

fn build(dir: &Path, layout: &str, extra: &[&str]) -> serde_json::Value {
    let out = ok(bake(dir)
        .args(["build", "app.toml", "--layout", layout, "--json"])
        .args(extra));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn layers_write_through_the_bases_links_into_usr() {
    let d = tempfile::tempdir().unwrap();
    base(d.path(), true);
    app(d.path());
    let v = build(d.path(), "out", &["--no-cache"]);
    let entries = last_layer(&d.path().join("out"), &v);
    let names: Vec<&str> = entries.iter().map(|(n, _, _)| n.as_str()).collect();
    // Nothing at or under /bin or /lib: the base's links stay.
    assert!(
        !names.iter().any(|n| n.starts_with("bin") || n.starts_with("lib")),
        "{names:?}"
    );
    for want in [
        "usr/",
        "usr/bin/",
        "usr/bin/hello",
        "usr/bin/tool",
        "usr/lib/",
        "usr/lib/x/",
        "usr/lib/x/lib.so",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    // The hardlink names its target where the target went.
    assert!(
        entries.contains(&("usr/bin/tool2".into(), 'h', "usr/bin/tool".into())),
        "{entries:?}"
    );
}

#[test]
fn on_a_base_with_real_directories_paths_are_as_written_and_the_cache_tells_them_apart() {
    let d = tempfile::tempdir().unwrap();
    base(d.path(), true);
    app(d.path());
    let cache = ["--cache-dir", "cache"];
    let merged = build(d.path(), "a", &cache);
    let again = build(d.path(), "b", &cache);
    assert_eq!(
        again["layers"].as_array().unwrap().last().unwrap()["cached"],
        true
    );
    assert_eq!(merged["digest"], again["digest"]);

    // The same recipe on a base without the links: the layer is rebuilt
    // (its key has the base's links), and its paths are as written.
    fs_err::remove_dir_all(d.path().join("base")).unwrap();
    base(d.path(), false);
    let split = build(d.path(), "c", &cache);
    let last = split["layers"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["cached"], false, "{split}");
    let names: Vec<String> = last_layer(&d.path().join("c"), &split)
        .into_iter()
        .map(|(n, _, _)| n)
        .collect();
    for want in ["bin/", "bin/hello", "bin/tool", "lib/x/lib.so"] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
    assert!(!names.iter().any(|n| n == "usr/bin/hello"), "{names:?}");
}

#[test]
fn a_symlink_loop_in_the_base_is_an_error_naming_the_path() {
    let d = tempfile::tempdir().unwrap();
    write_files(
        d.path(),
        &[(
            "base.toml",
            "epoch = 1700000000\n[image]\nname = \"base\"\n[[layer]]\nname = \"fs\"\n\
             [[layer.step]]\nsymlink = \"/bin\"\ntarget = \"sbin\"\n\
             [[layer.step]]\nsymlink = \"/sbin\"\ntarget = \"/bin\"\n",
        )],
    );
    ok(bake(d.path()).args(["build", "base.toml", "--layout", "base", "--no-cache"]));
    app(d.path());
    let err = fails(bake(d.path()).args(["build", "app.toml", "--layout", "out", "--no-cache"]));
    assert!(err.contains("app.toml:"), "{err}");
    assert!(err.contains("/bin/hello"), "{err}");
    assert!(err.contains("symlinks of the layers below"), "{err}");
    assert_store_clean(&d.path().join("out"));
}
