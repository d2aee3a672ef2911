//! The OCI runtime bundle's `config.json` for one command, built with
//! oci-spec's runtime types.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespaceType, Mount, MountBuilder,
    PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec, UserBuilder, get_default_mounts,
    get_default_namespaces,
};

use crate::RunError;
use crate::user::Identity;

/// The hostname every command sees.
pub const HOSTNAME: &str = "bake";
/// `PATH` unless the step's `env` sets it (Debian's default for root).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where the sandbox mounts something over the root filesystem; what the
/// runtime creates there is not part of the layer.
pub const MOUNT_POINTS: &[&str] = &["proc", "dev", "sys", "tmp"];
pub const RESOLV_CONF: &str = "etc/resolv.conf";

/// Docker's default capabilities without `MKNOD` (device nodes cannot be
/// stored) and `NET_RAW`: what package scripts and build tools expect of
/// root (chown, chmod of others' files, setuid helpers).
const CAPABILITIES: &[Capability] = &[
    Capability::AuditWrite,
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::NetBindService,
    Capability::Setfcap,
    Capability::Setgid,
    Capability::Setpcap,
    Capability::Setuid,
    Capability::SysChroot,
];

/// Everything one command's bundle depends on.
pub struct Bundle<'a> {
    pub rootfs: &'a Path,
    pub command: &'a str,
    pub identity: &'a Identity,
    pub env: &'a BTreeMap<String, String>,
    pub workdir: &'a str,
    pub epoch: u64,
    pub network: bool,
    /// The host's resolv.conf to bind read-only at `/etc/resolv.conf`.
    pub resolv_conf: Option<&'a Path>,
}

/// The process environment: `PATH`, `HOME`, then the step's `env` (which
/// may replace them), then `SOURCE_DATE_EPOCH`; nothing from the host.
pub fn environment(identity: &Identity, env: &BTreeMap<String, String>, epoch: u64) -> Vec<String> {
    let mut all: BTreeMap<&str, String> = BTreeMap::new();
    all.insert("PATH", DEFAULT_PATH.to_owned());
    all.insert("HOME", identity.home.clone());
    for (k, v) in env {
        all.insert(k, v.clone());
    }
    all.insert("SOURCE_DATE_EPOCH", epoch.to_string());
    all.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// The `sh -c` script for a command: stderr joined to stdout first, because
/// the runtime copies the two through separate pipes and their order would
/// be lost (a build log reads best in the order things happened).
pub fn script(command: &str) -> String {
    format!("exec 2>&1\n{command}")
}

fn spec_err(e: impl std::fmt::Display) -> RunError {
    RunError::Spec(e.to_string())
}

/// The runtime spec: `/bin/sh -c COMMAND` (see [`script`]), no terminal, fixed hostname and
/// environment, a new network namespace (only loopback) unless `network`,
/// writable root, a fresh `/tmp`, rlimits NOFILE and NPROC 1024, runc's
/// default mounts, namespaces and masked paths.
pub fn spec(b: &Bundle<'_>) -> Result<Spec, RunError> {
    let caps: oci_spec::runtime::Capabilities = CAPABILITIES.iter().copied().collect();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .build()
        .map_err(spec_err)?;
    let rlimit = |typ| {
        PosixRlimitBuilder::default()
            .typ(typ)
            .soft(1024u64)
            .hard(1024u64)
            .build()
            .map_err(spec_err)
    };
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(
            UserBuilder::default()
                .uid(b.identity.uid)
                .gid(b.identity.gid)
                // Explicit, so files the commands create never depend on
                // the runtime's (or the host's) default.
                .umask(0o022u32)
                .build()
                .map_err(spec_err)?,
        )
        .args(vec!["/bin/sh".to_owned(), "-c".to_owned(), script(b.command)])
        .env(environment(b.identity, b.env, b.epoch))
        .cwd(b.workdir)
        .no_new_privileges(true)
        .capabilities(capabilities)
        .rlimits(vec![
            rlimit(PosixRlimitType::RlimitNofile)?,
            rlimit(PosixRlimitType::RlimitNproc)?,
        ])
        .build()
        .map_err(spec_err)?;

    let mut mounts: Vec<Mount> = get_default_mounts();
    mounts.push(
        MountBuilder::default()
            .destination("/tmp")
            .typ("tmpfs")
            .source("tmpfs")
            .options(vec![
                "nosuid".to_owned(),
                "nodev".to_owned(),
                "mode=1777".to_owned(),
            ])
            .build()
            .map_err(spec_err)?,
    );
    if let Some(resolv) = b.resolv_conf {
        mounts.push(
            MountBuilder::default()
                .destination(format!("/{RESOLV_CONF}"))
                .typ("bind")
                .source(resolv)
                .options(vec!["rbind".to_owned(), "ro".to_owned()])
                .build()
                .map_err(spec_err)?,
        );
    }

    let mut namespaces = get_default_namespaces();
    if b.network {
        namespaces.retain(|ns| ns.typ() != LinuxNamespaceType::Network);
    }
    let defaults = oci_spec::runtime::Linux::default();
    let mut linux = LinuxBuilder::default().namespaces(namespaces);
    if let Some(masked) = defaults.masked_paths() {
        linux = linux.masked_paths(masked.clone());
    }
    if let Some(readonly) = defaults.readonly_paths() {
        linux = linux.readonly_paths(readonly.clone());
    }
    let linux = linux.build().map_err(spec_err)?;

    let mut spec = Spec::default();
    spec.set_hostname(Some(HOSTNAME.to_owned()));
    spec.set_root(Some(
        RootBuilder::default()
            .path(PathBuf::from(b.rootfs))
            .readonly(false)
            .build()
            .map_err(spec_err)?,
    ));
    spec.set_process(Some(process));
    spec.set_mounts(Some(mounts));
    spec.set_linux(Some(linux));
    spec.set_annotations(None);
    Ok(spec)
}

/// What the sandbox does at a path of the image.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Mount,
    BindFile,
    Cwd,
}

impl Use {
    /// For an error about `at`, a component of `path`.
    fn describe(self, path: &Path, last: bool) -> String {
        let (what, there) = match self {
            Use::Mount => ("the sandbox mounts a filesystem", "there"),
            Use::BindFile => ("the sandbox binds a file", "there"),
            Use::Cwd => ("the commands start", "in it"),
        };
        if last {
            format!("{what} {there}")
        } else {
            let prep = if self == Use::Cwd { "in" } else { "at" };
            format!("{what} {prep} {}", path.display())
        }
    }
}

/// A link target for an error: escaped, at most 100 characters.
fn excerpt(target: &Path) -> String {
    let text = target.to_string_lossy();
    let cut: String = text.chars().take(100).collect();
    let more = if cut.len() < text.len() { "…" } else { "" };
    format!("{cut:?}{more}")
}

/// Checks, without following any link, every path of the root filesystem
/// the runtime will mount onto or create before the commands run: each
/// mount destination of `spec` that is not inside another of its mounts
/// (`/dev/pts` lives in the `/dev` tmpfs, not in the image), and the
/// working directory. Component by component from `rootfs`, each existing
/// one must be a real directory (the last a regular file where a file is
/// bound); what does not exist is left for the runtime to create, which
/// stays below the checked directories. A link here would make the runtime,
/// running as root on the host, create or mount things where it leads.
pub fn check_root(rootfs: &Path, spec: &Spec) -> Result<(), RunError> {
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let inside_another = |dest: &Path, upto: usize| {
        mounts[..upto]
            .iter()
            .any(|o| dest != o.destination() && dest.starts_with(o.destination()))
    };
    for (i, m) in mounts.iter().enumerate() {
        let dest = m.destination();
        if inside_another(dest, i) {
            continue;
        }
        // The runtime binds a file over a file, a directory over a directory.
        let file = m.typ().as_deref() == Some("bind") && m.source().as_deref().is_some_and(|s| !s.is_dir());
        check_path(rootfs, dest, if file { Use::BindFile } else { Use::Mount })?;
    }
    if let Some(cwd) = spec.process().as_ref().map(|p| p.cwd()) {
        // Below a mount, the directory is made in that filesystem.
        let outer = mounts.iter().find(|o| cwd.starts_with(o.destination()));
        match outer {
            Some(o) => check_path(rootfs, o.destination(), Use::Mount)?,
            None => check_path(rootfs, cwd, Use::Cwd)?,
        }
    }
    Ok(())
}

/// [`check_root`] for one image path.
fn check_path(rootfs: &Path, path: &Path, use_: Use) -> Result<(), RunError> {
    use std::path::Component;
    let parts: Vec<&std::ffi::OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(Ok(n)),
            Component::RootDir | Component::CurDir => None,
            _ => Some(Err(())),
        })
        .collect::<Result<_, ()>>()
        .map_err(|()| {
            RunError::Spec(format!(
                "{}: the path must be absolute without `..`",
                path.display()
            ))
        })?;
    let mut host = rootfs.to_path_buf();
    let mut image = String::new();
    for (n, part) in parts.iter().enumerate() {
        host.push(part);
        image.push('/');
        image.push_str(&part.to_string_lossy());
        let last = n + 1 == parts.len();
        let m = match std::fs::symlink_metadata(&host) {
            Ok(m) => m,
            // The runtime creates it and what follows, below real directories.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(RunError::io(&host)(e)),
        };
        let why = use_.describe(path, last);
        if m.file_type().is_symlink() {
            let to = std::fs::read_link(&host).map_err(RunError::io(&host))?;
            return Err(RunError::RootLink {
                path: image,
                target: excerpt(&to),
                why,
            });
        }
        let want_file = use_ == Use::BindFile && last;
        if want_file && !m.is_file() || !want_file && !m.is_dir() {
            return Err(RunError::RootKind {
                path: image,
                kind: if want_file {
                    "a regular file"
                } else {
                    "a directory"
                },
                why,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn json(network: bool, resolv: Option<&Path>) -> serde_json::Value {
        let identity = Identity {
            uid: 1000,
            gid: 1001,
            home: "/home/app".into(),
        };
        let env = BTreeMap::from([
            ("PATH".to_owned(), "/bin".to_owned()),
            ("A".to_owned(), "1".to_owned()),
        ]);
        let s = spec(&Bundle {
            rootfs: Path::new("/work/rootfs"),
            command: "echo hi",
            identity: &identity,
            env: &env,
            workdir: "/src",
            epoch: 1_700_000_000,
            network,
            resolv_conf: resolv,
        })
        .unwrap();
        serde_json::to_value(&s).unwrap()
    }

    #[test]
    fn the_process_is_fixed() {
        let v = json(false, None);
        assert_eq!(v["hostname"], "bake");
        assert_eq!(
            v["root"],
            serde_json::json!({"path": "/work/rootfs", "readonly": false})
        );
        let p = &v["process"];
        assert_eq!(p["terminal"], false);
        assert_eq!(
            p["args"],
            serde_json::json!(["/bin/sh", "-c", "exec 2>&1\necho hi"])
        );
        assert_eq!(
            p["env"],
            serde_json::json!([
                "A=1",
                "HOME=/home/app",
                "PATH=/bin",
                "SOURCE_DATE_EPOCH=1700000000"
            ])
        );
        assert_eq!(p["cwd"], "/src");
        assert_eq!(
            p["user"],
            serde_json::json!({"uid": 1000, "gid": 1001, "umask": 0o022})
        );
        let rlimits = p["rlimits"].as_array().unwrap();
        assert!(rlimits.contains(&serde_json::json!({"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024})));
        assert!(rlimits.contains(&serde_json::json!({"type": "RLIMIT_NPROC", "hard": 1024, "soft": 1024})));
        let caps = p["capabilities"]["effective"].as_array().unwrap();
        assert!(caps.contains(&"CAP_CHOWN".into()));
        assert!(!caps.contains(&"CAP_MKNOD".into()) && !caps.contains(&"CAP_SYS_ADMIN".into()));
        assert!(!v["linux"]["maskedPaths"].as_array().unwrap().is_empty());
    }

    #[test]
    fn network_is_a_namespace_of_its_own_unless_asked() {
        let has_netns = |v: &serde_json::Value| {
            v["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["type"] == "network")
        };
        assert!(has_netns(&json(false, None)));
        let v = json(true, Some(Path::new("/etc/resolv.conf")));
        assert!(!has_netns(&v));
        let mounts = v["mounts"].as_array().unwrap();
        let dests: Vec<&str> = mounts
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        for d in ["/proc", "/dev", "/sys", "/tmp", "/etc/resolv.conf"] {
            assert!(dests.contains(&d), "{d} in {dests:?}");
        }
    }

    fn spec_in(root: &Path, workdir: &str, resolv: Option<&Path>) -> Spec {
        let identity = Identity {
            uid: 0,
            gid: 0,
            home: "/root".into(),
        };
        spec(&Bundle {
            rootfs: root,
            command: "true",
            identity: &identity,
            env: &BTreeMap::new(),
            workdir,
            epoch: 0,
            network: resolv.is_some(),
            resolv_conf: resolv,
        })
        .unwrap()
    }

    #[test]
    fn links_where_the_sandbox_mounts_or_starts_are_refused() {
        use std::os::unix::fs::symlink;
        let host = tempfile::tempdir().unwrap();
        let resolv = host.path().join("resolv.conf");
        fs_err::write(&resolv, "nameserver 127.0.0.1\n").unwrap();
        let fresh = || {
            let t = tempfile::tempdir().unwrap();
            fs_err::create_dir(t.path().join("etc")).unwrap();
            t
        };
        // Nothing there yet, or real directories: fine; /dev/pts is in the
        // /dev tmpfs, the image's own does not matter.
        let t = fresh();
        fs_err::create_dir_all(t.path().join("dev")).unwrap();
        symlink("/", t.path().join("dev/pts")).unwrap();
        check_root(t.path(), &spec_in(t.path(), "/src/app", Some(&resolv))).unwrap();
        // The work directory below /tmp is made in its tmpfs.
        symlink("/", t.path().join("tmp")).unwrap();
        let e = check_root(t.path(), &spec_in(t.path(), "/tmp/x", None)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "run step: /tmp in the image is a symlink (to \"/\"): the sandbox mounts a filesystem there"
        );

        for (link, target, workdir, want) in [
            (
                "dev",
                "../../..",
                "/",
                "run step: /dev in the image is a symlink (to \"../../..\"): the sandbox mounts a filesystem there",
            ),
            ("proc", "/host", "/", "run step: /proc in the image is a symlink"),
            ("sys", "/host", "/", "run step: /sys in the image is a symlink"),
            (
                "src",
                "/host",
                "/src/app",
                "run step: /src in the image is a symlink (to \"/host\"): the commands start in /src/app",
            ),
            (
                "app",
                "/host",
                "/app",
                "run step: /app in the image is a symlink (to \"/host\"): the commands start in it",
            ),
            (
                "etc/resolv.conf",
                "/host/x",
                "/",
                "run step: /etc/resolv.conf in the image is a symlink (to \"/host/x\"): the sandbox binds a file there",
            ),
        ] {
            let t = fresh();
            symlink(target, t.path().join(link)).unwrap();
            let e = check_root(t.path(), &spec_in(t.path(), workdir, Some(&resolv))).unwrap_err();
            assert!(e.to_string().starts_with(want), "{link}: {e}");
        }
        // /etc itself, with network: the file would be bound below it.
        let t = tempfile::tempdir().unwrap();
        symlink("/etc", t.path().join("etc")).unwrap();
        let e = check_root(t.path(), &spec_in(t.path(), "/", Some(&resolv))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "run step: /etc in the image is a symlink (to \"/etc\"): the sandbox binds a file at /etc/resolv.conf"
        );
        // Not a directory; not a file; a long target is cut.
        let t = fresh();
        fs_err::write(t.path().join("dev"), "").unwrap();
        fs_err::create_dir(t.path().join("etc/resolv.conf")).unwrap();
        let e = check_root(t.path(), &spec_in(t.path(), "/", None)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "run step: /dev in the image is not a directory: the sandbox mounts a filesystem there"
        );
        fs_err::remove_file(t.path().join("dev")).unwrap();
        let e = check_root(t.path(), &spec_in(t.path(), "/", Some(&resolv))).unwrap_err();
        assert!(
            e.to_string()
                .contains("/etc/resolv.conf in the image is not a regular file"),
            "{e}"
        );
        let t = fresh();
        symlink(format!("/{}\n", "x".repeat(300)), t.path().join("sys")).unwrap();
        let e = check_root(t.path(), &spec_in(t.path(), "/", None))
            .unwrap_err()
            .to_string();
        assert!(e.len() < 250 && !e.contains('\n') && e.contains("xxx\"…"), "{e}");
    }
}
