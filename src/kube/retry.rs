//! Retrying transient API errors, below every request pake sends.
//!
//! Transient: the connection was refused or reset (an API server restarting),
//! 429 (throttled; `Retry-After` is honoured), any 5xx except 501/505, and a
//! 403 within [`AUTHZ_WARMUP`] after such an outage: an API server that has
//! just come back answers 403 until its authorization caches have synced.
//! A 403 that persists past that window (or one with no outage before it) is
//! real and reaches the caller at once: "permission denied", exit 3.
//!
//! A server that never answered this process (down when pake starts) gets
//! only [`UNREACHED_BUDGET`], so `pake doctor` against it still fails fast.
//! Retries back off exponentially (100 ms doubling up to 2 s) for at most the
//! budget after the first failure of a request: [`set_budget`] (a run sets
//! its `--timeout`) or [`DEFAULT_BUDGET`].
//! Requests whose body cannot be cloned (streams) are not retried.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use tokio::time::Instant;
use tower::BoxError;

use ::kube::client::Body;

/// How long a 403 after an outage is taken as the server warming up.
pub const AUTHZ_WARMUP: Duration = Duration::from_secs(15);
/// Retry budget of one request when no run deadline is set.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(30);
const MIN_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(2);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn since_epoch(t: Instant) -> u64 {
    t.saturating_duration_since(epoch()).as_millis() as u64 + 1
}

/// Milliseconds after `epoch` of the last transport error or 5xx (0 = never).
static LAST_OUTAGE: AtomicU64 = AtomicU64::new(0);
/// The retry budget of a request in milliseconds (0 = the default).
static BUDGET: AtomicU64 = AtomicU64::new(0);
/// Set at the first answer of the API server in this process. Until then a
/// transport error is retried only for [`UNREACHED_BUDGET`]: a server that is
/// down when pake starts is reported at once (exit 3), not after the budget.
static REACHED: AtomicBool = AtomicBool::new(false);
/// Retry budget of a transport error before the server ever answered.
pub const UNREACHED_BUDGET: Duration = Duration::from_secs(2);
/// Retries done by this process (reported with PAKE_API_STATS=1).
pub static RETRIES: AtomicU64 = AtomicU64::new(0);

/// Retry each request for at most `budget` after its first failure (a run
/// sets its own `--timeout`, so retries end within the run's deadline).
pub fn set_budget(budget: Duration) {
    BUDGET.store(budget.as_millis().max(1) as u64, Ordering::Relaxed);
}

fn deadline_for(first_failure: Instant) -> Instant {
    match BUDGET.load(Ordering::Relaxed) {
        0 => first_failure + DEFAULT_BUDGET,
        ms => first_failure + Duration::from_millis(ms),
    }
}

fn recent_outage(now: Instant) -> bool {
    match LAST_OUTAGE.load(Ordering::Relaxed) {
        0 => false,
        ms => now.saturating_duration_since(epoch() + Duration::from_millis(ms - 1)) < AUTHZ_WARMUP,
    }
}

/// Why a result is worth another attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transient {
    /// Connection refused, reset, timed out.
    Transport,
    /// 429, with the server's Retry-After if it gave one.
    Throttled(Option<Duration>),
    /// 500, 502, 503, 504, ...
    Server(u16),
    /// 403 right after an outage.
    Warmup,
}

/// Pure: is this response status transient, given whether an outage was just seen?
pub fn classify_status(
    status: StatusCode,
    retry_after: Option<Duration>,
    after_outage: bool,
) -> Option<Transient> {
    match status.as_u16() {
        429 => Some(Transient::Throttled(retry_after)),
        501 | 505 => None,
        c @ 500..=599 => Some(Transient::Server(c)),
        403 if after_outage => Some(Transient::Warmup),
        _ => None,
    }
}

/// The wait before attempt `attempt + 1`.
pub fn delay(attempt: u32, t: Transient) -> Duration {
    let exp = MIN_DELAY.saturating_mul(2u32.saturating_pow(attempt.min(10)));
    match t {
        Transient::Throttled(Some(after)) => after.min(Duration::from_secs(10)),
        _ => exp.min(MAX_DELAY),
    }
}

/// The tower retry policy (one clone per request).
#[derive(Clone, Default)]
pub struct Policy {
    attempt: u32,
    first_failure: Option<Instant>,
}

impl<B> tower::retry::Policy<Request<Body>, Response<B>, BoxError> for Policy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut Request<Body>,
        result: &mut Result<Response<B>, BoxError>,
    ) -> Option<Self::Future> {
        let now = Instant::now();
        let why = match result {
            Err(_) => Transient::Transport,
            Ok(resp) => {
                REACHED.store(true, Ordering::Relaxed);
                let retry_after = resp
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                classify_status(resp.status(), retry_after, recent_outage(now))?
            }
        };
        if matches!(why, Transient::Transport | Transient::Server(_)) {
            LAST_OUTAGE.store(since_epoch(now), Ordering::Relaxed);
        }
        let first = *self.first_failure.get_or_insert(now);
        let wait = delay(self.attempt, why);
        let deadline = if why == Transient::Transport && !REACHED.load(Ordering::Relaxed) {
            first + UNREACHED_BUDGET
        } else {
            deadline_for(first)
        };
        if now + wait > deadline {
            return None;
        }
        self.attempt += 1;
        RETRIES.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            "{} {}: {why:?}, retrying in {wait:?} (attempt {})",
            req.method(),
            req.uri().path(),
            self.attempt + 1
        );
        Some(tokio::time::sleep(wait))
    }

    fn clone_request(&mut self, req: &Request<Body>) -> Option<Request<Body>> {
        let body = req.body().try_clone()?;
        let mut r = Request::new(body);
        *r.method_mut() = req.method().clone();
        *r.uri_mut() = req.uri().clone();
        *r.version_mut() = req.version();
        *r.headers_mut() = req.headers().clone();
        *r.extensions_mut() = req.extensions().clone();
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_statuses() {
        let c = |s: u16, outage| classify_status(StatusCode::from_u16(s).unwrap(), None, outage);
        assert_eq!(c(503, false), Some(Transient::Server(503)));
        assert_eq!(c(500, false), Some(Transient::Server(500)));
        assert_eq!(c(501, false), None);
        assert_eq!(c(429, false), Some(Transient::Throttled(None)));
        assert_eq!(
            c(403, false),
            None,
            "a 403 with no outage before it is final"
        );
        assert_eq!(c(403, true), Some(Transient::Warmup));
        assert_eq!(c(404, true), None);
        assert_eq!(c(409, true), None);
        assert_eq!(c(401, true), None);
    }

    #[test]
    fn backoff_doubles_and_is_capped_retry_after_wins() {
        assert_eq!(delay(0, Transient::Transport), Duration::from_millis(100));
        assert_eq!(delay(3, Transient::Transport), Duration::from_millis(800));
        assert_eq!(delay(9, Transient::Server(503)), MAX_DELAY);
        assert_eq!(
            delay(0, Transient::Throttled(Some(Duration::from_secs(3)))),
            Duration::from_secs(3)
        );
        assert_eq!(
            delay(0, Transient::Throttled(Some(Duration::from_secs(99)))),
            Duration::from_secs(10)
        );
    }
}
