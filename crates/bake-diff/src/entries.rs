//! Comparing the entries of two layers: added, removed, changed (and how),
//! and order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bake_layer::EntrySummary;
use serde_json::{Value, json};

use crate::report::{
    Change, EntryChange, EntryChangeKind, EntryCounts, EntryInfo, FieldChange, LayerDiff, OrderChange,
    Whiteout,
};

/// An entry's identity: its name without leading `./` or `/` and trailing
/// `/`, and which occurrence of that name it is in its layer.
type Key = (String, usize);

/// Fills `d`'s entries, summary and order from the two layers' entries
/// (either side may be empty: a layer only one image has).
pub(crate) fn compare(a: &[EntrySummary], b: &[EntrySummary], d: &mut LayerDiff) {
    let (ka, kb) = (keys(a), keys(b));
    let ma: BTreeMap<&Key, &EntrySummary> = ka.iter().zip(a).collect();
    let mb: BTreeMap<&Key, &EntrySummary> = kb.iter().zip(b).collect();
    let all: BTreeSet<&Key> = ma.keys().chain(mb.keys()).copied().collect();
    let mut counts = EntryCounts {
        entries: Change::new(Some(a.len()), Some(b.len())),
        added: 0,
        removed: 0,
        changed: 0,
        fields: BTreeMap::new(),
    };
    for key in all {
        let (x, y) = (ma.get(key).copied(), mb.get(key).copied());
        let (change, fields) = match (x, y) {
            (Some(x), Some(y)) => {
                let fields = fields(x, y);
                if fields.is_empty() {
                    continue;
                }
                counts.changed += 1;
                for f in &fields {
                    *counts.fields.entry(f.field.clone()).or_default() += 1;
                }
                (EntryChangeKind::Changed, fields)
            }
            (Some(_), None) => {
                counts.removed += 1;
                (EntryChangeKind::Removed, Vec::new())
            }
            (None, _) => {
                counts.added += 1;
                (EntryChangeKind::Added, Vec::new())
            }
        };
        let Some(shown) = y.or(x) else { continue };
        d.entries.push(EntryChange {
            path: shown.path.clone(),
            occurrence: key.1,
            change,
            whiteout: whiteout(&key.0),
            a: x.map(info),
            b: y.map(info),
            fields,
            content: None,
        });
    }
    if !a.is_empty() && !b.is_empty() {
        d.order = order(&ka, &kb, &ma, &mb, counts.added == 0 && counts.removed == 0);
    }
    d.summary = Some(counts);
}

fn keys(entries: &[EntrySummary]) -> Vec<Key> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    entries
        .iter()
        .map(|e| {
            let name = normalise(&e.path);
            let n = seen.entry(name.clone()).or_default();
            let key = (name, *n);
            *n += 1;
            key
        })
        .collect()
}

fn normalise(path: &str) -> String {
    let mut p = path;
    loop {
        if let Some(rest) = p.strip_prefix("./") {
            p = rest;
        } else if let Some(rest) = p.strip_prefix('/') {
            p = rest;
        } else {
            break;
        }
    }
    p.trim_end_matches('/').to_owned()
}

/// The OCI whiteout a (normalised) name is, if any.
fn whiteout(name: &str) -> Option<Whiteout> {
    let (dir, file) = match name.rsplit_once('/') {
        Some((d, f)) => (format!("{d}/"), f),
        None => (String::new(), name),
    };
    if file == ".wh..wh..opq" {
        return Some(Whiteout::Opaque(if dir.is_empty() { "/".into() } else { dir }));
    }
    file.strip_prefix(".wh.")
        .map(|deleted| Whiteout::Deletes(format!("{dir}{deleted}")))
}

fn info(e: &EntrySummary) -> EntryInfo {
    EntryInfo {
        kind: e.kind,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        mtime: e.mtime,
        size: e.size,
        sha256: e.sha256.clone(),
        link_target: e.link_target.clone(),
    }
}

/// What differs between two entries of the same name, in a fixed order.
fn fields(a: &EntrySummary, b: &EntrySummary) -> Vec<FieldChange> {
    let mut out = Vec::new();
    let o = &mut out;
    push(o, "type", json!(a.kind), json!(b.kind));
    push(o, "content", json!(a.sha256), json!(b.sha256));
    push(o, "size", json!(a.size), json!(b.size));
    push(o, "mode", json!(a.mode), json!(b.mode));
    push(o, "uid", json!(a.uid), json!(b.uid));
    push(o, "gid", json!(a.gid), json!(b.gid));
    push(o, "uname", json!(a.uname), json!(b.uname));
    push(o, "gname", json!(a.gname), json!(b.gname));
    push(o, "mtime", json!(a.mtime), json!(b.mtime));
    push(o, "linkTarget", json!(a.link_target), json!(b.link_target));
    push(o, "device", json!(a.device), json!(b.device));
    push(o, "format", json!(a.format), json!(b.format));
    push(o, "name", json!(a.path), json!(b.path));
    let xattr_names: BTreeSet<&String> = a.xattrs.keys().chain(b.xattrs.keys()).collect();
    for name in xattr_names {
        let text = |v: Option<&Vec<u8>>| v.map_or(Value::Null, |v| Value::String(xattr_text(name, v)));
        push(
            o,
            &format!("xattr:{name}"),
            text(a.xattrs.get(name)),
            text(b.xattrs.get(name)),
        );
    }
    // A PAX record whose field was already named above is not named twice.
    let named: BTreeSet<String> = o.iter().map(|f| f.field.clone()).collect();
    let pax_keys: BTreeSet<&String> = a.pax.keys().chain(b.pax.keys()).collect();
    for key in pax_keys {
        let covers = match key.as_str() {
            "path" => "name",
            "linkpath" => "linkTarget",
            other => other,
        };
        if !named.contains(covers) {
            push(
                o,
                &format!("pax:{key}"),
                json!(a.pax.get(key)),
                json!(b.pax.get(key)),
            );
        }
    }
    out
}

/// Adds a change for `field` when the values differ (`null` is absent).
fn push(out: &mut Vec<FieldChange>, field: &str, a: Value, b: Value) {
    if a != b {
        let some = |v: Value| if v.is_null() { None } else { Some(v) };
        out.push(FieldChange {
            field: field.to_owned(),
            a: some(a),
            b: some(b),
        });
    }
}

/// An extended attribute's value: file capabilities as `getcap` shows them
/// and their bytes (`cap_net_raw=ep (0x0100…)`: two encodings of the same
/// capabilities differ), other values as text when they are printable
/// UTF-8, else `0x` and hex.
fn xattr_text(name: &str, v: &[u8]) -> String {
    let hex = || {
        let mut out = String::from("0x");
        for b in v {
            out.push_str(&format!("{b:02x}"));
        }
        out
    };
    if name == CAPS_XATTR {
        if let Ok(caps) = bake_layer::FileCaps::from_xattr(v) {
            return format!("{caps} ({})", hex());
        }
    }
    match std::str::from_utf8(v) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_owned(),
        _ => hex(),
    }
}

/// The extended attribute that holds file capabilities.
const CAPS_XATTR: &str = "security.capability";

/// The first position where the entries both layers have come in another
/// order.
fn order(
    ka: &[Key],
    kb: &[Key],
    ma: &BTreeMap<&Key, &EntrySummary>,
    mb: &BTreeMap<&Key, &EntrySummary>,
    same_entries: bool,
) -> Option<OrderChange> {
    let ca = ka.iter().filter(|k| mb.contains_key(k));
    let cb = kb.iter().filter(|k| ma.contains_key(k));
    let (position, (x, y)) = ca.zip(cb).enumerate().find(|(_, (x, y))| x != y)?;
    let sorted = |entries: &BTreeMap<&Key, &EntrySummary>, keys: &[Key]| {
        keys.windows(2)
            .all(|w| match (entries.get(&w[0]), entries.get(&w[1])) {
                (Some(p), Some(q)) => p.path.as_bytes() <= q.path.as_bytes(),
                _ => true,
            })
    };
    let path = |entries: &BTreeMap<&Key, &EntrySummary>, k: &Key| {
        entries.get(k).map_or_else(|| k.0.clone(), |e| e.path.clone())
    };
    Some(OrderChange {
        position,
        a: path(ma, x),
        b: path(mb, y),
        same_entries,
        a_sorted: sorted(ma, ka),
        b_sorted: sorted(mb, kb),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_whiteouts() {
        assert_eq!(normalise("./usr/bin/"), "usr/bin");
        assert_eq!(normalise("/.//etc"), "etc");
        assert_eq!(whiteout("tmp/.wh.old"), Some(Whiteout::Deletes("tmp/old".into())));
        assert_eq!(whiteout(".wh.top"), Some(Whiteout::Deletes("top".into())));
        assert_eq!(
            whiteout("usr/share/.wh..wh..opq"),
            Some(Whiteout::Opaque("usr/share/".into()))
        );
        assert_eq!(whiteout("usr/.whatever"), None);
        assert_eq!(xattr_text("user.a", b"user.x"), "user.x");
        assert_eq!(xattr_text("user.a", &[1, 0, 0, 2]), "0x01000002");
        let caps = bake_layer::FileCaps::parse("cap_net_raw+ep").unwrap().to_xattr();
        assert_eq!(
            xattr_text("security.capability", &caps),
            "cap_net_raw=ep (0x0100000200200000000000000000000000000000)"
        );
        // Malformed: bytes as they are.
        assert_eq!(xattr_text("security.capability", &[1, 0, 0, 2]), "0x01000002");
    }
}
