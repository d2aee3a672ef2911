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

    /// A size a registry or a descriptor claims is not the size of the
    /// bytes: refused both ways, since a size copied into an image must be
    /// exact for readers to unpack it.
    #[error("size mismatch for {what} {digest} of {reference}: {claimed_by} gives {claimed} bytes, {actual}")]
    SizeMismatch {
        reference: String,
        /// "blob", "manifest".
        what: &'static str,
        digest: Digest,
        /// Who claimed `claimed`: "its descriptor", "the registry's Content-Length".
        claimed_by: &'static str,
        claimed: u64,
        /// What the bytes are: "the registry sent 114", "the store holds 114".
        actual: String,
    },

    /// A request (connect, headers and body) missed its deadline: see
    /// [`crate::RetryPolicy::request_timeout`].
    #[error("cannot {action} {reference}: timed out: {reason}{}", attempts_suffix(*.attempts))]
    TimedOut {
        action: String,
        reference: String,
        reason: String,
        attempts: u32,
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
            RegistryError::Status { attempts, .. }
            | RegistryError::Network { attempts, .. }
            | RegistryError::TimedOut { attempts, .. } => *attempts = n,
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

/// Longest detail (or body that is not the API's JSON) shown, in characters.
const DETAIL_MAX_CHARS: usize = 200;
/// Longest error message or code shown, in characters.
const MESSAGE_MAX_CHARS: usize = 500;

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
    if text.trim().is_empty() {
        return None;
    }
    Some(clean_text(&text, DETAIL_MAX_CHARS))
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
        Value::String(s) => Value::String(redact_text(s)),
        other => other.clone(),
    }
}

const REDACTED: &str = "<redacted>";

/// Key names (as parts of a `key=value`, `key: value` or `"key":"value"`)
/// whose values are hidden in free text, lower case, matched as parts.
const SECRET_TEXT_KEYS: &[&str] = &[
    "token",
    "password",
    "passwd",
    "secret",
    "auth",
    "credential",
    "cookie",
    "apikey",
    "api_key",
    "api-key",
];

/// Free text (a message, a detail string, a body that is not the API's
/// JSON) with what looks like a credential replaced by `<redacted>`: the
/// word after `Bearer`/`Basic` (as in an echoed `Authorization: Basic …`
/// header), values of secret-looking keys (`token=…`, `access_token=…`,
/// `"authorization":"…"`, `password: …`), and words that are base64 of a
/// `user:password` pair.
pub(crate) fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut hide_next = false;
    for piece in text.split_inclusive(char::is_whitespace) {
        let word = piece.trim_end_matches(char::is_whitespace);
        let space = &piece[word.len()..];
        if word.is_empty() {
            out.push_str(space);
            continue;
        }
        let core = word
            .trim_matches(|c: char| "\"'`,;:{}[]()<>".contains(c))
            .to_ascii_lowercase();
        let scheme = core == "bearer" || core == "basic";
        if hide_next && !scheme {
            out.push_str(REDACTED);
            out.push_str(space);
            hide_next = false;
            continue;
        }
        if scheme {
            hide_next = true;
            out.push_str(word);
            out.push_str(space);
            continue;
        }
        let (redacted, value_follows) = redact_key_values(word);
        hide_next = value_follows;
        if looks_like_basic_pair(&redacted) {
            out.push_str(REDACTED);
        } else {
            out.push_str(&redacted);
        }
        out.push_str(space);
    }
    out
}

/// `token=abc&x=1` → `token=<redacted>&x=1`, `"authorization":"Basic` →
/// itself with the next word to hide; the bool says the word ended in a
/// secret key's separator (its value is the next word).
fn redact_key_values(word: &str) -> (String, bool) {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let mut out = String::new();
    let mut rest = word;
    loop {
        // The next separator after an identifier.
        let Some(sep) = rest.find(['=', ':']) else {
            out.push_str(rest);
            return (out, false);
        };
        let before = &rest[..sep];
        let key_part = before.trim_end_matches(['"', '\'']);
        let key_start = key_part
            .char_indices()
            .rev()
            .find(|(_, c)| !is_ident(*c))
            .map(|(i, c)| i + c.len_utf8())
            .unwrap_or(0);
        let key = key_part[key_start..].to_ascii_lowercase();
        let secret = !key.is_empty() && SECRET_TEXT_KEYS.iter().any(|k| key.contains(k));
        out.push_str(&rest[..=sep]);
        let after = &rest[sep + 1..];
        if !secret {
            rest = after;
            continue;
        }
        // Skip an opening quote and spaces, then hide up to a delimiter.
        let value_start = after.len() - after.trim_start_matches(['"', '\'', ' ']).len();
        out.push_str(&after[..value_start]);
        let value = &after[value_start..];
        if value.is_empty() {
            return (out, true);
        }
        let end = value
            .find(['&', '"', '\'', ',', ';', '}', ']', ')'])
            .unwrap_or(value.len());
        let shown_value = &value[..end];
        let lower = shown_value.to_ascii_lowercase();
        if lower == "bearer" || lower == "basic" {
            // `"authorization":"Basic dXNl…"`: keep the scheme, hide its
            // credential (the next word).
            out.push_str(shown_value);
            out.push_str(&value[end..]);
            return (out, end == value.len());
        }
        out.push_str(REDACTED);
        rest = &value[end..];
    }
}

/// Whether `word` (quotes and punctuation around it aside) is base64 of a
/// printable `user:password`.
fn looks_like_basic_pair(word: &str) -> bool {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let core = word.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || "+/=-_".contains(c)));
    if core.len() < 4
        || !core
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+/=-_".contains(c))
    {
        return false;
    }
    let config = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let decoded = [
        GeneralPurpose::new(&base64::alphabet::STANDARD, config),
        GeneralPurpose::new(&base64::alphabet::URL_SAFE, config),
    ]
    .iter()
    .find_map(|engine| engine.decode(core.trim_end_matches('=')).ok());
    let Some(bytes) = decoded else { return false };
    let Ok(text) = String::from_utf8(bytes) else {
        return false;
    };
    match text.split_once(':') {
        Some((user, password)) => {
            !user.is_empty()
                && !password.is_empty()
                && !user.contains(char::is_whitespace)
                && text.chars().all(|c| !c.is_control())
        }
        None => false,
    }
}

/// Text from a registry as one short, safe line: secrets hidden
/// ([`redact_text`]), control characters escaped, cut at `max` characters.
pub(crate) fn clean_text(text: &str, max: usize) -> String {
    let text = redact_text(text.trim());
    let mut shown = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            shown.push('…');
            break;
        }
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
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
        // Messages are kept cleaned: a registry (or a proxy in front of
        // it) may echo our Authorization header, or send control characters.
        if let Ok(env) = serde_json::from_slice::<Envelope>(body) {
            return ApiErrors(
                env.errors
                    .into_iter()
                    .map(|e| ApiError {
                        code: clean_text(&e.code, MESSAGE_MAX_CHARS),
                        message: clean_text(&e.message, MESSAGE_MAX_CHARS),
                        detail: e.detail.as_ref().map(redact),
                    })
                    .collect(),
            );
        }
        let text = String::from_utf8_lossy(body);
        if text.trim().is_empty() {
            return ApiErrors::default();
        }
        ApiErrors(vec![ApiError {
            code: String::new(),
            message: clean_text(&text, DETAIL_MAX_CHARS),
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

#[cfg(test)]
mod redaction_tests {
    use super::*;
    use base64::Engine as _;

    fn shown(body: &str) -> String {
        ApiErrors::parse(body.as_bytes()).to_string()
    }

    #[test]
    fn echoed_authorization_headers_and_tokens_are_hidden_everywhere() {
        let pair = base64::engine::general_purpose::STANDARD.encode("alice:pa55-w0rd");
        let cases = [
            // In a message, as a registry echoing the request header.
            format!(
                r#"{{"errors":[{{"code":"DENIED","message":"denied for Authorization: Basic {pair}"}}]}}"#
            ),
            r#"{"errors":[{"code":"DENIED","message":"authorization: Bearer tok.en-xyz"}]}"#.to_owned(),
            // JSON inside a message, and a detail object and string.
            format!(
                r#"{{"errors":[{{"code":"DENIED","message":"request {{\"authorization\":\"Basic {pair}\"}}"}}]}}"#
            ),
            r#"{"errors":[{"code":"DENIED","message":"request {\"authorization\":\"tok.en-xyz\"}"}]}"#.to_owned(),
            r#"{"errors":[{"code":"DENIED","message":"m","detail":{"Authorization":["Bearer tok.en-xyz"]}}]}"#
                .to_owned(),
            format!(r#"{{"errors":[{{"code":"DENIED","message":"m","detail":"sent {pair}"}}]}}"#),
            // Query and form values.
            r#"{"errors":[{"code":"DENIED","message":"GET /token?scope=x&token=tok.en-xyz&y=1 failed"}]}"#
                .to_owned(),
            r#"{"errors":[{"code":"DENIED","message":"grant access_token=tok.en-xyz refused"}]}"#.to_owned(),
            r#"{"errors":[{"code":"DENIED","message":"password: pa55-w0rd"}]}"#.to_owned(),
            // A body that is not the API's JSON: an HTML page, a JSON dump.
            format!("<html>Authorization: Basic {pair}<br>token=tok.en-xyz</html>"),
            format!(r#"{{"headers":{{"authorization":"Basic {pair}","x":"y"}}}}"#),
            r#"{"request":{"access_token":"tok.en-xyz"}}"#.to_owned(),
            format!("bad credentials {pair}"),
        ];
        for body in &cases {
            let text = shown(body);
            for secret in [pair.as_str(), "pa55-w0rd", "tok.en-xyz"] {
                assert!(!text.contains(secret), "{body} -> {text}");
            }
            assert!(text.contains("<redacted>"), "{body} -> {text}");
        }
        // What is not a credential stays readable.
        assert_eq!(
            shown(
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"v1"}}]}"#
            ),
            r#"MANIFEST_UNKNOWN: manifest unknown (detail: {"Tag":"v1"})"#
        );
        assert_eq!(
            shown(r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#),
            "DENIED: requested access to the resource is denied"
        );
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            shown(&format!(
                r#"{{"errors":[{{"code":"BLOB_UNKNOWN","message":"blob {digest} unknown"}}]}}"#
            )),
            format!("BLOB_UNKNOWN: blob {digest} unknown")
        );
        // Control characters in messages are escaped too.
        assert_eq!(
            shown(r#"{"errors":[{"code":"C","message":"a\nfake log line"}]}"#),
            r"C: a\nfake log line"
        );
    }
}
