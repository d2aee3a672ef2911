//! The `run` step's sandbox: commands run with `/bin/sh -c` inside a root
//! filesystem, under a standard OCI runtime (`runc`), and the changes they
//! made, as [`bake_layer::Change`]s for the layer writer.
//!
//! ```text
//! rootfs (base + layers below, applied by the caller)
//!   ──snapshot──▶ runc run (one container per command) ──snapshot──▶ diff ──▶ Vec<Change>
//! ```
//!
//! # The sandbox
//!
//! Each command runs in a fresh container whose bundle is generated with
//! oci-spec's runtime types ([`spec::spec`]): `/bin/sh -c COMMAND` from the
//! image, no terminal, hostname `bake`, a fixed environment (`PATH`, `HOME`,
//! the step's `env`, `SOURCE_DATE_EPOCH`; nothing from the host), the
//! step's user (resolved in the image's `/etc/passwd`) and working
//! directory, a writable root, a fresh tmpfs on `/tmp`, rlimits NOFILE and
//! NPROC 1024, runc's default mounts, namespaces and masked paths, and a
//! network namespace of its own with only loopback unless the step says
//! `network = true` (then the host's network and, if the image has `/etc`,
//! the host's `/etc/resolv.conf` bound read-only). The runtime's state,
//! bundle and log live in the caller's scratch directory; the runtime runs
//! with an empty environment. Before each command, every path the
//! runtime mounts onto or creates in the root (each mount destination of
//! the generated spec, the working directory and their parents) is checked
//! without following links ([`spec::check_root`]): a symlink or an entry of
//! the wrong kind there is refused, since the runtime, as root on the host,
//! would create or mount things where it leads.
//!
//! Output (stdout and stderr, merged inside the container so lines keep
//! their order, by lines) goes to the caller's sink
//! as it comes; the last [`TAIL_LINES`] lines are kept for the error of a
//! failing command. The step's `timeout` covers all its commands; when it
//! passes, the container is killed. The sandbox dies with bake, even by
//! `kill -9`: the runtime gets a parent-death signal, and a watchdog shell
//! in its own process group kills and deletes the container when the pipe
//! from bake closes without a `done` (the container's init is the first
//! process of its PID namespace, so its death ends every process in it).
//! When the caller sets the sandbox's [`Interrupt`] (bake's SIGINT, SIGTERM
//! or SIGHUP handler), the running container is killed and deleted as on a
//! timeout, and the step fails with [`RunError::Interrupted`]; no further
//! command starts.
//!
//! # The diff
//!
//! Before the first command and after the last, the root is walked
//! ([`Snapshot`]: kind, mode, owner, size, inode, mtime and ctime of every
//! entry) and compared ([`diff`]). What the sandbox itself adds is left
//! out: anything below its mount points (`/proc`, `/dev`, `/sys`, `/tmp`,
//! and `/etc/resolv.conf` with network), and the mount points themselves
//! when the image did not have them (the runtime created them). runc does
//! not write `/etc/hostname` or `/etc/hosts`, so those are the commands'
//! own if they appear. Writes to `/tmp` vanish with its tmpfs: a layer
//! never holds them.
//!
//! # What this crate does not do
//!
//! It does not assemble the root filesystem (see
//! [`bake_layer::apply_layer`]), does not write the layer, and reads no
//! environment variable: the runtime is found by the operating system on
//! the inherited `PATH` when it is spawned. It measures the timeout with a
//! monotonic clock, which never reaches the image.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod rootfs;
pub mod snapshot;
pub mod spec;
pub mod user;

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bake_layer::Change;

pub use rootfs::RootFs;
pub use snapshot::{Exclusions, Snapshot, diff};
pub use user::Identity;

/// A request to stop, set from elsewhere (a signal handler) and polled by
/// whoever does long work: the sandbox checks it at least every
/// [`POLL`]. Clones share one flag; the default is never set.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

/// How often a running command checks its [`Interrupt`].
pub const POLL: Duration = Duration::from_millis(100);

impl Interrupt {
    /// An interrupt raised when `flag` is set (e.g. by
    /// `signal_hook::flag::register`).
    pub fn from_flag(flag: Arc<AtomicBool>) -> Interrupt {
        Interrupt(flag)
    }

    pub fn raise(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// How many of the last output lines a failure reports.
pub const TAIL_LINES: usize = 20;
/// Output lines longer than this are split.
const MAX_LINE: usize = 8 * 1024;

/// One `run` step, as the recipe gives it.
#[derive(Debug, Clone)]
pub struct Step<'a> {
    pub commands: &'a [String],
    pub network: bool,
    /// For all the step's commands together.
    pub timeout: Duration,
    /// `UID[:GID]` or `NAME[:GROUP]`; root if `None`.
    pub user: Option<&'a str>,
    pub env: &'a BTreeMap<String, String>,
    /// Absolute; `/` if `None`.
    pub workdir: Option<&'a str>,
    /// `SOURCE_DATE_EPOCH` inside the sandbox.
    pub epoch: u64,
}

/// Where and how commands run.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The OCI runtime: `runc`, found on `PATH` when spawned, or a path.
    pub runtime: PathBuf,
    /// Scratch space for bundles, runtime state and logs (the caller
    /// removes it). Its name also makes the container ids unique.
    pub work: PathBuf,
    /// The host's resolver configuration, bound into steps with network.
    pub resolv_conf: PathBuf,
    /// When raised, the running command's container is killed and the
    /// step fails with [`RunError::Interrupted`].
    pub interrupt: Interrupt,
    /// A file whose `flock` the watchdog holds for as long as it lives
    /// (the scratch directory's lock): after a `kill -9` of bake, the next
    /// build's clean-up leaves `work` alone until the watchdog has killed
    /// and deleted the container (the runtime would make its state
    /// directory again under a removed `work`).
    pub hold: Option<std::sync::Arc<std::fs::File>>,
}

/// Why a step could not run, or failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "the OCI runtime `{runtime}` is not installed or not on PATH: install runc \
         (Debian/Ubuntu: apt-get install runc) to use run steps"
    )]
    RuntimeMissing { runtime: String },
    #[error(
        "run steps need root privileges (running as uid {uid}): bake runs them in a runc \
         sandbox that creates namespaces and sets file owners; run bake as root, e.g. with sudo \
         (rootless runc is not supported yet)"
    )]
    NotRoot { uid: u32 },
    #[error("cannot start the OCI runtime `{runtime}`: {source}")]
    Spawn {
        runtime: String,
        #[source]
        source: io::Error,
    },
    /// The runtime itself failed (not the command): its own error message.
    #[error("run[{index}]: the OCI runtime failed: {message}{}", privilege_hint(.message))]
    Runtime { index: usize, message: String },
    #[error("run[{index}] `{command}` failed with exit code {code}{}", tail_text(.tail))]
    Failed {
        index: usize,
        command: String,
        code: i32,
        tail: Vec<String>,
    },
    #[error("run[{index}] `{command}` was still running after {}s and was killed{}", .timeout.as_secs(), tail_text(.tail))]
    TimedOut {
        index: usize,
        command: String,
        timeout: Duration,
        tail: Vec<String>,
    },
    /// The caller's [`Interrupt`] was raised: the container was killed.
    #[error("run[{index}] `{command}` was interrupted and its sandbox stopped")]
    Interrupted { index: usize, command: String },
    #[error("unknown user `{user}`: the image has no such entry in /etc/passwd")]
    UnknownUser { user: String },
    #[error("unknown group `{group}`: the image has no such entry in /etc/group")]
    UnknownGroup { group: String },
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: the name is not valid UTF-8, which an image layer cannot hold", .path.display())]
    NotUtf8 { path: PathBuf },
    /// A path the sandbox mounts onto or creates is a link in the image.
    #[error("run step: {path} in the image is a symlink (to {target}): {why}")]
    RootLink {
        path: String,
        target: String,
        why: String,
    },
    /// A path the sandbox mounts onto or creates is of the wrong kind.
    #[error("run step: {path} in the image is not {kind}: {why}")]
    RootKind {
        path: String,
        kind: &'static str,
        why: String,
    },
    #[error("cannot make the runtime bundle: {0}")]
    Spec(String),
}

impl RunError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(io::Error) -> RunError + '_ {
        move |source| RunError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// The last lines of output, for failures of the command itself.
    pub fn tail(&self) -> &[String] {
        match self {
            RunError::Failed { tail, .. } | RunError::TimedOut { tail, .. } => tail,
            _ => &[],
        }
    }
}

fn tail_text(tail: &[String]) -> String {
    if tail.is_empty() {
        return " (no output)".to_owned();
    }
    let mut s = format!("; the last {} lines of its output:", tail.len());
    for line in tail {
        s.push_str("\n  | ");
        s.push_str(line);
    }
    s
}

fn privilege_hint(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    if m.contains("permission denied") || m.contains("operation not permitted") || m.contains("rootless") {
        " (the sandbox needs root with the usual capabilities; inside a container, run bake in a privileged one)"
    } else {
        ""
    }
}

/// The uid this process runs as, from `/proc/self` (no libc call needed).
fn current_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

impl Sandbox {
    /// Runs the step's commands in `rootfs` and returns what they changed,
    /// sorted by path: [`Sandbox::exec`] between two [`Snapshot`]s.
    pub fn run(
        &self,
        rootfs: &Path,
        step: &Step<'_>,
        output: &mut dyn FnMut(&[u8]),
    ) -> Result<Vec<Change>, RunError> {
        let before = Snapshot::take(rootfs)?;
        let exclusions = self.exec(rootfs, step, output)?;
        let after = Snapshot::take(rootfs)?;
        Ok(diff(&before, &after, &exclusions))
    }

    /// Fails early, before any work, when run steps cannot run here: the
    /// process is not root, or the runtime cannot be started.
    pub fn check(&self) -> Result<(), RunError> {
        if let Some(uid) = current_uid().filter(|&u| u != 0) {
            return Err(RunError::NotRoot { uid });
        }
        let runtime = self.runtime.display().to_string();
        match Command::new(&self.runtime)
            .env_clear()
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(RunError::RuntimeMissing { runtime }),
            Err(source) => Err(RunError::Spawn { runtime, source }),
        }
    }

    /// Runs the step's commands in `rootfs`, one container each, stopping at
    /// the first that fails. Each complete output line (stdout and stderr
    /// merged, without its newline) is passed to `output` as it arrives.
    /// Returns what a diff of `rootfs` must leave out: the sandbox's mount
    /// points.
    pub fn exec(
        &self,
        rootfs: &Path,
        step: &Step<'_>,
        output: &mut dyn FnMut(&[u8]),
    ) -> Result<Exclusions, RunError> {
        if let Some(uid) = current_uid().filter(|&u| u != 0) {
            return Err(RunError::NotRoot { uid });
        }
        let rootfs = std::path::absolute(rootfs).map_err(RunError::io(rootfs))?;
        let identity = user::resolve(&rootfs, step.user)?;
        let mut mounts: Vec<String> = spec::MOUNT_POINTS.iter().map(|m| (*m).to_owned()).collect();
        let deadline = Instant::now() + step.timeout;
        for (index, command) in step.commands.iter().enumerate() {
            // Per command: the one before may have changed the root.
            let resolv_conf = self.resolv_conf_for(&rootfs, step.network);
            if resolv_conf.is_some() && !mounts.iter().any(|m| m == spec::RESOLV_CONF) {
                mounts.push(spec::RESOLV_CONF.to_owned());
            }
            let bundle = spec::Bundle {
                rootfs: &rootfs,
                command,
                identity: &identity,
                env: step.env,
                workdir: step.workdir.unwrap_or("/"),
                epoch: step.epoch,
                network: step.network,
                resolv_conf: resolv_conf.as_deref(),
            };
            let spec = spec::spec(&bundle)?;
            spec::check_root(&rootfs, &spec)?;
            if self.interrupt.is_raised() {
                return Err(RunError::Interrupted {
                    index,
                    command: command.to_owned(),
                });
            }
            self.run_one(index, command, &spec, deadline, step.timeout, output)?;
        }
        Ok(Exclusions { mounts })
    }

    /// The host resolv.conf to bind, when the step has network, the host has
    /// one, and the image has an `/etc` directory whose `resolv.conf` is
    /// absent or a regular file (binding over a symlink would make the
    /// runtime create its target).
    fn resolv_conf_for(&self, rootfs: &Path, network: bool) -> Option<PathBuf> {
        if !network || !self.resolv_conf.is_file() {
            return None;
        }
        let etc_is_dir = std::fs::symlink_metadata(rootfs.join("etc")).is_ok_and(|m| m.is_dir());
        let target_ok = match std::fs::symlink_metadata(rootfs.join(spec::RESOLV_CONF)) {
            Ok(m) => m.is_file(),
            Err(e) => e.kind() == io::ErrorKind::NotFound,
        };
        (etc_is_dir && target_ok).then(|| self.resolv_conf.clone())
    }

    fn runtime(&self) -> Command {
        let mut c = Command::new(&self.runtime);
        c.env_clear();
        c.arg("--root").arg(self.work.join("state"));
        c
    }

    fn run_one(
        &self,
        index: usize,
        command: &str,
        spec: &oci_spec::runtime::Spec,
        deadline: Instant,
        timeout: Duration,
        output: &mut dyn FnMut(&[u8]),
    ) -> Result<(), RunError> {
        let bundle = self.work.join(format!("bundle-{index}"));
        fs_err::create_dir_all(&bundle).map_err(RunError::io(&bundle))?;
        let config = bundle.join("config.json");
        let json = serde_json::to_vec(spec).map_err(|e| RunError::Spec(e.to_string()))?;
        fs_err::write(&config, json).map_err(RunError::io(&config))?;
        let log = self.work.join(format!("runtime-{index}.log"));
        let id = self.container_id(index);
        let runtime_name = self.runtime.display().to_string();

        let mut watchdog = self.watchdog(&id)?;
        let mut runtime = self.runtime();
        die_with_parent(&mut runtime);
        let mut child = runtime
            .arg("--log")
            .arg(&log)
            .args(["--log-format", "json", "run", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| match source.kind() {
                io::ErrorKind::NotFound => RunError::RuntimeMissing {
                    runtime: runtime_name.clone(),
                },
                _ => RunError::Spawn {
                    runtime: runtime_name.clone(),
                    source,
                },
            })?;

        // The command's stderr is its stdout (see `spec::spec`); the
        // runtime's own stderr carries the runtime's messages.
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            let tx = tx.clone();
            readers.push(std::thread::spawn(move || read_lines(out, &tx)));
        }
        if let Some(err) = child.stderr.take() {
            let tx = tx.clone();
            readers.push(std::thread::spawn(move || read_lines(err, &tx)));
        }
        drop(tx);

        let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
        // After a timeout or an interrupt: how long to wait for the pipes
        // to close.
        let mut grace: Option<Instant> = None;
        loop {
            let until = grace.unwrap_or(deadline);
            let wait = until.saturating_duration_since(Instant::now()).min(POLL);
            match rx.recv_timeout(wait) {
                Ok(line) => {
                    output(&line);
                    if tail.len() == TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(String::from_utf8_lossy(&line).into_owned());
                }
                // Not yet the deadline (or the grace's end), no interrupt.
                Err(mpsc::RecvTimeoutError::Timeout)
                    if Instant::now() < until && (grace.is_some() || !self.interrupt.is_raised()) => {}
                Err(mpsc::RecvTimeoutError::Timeout) if grace.is_none() => {
                    // Kill the container (all of it: `delete --force` kills
                    // what is left in its cgroup), then the runtime.
                    self.kill_container(&id);
                    let _ = child.kill();
                    grace = Some(Instant::now() + Duration::from_secs(10));
                }
                // Disconnected: every writer is gone. Or, after a timeout,
                // something still holds a pipe: stop reading regardless.
                Err(_) => break,
            }
        }
        let stopped = grace.is_some();
        if !stopped {
            for r in readers {
                let _ = r.join();
            }
        }
        let status = child.wait().map_err(|source| RunError::Spawn {
            runtime: runtime_name.clone(),
            source,
        })?;
        // The container is done: the watchdog need not kill it.
        if let Some(mut stdin) = watchdog.stdin.take() {
            use std::io::Write;
            let _ = stdin.write_all(b"done\n");
        }
        let _ = watchdog.wait();
        // Normally gone already; a killed or failed run may leave state.
        let _ = self
            .runtime()
            .args(["delete", "--force", &id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();

        let tail: Vec<String> = tail.into();
        // Interrupted: the container was killed, or the command ended
        // (perhaps of the same signal, sent to bake's whole process group)
        // while bake was being interrupted.
        if self.interrupt.is_raised() {
            return Err(RunError::Interrupted {
                index,
                command: command.to_owned(),
            });
        }
        if stopped {
            return Err(RunError::TimedOut {
                index,
                command: command.to_owned(),
                timeout,
                tail,
            });
        }
        if status.success() {
            return Ok(());
        }
        if let Some(message) = runtime_error(&log) {
            return Err(RunError::Runtime { index, message });
        }
        // runc exits with the process's code, or 128+N when a signal N killed it.
        let code = status.code().unwrap_or(-1);
        Err(RunError::Failed {
            index,
            command: command.to_owned(),
            code,
            tail,
        })
    }

    /// Kills the container `id` (all of it: `delete --force` kills what is
    /// left in its cgroup) and deletes it; best effort, quietly.
    fn kill_container(&self, id: &str) {
        for args in [&["kill", id, "KILL"][..], &["delete", "--force", id]] {
            let _ = self
                .runtime()
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Kills and deletes every container whose state is in this scratch
    /// directory: for the scratch directory of a bake that died. Best
    /// effort; the runtime's errors are ignored.
    pub fn kill_all(&self) {
        let state = self.work.join("state");
        let Ok(entries) = std::fs::read_dir(&state) else {
            return;
        };
        for e in entries.flatten() {
            let Some(id) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            self.kill_container(&id);
        }
    }

    /// A process that kills container `id` if bake dies while it runs
    /// (even by `kill -9`): a shell, in a process group of its own (a
    /// Ctrl-C of bake's group does not stop it), that reads a line from a
    /// pipe only this process writes. `done` means the container ended;
    /// end of file without it means bake is gone, and the shell kills the
    /// container (a few times, in case the runtime was still creating it;
    /// its init's death ends its PID namespace) and deletes its state.
    fn watchdog(&self, id: &str) -> Result<std::process::Child, RunError> {
        use std::os::unix::process::CommandExt;
        const SCRIPT: &str = "read line\n[ \"$line\" = done ] && exit 0\n\
            for i in 1 2 3 4 5; do \"$0\" --root \"$1\" kill \"$2\" KILL; sleep 1; done\n\
            exec \"$0\" --root \"$1\" delete --force \"$2\"\n";
        let mut cmd = Command::new("/bin/sh");
        if let Some(hold) = &self.hold {
            hold_in_child(&mut cmd, std::os::fd::AsRawFd::as_raw_fd(hold.as_ref()));
        }
        cmd.arg("-c")
            .arg(SCRIPT)
            .arg(&self.runtime)
            .arg(self.work.join("state"))
            .arg(id)
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| RunError::Spawn {
                runtime: "/bin/sh (the sandbox's watchdog)".to_owned(),
                source,
            })
    }

    /// A container id unique to this scratch directory and command (runtime
    /// state and cgroups are per id, and builds may run side by side).
    fn container_id(&self, index: usize) -> String {
        let work = std::path::absolute(&self.work).unwrap_or_else(|_| self.work.clone());
        let digest = bake_digest::Digest::of(work.as_os_str().as_encoded_bytes());
        format!("bake-{}-{index}", &digest.hex()[..16])
    }
}

/// Gives the process `c` spawns the open file `fd` as its fd 3 (without
/// close-on-exec), so a `flock` on it stays held while that process, or
/// what it execs, lives.
#[allow(unsafe_code)]
fn hold_in_child(c: &mut Command, fd: std::os::fd::RawFd) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only
    // calls dup2(2), which is async-signal-safe; `fd` stays open in the
    // parent until spawn returns (the caller holds the file).
    unsafe {
        c.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Makes the kernel kill the process `c` spawns when this thread's process
/// dies (`PR_SET_PDEATHSIG`), so a killed bake does not leave the runtime
/// running; the watchdog ([`Sandbox::watchdog`]) then kills the container.
#[allow(unsafe_code)]
fn die_with_parent(c: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec; it only
    // calls prctl(2) and getppid(2), which are async-signal-safe, and
    // allocates nothing.
    unsafe {
        c.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before the prctl took effect.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// The runtime's own error from its JSON log, if it failed itself (runc
/// ends with `runc run failed: …`; other error lines, such as cgroup
/// clean-up trouble, do not mean the command did not run).
fn runtime_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["level"] == "error" || v["level"] == "fatal")
        .filter_map(|v| v["msg"].as_str().map(str::to_owned))
        .find(|m| m.starts_with("runc ") && m.contains(" failed: "))
}

/// Sends each line of `r` (split at `\n`, or at [`MAX_LINE`] bytes) to `tx`.
fn read_lines<R: Read>(mut r: R, tx: &mpsc::Sender<Vec<u8>>) {
    let mut buf = [0u8; 8192];
    let mut line = Vec::new();
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                if tx.send(std::mem::take(&mut line)).is_err() {
                    return;
                }
            } else {
                line.push(b);
                if line.len() >= MAX_LINE && tx.send(std::mem::take(&mut line)).is_err() {
                    return;
                }
            }
        }
    }
    if !line.is_empty() {
        let _ = tx.send(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_the_last_one_flushed() {
        let (tx, rx) = mpsc::channel();
        let long = vec![b'x'; MAX_LINE + 5];
        let mut input = b"one\ntwo\n\n".to_vec();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\nlast");
        read_lines(&input[..], &tx);
        drop(tx);
        let lines: Vec<Vec<u8>> = rx.iter().collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[..3], [b"one".to_vec(), b"two".to_vec(), b"".to_vec()]);
        assert_eq!((lines[3].len(), lines[4].len()), (MAX_LINE, 5));
        assert_eq!(lines[5], b"last");
    }

    #[test]
    fn failures_show_the_tail_of_the_output() {
        let e = RunError::Failed {
            index: 1,
            command: "make".into(),
            code: 2,
            tail: vec!["cc -c x.c".into(), "x.c:1: error".into()],
        };
        assert_eq!(
            e.to_string(),
            "run[1] `make` failed with exit code 2; the last 2 lines of its output:\n  | cc -c x.c\n  | x.c:1: error"
        );
        let e = RunError::TimedOut {
            index: 0,
            command: "sleep 9".into(),
            timeout: Duration::from_secs(1),
            tail: vec![],
        };
        assert_eq!(
            e.to_string(),
            "run[0] `sleep 9` was still running after 1s and was killed (no output)"
        );
        let e = RunError::Runtime {
            index: 0,
            message: "mkdir /sys/fs/cgroup/x: permission denied".into(),
        };
        assert!(e.to_string().contains("privileged"), "{e}");
    }

    #[test]
    fn runtime_errors_come_from_the_json_log() {
        let t = tempfile::tempdir().unwrap();
        let log = t.path().join("log");
        fs_err::write(
            &log,
            "{\"level\":\"warning\",\"msg\":\"w\"}\n{\"level\":\"error\",\"msg\":\"Failed to remove cgroup\"}\n\
             {\"level\":\"error\",\"msg\":\"runc run failed: exec: \\\"/bin/sh\\\": no such file\"}\n",
        )
        .unwrap();
        assert_eq!(
            runtime_error(&log).as_deref(),
            Some("runc run failed: exec: \"/bin/sh\": no such file")
        );
        fs_err::write(
            &log,
            "{\"level\":\"error\",\"msg\":\"Failed to remove cgroup\"}\n",
        )
        .unwrap();
        assert_eq!(runtime_error(&log), None);
        assert_eq!(runtime_error(&t.path().join("none")), None);
    }

    /// A raised interrupt stops a running command within a poll or two: the
    /// runtime (here a stand-in that sleeps) is killed and the step fails
    /// as interrupted, not timed out or failed.
    #[test]
    fn an_interrupt_stops_a_running_command() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let runtime = t.path().join("fake-runc");
        fs_err::write(
            &runtime,
            "#!/bin/sh\ncase \"$*\" in *' run '*) echo started; exec /bin/sleep 600;; esac\nexit 0\n",
        )
        .unwrap();
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o755)).unwrap();
        let sandbox = Sandbox {
            runtime,
            work: t.path().join("work"),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            interrupt: Interrupt::default(),
            hold: None,
        };
        fs_err::create_dir_all(&sandbox.work).unwrap();
        let interrupt = sandbox.interrupt.clone();
        let started = Instant::now();
        let mut lines = Vec::new();
        let err = sandbox
            .run_one(
                0,
                "sleep 600",
                &oci_spec::runtime::Spec::default(),
                Instant::now() + Duration::from_secs(60),
                Duration::from_secs(60),
                &mut |line| {
                    lines.push(line.to_vec());
                    interrupt.raise();
                },
            )
            .unwrap_err();
        assert!(matches!(err, RunError::Interrupted { index: 0, .. }), "{err}");
        assert_eq!(lines, [b"started".to_vec()]);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            err.to_string(),
            "run[0] `sleep 600` was interrupted and its sandbox stopped"
        );
    }

    #[test]
    fn a_missing_runtime_says_what_to_install() {
        let t = tempfile::tempdir().unwrap();
        let sandbox = Sandbox {
            runtime: PathBuf::from("bake-no-such-runtime"),
            work: t.path().join("work"),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            interrupt: Interrupt::default(),
            hold: None,
        };
        fs_err::create_dir_all(&sandbox.work).unwrap();
        let spec = oci_spec::runtime::Spec::default();
        assert!(
            sandbox
                .check()
                .unwrap_err()
                .to_string()
                .contains("apt-get install runc")
        );
        let err = sandbox
            .run_one(
                0,
                "true",
                &spec,
                Instant::now() + Duration::from_secs(5),
                Duration::from_secs(5),
                &mut |_| {},
            )
            .unwrap_err();
        assert!(err.to_string().contains("apt-get install runc"), "{err}");
    }
}
