//! Invariant 5: a build killed at any point leaves no corrupt blob, and the
//! next build succeeds with the same digest.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;

#[test]
fn killed_builds_leave_no_corrupt_blob() {
    let tmp = tempfile::tempdir().unwrap();
    // ~48 MiB of poorly compressible data, so the build takes a while.
    let mut f = fs_err::File::create(tmp.path().join("big.bin")).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..48 {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        f.write_all(&buf).unwrap();
    }
    drop(f);
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
