//! `bake lock` and `bake build --locked`: inputs pinned in RECIPE.lock; a
//! changed copied file, archive or .deb is refused by name; a registry base
//! given by tag is built from its locked digest even after the tag moves.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use crate::common::*;

fn context(dir: &std::path::Path) {
    write_files(
        dir,
        &[
            ("www/index.html", "<h1>v1</h1>\n"),
            ("www/css/site.css", "body{}\n"),
        ],
    );
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(6);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    tar.append_data(&mut h, "vendored.txt", &b"vendor"[..]).unwrap();
    fs_err::write(dir.join("assets.tar"), tar.into_inner().unwrap()).unwrap();
    fs_err::write(
        dir.join("bake.toml"),
        r#"[image]
name = "locked"

[[layer]]
name = "site"
  [[layer.step]]
  copy = "www"
  to = "/srv/www"

  [[layer.step]]
  unpack = "assets.tar"
  to = "/srv/vendor"
"#,
    )
    .unwrap();
}

#[test]
fn lock_then_locked_builds_refuse_changed_inputs_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    context(d);
    let err = fails(bake(d).args(["build", "bake.toml", "--locked", "--layout", "l"]));
    assert!(
        err.contains("bake.toml.lock does not exist") && err.contains("bake lock"),
        "{err}"
    );

    ok(bake(d).args(["lock", "bake.toml"]));
    let lock = fs_err::read_to_string(d.join("bake.toml.lock")).unwrap();
    assert!(
        lock.contains("kind = \"copy\"") && lock.contains("path = \"www\""),
        "{lock}"
    );
    assert!(
        lock.contains("kind = \"unpack\"") && lock.contains("path = \"assets.tar\""),
        "{lock}"
    );
    assert!(
        lock.contains("output-format = ") && lock.contains("compression = \"gzip-6"),
        "{lock}"
    );
    // Stable: locking again writes the same bytes.
    ok(bake(d).args(["lock", "bake.toml"]));
    assert_eq!(fs_err::read_to_string(d.join("bake.toml.lock")).unwrap(), lock);

    let locked = build_json(d, &d.join("bake.toml"), &d.join("a"));
    let out = ok(bake(d).args(["build", "bake.toml", "--locked", "--layout", "b", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["digest"], locked["digest"]);

    // Mtimes and creation order do not matter; content does.
    filetime::set_file_mtime(
        d.join("www/index.html"),
        filetime::FileTime::from_unix_time(2_000_000_000, 0),
    )
    .unwrap();
    ok(bake(d).args(["build", "bake.toml", "--locked", "--layout", "c"]));
    fs_err::write(d.join("www/index.html"), "<h1>v2</h1>\n").unwrap();
    let err = fails(bake(d).args(["build", "bake.toml", "--locked", "--layout", "d"]));
    assert!(
        err.contains("input copy www (layer site, step 1) no longer matches the lock"),
        "{err}"
    );
    assert!(
        !d.join("d/index.json").exists(),
        "a refused locked build wrote a layout"
    );
    fs_err::write(d.join("www/index.html"), "<h1>v1</h1>\n").unwrap();
    ok(bake(d).args(["build", "bake.toml", "--locked", "--layout", "e"]));

    // An added file changes the tree too; so does a changed archive.
    fs_err::write(d.join("www/new.html"), "new\n").unwrap();
    let err = fails(bake(d).args(["build", "bake.toml", "--locked", "--layout", "f"]));
    assert!(
        err.contains("copy www") && err.contains("2 files") && err.contains("3 files"),
        "{err}"
    );
    fs_err::remove_file(d.join("www/new.html")).unwrap();
    fs_err::write(d.join("assets.tar"), b"not the same archive").unwrap();
    let err = fails(bake(d).args(["build", "bake.toml", "--locked", "--layout", "g"]));
    assert!(
        err.contains("input unpack assets.tar (layer site, step 2) no longer matches the lock"),
        "{err}"
    );
}

#[test]
#[ignore = "needs fetched .debs (cargo xtask fetch-debs); run via cargo xtask test"]
fn locked_build_refuses_a_changed_deb() {
    let debs = repo().join("recipes/busybox/debs");
    let deb = "busybox-static_1.35.0-4+deb12u1+b1_amd64.deb";
    assert!(debs.join(deb).is_file(), "run `cargo xtask fetch-debs` first");
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs_err::create_dir_all(d.join("debs")).unwrap();
    fs_err::copy(debs.join(deb), d.join("debs").join(deb)).unwrap();
    fs_err::write(
        d.join("bake.toml"),
        format!(
            "[image]\nname = \"debs\"\n[[layer]]\nname = \"pkgs\"\n[[layer.step]]\ndeb = \"debs/{deb}\"\nsha256 = \"3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744\"\n"
        ),
    )
    .unwrap();
    ok(bake(d).args(["lock", "bake.toml"]));
    ok(bake(d).args(["build", "bake.toml", "--locked", "--layout", "a"]));
    let mut bytes = fs_err::read(d.join("debs").join(deb)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs_err::write(d.join("debs").join(deb), bytes).unwrap();
    let err = fails(bake(d).args(["build", "bake.toml", "--locked", "--layout", "b"]));
    assert!(
        err.contains(&format!(
            "input deb debs/{deb} (layer pkgs, step 1) no longer matches the lock"
        )),
        "{err}"
    );
}

#[test]
#[ignore = "needs docker-registry and skopeo; run via cargo xtask test"]
fn locked_registry_base_survives_a_moved_tag() {
    require("skopeo");
    let reg = bake_testkit::TestRegistry::start(bake_testkit::TestRegistryOptions::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let base_ref = format!("{}/bases/tiny:1.0", reg.host());
    let copy_to_tag = |src: &str| {
        ok(Command::new("skopeo")
            .args(["copy", "--dest-tls-verify=false", "--preserve-digests"])
            .arg(src)
            .arg(format!("docker://{base_ref}")));
    };
    copy_to_tag(&format!("oci:{}:1.0", repo().join("recipes/site/base").display()));
    fs_err::write(
        d.join("bake.toml"),
        format!("base = \"{base_ref}\"\n[image]\nname = \"app\"\n[[layer]]\n[[layer.step]]\nfile = \"/app\"\ncontent = \"app\\n\"\n"),
    )
    .unwrap();
    ok(bake(d).args(["lock", "bake.toml"]));
    let lock = fs_err::read_to_string(d.join("bake.toml.lock")).unwrap();
    assert!(
        lock.contains("sha256:c3cda062914d2ff020c116e8290fdae3556eb925a47d90dc99adc7978703faa5"),
        "{lock}"
    );
    let before = build_json(d, &d.join("bake.toml"), &d.join("before"));

    // Move the tag to another image (the hello example).
    ok(bake(d)
        .arg("build")
        .arg(repo().join("recipes/hello/bake.toml"))
        .args(["--layout", "hello", "-q"]));
    copy_to_tag(&format!("oci:{}:latest", d.join("hello").display()));
    let moved = build_json(d, &d.join("bake.toml"), &d.join("moved"));
    assert_ne!(moved["digest"], before["digest"], "the tag did not move");
    let out = ok(bake(d).args(["build", "bake.toml", "--locked", "--layout", "locked", "--json"]));
    let locked: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        locked["digest"], before["digest"],
        "--locked did not build from the locked base digest"
    );
}
