//! Pulling images into a blob store, and fetching single manifests and
//! small blobs.

use std::io::Write;

use bake_digest::Digest;
use bake_store::BlobStore;
use futures_util::{StreamExt, TryStreamExt};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};

use crate::client::{Ctx, Host, Op, at_digest, network_failure};
use crate::manifest::{ACCEPT_MANIFESTS, Descriptor, Parsed, Platform};
use crate::progress::{Direction, Progress, Skip};
use crate::push::check_digest_header;
use crate::retry::{Deadline, Failure, with_retry};
use crate::{Reference, Registry, RegistryError};

/// Largest manifest accepted (the distribution spec suggests 4 MiB).
const MAX_MANIFEST: u64 = 4 << 20;
/// Largest blob [`Registry::fetch_blob`] reads into memory.
pub const MAX_FETCH_BLOB: u64 = 16 << 20;

/// A manifest as the registry served it, verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    pub digest: Digest,
    pub bytes: Vec<u8>,
    pub media_type: String,
}

/// What [`Registry::pull_image`] put in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The platform image manifest (a child of the index when the reference
    /// named an index).
    pub manifest_digest: Digest,
    pub manifest_bytes: Vec<u8>,
    pub media_type: String,
    /// The reference had no digest: its tag was resolved now, so the result
    /// may differ tomorrow. Pin `resolved_digest` to make it reproducible.
    pub resolved_from_tag: bool,
    /// What the reference points at: the index's digest for a multi-platform
    /// image, else `manifest_digest`.
    pub resolved_digest: Digest,
    /// The index the platform manifest was picked from, if any (it is stored too).
    pub index_digest: Option<Digest>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    /// Blobs downloaded now; the others were in the store already.
    pub downloaded: Vec<Digest>,
    /// Nothing was asked of the registry: the reference was pinned and the
    /// store had every object.
    pub offline: bool,
}

impl Registry {
    /// Pulls `reference` for `platform` into `store`: the manifest (and
    /// the index it came from), the config and the layers, each verified
    /// against its digest before it appears in the store, streamed to disk.
    /// Blobs already in the store are not downloaded, and a reference
    /// pinned by digest whose objects are all in the store is served
    /// without contacting the registry at all.
    pub async fn pull_image(
        &self,
        reference: &Reference,
        platform: &Platform,
        store: &BlobStore,
        progress: &dyn Progress,
    ) -> Result<Pulled, RegistryError> {
        if let Some(pulled) = self.pull_offline(reference, platform, store)? {
            for d in std::iter::once(&pulled.config).chain(&pulled.layers) {
                progress.skipped(&d.digest, d.size, Skip::Cached);
            }
            return Ok(pulled);
        }
        let host = self.host(reference.registry()).await?;
        let top = self.get_manifest(&host, reference, progress).await?;
        store_put(store, reference, &top.bytes)?;
        let (parsed, _) = Parsed::parse(&top.bytes, Some(&top.media_type), &reference.to_string())?;
        let (manifest, index_digest) = match parsed {
            Parsed::Index { manifests } => {
                let child = platform
                    .select(&manifests, |d| d.platform.as_ref())
                    .ok_or_else(|| platform_not_found(reference, platform, &manifests))?;
                let child_ref = reference.with_digest(child.digest.clone());
                let m = self.get_manifest(&host, &child_ref, progress).await?;
                check_manifest_size(&child_ref, child, m.bytes.len() as u64, "the registry sent")?;
                store_put(store, &child_ref, &m.bytes)?;
                (m, Some(top.digest.clone()))
            }
            Parsed::Image { .. } => (top.clone(), None),
        };
        let manifest_ref = reference.with_digest(manifest.digest.clone());
        let (config, layers) = match Parsed::parse(
            &manifest.bytes,
            Some(&manifest.media_type),
            &manifest_ref.to_string(),
        )?
        .0
        {
            Parsed::Image { config, layers } => (config, layers),
            Parsed::Index { .. } => {
                return Err(RegistryError::InvalidManifest {
                    reference: manifest_ref.to_string(),
                    reason: "an index inside an index is not supported for pulling".into(),
                });
            }
        };
        let mut blobs: Vec<&Descriptor> = Vec::new();
        for d in std::iter::once(&config).chain(&layers) {
            if !blobs.iter().any(|b| b.digest == d.digest) {
                blobs.push(d);
            }
        }
        let limit = self.inner.opts.max_concurrent_transfers.max(1);
        // Futures made before they enter the stream: a closure there would
        // make this future's `Send` unprovable for the compiler.
        let fetches: Vec<_> = blobs
            .into_iter()
            .map(|d| self.download_unless_cached(&host, reference, d, store, progress))
            .collect();
        let downloaded: Vec<Option<Digest>> = futures_util::stream::iter(fetches)
            .buffered(limit)
            .try_collect()
            .await?;
        Ok(Pulled {
            manifest_digest: manifest.digest,
            manifest_bytes: manifest.bytes,
            media_type: manifest.media_type,
            resolved_from_tag: reference.digest().is_none(),
            resolved_digest: top.digest,
            index_digest,
            config,
            layers,
            downloaded: downloaded.into_iter().flatten().collect(),
            offline: false,
        })
    }

    /// A pinned reference served from the store alone, if it can be.
    fn pull_offline(
        &self,
        reference: &Reference,
        platform: &Platform,
        store: &BlobStore,
    ) -> Result<Option<Pulled>, RegistryError> {
        let Some(top_digest) = reference.digest() else {
            return Ok(None);
        };
        let read = |d: &Digest| -> Option<Vec<u8>> {
            if store.has(d) {
                store.read_verified(d).ok()
            } else {
                None
            }
        };
        let Some(top) = read(top_digest) else {
            return Ok(None);
        };
        let shown = reference.to_string();
        let (parsed, media_type) = Parsed::parse(&top, None, &shown)?;
        let (manifest_digest, bytes, media_type, index_digest) = match parsed {
            Parsed::Index { manifests } => {
                let child = platform
                    .select(&manifests, |d| d.platform.as_ref())
                    .ok_or_else(|| platform_not_found(reference, platform, &manifests))?;
                let Some(bytes) = read(&child.digest) else {
                    return Ok(None);
                };
                let child_ref = reference.with_digest(child.digest.clone());
                check_manifest_size(&child_ref, child, bytes.len() as u64, "the store holds")?;
                (
                    child.digest.clone(),
                    bytes,
                    child.media_type.clone(),
                    Some(top_digest.clone()),
                )
            }
            Parsed::Image { .. } => (top_digest.clone(), top, media_type, None),
        };
        let (parsed, media_type) = Parsed::parse(&bytes, Some(&media_type), &shown)?;
        let Parsed::Image { config, layers } = parsed else {
            return Ok(None);
        };
        if !std::iter::once(&config)
            .chain(&layers)
            .all(|d| store.has(&d.digest))
        {
            return Ok(None);
        }
        for d in std::iter::once(&config).chain(&layers) {
            check_stored_size(store, reference, d, "blob")?;
        }
        Ok(Some(Pulled {
            manifest_digest,
            manifest_bytes: bytes,
            media_type,
            resolved_from_tag: false,
            resolved_digest: top_digest.clone(),
            index_digest,
            config,
            layers,
            downloaded: Vec::new(),
            offline: true,
        }))
    }

    /// The manifest (or index) `reference` names, verified: its bytes hash
    /// to the pinned digest, if any, and to the registry's
    /// `Docker-Content-Digest`, if sent.
    pub async fn fetch_manifest(&self, reference: &Reference) -> Result<FetchedManifest, RegistryError> {
        let host = self.host(reference.registry()).await?;
        self.get_manifest(&host, reference, &crate::NoProgress).await
    }

    /// What `reference` names, by digest, and the image manifest it gives
    /// `platform`: the same digest for an image manifest; for an index, the
    /// entry [`Platform::select`] picks (as [`Registry::pull_image`] does),
    /// or [`RegistryError::PlatformNotFound`] listing what it has. Only the
    /// top manifest is fetched (verified), not the child.
    pub async fn resolve_platform(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<(Digest, Digest), RegistryError> {
        let top = self.fetch_manifest(reference).await?;
        match Parsed::parse(&top.bytes, Some(&top.media_type), &reference.to_string())?.0 {
            Parsed::Index { manifests } => {
                let child = platform
                    .select(&manifests, |d| d.platform.as_ref())
                    .ok_or_else(|| platform_not_found(reference, platform, &manifests))?;
                Ok((top.digest.clone(), child.digest.clone()))
            }
            Parsed::Image { .. } => Ok((top.digest.clone(), top.digest)),
        }
    }

    /// What `reference` points at now, by digest (a HEAD request; a GET if
    /// the registry sends no `Docker-Content-Digest`).
    pub async fn resolve_digest(&self, reference: &Reference) -> Result<Digest, RegistryError> {
        if let Some(d) = reference.digest() {
            return Ok(d.clone());
        }
        let host = self.host(reference.registry()).await?;
        let shown = reference.to_string();
        let ctx = Ctx {
            action: "resolve",
            reference: &shown,
        };
        let url = self.url(
            &host,
            reference.repository(),
            &format!("manifests/{}", reference.manifest_path_part()),
        )?;
        let header = with_retry(self.policy(), &crate::NoProgress, "resolve", |_| async {
            let resp = self
                .send(&host, reference.repository(), Op::Pull, ctx, |c| {
                    c.head(url.clone()).header(ACCEPT, ACCEPT_MANIFESTS)
                })
                .await?;
            let resp = self.expect(&host, resp, &[StatusCode::OK], ctx).await?;
            Ok(resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<Digest>().ok()))
        })
        .await?;
        match header {
            Some(d) => Ok(d),
            None => Ok(self
                .get_manifest(&host, reference, &crate::NoProgress)
                .await?
                .digest),
        }
    }

    /// A small blob (a signature payload, a config) read into memory and
    /// verified; larger than [`MAX_FETCH_BLOB`] is an error.
    pub async fn fetch_blob(&self, reference: &Reference, digest: &Digest) -> Result<Vec<u8>, RegistryError> {
        let host = self.host(reference.registry()).await?;
        let shown = at_digest(reference, digest);
        let action = format!("fetch blob {} from", digest.short());
        let ctx = Ctx {
            action: &action,
            reference: &shown,
        };
        let url = self.url(&host, reference.repository(), &format!("blobs/{digest}"))?;
        with_retry(self.policy(), &crate::NoProgress, &action, |_| async {
            let deadline = Deadline::start(self.policy());
            let resp = self
                .send_within(&deadline, &host, reference.repository(), Op::Pull, ctx, |c| {
                    c.get(url.clone())
                })
                .await?;
            let resp = self.expect(&host, resp, &[StatusCode::OK], ctx).await?;
            let body = read_body(resp, &deadline, MAX_FETCH_BLOB, ctx, || {
                RegistryError::BlobTooLarge {
                    reference: reference.to_string(),
                    digest: digest.clone(),
                    size: MAX_FETCH_BLOB + 1,
                    limit: MAX_FETCH_BLOB,
                }
            })
            .await?;
            let actual = Digest::of(&body);
            if &actual != digest {
                return Err(Failure::fatal(RegistryError::DigestMismatch {
                    reference: shown.clone(),
                    what: "the blob's content".into(),
                    expected: digest.clone(),
                    actual: actual.to_string(),
                }));
            }
            Ok(body)
        })
        .await
    }

    async fn get_manifest(
        &self,
        host: &Host,
        reference: &Reference,
        progress: &dyn Progress,
    ) -> Result<FetchedManifest, RegistryError> {
        let shown = reference.to_string();
        let ctx = Ctx {
            action: "fetch manifest",
            reference: &shown,
        };
        let url = self.url(
            host,
            reference.repository(),
            &format!("manifests/{}", reference.manifest_path_part()),
        )?;
        with_retry(self.policy(), progress, "fetch manifest", |_| async {
            let deadline = Deadline::start(self.policy());
            let resp = self
                .send_within(&deadline, host, reference.repository(), Op::Pull, ctx, |c| {
                    c.get(url.clone()).header(ACCEPT, ACCEPT_MANIFESTS)
                })
                .await?;
            let resp = self.expect(host, resp, &[StatusCode::OK], ctx).await?;
            let media_type = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
                .unwrap_or_default();
            let header = resp.headers().get("docker-content-digest").cloned();
            let bytes = read_body(resp, &deadline, MAX_MANIFEST, ctx, || {
                RegistryError::InvalidManifest {
                    reference: shown.clone(),
                    reason: format!("larger than {MAX_MANIFEST} bytes"),
                }
            })
            .await?;
            let digest = Digest::of(&bytes);
            if let Some(pinned) = reference.digest() {
                if pinned != &digest {
                    return Err(Failure::fatal(RegistryError::DigestMismatch {
                        reference: shown.clone(),
                        what: "the manifest's content".into(),
                        expected: pinned.clone(),
                        actual: digest.to_string(),
                    }));
                }
            }
            check_digest_header(header.as_ref(), &digest, &shown, "the served manifest")?;
            let (_, media_type) = Parsed::parse(&bytes, Some(&media_type), &shown)?;
            Ok(FetchedManifest {
                digest,
                bytes,
                media_type,
            })
        })
        .await
    }

    async fn download_unless_cached(
        &self,
        host: &Host,
        reference: &Reference,
        blob: &Descriptor,
        store: &BlobStore,
        progress: &dyn Progress,
    ) -> Result<Option<Digest>, RegistryError> {
        if store.has(&blob.digest) {
            check_stored_size(store, reference, blob, "blob")?;
            progress.skipped(&blob.digest, blob.size, Skip::Cached);
            return Ok(None);
        }
        self.download(host, reference, blob, store, progress).await?;
        Ok(Some(blob.digest.clone()))
    }

    /// Streams one blob into the store through a blocking writer thread;
    /// nothing appears in the store unless it hashes to `blob.digest`.
    async fn download(
        &self,
        host: &Host,
        reference: &Reference,
        blob: &Descriptor,
        store: &BlobStore,
        progress: &dyn Progress,
    ) -> Result<(), RegistryError> {
        let digest = &blob.digest;
        let shown = reference.to_string();
        // Errors name the whole digest; progress lines the short one.
        let action = format!("download blob {digest} from");
        let what = format!("download blob {} from", digest.short());
        let ctx = Ctx {
            action: &action,
            reference: &shown,
        };
        let url = self.url(host, reference.repository(), &format!("blobs/{digest}"))?;
        let mismatch = |claimed_by: &'static str, claimed: u64, actual: String| {
            Failure::fatal(RegistryError::SizeMismatch {
                reference: shown.clone(),
                what: "blob",
                digest: digest.clone(),
                claimed_by,
                claimed,
                actual,
            })
        };
        with_retry(self.policy(), progress, &what, |_| async {
            let deadline = Deadline::start(self.policy());
            let resp = self
                .send_within(&deadline, host, reference.repository(), Op::Pull, ctx, |c| {
                    c.get(url.clone())
                })
                .await?;
            let resp = self.expect(host, resp, &[StatusCode::OK], ctx).await?;
            if let Some(n) = resp.content_length() {
                if n != blob.size {
                    return Err(mismatch(
                        "its descriptor",
                        blob.size,
                        format!("the registry's Content-Length is {n}"),
                    ));
                }
            }
            check_digest_header(
                resp.headers().get("docker-content-digest"),
                digest,
                &shown,
                "the served blob",
            )?;
            let store_err = |e: bake_store::StoreError| {
                Failure::fatal(RegistryError::Store {
                    action: action.clone(),
                    reference: shown.clone(),
                    source: e,
                })
            };
            let mut writer = store.writer().map_err(store_err)?;
            let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(8);
            let expected = digest.clone();
            let write_task = tokio::task::spawn_blocking(move || -> Result<u64, bake_store::StoreError> {
                while let Some(chunk) = rx.blocking_recv() {
                    writer.write_all(&chunk)?;
                }
                writer.finish_expecting(&expected)
            });
            progress.start(digest, blob.size, Direction::Download);
            let mut stream = resp.bytes_stream();
            let mut received: u64 = 0;
            let mut failure: Option<Failure> = None;
            loop {
                let next = deadline
                    .within(received, &action, &shown, async { Ok(stream.next().await) })
                    .await;
                let chunk = match next {
                    Ok(Some(chunk)) => chunk,
                    Ok(None) => break,
                    Err(f) => {
                        failure = Some(f);
                        break;
                    }
                };
                match chunk {
                    Ok(chunk) => {
                        received += chunk.len() as u64;
                        if received > blob.size {
                            failure = Some(mismatch(
                                "its descriptor",
                                blob.size,
                                format!("the registry sent at least {received}"),
                            ));
                            break;
                        }
                        progress.bytes(digest, received);
                        if tx.send(chunk).await.is_err() {
                            break; // the writer failed: its error is below
                        }
                    }
                    Err(e) => {
                        failure = Some(network_failure(e, ctx));
                        break;
                    }
                }
            }
            if failure.is_none() && received != blob.size {
                failure = Some(mismatch(
                    "its descriptor",
                    blob.size,
                    format!("the registry sent {received}"),
                ));
            }
            if let Some(f) = failure {
                // Dropping the writer's input and its result discards the temp file.
                drop(tx);
                let _ = write_task.await;
                return Err(f);
            }
            drop(tx);
            let written = write_task
                .await
                .map_err(|e| store_err(bake_store::StoreError::Io(std::io::Error::other(e.to_string()))))?;
            match written {
                Ok(_) => {}
                Err(bake_store::StoreError::DigestMismatch { actual, .. }) => {
                    return Err(Failure::fatal(RegistryError::DigestMismatch {
                        reference: shown.clone(),
                        what: "the blob's content".into(),
                        expected: digest.clone(),
                        actual: actual.to_string(),
                    }));
                }
                Err(e) => return Err(store_err(e)),
            }
            progress.done(digest);
            Ok(())
        })
        .await
    }
}

/// A blob the store holds (verified when it got there) must have the size
/// its descriptor gives.
fn check_stored_size(
    store: &BlobStore,
    reference: &Reference,
    d: &Descriptor,
    what: &'static str,
) -> Result<(), RegistryError> {
    let actual = store.size(&d.digest).map_err(|e| RegistryError::Store {
        action: format!("read {what} {} of", d.digest),
        reference: reference.to_string(),
        source: e,
    })?;
    if actual != d.size {
        return Err(RegistryError::SizeMismatch {
            reference: reference.to_string(),
            what,
            digest: d.digest.clone(),
            claimed_by: "its descriptor",
            claimed: d.size,
            actual: format!("the store holds {actual}"),
        });
    }
    Ok(())
}

/// An index entry's size must be the size of the manifest it names.
fn check_manifest_size(
    reference: &Reference,
    entry: &Descriptor,
    actual: u64,
    source: &str,
) -> Result<(), RegistryError> {
    if entry.size != actual {
        return Err(RegistryError::SizeMismatch {
            reference: reference.to_string(),
            what: "manifest",
            digest: entry.digest.clone(),
            claimed_by: "its index entry",
            claimed: entry.size,
            actual: format!("{source} {actual}"),
        });
    }
    Ok(())
}

fn store_put(store: &BlobStore, reference: &Reference, bytes: &[u8]) -> Result<Digest, RegistryError> {
    store.put_bytes(bytes).map_err(|e| RegistryError::Store {
        action: "store manifest of".into(),
        reference: reference.to_string(),
        source: e,
    })
}

fn platform_not_found(reference: &Reference, platform: &Platform, manifests: &[Descriptor]) -> RegistryError {
    let available: Vec<String> = manifests
        .iter()
        .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
        .collect();
    RegistryError::PlatformNotFound {
        reference: reference.to_string(),
        platform: platform.describe_unselected(manifests, |d| d.platform.as_ref()),
        available: if available.is_empty() {
            "no platforms listed".into()
        } else {
            available.join(", ")
        },
    }
}

/// The whole body, failing with `too_large()` past `limit` bytes, and
/// with a timeout when it does not keep up with `deadline`.
async fn read_body(
    resp: reqwest::Response,
    deadline: &Deadline,
    limit: u64,
    ctx: Ctx<'_>,
    too_large: impl Fn() -> RegistryError,
) -> Result<Vec<u8>, Failure> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(Failure::fatal(too_large()));
    }
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    loop {
        let moved = out.len() as u64;
        let next = deadline
            .within(moved, ctx.action, ctx.reference, async {
                Ok(stream.next().await)
            })
            .await?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| network_failure(e, ctx))?;
        out.extend_from_slice(&chunk);
        if out.len() as u64 > limit {
            return Err(Failure::fatal(too_large()));
        }
    }
    Ok(out)
}
