//! The `bake` command line.
//!
//! Three thin layers: [`cli`] turns flags into typed arguments (clap), this
//! file resolves them against the environment into settings (the only place
//! that reads environment variables, the clock or the working directory), and
//! the `commands` run them. Exit codes are decided in [`main`] alone: 0 on
//! success, 1 when the command failed, 2 for a usage error, 128 + N when
//! signal N (SIGINT, SIGTERM, SIGHUP) interrupted a build ([`interrupt`]).

mod check;
mod cli;
mod commands;
mod diff;
mod env;
mod interrupt;
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
    let json = args.command.json();
    let result = commands::run(args);
    // A build stopped by a signal (its clean-up done): one line, 128 + N.
    if let Some(sig) = interrupt::received() {
        let what = if result.is_ok() {
            "it came as the build finished: its output is complete"
        } else {
            "the build stopped and removed its sandbox, scratch root and partial blobs"
        };
        let _ = writeln!(
            std::io::stderr().lock(),
            "bake: interrupted by {}: {what}",
            interrupt::name(sig)
        );
        return ExitCode::from(u8::try_from(128 + sig).unwrap_or(u8::MAX));
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `bake diff` or `bake check` found differences: the report is on stdout.
        Err(err) if err.is::<diff::ImagesDiffer>() => ExitCode::FAILURE,
        Err(err) => {
            let (err, reported) = match err.downcast::<ReportedInJson>() {
                Ok(r) => (r.0, true),
                Err(err) => (err, false),
            };
            // A closed stdout (e.g. `bake build --json | head -c1`) is not an error.
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::BrokenPipe {
                    return ExitCode::SUCCESS;
                }
            }
            let _ = std::io::stderr().lock().write_all(error_text(&err).as_bytes());
            if json && !reported {
                let _ = writeln!(std::io::stdout().lock(), "{}", error_json(&err));
            }
            ExitCode::FAILURE
        }
    }
}

/// A failure whose command already printed its `--json` report, the
/// failure included (`bake store verify` finding corrupt blobs): the error
/// still goes to stderr, but no error object follows the report on stdout,
/// which stays one JSON document.
#[derive(Debug)]
pub(crate) struct ReportedInJson(pub anyhow::Error);

impl std::fmt::Display for ReportedInJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for ReportedInJson {}

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

/// A failed `--json` command's one line on stdout, so CI need not parse
/// stderr: `{"error": MESSAGE, "causes": [...], "kind": KIND, "position":
/// {"file", "line", "column"} | null}`. The message and causes are those
/// of [`error_text`] (control characters escaped); `kind` says what was at
/// fault, from the error's type: `recipe`, `step`, `base`, `context`,
/// `output`, `cache`, `image`, `registry`, `signature`, `diff`, `io`, `interrupted` or
/// `error`; `position` is the recipe position the message starts with.
pub(crate) fn error_json(err: &anyhow::Error) -> serde_json::Value {
    let message = printable(&err.to_string());
    let mut causes = Vec::new();
    let mut shown = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !shown.contains(&cause) {
            causes.push(printable(&cause));
            shown = cause;
        }
    }
    let position = position_of(&message)
        .map(|(file, line, column)| serde_json::json!({ "file": file, "line": line, "column": column }));
    serde_json::json!({
        "error": message,
        "causes": causes,
        "kind": error_kind(err),
        "position": position,
    })
}

fn error_kind(err: &anyhow::Error) -> &'static str {
    use bake_build::BuildError as B;
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<B>() {
            return match e {
                B::Recipe(_) | B::ReadRecipe { .. } => "recipe",
                B::Step { .. } | B::Run { .. } => "step",
                B::Base { .. } | B::BasePath { .. } | B::BaseRejected { .. } => "base",
                B::Context { .. } => "context",
                B::Layout { .. } | B::Store { .. } | B::DockerArchive { .. } => "output",
                B::Cache(_) => "cache",
                B::Image(_) => "image",
                B::Io(_) => "io",
                B::Interrupted => "interrupted",
            };
        }
        if cause.is::<bake_recipe::RecipeError>() {
            return "recipe";
        }
        if cause.is::<bake_registry::RegistryError>() {
            return "registry";
        }
        if cause.is::<bake_sign::SignError>() {
            return "signature";
        }
        if cause.is::<bake_diff::DiffError>() {
            return "diff";
        }
        if cause.is::<bake_image::ImageError>() {
            return "image";
        }
        if cause.is::<std::io::Error>() {
            return "io";
        }
    }
    "error"
}

/// `FILE:LINE:COLUMN` at the start of a message (`FILE:LINE:COLUMN: …`).
fn position_of(message: &str) -> Option<(String, u64, u64)> {
    let head = message.split(": ").next()?;
    let mut parts = head.rsplitn(3, ':');
    let column = parts.next()?.parse().ok()?;
    let line = parts.next()?.parse().ok()?;
    let file = parts.next().filter(|f| !f.is_empty())?;
    Some((file.to_owned(), line, column))
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
