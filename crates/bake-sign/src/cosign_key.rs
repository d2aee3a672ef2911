//! cosign's own encrypted private key format (`ENCRYPTED SIGSTORE PRIVATE KEY`).
//!
//! The PEM body is JSON (go-securesystemslib's `encrypted` package):
//!
//! ```text
//! {"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":"<base64>"},
//!  "cipher":{"name":"nacl/secretbox","nonce":"<base64>"},
//!  "ciphertext":"<base64>"}
//! ```
//!
//! The key is `scrypt(password, salt, N, r, p, 32)`, the ciphertext is NaCl's
//! `secretbox` (XSalsa20-Poly1305: the 16-byte Poly1305 tag, then the
//! XSalsa20-encrypted bytes) and the plaintext is the PKCS#8 DER private key.

use base64ct::{Base64, Encoding};
use poly1305::Poly1305;
use poly1305::universal_hash::KeyInit;
use salsa20::XSalsa20;
use salsa20::cipher::{KeyIvInit, StreamCipher};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::SignError;

const KDF: &str = "scrypt";
const CIPHER: &str = "nacl/secretbox";
const TAG_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const SALT_LEN: usize = 32;
/// What `cosign generate-key-pair` (v2 and later) uses.
const WRITE_LOG_N: u8 = 16;
const WRITE_R: u32 = 8;
const WRITE_P: u32 = 1;
/// Bounds on the parameters of a file we read, so that a hostile key file
/// cannot make us allocate gigabytes or spin for minutes: cosign uses
/// N = 2^15 or 2^16 with r = 8, p = 1 (32–64 MiB).
const MAX_SCRYPT_MEMORY: u64 = 256 * 1024 * 1024;
const MAX_P: u32 = 16;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cipher {
    name: String,
    nonce: String,
}

fn derive_key(
    password: &[u8],
    salt: &[u8],
    log_n: u8,
    r: u32,
    p: u32,
) -> Result<Zeroizing<[u8; 32]>, String> {
    let params = scrypt::Params::new(log_n, r, p).map_err(|e| format!("invalid scrypt parameters: {e}"))?;
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password, salt, &params, key.as_mut()).map_err(|e| format!("scrypt failed: {e}"))?;
    Ok(key)
}

/// The Poly1305 key (first 32 bytes of the XSalsa20 keystream) and the cipher
/// positioned just after it, as NaCl's `crypto_secretbox` uses them.
fn secretbox_init(key: &[u8; 32], nonce: &[u8; NONCE_LEN]) -> (Poly1305, XSalsa20) {
    let mut cipher = XSalsa20::new(&(*key).into(), &(*nonce).into());
    let mut mac_key = Zeroizing::new([0u8; 32]);
    cipher.apply_keystream(mac_key.as_mut());
    (Poly1305::new(&(*mac_key).into()), cipher)
}

/// Decrypts the JSON body of an `ENCRYPTED SIGSTORE PRIVATE KEY` block.
pub(crate) fn open(json: &[u8], password: &[u8], origin: &str) -> Result<Zeroizing<Vec<u8>>, SignError> {
    let malformed = |reason: String| SignError::MalformedKey {
        origin: origin.to_owned(),
        reason: format!("not a cosign encrypted key: {reason}"),
    };
    let unsupported = |reason: String| SignError::UnsupportedEncryption {
        origin: origin.to_owned(),
        reason,
    };
    let envelope: Envelope = serde_json::from_slice(json).map_err(|e| malformed(e.to_string()))?;
    if envelope.kdf.name != KDF {
        return Err(unsupported(format!(
            "key derivation {:?} (expected {KDF:?})",
            envelope.kdf.name
        )));
    }
    if envelope.cipher.name != CIPHER {
        return Err(unsupported(format!(
            "cipher {:?} (expected {CIPHER:?})",
            envelope.cipher.name
        )));
    }
    let ScryptParams { n, r, p } = envelope.kdf.params;
    if n < 2 || !n.is_power_of_two() || r == 0 || p == 0 {
        return Err(malformed(format!("invalid scrypt parameters N={n} r={r} p={p}")));
    }
    if u128::from(n) * 128 * u128::from(r) > u128::from(MAX_SCRYPT_MEMORY) || p > MAX_P {
        return Err(unsupported(format!(
            "scrypt parameters N={n} r={r} p={p} exceed the supported maximum (N*r*128 <= 256 MiB, p <= {MAX_P})"
        )));
    }
    let decode = |what: &str, s: &str| Base64::decode_vec(s).map_err(|e| malformed(format!("{what}: {e}")));
    let salt = decode("salt", &envelope.kdf.salt)?;
    let nonce: [u8; NONCE_LEN] = decode("nonce", &envelope.cipher.nonce)?
        .try_into()
        .map_err(|_| malformed(format!("the nonce is not {NONCE_LEN} bytes")))?;
    let boxed = decode("ciphertext", &envelope.ciphertext)?;
    if boxed.len() < TAG_LEN {
        return Err(malformed("the ciphertext is shorter than its tag".to_owned()));
    }
    let log_n = u8::try_from(n.trailing_zeros()).map_err(|_| malformed("N is too large".to_owned()))?;
    let key = derive_key(password, &salt, log_n, r, p).map_err(unsupported)?;

    let (tag, ciphertext) = boxed.split_at(TAG_LEN);
    let (mac, mut cipher) = secretbox_init(&key, &nonce);
    let expected = mac.compute_unpadded(ciphertext);
    if !bool::from(expected.as_slice().ct_eq(tag)) {
        return Err(SignError::WrongPassword {
            origin: origin.to_owned(),
        });
    }
    let mut plain = Zeroizing::new(ciphertext.to_vec());
    cipher.apply_keystream(&mut plain);
    Ok(plain)
}

/// Encrypts a PKCS#8 DER key into the JSON body of an
/// `ENCRYPTED SIGSTORE PRIVATE KEY` block, with cosign's parameters.
pub(crate) fn seal(pkcs8_der: &[u8], password: &[u8]) -> Result<Vec<u8>, SignError> {
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut salt).map_err(|e| SignError::Rng(e.to_string()))?;
    getrandom::fill(&mut nonce).map_err(|e| SignError::Rng(e.to_string()))?;
    let key = derive_key(password, &salt, WRITE_LOG_N, WRITE_R, WRITE_P).map_err(|reason| {
        SignError::MalformedKey {
            origin: "private key".to_owned(),
            reason,
        }
    })?;
    let (mac, mut cipher) = secretbox_init(&key, &nonce);
    let mut boxed = vec![0u8; TAG_LEN];
    boxed.extend_from_slice(pkcs8_der);
    cipher.apply_keystream(&mut boxed[TAG_LEN..]);
    let tag = mac.compute_unpadded(&boxed[TAG_LEN..]);
    boxed[..TAG_LEN].copy_from_slice(&tag);
    let envelope = Envelope {
        kdf: Kdf {
            name: KDF.to_owned(),
            params: ScryptParams {
                n: 1 << WRITE_LOG_N,
                r: WRITE_R,
                p: WRITE_P,
            },
            salt: Base64::encode_string(&salt),
        },
        cipher: Cipher {
            name: CIPHER.to_owned(),
            nonce: Base64::encode_string(&nonce),
        },
        ciphertext: Base64::encode_string(&boxed),
    };
    Ok(serde_json::to_vec(&envelope).expect("the envelope always serialises"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NaCl secretbox test vector (from the NaCl distribution's
    /// `tests/secretbox.c`, also in Go's `x/crypto/nacl/secretbox` tests):
    /// our XSalsa20-Poly1305 composition must give the same box.
    #[test]
    fn secretbox_matches_nacl_vector() {
        let key: [u8; 32] = hex::decode("1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389")
            .unwrap()
            .try_into()
            .unwrap();
        let nonce: [u8; 24] = hex::decode("69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37")
            .unwrap()
            .try_into()
            .unwrap();
        let message = hex::decode(concat!(
            "be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffce5ecbaaf33bd751a1ac728d45e6c6129",
            "6cdc3c01233561f41db66cce314adb310e3be8250c46f06dceea3a7fa1348057e2f6556ad6b1318a024a838f21af1fde",
            "048977eb48f59ffd4924ca1c60902e52f0a089bc76897040e082f937763848645e0705"
        ))
        .unwrap();
        let expected = hex::decode(concat!(
            "f3ffc7703f9400e52a7dfb4b3d3305d98e993b9f48681273c29650ba32fc76ce48332ea7164d96a4476fb8c531a1186a",
            "c0dfc17c98dce87b4da7f011ec48c97271d2c20f9b928fe2270d6fb863d51738b48eeee314a7cc8ab932164548e526ae",
            "90224368517acfeabd6bb3732bc0e9da99832b61ca01b6de56244a9e88d5f9b37973f622a43d14a6599b1f654cb45a74",
            "e355a5"
        ))
        .unwrap();
        let (mac, mut cipher) = secretbox_init(&key, &nonce);
        let mut ciphertext = message.clone();
        cipher.apply_keystream(&mut ciphertext);
        let tag = mac.compute_unpadded(&ciphertext);
        let mut boxed = tag.to_vec();
        boxed.extend_from_slice(&ciphertext);
        assert_eq!(hex::encode(&boxed), hex::encode(&expected));
    }

    #[test]
    fn seal_then_open_and_wrong_password() {
        let secret = b"not really a key, just bytes";
        let json = seal(secret, b"pw").unwrap();
        assert_eq!(open(&json, b"pw", "k").unwrap().as_slice(), secret);
        let err = open(&json, b"pW", "k").unwrap_err();
        assert!(matches!(err, SignError::WrongPassword { .. }), "{err}");
        // Any change to the ciphertext is caught by the tag.
        let mut env: Envelope = serde_json::from_slice(&json).unwrap();
        let mut boxed = Base64::decode_vec(&env.ciphertext).unwrap();
        let last = boxed.len() - 1;
        boxed[last] ^= 1;
        env.ciphertext = Base64::encode_string(&boxed);
        let tampered = serde_json::to_vec(&env).unwrap();
        assert!(matches!(
            open(&tampered, b"pw", "k"),
            Err(SignError::WrongPassword { .. })
        ));
    }

    #[test]
    fn hostile_parameters_are_refused_before_deriving() {
        let json = br#"{"kdf":{"name":"scrypt","params":{"N":1073741824,"r":8,"p":1},"salt":"AA=="},"cipher":{"name":"nacl/secretbox","nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},"ciphertext":"AAAAAAAAAAAAAAAAAAAAAA=="}"#;
        let err = open(json, b"", "evil.key").unwrap_err();
        assert!(matches!(err, SignError::UnsupportedEncryption { .. }), "{err}");
        assert!(err.to_string().contains("evil.key"), "{err}");
        let json = br#"{"kdf":{"name":"pbkdf2","params":{"N":2,"r":8,"p":1},"salt":"AA=="},"cipher":{"name":"nacl/secretbox","nonce":"AA=="},"ciphertext":"AA=="}"#;
        assert!(matches!(
            open(json, b"", "k"),
            Err(SignError::UnsupportedEncryption { .. })
        ));
        let json = br#"{"kdf":{"name":"scrypt","params":{"N":1000,"r":8,"p":1},"salt":"AA=="},"cipher":{"name":"nacl/secretbox","nonce":"AA=="},"ciphertext":"AA=="}"#;
        assert!(matches!(
            open(json, b"", "k"),
            Err(SignError::MalformedKey { .. })
        ));
    }
}
