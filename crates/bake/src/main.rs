//! The `bake` command line.
//!
//! Three thin layers: [`cli`] turns flags into typed arguments (clap), this
//! file resolves them against the environment into settings (the only place
//! that reads environment variables, the clock or the working directory), and
//! the `commands` run them. Exit codes are decided in [`main`] alone: 0 on
//! success, 1 when the command failed, 2 for a usage error.

mod check;
mod cli;
mod commands;
mod diff;
mod lock;
mod progress;
mod registry;
mod sign;
mod store;
mod target;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match commands::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        // `bake diff` or `bake check` found differences: the report is on stdout.
        Err(err) if err.is::<diff::ImagesDiffer>() => ExitCode::FAILURE,
        Err(err) => {
            // A closed stdout (e.g. `bake build --json | head -c1`) is not an error.
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::BrokenPipe {
                    return ExitCode::SUCCESS;
                }
            }
            let _ = std::io::stderr().lock().write_all(error_text(&err).as_bytes());
            ExitCode::FAILURE
        }
    }
}

/// The error as bake reports it: `error: …`, then each cause that adds
/// something (ours already embed their cause's text), one per line.
pub(crate) fn error_text(err: &anyhow::Error) -> String {
    let mut text = format!("error: {}\n", printable(&err.to_string()));
    let mut shown = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !shown.contains(&cause) {
            text.push_str(&format!("  caused by: {}\n", printable(&cause)));
            shown = cause;
        }
    }
    if bake_layer::exceeds_tar_limit(&text) {
        // A decompression bomb, or a real archive bigger than the limit.
        text.push_str("  hint: if the archive is trusted, raise the limit with --max-archive-size SIZE\n");
    }
    text
}

/// Error text can hold what a stranger wrote (archive entry names, a
/// registry's message): control characters other than newline and tab are
/// shown escaped (`\u{1b}`), so they cannot drive the terminal.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}
