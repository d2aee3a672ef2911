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
        Ok(Context { root })
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
