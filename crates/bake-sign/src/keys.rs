//! ECDSA P-256 key pairs: generation, PEM reading and writing, key files.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use fs_err as fs;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::elliptic_curve::Generate;
use p256::pkcs8::{DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use pkcs8::der::pem::{self, LineEnding};
use pkcs8::{EncryptedPrivateKeyInfoRef, ObjectIdentifier, PrivateKeyInfoRef};
use zeroize::Zeroizing;

use crate::SignError;
use crate::cosign_key;
use crate::signature::Signature;

const ID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const PRIME256V1: &str = "1.2.840.10045.3.1.7";

/// PEM labels of cosign's own encrypted private key format.
pub(crate) const SIGSTORE_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
const COSIGN_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";

/// An ECDSA P-256 private key.
///
/// Its `Debug` output shows only the public [key id](PublicKey::key_id); the
/// secret scalar is zeroed when the key is dropped.
#[derive(Clone)]
pub struct SigningKey {
    inner: p256::ecdsa::SigningKey,
    public: PublicKey,
}

/// An ECDSA P-256 public key, with its stable key id.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    inner: p256::ecdsa::VerifyingKey,
    spki_der: Vec<u8>,
    key_id: String,
}

/// The two files written by [`write_key_pair`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPairFiles {
    /// `PREFIX.key`, mode 0600.
    pub private_key: PathBuf,
    /// `PREFIX.pub`.
    pub public_key: PathBuf,
}

impl SigningKey {
    /// A new random key from the operating system's random number generator.
    pub fn generate() -> Result<SigningKey, SignError> {
        let inner = p256::ecdsa::SigningKey::try_generate_from_rng(&mut getrandom::SysRng)
            .map_err(|e| SignError::Rng(e.to_string()))?;
        Ok(SigningKey::from_inner(inner))
    }

    fn from_inner(inner: p256::ecdsa::SigningKey) -> SigningKey {
        let public = PublicKey::from_inner(*inner.verifying_key());
        SigningKey { inner, public }
    }

    /// Reads a private key from a PEM string; see [`SigningKey::read`] for the
    /// formats accepted. `password` is needed for encrypted keys and ignored
    /// for plain ones.
    pub fn from_pem(pem: &str, password: Option<&[u8]>) -> Result<SigningKey, SignError> {
        parse_private_pem(pem, password, "private key PEM")
    }

    /// Reads a private key file. Accepted, each as PEM:
    ///
    /// * PKCS#8 `PRIVATE KEY` (`openssl genpkey`, `cosign import-key-pair` input);
    /// * PKCS#8 `ENCRYPTED PRIVATE KEY`, PBES2 with PBKDF2 or scrypt and AES-CBC
    ///   (`openssl pkcs8 -topk8 -v2 aes-256-cbc`, [`SigningKey::to_pkcs8_pem`]);
    /// * SEC1 `EC PRIVATE KEY` (`openssl ecparam -genkey`; a leading
    ///   `EC PARAMETERS` block is skipped);
    /// * cosign's `ENCRYPTED SIGSTORE PRIVATE KEY` (and the older
    ///   `ENCRYPTED COSIGN PRIVATE KEY`) made by `cosign generate-key-pair`.
    ///
    /// Errors name `path` and say what is wrong: a missing or wrong password,
    /// an RSA/Ed25519 key, an EC key on another curve, or not a key at all.
    pub fn read(path: &Path, password: Option<&[u8]>) -> Result<SigningKey, SignError> {
        let text = Zeroizing::new(fs::read_to_string(path)?);
        parse_private_pem(&text, password, &path.display().to_string())
    }

    /// The matching public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The public key's id, for messages: see [`PublicKey::key_id`].
    pub fn key_id(&self) -> &str {
        self.public.key_id()
    }

    /// Signs `payload` (ECDSA over its SHA-256), returning an ASN.1 DER
    /// signature. Signing is deterministic (RFC 6979): the same key and payload
    /// always give the same signature bytes.
    pub fn sign(&self, payload: &[u8]) -> Signature {
        let sig: p256::ecdsa::Signature = self.inner.sign(payload);
        Signature::from_valid_der(sig.to_der().as_bytes().to_vec())
    }

    /// PKCS#8 PEM: `ENCRYPTED PRIVATE KEY` (PBES2: PBKDF2-HMAC-SHA256 with
    /// 600,000 iterations, AES-256-CBC, random salt and IV, as readable by
    /// `openssl pkey` and any PKCS#8 reader) when a password is given (an
    /// empty one included), plain `PRIVATE KEY` otherwise.
    pub fn to_pkcs8_pem(&self, password: Option<&[u8]>) -> Result<Zeroizing<String>, SignError> {
        let origin = "private key";
        let malformed = |e: pkcs8::Error| SignError::MalformedKey {
            origin: origin.to_owned(),
            reason: e.to_string(),
        };
        let der = self.inner.to_pkcs8_der().map_err(malformed)?;
        let Some(password) = password else {
            return der
                .to_pem("PRIVATE KEY", LineEnding::LF)
                .map_err(|e| malformed(e.into()));
        };
        let info = PrivateKeyInfoRef::try_from(der.as_bytes()).map_err(malformed)?;
        let params = pkcs8::pkcs5::pbes2::Parameters::generate_pbkdf2(&mut getrandom::SysRng)
            .map_err(|e| SignError::Rng(e.to_string()))?;
        let encrypted = info.encrypt_with_params(params, password).map_err(malformed)?;
        encrypted
            .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
            .map_err(|e| malformed(e.into()))
    }

    /// cosign's own `ENCRYPTED SIGSTORE PRIVATE KEY` PEM (scrypt N=65536,
    /// r=8, p=1 and NaCl secretbox over the PKCS#8 DER), which
    /// `cosign sign --key` reads directly. cosign always encrypts; an empty
    /// password is what `COSIGN_PASSWORD=""` gives.
    pub fn to_cosign_pem(&self, password: &[u8]) -> Result<Zeroizing<String>, SignError> {
        let der = self.inner.to_pkcs8_der().map_err(|e| SignError::MalformedKey {
            origin: "private key".to_owned(),
            reason: e.to_string(),
        })?;
        let json = cosign_key::seal(der.as_bytes(), password)?;
        let pem = pem::encode_string(SIGSTORE_KEY_LABEL, LineEnding::LF, &json).map_err(|e| {
            SignError::MalformedKey {
                origin: "private key".to_owned(),
                reason: e.to_string(),
            }
        })?;
        Ok(Zeroizing::new(pem))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &"ecdsa-p256")
            .field("key_id", &self.public.key_id)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ECDSA P-256 private key {}", self.public.key_id)
    }
}

impl PublicKey {
    fn from_inner(inner: p256::ecdsa::VerifyingKey) -> PublicKey {
        let spki_der = p256::PublicKey::from(&inner)
            .to_public_key_der()
            .expect("a P-256 point always encodes as SPKI")
            .into_vec();
        let key_id = bake_digest::Digest::of(&spki_der).hex().to_owned();
        PublicKey {
            inner,
            spki_der,
            key_id,
        }
    }

    /// Reads a PKIX `PUBLIC KEY` PEM (what `cosign generate-key-pair` writes to
    /// `cosign.pub` and `openssl pkey -pubout` prints).
    pub fn from_pem(pem: &str) -> Result<PublicKey, SignError> {
        parse_public_pem(pem, "public key PEM")
    }

    /// Reads a PKIX `PUBLIC KEY` PEM file; errors name `path`.
    pub fn read(path: &Path) -> Result<PublicKey, SignError> {
        let text = fs::read_to_string(path)?;
        parse_public_pem(&text, &path.display().to_string())
    }

    /// PKIX `PUBLIC KEY` PEM, 64-column lines, `\n` line ends: byte for byte
    /// what cosign writes.
    pub fn to_pem(&self) -> String {
        pem::encode_string("PUBLIC KEY", LineEnding::LF, &self.spki_der)
            .expect("SPKI DER always encodes as PEM")
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn to_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// A stable id for messages: the lower-case hex sha256 of the DER
    /// SubjectPublicKeyInfo (`openssl pkey -pubin -outform DER | sha256sum`).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Whether `signature` is a valid ECDSA-SHA256 signature of `payload` by
    /// this key. Both low-S and high-S signatures are accepted, as cosign
    /// (Go's `crypto/ecdsa`) does.
    pub fn verify(&self, payload: &[u8], signature: &Signature) -> Result<(), SignError> {
        let sig = p256::ecdsa::Signature::from_der(signature.as_der()).map_err(|e| {
            SignError::MalformedSignature {
                reason: e.to_string(),
            }
        })?;
        self.inner
            .verify(payload, &sig)
            .map_err(|_| SignError::BadSignature {
                payload: bake_digest::Digest::of(payload),
                key_id: self.key_id.clone(),
            })
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("algorithm", &"ecdsa-p256")
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ECDSA P-256 public key {}", self.key_id)
    }
}

/// Writes `PREFIX.key` (the private key, PKCS#8 PEM, encrypted when a password
/// is given; created with mode 0600, never widened) and `PREFIX.pub` (PKIX
/// PEM). Refuses to overwrite either file; on any failure, files it created
/// are removed again.
pub fn write_key_pair(
    prefix: &Path,
    key: &SigningKey,
    password: Option<&[u8]>,
) -> Result<KeyPairFiles, SignError> {
    let files = KeyPairFiles {
        private_key: with_suffix(prefix, ".key"),
        public_key: with_suffix(prefix, ".pub"),
    };
    let private_pem = key.to_pkcs8_pem(password)?;
    let public_pem = key.public_key().to_pem();
    for path in [&files.private_key, &files.public_key] {
        if fs::symlink_metadata(path).is_ok() {
            return Err(SignError::KeyFileExists(path.clone()));
        }
    }
    write_new_file(&files.private_key, 0o600, private_pem.as_bytes())?;
    if let Err(e) = write_new_file(&files.public_key, 0o644, public_pem.as_bytes()) {
        let _ = fs::remove_file(&files.private_key);
        return Err(e);
    }
    Ok(files)
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Creates `path` exclusively with `mode` (never chmod-ed afterwards), writes
/// `bytes` and syncs; removes the file again if writing fails.
fn write_new_file(path: &Path, mode: u32, bytes: &[u8]) -> Result<(), SignError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use fs_err::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = match options.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(SignError::KeyFileExists(path.to_path_buf()));
        }
        Err(e) => return Err(e.into()),
    };
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(e.into());
    }
    Ok(())
}

/// One `-----BEGIN X-----` … `-----END X-----` block of a PEM file.
struct PemBlock<'a> {
    label: &'a str,
    text: &'a str,
}

/// Splits `text` into its PEM blocks, ignoring anything between them.
fn pem_blocks(text: &str) -> Vec<PemBlock<'_>> {
    const BEGIN: &str = "-----BEGIN ";
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start + BEGIN.len()..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = rest[start..].find(&end_marker) else {
            break;
        };
        let stop = start + end + end_marker.len();
        blocks.push(PemBlock {
            label,
            text: &rest[start..stop],
        });
        rest = &rest[stop..];
    }
    blocks
}

fn decode_block(block: &PemBlock<'_>, origin: &str) -> Result<Zeroizing<Vec<u8>>, SignError> {
    if block.text.contains("Proc-Type:") || block.text.contains("DEK-Info:") {
        return Err(SignError::LegacyPemEncryption {
            origin: origin.to_owned(),
        });
    }
    let (_, der) = pem::decode_vec(block.text.as_bytes()).map_err(|e| SignError::BadPem {
        origin: origin.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(Zeroizing::new(der))
}

const PRIVATE_KEY_LABELS: &str =
    "PRIVATE KEY, ENCRYPTED PRIVATE KEY, EC PRIVATE KEY or ENCRYPTED SIGSTORE PRIVATE KEY";

fn parse_private_pem(text: &str, password: Option<&[u8]>, origin: &str) -> Result<SigningKey, SignError> {
    let blocks = pem_blocks(text);
    let Some(block) = blocks.iter().find(|b| b.label != "EC PARAMETERS") else {
        return Err(if blocks.is_empty() {
            SignError::NotPem {
                origin: origin.to_owned(),
            }
        } else {
            SignError::MalformedKey {
                origin: origin.to_owned(),
                reason: "it holds only EC PARAMETERS, no private key".to_owned(),
            }
        });
    };
    let der = decode_block(block, origin)?;
    let need_password = || SignError::PasswordRequired {
        origin: origin.to_owned(),
    };
    match block.label {
        "PRIVATE KEY" => parse_pkcs8(&der, origin),
        "ENCRYPTED PRIVATE KEY" => {
            let password = password.ok_or_else(need_password)?;
            let info = EncryptedPrivateKeyInfoRef::try_from(der.as_slice()).map_err(|e| {
                SignError::MalformedKey {
                    origin: origin.to_owned(),
                    reason: e.to_string(),
                }
            })?;
            let plain = info.decrypt(password).map_err(|e| match e {
                // A wrong key gives bad CBC padding or, rarely, garbage that is not DER.
                pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::DecryptFailed)
                | pkcs8::Error::Asn1(_) => SignError::WrongPassword {
                    origin: origin.to_owned(),
                },
                other => SignError::UnsupportedEncryption {
                    origin: origin.to_owned(),
                    reason: other.to_string(),
                },
            })?;
            parse_pkcs8(plain.as_bytes(), origin).map_err(|e| match e {
                SignError::MalformedKey { origin, .. } => SignError::WrongPassword { origin },
                other => other,
            })
        }
        "EC PRIVATE KEY" => parse_sec1(&der, origin),
        SIGSTORE_KEY_LABEL | COSIGN_KEY_LABEL => {
            let password = password.ok_or_else(need_password)?;
            let plain = cosign_key::open(&der, password, origin)?;
            parse_pkcs8(&plain, origin)
        }
        "PUBLIC KEY" => Err(SignError::UnexpectedPem {
            origin: origin.to_owned(),
            label: block.label.to_owned(),
            expected: "a private key (this is the public half of a key pair)",
        }),
        "RSA PRIVATE KEY" => Err(unsupported(origin, "an RSA")),
        "DSA PRIVATE KEY" => Err(unsupported(origin, "a DSA")),
        "OPENSSH PRIVATE KEY" => Err(unsupported(origin, "an OpenSSH-format")),
        label => Err(SignError::UnexpectedPem {
            origin: origin.to_owned(),
            label: label.to_owned(),
            expected: PRIVATE_KEY_LABELS,
        }),
    }
}

fn unsupported(origin: &str, algorithm: &str) -> SignError {
    SignError::UnsupportedKey {
        origin: origin.to_owned(),
        algorithm: algorithm.to_owned(),
    }
}

/// Rejects anything but an `id-ecPublicKey` on prime256v1, naming what it is.
fn check_algorithm(
    oid: ObjectIdentifier,
    curve: Option<ObjectIdentifier>,
    origin: &str,
) -> Result<(), SignError> {
    let algorithm = match oid.to_string().as_str() {
        ID_EC_PUBLIC_KEY => None,
        "1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10" => Some("an RSA"),
        "1.3.101.112" => Some("an Ed25519"),
        "1.3.101.113" => Some("an Ed448"),
        "1.3.101.110" | "1.3.101.111" => Some("an X25519/X448 (key agreement)"),
        "1.2.840.10040.4.1" => Some("a DSA"),
        _ => {
            return Err(unsupported(origin, &format!("an unknown (algorithm {oid})")));
        }
    };
    if let Some(algorithm) = algorithm {
        return Err(unsupported(origin, algorithm));
    }
    match curve.map(|c| c.to_string()) {
        Some(c) if c == PRIME256V1 => Ok(()),
        Some(c) => Err(SignError::WrongCurve {
            origin: origin.to_owned(),
            curve: curve_name(&c),
        }),
        None => Err(SignError::MalformedKey {
            origin: origin.to_owned(),
            reason: "the EC key does not name its curve".to_owned(),
        }),
    }
}

fn curve_name(oid: &str) -> String {
    match oid {
        "1.3.132.0.34" => "secp384r1 (P-384)".to_owned(),
        "1.3.132.0.35" => "secp521r1 (P-521)".to_owned(),
        "1.3.132.0.33" => "secp224r1 (P-224)".to_owned(),
        "1.3.132.0.10" => "secp256k1".to_owned(),
        "1.3.36.3.3.2.8.1.1.7" => "brainpoolP256r1".to_owned(),
        other => other.to_owned(),
    }
}

fn parse_pkcs8(der: &[u8], origin: &str) -> Result<SigningKey, SignError> {
    let malformed = |reason: String| SignError::MalformedKey {
        origin: origin.to_owned(),
        reason,
    };
    let info = PrivateKeyInfoRef::try_from(der).map_err(|e| malformed(e.to_string()))?;
    let (oid, curve) = info.algorithm.oids().map_err(|e| malformed(e.to_string()))?;
    check_algorithm(oid, curve, origin)?;
    let secret = p256::SecretKey::try_from(info).map_err(|e| malformed(e.to_string()))?;
    Ok(SigningKey::from_inner(secret.into()))
}

fn parse_sec1(der: &[u8], origin: &str) -> Result<SigningKey, SignError> {
    let malformed = |reason: String| SignError::MalformedKey {
        origin: origin.to_owned(),
        reason,
    };
    let ec = sec1::EcPrivateKey::try_from(der).map_err(|e| malformed(e.to_string()))?;
    let curve = ec
        .parameters
        .as_ref()
        .map(|sec1::EcParameters::NamedCurve(oid)| *oid);
    check_algorithm(ID_EC_PUBLIC_KEY.parse().expect("a valid OID"), curve, origin)?;
    let secret = p256::SecretKey::from_sec1_der(der).map_err(|e| malformed(e.to_string()))?;
    Ok(SigningKey::from_inner(secret.into()))
}

fn parse_public_pem(text: &str, origin: &str) -> Result<PublicKey, SignError> {
    let blocks = pem_blocks(text);
    let Some(block) = blocks.first() else {
        return Err(SignError::NotPem {
            origin: origin.to_owned(),
        });
    };
    if block.label != "PUBLIC KEY" {
        return Err(SignError::UnexpectedPem {
            origin: origin.to_owned(),
            label: block.label.to_owned(),
            expected: "PUBLIC KEY",
        });
    }
    let der = decode_block(block, origin)?;
    let malformed = |reason: String| SignError::MalformedKey {
        origin: origin.to_owned(),
        reason,
    };
    let spki = pkcs8::spki::SubjectPublicKeyInfoRef::try_from(der.as_slice())
        .map_err(|e| malformed(e.to_string()))?;
    let (oid, curve) = spki.algorithm.oids().map_err(|e| malformed(e.to_string()))?;
    check_algorithm(oid, curve, origin)?;
    let key = p256::PublicKey::from_public_key_der(&der).map_err(|e| malformed(e.to_string()))?;
    Ok(PublicKey::from_inner(key.into()))
}
