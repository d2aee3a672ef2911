//! Manifests and indexes: writing ours, reading anyone's.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::descriptor::{media_type, null_as_default, string_map};
use crate::{Descriptor, ImageError, canonical_json};

/// The bytes of an OCI image manifest (`schemaVersion` 2, `mediaType` set)
/// naming `config` and `layers`; `annotations` are left out when empty.
pub fn build_manifest(
    config: &Descriptor,
    layers: &[Descriptor],
    annotations: &BTreeMap<String, String>,
) -> Vec<u8> {
    let mut m = Map::new();
    m.insert("schemaVersion".into(), Value::from(2));
    m.insert("mediaType".into(), Value::String(media_type::OCI_MANIFEST.into()));
    m.insert("config".into(), config.to_json());
    m.insert(
        "layers".into(),
        Value::Array(layers.iter().map(Descriptor::to_json).collect()),
    );
    if !annotations.is_empty() {
        m.insert("annotations".into(), string_map(annotations));
    }
    canonical_json(&Value::Object(m))
}

/// The bytes of an OCI image index listing `manifests` (each normally with
/// a platform); `annotations` are left out when empty.
pub fn build_index(manifests: &[Descriptor], annotations: &BTreeMap<String, String>) -> Vec<u8> {
    let mut m = Map::new();
    m.insert("schemaVersion".into(), Value::from(2));
    m.insert("mediaType".into(), Value::String(media_type::OCI_INDEX.into()));
    m.insert(
        "manifests".into(),
        Value::Array(manifests.iter().map(Descriptor::to_json).collect()),
    );
    if !annotations.is_empty() {
        m.insert("annotations".into(), string_map(annotations));
    }
    canonical_json(&Value::Object(m))
}

/// An image manifest as read: OCI or Docker v2 schema 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestDoc {
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    config: Descriptor,
    #[serde(default, deserialize_with = "null_as_default")]
    layers: Vec<Descriptor>,
    #[serde(default, deserialize_with = "null_as_default")]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexDoc {
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    manifests: Vec<Descriptor>,
}

/// Parses a manifest (OCI or Docker v2 schema 2) whose descriptor says it
/// has media type `expected`; `what` names it in errors. Layer media types
/// are returned as written.
pub fn parse_manifest(bytes: &[u8], expected: &str, what: &str) -> Result<Manifest, ImageError> {
    let doc: ManifestDoc = serde_json::from_slice(bytes).map_err(|source| ImageError::Json {
        what: what.to_owned(),
        source,
    })?;
    check_header(doc.schema_version, doc.media_type.as_deref(), expected, what)?;
    Ok(Manifest {
        config: doc.config,
        layers: doc.layers,
        annotations: doc.annotations,
    })
}

/// Parses an index (OCI index or Docker manifest list) whose descriptor says
/// it has media type `expected`, and returns its entries.
pub fn parse_index(bytes: &[u8], expected: &str, what: &str) -> Result<Vec<Descriptor>, ImageError> {
    let doc: IndexDoc = serde_json::from_slice(bytes).map_err(|source| ImageError::Json {
        what: what.to_owned(),
        source,
    })?;
    check_header(doc.schema_version, doc.media_type.as_deref(), expected, what)?;
    Ok(doc.manifests)
}

fn check_header(
    schema_version: u32,
    media_type: Option<&str>,
    expected: &str,
    what: &str,
) -> Result<(), ImageError> {
    if schema_version != 2 {
        return Err(ImageError::Invalid {
            what: what.to_owned(),
            reason: format!("schemaVersion is {schema_version}, expected 2"),
        });
    }
    match media_type {
        Some(mt) if mt != expected => Err(ImageError::Invalid {
            what: what.to_owned(),
            reason: format!("its mediaType is {mt:?} but its descriptor says {expected:?}"),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bake_digest::Digest;

    #[test]
    fn manifest_bytes_are_golden() {
        let config = Descriptor::of(media_type::OCI_CONFIG, b"{}");
        let mut layer = Descriptor::new(media_type::OCI_LAYER_GZIP, Digest::of(b"layer"), 1234);
        layer.annotations.insert("z".into(), "last".into());
        layer.annotations.insert("a".into(), "first".into());
        let plain = Descriptor::new(media_type::OCI_LAYER_TAR, Digest::of(b"tar"), 10240);
        let annotations = BTreeMap::from([
            (
                "org.opencontainers.image.source".to_owned(),
                "https://example.com/hello".to_owned(),
            ),
            (
                "org.opencontainers.image.created".to_owned(),
                "1970-01-01T00:00:00Z".to_owned(),
            ),
        ]);
        let got = String::from_utf8(build_manifest(&config, &[layer, plain], &annotations)).unwrap();
        let want = concat!(
            r#"{"annotations":{"org.opencontainers.image.created":"1970-01-01T00:00:00Z","org.opencontainers.image.source":"https://example.com/hello"},"#,
            r#""config":{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","mediaType":"application/vnd.oci.image.config.v1+json","size":2},"#,
            r#""layers":[{"annotations":{"a":"first","z":"last"},"digest":"sha256:dac1d7cfa95021764849fd102524e141488c5e3a90f861dbb5a12d9ac8584f85","mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":1234},"#,
            r#"{"digest":"sha256:90aebae315675cbf04612de4f7d5874850f48e0b8dd82becbeaa47ca93f5ebfb","mediaType":"application/vnd.oci.image.layer.v1.tar","size":10240}],"#,
            r#""mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}"#
        );
        assert_eq!(got, want);
    }

    #[test]
    fn output_parses_as_oci_spec_types() {
        use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
        let spec = crate::ConfigSpec {
            entrypoint: Some(vec!["/app".into()]),
            env: BTreeMap::from([("A".into(), "1".into())]),
            labels: BTreeMap::from([("l".into(), "v".into())]),
            exposed_ports: vec!["80".into()],
            volumes: vec!["/data".into()],
            user: Some("1:1".into()),
            ..crate::ConfigSpec::default()
        };
        let layer = Descriptor::new(media_type::OCI_LAYER_GZIP, Digest::of(b"layer"), 1234);
        let config = crate::build_config(
            None,
            &spec,
            &"linux/arm/v7".parse().unwrap(),
            1_700_000_000,
            &[(Digest::of(b"diff"), "l".into())],
        )
        .unwrap();
        let parsed = ImageConfiguration::from_reader(&config[..]).unwrap();
        assert_eq!(parsed.variant().as_deref(), Some("v7"));
        assert_eq!(parsed.rootfs().diff_ids(), &vec![Digest::of(b"diff").to_string()]);
        assert_eq!(
            parsed.config().as_ref().unwrap().entrypoint().as_deref(),
            Some(&["/app".to_owned()][..])
        );

        let config_d = Descriptor::of(media_type::OCI_CONFIG, &config);
        let annotations = BTreeMap::from([("a".to_owned(), "b".to_owned())]);
        let manifest = build_manifest(&config_d, &[layer], &annotations);
        let parsed = ImageManifest::from_reader(&manifest[..]).unwrap();
        assert_eq!(parsed.layers().len(), 1);
        assert_eq!(parsed.config().digest().to_string(), config_d.digest.to_string());
        assert_eq!(
            parsed
                .annotations()
                .as_ref()
                .unwrap()
                .get("a")
                .map(String::as_str),
            Some("b")
        );

        let mut m = Descriptor::of(media_type::OCI_MANIFEST, &manifest);
        m.platform = Some("linux/arm/v7".parse().unwrap());
        let index = build_index(&[m], &BTreeMap::new());
        let parsed = ImageIndex::from_reader(&index[..]).unwrap();
        let p = parsed.manifests()[0].platform().as_ref().unwrap();
        assert_eq!(p.variant().as_deref(), Some("v7"));
    }

    #[test]
    fn manifest_without_annotations_omits_them() {
        let config = Descriptor::of(media_type::OCI_CONFIG, b"{}");
        let got = String::from_utf8(build_manifest(&config, &[], &BTreeMap::new())).unwrap();
        assert_eq!(
            got,
            r#"{"config":{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","mediaType":"application/vnd.oci.image.config.v1+json","size":2},"layers":[],"mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}"#
        );
        let back = parse_manifest(got.as_bytes(), media_type::OCI_MANIFEST, "m").unwrap();
        assert_eq!(back.config, config);
        assert!(back.layers.is_empty());
    }

    #[test]
    fn parse_rejects_mismatched_headers() {
        let config = Descriptor::of(media_type::OCI_CONFIG, b"{}");
        let m = build_manifest(&config, &[], &BTreeMap::new());
        let err = parse_manifest(&m, media_type::DOCKER_MANIFEST, "manifest X").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid manifest X: its mediaType is"),
            "{err}"
        );
        let err = parse_manifest(
            br#"{"schemaVersion":1,"config":{}}"#,
            media_type::OCI_MANIFEST,
            "manifest X",
        )
        .unwrap_err();
        assert!(err.to_string().contains("malformed JSON in manifest X"), "{err}");
        let err = parse_index(b"{not json", media_type::OCI_INDEX, "index Y").unwrap_err();
        assert!(
            err.to_string().starts_with("malformed JSON in index Y: "),
            "{err}"
        );
        let idx = build_index(&[], &BTreeMap::new());
        assert!(parse_index(&idx, media_type::OCI_INDEX, "i").unwrap().is_empty());
    }
}
