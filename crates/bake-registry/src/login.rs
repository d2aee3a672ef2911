//! Checking credentials before `bake login` saves them, as `docker login`
//! does: `GET /v2/` with no credentials; a `401` challenge names the scheme
//! (`Basic`, answered by the same request with the credentials, or `Bearer`,
//! answered by the token service the challenge names, with them); a `2xx`
//! then means the registry took them. A registry that answers `/v2/`
//! without asking for credentials cannot check them: that is said, not
//! taken as a check.

use reqwest::StatusCode;
use reqwest::header::WWW_AUTHENTICATE;

use crate::client::{Registry, describe};
use crate::error::RegistryError;

/// What a credentials check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginCheck {
    /// The registry (or its token service) accepted the credentials.
    Accepted,
    /// `/v2/` answered without asking for credentials: they could not be
    /// checked (the registry may still want them for some repositories).
    NotAsked,
}

impl Registry {
    /// Checks `username`/`password` against `registry`'s `/v2/` endpoint
    /// (and its token service, for a `Bearer` challenge). A refusal is
    /// [`RegistryError::Unauthorized`]; a registry that cannot be reached is
    /// [`RegistryError::Network`]. The password never reaches an error.
    pub async fn check_login(
        &self,
        registry: &str,
        username: &str,
        password: &str,
    ) -> Result<LoginCheck, RegistryError> {
        let host = self.host(registry).await?;
        let url = host
            .base
            .join("v2/")
            .map_err(|e| RegistryError::InvalidReference {
                input: registry.to_owned(),
                reason: e.to_string(),
            })?;
        let what = format!("{url}");
        let network = |e: reqwest::Error| RegistryError::Network {
            action: "check credentials at".into(),
            reference: what.clone(),
            reason: describe(&e),
            attempts: 1,
        };
        let refused = |detail: String| RegistryError::Unauthorized {
            reference: what.clone(),
            registry: registry.to_owned(),
            detail,
            credentials: format!("the password given for {username:?}"),
        };
        let http = self.http();
        let first = http.get(url.clone()).send().await.map_err(network)?;
        if first.status().is_success() {
            return Ok(LoginCheck::NotAsked);
        }
        if first.status() != StatusCode::UNAUTHORIZED {
            return Err(RegistryError::Status {
                action: "check credentials at".into(),
                reference: what.clone(),
                status: first.status().as_u16(),
                errors: Default::default(),
                attempts: 1,
            });
        }
        let challenge = first
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge.as_str(), ""));
        let answer = if scheme.eq_ignore_ascii_case("basic") {
            http.get(url.clone()).basic_auth(username, Some(password))
        } else if scheme.eq_ignore_ascii_case("bearer") {
            let param = |name: &str| challenge_param(params, name);
            let realm =
                param("realm").ok_or_else(|| refused("its Bearer challenge names no realm".into()))?;
            let mut realm = reqwest::Url::parse(&realm)
                .map_err(|_| refused("its Bearer challenge's realm is not a URL".into()))?;
            if let Some(service) = param("service") {
                realm.query_pairs_mut().append_pair("service", &service);
            }
            http.get(realm).basic_auth(username, Some(password))
        } else {
            return Err(refused(format!(
                "it asks for an authentication scheme bake does not speak ({:?})",
                scheme.chars().take(20).collect::<String>()
            )));
        };
        let answer = answer.send().await.map_err(network)?;
        let status = answer.status();
        if status.is_success() {
            return Ok(LoginCheck::Accepted);
        }
        // The status only: nothing of the request (it carried the password).
        Err(refused(format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )))
    }
}

/// The value of `name` in a challenge's `k="v", k2="v2"` parameters.
fn challenge_param(params: &str, name: &str) -> Option<String> {
    let mut rest = params;
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().trim_start_matches(',').trim();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if key.eq_ignore_ascii_case(name) {
            return Some(value.to_owned());
        }
        rest = next.trim_start_matches([',', ' ']);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_parameters_are_read_quoted_or_not() {
        let p = r#"realm="https://auth.example.com/token",service="registry.example.com",scope=repository:a:pull"#;
        assert_eq!(
            challenge_param(p, "realm").as_deref(),
            Some("https://auth.example.com/token")
        );
        assert_eq!(
            challenge_param(p, "service").as_deref(),
            Some("registry.example.com")
        );
        assert_eq!(challenge_param(p, "scope").as_deref(), Some("repository:a:pull"));
        assert_eq!(challenge_param(p, "error"), None);
        assert_eq!(
            challenge_param(r#"realm="x", service="y""#, "service").as_deref(),
            Some("y")
        );
    }
}
