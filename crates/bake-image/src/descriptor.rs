//! Descriptors, platforms and the media types this crate understands.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use bake_digest::Digest;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::ImageError;

pub use bake_oci::media_type;

/// The OCI annotation naming a tag in an image layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What a blob is and where to find it: media type, digest and size, plus
/// optional annotations and (in an index) a platform.
///
/// Serialises with `annotations` and `platform` left out when empty; unknown
/// fields (`urls`, `data`, `artifactType`) are ignored when read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// A descriptor without annotations or platform.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            annotations: BTreeMap::new(),
            platform: None,
        }
    }

    /// The descriptor of `bytes`.
    pub fn of(media_type: impl Into<String>, bytes: &[u8]) -> Descriptor {
        Descriptor::new(media_type, Digest::of(bytes), bytes.len() as u64)
    }

    /// The tag this descriptor carries in an image layout index, if any.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations.get(REF_NAME).map(String::as_str)
    }

    /// As a JSON value (write it with [`crate::canonical_json`]).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("mediaType".into(), Value::String(self.media_type.clone()));
        m.insert("digest".into(), Value::String(self.digest.to_string()));
        m.insert("size".into(), Value::from(self.size));
        if !self.annotations.is_empty() {
            m.insert("annotations".into(), string_map(&self.annotations));
        }
        if let Some(p) = &self.platform {
            m.insert("platform".into(), p.to_json());
        }
        Value::Object(m)
    }

    /// Parses a descriptor; `what` names where it comes from in errors.
    pub fn from_json(v: &Value, what: &str) -> Result<Descriptor, ImageError> {
        Descriptor::deserialize(v).map_err(|source| ImageError::Json {
            what: what.to_owned(),
            source,
        })
    }
}

impl Serialize for Descriptor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// The platform an image runs on: `os/architecture[/variant]`, e.g.
/// `linux/amd64` or `linux/arm/v7`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl Platform {
    /// A platform without a variant.
    pub fn new(os: impl Into<String>, architecture: impl Into<String>) -> Platform {
        Platform {
            os: os.into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    /// `linux/amd64`.
    pub fn linux_amd64() -> Platform {
        Platform::new("linux", "amd64")
    }

    /// As a JSON value, in the form used in index entries.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("architecture".into(), Value::String(self.architecture.clone()));
        m.insert("os".into(), Value::String(self.os.clone()));
        if let Some(v) = &self.variant {
            m.insert("variant".into(), Value::String(v.clone()));
        }
        Value::Object(m)
    }

    /// Whether an image for `other` can serve a request for `self`: same
    /// os and architecture, and the same variant when both name one.
    pub fn accepts(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && match (&self.variant, &other.variant) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }

    /// The entry of an image index that serves this platform: the first
    /// whose platform is exactly this one, else the only one this platform
    /// [`accepts`](Platform::accepts). `None` when none fits, or when
    /// several fit and none exactly (e.g. `linux/arm` among `linux/arm/v6`
    /// and `linux/arm/v7`): the caller should list the index's platforms and
    /// ask for a variant. Every index lookup (layouts, registries) uses this.
    pub fn select<'a, T>(
        &self,
        entries: &'a [T],
        platform_of: impl Fn(&T) -> Option<&Platform>,
    ) -> Option<&'a T> {
        if let Some(exact) = entries.iter().find(|e| platform_of(e) == Some(self)) {
            return Some(exact);
        }
        let mut fitting = entries
            .iter()
            .filter(|e| platform_of(e).is_some_and(|p| self.accepts(p)));
        match (fitting.next(), fitting.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        }
    }

    /// This platform as an error names it when [`select`](Platform::select)
    /// found nothing in `entries`: with a hint when several entries fit.
    pub fn describe_unselected<T>(
        &self,
        entries: &[T],
        platform_of: impl Fn(&T) -> Option<&Platform>,
    ) -> String {
        let fitting = entries
            .iter()
            .filter(|e| platform_of(e).is_some_and(|p| self.accepts(p)))
            .count();
        if fitting > 1 {
            format!("{self} alone ({fitting} entries fit it: name the variant)")
        } else {
            self.to_string()
        }
    }
}

impl Serialize for Platform {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = ImageError;
    /// Parses `os/architecture[/variant]`; each part is non-empty lower-case
    /// ASCII letters, digits, `_` or `.`.
    fn from_str(s: &str) -> Result<Platform, ImageError> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
        };
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform::new(*os, *arch)),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(Platform {
                os: (*os).to_owned(),
                architecture: (*arch).to_owned(),
                variant: Some((*variant).to_owned()),
            }),
            _ => Err(ImageError::InvalidPlatform(s.to_owned())),
        }
    }
}

pub(crate) fn string_map(m: &BTreeMap<String, String>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// Treats an explicit `null` like a missing field (Docker writes `null` for
/// empty maps and lists).
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical_json;
    use oci_spec::image::MediaType;

    #[test]
    fn media_type_names_agree_with_oci_spec() {
        assert_eq!(media_type::OCI_MANIFEST, MediaType::ImageManifest.as_ref());
        assert_eq!(media_type::OCI_INDEX, MediaType::ImageIndex.as_ref());
        assert_eq!(media_type::OCI_CONFIG, MediaType::ImageConfig.as_ref());
        assert_eq!(media_type::OCI_LAYER_TAR, MediaType::ImageLayer.as_ref());
        assert_eq!(media_type::OCI_LAYER_GZIP, MediaType::ImageLayerGzip.as_ref());
        assert_eq!(media_type::OCI_LAYER_ZSTD, MediaType::ImageLayerZstd.as_ref());
        use oci_spec::image::ToDockerV2S2;
        assert_eq!(
            Ok(media_type::DOCKER_MANIFEST),
            MediaType::ImageManifest.to_docker_v2s2()
        );
        assert_eq!(
            Ok(media_type::DOCKER_MANIFEST_LIST),
            MediaType::ImageIndex.to_docker_v2s2()
        );
        assert_eq!(
            Ok(media_type::DOCKER_CONFIG),
            MediaType::ImageConfig.to_docker_v2s2()
        );
        assert_eq!(
            Ok(media_type::DOCKER_LAYER_GZIP),
            MediaType::ImageLayerGzip.to_docker_v2s2()
        );
    }

    #[test]
    fn descriptor_json_round_trip() {
        let mut d = Descriptor::of(media_type::OCI_MANIFEST, b"{}");
        assert_eq!(
            String::from_utf8(canonical_json(&d.to_json())).unwrap(),
            r#"{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","mediaType":"application/vnd.oci.image.manifest.v1+json","size":2}"#
        );
        d.annotations.insert("b".into(), "2".into());
        d.annotations.insert("a".into(), "1".into());
        d.platform = Some("linux/arm/v7".parse().unwrap());
        let text = String::from_utf8(canonical_json(&d.to_json())).unwrap();
        assert!(
            text.starts_with(r#"{"annotations":{"a":"1","b":"2"},"digest":"#),
            "{text}"
        );
        assert!(
            text.ends_with(r#""platform":{"architecture":"arm","os":"linux","variant":"v7"},"size":2}"#),
            "{text}"
        );
        let back: Descriptor = serde_json::from_str(&text).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn descriptor_rejects_bad_input() {
        let bad = [
            r#"{"mediaType":"x","digest":"md5:00","size":1}"#,
            r#"{"mediaType":"x","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":-1}"#,
            r#"{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":1}"#,
        ];
        for b in bad {
            let v: Value = serde_json::from_str(b).unwrap();
            let err = Descriptor::from_json(&v, "test entry").unwrap_err();
            assert!(
                err.to_string().starts_with("malformed JSON in test entry: "),
                "{err}"
            );
        }
        let null_annotations: Value = serde_json::from_str(
            r#"{"mediaType":"x","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"annotations":null,"urls":["u"]}"#,
        )
        .unwrap();
        assert!(
            Descriptor::from_json(&null_annotations, "x")
                .unwrap()
                .annotations
                .is_empty()
        );
    }

    #[test]
    fn platform_parse_display_accepts() {
        let p: Platform = "linux/amd64".parse().unwrap();
        assert_eq!(p, Platform::linux_amd64());
        assert_eq!(p.to_string(), "linux/amd64");
        let v7: Platform = "linux/arm/v7".parse().unwrap();
        assert_eq!(v7.to_string(), "linux/arm/v7");
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/v1/x",
            "Linux/amd64",
            "linux/amd 64",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
        let arm: Platform = "linux/arm".parse().unwrap();
        assert!(arm.accepts(&v7));
        assert!(v7.accepts(&arm));
        assert!(!v7.accepts(&"linux/arm/v6".parse().unwrap()));
        assert!(!p.accepts(&"linux/arm64".parse().unwrap()));
        assert!(!p.accepts(&"windows/amd64".parse().unwrap()));
    }

    #[test]
    fn select_prefers_exact_then_the_only_fit() {
        let index: Vec<Platform> = [
            "linux/arm64",
            "linux/arm64/v8",
            "linux/arm/v6",
            "linux/arm/v7",
            "linux/amd64",
        ]
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();
        let select = |want: &str| {
            let want: Platform = want.parse().unwrap();
            want.select(&index, |p| Some(p)).map(ToString::to_string)
        };
        // Exact matches win over merely fitting ones.
        assert_eq!(select("linux/arm64").as_deref(), Some("linux/arm64"));
        assert_eq!(select("linux/arm64/v8").as_deref(), Some("linux/arm64/v8"));
        assert_eq!(select("linux/arm/v7").as_deref(), Some("linux/arm/v7"));
        // No exact entry, several fit: no guess.
        assert_eq!(select("linux/arm"), None);
        let arm: Platform = "linux/arm".parse().unwrap();
        assert_eq!(
            arm.describe_unselected(&index, |p| Some(p)),
            "linux/arm alone (2 entries fit it: name the variant)"
        );
        assert_eq!(select("linux/riscv64"), None);
        // No exact entry, one fits: taken.
        let only_v8 = [index[1].clone(), index[4].clone()];
        let arm64: Platform = "linux/arm64".parse().unwrap();
        assert_eq!(arm64.select(&only_v8, |p| Some(p)), Some(&only_v8[0]));
        // Entries without a platform are never chosen.
        assert_eq!(arm64.select(&[(), ()], |_| None), None);
    }
}
