//! The report for people: concise, grouped, top-down.

use std::fmt::Write;

use bake_digest::Digest;
use serde_json::Value;

use crate::compare::value_text;
use crate::report::{
    Change, ContentDiff, DiffReport, EntryChange, EntryChangeKind, FieldChange, ImageSummary, KeyChange,
    LayerDiff, LayerStatus, Whiteout,
};

/// Longest value shown in full (history `created_by` lines can be huge).
const MAX_VALUE: usize = 160;

impl DiffReport {
    /// The report as text for people, one section per level: a line saying
    /// the images are identical, or the manifest, the config and each layer
    /// that differs, with at most `max_entries` entry changes per layer
    /// (0: all; the rest are counted).
    pub fn to_human(&self, max_entries: usize) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_human(&mut s, max_entries);
        s
    }

    fn write_human(&self, w: &mut String, max_entries: usize) -> std::fmt::Result {
        if self.identical {
            return match (&self.a.manifest, &self.b.manifest) {
                (Some(m), Some(n)) if m == n => writeln!(w, "identical: both images are manifest {m}"),
                _ => writeln!(
                    w,
                    "identical: the same config {} and layers (a docker-archive has no manifest to compare)",
                    self.a.config
                ),
            };
        }
        summary_line(w, "a", &self.a)?;
        summary_line(w, "b", &self.b)?;

        let m = &self.manifest;
        if m.identical {
            writeln!(w, "manifest: identical")?;
        } else {
            match (&self.a.manifest, &self.b.manifest) {
                (Some(x), Some(y)) => writeln!(w, "manifest: differs ({} → {})", short(x), short(y))?,
                _ => writeln!(w, "manifest:")?,
            }
            if let Some(c) = &m.config {
                writeln!(w, "  config: {}", change_digest(c))?;
            }
            if let Some(c) = &m.layer_count {
                writeln!(w, "  layers: {} → {}", opt(&c.a), opt(&c.b))?;
            }
            if let Some(c) = &m.media_type {
                writeln!(w, "  mediaType: {} → {}", value(&c.a), value(&c.b))?;
            }
            keys(w, "  annotations", &m.annotations)?;
            for f in &m.other {
                field(w, "  ", f)?;
            }
            for n in &m.notes {
                writeln!(w, "  note: {n}")?;
            }
        }

        let c = &self.config;
        if c.identical {
            writeln!(w, "config: identical")?;
        } else {
            writeln!(
                w,
                "config: differs ({} → {})",
                short(&self.a.config),
                short(&self.b.config)
            )?;
            for f in &c.fields {
                field(w, "  ", f)?;
            }
            keys(w, "  config.Env", &c.env)?;
            keys(w, "  config.Labels", &c.labels)?;
            keys(w, "  config.ExposedPorts", &c.exposed_ports)?;
            keys(w, "  config.Volumes", &c.volumes)?;
            for h in &c.history {
                for f in &h.fields {
                    if f.field.is_empty() {
                        writeln!(w, "  history[{}]: {} → {}", h.index, value(&f.a), value(&f.b))?;
                    } else {
                        writeln!(
                            w,
                            "  history[{}].{}: {} → {}",
                            h.index,
                            f.field,
                            value(&f.a),
                            value(&f.b)
                        )?;
                    }
                }
            }
            for d in &c.diff_ids {
                writeln!(
                    w,
                    "  rootfs.diff_ids[{}]: {} → {}",
                    d.index,
                    opt_digest(&d.a),
                    opt_digest(&d.b)
                )?;
            }
            for n in &c.notes {
                writeln!(w, "  note: {n}")?;
            }
        }

        for l in &self.layers {
            layer(w, l, max_entries)?;
        }
        Ok(())
    }
}

fn summary_line(w: &mut String, side: &str, i: &ImageSummary) -> std::fmt::Result {
    let manifest = match &i.manifest {
        Some(m) => format!("manifest {m}"),
        None => "no manifest".into(),
    };
    let layers = if i.layers == 1 { "layer" } else { "layers" };
    writeln!(
        w,
        "{side}: {} ({manifest}, {}, {} {layers})",
        i.name, i.platform, i.layers
    )
}

fn layer(w: &mut String, l: &LayerDiff, max_entries: usize) -> std::fmt::Result {
    let name = match &l.created_by {
        Some(c) => format!("layer {} ({})", l.layer, truncate(c, 60)),
        None => format!("layer {}", l.layer),
    };
    match l.status {
        LayerStatus::Identical => writeln!(w, "{name}: identical ({})", opt_digest(&l.digest.a))?,
        LayerStatus::CompressionOnly => {
            writeln!(
                w,
                "{name}: compression-only difference, same diffID {}: {} → {}",
                opt_digest(&l.diff_id.a),
                compressed(l, true),
                compressed(l, false)
            )?;
            if let Some(Change {
                a: Some(x),
                b: Some(y),
            }) = &l.compression
            {
                match (&x.gzip, &y.gzip) {
                    (Some(gx), Some(gy)) => {
                        let mut parts = Vec::new();
                        let mut cmp = |what: &str, p: String, q: String| {
                            if p != q {
                                parts.push(format!("{what} {p} → {q}"));
                            }
                        };
                        cmp("mtime", gx.mtime.to_string(), gy.mtime.to_string());
                        cmp("xfl", gx.xfl.to_string(), gy.xfl.to_string());
                        cmp("os", gx.os.to_string(), gy.os.to_string());
                        cmp("flags", gx.flags.to_string(), gy.flags.to_string());
                        cmp(
                            "name",
                            gx.name.clone().unwrap_or_else(|| "(none)".into()),
                            gy.name.clone().unwrap_or_else(|| "(none)".into()),
                        );
                        if parts.is_empty() {
                            writeln!(
                                w,
                                "  same gzip header: the compressor produced different bytes for the same input"
                            )?;
                        } else {
                            writeln!(w, "  gzip header: {}", parts.join(", "))?;
                        }
                    }
                    _ if x.format == y.format => writeln!(
                        w,
                        "  both {}: the compressor produced different bytes for the same input",
                        x.format
                    )?,
                    _ => {}
                }
            }
            if let Some(f) = &l.first_difference {
                writeln!(
                    w,
                    "  first difference at compressed byte {}, in the 1 MiB chunk {} (uncompressed offset {})",
                    f.offset, f.chunk, f.uncompressed_offset
                )?;
            }
        }
        LayerStatus::ContentDiffers => {
            writeln!(
                w,
                "{name}: differs ({} → {})",
                opt_digest(&l.digest.a),
                opt_digest(&l.digest.b)
            )?;
            writeln!(
                w,
                "  diffID: {} → {}",
                opt_digest(&l.diff_id.a),
                opt_digest(&l.diff_id.b)
            )?;
            if l.media_type.differs() {
                writeln!(
                    w,
                    "  mediaType: {} → {}",
                    opt(&l.media_type.a),
                    opt(&l.media_type.b)
                )?;
            }
        }
        LayerStatus::OnlyInA | LayerStatus::OnlyInB => {
            let (side, digest) = if l.status == LayerStatus::OnlyInA {
                ("a", &l.digest.a)
            } else {
                ("b", &l.digest.b)
            };
            let n = l
                .summary
                .as_ref()
                .map_or(0, |s| if side == "a" { s.removed } else { s.added });
            let entries = if n == 1 { "entry" } else { "entries" };
            writeln!(
                w,
                "{name}: only in {side} ({}, {n} {entries})",
                opt_digest(digest)
            )?;
        }
    }
    keys(w, "  annotations", &l.annotations)?;
    if let Some(s) = &l.summary {
        if l.status == LayerStatus::ContentDiffers && !l.entries.is_empty() {
            let fields: Vec<String> = s
                .fields
                .iter()
                .map(|(f, n)| format!("{} {n}", label(f)))
                .collect();
            let total = s.added + s.removed + s.changed;
            let mut line = format!(
                "  {total} {}: {} added, {} removed, {} changed",
                if total == 1 {
                    "entry differs"
                } else {
                    "entries differ"
                },
                s.added,
                s.removed,
                s.changed
            );
            if !fields.is_empty() {
                let _ = write!(line, " ({})", fields.join(", "));
            }
            writeln!(w, "{line}")?;
        }
    }
    if let Some(o) = &l.order {
        let same = if o.same_entries {
            "the same entries in another order"
        } else {
            "the entries both layers have are in another order"
        };
        let sorted = match (o.a_sorted, o.b_sorted) {
            (true, false) => " (a is sorted by name, b is not)",
            (false, true) => " (b is sorted by name, a is not)",
            (false, false) => " (neither is sorted by name)",
            (true, true) => "",
        };
        writeln!(
            w,
            "  entry order differs, {same}: at position {}, a has {} where b has {}{sorted}",
            o.position, o.a, o.b
        )?;
    }
    let shown = if max_entries == 0 {
        l.entries.len()
    } else {
        max_entries.min(l.entries.len())
    };
    for e in &l.entries[..shown] {
        entry(w, e)?;
    }
    if shown < l.entries.len() {
        writeln!(
            w,
            "  … and {} more (--json lists them all)",
            l.entries.len() - shown
        )?;
    }
    for n in &l.notes {
        writeln!(w, "  note: {n}")?;
    }
    Ok(())
}

fn compressed(l: &LayerDiff, a: bool) -> String {
    let (info, size) = if a {
        (l.compression.as_ref().and_then(|c| c.a.as_ref()), l.size.a)
    } else {
        (l.compression.as_ref().and_then(|c| c.b.as_ref()), l.size.b)
    };
    let format = info.map_or("?", |i| i.format.as_str());
    format!("{format} {} bytes", opt(&size))
}

fn entry(w: &mut String, e: &EntryChange) -> std::fmt::Result {
    let sign = match e.change {
        EntryChangeKind::Added => '+',
        EntryChangeKind::Removed => '-',
        EntryChangeKind::Changed => '~',
    };
    let mut line = format!("  {sign} ");
    match &e.whiteout {
        Some(Whiteout::Deletes(p)) => {
            let _ = write!(line, "{p} deleted (whiteout {})", e.path);
        }
        Some(Whiteout::Opaque(p)) => {
            let _ = write!(line, "{p} made opaque (whiteout {})", e.path);
        }
        None => {
            line.push_str(&e.path);
            if e.change != EntryChangeKind::Changed {
                if let Some(target) = e.b.as_ref().or(e.a.as_ref()).and_then(|i| i.link_target.as_ref()) {
                    let _ = write!(line, " -> {target}");
                }
            }
        }
    }
    if e.occurrence > 0 {
        let _ = write!(line, " (occurrence {})", e.occurrence + 1);
    }
    if !e.fields.is_empty() {
        let kind = e.b.as_ref().or(e.a.as_ref()).map(|i| i.kind);
        let parts: Vec<String> = e
            .fields
            .iter()
            .map(|f| {
                let what = match (f.field.as_str(), kind) {
                    ("linkTarget", Some(bake_layer::EntryKind::Symlink)) => "symlink target".to_owned(),
                    ("linkTarget", Some(bake_layer::EntryKind::Hardlink)) => "hardlink target".to_owned(),
                    (other, _) => label(other),
                };
                format!(
                    "{what} {} → {}",
                    entry_value(&f.field, &f.a),
                    entry_value(&f.field, &f.b)
                )
            })
            .collect();
        let _ = write!(line, "  {}", parts.join(", "));
    }
    writeln!(w, "{line}")?;
    if let Some(c) = &e.content {
        content(w, c)?;
    }
    Ok(())
}

/// What differs inside a changed file, under its entry line.
fn content(w: &mut String, c: &ContentDiff) -> std::fmt::Result {
    const IN: &str = "      ";
    let sizes = format!("{} → {} bytes", opt(&c.sizes.a), opt(&c.sizes.b));
    if c.kind == "text" {
        writeln!(w, "{IN}text, {sizes}:")?;
        for l in &c.diff {
            writeln!(w, "{IN}{l}")?;
        }
        if c.more_lines > 0 {
            writeln!(w, "{IN}… {} more diff lines", c.more_lines)?;
        }
        return Ok(());
    }
    match c.first_difference {
        Some(at) => writeln!(w, "{IN}binary, {sizes}; first difference at byte {at}:")?,
        None => writeln!(w, "{IN}binary, {sizes}")?,
    }
    if let (Some(x), Some(y)) = (&c.window_a, &c.window_b) {
        writeln!(w, "{IN}  a {x}")?;
        writeln!(w, "{IN}  b {y}")?;
    }
    if let Some(g) = &c.gzip {
        if let (Some(x), Some(y)) = (&g.a, &g.b) {
            let mut changed = Vec::new();
            if x.mtime != y.mtime {
                changed.push(format!("mtime {} → {}", x.mtime, y.mtime));
            }
            if x.name != y.name {
                changed.push(format!("name {:?} → {:?}", x.name, y.name));
            }
            if x.os != y.os {
                changed.push(format!("OS {} → {}", x.os, y.os));
            }
            if x.xfl != y.xfl {
                changed.push(format!("XFL {} → {}", x.xfl, y.xfl));
            }
            if x.flags != y.flags {
                changed.push(format!("flags {} → {}", x.flags, y.flags));
            }
            if changed.is_empty() {
                writeln!(
                    w,
                    "{IN}gzip members with the same header (mtime {}, OS {}): the compressed data differs",
                    y.mtime, y.os
                )?;
            } else {
                writeln!(w, "{IN}gzip header: {}", changed.join(", "))?;
            }
        }
    }
    Ok(())
}

/// How a field is named for people.
fn label(field: &str) -> String {
    if let Some(x) = field.strip_prefix("xattr:") {
        return format!("xattr {x}");
    }
    if let Some(p) = field.strip_prefix("pax:") {
        return format!("pax {p}");
    }
    match field {
        "linkTarget" => "link target".into(),
        other => other.into(),
    }
}

fn entry_value(field: &str, v: &Option<Value>) -> String {
    match (field, v) {
        ("mode", Some(Value::Number(n))) => n.as_u64().map_or_else(|| n.to_string(), |m| format!("{m:04o}")),
        ("content", Some(Value::String(s))) => match s.parse::<Digest>() {
            Ok(d) => short(&d),
            Err(_) => s.clone(),
        },
        (_, Some(Value::String(s))) if s.is_empty() => "\"\"".into(),
        _ => value(v),
    }
}

fn field(w: &mut String, indent: &str, f: &FieldChange) -> std::fmt::Result {
    writeln!(w, "{indent}{}: {} → {}", f.field, value(&f.a), value(&f.b))
}

fn keys(w: &mut String, what: &str, changes: &[KeyChange]) -> std::fmt::Result {
    let ports_or_volumes = what.ends_with("ExposedPorts") || what.ends_with("Volumes");
    for k in changes {
        match (&k.a, &k.b) {
            (None, Some(v)) if ports_or_volumes && v == "{}" => writeln!(w, "{what}: + {}", k.key)?,
            (Some(v), None) if ports_or_volumes && v == "{}" => writeln!(w, "{what}: - {}", k.key)?,
            (None, Some(v)) => writeln!(w, "{what}: + {}={}", k.key, truncate(v, MAX_VALUE))?,
            (Some(v), None) => writeln!(w, "{what}: - {}={}", k.key, truncate(v, MAX_VALUE))?,
            (Some(x), Some(y)) => writeln!(
                w,
                "{what}: ~ {}: {} → {}",
                k.key,
                truncate(x, MAX_VALUE),
                truncate(y, MAX_VALUE)
            )?,
            (None, None) => {}
        }
    }
    Ok(())
}

fn value(v: &Option<Value>) -> String {
    match v {
        None => "(none)".into(),
        Some(v) => truncate(&value_text(v), MAX_VALUE),
    }
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "(none)".into(), T::to_string)
}

fn short(d: &Digest) -> String {
    format!("sha256:{}…", d.short())
}

fn opt_digest(d: &Option<Digest>) -> String {
    d.as_ref().map_or_else(|| "(none)".into(), short)
}

fn change_digest(c: &Change<Digest>) -> String {
    format!("{} → {}", opt_digest(&c.a), opt_digest(&c.b))
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}
