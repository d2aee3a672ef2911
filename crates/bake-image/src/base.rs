//! Base images: reading someone else's image so ours can be built on it,
//! reusing its layers byte for byte (DESIGN.md invariant 6).

use std::path::Path;

use bake_digest::Digest;
use bake_store::BlobStore;
use serde_json::Value;

use crate::config::{check_types, config_platform, diff_ids_of};
use crate::descriptor::media_type;
use crate::layout::{Layout, MAX_JSON_SIZE};
use crate::manifest::{parse_index, parse_manifest};
use crate::{Descriptor, ImageError, Platform};

/// A base image, ready to build on: its config and its layers exactly as
/// its manifest describes them.
#[derive(Debug, Clone, PartialEq)]
pub struct BaseImage {
    /// The digest of the platform manifest the image was read from; `None`
    /// for a docker-archive, which has no manifest of its own.
    pub manifest_digest: Option<Digest>,
    /// The config, parsed (pass it to [`crate::build_config`]).
    pub config_json: Value,
    /// The config, exactly as stored.
    pub config_bytes: Vec<u8>,
    /// `sha256` of `config_bytes`.
    pub config_digest: Digest,
    /// The platform the config declares.
    pub platform: Platform,
    /// The layers: digest, size and annotations as in the base manifest;
    /// the media type in its OCI spelling (see [`media_type::oci_layer`]).
    pub layers: Vec<Descriptor>,
    /// The config's `rootfs.diff_ids`, one per layer.
    pub diff_ids: Vec<Digest>,
}

/// How deep indexes may nest (an index naming an index naming a manifest).
const MAX_INDEX_DEPTH: usize = 4;

/// Reads the image `manifest_or_index` points to from `store`, choosing the
/// entry for `platform` if it is an index (OCI index or Docker manifest
/// list).
///
/// The manifest (OCI, or Docker v2 schema 2), any index on the way and the
/// config are read verified and their sizes checked against their
/// descriptors. The config's platform must match `platform`, and it must
/// list one diffID per layer. Layers are only described, not read: they
/// need not be in `store` (see [`load_from_layout`], which imports them).
pub fn load_from_store(
    store: &BlobStore,
    manifest_or_index: &Descriptor,
    platform: &Platform,
) -> Result<BaseImage, ImageError> {
    let mut desc = manifest_or_index.clone();
    for _ in 0..=MAX_INDEX_DEPTH {
        match desc.media_type.as_str() {
            media_type::OCI_MANIFEST | media_type::DOCKER_MANIFEST => {
                return load_manifest(store, &desc, platform);
            }
            media_type::OCI_INDEX | media_type::DOCKER_MANIFEST_LIST => {
                let what = format!("index {}", desc.digest);
                let bytes = read_json_blob(store, &desc, &what, MAX_JSON_SIZE)?;
                let entries = parse_index(&bytes, &desc.media_type, &what)?;
                desc = pick_platform(&entries, platform, &what)?;
            }
            other => {
                return Err(ImageError::UnsupportedMediaType {
                    what: format!("image {}", desc.digest),
                    media_type: other.to_owned(),
                });
            }
        }
    }
    Err(ImageError::Invalid {
        what: format!("index {}", manifest_or_index.digest),
        reason: format!("indexes nest more than {MAX_INDEX_DEPTH} deep"),
    })
}

fn load_manifest(store: &BlobStore, desc: &Descriptor, platform: &Platform) -> Result<BaseImage, ImageError> {
    let what = format!("manifest {}", desc.digest);
    let bytes = read_json_blob(store, desc, &what, MAX_MANIFEST_SIZE)?;
    let manifest = parse_manifest(&bytes, &desc.media_type, &what)?;

    match manifest.config.media_type.as_str() {
        media_type::OCI_CONFIG | media_type::DOCKER_CONFIG => {}
        other => {
            return Err(ImageError::UnsupportedMediaType {
                what: format!("config {} of {what}", manifest.config.digest),
                media_type: other.to_owned(),
            });
        }
    }
    let mut layers = Vec::with_capacity(manifest.layers.len());
    for l in manifest.layers {
        let Some(oci) = media_type::oci_layer(&l.media_type) else {
            return Err(ImageError::UnsupportedMediaType {
                what: format!("layer {} of {what}", l.digest),
                media_type: l.media_type,
            });
        };
        layers.push(Descriptor {
            media_type: oci.to_owned(),
            ..l
        });
    }

    let config_what = format!("config {}", manifest.config.digest);
    let config_bytes = read_json_blob(store, &manifest.config, &config_what, MAX_JSON_SIZE)?;
    let config = check_config(&config_bytes, &config_what, platform, layers.len())?;
    Ok(BaseImage {
        manifest_digest: Some(desc.digest.clone()),
        config_json: config.json,
        config_digest: manifest.config.digest,
        config_bytes,
        platform: config.platform,
        layers,
        diff_ids: config.diff_ids,
    })
}

/// A base config that [`check_config`] accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedConfig {
    /// The config, parsed (what [`BaseImage::config_json`] holds).
    pub json: Value,
    /// The platform it declares.
    pub platform: Platform,
    /// Its `rootfs.diff_ids`.
    pub diff_ids: Vec<Digest>,
}

/// Parses a base config and checks it: a JSON object whose fields have the
/// types the OCI image-spec config schema gives them (see below), for
/// `platform`, listing `layer_count` diffIDs. `what` names it in errors
/// (`config sha256:…`); the reason names the field, e.g. `invalid config
/// sha256:…: config.Env[2] is a number, not a string`.
///
/// Every field the schema defines is checked: `created` (and each
/// `history[].created`) an RFC 3339 date-time, `author`, `os`,
/// `architecture`, `variant`, `os.version` strings, `os.features` a list of
/// strings; in `config`, `User`, `WorkingDir`, `StopSignal` strings, `Env`,
/// `Entrypoint`, `Cmd` lists of strings, `Labels` a map of strings,
/// `ExposedPorts` and `Volumes` maps of objects, `ArgsEscaped` a boolean;
/// `rootfs.type` `"layers"` and `rootfs.diff_ids` sha256 digests; `history`
/// a list of objects with string `author`, `created_by`, `comment` and a
/// boolean `empty_layer`. An optional field may be `null` (Docker writes
/// that for unset values; [`crate::build_config`] writes it absent).
/// Fields the schema does not define are the base's content and are kept
/// as they are, unchecked.
pub fn check_config(
    bytes: &[u8],
    what: &str,
    platform: &Platform,
    layer_count: usize,
) -> Result<CheckedConfig, ImageError> {
    let json: Value = serde_json::from_slice(bytes).map_err(|source| ImageError::Json {
        what: what.to_owned(),
        source,
    })?;
    check_types(&json).map_err(|reason| ImageError::Invalid {
        what: what.to_owned(),
        reason,
    })?;
    let found = config_platform(&json, what)?;
    if !platform.accepts(&found) {
        return Err(ImageError::PlatformMismatch {
            what: what.to_owned(),
            wanted: platform.to_string(),
            found: found.to_string(),
        });
    }
    let diff_ids = diff_ids_of(&json, what)?;
    if diff_ids.len() != layer_count {
        return Err(ImageError::LayerCountMismatch {
            what: what.to_owned(),
            layers: layer_count,
            diff_ids: diff_ids.len(),
        });
    }
    Ok(CheckedConfig {
        json,
        platform: found,
        diff_ids,
    })
}

/// The most bytes a base image's manifest may have: 4 MiB, what
/// registries accept (distribution's limit on a manifest PUT),
/// containers/image reads (`MaxManifestBodySize`) and bake's registry
/// client pulls, for a layout base too. bake copies the base's layer
/// descriptors into its own manifest, so this (with the recipe's bounded
/// annotations) keeps what bake writes well within what it reads back.
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// Reads a small JSON blob, verified, after checking its size against `desc`
/// and `limit`.
fn read_json_blob(
    store: &BlobStore,
    desc: &Descriptor,
    what: &str,
    limit: u64,
) -> Result<Vec<u8>, ImageError> {
    if desc.size > limit {
        return Err(ImageError::TooLarge {
            what: what.to_owned(),
            size: desc.size,
            limit,
        });
    }
    let actual = store.size(&desc.digest)?;
    if actual != desc.size {
        return Err(ImageError::SizeMismatch {
            digest: desc.digest.clone(),
            expected: desc.size,
            actual,
        });
    }
    Ok(store.read_verified(&desc.digest)?)
}

/// The index entry for `want` ([`Platform::select`]).
fn pick_platform(entries: &[Descriptor], want: &Platform, what: &str) -> Result<Descriptor, ImageError> {
    let chosen = want.select(entries, |e| e.platform.as_ref());
    chosen.cloned().ok_or_else(|| {
        let mut available: Vec<String> = entries
            .iter()
            .filter_map(|e| e.platform.as_ref().map(Platform::to_string))
            .collect();
        available.sort();
        available.dedup();
        ImageError::NoMatchingPlatform {
            what: what.to_owned(),
            wanted: want.describe_unselected(entries, |e| e.platform.as_ref()),
            available: if available.is_empty() {
                "none".into()
            } else {
                available.join(", ")
            },
        }
    })
}

/// Reads the base image `tag_or_digest` (see [`Layout::resolve`]) of the OCI
/// layout at `dir` for `platform`, and makes its config and layers present
/// in `target`.
///
/// Every blob is verified as it enters `target` (layers are re-hashed in
/// the layout, then hard-linked or copied); a blob `target` already holds
/// is trusted, since it was verified when it got there.
pub fn load_from_layout(
    dir: &Path,
    tag_or_digest: Option<&str>,
    platform: &Platform,
    target: &BlobStore,
) -> Result<BaseImage, ImageError> {
    let layout = Layout::open(dir)?;
    let desc = layout.resolve(tag_or_digest)?;
    let base = load_from_store(layout.store(), &desc, platform)?;
    let source = layout.store();
    if !target.has(&base.config_digest) {
        target.put_bytes(&base.config_bytes)?;
    }
    for layer in &base.layers {
        import_verified(source, target, layer)?;
    }
    Ok(base)
}

fn import_verified(source: &BlobStore, target: &BlobStore, desc: &Descriptor) -> Result<(), ImageError> {
    if !target.has(&desc.digest) {
        source.verify(&desc.digest)?;
        target.import_from(source, &desc.digest)?;
    }
    let actual = target.size(&desc.digest)?;
    if actual != desc.size {
        return Err(ImageError::SizeMismatch {
            digest: desc.digest.clone(),
            expected: desc.size,
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{build_index, build_manifest, canonical_json};
    use serde_json::json;
    use std::collections::BTreeMap;

    struct Fixture {
        _dir: tempfile::TempDir,
        layout: Layout,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create_or_open(&dir.path().join("base")).unwrap();
        Fixture { _dir: dir, layout }
    }

    /// Puts a one-layer image for `platform` into the layout; returns its
    /// manifest descriptor (with the platform set).
    fn put_image(l: &Layout, platform: &str, layer_mt: &str, manifest_mt: &str) -> Descriptor {
        let p: Platform = platform.parse().unwrap();
        let layer = format!("layer for {platform}").into_bytes();
        let ld = l.store().put_bytes(&layer).unwrap();
        let mut config = json!({
            "architecture": p.architecture, "os": p.os,
            "rootfs": {"type": "layers", "diff_ids": [ld.to_string()]},
            "config": {"Env": ["A=1"]}
        });
        if let Some(v) = &p.variant {
            config["variant"] = json!(v);
        }
        let config = canonical_json(&config);
        l.store().put_bytes(&config).unwrap();
        let config_mt = if manifest_mt == media_type::DOCKER_MANIFEST {
            media_type::DOCKER_CONFIG
        } else {
            media_type::OCI_CONFIG
        };
        let layer_desc = Descriptor::new(layer_mt, ld, layer.len() as u64);
        let mut m: Value = serde_json::from_slice(&build_manifest(
            &Descriptor::of(config_mt, &config),
            &[layer_desc],
            &BTreeMap::new(),
        ))
        .unwrap();
        m["mediaType"] = json!(manifest_mt);
        let m = canonical_json(&m);
        l.store().put_bytes(&m).unwrap();
        let mut d = Descriptor::of(manifest_mt, &m);
        d.platform = Some(p);
        d
    }

    #[test]
    fn loads_oci_manifest_and_imports_blobs() {
        let f = fixture();
        let m = put_image(
            &f.layout,
            "linux/amd64",
            media_type::OCI_LAYER_TAR,
            media_type::OCI_MANIFEST,
        );
        f.layout.set_tags(&m, &["base".into()]).unwrap();
        let target_dir = tempfile::tempdir().unwrap();
        let target = BlobStore::open(target_dir.path()).unwrap();
        let b = load_from_layout(f.layout.dir(), Some("base"), &Platform::linux_amd64(), &target).unwrap();
        assert_eq!(b.manifest_digest, Some(m.digest.clone()));
        assert_eq!(b.layers.len(), 1);
        assert_eq!(b.diff_ids, vec![b.layers[0].digest.clone()]);
        assert_eq!(b.config_json["config"]["Env"], json!(["A=1"]));
        assert!(target.has(&b.config_digest));
        assert!(target.has(&b.layers[0].digest));
        assert_eq!(b.platform, Platform::linux_amd64());
        // Same via no tag (only image) and via digest.
        assert_eq!(
            load_from_layout(f.layout.dir(), None, &Platform::linux_amd64(), &target).unwrap(),
            b
        );
        let by_digest = format!("@{}", m.digest);
        assert_eq!(
            load_from_layout(
                f.layout.dir(),
                Some(&by_digest),
                &Platform::linux_amd64(),
                &target
            )
            .unwrap(),
            b
        );
    }

    #[test]
    fn docker_media_types_become_oci_names_with_same_bytes() {
        let f = fixture();
        let m = put_image(
            &f.layout,
            "linux/amd64",
            media_type::DOCKER_LAYER_GZIP,
            media_type::DOCKER_MANIFEST,
        );
        let b = load_from_store(f.layout.store(), &m, &Platform::linux_amd64()).unwrap();
        assert_eq!(b.layers[0].media_type, media_type::OCI_LAYER_GZIP);
        assert_eq!(b.layers[0].digest, Digest::of(b"layer for linux/amd64"));
        assert_eq!(b.layers[0].size, 21);
    }

    #[test]
    fn index_resolves_platform() {
        let f = fixture();
        let entries: Vec<Descriptor> = ["linux/arm64/v8", "linux/amd64", "linux/arm/v7", "linux/arm/v6"]
            .iter()
            .map(|p| put_image(&f.layout, p, media_type::OCI_LAYER_GZIP, media_type::OCI_MANIFEST))
            .collect();
        let idx = build_index(&entries, &BTreeMap::new());
        f.layout.store().put_bytes(&idx).unwrap();
        let idx = Descriptor::of(media_type::OCI_INDEX, &idx);
        let s = f.layout.store();
        let amd = load_from_store(s, &idx, &Platform::linux_amd64()).unwrap();
        assert_eq!(amd.manifest_digest.as_ref(), Some(&entries[1].digest));
        // No variant asked, one candidate: taken.
        let arm64 = load_from_store(s, &idx, &"linux/arm64".parse().unwrap()).unwrap();
        assert_eq!(arm64.manifest_digest.as_ref(), Some(&entries[0].digest));
        let v7 = load_from_store(s, &idx, &"linux/arm/v7".parse().unwrap()).unwrap();
        assert_eq!(v7.manifest_digest.as_ref(), Some(&entries[2].digest));
        // Two arm variants and none asked for: ambiguous.
        let err = load_from_store(s, &idx, &"linux/arm".parse().unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "index {} has no image for platform linux/arm alone (2 entries fit it: name the variant); available: linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64/v8",
                idx.digest
            )
        );
        let err = load_from_store(s, &idx, &"windows/amd64".parse().unwrap()).unwrap_err();
        assert!(matches!(err, ImageError::NoMatchingPlatform { .. }), "{err}");
        // Docker manifest list media type works the same way.
        let mut list: Value = serde_json::from_slice(&s.read_verified(&idx.digest).unwrap()).unwrap();
        list["mediaType"] = json!(media_type::DOCKER_MANIFEST_LIST);
        let list = canonical_json(&list);
        s.put_bytes(&list).unwrap();
        let list = Descriptor::of(media_type::DOCKER_MANIFEST_LIST, &list);
        assert_eq!(load_from_store(s, &list, &Platform::linux_amd64()).unwrap(), amd);
    }

    #[test]
    fn platform_of_config_is_checked() {
        let f = fixture();
        let mut m = put_image(
            &f.layout,
            "linux/arm64",
            media_type::OCI_LAYER_TAR,
            media_type::OCI_MANIFEST,
        );
        m.platform = None;
        let err = load_from_store(f.layout.store(), &m, &Platform::linux_amd64()).unwrap_err();
        assert!(
            err.to_string()
                .contains("is for platform linux/arm64, not linux/amd64"),
            "{err}"
        );
    }

    #[test]
    fn corrupt_missing_and_mislabelled_blobs_are_errors() {
        let f = fixture();
        let s = f.layout.store();
        let amd = Platform::linux_amd64();
        let m = put_image(
            &f.layout,
            "linux/amd64",
            media_type::OCI_LAYER_TAR,
            media_type::OCI_MANIFEST,
        );

        // Wrong size in the descriptor.
        let mut wrong = m.clone();
        wrong.size += 1;
        let err = load_from_store(s, &wrong, &amd).unwrap_err();
        assert!(matches!(err, ImageError::SizeMismatch { .. }), "{err}");

        // Unknown media type of the top descriptor.
        let mut odd = m.clone();
        odd.media_type = "application/vnd.example+json".into();
        let err = load_from_store(s, &odd, &amd).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "unsupported media type \"application/vnd.example+json\" for image {}",
                m.digest
            )
        );

        // Missing manifest.
        let ghost = Descriptor::of(media_type::OCI_MANIFEST, b"ghost");
        let err = load_from_store(s, &ghost, &amd).unwrap_err();
        assert!(err.to_string().contains(&ghost.digest.to_string()), "{err}");

        // Corrupt layer: found while importing from the layout.
        let b = load_from_store(s, &m, &amd).unwrap();
        std::fs::write(s.path(&b.layers[0].digest), b"tampered!!!!!!!!!!!!!").unwrap();
        f.layout.set_tags(&m, &["t".into()]).unwrap();
        let target_dir = tempfile::tempdir().unwrap();
        let target = BlobStore::open(target_dir.path()).unwrap();
        let err = load_from_layout(f.layout.dir(), Some("t"), &amd, &target).unwrap_err();
        assert!(err.to_string().contains("is corrupt"), "{err}");
        assert!(!target.has(&b.layers[0].digest));

        // Corrupt manifest.
        std::fs::write(s.path(&m.digest), b"{}").unwrap();
        let err = load_from_store(s, &Descriptor { size: 2, ..m.clone() }, &amd).unwrap_err();
        assert!(err.to_string().contains("is corrupt"), "{err}");
    }

    /// Registry issue #15 item 7: a size that lies up or down, for the
    /// manifest (its index.json entry), the config or a layer, is refused
    /// with the digest, the claimed and the actual size, and no layer
    /// reaches the target store.
    #[test]
    fn sizes_that_lie_up_or_down_in_a_layout_are_refused() {
        let f = fixture();
        let s = f.layout.store();
        let amd = Platform::linux_amd64();
        let m = put_image(
            &f.layout,
            "linux/amd64",
            media_type::OCI_LAYER_TAR,
            media_type::OCI_MANIFEST,
        );
        let honest: Value = serde_json::from_slice(&s.read_verified(&m.digest).unwrap()).unwrap();
        for delta in [1000i64, 1, -1] {
            let shift = |size: u64| (size as i64 + delta) as u64;
            // The manifest's own descriptor.
            let lying = Descriptor {
                size: shift(m.size),
                ..m.clone()
            };
            f.layout.set_tags(&lying, &["lie".into()]).unwrap();
            let target_dir = tempfile::tempdir().unwrap();
            let target = BlobStore::open(target_dir.path()).unwrap();
            let err = load_from_layout(f.layout.dir(), Some("lie"), &amd, &target).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "blob {} has {} bytes, but its descriptor says {}",
                    m.digest,
                    m.size,
                    shift(m.size)
                )
            );
            // The config's and the layer's descriptors in the manifest.
            for path in ["config", "layers"] {
                let mut v = honest.clone();
                let d = if path == "config" {
                    &mut v["config"]
                } else {
                    &mut v["layers"][0]
                };
                let real = d["size"].as_u64().unwrap();
                let digest = d["digest"].as_str().unwrap().to_owned();
                d["size"] = json!(shift(real));
                let bytes = canonical_json(&v);
                s.put_bytes(&bytes).unwrap();
                let desc = Descriptor::of(media_type::OCI_MANIFEST, &bytes);
                f.layout.set_tags(&desc, &["lie".into()]).unwrap();
                let target_dir = tempfile::tempdir().unwrap();
                let target = BlobStore::open(target_dir.path()).unwrap();
                let err = load_from_layout(f.layout.dir(), Some("lie"), &amd, &target).unwrap_err();
                assert!(
                    matches!(err, ImageError::SizeMismatch { .. }),
                    "{path} {delta}: {err}"
                );
                assert_eq!(
                    err.to_string(),
                    format!(
                        "blob {digest} has {real} bytes, but its descriptor says {}",
                        shift(real)
                    ),
                    "{path} {delta}"
                );
                // A layer already in the target is checked all the same.
                if path == "layers" {
                    let layer: Digest = digest.parse().unwrap();
                    target.put_bytes(&s.read_verified(&layer).unwrap()).unwrap();
                    let err = load_from_layout(f.layout.dir(), Some("lie"), &amd, &target).unwrap_err();
                    assert!(matches!(err, ImageError::SizeMismatch { .. }), "{err}");
                }
            }
        }
    }

    fn put_raw_manifest(s: &BlobStore, v: Value) -> Descriptor {
        let bytes = canonical_json(&v);
        s.put_bytes(&bytes).unwrap();
        Descriptor::of(media_type::OCI_MANIFEST, &bytes)
    }

    #[test]
    fn bad_manifests_and_configs_are_errors() {
        let f = fixture();
        let s = f.layout.store();
        let amd = Platform::linux_amd64();
        let good_config = canonical_json(
            &json!({"os": "linux", "architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": []}}),
        );
        s.put_bytes(&good_config).unwrap();
        let cd = Descriptor::of(media_type::OCI_CONFIG, &good_config);
        let layer = Descriptor::of(media_type::OCI_LAYER_TAR, b"l");

        // Malformed JSON.
        s.put_bytes(b"{\"schemaVersion\": 2, ").unwrap();
        let bad = Descriptor::of(media_type::OCI_MANIFEST, b"{\"schemaVersion\": 2, ");
        let err = load_from_store(s, &bad, &amd).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("malformed JSON in manifest {}: ", bad.digest)),
            "{err}"
        );

        // Unknown layer media type.
        let mut foreign = layer.clone();
        foreign.media_type = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip".into();
        let m = put_raw_manifest(
            s,
            json!({"schemaVersion": 2, "config": cd.to_json(), "layers": [foreign.to_json()]}),
        );
        let err = load_from_store(s, &m, &amd).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unsupported media type \"application/vnd.docker.image.rootfs.foreign"),
            "{err}"
        );

        // Unknown config media type (e.g. an artifact, not an image).
        let mut helm = cd.clone();
        helm.media_type = "application/vnd.cncf.helm.config.v1+json".into();
        let m = put_raw_manifest(
            s,
            json!({"schemaVersion": 2, "config": helm.to_json(), "layers": []}),
        );
        assert!(matches!(
            load_from_store(s, &m, &amd),
            Err(ImageError::UnsupportedMediaType { .. })
        ));

        // Layer count differs from diff_ids.
        let m = put_raw_manifest(
            s,
            json!({"schemaVersion": 2, "config": cd.to_json(), "layers": [layer.to_json()]}),
        );
        let err = load_from_store(s, &m, &amd).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "config {} lists 0 diff_ids but the manifest has 1 layers",
                cd.digest
            )
        );

        // Config that is not an object / has no os.
        for cfg in [json!([]), json!({"architecture": "amd64"})] {
            let bytes = canonical_json(&cfg);
            s.put_bytes(&bytes).unwrap();
            let d = Descriptor::of(media_type::OCI_CONFIG, &bytes);
            let m = put_raw_manifest(
                s,
                json!({"schemaVersion": 2, "config": d.to_json(), "layers": []}),
            );
            let err = load_from_store(s, &m, &amd).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("invalid config {}: ", d.digest)),
                "{err}"
            );
        }

        // Docker schema 1 is refused by media type.
        let mut v1 = m.clone();
        v1.media_type = "application/vnd.docker.distribution.manifest.v1+prettyjws".into();
        assert!(matches!(
            load_from_store(s, &v1, &amd),
            Err(ImageError::UnsupportedMediaType { .. })
        ));
    }
}
