//! Just enough of manifests and indexes to know which blobs they name.

use bake_digest::Digest;

pub use bake_image::Platform;

use crate::RegistryError;

pub use bake_oci::media_type::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};

/// The `Accept` header for manifest requests: image manifests and indexes,
/// OCI and Docker schema 2.
pub(crate) const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

pub(crate) fn is_index_type(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// A content descriptor, as far as this crate needs one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

/// What a manifest's bytes say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    Index {
        manifests: Vec<Descriptor>,
    },
}

impl Parsed {
    /// Parses `bytes`; `media_type` (from a header or the caller) wins over
    /// the `mediaType` field, which wins over guessing from the fields.
    pub fn parse(
        bytes: &[u8],
        media_type: Option<&str>,
        reference: &str,
    ) -> Result<(Parsed, String), RegistryError> {
        #[derive(serde::Deserialize)]
        struct Raw {
            #[serde(rename = "schemaVersion")]
            schema_version: Option<u32>,
            #[serde(rename = "mediaType")]
            media_type: Option<String>,
            config: Option<Descriptor>,
            layers: Option<Vec<Descriptor>>,
            manifests: Option<Vec<Descriptor>>,
        }
        let invalid = |reason: String| RegistryError::InvalidManifest {
            reference: reference.to_owned(),
            reason,
        };
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        if raw.schema_version != Some(2) {
            return Err(invalid(format!(
                "schemaVersion is {:?}, only 2 is supported",
                raw.schema_version
            )));
        }
        let given = media_type
            .filter(|m| !m.is_empty() && *m != "application/json" && *m != "application/octet-stream");
        // A header (or descriptor) and a body that disagree about what the
        // bytes are: readers would see two different things.
        if let (Some(given), Some(inside)) = (given, raw.media_type.as_deref()) {
            if given != inside {
                return Err(invalid(format!(
                    "served as {:?} but its mediaType is {:?}",
                    crate::error::clean_text(given, 100),
                    crate::error::clean_text(inside, 100)
                )));
            }
        }
        let media_type = given.map(str::to_owned).or(raw.media_type).unwrap_or_else(|| {
            if raw.manifests.is_some() {
                OCI_INDEX.to_owned()
            } else {
                OCI_MANIFEST.to_owned()
            }
        });
        if is_index_type(&media_type) {
            let manifests = raw
                .manifests
                .ok_or_else(|| invalid(format!("{media_type} without \"manifests\"")))?;
            Ok((Parsed::Index { manifests }, media_type))
        } else if media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST {
            let config = raw
                .config
                .ok_or_else(|| invalid(format!("{media_type} without \"config\"")))?;
            Ok((
                Parsed::Image {
                    config,
                    layers: raw.layers.unwrap_or_default(),
                },
                media_type,
            ))
        } else {
            Err(invalid(format!("unsupported media type {media_type:?}")))
        }
    }

    /// Config and layers, each once, in manifest order.
    pub fn blobs(&self) -> Vec<Descriptor> {
        let mut out: Vec<Descriptor> = Vec::new();
        if let Parsed::Image { config, layers } = self {
            for d in std::iter::once(config).chain(layers) {
                if !out.iter().any(|o| o.digest == d.digest) {
                    out.push(d.clone());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::of(&[n])
    }

    fn index(entries: &[(&str, &str, Option<&str>)]) -> Vec<Descriptor> {
        entries
            .iter()
            .enumerate()
            .map(|(i, (os, arch, v))| Descriptor {
                media_type: OCI_MANIFEST.into(),
                digest: d(i as u8),
                size: 1,
                platform: Some(Platform {
                    variant: v.map(str::to_owned),
                    ..Platform::new(*os, *arch)
                }),
            })
            .collect()
    }

    #[test]
    fn picks_platforms() {
        let idx = index(&[
            ("linux", "arm", Some("v7")),
            ("linux", "arm64", Some("v8")),
            ("linux", "amd64", None),
            ("windows", "amd64", None),
        ]);
        let pick = |s: &str| {
            s.parse::<Platform>()
                .unwrap()
                .select(&idx, |d| d.platform.as_ref())
                .map(|x| x.digest.clone())
        };
        assert_eq!(pick("linux/amd64"), Some(d(2)));
        assert_eq!(pick("linux/arm64"), Some(d(1)));
        assert_eq!(pick("linux/arm64/v8"), Some(d(1)));
        assert_eq!(pick("linux/arm/v7"), Some(d(0)));
        assert_eq!(pick("linux/arm/v6"), None);
        assert_eq!(pick("linux/s390x"), None);
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//x".parse::<Platform>().is_err());
        assert_eq!(
            "linux/arm/v7".parse::<Platform>().unwrap().to_string(),
            "linux/arm/v7"
        );
    }

    #[test]
    fn parses_manifests_and_indexes() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"c","digest":"{}","size":2}},
               "layers":[{{"mediaType":"l","digest":"{}","size":3}},{{"mediaType":"l","digest":"{}","size":3}}]}}"#,
            d(1),
            d(2),
            d(2)
        );
        let (p, mt) = Parsed::parse(m.as_bytes(), None, "r").unwrap();
        assert_eq!(mt, OCI_MANIFEST);
        assert_eq!(p.blobs().len(), 2, "duplicate layer listed once");
        let i = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":9}}]}}"#,
            d(3)
        );
        let (p, mt) = Parsed::parse(i.as_bytes(), None, "r").unwrap();
        assert_eq!(mt, OCI_INDEX);
        assert!(matches!(p, Parsed::Index { .. }));
        assert!(Parsed::parse(b"{\"schemaVersion\":1}", None, "r").is_err());
        assert!(Parsed::parse(m.as_bytes(), Some(OCI_INDEX), "r").is_err());
        // A header that contradicts the body's mediaType is refused.
        let err = Parsed::parse(m.as_bytes(), Some(DOCKER_MANIFEST), "r").unwrap_err();
        assert!(err.to_string().contains("its mediaType is"), "{err}");
        assert!(Parsed::parse(m.as_bytes(), Some(OCI_MANIFEST), "r").is_ok());
        assert!(Parsed::parse(m.as_bytes(), Some("application/json"), "r").is_ok());
        let bad = m.replace("sha256:", "sha512:");
        assert!(Parsed::parse(bad.as_bytes(), None, "r").is_err());
    }
}
