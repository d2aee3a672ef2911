//! Descriptors, platforms and the media types this crate understands.

use std::collections::BTreeMap;

use bake_digest::Digest;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::ImageError;

pub use bake_oci::{Platform, media_type};

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
}
