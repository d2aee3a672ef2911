//! ECDSA-SHA256 signatures: DER bytes, their base64 form, sign and verify.

use std::fmt;

use base64ct::{Base64, Encoding};

use crate::SignError;
use crate::keys::{PublicKey, SigningKey};

/// An ECDSA P-256 signature in ASN.1 DER, as cosign stores it (base64-encoded)
/// in the `dev.cosignproject.cosign/signature` annotation.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Signature {
    der: Vec<u8>,
}

impl Signature {
    /// A signature from its DER bytes; fails unless they are one well-formed
    /// DER `SEQUENCE { r INTEGER, s INTEGER }` with both in range for P-256.
    pub fn from_der(der: &[u8]) -> Result<Signature, SignError> {
        p256::ecdsa::Signature::from_der(der).map_err(|e| SignError::MalformedSignature {
            reason: format!("{e} ({} bytes)", der.len()),
        })?;
        Ok(Signature { der: der.to_vec() })
    }

    pub(crate) fn from_valid_der(der: Vec<u8>) -> Signature {
        Signature { der }
    }

    /// A signature from standard base64 (surrounding whitespace is ignored).
    pub fn from_base64(text: &str) -> Result<Signature, SignError> {
        let der = Base64::decode_vec(text.trim()).map_err(|e| SignError::MalformedSignature {
            reason: format!("invalid base64: {e}"),
        })?;
        Signature::from_der(&der)
    }

    /// A signature given either as DER bytes or as base64 text (what
    /// `cosign sign --output-signature` writes): DER starts with a `SEQUENCE`
    /// tag (0x30), base64 of it with `M`.
    pub fn parse(bytes: &[u8]) -> Result<Signature, SignError> {
        if bytes.first() == Some(&0x30) {
            return Signature::from_der(bytes);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| SignError::MalformedSignature {
            reason: "neither DER nor base64 text".to_owned(),
        })?;
        Signature::from_base64(text)
    }

    /// The DER bytes (what `openssl dgst -verify -signature` reads).
    pub fn as_der(&self) -> &[u8] {
        &self.der
    }

    /// Standard base64 with padding: the annotation value.
    pub fn to_base64(&self) -> String {
        Base64::encode_string(&self.der)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", self.to_base64())
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

/// Signs `payload` with `key`: ECDSA P-256 over SHA-256(payload), DER-encoded,
/// deterministic (RFC 6979).
pub fn sign(key: &SigningKey, payload: &[u8]) -> Signature {
    key.sign(payload)
}

/// Checks that `signature` (DER bytes or base64 text, see
/// [`Signature::parse`]) is `key`'s signature of exactly `payload`.
pub fn verify(key: &PublicKey, payload: &[u8], signature: &[u8]) -> Result<(), SignError> {
    key.verify(payload, &Signature::parse(signature)?)
}
