//! bake's integration tests: one binary (linking each of these modules as
//! its own test binary cost most of the test build), each module the tests
//! of one concern, run against the real `bake` executable. Tests that need
//! root, runc, a registry or fetched `.deb`s are `#[ignore]`d and run by
//! `cargo xtask test`.

#![allow(clippy::unwrap_used)]

mod common;

mod cache;
mod capabilities;
mod check;
mod compression;
mod concurrency;
mod crash;
mod diff;
mod errors;
mod external;
mod fuzz_smoke;
mod golden;
mod golden_large;
mod hostile;
mod hostile_basefs;
mod hostile_config;
mod hostile_recipes;
mod hostile_registry;
mod hostile_run;
mod killed;
mod limits;
mod lock;
mod log;
mod provision;
mod registry;
mod reproducible;
mod same_world;
mod secrets;
mod store;
mod usrmerge;
