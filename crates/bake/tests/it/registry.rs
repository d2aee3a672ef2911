//! `bake build --push`, `bake push`, registry bases, auth, `bake login`,
//! and signing against a real `docker-registry` on 127.0.0.1 (through the
//! testkit's counting proxy), read back by skopeo and openssl.
//!
//! Run by `cargo xtask test`; plain `cargo test` skips them as ignored.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::*;
use bake_testkit::{
    Fault, FaultPlan, FaultProxy, Matcher, RequestKind, TestRegistry, TestRegistryOptions,
    write_docker_config,
};

fn registry() -> TestRegistry {
    require("docker-registry");
    TestRegistry::start(TestRegistryOptions::default()).unwrap()
}

/// The README's worked example, against the suite's shared registry
/// (`cargo xtask test` starts it and sets BAKE_TEST_REGISTRY) or our own.
#[test]
#[ignore = "needs docker-registry and skopeo; run via cargo xtask test"]
fn readme_worked_example_push_to_a_local_registry() {
    require("skopeo");
    let own;
    let host = match std::env::var("BAKE_TEST_REGISTRY") {
        Ok(h) => h,
        Err(_) => {
            own = registry();
            own.host()
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let target = format!("{host}/examples/hello");
    let out = ok(bake(tmp.path())
        .arg("build")
        .arg(hello_recipe())
        .args(["--push", &target, "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        skopeo_digest(&format!("{target}:latest")),
        v["digest"].as_str().unwrap()
    );
    assert!(
        tmp.path().join("out/hello/index.json").is_file(),
        "default layout is out/<name>"
    );
}

fn hello_recipe() -> std::path::PathBuf {
    repo().join("recipes/hello/bake.toml")
}

fn skopeo_digest(reference: &str) -> String {
    let out = ok(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{reference}")));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Digest"].as_str().unwrap().to_owned()
}

#[test]
#[ignore = "needs docker-registry and skopeo; run via cargo xtask test"]
fn build_push_then_unchanged_push_uploads_nothing() {
    require("skopeo");
    let reg = registry();
    let tmp = tempfile::tempdir().unwrap();
    let target = format!("{}/demo/hello", reg.host());
    let out = ok(bake(tmp.path())
        .arg("build")
        .arg(hello_recipe())
        .args(["--layout", "layout", "--json", "--push", &target]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let digest = v["digest"].as_str().unwrap();
    let pushed = &v["pushed"][0];
    assert_eq!(pushed["digest"], digest);
    assert_eq!(pushed["uploaded"], 2, "config + one layer: {pushed}");
    let refs: Vec<&str> = pushed["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(refs.contains(&format!("{target}:latest").as_str()), "{refs:?}");
    assert!(refs.contains(&format!("{target}:v1.0.0").as_str()), "{refs:?}");
    // Independent reader: same digest for every tag.
    assert_eq!(skopeo_digest(&format!("{target}:latest")), digest);
    assert_eq!(skopeo_digest(&format!("{target}:v1.0.0")), digest);
    // skopeo copies it back out; the copy has the same manifest digest.
    ok(Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", "--preserve-digests"])
        .arg(format!("docker://{target}:latest"))
        .arg(format!("oci:{}:copy", tmp.path().join("copy").display())));
    let index: serde_json::Value =
        serde_json::from_slice(&fs_err::read(tmp.path().join("copy/index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest);

    // Push again with `bake push`: nothing is uploaded.
    reg.reset_counts();
    let out = ok(bake(tmp.path()).args(["push", "oci:layout:latest", &format!("{target}:again"), "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pushed"][0]["uploaded"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(reg.count(RequestKind::BlobUploadStart), 0);
    assert_eq!(reg.count(RequestKind::BlobUploadPut), 0);
    assert_eq!(skopeo_digest(&format!("{target}:again")), digest);
}

#[test]
#[ignore = "needs docker-registry and skopeo; run via cargo xtask test"]
fn registry_base_is_pulled_once_and_reused_byte_for_byte() {
    require("skopeo");
    let reg = registry();
    let tmp = tempfile::tempdir().unwrap();
    // A third party (skopeo) puts the base in the registry.
    ok(Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false", "--preserve-digests"])
        .arg(format!("oci:{}:1.0", repo().join("recipes/site/base").display()))
        .arg(format!("docker://{}/bases/tiny:1.0", reg.host())));
    let base_digest = "sha256:c3cda062914d2ff020c116e8290fdae3556eb925a47d90dc99adc7978703faa5";
    let recipe = |base: &str| {
        format!(
            "base = \"{base}\"\n[image]\nname = \"on-registry-base\"\n[[layer]]\n[[layer.step]]\nfile = \"/hello\"\ncontent = \"hi\\n\"\n"
        )
    };
    let pinned = format!("{}/bases/tiny@{base_digest}", reg.host());
    fs_err::write(tmp.path().join("bake.toml"), recipe(&pinned)).unwrap();
    let first = build_json(
        tmp.path(),
        &tmp.path().join("bake.toml"),
        &tmp.path().join("layout"),
    );
    assert_eq!(
        first["layers"][0]["digest"],
        "sha256:77fcaa7421a90c44ce0721de956a0b51e5a7b20e325182ad3b5b0e55694d5476"
    );
    assert_eq!(first["layers"][0]["fromBase"], true);
    // Second build: the pinned base is in the store; the registry is not asked.
    reg.reset_counts();
    let second = build_json(
        tmp.path(),
        &tmp.path().join("bake.toml"),
        &tmp.path().join("layout"),
    );
    assert_eq!(first["digest"], second["digest"]);
    assert_eq!(
        reg.proxy().total(),
        0,
        "second build contacted the registry: {:?}",
        reg.proxy().counts()
    );
    // The same image from the local layout base gives the same digest.
    copy_tree_shuffled(&repo().join("recipes/site/base"), &tmp.path().join("base"), 0);
    fs_err::write(tmp.path().join("local.toml"), recipe("oci:base:1.0")).unwrap();
    let local = build_json(
        tmp.path(),
        &tmp.path().join("local.toml"),
        &tmp.path().join("local"),
    );
    assert_eq!(local["digest"], first["digest"]);

    // Pushed to another repository of the same registry, the base layer is
    // mounted from the base's repository, not uploaded.
    reg.reset_counts();
    let out = ok(bake(tmp.path()).args([
        "build",
        "bake.toml",
        "--layout",
        "layout",
        "--json",
        "--push",
        &format!("{}/apps/on-base:1", reg.host()),
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pushed"][0]["mounted"], 1, "{v}");
    assert_eq!(v["pushed"][0]["uploaded"], 2, "config + our layer: {v}");
    // Every missing blob is offered as a mount; the registry's "202: upload
    // here instead" answer doubles as the upload session for the others.
    assert_eq!(reg.count(RequestKind::BlobUploadStart), 0);

    // A tag alone works but is reported; --locked refuses it.
    fs_err::write(
        tmp.path().join("tag.toml"),
        recipe(&format!("{}/bases/tiny:1.0", reg.host())),
    )
    .unwrap();
    let out = ok(bake(tmp.path()).args(["build", "tag.toml", "--layout", "tagged"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("resolved now to") && stderr.contains(base_digest),
        "{stderr}"
    );
    let err = fails(bake(tmp.path()).args(["build", "tag.toml", "--layout", "locked", "--locked"]));
    assert!(
        err.contains("--locked") && err.contains("tag.toml.lock does not exist"),
        "{err}"
    );
}

#[test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
fn auth_right_wrong_and_login() {
    require("docker-registry");
    let reg = TestRegistry::start(TestRegistryOptions {
        htpasswd: Some(("ci".into(), "s3cret-Pa55".into())),
    })
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let target = format!("{}/team/hello", reg.host());
    ok(bake(tmp.path())
        .arg("build")
        .arg(hello_recipe())
        .args(["--layout", "layout", "-q"]));

    // No credentials: a clear 401, nothing tagged.
    let err = fails(
        bake(tmp.path())
            .args(["push", "oci:layout:latest", &target])
            .env("DOCKER_CONFIG", tmp.path().join("none")),
    );
    assert!(
        err.contains("401") || err.to_lowercase().contains("unauthorized"),
        "{err}"
    );
    assert!(err.contains(&reg.host()), "{err}");

    // Wrong password: the same, and the password never shows.
    let wrong = tmp.path().join("wrong");
    write_docker_config(&wrong, &reg.host(), "ci", "not-the-Pa55word").unwrap();
    let err = fails(
        bake(tmp.path())
            .args(["push", "oci:layout:latest", &target])
            .env("DOCKER_CONFIG", &wrong),
    );
    assert!(
        err.contains("401") || err.to_lowercase().contains("unauthorized"),
        "{err}"
    );
    assert!(!err.contains("not-the-Pa55word"), "password leaked: {err}");
    assert!(
        reg.tags("team/hello").unwrap_or_default().is_empty(),
        "a failed push left a tag"
    );

    // `bake login` checks the credentials against the registry: wrong
    // ones, or a registry that is not there, are not saved.
    let cfg = tmp.path().join("docker");
    let login = |host: &str, password: &str, extra: &[&str]| {
        let mut child = bake(tmp.path())
            .args(["login", host, "--username", "ci", "--password-stdin"])
            .args(extra)
            .env("DOCKER_CONFIG", &cfg)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains(password), "password leaked: {stderr}");
        (out.status.code(), stderr)
    };
    let (code, err) = login(&reg.host(), "not-the-Pa55word", &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not saved") && err.contains("401"), "{err}");
    assert!(
        !cfg.join("config.json").exists(),
        "rejected credentials were saved"
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = closed.local_addr().unwrap().to_string();
    drop(closed);
    let (code, err) = login(&nowhere, "s3cret-Pa55", &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not saved") && err.contains("--no-verify"), "{err}");
    assert!(!cfg.join("config.json").exists());
    let (code, err) = login(&nowhere, "s3cret-Pa55", &["--no-verify"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        fs_err::read_to_string(cfg.join("config.json"))
            .unwrap()
            .contains(&nowhere)
    );
    // The right password is checked and saved; then the push works.
    let (code, err) = login(&reg.host(), "s3cret-Pa55", &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("accepted"), "{err}");
    let out = ok(bake(tmp.path())
        .args(["push", "oci:layout:latest", &target])
        .env("DOCKER_CONFIG", &cfg));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("s3cret"));
    assert_eq!(reg.tags("team/hello").unwrap(), vec!["latest".to_owned()]);
}

/// `bake push` through a registry that loses the layer's upload session:
/// every time, a clear error naming the blob and the registry's message,
/// exit 1, no tag; once, the push recovers with the same digest.
#[test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
fn push_through_lost_upload_sessions_fails_cleanly_or_recovers() {
    let reg = registry();
    let tmp = tempfile::tempdir().unwrap();
    let built = build_json(tmp.path(), &hello_recipe(), &tmp.path().join("layout"));
    let digest = built["digest"].as_str().unwrap().to_owned();
    let layer = built["layers"][0]["digest"].as_str().unwrap().to_owned();
    let hex = layer.strip_prefix("sha256:").unwrap().to_owned();
    let layer_put = || {
        Matcher::All(vec![
            Matcher::Kind(RequestKind::BlobUploadPut),
            Matcher::UriContains(hex.clone()),
        ])
    };
    let lost = || Fault::api_error(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry");
    let lossy = FaultProxy::start(
        &reg.direct_host(),
        FaultPlan::new().rule(layer_put(), lost(), 0, None),
    )
    .unwrap();
    let target = format!("{}/demo/hello:v1", lossy.host());

    let err = fails(bake(tmp.path()).args(["push", "oci:layout:latest", &target]));
    assert!(
        err.contains(&format!("upload blob {layer} to {target}"))
            && err.contains("404 Not Found: BLOB_UPLOAD_UNKNOWN: blob upload unknown to registry")
            && err.contains("gave up after"),
        "{err}"
    );
    assert!(lossy.faults_injected() > 1, "retried: {:?}", lossy.log());
    assert_eq!(lossy.count(RequestKind::ManifestPut), 0);
    assert_eq!(reg.manifest_status("demo/hello", "v1").unwrap(), 404);
    assert_eq!(reg.manifest_status("demo/hello", &digest).unwrap(), 404);

    // Lost once: a new session, and the push completes.
    lossy.set_plan(FaultPlan::new().rule(layer_put(), lost(), 0, Some(1)));
    lossy.reset_counts();
    let out = ok(bake(tmp.path()).args(["push", "oci:layout:latest", &target, "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pushed"][0]["digest"], digest.as_str(), "{v}");
    assert_eq!(lossy.faults_injected(), 1, "{:?}", lossy.log());
    assert_eq!(reg.manifest_status("demo/hello", "v1").unwrap(), 200);
    assert_eq!(reg.manifest_status("demo/hello", &digest).unwrap(), 200);
}

fn keygen(dir: &Path, prefix: &str) {
    ok(bake(dir).args(["keygen", "--output-prefix", prefix, "--no-password"]));
}

#[test]
#[ignore = "needs docker-registry and openssl; run via cargo xtask test"]
fn build_push_sign_verify_and_every_failure_has_its_own_message() {
    require("openssl");
    let reg = registry();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    keygen(d, "good");
    keygen(d, "other");
    let target = format!("{}/signed/hello", reg.host());
    let out = ok(bake(d).arg("build").arg(hello_recipe()).args([
        "--layout", "layout", "--json", "--push", &target, "--sign", "--key", "good.key",
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let digest = v["digest"].as_str().unwrap().to_owned();
    assert!(
        v["pushed"][0]["signature"]
            .as_str()
            .unwrap()
            .ends_with(&format!("sha256-{}.sig", &digest[7..]))
    );

    let out = ok(bake(d).args(["verify", &format!("{target}:latest"), "--key", "good.pub"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Verified OK") && text.contains(&digest) && text.contains(&target),
        "{text}"
    );

    // openssl agrees, on the payload and signature as stored in the registry.
    let sig_tag = format!("sha256-{}.sig", &digest[7..]);
    let out = ok(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{target}:{sig_tag}")));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let layer = &m["layers"][0];
    let (_, payload) = reg
        .get(&format!(
            "/v2/signed/hello/blobs/{}",
            layer["digest"].as_str().unwrap()
        ))
        .unwrap();
    fs_err::write(d.join("payload.json"), &payload).unwrap();
    let b64 = layer["annotations"]["dev.cosignproject.cosign/signature"]
        .as_str()
        .unwrap();
    fs_err::write(d.join("sig.b64"), b64).unwrap();
    ok(Command::new("openssl")
        .args(["base64", "-d", "-A", "-in", "sig.b64", "-out", "sig.der"])
        .current_dir(d));
    let out = ok(Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            "good.pub",
            "-signature",
            "sig.der",
            "payload.json",
        ])
        .current_dir(d));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Verified OK"));
    let p: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(p["critical"]["image"]["docker-manifest-digest"], digest.as_str());
    assert_eq!(p["critical"]["identity"]["docker-reference"], target.as_str());

    // Wrong key.
    let err = fails(bake(d).args(["verify", &format!("{target}:latest"), "--key", "other.pub"]));
    assert!(err.contains("another key") || err.contains("other key"), "{err}");

    // Unsigned image.
    let unsigned = format!("{}/unsigned/hello", reg.host());
    ok(bake(d).args(["push", "oci:layout:latest", &unsigned]));
    let err = fails(bake(d).args(["verify", &format!("{unsigned}:latest"), "--key", "good.pub"]));
    assert!(err.contains("not signed"), "{err}");

    // Another repository: the signature names signed/hello.
    ok(Command::new("skopeo")
        .args([
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--preserve-digests",
        ])
        .arg(format!("docker://{target}:{sig_tag}"))
        .arg(format!("docker://{unsigned}:{sig_tag}")));
    let err = fails(bake(d).args(["verify", &format!("{unsigned}:latest"), "--key", "good.pub"]));
    assert!(err.contains("signed/hello"), "{err}");
    ok(bake(d).args([
        "verify",
        &format!("{unsigned}:latest"),
        "--key",
        "good.pub",
        "--any-identity",
    ]));

    // A replayed signature: copied onto a different image's .sig tag.
    fs_err::write(
        d.join("other.toml"),
        "[image]\nname = \"other\"\n[[layer]]\n[[layer.step]]\nfile = \"/x\"\ncontent = \"x\"\n",
    )
    .unwrap();
    let other = build_json(d, &d.join("other.toml"), &d.join("other-layout"));
    let other_digest = other["digest"].as_str().unwrap();
    ok(bake(d).args(["push", "oci:other-layout:latest", &format!("{target}:other")]));
    ok(Command::new("skopeo")
        .args([
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--preserve-digests",
        ])
        .arg(format!("docker://{target}:{sig_tag}"))
        .arg(format!("docker://{target}:sha256-{}.sig", &other_digest[7..])));
    let err = fails(bake(d).args(["verify", &format!("{target}:other"), "--key", "good.pub"]));
    assert!(err.contains(&format!("signature is for {digest}")), "{err}");
}

#[test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
fn layout_signatures_offline_then_travel_with_the_push() {
    let reg = registry();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    keygen(d, "k");
    ok(bake(d)
        .arg("build")
        .arg(hello_recipe())
        .args(["--layout", "layout", "-q"]));
    let target = format!("{}/offline/hello", reg.host());
    let err = fails(bake(d).args(["sign", "oci:layout:latest", "--key", "k.key"]));
    assert!(err.contains("--identity"), "{err}");
    ok(bake(d).args([
        "sign",
        "oci:layout:latest",
        "--key",
        "k.key",
        "--identity",
        &target,
    ]));
    // Idempotent: signing again with the same key adds nothing.
    let out = ok(bake(d).args([
        "sign",
        "oci:layout:latest",
        "--key",
        "k.key",
        "--identity",
        &target,
    ]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing added"));
    let out = ok(bake(d).args([
        "verify",
        "oci:layout:latest",
        "--key",
        "k.pub",
        "--identity",
        &target,
    ]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Verified OK"));
    let err = fails(bake(d).args([
        "verify",
        "oci:layout:latest",
        "--key",
        "k.pub",
        "--identity",
        "elsewhere/repo",
    ]));
    assert!(err.contains(&target), "{err}");
    // The push carries the signature; verification against the registry
    // passes. The layout named without a tag, as the README does: its
    // signature tag is not a second image.
    ok(bake(d).args(["push", "layout", &target]));
    ok(bake(d).args(["verify", &format!("{target}:latest"), "--key", "k.pub"]));
    ok(bake(d).args(["push", "oci:layout", &format!("{target}:again")]));
    ok(bake(d).args(["verify", &format!("{target}:again"), "--key", "k.pub"]));
}

/// Signing details that need no registry: a second signer appends, an
/// openssl-made key signs, a tampered payload is caught, and neither the
/// password nor the key ever shows in output.
#[test]
#[ignore = "needs openssl; run via cargo xtask test"]
fn layout_signing_appends_accepts_openssl_keys_and_catches_tampering() {
    require("openssl");
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let password = "correct horse battery staple";
    let out = ok(bake(d)
        .args(["keygen", "--output-prefix", "enc"])
        .env("BAKE_PASSWORD", password));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(password), "password printed by keygen");
    let pem = fs_err::read_to_string(d.join("enc.key")).unwrap();
    assert!(pem.contains("ENCRYPTED PRIVATE KEY"), "{pem}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs_err::metadata(d.join("enc.key")).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A key made by openssl (PKCS#8 via genpkey, public key via pkey).
    ok(Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "ossl.key",
        ])
        .current_dir(d));
    ok(Command::new("openssl")
        .args(["pkey", "-in", "ossl.key", "-pubout", "-out", "ossl.pub"])
        .current_dir(d));

    ok(bake(d)
        .arg("build")
        .arg(hello_recipe())
        .args(["--layout", "layout", "-q"]));
    let id = "registry.example/team/hello";
    // Wrong password: a clear error, no password echoed.
    let err = fails(
        bake(d)
            .args(["sign", "oci:layout:latest", "--key", "enc.key", "--identity", id])
            .env("BAKE_PASSWORD", "nope-wrong"),
    );
    assert!(err.contains("password") && !err.contains("nope-wrong"), "{err}");
    let out = ok(bake(d)
        .args(["sign", "oci:layout:latest", "--key", "enc.key", "--identity", id])
        .env("BAKE_PASSWORD", password));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(password));
    ok(bake(d).args(["sign", "oci:layout:latest", "--key", "ossl.key", "--identity", id]));
    // Both signatures are there, each verifies with its own key.
    for key in ["enc.pub", "ossl.pub"] {
        let out = ok(bake(d).args(["verify", "oci:layout:latest", "--key", key, "--identity", id]));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Verified OK"),
            "{key}"
        );
    }
    let index: serde_json::Value =
        serde_json::from_slice(&fs_err::read(d.join("layout/index.json")).unwrap()).unwrap();
    let sig = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .is_some_and(|t| t.ends_with(".sig"))
        })
        .unwrap();
    let blob = |digest: &str| d.join("layout/blobs/sha256").join(&digest[7..]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs_err::read(blob(sig["digest"].as_str().unwrap())).unwrap()).unwrap();
    assert_eq!(
        manifest["layers"].as_array().unwrap().len(),
        2,
        "the second signature did not append a layer"
    );

    // Tamper with the first payload in place: verification must fail, naming it.
    let payload_digest = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
    let path = blob(&payload_digest);
    let mut bytes = fs_err::read(&path).unwrap();
    let pos = bytes.iter().position(|&b| b == b'h').unwrap();
    bytes[pos] = b'H';
    fs_err::write(&path, bytes).unwrap();
    let err = fails(bake(d).args([
        "verify",
        "oci:layout:latest",
        "--key",
        "enc.pub",
        "--identity",
        id,
    ]));
    assert!(
        err.contains(&payload_digest[7..19]) || err.contains(&payload_digest),
        "{err}"
    );
    assert!(
        err.contains("corrupt") || err.contains("tamper") || err.contains("does not match"),
        "{err}"
    );
}
