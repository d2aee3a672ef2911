//! Registries and layouts whose sizes lie (issue #15 item 7), end to end:
//! a registry base whose manifest gives a layer a size its bytes do not
//! have fails the build; `bake push` of a layout whose descriptors lie
//! sends no manifest. Against a real `docker-registry` on 127.0.0.1
//! (through the testkit's proxy, which serves the lying manifest).
//!
//! Run by `cargo xtask test`; plain `cargo test` skips them as ignored.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use crate::common::*;
use bake_testkit::{Fault, FaultPlan, Matcher, TestRegistry, TestRegistryOptions};
use fs_err as fs;

fn registry() -> TestRegistry {
    require("docker-registry");
    TestRegistry::start(TestRegistryOptions::default()).unwrap()
}

/// The site base's manifest (a tiny OCI layout in the repository) as JSON.
fn base_manifest(layout: &Path) -> (serde_json::Value, serde_json::Value) {
    let index: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let hex = digest.strip_prefix("sha256:").unwrap();
    let manifest = serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(hex)).unwrap()).unwrap();
    (index, manifest)
}

/// Puts `manifest` in the layout and points its only index.json entry at it,
/// giving it `size` (its real size when `None`). Returns its digest and bytes.
fn replace_manifest(layout: &Path, manifest: &serde_json::Value, size: Option<u64>) -> (String, Vec<u8>) {
    let bytes = serde_json::to_vec(manifest).unwrap();
    let digest = bake_digest::Digest::of(&bytes);
    fs::write(layout.join("blobs/sha256").join(digest.hex()), &bytes).unwrap();
    let (mut index, _) = base_manifest(layout);
    index["manifests"][0]["digest"] = serde_json::json!(digest.to_string());
    index["manifests"][0]["size"] = serde_json::json!(size.unwrap_or(bytes.len() as u64));
    fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    (digest.to_string(), bytes)
}

#[test]
#[ignore = "needs docker-registry and skopeo; run via cargo xtask test"]
fn a_registry_base_whose_layer_size_lies_fails_the_build() {
    require("skopeo");
    let reg = registry();
    let tmp = tempfile::tempdir().unwrap();
    ok(Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false", "--preserve-digests"])
        .arg(format!("oci:{}:1.0", repo().join("recipes/site/base").display()))
        .arg(format!("docker://{}/bases/tiny:1.0", reg.host())));
    let (_, honest) = base_manifest(&repo().join("recipes/site/base"));
    let layer = honest["layers"][0]["digest"].as_str().unwrap().to_owned();
    let real = honest["layers"][0]["size"].as_u64().unwrap();
    for claimed in [real + 1000, real - 1] {
        let mut lie = honest.clone();
        lie["layers"][0]["size"] = serde_json::json!(claimed);
        reg.proxy().set_plan(FaultPlan::new().rule(
            Matcher::PathContains("/bases/tiny/manifests/lie".into()),
            Fault::Respond {
                status: 200,
                body: lie.to_string(),
            },
            0,
            None,
        ));
        let recipe = format!(
            "base = \"{}/bases/tiny:lie\"\n[image]\nname = \"on-a-lying-base\"\n[[layer]]\n[[layer.step]]\nfile = \"/hello\"\ncontent = \"hi\\n\"\n",
            reg.host()
        );
        fs::write(tmp.path().join("bake.toml"), recipe).unwrap();
        let out = tmp.path().join(format!("out-{claimed}"));
        let err = fails(
            bake(tmp.path())
                .arg("build")
                .arg("bake.toml")
                .arg("--layout")
                .arg(&out),
        );
        eprintln!("{err}");
        assert!(
            err.contains("size mismatch")
                && err.contains(&layer)
                && err.contains(&format!("gives {claimed} bytes"))
                && err.contains(&real.to_string()),
            "{err}"
        );
        // The layout may exist (its store took the verified blobs), but
        // holds no image.
        if let Ok(text) = fs::read_to_string(out.join("index.json")) {
            let index: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(index["manifests"], serde_json::json!([]), "an image was written");
        }
    }
}

#[test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
fn push_of_a_layout_whose_descriptor_sizes_lie_sends_no_manifest() {
    let reg = registry();
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    copy_tree_shuffled(&repo().join("recipes/site/base"), &base, 0);
    let (_, honest) = base_manifest(&base);
    let target = format!("{}/app:1", reg.host());

    // The manifest's own index.json entry lies.
    let (digest, bytes) = replace_manifest(&base, &honest, None);
    let real = bytes.len() as u64;
    for claimed in [real + 1000, real - 1] {
        replace_manifest(&base, &honest, Some(claimed));
        let err = fails(bake(tmp.path()).args(["push", "oci:base", &target]));
        eprintln!("{err}");
        assert!(
            err.contains("size mismatch")
                && err.contains(&digest)
                && err.contains(&format!("gives {claimed} bytes"))
                && err.contains(&real.to_string()),
            "{err}"
        );
        assert_eq!(reg.manifest_status("app", "1").unwrap(), 404);
        assert_eq!(reg.manifest_status("app", &digest).unwrap(), 404);
    }

    // A layer's or the config's descriptor in the manifest lies.
    for (which, slot) in [("layer", "/layers/0/size"), ("config", "/config/size")] {
        let real = honest.pointer(slot).unwrap().as_u64().unwrap();
        let blob = honest
            .pointer(&slot.replace("/size", "/digest"))
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        for claimed in [real + 1000, real - 1] {
            let mut lie = honest.clone();
            *lie.pointer_mut(slot).unwrap() = serde_json::json!(claimed);
            let (digest, _) = replace_manifest(&base, &lie, None);
            let err = fails(bake(tmp.path()).args(["push", "oci:base", &target]));
            eprintln!("{err}");
            assert!(
                err.contains("size mismatch")
                    && err.contains(&blob)
                    && err.contains(&format!("gives {claimed} bytes"))
                    && err.contains(&real.to_string()),
                "{which} {claimed}: {err}"
            );
            assert_eq!(reg.manifest_status("app", "1").unwrap(), 404);
            assert_eq!(reg.manifest_status("app", &digest).unwrap(), 404);
        }
    }
}
