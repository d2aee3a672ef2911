//! Keys: generation, PEM formats in and out, key files, and that no key
//! material or password ever shows in Debug, Display or errors.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use bake_sign::{PublicKey, SignError, SigningKey, sign, verify, write_key_pair};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

fn text(rel: &str) -> String {
    std::fs::read_to_string(data(rel)).unwrap()
}

/// The base64 body of a PEM, joined: a string that must never leak.
fn pem_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

#[test]
fn generate_sign_verify() {
    let key = SigningKey::generate().unwrap();
    let payload = b"{\"critical\":{}}";
    let sig = sign(&key, payload);
    verify(key.public_key(), payload, sig.as_der()).unwrap();
    verify(key.public_key(), payload, sig.to_base64().as_bytes()).unwrap();
    // RFC 6979: deterministic.
    assert_eq!(sign(&key, payload), sig);
    assert_ne!(sign(&key, b"other"), sig);
    let err = verify(key.public_key(), b"{\"critical\":{}} ", sig.as_der()).unwrap_err();
    assert!(matches!(err, SignError::BadSignature { .. }), "{err}");
    // Two generated keys differ.
    assert_ne!(SigningKey::generate().unwrap().key_id(), key.key_id());
}

#[test]
fn pkcs8_pem_round_trips_with_and_without_password() {
    let key = SigningKey::generate().unwrap();
    let plain = key.to_pkcs8_pem(None).unwrap();
    assert!(plain.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{}", &*plain);
    assert_eq!(
        SigningKey::from_pem(&plain, None).unwrap().public_key(),
        key.public_key()
    );
    // A password given for a plain key is ignored.
    assert_eq!(
        SigningKey::from_pem(&plain, Some(b"x")).unwrap().key_id(),
        key.key_id()
    );

    let encrypted = key.to_pkcs8_pem(Some(b"s3cret pass")).unwrap();
    assert!(
        encrypted.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"),
        "{}",
        &*encrypted
    );
    let back = SigningKey::from_pem(&encrypted, Some(b"s3cret pass")).unwrap();
    assert_eq!(back.public_key(), key.public_key());
    // Same key, same signature.
    assert_eq!(back.sign(b"p"), key.sign(b"p"));
    // Fresh salt and IV each time.
    assert_ne!(*key.to_pkcs8_pem(Some(b"s3cret pass")).unwrap(), *encrypted);

    let err = SigningKey::from_pem(&encrypted, Some(b"s3cret pasS")).unwrap_err();
    assert!(matches!(err, SignError::WrongPassword { .. }), "{err}");
    assert_eq!(err.to_string(), "cannot decrypt private key PEM: wrong password");
    let err = SigningKey::from_pem(&encrypted, None).unwrap_err();
    assert!(matches!(err, SignError::PasswordRequired { .. }), "{err}");

    // An empty password is a password.
    let empty = key.to_pkcs8_pem(Some(b"")).unwrap();
    assert!(empty.contains("ENCRYPTED PRIVATE KEY"));
    assert_eq!(
        SigningKey::from_pem(&empty, Some(b"")).unwrap().key_id(),
        key.key_id()
    );
}

#[test]
fn cosign_pem_round_trips() {
    let key = SigningKey::generate().unwrap();
    let pem = key.to_cosign_pem(b"pw").unwrap();
    assert!(
        pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"),
        "{}",
        &*pem
    );
    // The body is cosign's JSON envelope with cosign's v2 parameters.
    let (_, body) = pkcs8::der::pem::decode_vec(pem.as_bytes()).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        json["kdf"]["params"],
        serde_json::json!({"N": 65536, "r": 8, "p": 1})
    );
    assert_eq!(json["cipher"]["name"], "nacl/secretbox");
    assert_eq!(
        SigningKey::from_pem(&pem, Some(b"pw")).unwrap().key_id(),
        key.key_id()
    );
    let err = SigningKey::from_pem(&pem, Some(b"pW")).unwrap_err();
    assert!(matches!(err, SignError::WrongPassword { .. }), "{err}");
}

#[test]
fn public_pem_round_trips() {
    let key = SigningKey::generate().unwrap();
    let pem = key.public_key().to_pem();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n") && pem.ends_with("-----END PUBLIC KEY-----\n"));
    let back = PublicKey::from_pem(&pem).unwrap();
    assert_eq!(&back, key.public_key());
    assert_eq!(back.key_id(), key.key_id());
    assert_eq!(back.key_id().len(), 64);
    // CRLF line ends are fine too.
    assert_eq!(
        &PublicKey::from_pem(&pem.replace('\n', "\r\n")).unwrap(),
        key.public_key()
    );
}

#[test]
fn openssl_made_keys_load() {
    for (private, public, password) in [
        ("p256-sec1.pem", "p256-sec1.pub", None),
        ("p256-sec1-with-params.pem", "p256-sec1-with-params.pub", None),
        ("p256-pkcs8.pem", "p256-pkcs8.pub", None),
        (
            "p256-pkcs8-aes256.pem",
            "p256-sec1.pub",
            Some(&b"correct horse"[..]),
        ),
    ] {
        let key = SigningKey::read(&data(&format!("openssl-keys/{private}")), password)
            .unwrap_or_else(|e| panic!("{private}: {e}"));
        let expected = PublicKey::read(&data(&format!("openssl-keys/{public}"))).unwrap();
        assert_eq!(key.public_key(), &expected, "{private}");
        // Our PEM of openssl's public key is byte-identical to openssl's.
        assert_eq!(
            expected.to_pem(),
            text(&format!("openssl-keys/{public}")),
            "{public}"
        );
        verify(&expected, b"payload", key.sign(b"payload").as_der()).unwrap();
    }
    // Key ids as `openssl pkey -pubin -outform DER | sha256sum` prints them.
    let id = |p: &str| {
        PublicKey::read(&data(&format!("openssl-keys/{p}")))
            .unwrap()
            .key_id()
            .to_owned()
    };
    assert_eq!(
        id("p256-sec1.pub"),
        "7648104acd9a1f2fdd0ac12b603650d9cb134bc20f0b28db3ddba89cd18c07a8"
    );
    assert_eq!(
        id("p256-pkcs8.pub"),
        "2078ce219c00c9fa2eb4beb79bd90fbbe5454dc0ac88ac0dbfd164000839e5ab"
    );

    let err = SigningKey::read(
        &data("openssl-keys/p256-pkcs8-aes256.pem"),
        Some(b"correct horsE"),
    )
    .unwrap_err();
    assert!(matches!(err, SignError::WrongPassword { .. }), "{err}");
    assert!(
        err.to_string().ends_with("p256-pkcs8-aes256.pem: wrong password"),
        "{err}"
    );
}

#[test]
fn foreign_and_broken_keys_are_refused_clearly() {
    let cases: &[(&str, &str)] = &[
        (
            "rsa-pkcs8.pem",
            "is an RSA key: only ECDSA P-256 keys are supported",
        ),
        (
            "rsa-pkcs1.pem",
            "is an RSA key: only ECDSA P-256 keys are supported",
        ),
        ("ed25519.pem", "is an Ed25519 key"),
        (
            "p384-pkcs8.pem",
            "is an EC key on curve secp384r1 (P-384): only P-256",
        ),
        (
            "p384-sec1.pem",
            "is an EC key on curve secp384r1 (P-384): only P-256",
        ),
        ("p256-sec1-legacy-encrypted.pem", "legacy OpenSSL PEM encryption"),
        (
            "p256-sec1.pub",
            "holds a \"PUBLIC KEY\" PEM block, expected a private key (this is the public half",
        ),
    ];
    for (file, message) in cases {
        let path = data(&format!("openssl-keys/{file}"));
        let err = SigningKey::read(&path, Some(b"legacy")).unwrap_err().to_string();
        assert!(err.contains(message), "{file}: {err}");
        assert!(err.starts_with(&path.display().to_string()), "{file}: {err}");
    }
    for (file, message) in [
        ("rsa.pub", "is an RSA key"),
        ("p384.pub", "curve secp384r1"),
        ("ed25519.pub", "is an Ed25519 key"),
        (
            "p256-sec1.pem",
            "holds a \"EC PRIVATE KEY\" PEM block, expected PUBLIC KEY",
        ),
    ] {
        let err = PublicKey::read(&data(&format!("openssl-keys/{file}")))
            .unwrap_err()
            .to_string();
        assert!(err.contains(message), "{file}: {err}");
        assert!(err.contains(file), "{file}: {err}");
    }

    let err = SigningKey::from_pem("hello", None).unwrap_err();
    assert_eq!(err.to_string(), "private key PEM holds no PEM block");
    let err = PublicKey::from_pem("").unwrap_err();
    assert_eq!(err.to_string(), "public key PEM holds no PEM block");
    let err = SigningKey::from_pem(
        "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
        None,
    )
    .unwrap_err();
    assert!(matches!(err, SignError::BadPem { .. }), "{err}");
    let err = SigningKey::from_pem(
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        None,
    )
    .unwrap_err();
    assert!(matches!(err, SignError::MalformedKey { .. }), "{err}");
    let err = SigningKey::from_pem(
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        None,
    )
    .unwrap_err();
    assert!(matches!(err, SignError::UnexpectedPem { .. }), "{err}");
    let err = SigningKey::read(Path::new("/nonexistent/cosign.key"), None).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/cosign.key"), "{err}");
}

#[test]
fn key_pair_files() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("release");
    let key = SigningKey::generate().unwrap();
    let files = write_key_pair(&prefix, &key, Some(b"pw")).unwrap();
    assert_eq!(files.private_key, dir.path().join("release.key"));
    assert_eq!(files.public_key, dir.path().join("release.pub"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files.private_key)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "private key mode {mode:o}");
    }
    assert!(
        std::fs::read_to_string(&files.private_key)
            .unwrap()
            .contains("ENCRYPTED PRIVATE KEY")
    );
    assert_eq!(
        SigningKey::read(&files.private_key, Some(b"pw"))
            .unwrap()
            .key_id(),
        key.key_id()
    );
    assert_eq!(&PublicKey::read(&files.public_key).unwrap(), key.public_key());

    // Never overwrites, and leaves the existing files alone.
    let before = std::fs::read(&files.private_key).unwrap();
    let other = SigningKey::generate().unwrap();
    let err = write_key_pair(&prefix, &other, None).unwrap_err();
    assert!(
        matches!(err, SignError::KeyFileExists(ref p) if *p == files.private_key),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "refusing to overwrite existing key file {}",
            files.private_key.display()
        )
    );
    assert_eq!(std::fs::read(&files.private_key).unwrap(), before);

    // Only the .pub exists: refused too, and no .key is left behind.
    let prefix2 = dir.path().join("half");
    std::fs::write(dir.path().join("half.pub"), "x").unwrap();
    let err = write_key_pair(&prefix2, &other, None).unwrap_err();
    assert!(matches!(err, SignError::KeyFileExists(_)), "{err}");
    assert!(!dir.path().join("half.key").exists());

    // Without a password: plain PKCS#8, still 0600.
    let files = write_key_pair(&dir.path().join("plain"), &other, None).unwrap();
    assert!(
        std::fs::read_to_string(&files.private_key)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files.private_key)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[test]
fn no_key_material_or_password_in_debug_display_or_errors() {
    let key = SigningKey::generate().unwrap();
    let plain_pem = key.to_pkcs8_pem(None).unwrap();
    let secret_body = pem_body(&plain_pem);
    // The raw scalar, in hex, as it would show if Debug were derived.
    let (_, der) = pkcs8::der::pem::decode_vec(plain_pem.as_bytes()).unwrap();
    let info = pkcs8::PrivateKeyInfoRef::try_from(der.as_slice()).unwrap();
    let sec1 = sec1::EcPrivateKey::try_from(info.private_key.as_bytes()).unwrap();
    let scalar_hex = hex::encode(sec1.private_key);
    let scalar_hex_upper = scalar_hex.to_uppercase();
    let scalar_bytes = format!("{:?}", sec1.private_key);

    let password = "hunter2-very-secret";
    let encrypted = key.to_pkcs8_pem(Some(password.as_bytes())).unwrap();
    let mut shown = vec![
        format!("{key:?}"),
        format!("{key:#?}"),
        format!("{key}"),
        format!("{:?}", key.public_key()),
        format!("{}", key.public_key()),
    ];
    for bad in [b"wrong".as_slice(), password.as_bytes()] {
        // (the right password decrypts, the rest fail: collect every error)
        if let Err(e) = SigningKey::from_pem(
            &encrypted.replace("ENCRYPTED PRIVATE KEY", "RSA PRIVATE KEY"),
            Some(bad),
        ) {
            shown.push(format!("{e} {e:?}"));
        }
    }
    for pem in [&*plain_pem, &*encrypted] {
        for pw in [
            None,
            Some(b"wrong-password-xyz".as_slice()),
            Some(password.as_bytes()),
        ] {
            // Corrupt the body so parsing fails after decoding.
            let broken = pem.replacen("M", "N", 3);
            if let Err(e) = SigningKey::from_pem(&broken, pw) {
                shown.push(format!("{e} {e:?}"));
            }
            if let Err(e) = SigningKey::from_pem(pem, pw.map(|_| b"wrong-password-xyz".as_slice())) {
                shown.push(format!("{e} {e:?}"));
            }
        }
    }
    assert!(shown[0].contains(key.key_id()), "{}", shown[0]);
    assert!(shown.len() > 6, "too few errors collected: {shown:?}");
    for s in &shown {
        assert!(!s.contains(&scalar_hex), "scalar in {s}");
        assert!(!s.contains(&scalar_hex_upper), "scalar in {s}");
        assert!(!s.contains(&scalar_bytes), "scalar bytes in {s}");
        assert!(!s.contains(&secret_body[20..60]), "PEM body in {s}");
        assert!(!s.contains(password), "password in {s}");
        assert!(!s.contains("wrong-password-xyz"), "password in {s}");
    }
}
