//! Integration tests against a real `docker-registry` on 127.0.0.1 (started
//! per test by bake-testkit), read back with skopeo, with faults injected
//! by an in-process proxy. Ignored by plain `cargo test`; run them with
//! `cargo xtask test` or `cargo test -p bake-registry -- --include-ignored`.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bake_digest::Digest;
use bake_registry::{
    Direction, DockerConfig, LocalImage, OCI_INDEX, OCI_MANIFEST, Platform, Progress, Reference, Registry,
    RegistryError, RegistryOptions, RetryPolicy, Skip,
};
use bake_store::BlobStore;
use bake_testkit::{
    BearerFront, Fault, FaultPlan, FaultProxy, Matcher, ProxyOptions, RequestKind, TestRegistry,
    write_docker_config,
};

// ---------------------------------------------------------------- helpers

/// Short retries so fault tests stay fast.
fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        max_elapsed: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(30),
        min_transfer_rate: 1024,
    }
}

fn client(docker_config: DockerConfig) -> Registry {
    Registry::new(RegistryOptions {
        docker_config,
        retry: fast_retry(),
        ..RegistryOptions::default()
    })
    .unwrap()
}

fn anonymous() -> Registry {
    client(DockerConfig::default())
}

fn start_registry() -> TestRegistry {
    TestRegistry::start(bake_testkit::TestRegistryOptions::default()).expect("start docker-registry")
}

fn new_store() -> (tempfile::TempDir, BlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    (dir, store)
}

/// A small, valid image made by hand: one gzip layer holding one file, a
/// config naming its diffID, and a manifest.
struct Image {
    manifest: Vec<u8>,
    digest: Digest,
    config: Digest,
    layer: Digest,
}

impl Image {
    fn local<'a>(&'a self, store: &'a BlobStore) -> LocalImage<'a> {
        LocalImage {
            store,
            manifest: &self.manifest,
            media_type: OCI_MANIFEST,
        }
    }
}

fn make_image(store: &BlobStore, content: &str, arch: &str) -> Image {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_path("hello.txt").unwrap();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    tar.append(&header, content.as_bytes()).unwrap();
    let tar = tar.into_inner().unwrap();
    let diff_id = Digest::of(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    gz.write_all(&tar).unwrap();
    let layer_bytes = gz.finish().unwrap();
    let layer = store.put_bytes(&layer_bytes).unwrap();
    let config_bytes = serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
    }))
    .unwrap();
    let config = store.put_bytes(&config_bytes).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": config_bytes.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer.to_string(), "size": layer_bytes.len()}],
    }))
    .unwrap();
    let digest = store.put_bytes(&manifest).unwrap();
    Image {
        manifest,
        digest,
        config,
        layer,
    }
}

fn reference(host: &str, repo_tag: &str) -> Reference {
    format!("{host}/{repo_tag}").parse().unwrap()
}

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo").args(args).output().expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Records progress events as text.
#[derive(Default)]
struct Events(Mutex<Vec<String>>);

impl Events {
    fn list(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn count(&self, prefix: &str) -> usize {
        self.list().iter().filter(|e| e.starts_with(prefix)).count()
    }
}

impl Progress for Events {
    fn start(&self, digest: &Digest, size: u64, direction: Direction) {
        self.0
            .lock()
            .unwrap()
            .push(format!("start {direction:?} {} {size}", digest.short()));
    }
    fn done(&self, digest: &Digest) {
        self.0.lock().unwrap().push(format!("done {}", digest.short()));
    }
    fn skipped(&self, digest: &Digest, _size: u64, reason: Skip) {
        self.0
            .lock()
            .unwrap()
            .push(format!("skipped {reason:?} {}", digest.short()));
    }
    fn retrying(&self, what: &str, attempt: u32, delay: Duration, reason: &str) {
        self.0
            .lock()
            .unwrap()
            .push(format!("retrying {what} #{attempt} after {delay:?}: {reason}"));
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    std::fs::read(a).unwrap() == std::fs::read(b).unwrap()
}

// ---------------------------------------------------------------- push

#[tokio::test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
async fn push_then_skopeo_reads_the_same_digest() {
    let reg = start_registry();
    let (_d, store) = new_store();
    let image = make_image(&store, "hello from bake\n", "amd64");
    let target = reference(&reg.host(), "team/app:v1");
    let events = Events::default();
    let report = anonymous()
        .push_image(image.local(&store), &target, &["latest".into()], None, &events)
        .await
        .unwrap();
    assert_eq!(report.digest, image.digest);
    assert_eq!(report.uploaded, vec![image.config.clone(), image.layer.clone()]);
    assert!(report.skipped.is_empty() && report.mounted.is_empty());
    let shown: Vec<String> = report.references.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        shown,
        [
            format!("{}/team/app@{}", reg.host(), image.digest),
            format!("{}/team/app:v1", reg.host()),
            format!("{}/team/app:latest", reg.host()),
        ]
    );
    assert_eq!(events.count("done"), 2, "{:?}", events.list());

    let mut tags = reg.tags("team/app").unwrap();
    tags.sort();
    assert_eq!(tags, ["latest", "v1"]);

    let inspect = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{target}")]);
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Digest"], image.digest.to_string());
    assert_eq!(inspect["Layers"][0], image.layer.to_string());

    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("layout");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{target}"),
        &format!("oci:{}:v1", layout.display()),
    ]);
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], image.digest.to_string());
    assert!(same_file(
        &layout.join("blobs/sha256").join(image.layer.hex()),
        &store.path(&image.layer)
    ));
}

#[tokio::test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
async fn second_push_of_an_unchanged_image_uploads_no_blob() {
    let reg = start_registry();
    let (_d, store) = new_store();
    let image = make_image(&store, "twice\n", "amd64");
    let target = reference(&reg.host(), "app:v1");
    let registry = anonymous();
    let first = registry
        .push_image(
            image.local(&store),
            &target,
            &[],
            None,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(reg.count(RequestKind::BlobUploadPut), 2);

    reg.reset_counts();
    // A fresh client: nothing cached in memory either.
    let events = Events::default();
    let second = anonymous()
        .push_image(image.local(&store), &target, &[], None, &events)
        .await
        .unwrap();
    assert_eq!(second.digest, first.digest);
    assert!(second.uploaded.is_empty(), "{second:?}");
    assert_eq!(second.skipped, vec![image.config.clone(), image.layer.clone()]);
    for kind in [
        RequestKind::BlobUploadStart,
        RequestKind::BlobUploadPatch,
        RequestKind::BlobUploadPut,
        RequestKind::BlobMount,
    ] {
        assert_eq!(reg.count(kind), 0, "{kind:?}: {:?}", reg.proxy().log());
    }
    assert_eq!(reg.count(RequestKind::BlobHead), 2);
    assert_eq!(events.count("skipped Exists"), 2);
}

#[tokio::test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
async fn blobs_are_mounted_from_another_repository() {
    let reg = start_registry();
    let (_d, store) = new_store();
    let image = make_image(&store, "mount me\n", "amd64");
    let registry = anonymous();
    registry
        .push_image(
            image.local(&store),
            &reference(&reg.host(), "base:v1"),
            &[],
            None,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap();
    reg.reset_counts();
    let report = registry
        .push_image(
            image.local(&store),
            &reference(&reg.host(), "derived:v1"),
            &[],
            Some("base"),
            &bake_registry::NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(report.mounted, vec![image.config.clone(), image.layer.clone()]);
    assert!(report.uploaded.is_empty());
    assert_eq!(reg.count(RequestKind::BlobMount), 2);
    assert_eq!(reg.count(RequestKind::BlobUploadPut), 0);
    assert_eq!(reg.tags("derived").unwrap(), ["v1"]);

    // A mount source that lacks the blobs falls back to an upload.
    reg.reset_counts();
    let other = make_image(&store, "not in base\n", "amd64");
    let report = registry
        .push_image(
            other.local(&store),
            &reference(&reg.host(), "derived:v2"),
            &[],
            Some("base"),
            &bake_registry::NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(report.uploaded, vec![other.config.clone(), other.layer.clone()]);
    assert_eq!(reg.count(RequestKind::BlobUploadPut), 2);
}

#[tokio::test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
async fn pushing_to_a_digest_reference_checks_the_digest_and_helpers_work() {
    let reg = start_registry();
    let (_d, store) = new_store();
    let image = make_image(&store, "helpers\n", "amd64");
    let registry = anonymous();
    let wrong = reference(&reg.host(), "app").with_digest(Digest::of(b"other"));
    let err = registry
        .push_image(image.local(&store), &wrong, &[], None, &bake_registry::NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    assert_eq!(reg.proxy().total(), 0, "nothing sent for a mismatched digest");

    let target = reference(&reg.host(), "app:v1");
    registry
        .push_image(
            image.local(&store),
            &target,
            &[],
            None,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(registry.resolve_digest(&target).await.unwrap(), image.digest);
    let fetched = registry.fetch_manifest(&target).await.unwrap();
    assert_eq!(
        (fetched.digest.clone(), fetched.media_type.as_str()),
        (image.digest.clone(), OCI_MANIFEST)
    );
    assert_eq!(fetched.bytes, image.manifest);
    let config = registry.fetch_blob(&target, &image.config).await.unwrap();
    assert_eq!(Digest::of(&config), image.config);
    let d = registry
        .push_manifest_only(
            &target,
            &image.manifest,
            OCI_MANIFEST,
            &["again".into()],
            &bake_registry::NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(d, image.digest);
    let mut tags = reg.tags("app").unwrap();
    tags.sort();
    assert_eq!(tags, ["again", "v1"]);

    let missing = reference(&reg.host(), "app:nope");
    let err = registry.fetch_manifest(&missing).await.unwrap_err();
    let text = err.to_string();
    eprintln!("error: {text}");
    assert!(
        text.contains("app:nope") && text.contains("404") && text.contains("MANIFEST_UNKNOWN"),
        "{text}"
    );
}

// ---------------------------------------------------------------- pull

#[tokio::test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
async fn pull_by_tag_and_by_digest_reuses_blobs_byte_for_byte() {
    let reg = start_registry();
    let (_d, src) = new_store();
    let image = make_image(&src, "base layer\n", "amd64");
    let registry = anonymous();
    let tagged = reference(&reg.host(), "base:1.0");
    registry
        .push_image(image.local(&src), &tagged, &[], None, &bake_registry::NoProgress)
        .await
        .unwrap();

    let amd64: Platform = "linux/amd64".parse().unwrap();
    let (_d2, dst) = new_store();
    let events = Events::default();
    let pulled = registry.pull_image(&tagged, &amd64, &dst, &events).await.unwrap();
    assert!(pulled.resolved_from_tag);
    assert!(!pulled.offline);
    assert_eq!(pulled.manifest_digest, image.digest);
    assert_eq!(pulled.resolved_digest, image.digest);
    assert_eq!(pulled.manifest_bytes, image.manifest);
    assert_eq!(pulled.media_type, OCI_MANIFEST);
    assert_eq!(pulled.downloaded, vec![image.config.clone(), image.layer.clone()]);
    for d in [&image.digest, &image.config, &image.layer] {
        assert!(same_file(&src.path(d), &dst.path(d)), "{d} differs");
    }
    assert_eq!(events.count("start Download"), 2);

    // Again by tag: the registry is asked for the manifest, but no blob is downloaded.
    reg.reset_counts();
    let again = registry.pull_image(&tagged, &amd64, &dst, &events).await.unwrap();
    assert!(again.downloaded.is_empty());
    assert_eq!(reg.count(RequestKind::BlobGet), 0);

    // Pinned by digest and all in the store: no request at all.
    reg.reset_counts();
    let pinned = tagged.with_digest(image.digest.clone());
    let offline = registry.pull_image(&pinned, &amd64, &dst, &events).await.unwrap();
    assert!(offline.offline && !offline.resolved_from_tag);
    assert_eq!(offline.manifest_digest, image.digest);
    assert_eq!(reg.proxy().total(), 0, "{:?}", reg.proxy().log());

    // Pinned by digest into a fresh store: fetched and verified.
    let (_d3, fresh) = new_store();
    let by_digest = registry
        .pull_image(&pinned, &amd64, &fresh, &events)
        .await
        .unwrap();
    assert!(!by_digest.resolved_from_tag);
    assert_eq!(by_digest.downloaded.len(), 2);
    assert!(same_file(&src.path(&image.layer), &fresh.path(&image.layer)));
}

#[tokio::test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
async fn an_index_is_pushed_children_first_and_pulled_for_linux_amd64() {
    let reg = start_registry();
    let (_d, src) = new_store();
    let amd = make_image(&src, "amd64 bits\n", "amd64");
    let arm = make_image(&src, "arm64 bits\n", "arm64");
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": arm.digest.to_string(), "size": arm.manifest.len(),
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"mediaType": OCI_MANIFEST, "digest": amd.digest.to_string(), "size": amd.manifest.len(),
             "platform": {"os": "linux", "architecture": "amd64"}},
        ],
    }))
    .unwrap();
    let index_digest = src.put_bytes(&index).unwrap();
    let registry = anonymous();
    let target = reference(&reg.host(), "multi:v1");
    let report = registry
        .push_image(
            LocalImage {
                store: &src,
                manifest: &index,
                media_type: OCI_INDEX,
            },
            &target,
            &[],
            None,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(report.digest, index_digest);
    assert_eq!(report.uploaded.len(), 4);
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{target}"),
    ]);
    assert_eq!(raw.as_bytes(), index.as_slice());

    let (_d2, dst) = new_store();
    let pulled = registry
        .pull_image(
            &target,
            &"linux/amd64".parse().unwrap(),
            &dst,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, amd.digest);
    assert_eq!(pulled.index_digest, Some(index_digest.clone()));
    assert_eq!(pulled.resolved_digest, index_digest);
    assert!(pulled.resolved_from_tag);
    assert_eq!(
        dst.read_verified(&index_digest).unwrap(),
        index,
        "the index is stored too"
    );
    assert!(dst.has(&amd.layer) && !dst.has(&arm.layer));

    let err = registry
        .pull_image(
            &target,
            &"linux/s390x".parse().unwrap(),
            &dst,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    eprintln!("error: {text}");
    assert!(
        text.contains("linux/s390x") && text.contains("linux/arm64/v8, linux/amd64"),
        "{text}"
    );

    // resolve_platform (what `bake lock` pins) picks the entry pull_image
    // pulled, with the same error for a platform the index lacks.
    assert_eq!(
        registry
            .resolve_platform(&target, &"linux/amd64".parse().unwrap())
            .await
            .unwrap(),
        (index_digest.clone(), amd.digest.clone())
    );
    assert_eq!(
        registry
            .resolve_platform(&target, &"linux/arm64".parse().unwrap())
            .await
            .unwrap()
            .1,
        arm.digest
    );
    let resolve_err = registry
        .resolve_platform(&target, &"linux/s390x".parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(resolve_err.to_string(), text);
    let single = reference(&reg.host(), &format!("multi@{}", amd.digest));
    assert_eq!(
        registry
            .resolve_platform(&single, &"linux/amd64".parse().unwrap())
            .await
            .unwrap(),
        (amd.digest.clone(), amd.digest.clone())
    );

    // Pinned to the index and now in the store: served offline.
    reg.reset_counts();
    let offline = registry
        .pull_image(
            &target.with_digest(index_digest),
            &"linux/amd64".parse().unwrap(),
            &dst,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap();
    assert!(offline.offline);
    assert_eq!(offline.manifest_digest, amd.digest);
    assert_eq!(reg.proxy().total(), 0);
}

// ---------------------------------------------------------------- auth

fn auth_registry() -> TestRegistry {
    TestRegistry::start(bake_testkit::TestRegistryOptions {
        htpasswd: Some(("builder".into(), "c0rrect-h0rse".into())),
    })
    .expect("start docker-registry with htpasswd")
}

#[tokio::test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
async fn basic_auth_with_the_right_credentials_from_a_docker_config() {
    let reg = auth_registry();
    let cfg_dir = tempfile::tempdir().unwrap();
    write_docker_config(cfg_dir.path(), &reg.host(), "builder", "c0rrect-h0rse").unwrap();
    let registry = client(DockerConfig::load(cfg_dir.path()).unwrap());
    let (_d, store) = new_store();
    let image = make_image(&store, "secret stuff\n", "amd64");
    let target = reference(&reg.host(), "private:v1");
    let report = registry
        .push_image(
            image.local(&store),
            &target,
            &[],
            None,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(report.digest, image.digest);
    assert_eq!(reg.tags("private").unwrap(), ["v1"]);
    let (_d2, dst) = new_store();
    let pulled = registry
        .pull_image(
            &target,
            &"linux/amd64".parse().unwrap(),
            &dst,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, image.digest);
    let inspect = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        "builder:c0rrect-h0rse",
        &format!("docker://{target}"),
    ]);
    assert!(inspect.contains(&image.digest.to_string()));
}

#[tokio::test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
async fn wrong_or_missing_credentials_give_a_clear_401_and_no_tag() {
    let reg = auth_registry();
    let (_d, store) = new_store();
    let image = make_image(&store, "nope\n", "amd64");
    let target = reference(&reg.host(), "private:v1");

    let cfg_dir = tempfile::tempdir().unwrap();
    let password = "Wr0ng-Passw0rd-xyzzy";
    write_docker_config(cfg_dir.path(), &reg.host(), "builder", password).unwrap();
    let err = client(DockerConfig::load(cfg_dir.path()).unwrap())
        .push_image(
            image.local(&store),
            &target,
            &[],
            None,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    let text = err.to_string();
    eprintln!("error: {text}");
    assert!(text.contains(&reg.host()) && text.contains("401"), "{text}");
    assert!(
        text.contains("config.json"),
        "names where the credentials came from: {text}"
    );
    let encoded = {
        use std::io::Read;
        let mut b = Vec::new();
        std::fs::File::open(cfg_dir.path().join("config.json"))
            .unwrap()
            .read_to_end(&mut b)
            .unwrap();
        String::from_utf8(b).unwrap()
    };
    let auth_field = encoded.split('"').nth(7).unwrap_or("").to_owned();
    for shown in [text.clone(), format!("{err:?}")] {
        assert!(!shown.contains(password), "password leaked: {shown}");
        assert!(
            auth_field.len() > 8 && !shown.contains(&auth_field),
            "encoded credentials leaked: {shown}"
        );
    }
    assert_eq!(reg.tags("private").unwrap(), Vec::<String>::new());
    assert_eq!(reg.count(RequestKind::ManifestPut), 0);

    let err = anonymous()
        .push_image(
            image.local(&store),
            &target,
            &[],
            None,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    eprintln!("error: {text}");
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert!(
        text.contains("no docker config") && text.contains("401"),
        "{text}"
    );
    let err = anonymous()
        .pull_image(
            &target,
            &"linux/amd64".parse().unwrap(),
            &store,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    assert_eq!(reg.tags("private").unwrap(), Vec::<String>::new());
}

#[tokio::test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
async fn bearer_tokens_are_fetched_and_refreshed_after_a_401() {
    let reg = start_registry();
    let front = FaultProxy::start_with(
        &reg.direct_host(),
        FaultPlan::new(),
        ProxyOptions {
            bearer: Some(BearerFront {
                username: "ci".into(),
                password: "t0ken-pass".into(),
                token_uses: 3,
                refresh_token: Some("refresh-abc123".into()),
            }),
        },
    )
    .unwrap();
    let cfg_dir = tempfile::tempdir().unwrap();
    write_docker_config(cfg_dir.path(), &front.host(), "ci", "t0ken-pass").unwrap();
    let registry = client(DockerConfig::load(cfg_dir.path()).unwrap());
    let (_d, store) = new_store();
    let image = make_image(&store, "bearer\n", "amd64");
    let target = reference(&front.host(), "tok/app:v1");
    let report = registry
        .push_image(
            image.local(&store),
            &target,
            &["latest".into()],
            None,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(report.digest, image.digest);
    // Each token lasts 3 requests: the push needed several, each after a 401.
    assert!(front.tokens_issued() >= 3, "{:?}", front.log());
    let (_d2, dst) = new_store();
    let pulled = registry
        .pull_image(
            &target,
            &"linux/amd64".parse().unwrap(),
            &dst,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, image.digest);

    write_docker_config(cfg_dir.path(), &front.host(), "ci", "not-the-pass").unwrap();
    let err = client(DockerConfig::load(cfg_dir.path()).unwrap())
        .pull_image(
            &target,
            &"linux/amd64".parse().unwrap(),
            &dst,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    eprintln!("error: {text}");
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{text}");
    assert!(
        text.contains("token service") && !text.contains("not-the-pass"),
        "{text}"
    );

    // docker's identitytoken: an OAuth2 refresh token exchanged at the realm.
    std::fs::write(
        cfg_dir.path().join("config.json"),
        format!(
            r#"{{"auths": {{"{}": {{"identitytoken": "refresh-abc123"}}}}}}"#,
            front.host()
        ),
    )
    .unwrap();
    let issued = front.tokens_issued();
    let (_d3, dst3) = new_store();
    let pulled = client(DockerConfig::load(cfg_dir.path()).unwrap())
        .pull_image(
            &target,
            &"linux/amd64".parse().unwrap(),
            &dst3,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, image.digest);
    assert!(front.tokens_issued() > issued);
    assert!(
        front.log().iter().any(|l| l == "POST /token -> 200"),
        "{:?}",
        front.log()
    );
}

#[tokio::test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
async fn large_blobs_stream_both_ways() {
    let reg = start_registry();
    let (_d, store) = new_store();
    // 9 MiB of incompressible bytes: many 256 KiB chunks each way.
    let mut big = Vec::with_capacity(9 << 20);
    let mut x: u32 = 1;
    while big.len() < 9 << 20 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        big.extend_from_slice(&x.to_le_bytes());
    }
    let layer = store.put_bytes(&big).unwrap();
    let config = store
        .put_bytes(br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#)
        .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": store.size(&config).unwrap()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.to_string(), "size": big.len()}],
    }))
    .unwrap();
    let target = reference(&reg.host(), "big:v1");
    let events = Events::default();
    let image = LocalImage {
        store: &store,
        manifest: &manifest,
        media_type: OCI_MANIFEST,
    };
    anonymous()
        .push_image(image, &target, &[], None, &events)
        .await
        .unwrap();
    let (_d2, dst) = new_store();
    anonymous()
        .pull_image(&target, &"linux/amd64".parse().unwrap(), &dst, &events)
        .await
        .unwrap();
    assert!(same_file(&store.path(&layer), &dst.path(&layer)));
    let started = format!("start Upload {} {}", layer.short(), big.len());
    assert_eq!(events.count(&started), 1, "{:?}", events.list());
}

// ---------------------------------------------------------------- faults

#[tokio::test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
async fn transient_faults_are_retried_and_the_push_succeeds() {
    let reg = start_registry();
    let plan = FaultPlan::new()
        .on(RequestKind::BlobHead, Fault::Drop, 1)
        .on(
            RequestKind::BlobUploadStart,
            Fault::Delay(Duration::from_millis(1500)),
            1,
        )
        .on(RequestKind::BlobUploadPut, Fault::Status(500), 1)
        .on(
            RequestKind::ManifestPut,
            Fault::TooManyRequests { retry_after_secs: 1 },
            1,
        )
        // Windows are per rule: let the first manifest PUT through this one, fail the second.
        .rule(
            Matcher::Kind(RequestKind::ManifestPut),
            Fault::Status(503),
            1,
            Some(1),
        );
    let flaky = FaultProxy::start(&reg.direct_host(), plan).unwrap();
    let (_d, store) = new_store();
    let image = make_image(&store, "flaky network\n", "amd64");
    let target = reference(&flaky.host(), "app:v1");
    let events = Events::default();
    let start = Instant::now();
    let report = anonymous()
        .push_image(image.local(&store), &target, &[], None, &events)
        .await
        .unwrap();
    assert_eq!(report.digest, image.digest);
    assert_eq!(flaky.faults_injected(), 5, "{:?}", flaky.log());
    let retries: Vec<String> = events
        .list()
        .into_iter()
        .filter(|e| e.starts_with("retrying"))
        .collect();
    assert!(retries.len() >= 5, "{retries:?}");
    assert!(retries.iter().any(|r| r.contains("timed out")), "{retries:?}");
    assert!(
        retries
            .iter()
            .any(|r| r.contains("after 1s") && r.contains("429")),
        "Retry-After honoured: {retries:?}"
    );
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert_eq!(reg.tags("app").unwrap(), ["v1"]);
    let inspect = skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{}/app:v1", reg.host()),
    ]);
    assert!(inspect.contains(&image.digest.to_string()));
}

#[tokio::test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
async fn transient_faults_during_pull_are_retried() {
    let reg = start_registry();
    let (_d, src) = new_store();
    let image = make_image(&src, "pull through faults\n", "amd64");
    let target = reference(&reg.host(), "app:v1");
    anonymous()
        .push_image(image.local(&src), &target, &[], None, &bake_registry::NoProgress)
        .await
        .unwrap();
    let flaky = FaultProxy::start(
        &reg.direct_host(),
        FaultPlan::new()
            .on(RequestKind::ManifestGet, Fault::Status(502), 1)
            .on(RequestKind::BlobGet, Fault::Drop, 2),
    )
    .unwrap();
    let (_d2, dst) = new_store();
    let pulled = anonymous()
        .pull_image(
            &reference(&flaky.host(), "app:v1"),
            &"linux/amd64".parse().unwrap(),
            &dst,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, image.digest);
    assert_eq!(flaky.faults_injected(), 3);
    assert!(same_file(&src.path(&image.layer), &dst.path(&image.layer)));
}

#[tokio::test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
async fn a_permanent_failure_stops_cleanly_and_leaves_no_tag() {
    let reg = start_registry();
    let (_d, store) = new_store();
    let image = make_image(&store, "never lands\n", "amd64");

    // Blob uploads always fail: the manifest is never sent.
    let broken_blobs = FaultProxy::start(
        &reg.direct_host(),
        FaultPlan::new().always(RequestKind::BlobUploadPut, Fault::Status(500)),
    )
    .unwrap();
    let err = anonymous()
        .push_image(
            image.local(&store),
            &reference(&broken_blobs.host(), "app:v1"),
            &[],
            None,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    eprintln!("error: {text}");
    assert!(
        text.contains("upload blob")
            && text.contains("/app:v1:")
            && text.contains("500")
            && text.contains("UNKNOWN: fault injected")
            && text.contains("gave up after 4 attempts"),
        "{text}"
    );
    assert_eq!(broken_blobs.count(RequestKind::ManifestPut), 0);
    assert_eq!(reg.tags("app").unwrap(), Vec::<String>::new());

    // Manifest pushes always fail: blobs land, no tag does.
    let broken_manifests = FaultProxy::start(
        &reg.direct_host(),
        FaultPlan::new().always(RequestKind::ManifestPut, Fault::Status(500)),
    )
    .unwrap();
    let err = anonymous()
        .push_image(
            image.local(&store),
            &reference(&broken_manifests.host(), "app:v1"),
            &[],
            None,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(500), "{err}");
    assert_eq!(broken_manifests.count(RequestKind::ManifestPut), 4);
    assert_eq!(reg.tags("app").unwrap(), Vec::<String>::new());

    // A non-retryable status is not retried.
    let forbidden = FaultProxy::start(
        &reg.direct_host(),
        FaultPlan::new().always(RequestKind::BlobHead, Fault::Status(403)),
    )
    .unwrap();
    let err = anonymous()
        .push_image(
            image.local(&store),
            &reference(&forbidden.host(), "app:v1"),
            &[],
            None,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
    // At most one HEAD per blob (they run concurrently), none repeated.
    assert!(
        forbidden.count(RequestKind::BlobHead) <= 2,
        "{:?}",
        forbidden.log()
    );
    assert!(!err.to_string().contains("attempts"), "{err}");
}

#[tokio::test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
async fn a_wrong_digest_from_the_registry_is_detected() {
    let reg = start_registry();
    let (_d, store) = new_store();
    let image = make_image(&store, "tampered\n", "amd64");
    let corrupt = FaultProxy::start(
        &reg.direct_host(),
        FaultPlan::new().on(RequestKind::ManifestPut, Fault::CorruptDigest, 1),
    )
    .unwrap();
    let err = anonymous()
        .push_image(
            image.local(&store),
            &reference(&corrupt.host(), "app:v1"),
            &[],
            None,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    let text = err.to_string();
    eprintln!("error: {text}");
    assert!(
        text.contains(&image.digest.to_string()) && text.contains("sha256:0000000000"),
        "{text}"
    );
    assert_eq!(
        reg.tags("app").unwrap(),
        Vec::<String>::new(),
        "no tag after a mismatch"
    );

    // On pull, a served manifest whose header disagrees with its bytes is refused.
    anonymous()
        .push_image(
            image.local(&store),
            &reference(&reg.host(), "app:v1"),
            &[],
            None,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap();
    corrupt.set_plan(FaultPlan::new().always(RequestKind::ManifestGet, Fault::CorruptDigest));
    let (_d2, dst) = new_store();
    let err = anonymous()
        .pull_image(
            &reference(&corrupt.host(), "app:v1"),
            &"linux/amd64".parse().unwrap(),
            &dst,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    assert!(!dst.has(&image.layer));
}

// ---------------------------------------------------------------- lost upload sessions

/// A PUT of this blob's upload session (the digest is only in its query).
fn upload_put_of(blob: &Digest) -> Matcher {
    Matcher::All(vec![
        Matcher::Kind(RequestKind::BlobUploadPut),
        Matcher::UriContains(blob.hex().to_owned()),
    ])
}

fn upload_unknown() -> Fault {
    Fault::api_error(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
}

#[tokio::test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
async fn a_lost_upload_session_is_reopened_and_the_push_completes() {
    let reg = start_registry();
    let (_d, store) = new_store();
    let image = make_image(&store, "session lost once\n", "amd64");
    // The registry forgets the layer's first upload session (restarted,
    // purged it, or another node behind a load balancer got the PUT).
    let flaky = FaultProxy::start(
        &reg.direct_host(),
        FaultPlan::new().rule(upload_put_of(&image.layer), upload_unknown(), 0, Some(1)),
    )
    .unwrap();
    let target = reference(&flaky.host(), "app:v1");
    let events = Events::default();
    let report = anonymous()
        .push_image(image.local(&store), &target, &[], None, &events)
        .await
        .unwrap();
    assert_eq!(report.digest, image.digest, "same manifest digest");
    assert_eq!(report.uploaded, vec![image.config.clone(), image.layer.clone()]);
    assert_eq!(flaky.faults_injected(), 1, "{:?}", flaky.log());
    // A new session for the layer, and the whole layer again.
    assert_eq!(flaky.count(RequestKind::BlobUploadStart), 3, "{:?}", flaky.log());
    assert_eq!(flaky.count(RequestKind::BlobUploadPut), 3, "{:?}", flaky.log());
    let retries: Vec<String> = events
        .list()
        .into_iter()
        .filter(|e| e.starts_with("retrying"))
        .collect();
    assert!(
        retries.len() == 1
            && retries[0].contains(&format!("upload blob {}", image.layer.short()))
            && retries[0].contains("BLOB_UPLOAD_UNKNOWN"),
        "{retries:?}"
    );
    assert_eq!(reg.tags("app").unwrap(), ["v1"]);
    // The image pulls back complete, byte for byte.
    let (_d2, dst) = new_store();
    let pulled = anonymous()
        .pull_image(
            &reference(&reg.host(), "app:v1"),
            &"linux/amd64".parse().unwrap(),
            &dst,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, image.digest);
    for d in [&image.digest, &image.config, &image.layer] {
        assert!(same_file(&store.path(d), &dst.path(d)), "{d} differs");
    }
}

#[tokio::test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
async fn an_upload_session_lost_every_time_fails_naming_the_blob_and_sets_no_tag() {
    let reg = start_registry();
    let (_d, store) = new_store();
    let image = make_image(&store, "session always lost\n", "amd64");
    let lossy = FaultProxy::start(
        &reg.direct_host(),
        FaultPlan::new().rule(upload_put_of(&image.layer), upload_unknown(), 0, None),
    )
    .unwrap();
    let err = anonymous()
        .push_image(
            image.local(&store),
            &reference(&lossy.host(), "app:v1"),
            &["latest".to_owned()],
            None,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    eprintln!("error: {text}");
    assert_eq!(err.status(), Some(404), "{err}");
    assert!(
        text.contains(&format!("upload blob {} to", image.layer))
            && text.contains("/app:v1:")
            && text.contains("404 Not Found: BLOB_UPLOAD_UNKNOWN: blob upload unknown to registry")
            && text.contains("gave up after 4 attempts"),
        "{text}"
    );
    // Bounded by the retry policy: 4 sessions for the layer, each checked
    // for a landed blob first (the first HEAD, then one per retry).
    let layer_puts = lossy
        .log()
        .iter()
        .filter(|l| l.starts_with("PUT ") && l.contains("fault"))
        .count();
    assert_eq!(layer_puts, 4, "{:?}", lossy.log());
    assert_eq!(lossy.count(RequestKind::ManifestPut), 0);
    assert_eq!(reg.manifest_status("app", "v1").unwrap(), 404);
    assert_eq!(reg.manifest_status("app", "latest").unwrap(), 404);
    assert_eq!(
        reg.manifest_status("app", &image.digest.to_string()).unwrap(),
        404
    );
    assert_eq!(reg.tags("app").unwrap(), Vec::<String>::new());
}

#[tokio::test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
async fn other_404s_are_final_with_the_registrys_detail_and_a_refused_mount_uploads() {
    let reg = start_registry();
    let (_d, store) = new_store();
    let image = make_image(&store, "name unknown\n", "amd64");

    // NAME_UNKNOWN on opening a session: not retried, message and detail shown.
    let unknown = FaultProxy::start(
        &reg.direct_host(),
        FaultPlan::new().always(
            RequestKind::BlobUploadStart,
            Fault::api_error_with_detail(
                404,
                "NAME_UNKNOWN",
                "repository name not known to registry",
                serde_json::json!({ "name": "app" }),
            ),
        ),
    )
    .unwrap();
    let err = anonymous()
        .push_image(
            image.local(&store),
            &reference(&unknown.host(), "app:v1"),
            &[],
            None,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    eprintln!("error: {text}");
    assert!(
        text.contains(
            r#"404 Not Found: NAME_UNKNOWN: repository name not known to registry (detail: {"name":"app"})"#
        ) && text.contains("upload blob sha256:")
            && !text.contains("attempts"),
        "{text}"
    );
    // One session asked per blob (they run concurrently), none repeated.
    assert!(
        unknown.count(RequestKind::BlobUploadStart) <= 2,
        "{:?}",
        unknown.log()
    );
    assert_eq!(unknown.count(RequestKind::BlobUploadPut), 0);
    assert_eq!(reg.manifest_status("app", "v1").unwrap(), 404);

    // A mount answered 404 falls back to a plain upload, asked once per blob.
    let no_mount = FaultProxy::start(
        &reg.direct_host(),
        FaultPlan::new().always(
            RequestKind::BlobMount,
            Fault::api_error(404, "BLOB_UNKNOWN", "blob unknown to registry"),
        ),
    )
    .unwrap();
    let report = anonymous()
        .push_image(
            image.local(&store),
            &reference(&no_mount.host(), "app:v1"),
            &[],
            Some("base"),
            &bake_registry::NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(report.digest, image.digest);
    assert_eq!(report.uploaded, vec![image.config.clone(), image.layer.clone()]);
    assert!(report.mounted.is_empty());
    assert_eq!(no_mount.count(RequestKind::BlobMount), 2, "{:?}", no_mount.log());
    assert_eq!(no_mount.count(RequestKind::BlobUploadStart), 2);
    assert_eq!(reg.manifest_status("app", "v1").unwrap(), 200);
}

// ---------------------------------------------------------------- lying sizes

/// The image's manifest with the size of its config (`"config"`) or layer
/// (`"layer"`) changed by `delta`.
fn lying_manifest(store: &BlobStore, image: &Image, which: &str, delta: i64) -> (Vec<u8>, u64) {
    let mut m: serde_json::Value = serde_json::from_slice(&image.manifest).unwrap();
    let slot = match which {
        "config" => &mut m["config"]["size"],
        _ => &mut m["layers"][0]["size"],
    };
    let real = slot.as_u64().unwrap();
    let claimed = (real as i64 + delta) as u64;
    *slot = serde_json::json!(claimed);
    let bytes = serde_json::to_vec(&m).unwrap();
    store.put_bytes(&bytes).unwrap();
    (bytes, real)
}

/// Serves `body` for the tag `lie` of `app` (the real registry behind for the rest).
fn serve_as_lie(reg: &TestRegistry, body: &[u8]) -> FaultProxy {
    FaultProxy::start(
        &reg.direct_host(),
        FaultPlan::new().rule(
            Matcher::PathContains("/app/manifests/lie".into()),
            Fault::Respond {
                status: 200,
                body: String::from_utf8(body.to_vec()).unwrap(),
            },
            0,
            None,
        ),
    )
    .unwrap()
}

fn assert_size_mismatch(err: &RegistryError, digest: &Digest, claimed: u64, actual: u64) {
    let text = err.to_string();
    eprintln!("error: {text}");
    assert!(matches!(err, RegistryError::SizeMismatch { .. }), "{text}");
    assert!(
        text.contains(&digest.to_string())
            && text.contains(&format!("gives {claimed} bytes"))
            && text.contains(&actual.to_string()),
        "{text}"
    );
}

#[tokio::test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
async fn sizes_that_lie_up_or_down_in_a_served_manifest_are_refused() {
    let reg = start_registry();
    let (_d, store) = new_store();
    let image = make_image(&store, "honest bytes, lying sizes\n", "amd64");
    anonymous()
        .push_image(
            image.local(&store),
            &reference(&reg.host(), "app:v1"),
            &[],
            None,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap();
    let amd64: Platform = "linux/amd64".parse().unwrap();
    for (which, blob) in [("layer", &image.layer), ("config", &image.config)] {
        for delta in [1000, -1, 1] {
            let (lie, real) = lying_manifest(&store, &image, which, delta);
            let proxy = serve_as_lie(&reg, &lie);
            let claimed = (real as i64 + delta) as u64;
            // Downloaded now: the registry's Content-Length and the bytes
            // are the truth, the descriptor is not.
            let (_d2, dst) = new_store();
            let err = anonymous()
                .pull_image(
                    &reference(&proxy.host(), "app:lie"),
                    &amd64,
                    &dst,
                    &bake_registry::NoProgress,
                )
                .await
                .unwrap_err();
            assert_size_mismatch(&err, blob, claimed, real);
            assert!(
                !dst.has(blob),
                "{which} {delta}: a blob with a lying size was stored"
            );
            // Already in the store: its size is checked all the same.
            let (_d3, cached) = new_store();
            for d in [&image.config, &image.layer] {
                cached.put_bytes(&store.read_verified(d).unwrap()).unwrap();
            }
            let err = anonymous()
                .pull_image(
                    &reference(&proxy.host(), "app:lie"),
                    &amd64,
                    &cached,
                    &bake_registry::NoProgress,
                )
                .await
                .unwrap_err();
            assert_size_mismatch(&err, blob, claimed, real);
            assert!(err.to_string().contains("the store holds"), "{err}");
            // Pinned and wholly in the store (no network): the same.
            cached.put_bytes(&lie).unwrap();
            let pinned = reference(&reg.host(), "app").with_digest(Digest::of(&lie));
            let err = anonymous()
                .pull_image(&pinned, &amd64, &cached, &bake_registry::NoProgress)
                .await
                .unwrap_err();
            assert_size_mismatch(&err, blob, claimed, real);
        }
    }
}

#[tokio::test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
async fn an_index_entry_whose_size_lies_is_refused() {
    let reg = start_registry();
    let (_d, store) = new_store();
    let image = make_image(&store, "index entry lies\n", "amd64");
    anonymous()
        .push_image(
            image.local(&store),
            &reference(&reg.host(), "app:v1"),
            &[],
            None,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap();
    let amd64: Platform = "linux/amd64".parse().unwrap();
    let real = image.manifest.len() as u64;
    for claimed in [real + 1000, real - 1] {
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{
                "mediaType": OCI_MANIFEST,
                "digest": image.digest.to_string(),
                "size": claimed,
                "platform": {"architecture": "amd64", "os": "linux"},
            }],
        }))
        .unwrap();
        let proxy = serve_as_lie(&reg, &index);
        let (_d2, dst) = new_store();
        let err = anonymous()
            .pull_image(
                &reference(&proxy.host(), "app:lie"),
                &amd64,
                &dst,
                &bake_registry::NoProgress,
            )
            .await
            .unwrap_err();
        assert_size_mismatch(&err, &image.digest, claimed, real);
        assert!(err.to_string().contains("its index entry"), "{err}");
        assert!(!dst.has(&image.layer));
        // Pinned and in the store: the same, without the registry.
        dst.put_bytes(&index).unwrap();
        dst.put_bytes(&image.manifest).unwrap();
        for d in [&image.config, &image.layer] {
            dst.put_bytes(&store.read_verified(d).unwrap()).unwrap();
        }
        let pinned = reference("127.0.0.1:9", "app").with_digest(Digest::of(&index));
        let err = anonymous()
            .pull_image(&pinned, &amd64, &dst, &bake_registry::NoProgress)
            .await
            .unwrap_err();
        assert_size_mismatch(&err, &image.digest, claimed, real);
    }
}

#[tokio::test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
async fn a_push_whose_descriptor_sizes_lie_sends_nothing() {
    let reg = start_registry();
    let (_d, store) = new_store();
    let image = make_image(&store, "push lies\n", "amd64");
    for which in ["layer", "config"] {
        for delta in [1000, -1] {
            let (lie, real) = lying_manifest(&store, &image, which, delta);
            let blob = if which == "layer" {
                &image.layer
            } else {
                &image.config
            };
            let err = anonymous()
                .push_image(
                    LocalImage {
                        store: &store,
                        manifest: &lie,
                        media_type: OCI_MANIFEST,
                    },
                    &reference(&reg.host(), "app:v1"),
                    &[],
                    None,
                    &bake_registry::NoProgress,
                )
                .await
                .unwrap_err();
            assert_size_mismatch(&err, blob, (real as i64 + delta) as u64, real);
            assert_eq!(reg.manifest_status("app", "v1").unwrap(), 404);
        }
    }
}

// ---------------------------------------------------------------- secrets in error bodies

#[tokio::test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
async fn credentials_echoed_in_a_registry_error_body_are_not_shown() {
    use base64::Engine as _;
    let reg = start_registry();
    let password = "s3cret-pa55word";
    let token = "eyJhbGciOi.tok3n-value";
    let cfg_dir = tempfile::tempdir().unwrap();
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("builder:{password}"));
    let bodies = [
        // The distribution envelope, the header echoed in message and detail.
        serde_json::json!({"errors": [{
            "code": "DENIED",
            "message": format!("denied: request had Authorization: Basic {pair}"),
            "detail": {"request": {"headers": {"Authorization": [format!("Bearer {token}")]}}},
        }]})
        .to_string(),
        serde_json::json!({"errors": [{
            "code": "DENIED",
            "message": format!("bad request {{\"authorization\":\"Bearer {token}\"}} token={token}&access_token={token}"),
            "detail": format!("user builder sent {pair}"),
        }]})
        .to_string(),
        // A proxy's page, not the API's JSON.
        format!("<html><pre>Authorization: Basic {pair}\nAuthorization: Bearer {token}\n?access_token={token}</pre></html>"),
        format!(r#"{{"headers":{{"authorization":"Basic {pair}"}},"password":"{password}"}}"#),
    ];
    for body in bodies {
        let proxy = FaultProxy::start(
            &reg.direct_host(),
            FaultPlan::new().always(
                RequestKind::ManifestGet,
                Fault::Respond {
                    status: 403,
                    body: body.clone(),
                },
            ),
        )
        .unwrap();
        write_docker_config(cfg_dir.path(), &proxy.host(), "builder", password).unwrap();
        let (_d, dst) = new_store();
        let err = client(DockerConfig::load(cfg_dir.path()).unwrap())
            .pull_image(
                &reference(&proxy.host(), "app:v1"),
                &"linux/amd64".parse().unwrap(),
                &dst,
                &bake_registry::NoProgress,
            )
            .await
            .unwrap_err();
        let text = format!("{err} {err:?}");
        eprintln!("error: {err}");
        assert_eq!(err.status(), Some(403), "{text}");
        for secret in [password, token, pair.as_str()] {
            assert!(!text.contains(secret), "{secret} shown for {body}: {text}");
        }
        assert!(text.contains("<redacted>"), "{text}");
        assert!(!err.to_string().contains('\n'), "{text}");
    }
}

// ---------------------------------------------------------------- deadlines

#[tokio::test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
async fn a_registry_trickling_bytes_times_out_instead_of_hanging() {
    let reg = start_registry();
    let (_d, store) = new_store();
    let image = make_image(&store, "trickled\n", "amd64");
    anonymous()
        .push_image(
            image.local(&store),
            &reference(&reg.host(), "app:v1"),
            &[],
            None,
            &bake_registry::NoProgress,
        )
        .await
        .unwrap();
    // One byte every 100 ms: never silent for the 1 s read timeout, and
    // bounded (100,000 bytes) so the proxy itself cannot hang the test.
    let trickle = Fault::Trickle {
        every: Duration::from_millis(100),
        bytes: 100_000,
    };
    let policy = RetryPolicy {
        max_attempts: 2,
        request_timeout: Duration::from_secs(1),
        min_transfer_rate: 1024,
        ..fast_retry()
    };
    let registry = Registry::new(RegistryOptions {
        retry: policy,
        ..RegistryOptions::default()
    })
    .unwrap();
    let amd64: Platform = "linux/amd64".parse().unwrap();
    for (kind, names) in [
        (
            RequestKind::BlobGet,
            vec![image.config.to_string(), image.layer.to_string()],
        ),
        (RequestKind::ManifestGet, vec!["/app:v1".to_owned()]),
    ] {
        let slow =
            FaultProxy::start(&reg.direct_host(), FaultPlan::new().always(kind, trickle.clone())).unwrap();
        let (_d2, dst) = new_store();
        let target = reference(&slow.host(), "app:v1");
        let pull = registry.pull_image(&target, &amd64, &dst, &bake_registry::NoProgress);
        // A guard against hanging, not a measure of speed.
        let err = tokio::time::timeout(Duration::from_secs(60), pull)
            .await
            .expect("the pull hung on a trickling registry")
            .unwrap_err();
        let text = err.to_string();
        eprintln!("error: {text}");
        assert!(matches!(err, RegistryError::TimedOut { .. }), "{text}");
        assert!(text.contains("timed out"), "{text}");
        assert!(names.iter().any(|n| text.contains(n.as_str())), "{text}");
        assert!(text.contains("gave up after 2 attempts"), "{text}");
        assert!(!dst.has(&image.layer));
    }
}
