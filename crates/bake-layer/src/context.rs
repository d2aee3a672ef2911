//! The build context: the one host directory sources may be read from.

use std::io;
use std::path::{Path, PathBuf};

use crate::LayerError;

/// A canonicalised build-context directory.
///
/// [`Context::resolve`] turns a context-relative path from a recipe into a
/// host path, following symlinks, and refuses anything that ends up outside
/// the context. The tree walk of a [`Source::Copy`](crate::Source::Copy) then
/// never follows symlinks, so nothing outside the context is ever read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    root: PathBuf,
    /// bake's own outputs inside the context (canonical host paths): no
    /// copy reads them ([`Context::with_hidden`]).
    hidden: Vec<PathBuf>,
}

impl Context {
    /// Opens `dir` as a build context (canonicalised: symlinks resolved).
    pub fn new(dir: &Path) -> Result<Context, LayerError> {
        let root = fs_err::canonicalize(dir).map_err(|source| LayerError::ContextIo {
            path: dir.to_owned(),
            source,
        })?;
        let meta = fs_err::metadata(&root).map_err(|source| LayerError::ContextIo {
            path: dir.to_owned(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(LayerError::ContextNotDir { path: dir.to_owned() });
        }
        Ok(Context {
            root,
            hidden: Vec::new(),
        })
    }

    /// The same context, where no `copy` of a directory reads `paths` (the
    /// layout, build log, cache, lock and temp files the build itself
    /// writes, when they lie inside the context): a tree containing them is
    /// copied as if each were excluded (the directories holding them stay,
    /// without them). A path that does not exist yet counts too; paths
    /// outside the context are left out; a copy naming such a path itself
    /// (not a directory above it) still reads it, as asked.
    pub fn with_hidden(mut self, paths: &[PathBuf]) -> Context {
        for p in paths {
            // A path that does not exist yet (a cache the build is about to
            // create): its nearest existing ancestor, canonical, and the rest.
            let mut canonical = None;
            let mut rest = Vec::new();
            let mut at = p.as_path();
            loop {
                if let Ok(c) = fs_err::canonicalize(at) {
                    canonical = Some(rest.iter().rev().fold(c, |acc: PathBuf, n| acc.join(n)));
                    break;
                }
                match (at.parent(), at.file_name()) {
                    (Some(parent), Some(name)) => {
                        rest.push(name.to_owned());
                        at = parent;
                    }
                    _ => break,
                }
            }
            if let Some(c) = canonical.filter(|c| c.starts_with(&self.root) && *c != self.root) {
                if !self.hidden.contains(&c) {
                    self.hidden.push(c);
                }
            }
        }
        self.hidden.sort();
        self
    }

    /// The hidden paths (see [`Context::with_hidden`]) below the directory
    /// `src` (a resolved host path), relative to it.
    pub fn hidden_below(&self, src: &Path) -> Vec<String> {
        self.hidden
            .iter()
            .filter(|h| h.starts_with(src) && h.as_path() != src)
            .filter_map(|h| h.strip_prefix(src).ok()?.to_str().map(str::to_owned))
            .collect()
    }

    /// A copy's exclude patterns for the resolved source `src`: `exclude`
    /// and, escaped as literal globs, the hidden paths below `src`. The
    /// layer walk and the cache's input walk both use this, so they exclude
    /// exactly the same paths.
    pub fn copy_excludes(&self, src: &Path, exclude: &[String]) -> Vec<String> {
        let mut out = exclude.to_vec();
        for rel in self.hidden_below(src) {
            let mut glob = String::with_capacity(rel.len());
            for c in rel.chars() {
                if matches!(c, '\\' | '*' | '?' | '[' | ']' | '{' | '}') {
                    glob.push('\\');
                }
                glob.push(c);
            }
            out.push(glob);
        }
        out
    }

    /// The canonical context directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The canonical host path of `rel`, a relative path inside the context
    /// (`""` or `"."` is the context itself).
    ///
    /// Fails when `rel` is absolute, does not exist, or resolves (through
    /// `..` or symlinks) to a path outside the context.
    pub fn resolve(&self, rel: &str) -> Result<PathBuf, LayerError> {
        if rel.starts_with('/') {
            return Err(LayerError::BadContextPath {
                rel: rel.to_owned(),
                reason: "must be relative to the build context",
            });
        }
        if rel.contains('\0') {
            return Err(LayerError::BadContextPath {
                rel: rel.to_owned(),
                reason: "contains a NUL byte",
            });
        }
        let joined = self.root.join(rel);
        let resolved = match fs_err::canonicalize(&joined) {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(LayerError::NotFound {
                    rel: rel.to_owned(),
                    root: self.root.clone(),
                });
            }
            Err(source) => return Err(LayerError::ContextIo { path: joined, source }),
        };
        if !resolved.starts_with(&self.root) {
            return Err(LayerError::OutsideContext {
                rel: rel.to_owned(),
                resolved,
                root: self.root.clone(),
            });
        }
        Ok(resolved)
    }
}
