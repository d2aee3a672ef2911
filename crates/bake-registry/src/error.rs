//! The crate's one error type, and the distribution API's error body.

use std::fmt;
use std::path::PathBuf;

use bake_digest::Digest;
use bake_store::StoreError;

/// Everything that can go wrong talking to a registry. Each variant names the
/// reference (or file) at fault; registry failures carry the HTTP status and
/// the registry's own error codes and messages. No variant ever holds a
/// password, token or `Authorization` header.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid image reference {input:?}: {reason}")]
    InvalidReference { input: String, reason: String },

    #[error("cannot use docker config {path}: {reason}")]
    DockerConfig { path: PathBuf, reason: String },

    #[error("credential helper docker-credential-{helper} failed for {registry}: {reason}")]
    CredentialHelper {
        helper: String,
        registry: String,
        reason: String,
    },

    /// The registry (or its token service) refused our credentials, or we
    /// had none and it wants some.
    #[error("authentication failed for {reference} at {registry}: {detail} ({credentials})")]
    Unauthorized {
        reference: String,
        registry: String,
        /// Status and the registry's error codes/messages.
        detail: String,
        /// Where the credentials came from ("no credentials configured for
        /// ...", "credentials from /home/u/.docker/config.json"): never the
        /// credentials themselves.
        credentials: String,
    },

    /// The registry answered with an error status (after retries, for the
    /// retryable ones).
    #[error("cannot {action} {reference}: registry answered {}{}{}", status_text(*.status), api_suffix(.errors), attempts_suffix(*.attempts))]
    Status {
        action: String,
        reference: String,
        status: u16,
        errors: ApiErrors,
        attempts: u32,
    },

    /// The connection failed, was reset or timed out (after retries).
    #[error("cannot {action} {reference}: {reason}{}", attempts_suffix(*.attempts))]
    Network {
        action: String,
        reference: String,
        reason: String,
        attempts: u32,
    },

    /// What the registry says it stored or served is not what we sent or
    /// asked for.
    #[error("digest mismatch for {what} of {reference}: expected {expected}, registry gave {actual}")]
    DigestMismatch {
        reference: String,
        what: String,
        expected: Digest,
        actual: String,
    },

    #[error("invalid manifest {reference}: {reason}")]
    InvalidManifest { reference: String, reason: String },

    #[error("{reference} has no manifest for platform {platform} (it has: {available})")]
    PlatformNotFound {
        reference: String,
        platform: String,
        available: String,
    },

    #[error(
        "blob {digest} of {reference} is {size} bytes, more than the {limit} bytes allowed for this request"
    )]
    BlobTooLarge {
        reference: String,
        digest: Digest,
        size: u64,
        limit: u64,
    },

    #[error("cannot {action} {reference}: {source}")]
    Store {
        action: String,
        reference: String,
        #[source]
        source: StoreError,
    },
}

fn status_text(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}

fn api_suffix(errors: &ApiErrors) -> String {
    if errors.0.is_empty() {
        String::new()
    } else {
        format!(": {errors}")
    }
}

fn attempts_suffix(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (gave up after {attempts} attempts)")
    } else {
        String::new()
    }
}

impl RegistryError {
    pub(crate) fn set_attempts(mut self, n: u32) -> RegistryError {
        match &mut self {
            RegistryError::Status { attempts, .. } | RegistryError::Network { attempts, .. } => *attempts = n,
            _ => {}
        }
        self
    }

    /// The HTTP status the registry answered, for errors that have one.
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Status { status, .. } => Some(*status),
            RegistryError::Unauthorized { .. } => Some(401),
            _ => None,
        }
    }
}

/// One entry of the distribution API's error body
/// (`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"…","detail":…}]}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ApiError {
    pub code: String,
    #[serde(default)]
    pub message: String,
    /// Whatever the registry adds (the spec leaves its shape open: a
    /// string, an object such as `{"Tag":"v1"}`, …). Shown after the
    /// message, escaped, shortened and with secret-looking values hidden.
    #[serde(default)]
    pub detail: Option<serde_json::Value>,
}

/// Longest detail shown, in characters.
const DETAIL_MAX_CHARS: usize = 200;

/// Object keys whose values are never shown (lower case, matched as parts).
const SECRET_KEYS: &[&str] = &[
    "token",
    "password",
    "passwd",
    "secret",
    "authorization",
    "credential",
    "cookie",
    "auth",
];

/// A detail as one short line: a string as is, other JSON compact; control
/// characters escaped, values of secret-looking keys and the word after
/// `Bearer`/`Basic` replaced by `<redacted>`, cut at [`DETAIL_MAX_CHARS`].
/// `None` when there is nothing to show (null, empty string, `{}`, `[]`).
fn render_detail(detail: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    let text = match redact(detail) {
        Value::Null => return None,
        Value::String(s) => s,
        Value::Object(m) if m.is_empty() => return None,
        Value::Array(a) if a.is_empty() => return None,
        other => other.to_string(),
    };
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut shown = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == DETAIL_MAX_CHARS {
            shown.push('…');
            break;
        }
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    Some(shown)
}

fn redact(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = k.to_ascii_lowercase();
                    if SECRET_KEYS.iter().any(|s| key.contains(s)) {
                        (k.clone(), Value::String("<redacted>".into()))
                    } else {
                        (k.clone(), redact(v))
                    }
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(redact).collect()),
        Value::String(s) => Value::String(redact_schemes(s)),
        other => other.clone(),
    }
}

/// `Bearer abc` / `Basic abc` → `Bearer <redacted>`.
fn redact_schemes(text: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut hide_next = false;
    for word in text.split(' ') {
        if hide_next && !word.is_empty() {
            out.push("<redacted>");
            hide_next = false;
            continue;
        }
        let lower = word.to_ascii_lowercase();
        hide_next = lower == "bearer" || lower == "basic";
        out.push(word);
    }
    out.join(" ")
}

/// The registry's errors for one response; when the body was not the API's
/// JSON, a single entry with an empty code and the start of the body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiErrors(pub Vec<ApiError>);

impl ApiErrors {
    pub(crate) fn parse(body: &[u8]) -> ApiErrors {
        #[derive(serde::Deserialize)]
        struct Envelope {
            errors: Vec<ApiError>,
        }
        if let Ok(env) = serde_json::from_slice::<Envelope>(body) {
            return ApiErrors(env.errors);
        }
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            return ApiErrors::default();
        }
        let mut short: String = text.chars().take(200).collect();
        if short.len() < text.len() {
            short.push('…');
        }
        ApiErrors(vec![ApiError {
            code: String::new(),
            message: short,
            detail: None,
        }])
    }

    /// Whether any entry has this code (e.g. `TOOMANYREQUESTS`).
    pub fn has_code(&self, code: &str) -> bool {
        self.0.iter().any(|e| e.code == code)
    }
}

impl fmt::Display for ApiErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            match (e.code.is_empty(), e.message.is_empty()) {
                (true, _) => f.write_str(&e.message)?,
                (false, true) => f.write_str(&e.code)?,
                (false, false) => write!(f, "{}: {}", e.code, e.message)?,
            }
            if let Some(detail) = e.detail.as_ref().and_then(render_detail) {
                write!(f, " (detail: {detail})")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_distribution_errors() {
        let body =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#;
        let e = ApiErrors::parse(body);
        assert_eq!(
            e.to_string(),
            r#"MANIFEST_UNKNOWN: manifest unknown (detail: {"Tag":"x"})"#
        );
        assert!(e.has_code("MANIFEST_UNKNOWN"));
        assert_eq!(ApiErrors::parse(b"  ").to_string(), "");
        assert_eq!(
            ApiErrors::parse(b"<html>bad gateway</html>").to_string(),
            "<html>bad gateway</html>"
        );
        assert!(ApiErrors::parse(&[b'x'; 500]).to_string().ends_with('…'));
    }

    #[test]
    fn status_error_names_reference_code_and_message() {
        let e = RegistryError::Status {
            action: "push manifest to".into(),
            reference: "127.0.0.1:5000/app:v1".into(),
            status: 400,
            errors: ApiErrors::parse(
                br#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#,
            ),
            attempts: 1,
        };
        assert_eq!(
            e.to_string(),
            "cannot push manifest to 127.0.0.1:5000/app:v1: registry answered 400 Bad Request: MANIFEST_BLOB_UNKNOWN: blob unknown to registry"
        );
        assert!(
            e.set_attempts(4)
                .to_string()
                .ends_with("(gave up after 4 attempts)")
        );
    }

    fn shown(body: &str) -> String {
        ApiErrors::parse(body.as_bytes()).to_string()
    }

    #[test]
    fn details_are_shown_escaped_shortened_and_without_secrets() {
        // A string detail, as distribution gives for BLOB_UNKNOWN.
        assert_eq!(
            shown(
                r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:abc"}]}"#
            ),
            "BLOB_UNKNOWN: blob unknown to registry (detail: sha256:abc)"
        );
        // Nothing to show: no detail, null, empty string, empty object.
        for detail in [r#""#, r#","detail":null"#, r#","detail":"  ""#, r#","detail":{}"#] {
            assert_eq!(
                shown(&format!(r#"{{"errors":[{{"code":"C","message":"m"{detail}}}]}}"#)),
                "C: m",
                "{detail}"
            );
        }
        // A code without a message still gets its detail.
        assert_eq!(
            shown(r#"{"errors":[{"code":"C","detail":{"name":"app"}}]}"#),
            r#"C (detail: {"name":"app"})"#
        );
        // Control characters are escaped, not passed to the terminal.
        let text = shown(r#"{"errors":[{"code":"C","message":"m","detail":"a\u001b[31mred\nline"}]}"#);
        assert_eq!(text, r"C: m (detail: a\u{1b}[31mred\nline)");
        // Long details are cut.
        let long = "x".repeat(5000);
        let text = shown(&format!(
            r#"{{"errors":[{{"code":"C","message":"m","detail":"{long}"}}]}}"#
        ));
        assert!(text.ends_with("x…)"), "{text}");
        assert!(text.len() < 300, "{text}");
        // Secret-looking keys and the credential after an auth scheme are hidden.
        let text = shown(
            r#"{"errors":[{"code":"DENIED","message":"no","detail":{"Token":"t0ps3cret","access":[{"password":"hunter2","name":"app"}],"header":"Bearer abc.def"}}]}"#,
        );
        for secret in ["t0ps3cret", "hunter2", "abc.def"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(
            text.contains(r#""name":"app""#) && text.contains("Bearer <redacted>"),
            "{text}"
        );
        assert_eq!(
            shown(r#"{"errors":[{"code":"C","message":"m","detail":"sent basic dTpw"}]}"#),
            "C: m (detail: sent basic <redacted>)"
        );
    }

    #[test]
    fn a_status_error_shows_the_detail_after_the_message() {
        let e = RegistryError::Status {
            action: "upload blob sha256:1234 to".into(),
            reference: "127.0.0.1:5000/app:v1".into(),
            status: 404,
            errors: ApiErrors::parse(
                br#"{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"blob upload unknown to registry","detail":"upload 7f3c expired"}]}"#,
            ),
            attempts: 1,
        };
        assert_eq!(
            e.to_string(),
            "cannot upload blob sha256:1234 to 127.0.0.1:5000/app:v1: registry answered 404 Not Found: BLOB_UPLOAD_UNKNOWN: blob upload unknown to registry (detail: upload 7f3c expired)"
        );
    }
}
