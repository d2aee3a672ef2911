//! The image config: what the recipe's `[config]` section says, merged over
//! the base image's config.

use std::collections::{BTreeMap, BTreeSet};

use bake_digest::Digest;
use serde_json::{Map, Value};

use crate::time::{MAX_EPOCH, created_rfc3339};
use crate::{ImageError, Platform, canonical_json};

/// The recipe's `[config]` section. Every field left `None` or empty
/// inherits the base image's value.
///
/// * `entrypoint`, `cmd`, `user`, `workdir`, `stop_signal`: replace the
///   base's value when set. An empty `entrypoint` or `cmd` list clears it.
///   **Setting `entrypoint` without `cmd` drops the base's `cmd`** (Docker's
///   rule: a base's arguments rarely make sense for a new entrypoint).
/// * `env`: merged over the base's `Env` by variable name. A variable the
///   base has keeps its position with the new value; new variables are
///   appended in name order.
/// * `labels`: merged over the base's labels.
/// * `exposed_ports` (`"8080"`, `"8080/tcp"`, `"53/udp"`; a bare port means
///   tcp) and `volumes`: added to the base's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSpec {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub exposed_ports: Vec<String>,
    pub volumes: Vec<String>,
    pub stop_signal: Option<String>,
}

/// Builds the config blob of a new image: `base`'s config (if any) with
/// `spec` applied, the platform set, and one `rootfs.diff_ids` and one
/// `history` entry appended per new layer (`(diffID, created_by)`).
///
/// Everything else in the base config is kept as it is, including fields
/// bake does not know. `created` (top level and in each new history entry)
/// is the build `epoch` in RFC 3339; nothing in the config names bake or its
/// version. The bytes are [`canonical_json`].
pub fn build_config(
    base: Option<&Value>,
    spec: &ConfigSpec,
    platform: &Platform,
    epoch: u64,
    new_layers: &[(Digest, String)],
) -> Result<Vec<u8>, ImageError> {
    if epoch > MAX_EPOCH {
        return Err(ImageError::EpochOutOfRange(epoch));
    }
    let created = created_rfc3339(epoch);
    let mut root = match base {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(invalid("base image config", "it is not a JSON object")),
    };

    // Platform: a base for another platform is a caller bug, not something
    // to paper over.
    if base.is_some() {
        let found = config_platform(&Value::Object(root.clone()), "base image config")?;
        if !platform.accepts(&found) {
            return Err(ImageError::PlatformMismatch {
                what: "base image config".into(),
                wanted: platform.to_string(),
                found: found.to_string(),
            });
        }
    }
    root.insert("os".into(), Value::String(platform.os.clone()));
    root.insert(
        "architecture".into(),
        Value::String(platform.architecture.clone()),
    );
    if let Some(v) = &platform.variant {
        root.insert("variant".into(), Value::String(v.clone()));
    }
    root.insert("created".into(), Value::String(created.clone()));

    // rootfs
    let mut diff_ids = diff_ids_of(&Value::Object(root.clone()), "base image config")?;
    diff_ids.extend(new_layers.iter().map(|(d, _)| d.clone()));
    let mut rootfs = Map::new();
    rootfs.insert("type".into(), Value::String("layers".into()));
    rootfs.insert(
        "diff_ids".into(),
        Value::Array(diff_ids.iter().map(|d| Value::String(d.to_string())).collect()),
    );
    root.insert("rootfs".into(), Value::Object(rootfs));

    // history
    let mut history = match root.remove("history") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(h)) => h,
        Some(_) => return Err(invalid("base image config", "history is not a list")),
    };
    for (_, created_by) in new_layers {
        let mut h = Map::new();
        h.insert("created".into(), Value::String(created.clone()));
        h.insert("created_by".into(), Value::String(created_by.clone()));
        history.push(Value::Object(h));
    }
    if !history.is_empty() {
        root.insert("history".into(), Value::Array(history));
    }

    // config
    let mut cfg = match root.remove("config") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(invalid("base image config", "config is not a JSON object")),
    };
    apply_spec(&mut cfg, spec)?;
    root.insert("config".into(), Value::Object(cfg));

    Ok(canonical_json(&Value::Object(root)))
}

fn apply_spec(cfg: &mut Map<String, Value>, spec: &ConfigSpec) -> Result<(), ImageError> {
    // Docker writes `null` for absent values; drop those so "unset" has one spelling.
    cfg.retain(|_, v| !v.is_null());

    fn set_list(cfg: &mut Map<String, Value>, key: &str, list: &[String]) {
        if list.is_empty() {
            cfg.remove(key);
        } else {
            cfg.insert(
                key.into(),
                Value::Array(list.iter().cloned().map(Value::String).collect()),
            );
        }
    }
    if let Some(ep) = &spec.entrypoint {
        set_list(cfg, "Entrypoint", ep);
        if spec.cmd.is_none() {
            cfg.remove("Cmd");
        }
    }
    if let Some(cmd) = &spec.cmd {
        set_list(cfg, "Cmd", cmd);
    }
    for (key, value) in [
        ("User", &spec.user),
        ("WorkingDir", &spec.workdir),
        ("StopSignal", &spec.stop_signal),
    ] {
        if let Some(v) = value {
            cfg.insert(key.into(), Value::String(v.clone()));
        }
    }

    if !spec.env.is_empty() {
        let base_env = match cfg.remove("Env") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s),
                    _ => Err(invalid("base image config", "config.Env holds a non-string")),
                })
                .collect::<Result<Vec<String>, _>>()?,
            Some(_) => return Err(invalid("base image config", "config.Env is not a list")),
        };
        let mut seen = BTreeSet::new();
        let mut env = Vec::with_capacity(base_env.len() + spec.env.len());
        for entry in base_env {
            let name = entry
                .split_once('=')
                .map_or(entry.as_str(), |(n, _)| n)
                .to_owned();
            match spec.env.get(&name) {
                Some(v) => env.push(format!("{name}={v}")),
                None => env.push(entry),
            }
            seen.insert(name);
        }
        for (name, value) in &spec.env {
            if name.is_empty() || name.contains('=') {
                return Err(invalid(
                    "config",
                    &format!("environment variable name {name:?} is empty or contains '='"),
                ));
            }
            if !seen.contains(name) {
                env.push(format!("{name}={value}"));
            }
        }
        cfg.insert(
            "Env".into(),
            Value::Array(env.into_iter().map(Value::String).collect()),
        );
    }

    if !spec.labels.is_empty() {
        let mut labels = take_object(cfg, "Labels")?;
        for (k, v) in &spec.labels {
            labels.insert(k.clone(), Value::String(v.clone()));
        }
        cfg.insert("Labels".into(), Value::Object(labels));
    }

    if !spec.exposed_ports.is_empty() {
        let mut ports = take_object(cfg, "ExposedPorts")?;
        for p in &spec.exposed_ports {
            ports.insert(normalise_port(p)?, Value::Object(Map::new()));
        }
        cfg.insert("ExposedPorts".into(), Value::Object(ports));
    }

    if !spec.volumes.is_empty() {
        let mut volumes = take_object(cfg, "Volumes")?;
        for v in &spec.volumes {
            volumes.insert(v.clone(), Value::Object(Map::new()));
        }
        cfg.insert("Volumes".into(), Value::Object(volumes));
    }
    Ok(())
}

fn take_object(cfg: &mut Map<String, Value>, key: &str) -> Result<Map<String, Value>, ImageError> {
    match cfg.remove(key) {
        None => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(invalid(
            "base image config",
            &format!("config.{key} is not a JSON object"),
        )),
    }
}

/// `"8080"` → `"8080/tcp"`; checks the port number and protocol.
fn normalise_port(p: &str) -> Result<String, ImageError> {
    let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let port_ok = !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && !port.starts_with('0')
        && port.parse::<u16>().is_ok();
    if port_ok && matches!(proto, "tcp" | "udp" | "sctp") {
        Ok(format!("{port}/{proto}"))
    } else {
        Err(ImageError::InvalidPort(p.to_owned()))
    }
}

/// The platform a config declares (`os`, `architecture`, optional `variant`).
pub(crate) fn config_platform(config: &Value, what: &str) -> Result<Platform, ImageError> {
    let field = |name: &str| match config.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(_)) => Ok(None),
        Some(_) => Err(invalid(what, &format!("{name} is not a string"))),
    };
    let os = field("os")?.ok_or_else(|| invalid(what, "it has no os"))?;
    let architecture = field("architecture")?.ok_or_else(|| invalid(what, "it has no architecture"))?;
    Ok(Platform {
        os,
        architecture,
        variant: field("variant")?,
    })
}

/// A config's `rootfs.diff_ids`, checked (missing `rootfs` means none).
pub(crate) fn diff_ids_of(config: &Value, what: &str) -> Result<Vec<Digest>, ImageError> {
    let rootfs = match config.get("rootfs") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(r)) => r,
        Some(_) => return Err(invalid(what, "rootfs is not a JSON object")),
    };
    match rootfs.get("type") {
        Some(Value::String(t)) if t == "layers" => {}
        other => {
            return Err(invalid(
                what,
                &format!(
                    "rootfs.type is {}, expected \"layers\"",
                    other.unwrap_or(&Value::Null)
                ),
            ));
        }
    }
    match rootfs.get("diff_ids") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(ids)) => ids
            .iter()
            .map(|id| {
                id.as_str().and_then(|s| s.parse::<Digest>().ok()).ok_or_else(|| {
                    invalid(
                        what,
                        &format!("rootfs.diff_ids holds {id}, which is not a sha256 digest"),
                    )
                })
            })
            .collect(),
        Some(_) => Err(invalid(what, "rootfs.diff_ids is not a list")),
    }
}

fn invalid(what: &str, reason: &str) -> ImageError {
    ImageError::Invalid {
        what: what.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn amd64() -> Platform {
        Platform::linux_amd64()
    }

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    fn base() -> Value {
        json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "2020-01-01T00:00:00Z",
            "author": "someone",
            "docker_version": "20.10.0",
            "config": {
                "Env": ["PATH=/usr/bin:/bin", "LANG=C", "HOME=/root"],
                "Cmd": ["/bin/sh"],
                "Entrypoint": null,
                "Labels": {"maintainer": "base", "keep": "yes"},
                "ExposedPorts": {"22/tcp": {}},
                "Volumes": null,
                "Healthcheck": {"Test": ["CMD", "true"]},
                "User": "root"
            },
            "rootfs": {"type": "layers", "diff_ids": [Digest::of(b"base layer").to_string()]},
            "history": [
                {"created": "2020-01-01T00:00:00Z", "created_by": "ADD rootfs"},
                {"created": "2020-01-01T00:00:00Z", "created_by": "CMD sh", "empty_layer": true}
            ]
        })
    }

    #[test]
    fn scratch_config_is_exact() {
        let d = Digest::of(b"layer");
        let bytes = build_config(
            None,
            &ConfigSpec::default(),
            &amd64(),
            0,
            &[(d.clone(), "bake layer app".into())],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            format!(
                r#"{{"architecture":"amd64","config":{{}},"created":"1970-01-01T00:00:00Z","history":[{{"created":"1970-01-01T00:00:00Z","created_by":"bake layer app"}}],"os":"linux","rootfs":{{"diff_ids":["{d}"],"type":"layers"}}}}"#
            )
        );
    }

    #[test]
    fn inherits_everything_when_spec_is_empty() {
        let b = base();
        let out =
            parse(&build_config(Some(&b), &ConfigSpec::default(), &amd64(), 1_700_000_000, &[]).unwrap());
        let mut cfg = b["config"].clone();
        // nulls are dropped, nothing else changes
        cfg.as_object_mut().unwrap().retain(|_, v| !v.is_null());
        assert_eq!(out["config"], cfg);
        assert_eq!(out["created"], "2023-11-14T22:13:20Z");
        assert_eq!(out["author"], "someone");
        assert_eq!(out["docker_version"], "20.10.0");
        assert_eq!(out["history"], b["history"]);
        assert_eq!(out["rootfs"], b["rootfs"]);
    }

    #[test]
    fn overrides_and_merges() {
        let spec = ConfigSpec {
            cmd: Some(vec!["--serve".into()]),
            env: BTreeMap::from([
                ("LANG".into(), "C.UTF-8".into()),
                ("ZED".into(), "z".into()),
                ("ALPHA".into(), "a=b".into()),
            ]),
            user: Some("1000:1000".into()),
            workdir: Some("/app".into()),
            labels: BTreeMap::from([("maintainer".into(), "us".into()), ("new".into(), "1".into())]),
            exposed_ports: vec!["8080".into(), "53/udp".into()],
            volumes: vec!["/data".into()],
            stop_signal: Some("SIGTERM".into()),
            ..ConfigSpec::default()
        };
        let out = parse(&build_config(Some(&base()), &spec, &amd64(), 0, &[]).unwrap());
        let c = &out["config"];
        assert_eq!(
            c["Env"],
            json!([
                "PATH=/usr/bin:/bin",
                "LANG=C.UTF-8",
                "HOME=/root",
                "ALPHA=a=b",
                "ZED=z"
            ])
        );
        assert_eq!(c["Cmd"], json!(["--serve"]));
        assert_eq!(c["User"], "1000:1000");
        assert_eq!(c["WorkingDir"], "/app");
        assert_eq!(c["StopSignal"], "SIGTERM");
        assert_eq!(
            c["Labels"],
            json!({"keep": "yes", "maintainer": "us", "new": "1"})
        );
        assert_eq!(
            c["ExposedPorts"],
            json!({"22/tcp": {}, "53/udp": {}, "8080/tcp": {}})
        );
        assert_eq!(c["Volumes"], json!({"/data": {}}));
        assert_eq!(c["Healthcheck"], json!({"Test": ["CMD", "true"]}));
        assert!(c.get("Entrypoint").is_none());
    }

    #[test]
    fn entrypoint_without_cmd_drops_base_cmd() {
        let spec = ConfigSpec {
            entrypoint: Some(vec!["/app".into()]),
            ..ConfigSpec::default()
        };
        let out = parse(&build_config(Some(&base()), &spec, &amd64(), 0, &[]).unwrap());
        assert_eq!(out["config"]["Entrypoint"], json!(["/app"]));
        assert!(out["config"].get("Cmd").is_none(), "{}", out["config"]);

        let spec = ConfigSpec {
            entrypoint: Some(vec!["/app".into()]),
            cmd: Some(vec!["x".into()]),
            ..ConfigSpec::default()
        };
        let out = parse(&build_config(Some(&base()), &spec, &amd64(), 0, &[]).unwrap());
        assert_eq!(out["config"]["Cmd"], json!(["x"]));

        // An empty cmd clears it.
        let spec = ConfigSpec {
            cmd: Some(vec![]),
            ..ConfigSpec::default()
        };
        let out = parse(&build_config(Some(&base()), &spec, &amd64(), 0, &[]).unwrap());
        assert!(out["config"].get("Cmd").is_none());
    }

    #[test]
    fn appends_diff_ids_and_history() {
        let new = [
            (Digest::of(b"one"), "layer one".to_owned()),
            (Digest::of(b"two"), "layer two".to_owned()),
        ];
        let out =
            parse(&build_config(Some(&base()), &ConfigSpec::default(), &amd64(), 86_400, &new).unwrap());
        assert_eq!(
            out["rootfs"]["diff_ids"],
            json!([
                Digest::of(b"base layer").to_string(),
                Digest::of(b"one").to_string(),
                Digest::of(b"two").to_string()
            ])
        );
        let history = out["history"].as_array().unwrap();
        assert_eq!(history.len(), 4);
        assert_eq!(history[1]["empty_layer"], true);
        assert_eq!(
            history[2],
            json!({"created": "1970-01-02T00:00:00Z", "created_by": "layer one"})
        );
        assert_eq!(
            history[3],
            json!({"created": "1970-01-02T00:00:00Z", "created_by": "layer two"})
        );
    }

    #[test]
    fn platform_is_checked_and_variant_kept() {
        let mut b = base();
        b["architecture"] = json!("arm64");
        b["variant"] = json!("v8");
        let err = build_config(Some(&b), &ConfigSpec::default(), &amd64(), 0, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "base image config is for platform linux/arm64/v8, not linux/amd64"
        );
        let out = parse(
            &build_config(
                Some(&b),
                &ConfigSpec::default(),
                &"linux/arm64".parse().unwrap(),
                0,
                &[],
            )
            .unwrap(),
        );
        assert_eq!(out["variant"], "v8");
    }

    #[test]
    fn rejects_bad_input() {
        let epoch_err = build_config(None, &ConfigSpec::default(), &amd64(), MAX_EPOCH + 1, &[]).unwrap_err();
        assert!(matches!(epoch_err, ImageError::EpochOutOfRange(_)));
        for p in ["0", "65536", "80/tcpx", "http", "", "08"] {
            let spec = ConfigSpec {
                exposed_ports: vec![p.into()],
                ..ConfigSpec::default()
            };
            let err = build_config(None, &spec, &amd64(), 0, &[]).unwrap_err();
            assert!(matches!(err, ImageError::InvalidPort(_)), "{p}: {err}");
        }
        let mut b = base();
        b["rootfs"]["diff_ids"] = json!(["sha256:nothex"]);
        let err = build_config(Some(&b), &ConfigSpec::default(), &amd64(), 0, &[]).unwrap_err();
        assert!(err.to_string().contains("not a sha256 digest"), "{err}");
        let err = build_config(Some(&json!([])), &ConfigSpec::default(), &amd64(), 0, &[]).unwrap_err();
        assert!(err.to_string().contains("not a JSON object"), "{err}");
    }

    #[test]
    fn many_labels_give_identical_bytes() {
        let spec = ConfigSpec {
            labels: (0..100)
                .map(|i| (format!("l{}", (i * 37) % 100), format!("{i}")))
                .collect(),
            ..ConfigSpec::default()
        };
        let b = base();
        let first = build_config(Some(&b), &spec, &amd64(), 0, &[]).unwrap();
        for _ in 0..50 {
            assert_eq!(build_config(Some(&b), &spec, &amd64(), 0, &[]).unwrap(), first);
        }
    }
}
