//! Image references: `[REGISTRY[:PORT]/]REPOSITORY[:TAG][@sha256:DIGEST]`.

use std::fmt;
use std::str::FromStr;

use bake_digest::Digest;

use crate::RegistryError;

/// The registry a reference names when it names none.
pub const DOCKER_HUB: &str = "docker.io";

/// A parsed image reference, normalised the way docker and the distribution
/// project do it: no registry means `docker.io`, a one-component Docker Hub
/// repository gets `library/`, `index.docker.io` is spelled `docker.io`, and a
/// reference with neither tag nor digest means `:latest`.
///
/// ```
/// use bake_registry::Reference;
/// let r: Reference = "busybox".parse().unwrap();
/// assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
/// let r: Reference = "localhost:5000/team/app:v1".parse().unwrap();
/// assert_eq!((r.registry(), r.repository(), r.tag()), ("localhost:5000", "team/app", Some("v1")));
/// assert_eq!(r.repository_ref().to_string(), "localhost:5000/team/app");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// A reference from its parts; `repository` is validated like a parsed one.
    pub fn new(registry: &str, repository: &str) -> Result<Reference, RegistryError> {
        format!("{registry}/{repository}")
            .parse::<Reference>()
            .map(|r| r.repository_ref())
    }

    /// The registry host, with its port when it has one (`docker.io`,
    /// `127.0.0.1:5000`, `[::1]:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The same repository, with neither tag nor digest. Displays as
    /// `REGISTRY/REPOSITORY`.
    pub fn repository_ref(&self) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: None,
        }
    }

    /// The same repository at `tag` (no digest).
    pub fn with_tag(&self, tag: &str) -> Result<Reference, RegistryError> {
        if !valid_tag(tag) {
            return Err(RegistryError::InvalidReference {
                input: format!("{}:{tag}", self.repository_ref()),
                reason: "a tag is 1 to 128 characters of [A-Za-z0-9_.-], not starting with '.' or '-'".into(),
            });
        }
        Ok(Reference {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.repository_ref()
        })
    }

    /// The same repository pinned at `digest` (no tag).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.repository_ref()
        }
    }

    /// What to ask the registry for: the digest if pinned, else the tag.
    pub(crate) fn manifest_path_part(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }
}

/// The host the distribution API of `registry` is served from (`docker.io`
/// is served by `index.docker.io`).
pub(crate) fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        "index.docker.io"
    } else {
        registry
    }
}

fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !tag.starts_with(['.', '-'])
}

impl FromStr for Reference {
    type Err = RegistryError;

    fn from_str(input: &str) -> Result<Reference, RegistryError> {
        let invalid = |reason: &str| RegistryError::InvalidReference {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        // The grammar of oci-spec (a port of distribution's reference regexp)
        // has no IPv6 literals; handle `[v6]:port/` ourselves and let it parse
        // the rest under a placeholder registry.
        let (v6_registry, rest) = match input.strip_prefix('[') {
            Some(after) => {
                let (host, rest) = after
                    .split_once(']')
                    .ok_or_else(|| invalid("unclosed '[' in registry host"))?;
                let (port, rest) = match rest.strip_prefix(':') {
                    Some(p) => p.split_once('/').ok_or_else(|| invalid("missing repository"))?,
                    None => (
                        "",
                        rest.strip_prefix('/')
                            .ok_or_else(|| invalid("missing repository"))?,
                    ),
                };
                if host.parse::<std::net::Ipv6Addr>().is_err() || !port.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid("invalid IPv6 registry host"));
                }
                let registry = if port.is_empty() {
                    format!("[{host}]")
                } else {
                    format!("[{host}]:{port}")
                };
                (Some(registry), format!("ipv6.invalid/{rest}"))
            }
            None => (None, input.to_owned()),
        };
        let parsed = oci_client::Reference::try_from(rest.as_str()).map_err(|e| invalid(&e.to_string()))?;
        if parsed.repository().bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid("repository name must be lowercase"));
        }
        let digest = match parsed.digest() {
            Some(d) => Some(d.parse::<Digest>().map_err(|e| invalid(&e.to_string()))?),
            None => None,
        };
        // oci-spec adds `latest` when there is neither tag nor digest; keep
        // the tag only when the input has one or has no digest.
        let tag = parsed.tag().map(str::to_owned);
        let registry = v6_registry.unwrap_or_else(|| parsed.registry().to_owned());
        Ok(Reference {
            registry,
            repository: parsed.repository().to_owned(),
            tag,
            digest,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn parts(s: &str) -> (String, String, Option<String>, Option<String>) {
        let r: Reference = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        (
            r.registry().to_owned(),
            r.repository().to_owned(),
            r.tag().map(str::to_owned),
            r.digest().map(|d| d.to_string()),
        )
    }

    fn p(
        r: &str,
        repo: &str,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> (String, String, Option<String>, Option<String>) {
        (r.into(), repo.into(), tag.map(Into::into), digest.map(Into::into))
    }

    #[test]
    fn docker_hub_defaults() {
        assert_eq!(
            parts("busybox"),
            p("docker.io", "library/busybox", Some("latest"), None)
        );
        assert_eq!(
            parts("busybox:1.36"),
            p("docker.io", "library/busybox", Some("1.36"), None)
        );
        assert_eq!(
            parts("someone/app"),
            p("docker.io", "someone/app", Some("latest"), None)
        );
        assert_eq!(
            parts("index.docker.io/busybox"),
            p("docker.io", "library/busybox", Some("latest"), None)
        );
        assert_eq!(
            parts("docker.io/library/busybox:1"),
            p("docker.io", "library/busybox", Some("1"), None)
        );
        let r: Reference = "busybox".parse().unwrap();
        assert_eq!(api_host(r.registry()), "index.docker.io");
        assert_eq!(api_host("ghcr.io"), "ghcr.io");
    }

    #[test]
    fn registry_hosts_and_ports() {
        // A first component is a registry only with a '.', a ':' or "localhost".
        assert_eq!(
            parts("localhost/app"),
            p("localhost", "app", Some("latest"), None)
        );
        assert_eq!(
            parts("localhost:5000/app:v1"),
            p("localhost:5000", "app", Some("v1"), None)
        );
        assert_eq!(
            parts("127.0.0.1:5000/a/b/c:v1"),
            p("127.0.0.1:5000", "a/b/c", Some("v1"), None)
        );
        assert_eq!(
            parts("ghcr.io/org/app"),
            p("ghcr.io", "org/app", Some("latest"), None)
        );
        assert_eq!(
            parts("[::1]:5000/app:v1"),
            p("[::1]:5000", "app", Some("v1"), None)
        );
        // "team" has neither '.' nor ':' so it is a Docker Hub namespace.
        assert_eq!(
            parts("team/app:5000"),
            p("docker.io", "team/app", Some("5000"), None)
        );
        // A port-looking tag on a one-component name is a tag.
        assert_eq!(
            parts("app:5000"),
            p("docker.io", "library/app", Some("5000"), None)
        );
    }

    #[test]
    fn digests_and_tags() {
        assert_eq!(
            parts(&format!("ghcr.io/org/app@{D}")),
            p("ghcr.io", "org/app", None, Some(D))
        );
        assert_eq!(
            parts(&format!("127.0.0.1:5000/app:v1@{D}")),
            p("127.0.0.1:5000", "app", Some("v1"), Some(D))
        );
        let r: Reference = format!("127.0.0.1:5000/app:v1@{D}").parse().unwrap();
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/app:v1@{D}"));
        assert_eq!(r.manifest_path_part(), D);
        assert_eq!(r.repository_ref().to_string(), "127.0.0.1:5000/app");
        assert_eq!(r.with_tag("v2").unwrap().to_string(), "127.0.0.1:5000/app:v2");
        assert!(r.with_tag("-bad").is_err());
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "UPPER/app",
            "app:",
            "app@sha256:abc",
            "app@sha512:0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "a//b",
            "[::1:5000/app",
            "http://registry/app",
        ] {
            let err = bad.parse::<Reference>().unwrap_err();
            assert!(
                err.to_string().starts_with("invalid image reference"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn new_from_parts() {
        let r = Reference::new("127.0.0.1:5000", "x/y").unwrap();
        assert_eq!(r.to_string(), "127.0.0.1:5000/x/y");
        assert!(Reference::new("127.0.0.1:5000", "X").is_err());
    }
}
