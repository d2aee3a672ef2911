//! Real cosign output (tests/data/README.md): bake must accept it as cosign
//! does, produce the same payload bytes, and reject it after any change.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use bake_digest::Digest;
use bake_sign::{
    Payload, PublicKey, SignError, Signature, SigningKey, append_signature, verify, verify_signatures,
};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(data(rel)).unwrap()
}

const REPOSITORY: &str = "192.168.64.2:5000/cosign-signed-single-sample";

struct Vector {
    key: PublicKey,
    payload: Vec<u8>,
    der: Vec<u8>,
    b64: Vec<u8>,
    manifest: Vec<u8>,
}

fn vector() -> Vector {
    Vector {
        key: PublicKey::read(&data("cosign-vector/cosign.pub")).unwrap(),
        payload: read("cosign-vector/payload.json"),
        der: read("cosign-vector/signature.der"),
        b64: read("cosign-vector/signature.b64"),
        manifest: read("cosign-vector/signed-image-manifest.json"),
    }
}

#[test]
fn copy_matches_the_shared_vector() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testvectors/cosign");
    if !shared.is_dir() {
        eprintln!("{} not present: nothing to compare", shared.display());
        return;
    }
    for name in [
        "cosign.pub",
        "payload.json",
        "signature.der",
        "signature.b64",
        "signed-image-manifest.json",
    ] {
        assert_eq!(
            std::fs::read(shared.join(name)).unwrap(),
            read(&format!("cosign-vector/{name}")),
            "tests/data/cosign-vector/{name} differs from the shared vector"
        );
    }
}

#[test]
fn cosign_signature_verifies() {
    let v = vector();
    verify(&v.key, &v.payload, &v.der).unwrap();
    verify(&v.key, &v.payload, &v.b64).unwrap();
    let sig = Signature::from_der(&v.der).unwrap();
    assert_eq!(Signature::parse(&v.b64).unwrap(), sig);
    assert_eq!(sig.to_base64().as_bytes(), v.b64.trim_ascii());
    v.key.verify(&v.payload, &sig).unwrap();
}

#[test]
fn payload_names_the_signed_manifest_and_is_byte_identical_to_ours() {
    let v = vector();
    let payload = Payload::parse(&v.payload).unwrap();
    assert_eq!(payload.docker_reference(), REPOSITORY);
    assert_eq!(payload.manifest_digest(), &Digest::of(&v.manifest));
    assert_eq!(
        payload.manifest_digest().to_string(),
        "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
    );
    let ours = Payload::new(REPOSITORY, &Digest::of(&v.manifest))
        .unwrap()
        .to_bytes();
    assert_eq!(
        String::from_utf8(ours).unwrap(),
        String::from_utf8(v.payload.clone()).unwrap()
    );
    assert_eq!(payload.to_bytes(), v.payload);
}

#[test]
fn public_key_pem_and_id_match_cosign_and_openssl() {
    let v = vector();
    assert_eq!(v.key.to_pem().as_bytes(), read("cosign-vector/cosign.pub"));
    // openssl pkey -pubin -in cosign.pub -outform DER | sha256sum
    assert_eq!(
        v.key.key_id(),
        "c87a79018f346cc02482448b77296b0bea143ef2ccab99b04776fb0f638f301f"
    );
}

#[test]
fn any_changed_payload_byte_fails() {
    let v = vector();
    for i in 0..v.payload.len() {
        for flip in [0x01u8, 0x80] {
            let mut p = v.payload.clone();
            p[i] ^= flip;
            let err = verify(&v.key, &p, &v.der).unwrap_err();
            assert!(matches!(err, SignError::BadSignature { .. }), "byte {i}: {err}");
        }
    }
    // Truncated or extended payloads too.
    assert!(verify(&v.key, &v.payload[..v.payload.len() - 1], &v.der).is_err());
    assert!(verify(&v.key, &[&v.payload[..], b"\n"].concat(), &v.der).is_err());
}

#[test]
fn any_changed_signature_byte_fails() {
    let v = vector();
    for i in 0..v.der.len() {
        for flip in [0x01u8, 0x80] {
            let mut s = v.der.clone();
            s[i] ^= flip;
            assert!(
                verify(&v.key, &v.payload, &s).is_err(),
                "DER byte {i} ^ {flip:#x} accepted"
            );
        }
    }
    let b64 = v.b64.trim_ascii();
    for i in 0..b64.len() {
        let mut s = b64.to_vec();
        s[i] ^= 0x01;
        assert!(
            verify(&v.key, &v.payload, &s).is_err(),
            "base64 byte {i} accepted"
        );
    }
}

#[test]
fn another_key_rejects_the_signature() {
    let v = vector();
    let other = SigningKey::generate().unwrap();
    let err = verify(other.public_key(), &v.payload, &v.der).unwrap_err();
    assert!(err.to_string().contains(other.key_id()), "{err}");
}

/// The vector as a `.sig` artifact in a registry, checked against the image
/// manifest: any changed manifest byte changes its digest, and the signature
/// is then for another image.
#[test]
fn signature_set_binds_the_manifest_bytes() {
    let v = vector();
    let sig = Signature::from_der(&v.der).unwrap();
    let set = append_signature(None, &v.payload, &sig).unwrap();
    let fetch = |d: &Digest| {
        if *d == set.payload_digest {
            Ok(set.payload.clone())
        } else {
            Err(format!("no blob {d}"))
        }
    };
    let digest = Digest::of(&v.manifest);
    let ok = verify_signatures(&v.key, &set.manifest, fetch, &digest, Some(REPOSITORY)).unwrap();
    assert_eq!(ok.docker_reference, REPOSITORY);
    assert_eq!(ok.key_id, v.key.key_id());

    for i in 0..v.manifest.len() {
        let mut m = v.manifest.clone();
        m[i] ^= 0x01;
        let changed = Digest::of(&m);
        let err = verify_signatures(&v.key, &set.manifest, fetch, &changed, None).unwrap_err();
        let expected = format!("signature is for {digest} not {changed}");
        assert!(err.to_string().contains(&expected), "byte {i}: {err}");
    }
}
