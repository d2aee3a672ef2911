//! The bodies of bake's fuzz targets (see `targets.rs`), shared with the
//! smoke test the main test suite runs.

pub mod targets;
