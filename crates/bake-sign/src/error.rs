//! The crate's one error type.

use std::path::PathBuf;

use bake_digest::Digest;

/// Everything that can go wrong in this crate. Each variant names the key
/// file, payload, layer or digest at fault; none ever carries key material or
/// a password.
///
/// Key variants carry an `origin`: the path of the key file when it was read
/// with [`crate::SigningKey::read`] / [`crate::PublicKey::read`], or a short
/// description ("private key PEM") when it was parsed from a string.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    #[error("{0}")]
    Io(#[from] std::io::Error),

    // ---- keys ----
    #[error("{origin} holds no PEM block")]
    NotPem { origin: String },
    #[error("{origin} is not valid PEM: {reason}")]
    BadPem { origin: String, reason: String },
    #[error("{origin} holds a {label:?} PEM block, expected {expected}")]
    UnexpectedPem {
        origin: String,
        label: String,
        expected: &'static str,
    },
    #[error(
        "{origin} uses legacy OpenSSL PEM encryption (Proc-Type header), which is not supported: \
         convert it with `openssl pkcs8 -topk8 -v2 aes-256-cbc`"
    )]
    LegacyPemEncryption { origin: String },
    #[error("{origin} is an encrypted private key and no password was given")]
    PasswordRequired { origin: String },
    #[error("cannot decrypt {origin}: wrong password")]
    WrongPassword { origin: String },
    #[error("{origin} is encrypted with an unsupported scheme: {reason}")]
    UnsupportedEncryption { origin: String, reason: String },
    #[error("{origin} is {algorithm} key: only ECDSA P-256 keys are supported")]
    UnsupportedKey { origin: String, algorithm: String },
    #[error("{origin} is an EC key on curve {curve}: only P-256 (prime256v1) keys are supported")]
    WrongCurve { origin: String, curve: String },
    #[error("{origin} is malformed: {reason}")]
    MalformedKey { origin: String, reason: String },
    #[error("refusing to overwrite existing key file {0}")]
    KeyFileExists(PathBuf),
    #[error("the operating system's random number generator failed: {0}")]
    Rng(String),

    // ---- payloads and signatures ----
    #[error("invalid docker reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: &'static str },
    #[error("payload {digest} is not a cosign simple-signing payload: {reason}")]
    InvalidPayload { digest: Digest, reason: String },
    #[error("signature is not an ASN.1 DER ECDSA signature nor its base64: {reason}")]
    MalformedSignature { reason: String },
    #[error("signature over payload {payload} does not verify with key {key_id}")]
    BadSignature { payload: Digest, key_id: String },

    // ---- signature manifests ----
    #[error("signature manifest is invalid: {reason}")]
    InvalidSignatureManifest { reason: String },
    #[error("signature config {digest} is invalid: {reason}")]
    InvalidSignatureConfig { digest: Digest, reason: String },

    // ---- verifying a signature set ----
    #[error("no cosign signatures in signature manifest {manifest}")]
    NoSignatures { manifest: Digest },
    #[error("cannot fetch signature payload {digest}: {reason}")]
    FetchBlob {
        digest: Digest,
        reason: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "signature layer {layer}: payload was tampered with: its bytes hash to {actual} ({size} bytes), \
         the manifest says {layer} ({expected_size} bytes)"
    )]
    TamperedPayload {
        layer: Digest,
        actual: Digest,
        size: u64,
        expected_size: u64,
    },
    #[error("signature layer {layer} has no usable signature: {reason}")]
    MalformedSignatureLayer { layer: Digest, reason: String },
    #[error(
        "signature layer {layer} was not made by key {key_id}: signed by another key \
         (or the payload and its signature no longer match)"
    )]
    SignedByAnotherKey { layer: Digest, key_id: String },
    #[error(
        "signature layer {layer} is valid for key {key_id} but the signature is for {signed} not {expected} \
         (a signature replayed from another image)"
    )]
    SignedForAnotherDigest {
        layer: Digest,
        key_id: String,
        signed: Digest,
        expected: Digest,
    },
    #[error(
        "signature layer {layer} is valid for key {key_id} and image {digest} but names repository \
         {signed:?}, not {expected:?}"
    )]
    SignedForAnotherRepository {
        layer: Digest,
        key_id: String,
        digest: Digest,
        signed: String,
        expected: String,
    },
}
