//! The fuzz targets' bodies, shared by `cargo fuzz` (`fuzz_targets/*.rs`,
//! through this crate) and by the plain `#[test]` smoke run in
//! `crates/bake/tests/fuzz_smoke.rs` (which includes this file), so the
//! suite exercises exactly what the fuzzer does. Each takes any bytes and
//! must not panic: external data gives errors, never crashes. Where a
//! property is cheap to state (a reference prints to what it parses from,
//! canonical JSON is a fixed point), it is asserted too.

use std::path::Path;

/// The recipe parser: any text, no overrides and some overrides.
pub fn recipe(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = bake_recipe::parse(
        Path::new("fuzz/bake.toml"),
        text,
        &bake_recipe::Overrides::default(),
    );
    let overrides = bake_recipe::Overrides {
        cli: vec![("version".into(), text.chars().take(64).collect())],
        env: vec![("name".into(), "${version}".into())],
    };
    let _ = bake_recipe::parse(Path::new("bake.toml"), text, &overrides);
    let _ = bake_recipe::parse_var_override(text);
}

/// The layer reader, with the default limits and with tiny ones.
pub fn tar_reader(data: &[u8]) {
    let _ = bake_layer::read_layer_entries(data);
    let tiny = bake_layer::ReadLimits {
        max_tar_bytes: 64 << 10,
        max_metadata_record: 256,
        max_entries: 64,
    };
    let _ = bake_layer::read_layer_entries_with_limits(data, &tiny);
}

/// The bytes as a `.deb` (pinned to their own digest) and as an `unpack`
/// archive, through `write_layer`, in a scratch directory.
pub fn archive(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let file = dir.path().join("input");
    if std::fs::write(&file, data).is_err() {
        return;
    }
    let tmp = dir.path().join("tmp");
    if std::fs::create_dir(&tmp).is_err() {
        return;
    }
    let opts = bake_layer::LayerOptions {
        epoch: 1_700_000_000,
        compression: bake_layer::Compression::None,
        tmp_dir: tmp.clone(),
        below_links: Default::default(),
    };
    let limits = bake_layer::ReadLimits {
        max_tar_bytes: 8 << 20,
        max_metadata_record: 64 << 10,
        max_entries: 4096,
    };
    let sha256 = bake_digest::Digest::of(data);
    let deb = [bake_layer::Source::Deb {
        src: file.clone(),
        sha256,
    }];
    let _ = bake_layer::write_layer_with_limits(&deb, &opts, &limits, std::io::sink());
    let unpack = [bake_layer::Source::Unpack {
        src: file,
        to: "/srv".into(),
    }];
    let _ = bake_layer::write_layer_with_limits(&unpack, &opts, &limits, std::io::sink());
    // Nothing is left in the temp space, whatever happened.
    let left = std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "write_layer left temporary files");
}

/// The registry reference parser: a parsed reference prints to a string
/// that parses back to it.
pub fn reference(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = text.parse::<bake_registry::Reference>() {
        let printed = r.to_string();
        let again: bake_registry::Reference = printed
            .parse()
            .unwrap_or_else(|e| panic!("{text:?} parsed, but its display {printed:?} does not: {e}"));
        assert_eq!(again, r, "{text:?} → {printed:?}");
        let _ = r.repository_ref().with_tag("latest");
    }
}

/// Lexical path normalisation (`bake_path`): the same answer as a reading
/// through std's `Path` components, and the result a fixed point with no
/// empty, `.` or `..` component.
pub fn path(data: &[u8]) {
    use std::path::{Component, Path};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut reference: Option<Vec<String>> = Some(Vec::new());
    for c in Path::new(text).components() {
        match (c, reference.as_mut()) {
            (_, None) => break,
            (Component::RootDir | Component::CurDir | Component::Prefix(_), _) => {}
            (Component::ParentDir, Some(v)) => {
                if v.pop().is_none() {
                    reference = None;
                }
            }
            (Component::Normal(n), Some(v)) => v.push(n.to_string_lossy().into_owned()),
        }
    }
    let got = bake_path::components(text).ok();
    let got_owned = got
        .as_ref()
        .map(|v| v.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>());
    assert_eq!(got_owned, reference, "{text:?}");
    if let Some(parts) = got {
        assert!(
            parts.iter().all(|p| !p.is_empty() && *p != "." && *p != ".."),
            "{text:?}"
        );
        let rel = bake_path::relative(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(bake_path::relative(&rel).ok().as_ref(), Some(&rel), "{text:?}");
        assert_eq!(
            bake_path::absolute(text).ok(),
            Some(format!("/{rel}")),
            "{text:?}"
        );
    }
}

/// Manifest and index parsing, and canonical JSON: what parses as JSON
/// canonicalises to bytes that parse to the same value and canonicalise
/// to themselves.
pub fn manifest(data: &[u8]) {
    use bake_image::media_type;
    let _ = bake_image::parse_manifest(data, media_type::OCI_MANIFEST, "fuzz");
    let _ = bake_image::parse_manifest(data, media_type::DOCKER_MANIFEST, "fuzz");
    let _ = bake_image::parse_index(data, media_type::OCI_INDEX, "fuzz");
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let canonical = bake_image::canonical_json(&v);
        let back: serde_json::Value = serde_json::from_slice(&canonical)
            .unwrap_or_else(|e| panic!("canonical JSON does not parse: {e}"));
        assert_eq!(back, v, "canonical JSON changed the value");
        assert_eq!(
            bake_image::canonical_json(&back),
            canonical,
            "canonical JSON is not a fixed point"
        );
    }
}

/// A base image's config: the bytes through `check_config` and, as a
/// loaded base, through `build_config` (with a spec that touches every
/// merged field, and one new layer). The two agree: `build_config` builds
/// on every config `check_config` accepts and on none it refuses. What it
/// writes is read back by `check_config` (bake can use its own image as a
/// base), is canonical JSON, and is a fixed point: rebuilt with nothing new
/// at the same epoch, it gives the same bytes.
pub fn base_config(data: &[u8]) {
    use bake_image::{
        BaseImage, ConfigSpec, ImageError, Platform, build_config, canonical_json, check_config,
    };
    use serde_json::Value;

    const EPOCH: u64 = 1_700_000_000;
    let digest = bake_digest::Digest::of(data);
    let what = format!("config {digest}");
    let Ok(json) = serde_json::from_slice::<Value>(data) else {
        let err = check_config(data, &what, &Platform::linux_amd64(), 0);
        assert!(
            err.is_err(),
            "check_config accepted bytes serde_json does not parse"
        );
        return;
    };
    // The platform and layer count the config itself declares, so that
    // only its types decide.
    let field = |k: &str| json.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let platform = match (field("os"), field("architecture")) {
        (Some(os), Some(arch)) => Platform {
            os: os.to_owned(),
            architecture: arch.to_owned(),
            variant: field("variant").map(str::to_owned),
        },
        _ => Platform::linux_amd64(),
    };
    let layers = json
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let checked = check_config(data, &what, &platform, layers);

    let base = |json: Value, bytes: Vec<u8>| BaseImage {
        manifest_digest: None,
        config_json: json,
        config_digest: bake_digest::Digest::of(&bytes),
        config_bytes: bytes,
        platform: platform.clone(),
        layers: Vec::new(),
        diff_ids: Vec::new(),
    };
    let spec = ConfigSpec {
        cmd: Some(vec!["serve".into()]),
        env: [("PATH".into(), "/bin".into()), ("FUZZ".into(), "1".into())].into(),
        user: Some("1000".into()),
        labels: [("org.example".into(), "fuzz".into())].into(),
        exposed_ports: vec!["8080".into()],
        volumes: vec!["/data".into()],
        ..ConfigSpec::default()
    };
    let layer = (
        bake_digest::Digest::of(b"fuzz layer"),
        "bake layer fuzz".to_owned(),
    );
    let built = build_config(
        Some(&base(json.clone(), data.to_vec())),
        &spec,
        &platform,
        EPOCH,
        std::slice::from_ref(&layer),
    );
    let out = match (checked, built) {
        (Ok(_), Ok(out)) => out,
        (Err(_), Err(_)) => return,
        (Ok(_), Err(ImageError::ConfigTooLarge { .. })) => return,
        (Ok(_), Err(e)) => panic!("check_config accepts a config build_config refuses: {e}"),
        (Err(e), Ok(_)) => panic!("build_config builds on a config check_config refuses: {e}"),
    };
    let again = check_config(&out, "output config", &platform, layers + 1)
        .unwrap_or_else(|e| panic!("bake cannot read the config it wrote: {e}"));
    assert_eq!(
        canonical_json(&again.json),
        out,
        "the output config is not canonical JSON"
    );
    let rebuilt = build_config(
        Some(&base(again.json, out.clone())),
        &ConfigSpec::default(),
        &platform,
        EPOCH,
        &[],
    )
    .unwrap_or_else(|e| panic!("bake cannot build on the config it wrote: {e}"));
    assert_eq!(rebuilt, out, "rebuilding the output config changed it");
}

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// Every target, by name (the `fuzz_targets/` file and the corpus
/// directory have the same name).
pub const TARGETS: &[(&str, Target)] = &[
    ("recipe", recipe),
    ("tar_reader", tar_reader),
    ("archive", archive),
    ("reference", reference),
    ("path", path),
    ("manifest", manifest),
    ("base_config", base_config),
];
