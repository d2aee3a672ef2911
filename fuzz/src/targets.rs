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

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// Every target, by name (the `fuzz_targets/` file and the corpus
/// directory have the same name).
pub const TARGETS: &[(&str, Target)] = &[
    ("recipe", recipe),
    ("tar_reader", tar_reader),
    ("archive", archive),
    ("reference", reference),
    ("manifest", manifest),
];
