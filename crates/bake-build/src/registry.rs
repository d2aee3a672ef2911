//! Registry base images: `base = "REGISTRY/REPO@sha256:…"` is pulled into
//! the layout's store (verified, streamed, skipped when already there) and
//! then loaded like any other base, byte-for-byte.

use bake_digest::Digest;
use bake_image::{BaseImage, Descriptor, Platform};
use bake_registry::{NoProgress, Reference, Registry};

use crate::{BuildError, BuildSettings};

/// What a registry base reference resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedBase {
    /// The reference as written in the recipe.
    pub reference: String,
    /// What it points at (an index digest for multi-platform images).
    pub digest: Digest,
    /// The platform manifest used.
    pub manifest: Digest,
    /// The recipe named a tag only: this build may not be repeatable.
    pub from_tag: bool,
}

pub(crate) fn pull_base(
    reference: &str,
    pos: &str,
    platform: &Platform,
    store: &bake_store::BlobStore,
    settings: &BuildSettings,
) -> Result<(BaseImage, ResolvedBase), BuildError> {
    let rejected = |message: String| BuildError::BaseRejected {
        pos: pos.to_owned(),
        base: reference.to_owned(),
        message,
    };
    let registry_err = |e: bake_registry::RegistryError| rejected(e.to_string());
    let parsed: Reference = reference.parse().map_err(registry_err)?;
    if settings.locked && parsed.digest().is_none() {
        return Err(rejected(
            "--locked refuses a base that is not pinned by digest: write REPO@sha256:…".to_owned(),
        ));
    }
    let client = Registry::new(settings.registry.clone()).map_err(registry_err)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BuildError::Io)?;
    // An interrupt drops the pull: blobs in flight are temp files, removed
    // with it.
    let pulled = rt
        .block_on(async {
            tokio::select! {
                pulled = client.pull_image(&parsed, platform, store, &NoProgress) => Some(pulled),
                () = interrupted(&settings.interrupt) => None,
            }
        })
        .ok_or(BuildError::Interrupted)?
        .map_err(registry_err)?;
    let desc = Descriptor::new(
        &pulled.media_type,
        pulled.manifest_digest.clone(),
        pulled.manifest_bytes.len() as u64,
    );
    let base = bake_image::load_from_store(store, &desc, platform).map_err(|source| BuildError::Base {
        pos: pos.to_owned(),
        base: reference.to_owned(),
        source: Box::new(source),
    })?;
    Ok((
        base,
        ResolvedBase {
            reference: reference.to_owned(),
            digest: pulled.resolved_digest,
            manifest: pulled.manifest_digest,
            from_tag: pulled.resolved_from_tag,
        },
    ))
}

/// Completes when `interrupt` is raised (polled every [`bake_run::POLL`]).
pub(crate) async fn interrupted(interrupt: &crate::Interrupt) {
    while !interrupt.is_raised() {
        tokio::time::sleep(bake_run::POLL).await;
    }
}
