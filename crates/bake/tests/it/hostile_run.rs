//! `run` steps over hostile bases and a killed bake: the container runtime
//! never writes to the host through a link in the image (issue 15.2), and
//! a `kill -9` of bake does not leave the sandbox running or its scratch
//! root behind (issue 15.8), and neither does a SIGINT or SIGTERM, to bake
//! or to its process group (issue 16.7).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use crate::common::*;

/// A build area: `ctx/` (recipe and base), `tmp/` (TMPDIR), `home/`
/// (HOME), `canary/` (a host directory links in the base point to: must
/// stay empty).
struct Area {
    dir: tempfile::TempDir,
}

impl Area {
    fn new() -> Area {
        let dir = tempfile::tempdir().unwrap();
        for d in ["ctx", "tmp", "home", "canary"] {
            fs_err::create_dir(dir.path().join(d)).unwrap();
        }
        Area { dir }
    }

    fn ctx(&self) -> PathBuf {
        self.dir.path().join("ctx")
    }

    fn canary(&self) -> PathBuf {
        self.dir.path().join("canary")
    }

    fn command(&self, recipe: &str) -> std::process::Command {
        fs_err::write(self.ctx().join("bake.toml"), recipe).unwrap();
        let mut c = bake(&self.ctx());
        c.env("TMPDIR", self.dir.path().join("tmp"))
            .env("HOME", self.dir.path().join("home"))
            .args(["build", "bake.toml", "--layout", "layout"]);
        c
    }

    fn build(&self, recipe: &str) -> std::process::Output {
        self.command(recipe).output().unwrap()
    }

    fn assert_canary_empty(&self, case: &str) {
        let left: Vec<_> = fs_err::read_dir(self.canary())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{case}: the runtime wrote to the host: {left:?}");
    }

    /// The entries of TMPDIR (bake's scratch directories).
    fn tmp_entries(&self) -> Vec<String> {
        let mut v: Vec<String> = fs_err::read_dir(self.dir.path().join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }
}

fn run_recipe(extra: &str) -> String {
    format!(
        "base = \"oci:base:base\"\n[image]\nname = \"hostile\"\n\n\
         [[layer]]\n[[layer.step]]\nrun = [\"true\"]\n{extra}"
    )
}

/// More `..` than any scratch root is deep: past the host's `/`.
const UP: &str = "../../../../../../../../../../../../../../../..";

/// Bases whose `/dev`, `/proc`, `/sys`, `/tmp`, the work directory or a
/// parent of it link to a host directory (by absolute path, or by `..`s
/// past the root): the build fails naming the path, before the runtime
/// runs, and nothing appears in the host directory.
#[test]
#[ignore = "needs root and runc; run via cargo xtask test"]
fn a_run_step_never_mounts_or_creates_through_a_link_in_the_image() {
    require("runc");
    for (case, link, relative, extra) in [
        ("/dev absolute", "dev", false, ""),
        ("/dev relative", "dev", true, ""),
        ("/proc relative", "proc", true, ""),
        ("/sys absolute", "sys", false, ""),
        ("/tmp absolute", "tmp", false, ""),
        ("workdir", "w", false, "workdir = \"/w\"\n"),
        ("workdir parent", "w", true, "workdir = \"/w/sub/dir\"\n"),
    ] {
        let area = Area::new();
        let canary = area.canary();
        let target = if relative {
            format!("{UP}{}", canary.display())
        } else {
            canary.display().to_string()
        };
        one_layer_layout(
            &area.ctx().join("base"),
            &links_tar(&["etc/"], &[(link, &target)]),
        );
        let out = area.build(&run_recipe(extra));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{case}: {stderr}");
        // Targets are shown escaped and cut at 100 characters (a long
        // TMPDIR makes the `..` one longer).
        let cut: String = target.chars().take(100).collect();
        let shown = if cut.len() < target.len() {
            format!("{cut:?}…")
        } else {
            format!("{target:?}")
        };
        let want = format!("/{link} in the image is a symlink (to {shown})");
        assert!(stderr.contains(&want), "{case}: {stderr:?} lacks {want:?}");
        assert!(!stderr.contains("panicked"), "{case}: {stderr}");
        area.assert_canary_empty(case);
        assert!(
            area.tmp_entries().is_empty(),
            "{case}: left {:?}",
            area.tmp_entries()
        );
    }
}

/// A recipe of busybox (from the fetched deb, copied into the area) and a
/// run step of `commands`.
fn busybox_recipe(area: &Area, commands: &str) -> String {
    let busybox = fetched(BUSYBOX_DEB);
    fs_err::copy(&busybox, area.ctx().join("busybox.deb")).unwrap();
    format!(
        "epoch = 1700000000\n[image]\nname = \"killed\"\n\n\
         [[layer]]\nname = \"busybox\"\n\
         [[layer.step]]\ndeb = \"busybox.deb\"\nsha256 = \"{BUSYBOX_SHA}\"\n\
         [[layer.step]]\nsymlink = \"/bin/sh\"\ntarget = \"busybox\"\n\n\
         [[layer]]\nname = \"run\"\n[[layer.step]]\nrun = [{commands:?}]\ntimeout = 3000\n"
    )
}

/// The pids of processes whose command line holds `token`.
fn processes_with(token: &str) -> Vec<u32> {
    fs_err::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(token.len()).any(|w| w == token.as_bytes()))
        })
        .collect()
}

/// Polls `done` every 100 ms for at most `limit`.
fn wait_for(limit: std::time::Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    done()
}

/// `kill -9` of bake while a run step's command runs (its shell waits, so
/// its command line, with a token in a comment, stays visible): the command does not
/// outlive bake (the runtime dies with it, and the container with the
/// runtime), and the next build in the same TMPDIR leaves no scratch
/// directory of the killed one behind.
#[test]
#[ignore = "needs root, runc and fetched debs; run via cargo xtask test"]
fn a_killed_build_leaves_no_sandbox_running_and_no_scratch_root() {
    use std::time::Duration;
    require("runc");
    let area = Area::new();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let token = format!("bake-killed-{}-{nanos}", std::process::id());
    let recipe = busybox_recipe(&area, &format!("sleep 600 & wait # {token}"));
    let mut bake = area
        .command(&recipe)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = wait_for(Duration::from_secs(60), || !processes_with(&token).is_empty());
    if !started {
        let _ = bake.kill();
        panic!("the command never started");
    }
    bake.kill().unwrap();
    bake.wait().unwrap();
    let gone = wait_for(Duration::from_secs(20), || processes_with(&token).is_empty());
    assert!(
        gone,
        "still running after bake was killed: {:?}",
        processes_with(&token)
    );
    // The watchdog (which holds the scratch directory's lock while it kills
    // and deletes the container) ends on its own too.
    let scratch = area.dir.path().join("tmp").display().to_string();
    let done = wait_for(Duration::from_secs(30), || processes_with(&scratch).is_empty());
    assert!(done, "the watchdog still runs: {:?}", processes_with(&scratch));

    let out = area.build(&busybox_recipe(&area, "true"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        area.tmp_entries().is_empty(),
        "left behind: {:?}",
        area.tmp_entries()
    );
}

/// Every file under `dir` whose name starts with `.tmp` (a temp blob, a
/// half-written record).
fn temp_files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = fs_err::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            if e.file_name().to_string_lossy().starts_with(".tmp") {
                found.push(e.path());
            }
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            }
        }
    }
    found
}

/// SIGINT or SIGTERM to bake alone, and SIGINT to its whole process group
/// (what a terminal's Ctrl-C does: runc and the command get it too), while
/// a run step's command runs: bake kills and deletes the container, removes
/// its scratch root, and exits 128 + N with one line saying so, at once —
/// no process with the command's token is left, TMPDIR is empty without
/// another build, the layout has no tag and no partial blob, the cache no
/// temp file. Without the handler bake died of the signal (no exit code)
/// and left its scratch root for the next build to remove.
#[test]
#[ignore = "needs root, runc and fetched debs; run via cargo xtask test"]
fn an_interrupted_build_stops_its_sandbox_and_leaves_nothing_behind() {
    use std::os::unix::process::CommandExt;
    use std::time::Duration;
    require("runc");
    for (case, signal, group, code) in [
        ("SIGINT to bake", "INT", false, 130),
        ("SIGINT to its process group", "INT", true, 130),
        ("SIGTERM to bake", "TERM", false, 143),
    ] {
        let area = Area::new();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let token = format!("bake-interrupted-{}-{nanos}", std::process::id());
        let recipe = busybox_recipe(&area, &format!("sleep 600 & wait # {token}"));
        let stderr_path = area.dir.path().join("stderr");
        let mut command = area.command(&recipe);
        command
            .stdout(std::process::Stdio::null())
            .stderr(fs_err::File::create(&stderr_path).unwrap().into_parts().0);
        if group {
            command.process_group(0);
        }
        let mut bake = command.spawn().unwrap();
        let started = wait_for(Duration::from_secs(60), || !processes_with(&token).is_empty());
        if !started {
            let _ = bake.kill();
            panic!("{case}: the command never started");
        }
        let pid = bake.id().to_string();
        let target = if group { format!("-{pid}") } else { pid };
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), "--", &target])
            .status()
            .unwrap();
        assert!(sent.success(), "{case}: kill failed");
        let exited = wait_for(Duration::from_secs(30), || bake.try_wait().unwrap().is_some());
        if !exited {
            let _ = bake.kill();
            panic!("{case}: bake did not exit within 30 s of the signal");
        }
        let status = bake.wait().unwrap();
        let stderr = fs_err::read_to_string(&stderr_path).unwrap();
        assert_eq!(status.code(), Some(code), "{case}: {status:?}, stderr: {stderr}");
        let want = format!("bake: interrupted by SIG{signal}: ");
        assert_eq!(
            stderr.lines().filter(|l| l.starts_with(&want)).count(),
            1,
            "{case}: {stderr:?} lacks one line {want:?}"
        );
        assert!(!stderr.contains("error:"), "{case}: {stderr}");
        // The container is deleted before bake exits; its processes are
        // gone at once (a moment for the kernel to reap them).
        assert!(
            wait_for(Duration::from_secs(2), || processes_with(&token).is_empty()),
            "{case}: still running after bake exited: {:?}",
            processes_with(&token)
        );
        assert!(
            area.tmp_entries().is_empty(),
            "{case}: left behind in TMPDIR: {:?}",
            area.tmp_entries()
        );
        let layout = area.ctx().join("layout");
        let index = layout.join("index.json");
        if index.exists() {
            let index: serde_json::Value = serde_json::from_slice(&fs_err::read(&index).unwrap()).unwrap();
            assert_eq!(
                index["manifests"],
                serde_json::json!([]),
                "{case}: tagged: {index}"
            );
        }
        if layout.join("blobs/sha256").exists() {
            assert_store_clean(&layout);
        }
        let temps = temp_files_under(area.dir.path());
        assert!(temps.is_empty(), "{case}: temp files left: {temps:?}");
    }
}
