//! docker-archive tarballs: what `docker save` / `podman save` write and
//! `docker load` / `podman load` read.
//!
//! The format is a tar holding `manifest.json`
//! (`[{"Config": PATH, "RepoTags": [...], "Layers": [PATH, ...]}]`), the
//! config and one file per layer. Paths vary by writer (`<id>/layer.tar`,
//! `<hex>.tar`, `blobs/sha256/<hex>`), layers may be plain or gzip tars, and
//! `docker save` writes symlinks for repeated layers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, BufReader, Read, Seek, Write};
use std::path::Path;

use bake_digest::{Digest, HashingWriter, VerifyingReader};
use bake_store::BlobStore;
use fs_err as fs;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::base::check_config;
use crate::descriptor::{media_type, null_as_default};
use crate::layout::MAX_JSON_SIZE;
use crate::manifest::parse_manifest;
use crate::{BaseImage, Descriptor, ImageError, Platform, canonical_json};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const MAX_LINK_HOPS: usize = 16;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveEntry {
    config: String,
    #[serde(default, deserialize_with = "null_as_default")]
    repo_tags: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    layers: Vec<String>,
}

/// What pass one learnt about a path in the archive.
#[derive(Clone)]
enum Member {
    /// A regular file, last seen as the `n`th entry.
    File(usize),
    /// A symbolic or hard link to another archive path (already resolved
    /// against the link's directory).
    Link(String),
}

/// A layer as stored: digest and size of the bytes, and the diffID.
#[derive(Clone)]
struct StoredLayer {
    digest: Digest,
    size: u64,
    diff_id: Digest,
    gzip: bool,
}

/// Reads the single image in the docker-archive at `path` for `platform`,
/// storing its config and layers in `target`.
///
/// The archive is read twice, streaming (a layer is never held in memory);
/// it may itself be gzip-compressed. Each layer is stored as it is in the
/// archive: a plain tar gets media type `…layer.v1.tar` (digest = diffID),
/// a gzip one `…layer.v1.tar+gzip`, with its diffID computed by
/// decompressing alongside. The config's `rootfs.diff_ids` must match the
/// layers, and its platform `platform`. Where a path names a digest
/// (`<hex>.json`, `blobs/sha256/<hex>`), the content must match it.
pub fn load_from_docker_archive(
    path: &Path,
    platform: &Platform,
    target: &BlobStore,
) -> Result<BaseImage, ImageError> {
    load_from_docker_archive_with_limits(path, platform, target, &bake_layer::ReadLimits::DEFAULT)
}

/// [`load_from_docker_archive`], reading the archive's (uncompressed) tar
/// stream within `limits` instead of
/// [`ReadLimits::DEFAULT`](bake_layer::ReadLimits::DEFAULT).
pub fn load_from_docker_archive_with_limits(
    path: &Path,
    platform: &Platform,
    target: &BlobStore,
    limits: &bake_layer::ReadLimits,
) -> Result<BaseImage, ImageError> {
    let bad = |reason: String| ImageError::DockerArchive {
        path: path.to_path_buf(),
        reason,
    };
    let io_err = |source: io::Error| ImageError::ArchiveIo {
        path: path.to_path_buf(),
        source,
    };
    // The `tar` crate's own errors can quote header bytes: never shown.
    let tar_err = |last: &Option<String>, e: io::Error| tar_error(path, last.as_deref(), e);

    // Pass one: the table of contents and manifest.json.
    let mut members: HashMap<String, Member> = HashMap::new();
    let mut manifest_json = None;
    {
        let mut archive = tar::Archive::new(open_maybe_gzip(path, limits)?);
        let mut last = None;
        for (n, entry) in archive.entries().map_err(|e| tar_err(&None, e))?.enumerate() {
            let mut entry = entry.map_err(|e| tar_err(&last, e))?;
            let raw_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            last = Some(raw_name.clone());
            let Some(name) = normalise(&raw_name) else {
                continue;
            };
            let kind = entry.header().entry_type();
            if kind.is_file() {
                if name == "manifest.json" {
                    manifest_json = Some(read_small(&mut entry, "manifest.json").map_err(io_err)??);
                }
                members.insert(name, Member::File(n));
            } else if kind.is_symlink() || kind.is_hard_link() {
                let Some(target) = entry.link_name_bytes() else {
                    continue;
                };
                let target = String::from_utf8_lossy(&target).into_owned();
                let resolved = if kind.is_symlink() && !target.starts_with('/') {
                    let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                    normalise(&format!("{dir}/{target}"))
                } else {
                    normalise(&target)
                };
                if let Some(resolved) = resolved {
                    members.insert(name, Member::Link(resolved));
                }
            }
        }
    }
    let manifest_json = manifest_json.ok_or_else(|| bad("it has no manifest.json".into()))?;
    let entries: Vec<ArchiveEntry> =
        serde_json::from_slice(&manifest_json).map_err(|source| ImageError::Json {
            what: format!("manifest.json of docker archive {}", path.display()),
            source,
        })?;
    let image = match entries.as_slice() {
        [one] => one,
        [] => return Err(bad("its manifest.json lists no images".into())),
        many => {
            let tags: Vec<String> = many.iter().map(|e| e.repo_tags.join(" ")).collect();
            return Err(bad(format!(
                "it holds {} images ({}); only single-image archives can be a base",
                many.len(),
                tags.join("; ")
            )));
        }
    };

    // Resolve the config and layer paths to the archive entries holding them.
    let resolve = |p: &str| -> Result<(String, usize), ImageError> {
        let mut name =
            normalise(p).ok_or_else(|| bad(format!("manifest.json names an invalid path {p:?}")))?;
        for _ in 0..MAX_LINK_HOPS {
            match members.get(&name) {
                Some(Member::File(n)) => return Ok((name, *n)),
                Some(Member::Link(to)) => name = to.clone(),
                None => return Err(bad(format!("{p:?} named in manifest.json is not in the archive"))),
            }
        }
        Err(bad(format!("{p:?} is a symlink loop")))
    };
    let (config_name, config_n) = resolve(&image.config)?;
    let mut layer_names = Vec::with_capacity(image.layers.len());
    for l in &image.layers {
        layer_names.push(resolve(l)?);
    }
    let wanted_layers: BTreeMap<usize, &str> =
        layer_names.iter().map(|(name, n)| (*n, name.as_str())).collect();

    // Pass two: read the config, store the layers.
    let mut config_bytes = None;
    let mut stored: BTreeMap<usize, StoredLayer> = BTreeMap::new();
    {
        let mut archive = tar::Archive::new(open_maybe_gzip(path, limits)?);
        let mut last = None;
        for (n, entry) in archive.entries().map_err(|e| tar_err(&None, e))?.enumerate() {
            let mut entry = entry.map_err(|e| tar_err(&last, e))?;
            last = Some(String::from_utf8_lossy(&entry.path_bytes()).into_owned());
            if n != config_n && !wanted_layers.contains_key(&n) {
                continue;
            }
            if n == config_n {
                config_bytes = Some(read_small(&mut entry, &config_name).map_err(io_err)??);
            }
            if let Some(name) = wanted_layers.get(&n) {
                let layer = store_layer(&mut entry, target, path, name)?;
                if digest_in_name(name).is_some_and(|named| named != layer.digest) {
                    return Err(bad(format!("{name} holds content with digest {}", layer.digest)));
                }
                stored.insert(n, layer);
            }
        }
    }
    let config_bytes =
        config_bytes.ok_or_else(|| bad(format!("{config_name} vanished between two reads")))?;
    let config_digest = Digest::of(&config_bytes);
    if digest_in_name(&config_name).is_some_and(|named| named != config_digest) {
        return Err(bad(format!(
            "{config_name} holds content with digest {config_digest}"
        )));
    }
    let config_what = format!(
        "config {config_digest} ({config_name}) of docker archive {}",
        path.display()
    );
    let config = check_config(&config_bytes, &config_what, platform, layer_names.len())?;

    let mut layers = Vec::with_capacity(layer_names.len());
    for ((name, n), expected) in layer_names.iter().zip(&config.diff_ids) {
        let l = stored
            .get(n)
            .ok_or_else(|| bad(format!("{name} vanished between two reads")))?;
        if &l.diff_id != expected {
            return Err(ImageError::DiffIdMismatch {
                what: format!("{name} of docker archive {}", path.display()),
                expected: expected.clone(),
                actual: l.diff_id.clone(),
            });
        }
        let mt = if l.gzip {
            media_type::OCI_LAYER_GZIP
        } else {
            media_type::OCI_LAYER_TAR
        };
        layers.push(Descriptor::new(mt, l.digest.clone(), l.size));
    }
    target.put_bytes(&config_bytes)?;
    Ok(BaseImage {
        manifest_digest: None,
        config_json: config.json,
        config_digest,
        config_bytes,
        platform: config.platform,
        layers,
        diff_ids: config.diff_ids,
    })
}

/// What the `tar` crate's errors say, when it is one of its own messages that
/// quote nothing of the input.
const TAR_PLAIN_MESSAGES: &[&str] = &[
    "archive header checksum mismatch",
    "failed to read entire block",
    "size overflow",
    "unexpected EOF during skip",
];

/// An error met reading the tar stream of `archive` after the entry `last`.
/// Errors of the reader below the `tar` crate (the file system, gzip,
/// [`bake_layer::TarGuard`], whose messages quote names escaped) are kept;
/// the `tar` crate's own (`ErrorKind::Other`) can quote raw header bytes
/// (`numeric field was not a number: …`, a whole header's worth of any file
/// mistaken for a tar), so they are replaced by our wording.
fn tar_error(archive: &Path, last: Option<&str>, e: io::Error) -> ImageError {
    if e.kind() != io::ErrorKind::Other || e.raw_os_error().is_some() {
        return ImageError::ArchiveIo {
            path: archive.to_path_buf(),
            source: e,
        };
    }
    let text = e.to_string();
    let detail = TAR_PLAIN_MESSAGES
        .iter()
        .find(|m| text == **m)
        .map_or(String::new(), |m| format!(" ({m})"));
    let at = match last {
        Some(name) => format!("after entry {}", escaped_excerpt(name)),
        None => "at its start".to_owned(),
    };
    ImageError::DockerArchive {
        path: archive.to_path_buf(),
        reason: format!("malformed tar header {at}{detail}"),
    }
}

/// A name from an archive as errors show it: quoted, control characters
/// escaped, at most 100 characters.
fn escaped_excerpt(name: &str) -> String {
    let short: String = name.chars().take(100).collect();
    let more = if short.len() < name.len() { "…" } else { "" };
    format!("{short:?}{more}")
}

/// Opens `path`, transparently decompressing it if it is gzip, within
/// bake-layer's [`ReadLimits`](bake_layer::ReadLimits) (PAX and long-name
/// records, total bytes).
fn open_maybe_gzip(path: &Path, limits: &bake_layer::ReadLimits) -> Result<Box<dyn Read>, ImageError> {
    // A regular file only: a fifo would block, a device never end.
    let (mut file, _) = bake_store::open_regular(path)?;
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut file, &mut magic)?;
    file.rewind()?;
    let file = BufReader::with_capacity(256 * 1024, file);
    let limits = *limits;
    if n == 2 && magic == GZIP_MAGIC {
        let gz = flate2::read::MultiGzDecoder::new(file);
        Ok(Box::new(bake_layer::TarGuard::new(gz, limits)))
    } else {
        Ok(Box::new(bake_layer::TarGuard::new(file, limits)))
    }
}

/// Streams one layer into `target`, hashing it, and its decompressed form
/// too when it is gzip.
fn store_layer(
    r: &mut impl Read,
    target: &BlobStore,
    archive: &Path,
    name: &str,
) -> Result<StoredLayer, ImageError> {
    let ctx = |e: io::Error| ImageError::DockerArchive {
        path: archive.to_path_buf(),
        reason: format!("reading layer {name:?}: {e}"),
    };
    let mut buf = vec![0u8; 256 * 1024];
    let first = read_up_to(r, &mut buf).map_err(ctx)?;
    if first >= 4 && buf[..4] == ZSTD_MAGIC {
        return Err(ImageError::DockerArchive {
            path: archive.to_path_buf(),
            reason: format!("layer {name} is zstd-compressed, which docker archives do not allow"),
        });
    }
    let gzip = first >= 2 && buf[..2] == GZIP_MAGIC;
    let mut blob = target.writer()?;
    let mut unzip = gzip.then(|| flate2::write::MultiGzDecoder::new(HashingWriter::new(io::sink())));
    let mut n = first;
    while n > 0 {
        blob.write_all(&buf[..n]).map_err(ctx)?;
        if let Some(u) = unzip.as_mut() {
            u.write_all(&buf[..n]).map_err(ctx)?;
        }
        n = r.read(&mut buf).map_err(ctx)?;
    }
    let (digest, size) = blob.finish()?;
    let diff_id = match unzip {
        Some(u) => u.finish().map_err(ctx)?.finish().1,
        None => digest.clone(),
    };
    Ok(StoredLayer {
        digest,
        size,
        diff_id,
        gzip,
    })
}

/// Fills `buf` as far as `r` allows; returns the bytes read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads a whole entry of at most [`MAX_JSON_SIZE`] bytes.
fn read_small(r: &mut impl Read, name: &str) -> io::Result<Result<Vec<u8>, ImageError>> {
    let mut out = Vec::new();
    r.take(MAX_JSON_SIZE + 1).read_to_end(&mut out)?;
    if out.len() as u64 > MAX_JSON_SIZE {
        return Ok(Err(ImageError::TooLarge {
            what: name.to_owned(),
            size: out.len() as u64,
            limit: MAX_JSON_SIZE,
        }));
    }
    Ok(Ok(out))
}

/// An archive path without `.`, empty components or a leading `/`; `None`
/// if it climbs out with `..`.
fn normalise(p: &str) -> Option<String> {
    bake_path::relative(p).ok().filter(|p| !p.is_empty())
}

/// The digest a path promises: `blobs/sha256/<hex>` or `<hex>.json`.
fn digest_in_name(name: &str) -> Option<Digest> {
    if let Some(hex) = name.strip_prefix("blobs/sha256/") {
        return Digest::from_hex(hex).ok();
    }
    let stem = name.strip_suffix(".json")?;
    if stem.contains('/') {
        return None;
    }
    Digest::from_hex(stem).ok()
}

/// Writes the image whose OCI manifest is `manifest` (in `store`) as a
/// docker-archive at `out`, for `docker load` / `podman load`.
///
/// The tar holds `manifest.json` (with `repo_tags`, e.g. `"hello:latest"`)
/// and the config and layer blobs exactly as stored, at
/// `blobs/sha256/<hex>`; compressed layers stay compressed (both loaders
/// accept them). The bytes are deterministic: entries sorted by path,
/// mode 0644, uid/gid 0, mtime 0, no user or group names. Every blob is
/// verified as it is copied, and `out` appears only when complete (temporary
/// file in its directory, then rename).
pub fn write_docker_archive(
    store: &BlobStore,
    manifest: &Descriptor,
    repo_tags: &[String],
    out: &Path,
) -> Result<(), ImageError> {
    let what = format!("manifest {}", manifest.digest);
    let bytes = store.read_verified(&manifest.digest)?;
    let m = parse_manifest(&bytes, &manifest.media_type, &what)?;
    let path_of = |d: &Digest| format!("blobs/sha256/{}", d.hex());

    let mut entry = Map::new();
    entry.insert("Config".into(), Value::String(path_of(&m.config.digest)));
    entry.insert(
        "RepoTags".into(),
        Value::Array(repo_tags.iter().cloned().map(Value::String).collect()),
    );
    entry.insert(
        "Layers".into(),
        Value::Array(
            m.layers
                .iter()
                .map(|l| Value::String(path_of(&l.digest)))
                .collect(),
        ),
    );
    let manifest_json = canonical_json(&Value::Array(vec![Value::Object(entry)]));

    // Every blob once, in path order; manifest.json sorts after "blobs/".
    let mut blobs: BTreeMap<String, &Descriptor> = BTreeMap::new();
    for d in std::iter::once(&m.config).chain(&m.layers) {
        blobs.insert(path_of(&d.digest), d);
    }
    let names: BTreeSet<&str> = blobs
        .keys()
        .map(String::as_str)
        .chain(["manifest.json"])
        .collect();

    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let ctx = |e: io::Error| io::Error::new(e.kind(), format!("failed to write {}: {e}", out.display()));
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        // 0666 less the umask, as for blobs (tempfile's default is 0600).
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(ctx)?;
    let mut tar = tar::Builder::new(io::BufWriter::with_capacity(256 * 1024, tmp));
    for name in names {
        if name == "manifest.json" {
            append(&mut tar, name, manifest_json.len() as u64, &manifest_json[..]).map_err(ctx)?;
            continue;
        }
        let Some(d) = blobs.get(name) else { continue };
        let actual = store.size(&d.digest)?;
        if actual != d.size {
            return Err(ImageError::SizeMismatch {
                digest: d.digest.clone(),
                expected: d.size,
                actual,
            });
        }
        let file = match fs::File::open(store.path(&d.digest)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(bake_store::StoreError::Missing(d.digest.clone(), store.path(&d.digest)).into());
            }
            Err(e) => return Err(e.into()),
        };
        let reader = VerifyingReader::new(
            BufReader::with_capacity(256 * 1024, file),
            d.digest.clone(),
            Some(d.size),
        );
        append(&mut tar, name, d.size, reader).map_err(ctx)?;
    }
    let tmp = tar
        .into_inner()
        .map_err(ctx)?
        .into_inner()
        .map_err(|e| ctx(e.into_error()))?;
    tmp.as_file().sync_all().map_err(ctx)?;
    tmp.persist(out).map_err(|e| ctx(e.error))?;
    Ok(bake_store::sync_dir(dir).map_err(ctx)?)
}

fn append<W: Write>(tar: &mut tar::Builder<W>, name: &str, size: u64, data: impl Read) -> io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    tar.append_data(&mut h, name, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConfigSpec, build_config, build_manifest};
    use flate2::Compression;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    /// (path, mtime, mode, uid+gid) of each entry of a tar.
    fn list(path: &Path) -> Vec<(String, u64, u32, u64)> {
        let mut a = tar::Archive::new(std::fs::File::open(path).unwrap());
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.mtime().unwrap(),
                    h.mode().unwrap(),
                    h.uid().unwrap() + h.gid().unwrap(),
                )
            })
            .collect()
    }

    pub(crate) fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// An image of two layers (one gzip, one plain) in a fresh store.
    fn image(store: &BlobStore) -> (Descriptor, Vec<Descriptor>, Vec<Digest>) {
        let l1 = tar_of(&[("etc/hello", b"hi\n")]);
        let l1gz = gzip(&l1);
        let l2 = tar_of(&[("usr/bin/app", b"#!/bin/sh\necho app\n")]);
        let d1 = store.put_bytes(&l1gz).unwrap();
        let d2 = store.put_bytes(&l2).unwrap();
        let layers = vec![
            Descriptor::new(media_type::OCI_LAYER_GZIP, d1, l1gz.len() as u64),
            Descriptor::new(media_type::OCI_LAYER_TAR, d2.clone(), l2.len() as u64),
        ];
        let diff_ids = vec![Digest::of(&l1), d2];
        let spec = ConfigSpec {
            cmd: Some(vec!["/usr/bin/app".into()]),
            ..ConfigSpec::default()
        };
        let config = build_config(
            None,
            &spec,
            &Platform::linux_amd64(),
            0,
            &[
                (diff_ids[0].clone(), "one".into()),
                (diff_ids[1].clone(), "two".into()),
            ],
        )
        .unwrap();
        store.put_bytes(&config).unwrap();
        let manifest = build_manifest(
            &Descriptor::of(media_type::OCI_CONFIG, &config),
            &layers,
            &BTreeMap::new(),
        );
        store.put_bytes(&manifest).unwrap();
        (
            Descriptor::of(media_type::OCI_MANIFEST, &manifest),
            layers,
            diff_ids,
        )
    }

    #[test]
    fn write_is_deterministic_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&dir.path().join("store")).unwrap();
        let (m, layers, diff_ids) = image(&store);
        let out = dir.path().join("image.tar");
        write_docker_archive(&store, &m, &["hello:latest".into()], &out).unwrap();
        let first = std::fs::read(&out).unwrap();
        write_docker_archive(&store, &m, &["hello:latest".into()], &out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), first);

        let entries = list(&out);
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(names.len(), 4);
        assert_eq!(names[3], "manifest.json");
        assert!(
            entries.iter().all(|e| e.1 == 0 && e.2 == 0o644 && e.3 == 0),
            "{entries:?}"
        );

        let target_dir = tempfile::tempdir().unwrap();
        let target = BlobStore::open(target_dir.path()).unwrap();
        let base = load_from_docker_archive(&out, &Platform::linux_amd64(), &target).unwrap();
        assert_eq!(base.layers, layers);
        assert_eq!(base.diff_ids, diff_ids);
        assert_eq!(base.manifest_digest, None);
        let m = parse_manifest(
            &store.read_verified(&m.digest).unwrap(),
            media_type::OCI_MANIFEST,
            "m",
        )
        .unwrap();
        assert_eq!(base.config_digest, m.config.digest);
        for l in &layers {
            target.verify(&l.digest).unwrap();
        }
        target.verify(&base.config_digest).unwrap();

        // The manifest.json is exactly what docker expects.
        let mut a = tar::Archive::new(std::fs::File::open(&out).unwrap());
        let mut mj = String::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().to_str() == Some("manifest.json") {
                e.read_to_string(&mut mj).unwrap();
            }
        }
        assert_eq!(
            mj,
            format!(
                r#"[{{"Config":"blobs/sha256/{}","Layers":["blobs/sha256/{}","blobs/sha256/{}"],"RepoTags":["hello:latest"]}}]"#,
                m.config.digest.hex(),
                layers[0].digest.hex(),
                layers[1].digest.hex()
            )
        );
    }

    #[test]
    fn write_refuses_corrupt_blob_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&dir.path().join("store")).unwrap();
        let (m, layers, _) = image(&store);
        let p = store.path(&layers[1].digest);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[600] ^= 1;
        std::fs::write(&p, bytes).unwrap();
        let out = dir.path().join("out").join("image.tar");
        std::fs::create_dir(dir.path().join("out")).unwrap();
        let err = write_docker_archive(&store, &m, &[], &out).unwrap_err();
        assert!(err.to_string().contains("does not match its digest"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path().join("out")).unwrap().count(), 0);
    }

    /// A `docker save`-style archive (legacy layout, symlinked duplicate
    /// layer, gzip-compressed as a whole).
    #[test]
    fn reads_legacy_docker_save_layout() {
        let dir = tempfile::tempdir().unwrap();
        let layer = tar_of(&[("a", b"same")]);
        let diff = Digest::of(&layer);
        let config = canonical_json(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff.to_string(), diff.to_string()]}
        }));
        let cfg_name = format!("{}.json", Digest::of(&config).hex());
        let manifest = format!(
            r#"[{{"Config":"{cfg_name}","RepoTags":null,"Layers":["aaa/layer.tar","bbb/layer.tar"]}}]"#
        );
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, data).unwrap();
        };
        add(&cfg_name, &config);
        add("aaa/layer.tar", &layer);
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "bbb/layer.tar", "../aaa/layer.tar")
            .unwrap();
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, data).unwrap();
        };
        add("manifest.json", manifest.as_bytes());
        let archive = gzip(&b.into_inner().unwrap());
        let path = dir.path().join("save.tar.gz");
        std::fs::write(&path, archive).unwrap();

        let target = BlobStore::open(&dir.path().join("store")).unwrap();
        let base = load_from_docker_archive(&path, &Platform::linux_amd64(), &target).unwrap();
        assert_eq!(base.layers.len(), 2);
        assert_eq!(base.layers[0], base.layers[1]);
        assert_eq!(base.layers[0], Descriptor::of(media_type::OCI_LAYER_TAR, &layer));
        assert_eq!(base.config_bytes, config);
    }

    fn archive_with(files: &[(&str, &[u8])]) -> (tempfile::TempDir, PathBuf, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        std::fs::write(&path, tar_of(files)).unwrap();
        let store = BlobStore::open(&dir.path().join("store")).unwrap();
        (dir, path, store)
    }

    #[test]
    fn archive_errors_are_clear() {
        let amd = Platform::linux_amd64();
        let layer = tar_of(&[("x", b"x")]);
        let cfg = |diff: &Digest| {
            canonical_json(&serde_json::json!({
                "architecture": "amd64", "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [diff.to_string()]}
            }))
        };
        let good_cfg = cfg(&Digest::of(&layer));
        let mj = br#"[{"Config":"c.json","RepoTags":["x:y"],"Layers":["l.tar"]}]"#;

        let (_d, p, s) = archive_with(&[("c.json", &good_cfg), ("l.tar", &layer)]);
        let err = load_from_docker_archive(&p, &amd, &s).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("docker archive {}: it has no manifest.json", p.display())
        );

        let (_d, p, s) = archive_with(&[("manifest.json", b"[{\"Config\":")]);
        let err = load_from_docker_archive(&p, &amd, &s).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("malformed JSON in manifest.json of docker archive"),
            "{err}"
        );

        let (_d, p, s) = archive_with(&[("manifest.json", mj), ("c.json", &good_cfg)]);
        let err = load_from_docker_archive(&p, &amd, &s).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("\"l.tar\" named in manifest.json is not in the archive"),
            "{err}"
        );

        let bad_cfg = cfg(&Digest::of(b"other"));
        let (_d, p, s) = archive_with(&[("manifest.json", mj), ("c.json", &bad_cfg), ("l.tar", &layer)]);
        let err = load_from_docker_archive(&p, &amd, &s).unwrap_err();
        assert!(matches!(err, ImageError::DiffIdMismatch { .. }), "{err}");
        assert!(err.to_string().contains("l.tar"), "{err}");

        let (_d, p, s) = archive_with(&[("manifest.json", mj), ("c.json", &good_cfg), ("l.tar", &layer)]);
        let err = load_from_docker_archive(&p, &"linux/arm64".parse().unwrap(), &s).unwrap_err();
        assert!(matches!(err, ImageError::PlatformMismatch { .. }), "{err}");
        let ok = load_from_docker_archive(&p, &amd, &s).unwrap();
        assert_eq!(ok.layers[0].media_type, media_type::OCI_LAYER_TAR);

        // A config named by a digest it does not have.
        let wrong_name = format!("{}.json", Digest::of(b"nope").hex());
        let mj2 = format!(r#"[{{"Config":"{wrong_name}","Layers":["l.tar"]}}]"#);
        let (_d, p, s) = archive_with(&[
            ("manifest.json", mj2.as_bytes()),
            (&wrong_name, &good_cfg),
            ("l.tar", &layer),
        ]);
        let err = load_from_docker_archive(&p, &amd, &s).unwrap_err();
        assert!(err.to_string().contains("holds content with digest"), "{err}");

        let two = br#"[{"Config":"c.json","RepoTags":["a:1"],"Layers":[]},{"Config":"c.json","RepoTags":["b:2"],"Layers":[]}]"#;
        let (_d, p, s) = archive_with(&[("manifest.json", two), ("c.json", &good_cfg)]);
        let err = load_from_docker_archive(&p, &amd, &s).unwrap_err();
        assert!(err.to_string().contains("holds 2 images (a:1; b:2)"), "{err}");

        let (_d, p, s) = archive_with(&[
            ("manifest.json", mj),
            ("c.json", &good_cfg),
            ("l.tar", &[0x28, 0xb5, 0x2f, 0xfd, 0]),
        ]);
        let err = load_from_docker_archive(&p, &amd, &s).unwrap_err();
        assert!(err.to_string().contains("zstd"), "{err}");

        let escape = br#"[{"Config":"../c.json","Layers":[]}]"#;
        let (_d, p, s) = archive_with(&[("manifest.json", escape)]);
        let err = load_from_docker_archive(&p, &amd, &s).unwrap_err();
        assert!(err.to_string().contains("invalid path \"../c.json\""), "{err}");

        let (_d, p, s) = archive_with(&[]);
        std::fs::write(&p, b"this is not a tar file at all, not even close").unwrap();
        assert!(load_from_docker_archive(&p, &amd, &s).is_err());
    }

    #[test]
    fn normalise_paths() {
        assert_eq!(normalise("./a//b/./c").as_deref(), Some("a/b/c"));
        assert_eq!(normalise("a/../b").as_deref(), Some("b"));
        assert_eq!(normalise("../b"), None);
        assert_eq!(normalise("/"), None);
        assert_eq!(
            digest_in_name(&format!("blobs/sha256/{}", Digest::of(b"").hex())),
            Some(Digest::of(b""))
        );
        assert_eq!(digest_in_name("abc/layer.tar"), None);
    }
}
