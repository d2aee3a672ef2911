//! The environment, read once: every variable the bake binary itself looks
//! at goes through [`Env`], a snapshot taken the first time it is asked
//! for. (Libraries read none, except reqwest's proxy variables and the CA
//! bundle variables rustls' platform roots honour; `bake check` passes
//! those on to its builds.)

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::sync::OnceLock;

/// A snapshot of the process environment.
pub struct Env {
    vars: Vec<(OsString, OsString)>,
}

impl Env {
    /// The process's environment, as it was when first asked for.
    pub fn get() -> &'static Env {
        static ENV: OnceLock<Env> = OnceLock::new();
        ENV.get_or_init(|| Env {
            vars: std::env::vars_os().collect(),
        })
    }

    fn var(&self, name: &str) -> Option<&OsStr> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_os_str())
    }

    /// Every variable, for `bake check` to pick what its builds get.
    pub fn all(&self) -> impl Iterator<Item = (&OsStr, &OsStr)> {
        self.vars.iter().map(|(k, v)| (k.as_os_str(), v.as_os_str()))
    }

    /// `$XDG_CACHE_HOME/bake`, else `$HOME/.cache/bake` (absolute paths
    /// only); none without either: the default layer cache.
    pub fn default_cache_dir(&self) -> Option<PathBuf> {
        let absolute = |v: &OsStr| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
        self.var("XDG_CACHE_HOME")
            .and_then(absolute)
            .or_else(|| self.var("HOME").and_then(absolute).map(|h| h.join(".cache")))
            .map(|d| d.join("bake"))
    }

    /// `BAKE_VAR_<name>` variables as (name, value); those whose name or
    /// value is not UTF-8 are skipped.
    pub fn bake_vars(&self) -> Vec<(String, String)> {
        self.vars
            .iter()
            .filter_map(|(k, v)| {
                let name = k.to_str()?.strip_prefix("BAKE_VAR_")?.to_owned();
                Some((name, v.to_str()?.to_owned()))
            })
            .collect()
    }

    /// `SOURCE_DATE_EPOCH` as written (not UTF-8: replaced characters, so
    /// it is refused as malformed rather than ignored).
    pub fn source_date_epoch(&self) -> Option<String> {
        self.var("SOURCE_DATE_EPOCH")
            .map(|v| v.to_string_lossy().into_owned())
    }

    /// `$DOCKER_CONFIG` (when not empty), else `$HOME/.docker`, else
    /// `.docker`: where registry credentials are read and saved.
    pub fn docker_config_dir(&self) -> PathBuf {
        if let Some(d) = self.var("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
            return PathBuf::from(d);
        }
        self.var("HOME")
            .map_or_else(|| PathBuf::from(".docker"), |h| PathBuf::from(h).join(".docker"))
    }

    /// `BAKE_PASSWORD`: a signing key's password without a prompt.
    pub fn bake_password(&self) -> Option<&OsStr> {
        self.var("BAKE_PASSWORD")
    }

    /// `PATH`, where `bake check` looks for `taskset`.
    pub fn path(&self) -> Option<&OsStr> {
        self.var("PATH")
    }
}
