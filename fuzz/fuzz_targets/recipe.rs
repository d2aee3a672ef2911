//! `cargo fuzz run recipe`: see `src/targets.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bake_fuzz::targets::recipe(data));
