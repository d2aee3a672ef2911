//! cosign-compatible image signing: ECDSA P-256 keys, "simple signing"
//! payloads, signatures, and the `.sig` signature manifest, as bytes.
//!
//! # The format
//!
//! cosign does not sign an image; it signs a small JSON document, the
//! *simple-signing payload*, that names the image:
//!
//! ```text
//! {"critical":{"identity":{"docker-reference":"registry.example/app"},
//!              "image":{"docker-manifest-digest":"sha256:<manifest hex>"},
//!              "type":"cosign container image signature"},
//!  "optional":null}
//! ```
//!
//! (one line, no whitespace). The signature is ECDSA P-256 over the SHA-256
//! of those exact bytes, ASN.1 DER encoded. Anyone holding the public key can
//! check it with `openssl dgst -sha256 -verify cosign.pub -signature sig.der
//! payload.json`, then check that the payload names the manifest digest they
//! pulled — the digest binds the signature to every byte of the image.
//!
//! Signatures are stored next to the image, in the same repository, under the
//! tag `sha256-<manifest hex>.sig` ([`sig_tag`]), as an OCI image manifest
//! with one layer per signature: the layer blob is the payload
//! (`application/vnd.dev.cosign.simplesigning.v1+json`), the layer annotation
//! `dev.cosignproject.cosign/signature` holds the base64 DER signature, and
//! the config's `rootfs.diff_ids` lists the payload digests. Signing again
//! appends a layer ([`SignatureManifest`]); it never replaces the others.
//!
//! # What this crate owns, and what it does not
//!
//! It owns keys ([`SigningKey`], [`PublicKey`]: generation, PEM in the formats
//! openssl and cosign write, key files with safe permissions), payloads
//! ([`Payload`]), signatures ([`sign`], [`verify`]) and the `.sig` manifest and
//! config as bytes ([`append_signature`], [`verify_signatures`]).
//!
//! It does not know registries, image layouts, references or credentials and
//! never touches the network, the clock or the environment: the caller
//! fetches and stores the bytes (and passes a `fetch_blob` function to
//! verification), and passes passwords in. Key generation and the salts of
//! encrypted key files use the operating system's random generator; signing
//! itself is deterministic (RFC 6979), so re-signing the same image with the
//! same key gives the same bytes and adds nothing.
//!
//! # Example
//!
//! ```
//! use std::collections::BTreeMap;
//! use bake_digest::Digest;
//! use bake_sign::{Payload, SigningKey, SignError, append_signature, sig_tag, verify_signatures};
//!
//! # fn main() -> Result<(), SignError> {
//! let key = SigningKey::generate()?;
//! let image = Digest::of(br#"{"schemaVersion":2}"#); // the pushed manifest's digest
//!
//! // Sign: the payload, its signature, and the `.sig` artifact to push.
//! let payload = Payload::new("registry.example/team/app", &image)?.to_bytes();
//! let signature = key.sign(&payload);
//! let update = append_signature(None, &payload, &signature)?;
//! assert_eq!(sig_tag(&image), format!("sha256-{}.sig", image.hex()));
//!
//! // Stand-in for the registry: blobs by digest.
//! let blobs = BTreeMap::from([(update.payload_digest.clone(), update.payload.clone())]);
//! let fetch = |d: &Digest| blobs.get(d).cloned().ok_or("no such blob");
//!
//! // Verify with the public key only.
//! let public = key.public_key();
//! let ok = verify_signatures(public, &update.manifest, fetch, &image, Some("registry.example/team/app"))?;
//! assert_eq!(ok.key_id, public.key_id());
//!
//! // A signature is only good for the digest it names.
//! let other = Digest::of(b"another image");
//! let err = verify_signatures(public, &update.manifest, fetch, &other, None).unwrap_err();
//! assert!(matches!(err, SignError::SignedForAnotherDigest { .. }));
//! # Ok(())
//! # }
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod cosign_key;
mod error;
mod keys;
mod manifest;
mod payload;
mod signature;

pub use error::SignError;
pub use keys::{KeyPairFiles, PublicKey, SigningKey, write_key_pair};
pub use manifest::{
    Added, MAX_PAYLOAD_SIZE, OCI_CONFIG_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE, SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING_MEDIA_TYPE, SignatureLayer, SignatureManifest, SignatureManifestBytes, SignatureUpdate,
    Verified, append_signature, sig_tag, verify_signatures,
};
pub use payload::{Payload, SIMPLE_SIGNING_TYPE};
pub use signature::{Signature, sign, verify};
pub use zeroize::Zeroizing;
