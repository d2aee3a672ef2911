//! The image config: what the recipe's `[config]` section says, merged over
//! the base image's config.

use std::collections::{BTreeMap, BTreeSet};

use bake_digest::Digest;
use serde_json::{Map, Value};

use crate::time::{MAX_EPOCH, created_rfc3339};
use crate::{BaseImage, ImageError, Platform, canonical_json};

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
/// bake does not know; known optional fields that are `null` are written
/// absent (see [`check_config`](crate::check_config) for the types a base
/// config must have; they are checked again here, naming the base's config
/// digest). `created` (top level and in each new history entry) is the
/// build `epoch` in RFC 3339; nothing in the config names bake or its
/// version. The bytes are [`canonical_json`], at most [`MAX_CONFIG_SIZE`]:
/// a larger config (a base near the limit, many layers) is an error, since
/// skopeo, podman and bake's own readers could not read it back.
pub fn build_config(
    base: Option<&BaseImage>,
    spec: &ConfigSpec,
    platform: &Platform,
    epoch: u64,
    new_layers: &[(Digest, String)],
) -> Result<Vec<u8>, ImageError> {
    if epoch > MAX_EPOCH {
        return Err(ImageError::EpochOutOfRange(epoch));
    }
    let base_what = base.map(|b| format!("config {} of the base image", b.config_digest));
    let what = base_what.as_deref().unwrap_or("base image config");
    let created = created_rfc3339(epoch);
    let mut root = match base.map(|b| &b.config_json) {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(invalid(what, "it is not a JSON object")),
    };
    if base.is_some() {
        check_types(&Value::Object(root.clone())).map_err(|reason| invalid(what, &reason))?;
    }
    for key in TOP_OPTIONAL {
        if root.get(key).is_some_and(Value::is_null) {
            root.remove(key);
        }
    }

    // Platform: a base for another platform is a caller bug, not something
    // to paper over.
    if base.is_some() {
        let found = config_platform(&Value::Object(root.clone()), what)?;
        if !platform.accepts(&found) {
            return Err(ImageError::PlatformMismatch {
                what: what.to_owned(),
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
    let mut diff_ids = diff_ids_of(&Value::Object(root.clone()), what)?;
    diff_ids.extend(new_layers.iter().map(|(d, _)| d.clone()));
    let mut rootfs = Map::new();
    rootfs.insert("type".into(), Value::String("layers".into()));
    rootfs.insert(
        "diff_ids".into(),
        Value::Array(diff_ids.iter().map(|d| Value::String(d.to_string())).collect()),
    );
    root.insert("rootfs".into(), Value::Object(rootfs));

    // history (entries checked by check_types: objects)
    let mut history = match root.remove("history") {
        Some(Value::Array(h)) => h,
        _ => Vec::new(),
    };
    for entry in &mut history {
        if let Value::Object(h) = entry {
            h.retain(|k, v| {
                !(v.is_null()
                    && (HISTORY_STRINGS.contains(&k.as_str()) || k == "created" || k == "empty_layer"))
            });
        }
    }
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
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    apply_spec(&mut cfg, spec)?;
    root.insert("config".into(), Value::Object(cfg));

    let bytes = canonical_json(&Value::Object(root));
    if bytes.len() as u64 > MAX_CONFIG_SIZE {
        return Err(ImageError::ConfigTooLarge {
            size: bytes.len() as u64,
            limit: MAX_CONFIG_SIZE,
            base: base
                .map(|b| {
                    format!(
                        " (on base config {}, {} bytes)",
                        b.config_digest,
                        b.config_bytes.len()
                    )
                })
                .unwrap_or_default(),
        });
    }
    Ok(bytes)
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
        Some(other) => return Err(invalid(what, &not_a(other, "rootfs", "an object"))),
    };
    match rootfs.get("type") {
        Some(Value::String(t)) if t == "layers" => {}
        Some(Value::String(t)) => {
            return Err(invalid(
                what,
                &format!("rootfs.type is {}, not \"layers\"", excerpt(t)),
            ));
        }
        other => {
            return Err(invalid(
                what,
                &format!(
                    "rootfs.type is {}, not the string \"layers\"",
                    other.map_or("absent", kind)
                ),
            ));
        }
    }
    match rootfs.get("diff_ids") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(ids)) => ids
            .iter()
            .enumerate()
            .map(|(i, id)| match id {
                Value::String(s) => s.parse::<Digest>().map_err(|_| {
                    invalid(
                        what,
                        &format!("rootfs.diff_ids[{i}] is {}, not a sha256 digest", excerpt(s)),
                    )
                }),
                other => Err(invalid(
                    what,
                    &not_a(other, &format!("rootfs.diff_ids[{i}]"), "a string"),
                )),
            })
            .collect(),
        Some(other) => Err(invalid(what, &not_a(other, "rootfs.diff_ids", "an array"))),
    }
}

/// The most bytes bake writes in an image config: 4 MiB, containers/image's
/// `MaxConfigBodySize` (skopeo, podman and buildah refuse a larger config
/// with "exceeded maximum allowed size of 4194304 bytes").
pub const MAX_CONFIG_SIZE: u64 = 4 << 20;

/// Checks the types of the fields the OCI image-spec config schema
/// (`schema/config-schema.json`) defines; the reason names the field (as a
/// path such as `config.Env[2]` or `history[0].created`).
///
/// * Known fields must have their schema type: strings, lists of strings,
///   `Labels` a map of strings, `ExposedPorts` and `Volumes` maps of
///   objects, `ArgsEscaped` and `history[].empty_layer` booleans, `history`
///   a list of objects, every `created` an RFC 3339 date-time.
/// * An optional field may be `null`, meaning absent (Docker writes `null`
///   for unset values; Go's decoders read it so); [`build_config`] writes
///   it absent. Inside a list or map, `null` is refused (`Env[2]` is null).
/// * Fields the schema does not define (Docker's `Healthcheck`, `OnBuild`,
///   `Shell`, `container_config`, extensions) are the base's content and
///   are kept exactly as they are; they are bounded only by the size of the
///   config and serde_json's nesting limit (128).
/// * `os`, `architecture` and `rootfs` are checked by `config_platform` and
///   [`diff_ids_of`].
pub(crate) fn check_types(config: &Value) -> Result<(), String> {
    let Value::Object(root) = config else {
        return Err("it is not a JSON object".into());
    };
    opt_time(root, "created", "created")?;
    for key in ["author", "architecture", "os", "variant", "os.version"] {
        opt_string(root.get(key), key)?;
    }
    opt_strings(root.get("os.features"), "os.features")?;
    match root.get("config") {
        None | Some(Value::Null) => {}
        Some(Value::Object(c)) => check_run_config(c)?,
        Some(v) => return Err(not_a(v, "config", "an object")),
    }
    match root.get("rootfs") {
        None | Some(Value::Null) | Some(Value::Object(_)) => {}
        Some(v) => return Err(not_a(v, "rootfs", "an object")),
    }
    match root.get("history") {
        None | Some(Value::Null) => {}
        Some(Value::Array(entries)) => {
            for (i, entry) in entries.iter().enumerate() {
                let at = format!("history[{i}]");
                let Value::Object(h) = entry else {
                    return Err(not_a(entry, &at, "an object"));
                };
                opt_time(h, "created", &format!("{at}.created"))?;
                for key in HISTORY_STRINGS {
                    opt_string(h.get(key), &format!("{at}.{key}"))?;
                }
                opt_bool(h.get("empty_layer"), &format!("{at}.empty_layer"))?;
            }
        }
        Some(v) => return Err(not_a(v, "history", "an array")),
    }
    Ok(())
}

/// The string fields of a history entry, besides `created`.
const HISTORY_STRINGS: [&str; 3] = ["author", "created_by", "comment"];

/// The known top-level fields that may be `null` and are written absent.
const TOP_OPTIONAL: [&str; 6] = [
    "author",
    "variant",
    "os.version",
    "os.features",
    "config",
    "history",
];

fn check_run_config(c: &Map<String, Value>) -> Result<(), String> {
    for key in ["User", "WorkingDir", "StopSignal"] {
        opt_string(c.get(key), &format!("config.{key}"))?;
    }
    for key in ["Env", "Entrypoint", "Cmd"] {
        opt_strings(c.get(key), &format!("config.{key}"))?;
    }
    opt_bool(c.get("ArgsEscaped"), "config.ArgsEscaped")?;
    match c.get("Labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                if !v.is_string() {
                    return Err(not_a(v, &format!("config.Labels[{}]", excerpt(k)), "a string"));
                }
            }
        }
        Some(v) => return Err(not_a(v, "config.Labels", "an object")),
    }
    for key in ["ExposedPorts", "Volumes"] {
        match c.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    if !v.is_object() {
                        return Err(not_a(v, &format!("config.{key}[{}]", excerpt(k)), "an object"));
                    }
                }
            }
            Some(v) => return Err(not_a(v, &format!("config.{key}"), "an object")),
        }
    }
    Ok(())
}

fn opt_string(v: Option<&Value>, at: &str) -> Result<(), String> {
    match v {
        None | Some(Value::Null) | Some(Value::String(_)) => Ok(()),
        Some(v) => Err(not_a(v, at, "a string")),
    }
}

fn opt_bool(v: Option<&Value>, at: &str) -> Result<(), String> {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(_)) => Ok(()),
        Some(v) => Err(not_a(v, at, "a boolean")),
    }
}

fn opt_strings(v: Option<&Value>, at: &str) -> Result<(), String> {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if !item.is_string() {
                    return Err(not_a(item, &format!("{at}[{i}]"), "a string"));
                }
            }
            Ok(())
        }
        Some(v) => Err(not_a(v, at, "an array of strings")),
    }
}

fn opt_time(m: &Map<String, Value>, key: &str, at: &str) -> Result<(), String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if crate::time::is_rfc3339(s) => Ok(()),
        Some(Value::String(s)) => Err(format!(
            "{at} is {}, not an RFC 3339 date-time (such as 2024-01-02T03:04:05Z)",
            excerpt(s)
        )),
        Some(v) => Err(not_a(v, at, "a string")),
    }
}

/// `"config.Env[2] is a number, not a string"`.
fn not_a(v: &Value, at: &str, wanted: &str) -> String {
    format!("{at} is {}, not {wanted}", kind(v))
}

/// The JSON type of `v`, with its article.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A short quoted excerpt of text from a base (a key or a value): at most
/// 40 characters, control characters and quotes escaped.
fn excerpt(s: &str) -> String {
    const MAX: usize = 40;
    let mut out: String = s.chars().take(MAX).collect();
    if s.chars().nth(MAX).is_some() {
        out.push('…');
    }
    format!("{out:?}")
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

    /// `config` as a loaded base image (what `check_config` would give, but
    /// not checked: `build_config` checks again).
    fn as_base(config: &Value) -> BaseImage {
        let config_bytes = canonical_json(config);
        BaseImage {
            manifest_digest: None,
            config_json: config.clone(),
            config_digest: Digest::of(&config_bytes),
            config_bytes,
            platform: amd64(),
            layers: Vec::new(),
            diff_ids: Vec::new(),
        }
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
        let out = parse(
            &build_config(
                Some(&as_base(&b)),
                &ConfigSpec::default(),
                &amd64(),
                1_700_000_000,
                &[],
            )
            .unwrap(),
        );
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
        let out = parse(&build_config(Some(&as_base(&base())), &spec, &amd64(), 0, &[]).unwrap());
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
        let out = parse(&build_config(Some(&as_base(&base())), &spec, &amd64(), 0, &[]).unwrap());
        assert_eq!(out["config"]["Entrypoint"], json!(["/app"]));
        assert!(out["config"].get("Cmd").is_none(), "{}", out["config"]);

        let spec = ConfigSpec {
            entrypoint: Some(vec!["/app".into()]),
            cmd: Some(vec!["x".into()]),
            ..ConfigSpec::default()
        };
        let out = parse(&build_config(Some(&as_base(&base())), &spec, &amd64(), 0, &[]).unwrap());
        assert_eq!(out["config"]["Cmd"], json!(["x"]));

        // An empty cmd clears it.
        let spec = ConfigSpec {
            cmd: Some(vec![]),
            ..ConfigSpec::default()
        };
        let out = parse(&build_config(Some(&as_base(&base())), &spec, &amd64(), 0, &[]).unwrap());
        assert!(out["config"].get("Cmd").is_none());
    }

    #[test]
    fn appends_diff_ids_and_history() {
        let new = [
            (Digest::of(b"one"), "layer one".to_owned()),
            (Digest::of(b"two"), "layer two".to_owned()),
        ];
        let out = parse(
            &build_config(
                Some(&as_base(&base())),
                &ConfigSpec::default(),
                &amd64(),
                86_400,
                &new,
            )
            .unwrap(),
        );
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
        let err = build_config(Some(&as_base(&b)), &ConfigSpec::default(), &amd64(), 0, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "config {} of the base image is for platform linux/arm64/v8, not linux/amd64",
                as_base(&b).config_digest
            )
        );
        let out = parse(
            &build_config(
                Some(&as_base(&b)),
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
        let err = build_config(Some(&as_base(&b)), &ConfigSpec::default(), &amd64(), 0, &[]).unwrap_err();
        assert!(err.to_string().contains("not a sha256 digest"), "{err}");
        let err = build_config(
            Some(&as_base(&json!([]))),
            &ConfigSpec::default(),
            &amd64(),
            0,
            &[],
        )
        .unwrap_err();
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
        let first = build_config(Some(&as_base(&b)), &spec, &amd64(), 0, &[]).unwrap();
        for _ in 0..50 {
            assert_eq!(
                build_config(Some(&as_base(&b)), &spec, &amd64(), 0, &[]).unwrap(),
                first
            );
        }
    }

    /// Sets the field at JSON pointer `at` (parents must exist) to `value`.
    fn with(mut v: Value, at: &str, value: Value) -> Value {
        let (parent, key) = at.rsplit_once('/').unwrap();
        let parent = if parent.is_empty() {
            &mut v
        } else {
            v.pointer_mut(parent).unwrap()
        };
        parent
            .as_object_mut()
            .unwrap()
            .insert(key.replace("~1", "/"), value);
        v
    }

    #[test]
    fn ill_typed_base_configs_are_refused_naming_the_field() {
        let cases: &[(&str, Value, &str)] = &[
            // Env
            (
                "/config/Env",
                json!(["A=1", "B=2", 3]),
                "config.Env[2] is a number, not a string",
            ),
            (
                "/config/Env",
                json!([null]),
                "config.Env[0] is null, not a string",
            ),
            (
                "/config/Env",
                json!("A=1"),
                "config.Env is a string, not an array of strings",
            ),
            (
                "/config/Env",
                json!({"A": "1"}),
                "config.Env is an object, not an array of strings",
            ),
            // Entrypoint, Cmd
            (
                "/config/Entrypoint",
                json!("/bin/sh -c x"),
                "config.Entrypoint is a string, not an array of strings",
            ),
            (
                "/config/Entrypoint",
                json!(["/bin/sh", false]),
                "config.Entrypoint[1] is a boolean, not a string",
            ),
            (
                "/config/Cmd",
                json!({"0": "sh"}),
                "config.Cmd is an object, not an array of strings",
            ),
            (
                "/config/Cmd",
                json!([["sh"]]),
                "config.Cmd[0] is an array, not a string",
            ),
            // Labels
            (
                "/config/Labels",
                json!({"keep": "yes", "n": 1}),
                "config.Labels[\"n\"] is a number, not a string",
            ),
            (
                "/config/Labels",
                json!({"a": null}),
                "config.Labels[\"a\"] is null, not a string",
            ),
            (
                "/config/Labels",
                json!({"a\nfake log line": {}}),
                "config.Labels[\"a\\nfake log line\"] is an object, not a string",
            ),
            (
                "/config/Labels",
                json!(["a=b"]),
                "config.Labels is an array, not an object",
            ),
            // ExposedPorts, Volumes
            (
                "/config/ExposedPorts",
                json!(["80/tcp"]),
                "config.ExposedPorts is an array, not an object",
            ),
            (
                "/config/ExposedPorts",
                json!("80/tcp"),
                "config.ExposedPorts is a string, not an object",
            ),
            (
                "/config/ExposedPorts",
                json!({"80/tcp": "yes"}),
                "config.ExposedPorts[\"80/tcp\"] is a string, not an object",
            ),
            (
                "/config/Volumes",
                json!("/data"),
                "config.Volumes is a string, not an object",
            ),
            (
                "/config/Volumes",
                json!({"/data": true}),
                "config.Volumes[\"/data\"] is a boolean, not an object",
            ),
            // User, WorkingDir, StopSignal, ArgsEscaped
            ("/config/User", json!(0), "config.User is a number, not a string"),
            (
                "/config/WorkingDir",
                json!(["/app"]),
                "config.WorkingDir is an array, not a string",
            ),
            (
                "/config/StopSignal",
                json!(15),
                "config.StopSignal is a number, not a string",
            ),
            (
                "/config/ArgsEscaped",
                json!("yes"),
                "config.ArgsEscaped is a string, not a boolean",
            ),
            ("/config", json!("Env=A"), "config is a string, not an object"),
            // history
            (
                "/history",
                json!({"created_by": "x"}),
                "history is an object, not an array",
            ),
            (
                "/history",
                json!("ADD rootfs"),
                "history is a string, not an array",
            ),
            (
                "/history",
                json!(["ADD rootfs"]),
                "history[0] is a string, not an object",
            ),
            ("/history", json!([{}, null]), "history[1] is null, not an object"),
            (
                "/history/0/created_by",
                json!(1),
                "history[0].created_by is a number, not a string",
            ),
            (
                "/history/1/comment",
                json!([]),
                "history[1].comment is an array, not a string",
            ),
            (
                "/history/0/author",
                json!({}),
                "history[0].author is an object, not a string",
            ),
            (
                "/history/1/empty_layer",
                json!("true"),
                "history[1].empty_layer is a string, not a boolean",
            ),
            (
                "/history/0/created",
                json!("yesterday"),
                "history[0].created is \"yesterday\", not an RFC 3339 date-time (such as 2024-01-02T03:04:05Z)",
            ),
            (
                "/history/0/created",
                json!(1_577_836_800),
                "history[0].created is a number, not a string",
            ),
            // rootfs
            (
                "/rootfs/type",
                json!("tarball"),
                "rootfs.type is \"tarball\", not \"layers\"",
            ),
            (
                "/rootfs/type",
                json!(["layers"]),
                "rootfs.type is an array, not the string \"layers\"",
            ),
            (
                "/rootfs/diff_ids",
                json!([7]),
                "rootfs.diff_ids[0] is a number, not a string",
            ),
            (
                "/rootfs/diff_ids",
                json!("sha256:00"),
                "rootfs.diff_ids is a string, not an array",
            ),
            ("/rootfs", json!("layers"), "rootfs is a string, not an object"),
            // created and the other top-level strings
            ("/created", json!(0), "created is a number, not a string"),
            (
                "/created",
                json!("2020-13-01T00:00:00Z"),
                "created is \"2020-13-01T00:00:00Z\", not an RFC 3339 date-time (such as 2024-01-02T03:04:05Z)",
            ),
            ("/author", json!(["someone"]), "author is an array, not a string"),
            ("/variant", json!(8), "variant is a number, not a string"),
            ("/os.version", json!(10), "os.version is a number, not a string"),
            (
                "/os.features",
                json!("sse4"),
                "os.features is a string, not an array of strings",
            ),
            (
                "/os.features",
                json!([1]),
                "os.features[0] is a number, not a string",
            ),
            (
                "/architecture",
                json!(64),
                "architecture is a number, not a string",
            ),
        ];
        for (at, value, reason) in cases {
            let config = with(base(), at, value.clone());
            let bytes = canonical_json(&config);
            let what = format!("config {}", Digest::of(&bytes));
            let err = crate::check_config(&bytes, &what, &amd64(), 1).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid {what}: {reason}"),
                "{at} = {value}"
            );
            // build_config checks again, naming the base's config digest.
            let err =
                build_config(Some(&as_base(&config)), &ConfigSpec::default(), &amd64(), 0, &[]).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid {what} of the base image: {reason}"),
                "{at} = {value}"
            );
        }
    }

    #[test]
    fn long_names_and_values_in_errors_are_short_excerpts() {
        let key = format!("{}\u{1b}[2J", "k".repeat(100));
        let config = with(base(), "/config/Labels", json!({ key: 1 }));
        let err = crate::check_config(&canonical_json(&config), "config c", &amd64(), 1).unwrap_err();
        let text = err.to_string();
        assert!(
            text.ends_with(&format!(
                "config.Labels[\"{}…\"] is a number, not a string",
                "k".repeat(40)
            )),
            "{text}"
        );
        let config = with(base(), "/history/0/created", json!("x".repeat(10_000) + "\n"));
        let text = crate::check_config(&canonical_json(&config), "config c", &amd64(), 1)
            .unwrap_err()
            .to_string();
        assert!(text.len() < 200 && !text.contains('\n'), "{text}");
    }

    #[test]
    fn docker_nulls_are_read_and_written_absent_and_unknown_fields_kept() {
        let mut b = base();
        for (at, v) in [
            ("/author", Value::Null),
            ("/variant", Value::Null),
            ("/os.version", Value::Null),
            ("/os.features", Value::Null),
            ("/config/Env", Value::Null),
            ("/config/Labels", Value::Null),
            ("/config/WorkingDir", Value::Null),
            ("/config/ArgsEscaped", Value::Null),
            ("/history/0/comment", Value::Null),
            ("/history/0/empty_layer", Value::Null),
            ("/history/1/x-unknown", Value::Null),
            (
                "/config/Healthcheck",
                json!({"Test": ["CMD", 1], "Interval": 30_000_000_000u64}),
            ),
            ("/config/OnBuild", json!(null)),
            ("/container_config", json!({"Env": [1, null], "Cmd": "sh"})),
            ("/x-vendor", json!([{"deep": [1.5, true, null]}])),
        ] {
            b = with(b, at, v);
        }
        let bytes = canonical_json(&b);
        let checked = crate::check_config(&bytes, "config c", &amd64(), 1).unwrap();
        assert_eq!(checked.json, b);
        let out = parse(&build_config(Some(&as_base(&b)), &ConfigSpec::default(), &amd64(), 0, &[]).unwrap());
        for gone in ["author", "variant", "os.version", "os.features"] {
            assert!(out.get(gone).is_none(), "{gone}: {out}");
        }
        assert!(out["config"].get("Env").is_none());
        assert!(
            out["config"].get("OnBuild").is_none(),
            "config nulls are dropped, as before"
        );
        assert_eq!(
            out["history"][0],
            json!({"created": "2020-01-01T00:00:00Z", "created_by": "ADD rootfs"})
        );
        // Unknown fields, even ill-typed by Docker's standards, stay as they were.
        assert_eq!(out["history"][1]["x-unknown"], Value::Null);
        assert_eq!(out["config"]["Healthcheck"], b["config"]["Healthcheck"]);
        assert_eq!(out["container_config"], b["container_config"]);
        assert_eq!(out["x-vendor"], b["x-vendor"]);
    }

    #[test]
    fn output_config_stays_within_what_readers_accept() {
        // A base just under the limit, and what makes the output cross it.
        let pad = |n: usize| with(base(), "/config/Labels/pad", json!("p".repeat(n)));
        let rebuilt = |v: &Value| {
            build_config(
                Some(&as_base(v)),
                &ConfigSpec::default(),
                &amd64(),
                1_577_836_800,
                &[],
            )
        };
        let overhead = rebuilt(&pad(0)).unwrap().len();
        let at_limit = pad(MAX_CONFIG_SIZE as usize - overhead);
        // A base whose output is exactly at the limit is fine, and reads back.
        let out = build_config(
            Some(&as_base(&at_limit)),
            &ConfigSpec::default(),
            &amd64(),
            1_577_836_800,
            &[],
        )
        .unwrap();
        assert_eq!(out.len() as u64, MAX_CONFIG_SIZE);
        let out_again = crate::check_config(&out, "config c", &amd64(), 1).unwrap();
        assert_eq!(canonical_json(&out_again.json), out);

        // One layer more is too much: the error names the base config.
        let b = as_base(&at_limit);
        let err = build_config(
            Some(&b),
            &ConfigSpec::default(),
            &amd64(),
            1_577_836_800,
            &[(Digest::of(b"l"), "bake layer app".into())],
        )
        .unwrap_err();
        assert!(matches!(err, ImageError::ConfigTooLarge { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("on base config {}", b.config_digest))
                && text.contains("more than the 4194304"),
            "{text}"
        );
        // So is a label from the recipe.
        let spec = ConfigSpec {
            labels: BTreeMap::from([("x".into(), "y".into())]),
            ..ConfigSpec::default()
        };
        assert!(matches!(
            build_config(Some(&b), &spec, &amd64(), 1_577_836_800, &[]),
            Err(ImageError::ConfigTooLarge { .. })
        ));
        // And on scratch, too many or too long layers names.
        let layers: Vec<(Digest, String)> = (0..3).map(|i| (Digest::of(&[i]), "n".repeat(2 << 20))).collect();
        let err = build_config(None, &ConfigSpec::default(), &amd64(), 0, &layers).unwrap_err();
        assert!(err.to_string().starts_with("the image config would be "), "{err}");
    }
}
