//! A real `docker-registry` process on loopback.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use fs_err as fs;

use crate::proxy::{FaultPlan, FaultProxy, RequestKind};

/// How to start a [`TestRegistry`].
#[derive(Debug, Clone, Default)]
pub struct TestRegistryOptions {
    /// Require these basic-auth credentials (an htpasswd file with a bcrypt
    /// hash is written for the registry).
    pub htpasswd: Option<(String, String)>,
}

/// A `docker-registry serve` process on `127.0.0.1` with its own config and
/// temporary storage, reached through a counting [`FaultProxy`] (no faults)
/// so tests can count requests by kind. Killed on drop.
pub struct TestRegistry {
    child: Child,
    direct: SocketAddr,
    proxy: FaultProxy,
    dir: tempfile::TempDir,
    auth: Option<(String, String)>,
}

impl TestRegistry {
    /// Starts the registry and waits (up to 20 s) until `/v2/` answers.
    pub fn start(opts: TestRegistryOptions) -> io::Result<TestRegistry> {
        let binary = "docker-registry";
        let dir = tempfile::Builder::new().prefix("bake-test-registry-").tempdir()?;
        let storage = dir.path().join("storage");
        fs::create_dir_all(&storage)?;
        let mut auth_yaml = String::new();
        if let Some((user, pass)) = &opts.htpasswd {
            // bcrypt cost 5 keeps registry-side verification fast in tests.
            let hash = bcrypt::hash(pass, 5).map_err(|e| io::Error::other(format!("bcrypt: {e}")))?;
            let htpasswd = dir.path().join("htpasswd");
            fs::write(&htpasswd, format!("{user}:{hash}\n"))?;
            auth_yaml = format!(
                "auth:\n  htpasswd:\n    realm: bake-test-registry\n    path: {}\n",
                htpasswd.display()
            );
        }
        let mut last_error = None;
        // The free port may be taken between our probe and the registry's
        // bind: try a few.
        for _ in 0..3 {
            let port = free_port()?;
            let direct: SocketAddr = ([127, 0, 0, 1], port).into();
            let config = dir.path().join("config.yml");
            fs::write(
                &config,
                format!(
                    "version: 0.1\n\
                     log:\n  level: info\n  formatter: text\n\
                     storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n  \
                     maintenance:\n    uploadpurging:\n      enabled: false\n\
                     http:\n  addr: {direct}\n  secret: bake-testkit-not-a-secret\n\
                     health:\n  storagedriver:\n    enabled: false\n\
                     {auth_yaml}",
                    storage = storage.display(),
                ),
            )?;
            let log = fs::File::create(dir.path().join("registry.log"))?;
            let child = Command::new(binary)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?.into_parts().0)
                .stderr(log.into_parts().0)
                .spawn()
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot run {binary} (Debian package docker-registry): {e}"),
                    )
                })?;
            let mut child = child;
            match wait_ready(&mut child, direct, Duration::from_secs(20)) {
                Ok(()) => {
                    let proxy = FaultProxy::start(&direct.to_string(), FaultPlan::new())?;
                    return Ok(TestRegistry {
                        child,
                        direct,
                        proxy,
                        dir,
                        auth: opts.htpasswd.clone(),
                    });
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
                    last_error = Some(io::Error::new(e.kind(), format!("{e}; registry log:\n{log}")));
                }
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("the registry did not start")))
    }

    /// The address clients should use (the counting proxy).
    pub fn addr(&self) -> SocketAddr {
        self.proxy.addr()
    }

    /// `127.0.0.1:PORT` of [`TestRegistry::addr`], for references.
    pub fn host(&self) -> String {
        self.proxy.host()
    }

    /// The registry process itself, bypassing the counting proxy (put your
    /// own [`FaultProxy`] in front of this).
    pub fn direct_host(&self) -> String {
        self.direct.to_string()
    }

    /// The registry's filesystem storage root.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The registry's own log (stdout and stderr).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Requests of `kind` that went through [`TestRegistry::host`].
    pub fn count(&self, kind: RequestKind) -> usize {
        self.proxy.count(kind)
    }

    /// The counting proxy, for counts, its request log and resets.
    pub fn proxy(&self) -> &FaultProxy {
        &self.proxy
    }

    pub fn reset_counts(&self) {
        self.proxy.reset_counts();
    }

    /// The tags of `repository`, asked directly (uncounted, with the
    /// registry's own credentials): empty if the repository is unknown.
    pub fn tags(&self, repository: &str) -> io::Result<Vec<String>> {
        let (status, body) = self.get(&format!("/v2/{repository}/tags/list"))?;
        if status == 404 {
            return Ok(Vec::new());
        }
        if status != 200 {
            return Err(io::Error::other(format!("tags/list answered {status}: {body}")));
        }
        let v: serde_json::Value = serde_json::from_str(&body).map_err(io::Error::other)?;
        Ok(v["tags"]
            .as_array()
            .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
            .unwrap_or_default())
    }

    /// A plain GET to the registry itself: (status, body).
    pub fn get(&self, path: &str) -> io::Result<(u16, String)> {
        http_get(self.direct, path, self.auth.as_ref())
    }

    /// The status of a HEAD on `repository`'s manifest `reference` (a tag
    /// or digest), asked directly (uncounted, with the registry's own
    /// credentials), accepting every OCI and Docker manifest type: 200 if
    /// it exists, 404 if not.
    pub fn manifest_status(&self, repository: &str, reference: &str) -> io::Result<u16> {
        let accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
                      application/vnd.docker.distribution.manifest.v2+json, \
                      application/vnd.docker.distribution.manifest.list.v2+json";
        let (status, _) = http_request(
            self.direct,
            "HEAD",
            &format!("/v2/{repository}/manifests/{reference}"),
            &[("Accept", accept)],
            self.auth.as_ref(),
        )?;
        Ok(status)
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_ready(child: &mut Child, addr: SocketAddr, timeout: Duration) -> io::Result<()> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(io::Error::other(format!(
                "docker-registry exited early with {status}"
            )));
        }
        if let Ok((status, _)) = http_get(addr, "/v2/", None) {
            if status == 200 || status == 401 {
                return Ok(());
            }
        }
        if start.elapsed() > timeout {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("docker-registry did not answer on {addr} within {timeout:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A minimal HTTP/1.0 GET (no keep-alive, whole body).
fn http_get(addr: SocketAddr, path: &str, auth: Option<&(String, String)>) -> io::Result<(u16, String)> {
    http_request(addr, "GET", path, &[], auth)
}

/// A minimal HTTP/1.0 request without a body (no keep-alive, whole answer).
fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    auth: Option<&(String, String)>,
) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some((u, p)) = auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        request.push_str(&format!("Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other("not an HTTP response"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Writes `dir/config.json` with one `auths` entry for `host` (creating
/// `dir`), as `docker login` would.
pub fn write_docker_config(dir: &Path, host: &str, user: &str, pass: &str) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    let json = serde_json::json!({ "auths": { host: { "auth": auth } } });
    fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&json).map_err(io::Error::other)?,
    )
}
