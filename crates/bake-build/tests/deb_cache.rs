//! A `deb` layer is keyed on dpkg's status file as the layers below leave
//! it, not on every layer below: changing an unrelated lower layer takes
//! the deb layer from the cache; changing the packages below rebuilds it.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use bake_build::{BuildOutput, BuildSettings};
use bake_digest::Digest;
use bake_testkit::fixtures::deb;
use fs_err as fs;

struct Project {
    tmp: tempfile::TempDir,
}

impl Project {
    /// A context with `tools.txt` and `hello.deb`, and a recipe whose first
    /// layer copies `tools.txt` and writes `status_below` (if any) as dpkg's
    /// status file, and whose second layer installs `hello.deb`.
    fn new() -> Project {
        let tmp = tempfile::tempdir().unwrap();
        let p = Project { tmp };
        let hello = deb("hello", &[("./usr/bin/hello", b"#!/bin/sh\necho hello\n")]);
        fs::create_dir_all(p.ctx()).unwrap();
        fs::write(p.ctx().join("hello.deb"), &hello).unwrap();
        p.set_tools("tools v1\n");
        p.set_recipe(None);
        p
    }

    fn ctx(&self) -> PathBuf {
        self.tmp.path().join("ctx")
    }

    fn set_tools(&self, content: &str) {
        let path = self.ctx().join("tools.txt");
        fs::write(&path, content).unwrap();
        // In the past: a file modified as the build starts is not trusted
        // by the stat cache (and would be re-read, which is fine, but
        // makes nothing here clearer).
        filetime::set_file_mtime(&path, filetime::FileTime::from_unix_time(1_500_000_000, 0)).unwrap();
    }

    fn set_recipe(&self, status_below: Option<&str>) {
        let sha = Digest::of(&fs::read(self.ctx().join("hello.deb")).unwrap());
        let status = status_below.map_or(String::new(), |s| {
            format!("  [[layer.step]]\n  file = \"/var/lib/dpkg/status\"\n  content = \"\"\"{s}\"\"\"\n")
        });
        let recipe = format!(
            "epoch = 1700000000\n[image]\nname = \"debs\"\n\n\
             [[layer]]\nname = \"tools\"\n  [[layer.step]]\n  copy = \"tools.txt\"\n  to = \"/tools.txt\"\n{status}\n\
             [[layer]]\nname = \"pkgs\"\n  [[layer.step]]\n  deb = \"hello.deb\"\n  sha256 = \"{}\"\n",
            sha.hex()
        );
        fs::write(self.ctx().join("bake.toml"), recipe).unwrap();
    }

    fn build(&self, layout: &str, cache: bool) -> BuildOutput {
        let top = self.tmp.path();
        bake_build::build(&BuildSettings {
            recipe: self.ctx().join("bake.toml"),
            overrides: Default::default(),
            epoch: None,
            layout: Some(top.join(layout)),
            out_root: top.join("out"),
            docker_archive: None,
            tmp_dir: top.to_owned(),
            cache_dir: cache.then(|| top.join("cache")),
            registry: Default::default(),
            locked: false,
            limits: Default::default(),
            own_outputs: Vec::new(),
            interrupt: Default::default(),
        })
        .unwrap()
    }

    fn layout(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
}

fn cached(out: &BuildOutput) -> Vec<bool> {
    out.layers
        .iter()
        .filter(|l| !l.from_base)
        .map(|l| l.cached)
        .collect()
}

fn diff_ids(out: &BuildOutput) -> Vec<Digest> {
    out.layers.iter().map(|l| l.diff_id.clone()).collect()
}

/// dpkg's status file in the image of the layout `layout` built as `out`.
fn status_in(layout: &Path, out: &BuildOutput) -> String {
    let blobs: Vec<PathBuf> = out
        .layers
        .iter()
        .map(|l| layout.join("blobs/sha256").join(l.descriptor.digest.hex()))
        .collect();
    let bytes = bake_layer::read_file_from_layers(
        &blobs,
        "/var/lib/dpkg/status",
        1 << 20,
        &bake_layer::ReadLimits::DEFAULT,
    )
    .unwrap()
    .unwrap();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn an_unrelated_change_below_takes_the_deb_layer_from_the_cache() {
    let p = Project::new();
    let cold = p.build("a", true);
    assert_eq!(cached(&cold), [false, false]);

    // Layer 1 changes; the deb layer above it does not.
    p.set_tools("tools v2\n");
    let warm = p.build("b", true);
    assert_eq!(cached(&warm), [false, true], "only the changed layer is rebuilt");
    assert_ne!(diff_ids(&warm)[0], diff_ids(&cold)[0]);
    assert_eq!(diff_ids(&warm)[1], diff_ids(&cold)[1]);
    let stats = warm.cache.unwrap();
    assert_eq!((stats.layers_built, stats.layers_cached), (1, 1));

    // The cached result is what building without a cache gives.
    let plain = p.build("c", false);
    assert_eq!(plain.manifest.digest, warm.manifest.digest);
    assert!(status_in(&p.layout("c"), &plain).contains("Package: hello\n"));
}

#[test]
fn a_change_to_the_packages_below_rebuilds_the_deb_layer() {
    let p = Project::new();
    let base = "Package: base-files\nStatus: install ok installed\nVersion: 12\nArchitecture: amd64\n";
    p.set_recipe(Some(base));
    let first = p.build("a", true);
    assert_eq!(cached(&first), [false, false]);
    let status = status_in(&p.layout("a"), &first);
    assert!(
        status.contains("Package: base-files\n") && status.contains("Package: hello\n"),
        "{status}"
    );

    // Another package below: the merged status changes, so the deb layer
    // is rebuilt.
    let more =
        format!("{base}\nPackage: zlib1g\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n");
    p.set_recipe(Some(&more));
    let second = p.build("b", true);
    assert_eq!(cached(&second), [false, false]);
    assert_ne!(diff_ids(&second)[1], diff_ids(&first)[1]);
    let status = status_in(&p.layout("b"), &second);
    assert!(
        status.contains("Package: zlib1g\n") && status.contains("Package: hello\n"),
        "{status}"
    );

    // The same packages below, another file changed: a cache hit again.
    p.set_tools("tools v2\n");
    let third = p.build("c", true);
    assert_eq!(cached(&third), [false, true]);
    assert_eq!(diff_ids(&third)[1], diff_ids(&second)[1]);
    let plain = p.build("d", false);
    assert_eq!(plain.manifest.digest, third.manifest.digest);

    // No status below at all (layer 1 stops writing it): rebuilt, and the
    // image lists only the deb's package.
    p.set_recipe(None);
    let fourth = p.build("e", true);
    assert_eq!(cached(&fourth), [false, false]);
    let status = status_in(&p.layout("e"), &fourth);
    assert!(
        !status.contains("base-files") && status.contains("Package: hello\n"),
        "{status}"
    );
}
