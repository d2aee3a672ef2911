//! `cargo fuzz run base_config`: see `src/targets.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bake_fuzz::targets::base_config(data));
