//! Invariant 5: a build killed at any point leaves no corrupt blob, and the
//! next build succeeds with the same digest; an interrupted one (SIGINT)
//! leaves no temp blob either.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::common::*;

#[test]
fn killed_builds_leave_no_corrupt_blob() {
    let tmp = tempfile::tempdir().unwrap();
    // ~48 MiB of poorly compressible data, so the build takes a while.
    write_noise(&tmp.path().join("big.bin"), 48, NOISE_SEED);
    fs_err::write(
        tmp.path().join("bake.toml"),
        "[image]\nname = \"big\"\n[[layer]]\n[[layer.step]]\ncopy = \"big.bin\"\nto = \"/big.bin\"\n[[layer]]\n[[layer.step]]\nfile = \"/small\"\ncontent = \"s\"\n",
    )
    .unwrap();

    let layout = tmp.path().join("layout");
    for delay_ms in [5u64, 30, 80, 150, 300, 600] {
        let mut child = bake(tmp.path())
            .args(["build", "bake.toml", "--layout", "layout", "--quiet"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        if layout.join("blobs/sha256").exists() {
            for e in fs_err::read_dir(layout.join("blobs/sha256")).unwrap() {
                let e = e.unwrap();
                let name = e.file_name().into_string().unwrap();
                if name.starts_with(".tmp-") {
                    continue; // an abandoned temp file is not a blob
                }
                let bytes = fs_err::read(e.path()).unwrap();
                assert_eq!(
                    bake_digest::Digest::of(&bytes).hex(),
                    name,
                    "corrupt blob after kill at {delay_ms}ms"
                );
            }
        }
    }
    let first = build_json(tmp.path(), &tmp.path().join("bake.toml"), &layout);
    let fresh = build_json(
        tmp.path(),
        &tmp.path().join("bake.toml"),
        &tmp.path().join("fresh"),
    );
    assert_eq!(first["digest"], fresh["digest"]);
    let index: serde_json::Value =
        serde_json::from_slice(&fs_err::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], first["digest"]);
}

/// SIGINT while a large layer is being compressed (issue 16.7): the build
/// stops at the layer's next write, exits 130 with one line, and leaves no
/// temp blob in the layout or the cache, no tag, and a log that ends with
/// the interruption. (Without bake's handler it died of the signal and left
/// the temp blob.)
#[test]
fn an_interrupted_build_leaves_no_temp_blob_and_no_tag() {
    let tmp = tempfile::tempdir().unwrap();
    // ~96 MiB of poorly compressible data: compressing it takes seconds.
    write_noise(&tmp.path().join("big.bin"), 96, NOISE_SEED);
    fs_err::write(
        tmp.path().join("bake.toml"),
        "[image]\nname = \"big\"\n[[layer]]\nname = \"big\"\n[[layer.step]]\ncopy = \"big.bin\"\nto = \"/big.bin\"\n",
    )
    .unwrap();
    let log = tmp.path().join("build.log");
    let stderr = tmp.path().join("stderr");
    let mut child = bake(tmp.path())
        .args([
            "build",
            "bake.toml",
            "--layout",
            "layout",
            "--cache-dir",
            "cache",
            "--log",
        ])
        .arg(&log)
        .stdout(std::process::Stdio::null())
        .stderr(fs_err::File::create(&stderr).unwrap().into_parts().0)
        .spawn()
        .unwrap();
    // Until the layer is being written (its inputs hashed, compression on).
    wait_for_text(&mut child, &log, "layer big: building");
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = wait_exit(&mut child, Duration::from_secs(30), "bake after SIGINT");
    let text = fs_err::read_to_string(&stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}: {text}");
    assert!(text.contains("bake: interrupted by SIGINT: "), "{text}");
    assert!(!text.contains("error:"), "{text}");
    for dir in ["layout", "cache"] {
        let blobs = tmp.path().join(dir).join("blobs/sha256");
        if blobs.exists() {
            assert_store_clean(&tmp.path().join(dir));
        }
    }
    let index: serde_json::Value =
        serde_json::from_slice(&fs_err::read(tmp.path().join("layout/index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"], serde_json::json!([]), "{index}");
    let log = fs_err::read_to_string(&log).unwrap();
    assert!(
        log.trim_end().ends_with("error: the build was interrupted"),
        "{log}"
    );
}
