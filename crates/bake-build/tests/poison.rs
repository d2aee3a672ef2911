//! A hostile base cannot poison the layer cache for other recipes (issue
//! 15): a base whose config claims the diffIDs of an honest base's layers
//! (with other bytes behind them) is refused before anything it contains is
//! recorded under those diffIDs, so an honest build sharing the cache gives
//! the digest it gives cold.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use bake_build::{BuildError, BuildOutput, BuildSettings};
use bake_digest::Digest;
use bake_image::{Descriptor, media_type};
use bake_testkit::fixtures::{deb, plain_tar};
use fs_err as fs;

/// A tar of regular files and symlinks (`(path, Some(target))`).
fn tar_of(entries: &[(&str, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data, link) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        match link {
            Some(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, path, target).unwrap();
            }
            None => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, *data).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// Writes an OCI layout at `dir` tagged `base` with one uncompressed
/// layer `layer`, whose config claims `diff_id` for it (the truth when
/// `None`).
fn base_layout(dir: &Path, layer: &[u8], diff_id: Option<&Digest>) {
    let layout = bake_image::Layout::create_or_open(dir).unwrap();
    let s = layout.store();
    let digest = s.put_bytes(layer).unwrap();
    let claimed = diff_id.cloned().unwrap_or_else(|| digest.clone());
    let l = Descriptor::new(media_type::OCI_LAYER_TAR, digest, layer.len() as u64);
    let config = bake_image::canonical_json(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [claimed.to_string()]},
    }));
    s.put_bytes(&config).unwrap();
    let config = Descriptor::of(media_type::OCI_CONFIG, &config);
    let m = bake_image::build_manifest(&config, std::slice::from_ref(&l), &Default::default());
    s.put_bytes(&m).unwrap();
    layout
        .set_tags(&Descriptor::of(media_type::OCI_MANIFEST, &m), &["base".into()])
        .unwrap();
}

struct Area {
    tmp: tempfile::TempDir,
}

impl Area {
    fn new() -> Area {
        Area {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// A project `name` on the base layout `base/` of its context, whose
    /// recipe's layers are `layers` (TOML).
    fn project(&self, name: &str, layer: &[u8], claimed: Option<&Digest>, layers: &str) -> PathBuf {
        let ctx = self.path(name);
        fs::create_dir_all(&ctx).unwrap();
        base_layout(&ctx.join("base"), layer, claimed);
        fs::write(ctx.join("hello.txt"), "hello\n").unwrap();
        let pkg = deb("hello", &[("./usr/share/hello/hello.txt", b"hello\n")]);
        fs::write(ctx.join("hello.deb"), &pkg).unwrap();
        let recipe = format!(
            "epoch = 1700000000\nbase = \"oci:base:base\"\n[image]\nname = \"{name}\"\n\n{}",
            layers.replace("SHA", Digest::of(&pkg).hex())
        );
        fs::write(ctx.join("bake.toml"), recipe).unwrap();
        ctx
    }

    /// Builds `ctx`'s recipe into a fresh layout, with the shared cache or
    /// none.
    fn build(&self, ctx: &Path, layout: &str, cache: bool) -> Result<BuildOutput, BuildError> {
        bake_build::build(&BuildSettings {
            recipe: ctx.join("bake.toml"),
            overrides: Default::default(),
            epoch: None,
            layout: Some(self.path(layout)),
            out_root: self.path("out"),
            docker_archive: None,
            tmp_dir: self.tmp.path().to_owned(),
            cache_dir: cache.then(|| self.path("cache")),
            registry: Default::default(),
            locked: false,
            limits: Default::default(),
            own_outputs: Vec::new(),
            interrupt: Default::default(),
        })
    }
}

const COPY: &str =
    "[[layer]]\nname = \"app\"\n  [[layer.step]]\n  copy = \"hello.txt\"\n  to = \"/app/hello.txt\"\n";
const DEB: &str = "[[layer]]\nname = \"pkgs\"\n  [[layer.step]]\n  deb = \"hello.deb\"\n  sha256 = \"SHA\"\n";

/// The honest base, then a hostile one claiming its diffID, built into one
/// cache (hostile first, so whatever it could record is there when the
/// honest build looks); the honest build must give its cold digest.
fn poisoning_fails(honest_layer: &[u8], hostile_layer: &[u8], layers: &str) {
    let area = Area::new();
    let honest = area.project("honest", honest_layer, None, layers);
    let claimed = Digest::of(honest_layer);
    let hostile = area.project("hostile", hostile_layer, Some(&claimed), layers);
    let cold = area.build(&honest, "cold", false).unwrap();

    let err = area
        .build(&hostile, "hostile-layout", true)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "its config claims diffID {claimed}, but its content is {}",
            Digest::of(hostile_layer)
        )) && err.contains("bake.toml:2:8:")
            && err.contains("layer 1 ("),
        "{err}"
    );

    let warm = area.build(&honest, "warm", true).unwrap();
    assert_eq!(
        warm.manifest.digest, cold.manifest.digest,
        "the cache was poisoned"
    );
    // And again, now that the honest build has filled the cache.
    let again = area.build(&honest, "again", true).unwrap();
    assert_eq!(again.manifest.digest, cold.manifest.digest);
    // The hostile base still fails with a warm cache.
    assert!(area.build(&hostile, "hostile-again", true).is_err());
}

#[test]
fn a_base_claiming_another_bases_diff_ids_cannot_redirect_its_symlinks() {
    // The hostile layer makes /app a link to /evil: recorded as "the
    // symlinks of a base with diffID D", the honest build (whose base has
    // diffID D) would write /app/hello.txt to /evil/hello.txt.
    poisoning_fails(
        &plain_tar(&[("etc/os-release", b"ID=honest\n")]),
        &tar_of(&[("app", b"", Some("evil"))]),
        COPY,
    );
}

#[test]
fn a_base_claiming_another_bases_diff_ids_cannot_plant_a_dpkg_package() {
    // The hostile layer's dpkg status lists a package the honest base does
    // not have: recorded as "what the layer with diffID D does to dpkg's
    // status", the honest build's deb layer would be keyed on it and taken
    // from the hostile build's cache entry (the planted package with it).
    poisoning_fails(
        &plain_tar(&[("var/lib/dpkg/status", b"")]),
        &plain_tar(&[(
            "var/lib/dpkg/status",
            b"Package: backdoor\nStatus: install ok installed\nVersion: 6.6.6\nArchitecture: all\n",
        )]),
        DEB,
    );
}

#[test]
fn a_layer_whose_media_type_lies_about_its_compression_is_refused() {
    // Honest diffID, but the descriptor says gzip for a plain tar: a
    // runtime could not unpack the image we would write.
    let area = Area::new();
    let ctx = area.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    let layer = plain_tar(&[("etc/os-release", b"ID=x\n")]);
    let layout = bake_image::Layout::create_or_open(&ctx.join("base")).unwrap();
    let s = layout.store();
    let l = Descriptor::new(
        media_type::OCI_LAYER_GZIP,
        s.put_bytes(&layer).unwrap(),
        layer.len() as u64,
    );
    let config = bake_image::canonical_json(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [Digest::of(&layer).to_string()]},
    }));
    s.put_bytes(&config).unwrap();
    let config = Descriptor::of(media_type::OCI_CONFIG, &config);
    let m = bake_image::build_manifest(&config, std::slice::from_ref(&l), &Default::default());
    s.put_bytes(&m).unwrap();
    layout
        .set_tags(&Descriptor::of(media_type::OCI_MANIFEST, &m), &["base".into()])
        .unwrap();
    fs::write(
        ctx.join("bake.toml"),
        "epoch = 1\nbase = \"oci:base:base\"\n[image]\nname = \"x\"\n",
    )
    .unwrap();
    for cache in [false, true] {
        let err = area.build(&ctx, "layout", cache).unwrap_err().to_string();
        assert!(
            err.contains("its media type says gzip, but its bytes are an uncompressed tar"),
            "{err}"
        );
    }
}
