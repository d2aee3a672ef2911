//! The walk from a spanned TOML tree to a [`Recipe`].
//!
//! The text is parsed with `toml`'s span-keeping [`DeTable`], then each table
//! is checked by hand: unknown keys first (the earliest in the text wins),
//! then each known key in a fixed order. Every error is placed at the key or
//! value that causes it.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeInteger, DeTable, DeValue};

use crate::error::LineIndex;
use crate::recipe::{
    BaseRef, Compression, Config, CopyMtime, FileCaps, Image, Layer, Output, Owner, Recipe, RunStep, Step,
    StepKind, VarValue,
};
use crate::values::{self, Problem};
use crate::{OverrideOrigin, Overrides, Pos, RecipeError};

type Value<'i> = Spanned<DeValue<'i>>;
type Result<T> = std::result::Result<T, RecipeError>;

/// The most bytes `${…}` substitution may add to one recipe, so a small
/// recipe cannot ask for gigabytes of memory.
pub(crate) const EXPANSION_LIMIT: usize = 64 << 20;

const TOP_KEYS: &[&str] = &["epoch", "base", "image", "variables", "output", "layer", "config"];
const IMAGE_KEYS: &[&str] = &["name", "tags", "platform", "annotations"];
const OUTPUT_KEYS: &[&str] = &["compression", "level", "push"];
const LAYER_KEYS: &[&str] = &["name", "step"];
const CONFIG_KEYS: &[&str] = &[
    "entrypoint",
    "cmd",
    "env",
    "user",
    "workdir",
    "labels",
    "expose",
    "volumes",
    "stop_signal",
];

/// The step kinds, each with the keys it accepts besides its own.
const KINDS: &[(&str, &[&str])] = &[
    (
        "copy",
        &["to", "mode", "owner", "exclude", "mtime", "capabilities"],
    ),
    ("file", &["content", "mode", "owner", "capabilities"]),
    ("dir", &["mode", "owner"]),
    ("symlink", &["target", "owner"]),
    ("unpack", &["to"]),
    ("deb", &["sha256"]),
    ("run", &["network", "timeout", "user", "env", "workdir"]),
];
const STEP_OPTION_KEYS: &[&str] = &[
    "to",
    "mode",
    "owner",
    "exclude",
    "content",
    "target",
    "sha256",
    "network",
    "timeout",
    "user",
    "env",
    "workdir",
    "mtime",
    "capabilities",
];
/// The most bytes of JSON `[config]` may add to the image config, and
/// `annotations` to the manifest. Both documents must stay within 4 MiB,
/// what skopeo, podman (containers/image) and registries read and bake's
/// registry client accepts; 1 MiB each leaves room for a base's config and
/// thousands of layers, and bake-image refuses whatever still crosses 4 MiB.
pub const MAX_CONFIG_JSON: usize = 1 << 20;
/// The most bytes of JSON the tags may take as `docker save`'s `RepoTags`
/// (`NAME:TAG` strings): containers/image reads a docker-archive's
/// `manifest.json` only up to 1 MiB.
pub const MAX_TAGS_JSON: usize = 256 << 10;

/// The longest `timeout` a run step may ask for: a week.
const MAX_TIMEOUT: u64 = 7 * 24 * 3600;

pub(crate) fn parse(path: &Path, text: &str, overrides: &Overrides) -> Result<Recipe> {
    let mut cx = Cx {
        file: path,
        lines: LineIndex::new(text),
        vars: BTreeMap::new(),
        expanded: Cell::new(0),
    };
    let root = DeTable::parse(text).map_err(|e| RecipeError::Syntax {
        pos: cx.pos(e.span().unwrap_or(0..0)),
        message: e.message().to_owned(),
    })?;
    let root_span = root.span();
    let root = root.get_ref();
    cx.check_keys(root, TOP_KEYS, "the recipe")?;

    cx.vars = cx.variables(root.get("variables"), overrides)?;

    let epoch = match root.get("epoch") {
        None => None,
        Some(v) => {
            let epoch = cx.integer("epoch", v)?;
            let epoch = u64::try_from(epoch).map_err(|_| RecipeError::Invalid {
                pos: cx.pos(v.span()),
                what: "epoch",
                value: epoch.to_string(),
                reason: "must not be negative".to_owned(),
            })?;
            Some(epoch)
        }
    };

    let (base, base_pos) = match root.get("base") {
        None => (BaseRef::Scratch, None),
        Some(v) => {
            let s = cx.string("base", v)?;
            (cx.place(values::base(&s), v)?, Some(cx.pos(v.span())))
        }
    };

    let image = match root.get("image") {
        Some(v) => cx.image(v)?,
        None => {
            return Err(RecipeError::MissingTable {
                pos: cx.pos(root_span),
                table: "[image]",
            });
        }
    };
    let output = match root.get("output") {
        Some(v) => cx.output(v)?,
        None => Output::default(),
    };
    let layers = match root.get("layer") {
        Some(v) => cx.layers(v)?,
        None => Vec::new(),
    };
    let config = match root.get("config") {
        Some(v) => cx.config(v)?,
        None => Config::default(),
    };

    let context = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok(Recipe {
        path: path.to_path_buf(),
        context,
        epoch,
        base,
        base_pos,
        image,
        output,
        layers,
        config,
        variables: cx.vars,
    })
}

/// What the walk needs at every step: where it is, and the variables.
struct Cx<'a> {
    file: &'a Path,
    lines: LineIndex<'a>,
    vars: BTreeMap<String, VarValue>,
    /// Bytes added by substitution so far, against [`EXPANSION_LIMIT`].
    expanded: Cell<usize>,
}

impl Cx<'_> {
    fn pos(&self, span: Range<usize>) -> Pos {
        let (line, column) = self.lines.line_column(span.start);
        Pos {
            file: self.file.to_path_buf(),
            line,
            column,
        }
    }

    fn place<T>(&self, r: std::result::Result<T, Problem>, v: &Value<'_>) -> Result<T> {
        r.map_err(|p| p.at(self.pos(v.span())))
    }

    fn wrong_type(&self, key: &str, expected: &'static str, v: &Value<'_>) -> RecipeError {
        RecipeError::WrongType {
            pos: self.pos(v.span()),
            key: key.to_owned(),
            expected,
            found: v.get_ref().type_str(),
        }
    }

    /// Fails on the key that appears first in the text among those not in `allowed`.
    fn check_keys(&self, table: &DeTable<'_>, allowed: &[&str], section: &'static str) -> Result<()> {
        let unknown = table
            .keys()
            .filter(|k| !allowed.contains(&k.get_ref().as_ref()))
            .min_by_key(|k| k.span().start);
        match unknown {
            Some(k) => Err(RecipeError::UnknownKey {
                pos: self.pos(k.span()),
                key: k.get_ref().to_string(),
                section,
            }),
            None => Ok(()),
        }
    }

    fn table<'v, 'i>(&self, key: &str, v: &'v Value<'i>) -> Result<&'v DeTable<'i>> {
        v.get_ref()
            .as_table()
            .ok_or_else(|| self.wrong_type(key, "a table", v))
    }

    fn integer(&self, key: &str, v: &Value<'_>) -> Result<i64> {
        match v.get_ref() {
            DeValue::Integer(i) => self.integer_value(i, v),
            _ => Err(self.wrong_type(key, "an integer", v)),
        }
    }

    fn integer_value(&self, i: &DeInteger<'_>, v: &Value<'_>) -> Result<i64> {
        i64::from_str_radix(i.as_str(), i.radix()).map_err(|_| RecipeError::Invalid {
            pos: self.pos(v.span()),
            what: "integer",
            value: i.to_string(),
            reason: "out of range for a 64-bit signed integer".to_owned(),
        })
    }

    /// A string value, with `${…}` substituted.
    fn string(&self, key: &str, v: &Value<'_>) -> Result<String> {
        match v.get_ref() {
            DeValue::String(s) => self.interpolate(s, v),
            _ => Err(self.wrong_type(key, "a string", v)),
        }
    }

    /// An array of strings, each substituted, with the value each came from.
    fn strings<'v, 'i>(&self, key: &str, v: &'v Value<'i>) -> Result<Vec<(String, &'v Value<'i>)>> {
        let items = v
            .get_ref()
            .as_array()
            .ok_or_else(|| self.wrong_type(key, "an array of strings", v))?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| Ok((self.string(&format!("{key}[{i}]"), item)?, item)))
            .collect()
    }

    /// A table of strings; keys are kept as written, values substituted.
    fn string_map(&self, key: &str, v: &Value<'_>) -> Result<BTreeMap<String, String>> {
        let table = v
            .get_ref()
            .as_table()
            .ok_or_else(|| self.wrong_type(key, "a table of strings", v))?;
        let mut map = BTreeMap::new();
        for (k, item) in table.iter() {
            let name = k.get_ref().as_ref();
            if name.is_empty() {
                return Err(RecipeError::Invalid {
                    pos: self.pos(k.span()),
                    what: "key",
                    value: String::new(),
                    reason: format!("`{key}` keys must not be empty"),
                });
            }
            map.insert(name.to_owned(), self.string(&format!("{key}.{name}"), item)?);
        }
        Ok(map)
    }

    /// Substitutes `${name}` and turns `$${` into `${`.
    fn interpolate(&self, raw: &str, v: &Value<'_>) -> Result<String> {
        if !raw.contains('$') {
            return Ok(raw.to_owned());
        }
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(i) = rest.find('$') {
            let Some((before, at)) = rest.split_at_checked(i) else {
                break;
            };
            out.push_str(before);
            if let Some(after) = at.strip_prefix("$${") {
                out.push_str("${");
                rest = after;
            } else if let Some(after) = at.strip_prefix("${") {
                let Some((name, after)) = after.split_once('}') else {
                    return Err(RecipeError::UnterminatedReference {
                        pos: self.pos(v.span()),
                    });
                };
                if !values::variable_name_ok(name) {
                    return Err(RecipeError::InvalidVariableName {
                        pos: self.pos(v.span()),
                        name: name.to_owned(),
                    });
                }
                let Some(value) = self.vars.get(name) else {
                    return Err(RecipeError::UndefinedVariable {
                        pos: self.pos(v.span()),
                        name: name.to_owned(),
                    });
                };
                let before = out.len();
                match value {
                    VarValue::String(s) => out.push_str(s),
                    other => out.push_str(&other.to_string()),
                }
                let total = self.expanded.get().saturating_add(out.len() - before);
                if total > EXPANSION_LIMIT {
                    return Err(RecipeError::ExpansionTooLarge {
                        pos: self.pos(v.span()),
                        limit: EXPANSION_LIMIT,
                    });
                }
                self.expanded.set(total);
                rest = after;
            } else {
                out.push('$');
                rest = at.strip_prefix('$').unwrap_or_default();
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// `[variables]` with the overrides applied.
    fn variables(
        &self,
        table: Option<&Value<'_>>,
        overrides: &Overrides,
    ) -> Result<BTreeMap<String, VarValue>> {
        // name → (value, where it is declared)
        let mut declared: BTreeMap<String, (VarValue, Range<usize>)> = BTreeMap::new();
        if let Some(v) = table {
            let t = self.table("variables", v)?;
            let mut entries: Vec<_> = t.iter().collect();
            entries.sort_by_key(|(k, _)| k.span().start);
            for (k, item) in entries {
                let name = k.get_ref().as_ref();
                if !values::variable_name_ok(name) {
                    return Err(RecipeError::InvalidVariableName {
                        pos: self.pos(k.span()),
                        name: name.to_owned(),
                    });
                }
                let value = match item.get_ref() {
                    DeValue::String(s) => VarValue::String(s.to_string()),
                    DeValue::Integer(i) => VarValue::Integer(self.integer_value(i, item)?),
                    DeValue::Boolean(b) => VarValue::Boolean(*b),
                    _ => {
                        return Err(self.wrong_type(
                            &format!("variables.{name}"),
                            "a string, integer or boolean",
                            item,
                        ));
                    }
                };
                declared.insert(name.to_owned(), (value, k.span()));
            }
        }

        // The command line wins over the environment.
        let mut set: BTreeMap<&str, (&str, OverrideOrigin)> = BTreeMap::new();
        for (name, value) in &overrides.env {
            set.insert(name, (value, OverrideOrigin::Env));
        }
        for (name, value) in &overrides.cli {
            set.insert(name, (value, OverrideOrigin::Cli));
        }
        for (name, (text, origin)) in set {
            let Some((value, span)) = declared.get_mut(name) else {
                return Err(RecipeError::UndeclaredOverride {
                    pos: self.pos(table.map_or(0..0, |t| t.span())),
                    name: name.to_owned(),
                    origin,
                });
            };
            let bad = |expected| RecipeError::BadOverride {
                pos: self.pos(span.clone()),
                name: name.to_owned(),
                value: text.to_owned(),
                expected,
                origin,
            };
            *value = match value {
                VarValue::String(_) => VarValue::String(text.to_owned()),
                VarValue::Integer(_) => VarValue::Integer(text.parse().map_err(|_| bad("an integer"))?),
                VarValue::Boolean(_) => match text {
                    "true" => VarValue::Boolean(true),
                    "false" => VarValue::Boolean(false),
                    _ => return Err(bad("a boolean (true or false)")),
                },
            };
        }
        Ok(declared
            .into_iter()
            .map(|(name, (value, _))| (name, value))
            .collect())
    }

    fn image(&self, v: &Value<'_>) -> Result<Image> {
        let t = self.table("image", v)?;
        self.check_keys(t, IMAGE_KEYS, "[image]")?;

        let name_v = t.get("name").ok_or_else(|| RecipeError::MissingKey {
            pos: self.pos(v.span()),
            key: "name",
            section: "[image]",
        })?;
        let name = self.string("name", name_v)?;
        let name = self.place(values::image_name(&name), name_v)?;

        let tags = match t.get("tags") {
            None => vec!["latest".to_owned()],
            Some(tv) => {
                let mut tags: Vec<String> = Vec::new();
                for (tag, item) in self.strings("tags", tv)? {
                    let tag = self.place(values::tag(&tag), item)?;
                    if !tags.contains(&tag) {
                        tags.push(tag);
                    }
                }
                tags
            }
        };

        let platform = match t.get("platform") {
            None => crate::Platform::linux_amd64(),
            Some(pv) => {
                let s = self.string("platform", pv)?;
                self.place(values::platform(&s), pv)?
            }
        };

        let annotations = match t.get("annotations") {
            None => BTreeMap::new(),
            Some(av) => self.string_map("annotations", av)?,
        };
        if let Some(av) = t.get("annotations") {
            let size: usize = annotations
                .iter()
                .map(|(k, v)| values::json_len(k) + values::json_len(v) + 2)
                .sum();
            if size > MAX_CONFIG_JSON {
                return Err(RecipeError::JsonTooLarge {
                    pos: self.pos(av.span()),
                    key: "annotations",
                    size,
                    limit: MAX_CONFIG_JSON,
                    doc: "manifest",
                });
            }
        }
        if let Some(tv) = t.get("tags") {
            let size: usize = tags
                .iter()
                .map(|tag| values::json_len(&name) + tag.len() + 2)
                .sum();
            if size > MAX_TAGS_JSON {
                return Err(RecipeError::JsonTooLarge {
                    pos: self.pos(tv.span()),
                    key: "tags",
                    size,
                    limit: MAX_TAGS_JSON,
                    doc: "docker-archive manifest.json (as RepoTags)",
                });
            }
        }
        Ok(Image {
            name,
            tags,
            platform,
            annotations,
        })
    }

    fn output(&self, v: &Value<'_>) -> Result<Output> {
        let t = self.table("output", v)?;
        self.check_keys(t, OUTPUT_KEYS, "[output]")?;

        let compression = match t.get("compression") {
            None => Compression::Gzip,
            Some(cv) => match self.string("compression", cv)?.as_str() {
                "gzip" => Compression::Gzip,
                "zstd" => Compression::Zstd,
                "none" => Compression::None,
                other => {
                    return Err(RecipeError::Invalid {
                        pos: self.pos(cv.span()),
                        what: "compression",
                        value: other.to_owned(),
                        reason: "expected \"gzip\", \"zstd\" or \"none\"".to_owned(),
                    });
                }
            },
        };

        let level = match t.get("level") {
            None => compression.default_level(),
            Some(lv) => {
                let level = self.integer("level", lv)?;
                let invalid = |reason: String| RecipeError::Invalid {
                    pos: self.pos(lv.span()),
                    what: "level",
                    value: level.to_string(),
                    reason,
                };
                let Some(range) = compression.levels() else {
                    return Err(invalid(format!("compression \"{compression}\" takes no level")));
                };
                match u32::try_from(level) {
                    Ok(l) if range.contains(&l) => Some(l),
                    _ => {
                        return Err(invalid(format!(
                            "{compression} levels are {}-{}",
                            range.start(),
                            range.end()
                        )));
                    }
                }
            }
        };

        let push = match t.get("push") {
            None => Vec::new(),
            Some(pv) => self.strings("push", pv)?.into_iter().map(|(s, _)| s).collect(),
        };
        Ok(Output {
            compression,
            level,
            push,
        })
    }

    fn layers(&self, v: &Value<'_>) -> Result<Vec<Layer>> {
        let items = v
            .get_ref()
            .as_array()
            .ok_or_else(|| self.wrong_type("layer", "an array of tables", v))?;
        let mut layers = Vec::with_capacity(items.len());
        let mut names = BTreeSet::new();
        for (i, item) in items.iter().enumerate() {
            let t = self.table(&format!("layer[{i}]"), item)?;
            self.check_keys(t, LAYER_KEYS, "[[layer]]")?;
            let pos = self.pos(item.span());

            let (name, name_pos) = match t.get("name") {
                None => (format!("layer-{}", i + 1), pos.clone()),
                Some(nv) => {
                    let name = self.string("name", nv)?;
                    if name.is_empty() || name.chars().any(char::is_control) {
                        return Err(RecipeError::Invalid {
                            pos: self.pos(nv.span()),
                            what: "layer name",
                            value: name,
                            reason: "must be non-empty, without control characters".to_owned(),
                        });
                    }
                    (name, self.pos(nv.span()))
                }
            };
            if !names.insert(name.clone()) {
                return Err(RecipeError::DuplicateLayer { pos: name_pos, name });
            }

            let steps = match t.get("step") {
                None => Vec::new(),
                Some(sv) => {
                    let items = sv
                        .get_ref()
                        .as_array()
                        .ok_or_else(|| self.wrong_type("step", "an array of tables", sv))?;
                    items
                        .iter()
                        .enumerate()
                        .map(|(j, step)| self.step(&format!("step[{j}]"), step))
                        .collect::<Result<Vec<_>>>()?
                }
            };
            if steps.is_empty() {
                return Err(RecipeError::EmptyLayer { pos });
            }
            layers.push(Layer { name, pos, steps });
        }
        Ok(layers)
    }

    fn step(&self, key: &str, v: &Value<'_>) -> Result<Step> {
        let t = self.table(key, v)?;
        let pos = self.pos(v.span());

        // Keys in text order, so "the first" and "the second" mean what a reader sees.
        let mut keys: Vec<_> = t.iter().collect();
        keys.sort_by_key(|(k, _)| k.span().start);

        for (k, _) in &keys {
            let name = k.get_ref().as_ref();
            if !KINDS.iter().any(|(kind, _)| *kind == name) && !STEP_OPTION_KEYS.contains(&name) {
                return Err(RecipeError::UnknownKey {
                    pos: self.pos(k.span()),
                    key: name.to_owned(),
                    section: "[[layer.step]]",
                });
            }
        }

        let mut kinds = keys.iter().filter_map(|(k, _)| {
            KINDS
                .iter()
                .find(|(kind, _)| *kind == k.get_ref().as_ref())
                .map(|&(kind, allowed)| (kind, allowed, k.span()))
        });
        let Some((kind, allowed, kind_span)) = kinds.next() else {
            return Err(RecipeError::NoStepKind { pos });
        };
        if let Some((second, _, span)) = kinds.next() {
            return Err(RecipeError::TwoStepKinds {
                pos: self.pos(span),
                first: kind,
                second,
            });
        }

        for (k, _) in &keys {
            let name = k.get_ref().as_ref();
            if name != kind && !allowed.contains(&name) {
                let key = STEP_OPTION_KEYS
                    .iter()
                    .find(|o| **o == name)
                    .copied()
                    .unwrap_or("?");
                return Err(RecipeError::KeyNotAllowed {
                    pos: self.pos(k.span()),
                    key,
                    kind,
                });
            }
        }

        let section = match kind {
            "copy" => "a copy step",
            "file" => "a file step",
            "dir" => "a dir step",
            "symlink" => "a symlink step",
            "deb" => "a deb step",
            "run" => "a run step",
            _ => "an unpack step",
        };
        let required = |name: &'static str| {
            t.get(name).ok_or_else(|| RecipeError::MissingKey {
                pos: pos.clone(),
                key: name,
                section,
            })
        };
        let Some(kind_v) = t.get(kind) else {
            return Err(RecipeError::NoStepKind { pos });
        };
        if kind == "run" {
            return Ok(Step {
                pos: self.pos(kind_span),
                kind: StepKind::Run(self.run_step(t, kind_v)?),
            });
        }
        let subject = self.string(kind, kind_v)?;

        let step_kind = match kind {
            "copy" => {
                let to_v = required("to")?;
                let src = self.place(values::source_path(&subject), kind_v)?;
                let to = self.string("to", to_v)?;
                let to = self.place(values::destination_path(&to), to_v)?;
                let mode = t.get("mode").map(|m| self.mode(m)).transpose()?;
                let owner = self.owner(t.get("owner"))?;
                let exclude = match t.get("exclude") {
                    None => Vec::new(),
                    Some(ev) => self.strings("exclude", ev)?.into_iter().map(|(s, _)| s).collect(),
                };
                let mtime = match t.get("mtime") {
                    None => CopyMtime::Epoch,
                    Some(mv) => {
                        let s = self.string("mtime", mv)?;
                        self.place(values::copy_mtime(&s), mv)?
                    }
                };
                StepKind::Copy {
                    src,
                    to,
                    mode,
                    owner,
                    exclude,
                    mtime,
                    capabilities: self.capabilities(t.get("capabilities"))?,
                }
            }
            "file" => {
                let content_v = required("content")?;
                let path = self.place(values::entry_path(&subject), kind_v)?;
                let content = self.string("content", content_v)?;
                let mode = t.get("mode").map(|m| self.mode(m)).transpose()?.unwrap_or(0o644);
                let owner = self.owner(t.get("owner"))?;
                StepKind::File {
                    path,
                    content,
                    mode,
                    owner,
                    capabilities: self.capabilities(t.get("capabilities"))?,
                }
            }
            "dir" => {
                let path = self.place(values::destination_path(&subject), kind_v)?;
                let mode = t.get("mode").map(|m| self.mode(m)).transpose()?.unwrap_or(0o755);
                let owner = self.owner(t.get("owner"))?;
                StepKind::Dir { path, mode, owner }
            }
            "symlink" => {
                let target_v = required("target")?;
                let path = self.place(values::entry_path(&subject), kind_v)?;
                let target = self.string("target", target_v)?;
                if target.is_empty() || target.contains('\0') {
                    return Err(RecipeError::Invalid {
                        pos: self.pos(target_v.span()),
                        what: "symlink target",
                        value: target,
                        reason: "must be non-empty, without NUL bytes".to_owned(),
                    });
                }
                let owner = self.owner(t.get("owner"))?;
                StepKind::Symlink { path, target, owner }
            }
            "deb" => {
                let sha_v = required("sha256")?;
                let src = self.place(values::source_path(&subject), kind_v)?;
                let sha256 = self.string("sha256", sha_v)?;
                let sha256 = self.place(values::sha256(&sha256), sha_v)?;
                StepKind::Deb { src, sha256 }
            }
            _ => {
                let src = self.place(values::source_path(&subject), kind_v)?;
                let to = match t.get("to") {
                    None => "/".to_owned(),
                    Some(to_v) => {
                        let to = self.string("to", to_v)?;
                        self.place(values::destination_path(&to), to_v)?
                    }
                };
                StepKind::Unpack { src, to }
            }
        };
        Ok(Step {
            pos: self.pos(kind_span),
            kind: step_kind,
        })
    }

    /// The keys of a `run` step, whose kind key is a command or an array of them.
    fn run_step(&self, t: &DeTable<'_>, run_v: &Value<'_>) -> Result<RunStep> {
        let commands: Vec<(String, &Value<'_>)> = match run_v.get_ref() {
            DeValue::String(_) => vec![(self.string("run", run_v)?, run_v)],
            DeValue::Array(_) => self.strings("run", run_v)?,
            _ => return Err(self.wrong_type("run", "a string or an array of strings", run_v)),
        };
        if commands.is_empty() {
            return Err(RecipeError::Invalid {
                pos: self.pos(run_v.span()),
                what: "run",
                value: "[]".to_owned(),
                reason: "give at least one command".to_owned(),
            });
        }
        for (command, v) in &commands {
            if command.trim().is_empty() || command.contains('\0') {
                return Err(RecipeError::Invalid {
                    pos: self.pos(v.span()),
                    what: "command",
                    value: command.clone(),
                    reason: "must be non-empty, without NUL bytes".to_owned(),
                });
            }
        }

        let network = match t.get("network") {
            None => false,
            Some(v) => match v.get_ref() {
                DeValue::Boolean(b) => *b,
                _ => return Err(self.wrong_type("network", "a boolean", v)),
            },
        };

        let timeout = match t.get("timeout") {
            None => RunStep::DEFAULT_TIMEOUT,
            Some(v) => {
                let (text, seconds) = match v.get_ref() {
                    DeValue::Integer(i) => {
                        let n = self.integer_value(i, v)?;
                        (n.to_string(), u64::try_from(n).ok())
                    }
                    DeValue::String(_) => {
                        let s = self.string("timeout", v)?;
                        let seconds = values::duration(&s);
                        (s, seconds)
                    }
                    _ => return Err(self.wrong_type("timeout", "an integer (seconds) or a string", v)),
                };
                match seconds {
                    Some(n) if (1..=MAX_TIMEOUT).contains(&n) => n,
                    _ => {
                        return Err(RecipeError::Invalid {
                            pos: self.pos(v.span()),
                            what: "timeout",
                            value: text,
                            reason: format!(
                                "expected seconds (1 to {MAX_TIMEOUT}) or a duration such as \"90s\", \"5m\" or \"1h30m\""
                            ),
                        });
                    }
                }
            }
        };

        let user = match t.get("user") {
            None => None,
            Some(v) => {
                let s = self.string("user", v)?;
                Some(self.place(values::run_user(&s), v)?)
            }
        };

        let env = match t.get("env") {
            None => BTreeMap::new(),
            Some(ev) => self.env_map(ev)?,
        };
        if let Some(span) = env_key_span(t, "SOURCE_DATE_EPOCH") {
            return Err(RecipeError::Invalid {
                pos: self.pos(span),
                what: "environment variable",
                value: "SOURCE_DATE_EPOCH".to_owned(),
                reason: "bake sets it to the build epoch".to_owned(),
            });
        }

        let workdir = match t.get("workdir") {
            None => None,
            Some(wv) => {
                let w = self.string("workdir", wv)?;
                Some(self.place(values::destination_path(&w), wv)?)
            }
        };
        Ok(RunStep {
            commands: commands.into_iter().map(|(c, _)| c).collect(),
            network,
            timeout,
            user,
            env,
            workdir,
        })
    }

    /// An `env` table: keys without `=` or NUL, values substituted.
    fn env_map(&self, ev: &Value<'_>) -> Result<BTreeMap<String, String>> {
        let env = self.string_map("env", ev)?;
        if let Some(bad) = env.keys().find(|k| k.contains(['=', '\0'])) {
            let key_span = ev
                .get_ref()
                .as_table()
                .and_then(|et| et.get_key_value(bad.as_str()))
                .map_or(ev.span(), |(k, _)| k.span());
            return Err(RecipeError::Invalid {
                pos: self.pos(key_span),
                what: "environment variable name",
                value: bad.clone(),
                reason: "must not contain `=` or NUL".to_owned(),
            });
        }
        Ok(env)
    }

    fn mode(&self, v: &Value<'_>) -> Result<u32> {
        match v.get_ref() {
            DeValue::Integer(i) => self.place(values::mode_from_integer(i.as_str(), i.radix()), v),
            DeValue::String(_) => {
                let s = self.string("mode", v)?;
                self.place(values::mode_from_str(&s), v)
            }
            _ => Err(self.wrong_type("mode", "an octal integer or string", v)),
        }
    }

    fn capabilities(&self, v: Option<&Value<'_>>) -> Result<Option<FileCaps>> {
        v.map(|v| {
            let s = self.string("capabilities", v)?;
            self.place(values::capabilities(&s), v)
        })
        .transpose()
    }

    fn owner(&self, v: Option<&Value<'_>>) -> Result<Owner> {
        match v {
            None => Ok(Owner::default()),
            Some(v) => {
                let s = self.string("owner", v)?;
                self.place(values::owner(&s), v)
            }
        }
    }

    fn config(&self, v: &Value<'_>) -> Result<Config> {
        let t = self.table("config", v)?;
        self.check_keys(t, CONFIG_KEYS, "[config]")?;
        let list = |key: &str| -> Result<Option<Vec<String>>> {
            t.get(key)
                .map(|lv| Ok(self.strings(key, lv)?.into_iter().map(|(s, _)| s).collect()))
                .transpose()
        };
        let single =
            |key: &str| -> Result<Option<String>> { t.get(key).map(|sv| self.string(key, sv)).transpose() };

        let entrypoint = list("entrypoint")?;
        let cmd = list("cmd")?;

        let env = match t.get("env") {
            None => BTreeMap::new(),
            Some(ev) => self.env_map(ev)?,
        };

        let user = single("user")?;
        let workdir = match t.get("workdir") {
            None => None,
            Some(wv) => {
                let w = self.string("workdir", wv)?;
                Some(self.place(values::destination_path(&w), wv)?)
            }
        };
        let labels = match t.get("labels") {
            None => BTreeMap::new(),
            Some(lv) => self.string_map("labels", lv)?,
        };

        let mut expose: Vec<String> = Vec::new();
        if let Some(ev) = t.get("expose") {
            let items = ev
                .get_ref()
                .as_array()
                .ok_or_else(|| self.wrong_type("expose", "an array of ports", ev))?;
            for (i, item) in items.iter().enumerate() {
                let port = match item.get_ref() {
                    DeValue::Integer(n) => {
                        let n = self.integer_value(n, item)?;
                        self.place(values::port_from_integer(n), item)?
                    }
                    DeValue::String(_) => {
                        let s = self.string("expose", item)?;
                        self.place(values::port_from_str(&s), item)?
                    }
                    _ => {
                        return Err(self.wrong_type(&format!("expose[{i}]"), "a string or an integer", item));
                    }
                };
                if !expose.contains(&port) {
                    expose.push(port);
                }
            }
        }

        let mut volumes: Vec<String> = Vec::new();
        if let Some(vv) = t.get("volumes") {
            for (s, item) in self.strings("volumes", vv)? {
                let volume = self.place(values::destination_path(&s), item)?;
                if !volumes.contains(&volume) {
                    volumes.push(volume);
                }
            }
        }

        let stop_signal = single("stop_signal")?;

        // What each key adds to the image config, as canonical JSON (an
        // upper bound: an `env` or label the base has is replaced).
        let list_len = |l: &Option<Vec<String>>| {
            l.as_ref().map_or(0, |l| {
                16 + l.iter().map(|s| values::json_len(s) + 1).sum::<usize>()
            })
        };
        let one_len = |s: &Option<String>| s.as_ref().map_or(0, |s| 16 + values::json_len(s));
        let keys_len = |l: &[String]| l.iter().map(|s| values::json_len(s) + 4).sum::<usize>();
        let sizes = [
            ("entrypoint", list_len(&entrypoint)),
            ("cmd", list_len(&cmd)),
            (
                "env",
                env.iter()
                    .map(|(k, v)| values::json_len(k) + values::json_len(v) + 1)
                    .sum(),
            ),
            ("user", one_len(&user)),
            ("workdir", one_len(&workdir)),
            (
                "labels",
                labels
                    .iter()
                    .map(|(k, v)| values::json_len(k) + values::json_len(v) + 2)
                    .sum(),
            ),
            ("expose", keys_len(&expose)),
            ("volumes", keys_len(&volumes)),
            ("stop_signal", one_len(&stop_signal)),
        ];
        let mut size = 0;
        for (key, n) in sizes {
            size += n;
            if size > MAX_CONFIG_JSON {
                return Err(RecipeError::JsonTooLarge {
                    pos: self.pos(t.get(key).map_or(v.span(), |kv| kv.span())),
                    key,
                    size,
                    limit: MAX_CONFIG_JSON,
                    doc: "config",
                });
            }
        }
        Ok(Config {
            entrypoint,
            cmd,
            env,
            user,
            workdir,
            labels,
            expose,
            volumes,
            stop_signal,
        })
    }
}

/// The span of `key` inside the step's `env` table, if the table sets it.
fn env_key_span(step: &DeTable<'_>, key: &str) -> Option<Range<usize>> {
    let env = step.get("env")?.get_ref().as_table()?;
    env.get_key_value(key).map(|(k, _)| k.span())
}
