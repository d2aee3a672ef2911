//! The registry client: image references, credentials, pushing images from a
//! blob store, pulling them into one, and surviving flaky networks. This is
//! the only bake crate that touches the network.
//!
//! # Concepts
//!
//! * A [`Reference`] names an image in a registry:
//!   `[REGISTRY[:PORT]/]REPOSITORY[:TAG][@sha256:…]`, normalised like docker
//!   (`busybox` is `docker.io/library/busybox:latest`). A tag is a movable
//!   name; a digest pins exact bytes.
//! * A registry serves the distribution API: blobs (configs, layers) by
//!   digest, manifests by digest or tag. An *index* is a manifest listing
//!   one manifest per platform.
//! * **Push** ([`Registry::push_image`]) sends what a manifest names from a
//!   [`bake_store::BlobStore`]: each blob is HEADed first (skipped if
//!   present), else cross-repository *mounted* from a `mount_from`
//!   repository, else streamed from its store file. Manifests go after their
//!   blobs, by digest, and tags last, so a failed push never leaves a tag on
//!   an incomplete image. The registry's `Docker-Content-Digest` must match
//!   ours.
//! * **Pull** ([`Registry::pull_image`]) resolves a tag to a digest (and says
//!   so: [`Pulled::resolved_from_tag`]), picks the platform's manifest from
//!   an index, and streams config and layers into the store, verified; blobs
//!   already there are not downloaded, and a digest-pinned image wholly in
//!   the store needs no network at all. Every size is checked exactly, both
//!   ways: a descriptor's against the registry's `Content-Length`, the
//!   bytes received and a blob already in the store; an index entry's
//!   against the manifest it names; a `Content-Type` against the body's
//!   `mediaType`.
//! * **Credentials** come from a docker config directory the caller names
//!   ([`DockerConfig::load`]): `auths` entries, `credHelpers`/`credsStore`
//!   (`docker-credential-NAME get`); [`login`] writes them the same way.
//!   Bearer-token and basic challenges are both answered; a 401 refreshes
//!   the token once. Credentials never appear in errors or `Debug` output,
//!   and text a registry sends (error messages, details, bodies) is shown
//!   with anything that looks like a credential hidden (an echoed
//!   `Authorization` header, `token=…`, base64 of `user:password`) and
//!   control characters escaped. Credentials go to the registry's own
//!   origin and to its token realm only: reqwest drops `Authorization` on a
//!   redirect to another host, and a realm, redirect or upload `Location`
//!   that would step down from HTTPS to plain HTTP is refused.
//! * **Transport**: HTTPS, except plain HTTP for loopback registries
//!   (`127.0.0.0/8`, `localhost`, `::1`) and those the caller lists as
//!   insecure ([`uses_plain_http`]).
//! * **Retries** ([`RetryPolicy`]): connection errors, resets, timeouts,
//!   408, 429 and 5xx are retried with exponential backoff and jitter (or
//!   after the registry's `Retry-After`), bounded in attempts and time. Other
//!   statuses fail at once with the registry's own error code and message.
//!   Each request has a deadline that grows with the bytes it moves
//!   ([`RetryPolicy::request_timeout`], [`RetryPolicy::min_transfer_rate`]),
//!   so a registry trickling bytes cannot keep a build waiting.
//! * **Progress** ([`Progress`]): callbacks per blob (start, bytes, done,
//!   skipped, retrying); drawing bars is the CLI's business.
//!
//! # Example
//!
//! ```no_run
//! use bake_registry::{LocalImage, NoProgress, Platform, Reference, Registry, RegistryOptions, DockerConfig};
//! # async fn run(store: &bake_store::BlobStore, manifest: &[u8]) -> Result<(), bake_registry::RegistryError> {
//! let registry = Registry::new(RegistryOptions {
//!     docker_config: DockerConfig::load(std::path::Path::new("/home/me/.docker"))?,
//!     ..RegistryOptions::default()
//! })?;
//! let target: Reference = "127.0.0.1:5000/team/app:v1".parse()?;
//! let image = LocalImage { store, manifest, media_type: "application/vnd.oci.image.manifest.v1+json" };
//! let report = registry.push_image(image, &target, &["latest".into()], None, &NoProgress).await?;
//! println!("pushed {} ({} blobs uploaded)", report.digest, report.uploaded.len());
//!
//! let pulled = registry
//!     .pull_image(&target, &Platform::linux_amd64(), store, &NoProgress)
//!     .await?;
//! assert_eq!(pulled.manifest_digest, report.digest);
//! # Ok(()) }
//! ```
//!
//! # What oci-client does and what we do
//!
//! [`oci_client`] answers the registry's authentication challenge: it
//! reads `WWW-Authenticate` from `/v2/`, fetches a bearer token from the
//! realm with the credentials we resolved (or falls back to basic), and we
//! cache the resulting `Authorization` per repository and operation. The
//! reference grammar is its (oci-spec's). The distribution requests
//! themselves go through a reqwest client of the same version (one HTTP/TLS
//! stack), because each request method of oci-client 0.18 drops what our
//! policy needs from a response: on failure, its errors keep neither the
//! `Retry-After` header nor, for 4xx, the status (so 429 cannot be honoured
//! and 404 cannot be told from 400); `push_manifest_raw` does not return the
//! registry's `Docker-Content-Digest` (which we must verify); `mount_blob`
//! treats the spec's "202: mount not possible, here is an upload session"
//! as an error; `blob_exists` drops the body and headers of every non-404
//! failure; and manifest pulls do not return the `Content-Type`. It also has
//! no OAuth2 refresh-token grant, which docker's `identitytoken` needs: we
//! do that exchange ourselves.
//!
//! This crate reads no environment variable and no clock except to time
//! retries: the caller passes the docker config, the insecure registries,
//! the retry policy and the progress sink.

// Let chains would collapse these, but need Rust 1.88; the MSRV is 1.85.
#![allow(clippy::collapsible_if)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod auth;
mod client;
mod error;
mod login;
mod manifest;
mod progress;
mod pull;
mod push;
mod reference;
mod retry;

pub use auth::{Credentials, DockerConfig, login};
pub use client::{Registry, RegistryOptions, uses_plain_http};
pub use error::{ApiError, ApiErrors, RegistryError};
pub use login::LoginCheck;
pub use manifest::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, Descriptor, OCI_INDEX, OCI_MANIFEST, Platform};
pub use progress::{Direction, NoProgress, Progress, Skip};
pub use pull::{FetchedManifest, MAX_FETCH_BLOB, Pulled};
pub use push::{LocalImage, PushReport};
pub use reference::{DOCKER_HUB, Reference};
pub use retry::RetryPolicy;
