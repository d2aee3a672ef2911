//! Retry policy: which failures are worth another attempt, and when.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::{Progress, RegistryError};

/// How hard to try. Attempts are retried on connection errors, resets,
/// timeouts, 408, 429 and 5xx (but 501/505); any other status is final at
/// once, except a blob upload session the registry lost (404
/// `BLOB_UPLOAD_UNKNOWN`, 404/400 `BLOB_UPLOAD_INVALID`), which is retried
/// in a new session.
/// The wait before attempt `n+1` is `initial_backoff * 2^(n-1)`, capped at
/// `max_backoff`, with half of it random ("equal jitter"), or the
/// registry's `Retry-After` seconds when it sends them. No attempt starts
/// once `max_elapsed` would be exceeded by the wait before it.
///
/// Each attempt has a deadline ([`RetryPolicy::request_timeout`],
/// [`RetryPolicy::min_transfer_rate`]): a registry that answers one byte
/// every few seconds is given up on, a slow blob that keeps moving is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included (1 = no retry).
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Total time budget for one request and its retries.
    pub max_elapsed: Duration,
    /// Time to establish a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest silence while waiting for response bytes (not a limit on a
    /// whole transfer, so big blobs are fine).
    pub read_timeout: Duration,
    /// The deadline of one request, connect, authentication, headers and
    /// body together, when it moves no body; a request that moves a body
    /// (a blob, a manifest) gets `1 / min_transfer_rate` seconds more for
    /// each byte moved so far. So a transfer must keep an average of
    /// `min_transfer_rate` after this grace period, and a blob of `size`
    /// bytes ends at most `request_timeout + size / min_transfer_rate`
    /// after its request started. A timed-out request is retried like a
    /// reset connection.
    pub request_timeout: Duration,
    /// Bytes per second a body transfer must average once
    /// `request_timeout` has passed (see there).
    pub min_transfer_rate: u64,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(15),
            max_elapsed: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            // Two minutes for a registry that is slow to start a transfer
            // (a blob redirected to cold storage), then at least 16 KiB/s:
            // an order of magnitude below a 1 Mbit/s link, so a slow link
            // that keeps moving is never cut (a 1 GiB layer gets 18 hours),
            // while a registry trickling a byte every few seconds is given
            // up on about two minutes after the request started, whatever
            // the blob's size. A silent one is cut by `read_timeout` first.
            request_timeout: Duration::from_secs(120),
            min_transfer_rate: 16 * 1024,
        }
    }
}

/// The deadline of one request ([`RetryPolicy::request_timeout`]): due
/// `grace` after the start, plus `1 / rate` seconds per byte moved.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    start: tokio::time::Instant,
    grace: Duration,
    rate: u64,
}

impl Deadline {
    pub fn start(policy: &RetryPolicy) -> Deadline {
        Deadline {
            start: tokio::time::Instant::now(),
            grace: policy.request_timeout,
            rate: policy.min_transfer_rate.max(1),
        }
    }

    /// When the request is due, once `moved` bytes have been transferred.
    pub fn at(&self, moved: u64) -> tokio::time::Instant {
        let extra = Duration::from_secs_f64(moved as f64 / self.rate as f64);
        self.start + self.grace.saturating_add(extra)
    }

    pub fn expired(&self, moved: u64) -> bool {
        tokio::time::Instant::now() >= self.at(moved)
    }

    /// The (retryable) failure of a request that missed its deadline.
    pub fn failure(&self, action: &str, reference: &str, moved: u64) -> Failure {
        let waited = self.start.elapsed().as_secs_f64();
        let reason = if moved == 0 {
            format!(
                "nothing received within {:.1} s (the policy's request_timeout)",
                waited
            )
        } else {
            format!(
                "{moved} bytes in {waited:.1} s, slower than the {} bytes/s the policy's min_transfer_rate asks after its request_timeout of {:.1} s",
                self.rate,
                self.grace.as_secs_f64()
            )
        };
        Failure::transient(
            RegistryError::TimedOut {
                action: action.to_owned(),
                reference: reference.to_owned(),
                reason,
                attempts: 1,
            },
            None,
        )
    }

    /// `fut`, unless the deadline for `moved` bytes passes first.
    pub async fn within<T, F>(&self, moved: u64, action: &str, reference: &str, fut: F) -> Result<T, Failure>
    where
        F: Future<Output = Result<T, Failure>>,
    {
        match tokio::time::timeout_at(self.at(moved), fut).await {
            Ok(r) => r,
            Err(_) => Err(self.failure(action, reference, moved)),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`, without a `Retry-After`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX));
        let capped = exp.min(self.max_backoff);
        let half = capped / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// Why an attempt failed, and whether another one may succeed.
#[derive(Debug)]
pub(crate) struct Failure {
    /// Boxed: results carrying a `Failure` stay small on the happy path.
    pub error: Box<RegistryError>,
    pub retry: Retry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    No,
    /// Worth another attempt, after the registry's `Retry-After` if it gave one.
    Yes {
        after: Option<Duration>,
    },
}

impl Failure {
    pub fn fatal(error: RegistryError) -> Failure {
        Failure {
            error: Box::new(error),
            retry: Retry::No,
        }
    }

    pub fn transient(error: RegistryError, after: Option<Duration>) -> Failure {
        Failure {
            error: Box::new(error),
            retry: Retry::Yes { after },
        }
    }
}

impl From<RegistryError> for Failure {
    fn from(error: RegistryError) -> Failure {
        Failure::fatal(error)
    }
}

/// Whether an HTTP status is worth retrying.
pub(crate) fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429) || (500..=599).contains(&status) && !matches!(status, 501 | 505)
}

/// `Retry-After` in seconds (the HTTP-date form is ignored: the backoff
/// applies instead).
pub(crate) fn parse_retry_after(value: Option<&reqwest::header::HeaderValue>) -> Option<Duration> {
    let secs: u64 = value?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs))
}

/// Runs `attempt` until it succeeds, fails for good, or the policy is spent.
/// `what` describes the operation for [`Progress::retrying`].
pub(crate) async fn with_retry<T, F, Fut>(
    policy: &RetryPolicy,
    progress: &dyn Progress,
    what: &str,
    mut attempt: F,
) -> Result<T, RegistryError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let start = Instant::now();
    let mut n = 1;
    loop {
        match attempt(n).await {
            Ok(v) => return Ok(v),
            Err(Failure {
                error,
                retry: Retry::No,
            }) => return Err((*error).set_attempts(n)),
            Err(Failure {
                error,
                retry: Retry::Yes { after },
            }) => {
                let wait = after.unwrap_or_else(|| policy.backoff(n));
                if n >= policy.max_attempts.max(1) || start.elapsed() + wait > policy.max_elapsed {
                    return Err((*error).set_attempts(n));
                }
                progress.retrying(what, n, wait, &error.to_string());
                tokio::time::sleep(wait).await;
                n += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        for _ in 0..50 {
            let b1 = p.backoff(1);
            assert!(
                b1 >= Duration::from_millis(50) && b1 <= Duration::from_millis(100),
                "{b1:?}"
            );
            let b3 = p.backoff(3);
            assert!(
                b3 >= Duration::from_millis(200) && b3 <= Duration::from_millis(400),
                "{b3:?}"
            );
            let b20 = p.backoff(40);
            assert!(
                b20 >= Duration::from_millis(500) && b20 <= Duration::from_millis(1000),
                "{b20:?}"
            );
        }
        let distinct: std::collections::BTreeSet<_> = (0..20).map(|_| p.backoff(2)).collect();
        assert!(distinct.len() > 1, "no jitter");
    }

    #[test]
    fn statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 405, 416, 501, 505] {
            assert!(!retryable_status(s), "{s}");
        }
        let v = reqwest::header::HeaderValue::from_static("3");
        assert_eq!(parse_retry_after(Some(&v)), Some(Duration::from_secs(3)));
        let v = reqwest::header::HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(parse_retry_after(Some(&v)), None);
    }

    #[tokio::test]
    async fn deadlines_grow_with_bytes_moved_and_name_what_timed_out() {
        let p = RetryPolicy {
            request_timeout: Duration::from_secs(120),
            min_transfer_rate: 16 * 1024,
            ..RetryPolicy::default()
        };
        let d = Deadline::start(&p);
        assert_eq!(d.at(0) - d.start, Duration::from_secs(120));
        // A 1 GiB blob moving at the minimum rate: 18 hours and 2 minutes.
        assert_eq!(d.at(1 << 30) - d.start, Duration::from_secs(120 + 65536));
        assert!(!d.expired(0));
        let f = d.failure("download blob sha256:ab from", "r.example/app:v1", 9);
        assert_eq!(f.retry, Retry::Yes { after: None });
        let text = f.error.to_string();
        assert!(
            text.starts_with("cannot download blob sha256:ab from r.example/app:v1: timed out: 9 bytes in"),
            "{text}"
        );
        // A deadline already passed stops the future at once.
        let past = Deadline::start(&RetryPolicy {
            request_timeout: Duration::ZERO,
            ..p
        });
        let r: Result<(), Failure> = past
            .within(0, "fetch manifest", "r", std::future::pending())
            .await;
        assert!(matches!(*r.unwrap_err().error, RegistryError::TimedOut { .. }));
    }

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(u32, Duration)>>);
    impl Progress for Recorder {
        fn retrying(&self, _what: &str, attempt: u32, delay: Duration, _reason: &str) {
            self.0.lock().unwrap().push((attempt, delay));
        }
    }

    fn net_error() -> RegistryError {
        RegistryError::Network {
            action: "test".into(),
            reference: "r".into(),
            reason: "reset".into(),
            attempts: 1,
        }
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            max_elapsed: Duration::from_secs(5),
            ..RetryPolicy::default()
        }
    }

    #[tokio::test]
    async fn retries_transient_then_succeeds() {
        let rec = Recorder::default();
        let out = with_retry(&fast(), &rec, "x", |n| async move {
            if n < 3 {
                Err(Failure::transient(net_error(), None))
            } else {
                Ok(n)
            }
        })
        .await
        .unwrap();
        assert_eq!(out, 3);
        assert_eq!(rec.0.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts_and_reports_them() {
        let rec = Recorder::default();
        let err = with_retry(&fast(), &rec, "x", |_| async {
            Err::<(), _>(Failure::transient(net_error(), None))
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("gave up after 4 attempts"), "{err}");
    }

    #[tokio::test]
    async fn fatal_is_not_retried() {
        let rec = Recorder::default();
        let mut calls = 0;
        let err = with_retry(&fast(), &rec, "x", |_| {
            calls += 1;
            async { Err::<(), _>(Failure::fatal(net_error())) }
        })
        .await
        .unwrap_err();
        assert_eq!(calls, 1);
        assert!(!err.to_string().contains("attempts"));
    }

    #[tokio::test]
    async fn honours_retry_after_and_the_time_budget() {
        let rec = Recorder::default();
        with_retry(&fast(), &rec, "x", |n| async move {
            if n < 2 {
                Err(Failure::transient(net_error(), Some(Duration::from_millis(30))))
            } else {
                Ok(())
            }
        })
        .await
        .unwrap();
        assert_eq!(rec.0.lock().unwrap()[0], (1, Duration::from_millis(30)));
        // A Retry-After beyond the budget ends at once.
        let start = Instant::now();
        let err = with_retry(&fast(), &rec, "x", |_| async {
            Err::<(), _>(Failure::transient(net_error(), Some(Duration::from_secs(60))))
        })
        .await
        .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(err.to_string().contains("reset"));
    }
}
