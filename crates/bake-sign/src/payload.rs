//! The cosign "simple signing" payload: the bytes that are actually signed.

use bake_digest::Digest;
use serde::{Deserialize, Deserializer};

use crate::SignError;

/// The value of `critical.type` in every cosign image signature payload.
pub const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";

/// A simple-signing payload: "the manifest `docker-manifest-digest` of
/// repository `docker-reference` was signed".
///
/// [`Payload::to_bytes`] gives exactly the bytes cosign itself produces for
/// the same repository and digest:
///
/// ```text
/// {"critical":{"identity":{"docker-reference":"registry.example/app"},
///  "image":{"docker-manifest-digest":"sha256:…"},"type":"cosign container image signature"},
///  "optional":null}
/// ```
/// (on one line, without the breaks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    docker_reference: String,
    manifest_digest: Digest,
    optional: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    critical: Critical,
    #[serde(deserialize_with = "null_or_object")]
    optional: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: Digest,
}

/// `optional` must be present (cosign always writes it) and be `null` or an object.
fn null_or_object<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, D::Error> {
    Option::<serde_json::Map<String, serde_json::Value>>::deserialize(d)
}

impl Payload {
    /// The payload for `docker_reference` — a repository such as
    /// `registry.example:5000/team/app`, without tag or digest — and the
    /// digest of the image manifest being signed.
    pub fn new(docker_reference: &str, manifest_digest: &Digest) -> Result<Payload, SignError> {
        check_repository(docker_reference)?;
        Ok(Payload {
            docker_reference: docker_reference.to_owned(),
            manifest_digest: manifest_digest.clone(),
            optional: None,
        })
    }

    /// Parses payload bytes strictly: unknown or missing fields in
    /// `critical`, a `type` other than [`SIMPLE_SIGNING_TYPE`], a digest that
    /// is not `sha256:<64 hex>`, duplicate keys or an empty repository are all
    /// errors naming the payload's digest.
    pub fn parse(bytes: &[u8]) -> Result<Payload, SignError> {
        let invalid = |reason: String| SignError::InvalidPayload {
            digest: Digest::of(bytes),
            reason,
        };
        // serde would also accept a JSON array for a struct: insist on objects.
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        for (path, v) in [
            ("the payload", &value),
            ("critical", &value["critical"]),
            ("critical.identity", &value["critical"]["identity"]),
            ("critical.image", &value["critical"]["image"]),
        ] {
            if !v.is_object() && !v.is_null() {
                return Err(invalid(format!("{path} is not a JSON object")));
            }
        }
        // The typed parse catches missing, unknown and duplicate fields.
        let wire: Wire = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        if wire.critical.kind != SIMPLE_SIGNING_TYPE {
            return Err(invalid(format!(
                "critical.type is {:?}, expected {SIMPLE_SIGNING_TYPE:?}",
                wire.critical.kind
            )));
        }
        if wire.critical.identity.docker_reference.is_empty() {
            return Err(invalid("critical.identity.docker-reference is empty".to_owned()));
        }
        Ok(Payload {
            docker_reference: wire.critical.identity.docker_reference,
            manifest_digest: wire.critical.image.docker_manifest_digest,
            optional: wire.optional,
        })
    }

    /// The canonical bytes: cosign's field order, no whitespace, `optional`
    /// as `null` (or, for a parsed payload that had one, its object with keys
    /// sorted, as Go's `encoding/json` writes maps).
    pub fn to_bytes(&self) -> Vec<u8> {
        let json = |s: &str| serde_json::to_string(s).expect("a string always serialises");
        let optional = match &self.optional {
            None => "null".to_owned(),
            Some(map) => String::from_utf8(bake_oci::canonical_json(&serde_json::Value::Object(map.clone())))
                .expect("canonical JSON is UTF-8"),
        };
        format!(
            concat!(
                r#"{{"critical":{{"identity":{{"docker-reference":{}}},"image":{{"docker-manifest-digest":{}}},"#,
                r#""type":{}}},"optional":{}}}"#
            ),
            json(&self.docker_reference),
            json(&self.manifest_digest.to_string()),
            json(SIMPLE_SIGNING_TYPE),
            optional
        )
        .into_bytes()
    }

    /// The signed repository (`critical.identity.docker-reference`).
    pub fn docker_reference(&self) -> &str {
        &self.docker_reference
    }

    /// The signed manifest digest (`critical.image.docker-manifest-digest`).
    pub fn manifest_digest(&self) -> &Digest {
        &self.manifest_digest
    }

    /// The `optional` annotations, if the payload had any.
    pub fn optional(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.optional.as_ref()
    }
}

/// A repository name as the distribution spec has it (an optional
/// `host[:port]/` then lower-case path components), with no tag and no digest.
fn check_repository(reference: &str) -> Result<(), SignError> {
    let fail = |reason: &'static str| {
        Err(SignError::InvalidReference {
            reference: reference.to_owned(),
            reason,
        })
    };
    if reference.is_empty() {
        return fail("it is empty");
    }
    if reference.len() > 255 {
        return fail("it is longer than 255 characters");
    }
    if reference.contains('@') {
        return fail("it has a digest: give the repository alone");
    }
    if !reference
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':'))
    {
        return fail("only letters, digits, '.', '_', '-', '/' and ':' (before a port) are allowed");
    }
    let components: Vec<&str> = reference.split('/').collect();
    if components.iter().any(|c| c.is_empty()) {
        return fail("it has an empty path component");
    }
    let has_host = components.len() > 1
        && (components[0].contains(['.', ':'])
            || components[0] == "localhost"
            || components[0].bytes().any(|b| b.is_ascii_uppercase()));
    let path = if has_host {
        &components[1..]
    } else {
        &components[..]
    };
    if path.iter().any(|c| c.contains(':')) {
        return fail("it has a tag: give the repository alone");
    }
    if has_host && components[0].matches(':').count() > 1 {
        return fail("the registry host has more than one ':'");
    }
    if path.iter().any(|c| c.bytes().any(|b| b.is_ascii_uppercase())) {
        return fail("repository path components must be lower-case");
    }
    if path.iter().any(|c| {
        !c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
            || !c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
    }) {
        return fail("each path component must start and end with a letter or digit");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
            .parse()
            .unwrap()
    }

    #[test]
    fn round_trip() {
        let p = Payload::new("localhost:5000/team/app", &digest()).unwrap();
        let bytes = p.to_bytes();
        assert_eq!(Payload::parse(&bytes).unwrap(), p);
    }

    #[test]
    fn repository_names() {
        for ok in [
            "app",
            "team/app",
            "registry.example/team/app",
            "192.168.64.2:5000/cosign-signed-single-sample",
            "localhost/a_b/c-d.e",
            "index.docker.io/library/busybox",
        ] {
            Payload::new(ok, &digest()).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, why) in [
            ("", "empty"),
            ("app:1.0", "tag"),
            ("registry.example/app:latest", "tag"),
            ("registry.example/app@sha256:abc", "digest"),
            ("registry.example//app", "empty path component"),
            ("/app", "empty path component"),
            ("registry.example/App", "lower-case"),
            ("app name", "only letters"),
            ("a\"b", "only letters"),
            ("registry.example/-app", "start and end"),
        ] {
            let err = Payload::new(bad, &digest()).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn strict_parse() {
        let good = Payload::new("r.example/app", &digest()).unwrap().to_bytes();
        let good = String::from_utf8(good).unwrap();
        let cases = [
            (good.replace("cosign container image signature", "atomic container signature"), "critical.type"),
            (good.replace(r#","optional":null"#, ""), "missing field `optional`"),
            (good.replace(r#""optional":null"#, r#""optional":[]"#), "invalid type"),
            (good.replace(r#""identity":{"docker-reference":"r.example/app"},"#, ""), "missing field `identity`"),
            (good.replace(r#""docker-manifest-digest""#, r#""docker-manifest-digest2""#), "unknown field"),
            (good.replace("sha256:634a", "sha512:634a"), "sha256"),
            (good.replace(r#"{"critical""#, r#"{"extra":1,"critical""#), "unknown field"),
            (good.replace(r#""type":"#, r#""type":"x","type":"#), "duplicate field"),
            (good.replace("r.example/app", ""), "empty"),
            ("[]".to_owned(), "not a JSON object"),
            (r#"[{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"},"type":"cosign container image signature"},null]"#.to_owned(), "not a JSON object"),
            (good.replace(r#"{"docker-reference":"r.example/app"}"#, r#"["r.example/app"]"#), "critical.identity is not a JSON object"),
            (good[..good.len() - 1].to_owned(), "EOF"),
        ];
        for (bytes, why) in cases {
            let err = Payload::parse(bytes.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(why), "{bytes}: {err}");
            assert!(err.contains(&Digest::of(bytes.as_bytes()).to_string()), "{err}");
        }
        // An `optional` object is fine and is kept.
        let with_optional = good.replace(r#""optional":null"#, r#""optional":{"b":"2","a":"1"}"#);
        let p = Payload::parse(with_optional.as_bytes()).unwrap();
        assert_eq!(p.optional().unwrap().len(), 2);
        assert!(
            String::from_utf8(p.to_bytes())
                .unwrap()
                .ends_with(r#""optional":{"a":"1","b":"2"}}"#)
        );
    }
}
