//! Secrets never leak: runs commands that fail because of a credential (a
//! wrong key password in BAKE_PASSWORD, an encrypted key without one, a
//! damaged key file, a wrong registry password in DOCKER_CONFIG), with and
//! without `--json`, under RUST_BACKTRACE=1, and greps everything they
//! print for the password, the base64 `auth` string and every line of the
//! private key's PEM body. None may appear, and nothing may panic.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Output;

use crate::common::*;

const KEY_PASSWORD: &str = "k3y-Pa55word-do-not-print";
const WRONG_KEY_PASSWORD: &str = "wr0ng-K3y-pa55word-also-secret";

/// Every secret a run could leak, for the grep.
struct Secrets(Vec<String>);

impl Secrets {
    fn new(passwords: &[&str]) -> Secrets {
        Secrets(passwords.iter().map(|p| p.to_string()).collect())
    }

    /// Each base64 line of a PEM body (not the BEGIN/END lines).
    fn add_pem(&mut self, pem: &str) {
        for line in pem.lines() {
            let line = line.trim();
            if !line.is_empty() && !line.starts_with("-----") && !line.contains(':') {
                self.0.push(line.to_owned());
            }
        }
    }

    fn add(&mut self, s: String) {
        self.0.push(s);
    }

    /// The run failed, printed nothing secret and did not panic.
    fn check(&self, case: &str, out: &Output) {
        assert_eq!(
            out.status.code(),
            Some(1),
            "{case}: expected failure, got {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let all = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
        let text = String::from_utf8_lossy(&all);
        assert!(!text.contains("panicked"), "{case}: {text}");
        assert!(!text.contains("stack backtrace"), "{case}: {text}");
        for secret in &self.0 {
            assert!(
                !text.contains(secret.as_str()),
                "{case}: output contains the secret {secret:?}:\n{text}"
            );
        }
        assert!(text.contains("error:"), "{case}: {text}");
    }
}

fn run(cwd: &Path, envs: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = bake(cwd);
    cmd.env("RUST_BACKTRACE", "1").env("RUST_LIB_BACKTRACE", "1");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// A built image in `dir/layout` and an encrypted key pair `dir/ci.*`.
fn setup(dir: &Path) -> String {
    ok(bake(dir)
        .arg("build")
        .arg(repo().join("recipes/hello/bake.toml"))
        .args(["--layout", "layout", "--quiet"]));
    ok(bake(dir)
        .env("BAKE_PASSWORD", KEY_PASSWORD)
        .args(["keygen", "--output-prefix", "ci"]));
    fs_err::read_to_string(dir.join("ci.key")).unwrap()
}

#[test]
fn key_passwords_and_key_material_never_appear_in_output() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pem = setup(dir);
    let mut secrets = Secrets::new(&[KEY_PASSWORD, WRONG_KEY_PASSWORD]);
    secrets.add_pem(&pem);

    // A wrong password, for sign and for build --sign.
    let wrong = [("BAKE_PASSWORD", WRONG_KEY_PASSWORD)];
    let out = run(
        dir,
        &wrong,
        &[
            "sign",
            "oci:layout:latest",
            "--key",
            "ci.key",
            "--identity",
            "example.com/hello",
        ],
    );
    secrets.check("sign, wrong password", &out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ci.key"),
        "names the key file"
    );
    let out = run(
        dir,
        &wrong,
        &[
            "build",
            repo().join("recipes/hello/bake.toml").to_str().unwrap(),
            "--layout",
            "layout",
            "--json",
            "--push",
            "127.0.0.1:9/x/y",
            "--sign",
            "--key",
            "ci.key",
        ],
    );
    secrets.check("build --json --push --sign, wrong password", &out);

    // No password at all, no terminal.
    let out = run(
        dir,
        &[],
        &[
            "sign",
            "oci:layout:latest",
            "--key",
            "ci.key",
            "--identity",
            "example.com/hello",
        ],
    );
    secrets.check("sign, no password", &out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is encrypted"));

    // A key file damaged in its body, with the right password and without.
    let mut lines: Vec<String> = pem.lines().map(str::to_owned).collect();
    let body = lines.len() / 2;
    lines[body] = lines[body].chars().rev().collect();
    fs_err::write(dir.join("bad.key"), lines.join("\n") + "\n").unwrap();
    let mut damaged = Secrets::new(&[KEY_PASSWORD]);
    damaged.add_pem(&lines.join("\n"));
    damaged.add_pem(&pem);
    for env in [&[("BAKE_PASSWORD", KEY_PASSWORD)][..], &[][..]] {
        let out = run(
            dir,
            env,
            &[
                "sign",
                "oci:layout:latest",
                "--key",
                "bad.key",
                "--identity",
                "example.com/hello",
            ],
        );
        damaged.check("sign, damaged key", &out);
    }

    // An unencrypted key given where a public key is expected, and the
    // other way round: the PEM is not echoed.
    ok(bake(dir).args(["keygen", "--output-prefix", "plain", "--no-password"]));
    let plain = fs_err::read_to_string(dir.join("plain.key")).unwrap();
    let mut plain_secrets = Secrets::new(&[]);
    plain_secrets.add_pem(&plain);
    let out = run(
        dir,
        &[],
        &[
            "verify",
            "oci:layout:latest",
            "--key",
            "plain.key",
            "--any-identity",
        ],
    );
    plain_secrets.check("verify with a private key", &out);
    let out = run(
        dir,
        &[],
        &[
            "sign",
            "oci:layout:latest",
            "--key",
            "plain.pub",
            "--identity",
            "example.com/h",
        ],
    );
    plain_secrets.check("sign with a public key", &out);
}

/// A wrong registry password in DOCKER_CONFIG: push and build --push fail
/// with the registry's refusal, without the password or its base64 form.
#[test]
#[ignore = "needs docker-registry; run via cargo xtask test"]
fn registry_passwords_never_appear_in_output() {
    use bake_testkit::{TestRegistry, TestRegistryOptions, write_docker_config};
    require("docker-registry");
    const RIGHT: &str = "r1ght-Registry-pa55";
    const WRONG: &str = "wr0ng-Registry-pa55-secret";
    let reg = TestRegistry::start(TestRegistryOptions {
        htpasswd: Some(("ci".into(), RIGHT.into())),
    })
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir);
    let config = dir.join("docker");
    write_docker_config(&config, &reg.host(), "ci", WRONG).unwrap();
    let auth_json: serde_json::Value =
        serde_json::from_slice(&fs_err::read(config.join("config.json")).unwrap()).unwrap();
    let mut secrets = Secrets::new(&[WRONG, RIGHT, KEY_PASSWORD]);
    let auth = auth_json["auths"][reg.host()]["auth"]
        .as_str()
        .unwrap()
        .to_owned();
    secrets.add(auth.clone());
    // The password in the base64 of "ci:PASSWORD" is also visible shifted
    // by a byte or two; check the middle of the encoding too.
    secrets.add(auth[4..auth.len() - 4].to_owned());
    let target = format!("{}/secret/hello", reg.host());
    let env = [
        ("DOCKER_CONFIG", config.to_str().unwrap()),
        ("BAKE_PASSWORD", KEY_PASSWORD),
    ];
    for args in [
        vec!["push", "oci:layout:latest", target.as_str()],
        vec!["push", "oci:layout:latest", target.as_str(), "--json"],
        vec![
            "build",
            repo().join("recipes/hello/bake.toml").to_str().unwrap(),
            "--layout",
            "layout2",
            "--json",
            "--push",
            target.as_str(),
            "--sign",
            "--key",
            "ci.key",
        ],
        vec!["verify", &format!("{target}:latest"), "--key", "ci.pub"],
        vec!["diff", "oci:layout:latest", &format!("{target}:latest")],
    ] {
        let out = run(dir, &env, &args);
        secrets.check(&args.join(" "), &out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("401") || stderr.contains("UNAUTHORIZED") || stderr.contains("unauthorized"),
            "{args:?}: the registry's refusal is reported: {stderr}"
        );
    }
    // Nothing was tagged.
    assert!(reg.tags("secret/hello").unwrap_or_default().is_empty());

    // A malformed auth entry (no colon once decoded) is reported without it.
    let garbled = "bm90LWEtcGFpci1zZWNyZXQtdmFsdWU="; // "not-a-pair-secret-value"
    fs_err::write(
        config.join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{garbled}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let mut secrets = Secrets::new(&["not-a-pair-secret-value"]);
    secrets.add(garbled.to_owned());
    let out = run(dir, &env, &["push", "oci:layout:latest", &target]);
    secrets.check("malformed auth", &out);
}
