//! Hostile base configs and the limits of what bake writes into image JSON,
//! through the real binary: a base layout whose config has ill-typed
//! fields fails naming the recipe line, the config digest and the field; a
//! base whose config would grow past the 4 MiB skopeo and podman read is
//! refused naming it; and the largest `[config]` and annotations a recipe
//! may write give an image bake loads again as a base and diffs (and, with
//! skopeo installed, that skopeo reads).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::*;
use bake_digest::Digest;
use bake_image::{Descriptor, MAX_CONFIG_SIZE, media_type};
use serde_json::{Value, json};

/// A build area: `ctx/` (recipe, base layouts, output layouts), `tmp/`
/// (TMPDIR) and `home/` (HOME, so the layer cache).
struct Area {
    dir: tempfile::TempDir,
}

impl Area {
    fn new() -> Area {
        let dir = tempfile::tempdir().unwrap();
        for d in ["ctx", "tmp", "home"] {
            fs_err::create_dir(dir.path().join(d)).unwrap();
        }
        Area { dir }
    }

    fn ctx(&self) -> PathBuf {
        self.dir.path().join("ctx")
    }

    fn run(&self, args: &[&str]) -> Output {
        bake(&self.ctx())
            .env("TMPDIR", self.dir.path().join("tmp"))
            .env("HOME", self.dir.path().join("home"))
            .args(args)
            .output()
            .unwrap()
    }

    /// `bake build bake.toml --layout LAYOUT` with `recipe` as bake.toml.
    fn build(&self, recipe: &str, layout: &str) -> Output {
        fs_err::write(self.ctx().join("bake.toml"), recipe).unwrap();
        self.run(&["build", "bake.toml", "--layout", layout])
    }

    /// The build fails with exit 1, an `error:` line holding every piece, no
    /// panic, no tag in the output layout and no temp file left.
    fn fails(&self, case: &str, recipe: &str, pieces: &[&str]) -> String {
        let out = self.build(recipe, "out");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{case}: {stderr}");
        // Progress lines may come first (a base too big to build on is
        // found when the config is written, after the new layers).
        let last = stderr.lines().last().unwrap_or_default();
        assert!(last.starts_with("error: "), "{case}: {stderr}");
        assert!(!stderr.contains("panicked"), "{case}: {stderr}");
        for p in pieces {
            assert!(stderr.contains(p), "{case}: {stderr:?} lacks {p:?}");
        }
        if let Ok(index) = fs_err::read_to_string(self.ctx().join("out/index.json")) {
            assert!(
                !index.contains("ref.name"),
                "{case}: a failed build tagged something: {index}"
            );
        }
        let left = fs_err::read_dir(self.dir.path().join("tmp")).unwrap().count();
        assert_eq!(left, 0, "{case}: temp files left");
        stderr
    }
}

fn succeeded(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes a one-layer image whose config is `config` (with its
/// `rootfs.diff_ids` set to the layer) as `base:base` in the layout `dir`.
/// Returns the config's digest.
fn base_layout(dir: &Path, config: Value) -> Digest {
    base_layout_with(dir, config, |_| {})
}

/// [`base_layout`], `tamper` applied to the config last.
fn base_layout_with(dir: &Path, mut config: Value, tamper: impl FnOnce(&mut Value)) -> Digest {
    let layout = bake_image::Layout::create_or_open(dir).unwrap();
    let s = layout.store();
    let tar = bake_testkit::fixtures::plain_tar(&[("etc/base", b"base\n")]);
    let layer = Descriptor::new(
        media_type::OCI_LAYER_TAR,
        s.put_bytes(&tar).unwrap(),
        tar.len() as u64,
    );
    config["rootfs"] = json!({"type": "layers", "diff_ids": [layer.digest.to_string()]});
    tamper(&mut config);
    let config = bake_image::canonical_json(&config);
    s.put_bytes(&config).unwrap();
    let config = Descriptor::of(media_type::OCI_CONFIG, &config);
    let m = bake_image::build_manifest(&config, &[layer], &Default::default());
    s.put_bytes(&m).unwrap();
    let m = Descriptor::of(media_type::OCI_MANIFEST, &m);
    layout.set_tags(&m, &["base".into()]).unwrap();
    config.digest
}

const ON_BASE: &str = "base = \"oci:base:base\"\n[image]\nname = \"hostile\"\n\n[[layer]]\n[[layer.step]]\nfile = \"/x\"\ncontent = \"x\"\n";

fn good_config() -> Value {
    json!({
        "architecture": "amd64", "os": "linux",
        "created": "2020-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "Labels": {"a": "b"}},
        "history": [{"created": "2020-01-01T00:00:00Z", "created_by": "ADD base"}]
    })
}

#[test]
fn ill_typed_base_configs_fail_naming_the_config_digest_and_the_field() {
    let cases: [(&str, &str, Value, &str); 10] = [
        (
            "env number",
            "Env",
            json!(["PATH=/bin", "A=1", 3]),
            "config.Env[2] is a number, not a string",
        ),
        (
            "env null",
            "Env",
            json!([null]),
            "config.Env[0] is null, not a string",
        ),
        (
            "string entrypoint",
            "Entrypoint",
            json!("/bin/sh -c evil"),
            "config.Entrypoint is a string, not an array of strings",
        ),
        (
            "object cmd",
            "Cmd",
            json!({"0": "sh"}),
            "config.Cmd is an object, not an array of strings",
        ),
        (
            "label number",
            "Labels",
            json!({"n": 1}),
            "config.Labels[\"n\"] is a number, not a string",
        ),
        (
            "ports list",
            "ExposedPorts",
            json!(["80/tcp"]),
            "config.ExposedPorts is an array, not an object",
        ),
        (
            "volumes string",
            "Volumes",
            json!("/data"),
            "config.Volumes is a string, not an object",
        ),
        (
            "user number",
            "User",
            json!(0),
            "config.User is a number, not a string",
        ),
        (
            "workdir list",
            "WorkingDir",
            json!(["/"]),
            "config.WorkingDir is an array, not a string",
        ),
        (
            "stop signal number",
            "StopSignal",
            json!(9),
            "config.StopSignal is a number, not a string",
        ),
    ];
    for (case, key, value, reason) in cases {
        let area = Area::new();
        let mut config = good_config();
        config["config"][key] = value;
        let digest = base_layout(&area.ctx().join("base"), config);
        area.fails(
            case,
            ON_BASE,
            &[
                "bake.toml:1:8: base image oci:base: ",
                &format!("invalid config {digest}: {reason}"),
            ],
        );
    }
    let top: [(&str, &str, Value, &str); 5] = [
        (
            "history object",
            "history",
            json!({"created_by": "x"}),
            "history is an object, not an array",
        ),
        (
            "history entry",
            "history",
            json!(["ADD"]),
            "history[0] is a string, not an object",
        ),
        (
            "history created",
            "history",
            json!([{"created": "yesterday"}]),
            "history[0].created is \"yesterday\", not an RFC 3339 date-time",
        ),
        (
            "created number",
            "created",
            json!(1_577_836_800),
            "created is a number, not a string",
        ),
        (
            "config string",
            "config",
            json!("Env=A"),
            "config is a string, not an object",
        ),
    ];
    for (case, key, value, reason) in top {
        let area = Area::new();
        let mut config = good_config();
        config[key] = value;
        let digest = base_layout(&area.ctx().join("base"), config);
        area.fails(case, ON_BASE, &[&format!("invalid config {digest}: {reason}")]);
    }
    // rootfs is set by base_layout: break it after.
    let area = Area::new();
    let digest = base_layout_with(&area.ctx().join("base"), good_config(), |c| {
        c["rootfs"]["type"] = json!("tarball");
    });
    area.fails(
        "rootfs type",
        ON_BASE,
        &[&format!(
            "invalid config {digest}: rootfs.type is \"tarball\", not \"layers\""
        )],
    );

    // bake diff reads through the same checks.
    let out = area.run(&["diff", "oci:base:base", "oci:base:base"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains(&format!("invalid config {digest}: rootfs.type")),
        "{stderr}"
    );
}

#[test]
fn a_base_whose_config_would_cross_4_mib_is_refused_naming_it() {
    // 10,000 history entries of 420 bytes each: a 4.8 MB config, which
    // skopeo refuses ("exceeded maximum allowed size of 4194304 bytes").
    let area = Area::new();
    let mut config = good_config();
    let entry =
        json!({"created": "2020-01-01T00:00:00Z", "created_by": "x".repeat(420), "empty_layer": true});
    let mut history = vec![entry; 10_000];
    history.push(json!({"created": "2020-01-01T00:00:00Z", "created_by": "ADD base"}));
    config["history"] = Value::Array(history);
    let digest = base_layout(&area.ctx().join("base"), config);
    let stderr = area.fails(
        "huge history",
        ON_BASE,
        &[
            "error: the image config would be ",
            &format!("on base config {digest}, "),
            &format!("more than the {MAX_CONFIG_SIZE} that skopeo, podman and bake read back"),
        ],
    );
    assert!(stderr.lines().last().unwrap().len() < 300, "{stderr}");
}

/// A value of `n` bytes of JSON text.
fn filler(n: usize) -> String {
    "v".repeat(n)
}

#[test]
fn the_largest_config_a_recipe_may_write_is_read_back_as_a_base_and_diffed() {
    let area = Area::new();
    // `[config] labels = { k = "…" }`: 7 bytes of JSON around the value;
    // annotations the same.
    let max = bake_recipe::MAX_CONFIG_JSON;
    let recipe = |label: usize, annotation: usize, base: &str, name: &str| {
        format!(
            "{base}[image]\nname = \"{name}\"\ntags = [\"{name}\"]\nannotations = {{ a = \"{}\" }}\n\n\
             [config]\nlabels = {{ k = \"{}\" }}\nenv = {{ A = \"1\" }}\n\n\
             [[layer]]\n[[layer.step]]\nfile = \"/{name}\"\ncontent = \"{name}\"\n",
            filler(annotation),
            filler(label),
        )
    };
    // One byte more is refused at the key, before anything is built.
    let stderr = area.fails(
        "over the limit",
        &recipe(max - 7, max - 7, "", "first"),
        &["bake.toml:7:10: `labels` brings what the recipe writes into the image config to"],
    );
    assert!(
        stderr.contains(&format!("more than the {max} allowed")),
        "{stderr}"
    );
    let stderr = area.fails(
        "annotations over the limit",
        &recipe(10, max - 6, "", "first"),
        &["bake.toml:4:15: `annotations` brings"],
    );
    assert!(stderr.contains("image manifest"), "{stderr}");

    // `env = { A = "1" }` counts 7 bytes: the rest goes to the label.
    succeeded(&area.build(&recipe(max - 7 - 7, max - 7, "", "first"), "first"));
    // Built on, as a base, with as much again from the recipe.
    succeeded(&area.build(
        &recipe(max - 7 - 7, max - 7, "base = \"oci:first:first\"\n", "second"),
        "second",
    ));
    let layout = bake_image::Layout::open(&area.ctx().join("second")).unwrap();
    let m = layout.resolve(Some("second")).unwrap();
    let base = bake_image::load_from_store(layout.store(), &m, &bake_image::Platform::linux_amd64()).unwrap();
    assert_eq!(base.layers.len(), 2);
    assert!(base.config_bytes.len() > max && (base.config_bytes.len() as u64) < MAX_CONFIG_SIZE);
    assert_eq!(
        base.config_json["config"]["Labels"]["k"].as_str().unwrap().len(),
        max - 14
    );

    // bake diff reads both.
    let out = area.run(&["diff", "oci:first:first", "oci:second:second"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("config: differs"), "{stdout}");
}

#[test]
#[ignore = "needs skopeo; run via cargo xtask test"]
fn skopeo_reads_the_largest_config_a_recipe_may_write() {
    require("skopeo");
    let area = Area::new();
    let max = bake_recipe::MAX_CONFIG_JSON;
    let recipe = format!(
        "[image]\nname = \"big\"\nannotations = {{ a = \"{}\" }}\n[config]\nlabels = {{ k = \"{}\" }}\n\
         [[layer]]\n[[layer.step]]\nfile = \"/f\"\ncontent = \"f\"\n",
        filler(max - 7),
        filler(max - 7),
    );
    succeeded(&area.build(&recipe, "out"));
    for args in [
        vec!["inspect", "--config", "oci:out:latest"],
        vec!["inspect", "oci:out:latest"],
    ] {
        let out = std::process::Command::new("skopeo")
            .args(&args)
            .current_dir(area.ctx())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
