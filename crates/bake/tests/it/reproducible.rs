//! Invariant 1: the same recipe and inputs give the same digest whatever the
//! build path, file mtimes, creation order, host file modes, umask, TZ,
//! LANG and CPU count.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::common::*;

/// Strips group/other permission bits from every file under `dir`, as a
/// checkout made with umask 077 would have them.
fn restrict_modes(dir: &Path) {
    for e in fs_err::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            continue;
        }
        let mode = e.metadata().unwrap().permissions().mode();
        fs_err::set_permissions(e.path(), std::fs::Permissions::from_mode(mode & 0o700)).unwrap();
        if ft.is_dir() {
            restrict_modes(&e.path());
        }
    }
}

/// `bake build --json` under `sh -c 'umask …'`, with TZ/LANG set and, when
/// `one_cpu`, pinned to one CPU with taskset.
fn build_varied(root: &Path, recipe: &str, umask: &str, tz: &str, lang: &str, one_cpu: bool) -> String {
    let mut cmd = if one_cpu && Path::new("/usr/bin/taskset").exists() {
        let mut c = Command::new("taskset");
        c.args(["-c", "0", "sh"]);
        c
    } else {
        Command::new("sh")
    };
    let bake_cmd = bake(root);
    cmd.current_dir(root)
        .env_clear()
        .envs(bake_cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env("TZ", tz)
        .env("LANG", lang)
        .env("LC_ALL", lang)
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" build \"$1\" --json"))
        .arg(env!("CARGO_BIN_EXE_bake"))
        .arg(format!("recipes/{recipe}/bake.toml"));
    let out = ok(&mut cmd);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["digest"].as_str().unwrap().to_owned()
}

#[test]
fn same_digest_across_paths_mtimes_order_modes_umask_tz_locale_and_cpus() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let root_a = a.path().join("a");
    let root_b = b.path().join("some/much/deeper/build path");
    stage_repo(&root_a, 1_000_000_000);
    stage_repo(&root_b, 2_000_000_000);
    restrict_modes(&root_b.join("recipes"));
    for name in buildable_recipe_names() {
        let da = build_varied(&root_a, &name, "022", "UTC", "C", false);
        let db = build_varied(&root_b, &name, "077", "Asia/Kolkata", "de_DE.UTF-8", true);
        assert_eq!(da, db, "recipe {name} is not reproducible");
        // And a warm rebuild into the same layout gives the same digest again.
        let dc = build_varied(&root_b, &name, "002", "America/New_York", "C.UTF-8", false);
        assert_eq!(
            da, dc,
            "recipe {name}: rebuild into an existing layout changed the digest"
        );
    }
}

#[test]
fn epoch_sources_have_documented_precedence() {
    // An explicit flag wins over SOURCE_DATE_EPOCH, which wins over the
    // recipe's epoch, which wins over 0; the output says which was used,
    // and the image's `created` is that epoch.
    let tmp = tempfile::tempdir().unwrap();
    let recipe = |epoch: &str| {
        write_files(
            tmp.path(),
            &[(
                "bake.toml",
                &format!(
                    "{epoch}[image]\nname = \"e\"\n[[layer]]\n[[layer.step]]\nfile = \"/f\"\ncontent = \"x\"\n"
                ),
            )],
        )
    };
    let built = |extra: &[&str], sde: Option<&str>| {
        let mut c = bake(tmp.path());
        c.args(["build", "bake.toml", "--json"]).args(extra);
        if let Some(s) = sde {
            c.env("SOURCE_DATE_EPOCH", s);
        }
        let v: serde_json::Value = serde_json::from_slice(&ok(&mut c).stdout).unwrap();
        let config = tmp
            .path()
            .join("out/e/blobs/sha256")
            .join(&v["config"]["digest"].as_str().unwrap()[7..]);
        let config: serde_json::Value = serde_json::from_slice(&fs_err::read(config).unwrap()).unwrap();
        let epoch = v["epoch"].as_u64().unwrap();
        let created = config["created"].as_str().unwrap().to_owned();
        (epoch, v["epochSource"].as_str().unwrap().to_owned(), created)
    };
    let src = |extra: &[&str], sde: Option<&str>| {
        let (e, s, _) = built(extra, sde);
        (e, s)
    };
    recipe("epoch = 100\n");
    assert_eq!(src(&[], None), (100, "recipe".into()));
    assert_eq!(src(&[], Some("300")), (300, "SOURCE_DATE_EPOCH".into()));
    assert_eq!(src(&["--source-date-epoch", "200"], None), (200, "flag".into()));
    let (e, s, created) = built(&["--source-date-epoch", "1700000000"], Some("315532800"));
    assert_eq!(
        (e, s.as_str()),
        (1_700_000_000, "flag"),
        "the flag must win over the environment"
    );
    assert_eq!(created, "2023-11-14T22:13:20Z");
    recipe("");
    assert_eq!(src(&[], None), (0, "default".into()));
    // The human output names the source too.
    let out = ok(bake(tmp.path())
        .args(["build", "bake.toml", "--source-date-epoch", "5"])
        .env("SOURCE_DATE_EPOCH", "6"));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("  epoch     5 (flag)"), "{text}");
    // A malformed SOURCE_DATE_EPOCH is an error, even beside the flag.
    for extra in [&[][..], &["--source-date-epoch", "5"][..]] {
        let err = fails(
            bake(tmp.path())
                .args(["build", "bake.toml"])
                .args(extra)
                .env("SOURCE_DATE_EPOCH", "yesterday"),
        );
        assert!(
            err.contains("SOURCE_DATE_EPOCH=\"yesterday\" is not a whole number"),
            "{err}"
        );
    }
    // Not UTF-8 is malformed too, not unset (it used to be ignored).
    use std::os::unix::ffi::OsStrExt as _;
    let err = fails(
        bake(tmp.path())
            .args(["build", "bake.toml"])
            .env("SOURCE_DATE_EPOCH", std::ffi::OsStr::from_bytes(b"17\xff")),
    );
    assert!(
        err.contains("SOURCE_DATE_EPOCH=") && err.contains("is not a whole number"),
        "{err}"
    );
}

#[test]
fn builds_never_read_their_own_outputs_inside_the_context() {
    // `copy = "."` with the default out/ (layout and build log) and the
    // default cache ($HOME/.cache/bake, $HOME being the context here) all
    // inside the context: three builds in a row give one digest, the image
    // holds none of them, and the user is told once per build.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_files(
        d,
        &[
            ("site/index.html", "<h1>hello</h1>\n"),
            (
                "bake.toml",
                "epoch = 1700000000\n[image]\nname = \"self\"\n[[layer]]\n[[layer.step]]\ncopy = \".\"\nto = \"/srv\"\n",
            ),
        ],
    );
    let build = || {
        let out = ok(bake(d).args(["build", "bake.toml", "--json"]));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        (v["digest"].as_str().unwrap().to_owned(), v, stderr)
    };
    let (first, v, _) = build();
    let (second, _, note) = build();
    let (third, _, _) = build();
    assert_eq!(first, second, "the second build read the first one's outputs");
    assert_eq!(first, third);
    assert_eq!(note.matches("note: bake's own outputs").count(), 1, "{note}");
    assert!(note.contains("out/self") && note.contains("self.log"), "{note}");
    // The layer holds the site and the recipe, nothing of out/ or .cache.
    let layer = d
        .join("out/self/blobs/sha256")
        .join(&v["layers"][0]["digest"].as_str().unwrap()[7..]);
    let entries = bake_layer::read_layer_entries(fs_err::File::open(layer).unwrap()).unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert!(names.iter().any(|n| n.ends_with("site/index.html")), "{names:?}");
    // out/ and .cache/ stay, empty (they are the context's directories).
    assert!(
        !names
            .iter()
            .any(|n| n.contains("out/s") || n.contains(".cache/b")),
        "{names:?}"
    );
    // The lock agrees with the build about what is read.
    ok(bake(d).args(["lock", "bake.toml"]));
    let (locked, _, _) = build();
    assert_eq!(locked, first);
    ok(bake(d).args(["build", "bake.toml", "--locked", "-q"]));
}

/// Every file under `dir` (recursively), with its permission bits.
fn file_modes(dir: &Path, out: &mut Vec<(std::path::PathBuf, u32)>) {
    for e in fs_err::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = fs_err::symlink_metadata(e.path()).unwrap();
        if m.is_dir() {
            file_modes(&e.path(), out);
        } else {
            out.push((e.path(), m.permissions().mode() & 0o777));
        }
    }
}

#[test]
fn outputs_are_written_with_the_modes_the_umask_allows() {
    // As other tools do: 0666 less the umask, so another user can read a
    // layout (tempfile's default, 0600, kept them out). One layer cache for
    // all three: a blob cached under another umask is copied, not linked
    // with the cache's mode.
    let cache = tempfile::tempdir().unwrap();
    for (umask, want) in [("022", 0o644), ("077", 0o600), ("002", 0o664)] {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write_files(
            d,
            &[(
                "bake.toml",
                "epoch = 1\n[image]\nname = \"m\"\n[[layer]]\n[[layer.step]]\nfile = \"/f\"\ncontent = \"x\"\n",
            )],
        );
        for args in ["build bake.toml --docker-archive out/m.tar", "lock bake.toml"] {
            ok(Command::new("sh")
                .current_dir(d)
                .env("HOME", d)
                .env("XDG_CACHE_HOME", cache.path())
                .arg("-c")
                .arg(format!("umask {umask} && exec \"$0\" {args}"))
                .arg(env!("CARGO_BIN_EXE_bake")));
        }
        let mut modes = Vec::new();
        file_modes(&d.join("out"), &mut modes);
        modes.push((d.join("bake.toml.lock"), 0));
        let last = modes.len() - 1;
        modes[last].1 = fs_err::metadata(d.join("bake.toml.lock"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert!(modes.len() >= 6, "{modes:?}");
        for (path, mode) in &modes {
            assert_eq!(*mode, want, "umask {umask}: {} is {mode:o}", path.display());
        }
    }
}

#[test]
#[ignore = "needs skopeo and setpriv; run via cargo xtask test"]
fn another_user_can_read_a_layout_built_with_umask_022() {
    require("skopeo");
    require("setpriv");
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs_err::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    write_files(
        d,
        &[(
            "bake.toml",
            "epoch = 1\n[image]\nname = \"m\"\n[[layer]]\n[[layer.step]]\nfile = \"/f\"\ncontent = \"x\"\n",
        )],
    );
    ok(Command::new("sh")
        .current_dir(d)
        .env("HOME", d)
        .arg("-c")
        .arg("umask 022 && exec \"$0\" build bake.toml -q")
        .arg(env!("CARGO_BIN_EXE_bake")));
    ok(Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "skopeo",
            "inspect",
        ])
        .arg(format!("oci:{}:latest", d.join("out/m").display()))
        .env("HOME", "/nonexistent"));
}
