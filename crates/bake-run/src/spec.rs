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
}
