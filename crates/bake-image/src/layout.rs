//! OCI image layouts on disk: `oci-layout`, `index.json`, `blobs/sha256/…`.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bake_digest::Digest;
use bake_store::BlobStore;
use fs_err as fs;
use serde_json::{Map, Value};

use crate::descriptor::{REF_NAME, media_type};
use crate::manifest::parse_index;
use crate::{Descriptor, ImageError, canonical_json};

const OCI_LAYOUT: &str = "oci-layout";
const INDEX_JSON: &str = "index.json";
const LAYOUT_VERSION: &str = "1.0.0";
/// `oci-layout` files larger than this are refused (it holds one short field).
const MAX_MARKER_SIZE: u64 = 4096;
/// JSON documents (index, manifest, config) larger than this are refused.
pub const MAX_JSON_SIZE: u64 = 32 << 20;

/// An OCI image layout directory.
///
/// `index.json` is read afresh by every call, never cached, and is at
/// most [`MAX_JSON_SIZE`] bytes. Tags live in its entries'
/// `org.opencontainers.image.ref.name` annotation, one entry per tag.
/// Rewrites are atomic (temporary file + rename) and done under an
/// exclusive advisory lock on the layout directory ([`Layout::lock`]), so
/// processes tagging the same layout at once do not lose each other's
/// tags.
#[derive(Debug, Clone)]
pub struct Layout {
    dir: PathBuf,
    store: BlobStore,
}

/// An exclusive advisory lock (`flock`) on a layout directory, held until
/// dropped; see [`Layout::lock`].
#[derive(Debug)]
pub struct LayoutLock {
    _dir: std::fs::File,
}

impl Layout {
    /// Opens the layout at `dir`, creating it if needed: writes `oci-layout`
    /// and an empty `index.json` when they are absent. Refuses a non-empty
    /// directory that is not already a layout, so a mistyped output path
    /// does not scatter files into an unrelated directory.
    pub fn create_or_open(dir: &Path) -> Result<Layout, ImageError> {
        fs::create_dir_all(dir)?;
        let marker = dir.join(OCI_LAYOUT);
        if !marker.exists() {
            // (Re-checking the marker lets a concurrent creator win the race;
            // a `.tmp-` file is what a creator killed before its rename left.)
            let mut entries = fs::read_dir(dir)?;
            let other =
                entries.any(|e| e.is_ok_and(|e| !e.file_name().as_encoded_bytes().starts_with(b".tmp-")));
            if other && !marker.exists() {
                return Err(ImageError::NotALayout(
                    dir.to_path_buf(),
                    "the directory is not empty and has no oci-layout file".into(),
                ));
            }
            let mut m = Map::new();
            m.insert("imageLayoutVersion".into(), Value::String(LAYOUT_VERSION.into()));
            write_atomic(&marker, &canonical_json(&Value::Object(m)))?;
        }
        let index = dir.join(INDEX_JSON);
        if !index.exists() {
            write_atomic(&index, &crate::build_index(&[], &Default::default()))?;
        }
        let layout = Layout::open(dir)?;
        layout.store.create_dirs()?;
        Ok(layout)
    }

    /// Opens an existing layout, checking `oci-layout` and `index.json`
    /// (regular files, bounded reads) and that `blobs` and `blobs/sha256`,
    /// if present, are real directories. Creates nothing: a base's layout
    /// is only read.
    pub fn open(dir: &Path) -> Result<Layout, ImageError> {
        let not_layout = |why: String| ImageError::NotALayout(dir.to_path_buf(), why);
        if !dir.is_dir() {
            return Err(not_layout("no such directory".into()));
        }
        let marker = dir.join(OCI_LAYOUT);
        let bytes = match read_regular(&marker, MAX_MARKER_SIZE) {
            Ok(b) => b,
            Err(ImageError::Store(bake_store::StoreError::Io(e))) if e.kind() == io::ErrorKind::NotFound => {
                return Err(not_layout("it has no oci-layout file".into()));
            }
            Err(e) => return Err(e),
        };
        let v: Value =
            serde_json::from_slice(&bytes).map_err(|e| not_layout(format!("oci-layout is not JSON: {e}")))?;
        match v.get("imageLayoutVersion") {
            Some(Value::String(s)) if s == LAYOUT_VERSION => {}
            other => {
                return Err(not_layout(format!(
                    "oci-layout has imageLayoutVersion {}, expected \"{LAYOUT_VERSION}\"",
                    other.unwrap_or(&Value::Null)
                )));
            }
        }
        let layout = Layout {
            dir: dir.to_path_buf(),
            store: BlobStore::open(dir)?,
        };
        match layout.index() {
            Err(ImageError::Store(bake_store::StoreError::Io(e))) if e.kind() == io::ErrorKind::NotFound => {
                Err(not_layout("it has no index.json".into()))
            }
            Err(e) => Err(e),
            Ok(_) => Ok(layout),
        }
    }

    /// The layout's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The layout's blobs, as a store.
    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    fn index_what(&self) -> String {
        format!("{}", self.dir.join(INDEX_JSON).display())
    }

    /// The bytes of `index.json`, refused beyond [`MAX_JSON_SIZE`].
    fn read_index_bytes(&self) -> Result<Vec<u8>, ImageError> {
        read_regular(&self.dir.join(INDEX_JSON), MAX_JSON_SIZE)
    }

    fn read_index_value(&self) -> Result<Value, ImageError> {
        let bytes = self.read_index_bytes()?;
        serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
            what: self.index_what(),
            source,
        })
    }

    /// The entries of `index.json`, in file order.
    pub fn index(&self) -> Result<Vec<Descriptor>, ImageError> {
        let bytes = self.read_index_bytes()?;
        parse_index(&bytes, media_type::OCI_INDEX, &self.index_what())
    }

    /// Takes an exclusive advisory lock on the layout directory, waiting
    /// for any other holder: [`Layout::set_tags`] holds it while it
    /// rewrites `index.json`, and whoever must see `index.json` stay as it
    /// is (`bake store gc` deciding what is unreachable) holds it too.
    /// Locks are per open file, so a process holding one must not call
    /// `set_tags` meanwhile: it would wait for itself.
    pub fn lock(&self) -> Result<LayoutLock, ImageError> {
        let ctx = |e: io::Error| io::Error::new(e.kind(), format!("cannot lock {}: {e}", self.dir.display()));
        let dir = std::fs::File::open(&self.dir).map_err(ctx)?;
        fs4::FileExt::lock(&dir).map_err(ctx)?;
        Ok(LayoutLock { _dir: dir })
    }

    /// Points each of `tags` at `manifest` (which must be in the layout's
    /// store). Entries with one of these tags are replaced, all others kept
    /// as they are; entries are written sorted by tag (untagged first). With
    /// no tags, an untagged entry for `manifest` is added once.
    pub fn set_tags(&self, manifest: &Descriptor, tags: &[String]) -> Result<(), ImageError> {
        for t in tags {
            check_tag(t)?;
        }
        if !self.store.has(&manifest.digest) {
            return Err(ImageError::Store(bake_store::StoreError::Missing(
                manifest.digest.clone(),
                self.store.path(&manifest.digest),
            )));
        }
        // Read, change and write index.json as one step among processes.
        let _lock = self.lock()?;
        let mut index = match self.read_index_value()? {
            Value::Object(m) => m,
            _ => {
                return Err(ImageError::Invalid {
                    what: self.index_what(),
                    reason: "it is not a JSON object".into(),
                });
            }
        };
        let old = match index.remove("manifests") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(ImageError::Invalid {
                    what: self.index_what(),
                    reason: "manifests is not a list".into(),
                });
            }
        };
        let ref_name = |v: &Value| {
            v.get("annotations")
                .and_then(|a| a.get(REF_NAME))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let mut entries: Vec<Value> = old
            .into_iter()
            .filter(|e| match ref_name(e) {
                Some(name) => !tags.contains(&name),
                // an untagged entry for this manifest is replaced by the new one(s)
                None => e.get("digest").and_then(Value::as_str) != Some(&manifest.digest.to_string()),
            })
            .collect();
        if tags.is_empty() {
            let mut d = manifest.clone();
            d.annotations.remove(REF_NAME);
            entries.push(d.to_json());
        }
        for t in tags {
            let mut d = manifest.clone();
            d.annotations.insert(REF_NAME.into(), t.clone());
            entries.push(d.to_json());
        }
        entries.sort_by_cached_key(|e| (ref_name(e).unwrap_or_default(), canonical_json(e)));
        index.insert("schemaVersion".into(), Value::from(2));
        index.insert("mediaType".into(), Value::String(media_type::OCI_INDEX.into()));
        index.insert("manifests".into(), Value::Array(entries));
        write_atomic(&self.dir.join(INDEX_JSON), &canonical_json(&Value::Object(index)))
    }

    /// Finds an image in the layout.
    ///
    /// * `None`: the only image (several tags of one manifest count as one);
    ///   an error lists the tags if there are several.
    /// * `"@sha256:…"` or `"sha256:…"`: the entry with that digest, or else a
    ///   manifest or index of that digest in the blobs (e.g. one platform of
    ///   a multi-platform image).
    /// * anything else: a tag.
    pub fn resolve(&self, tag_or_digest: Option<&str>) -> Result<Descriptor, ImageError> {
        let entries = self.index()?;
        let available = || tag_list(&entries);
        match tag_or_digest {
            None => {
                // A signature (or attestation) of an image in the layout is
                // stored beside it under cosign's tag for it: not an image.
                let images: Vec<&Descriptor> = entries
                    .iter()
                    .filter(|e| !e.ref_name().is_some_and(is_cosign_artifact_tag))
                    .collect();
                let first = *images
                    .first()
                    .ok_or_else(|| ImageError::EmptyLayout(self.dir.clone()))?;
                if images.iter().any(|e| e.digest != first.digest) {
                    return Err(ImageError::AmbiguousImage {
                        dir: self.dir.clone(),
                        available: available(),
                    });
                }
                Ok(first.clone())
            }
            Some(s) if s.trim_start_matches('@').starts_with("sha256:") => {
                let digest: Digest = s
                    .trim_start_matches('@')
                    .parse()
                    .map_err(|e| ImageError::Invalid {
                        what: format!("reference {s:?}"),
                        reason: format!("{e}"),
                    })?;
                if let Some(e) = entries.iter().find(|e| e.digest == digest) {
                    return Ok(e.clone());
                }
                if self.store.has(&digest) {
                    return self.describe_blob(&digest);
                }
                Err(ImageError::DigestNotFound {
                    dir: self.dir.clone(),
                    digest,
                })
            }
            Some(tag) => entries
                .iter()
                .find(|e| e.ref_name() == Some(tag))
                .cloned()
                .ok_or_else(|| ImageError::TagNotFound {
                    dir: self.dir.clone(),
                    tag: tag.to_owned(),
                    available: available(),
                }),
        }
    }

    /// A descriptor for a manifest or index found only in the blobs.
    fn describe_blob(&self, digest: &Digest) -> Result<Descriptor, ImageError> {
        let size = self.store.size(digest)?;
        if size > MAX_JSON_SIZE {
            return Err(ImageError::TooLarge {
                what: format!("blob {digest}"),
                size,
                limit: MAX_JSON_SIZE,
            });
        }
        let bytes = self.store.read_verified(digest)?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
            what: format!("blob {digest}"),
            source,
        })?;
        let mt = match v.get("mediaType").and_then(Value::as_str) {
            Some(mt) => mt.to_owned(),
            None if v.get("manifests").is_some() => media_type::OCI_INDEX.to_owned(),
            None if v.get("config").is_some() => media_type::OCI_MANIFEST.to_owned(),
            None => {
                return Err(ImageError::Invalid {
                    what: format!("blob {digest}"),
                    reason: "it is neither a manifest nor an index".into(),
                });
            }
        };
        Ok(Descriptor::new(mt, digest.clone(), bytes.len() as u64))
    }
}

/// Whether `tag` is the tag cosign stores an image's signature,
/// attestation or SBOM under: `sha256-<64 hex>.sig` (`.att`, `.sbom`).
pub fn is_cosign_artifact_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let Some((hex, kind)) = rest.split_once('.') else {
        return false;
    };
    hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && matches!(kind, "sig" | "att" | "sbom")
}

fn tag_list(entries: &[Descriptor]) -> String {
    let tags: Vec<String> = entries
        .iter()
        .map(|e| match e.ref_name() {
            Some(t) => t.to_owned(),
            None => format!("@{}", e.digest),
        })
        .collect();
    if tags.is_empty() {
        "none".to_owned()
    } else {
        tags.join(", ")
    }
}

/// A tag as the OCI layout spec allows it in `ref.name`: components of
/// letters and digits joined by `/` or by the separators `- . _ : @ +`.
fn check_tag(t: &str) -> Result<(), ImageError> {
    let bytes = t.as_bytes();
    let alnum = |b: u8| b.is_ascii_alphanumeric();
    let sep = |b: u8| matches!(b, b'-' | b'.' | b'_' | b':' | b'@' | b'+' | b'/');
    let ok = !bytes.is_empty()
        && bytes.iter().all(|&b| alnum(b) || sep(b))
        && alnum(bytes[0])
        && alnum(bytes[bytes.len() - 1])
        && !t.starts_with("sha256:");
    if ok {
        Ok(())
    } else {
        Err(ImageError::InvalidTag(t.to_owned()))
    }
}

/// The content of `path`, a regular file (not a symlink, fifo or device:
/// see [`bake_store::open_regular`]) of at most `limit` bytes; the read is
/// bounded whatever the file claims.
pub(crate) fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, ImageError> {
    let (file, meta) = bake_store::open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io::Error::new(e.kind(), format!("failed to read {}: {e}", path.display())))?;
    if bytes.len() as u64 > limit {
        return Err(ImageError::TooLarge {
            what: path.display().to_string(),
            size: meta.len().max(bytes.len() as u64),
            limit,
        });
    }
    Ok(bytes)
}

/// Writes `bytes` to `path` atomically (`bake_store::write_atomic`), so
/// readers see the old or the new content, never a mix; 0666 less the
/// umask, as for blobs.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    bake_store::write_atomic(path, bytes, 0o666)
        .map_err(|e| io::Error::new(e.kind(), format!("failed to write {}: {e}", path.display())).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> (tempfile::TempDir, Layout) {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::create_or_open(&dir.path().join("out")).unwrap();
        (dir, l)
    }

    fn put_manifest(l: &Layout, seed: &[u8]) -> Descriptor {
        let config = Descriptor::of(media_type::OCI_CONFIG, seed);
        let bytes = crate::build_manifest(&config, &[], &Default::default());
        l.store().put_bytes(&bytes).unwrap();
        Descriptor::of(media_type::OCI_MANIFEST, &bytes)
    }

    fn read(l: &Layout, name: &str) -> String {
        std::fs::read_to_string(l.dir().join(name)).unwrap()
    }

    #[test]
    fn create_writes_marker_and_empty_index() {
        let (_d, l) = layout();
        assert_eq!(read(&l, "oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#);
        assert_eq!(
            read(&l, "index.json"),
            r#"{"manifests":[],"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}"#
        );
        assert!(l.dir().join("blobs/sha256").is_dir());
        // Reopening changes nothing.
        let again = Layout::create_or_open(l.dir()).unwrap();
        assert!(again.index().unwrap().is_empty());
        Layout::open(l.dir()).unwrap();
    }

    #[test]
    fn refuses_non_layouts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("precious.txt"), "x").unwrap();
        let err = Layout::create_or_open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("is not an OCI image layout"), "{err}");
        assert!(!dir.path().join("oci-layout").exists());
        let err = Layout::open(&dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("no such directory"), "{err}");
        std::fs::write(dir.path().join("oci-layout"), r#"{"imageLayoutVersion":"2.0.0"}"#).unwrap();
        let err = Layout::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("imageLayoutVersion \"2.0.0\""), "{err}");
        std::fs::write(dir.path().join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let err = Layout::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("no index.json"), "{err}");
        std::fs::write(dir.path().join("index.json"), "{\"schemaVersion\":2,").unwrap();
        let err = Layout::open(dir.path()).unwrap_err();
        assert!(err.to_string().starts_with("malformed JSON in "), "{err}");
    }

    #[test]
    fn set_tags_replaces_keeps_and_sorts() {
        let (_d, l) = layout();
        let a = put_manifest(&l, b"a");
        let b = put_manifest(&l, b"b");
        l.set_tags(&a, &["v1".into(), "latest".into()]).unwrap();
        l.set_tags(&b, &["latest".into(), "beta".into()]).unwrap();
        let idx = l.index().unwrap();
        let tags: Vec<(&str, &Digest)> = idx.iter().map(|e| (e.ref_name().unwrap(), &e.digest)).collect();
        assert_eq!(
            tags,
            vec![("beta", &b.digest), ("latest", &b.digest), ("v1", &a.digest)]
        );
        assert_eq!(l.resolve(Some("v1")).unwrap().digest, a.digest);
        assert_eq!(l.resolve(Some("latest")).unwrap().digest, b.digest);
        assert_eq!(
            l.resolve(Some(&format!("@{}", a.digest))).unwrap().digest,
            a.digest
        );
        // Idempotent, byte for byte.
        let before = read(&l, "index.json");
        l.set_tags(&b, &["beta".into(), "latest".into()]).unwrap();
        assert_eq!(read(&l, "index.json"), before);
        // No temporary files left behind.
        let names: Vec<String> = std::fs::read_dir(l.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with(".tmp")), "{names:?}");
    }

    #[test]
    fn set_tags_keeps_unknown_index_fields_and_foreign_entries() {
        let (_d, l) = layout();
        let a = put_manifest(&l, b"a");
        let foreign = format!(
            r#"{{"schemaVersion":2,"annotations":{{"x":"y"}},"manifests":[{{"mediaType":"{}","digest":"{}","size":{},"urls":["http://u"],"annotations":{{"{REF_NAME}":"zzz"}}}}]}}"#,
            a.media_type, a.digest, a.size
        );
        std::fs::write(l.dir().join("index.json"), foreign).unwrap();
        l.set_tags(&a, &["t".into()]).unwrap();
        let text = read(&l, "index.json");
        assert!(text.starts_with(r#"{"annotations":{"x":"y"},"manifests":[{"annotations":{"org.opencontainers.image.ref.name":"t"}"#), "{text}");
        assert!(text.contains(r#""urls":["http://u"]"#), "{text}");
    }

    #[test]
    fn a_signature_beside_the_image_does_not_make_the_layout_ambiguous() {
        let (_d, l) = layout();
        let image = put_manifest(&l, b"image");
        l.set_tags(&image, &["latest".into(), "v1".into()]).unwrap();
        let sig = put_manifest(&l, b"signature");
        let tag = format!("sha256-{}.sig", image.digest.hex());
        l.set_tags(&sig, std::slice::from_ref(&tag)).unwrap();
        assert_eq!(l.resolve(None).unwrap().digest, image.digest);
        assert_eq!(l.resolve(Some(&tag)).unwrap().digest, sig.digest);
        // A second image still is ambiguous.
        let other = put_manifest(&l, b"other");
        l.set_tags(&other, &["other".into()]).unwrap();
        assert!(matches!(l.resolve(None), Err(ImageError::AmbiguousImage { .. })));
        assert!(is_cosign_artifact_tag(&format!(
            "sha256-{}.att",
            image.digest.hex()
        )));
        for not in [
            "sha256-abc.sig",
            "latest",
            &format!("sha256-{}.tar", image.digest.hex()),
        ] {
            assert!(!is_cosign_artifact_tag(not), "{not}");
        }
    }

    #[test]
    fn resolve_errors() {
        let (_d, l) = layout();
        let err = l.resolve(None).unwrap_err();
        assert!(err.to_string().contains("holds no images"), "{err}");
        let a = put_manifest(&l, b"a");
        let b = put_manifest(&l, b"b");
        l.set_tags(&a, &["one".into(), "uno".into()]).unwrap();
        // Two tags of one manifest: still "the only image".
        assert_eq!(l.resolve(None).unwrap().digest, a.digest);
        l.set_tags(&b, &["two".into()]).unwrap();
        let err = l.resolve(None).unwrap_err();
        assert!(err.to_string().ends_with("available: one, two, uno"), "{err}");
        let err = l.resolve(Some("three")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "OCI layout {} has no image tagged \"three\"; available: one, two, uno",
                l.dir().display()
            )
        );
        let missing = Digest::of(b"missing");
        let err = l.resolve(Some(&format!("@{missing}"))).unwrap_err();
        assert!(err.to_string().contains(&missing.to_string()), "{err}");
        let err = l.resolve(Some("@sha256:abc")).unwrap_err();
        assert!(err.to_string().contains("\"@sha256:abc\""), "{err}");
        // A manifest only in the blobs is found by digest.
        let c = put_manifest(&l, b"c");
        assert_eq!(l.resolve(Some(&c.digest.to_string())).unwrap(), c);
    }

    /// Concurrent taggers (threads here, processes in the CLI tests) never
    /// lose a tag: index.json is rewritten under the layout lock.
    #[test]
    fn concurrent_set_tags_lose_nothing() {
        let (_d, l) = layout();
        let m: Vec<Descriptor> = (0..8u8).map(|i| put_manifest(&l, &[i])).collect();
        std::thread::scope(|s| {
            for (i, m) in m.iter().enumerate() {
                let l = l.clone();
                s.spawn(move || {
                    for round in 0..15 {
                        l.set_tags(m, &[format!("t{i}"), format!("r{i}-{round}")])
                            .unwrap();
                    }
                });
            }
        });
        let idx = l.index().unwrap();
        assert_eq!(idx.len(), 8 * 16, "{:?}", tag_list(&idx));
        for (i, m) in m.iter().enumerate() {
            assert_eq!(l.resolve(Some(&format!("t{i}"))).unwrap().digest, m.digest);
        }
    }

    #[test]
    fn huge_index_json_is_refused() {
        let (_d, l) = layout();
        let f = std::fs::File::create(l.dir().join("index.json")).unwrap();
        f.set_len(MAX_JSON_SIZE + 1).unwrap();
        let err = l.index().unwrap_err();
        assert!(
            err.to_string().ends_with(&format!(
                "index.json is {} bytes, more than the {MAX_JSON_SIZE} allowed",
                MAX_JSON_SIZE + 1
            )),
            "{err}"
        );
        assert!(Layout::open(l.dir()).is_err());
    }

    /// Opening a layout to read it creates nothing in it, and a `blobs` that
    /// is a symlink is refused (not followed) for reading and writing.
    #[test]
    fn open_creates_nothing_and_refuses_linked_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let l = dir.path().join("l");
        std::fs::create_dir(&l).unwrap();
        std::fs::write(l.join(OCI_LAYOUT), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        std::fs::write(l.join(INDEX_JSON), r#"{"schemaVersion":2,"manifests":[]}"#).unwrap();
        Layout::open(&l).unwrap();
        assert!(!l.join("blobs").exists());
        let canary = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(canary.path(), l.join("blobs")).unwrap();
        for err in [
            Layout::open(&l).unwrap_err(),
            Layout::create_or_open(&l).unwrap_err(),
        ] {
            assert_eq!(
                err.to_string(),
                format!(
                    "{} is a symlink, not a directory: bake does not follow it",
                    l.join("blobs").display()
                )
            );
        }
        assert_eq!(std::fs::read_dir(canary.path()).unwrap().count(), 0);
    }

    /// `oci-layout` and `index.json` must be regular files: a fifo is not
    /// waited on, a link to a device is not followed (nor read forever).
    #[test]
    fn marker_and_index_must_be_regular_files() {
        for (name, kind) in [
            (OCI_LAYOUT, "fifo"),
            (OCI_LAYOUT, "zero"),
            (INDEX_JSON, "fifo"),
            (INDEX_JSON, "zero"),
        ] {
            let (_d, l) = layout();
            let path = l.dir().join(name);
            std::fs::remove_file(&path).unwrap();
            let want = if kind == "fifo" {
                let st = std::process::Command::new("mkfifo").arg(&path).status().unwrap();
                assert!(st.success());
                "a fifo"
            } else {
                std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
                "a symlink"
            };
            let err = Layout::open(l.dir()).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("{} is {want}, not a regular file", path.display()),
                "{name} {kind}"
            );
        }
        // A huge oci-layout is refused after a bounded read.
        let (_d, l) = layout();
        let f = std::fs::File::create(l.dir().join(OCI_LAYOUT)).unwrap();
        f.set_len(1 << 30).unwrap();
        let err = Layout::open(l.dir()).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("oci-layout is 1073741824 bytes, more than the 4096 allowed"),
            "{err}"
        );
    }

    #[test]
    fn set_tags_checks_tags_and_blob() {
        let (_d, l) = layout();
        let a = put_manifest(&l, b"a");
        for bad in ["", "-x", "x/", "a b", "sha256:abc", "ü"] {
            assert!(
                matches!(l.set_tags(&a, &[bad.into()]), Err(ImageError::InvalidTag(_))),
                "{bad}"
            );
        }
        let ghost = Descriptor::of(media_type::OCI_MANIFEST, b"ghost");
        let err = l.set_tags(&ghost, &["x".into()]).unwrap_err();
        assert!(err.to_string().contains(&ghost.digest.to_string()), "{err}");
        l.set_tags(&a, &[]).unwrap();
        l.set_tags(&a, &[]).unwrap();
        let idx = l.index().unwrap();
        assert_eq!(idx.len(), 1);
        assert_eq!(idx[0].ref_name(), None);
    }
}
