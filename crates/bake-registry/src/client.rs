//! The registry client: transport choice, credentials, the token dance
//! (through oci-client), and sending one request with auth and error
//! classification. Push and pull build on it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use base64::Engine as _;
use oci_client::RegistryOperation;
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{StatusCode, Url};
use tokio::sync::Mutex;

use crate::auth::{Credentials, DockerConfig};
use crate::error::ApiErrors;
use crate::retry::{Deadline, Failure, RetryPolicy, parse_retry_after, retryable_status};
use crate::{Reference, RegistryError};

pub(crate) const USER_AGENT: &str = concat!("bake/", env!("CARGO_PKG_VERSION"));

/// Everything a [`Registry`] needs from its caller. This crate reads no
/// environment variable and no default path: the CLI resolves
/// `$DOCKER_CONFIG`/`~/.docker` and `--insecure-registry` and passes them.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Where credentials come from ([`DockerConfig::default`]: anonymous).
    pub docker_config: DockerConfig,
    /// Registries reached over plain HTTP besides loopback ones: `host` or
    /// `host:port`, as written in references.
    pub insecure_registries: Vec<String>,
    pub retry: RetryPolicy,
    /// Blobs transferred at once during a push or pull.
    pub max_concurrent_transfers: usize,
}

impl Default for RegistryOptions {
    fn default() -> RegistryOptions {
        RegistryOptions {
            docker_config: DockerConfig::default(),
            insecure_registries: Vec::new(),
            retry: RetryPolicy::default(),
            max_concurrent_transfers: 3,
        }
    }
}

/// Whether `registry` (a reference's host\[:port\]) is reached over plain
/// HTTP: loopback hosts (`127.0.0.0/8`, `localhost`, `::1`) and those listed
/// as insecure, by `host:port` or by `host` alone.
pub fn uses_plain_http(registry: &str, insecure: &[String]) -> bool {
    let host = registry_host(registry);
    if insecure.iter().any(|i| i == registry || i == host) {
        return true;
    }
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => v6 == Ipv6Addr::LOCALHOST,
        Err(_) => false,
    }
}

/// `127.0.0.1:5000` → `127.0.0.1`, `[::1]:5000` → `::1`, `ghcr.io` → `ghcr.io`.
fn registry_host(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.split(':').next().unwrap_or(registry)
}

/// A client for OCI registries. Cheap to clone; one per process is enough.
///
/// It keeps, per registry, the credentials resolved from the docker config
/// (resolved once, on first use) and the `Authorization` value per
/// repository and operation (refreshed once when the registry answers 401).
#[derive(Clone)]
pub struct Registry {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub http: reqwest::Client,
    pub opts: RegistryOptions,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
}

/// What we know about one registry.
pub(crate) struct Host {
    pub registry: String,
    /// `http://127.0.0.1:5000`, `https://index.docker.io`.
    pub base: Url,
    oci: oci_client::Client,
    creds: Option<Credentials>,
    /// Where `creds` came from, for error messages.
    creds_source: String,
    auth: Mutex<HashMap<(String, Op), Option<HeaderValue>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Op {
    Pull,
    Push,
}

impl From<Op> for RegistryOperation {
    fn from(op: Op) -> RegistryOperation {
        match op {
            Op::Pull => RegistryOperation::Pull,
            Op::Push => RegistryOperation::Push,
        }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("options", &self.inner.opts)
            .finish()
    }
}

/// What a request is, for error messages: "cannot {action} {reference}".
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub action: &'a str,
    pub reference: &'a str,
}

impl Registry {
    pub fn new(opts: RegistryOptions) -> Result<Registry, RegistryError> {
        // Redirects (blob downloads to a CDN): reqwest drops the
        // Authorization header on any change of host, port or scheme; we
        // also refuse a step down from HTTPS to plain HTTP.
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            let down = attempt.previous().last().is_some_and(|p| p.scheme() == "https")
                && attempt.url().scheme() != "https";
            if down {
                attempt.error("a redirect from HTTPS to plain HTTP")
            } else if attempt.previous().len() >= 10 {
                attempt.error("more than 10 redirects")
            } else {
                attempt.follow()
            }
        });
        let http = reqwest::Client::builder()
            .redirect(redirects)
            .connect_timeout(opts.retry.connect_timeout)
            .read_timeout(opts.retry.read_timeout)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| RegistryError::Network {
                action: "set up the HTTP client for".into(),
                reference: "registries".into(),
                reason: describe(&e),
                attempts: 1,
            })?;
        Ok(Registry {
            inner: Arc::new(Inner {
                http,
                opts,
                hosts: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The HTTP client every request goes through.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    pub(crate) fn policy(&self) -> &RetryPolicy {
        &self.inner.opts.retry
    }

    pub(crate) async fn host(&self, registry: &str) -> Result<Arc<Host>, RegistryError> {
        let mut hosts = self.inner.hosts.lock().await;
        if let Some(h) = hosts.get(registry) {
            return Ok(h.clone());
        }
        let config = self.inner.opts.docker_config.clone();
        let name = registry.to_owned();
        // Credential helpers are processes: keep them off the async threads.
        let found = tokio::task::spawn_blocking(move || config.lookup(&name))
            .await
            .map_err(|e| RegistryError::CredentialHelper {
                helper: "(lookup)".into(),
                registry: registry.to_owned(),
                reason: e.to_string(),
            })??;
        let (creds, creds_source) = match found {
            Some((c, src)) => (Some(c), src),
            None => (
                None,
                match self.inner.opts.docker_config.path() {
                    Some(p) => format!("no credentials for {registry} in {}", p.display()),
                    None => "no docker config given, so no credentials".to_owned(),
                },
            ),
        };
        let plain = uses_plain_http(registry, &self.inner.opts.insecure_registries);
        let api_host = crate::reference::api_host(registry);
        let scheme = if plain { "http" } else { "https" };
        let base =
            Url::parse(&format!("{scheme}://{api_host}/")).map_err(|e| RegistryError::InvalidReference {
                input: registry.to_owned(),
                reason: format!("not a usable registry host: {e}"),
            })?;
        let oci = oci_client::Client::new(oci_client::client::ClientConfig {
            protocol: if plain {
                oci_client::client::ClientProtocol::Http
            } else {
                oci_client::client::ClientProtocol::Https
            },
            platform_resolver: None,
            connect_timeout: Some(self.policy().connect_timeout),
            read_timeout: Some(self.policy().read_timeout),
            user_agent: USER_AGENT,
            ..Default::default()
        });
        let host = Arc::new(Host {
            registry: registry.to_owned(),
            base,
            oci,
            creds,
            creds_source,
            auth: Mutex::new(HashMap::new()),
        });
        hosts.insert(registry.to_owned(), host.clone());
        Ok(host)
    }

    /// `{base}/v2/{repo}/{rest}`.
    pub(crate) fn url(&self, host: &Host, repo: &str, rest: &str) -> Result<Url, RegistryError> {
        host.base
            .join(&format!("v2/{repo}/{rest}"))
            .map_err(|e| RegistryError::InvalidReference {
                input: format!("{}/{repo}", host.registry),
                reason: e.to_string(),
            })
    }

    /// The `Authorization` value for `repo`/`op`, from the cache unless
    /// `refresh`. The challenge and token exchange is oci-client's
    /// [`oci_client::Client::auth`], except for OAuth2 refresh tokens
    /// (docker's `identitytoken`), which it does not support.
    async fn authorization(
        &self,
        host: &Host,
        repo: &str,
        op: Op,
        refresh: bool,
        ctx: Ctx<'_>,
    ) -> Result<Option<HeaderValue>, Failure> {
        let key = (repo.to_owned(), op);
        // Held while a token is fetched, so concurrent transfers wait for
        // one token instead of each fetching their own.
        let mut cache = host.auth.lock().await;
        if !refresh {
            if let Some(v) = cache.get(&key) {
                return Ok(v.clone());
            }
        }
        let value = match &host.creds {
            Some(Credentials::RegistryToken(token)) => Some(secret_header(&format!("Bearer {token}"))),
            Some(Credentials::IdentityToken(token)) => {
                let access = self.exchange_refresh_token(host, repo, op, token, ctx).await?;
                Some(secret_header(&format!("Bearer {access}")))
            }
            creds => {
                let auth = match creds {
                    Some(Credentials::Basic { username, password }) => {
                        RegistryAuth::Basic(username.clone(), password.clone())
                    }
                    _ => RegistryAuth::Anonymous,
                };
                if matches!(creds, Some(Credentials::Basic { .. })) {
                    // oci-client sends the password to whatever realm the
                    // challenge names: look at it first.
                    self.check_realm(host, ctx).await?;
                }
                let oref =
                    oci_client::Reference::with_tag(host.registry.clone(), repo.to_owned(), "latest".into());
                match host.oci.auth(&oref, &auth, op.into()).await {
                    Ok(Some(token)) => Some(secret_header(&format!("Bearer {token}"))),
                    // A basic challenge, or none: send basic credentials if we have them.
                    Ok(None) => match creds {
                        Some(Credentials::Basic { username, password }) => {
                            let raw = base64::engine::general_purpose::STANDARD
                                .encode(format!("{username}:{password}"));
                            Some(secret_header(&format!("Basic {raw}")))
                        }
                        _ => None,
                    },
                    Err(e) => return Err(self.oci_auth_failure(host, e, ctx)),
                }
            }
        };
        cache.insert(key, value.clone());
        Ok(value)
    }

    fn oci_auth_failure(&self, host: &Host, e: OciDistributionError, ctx: Ctx<'_>) -> Failure {
        match e {
            OciDistributionError::RequestError(e) => network_failure(e, ctx),
            OciDistributionError::AuthenticationFailure(body) => {
                Failure::fatal(RegistryError::Unauthorized {
                    reference: ctx.reference.to_owned(),
                    registry: host.registry.clone(),
                    detail: format!(
                        "its token service refused the credentials: {}",
                        ApiErrors::parse(body.as_bytes())
                    ),
                    credentials: host.creds_source.clone(),
                })
            }
            other => Failure::fatal(RegistryError::Unauthorized {
                reference: ctx.reference.to_owned(),
                registry: host.registry.clone(),
                detail: format!("a challenge we could not answer: {other}"),
                credentials: host.creds_source.clone(),
            }),
        }
    }

    /// The bearer challenge the registry's `/v2/` answers with, if any.
    async fn bearer_challenge(&self, host: &Host, ctx: Ctx<'_>) -> Result<Option<BearerChallenge>, Failure> {
        let ping = host
            .base
            .join("v2/")
            .map_err(|e| Failure::fatal(invalid_url(host, e)))?;
        let resp = self
            .inner
            .http
            .get(ping)
            .send()
            .await
            .map_err(|e| network_failure(e, ctx))?;
        Ok(resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_bearer_challenge))
    }

    /// Refuses a bearer challenge whose realm would take our password over
    /// plain HTTP from an HTTPS registry (or to a scheme other than HTTP(S)).
    /// Another HTTPS host is fine: token services often live elsewhere
    /// (`auth.docker.io` for Docker Hub).
    async fn check_realm(&self, host: &Host, ctx: Ctx<'_>) -> Result<(), Failure> {
        let Some(challenge) = self.bearer_challenge(host, ctx).await? else {
            return Ok(());
        };
        let allowed = Url::parse(&challenge.realm)
            .is_ok_and(|realm| may_send_to(&realm, &host.base, &self.inner.opts.insecure_registries));
        if allowed {
            return Ok(());
        }
        Err(Failure::fatal(RegistryError::Unauthorized {
            reference: ctx.reference.to_owned(),
            registry: host.registry.clone(),
            detail: format!(
                "its token realm {:?} is not an HTTPS URL: the password is not sent there",
                crate::error::clean_text(&challenge.realm, 200)
            ),
            credentials: host.creds_source.clone(),
        }))
    }

    /// OAuth2 refresh-token grant at the realm of the registry's bearer
    /// challenge, as docker does with an `identitytoken`.
    async fn exchange_refresh_token(
        &self,
        host: &Host,
        repo: &str,
        op: Op,
        refresh_token: &str,
        ctx: Ctx<'_>,
    ) -> Result<String, Failure> {
        let challenge = self.bearer_challenge(host, ctx).await?.ok_or_else(|| {
            Failure::fatal(RegistryError::Unauthorized {
                reference: ctx.reference.to_owned(),
                registry: host.registry.clone(),
                detail: "no bearer challenge, which an identity token needs".into(),
                credentials: host.creds_source.clone(),
            })
        })?;
        let scope = match op {
            Op::Pull => format!("repository:{repo}:pull"),
            Op::Push => format!("repository:{repo}:pull,push"),
        };
        let mut form =
            Url::parse("http://form.invalid/").map_err(|e| Failure::fatal(invalid_url(host, e)))?;
        form.query_pairs_mut()
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", refresh_token)
            .append_pair("client_id", "bake")
            .append_pair("scope", &scope);
        if let Some(service) = &challenge.service {
            form.query_pairs_mut().append_pair("service", service);
        }
        let body = form.query().unwrap_or_default().to_owned();
        let realm = Url::parse(&challenge.realm).map_err(|e| Failure::fatal(invalid_url(host, e)))?;
        if !may_send_to(&realm, &host.base, &self.inner.opts.insecure_registries) {
            return Err(Failure::fatal(RegistryError::Unauthorized {
                reference: ctx.reference.to_owned(),
                registry: host.registry.clone(),
                detail: format!(
                    "its token realm {} is not HTTPS: the identity token is not sent there",
                    crate::error::clean_text(realm.as_str(), 200)
                ),
                credentials: host.creds_source.clone(),
            }));
        }
        let resp = self
            .inner
            .http
            .post(realm)
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| network_failure(e, ctx))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| network_failure(e, ctx))?;
        if !status.is_success() {
            return Err(Failure::fatal(RegistryError::Unauthorized {
                reference: ctx.reference.to_owned(),
                registry: host.registry.clone(),
                detail: format!(
                    "its token service answered {status} to the identity token: {}",
                    ApiErrors::parse(&bytes)
                ),
                credentials: host.creds_source.clone(),
            }));
        }
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            access_token: Option<String>,
            token: Option<String>,
        }
        let answer: TokenAnswer = serde_json::from_slice(&bytes).map_err(|_| {
            Failure::fatal(RegistryError::Unauthorized {
                reference: ctx.reference.to_owned(),
                registry: host.registry.clone(),
                detail: "its token service's answer is not the expected JSON".into(),
                credentials: host.creds_source.clone(),
            })
        })?;
        answer.access_token.or(answer.token).ok_or_else(|| {
            Failure::fatal(RegistryError::Unauthorized {
                reference: ctx.reference.to_owned(),
                registry: host.registry.clone(),
                detail: "its token service gave no token".into(),
                credentials: host.creds_source.clone(),
            })
        })
    }

    /// Sends one request built by `build` (called again for the retry after
    /// a 401, so bodies must be rebuildable), with the `Authorization` for
    /// `repo`/`op` when the URL is the registry's own origin. A 401 refreshes
    /// the token once; a second 401 is returned to the caller.
    ///
    /// The headers must arrive within the policy's `request_timeout`
    /// (authentication included); see [`Registry::send_within`] for a
    /// request whose body is read against the same deadline.
    pub(crate) async fn send<F>(
        &self,
        host: &Host,
        repo: &str,
        op: Op,
        ctx: Ctx<'_>,
        build: F,
    ) -> Result<reqwest::Response, Failure>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let deadline = Deadline::start(self.policy());
        self.send_within(&deadline, host, repo, op, ctx, build).await
    }

    /// [`Registry::send`] with headers due by `deadline` (with nothing
    /// moved yet), so the caller reads the body against it too.
    pub(crate) async fn send_within<F>(
        &self,
        deadline: &Deadline,
        host: &Host,
        repo: &str,
        op: Op,
        ctx: Ctx<'_>,
        build: F,
    ) -> Result<reqwest::Response, Failure>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        deadline
            .within(
                0,
                ctx.action,
                ctx.reference,
                self.send_untimed(host, repo, op, ctx, build),
            )
            .await
    }

    /// [`Registry::send`] without a deadline: for uploads, which keep their
    /// own as the body goes out.
    pub(crate) async fn send_untimed<F>(
        &self,
        host: &Host,
        repo: &str,
        op: Op,
        ctx: Ctx<'_>,
        build: F,
    ) -> Result<reqwest::Response, Failure>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let mut refresh = false;
        loop {
            let auth = self.authorization(host, repo, op, refresh, ctx).await?;
            let mut request = build(&self.inner.http)
                .build()
                .map_err(|e| network_failure(e, ctx))?;
            if let Some(auth) = auth {
                if same_origin(request.url(), &host.base) {
                    request.headers_mut().insert(AUTHORIZATION, auth);
                }
            }
            let response = self
                .inner
                .http
                .execute(request)
                .await
                .map_err(|e| network_failure(e, ctx))?;
            if response.status() == StatusCode::UNAUTHORIZED && !refresh {
                refresh = true;
                continue;
            }
            return Ok(response);
        }
    }

    /// `response` if its status is one of `ok`, else the failure it means:
    /// retryable (408, 429, 5xx, with `Retry-After`) or not, naming the
    /// registry's error codes and messages.
    pub(crate) async fn expect(
        &self,
        host: &Host,
        response: reqwest::Response,
        ok: &[StatusCode],
        ctx: Ctx<'_>,
    ) -> Result<reqwest::Response, Failure> {
        let status = response.status();
        if ok.contains(&status) {
            return Ok(response);
        }
        let retry_after = parse_retry_after(response.headers().get(RETRY_AFTER));
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_limited(response, 64 * 1024, Deadline::start(self.policy()).at(0)).await;
        let errors = ApiErrors::parse(&body);
        if status == StatusCode::UNAUTHORIZED {
            let mut detail = match errors.0.is_empty() {
                true => "registry answered 401 Unauthorized".to_owned(),
                false => format!("registry answered 401 Unauthorized: {errors}"),
            };
            if let Some(c) = challenge {
                detail.push_str(&format!(" [challenge: {}]", crate::error::clean_text(&c, 300)));
            }
            return Err(Failure::fatal(RegistryError::Unauthorized {
                reference: ctx.reference.to_owned(),
                registry: host.registry.clone(),
                detail,
                credentials: host.creds_source.clone(),
            }));
        }
        let error = RegistryError::Status {
            action: ctx.action.to_owned(),
            reference: ctx.reference.to_owned(),
            status: status.as_u16(),
            errors: errors.clone(),
            attempts: 1,
        };
        if retryable_status(status.as_u16()) || errors.has_code("TOOMANYREQUESTS") {
            Err(Failure::transient(error, retry_after))
        } else {
            Err(Failure::fatal(error))
        }
    }
}

/// A header value that `Debug` shows as "Sensitive".
fn secret_header(value: &str) -> HeaderValue {
    let mut v = HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static(""));
    v.set_sensitive(true);
    v
}

fn invalid_url(host: &Host, e: impl std::fmt::Display) -> RegistryError {
    RegistryError::InvalidReference {
        input: host.registry.clone(),
        reason: e.to_string(),
    }
}

/// Whether a URL the registry hands us (an upload `Location`, a redirect,
/// a token realm) may be used for a registry at `base`: its own origin, or
/// any host over HTTPS, never a step down from HTTPS to plain HTTP nor a
/// scheme other than these two. Credentials go only to the registry's own
/// origin (see [`Registry::send`]) and to its token realm.
pub(crate) fn may_send_to(url: &Url, base: &Url, insecure: &[String]) -> bool {
    if same_origin(url, base) || url.scheme() == "https" {
        return true;
    }
    // Plain HTTP only from a plain registry, to a host plain HTTP is
    // allowed for (loopback, or listed as insecure).
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => return false,
    };
    url.scheme() == "http" && base.scheme() == "http" && uses_plain_http(&host, insecure)
}

pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// At most `limit` bytes of an (error) body, as many as arrive by `until`.
async fn read_limited(mut response: reqwest::Response, limit: usize, until: tokio::time::Instant) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(until, response.chunk()).await {
        out.extend_from_slice(&chunk);
        if out.len() >= limit {
            out.truncate(limit);
            break;
        }
    }
    out
}

/// A reqwest error as a failure: builder/redirect errors are final, every
/// other one (connect, reset, timeout, broken body) is worth a retry.
pub(crate) fn network_failure(e: reqwest::Error, ctx: Ctx<'_>) -> Failure {
    let retry = !(e.is_builder() || e.is_redirect());
    let error = RegistryError::Network {
        action: ctx.action.to_owned(),
        reference: ctx.reference.to_owned(),
        reason: describe(&e),
        attempts: 1,
    };
    if retry {
        Failure::transient(error, None)
    } else {
        Failure::fatal(error)
    }
}

/// The error and its causes on one line, without the URL (upload URLs
/// carry session state that only clutters a message).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut parts: Vec<String> = Vec::new();
    if e.is_timeout() {
        parts.push("timed out".into());
    } else if e.is_connect() {
        parts.push("cannot connect".into());
    }
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        let mut plain = e.to_string();
        if let Some(url) = e.url() {
            plain = plain.replace(&format!(" ({url})"), "").replace(url.as_str(), "");
        }
        parts.push(plain);
    }
    parts.join(": ")
}

pub(crate) struct BearerChallenge {
    pub realm: String,
    pub service: Option<String>,
}

/// `Bearer realm="https://auth/token",service="registry"` → realm, service.
pub(crate) fn parse_bearer_challenge(header: &str) -> Option<BearerChallenge> {
    let rest = header.trim();
    let (scheme, params) = rest.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    let mut s = params.trim();
    while !s.is_empty() {
        let (key, after) = s.split_once('=')?;
        let key = key.trim().trim_start_matches(',').trim();
        let after = after.trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        match key.to_ascii_lowercase().as_str() {
            "realm" => realm = Some(value.to_owned()),
            "service" => service = Some(value.to_owned()),
            _ => {}
        }
        s = next.trim_start().trim_start_matches(',').trim_start();
    }
    Some(BearerChallenge {
        realm: realm?,
        service,
    })
}

/// A reference's repository for a given digest, as text for messages.
pub(crate) fn at_digest(reference: &Reference, digest: &bake_digest::Digest) -> String {
    reference.with_digest(digest.clone()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_and_listed_hosts() {
        let none: Vec<String> = vec![];
        for yes in [
            "127.0.0.1:5000",
            "127.9.9.9",
            "localhost",
            "localhost:5000",
            "[::1]:5000",
            "[::1]",
        ] {
            assert!(uses_plain_http(yes, &none), "{yes}");
        }
        for no in [
            "ghcr.io",
            "docker.io",
            "10.0.0.1:5000",
            "128.0.0.1",
            "localhost.example.com",
            "[::2]:5000",
        ] {
            assert!(!uses_plain_http(no, &none), "{no}");
        }
        let insecure = vec!["reg.lan:5000".to_owned(), "other.lan".to_owned()];
        assert!(uses_plain_http("reg.lan:5000", &insecure));
        assert!(!uses_plain_http("reg.lan:5001", &insecure));
        assert!(uses_plain_http("other.lan:443", &insecure));
    }

    #[test]
    fn bearer_challenges() {
        let c = parse_bearer_challenge(r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:x:pull""#).unwrap();
        assert_eq!(c.realm, "https://auth.docker.io/token");
        assert_eq!(c.service.as_deref(), Some("registry.docker.io"));
        let c = parse_bearer_challenge("bearer realm=http://a/t").unwrap();
        assert_eq!((c.realm.as_str(), c.service), ("http://a/t", None));
        assert!(parse_bearer_challenge(r#"Basic realm="x""#).is_none());
        assert!(parse_bearer_challenge("Bearer service=\"x\"").is_none());
    }

    #[test]
    fn urls_a_registry_hands_us_never_step_down_to_plain_http() {
        let https: Url = "https://r.example/".parse().unwrap();
        let http: Url = "http://127.0.0.1:5000/".parse().unwrap();
        let insecure = vec!["reg.lan:5000".to_owned()];
        let ok = |u: &str, base: &Url| may_send_to(&u.parse().unwrap(), base, &insecure);
        assert!(ok("https://r.example/v2/a/blobs/uploads/x", &https));
        assert!(ok("https://auth.example/token", &https), "another HTTPS host");
        assert!(!ok("http://r.example/v2/a/blobs/uploads/x", &https), "downgrade");
        assert!(!ok("http://evil.example/token", &https));
        assert!(!ok("ftp://r.example/x", &https));
        assert!(ok("http://127.0.0.1:5000/v2/", &http));
        assert!(
            ok("http://127.0.0.1:6000/token", &http),
            "a plain registry's realm"
        );
        assert!(ok("http://reg.lan:5000/token", &http), "listed as insecure");
        assert!(
            !ok("http://evil.example/token", &http),
            "plain HTTP to the internet"
        );
        assert!(!ok("http://reg.lan:5001/token", &http));
        assert!(ok("https://auth.example/token", &http));
        assert!(!ok("file:///etc/passwd", &http));
    }

    #[test]
    fn secret_headers_do_not_debug() {
        let h = secret_header("Basic c2VjcmV0");
        assert!(!format!("{h:?}").contains("c2VjcmV0"));
    }
}

#[cfg(test)]
mod api_tests {
    use super::*;
    use crate::{LocalImage, NoProgress, Platform};

    fn assert_send<T: Send>(_: &T) {}

    /// Callers spawn these on multi-threaded runtimes.
    #[allow(dead_code)]
    fn futures_are_send(r: &Registry, store: &bake_store::BlobStore, reference: &Reference, p: &Platform) {
        let image = LocalImage {
            store,
            manifest: &[],
            media_type: "",
        };
        assert_send(&r.push_image(image, reference, &[], None, &NoProgress));
        assert_send(&r.pull_image(reference, p, store, &NoProgress));
        assert_send(&r.fetch_manifest(reference));
        assert_send(&r.fetch_blob(reference, &bake_digest::Digest::of(b"")));
        assert_send(&r.push_manifest_only(reference, &[], "", &[], &NoProgress));
    }

    #[test]
    fn debug_output_holds_no_credentials() {
        let dir = tempfile::tempdir().unwrap();
        crate::login(dir.path(), "r.example", "alice", "pa55-w0rd-secret").unwrap();
        let opts = RegistryOptions {
            docker_config: DockerConfig::load(dir.path()).unwrap(),
            ..RegistryOptions::default()
        };
        let registry = Registry::new(opts.clone()).unwrap();
        let shown = format!("{registry:?} {opts:?}");
        assert!(!shown.contains("pa55-w0rd-secret"), "{shown}");
        let encoded = base64::engine::general_purpose::STANDARD.encode("alice:pa55-w0rd-secret");
        assert!(!shown.contains(&encoded), "{shown}");
        assert!(shown.contains("r.example"), "{shown}");
    }
}
