//! `cargo fuzz run path`: see `src/targets.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bake_fuzz::targets::path(data));
