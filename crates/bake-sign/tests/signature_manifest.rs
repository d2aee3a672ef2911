//! The `.sig` artifact: building and appending to it, and verifying a whole
//! signature set with every way it can be wrong.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use bake_digest::Digest;
use bake_sign::{
    Added, Payload, SignError, Signature, SignatureManifest, SigningKey, append_signature, sig_tag,
    verify_signatures,
};
use serde_json::{Value, json};

const REPO: &str = "registry.example/team/app";

fn image() -> Digest {
    Digest::of(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#)
}

/// A stand-in registry: blobs by digest.
#[derive(Default)]
struct Blobs(BTreeMap<Digest, Vec<u8>>);

impl Blobs {
    fn put(&mut self, bytes: &[u8]) -> Digest {
        let d = Digest::of(bytes);
        self.0.insert(d.clone(), bytes.to_vec());
        d
    }
    fn fetch(&self) -> impl FnMut(&Digest) -> Result<Vec<u8>, String> + '_ {
        |d| {
            self.0
                .get(d)
                .cloned()
                .ok_or_else(|| format!("blob {d} not found"))
        }
    }
}

fn signed(key: &SigningKey, repo: &str, digest: &Digest) -> (Vec<u8>, Signature) {
    let payload = Payload::new(repo, digest).unwrap().to_bytes();
    let sig = key.sign(&payload);
    (payload, sig)
}

#[test]
fn sig_tag_format() {
    let d: Digest = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
        .parse()
        .unwrap();
    assert_eq!(
        sig_tag(&d),
        "sha256-634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00.sig"
    );
}

#[test]
fn new_signature_manifest_bytes() {
    let key = SigningKey::generate().unwrap();
    let (payload, sig) = signed(&key, REPO, &image());
    let up = append_signature(None, &payload, &sig).unwrap();
    assert_eq!(up.added, Added::New);
    let pd = Digest::of(&payload);
    assert_eq!(up.payload, payload);
    assert_eq!(up.payload_digest, pd);
    assert_eq!(
        String::from_utf8(up.config.clone()).unwrap(),
        format!(
            r#"{{"architecture":"","os":"","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{pd}"]}}}}"#
        )
    );
    assert_eq!(up.config_digest, Digest::of(&up.config));
    assert_eq!(
        String::from_utf8(up.manifest.clone()).unwrap(),
        format!(
            concat!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","#,
                r#""config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{},"digest":"{}"}},"#,
                r#""layers":[{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":{},"digest":"{}","#,
                r#""annotations":{{"dev.cosignproject.cosign/signature":"{}"}}}}]}}"#
            ),
            up.config.len(),
            up.config_digest,
            payload.len(),
            pd,
            sig.to_base64()
        )
    );
    assert_eq!(up.manifest_digest, Digest::of(&up.manifest));
    // Deterministic: the same signing again gives the same bytes.
    assert_eq!(append_signature(None, &payload, &sig).unwrap(), up);
}

#[test]
fn appending_dedups_and_keeps_existing_layers() {
    let alice = SigningKey::generate().unwrap();
    let bob = SigningKey::generate().unwrap();
    let (p1, s1) = signed(&alice, REPO, &image());
    let first = append_signature(None, &p1, &s1).unwrap();

    // Same payload, same signature: nothing changes, the bytes are the input's.
    let again = append_signature(Some((&first.manifest, &first.config)), &p1, &s1).unwrap();
    assert_eq!(again.added, Added::AlreadyPresent);
    assert_eq!(again.manifest, first.manifest);
    assert_eq!(again.config, first.config);

    // Another key over the same payload: a second layer with the same digest.
    let s2 = bob.sign(&p1);
    let second = append_signature(Some((&first.manifest, &first.config)), &p1, &s2).unwrap();
    assert_eq!(second.added, Added::New);
    let sigs = SignatureManifest::parse(&second.manifest, &second.config).unwrap();
    let layers = sigs.layers();
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[0].signature.as_deref(), Some(s1.to_base64().as_str()));
    assert_eq!(layers[1].signature.as_deref(), Some(s2.to_base64().as_str()));
    let config: Value = serde_json::from_slice(&second.config).unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"],
        json!([Digest::of(&p1), Digest::of(&p1)])
    );

    // Both keys verify against the merged set.
    let mut blobs = Blobs::default();
    blobs.put(&p1);
    for key in [&alice, &bob] {
        verify_signatures(
            key.public_key(),
            &second.manifest,
            blobs.fetch(),
            &image(),
            Some(REPO),
        )
        .unwrap();
    }
    // Parsing and re-serialising our own output is the identity.
    let bytes = sigs.to_bytes();
    assert_eq!(bytes.manifest, second.manifest);
    assert_eq!(bytes.config, second.config);

    // A non-payload is refused.
    let err = append_signature(None, b"{}", &s1).unwrap_err();
    assert!(matches!(err, SignError::InvalidPayload { .. }), "{err}");
}

/// A `.sig` artifact as cosign writes it (config with `created` and
/// `history`, extra layer annotations): appending keeps all of it.
#[test]
fn appending_to_a_cosign_written_artifact() {
    let vector = |name: &str| {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/cosign-vector")
                .join(name),
        )
        .unwrap()
    };
    let payload = vector("payload.json");
    let b64 = String::from_utf8(vector("signature.b64")).unwrap();
    let pd = Digest::of(&payload);
    let config = format!(
        r#"{{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{{"created":"0001-01-01T00:00:00Z"}}],"os":"","rootfs":{{"type":"layers","diff_ids":["{pd}"]}},"config":{{}}}}"#
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": Digest::of(config.as_bytes())},
        "layers": [{
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "size": payload.len(),
            "digest": pd,
            "annotations": {"dev.cosignproject.cosign/signature": b64.trim(), "dev.sigstore.cosign/bundle": "{\"x\":1}"}
        }],
        "annotations": {"org.example": "kept"}
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();

    let key = SigningKey::generate().unwrap();
    let digest = Payload::parse(&payload).unwrap().manifest_digest().clone();
    let (p2, s2) = signed(&key, "192.168.64.2:5000/cosign-signed-single-sample", &digest);
    let up = append_signature(Some((&manifest, config.as_bytes())), &p2, &s2).unwrap();
    assert_eq!(up.added, Added::New);

    let m: Value = serde_json::from_slice(&up.manifest).unwrap();
    assert_eq!(m["annotations"]["org.example"], "kept");
    assert_eq!(
        m["layers"][0]["annotations"]["dev.sigstore.cosign/bundle"],
        "{\"x\":1}"
    );
    assert_eq!(m["layers"][1]["digest"], json!(Digest::of(&p2)));
    assert_eq!(m["config"]["digest"], json!(up.config_digest));
    let c: Value = serde_json::from_slice(&up.config).unwrap();
    assert_eq!(
        c["history"],
        json!([{"created": "0001-01-01T00:00:00Z"}, {"created": "0001-01-01T00:00:00Z"}])
    );
    assert_eq!(c["created"], "0001-01-01T00:00:00Z");
    assert_eq!(c["rootfs"]["diff_ids"], json!([pd, Digest::of(&p2)]));

    // The original cosign signature still verifies in the merged set.
    let cosign_key =
        bake_sign::PublicKey::from_pem(&String::from_utf8(vector("cosign.pub")).unwrap()).unwrap();
    let mut blobs = Blobs::default();
    blobs.put(&payload);
    blobs.put(&p2);
    verify_signatures(&cosign_key, &up.manifest, blobs.fetch(), &digest, None).unwrap();
    verify_signatures(key.public_key(), &up.manifest, blobs.fetch(), &digest, None).unwrap();

    // The wrong config for the manifest is refused.
    let err = SignatureManifest::parse(&manifest, b"{}").unwrap_err();
    assert!(matches!(err, SignError::InvalidSignatureConfig { .. }), "{err}");
}

#[test]
fn verification_failures_are_told_apart() {
    let key = SigningKey::generate().unwrap();
    let other = SigningKey::generate().unwrap();
    let public = key.public_key();
    let mut blobs = Blobs::default();

    // No signatures at all.
    let empty = SignatureManifest::new().to_bytes().manifest;
    let err = verify_signatures(public, &empty, blobs.fetch(), &image(), None).unwrap_err();
    assert!(matches!(err, SignError::NoSignatures { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("no cosign signatures in signature manifest sha256:"),
        "{err}"
    );

    // Signed by another key.
    let (p, s) = signed(&other, REPO, &image());
    blobs.put(&p);
    let set = append_signature(None, &p, &s).unwrap();
    let err = verify_signatures(public, &set.manifest, blobs.fetch(), &image(), None).unwrap_err();
    assert!(matches!(err, SignError::SignedByAnotherKey { .. }), "{err}");
    assert!(err.to_string().contains(public.key_id()), "{err}");

    // Signed by this key, for another image: a replayed signature.
    let elsewhere = Digest::of(b"another image");
    let (p, s) = signed(&key, REPO, &elsewhere);
    blobs.put(&p);
    let set = append_signature(None, &p, &s).unwrap();
    let err = verify_signatures(public, &set.manifest, blobs.fetch(), &image(), None).unwrap_err();
    assert!(matches!(err, SignError::SignedForAnotherDigest { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("signature is for {elsewhere} not {}", image())),
        "{err}"
    );

    // Signed by this key for this image, but in another repository.
    let (p, s) = signed(&key, "registry.example/evil/app", &image());
    blobs.put(&p);
    let set = append_signature(None, &p, &s).unwrap();
    let err = verify_signatures(public, &set.manifest, blobs.fetch(), &image(), Some(REPO)).unwrap_err();
    assert!(
        matches!(err, SignError::SignedForAnotherRepository { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("\"registry.example/evil/app\", not \"registry.example/team/app\""),
        "{err}"
    );
    // …which is fine when any repository is accepted.
    let ok = verify_signatures(public, &set.manifest, blobs.fetch(), &image(), None).unwrap();
    assert_eq!(ok.docker_reference, "registry.example/evil/app");

    // The payload served does not match its descriptor: tampered.
    let (p, s) = signed(&key, REPO, &image());
    let set = append_signature(None, &p, &s).unwrap();
    let mut tampered = Blobs::default();
    let forged = Payload::new(REPO, &elsewhere).unwrap().to_bytes();
    tampered.0.insert(Digest::of(&p), forged.clone());
    let err = verify_signatures(public, &set.manifest, tampered.fetch(), &image(), None).unwrap_err();
    assert!(matches!(err, SignError::TamperedPayload { .. }), "{err}");
    assert!(
        err.to_string().contains(&Digest::of(&forged).to_string()),
        "{err}"
    );

    // The manifest's descriptor was changed to match a changed payload: the
    // signature no longer verifies.
    let manifest = String::from_utf8(set.manifest.clone())
        .unwrap()
        .replace(&Digest::of(&p).to_string(), &Digest::of(&forged).to_string());
    blobs.put(&forged);
    let err = verify_signatures(public, manifest.as_bytes(), blobs.fetch(), &elsewhere, None).unwrap_err();
    assert!(matches!(err, SignError::SignedByAnotherKey { .. }), "{err}");

    // The blob cannot be fetched.
    let err = verify_signatures(public, &set.manifest, Blobs::default().fetch(), &image(), None).unwrap_err();
    assert!(matches!(err, SignError::FetchBlob { .. }), "{err}");
    assert!(err.to_string().contains("not found"), "{err}");

    // A signature annotation that is not a signature.
    let broken = String::from_utf8(set.manifest.clone())
        .unwrap()
        .replace(&s.to_base64(), "bm90IGEgc2lnbmF0dXJl");
    let err = verify_signatures(public, broken.as_bytes(), blobs.fetch(), &image(), None).unwrap_err();
    assert!(matches!(err, SignError::MalformedSignatureLayer { .. }), "{err}");

    // Not a manifest at all.
    let err = verify_signatures(public, b"[]", blobs.fetch(), &image(), None).unwrap_err();
    assert!(matches!(err, SignError::InvalidSignatureManifest { .. }), "{err}");
}

#[test]
fn one_good_signature_among_bad_ones_is_enough_and_the_worst_failure_is_reported() {
    let key = SigningKey::generate().unwrap();
    let other = SigningKey::generate().unwrap();
    let mut blobs = Blobs::default();
    let (p_other, s_other) = signed(&other, REPO, &image());
    let (p_replay, s_replay) = signed(&key, REPO, &Digest::of(b"old image"));
    let (p_good, s_good) = signed(&key, REPO, &image());
    for p in [&p_other, &p_replay, &p_good] {
        blobs.put(p);
    }

    let mut sigs = SignatureManifest::new();
    sigs.add(&p_other, &s_other).unwrap();
    sigs.add(&p_replay, &s_replay).unwrap();
    let bad = sigs.to_bytes();
    // Another key's signature and a replayed one of ours: the replay is the story.
    let err = verify_signatures(key.public_key(), &bad.manifest, blobs.fetch(), &image(), None).unwrap_err();
    assert!(matches!(err, SignError::SignedForAnotherDigest { .. }), "{err}");

    assert_eq!(sigs.add(&p_good, &s_good).unwrap(), Added::New);
    assert_eq!(sigs.add(&p_good, &s_good).unwrap(), Added::AlreadyPresent);
    let good = sigs.to_bytes();
    let ok = verify_signatures(
        key.public_key(),
        &good.manifest,
        blobs.fetch(),
        &image(),
        Some(REPO),
    )
    .unwrap();
    assert_eq!(ok.layer, Digest::of(&p_good));
    assert_eq!(ok.key_id, key.key_id());
}
