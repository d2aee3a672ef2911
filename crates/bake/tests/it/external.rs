//! Independent tools read what bake writes: oci-image-tool validates the
//! layout, skopeo inspects it, umoci unpacks it to the tree we meant, runc
//! and podman run the example, podman loads the docker-archive.
//!
//! These need Debian packages and run under `cargo xtask test` (which
//! installs them); plain `cargo test` skips them as ignored.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use crate::common::*;

const HELLO: &str = "Hello from an image baked by bake!\n";

fn build_hello(dir: &Path, extra: &[&str]) -> serde_json::Value {
    let out = ok(bake(dir)
        .arg("build")
        .arg(repo().join("recipes/hello/bake.toml"))
        .args(["--layout", "layout", "--json"])
        .args(extra));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
#[ignore = "needs oci-image-tool and skopeo; run via cargo xtask test"]
fn layouts_validate_and_inspect() {
    require("oci-image-tool");
    require("skopeo");
    let tmp = tempfile::tempdir().unwrap();
    for name in recipe_names() {
        let layout = tmp.path().join(&name);
        let v = build_json(
            tmp.path(),
            &repo().join(format!("recipes/{name}/bake.toml")),
            &layout,
        );
        for tag in v["tags"].as_array().unwrap() {
            let tag = tag.as_str().unwrap();
            ok(Command::new("oci-image-tool")
                .args(["validate", "--type", "image", "--ref", &format!("name={tag}")])
                .arg(&layout));
            let out = ok(Command::new("skopeo")
                .arg("inspect")
                .arg(format!("oci:{}:{tag}", layout.display())));
            let inspected: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(
                inspected["Digest"], v["digest"],
                "skopeo sees another digest for {name}:{tag}"
            );
            assert_eq!(inspected["Architecture"], "amd64");
            assert_eq!(inspected["Os"], "linux");
            assert_eq!(
                inspected["Layers"].as_array().unwrap().len(),
                v["layers"].as_array().unwrap().len()
            );
        }
    }
}

#[test]
#[ignore = "needs umoci; run via cargo xtask test"]
fn site_base_layers_are_reused_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let v = build_json(
        tmp.path(),
        &repo().join("recipes/site/bake.toml"),
        &tmp.path().join("site"),
    );
    let base_manifest: serde_json::Value = serde_json::from_slice(
        &fs_err::read(repo().join(
            "recipes/site/base/blobs/sha256/c3cda062914d2ff020c116e8290fdae3556eb925a47d90dc99adc7978703faa5",
        ))
        .unwrap(),
    )
    .unwrap();
    let base_layer = &base_manifest["layers"][0];
    let ours = &v["layers"][0];
    assert_eq!(ours["digest"], base_layer["digest"]);
    assert_eq!(ours["size"], base_layer["size"]);
    assert_eq!(ours["fromBase"], true);
    let a = fs_err::read(
        tmp.path()
            .join("site/blobs/sha256")
            .join(&ours["digest"].as_str().unwrap()[7..]),
    )
    .unwrap();
    let b = fs_err::read(
        repo()
            .join("recipes/site/base/blobs/sha256")
            .join(&ours["digest"].as_str().unwrap()[7..]),
    )
    .unwrap();
    assert_eq!(a, b);
    // The unpacked image has the base's files and ours, with our owners.
    let bundle = tmp.path().join("bundle");
    ok(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", tmp.path().join("site").display()))
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    assert!(rootfs.join("etc/os-release").is_file());
    assert_eq!(
        fs_err::read_to_string(rootfs.join("srv/www/vendor/js/app.js")).unwrap(),
        "console.log(\"vendored\");\n"
    );
    assert!(
        !rootfs.join("srv/www/notes.draft").exists(),
        "excluded file was copied"
    );
    let idx = fs_err::metadata(rootfs.join("srv/www/index.html")).unwrap();
    assert_eq!((idx.uid(), idx.gid(), idx.mode() & 0o7777), (1000, 1000, 0o644));
    let conf = fs_err::metadata(rootfs.join("etc/site.conf")).unwrap();
    assert_eq!((conf.uid(), conf.gid(), conf.mode() & 0o7777), (0, 1000, 0o640));
    assert_eq!(
        fs_err::read_to_string(rootfs.join("etc/site.conf")).unwrap(),
        "listen = 8080\nroot = /srv/www\n"
    );
    let log = fs_err::metadata(rootfs.join("var/log/site")).unwrap();
    assert!(log.is_dir());
    assert_eq!((log.uid(), log.mode() & 0o7777), (1000, 0o750));
    // Config: inherited from the base where the recipe is silent.
    let config: serde_json::Value =
        serde_json::from_slice(&fs_err::read(bundle.join("config.json")).unwrap()).unwrap();
    let env: Vec<&str> = config["process"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(env.contains(&"PATH=/usr/local/bin:/usr/bin:/bin"), "{env:?}");
    assert!(env.contains(&"SITE_RELEASE=2026.11"), "{env:?}");
    assert_eq!(config["process"]["cwd"], "/srv/www");
    assert_eq!(config["process"]["user"]["uid"], 1000);
}

/// The site example does what it says: its image, run under runc, serves
/// the site's pages with busybox's httpd as uid 1000 on the port the
/// recipe's variable names.
#[test]
#[ignore = "needs umoci, runc and fetched debs; run via cargo xtask test"]
fn site_serves_its_pages_under_runc() {
    use std::io::{Read, Write};
    require("umoci");
    require("runc");
    let tmp = tempfile::tempdir().unwrap();
    // A free port on loopback for the server (the container shares the
    // test's network namespace).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    ok(bake(tmp.path())
        .arg("build")
        .arg(repo().join("recipes/site/bake.toml"))
        .args(["--layout", "site", "--var"])
        .arg(format!("port={port}")));
    let bundle = tmp.path().join("bundle");
    ok(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", tmp.path().join("site").display()))
        .arg(&bundle));
    let config_path = bundle.join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&fs_err::read(&config_path).unwrap()).unwrap();
    assert_eq!(
        config["process"]["args"],
        serde_json::json!([
            "/bin/busybox",
            "httpd",
            "-f",
            "-v",
            "-p",
            port.to_string(),
            "-h",
            "/srv/www"
        ])
    );
    assert_eq!(config["process"]["user"]["uid"], 1000);
    config["process"]["terminal"] = false.into();
    config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "network");
    fs_err::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
    let id = format!("bake-site-{}-{port}", std::process::id());
    let state = tmp.path().join("runc-state");
    let runc = |args: &[&str]| {
        Command::new("runc")
            .arg("--root")
            .arg(&state)
            .args(args)
            .output()
            .unwrap()
    };
    let mut server = Command::new("runc")
        .arg("--root")
        .arg(&state)
        .args(["run", "-b"])
        .arg(&bundle)
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let get = |path: &str| -> Option<String> {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .ok()?;
        write!(c, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut answer = String::new();
        c.read_to_string(&mut answer).ok()?;
        Some(answer)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut page = None;
    while page.is_none() && std::time::Instant::now() < deadline {
        page = get("/");
        if page.is_none() {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    let vendored = get("/vendor/js/app.js");
    let draft = get("/notes.draft");
    runc(&["kill", &id, "KILL"]);
    let _ = server.wait();
    runc(&["delete", "--force", &id]);
    let mut log = String::new();
    server.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    let page = page.unwrap_or_else(|| panic!("the site answered nothing on port {port}: {log}"));
    let index = fs_err::read_to_string(repo().join("recipes/site/www/index.html")).unwrap();
    assert!(page.starts_with("HTTP/1.") && page.contains(" 200 "), "{page}");
    assert!(page.ends_with(&index), "{page}");
    let vendored = vendored.unwrap();
    assert!(vendored.ends_with("console.log(\"vendored\");\n"), "{vendored}");
    // Excluded from the copy: not in the image, not served.
    assert!(draft.unwrap().contains(" 404 "));
}

/// A context with every kind of entry the tar writer must get right.
fn tricky_context(dir: &Path) {
    let long_dir = format!("deep/{}/{}", "d".repeat(120), "e".repeat(120));
    let long_name = format!("{}.txt", "n".repeat(150));
    write_files(
        dir,
        &[
            ("tree/bin/tool", "#!/bin/sh\necho tool\n"),
            ("tree/data/zero", ""),
            ("tree/data/ünïcödé-名前.txt", "unicode\n"),
            ("tree/data/hard-a", "shared inode\n"),
            ("tree/data/private", "secret-ish\n"),
            (&format!("tree/{long_dir}/{long_name}"), "long\n"),
        ],
    );
    fs_err::set_permissions(dir.join("tree/bin/tool"), std::fs::Permissions::from_mode(0o700)).unwrap();
    fs_err::set_permissions(
        dir.join("tree/data/private"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs_err::hard_link(dir.join("tree/data/hard-a"), dir.join("tree/data/hard-b")).unwrap();
    fs_err::create_dir_all(dir.join("tree/empty-dir")).unwrap();
    std::os::unix::fs::symlink("data/zero", dir.join("tree/rel-link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("tree/abs-link")).unwrap();
    fs_err::write(
        dir.join("bake.toml"),
        r#"
[image]
name = "tricky"

[[layer]]
  [[layer.step]]
  copy = "tree"
  to = "/opt/tree"
  owner = "1000:1001"

  [[layer.step]]
  file = "/etc/conf"
  content = "x = 1\n"
  mode = 0o600

  [[layer.step]]
  dir = "/var/owned"
  mode = 0o700
  owner = "42:43"

  [[layer.step]]
  symlink = "/usr/bin/tool"
  target = "/opt/tree/bin/tool"
"#,
    )
    .unwrap();
}

/// What we expect of each entry: (kind, mode, uid, gid, content or target).
fn describe(root: &Path) -> BTreeMap<String, (char, u32, u32, u32, String)> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (char, u32, u32, u32, String)>) {
        for e in fs_err::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = fs_err::symlink_metadata(&p).unwrap();
            let mode = m.mode() & 0o7777;
            if m.file_type().is_symlink() {
                out.insert(
                    rel,
                    (
                        'l',
                        0,
                        m.uid(),
                        m.gid(),
                        fs_err::read_link(&p).unwrap().display().to_string(),
                    ),
                );
            } else if m.is_dir() {
                out.insert(rel, ('d', mode, m.uid(), m.gid(), String::new()));
                walk(root, &p, out);
            } else {
                out.insert(
                    rel,
                    ('f', mode, m.uid(), m.gid(), fs_err::read_to_string(&p).unwrap()),
                );
            }
        }
    }
    walk(root, root, &mut out);
    out
}

#[test]
#[ignore = "needs umoci; run via cargo xtask test"]
fn umoci_unpacks_exactly_the_tree_we_meant() {
    require("umoci");
    let tmp = tempfile::tempdir().unwrap();
    tricky_context(tmp.path());
    ok(bake(tmp.path()).args(["build", "bake.toml", "--layout", "layout"]));
    let bundle = tmp.path().join("bundle");
    ok(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", tmp.path().join("layout").display()))
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");

    // The copied tree: same names, contents and link targets; owners from
    // the step; modes normalised (0755 if any x bit, else 0644).
    let src = describe(&tmp.path().join("tree"));
    let got = describe(&rootfs.join("opt/tree"));
    assert_eq!(
        src.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "different entries"
    );
    for (path, (kind, mode, _, _, content)) in &src {
        let (gkind, gmode, guid, ggid, gcontent) = &got[path];
        assert_eq!(kind, gkind, "{path}");
        assert_eq!(content, gcontent, "{path}");
        assert_eq!((*guid, *ggid), (1000, 1001), "{path} owner");
        let want = match kind {
            'd' => 0o755,
            'l' => 0,
            _ if mode & 0o111 != 0 => 0o755,
            _ => 0o644,
        };
        assert_eq!(*gmode, want, "{path} mode");
    }
    // Hardlinks stay hardlinks.
    let a = fs_err::metadata(rootfs.join("opt/tree/data/hard-a")).unwrap();
    let b = fs_err::metadata(rootfs.join("opt/tree/data/hard-b")).unwrap();
    assert_eq!(a.ino(), b.ino(), "hardlink was not preserved");
    // Steps with explicit modes and owners.
    let conf = fs_err::metadata(rootfs.join("etc/conf")).unwrap();
    assert_eq!((conf.mode() & 0o7777, conf.uid()), (0o600, 0));
    let owned = fs_err::metadata(rootfs.join("var/owned")).unwrap();
    assert_eq!((owned.mode() & 0o7777, owned.uid(), owned.gid()), (0o700, 42, 43));
    assert_eq!(
        fs_err::read_link(rootfs.join("usr/bin/tool")).unwrap(),
        Path::new("/opt/tree/bin/tool")
    );
    // Implicit parents are root-owned 0755.
    let opt = fs_err::metadata(rootfs.join("opt")).unwrap();
    assert_eq!((opt.mode() & 0o7777, opt.uid()), (0o755, 0));
}

/// Runs the hello image's entrypoint with runc in a umoci-made bundle.
#[test]
#[ignore = "needs umoci and runc; run via cargo xtask test"]
fn hello_runs_under_runc() {
    require("umoci");
    require("runc");
    let tmp = tempfile::tempdir().unwrap();
    build_hello(tmp.path(), &[]);
    let bundle = tmp.path().join("bundle");
    ok(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", tmp.path().join("layout").display()))
        .arg(&bundle));
    let config_path = bundle.join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&fs_err::read(&config_path).unwrap()).unwrap();
    config["process"]["terminal"] = false.into();
    assert_eq!(
        config["process"]["args"],
        serde_json::json!(["/usr/local/bin/hello"])
    );
    fs_err::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
    let id = format!("bake-test-{}", std::process::id());
    let out = ok(Command::new("runc")
        .arg("--root")
        .arg(tmp.path().join("runc-state"))
        .args(["run", "-b"])
        .arg(&bundle)
        .arg(&id));
    assert_eq!(String::from_utf8_lossy(&out.stdout), HELLO);
}

/// `podman load` accepts the docker-archive, and the loaded image runs.
#[test]
#[ignore = "needs podman and runc; run via cargo xtask test"]
fn docker_archive_loads_and_runs_in_podman() {
    require("podman");
    let tmp = tempfile::tempdir().unwrap();
    let v = build_hello(tmp.path(), &["--docker-archive", "hello.tar"]);
    assert_eq!(
        v["dockerArchive"].as_str().map(|s| s.ends_with("hello.tar")),
        Some(true)
    );
    let podman = Podman::new();
    let podman = |_: &Path| podman.cmd();
    let out = ok(podman(tmp.path())
        .args(["load", "-i"])
        .arg(tmp.path().join("hello.tar")));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("hello:latest"), "podman load said: {text}");
    let out = ok(podman(tmp.path()).args([
        "run",
        "--rm",
        "--network=none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "localhost/hello:latest",
    ]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), HELLO);
    // The loaded image has the same config digest as the layout's.
    let out = ok(podman(tmp.path()).args([
        "image",
        "inspect",
        "localhost/hello:latest",
        "--format",
        "{{.Id}}",
    ]));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(format!("sha256:{id}"), v["config"]["digest"].as_str().unwrap());
}

/// A docker-archive written by a third party (skopeo) works as a base: its
/// uncompressed layer enters the image gzip-compressed by bake's own
/// compressor (the bytes of the layer bake built in the first place), which
/// skopeo copies and umoci unpacks, and the result runs.
#[test]
#[ignore = "needs skopeo, umoci and runc; run via cargo xtask test"]
fn docker_archive_base_from_skopeo() {
    require("skopeo");
    let tmp = tempfile::tempdir().unwrap();
    build_hello(tmp.path(), &[]);
    ok(Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}:latest", tmp.path().join("layout").display()))
        .arg(format!(
            "docker-archive:{}:hello:latest",
            tmp.path().join("base.tar").display()
        )));
    fs_err::write(
        tmp.path().join("bake.toml"),
        "base = \"docker-archive:base.tar\"\n[image]\nname = \"on-archive\"\n[[layer]]\n[[layer.step]]\nfile = \"/etc/greeting\"\ncontent = \"hi\\n\"\n",
    )
    .unwrap();
    let v = build_json(
        tmp.path(),
        &tmp.path().join("bake.toml"),
        &tmp.path().join("derived"),
    );
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[0]["fromBase"], true);
    // skopeo wrote the layer uncompressed: compressed now, so digest != diffID.
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_ne!(layers[0]["digest"], layers[0]["diffID"]);
    let hello: serde_json::Value = serde_json::from_slice(
        &ok(bake(tmp.path())
            .arg("build")
            .arg(repo().join("recipes/hello/bake.toml"))
            .args(["--layout", "layout", "--json"]))
        .stdout,
    )
    .unwrap();
    assert_eq!(layers[0]["diffID"], hello["layers"][0]["diffID"]);
    assert_eq!(layers[0]["digest"], hello["layers"][0]["digest"]);
    // skopeo reads (and verifies) every blob of the derived image.
    ok(Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}:latest", tmp.path().join("derived").display()))
        .arg(format!("dir:{}", tmp.path().join("copied").display())));
    let copied = tmp.path().join("copied").join(
        layers[0]["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap(),
    );
    assert_eq!(&fs_err::read(&copied).unwrap()[..2], &[0x1f, 0x8b], "gzip");
    // The entrypoint is inherited and still runs.
    let bundle = tmp.path().join("bundle");
    ok(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", tmp.path().join("derived").display()))
        .arg(&bundle));
    assert_eq!(
        fs_err::read_to_string(bundle.join("rootfs/etc/greeting")).unwrap(),
        "hi\n"
    );
    let config: serde_json::Value =
        serde_json::from_slice(&fs_err::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["process"]["args"],
        serde_json::json!(["/usr/local/bin/hello"])
    );
}
