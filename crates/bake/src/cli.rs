//! Command-line flags, parsed by clap: types and help text only, no behaviour.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Bake reproducible OCI images from TOML recipes.
///
/// The same recipe and inputs give the same image digest on any machine: tar
/// entries are sorted and normalised, timestamps come from the build epoch
/// (SOURCE_DATE_EPOCH, --source-date-epoch or the recipe's `epoch`), and
/// compression is pinned. See docs/recipe.md for the recipe language.
#[derive(Debug, Parser)]
#[command(name = "bake", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an image from a recipe into an OCI image layout.
    ///
    /// Writes the layout to out/<image name>/ (or --layout DIR), tagging the
    /// manifest with each of the recipe's tags in index.json. Prints the
    /// manifest digest and each layer's digest and size; with --json, one
    /// JSON object on stdout instead.
    Build(BuildArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The recipe file (TOML). Paths in it are relative to its directory.
    pub recipe: PathBuf,

    /// Write the OCI image layout here instead of out/<image name>/.
    #[arg(long, value_name = "DIR")]
    pub layout: Option<PathBuf>,

    /// Also write a docker-archive tarball (for `podman load` / `docker load`).
    #[arg(long, value_name = "FILE")]
    pub docker_archive: Option<PathBuf>,

    /// Override a recipe variable (repeatable). Also read from BAKE_VAR_<name>;
    /// the command line wins.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,

    /// Build epoch in seconds since 1970: every timestamp in the image.
    /// SOURCE_DATE_EPOCH, when set, wins over this flag; both win over the
    /// recipe's `epoch` (default 0).
    #[arg(long, value_name = "SECONDS")]
    pub source_date_epoch: Option<u64>,

    /// Print one JSON object describing the build on stdout.
    #[arg(long)]
    pub json: bool,

    /// Print nothing but errors (and the JSON with --json).
    #[arg(long, short)]
    pub quiet: bool,
}
