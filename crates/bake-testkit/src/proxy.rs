//! The fault-injecting, request-counting HTTP/1.1 proxy.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// What a request is, in distribution API terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RequestKind {
    /// `GET /v2/`
    Ping,
    /// `GET` of the bearer-token realm ([`ProxyOptions::bearer`]).
    Token,
    BlobHead,
    BlobGet,
    /// `POST …/blobs/uploads/` without `mount=`.
    BlobUploadStart,
    /// `POST …/blobs/uploads/?mount=…&from=…`
    BlobMount,
    BlobUploadPatch,
    BlobUploadPut,
    ManifestHead,
    ManifestGet,
    ManifestPut,
    TagsList,
    Other,
}

impl RequestKind {
    /// Classifies a request by method, path and query.
    pub fn of(method: &str, path: &str, query: Option<&str>) -> RequestKind {
        let query = query.unwrap_or("");
        if path == "/v2/" || path == "/v2" {
            return RequestKind::Ping;
        }
        if path == "/token" {
            return RequestKind::Token;
        }
        if !path.starts_with("/v2/") {
            return RequestKind::Other;
        }
        if path.contains("/blobs/uploads") {
            return match method {
                "POST" if query.split('&').any(|kv| kv.starts_with("mount=")) => RequestKind::BlobMount,
                "POST" => RequestKind::BlobUploadStart,
                "PATCH" => RequestKind::BlobUploadPatch,
                "PUT" => RequestKind::BlobUploadPut,
                _ => RequestKind::Other,
            };
        }
        if path.contains("/blobs/") {
            return match method {
                "HEAD" => RequestKind::BlobHead,
                "GET" => RequestKind::BlobGet,
                _ => RequestKind::Other,
            };
        }
        if path.contains("/manifests/") {
            return match method {
                "HEAD" => RequestKind::ManifestHead,
                "GET" => RequestKind::ManifestGet,
                "PUT" => RequestKind::ManifestPut,
                _ => RequestKind::Other,
            };
        }
        if path.ends_with("/tags/list") {
            return RequestKind::TagsList;
        }
        RequestKind::Other
    }
}

/// What to do to a matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Close the connection without answering.
    Drop,
    /// Answer this status (with a distribution-style error body, code
    /// `UNKNOWN`), without forwarding.
    Status(u16),
    /// Answer this status with exactly this body (`Content-Type:
    /// application/json`), without forwarding. [`Fault::api_error`] makes
    /// one with a distribution-spec error body.
    Respond { status: u16, body: String },
    /// Answer 429 with `Retry-After: SECS`, without forwarding.
    TooManyRequests { retry_after_secs: u64 },
    /// Wait this long, then forward (to trip the client's read timeout).
    Delay(Duration),
    /// Forward, then replace the response's `Docker-Content-Digest` with a
    /// wrong one.
    CorruptDigest,
    /// Answer 200 without forwarding, with a body (no `Content-Length`) of
    /// `bytes` spaces sent one every `every`: a registry too slow to ever
    /// finish, yet never silent for long. Ends after `bytes`, so a test
    /// cannot hang on it forever.
    Trickle { every: Duration, bytes: usize },
}

impl Fault {
    /// Answer `status` with the distribution spec's error body
    /// `{"errors":[{"code":CODE,"message":MESSAGE,"detail":null}]}`, as a
    /// registry that lost an upload session (`404`, `BLOB_UPLOAD_UNKNOWN`)
    /// or does not know a repository (`404`, `NAME_UNKNOWN`) would.
    pub fn api_error(status: u16, code: &str, message: &str) -> Fault {
        Fault::api_error_with_detail(status, code, message, serde_json::Value::Null)
    }

    /// [`Fault::api_error`] with a `detail` (any JSON: the spec leaves its
    /// shape to the registry).
    pub fn api_error_with_detail(status: u16, code: &str, message: &str, detail: serde_json::Value) -> Fault {
        let body = serde_json::json!({
            "errors": [{ "code": code, "message": message, "detail": detail }]
        });
        Fault::Respond {
            status,
            body: body.to_string(),
        }
    }
}

/// Which requests a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    Any,
    Kind(RequestKind),
    /// The request's path (not query) contains this text.
    PathContains(String),
    /// The request's path or query contains this text. The query is
    /// matched as sent, percent-encoded: match a digest by its hex part
    /// (an upload's `PUT …?digest=sha256%3A…` names it only there).
    UriContains(String),
    /// The n-th request the proxy receives (1-based).
    RequestNumber(usize),
    /// Every one of these matches (e.g. a kind and a digest).
    All(Vec<Matcher>),
}

impl Matcher {
    fn matches(&self, n: usize, kind: RequestKind, path: &str, query: &str) -> bool {
        match self {
            Matcher::Any => true,
            Matcher::Kind(k) => *k == kind,
            Matcher::PathContains(p) => path.contains(p.as_str()),
            Matcher::UriContains(p) => path.contains(p.as_str()) || query.contains(p.as_str()),
            Matcher::RequestNumber(m) => *m == n,
            Matcher::All(all) => all.iter().all(|m| m.matches(n, kind, path, query)),
        }
    }
}

#[derive(Debug, Clone)]
struct Rule {
    matcher: Matcher,
    fault: Fault,
    /// Matching requests to let through before injecting.
    skip: usize,
    /// How many to inject (None: every one after `skip`).
    times: Option<usize>,
    seen: usize,
}

/// Which faults to inject where. Rules are checked in order; the first
/// whose window covers a request applies.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    rules: Vec<Rule>,
}

impl FaultPlan {
    /// No faults: the proxy only counts.
    pub fn new() -> FaultPlan {
        FaultPlan::default()
    }

    /// `fault` on the first `times` requests of `kind`.
    pub fn on(self, kind: RequestKind, fault: Fault, times: usize) -> FaultPlan {
        self.rule(Matcher::Kind(kind), fault, 0, Some(times))
    }

    /// `fault` on the `n`-th request of `kind` (1-based) only.
    pub fn on_nth(self, kind: RequestKind, n: usize, fault: Fault) -> FaultPlan {
        self.rule(Matcher::Kind(kind), fault, n.saturating_sub(1), Some(1))
    }

    /// `fault` on every request of `kind`.
    pub fn always(self, kind: RequestKind, fault: Fault) -> FaultPlan {
        self.rule(Matcher::Kind(kind), fault, 0, None)
    }

    /// `fault` on the `n`-th request the proxy receives (1-based).
    pub fn on_request(self, n: usize, fault: Fault) -> FaultPlan {
        self.rule(Matcher::RequestNumber(n), fault, 0, Some(1))
    }

    /// `fault` on the first `times` requests whose path contains `pattern`
    /// (`None`: all of them).
    pub fn on_path(self, pattern: &str, fault: Fault, times: Option<usize>) -> FaultPlan {
        self.rule(Matcher::PathContains(pattern.to_owned()), fault, 0, times)
    }

    /// The general form: after `skip` matching requests, `fault` on the
    /// next `times` (or all).
    pub fn rule(mut self, matcher: Matcher, fault: Fault, skip: usize, times: Option<usize>) -> FaultPlan {
        self.rules.push(Rule {
            matcher,
            fault,
            skip,
            times,
            seen: 0,
        });
        self
    }

    fn pick(&mut self, n: usize, kind: RequestKind, path: &str, query: &str) -> Option<Fault> {
        let mut chosen = None;
        for rule in &mut self.rules {
            if !rule.matcher.matches(n, kind, path, query) {
                continue;
            }
            let index = rule.seen;
            rule.seen += 1;
            let in_window = index >= rule.skip && rule.times.is_none_or(|t| index < rule.skip + t);
            if in_window && chosen.is_none() {
                chosen = Some(rule.fault.clone());
            }
        }
        chosen
    }
}

/// A bearer-token front: the proxy demands `Authorization: Bearer`, serves
/// tokens at `/token` for these basic credentials, and makes each token
/// expire after `token_uses` requests (then answers 401, like a registry
/// whose token timed out).
#[derive(Debug, Clone)]
pub struct BearerFront {
    pub username: String,
    pub password: String,
    pub token_uses: usize,
    /// Also accept this OAuth2 refresh token (`POST /token` with
    /// `grant_type=refresh_token`), as docker's `identitytoken` is used.
    pub refresh_token: Option<String>,
}

/// How the proxy behaves besides its [`FaultPlan`].
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    pub bearer: Option<BearerFront>,
}

#[derive(Default)]
struct Counters {
    total: usize,
    by_kind: BTreeMap<RequestKind, usize>,
    faults: usize,
    log: Vec<String>,
    tokens_issued: usize,
    /// token → uses left
    tokens: BTreeMap<String, usize>,
}

struct Shared {
    upstream: String,
    plan: Mutex<FaultPlan>,
    options: ProxyOptions,
    counters: Mutex<Counters>,
    self_host: String,
}

/// An HTTP/1.1 proxy on `127.0.0.1`, on its own thread and runtime (so it
/// works under any test, async or not). Stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// A proxy to `upstream` (`127.0.0.1:PORT`) injecting `plan`.
    pub fn start(upstream: &str, plan: FaultPlan) -> io::Result<FaultProxy> {
        FaultProxy::start_with(upstream, plan, ProxyOptions::default())
    }

    pub fn start_with(upstream: &str, plan: FaultPlan, options: ProxyOptions) -> io::Result<FaultProxy> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream: upstream.to_owned(),
            plan: Mutex::new(plan),
            options,
            counters: Mutex::new(Counters::default()),
            self_host: addr.to_string(),
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy-{}", addr.port()))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    serve(listener, thread_shared, stop_rx).await;
                });
            })?;
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("the proxy thread died before listening"))??;
        Ok(FaultProxy {
            addr,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, for references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Replaces the fault plan (counts are kept).
    pub fn set_plan(&self, plan: FaultPlan) {
        if let Ok(mut p) = self.shared.plan.lock() {
            *p = plan;
        }
    }

    /// Requests of `kind` received since start or the last reset.
    pub fn count(&self, kind: RequestKind) -> usize {
        self.lock().by_kind.get(&kind).copied().unwrap_or(0)
    }

    /// All counts by kind.
    pub fn counts(&self) -> BTreeMap<RequestKind, usize> {
        self.lock().by_kind.clone()
    }

    /// Requests received since start or the last reset.
    pub fn total(&self) -> usize {
        self.lock().total
    }

    /// Faults injected since start or the last reset.
    pub fn faults_injected(&self) -> usize {
        self.lock().faults
    }

    /// Bearer tokens issued (with [`ProxyOptions::bearer`]).
    pub fn tokens_issued(&self) -> usize {
        self.lock().tokens_issued
    }

    /// One line per request: `METHOD PATH -> STATUS` (or the fault).
    pub fn log(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    pub fn reset_counts(&self) {
        let mut c = self.lock();
        c.total = 0;
        c.by_kind.clear();
        c.faults = 0;
        c.log.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.shared.counters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

type Body = BoxBody<Bytes, hyper::Error>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn api_error(status: u16, code: &str, message: &str) -> Response<Body> {
    json_response(
        status,
        format!(r#"{{"errors":[{{"code":"{code}","message":"{message}"}}]}}"#),
    )
}

fn json_response(status: u16, body: String) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// The body of [`Fault::Trickle`]: one space every `every`, `left` more.
struct Trickle {
    left: usize,
    every: Duration,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for Trickle {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        use std::future::Future as _;
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        match self.sleep.as_mut().poll(cx) {
            std::task::Poll::Pending => std::task::Poll::Pending,
            std::task::Poll::Ready(()) => {
                self.left -= 1;
                let next = tokio::time::Instant::now() + self.every;
                self.sleep.as_mut().reset(next);
                std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from_static(b" ")))))
            }
        }
    }
}

/// The connection is dropped when the service fails.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fault injected: connection dropped")
    }
}

impl std::error::Error for Dropped {}

async fn handle(shared: Arc<Shared>, mut req: Request<Incoming>) -> Result<Response<Body>, Dropped> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let kind = RequestKind::of(&method, &path, Some(&query));
    let n = {
        let mut c = shared.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.total += 1;
        *c.by_kind.entry(kind).or_insert(0) += 1;
        c.total
    };
    let fault = shared
        .plan
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .pick(n, kind, &path, &query);
    let note = |line: String| {
        let mut c = shared.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.log.push(line);
    };
    if let Some(f) = &fault {
        if !matches!(f, Fault::Delay(_) | Fault::CorruptDigest) {
            note(format!("{method} {path} -> fault {f:?}"));
            shared.counters.lock().unwrap_or_else(|p| p.into_inner()).faults += 1;
        }
        if !matches!(f, Fault::Drop | Fault::Delay(_) | Fault::CorruptDigest) {
            // Answering without forwarding: read the request body first, so
            // the client sees our answer rather than a connection closed
            // under an upload it is still sending.
            drain(&mut req).await;
        }
        match f {
            Fault::Drop => return Err(Dropped),
            Fault::Status(s) => return Ok(api_error(*s, "UNKNOWN", "fault injected by the test proxy")),
            Fault::Respond { status, body } => return Ok(json_response(*status, body.clone())),
            Fault::TooManyRequests { retry_after_secs } => {
                let mut resp = api_error(
                    429,
                    "TOOMANYREQUESTS",
                    "slow down (fault injected by the test proxy)",
                );
                resp.headers_mut().insert(
                    "retry-after",
                    hyper::header::HeaderValue::from_str(&retry_after_secs.to_string())
                        .unwrap_or(hyper::header::HeaderValue::from_static("1")),
                );
                return Ok(resp);
            }
            Fault::Delay(d) => {
                {
                    let mut c = shared.counters.lock().unwrap_or_else(|p| p.into_inner());
                    c.faults += 1;
                    c.log.push(format!("{method} {path} -> delayed {d:?}"));
                }
                tokio::time::sleep(*d).await;
            }
            Fault::CorruptDigest => {}
            Fault::Trickle { every, bytes } => {
                let mut resp = Response::new(
                    Trickle {
                        left: *bytes,
                        every: *every,
                        sleep: Box::pin(tokio::time::sleep(*every)),
                    }
                    .map_err(|never: Infallible| match never {})
                    .boxed(),
                );
                resp.headers_mut().insert(
                    "content-type",
                    hyper::header::HeaderValue::from_static("application/octet-stream"),
                );
                return Ok(resp);
            }
        }
    }

    if let Some(front) = &shared.options.bearer {
        if kind == RequestKind::Token {
            return Ok(issue_token(&shared, front, req).await);
        }
        if !spend_token(&shared, &req) {
            note(format!("{method} {path} -> 401 (bearer front)"));
            let mut resp = api_error(401, "UNAUTHORIZED", "authentication required");
            let challenge = format!(
                r#"Bearer realm="http://{}/token",service="bake-testkit""#,
                shared.self_host
            );
            if let Ok(v) = hyper::header::HeaderValue::from_str(&challenge) {
                resp.headers_mut().insert("www-authenticate", v);
            }
            return Ok(resp);
        }
        req.headers_mut().remove("authorization");
    }

    let mut resp = match forward(&shared.upstream, req).await {
        Ok(r) => r.map(|b| b.boxed()),
        Err(e) => {
            note(format!("{method} {path} -> upstream error {e}"));
            return Ok(api_error(
                502,
                "UNKNOWN",
                "the test proxy cannot reach its upstream",
            ));
        }
    };
    if fault == Some(Fault::CorruptDigest) && resp.headers().contains_key("docker-content-digest") {
        note(format!("{method} {path} -> digest corrupted"));
        shared.counters.lock().unwrap_or_else(|p| p.into_inner()).faults += 1;
        resp.headers_mut().insert(
            "docker-content-digest",
            hyper::header::HeaderValue::from_static(
                "sha256:0000000000000000000000000000000000000000000000000000000000000000",
            ),
        );
    }
    note(format!("{method} {path} -> {}", resp.status().as_u16()));
    Ok(resp)
}

/// Reads and discards the request body (a failed read just ends it: the
/// answer is sent either way).
async fn drain(req: &mut Request<Incoming>) {
    while let Some(frame) = req.body_mut().frame().await {
        if frame.is_err() {
            break;
        }
    }
}

async fn issue_token(shared: &Shared, front: &BearerFront, req: Request<Incoming>) -> Response<Body> {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", front.username, front.password))
    );
    let method = req.method().clone();
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let accepted = if method == hyper::Method::POST {
        // OAuth2 form: grant_type=refresh_token&refresh_token=…
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let form = String::from_utf8_lossy(&body).into_owned();
        let field = |name: &str| {
            form.split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .map(str::to_owned)
        };
        field("grant_type").as_deref() == Some("refresh_token")
            && front.refresh_token.is_some()
            && field("refresh_token") == front.refresh_token
    } else {
        given == expected
    };
    let mut c = shared.counters.lock().unwrap_or_else(|p| p.into_inner());
    if !accepted {
        c.log.push(format!("{method} /token -> 401"));
        return api_error(401, "UNAUTHORIZED", "bad credentials for the token service");
    }
    c.tokens_issued += 1;
    let token = format!("test-token-{}", c.tokens_issued);
    c.tokens.insert(token.clone(), front.token_uses);
    c.log.push(format!("{method} /token -> 200"));
    let body = if method == hyper::Method::POST {
        format!(r#"{{"access_token":"{token}","expires_in":300}}"#)
    } else {
        format!(r#"{{"token":"{token}","expires_in":300}}"#)
    };
    let mut resp = Response::new(full(body));
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// Whether the request carries a live token (and uses it up by one).
fn spend_token(shared: &Shared, req: &Request<Incoming>) -> bool {
    let Some(token) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let mut c = shared.counters.lock().unwrap_or_else(|p| p.into_inner());
    match c.tokens.get_mut(token) {
        Some(left) if *left > 0 => {
            *left -= 1;
            true
        }
        _ => false,
    }
}

async fn forward(
    upstream: &str,
    req: Request<Incoming>,
) -> Result<Response<Incoming>, Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(upstream).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender.send_request(req).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_requests() {
        use RequestKind::*;
        let d = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let cases = [
            ("GET", "/v2/", None, Ping),
            ("HEAD", &format!("/v2/a/b/blobs/{d}") as &str, None, BlobHead),
            ("GET", &format!("/v2/a/blobs/{d}"), None, BlobGet),
            ("POST", "/v2/a/blobs/uploads/", None, BlobUploadStart),
            ("POST", "/v2/a/blobs/uploads/", Some("mount=x&from=b"), BlobMount),
            (
                "PATCH",
                "/v2/a/blobs/uploads/uuid",
                Some("_state=x"),
                BlobUploadPatch,
            ),
            (
                "PUT",
                "/v2/a/blobs/uploads/uuid",
                Some("_state=x&digest=y"),
                BlobUploadPut,
            ),
            ("PUT", "/v2/a/manifests/v1", None, ManifestPut),
            ("HEAD", "/v2/a/manifests/v1", None, ManifestHead),
            ("GET", "/v2/a/manifests/v1", None, ManifestGet),
            ("GET", "/v2/a/tags/list", None, TagsList),
            ("GET", "/token", Some("scope=x"), Token),
            ("GET", "/other", None, Other),
        ];
        for (m, p, q, k) in cases {
            assert_eq!(RequestKind::of(m, p, q), k, "{m} {p} {q:?}");
        }
    }

    #[test]
    fn plans_pick_windows() {
        let mut plan = FaultPlan::new()
            .on(RequestKind::ManifestPut, Fault::Status(500), 2)
            .on_nth(RequestKind::BlobHead, 3, Fault::Drop)
            .on_request(10, Fault::Status(503));
        let picks: Vec<_> = (1..=4)
            .map(|n| plan.pick(n, RequestKind::ManifestPut, "/v2/a/manifests/x", ""))
            .collect();
        assert_eq!(
            picks,
            [Some(Fault::Status(500)), Some(Fault::Status(500)), None, None]
        );
        let picks: Vec<_> = (5..=8)
            .map(|n| plan.pick(n, RequestKind::BlobHead, "/", ""))
            .collect();
        assert_eq!(picks, [None, None, Some(Fault::Drop), None]);
        assert_eq!(
            plan.pick(10, RequestKind::Ping, "/v2/", ""),
            Some(Fault::Status(503))
        );
        assert_eq!(plan.pick(11, RequestKind::Ping, "/v2/", ""), None);
    }

    #[test]
    fn api_error_faults_carry_a_distribution_error_body() {
        let Fault::Respond { status, body } =
            Fault::api_error(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown")
        else {
            panic!("not a Respond fault");
        };
        assert_eq!(status, 404);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["errors"][0]["code"], "BLOB_UPLOAD_UNKNOWN");
        assert_eq!(v["errors"][0]["message"], "blob upload unknown");
        assert!(v["errors"][0]["detail"].is_null());
        // Quotes in the text stay JSON.
        let Fault::Respond { body, .. } =
            Fault::api_error_with_detail(400, "X", "say \"hi\"", serde_json::json!("d\"e"))
        else {
            panic!("not a Respond fault");
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["errors"][0]["message"], "say \"hi\"");
        assert_eq!(v["errors"][0]["detail"], "d\"e");
    }

    #[test]
    fn matchers_combine_kind_and_uri() {
        let hex = "ab".repeat(32);
        let mut plan = FaultPlan::new().rule(
            Matcher::All(vec![
                Matcher::Kind(RequestKind::BlobUploadPut),
                Matcher::UriContains(hex.clone()),
            ]),
            Fault::Status(404),
            0,
            None,
        );
        let put = "/v2/a/blobs/uploads/uuid";
        let query = format!("_state=x&digest=sha256%3A{hex}");
        assert_eq!(
            plan.pick(1, RequestKind::BlobUploadPut, put, &query),
            Some(Fault::Status(404))
        );
        assert_eq!(
            plan.pick(2, RequestKind::BlobUploadPut, put, "digest=sha256%3Aother"),
            None
        );
        let head = format!("/v2/a/blobs/sha256:{hex}");
        assert_eq!(plan.pick(3, RequestKind::BlobHead, &head, ""), None);
    }
}
