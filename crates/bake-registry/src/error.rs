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
/// (`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"…"}]}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ApiError {
    pub code: String,
    #[serde(default)]
    pub message: String,
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
        assert_eq!(e.to_string(), "MANIFEST_UNKNOWN: manifest unknown");
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
}
