//! The `.sig` artifact: an OCI manifest whose layers are signed payloads.

use std::collections::BTreeMap;

use bake_digest::Digest;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SignError;
use crate::keys::PublicKey;
use crate::payload::Payload;
use crate::signature::Signature;

/// Media type of a signature layer (its blob is the payload).
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Layer annotation holding the base64 DER signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Media type of the `.sig` manifest bake writes.
pub const OCI_MANIFEST_MEDIA_TYPE: &str = bake_oci::media_type::OCI_MANIFEST;
/// Media type of the `.sig` manifest's config blob.
pub const OCI_CONFIG_MEDIA_TYPE: &str = bake_oci::media_type::OCI_CONFIG;
/// Docker v2 manifests, which older cosign versions wrote; read, never written.
const DOCKER_MANIFEST_MEDIA_TYPE: &str = bake_oci::media_type::DOCKER_MANIFEST;
/// Signature payloads are a few hundred bytes; anything much larger is refused
/// before it is fetched.
pub const MAX_PAYLOAD_SIZE: u64 = 1024 * 1024;
/// What go-containerregistry writes as `created` for each appended layer.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The tag under which cosign stores the signatures of the manifest
/// `digest`, in the same repository: `sha256-<hex>.sig`.
pub fn sig_tag(digest: &Digest) -> String {
    format!("{}-{}.sig", digest.algorithm(), digest.hex())
}

/// `value` with every object rebuilt in sorted key order. Without serde_json's
/// `preserve_order` feature maps are sorted anyway; with it (another crate in
/// the build may turn it on) they keep insertion order, which is then sorted.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let entries: BTreeMap<&String, &Value> = map.iter().collect();
            Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        scalar => scalar.clone(),
    }
}

fn sort_extras(extra: &mut BTreeMap<String, Value>) {
    for v in extra.values_mut() {
        *v = sorted(v);
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
struct ManifestWire {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
    /// Anything else (annotations, subject, artifactType…), kept as it was.
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    size: u64,
    digest: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
    /// Anything else (urls, platform…), kept as it was.
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct ConfigWire {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default = "empty_object")]
    config: Value,
    #[serde(default)]
    rootfs: RootFs,
    /// Anything else (cosign writes `created` and `history`), kept as it was.
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct RootFs {
    #[serde(rename = "type")]
    kind: String,
    diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> RootFs {
        RootFs {
            kind: "layers".to_owned(),
            diff_ids: Vec::new(),
        }
    }
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// One signature layer of a `.sig` manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLayer {
    /// The payload's digest (the layer's digest).
    pub digest: Digest,
    /// The payload's size.
    pub size: u64,
    /// The `dev.cosignproject.cosign/signature` annotation, if any.
    pub signature: Option<String>,
}

/// Whether [`SignatureManifest::add`] changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// A new layer was appended.
    New,
    /// A layer with the same payload and the same signature was already there:
    /// nothing changed, nothing needs pushing.
    AlreadyPresent,
}

/// The serialised `.sig` manifest and config, ready to store or push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureManifestBytes {
    pub manifest: Vec<u8>,
    pub manifest_digest: Digest,
    pub config: Vec<u8>,
    pub config_digest: Digest,
}

/// The `.sig` artifact: an OCI image manifest with one
/// `application/vnd.dev.cosign.simplesigning.v1+json` layer per signature
/// (the layer blob is the payload, the `dev.cosignproject.cosign/signature`
/// annotation the base64 DER signature), and a config whose
/// `rootfs.diff_ids` lists the payload digests.
///
/// It is a value: [`SignatureManifest::parse`] an existing one (as fetched),
/// [`SignatureManifest::add`] signatures, then [`SignatureManifest::to_bytes`].
/// Existing layers, annotations and unknown fields are kept; keys come out
/// in a fixed order, so the same signatures always give the same bytes.
#[derive(Debug, Clone)]
pub struct SignatureManifest {
    manifest: ManifestWire,
    config: ConfigWire,
}

impl Default for SignatureManifest {
    fn default() -> SignatureManifest {
        SignatureManifest::new()
    }
}

impl SignatureManifest {
    /// An empty `.sig` manifest (no signatures yet).
    pub fn new() -> SignatureManifest {
        SignatureManifest {
            manifest: ManifestWire {
                schema_version: 2,
                media_type: Some(OCI_MANIFEST_MEDIA_TYPE.to_owned()),
                config: Descriptor {
                    media_type: OCI_CONFIG_MEDIA_TYPE.to_owned(),
                    size: 0,
                    digest: Digest::of(b""),
                    annotations: None,
                    extra: BTreeMap::new(),
                },
                layers: Vec::new(),
                extra: BTreeMap::new(),
            },
            config: ConfigWire {
                architecture: String::new(),
                os: String::new(),
                config: empty_object(),
                rootfs: RootFs::default(),
                extra: BTreeMap::new(),
            },
        }
    }

    /// An existing `.sig` manifest and its config blob, e.g. as fetched from
    /// the registry under [`sig_tag`]. The config must be the blob the
    /// manifest names.
    pub fn parse(manifest: &[u8], config: &[u8]) -> Result<SignatureManifest, SignError> {
        let manifest = parse_manifest(manifest)?;
        let config_digest = Digest::of(config);
        if config_digest != manifest.config.digest {
            return Err(SignError::InvalidSignatureConfig {
                digest: config_digest,
                reason: format!("the manifest names config {}", manifest.config.digest),
            });
        }
        let mut config: ConfigWire =
            serde_json::from_slice(config).map_err(|e| SignError::InvalidSignatureConfig {
                digest: config_digest.clone(),
                reason: e.to_string(),
            })?;
        sort_extras(&mut config.extra);
        config.config = sorted(&config.config);
        Ok(SignatureManifest { manifest, config })
    }

    /// The signature layers, in order (layers of other media types are skipped).
    pub fn layers(&self) -> Vec<SignatureLayer> {
        signature_layers(&self.manifest)
            .map(|d| SignatureLayer {
                digest: d.digest.clone(),
                size: d.size,
                signature: d
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(SIGNATURE_ANNOTATION))
                    .cloned(),
            })
            .collect()
    }

    /// Appends a layer for `payload` signed with `signature`, unless the same
    /// payload with the same signature is already there. `payload` must be a
    /// valid simple-signing payload. (RFC 6979 signing is deterministic, so
    /// signing the same image with the same key twice is a no-op.)
    pub fn add(&mut self, payload: &[u8], signature: &Signature) -> Result<Added, SignError> {
        Payload::parse(payload)?;
        let digest = Digest::of(payload);
        let present = signature_layers(&self.manifest).any(|d| {
            d.digest == digest
                && d.annotations
                    .as_ref()
                    .and_then(|a| a.get(SIGNATURE_ANNOTATION))
                    .and_then(|b64| Signature::from_base64(b64).ok())
                    .is_some_and(|s| &s == signature)
        });
        if present {
            return Ok(Added::AlreadyPresent);
        }
        self.manifest.layers.push(Descriptor {
            media_type: SIMPLE_SIGNING_MEDIA_TYPE.to_owned(),
            size: payload.len() as u64,
            digest: digest.clone(),
            annotations: Some(BTreeMap::from([(
                SIGNATURE_ANNOTATION.to_owned(),
                signature.to_base64(),
            )])),
            extra: BTreeMap::new(),
        });
        self.config.rootfs.diff_ids.push(digest);
        if let Some(Value::Array(history)) = self.config.extra.get_mut("history") {
            history.push(serde_json::json!({ "created": ZERO_TIME }));
        }
        Ok(Added::New)
    }

    /// The manifest and config bytes. The config descriptor in the manifest
    /// is computed from the config bytes.
    pub fn to_bytes(&self) -> SignatureManifestBytes {
        let config = to_json(&self.config);
        let config_digest = Digest::of(&config);
        let mut manifest = self.manifest.clone();
        manifest.config.size = config.len() as u64;
        manifest.config.digest = config_digest.clone();
        let manifest = to_json(&manifest);
        SignatureManifestBytes {
            manifest_digest: Digest::of(&manifest),
            manifest,
            config,
            config_digest,
        }
    }
}

/// Serialises a wire struct: declared fields in declaration order, flattened
/// extras in key order (BTreeMap), nested values sorted when parsed.
fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("signature manifests always serialise")
}

fn parse_manifest(bytes: &[u8]) -> Result<ManifestWire, SignError> {
    let invalid = |reason: String| SignError::InvalidSignatureManifest {
        reason: format!("{} ({})", reason, Digest::of(bytes)),
    };
    let mut manifest: ManifestWire = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    sort_extras(&mut manifest.extra);
    sort_extras(&mut manifest.config.extra);
    for layer in &mut manifest.layers {
        sort_extras(&mut layer.extra);
    }
    if manifest.schema_version != 2 {
        return Err(invalid(format!(
            "schemaVersion is {}, expected 2",
            manifest.schema_version
        )));
    }
    match manifest.media_type.as_deref() {
        None | Some(OCI_MANIFEST_MEDIA_TYPE) | Some(DOCKER_MANIFEST_MEDIA_TYPE) => Ok(manifest),
        Some(other) => Err(invalid(format!("mediaType {other:?} is not an image manifest"))),
    }
}

fn signature_layers(manifest: &ManifestWire) -> impl Iterator<Item = &Descriptor> {
    manifest
        .layers
        .iter()
        .filter(|d| d.media_type == SIMPLE_SIGNING_MEDIA_TYPE)
}

/// Appends one signature to an existing `.sig` artifact (`existing` = its
/// manifest and config bytes) or starts a new one (`None`).
///
/// Returns the bytes to store: the manifest, the config and the payload blob.
/// When the same payload with the same signature is already present,
/// `added` is [`Added::AlreadyPresent`] and the manifest and config are the
/// existing bytes, unchanged.
pub fn append_signature(
    existing: Option<(&[u8], &[u8])>,
    payload: &[u8],
    signature: &Signature,
) -> Result<SignatureUpdate, SignError> {
    let mut sigs = match existing {
        Some((manifest, config)) => SignatureManifest::parse(manifest, config)?,
        None => SignatureManifest::new(),
    };
    let added = sigs.add(payload, signature)?;
    let bytes = match (added, existing) {
        (Added::AlreadyPresent, Some((manifest, config))) => SignatureManifestBytes {
            manifest: manifest.to_vec(),
            manifest_digest: Digest::of(manifest),
            config: config.to_vec(),
            config_digest: Digest::of(config),
        },
        _ => sigs.to_bytes(),
    };
    Ok(SignatureUpdate {
        manifest: bytes.manifest,
        manifest_digest: bytes.manifest_digest,
        config: bytes.config,
        config_digest: bytes.config_digest,
        payload: payload.to_vec(),
        payload_digest: Digest::of(payload),
        added,
    })
}

/// What [`append_signature`] returns: every blob of the new `.sig` artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureUpdate {
    pub manifest: Vec<u8>,
    pub manifest_digest: Digest,
    pub config: Vec<u8>,
    pub config_digest: Digest,
    /// The payload: the new layer's blob.
    pub payload: Vec<u8>,
    pub payload_digest: Digest,
    pub added: Added,
}

/// A signature that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The key that made it ([`PublicKey::key_id`]).
    pub key_id: String,
    /// The repository the payload names.
    pub docker_reference: String,
    /// The signature layer (payload) digest.
    pub layer: Digest,
}

/// Verifies a `.sig` manifest: succeeds when at least one signature layer
///
/// 1. has a payload blob (fetched with `fetch_blob`) whose bytes have the
///    layer's digest and size,
/// 2. carries a signature of those bytes by `key`,
/// 3. whose payload is a valid simple-signing payload for
///    `expected_manifest_digest`,
/// 4. naming `expected_repository` (any repository when `None`; compared as
///    exact strings, normalise both sides first).
///
/// Otherwise the error explains the most telling failure: a signature by this
/// key for another image or repository (a replayed signature) first, then a
/// payload that could not be fetched, a tampered payload, a malformed
/// signature, and last a signature by another key. (ECDSA cannot tell "made by
/// another key" from "signature or payload altered, digest recomputed": both
/// are [`SignError::SignedByAnotherKey`].)
pub fn verify_signatures<F, E>(
    key: &PublicKey,
    sig_manifest: &[u8],
    mut fetch_blob: F,
    expected_manifest_digest: &Digest,
    expected_repository: Option<&str>,
) -> Result<Verified, SignError>
where
    F: FnMut(&Digest) -> Result<Vec<u8>, E>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let manifest = parse_manifest(sig_manifest)?;
    let mut best: Option<(u8, SignError)> = None;
    for layer in signature_layers(&manifest) {
        let err = match verify_layer(
            key,
            layer,
            &mut fetch_blob,
            expected_manifest_digest,
            expected_repository,
        ) {
            Ok(verified) => return Ok(verified),
            Err(e) => e,
        };
        let rank = match &err {
            SignError::SignedForAnotherDigest { .. }
            | SignError::SignedForAnotherRepository { .. }
            | SignError::InvalidPayload { .. } => 5,
            SignError::FetchBlob { .. } => 4,
            SignError::TamperedPayload { .. } => 3,
            SignError::MalformedSignatureLayer { .. } => 2,
            _ => 1,
        };
        if best.as_ref().is_none_or(|(r, _)| rank > *r) {
            best = Some((rank, err));
        }
    }
    Err(match best {
        Some((_, err)) => err,
        None => SignError::NoSignatures {
            manifest: Digest::of(sig_manifest),
        },
    })
}

fn verify_layer<F, E>(
    key: &PublicKey,
    layer: &Descriptor,
    fetch_blob: &mut F,
    expected_digest: &Digest,
    expected_repository: Option<&str>,
) -> Result<Verified, SignError>
where
    F: FnMut(&Digest) -> Result<Vec<u8>, E>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let malformed = |reason: String| SignError::MalformedSignatureLayer {
        layer: layer.digest.clone(),
        reason,
    };
    let annotation = layer
        .annotations
        .as_ref()
        .and_then(|a| a.get(SIGNATURE_ANNOTATION))
        .ok_or_else(|| malformed(format!("no {SIGNATURE_ANNOTATION} annotation")))?;
    let signature = Signature::from_base64(annotation).map_err(|e| malformed(e.to_string()))?;
    if layer.size > MAX_PAYLOAD_SIZE {
        return Err(malformed(format!(
            "the payload is declared as {} bytes, more than the {MAX_PAYLOAD_SIZE} allowed",
            layer.size
        )));
    }
    let payload = fetch_blob(&layer.digest).map_err(|e| SignError::FetchBlob {
        digest: layer.digest.clone(),
        reason: e.into(),
    })?;
    let actual = Digest::of(&payload);
    if actual != layer.digest || payload.len() as u64 != layer.size {
        return Err(SignError::TamperedPayload {
            layer: layer.digest.clone(),
            actual,
            size: payload.len() as u64,
            expected_size: layer.size,
        });
    }
    key.verify(&payload, &signature)
        .map_err(|_| SignError::SignedByAnotherKey {
            layer: layer.digest.clone(),
            key_id: key.key_id().to_owned(),
        })?;
    let parsed = Payload::parse(&payload)?;
    if parsed.manifest_digest() != expected_digest {
        return Err(SignError::SignedForAnotherDigest {
            layer: layer.digest.clone(),
            key_id: key.key_id().to_owned(),
            signed: parsed.manifest_digest().clone(),
            expected: expected_digest.clone(),
        });
    }
    if let Some(expected) = expected_repository
        && parsed.docker_reference() != expected
    {
        return Err(SignError::SignedForAnotherRepository {
            layer: layer.digest.clone(),
            key_id: key.key_id().to_owned(),
            digest: expected_digest.clone(),
            signed: parsed.docker_reference().to_owned(),
            expected: expected.to_owned(),
        });
    }
    Ok(Verified {
        key_id: key.key_id().to_owned(),
        docker_reference: parsed.docker_reference().to_owned(),
        layer: layer.digest.clone(),
    })
}
