//! The build log: written beside the layout by default (or to `--log`),
//! with every layer's result and the summary, or the error of a failed
//! build; `--no-log` writes none. (The output of `run` steps in the log is
//! covered in provision.rs, which has runc.)

#![allow(clippy::unwrap_used)]

use crate::common::*;

const RECIPE: &str = r#"epoch = 1700000000
[image]
name = "logged"

[[layer]]
name = "etc"
  [[layer.step]]
  file = "/etc/motd"
  content = "hello\n"

[[layer]]
name = "more"
  [[layer.step]]
  dir = "/srv"
"#;

#[test]
fn the_log_is_beside_the_layout_and_holds_layers_and_summary() {
    let tmp = tempfile::tempdir().unwrap();
    write_files(tmp.path(), &[("bake.toml", RECIPE)]);
    // The default layout: out/logged, so the log is out/logged.log.
    let out = ok(bake(tmp.path()).args(["build", "bake.toml", "--json", "--no-cache"]));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let log_path = tmp.path().join("out/logged.log");
    assert_eq!(json["log"], log_path.display().to_string());
    let log = fs_err::read_to_string(&log_path).unwrap();
    let manifest = json["digest"].as_str().unwrap();
    let lines: Vec<&str> = log.lines().collect();
    // Every line carries the time since the build started.
    assert!(
        lines.iter().all(|l| l.starts_with('[') && l.contains("s] ")),
        "{log}"
    );
    assert!(lines[0].ends_with("build bake.toml"), "{log}");
    assert!(log.contains("] layers: etc, more\n"), "{log}");
    for layer in json["layers"].as_array().unwrap() {
        let name = layer["name"].as_str().unwrap();
        let digest = layer["digest"].as_str().unwrap();
        assert!(
            log.contains(&format!("] layer {name}: built ")) && log.contains(digest),
            "layer {name} is not in the log:\n{log}"
        );
    }
    assert!(log.contains(&format!("]   manifest  {manifest}\n")), "{log}");
    // Nothing else was written beside the layout.
    let mut entries: Vec<String> = fs_err::read_dir(tmp.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    entries.sort();
    assert_eq!(entries, ["logged", "logged.log"]);

    // A rebuild replaces the log; cached layers say so.
    ok(bake(tmp.path()).args(["build", "bake.toml", "--quiet"]));
    ok(bake(tmp.path()).args(["build", "bake.toml", "--quiet"]));
    let log = fs_err::read_to_string(&log_path).unwrap();
    assert_eq!(log.matches("build bake.toml").count(), 1, "{log}");
    assert!(log.contains("] layer etc: cached sha256:"), "{log}");
}

#[test]
fn log_and_no_log_flags() {
    let tmp = tempfile::tempdir().unwrap();
    write_files(tmp.path(), &[("bake.toml", RECIPE)]);
    ok(bake(tmp.path()).args([
        "build",
        "bake.toml",
        "--layout",
        "img",
        "--log",
        "build.txt",
        "--no-cache",
    ]));
    let log = fs_err::read_to_string(tmp.path().join("build.txt")).unwrap();
    assert!(log.contains("layer etc: built"), "{log}");
    assert!(!tmp.path().join("img.log").exists());

    let out = ok(bake(tmp.path()).args(["build", "bake.toml", "--layout", "img2", "--no-log", "--json"]));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["log"], serde_json::Value::Null);
    assert!(!tmp.path().join("img2.log").exists());

    // A log that cannot be written stops the build before it starts.
    let err = fails(bake(tmp.path()).args([
        "build",
        "bake.toml",
        "--layout",
        "img3",
        "--log",
        "no/such/dir/log",
    ]));
    assert!(
        err.contains("cannot write the build log no/such/dir/log"),
        "{err}"
    );
    assert!(!tmp.path().join("img3").exists());
}

#[test]
fn a_failed_build_logs_its_error() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = RECIPE.replace("dir = \"/srv\"", "copy = \"missing\"\n  to = \"/srv\"");
    write_files(tmp.path(), &[("bake.toml", &recipe)]);
    let err = fails(bake(tmp.path()).args(["build", "bake.toml", "--layout", "img", "--no-cache"]));
    let log = fs_err::read_to_string(tmp.path().join("img.log")).unwrap();
    let first = err.lines().find(|l| l.starts_with("error: ")).unwrap();
    assert!(first.starts_with("error: bake.toml:"), "{err}");
    // The same error, as the last lines of the log.
    assert!(
        log.lines()
            .last()
            .is_some_and(|l| l.ends_with(&format!("] {first}"))),
        "the error is not the log's last line:\n{log}\nstderr:\n{err}"
    );
    assert!(log.contains("] layer etc: built "), "{log}");
    assert!(!log.contains("manifest"), "{log}");
}
