//! Comparing manifests and configs, field by field.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::Image;
use crate::report::{Change, ConfigDiff, FieldChange, HistoryChange, IndexChange, KeyChange, ManifestDiff};

/// Top-level config fields compared first, in this order.
const CONFIG_TOP: [&str; 7] = [
    "created",
    "author",
    "architecture",
    "os",
    "variant",
    "os.version",
    "os.features",
];
/// `config.*` fields compared as whole values, in this order.
const CONFIG_RUN: [&str; 5] = ["Entrypoint", "Cmd", "User", "WorkingDir", "StopSignal"];
/// `config.*` fields compared per key.
const CONFIG_MAPS: [&str; 4] = ["Env", "Labels", "ExposedPorts", "Volumes"];
/// History entry fields, in this order (others follow by name).
const HISTORY_FIELDS: [&str; 5] = ["created", "created_by", "author", "comment", "empty_layer"];

pub(crate) fn manifest(a: &Image, b: &Image) -> ManifestDiff {
    let (ba, bb) = (a.base(), b.base());
    let mut d = ManifestDiff {
        identical: false,
        media_type: None,
        config: None,
        layer_count: None,
        annotations: Vec::new(),
        other: Vec::new(),
        notes: Vec::new(),
    };
    if a.manifest_digest().is_some() && a.manifest_digest() == b.manifest_digest() {
        d.identical = true;
        return d;
    }
    if ba.config_digest != bb.config_digest {
        d.config = Some(Change::new(
            Some(ba.config_digest.clone()),
            Some(bb.config_digest.clone()),
        ));
    }
    if ba.layers.len() != bb.layers.len() {
        d.layer_count = Some(Change::new(Some(ba.layers.len()), Some(bb.layers.len())));
    }
    match (a.manifest_json(), b.manifest_json()) {
        (Some(ja), Some(jb)) => {
            let mt = Change::new(ja.get("mediaType").cloned(), jb.get("mediaType").cloned());
            if mt.differs() {
                d.media_type = Some(mt);
            }
            d.annotations = key_changes(
                &string_map(ja.get("annotations")),
                &string_map(jb.get("annotations")),
            );
            let skip = ["mediaType", "config", "layers", "annotations"];
            d.other = object_changes(ja, jb, "", &skip);
            if let (Some(ca), Some(cb)) = (ja.get("config"), jb.get("config")) {
                d.other
                    .extend(object_changes(ca, cb, "config.", &["digest", "size"]));
            }
            if ja == jb {
                d.notes.push(
                    "the manifests hold the same JSON in other bytes (key order, whitespace or number formatting)"
                        .into(),
                );
            }
        }
        (None, None) => d.notes.push(
            "neither image has a manifest (docker-archives): only configs and layers are compared".into(),
        ),
        (None, Some(_)) => d.notes.push(
            "a is a docker-archive, which has no manifest: only configs and layers are compared".into(),
        ),
        (Some(_), None) => d.notes.push(
            "b is a docker-archive, which has no manifest: only configs and layers are compared".into(),
        ),
    }
    d
}

pub(crate) fn config(a: &Image, b: &Image) -> ConfigDiff {
    let (ba, bb) = (a.base(), b.base());
    let mut d = ConfigDiff {
        identical: ba.config_digest == bb.config_digest,
        fields: Vec::new(),
        env: Vec::new(),
        labels: Vec::new(),
        exposed_ports: Vec::new(),
        volumes: Vec::new(),
        history: Vec::new(),
        diff_ids: Vec::new(),
        notes: Vec::new(),
    };
    if d.identical {
        return d;
    }
    let (ja, jb) = (&ba.config_json, &bb.config_json);
    let empty = Value::Object(Map::new());

    for k in CONFIG_TOP {
        push_field(&mut d.fields, k, ja.get(k), jb.get(k));
    }
    let ca = ja.get("config").unwrap_or(&empty);
    let cb = jb.get("config").unwrap_or(&empty);
    for k in CONFIG_RUN {
        push_field(&mut d.fields, &format!("config.{k}"), ca.get(k), cb.get(k));
    }

    // Per-key fields; a whole-value change only when the keys agree but the
    // values still differ (order, or null against {}).
    let (env_a, env_b) = (env_map(ca.get("Env")), env_map(cb.get("Env")));
    d.env = key_changes(&env_a, &env_b);
    d.labels = key_changes(&string_map(ca.get("Labels")), &string_map(cb.get("Labels")));
    d.exposed_ports = key_changes(
        &string_map(ca.get("ExposedPorts")),
        &string_map(cb.get("ExposedPorts")),
    );
    d.volumes = key_changes(&string_map(ca.get("Volumes")), &string_map(cb.get("Volumes")));
    for (k, per_key) in CONFIG_MAPS.iter().zip([
        d.env.is_empty(),
        d.labels.is_empty(),
        d.exposed_ports.is_empty(),
        d.volumes.is_empty(),
    ]) {
        if per_key {
            push_field(&mut d.fields, &format!("config.{k}"), ca.get(*k), cb.get(*k));
        }
    }
    let known: Vec<&str> = CONFIG_RUN.iter().chain(&CONFIG_MAPS).copied().collect();
    d.fields.extend(object_changes(ca, cb, "config.", &known));

    // Other top-level fields, then rootfs (diff_ids per position).
    let mut skip: Vec<&str> = CONFIG_TOP.to_vec();
    skip.extend(["config", "history", "rootfs"]);
    d.fields.extend(object_changes(ja, jb, "", &skip));
    let ra = ja.get("rootfs").unwrap_or(&empty);
    let rb = jb.get("rootfs").unwrap_or(&empty);
    d.fields.extend(object_changes(ra, rb, "rootfs.", &["diff_ids"]));
    for i in 0..ba.diff_ids.len().max(bb.diff_ids.len()) {
        let (x, y) = (ba.diff_ids.get(i), bb.diff_ids.get(i));
        if x != y {
            d.diff_ids.push(IndexChange {
                index: i,
                a: x.cloned(),
                b: y.cloned(),
            });
        }
    }

    d.history = history(ja.get("history"), jb.get("history"));

    if d.fields.is_empty()
        && d.env.is_empty()
        && d.labels.is_empty()
        && d.exposed_ports.is_empty()
        && d.volumes.is_empty()
        && d.history.is_empty()
        && d.diff_ids.is_empty()
    {
        d.notes.push(if ja == jb {
            "the configs hold the same JSON in other bytes (key order, whitespace or number formatting)"
                .into()
        } else {
            "the configs differ in a way no field shows (duplicate keys?)".into()
        });
    }
    d
}

fn history(a: Option<&Value>, b: Option<&Value>) -> Vec<HistoryChange> {
    let list = |v: Option<&Value>| match v {
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    };
    let (la, lb) = (list(a), list(b));
    let empty = Value::Object(Map::new());
    let mut out = Vec::new();
    for i in 0..la.len().max(lb.len()) {
        let (x, y) = (la.get(i), lb.get(i));
        if x == y {
            continue;
        }
        let (ox, oy) = (x.unwrap_or(&empty), y.unwrap_or(&empty));
        let mut fields = Vec::new();
        if !ox.is_object() || !oy.is_object() {
            push_field(&mut fields, "", x, y);
        } else {
            for k in HISTORY_FIELDS {
                push_field(&mut fields, k, ox.get(k), oy.get(k));
            }
            fields.extend(object_changes(ox, oy, "", &HISTORY_FIELDS));
        }
        out.push(HistoryChange { index: i, fields });
    }
    out
}

/// Adds a change for `field` when the values differ.
fn push_field(out: &mut Vec<FieldChange>, field: &str, a: Option<&Value>, b: Option<&Value>) {
    if a != b {
        out.push(FieldChange {
            field: field.to_owned(),
            a: a.cloned(),
            b: b.cloned(),
        });
    }
}

/// Changes of the keys of two JSON objects not in `skip`, by key name,
/// each named `prefix` + key. A side that is not an object has no keys.
fn object_changes(a: &Value, b: &Value, prefix: &str, skip: &[&str]) -> Vec<FieldChange> {
    let keys = |v: &Value| -> BTreeSet<String> {
        v.as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let all: BTreeSet<String> = keys(a).union(&keys(b)).cloned().collect();
    let mut out = Vec::new();
    for k in all.iter().filter(|k| !skip.contains(&k.as_str())) {
        push_field(&mut out, &format!("{prefix}{k}"), a.get(k), b.get(k));
    }
    out
}

/// Added, removed and changed keys, sorted by key.
pub(crate) fn key_changes(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<KeyChange> {
    let all: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    all.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| KeyChange {
            key: k.clone(),
            a: a.get(k).cloned(),
            b: b.get(k).cloned(),
        })
        .collect()
}

/// A JSON object as key → value text (strings as they are, anything else
/// as compact JSON); anything but an object is empty.
pub(crate) fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), value_text(v))).collect())
        .unwrap_or_default()
}

/// `["K=V", …]` as K → V (a later duplicate wins, as in a container).
fn env_map(v: Option<&Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for item in v.and_then(Value::as_array).into_iter().flatten() {
        let text = value_text(item);
        match text.split_once('=') {
            Some((k, v)) => out.insert(k.to_owned(), v.to_owned()),
            None => out.insert(text, String::new()),
        };
    }
    out
}

pub(crate) fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl ManifestDiff {
    /// Nothing at the manifest level differs.
    pub fn is_empty(&self) -> bool {
        self.media_type.is_none()
            && self.config.is_none()
            && self.layer_count.is_none()
            && self.annotations.is_empty()
            && self.other.is_empty()
    }
}
