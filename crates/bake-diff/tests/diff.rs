//! `bake_diff::diff` on small hand-made images, one per kind of
//! difference: what the report says and how it reads.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use bake_diff::{DiffReport, EntryChangeKind, Image, LayerStatus, Whiteout, diff};
use bake_digest::Digest;
use bake_image::{ConfigSpec, Descriptor, Layout, Platform, media_type};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Hand-made tars

/// One tar entry, with bake's defaults (ustar, root, epoch 1700000000).
#[derive(Clone)]
struct Entry {
    path: String,
    kind: tar::EntryType,
    content: Vec<u8>,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: Option<String>,
    uname: String,
    gnu: bool,
    pax: Vec<(String, Vec<u8>)>,
}

fn file(path: &str, content: &str) -> Entry {
    Entry {
        path: path.into(),
        kind: tar::EntryType::Regular,
        content: content.as_bytes().to_vec(),
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 1_700_000_000,
        link: None,
        uname: String::new(),
        gnu: false,
        pax: Vec::new(),
    }
}

fn dir(path: &str) -> Entry {
    Entry {
        kind: tar::EntryType::Directory,
        mode: 0o755,
        ..file(path, "")
    }
}

fn symlink(path: &str, target: &str) -> Entry {
    Entry {
        kind: tar::EntryType::Symlink,
        mode: 0o777,
        link: Some(target.into()),
        ..file(path, "")
    }
}

fn tar(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        if !e.pax.is_empty() {
            b.append_pax_extensions(e.pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .unwrap();
        }
        let mut h = if e.gnu {
            tar::Header::new_gnu()
        } else {
            tar::Header::new_ustar()
        };
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(e.mtime);
        h.set_username(&e.uname).unwrap();
        h.set_size(e.content.len() as u64);
        match &e.link {
            Some(target) => b.append_link(&mut h, &e.path, target).unwrap(),
            None => b.append_data(&mut h, &e.path, &e.content[..]).unwrap(),
        }
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8], level: u32, os: u8) -> Vec<u8> {
    let mut gz = flate2::GzBuilder::new()
        .operating_system(os)
        .write(Vec::new(), flate2::Compression::new(level));
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

// ---------------------------------------------------------------------------
// Hand-made images

/// A layer: its uncompressed tar, and how it is stored.
struct Layer {
    tar: Vec<u8>,
    /// `None`: a plain tar; `Some((level, os byte))`: gzip.
    gzip: Option<(u32, u8)>,
}

fn plain(entries: &[Entry]) -> Layer {
    Layer {
        tar: tar(entries),
        gzip: None,
    }
}

fn gz(entries: &[Entry]) -> Layer {
    Layer {
        tar: tar(entries),
        gzip: Some((6, 255)),
    }
}

/// What goes into an image besides its layers.
#[derive(Clone, Default)]
struct Spec {
    config: ConfigSpec,
    epoch: u64,
    annotations: BTreeMap<String, String>,
    platform: Option<&'static str>,
}

fn spec() -> Spec {
    Spec {
        epoch: 1_700_000_000,
        ..Spec::default()
    }
}

/// Writes an image into a new layout at `dir` (tagged `latest`) and loads it.
fn image(dir: &Path, layers: &[Layer], spec: &Spec) -> Image {
    let layout = Layout::create_or_open(dir).unwrap();
    let manifest = put_image(&layout, layers, spec);
    layout.set_tags(&manifest, &["latest".into()]).unwrap();
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    Image::from_layout(name, dir, Some("latest"), None).unwrap()
}

/// Writes an image's blobs into `layout`; returns its manifest descriptor.
fn put_image(layout: &Layout, layers: &[Layer], spec: &Spec) -> Descriptor {
    let blobs: Vec<(Vec<u8>, Vec<u8>, &str)> = layers
        .iter()
        .map(|l| match l.gzip {
            None => (l.tar.clone(), l.tar.clone(), media_type::OCI_LAYER_TAR),
            Some((level, os)) => (l.tar.clone(), gzip(&l.tar, level, os), media_type::OCI_LAYER_GZIP),
        })
        .collect();
    put_blobs(layout, &blobs, spec)
}

/// Like [`put_image`], with each layer's tar, blob and media type given.
fn put_blobs(layout: &Layout, layers: &[(Vec<u8>, Vec<u8>, &str)], spec: &Spec) -> Descriptor {
    let store = layout.store();
    let mut descs = Vec::new();
    let mut history = Vec::new();
    for (i, (tar, bytes, mt)) in layers.iter().enumerate() {
        store.put_bytes(bytes).unwrap();
        descs.push(Descriptor::of(*mt, bytes));
        history.push((Digest::of(tar), format!("bake: layer layer-{}", i + 1)));
    }
    let platform: Platform = spec.platform.unwrap_or("linux/amd64").parse().unwrap();
    let config = bake_image::build_config(None, &spec.config, &platform, spec.epoch, &history).unwrap();
    store.put_bytes(&config).unwrap();
    let config = Descriptor::of(media_type::OCI_CONFIG, &config);
    let manifest = bake_image::build_manifest(&config, &descs, &spec.annotations);
    store.put_bytes(&manifest).unwrap();
    Descriptor::of(media_type::OCI_MANIFEST, &manifest)
}

/// Two images `a` and `b` in a temp dir, and their diff.
fn pair(a: (&[Layer], &Spec), b: (&[Layer], &Spec)) -> (tempfile::TempDir, DiffReport) {
    let tmp = tempfile::tempdir().unwrap();
    let ia = image(&tmp.path().join("a"), a.0, a.1);
    let ib = image(&tmp.path().join("b"), b.0, b.1);
    let report = diff(&ia, &ib).unwrap();
    (tmp, report)
}

fn human(r: &DiffReport) -> String {
    r.to_human(50)
}

fn base_files() -> Vec<Entry> {
    vec![
        dir("etc/"),
        file("etc/motd", "hello\n"),
        dir("usr/"),
        dir("usr/bin/"),
        file("usr/bin/app", "#!/bin/sh\necho app\n"),
    ]
}

// ---------------------------------------------------------------------------

#[test]
fn identical_images_say_so_and_read_no_layer() {
    let s = spec();
    let tmp = tempfile::tempdir().unwrap();
    let a = image(&tmp.path().join("a"), &[gz(&base_files())], &s);
    let b = image(&tmp.path().join("b"), &[gz(&base_files())], &s);
    // Remove the layer blob from b: an identical image must not need it.
    let layer = &b.base().layers[0].digest;
    std::fs::remove_file(b.store().path(layer)).unwrap();
    let r = diff(&a, &b).unwrap();
    assert!(r.identical);
    assert!(r.manifest.identical && r.config.identical);
    assert_eq!(r.layers[0].status, LayerStatus::Identical);
    let m = a.manifest_digest().unwrap();
    assert_eq!(human(&r), format!("identical: both images are manifest {m}\n"));
}

#[test]
fn another_epoch_changes_created_history_and_every_mtime() {
    let later = |entries: Vec<Entry>| -> Vec<Entry> {
        entries
            .into_iter()
            .map(|e| Entry {
                mtime: 1_700_000_500,
                ..e
            })
            .collect()
    };
    let s1 = spec();
    let s2 = Spec {
        epoch: 1_700_000_500,
        ..spec()
    };
    let (_t, r) = pair((&[gz(&base_files())], &s1), (&[gz(&later(base_files()))], &s2));
    assert!(!r.identical);
    let created = &r.config.fields[0];
    assert_eq!(created.field, "created");
    assert_eq!(created.a, Some(json!("2023-11-14T22:13:20Z")));
    assert_eq!(created.b, Some(json!("2023-11-14T22:21:40Z")));
    assert_eq!(r.config.history[0].fields[0].field, "created");
    assert_eq!(r.config.diff_ids.len(), 1);
    let l = &r.layers[0];
    assert_eq!(l.status, LayerStatus::ContentDiffers);
    let summary = l.summary.as_ref().unwrap();
    assert_eq!((summary.added, summary.removed, summary.changed), (0, 0, 5));
    assert_eq!(summary.fields, BTreeMap::from([("mtime".to_owned(), 5)]));
    let text = human(&r);
    for line in [
        "config: differs (",
        "  created: 2023-11-14T22:13:20Z → 2023-11-14T22:21:40Z",
        "  history[0].created: 2023-11-14T22:13:20Z → 2023-11-14T22:21:40Z",
        "  rootfs.diff_ids[0]: sha256:",
        "layer 1 (bake: layer layer-1): differs (sha256:",
        "  5 entries differ: 0 added, 0 removed, 5 changed (mtime 5)",
        "  ~ usr/bin/app  mtime 1700000000 → 1700000500",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
}

#[test]
fn changed_content_names_both_digests_and_sizes() {
    let mut b = base_files();
    b[4] = file("usr/bin/app", "#!/bin/sh\necho app v2\n");
    let (_t, r) = pair((&[gz(&base_files())], &spec()), (&[gz(&b)], &spec()));
    let e = &r.layers[0].entries;
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].path, "usr/bin/app");
    assert_eq!(e[0].change, EntryChangeKind::Changed);
    let fields: Vec<&str> = e[0].fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["content", "size"]);
    let (old, new) = (
        Digest::of(b"#!/bin/sh\necho app\n"),
        Digest::of(b"#!/bin/sh\necho app v2\n"),
    );
    assert_eq!(e[0].fields[0].a, Some(json!(old.to_string())));
    assert_eq!(e[0].fields[0].b, Some(json!(new.to_string())));
    let text = human(&r);
    let want = format!(
        "  ~ usr/bin/app  content sha256:{}… → sha256:{}…, size 19 → 22\n",
        old.short(),
        new.short()
    );
    assert!(text.contains(&want), "no {want:?} in:\n{text}");
}

#[test]
fn mode_and_owner_changes() {
    let mut b = base_files();
    b[1].mode = 0o600;
    b[1].uid = 1000;
    b[1].gid = 1001;
    let (_t, r) = pair((&[plain(&base_files())], &spec()), (&[plain(&b)], &spec()));
    let text = human(&r);
    assert!(
        text.contains("  ~ etc/motd  mode 0644 → 0600, uid 0 → 1000, gid 0 → 1001\n"),
        "{text}"
    );
}

#[test]
fn symlink_target_change() {
    let mut a = base_files();
    a.push(symlink("usr/bin/sh", "busybox"));
    let mut b = base_files();
    b.push(symlink("usr/bin/sh", "dash"));
    let (_t, r) = pair((&[plain(&a)], &spec()), (&[plain(&b)], &spec()));
    let text = human(&r);
    assert!(
        text.contains("  ~ usr/bin/sh  symlink target busybox → dash\n"),
        "{text}"
    );
    let f = &r.layers[0].entries[0].fields[0];
    assert_eq!(
        (f.field.as_str(), f.b.clone()),
        ("linkTarget", Some(json!("dash")))
    );
}

#[test]
fn added_and_removed_files_and_a_type_change() {
    let a = [base_files(), vec![dir("tmp/"), file("tmp/old", "x")]].concat();
    let mut b = [base_files(), vec![file("etc/new.conf", "k=v\n"), dir("tmp/")]].concat();
    b[1] = symlink("etc/motd", "/run/motd");
    let (_t, r) = pair((&[plain(&a)], &spec()), (&[plain(&b)], &spec()));
    let l = &r.layers[0];
    let s = l.summary.as_ref().unwrap();
    assert_eq!((s.added, s.removed, s.changed), (1, 1, 1));
    let text = human(&r);
    // Sorted by path, whatever the change.
    let want = "  ~ etc/motd  type file → symlink, content sha256:";
    let at_motd = text.find(want).unwrap_or_else(|| panic!("{text}"));
    let at_new = text.find("  + etc/new.conf\n").unwrap();
    let at_old = text.find("  - tmp/old\n").unwrap();
    assert!(at_motd < at_new && at_new < at_old, "{text}");
    assert!(text.contains("link target (none) → /run/motd"), "{text}");
}

#[test]
fn whiteouts_read_as_deletions() {
    let lower = gz(&[
        dir("tmp/"),
        file("tmp/old", "x"),
        dir("usr/share/"),
        file("usr/share/a", "a"),
    ]);
    let lower2 = gz(&[
        dir("tmp/"),
        file("tmp/old", "x"),
        dir("usr/share/"),
        file("usr/share/a", "a"),
    ]);
    let a_top = gz(&[file("etc/motd", "hi")]);
    let b_top = gz(&[
        file("etc/motd", "hi"),
        file("tmp/.wh.old", ""),
        file("usr/share/.wh..wh..opq", ""),
    ]);
    let (_t, r) = pair((&[lower, a_top], &spec()), (&[lower2, b_top], &spec()));
    assert_eq!(r.layers[0].status, LayerStatus::Identical);
    let e = &r.layers[1].entries;
    assert_eq!(e[0].whiteout, Some(Whiteout::Deletes("tmp/old".into())));
    assert_eq!(e[1].whiteout, Some(Whiteout::Opaque("usr/share/".into())));
    assert!(e.iter().all(|e| e.change == EntryChangeKind::Added));
    let text = human(&r);
    assert!(
        text.contains("layer 1 (bake: layer layer-1): identical (sha256:"),
        "{text}"
    );
    assert!(
        text.contains("  + tmp/old deleted (whiteout tmp/.wh.old)\n"),
        "{text}"
    );
    assert!(
        text.contains("  + usr/share/ made opaque (whiteout usr/share/.wh..wh..opq)\n"),
        "{text}"
    );
}

#[test]
fn config_fields_env_labels_ports_and_manifest_annotations() {
    let mut sa = spec();
    sa.config.env = BTreeMap::from([("PATH".into(), "/usr/bin".into()), ("GONE".into(), "1".into())]);
    sa.config.labels = BTreeMap::from([("tier".into(), "prod".into()), ("team".into(), "a".into())]);
    sa.config.cmd = Some(vec!["serve".into()]);
    sa.annotations = BTreeMap::from([("org.opencontainers.image.version".into(), "1.0".into())]);
    let mut sb = sa.clone();
    sb.config.env = BTreeMap::from([
        ("PATH".into(), "/usr/local/bin:/usr/bin".into()),
        ("DEBUG".into(), "1".into()),
    ]);
    sb.config.labels.insert("tier".into(), "dev".into());
    sb.config.cmd = Some(vec!["serve".into(), "--debug".into()]);
    sb.config.user = Some("1000".into());
    sb.config.exposed_ports = vec!["8080".into()];
    sb.annotations
        .insert("org.opencontainers.image.version".into(), "1.1".into());
    let layers = || [gz(&base_files())];
    let (_t, r) = pair((&layers(), &sa), (&layers(), &sb));
    let env: Vec<(&str, Option<&str>, Option<&str>)> = r
        .config
        .env
        .iter()
        .map(|k| (k.key.as_str(), k.a.as_deref(), k.b.as_deref()))
        .collect();
    assert_eq!(
        env,
        [
            ("DEBUG", None, Some("1")),
            ("GONE", Some("1"), None),
            ("PATH", Some("/usr/bin"), Some("/usr/local/bin:/usr/bin")),
        ]
    );
    assert_eq!(r.layers[0].status, LayerStatus::Identical);
    let text = human(&r);
    for line in [
        "manifest: differs (sha256:",
        "  config: sha256:",
        "  annotations: ~ org.opencontainers.image.version: 1.0 → 1.1",
        "  config.Cmd: [\"serve\"] → [\"serve\",\"--debug\"]",
        "  config.User: (none) → 1000",
        "  config.Env: + DEBUG=1",
        "  config.Env: - GONE=1",
        "  config.Env: ~ PATH: /usr/bin → /usr/local/bin:/usr/bin",
        "  config.Labels: ~ tier: prod → dev",
        "  config.ExposedPorts: + 8080/tcp",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    assert!(!text.contains("team"), "{text}");
}

#[test]
fn compression_only_difference_names_sizes_and_header() {
    let entries = base_files();
    let a = Layer {
        tar: tar(&entries),
        gzip: Some((1, 255)),
    };
    let b = Layer {
        tar: tar(&entries),
        gzip: Some((9, 3)),
    };
    let (_t, r) = pair((&[a], &spec()), (&[b], &spec()));
    let l = &r.layers[0];
    assert_eq!(l.status, LayerStatus::CompressionOnly);
    assert!(!l.diff_id.differs() && l.digest.differs());
    assert!(l.entries.is_empty());
    let c = l.compression.as_ref().unwrap();
    let (ga, gb) = (
        c.a.as_ref().unwrap().gzip.clone().unwrap(),
        c.b.as_ref().unwrap().gzip.clone().unwrap(),
    );
    assert_eq!((ga.xfl, ga.os), (4, 255));
    assert_eq!((gb.xfl, gb.os), (2, 3));
    // The config is the same (same diffIDs), only the manifest differs.
    assert!(r.config.identical);
    let text = human(&r);
    let want = format!(
        "layer 1 (bake: layer layer-1): compression-only difference, same diffID sha256:{}…: gzip {} bytes → gzip {} bytes\n  gzip header: xfl 4 → 2, os 255 → 3\n",
        l.diff_id.a.as_ref().unwrap().short(),
        l.size.a.unwrap(),
        l.size.b.unwrap()
    );
    assert!(text.contains(&want), "no {want:?} in:\n{text}");

    // Only the level differs, not the header: said so.
    let mid = |level| Layer {
        tar: tar(&entries),
        gzip: Some((level, 255)),
    };
    let (_t, r) = pair((&[mid(5)], &spec()), (&[mid(6)], &spec()));
    assert_eq!(r.layers[0].status, LayerStatus::CompressionOnly);
    assert!(
        human(&r)
            .contains("  same gzip header: the compressor produced different bytes for the same input\n"),
        "{}",
        human(&r)
    );
    assert!(!human(&r).contains("level"), "{}", human(&r));
}

/// Issue #16: two compressions of the same multi-MiB tar with the same
/// header that first differ after the first MiB (here: two gzip members
/// split at 1 MiB, the second at another level): the explanation does not
/// claim another level or library, and names the first differing byte and
/// its 1 MiB chunk.
#[test]
fn compression_only_difference_names_the_first_differing_chunk() {
    // A tar of about 3 MiB of varied but compressible content.
    let mut x: u64 = 7;
    let mut content = Vec::new();
    while content.len() < 3 << 20 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        content.extend_from_slice(format!("line {} of {}\n", x >> 40, x % 97).as_bytes());
    }
    let mut entries = base_files();
    entries.push(Entry {
        content,
        ..file("usr/share/data.txt", "")
    });
    let tar = tar(&entries);
    let chunk = bake_layer::COMPRESSION_CHUNK;
    let members = |second_level| {
        let mut blob = gzip(&tar[..chunk], 6, 255);
        blob.extend_from_slice(&gzip(&tar[chunk..], second_level, 255));
        blob
    };
    let (a, b) = (members(6), members(4));
    let first = a.iter().zip(&b).take_while(|(p, q)| p == q).count();
    assert!(
        first > gzip(&tar[..chunk], 6, 255).len(),
        "the blobs differ in the first member"
    );
    let tmp = tempfile::tempdir().unwrap();
    let load = |name: &str, blob: Vec<u8>| {
        let dir = tmp.path().join(name);
        let layout = Layout::create_or_open(&dir).unwrap();
        let m = put_blobs(
            &layout,
            &[(tar.clone(), blob, media_type::OCI_LAYER_GZIP)],
            &spec(),
        );
        layout.set_tags(&m, &["latest".into()]).unwrap();
        Image::from_layout(name.to_owned(), &dir, Some("latest"), None).unwrap()
    };
    let r = diff(&load("a", a), &load("b", b)).unwrap();
    let l = &r.layers[0];
    assert_eq!(l.status, LayerStatus::CompressionOnly);
    let f = l.first_difference.as_ref().unwrap();
    assert_eq!(f.offset, first as u64);
    assert_eq!(f.chunk, 1, "{f:?}");
    assert!(
        (chunk as u64..2 * chunk as u64).contains(&f.uncompressed_offset),
        "{f:?}"
    );
    let text = human(&r);
    for line in [
        "  same gzip header: the compressor produced different bytes for the same input\n".to_owned(),
        format!(
            "  first difference at compressed byte {first}, in the 1 MiB chunk 1 (uncompressed offset {})\n",
            f.uncompressed_offset
        ),
    ] {
        assert!(text.contains(&line), "no {line:?} in:\n{text}");
    }
    assert!(!text.contains("level"), "{text}");
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["layers"][0]["firstDifference"]["chunk"], 1);
}

#[test]
fn reversed_entry_order_is_an_order_difference() {
    let entries = base_files();
    let mut reversed = entries.clone();
    reversed.reverse();
    let (_t, r) = pair((&[plain(&entries)], &spec()), (&[plain(&reversed)], &spec()));
    let l = &r.layers[0];
    assert_eq!(l.status, LayerStatus::ContentDiffers);
    assert!(l.entries.is_empty(), "{:?}", l.entries);
    let o = l.order.as_ref().unwrap();
    assert_eq!(
        (o.position, o.a.as_str(), o.b.as_str()),
        (0, "etc/", "usr/bin/app")
    );
    assert!(o.same_entries && o.a_sorted && !o.b_sorted);
    let text = human(&r);
    assert!(
        text.contains(
            "  entry order differs, the same entries in another order: at position 0, a has etc/ where b has usr/bin/app (a is sorted by name, b is not)\n"
        ),
        "{text}"
    );
}

#[test]
fn tar_header_fields_uname_format_xattrs_and_pax() {
    let a = base_files();
    let mut b = base_files();
    b[1].uname = "root".into(); // etc/motd
    b[2].gnu = true; // usr/
    b[4].pax = vec![
        ("SCHILY.xattr.security.capability".into(), vec![1, 0, 0, 2]),
        ("atime".into(), b"1700000123".to_vec()),
    ]; // usr/bin/app
    let (_t, r) = pair((&[plain(&a)], &spec()), (&[plain(&b)], &spec()));
    let text = human(&r);
    for line in [
        "  ~ etc/motd  uname \"\" → root\n",
        "  ~ usr/  format ustar → gnu\n",
        "  ~ usr/bin/app  xattr security.capability (none) → 0x01000002, pax atime (none) → 1700000123\n",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
}

/// File capabilities read as `getcap` shows them, with their bytes.
#[test]
fn capability_changes_are_shown_as_text() {
    let caps = |t: &str| bake_layer::FileCaps::parse(t).unwrap().to_xattr().to_vec();
    let with = |value: Vec<u8>| {
        let mut files = base_files();
        files[4].pax = vec![("SCHILY.xattr.security.capability".into(), value)];
        files
    };
    let a = with(caps("cap_net_raw+ep"));
    let b = with(caps("cap_net_raw,cap_net_admin+ep"));
    let (_t, r) = pair((&[plain(&a)], &spec()), (&[plain(&b)], &spec()));
    let line = "  ~ usr/bin/app  xattr security.capability cap_net_raw=ep (0x0100000200200000000000000000000000000000) \
                → cap_net_admin,cap_net_raw=ep (0x0100000200300000000000000000000000000000)\n";
    let text = human(&r);
    assert!(text.contains(line), "no {line:?} in:\n{text}");
    // Removing them is a difference too.
    let (_t, r) = pair((&[plain(&a)], &spec()), (&[plain(&base_files())], &spec()));
    assert!(
        human(&r).contains(
            "xattr security.capability cap_net_raw=ep (0x0100000200200000000000000000000000000000) → (none)"
        ),
        "{}",
        human(&r)
    );
}

#[test]
fn pax_path_against_a_plain_name_is_a_header_difference_only() {
    let a = [file("etc/motd", "hi")];
    let mut b = a.clone();
    b[0].pax = vec![("path".into(), b"etc/motd".to_vec())];
    let (_t, r) = pair((&[plain(&a)], &spec()), (&[plain(&b)], &spec()));
    let e = &r.layers[0].entries;
    assert_eq!(e.len(), 1);
    let fields: Vec<&str> = e[0].fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["pax:path"]);
}

#[test]
fn extra_layer_at_the_end_and_a_layer_inserted_in_the_middle() {
    let l1 = || gz(&base_files());
    let l2 = || gz(&[file("srv/data", "1"), file("srv/more", "2")]);
    let l3 = || gz(&[file("opt/x", "x")]);
    let (_t, r) = pair((&[l1()], &spec()), (&[l1(), l2()], &spec()));
    assert_eq!(r.manifest.layer_count.as_ref().unwrap().b, Some(2));
    let l = &r.layers[1];
    assert_eq!(l.status, LayerStatus::OnlyInB);
    assert_eq!(l.entries.len(), 2);
    let text = human(&r);
    assert!(text.contains("  layers: 1 → 2\n"), "{text}");
    assert!(
        text.contains("layer 2 (bake: layer layer-2): only in b (sha256:"),
        "{text}"
    );
    assert!(
        text.contains(", 2 entries)\n  + srv/data\n  + srv/more\n"),
        "{text}"
    );

    let (_t, r) = pair((&[l1(), l2()], &spec()), (&[l1(), l3(), l2()], &spec()));
    assert_eq!(r.layers[2].status, LayerStatus::OnlyInB);
    assert!(
        r.layers[2]
            .notes
            .contains(&"b's layer 3 has the same content (diffID) as a's layer 2".to_owned()),
        "{:?}",
        r.layers[2].notes
    );
    let (_t, r) = pair((&[l1(), l2()], &spec()), (&[l1()], &spec()));
    assert_eq!(r.layers[1].status, LayerStatus::OnlyInA);
    assert!(human(&r).contains("only in a (sha256:"));
    assert!(human(&r).contains("  - srv/data\n"));
}

#[test]
fn the_human_listing_is_limited_and_json_has_everything() {
    let many: Vec<Entry> = (0..60).map(|i| file(&format!("f/{i:02}"), "x")).collect();
    let (_t, r) = pair(
        (&[gz(&[dir("f/")])], &spec()),
        (&[gz(&[vec![dir("f/")], many].concat())], &spec()),
    );
    assert_eq!(r.layers[0].entries.len(), 60);
    let text = r.to_human(50);
    assert!(
        text.contains("  + f/49\n") && !text.contains("  + f/50\n"),
        "{text}"
    );
    assert!(
        text.contains("  … and 10 more (--json lists them all)\n"),
        "{text}"
    );
    assert!(r.to_human(0).contains("  + f/59\n"));
}

#[test]
fn json_shape_is_stable() {
    let mut b = base_files();
    b[1] = file("etc/motd", "changed\n");
    let (_t, r) = pair((&[gz(&base_files())], &spec()), (&[gz(&b)], &spec()));
    let v = serde_json::to_value(&r).unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&v), ["a", "b", "config", "identical", "layers", "manifest"]);
    assert_eq!(
        keys(&v["a"]),
        ["config", "layers", "manifest", "name", "platform"]
    );
    assert_eq!(
        keys(&v["manifest"]),
        [
            "annotations",
            "config",
            "identical",
            "layerCount",
            "mediaType",
            "notes",
            "other"
        ]
    );
    assert_eq!(
        keys(&v["config"]),
        [
            "diffIds",
            "env",
            "exposedPorts",
            "fields",
            "history",
            "identical",
            "labels",
            "notes",
            "volumes"
        ]
    );
    let layer = &v["layers"][0];
    assert_eq!(
        keys(layer),
        [
            "annotations",
            "compression",
            "createdBy",
            "diffId",
            "digest",
            "entries",
            "firstDifference",
            "layer",
            "mediaType",
            "notes",
            "order",
            "size",
            "status",
            "summary"
        ]
    );
    assert_eq!(layer["status"], "contentDiffers");
    assert_eq!(layer["layer"], 1);
    let e = &layer["entries"][0];
    assert_eq!(e["path"], "etc/motd");
    assert_eq!(e["change"], "changed");
    assert_eq!(e["a"]["kind"], "file");
    assert_eq!(e["fields"][0]["field"], "content");
    assert_eq!(e["fields"][1], json!({"field": "size", "a": 6, "b": 8}));
    // The same two images, the same bytes.
    assert_eq!(
        serde_json::to_string(&r).unwrap(),
        serde_json::to_string(&r.clone()).unwrap()
    );
}

#[test]
fn another_platform_is_compared_not_refused() {
    let arm = Spec {
        platform: Some("linux/arm64"),
        ..spec()
    };
    let (_t, r) = pair((&[gz(&base_files())], &spec()), (&[gz(&base_files())], &arm));
    assert_eq!(r.b.platform, "linux/arm64");
    assert!(
        human(&r).contains("  architecture: amd64 → arm64\n"),
        "{}",
        human(&r)
    );
}

#[test]
fn a_docker_archive_of_the_same_image_is_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let a = image(&tmp.path().join("a"), &[gz(&base_files())], &spec());
    let archive = tmp.path().join("a.tar");
    let layout = Layout::open(&tmp.path().join("a")).unwrap();
    let m = layout.resolve(Some("latest")).unwrap();
    bake_image::write_docker_archive(layout.store(), &m, &["a:latest".into()], &archive).unwrap();
    let scratch = bake_store::BlobStore::open(&tmp.path().join("scratch")).unwrap();
    let b = Image::from_docker_archive(
        "docker-archive:a.tar",
        &archive,
        None,
        scratch,
        &bake_layer::ReadLimits::DEFAULT,
    )
    .unwrap();
    let r = diff(&a, &b).unwrap();
    assert!(r.identical, "{}", human(&r));
    assert!(
        human(&r).starts_with("identical: the same config sha256:"),
        "{}",
        human(&r)
    );
    assert_eq!(
        r.manifest.notes,
        ["b is a docker-archive, which has no manifest: only configs and layers are compared"]
    );
}

#[test]
fn a_corrupt_layer_is_an_error_naming_image_and_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let a = image(&tmp.path().join("a"), &[gz(&base_files())], &spec());
    let mut other = base_files();
    other[1] = file("etc/motd", "other\n");
    let b = image(&tmp.path().join("b"), &[gz(&other)], &spec());
    let digest = b.base().layers[0].digest.clone();
    let path = b.store().path(&digest);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff; // the gzip trailer: the tar still reads
    std::fs::write(&path, bytes).unwrap();
    let err = diff(&a, &b).unwrap_err().to_string();
    assert!(err.starts_with(&format!("b: layer 1 ({digest}): ")), "{err}");
}

#[test]
fn an_index_is_compared_for_one_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("multi");
    let layout = Layout::create_or_open(&dir).unwrap();
    let on = |p: &'static str, content: &str| {
        let s = Spec {
            platform: Some(p),
            ..spec()
        };
        let mut d = put_image(&layout, &[gz(&[file("etc/arch", content)])], &s);
        d.platform = Some(p.parse().unwrap());
        d
    };
    let (amd, arm) = (on("linux/amd64", "amd64"), on("linux/arm64", "arm64"));
    let put_index = |entries: &[Descriptor], tag: &str| {
        let bytes = bake_image::build_index(entries, &BTreeMap::new());
        layout.store().put_bytes(&bytes).unwrap();
        let index = Descriptor::of(media_type::OCI_INDEX, &bytes);
        layout.set_tags(&index, &[tag.into()]).unwrap();
    };
    put_index(&[amd.clone(), arm.clone()], "both");
    put_index(std::slice::from_ref(&arm), "arm-only");

    let load = |tag, p: Option<&str>| {
        let p: Option<Platform> = p.map(|p| p.parse().unwrap());
        Image::from_layout(tag, &dir, Some(tag), p.as_ref()).unwrap()
    };
    // linux/amd64 by default; another platform on request; an index with
    // a single platform gives that one.
    assert_eq!(load("both", None).manifest_digest(), Some(&amd.digest));
    assert_eq!(
        load("both", Some("linux/arm64")).manifest_digest(),
        Some(&arm.digest)
    );
    assert_eq!(load("arm-only", None).manifest_digest(), Some(&arm.digest));
    let r = diff(&load("both", None), &load("arm-only", None)).unwrap();
    let text = human(&r);
    assert!(text.contains("  architecture: amd64 → arm64\n"), "{text}");
    assert!(text.contains("  ~ etc/arch  content sha256:"), "{text}");
    // A platform the index does not have is an error naming what it has.
    let err = Image::from_layout("x", &dir, Some("arm-only"), Some(&"linux/s390x".parse().unwrap()))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("x: ") && err.contains("available: linux/arm64"),
        "{err}"
    );
}

#[test]
fn a_changed_text_file_shows_a_unified_diff_and_a_binary_its_first_differing_bytes() {
    let mut b = base_files();
    b[4] = file("usr/bin/app", "#!/bin/sh\necho app v2\n");
    // A gzip member as a file (a packaged man page, say): another mtime
    // and OS byte in its header.
    let page = |os: u8, mtime: u32| {
        let mut gz = flate2::GzBuilder::new()
            .operating_system(os)
            .mtime(mtime)
            .write(Vec::new(), flate2::Compression::new(6));
        gz.write_all(b"manual page text\n").unwrap();
        gz.finish().unwrap()
    };
    let with_page = |files: &mut Vec<Entry>, bytes: Vec<u8>| {
        let mut e = file("usr/share/man/app.1.gz", "");
        e.content = bytes;
        files.push(e);
    };
    let mut a = base_files();
    with_page(&mut a, page(255, 0));
    with_page(&mut b, page(3, 1_700_000_000));
    let (_t, r) = pair((&[gz(&a)], &spec()), (&[gz(&b)], &spec()));
    let e = &r.layers[0].entries;
    let app = e.iter().find(|e| e.path == "usr/bin/app").unwrap();
    let c = app.content.as_ref().unwrap();
    assert_eq!(c.kind, "text");
    assert!(
        c.diff.iter().any(|l| l == "-echo app") && c.diff.iter().any(|l| l == "+echo app v2"),
        "{c:?}"
    );
    let man = e.iter().find(|e| e.path.ends_with("app.1.gz")).unwrap();
    let c = man.content.as_ref().unwrap();
    assert_eq!(c.kind, "binary");
    // MTIME is bytes 4..8, little-endian: 1700000000 is 00 f1 53 65.
    assert_eq!(c.first_difference, Some(5), "the MTIME field: {c:?}");
    let text = human(&r);
    for want in [
        "      text, 19 → 22 bytes:\n",
        "      -echo app\n",
        "      +echo app v2\n",
        "; first difference at byte 5:\n",
        "        a 00000000: 1f 8b 08 00 00 00 00 00",
        "      gzip header: mtime 0 → 1700000000, OS 255 → 3\n",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    // And in the JSON report.
    let v = serde_json::to_value(&r).unwrap();
    let json = v.to_string();
    assert!(
        json.contains("\"firstDifference\":5") && json.contains("\"kind\":\"text\""),
        "{json}"
    );
}
