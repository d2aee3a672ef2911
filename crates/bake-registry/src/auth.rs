//! Credentials the way docker keeps them: `config.json` in a docker config
//! directory, with `auths` entries, `credHelpers` and `credsStore`.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use fs_err as fs;

use crate::RegistryError;
use crate::reference::DOCKER_HUB;

/// The key docker uses for Docker Hub in `auths` and with credential helpers.
const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// Credentials for one registry. `Debug` never shows a secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A user name and password (or personal access token) for basic auth
    /// or for a token service.
    Basic { username: String, password: String },
    /// An OAuth2 refresh token (`identitytoken` in `config.json`, or a
    /// helper's answer with the user name `<token>`), exchanged at the
    /// registry's token service for access tokens.
    IdentityToken(String),
    /// A bearer token sent to the registry as is (`registrytoken`).
    RegistryToken(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
            Credentials::RegistryToken(_) => f.write_str("RegistryToken(<redacted>)"),
        }
    }
}

#[derive(Clone, Default, PartialEq, Eq)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
    registrytoken: Option<String>,
}

impl fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthEntry")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A docker `config.json`, as far as credentials go.
///
/// Lookup follows docker: a `credHelpers` entry for the registry, else
/// `credsStore`, runs `docker-credential-NAME get`; when there is no helper,
/// or the helper has nothing for this registry, the `auths` entry is used
/// (`auth` = base64 of `user:password`, or `username`/`password`, or
/// `identitytoken`, or `registrytoken`). Keys match with or without a
/// scheme and path (`https://ghcr.io`, `ghcr.io`); Docker Hub is
/// `https://index.docker.io/v1/`.
#[derive(Clone, Default)]
pub struct DockerConfig {
    path: Option<PathBuf>,
    auths: BTreeMap<String, AuthEntry>,
    cred_helpers: BTreeMap<String, String>,
    creds_store: Option<String>,
    helper_dir: Option<PathBuf>,
}

impl fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerConfig")
            .field("path", &self.path)
            .field("auths", &self.auths.keys().collect::<Vec<_>>())
            .field("cred_helpers", &self.cred_helpers)
            .field("creds_store", &self.creds_store)
            .finish()
    }
}

impl DockerConfig {
    /// Reads `dir/config.json`. A missing file (or directory) is an empty
    /// config: every registry is then accessed anonymously.
    pub fn load(dir: &Path) -> Result<DockerConfig, RegistryError> {
        let path = dir.join("config.json");
        let err = |reason: String| RegistryError::DockerConfig {
            path: path.clone(),
            reason,
        };
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(DockerConfig {
                    path: Some(path),
                    ..DockerConfig::default()
                });
            }
            Err(e) => return Err(err(e.to_string())),
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
        let mut cfg = DockerConfig {
            path: Some(path.clone()),
            ..DockerConfig::default()
        };
        if let Some(auths) = value.get("auths").and_then(|v| v.as_object()) {
            for (key, entry) in auths {
                let field = |name: &str| {
                    entry
                        .get(name)
                        .and_then(|v| v.as_str())
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                };
                cfg.auths.insert(
                    key.clone(),
                    AuthEntry {
                        auth: field("auth"),
                        username: field("username"),
                        password: field("password"),
                        identitytoken: field("identitytoken"),
                        registrytoken: field("registrytoken"),
                    },
                );
            }
        }
        if let Some(helpers) = value.get("credHelpers").and_then(|v| v.as_object()) {
            for (key, name) in helpers {
                let name = name
                    .as_str()
                    .ok_or_else(|| err(format!("credHelpers entry for {key:?} is not a string")))?;
                cfg.cred_helpers.insert(key.clone(), name.to_owned());
            }
        }
        cfg.creds_store = value
            .get("credsStore")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        Ok(cfg)
    }

    /// Runs credential helpers from `dir` (`dir/docker-credential-NAME`)
    /// instead of looking them up on the `PATH`.
    pub fn set_helper_dir(&mut self, dir: Option<PathBuf>) {
        self.helper_dir = dir;
    }

    /// The `config.json` this was loaded from.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The credentials for `registry` (a host with optional port, as in a
    /// [`Reference`](crate::Reference)), running a credential helper if one
    /// is configured for it. `None` means anonymous access.
    pub fn credentials_for(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        Ok(self.lookup(registry)?.map(|(c, _)| c))
    }

    /// Like [`DockerConfig::credentials_for`], with a description of where
    /// the credentials came from (for error messages).
    pub(crate) fn lookup(&self, registry: &str) -> Result<Option<(Credentials, String)>, RegistryError> {
        let helper = find_key(&self.cred_helpers, registry)
            .map(|(_, h)| h.clone())
            .or_else(|| self.creds_store.clone());
        if let Some(helper) = helper {
            if let Some(creds) = self.run_helper_get(&helper, registry)? {
                return Ok(Some((
                    creds,
                    format!("credentials from docker-credential-{helper}"),
                )));
            }
        }
        let Some((key, entry)) = find_key(&self.auths, registry) else {
            return Ok(None);
        };
        let from = match &self.path {
            Some(p) => format!("credentials for {key:?} from {}", p.display()),
            None => format!("credentials for {key:?}"),
        };
        let bad = |reason: &str| RegistryError::DockerConfig {
            path: self.path.clone().unwrap_or_default(),
            reason: format!("auths entry {key:?}: {reason}"),
        };
        if let Some(token) = &entry.identitytoken {
            return Ok(Some((Credentials::IdentityToken(token.clone()), from)));
        }
        if let Some(token) = &entry.registrytoken {
            return Ok(Some((Credentials::RegistryToken(token.clone()), from)));
        }
        if let Some(auth) = &entry.auth {
            let decoded = BASE64
                .decode(auth.trim())
                .map_err(|_| bad("\"auth\" is not valid base64"))?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad("\"auth\" is not UTF-8"))?;
            let (user, pass) = decoded
                .split_once(':')
                .ok_or_else(|| bad("\"auth\" does not decode to USER:PASSWORD"))?;
            return Ok(Some((
                Credentials::Basic {
                    username: user.to_owned(),
                    password: pass.to_owned(),
                },
                from,
            )));
        }
        match (&entry.username, &entry.password) {
            (Some(u), Some(p)) => Ok(Some((
                Credentials::Basic {
                    username: u.clone(),
                    password: p.clone(),
                },
                from,
            ))),
            _ => Ok(None),
        }
    }

    fn helper_program(&self, helper: &str) -> PathBuf {
        let name = format!("docker-credential-{helper}");
        match &self.helper_dir {
            Some(dir) => dir.join(name),
            None => PathBuf::from(name),
        }
    }

    fn run_helper_get(&self, helper: &str, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        let err = |reason: String| RegistryError::CredentialHelper {
            helper: helper.to_owned(),
            registry: registry.to_owned(),
            reason,
        };
        let output = run_helper(
            &self.helper_program(helper),
            "get",
            server_url(registry).as_bytes(),
        )
        .map_err(|e| err(e.to_string()))?;
        if !output.status.success() {
            // Helpers say "credentials not found in native keychain" on stdout.
            let said = String::from_utf8_lossy(&output.stdout);
            if said.to_ascii_lowercase().contains("credentials not found") {
                return Ok(None);
            }
            return Err(err(format!(
                "exited with {}: {}",
                output.status,
                first_line(&output.stderr)
            )));
        }
        #[derive(serde::Deserialize)]
        struct HelperCreds {
            #[serde(rename = "Username", default)]
            username: String,
            #[serde(rename = "Secret", default)]
            secret: String,
        }
        // Never echo the output: it is the secret.
        let creds: HelperCreds = serde_json::from_slice(&output.stdout).map_err(|e| {
            err(format!(
                "its answer is not the expected JSON ({})",
                e.classify_name()
            ))
        })?;
        if creds.secret.is_empty() {
            return Ok(None);
        }
        Ok(Some(if creds.username == "<token>" {
            Credentials::IdentityToken(creds.secret)
        } else {
            Credentials::Basic {
                username: creds.username,
                password: creds.secret,
            }
        }))
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "missing or mistyped fields",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

fn first_line(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    s.lines().next().unwrap_or("").chars().take(200).collect()
}

fn run_helper(program: &Path, verb: &str, stdin: &[u8]) -> io::Result<std::process::Output> {
    let mut child = Command::new(program)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {}: {e}", program.display())))?;
    if let Some(mut input) = child.stdin.take() {
        // A helper that exits without reading gives EPIPE: not our error.
        let _ = input.write_all(stdin);
    }
    child.wait_with_output()
}

/// The server URL docker passes to credential helpers and uses as `auths` key.
fn server_url(registry: &str) -> String {
    if registry == DOCKER_HUB {
        DOCKER_HUB_AUTH_KEY.to_owned()
    } else {
        registry.to_owned()
    }
}

/// The host part of an `auths`/`credHelpers` key: `https://h:5000/v1/` → `h:5000`.
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

fn key_matches(key: &str, registry: &str) -> bool {
    let host = key_host(key);
    if registry == DOCKER_HUB {
        matches!(host, "index.docker.io" | "docker.io" | "registry-1.docker.io")
    } else {
        host == registry
    }
}

/// The entry for `registry`: an exact key first, then any key whose host matches.
fn find_key<'a, V>(map: &'a BTreeMap<String, V>, registry: &str) -> Option<(&'a String, &'a V)> {
    let exact = server_url(registry);
    map.get_key_value(&exact)
        .or_else(|| map.iter().find(|(k, _)| key_matches(k, registry)))
}

/// Stores credentials for `registry` the way `docker login` does: through
/// the credential helper configured for it, else as an `auths` entry in
/// `dir/config.json`. The file is rewritten atomically (temp file + rename)
/// with mode 0600 and everything else in it kept.
pub fn login(dir: &Path, registry: &str, username: &str, password: &str) -> Result<(), RegistryError> {
    DockerConfig::load(dir)?.login(registry, username, password)
}

impl DockerConfig {
    /// [`login`] into the `config.json` this config was loaded from (and
    /// with its helper directory).
    pub fn login(&self, registry: &str, username: &str, password: &str) -> Result<(), RegistryError> {
        let path = self.path.clone().unwrap_or_else(|| PathBuf::from("config.json"));
        let err = |reason: String| RegistryError::DockerConfig {
            path: path.clone(),
            reason,
        };
        if self.path.is_none() {
            return Err(err("this docker config was not loaded from a directory".into()));
        }
        if username.is_empty() || username.contains(':') {
            return Err(err("a user name must be non-empty and contain no ':'".into()));
        }
        let helper = find_key(&self.cred_helpers, registry)
            .map(|(_, h)| h.clone())
            .or_else(|| self.creds_store.clone());
        if let Some(helper) = helper {
            let body = serde_json::json!({
                "ServerURL": server_url(registry),
                "Username": username,
                "Secret": password,
            });
            let herr = |reason: String| RegistryError::CredentialHelper {
                helper: helper.clone(),
                registry: registry.to_owned(),
                reason,
            };
            let output = run_helper(
                &self.helper_program(&helper),
                "store",
                body.to_string().as_bytes(),
            )
            .map_err(|e| herr(e.to_string()))?;
            if !output.status.success() {
                return Err(herr(format!(
                    "store exited with {}: {}",
                    output.status,
                    first_line(&output.stderr)
                )));
            }
            return Ok(());
        }

        // Keep every other field; a symlinked config file is updated where it lives.
        let target = fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        let mut value = match fs::read_to_string(&target) {
            Ok(t) if !t.trim().is_empty() => serde_json::from_str(&t).map_err(|e| err(e.to_string()))?,
            Ok(_) => serde_json::json!({}),
            Err(e) if e.kind() == io::ErrorKind::NotFound => serde_json::json!({}),
            Err(e) => return Err(err(e.to_string())),
        };
        let root = value
            .as_object_mut()
            .ok_or_else(|| err("the file is not a JSON object".into()))?;
        let auths = root
            .entry("auths")
            .or_insert_with(|| serde_json::json!({}))
            .as_object_mut()
            .ok_or_else(|| err("\"auths\" is not a JSON object".into()))?;
        // Replace whichever key already names this registry, else add docker's key.
        let key = auths
            .keys()
            .find(|k| key_matches(k, registry))
            .cloned()
            .unwrap_or_else(|| server_url(registry));
        let entry = auths.entry(key).or_insert_with(|| serde_json::json!({}));
        if !entry.is_object() {
            *entry = serde_json::json!({});
        }
        if let Some(obj) = entry.as_object_mut() {
            for stale in ["username", "password", "identitytoken", "registrytoken"] {
                obj.remove(stale);
            }
            obj.insert(
                "auth".into(),
                serde_json::Value::String(BASE64.encode(format!("{username}:{password}"))),
            );
        }
        let mut text = serde_json::to_string_pretty(&value).map_err(|e| err(e.to_string()))?;
        text.push('\n');
        write_private_atomically(&target, text.as_bytes()).map_err(|e| err(e.to_string()))
    }
}

/// Credentials: 0600, written atomically (`bake_store::write_atomic`).
fn write_private_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    bake_store::write_atomic(path, bytes, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, json: &str) {
        std::fs::write(dir.join("config.json"), json).unwrap();
    }

    fn basic(u: &str, p: &str) -> Option<Credentials> {
        Some(Credentials::Basic {
            username: u.into(),
            password: p.into(),
        })
    }

    #[test]
    fn missing_config_is_anonymous() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = DockerConfig::load(&dir.path().join("nope")).unwrap();
        assert_eq!(cfg.credentials_for("ghcr.io").unwrap(), None);
    }

    #[test]
    fn auths_entries_in_all_their_forms() {
        let dir = tempfile::tempdir().unwrap();
        let auth = BASE64.encode("alice:s3cr:et");
        write(
            dir.path(),
            &format!(
                r#"{{"auths": {{
                "127.0.0.1:5000": {{"auth": "{auth}"}},
                "https://ghcr.io": {{"username": "bob", "password": "pw"}},
                "https://index.docker.io/v1/": {{"auth": "{}"}},
                "acr.example.io": {{"auth": "", "identitytoken": "refresh-me"}},
                "tok.example.io": {{"registrytoken": "bearer-me"}},
                "empty.example.io": {{}}
            }}, "psFormat": "keep"}}"#,
                BASE64.encode("hub:hubpw")
            ),
        );
        let cfg = DockerConfig::load(dir.path()).unwrap();
        assert_eq!(
            cfg.credentials_for("127.0.0.1:5000").unwrap(),
            basic("alice", "s3cr:et")
        );
        assert_eq!(cfg.credentials_for("ghcr.io").unwrap(), basic("bob", "pw"));
        assert_eq!(cfg.credentials_for("docker.io").unwrap(), basic("hub", "hubpw"));
        assert_eq!(
            cfg.credentials_for("acr.example.io").unwrap(),
            Some(Credentials::IdentityToken("refresh-me".into()))
        );
        assert_eq!(
            cfg.credentials_for("tok.example.io").unwrap(),
            Some(Credentials::RegistryToken("bearer-me".into()))
        );
        assert_eq!(cfg.credentials_for("empty.example.io").unwrap(), None);
        assert_eq!(cfg.credentials_for("127.0.0.1:5001").unwrap(), None);
    }

    #[test]
    fn bad_auth_field_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), r#"{"auths": {"r.io": {"auth": "%%%"}}}"#);
        let err = DockerConfig::load(dir.path())
            .unwrap()
            .credentials_for("r.io")
            .unwrap_err();
        assert!(err.to_string().contains("not valid base64"), "{err}");
        write(dir.path(), "{not json");
        assert!(DockerConfig::load(dir.path()).is_err());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = Credentials::Basic {
            username: "alice".into(),
            password: "hunter2".into(),
        };
        let shown = format!(
            "{c:?} {:?} {:?}",
            Credentials::IdentityToken("tok-1".into()),
            Credentials::RegistryToken("tok-2".into())
        );
        assert!(shown.contains("alice"));
        for secret in ["hunter2", "tok-1", "tok-2"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &format!(
                r#"{{"auths": {{"r.io": {{"auth": "{}"}}}}}}"#,
                BASE64.encode("u:hunter2")
            ),
        );
        let cfg = DockerConfig::load(dir.path()).unwrap();
        assert!(!format!("{cfg:?}").contains("hunter2"));
        assert!(!format!("{cfg:?}").contains(&BASE64.encode("u:hunter2")));
    }

    #[cfg(unix)]
    fn fake_helper(dir: &Path, name: &str, script: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(format!("docker-credential-{name}"));
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn credential_helpers_and_store() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("asked");
        // Answers for r.io only, records what it was asked.
        fake_helper(
            dir.path(),
            "fake",
            &format!(
                r#"read server; echo "$1 $server" >> {log}
if [ "$server" = r.io ]; then echo '{{"ServerURL":"r.io","Username":"helper-user","Secret":"helper-pw"}}'; exit 0; fi
if [ "$server" = t.io ]; then echo '{{"ServerURL":"t.io","Username":"<token>","Secret":"refresh"}}'; exit 0; fi
echo "credentials not found in native keychain"; exit 1"#,
                log = log.display()
            ),
        );
        fake_helper(dir.path(), "broken", "echo 'keychain locked' >&2; exit 3");
        write(
            dir.path(),
            &format!(
                r#"{{"auths": {{"other.io": {{"auth": "{}"}}}},
                   "credHelpers": {{"bad.io": "broken"}}, "credsStore": "fake"}}"#,
                BASE64.encode("file-user:file-pw")
            ),
        );
        let mut cfg = DockerConfig::load(dir.path()).unwrap();
        cfg.set_helper_dir(Some(dir.path().to_path_buf()));
        assert_eq!(
            cfg.credentials_for("r.io").unwrap(),
            basic("helper-user", "helper-pw")
        );
        assert_eq!(
            cfg.credentials_for("t.io").unwrap(),
            Some(Credentials::IdentityToken("refresh".into()))
        );
        // Not in the store: falls back to the file entry.
        assert_eq!(
            cfg.credentials_for("other.io").unwrap(),
            basic("file-user", "file-pw")
        );
        assert_eq!(cfg.credentials_for("none.io").unwrap(), None);
        let asked = std::fs::read_to_string(&log).unwrap();
        assert_eq!(asked.lines().next(), Some("get r.io"));
        let err = cfg.credentials_for("bad.io").unwrap_err().to_string();
        assert!(
            err.contains("docker-credential-broken") && err.contains("keychain locked"),
            "{err}"
        );
        let mut missing = cfg.clone();
        missing.set_helper_dir(Some(dir.path().join("nowhere")));
        assert!(
            missing
                .credentials_for("r.io")
                .unwrap_err()
                .to_string()
                .contains("cannot run")
        );
    }

    #[cfg(unix)]
    #[test]
    fn login_writes_atomically_and_keeps_the_rest() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            r#"{"auths": {"https://ghcr.io": {"auth": "eDp5", "email": "x@y"}, "keep.io": {"auth": "a2VlcDpwdw=="}},
                "psFormat": "table {{.ID}}", "credHelpers": {"gcr.io": "gcloud"}}"#,
        );
        login(dir.path(), "ghcr.io", "carol", "pw2").unwrap();
        login(dir.path(), "127.0.0.1:5000", "dave", "pw3").unwrap();
        login(dir.path(), "docker.io", "erin", "pw4").unwrap();
        let path = dir.path().join("config.json");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["psFormat"], "table {{.ID}}");
        assert_eq!(v["credHelpers"]["gcr.io"], "gcloud");
        assert_eq!(v["auths"]["keep.io"]["auth"], "a2VlcDpwdw==");
        assert_eq!(v["auths"]["https://ghcr.io"]["email"], "x@y");
        assert!(v["auths"]["https://index.docker.io/v1/"].is_object());
        let cfg = DockerConfig::load(dir.path()).unwrap();
        assert_eq!(cfg.credentials_for("ghcr.io").unwrap(), basic("carol", "pw2"));
        assert_eq!(
            cfg.credentials_for("127.0.0.1:5000").unwrap(),
            basic("dave", "pw3")
        );
        assert_eq!(cfg.credentials_for("docker.io").unwrap(), basic("erin", "pw4"));
        // No temp files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("config.json")]);
    }

    #[cfg(unix)]
    #[test]
    fn login_creates_a_fresh_config_and_uses_helpers() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("new-dir");
        login(&fresh, "r.io", "u", "p").unwrap();
        assert_eq!(
            DockerConfig::load(&fresh)
                .unwrap()
                .credentials_for("r.io")
                .unwrap(),
            basic("u", "p")
        );

        let stored = dir.path().join("stored");
        fake_helper(dir.path(), "rec", &format!("cat > {}", stored.display()));
        write(dir.path(), r#"{"credHelpers": {"h.io": "rec"}}"#);
        let mut cfg = DockerConfig::load(dir.path()).unwrap();
        cfg.set_helper_dir(Some(dir.path().to_path_buf()));
        cfg.login("h.io", "u", "pw-for-helper").unwrap();
        let sent: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&stored).unwrap()).unwrap();
        assert_eq!(
            sent,
            serde_json::json!({"ServerURL": "h.io", "Username": "u", "Secret": "pw-for-helper"})
        );
        // The helper holds the secret: config.json is untouched.
        assert!(
            !std::fs::read_to_string(dir.path().join("config.json"))
                .unwrap()
                .contains("auths")
        );
        assert!(cfg.login("h.io", "bad:user", "p").is_err());
        assert!(DockerConfig::default().login("r.io", "u", "p").is_err());
    }
}
