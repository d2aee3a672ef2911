//! The one error type of this crate, and [`Pos`], the `FILE:LINE:COLUMN` it points at.

use std::fmt;
use std::path::PathBuf;

/// A position in a recipe: the file as the caller named it, and a 1-based
/// line and column (the column counts characters, not bytes).
///
/// Displays as `FILE:LINE:COLUMN`, the form editors and terminals link.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pos {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Turns byte offsets of one text into [`Pos`]itions.
pub(crate) struct LineIndex<'t> {
    text: &'t str,
    /// Byte offset where each line starts; the first entry is 0.
    starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    pub(crate) fn new(text: &'t str) -> LineIndex<'t> {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { text, starts }
    }

    /// 1-based line and column (in characters) of a byte offset; offsets past
    /// the end are clamped to the end.
    pub(crate) fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        // The number of line starts at or before `offset` is the 1-based line.
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let column = self
            .text
            .as_bytes()
            .get(start..offset)
            .map_or(0, |bytes| bytes.iter().filter(|&&b| b & 0xC0 != 0x80).count());
        (line, column + 1)
    }
}

/// Everything that can be wrong with a recipe or its variable overrides.
///
/// Every variant that relates to a place in the recipe carries a [`Pos`] and
/// displays as `FILE:LINE:COLUMN: message`. User text inside messages is
/// shown between backticks with control characters escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecipeError {
    /// The text is not valid TOML.
    #[error("{pos}: invalid toml: {message}")]
    Syntax { pos: Pos, message: String },

    /// A key this recipe language does not know, at this place.
    #[error("{pos}: unknown key `{}` in {section}", .key.escape_debug())]
    UnknownKey {
        pos: Pos,
        key: String,
        section: &'static str,
    },

    /// A value of the wrong TOML type.
    #[error("{pos}: `{}` must be {expected}, found {found}", .key.escape_debug())]
    WrongType {
        pos: Pos,
        key: String,
        expected: &'static str,
        found: &'static str,
    },

    /// A required key is absent; `pos` is the table that should hold it.
    #[error("{pos}: missing required key `{key}` in {section}")]
    MissingKey {
        pos: Pos,
        key: &'static str,
        section: &'static str,
    },

    /// A required table is absent.
    #[error("{pos}: missing required table {table}")]
    MissingTable { pos: Pos, table: &'static str },

    /// A step with none of the kind keys.
    #[error(
        "{pos}: step has no kind: expected one of `copy`, `file`, `dir`, `symlink`, `unpack`, `deb` or `run`"
    )]
    NoStepKind { pos: Pos },

    /// A step with two kind keys; `pos` is the second one in the text.
    #[error("{pos}: step has two kinds: `{first}` and `{second}`")]
    TwoStepKinds {
        pos: Pos,
        first: &'static str,
        second: &'static str,
    },

    /// A key that belongs to another step kind.
    #[error("{pos}: `{key}` is not allowed in {} {kind} step", if *.kind == "unpack" { "an" } else { "a" })]
    KeyNotAllowed {
        pos: Pos,
        key: &'static str,
        kind: &'static str,
    },

    /// A `[[layer]]` without any `[[layer.step]]`.
    #[error("{pos}: layer has no steps")]
    EmptyLayer { pos: Pos },

    /// Two layers with the same name (explicit or default `layer-N`).
    #[error("{pos}: duplicate layer name `{}`", .name.escape_debug())]
    DuplicateLayer { pos: Pos, name: String },

    /// `${name}` where `name` is not declared in `[variables]`.
    #[error("{pos}: undefined variable `{}`", .name.escape_debug())]
    UndefinedVariable { pos: Pos, name: String },

    /// `${` without its closing `}`.
    #[error("{pos}: unterminated `${{` (write `$${{` for a literal `${{`)")]
    UnterminatedReference { pos: Pos },

    /// A variable name, declared or referenced, that is not an identifier.
    #[error(
        "{pos}: invalid variable name `{}`: use letters, digits and `_`, not starting with a digit",
        .name.escape_debug()
    )]
    InvalidVariableName { pos: Pos, name: String },

    /// Interpolation would produce an unreasonable amount of text.
    #[error("{pos}: variable expansion exceeds {limit} bytes")]
    ExpansionTooLarge { pos: Pos, limit: usize },

    /// An override (`--var` or `BAKE_VAR_*`) of a variable the recipe does
    /// not declare; `pos` is the `[variables]` table (or the file start).
    #[error("{pos}: {} sets undeclared variable `{}`", .origin.describe(.name), .name.escape_debug())]
    UndeclaredOverride {
        pos: Pos,
        name: String,
        origin: OverrideOrigin,
    },

    /// An override whose value does not parse as the declared type; `pos` is
    /// the declaration.
    #[error(
        "{pos}: variable `{name}` is {expected}, but {} sets it to `{}`",
        .origin.describe(.name),
        .value.escape_debug()
    )]
    BadOverride {
        pos: Pos,
        name: String,
        value: String,
        expected: &'static str,
        origin: OverrideOrigin,
    },

    /// A `--var` argument that is not `NAME=VALUE`.
    #[error("invalid --var `{}`: expected NAME=VALUE", .arg.escape_debug())]
    BadVarArgument { arg: String },

    /// A value of the right type that is not acceptable: a mode, owner, port,
    /// platform, image name, tag, base reference, compression, level, epoch
    /// or path.
    #[error("{pos}: invalid {what} `{}`: {reason}", .value.escape_debug())]
    Invalid {
        pos: Pos,
        what: &'static str,
        value: String,
        reason: String,
    },

    /// `[config]`, `annotations` or `tags` that would write more JSON into
    /// the image than its readers accept ([`crate::MAX_CONFIG_JSON`],
    /// [`crate::MAX_TAGS_JSON`]); `pos` is the key whose value crosses the
    /// limit.
    #[error(
        "{pos}: `{key}` brings what the recipe writes into the image {doc} to {size} bytes of JSON, more than the {limit} allowed"
    )]
    JsonTooLarge {
        pos: Pos,
        key: &'static str,
        size: usize,
        limit: usize,
        doc: &'static str,
    },

    /// An absolute source path (`copy`, `unpack`, a base on disk).
    #[error("{pos}: source path `{}` must be relative to the build context", .path.escape_debug())]
    AbsoluteSource { pos: Pos, path: String },

    /// A source path whose `..` leaves the build context.
    #[error("{pos}: source path `{}` leaves the build context", .path.escape_debug())]
    SourceEscapes { pos: Pos, path: String },

    /// A destination that is not an absolute image path.
    #[error("{pos}: destination `{}` must be an absolute path", .path.escape_debug())]
    RelativeDestination { pos: Pos, path: String },

    /// A destination whose `..` would leave `/`.
    #[error("{pos}: destination `{}` leaves `/`", .path.escape_debug())]
    DestinationEscapes { pos: Pos, path: String },
}

/// Where a variable override came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OverrideOrigin {
    /// `--var NAME=VALUE`.
    Cli,
    /// The environment variable `BAKE_VAR_NAME`.
    Env,
}

impl OverrideOrigin {
    /// How a message names the override of `name`: `--var` or `BAKE_VAR_name`.
    pub fn describe(self, name: &str) -> String {
        match self {
            OverrideOrigin::Cli => "--var".to_owned(),
            OverrideOrigin::Env => format!("BAKE_VAR_{}", name.escape_debug()),
        }
    }
}

impl RecipeError {
    /// The recipe position this error points at, if it has one.
    pub fn pos(&self) -> Option<&Pos> {
        use RecipeError::*;
        match self {
            BadVarArgument { .. } => None,
            Syntax { pos, .. }
            | UnknownKey { pos, .. }
            | WrongType { pos, .. }
            | MissingKey { pos, .. }
            | MissingTable { pos, .. }
            | NoStepKind { pos }
            | TwoStepKinds { pos, .. }
            | KeyNotAllowed { pos, .. }
            | EmptyLayer { pos }
            | DuplicateLayer { pos, .. }
            | UndefinedVariable { pos, .. }
            | UnterminatedReference { pos }
            | InvalidVariableName { pos, .. }
            | ExpansionTooLarge { pos, .. }
            | UndeclaredOverride { pos, .. }
            | BadOverride { pos, .. }
            | Invalid { pos, .. }
            | JsonTooLarge { pos, .. }
            | AbsoluteSource { pos, .. }
            | SourceEscapes { pos, .. }
            | RelativeDestination { pos, .. }
            | DestinationEscapes { pos, .. } => Some(pos),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LineIndex;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let idx = LineIndex::new("ab\né = 1\r\n\nx");
        assert_eq!(idx.line_column(0), (1, 1));
        assert_eq!(idx.line_column(1), (1, 2));
        assert_eq!(idx.line_column(3), (2, 1));
        // "é" is two bytes but one column.
        assert_eq!(idx.line_column(6), (2, 3));
        assert_eq!(idx.line_column(11), (3, 1));
        assert_eq!(idx.line_column(12), (4, 1));
        assert_eq!(idx.line_column(999), (4, 2));
    }

    #[test]
    fn empty_text_is_line_one_column_one() {
        assert_eq!(LineIndex::new("").line_column(0), (1, 1));
    }
}
