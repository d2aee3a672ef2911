//! Hostile base images: the `docker-*` files of `testdata/hostile/`, and OCI
//! layouts made hostile here (blobs whose bytes do not match their digest,
//! blobs that are symlinks or fifos, huge, deeply nested, malformed or
//! mislabelled JSON). Each is an error naming the blob, entry or file, never
//! a hang, a panic or a blob in the target store.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bake_digest::Digest;
use bake_image::{
    Descriptor, ImageError, Layout, MAX_JSON_SIZE, MAX_MANIFEST_SIZE, Platform, build_manifest,
    canonical_json, load_from_docker_archive, load_from_layout, media_type,
};
use bake_store::BlobStore;
use serde_json::json;

fn hostile(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/hostile")
        .join(name)
}

fn target() -> (tempfile::TempDir, BlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    (dir, store)
}

#[test]
fn hostile_docker_archives_are_refused_by_name() {
    let cases: [(&str, &[&str]); 7] = [
        (
            "docker-pax-bomb.tar",
            &[
                "PaxHeaders/manifest.json",
                "PAX extended header of 17179869184 bytes",
                "more than the limit of 1048576 bytes",
            ],
        ),
        (
            "docker-layer-escape.tar",
            &["manifest.json names an invalid path \"../../../../etc/passwd\""],
        ),
        ("docker-symlink-loop.tar", &["\"a.json\" is a symlink loop"]),
        (
            "docker-layer-digest-mismatch.tar",
            &[
                "blobs/sha256/0000000000000000000000000000000000000000000000000000000000000000 holds content with digest sha256:",
            ],
        ),
        (
            "docker-diffid-mismatch.tar",
            &[
                "layer.tar of docker archive",
                "but the config expects sha256:1111",
            ],
        ),
        (
            "docker-manifest-malformed.tar",
            &["malformed JSON in manifest.json of docker archive"],
        ),
        ("docker-config-truncated.tar", &["docker-config-truncated.tar"]),
    ];
    for (name, pieces) in cases {
        let (_d, store) = target();
        let err = load_from_docker_archive(&hostile(name), &Platform::linux_amd64(), &store).unwrap_err();
        let text = err.to_string();
        for p in pieces {
            assert!(text.contains(p), "{name}: {text:?} lacks {p:?}");
        }
        assert!(
            text.contains(name) || name == "docker-pax-bomb.tar" || text.contains("docker archive"),
            "{name}: {text}"
        );
        // Nothing but possibly verified layer blobs (never a config) landed.
        // (A store makes its directories on its first write.)
        let blobs = store.root().join("blobs/sha256");
        for e in std::fs::read_dir(&blobs).into_iter().flatten() {
            let e = e.unwrap();
            let bytes = std::fs::read(e.path()).unwrap();
            assert_eq!(
                Digest::of(&bytes).hex(),
                e.file_name().to_str().unwrap(),
                "{name}"
            );
        }
    }
}

/// A one-layer image in a fresh layout; returns (layout, manifest, layer).
fn good_layout() -> (tempfile::TempDir, Layout, Descriptor, Descriptor) {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::create_or_open(&dir.path().join("base")).unwrap();
    let s = layout.store();
    let layer_bytes = std::fs::read(hostile("setuid.tar")).unwrap();
    let layer = Descriptor::new(
        media_type::OCI_LAYER_TAR,
        s.put_bytes(&layer_bytes).unwrap(),
        layer_bytes.len() as u64,
    );
    let config = canonical_json(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer.digest.to_string()]},
    }));
    s.put_bytes(&config).unwrap();
    let config = Descriptor::of(media_type::OCI_CONFIG, &config);
    let manifest = build_manifest(&config, std::slice::from_ref(&layer), &BTreeMap::new());
    s.put_bytes(&manifest).unwrap();
    let manifest = Descriptor::of(media_type::OCI_MANIFEST, &manifest);
    layout.set_tags(&manifest, &["base".into()]).unwrap();
    (dir, layout, manifest, layer)
}

fn load(
    layout: &Layout,
) -> (
    Result<bake_image::BaseImage, ImageError>,
    tempfile::TempDir,
    BlobStore,
) {
    let (d, store) = target();
    let r = load_from_layout(layout.dir(), Some("base"), &Platform::linux_amd64(), &store);
    (r, d, store)
}

#[test]
fn a_layer_that_does_not_match_its_digest_is_refused() {
    let (_d, layout, _m, layer) = good_layout();
    let path = layout.store().path(&layer.digest);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[600] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let (r, _t, store) = load(&layout);
    let err = r.unwrap_err().to_string();
    assert!(
        err.contains(&format!("blob {} is corrupt", layer.digest)),
        "{err}"
    );
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(!store.has(&layer.digest));
}

#[test]
fn blobs_that_are_symlinks_or_fifos_are_refused_without_reading() {
    // A symlink to a host file whose digest the attacker knows: not imported.
    let (d, layout, _m, layer) = good_layout();
    let path = layout.store().path(&layer.digest);
    let elsewhere = d.path().join("elsewhere");
    std::fs::rename(&path, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
    let (r, _t, store) = load(&layout);
    let err = r.unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "blob {} at {} is not a regular file",
            layer.digest,
            path.display()
        )),
        "{err}"
    );
    assert!(!store.has(&layer.digest));

    // A fifo would block a reader forever: refused before it is opened.
    std::fs::remove_file(&path).unwrap();
    let status = std::process::Command::new("mkfifo").arg(&path).status().unwrap();
    assert!(status.success());
    let (r, _t, _store) = load(&layout);
    assert!(r.unwrap_err().to_string().contains("is not a regular file"));
}

#[test]
fn huge_deep_and_malformed_json_is_refused() {
    let (_d, layout, manifest, _l) = good_layout();
    let index = layout.dir().join("index.json");
    let original = std::fs::read(&index).unwrap();

    // index.json: too large, too deep, not JSON.
    std::fs::File::create(&index)
        .unwrap()
        .set_len(MAX_JSON_SIZE + 10)
        .unwrap();
    let (r, ..) = load(&layout);
    assert!(
        r.unwrap_err()
            .to_string()
            .contains(&format!("more than the {MAX_JSON_SIZE} allowed"))
    );
    // Deep nesting: an error, not a stack overflow (serde_json stops at 128).
    let deep = format!(
        "{{\"schemaVersion\":2,\"manifests\":[{{\"x\":{}",
        "[".repeat(100_000)
    );
    std::fs::write(&index, &deep).unwrap();
    let (r, ..) = load(&layout);
    assert!(r.unwrap_err().to_string().starts_with("malformed JSON in "));
    let err = layout.set_tags(&manifest, &["other".into()]).unwrap_err();
    assert!(err.to_string().contains("recursion limit exceeded"), "{err}");
    std::fs::write(&index, b"{\"manifests\": [\xff]}").unwrap();
    let (r, ..) = load(&layout);
    assert!(r.unwrap_err().to_string().starts_with("malformed JSON in "));
    std::fs::write(&index, &original).unwrap();

    // A manifest whose descriptor claims more than the limit: not read.
    // (The limit is a registry's, 4 MiB: bake copies a base's layer
    // descriptors into the manifest it writes, which must read back.)
    let s = layout.store();
    let big = Descriptor::new(
        media_type::OCI_MANIFEST,
        manifest.digest.clone(),
        MAX_MANIFEST_SIZE + 1,
    );
    layout.set_tags(&big, &["base".into()]).unwrap();
    let (r, ..) = load(&layout);
    assert_eq!(
        r.unwrap_err().to_string(),
        format!(
            "manifest {} is {} bytes, more than the {MAX_MANIFEST_SIZE} allowed",
            manifest.digest,
            MAX_MANIFEST_SIZE + 1
        )
    );

    // A manifest of unknown media type, nested arrays, a layer of unknown type.
    for (mt, doc, want) in [
        (
            "application/vnd.example.evil+json",
            json!({}),
            "unsupported media type \"application/vnd.example.evil+json\" for image",
        ),
        (
            media_type::OCI_MANIFEST,
            json!({"schemaVersion": 2, "config": [[[[]]]], "layers": []}),
            "malformed JSON in manifest",
        ),
        (
            media_type::OCI_MANIFEST,
            json!({"schemaVersion": 2,
                   "config": {"mediaType": media_type::OCI_CONFIG, "digest": manifest.digest.to_string(), "size": 1},
                   "layers": [{"mediaType": "application/x-evil", "digest": manifest.digest.to_string(), "size": 1}]}),
            "unsupported media type \"application/x-evil\" for layer",
        ),
        (
            media_type::OCI_MANIFEST,
            json!({"schemaVersion": 3, "config": {}}),
            "malformed JSON in manifest",
        ),
    ] {
        let bytes = canonical_json(&doc);
        s.put_bytes(&bytes).unwrap();
        let d = Descriptor::of(mt, &bytes);
        layout.set_tags(&d, &["base".into()]).unwrap();
        let (r, ..) = load(&layout);
        let err = r.unwrap_err().to_string();
        assert!(err.contains(want), "{err} lacks {want}");
    }
}
