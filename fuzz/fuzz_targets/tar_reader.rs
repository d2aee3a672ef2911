//! `cargo fuzz run tar_reader`: see `src/targets.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bake_fuzz::targets::tar_reader(data));
