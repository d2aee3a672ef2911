//! A short, deterministic run of every fuzz target (`fuzz/src/targets.rs`,
//! included here as it is) over its seed corpus (`fuzz/corpus/<target>/`,
//! plus `testdata/hostile/` for the archive readers) and a few thousand
//! pseudo-random mutations of it (a seeded xorshift: the same inputs on
//! every run). Real fuzzing is `cargo fuzz` (nightly, or stable with
//! `RUSTC_BOOTSTRAP=1`): see `fuzz/README.md`. A panic
//! saves the input under the target directory and names it.

#![allow(clippy::unwrap_used)]

#[path = "../../../../fuzz/src/targets.rs"]
mod targets;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use crate::common::{XorShift, repo};

/// Tokens that matter to the parsers under test.
const DICTIONARY: &[&[u8]] = &[
    b"..",
    b"/",
    b"../",
    b"${",
    b"}",
    b"$${",
    b"[[layer]]",
    b"[[layer.step]]",
    b"\"",
    b"'",
    b"=",
    b"\n",
    b"0o7777",
    b"sha256:",
    b"@sha256:",
    b":",
    b"[",
    b"]",
    b"{",
    b"}",
    b"\\u0000",
    b"\xff",
    b"\x00",
    b"18446744073709551615",
    b"-1",
    b"1e999",
    b"ustar\x00",
    b"ustar  \x00",
    b"x",
    b"L",
    b"K",
    b"g",
    b"S",
    b"!<arch>\n",
    b"debian-binary",
    b"control.tar.gz",
    b"data.tar",
    b"\x1f\x8b",
    b"\x28\xb5\x2f\xfd",
    b"\xfd7zXZ\x00",
    b"size=",
    b"path=",
    b"mediaType",
    b"manifests",
    b"layers",
    b"digest",
    b"null",
    b"\"Env\":",
    b"\"Labels\":",
    b"\"history\":",
    b"\"created\":\"2020-02-29T23:59:59.5+01:00\"",
    b"\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}",
];

fn mutate(rng: &mut XorShift, seeds: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                input.insert(i, rng.next() as u8);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                input.drain(i..i + n);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                let chunk = input[i..i + n].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, chunk);
            }
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let i = rng.below(other.len());
                    let n = 1 + rng.below((other.len() - i).min(512));
                    let at = rng.below(len + 1);
                    input.splice(at..at, other[i..i + n].iter().copied());
                }
            }
            6 if len > 0 => input.truncate(rng.below(len)),
            7 => {
                let token = DICTIONARY[rng.below(DICTIONARY.len())];
                let at = rng.below(len + 1);
                input.splice(at..at, token.iter().copied());
            }
            _ if len >= 8 => {
                // An "interesting" number over 1, 2, 4 or 8 bytes (sizes,
                // lengths, octal fields).
                let width = 1 << rng.below(4);
                let i = rng.below(len - width.min(len) + 1);
                let v: u64 = [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fff_ffff, u64::MAX][rng.below(8)];
                for (k, b) in input[i..(i + width).min(len)].iter_mut().enumerate() {
                    *b = (v >> (8 * k)) as u8;
                }
            }
            _ => {}
        }
    }
}

fn files(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<Vec<u8>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&keep))
        .collect();
    names.sort();
    names.into_iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let mut v = files(&repo().join("fuzz/corpus").join(target), |_| true);
    let hostile = repo().join("testdata/hostile");
    match target {
        "tar_reader" => v.extend(files(&hostile, |n| n.contains(".tar") && !n.starts_with("bomb"))),
        "archive" => v.extend(files(&hostile, |n| n.ends_with(".deb") || n.ends_with(".tar"))),
        _ => {}
    }
    assert!(!v.is_empty(), "no seeds for {target}");
    v
}

/// Runs `target` over its seeds and `mutations` mutants.
fn smoke(name: &str, mutations: usize) {
    let target = targets::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap();
    assert!(
        repo()
            .join("fuzz/fuzz_targets")
            .join(format!("{name}.rs"))
            .is_file()
    );
    let seeds = seeds(name);
    let mut rng = XorShift(0x00f0_22ed ^ name.len() as u64);
    let run = |input: &[u8], what: &str| {
        if std::panic::catch_unwind(AssertUnwindSafe(|| target(input))).is_err() {
            let saved = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-smoke-{name}-{what}"));
            std::fs::write(&saved, input).unwrap();
            panic!(
                "fuzz target {name} panicked on {what}; input saved to {} (reproduce: cargo fuzz run {name} {})",
                saved.display(),
                saved.display()
            );
        }
    };
    for (i, s) in seeds.iter().enumerate() {
        run(s, &format!("seed{i}"));
    }
    for i in 0..mutations {
        let mut input = seeds[rng.below(seeds.len())].clone();
        mutate(&mut rng, &seeds, &mut input);
        run(&input, &format!("mutant{i}"));
    }
}

#[test]
fn fuzz_smoke_recipe() {
    smoke("recipe", 10_000);
}

#[test]
fn fuzz_smoke_tar_reader() {
    smoke("tar_reader", 10_000);
}

#[test]
fn fuzz_smoke_archive() {
    smoke("archive", 4000);
}

#[test]
fn fuzz_smoke_reference() {
    smoke("reference", 20_000);
}

#[test]
fn fuzz_smoke_path() {
    smoke("path", 20_000);
}

#[test]
fn fuzz_smoke_manifest() {
    smoke("manifest", 10_000);
}

#[test]
fn fuzz_smoke_base_config() {
    smoke("base_config", 10_000);
}

/// Every target in `fuzz/fuzz_targets/` has a smoke test here.
#[test]
fn every_fuzz_target_is_smoked() {
    let mut on_disk: Vec<String> = std::fs::read_dir(repo().join("fuzz/fuzz_targets"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    on_disk.sort();
    let mut ours: Vec<String> = targets::TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    ours.sort();
    assert_eq!(on_disk, ours);
}
