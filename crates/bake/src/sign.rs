//! `bake keygen`, `bake sign` and `bake verify`: cosign-compatible key-based
//! signatures of a manifest digest, stored beside the image as the
//! `sha256-<hex>.sig` manifest — in an OCI layout or in a registry.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use bake_digest::Digest;
use bake_image::{Descriptor, Layout};
use bake_sign::{Added, Payload, PublicKey, SigningKey, append_signature, sig_tag, verify_signatures};

use crate::cli::{KeygenArgs, SignArgs, VerifyArgs};
use crate::registry;
use crate::target::Target;

/// The password for a key file: `BAKE_PASSWORD` when set, else a prompt on a
/// terminal, else none. `confirm` asks twice (for new keys).
fn password(purpose: &str, confirm: bool) -> Result<Option<String>> {
    if let Some(p) = crate::env::Env::get().bake_password() {
        return Ok(Some(
            p.to_str()
                .ok_or_else(|| anyhow::anyhow!("BAKE_PASSWORD is not valid UTF-8"))?
                .to_owned(),
        ));
    }
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let first = rpassword::prompt_password(format!("password for {purpose}: "))?;
    if confirm {
        let again = rpassword::prompt_password("the same password again: ")?;
        if again != first {
            bail!("the passwords do not match");
        }
    }
    Ok(Some(first))
}

pub fn keygen(args: KeygenArgs) -> Result<()> {
    let prefix = args.output_prefix;
    let pw = if args.no_password {
        None
    } else {
        match password(&format!("{}.key", prefix.display()), true)? {
            Some(p) => Some(p),
            None => bail!(
                "no password for the new private key: set BAKE_PASSWORD, run on a terminal, or pass --no-password"
            ),
        }
    };
    let key = SigningKey::generate()?;
    let files = bake_sign::write_key_pair(&prefix, &key, pw.as_deref().map(str::as_bytes))?;
    eprintln!(
        "private key: {} (mode 0600{})",
        files.private_key.display(),
        if pw.is_some() {
            ", encrypted"
        } else {
            ", NOT encrypted"
        }
    );
    eprintln!("public key:  {}", files.public_key.display());
    println!("{}", key.key_id());
    Ok(())
}

pub fn load_signing_key(path: &Path) -> Result<SigningKey> {
    match SigningKey::read(path, None) {
        Ok(k) => Ok(k),
        Err(bake_sign::SignError::PasswordRequired { .. }) => {
            let Some(pw) = password(&path.display().to_string(), false)? else {
                bail!(
                    "{} is encrypted: set BAKE_PASSWORD or run on a terminal",
                    path.display()
                );
            };
            Ok(SigningKey::read(path, Some(pw.as_bytes()))?)
        }
        Err(e) => Err(e.into()),
    }
}

/// What signing did, for output.
pub struct Signed {
    pub manifest: Digest,
    pub identity: String,
    pub signature_tag: String,
    pub added: bool,
}

pub fn sign(args: SignArgs, registry_opts: registry::Options) -> Result<()> {
    let key = load_signing_key(&args.key)?;
    let signed = match Target::parse(&args.image)? {
        Target::Layout { dir, which } => {
            let identity = args.identity.clone().with_context(|| {
                format!("signing a layout needs --identity REPOSITORY: the repository the image will be pulled from (e.g. registry.example.com/team/{})",
                    dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
            })?;
            sign_layout(&dir, which.as_deref(), &identity, &key)?
        }
        Target::Registry(reference) => {
            registry::sign(&registry_opts, &reference, args.identity.as_deref(), &key)?
        }
    };
    report_signed(&signed, &key);
    Ok(())
}

pub fn report_signed(signed: &Signed, key: &SigningKey) {
    if signed.added {
        eprintln!(
            "signed {} for {} with key {}",
            signed.manifest,
            signed.identity,
            key.key_id()
        );
    } else {
        eprintln!(
            "{} is already signed for {} by key {}: nothing added",
            signed.manifest,
            signed.identity,
            key.key_id()
        );
    }
    eprintln!("signature: {}", signed.signature_tag);
}

/// Signs the manifest `which` names in the layout at `dir`, storing the
/// signature in the layout under the `.sig` tag.
pub fn sign_layout(dir: &Path, which: Option<&str>, identity: &str, key: &SigningKey) -> Result<Signed> {
    let layout = Layout::open(dir)?;
    let manifest = layout.resolve(which)?;
    let payload = Payload::new(identity, &manifest.digest)?.to_bytes();
    let signature = key.sign(&payload);
    let tag = sig_tag(&manifest.digest);
    let store = layout.store();
    let existing = match find_tag(&layout, &tag)? {
        Some(d) => {
            let m = store.read_verified(&d.digest)?;
            let config_digest = sig_config_digest(&m)?;
            Some((m, store.read_verified(&config_digest)?))
        }
        None => None,
    };
    let update = append_signature(
        existing.as_ref().map(|(m, c)| (m.as_slice(), c.as_slice())),
        &payload,
        &signature,
    )?;
    let added = update.added == Added::New;
    if added {
        store.put_bytes(&update.payload)?;
        store.put_bytes(&update.config)?;
        store.put_bytes(&update.manifest)?;
        let desc = Descriptor::new(
            bake_sign::OCI_MANIFEST_MEDIA_TYPE,
            update.manifest_digest,
            update.manifest.len() as u64,
        );
        layout.set_tags(&desc, std::slice::from_ref(&tag))?;
    }
    Ok(Signed {
        manifest: manifest.digest,
        identity: identity.to_owned(),
        signature_tag: tag,
        added,
    })
}

pub fn find_tag(layout: &Layout, tag: &str) -> Result<Option<Descriptor>> {
    Ok(layout.index()?.into_iter().find(|d| d.ref_name() == Some(tag)))
}

/// The config digest named by a `.sig` manifest.
pub fn sig_config_digest(manifest: &[u8]) -> Result<Digest> {
    let v: serde_json::Value = serde_json::from_slice(manifest).context("signature manifest is not JSON")?;
    let d = v["config"]["digest"]
        .as_str()
        .context("signature manifest has no config digest")?;
    Ok(d.parse()?)
}

pub fn verify(args: VerifyArgs, registry_opts: registry::Options) -> Result<()> {
    let key = PublicKey::read(&args.key)?;
    let expected_identity = |default: Option<String>| -> Result<Option<String>> {
        if args.any_identity {
            return Ok(None);
        }
        match args.identity.clone().or(default) {
            Some(i) => Ok(Some(i)),
            None => bail!(
                "verifying a layout needs --identity REPOSITORY (the repository the signature must name) or --any-identity"
            ),
        }
    };
    let (manifest, verified) = match Target::parse(&args.image)? {
        Target::Layout { dir, which } => {
            let identity = expected_identity(None)?;
            let layout = Layout::open(&dir)?;
            let manifest = layout.resolve(which.as_deref())?;
            let tag = sig_tag(&manifest.digest);
            let Some(sig) = find_tag(&layout, &tag)? else {
                bail!(
                    "{} in {} is not signed: the layout has no {tag} tag",
                    manifest.digest,
                    dir.display()
                );
            };
            let store = layout.store();
            let bytes = store.read_verified(&sig.digest)?;
            let v = verify_signatures(
                &key,
                &bytes,
                |d| store.read_verified(d),
                &manifest.digest,
                identity.as_deref(),
            )?;
            (manifest.digest, v)
        }
        Target::Registry(reference) => registry::verify(
            &registry_opts,
            &reference,
            &key,
            args.any_identity,
            args.identity.as_deref(),
        )?,
    };
    println!(
        "Verified OK: {manifest} signed by key {} for {}",
        verified.key_id, verified.docker_reference
    );
    Ok(())
}
