//! Project automation: `cargo xtask test`, `bench`, `golden`.
fn main() {}
