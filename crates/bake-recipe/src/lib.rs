//! TOML recipe to validated [`Recipe`]: variables, interpolation, diagnostics
//! with `FILE:LINE:COLUMN`.
//!
//! A *recipe* is one TOML file that describes an image (the language is
//! specified in `docs/recipe.md`). The directory holding it is the *build
//! context*: every source path in the recipe is relative to it and may not
//! leave it. A recipe has:
//!
//! - `[image]`: the repository name, tags, platform and annotations;
//! - `[variables]`: typed defaults (string, integer, boolean), which callers
//!   override with `--var NAME=VALUE` and `BAKE_VAR_NAME` (the command line
//!   wins). `${name}` is substituted in every string value and `$${` writes a
//!   literal `${`;
//! - `base`: `scratch`, an OCI layout, a docker archive or a registry
//!   reference ([`BaseRef`]);
//! - `[[layer]]`s of `[[layer.step]]`s ([`StepKind`]): copy, file, dir,
//!   symlink, unpack, deb (a Debian package) and run (commands in a sandbox,
//!   [`RunStep`]);
//! - `[config]` and `[output]`.
//!
//! [`parse`] turns the text into a [`Recipe`] in which everything has been
//! checked: unknown keys, types, names, tags, modes, owners, ports, paths and
//! references. Source paths come out normalised and relative (`.` is the whole
//! context), destinations normalised and absolute. Every problem is a
//! [`RecipeError`] that names the key or value at fault as
//! `FILE:LINE:COLUMN: message`.
//!
//! ```
//! use std::path::Path;
//! use bake_recipe::{Overrides, StepKind, parse};
//!
//! let text = r#"
//! [variables]
//! version = "1.0"
//!
//! [image]
//! name = "hello"
//! tags = ["v${version}"]
//!
//! [[layer]]
//!   [[layer.step]]
//!   copy = "./bin/hello"
//!   to = "/usr/local/bin/"
//!   mode = 0o755
//! "#;
//! let overrides = Overrides { cli: vec![("version".into(), "2.0".into())], env: vec![] };
//! let recipe = parse(Path::new("app/recipe.toml"), text, &overrides).unwrap();
//! assert_eq!(recipe.context, Path::new("app"));
//! assert_eq!(recipe.image.tags, ["v2.0"]);
//! assert_eq!(recipe.image.platform.to_string(), "linux/amd64");
//! assert_eq!(recipe.layers[0].name, "layer-1");
//! match &recipe.layers[0].steps[0].kind {
//!     StepKind::Copy { src, to, mode, .. } => {
//!         assert_eq!((src.as_str(), to.as_str(), *mode), ("bin/hello", "/usr/local/bin", Some(0o755)));
//!     }
//!     other => panic!("{other:?}"),
//! }
//!
//! let err = parse(Path::new("recipe.toml"), "[image]\nname = \"Hello\"\n", &Overrides::default()).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "recipe.toml:2:8: invalid image name `Hello`: \
//!      expected lower-case [a-z0-9] components separated by `.`, `_`, `__`, `-` or `/`"
//! );
//! ```
//!
//! This crate owns the recipe language: its syntax, defaults, validation and
//! error positions. It does no I/O at all: it reads no files (the caller
//! passes the text), no environment (the caller passes `BAKE_VAR_*` values,
//! prefix stripped) and no clock. It does not know whether sources exist,
//! whether they resolve through symlinks out of the context, how to build a
//! layer, or how to parse a registry reference beyond keeping it.

mod error;
mod parse;
mod recipe;
mod values;

use std::path::Path;

pub use crate::error::{OverrideOrigin, Pos, RecipeError};
pub use crate::parse::{MAX_CONFIG_JSON, MAX_TAGS_JSON};
pub use crate::recipe::{
    BaseRef, Compression, Config, CopyMtime, FileCaps, Image, Layer, Output, Owner, Platform, Recipe,
    RunStep, Step, StepKind, VarValue,
};

/// Variable overrides from outside the recipe. Each list is `(name, value)`
/// in the order given; within a list a later entry wins, and `cli` wins over
/// `env`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Overrides {
    /// From `--var NAME=VALUE` (see [`parse_var_override`]).
    pub cli: Vec<(String, String)>,
    /// From `BAKE_VAR_NAME=VALUE` in the environment, `BAKE_VAR_` stripped.
    pub env: Vec<(String, String)>,
}

/// Parses and validates the recipe `text`, read from `path`.
///
/// `path` is used for error positions and to find the build context; it is
/// never opened.
pub fn parse(path: &Path, text: &str, overrides: &Overrides) -> Result<Recipe, RecipeError> {
    parse::parse(path, text, overrides)
}

/// Splits a `--var` argument `NAME=VALUE` at its first `=`. The name must be
/// a variable name (`[A-Za-z_][A-Za-z0-9_]*`); the value may be empty and may
/// contain `=`.
pub fn parse_var_override(s: &str) -> Result<(String, String), RecipeError> {
    match s.split_once('=') {
        Some((name, value)) if values::variable_name_ok(name) => Ok((name.to_owned(), value.to_owned())),
        _ => Err(RecipeError::BadVarArgument { arg: s.to_owned() }),
    }
}
