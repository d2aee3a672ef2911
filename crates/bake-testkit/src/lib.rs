//! Test harness for bake's integration tests (a dev-dependency only, never
//! part of the binary): a real registry on loopback, a proxy that injects
//! network faults and counts requests, and docker config files.
//!
//! * [`TestRegistry`] runs Debian's `docker-registry serve CONFIG` (the CNCF
//!   distribution registry) on `127.0.0.1` with its own config and temporary
//!   storage, optionally behind htpasswd basic auth, and kills it on drop.
//!   Clients talk to it through a counting [`FaultProxy`], so a test can
//!   assert "the second push uploaded no blob" from [`TestRegistry::count`].
//! * [`FaultProxy`] is an in-process HTTP/1.1 proxy in front of any
//!   upstream. A [`FaultPlan`] says which requests (by kind, by number, by
//!   path or digest) get which [`Fault`]: a dropped connection, a 500, a
//!   registry error body of our choosing ([`Fault::api_error`]), a 429 with
//!   `Retry-After`, a delay past the client's timeout, or a corrupted
//!   `Docker-Content-Digest`. It can also play a bearer-token registry
//!   ([`ProxyOptions::bearer`]) whose tokens expire after a few requests.
//! * [`write_docker_config`] writes a `config.json` with one `auths` entry.
//! * [`fixtures`]: a plain tar of files and a well-formed `.deb`.
//!
//! ```no_run
//! use bake_testkit::{Fault, FaultPlan, FaultProxy, RequestKind, TestRegistry, TestRegistryOptions};
//! let registry = TestRegistry::start(TestRegistryOptions::default()).unwrap();
//! let flaky = FaultProxy::start(
//!     &registry.direct_host(),
//!     FaultPlan::new().on(RequestKind::ManifestPut, Fault::Status(500), 2),
//! )
//! .unwrap();
//! // push to `flaky.host()`: the first two manifest PUTs fail, then it works.
//! assert_eq!(registry.count(RequestKind::BlobUploadPut), 0);
//! ```
//!
//! Everything listens on 127.0.0.1 only and stops when dropped.

// Let chains would collapse these, but need Rust 1.88; the MSRV is 1.85.
#![allow(clippy::collapsible_if)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod fixtures;
mod proxy;
mod registry;

pub use proxy::{BearerFront, Fault, FaultPlan, FaultProxy, Matcher, ProxyOptions, RequestKind};
pub use registry::{TestRegistry, TestRegistryOptions, write_docker_config};
