//! Pushing images from a blob store: blobs (HEAD, mount or streamed
//! upload) first, then manifests by digest, then tags.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bake_digest::{Digest, Hasher};
use bake_store::BlobStore;
use futures_util::{StreamExt, TryStreamExt};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, LOCATION};
use tokio::io::AsyncReadExt;

use crate::client::{Ctx, Host, Op, at_digest};
use crate::error::ApiErrors;
use crate::manifest::{Descriptor, Parsed};
use crate::progress::{Direction, Progress, Skip};
use crate::retry::{Deadline, Failure, with_retry};
use crate::{Reference, Registry, RegistryError};

const DIGEST_HEADER: &str = "docker-content-digest";

/// An image (or index, or any manifest) held in a local blob store: the
/// manifest's bytes and media type; everything it names is in `store`.
#[derive(Debug, Clone, Copy)]
pub struct LocalImage<'a> {
    pub store: &'a BlobStore,
    pub manifest: &'a [u8],
    pub media_type: &'a str,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PushReport {
    /// The digest of the pushed manifest (or index): pull `REPO@digest` to
    /// get exactly this image.
    pub digest: Digest,
    /// Every reference now pointing at `digest`: `REPO@digest`, then each tag.
    pub references: Vec<Reference>,
    /// Blobs sent over the network.
    pub uploaded: Vec<Digest>,
    /// Blobs linked from the `mount_from` repository.
    pub mounted: Vec<Digest>,
    /// Blobs the repository already had.
    pub skipped: Vec<Digest>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Uploaded,
    Mounted,
    Exists,
}

impl Registry {
    /// Pushes `image` to `target`'s repository and tags it with `target`'s
    /// tag (if any) and each of `tags`.
    ///
    /// Order is what keeps a failed push harmless: every blob is present
    /// before any manifest is sent, an index's child manifests before the
    /// index, and the manifest is stored by digest (and its
    /// `Docker-Content-Digest` checked) before any tag is set. A blob the
    /// repository has (HEAD) is not sent; else it is mounted from
    /// `mount_from` (a repository of the same registry) when given, else
    /// streamed from the store file, verified as it is read. If `target`
    /// has a digest, the manifest must have it.
    ///
    /// On a bearer-token registry the token is scoped to `target`'s
    /// repository only, so a registry that checks pull access to
    /// `mount_from` answers the mount with an upload session instead, and
    /// the blob is uploaded: slower, never wrong. A mount answered 404 is
    /// uploaded too.
    ///
    /// An upload whose session the registry lost (404 `BLOB_UPLOAD_UNKNOWN`,
    /// 404/400 `BLOB_UPLOAD_INVALID`: see [`session_lost`]) is tried again
    /// within the retry policy: HEAD the blob (it may have landed), else a
    /// new session and the whole blob again. When attempts run out, the
    /// error names the blob's digest, the reference and the registry's code
    /// and message, and no manifest or tag is sent.
    pub async fn push_image(
        &self,
        image: LocalImage<'_>,
        target: &Reference,
        tags: &[String],
        mount_from: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<PushReport, RegistryError> {
        let digest = Digest::of(image.manifest);
        if let Some(pinned) = target.digest() {
            if pinned != &digest {
                return Err(RegistryError::DigestMismatch {
                    reference: target.to_string(),
                    what: "the manifest to push".into(),
                    expected: pinned.clone(),
                    actual: digest.to_string(),
                });
            }
        }
        let tag_refs = tag_references(target, tags)?;
        let host = self.host(target.registry()).await?;
        let mut report = PushReport {
            digest: digest.clone(),
            references: vec![target.with_digest(digest.clone())],
            uploaded: Vec::new(),
            mounted: Vec::new(),
            skipped: Vec::new(),
        };
        self.push_tree(&host, image, target, mount_from, progress, &mut report)
            .await?;
        for r in tag_refs {
            let tag = r.tag().unwrap_or("latest").to_owned();
            self.put_manifest(
                &host,
                &r,
                &tag,
                image.manifest,
                image.media_type,
                &digest,
                progress,
            )
            .await?;
            report.references.push(r);
        }
        Ok(report)
    }

    /// Pushes a manifest whose blobs are already in the repository (a
    /// signature manifest, after its blobs, or a re-tag): by digest, then
    /// each tag. Returns its digest.
    pub async fn push_manifest_only(
        &self,
        target: &Reference,
        manifest: &[u8],
        media_type: &str,
        tags: &[String],
        progress: &dyn Progress,
    ) -> Result<Digest, RegistryError> {
        let digest = Digest::of(manifest);
        let tag_refs = tag_references(target, tags)?;
        let host = self.host(target.registry()).await?;
        let by_digest = target.with_digest(digest.clone());
        self.put_manifest(
            &host,
            &by_digest,
            &digest.to_string(),
            manifest,
            media_type,
            &digest,
            progress,
        )
        .await?;
        for r in tag_refs {
            let tag = r.tag().unwrap_or("latest").to_owned();
            self.put_manifest(&host, &r, &tag, manifest, media_type, &digest, progress)
                .await?;
        }
        Ok(digest)
    }

    /// Blobs, then children (for an index), then the manifest by digest.
    fn push_tree<'a>(
        &'a self,
        host: &'a Host,
        image: LocalImage<'a>,
        target: &'a Reference,
        mount_from: Option<&'a str>,
        progress: &'a dyn Progress,
        report: &'a mut PushReport,
    ) -> futures_util::future::BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let digest = Digest::of(image.manifest);
            let by_digest = target.with_digest(digest.clone());
            let (parsed, media_type) =
                Parsed::parse(image.manifest, Some(image.media_type), &by_digest.to_string())?;
            match &parsed {
                Parsed::Index { manifests } => {
                    for child in manifests {
                        if !image.store.has(&child.digest) {
                            // Not held locally (a platform we never pulled):
                            // fine if the repository already has it.
                            if self
                                .manifest_exists(host, target, &child.digest, progress)
                                .await?
                            {
                                continue;
                            }
                            return Err(RegistryError::Store {
                                action: "push child manifest to".into(),
                                reference: at_digest(target, &child.digest),
                                source: bake_store::StoreError::Missing(
                                    child.digest.clone(),
                                    image.store.path(&child.digest),
                                ),
                            });
                        }
                        let bytes =
                            image
                                .store
                                .read_verified(&child.digest)
                                .map_err(|e| RegistryError::Store {
                                    action: "push child manifest to".into(),
                                    reference: at_digest(target, &child.digest),
                                    source: e,
                                })?;
                        check_size(target, child, bytes.len() as u64, "manifest")?;
                        let child_image = LocalImage {
                            store: image.store,
                            manifest: &bytes,
                            media_type: &child.media_type,
                        };
                        self.push_tree(host, child_image, target, mount_from, progress, report)
                            .await?;
                    }
                }
                Parsed::Image { .. } => {
                    let blobs = parsed.blobs();
                    for d in &blobs {
                        let size = image.store.size(&d.digest).map_err(|e| RegistryError::Store {
                            action: "push blob to".into(),
                            reference: target.repository_ref().to_string(),
                            source: e,
                        })?;
                        check_size(target, d, size, "blob")?;
                    }
                    let limit = self.inner.opts.max_concurrent_transfers.max(1);
                    // The futures are made before they enter the stream, so no
                    // closure with borrowed arguments ends up in this boxed future.
                    let uploads: Vec<_> = blobs
                        .iter()
                        .map(|d| self.ensure_blob(host, image.store, target, d, mount_from, progress))
                        .collect();
                    let outcomes: Vec<Outcome> = futures_util::stream::iter(uploads)
                        .buffered(limit)
                        .try_collect()
                        .await?;
                    for (d, o) in blobs.iter().map(|b| b.digest.clone()).zip(outcomes) {
                        let list = match o {
                            Outcome::Uploaded => &mut report.uploaded,
                            Outcome::Mounted => &mut report.mounted,
                            Outcome::Exists => &mut report.skipped,
                        };
                        if !list.contains(&d) {
                            list.push(d);
                        }
                    }
                }
            }
            self.put_manifest(
                host,
                &by_digest,
                &digest.to_string(),
                image.manifest,
                &media_type,
                &digest,
                progress,
            )
            .await
        })
    }

    /// Makes `blob` present in `target`'s repository.
    async fn ensure_blob(
        &self,
        host: &Host,
        store: &BlobStore,
        target: &Reference,
        blob: &Descriptor,
        mount_from: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<Outcome, RegistryError> {
        let digest = &blob.digest;
        if self.blob_exists(host, target, digest, progress).await? {
            progress.skipped(digest, blob.size, Skip::Exists);
            return Ok(Outcome::Exists);
        }
        let reference = &target.to_string();
        // Errors name the whole digest; progress lines the short one.
        let action = &format!("upload blob {digest} to");
        let what = &format!("upload blob {} to", digest.short());
        let ctx = Ctx { action, reference };
        let repo = target.repository();
        let mount_from = mount_from.filter(|m| *m != repo);
        // Set once the registry answers a mount with 404: later attempts
        // upload without asking again.
        let mount_refused = &AtomicBool::new(false);
        let outcome = with_retry(self.policy(), progress, what, |attempt| async move {
            // The previous attempt may have landed before its answer was
            // lost, or before the registry forgot its upload session.
            if attempt > 1 && self.blob_exists_once(host, target, digest, ctx).await? {
                return Ok(Outcome::Exists);
            }
            let mount = mount_from.filter(|_| !mount_refused.load(Ordering::Relaxed));
            let (resp, mounting) = match self.open_session(host, repo, digest, mount, ctx).await {
                // A registry that cannot mount (no such source repository or
                // blob, or no read access to it) may say 404 instead of
                // opening a session: upload instead.
                Err(f) if mount.is_some() && f.error.status() == Some(404) => {
                    mount_refused.store(true, Ordering::Relaxed);
                    (self.open_session(host, repo, digest, None, ctx).await?, false)
                }
                other => (other?, mount.is_some()),
            };
            if resp.status() == StatusCode::CREATED && mounting {
                return Ok(Outcome::Mounted);
            }
            // 202: an upload session (also the answer to a mount the
            // registry could not do).
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    Failure::fatal(RegistryError::Status {
                        action: action.to_string(),
                        reference: reference.to_string(),
                        status: resp.status().as_u16(),
                        errors: ApiErrors::parse(b"no Location header for the upload session"),
                        attempts: 1,
                    })
                })?;
            let mut put = host.base.join(location).map_err(|e| {
                Failure::fatal(RegistryError::InvalidReference {
                    input: location.to_owned(),
                    reason: format!("the registry's upload location is not a URL: {e}"),
                })
            })?;
            if !crate::client::may_send_to(&put, &host.base, &self.inner.opts.insecure_registries) {
                return Err(Failure::fatal(RegistryError::InvalidReference {
                    input: crate::error::clean_text(location, 200),
                    reason: "the registry's upload location is plain HTTP to another host (our image would travel unencrypted)".into(),
                }));
            }
            put.query_pairs_mut().append_pair("digest", &digest.to_string());
            self.upload(host, store, target, blob, put, ctx, progress)
                .await
                .map_err(retry_lost_session)?;
            Ok(Outcome::Uploaded)
        })
        .await?;
        match outcome {
            Outcome::Uploaded => progress.done(digest),
            Outcome::Mounted => progress.skipped(digest, blob.size, Skip::Mounted),
            Outcome::Exists => progress.skipped(digest, blob.size, Skip::Exists),
        }
        Ok(outcome)
    }

    /// `POST …/blobs/uploads/` (with `mount=`/`from=` when `mount_from`):
    /// the answer, 202 (a session) or 201 (mounted).
    async fn open_session(
        &self,
        host: &Host,
        repo: &str,
        digest: &Digest,
        mount_from: Option<&str>,
        ctx: Ctx<'_>,
    ) -> Result<reqwest::Response, Failure> {
        let mut start = self.url(host, repo, "blobs/uploads/")?;
        if let Some(from) = mount_from {
            start
                .query_pairs_mut()
                .append_pair("mount", &digest.to_string())
                .append_pair("from", from);
        }
        let resp = self
            .send(host, repo, Op::Push, ctx, |c| {
                c.post(start.clone()).header(CONTENT_LENGTH, "0")
            })
            .await?;
        self.expect(host, resp, &[StatusCode::ACCEPTED, StatusCode::CREATED], ctx)
            .await
    }

    /// One monolithic PUT of the blob, streamed from the store file in
    /// 256 KiB chunks (memory does not grow with the blob) and hashed as it
    /// is read: content that does not match its digest aborts the request.
    #[allow(clippy::too_many_arguments)]
    async fn upload(
        &self,
        host: &Host,
        store: &BlobStore,
        target: &Reference,
        blob: &Descriptor,
        put: reqwest::Url,
        ctx: Ctx<'_>,
        progress: &dyn Progress,
    ) -> Result<(), Failure> {
        let digest = &blob.digest;
        let sent = Arc::new(AtomicU64::new(0));
        let local_error: Arc<Mutex<Option<io::Error>>> = Arc::new(Mutex::new(None));
        progress.start(digest, blob.size, Direction::Upload);
        let path = store.path(digest);
        // The registry must take the body at the policy's pace too: one
        // that reads a byte every few seconds is given up on.
        let deadline = Deadline::start(self.policy());
        let request = self.send_untimed(host, target.repository(), Op::Push, ctx, |c| {
            sent.store(0, Ordering::Relaxed);
            let body = file_body(
                path.clone(),
                digest.clone(),
                blob.size,
                sent.clone(),
                local_error.clone(),
            );
            c.put(put.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, blob.size)
                .body(body)
        });
        tokio::pin!(request);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let result = loop {
            tokio::select! {
                r = &mut request => break r,
                _ = tick.tick() => {
                    let moved = sent.load(Ordering::Relaxed);
                    progress.bytes(digest, moved);
                    if deadline.expired(moved) {
                        break Err(deadline.failure(ctx.action, ctx.reference, moved));
                    }
                }
            }
        };
        progress.bytes(digest, sent.load(Ordering::Relaxed));
        if let Some(e) = local_error.lock().map(|mut g| g.take()).unwrap_or(None) {
            // Our own store is at fault: no retry will help.
            return Err(Failure::fatal(RegistryError::Store {
                action: ctx.action.to_owned(),
                reference: ctx.reference.to_owned(),
                source: e.into(),
            }));
        }
        let resp = result?;
        let resp = self.expect(host, resp, &[StatusCode::CREATED], ctx).await?;
        check_digest_header(
            resp.headers().get(DIGEST_HEADER),
            digest,
            ctx.reference,
            "the uploaded blob",
        )?;
        Ok(())
    }

    /// HEAD the blob in `target`'s repository, with retries.
    pub(crate) async fn blob_exists(
        &self,
        host: &Host,
        target: &Reference,
        digest: &Digest,
        progress: &dyn Progress,
    ) -> Result<bool, RegistryError> {
        let reference = target.to_string();
        let action = format!("check for blob {} in", digest.short());
        let ctx = Ctx {
            action: &action,
            reference: &reference,
        };
        with_retry(self.policy(), progress, &action, |_| {
            self.blob_exists_once(host, target, digest, ctx)
        })
        .await
    }

    async fn blob_exists_once(
        &self,
        host: &Host,
        target: &Reference,
        digest: &Digest,
        ctx: Ctx<'_>,
    ) -> Result<bool, Failure> {
        let url = self.url(host, target.repository(), &format!("blobs/{digest}"))?;
        let resp = self
            .send(host, target.repository(), Op::Pull, ctx, |c| c.head(url.clone()))
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        self.expect(host, resp, &[StatusCode::OK], ctx).await?;
        Ok(true)
    }

    /// HEAD a manifest by digest, with retries.
    async fn manifest_exists(
        &self,
        host: &Host,
        target: &Reference,
        digest: &Digest,
        progress: &dyn Progress,
    ) -> Result<bool, RegistryError> {
        let reference = at_digest(target, digest);
        let action = "check for manifest";
        let ctx = Ctx {
            action,
            reference: &reference,
        };
        let url = self.url(host, target.repository(), &format!("manifests/{digest}"))?;
        with_retry(self.policy(), progress, action, |_| async {
            let resp = self
                .send(host, target.repository(), Op::Pull, ctx, |c| {
                    c.head(url.clone())
                        .header(reqwest::header::ACCEPT, crate::manifest::ACCEPT_MANIFESTS)
                })
                .await?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Ok(false);
            }
            self.expect(host, resp, &[StatusCode::OK], ctx).await?;
            Ok(true)
        })
        .await
    }

    /// PUT a manifest at `tag_or_digest`; the registry must answer with our digest.
    #[allow(clippy::too_many_arguments)]
    async fn put_manifest(
        &self,
        host: &Host,
        reference: &Reference,
        tag_or_digest: &str,
        bytes: &[u8],
        media_type: &str,
        digest: &Digest,
        progress: &dyn Progress,
    ) -> Result<(), RegistryError> {
        let shown = reference.to_string();
        let action = if reference.tag().is_some() {
            "tag manifest as"
        } else {
            "push manifest to"
        };
        let ctx = Ctx {
            action,
            reference: &shown,
        };
        let url = self.url(
            host,
            reference.repository(),
            &format!("manifests/{tag_or_digest}"),
        )?;
        let content_type = HeaderValue::from_str(media_type).map_err(|_| RegistryError::InvalidManifest {
            reference: shown.clone(),
            reason: format!("media type {media_type:?} is not a valid header value"),
        })?;
        let body = bytes::Bytes::copy_from_slice(bytes);
        with_retry(self.policy(), progress, action, |_| async {
            let resp = self
                .send(host, reference.repository(), Op::Push, ctx, |c| {
                    c.put(url.clone())
                        .header(CONTENT_TYPE, content_type.clone())
                        .body(body.clone())
                })
                .await?;
            let resp = self
                .expect(
                    host,
                    resp,
                    &[StatusCode::CREATED, StatusCode::OK, StatusCode::ACCEPTED],
                    ctx,
                )
                .await?;
            check_digest_header(
                resp.headers().get(DIGEST_HEADER),
                digest,
                &shown,
                "the pushed manifest",
            )?;
            Ok(())
        })
        .await
    }
}

/// Whether a registry's error answer to an upload request (the `PUT` or a
/// `PATCH` of a session) means it lost the session: restarted, purged the
/// upload, or a load balancer sent us to a node that never saw it. The
/// blob is then sent again, from its start, in a new session. Any other
/// 4xx (`NAME_UNKNOWN`, `DENIED`, `DIGEST_INVALID`, a 404 without a code,
/// …) is the registry's final word.
pub(crate) fn session_lost(status: u16, errors: &ApiErrors) -> bool {
    match status {
        404 => errors.has_code("BLOB_UPLOAD_UNKNOWN") || errors.has_code("BLOB_UPLOAD_INVALID"),
        400 => errors.has_code("BLOB_UPLOAD_INVALID"),
        _ => false,
    }
}

/// An upload failure that is a lost session becomes worth another attempt
/// (a new session, after a HEAD of the blob), within the retry policy.
fn retry_lost_session(failure: Failure) -> Failure {
    let lost = match &*failure.error {
        RegistryError::Status { status, errors, .. } => session_lost(*status, errors),
        _ => false,
    };
    if lost {
        Failure::transient(*failure.error, None)
    } else {
        failure
    }
}

/// The registry's `Docker-Content-Digest`, when it sends one, must be ours.
pub(crate) fn check_digest_header(
    value: Option<&HeaderValue>,
    expected: &Digest,
    reference: &str,
    what: &str,
) -> Result<(), Failure> {
    let Some(value) = value else { return Ok(()) };
    let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
    if text.trim() == expected.to_string() {
        return Ok(());
    }
    Err(Failure::fatal(RegistryError::DigestMismatch {
        reference: reference.to_owned(),
        what: what.to_owned(),
        expected: expected.clone(),
        actual: text,
    }))
}

/// A descriptor's size must be the size of the bytes the store holds for
/// it (`what`: "blob", "manifest").
fn check_size(
    target: &Reference,
    d: &Descriptor,
    actual: u64,
    what: &'static str,
) -> Result<(), RegistryError> {
    if d.size != actual {
        return Err(RegistryError::SizeMismatch {
            reference: target.to_string(),
            what,
            digest: d.digest.clone(),
            claimed_by: "its descriptor",
            claimed: d.size,
            actual: format!("the store holds {actual}"),
        });
    }
    Ok(())
}

/// `target`'s own tag, then `tags`, each once.
fn tag_references(target: &Reference, tags: &[String]) -> Result<Vec<Reference>, RegistryError> {
    let mut out: Vec<Reference> = Vec::new();
    for t in target.tag().into_iter().chain(tags.iter().map(String::as_str)) {
        let r = target.with_tag(t)?;
        if !out.contains(&r) {
            out.push(r);
        }
    }
    Ok(out)
}

/// The request body for an upload: the store file in chunks, hashed as it
/// goes; at its end, a digest or size mismatch fails the body (and so the
/// request) and is recorded in `local_error`.
fn file_body(
    path: std::path::PathBuf,
    digest: Digest,
    size: u64,
    sent: Arc<AtomicU64>,
    local_error: Arc<Mutex<Option<io::Error>>>,
) -> reqwest::Body {
    reqwest::Body::wrap_stream(file_stream(path, digest, size, sent, local_error))
}

fn file_stream(
    path: std::path::PathBuf,
    digest: Digest,
    size: u64,
    sent: Arc<AtomicU64>,
    local_error: Arc<Mutex<Option<io::Error>>>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, io::Error>> + Send + 'static {
    struct State {
        path: std::path::PathBuf,
        file: Option<tokio::fs::File>,
        hasher: Hasher,
        digest: Digest,
        size: u64,
        sent: Arc<AtomicU64>,
        local_error: Arc<Mutex<Option<io::Error>>>,
    }
    let state = State {
        path,
        file: None,
        hasher: Hasher::new(),
        digest,
        size,
        sent,
        local_error,
    };
    futures_util::stream::try_unfold(state, |mut st| async move {
        let fail = |st: &State, e: io::Error| {
            let copy = io::Error::new(e.kind(), e.to_string());
            if let Ok(mut g) = st.local_error.lock() {
                *g = Some(e);
            }
            copy
        };
        if st.file.is_none() {
            match tokio::fs::File::open(&st.path).await {
                Ok(f) => st.file = Some(f),
                Err(e) => {
                    let e = io::Error::new(e.kind(), format!("cannot open {}: {e}", st.path.display()));
                    return Err(fail(&st, e));
                }
            }
        }
        let mut buf = vec![0u8; 256 * 1024];
        let n = match st.file.as_mut() {
            Some(f) => f.read(&mut buf).await,
            None => Ok(0),
        };
        let n = match n {
            Ok(n) => n,
            Err(e) => return Err(fail(&st, e)),
        };
        if n == 0 {
            let (actual, len) = st.hasher.clone().finish();
            if actual != st.digest || len != st.size {
                let e = io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "blob {} in the store at {} is corrupt: {len} bytes hashing to {actual}",
                        st.digest,
                        st.path.display()
                    ),
                );
                return Err(fail(&st, e));
            }
            return Ok(None);
        }
        buf.truncate(n);
        st.hasher.update(&buf);
        if st.hasher.len() > st.size {
            let e = io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "blob {} in the store at {} grew past its size {}",
                    st.digest,
                    st.path.display(),
                    st.size
                ),
            );
            return Err(fail(&st, e));
        }
        st.sent.fetch_add(n as u64, Ordering::Relaxed);
        Ok(Some((bytes::Bytes::from(buf), st)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_deduplicated_and_validated() {
        let t: Reference = "127.0.0.1:5000/app:v1".parse().unwrap();
        let refs = tag_references(&t, &["v1".into(), "latest".into()]).unwrap();
        let shown: Vec<String> = refs.iter().map(|r| r.to_string()).collect();
        assert_eq!(shown, ["127.0.0.1:5000/app:v1", "127.0.0.1:5000/app:latest"]);
        assert!(tag_references(&t, &["bad tag".into()]).is_err());
    }

    #[test]
    fn digest_header_must_match() {
        let d = Digest::of(b"x");
        assert!(check_digest_header(None, &d, "r", "w").is_ok());
        let ok = HeaderValue::from_str(&d.to_string()).unwrap();
        assert!(check_digest_header(Some(&ok), &d, "r", "w").is_ok());
        let bad = HeaderValue::from_str(&Digest::of(b"y").to_string()).unwrap();
        let err = check_digest_header(Some(&bad), &d, "r", "the pushed manifest")
            .unwrap_err()
            .error;
        assert!(
            err.to_string()
                .starts_with("digest mismatch for the pushed manifest of r"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn file_body_fails_on_corrupt_store_content() {
        use futures_util::StreamExt as _;
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let d = store.put_bytes(b"good content").unwrap();
        std::fs::write(store.path(&d), b"evil content").unwrap();
        let err = Arc::new(Mutex::new(None));
        let stream = file_stream(
            store.path(&d),
            d.clone(),
            12,
            Arc::new(AtomicU64::new(0)),
            err.clone(),
        );
        futures_util::pin_mut!(stream);
        let mut failed = false;
        while let Some(item) = stream.next().await {
            if item.is_err() {
                failed = true;
            }
        }
        assert!(failed);
        let recorded = err.lock().unwrap().take().unwrap().to_string();
        assert!(recorded.contains("is corrupt"), "{recorded}");
    }

    fn errors(body: &str) -> ApiErrors {
        ApiErrors::parse(body.as_bytes())
    }

    fn one(code: &str) -> ApiErrors {
        errors(&format!(r#"{{"errors":[{{"code":"{code}","message":"m"}}]}}"#))
    }

    #[test]
    fn which_upload_answers_mean_a_lost_session() {
        // Lost: the registry forgot the session; a new one may work.
        assert!(session_lost(404, &one("BLOB_UPLOAD_UNKNOWN")));
        assert!(session_lost(404, &one("BLOB_UPLOAD_INVALID")));
        assert!(session_lost(400, &one("BLOB_UPLOAD_INVALID")));
        // Among other entries too.
        assert!(session_lost(
            404,
            &errors(r#"{"errors":[{"code":"UNKNOWN"},{"code":"BLOB_UPLOAD_UNKNOWN"}]}"#)
        ));
        // Permanent: the registry's final word.
        for code in [
            "NAME_UNKNOWN",
            "NAME_INVALID",
            "BLOB_UNKNOWN",
            "DIGEST_INVALID",
            "SIZE_INVALID",
            "DENIED",
            "UNSUPPORTED",
            "UNKNOWN",
        ] {
            assert!(!session_lost(404, &one(code)), "{code}");
            assert!(!session_lost(400, &one(code)), "{code}");
        }
        // The code must come with its status: BLOB_UPLOAD_UNKNOWN is a 404.
        assert!(!session_lost(400, &one("BLOB_UPLOAD_UNKNOWN")));
        assert!(!session_lost(403, &one("BLOB_UPLOAD_INVALID")));
        // A 404 without the API's body (a proxy's page) says nothing.
        assert!(!session_lost(404, &errors("<html>not found</html>")));
        assert!(!session_lost(404, &errors("")));
    }

    fn status_failure(status: u16, body: &str) -> Failure {
        Failure::fatal(RegistryError::Status {
            action: "upload blob x to".into(),
            reference: "r".into(),
            status,
            errors: errors(body),
            attempts: 1,
        })
    }

    #[test]
    fn only_lost_sessions_become_retryable() {
        use crate::retry::Retry;
        let lost = retry_lost_session(status_failure(
            404,
            r#"{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"blob upload unknown"}]}"#,
        ));
        assert_eq!(lost.retry, Retry::Yes { after: None });
        assert_eq!(lost.error.status(), Some(404));
        let name = retry_lost_session(status_failure(
            404,
            r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#,
        ));
        assert_eq!(name.retry, Retry::No);
        let store = retry_lost_session(Failure::fatal(RegistryError::InvalidManifest {
            reference: "r".into(),
            reason: "x".into(),
        }));
        assert_eq!(store.retry, Retry::No);
        // Already-transient failures stay transient.
        let busy = Failure::transient(
            RegistryError::Network {
                action: "a".into(),
                reference: "r".into(),
                reason: "reset".into(),
                attempts: 1,
            },
            None,
        );
        assert_eq!(retry_lost_session(busy).retry, Retry::Yes { after: None });
    }
}
