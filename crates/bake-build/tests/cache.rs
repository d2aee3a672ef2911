//! The layer cache: hits, misses, invalidation, corruption, and the stat
//! cache that makes a no-op rebuild read no file content.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use bake_build::{BuildOutput, BuildSettings};
use fs_err as fs;

/// A build context with three independent layers.
struct Project {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

const RECIPE: &str = r#"
epoch = 1700000000
[image]
name = "cached"

[[layer]]
name = "one"
  [[layer.step]]
  copy = "one"
  to = "/one"
  exclude = ["*.log"]

[[layer]]
name = "two"
  [[layer.step]]
  copy = "two.txt"
  to = "/two.txt"
  [[layer.step]]
  file = "/etc/two.conf"
  content = "two\n"

[[layer]]
name = "three"
  [[layer.step]]
  copy = "three"
  to = "/three"
"#;

impl Project {
    fn new() -> Project {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ctx");
        for (path, content) in [
            ("one/a.txt", "a\n"),
            ("one/sub/b.bin", "b\n"),
            ("one/debug.log", "excluded\n"),
            ("two.txt", "two\n"),
            ("three/c.txt", "c\n"),
            ("three/d/e.txt", "e\n"),
        ] {
            write(&root.join(path), content);
        }
        fs::write(root.join("bake.toml"), RECIPE).unwrap();
        Project { _tmp: tmp, root }
    }

    fn settings(&self, layout: &str, cache: Option<&str>) -> BuildSettings {
        let top = self.root.parent().unwrap();
        BuildSettings {
            recipe: self.root.join("bake.toml"),
            overrides: Default::default(),
            epoch: None,
            layout: Some(top.join(layout)),
            out_root: top.join("out"),
            docker_archive: None,
            tmp_dir: top.to_owned(),
            cache_dir: cache.map(|c| top.join(c)),
            registry: Default::default(),
            locked: false,
            limits: Default::default(),
            own_outputs: Vec::new(),
            interrupt: Default::default(),
        }
    }

    fn build(&self, layout: &str, cache: Option<&str>) -> BuildOutput {
        bake_build::build(&self.settings(layout, cache)).unwrap()
    }

    fn cache_blobs(&self, cache: &str) -> PathBuf {
        self.root.parent().unwrap().join(cache).join("blobs/sha256")
    }
}

/// Writes a file with an mtime in the past: a file modified in the same
/// file-system clock tick as the build starts is (rightly) not trusted by
/// the stat cache, which would make counts of files read flaky.
fn write(path: &Path, content: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    filetime::set_file_mtime(path, filetime::FileTime::from_unix_time(1_500_000_000, 0)).unwrap();
}

/// `cached` of each recipe layer, in order.
fn cached(out: &BuildOutput) -> Vec<bool> {
    out.layers
        .iter()
        .filter(|l| !l.from_base)
        .map(|l| l.cached)
        .collect()
}

#[test]
fn a_no_op_rebuild_reads_no_file_and_builds_no_layer() {
    let p = Project::new();
    let cold = p.build("layout", Some("cache"));
    assert_eq!(cached(&cold), [false, false, false]);
    let stats = cold.cache.unwrap();
    assert_eq!((stats.layers_built, stats.layers_cached), (3, 0));
    // Every input file read once (the excluded one never).
    assert_eq!(stats.files_hashed, 5);

    let warm = p.build("layout", Some("cache"));
    assert_eq!(warm.manifest.digest, cold.manifest.digest);
    assert_eq!(cached(&warm), [true, true, true]);
    let stats = warm.cache.unwrap();
    assert_eq!(
        stats.files_hashed, 0,
        "a no-op rebuild must not read file content"
    );
    assert_eq!(stats.bytes_hashed, 0);
    assert_eq!(stats.stat_hits, 5);
    assert_eq!((stats.layers_built, stats.layers_cached), (0, 3));

    // The same image as a build without any cache.
    let plain = p.build("plain", None);
    assert_eq!(plain.manifest.digest, cold.manifest.digest);
    assert!(plain.cache.is_none());
}

#[test]
fn changing_a_file_rebuilds_only_its_layer() {
    let p = Project::new();
    p.build("layout", Some("cache"));
    write(&p.root.join("one/sub/b.bin"), "b changed\n");
    let out = p.build("layout", Some("cache"));
    assert_eq!(cached(&out), [false, true, true]);
    let stats = out.cache.unwrap();
    assert_eq!(stats.files_hashed, 1, "only the changed file is read");
    // And the result is what a cold build of the new inputs gives.
    assert_eq!(p.build("cold", None).manifest.digest, out.manifest.digest);

    // A new file in a copied tree, and a removed one, are changes too.
    write(&p.root.join("three/new.txt"), "new\n");
    assert_eq!(cached(&p.build("layout", Some("cache"))), [true, true, false]);
    fs::remove_file(p.root.join("three/new.txt")).unwrap();
    let back = p.build("layout", Some("cache"));
    assert_eq!(
        cached(&back),
        [true, true, true],
        "the earlier entry is still valid"
    );
}

#[test]
fn excluded_files_and_mtimes_do_not_invalidate() {
    let p = Project::new();
    let first = p.build("layout", Some("cache"));
    write(&p.root.join("one/debug.log"), "noise\n");
    let out = p.build("layout", Some("cache"));
    assert_eq!(cached(&out), [true, true, true]);
    assert_eq!(
        out.cache.unwrap().files_hashed,
        0,
        "excluded files are never read"
    );

    // A new mtime with the same content: re-hashed, not rebuilt.
    let t = filetime::FileTime::from_unix_time(1_000_000_000, 0);
    filetime::set_file_mtime(p.root.join("two.txt"), t).unwrap();
    let out = p.build("layout", Some("cache"));
    assert_eq!(cached(&out), [true, true, true]);
    assert_eq!(out.cache.unwrap().files_hashed, 1);
    assert_eq!(out.manifest.digest, first.manifest.digest);
}

#[test]
fn mode_changes_that_matter_invalidate() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new();
    p.build("layout", Some("cache"));
    let f = p.root.join("three/c.txt");
    fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = p.build("layout", Some("cache"));
    assert_eq!(
        cached(&out),
        [true, true, false],
        "an execute bit changes the layer"
    );
    // Group/other bits never reach the layer, so they do not rebuild it.
    fs::set_permissions(&f, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(cached(&p.build("layout", Some("cache"))), [true, true, true]);
}

#[test]
fn changing_the_epoch_or_the_steps_rebuilds() {
    let p = Project::new();
    p.build("layout", Some("cache"));
    let mut s = p.settings("layout", Some("cache"));
    s.epoch = Some(bake_build::Epoch {
        seconds: 1_800_000_000,
        source: bake_build::EpochSource::Flag,
    });
    let out = bake_build::build(&s).unwrap();
    assert_eq!(cached(&out), [false, false, false]);

    fs::write(
        p.root.join("bake.toml"),
        RECIPE.replace("content = \"two\\n\"", "content = \"2\\n\""),
    )
    .unwrap();
    assert_eq!(cached(&p.build("layout", Some("cache"))), [true, false, true]);
}

#[test]
fn capabilities_are_in_the_key_and_the_copy_input_digest() {
    let p = Project::new();
    let first = p.build("layout", Some("cache"));
    let with = |caps: &str| {
        RECIPE.replace(
            "  copy = \"three\"\n  to = \"/three\"\n",
            &format!("  copy = \"three\"\n  to = \"/three\"\n  capabilities = \"{caps}\"\n"),
        )
    };
    fs::write(p.root.join("bake.toml"), with("cap_net_raw+ep")).unwrap();
    let raw = p.build("layout", Some("cache"));
    assert_eq!(cached(&raw), [true, true, false]);
    assert_ne!(raw.layers[2].diff_id, first.layers[2].diff_id);
    // Another spelling of the same capabilities: the same layer, cached.
    fs::write(p.root.join("bake.toml"), with("CAP_NET_RAW=pe")).unwrap();
    let same = p.build("layout", Some("cache"));
    assert_eq!(cached(&same), [true, true, true]);
    assert_eq!(same.manifest.digest, raw.manifest.digest);
    fs::write(p.root.join("bake.toml"), with("cap_net_admin+ep")).unwrap();
    let admin = p.build("layout", Some("cache"));
    assert_eq!(cached(&admin), [true, true, false]);
    assert_ne!(admin.layers[2].diff_id, raw.layers[2].diff_id);

    // What `bake lock` records for the copy moves with them too.
    let context = bake_layer::Context::new(&p.root).unwrap();
    let digest = |caps: &str| {
        let recipe = bake_recipe::parse(&p.root.join("bake.toml"), &with(caps), &Default::default()).unwrap();
        bake_build::copy_input_digest(&context, &recipe.layers[2].steps[0])
            .unwrap()
            .0
    };
    assert_eq!(digest("cap_net_raw+ep"), digest("cap_net_raw=pe"));
    assert_ne!(digest("cap_net_raw+ep"), digest("cap_net_admin+ep"));
}

#[test]
fn corrupt_or_missing_cache_blobs_are_detected_and_rebuilt() {
    let p = Project::new();
    let first = p.build("layout", Some("cache"));
    let blob = |i: usize| {
        p.cache_blobs("cache")
            .join(first.layers[i].descriptor.digest.hex())
    };

    // Same size, other bytes: caught by the changed mtime, then the hash.
    let len = fs::metadata(blob(0)).unwrap().len() as usize;
    fs::write(blob(0), vec![b'x'; len]).unwrap();
    // Truncated.
    fs::write(blob(1), b"short").unwrap();
    // Gone.
    fs::remove_file(blob(2)).unwrap();

    // Into a fresh layout, so nothing can come from the old one.
    let out = p.build("fresh", Some("cache"));
    assert_eq!(cached(&out), [false, false, false]);
    assert_eq!(out.manifest.digest, first.manifest.digest);
    for i in 0..3 {
        let digest = &out.layers[i].descriptor.digest;
        for dir in [
            p.cache_blobs("cache"),
            p.root.parent().unwrap().join("fresh/blobs/sha256"),
        ] {
            let bytes = fs::read(dir.join(digest.hex())).unwrap();
            assert_eq!(bake_digest::Digest::of(&bytes), *digest, "{}", dir.display());
        }
    }
    // The old layout's corrupt hard link is replaced as well.
    let again = p.build("layout", Some("cache"));
    assert_eq!(cached(&again), [true, true, true]);
    let d = &again.layers[0].descriptor.digest;
    let bytes = fs::read(p.root.parent().unwrap().join("layout/blobs/sha256").join(d.hex())).unwrap();
    assert_eq!(bake_digest::Digest::of(&bytes), *d);
}

#[test]
fn unreadable_entries_are_ignored() {
    let p = Project::new();
    let first = p.build("layout", Some("cache"));
    let entries = p.root.parent().unwrap().join("cache/layers");
    for e in fs::read_dir(&entries).unwrap() {
        fs::write(e.unwrap().path(), b"{not json").unwrap();
    }
    let out = p.build("layout", Some("cache"));
    assert_eq!(cached(&out), [false, false, false]);
    assert_eq!(out.manifest.digest, first.manifest.digest);
    assert_eq!(cached(&p.build("layout", Some("cache"))), [true, true, true]);
}

#[test]
fn a_file_modified_during_the_build_is_not_trusted_by_stat() {
    let p = Project::new();
    // An mtime after the build's start is "racily clean": hashed, used,
    // but not recorded, so the next build reads it again.
    let future = filetime::FileTime::from_unix_time(4_000_000_000, 0);
    filetime::set_file_mtime(p.root.join("two.txt"), future).unwrap();
    p.build("layout", Some("cache"));
    let out = p.build("layout", Some("cache"));
    assert_eq!(cached(&out), [true, true, true]);
    assert_eq!(out.cache.unwrap().files_hashed, 1);
}

#[test]
fn one_cache_serves_several_layouts_by_hard_link() {
    use std::os::unix::fs::MetadataExt;
    let p = Project::new();
    let a = p.build("a", Some("cache"));
    let b = p.build("b", Some("cache"));
    assert_eq!(cached(&b), [true, true, true]);
    assert_eq!(a.manifest.digest, b.manifest.digest);
    let top = p.root.parent().unwrap();
    let hex = b.layers[2].descriptor.digest.hex();
    let in_b = fs::metadata(top.join("b/blobs/sha256").join(hex)).unwrap();
    let in_cache = fs::metadata(p.cache_blobs("cache").join(hex)).unwrap();
    assert_eq!(in_b.ino(), in_cache.ino());
}
