//! A lock for one app and environment: a coordination.k8s.io/v1 Lease.
//!
//! Why a Lease: it lives in the cluster being deployed to, so every runner
//! (a laptop, two CI jobs) sees the same lock without extra infrastructure,
//! and it carries its own expiry (`renewTime + leaseDurationSeconds`), so a run
//! that dies without cleaning up cannot block the next one for long.
//!
//! Protocol (the same ideas as client-go's leader election, simplified for a
//! lock that is held for one run and then deleted):
//! - acquire: create the Lease; if it exists and is held by someone else and
//!   not expired, fail at once naming the holder, or (with `wait`) watch it
//!   until it is deleted, released or expired. An expired Lease is taken over
//!   (`leaseTransitions + 1`). Every write is guarded by optimistic
//!   concurrency: create fails with AlreadyExists, replace carries the
//!   resourceVersion; losing such a race (409) means re-read and decide again.
//! - hold: a background task renews `renewTime` every `lease_duration / 3`.
//!   If a renewal finds the Lease gone or held by another holder, the guard
//!   reports [`LockGuard::lost`] so the caller can stop before changing more.
//! - release: delete the Lease with a precondition on its resourceVersion and
//!   uid, so we never delete a Lease someone else took over.
//!
//! Interrupted runs need no manual cleanup: Ctrl-C makes the executor call
//! [`LockGuard::release`]; dropping an unreleased guard inside a runtime
//! spawns a best-effort release; and if the process is killed (kill -9, a
//! cancelled CI job) nothing renews the Lease, so it expires after
//! `lease_duration` and the next run takes it over.
//!
//! Expiry compares the holder's `renewTime` with this machine's clock, so
//! large clock skew between runners shortens or stretches the lease by the skew.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::kube::api::{Api, DeleteParams, PostParams, Preconditions};
use ::kube::runtime::WatchStreamExt;
use ::kube::runtime::watcher::{self, watch_object};
use futures::StreamExt;
use jiff::{SignedDuration, Timestamp, Unit};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{Error, Result};

/// How to take the lock.
#[derive(Debug, Clone)]
pub struct LockOptions {
    /// Wait for the current holder instead of failing at once (`--wait-lock`).
    pub wait: bool,
    /// How long to wait at most when `wait` is set.
    pub wait_timeout: Duration,
    /// How long the lock survives without renewal (a killed run blocks the
    /// next one for at most this long). Renewed every third of it.
    pub lease_duration: Duration,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            wait: false,
            wait_timeout: Duration::from_secs(600),
            lease_duration: Duration::from_secs(30),
        }
    }
}

/// Why the lock could not be taken, attached as the `source` of the
/// [`Error`] so callers can tell the cases apart without parsing messages.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LockError {
    /// The namespace of the Lease does not exist yet (first deploy).
    #[error("namespace {0:?} does not exist")]
    NamespaceMissing(String),
    /// Another run holds the lock (and we did not or could no longer wait).
    #[error("held by {holder}")]
    Held {
        holder: String,
        since: Option<String>,
    },
}

/// True if `e` came from [`acquire`] because the Lease's namespace is missing.
/// The caller creates the namespace and calls [`acquire`] again.
pub fn is_namespace_missing(e: &Error) -> bool {
    matches!(lock_error(e), Some(LockError::NamespaceMissing(_)))
}

/// The current holder, if `e` came from [`acquire`] because the lock is held.
pub fn held_by(e: &Error) -> Option<String> {
    match lock_error(e) {
        Some(LockError::Held { holder, .. }) => Some(holder.clone()),
        _ => None,
    }
}

fn lock_error(e: &Error) -> Option<&LockError> {
    e.source.as_ref()?.downcast_ref::<LockError>()
}

/// Who is deploying, for the Lease's holderIdentity and the "held by" message:
/// `user@host pid N`. In GitHub Actions the user is `$GITHUB_ACTOR` (the person
/// who triggered the run; `$USER` is just "runner" there), else `$USER`.
pub fn holder_identity() -> String {
    format!(
        "{} pid {}",
        crate::workflow::history::current_user(),
        std::process::id()
    )
}

/// Who holds a Lease, judged at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Holder {
    /// No holder, or the holder stopped renewing: free to take.
    Free { previous: Option<String> },
    /// Held and not expired.
    Held {
        holder: String,
        since: Option<Timestamp>,
        expires: Timestamp,
    },
}

fn micro(t: &Option<MicroTime>) -> Option<Timestamp> {
    t.as_ref().map(|m| m.0)
}

/// Pure: is the Lease held at `now`? Held means a holder is named and
/// `renewTime + leaseDurationSeconds > now`.
fn holder_state(lease: &Lease, now: Timestamp) -> Holder {
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.filter(|h| !h.is_empty());
    let Some(holder) = holder else {
        return Holder::Free { previous: None };
    };
    let renewed = micro(&spec.renew_time).or(micro(&spec.acquire_time));
    let duration =
        SignedDuration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as i64);
    match renewed.and_then(|r| r.checked_add(duration).ok()) {
        Some(expires) if expires > now => Holder::Held {
            holder,
            since: micro(&spec.acquire_time),
            expires,
        },
        _ => Holder::Free {
            previous: Some(holder),
        },
    }
}

fn lease_secs(d: Duration) -> i32 {
    d.as_secs().clamp(1, i32::MAX as u64) as i32
}

/// The Lease we write when taking the lock (create or take over).
fn lease_for(
    namespace: &str,
    name: &str,
    holder: &str,
    opts: &LockOptions,
    now: Timestamp,
    base: Option<&Lease>,
) -> Lease {
    let previous = base.and_then(|l| l.spec.clone()).unwrap_or_default();
    let changed_holder = previous
        .holder_identity
        .as_deref()
        .is_some_and(|h| !h.is_empty());
    let transitions = previous.lease_transitions.unwrap_or(0) + i32::from(changed_holder);
    let metadata = match base {
        Some(l) => l.metadata.clone(),
        None => ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(
                [(
                    "app.kubernetes.io/managed-by".to_string(),
                    "pake".to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        },
    };
    Lease {
        metadata,
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.to_string()),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_duration_seconds: Some(lease_secs(opts.lease_duration)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }),
    }
}

fn show_time(t: Timestamp) -> String {
    t.round(Unit::Second)
        .map(|r| r.to_string())
        .unwrap_or_else(|_| t.to_string())
}

fn held_error(
    object: &str,
    holder: &str,
    since: Option<Timestamp>,
    expires: Timestamp,
    lease_secs: i32,
) -> Error {
    let since_text = since
        .map(|s| format!(" since {}", show_time(s)))
        .unwrap_or_default();
    Error::failed(format!(
        "another pake run holds the lock: {holder}{since_text}"
    ))
    .on(object)
    .fix(format!(
        "wait for it to finish, or pass --wait-lock. If that run was killed, the lock expires by itself at {} (lease duration {lease_secs}s) and the next run takes it over; no manual cleanup is needed",
        show_time(expires)
    ))
    .with_source(LockError::Held {
        holder: holder.to_string(),
        since: since.map(show_time),
    })
}

/// Take the lock `name` in `namespace` for `holder`.
///
/// Returns a guard that renews the Lease in the background until
/// [`LockGuard::release`] (or drop). Errors: the lock is held by another run
/// ([`held_by`] names it; exit kind Failed), the namespace does not exist
/// ([`is_namespace_missing`]), or the cluster refused (kind Cluster).
pub async fn acquire(
    client: &::kube::Client,
    namespace: &str,
    name: &str,
    holder: &str,
    opts: LockOptions,
) -> Result<LockGuard> {
    let object = format!("Lease {namespace}/{name}");
    if opts.lease_duration < Duration::from_secs(1) {
        return Err(Error::usage(format!(
            "lease duration {:?} is too short: the Lease counts whole seconds",
            opts.lease_duration
        ))
        .on(object));
    }
    // From here on SIGINT/SIGTERM/SIGHUP are the run's to handle (signals.rs):
    // the guard keeps the protection until the lock is released.
    let protected = super::signals::protect();
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let wait_deadline = Instant::now() + opts.wait_timeout;
    let kube_err = |what: &str, e: ::kube::Error| {
        Error::from_kube(format!("{what} {object}"), e).on(object.clone())
    };
    let mut create_retried = false;
    // Most runs find no Lease: try the create first and read the Lease only
    // when it exists (409), instead of a GET before every create.
    let mut assume_absent = true;
    loop {
        let read = if std::mem::take(&mut assume_absent) {
            Ok(None)
        } else {
            api.get_opt(name).await
        };
        let current = match read {
            Ok(c) => c,
            Err(e) if is_forbidden(&e) && namespace_absent(client, namespace).await => {
                return Err(namespace_missing(&object, namespace));
            }
            Err(e) => return Err(kube_err("GET", e)),
        };
        let now = Timestamp::now();
        let written = match &current {
            None => {
                let lease = lease_for(namespace, name, holder, &opts, now, None);
                match api.create(&PostParams::default(), &lease).await {
                    Ok(l) => l,
                    // AlreadyExists: another run created it first (or our own
                    // create went through and its retry found it); decide again.
                    Err(::kube::Error::Api(s)) if s.code == 409 => {
                        create_retried = true;
                        continue;
                    }
                    Err(::kube::Error::Api(s))
                        if s.code == 404
                            && s.details.as_ref().is_some_and(|d| d.kind == "namespaces") =>
                    {
                        return Err(namespace_missing(&object, namespace));
                    }
                    Err(e) if is_forbidden(&e) && namespace_absent(client, namespace).await => {
                        return Err(namespace_missing(&object, namespace));
                    }
                    Err(e) => return Err(kube_err("create", e)),
                }
            }
            Some(lease) => match holder_state(lease, now) {
                Holder::Free { .. } => {
                    let mine = lease_for(namespace, name, holder, &opts, now, Some(lease));
                    // Carries the resourceVersion we read: 409 if it changed since.
                    match api.replace(name, &PostParams::default(), &mine).await {
                        Ok(l) => l,
                        Err(::kube::Error::Api(s)) if s.code == 409 || s.code == 404 => continue,
                        Err(e) => return Err(kube_err("take over", e)),
                    }
                }
                // A create retried after a lost response (kube::retry) finds
                // the Lease it wrote itself: the holder names this process.
                Holder::Held { holder: other, .. } if create_retried && other == holder => {
                    lease.clone()
                }
                Holder::Held {
                    holder: other,
                    since,
                    expires,
                } => {
                    let secs = lease
                        .spec
                        .as_ref()
                        .and_then(|s| s.lease_duration_seconds)
                        .unwrap_or(0);
                    if !opts.wait {
                        return Err(held_error(&object, &other, since, expires, secs));
                    }
                    wait_for_change(&api, name, expires, wait_deadline, &object, &opts).await?;
                    continue;
                }
            },
        };
        let mut guard = LockGuard::start(api, namespace, name, holder, opts, written);
        guard._protected = Some(protected);
        return Ok(guard);
    }
}

fn namespace_missing(object: &str, namespace: &str) -> Error {
    Error::failed(format!(
        "cannot take the deploy lock: namespace {namespace} does not exist"
    ))
    .on(object)
    .fix("create the namespace first (pake deploy's namespace step does), then take the lock")
    .with_source(LockError::NamespaceMissing(namespace.to_string()))
}

fn is_forbidden(e: &::kube::Error) -> bool {
    matches!(e, ::kube::Error::Api(s) if s.code == 403)
}

/// An identity bound only inside its namespaces (like `deployer`) gets 403,
/// not 404, for a namespace that does not exist yet, because RBAC is checked
/// first. Ask for the namespace itself to tell the two apart; if that is not
/// allowed either, the permission error stands.
async fn namespace_absent(client: &::kube::Client, namespace: &str) -> bool {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    matches!(api.get_opt(namespace).await, Ok(None))
}

/// Watch the Lease until it is deleted, changes hands, or expires, bounded by
/// `wait_deadline`. Returns Ok when it is worth trying again.
async fn wait_for_change(
    api: &Api<Lease>,
    name: &str,
    expires: Timestamp,
    wait_deadline: Instant,
    object: &str,
    opts: &LockOptions,
) -> Result<()> {
    let stream = watch_object(api.clone(), name).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let until = |t: Timestamp| {
        let left = t.duration_since(Timestamp::now());
        let left = Duration::try_from(left).unwrap_or(Duration::ZERO);
        // A little slack so we re-read after the expiry, not a hair before.
        Instant::now() + left + Duration::from_millis(200)
    };
    let mut expiry = until(expires);
    let mut last: Option<(String, Option<Timestamp>, Timestamp, i32)> = None;
    loop {
        tokio::select! {
            ev = stream.next() => match ev {
                None | Some(Ok(None)) => return Ok(()),
                Some(Ok(Some(lease))) => match holder_state(&lease, Timestamp::now()) {
                    Holder::Free { .. } => return Ok(()),
                    Holder::Held { holder, since, expires } => {
                        expiry = until(expires);
                        let secs = lease.spec.as_ref().and_then(|s| s.lease_duration_seconds).unwrap_or(0);
                        last = Some((holder, since, expires, secs));
                    }
                },
                Some(Err(e)) => {
                    if let Some(err) = fatal(&e) {
                        return Err(err.on(object));
                    }
                    tracing::debug!("watch of {object}: {e} (retrying)");
                }
            },
            _ = tokio::time::sleep_until(expiry) => return Ok(()),
            s = super::signals::received() => {
                return Err(Error::failed(format!("interrupted by {s} while waiting for the lock; nothing was changed"))
                    .on(object)
                    .fix("re-run the command when the other run has finished"));
            }
            _ = tokio::time::sleep_until(wait_deadline) => {
                let (holder, since, expires, secs) = match last {
                    Some(l) => l,
                    None => {
                        let l = api.get_opt(name).await.ok().flatten();
                        match l.as_ref().map(|l| (l, holder_state(l, Timestamp::now()))) {
                            Some((l, Holder::Held { holder, since, expires })) => {
                                let secs = l.spec.as_ref().and_then(|s| s.lease_duration_seconds).unwrap_or(0);
                                (holder, since, expires, secs)
                            }
                            _ => return Ok(()),
                        }
                    }
                };
                let e = held_error(object, &holder, since, expires, secs);
                return Err(Error {
                    message: format!(
                        "gave up after waiting {}s for the lock: {}",
                        opts.wait_timeout.as_secs(),
                        e.message
                    ),
                    fix: Some("the other run is still going: try again when it has finished, or raise the wait timeout".into()),
                    ..e
                });
            }
        }
    }
}

fn fatal(e: &watcher::Error) -> Option<Error> {
    let code = match e {
        watcher::Error::InitialListFailed(::kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(::kube::Error::Api(s))
        | watcher::Error::WatchFailed(::kube::Error::Api(s)) => s.code,
        watcher::Error::WatchError(s) => s.code,
        _ => return None,
    };
    (code == 401 || code == 403).then(|| {
        Error::cluster(format!("cannot watch the lock's Lease: permission denied ({e})"))
            .fix("the identity needs get/list/watch/create/update/delete on leases.coordination.k8s.io in the namespace; run `pake doctor`")
    })
}

/// State shared by the guard, its renew task and a release spawned on drop.
struct Shared {
    /// The Lease as last written by us (its resourceVersion guards the next write).
    lease: Mutex<Lease>,
    lost: watch::Sender<bool>,
}

impl Shared {
    fn lease(&self) -> Lease {
        self.lease.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn set_lease(&self, l: Lease) {
        *self.lease.lock().unwrap_or_else(|p| p.into_inner()) = l;
    }
    fn mark_lost(&self, why: &str, object: &str) {
        if !*self.lost.borrow() {
            tracing::warn!("lost the deploy lock {object}: {why}");
        }
        self.lost.send_replace(true);
    }
}

/// A held lock. Call [`LockGuard::release`] when the run ends (also on
/// Ctrl-C); dropping it releases on a best-effort basis.
pub struct LockGuard {
    api: Api<Lease>,
    name: String,
    object: String,
    holder: String,
    shared: Arc<Shared>,
    renew: Option<JoinHandle<()>>,
    released: bool,
    /// Signals are handled by the run while the lock is held.
    _protected: Option<super::signals::Protected>,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("object", &self.object)
            .field("holder", &self.holder)
            .field("lost", &self.lost())
            .finish()
    }
}

/// Is `lease` still ours: same holder, and the acquireTime we wrote (so a
/// second lock taken by the same process does not count as ours).
fn is_ours(lease: &Lease, holder: &str, acquired: &Option<MicroTime>) -> bool {
    let spec = lease.spec.as_ref();
    spec.and_then(|s| s.holder_identity.as_deref()) == Some(holder)
        && spec.and_then(|s| s.acquire_time.as_ref()) == acquired.as_ref()
}

impl LockGuard {
    fn start(
        api: Api<Lease>,
        namespace: &str,
        name: &str,
        holder: &str,
        opts: LockOptions,
        lease: Lease,
    ) -> LockGuard {
        let object = format!("Lease {namespace}/{name}");
        let (lost, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            lease: Mutex::new(lease),
            lost,
        });
        let renew = tokio::spawn(renew_loop(
            api.clone(),
            name.to_string(),
            object.clone(),
            holder.to_string(),
            opts.lease_duration,
            shared.clone(),
        ));
        LockGuard {
            api,
            name: name.to_string(),
            object,
            holder: holder.to_string(),
            shared,
            renew: Some(renew),
            released: false,
            _protected: None,
        }
    }

    /// The holder identity written into the Lease.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// "Lease namespace/name".
    pub fn object(&self) -> &str {
        &self.object
    }

    /// True once a renewal found the Lease deleted or held by someone else (or
    /// could not renew it before it expired). The run must stop changing the
    /// cluster: another run may be deploying.
    pub fn lost(&self) -> bool {
        *self.shared.lost.borrow()
    }

    /// A receiver that changes to `true` when the lock is lost, for callers
    /// that want to `select!` on it.
    pub fn lost_signal(&self) -> watch::Receiver<bool> {
        self.shared.lost.subscribe()
    }

    /// Stop renewing and delete the Lease if it is still ours. Deleting a
    /// Lease that someone else took over is prevented by a precondition on
    /// its resourceVersion and uid; if the lock was lost there is nothing to do.
    pub async fn release(mut self) -> Result<()> {
        self.released = true;
        if let Some(task) = self.renew.take() {
            task.abort();
            let _ = task.await;
        }
        release_lease(
            &self.api,
            &self.name,
            &self.object,
            &self.holder,
            &self.shared,
        )
        .await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(task) = self.renew.take() {
            task.abort();
        }
        if self.released {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (api, name, object, holder, shared) = (
                self.api.clone(),
                self.name.clone(),
                self.object.clone(),
                self.holder.clone(),
                self.shared.clone(),
            );
            rt.spawn(async move {
                if let Err(e) = release_lease(&api, &name, &object, &holder, &shared).await {
                    tracing::debug!("best-effort release of {object} on drop: {e}");
                }
            });
        }
    }
}

async fn release_lease(
    api: &Api<Lease>,
    name: &str,
    object: &str,
    holder: &str,
    shared: &Shared,
) -> Result<()> {
    if *shared.lost.borrow() {
        return Ok(());
    }
    let mut lease = shared.lease();
    let acquired = lease.spec.as_ref().and_then(|s| s.acquire_time.clone());
    // A renewal in flight when the task was aborted may have moved the
    // resourceVersion on: re-read and retry a few times while it is still ours.
    for _ in 0..5 {
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: lease.metadata.resource_version.clone(),
                uid: lease.metadata.uid.clone(),
            }),
            ..Default::default()
        };
        match api.delete(name, &dp).await {
            Ok(_) => return Ok(()),
            Err(::kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(::kube::Error::Api(s)) if s.code == 409 => match api.get_opt(name).await {
                Ok(Some(cur)) if is_ours(&cur, holder, &acquired) => lease = cur,
                Ok(_) => {
                    shared.mark_lost("taken over before release", object);
                    return Ok(());
                }
                Err(e) => return Err(release_error(object, e)),
            },
            Err(e) => return Err(release_error(object, e)),
        }
    }
    Err(
        Error::failed("could not release the deploy lock: it kept changing while we deleted it")
            .on(object)
            .fix("nothing to clean up: the lock expires by itself after its lease duration"),
    )
}

fn release_error(object: &str, e: ::kube::Error) -> Error {
    let base = Error::from_kube(format!("release {object}"), e);
    Error {
        object: Some(object.to_string()),
        fix: Some(
            "nothing to clean up by hand: the lock expires by itself after its lease duration, then the next run takes it over"
                .into(),
        ),
        ..base
    }
}

/// Renew every `lease_duration / 3` until aborted or the lock is lost.
async fn renew_loop(
    api: Api<Lease>,
    name: String,
    object: String,
    holder: String,
    lease_duration: Duration,
    shared: Arc<Shared>,
) {
    let period = (lease_duration / 3).max(Duration::from_millis(300));
    let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_ok = Instant::now();
    loop {
        ticker.tick().await;
        match renew_once(&api, &name, &holder, &shared).await {
            Ok(()) => last_ok = Instant::now(),
            Err(Renew::Lost(why)) => {
                shared.mark_lost(&why, &object);
                return;
            }
            Err(Renew::Transient(e)) => {
                tracing::debug!("renewing {object}: {e}");
                if last_ok.elapsed() >= lease_duration {
                    shared.mark_lost(
                        &format!("could not renew it within the lease duration ({e})"),
                        &object,
                    );
                    return;
                }
            }
        }
    }
}

enum Renew {
    Lost(String),
    Transient(::kube::Error),
}

async fn renew_once(
    api: &Api<Lease>,
    name: &str,
    holder: &str,
    shared: &Shared,
) -> Result<(), Renew> {
    let mut lease = shared.lease();
    let acquired = lease.spec.as_ref().and_then(|s| s.acquire_time.clone());
    for _ in 0..3 {
        if let Some(spec) = lease.spec.as_mut() {
            spec.renew_time = Some(MicroTime(Timestamp::now()));
        }
        match api.replace(name, &PostParams::default(), &lease).await {
            Ok(new) => {
                shared.set_lease(new);
                return Ok(());
            }
            Err(::kube::Error::Api(s)) if s.code == 404 => {
                return Err(Renew::Lost("the Lease was deleted by someone else".into()));
            }
            Err(::kube::Error::Api(s)) if s.code == 409 => match api.get_opt(name).await {
                Ok(Some(cur)) if is_ours(&cur, holder, &acquired) => lease = cur,
                Ok(Some(cur)) => {
                    let other = cur
                        .spec
                        .and_then(|s| s.holder_identity)
                        .unwrap_or_else(|| "nobody".into());
                    return Err(Renew::Lost(format!("it is now held by {other}")));
                }
                Ok(None) => {
                    return Err(Renew::Lost("the Lease was deleted by someone else".into()));
                }
                Err(e) => return Err(Renew::Transient(e)),
            },
            Err(e) => return Err(Renew::Transient(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed_ago: i64, duration: i32, now: Timestamp) -> Lease {
        let renew = now - SignedDuration::from_secs(renewed_ago);
        Lease {
            metadata: ObjectMeta {
                name: Some("pake-lock-backend-prod".into()),
                namespace: Some("pake-prod".into()),
                resource_version: Some("7".into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(String::from),
                acquire_time: Some(MicroTime(renew - SignedDuration::from_secs(5))),
                renew_time: Some(MicroTime(renew)),
                lease_duration_seconds: Some(duration),
                lease_transitions: Some(2),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn fresh_lease_is_held_and_expires_at_renew_plus_duration() {
        let now = Timestamp::now();
        let l = lease(Some("ann@ci pid 1"), 10, 30, now);
        match holder_state(&l, now) {
            Holder::Held {
                holder, expires, ..
            } => {
                assert_eq!(holder, "ann@ci pid 1");
                assert_eq!(expires, now + SignedDuration::from_secs(20));
            }
            other => panic!("expected held, got {other:?}"),
        }
    }

    #[test]
    fn expired_or_empty_lease_is_free() {
        let now = Timestamp::now();
        assert_eq!(
            holder_state(&lease(Some("ann"), 31, 30, now), now),
            Holder::Free {
                previous: Some("ann".into())
            }
        );
        // Exactly at the expiry instant it is no longer held.
        assert!(matches!(
            holder_state(&lease(Some("ann"), 30, 30, now), now),
            Holder::Free { .. }
        ));
        assert_eq!(
            holder_state(&lease(None, 0, 30, now), now),
            Holder::Free { previous: None }
        );
        assert_eq!(
            holder_state(&lease(Some(""), 0, 30, now), now),
            Holder::Free { previous: None }
        );
    }

    #[test]
    fn take_over_increments_transitions_and_keeps_resource_version() {
        let now = Timestamp::now();
        let old = lease(Some("ann"), 60, 30, now);
        let opts = LockOptions::default();
        let new = lease_for(
            "pake-prod",
            "pake-lock-backend-prod",
            "bob",
            &opts,
            now,
            Some(&old),
        );
        let spec = new.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("bob"));
        assert_eq!(spec.lease_transitions, Some(3));
        assert_eq!(spec.lease_duration_seconds, Some(30));
        assert_eq!(spec.renew_time, Some(MicroTime(now)));
        assert_eq!(new.metadata.resource_version.as_deref(), Some("7"));
        // A brand-new Lease starts at 0 transitions and has no resourceVersion.
        let fresh = lease_for("pake-prod", "l", "bob", &opts, now, None);
        assert_eq!(fresh.spec.unwrap().lease_transitions, Some(0));
        assert_eq!(fresh.metadata.resource_version, None);
        // Taking over a lease whose holder was cleared is not a transition.
        let cleared = lease(None, 60, 30, now);
        let t = lease_for("pake-prod", "l", "bob", &opts, now, Some(&cleared));
        assert_eq!(t.spec.unwrap().lease_transitions, Some(2));
    }

    #[test]
    fn ours_needs_same_holder_and_acquire_time() {
        let now = Timestamp::now();
        let l = lease(Some("bob"), 0, 30, now);
        let acquired = l.spec.as_ref().unwrap().acquire_time.clone();
        assert!(is_ours(&l, "bob", &acquired));
        assert!(!is_ours(&l, "ann", &acquired));
        assert!(!is_ours(&l, "bob", &Some(MicroTime(now))));
    }

    #[test]
    fn held_error_names_holder_since_and_is_recognizable() {
        let now = Timestamp::now();
        let e = held_error("Lease ns/l", "ann@ci pid 1", Some(now), now, 30);
        assert!(
            e.message
                .contains("another pake run holds the lock: ann@ci pid 1 since")
        );
        assert_eq!(e.object.as_deref(), Some("Lease ns/l"));
        assert!(e.fix.as_deref().unwrap().contains("--wait-lock"));
        assert_eq!(held_by(&e).as_deref(), Some("ann@ci pid 1"));
        assert!(!is_namespace_missing(&e));
        assert_eq!(e.kind, crate::ExitCode::Failed);
    }

    #[test]
    fn holder_identity_has_user_host_and_pid() {
        let id = holder_identity();
        let (user_host, pid) = id.split_once(" pid ").unwrap();
        assert_eq!(pid, std::process::id().to_string());
        let (user, host) = user_host.split_once('@').unwrap();
        assert!(!user.is_empty() && !host.is_empty(), "{id}");
    }
}
