//! Interop with the `openssl` binary, an independent ECDSA implementation:
//! our signatures, public keys and encrypted key files are accepted by it, and
//! keys it makes are accepted by us. Ignored by plain `cargo test` (it needs
//! openssl); `cargo xtask test` runs it.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use bake_sign::{Payload, PublicKey, SigningKey, verify, write_key_pair};

/// Runs `openssl ARGS` in `dir`, returning stdout; panics with stderr on failure.
fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run openssl: {e}");
        });
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Whether `openssl ARGS` succeeds.
fn openssl_ok(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
        .status
        .success()
}

fn payload() -> Vec<u8> {
    let image = bake_digest::Digest::of(b"an image manifest");
    Payload::new("localhost:5000/bake/test", &image)
        .unwrap()
        .to_bytes()
}

#[test]
#[ignore = "needs openssl; run via cargo xtask test"]
fn openssl_verifies_our_signature_with_our_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = SigningKey::generate().unwrap();
    let payload = payload();
    std::fs::write(d.join("payload.json"), &payload).unwrap();
    std::fs::write(d.join("sig.der"), key.sign(&payload).as_der()).unwrap();
    std::fs::write(d.join("pub.pem"), key.public_key().to_pem()).unwrap();
    let out = openssl(
        d,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "sig.der",
            "payload.json",
        ],
    );
    assert_eq!(String::from_utf8(out).unwrap().trim(), "Verified OK");

    // openssl reads our public key and agrees on its DER (so on the key id).
    let der = openssl(d, &["pkey", "-pubin", "-in", "pub.pem", "-outform", "DER"]);
    assert_eq!(der, key.public_key().to_der());
    assert_eq!(bake_digest::Digest::of(&der).hex(), key.key_id());

    // And openssl refuses a changed payload: the check above can fail.
    let mut changed = payload.clone();
    changed[10] ^= 1;
    std::fs::write(d.join("changed.json"), &changed).unwrap();
    assert!(!openssl_ok(
        d,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "sig.der",
            "changed.json"
        ]
    ));
}

#[test]
#[ignore = "needs openssl; run via cargo xtask test"]
fn keys_made_by_openssl_load_and_sign() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pass = "open sesame";
    openssl(
        d,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "sec1.pem",
        ],
    );
    openssl(
        d,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-out",
            "sec1-params.pem",
        ],
    );
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "pkcs8.pem",
        ],
    );
    let passout = format!("pass:{pass}");
    openssl(
        d,
        &[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-in",
            "pkcs8.pem",
            "-passout",
            &passout,
            "-out",
            "enc.pem",
        ],
    );
    let payload = payload();
    std::fs::write(d.join("payload.json"), &payload).unwrap();
    for (file, source, password) in [
        ("sec1.pem", "sec1.pem", None),
        ("sec1-params.pem", "sec1-params.pem", None),
        ("pkcs8.pem", "pkcs8.pem", None),
        ("enc.pem", "pkcs8.pem", Some(pass.as_bytes())),
    ] {
        let key = SigningKey::read(&d.join(file), password).unwrap_or_else(|e| panic!("{file}: {e}"));
        openssl(d, &["pkey", "-in", source, "-pubout", "-out", "openssl.pub"]);
        let theirs = PublicKey::read(&d.join("openssl.pub")).unwrap();
        assert_eq!(key.public_key(), &theirs, "{file}");
        let sig = key.sign(&payload);
        std::fs::write(d.join("sig.der"), sig.as_der()).unwrap();
        let out = openssl(
            d,
            &[
                "dgst",
                "-sha256",
                "-verify",
                "openssl.pub",
                "-signature",
                "sig.der",
                "payload.json",
            ],
        );
        assert_eq!(String::from_utf8(out).unwrap().trim(), "Verified OK", "{file}");
    }
    let err = SigningKey::read(&d.join("enc.pem"), Some(b"open sesamE")).unwrap_err();
    assert!(err.to_string().ends_with("enc.pem: wrong password"), "{err}");

    // openssl's own signature verifies with us.
    openssl(
        d,
        &[
            "dgst",
            "-sha256",
            "-sign",
            "pkcs8.pem",
            "-out",
            "theirs.der",
            "payload.json",
        ],
    );
    let theirs = PublicKey::read(&d.join("openssl.pub")).unwrap();
    verify(&theirs, &payload, &std::fs::read(d.join("theirs.der")).unwrap()).unwrap();

    // Other curves and algorithms are refused by name.
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            "p384.pem",
        ],
    );
    let err = SigningKey::read(&d.join("p384.pem"), None).unwrap_err();
    assert!(err.to_string().contains("secp384r1"), "{err}");
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
            "-out",
            "rsa.pem",
        ],
    );
    let err = SigningKey::read(&d.join("rsa.pem"), None).unwrap_err();
    assert!(err.to_string().contains("RSA"), "{err}");
}

#[test]
#[ignore = "needs openssl; run via cargo xtask test"]
fn openssl_reads_our_key_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = SigningKey::generate().unwrap();
    let files = write_key_pair(&d.join("bake"), &key, Some(b"pa55 word")).unwrap();
    let public = std::fs::read(&files.public_key).unwrap();

    // The encrypted PKCS#8 decrypts with openssl and gives our public key.
    let derived = openssl(
        d,
        &["pkey", "-in", "bake.key", "-passin", "pass:pa55 word", "-pubout"],
    );
    assert_eq!(derived, public);
    assert!(!openssl_ok(
        d,
        &["pkey", "-in", "bake.key", "-passin", "pass:wrong", "-pubout"]
    ));

    // The plain one too.
    let plain = write_key_pair(&d.join("plain"), &key, None).unwrap();
    assert_eq!(plain.private_key, d.join("plain.key"));
    assert_eq!(openssl(d, &["pkey", "-in", "plain.key", "-pubout"]), public);

    // openssl signs with our key file; we verify.
    let payload = payload();
    std::fs::write(d.join("payload.json"), &payload).unwrap();
    openssl(
        d,
        &[
            "dgst",
            "-sha256",
            "-sign",
            "bake.key",
            "-passin",
            "pass:pa55 word",
            "-out",
            "s.der",
            "payload.json",
        ],
    );
    verify(
        key.public_key(),
        &payload,
        &std::fs::read(d.join("s.der")).unwrap(),
    )
    .unwrap();
}
