//! Golden digests for layers well over the 1 MiB compression chunk (issue
//! #16): the example recipes' layers are small, so a compressor whose bytes
//! depend on anything but the input (its history, the thread that got the
//! chunk, the output buffer) would not move their digests. This builds a
//! context generated here from a seeded generator (the same on every
//! machine; no host files) — an application tree of ~11 MiB: source-like
//! text, incompressible assets, structured binary data — with gzip-6 (the
//! default), gzip-1 and zstd-3, and checks each against a pinned digest.
//!
//! The digests are an output format, like `testdata/golden/`: if a change
//! moves them on purpose, rerun this test, copy the digests it prints into
//! `GOLDEN` below and say why in the commit.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use crate::common::*;
use fs_err as fs;

/// (compression, level) → the manifest digest `bake build --json` gives.
const GOLDEN: [(&str, u32, &str); 3] = [
    (
        "gzip",
        6,
        "sha256:6d589062cc7b317c7d5c16aa10cd12edbe25370304527773c1bd3b1b667b97a6",
    ),
    (
        "gzip",
        1,
        "sha256:d3c5a121e229739d5220275721f2acecc87df635797d7041ae5ec83233f44fd6",
    ),
    (
        "zstd",
        3,
        "sha256:a3c85106ca9fc2adc91bb6099432311581f23e162dbba5607834e760231c12ae",
    ),
];

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Writes the application tree under `dir/app`.
fn generate(dir: &Path) {
    const WORDS: [&str; 16] = [
        "def ",
        "return ",
        "self",
        "(",
        ")",
        ":\n    ",
        "import ",
        "os",
        ".path",
        " = ",
        "\n",
        "if ",
        "None",
        "config",
        "_",
        "for x in ",
    ];
    let mut r = Rng(16);
    let app = dir.join("app");
    for (sub, files) in [("src", 120), ("assets", 12), ("data", 8)] {
        fs::create_dir_all(app.join(sub)).unwrap();
        for i in 0..files {
            let mut v = Vec::new();
            let (name, len) = match sub {
                // ~40 KiB of source each: 4.7 MiB.
                "src" => (format!("module_{i:03}.py"), 8 * 1024 + r.below(64 * 1024)),
                // Incompressible, 256-600 KiB each: ~5 MiB.
                "assets" => (format!("image_{i:02}.png"), 256 * 1024 + r.below(344 * 1024)),
                // Records with counters: ~1.5 MiB.
                _ => (format!("table_{i}.db"), 128 * 1024 + r.below(128 * 1024)),
            };
            let mut k = r.next() as u32;
            while v.len() < len {
                match sub {
                    "src" => v.extend_from_slice(WORDS[r.below(WORDS.len())].as_bytes()),
                    "assets" => v.extend_from_slice(&r.next().to_le_bytes()),
                    _ => {
                        v.extend_from_slice(&k.to_le_bytes());
                        v.extend_from_slice(&[(r.below(4)) as u8, 0, 0, 0x7f]);
                        k = k.wrapping_add(3);
                    }
                }
            }
            v.truncate(len);
            fs::write(app.join(sub).join(name), v).unwrap();
        }
    }
}

#[test]
fn a_multi_mib_layer_matches_its_golden_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    generate(&ctx);
    let mut got = Vec::new();
    for (compression, level, golden) in GOLDEN {
        let recipe = ctx.join(format!("{compression}-{level}.toml"));
        fs::write(
            &recipe,
            format!(
                "epoch = 1700000000\n\n[image]\nname = \"large\"\n\n[output]\ncompression = \"{compression}\"\nlevel = {level}\n\n\
                 [[layer]]\nname = \"app\"\n\n  [[layer.step]]\n  copy = \"app\"\n  to = \"/opt/app\"\n"
            ),
        )
        .unwrap();
        let v = build_json(
            tmp.path(),
            &recipe,
            &tmp.path().join(format!("out-{compression}-{level}")),
        );
        let digest = v["digest"].as_str().unwrap().to_owned();
        eprintln!("(\"{compression}\", {level}, \"{digest}\"),");
        got.push((compression, level, golden, digest));
    }
    for (compression, level, golden, digest) in got {
        assert_eq!(
            digest, golden,
            "{compression}-{level}: the multi-MiB layer no longer builds to its golden digest \
             (if intended: copy the printed digests into GOLDEN)"
        );
    }
}
