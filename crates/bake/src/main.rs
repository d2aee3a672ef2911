//! The `bake` command line: parses flags into settings and runs commands.
fn main() {}
