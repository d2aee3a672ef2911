//! What bake-image writes, read back by independent tools (umoci, skopeo,
//! oci-image-tool, podman), and what they write, read by bake-image. These
//! need the tools installed, so they are ignored by default; run them with
//! `cargo xtask test` or `cargo test -p bake-image -- --include-ignored`.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use bake_digest::Digest;
use bake_image::{
    ConfigSpec, Descriptor, Layout, Platform, build_config, build_manifest, load_from_docker_archive,
    load_from_layout, media_type, write_docker_archive,
};
use bake_store::BlobStore;

/// Runs `cmd`, failing the test with its stderr unless it succeeds; returns stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is it installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A base image made by umoci: one gzip layer holding /etc/hi, FOO=bar in its env.
fn umoci_base(dir: &Path) -> std::path::PathBuf {
    let layout = dir.join("base");
    run(Command::new("umoci").args(["init", "--layout"]).arg(&layout));
    run(Command::new("umoci")
        .arg("new")
        .arg("--image")
        .arg(format!("{}:base", layout.display())));
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("hi"), "hi\n").unwrap();
    run(Command::new("umoci")
        .args(["insert", "--image"])
        .arg(format!("{}:base", layout.display()))
        .arg(src.join("hi"))
        .arg("/etc/hi"));
    run(Command::new("umoci")
        .args(["config", "--image"])
        .arg(format!("{}:base", layout.display()))
        .args(["--config.env", "FOO=bar", "--config.cmd", "/bin/sh"]));
    layout
}

#[test]
#[ignore = "needs umoci, oci-image-tool and skopeo; run via cargo xtask test"]
fn umoci_base_and_third_party_validation() {
    let tmp = tempfile::tempdir().unwrap();
    let base_dir = umoci_base(tmp.path());
    let out_dir = tmp.path().join("out");
    let out = Layout::create_or_open(&out_dir).unwrap();
    let amd64 = Platform::linux_amd64();

    let base = load_from_layout(&base_dir, Some("base"), &amd64, out.store()).unwrap();
    assert_eq!(base.layers.len(), 1);
    assert_eq!(base.layers[0].media_type, media_type::OCI_LAYER_GZIP);
    assert_eq!(base.diff_ids.len(), 1);
    assert!(
        base.config_json["config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&"FOO=bar".into()),
        "{}",
        base.config_json
    );
    // The base layer is in our layout byte for byte.
    assert_eq!(
        std::fs::read(out.store().path(&base.layers[0].digest)).unwrap(),
        std::fs::read(base_dir.join("blobs/sha256").join(base.layers[0].digest.hex())).unwrap()
    );
    // Only image in the layout: found without a tag too.
    assert_eq!(
        load_from_layout(&base_dir, None, &amd64, out.store()).unwrap(),
        base
    );

    // Our layer on top.
    let layer = tar_of(&[("hello.txt", b"hello from bake\n")]);
    let layer = Descriptor::new(
        media_type::OCI_LAYER_TAR,
        out.store().put_bytes(&layer).unwrap(),
        layer.len() as u64,
    );
    let spec = ConfigSpec {
        entrypoint: Some(vec!["/bin/echo".into()]),
        env: BTreeMap::from([("BAKE".into(), "1".into())]),
        labels: BTreeMap::from([("org.opencontainers.image.title".into(), "test".into())]),
        ..ConfigSpec::default()
    };
    let config = build_config(
        Some(&base),
        &spec,
        &amd64,
        1_700_000_000,
        &[(layer.digest.clone(), "bake: layer hello".into())],
    )
    .unwrap();
    out.store().put_bytes(&config).unwrap();
    let config = Descriptor::of(media_type::OCI_CONFIG, &config);
    let mut layers = base.layers.clone();
    layers.push(layer);
    let manifest = build_manifest(&config, &layers, &BTreeMap::new());
    out.store().put_bytes(&manifest).unwrap();
    let manifest = Descriptor::of(media_type::OCI_MANIFEST, &manifest);
    out.set_tags(&manifest, &["v1".into(), "latest".into()]).unwrap();

    // oci-image-tool validates the layout against the OCI schemas.
    run(Command::new("oci-image-tool")
        .args(["validate", "--type", "image", "--ref", "name=v1"])
        .arg(&out_dir));

    // skopeo sees the same digest.
    let inspect = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:latest", out_dir.display())));
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Digest"], manifest.digest.to_string());
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2);

    // umoci unpacks both layers and the merged config.
    let bundle = tmp.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:v1", out_dir.display()))
        .arg(&bundle));
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/etc/hi")).unwrap(),
        "hi\n"
    );
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/hello.txt")).unwrap(),
        "hello from bake\n"
    );
    let runtime: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    let env = runtime["process"]["env"].as_array().unwrap();
    assert!(
        env.contains(&"FOO=bar".into()) && env.contains(&"BAKE=1".into()),
        "{env:?}"
    );
    // entrypoint set without cmd: the base's /bin/sh is gone.
    assert_eq!(runtime["process"]["args"], serde_json::json!(["/bin/echo"]));
}

#[test]
#[ignore = "needs umoci and skopeo; run via cargo xtask test"]
fn skopeo_docker_archive_is_a_base() {
    let tmp = tempfile::tempdir().unwrap();
    let base_dir = umoci_base(tmp.path());
    let amd64 = Platform::linux_amd64();
    let store = BlobStore::open(&tmp.path().join("store")).unwrap();
    let from_layout = load_from_layout(&base_dir, Some("base"), &amd64, &store).unwrap();

    let archive = tmp.path().join("base.tar");
    run(Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}:base", base_dir.display()))
        .arg(format!(
            "docker-archive:{}:example.com/base:latest",
            archive.display()
        )));
    let from_archive = load_from_docker_archive(&archive, &amd64, &store).unwrap();
    assert_eq!(from_archive.diff_ids, from_layout.diff_ids);
    assert_eq!(
        from_archive.config_json["config"],
        from_layout.config_json["config"]
    );
    for (l, diff) in from_archive.layers.iter().zip(&from_archive.diff_ids) {
        store.verify(&l.digest).unwrap();
        match l.media_type.as_str() {
            media_type::OCI_LAYER_TAR => assert_eq!(&l.digest, diff),
            media_type::OCI_LAYER_GZIP => assert_ne!(&l.digest, diff),
            other => panic!("unexpected media type {other}"),
        }
    }
}

/// podman with its storage in `dir` and its run root in `run`, not
/// touching the host's. `run` must be short: podman refuses a run root
/// longer than 50 characters (one below a checkout's target/ often is).
fn podman(dir: &Path, run: &Path) -> Command {
    let mut c = Command::new("podman");
    c.arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(run)
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ])
        .env("TMPDIR", dir);
    c
}

#[test]
#[ignore = "needs podman; run via cargo xtask test"]
fn podman_loads_our_archive_and_saves_one_we_read() {
    let tmp = tempfile::tempdir().unwrap();
    let run_root = tempfile::Builder::new()
        .prefix("bake-podman-")
        .tempdir_in("/tmp")
        .unwrap();
    let store = BlobStore::open(&tmp.path().join("store")).unwrap();
    let amd64 = Platform::linux_amd64();

    let l1 = tar_of(&[("etc/motd", b"hello\n")]);
    let l1gz = gzip(&l1);
    let l2 = tar_of(&[("app/run.sh", b"#!/bin/sh\necho run\n")]);
    let layers = vec![
        Descriptor::new(
            media_type::OCI_LAYER_GZIP,
            store.put_bytes(&l1gz).unwrap(),
            l1gz.len() as u64,
        ),
        Descriptor::new(
            media_type::OCI_LAYER_TAR,
            store.put_bytes(&l2).unwrap(),
            l2.len() as u64,
        ),
    ];
    let diff_ids = vec![Digest::of(&l1), Digest::of(&l2)];
    let spec = ConfigSpec {
        cmd: Some(vec!["/app/run.sh".into()]),
        workdir: Some("/app".into()),
        ..ConfigSpec::default()
    };
    let config = build_config(
        None,
        &spec,
        &amd64,
        0,
        &[
            (diff_ids[0].clone(), "one".into()),
            (diff_ids[1].clone(), "two".into()),
        ],
    )
    .unwrap();
    let config_digest = store.put_bytes(&config).unwrap();
    let manifest = build_manifest(
        &Descriptor::of(media_type::OCI_CONFIG, &config),
        &layers,
        &BTreeMap::new(),
    );
    store.put_bytes(&manifest).unwrap();
    let manifest = Descriptor::of(media_type::OCI_MANIFEST, &manifest);

    let archive = tmp.path().join("image.tar");
    write_docker_archive(&store, &manifest, &["localhost/bake-test:v1".into()], &archive).unwrap();

    // skopeo reads it as a docker-archive...
    let inspect = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("docker-archive:{}", archive.display())));
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2, "{inspect}");

    // ...and podman loads it, under the config digest as image id.
    run(podman(tmp.path(), run_root.path())
        .args(["load", "-i"])
        .arg(&archive));
    let id = run(podman(tmp.path(), run_root.path()).args([
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        "localhost/bake-test:v1",
    ]));
    assert_eq!(id.trim(), config_digest.hex());

    // What podman saves, we read back with the same diffIDs and config.
    let saved = tmp.path().join("saved.tar");
    run(podman(tmp.path(), run_root.path())
        .args(["save", "--format", "docker-archive", "-o"])
        .arg(&saved)
        .arg("localhost/bake-test:v1"));
    let target = BlobStore::open(&tmp.path().join("target")).unwrap();
    let back = load_from_docker_archive(&saved, &amd64, &target).unwrap();
    assert_eq!(back.diff_ids, diff_ids);
    assert_eq!(
        back.config_json["config"]["Cmd"],
        serde_json::json!(["/app/run.sh"])
    );
    assert_eq!(
        back.config_json["rootfs"]["diff_ids"],
        serde_json::json!([diff_ids[0].to_string(), diff_ids[1].to_string()])
    );
}
