//! The rollout driver (the `await_condition` half): watches on the workload,
//! its pods and its ReplicaSets (or ControllerRevisions) merged into one
//! stream, the conditions re-evaluated on every event; no polling.

use std::collections::BTreeMap;
use std::time::Duration;

use ::kube::api::{Api, ObjectMeta, ResourceExt};
use ::kube::core::Selector;
use ::kube::runtime::WatchStreamExt;
use ::kube::runtime::watcher::{self, watch_object};
use futures::stream::{BoxStream, StreamExt};
use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use tokio::time::Instant;

use super::*;
use crate::error::{Error, Result};

// ---------------------------------------------------------------------------
// The driver
// ---------------------------------------------------------------------------

/// The latest snapshot of the workload being waited for.
#[derive(Debug, Clone)]
pub(super) enum Live {
    Deployment(Deployment),
    StatefulSet(StatefulSet),
    DaemonSet(DaemonSet),
}

impl Live {
    fn meta(&self) -> &ObjectMeta {
        match self {
            Live::Deployment(d) => &d.metadata,
            Live::StatefulSet(s) => &s.metadata,
            Live::DaemonSet(d) => &d.metadata,
        }
    }
    fn state(&self) -> RolloutState {
        match self {
            Live::Deployment(d) => deployment_state(d),
            Live::StatefulSet(s) => statefulset_state(s),
            Live::DaemonSet(d) => daemonset_state(d),
        }
    }
    /// The controller has acted on the latest spec, so the objects that
    /// identify the new revision (RS, updateRevision, ControllerRevision) exist.
    fn observed(&self) -> bool {
        let observed = match self {
            Live::Deployment(d) => d.status.as_ref().and_then(|s| s.observed_generation),
            Live::StatefulSet(s) => s.status.as_ref().and_then(|s| s.observed_generation),
            Live::DaemonSet(d) => d.status.as_ref().and_then(|s| s.observed_generation),
        };
        observed.unwrap_or(0) >= self.meta().generation.unwrap_or(0)
    }
    fn selector(&self) -> Option<LabelSelector> {
        match self {
            Live::Deployment(d) => d.spec.as_ref().map(|s| s.selector.clone()),
            Live::StatefulSet(s) => s.spec.as_ref().map(|s| s.selector.clone()),
            Live::DaemonSet(d) => d.spec.as_ref().map(|s| s.selector.clone()),
        }
    }
}

/// What one watch event carried.
pub(super) enum Ev {
    Workload(Option<Live>),
    ReplicaSet(watcher::Event<ReplicaSet>),
    Revision(watcher::Event<ControllerRevision>),
    /// The identity may not list ControllerRevisions: tell new DaemonSet pods
    /// by their template generation alone.
    RevisionsForbidden,
    Pod(watcher::Event<Pod>),
    /// `FailedCreatePodSandBox` Events in the namespace (see [`super::sandbox`]).
    SandboxEvent(watcher::Event<k8s_openapi::api::core::v1::Event>),
    /// The identity may not list Events: sandbox failures show only at the deadline.
    SandboxEventsForbidden,
}

/// A minimal in-memory copy of a watched collection (the `reflector` idea,
/// without the shared reader): Init/InitApply/InitDone replace it atomically.
pub(super) struct Store<K> {
    items: BTreeMap<String, K>,
    buffer: Option<BTreeMap<String, K>>,
    synced: bool,
}

impl<K: ResourceExt> Store<K> {
    fn new() -> Self {
        Store {
            items: BTreeMap::new(),
            buffer: None,
            synced: false,
        }
    }
    fn apply(&mut self, ev: watcher::Event<K>) {
        match ev {
            watcher::Event::Init => self.buffer = Some(BTreeMap::new()),
            watcher::Event::InitApply(o) => {
                self.buffer
                    .get_or_insert_with(BTreeMap::new)
                    .insert(o.name_any(), o);
            }
            watcher::Event::InitDone => {
                self.items = self.buffer.take().unwrap_or_default();
                self.synced = true;
            }
            watcher::Event::Apply(o) => {
                self.items.insert(o.name_any(), o);
            }
            watcher::Event::Delete(o) => {
                self.items.remove(&o.name_any());
            }
        }
    }
}

pub(super) fn controller_uid(meta: &ObjectMeta) -> Option<&str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

pub(super) fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

pub(super) fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// The outcome of evaluating everything seen so far.
pub(super) enum Verdict {
    Pending(String),
    Done,
    Failed(RolloutFailure),
}

/// Everything the watches have told us, and the rules that turn it into a verdict.
pub(super) struct Tracker {
    object: String,
    uid: String,
    live: Option<Live>,
    /// False after the workload was deleted during the wait.
    exists: bool,
    replicasets: Store<ReplicaSet>,
    revisions: Store<ControllerRevision>,
    revisions_forbidden: bool,
    pods: Store<Pod>,
}

/// How a pod relates to the rollout.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum PodRole {
    New,
    Old,
    /// Not ours (another controller), or the new revision is not known yet.
    Unknown,
}

impl Tracker {
    /// For a Deployment: the ReplicaSet of the current revision. The
    /// controller creates (or re-uses, on a rollback) it and stamps it with
    /// the Deployment's revision number in the same sync that bumps
    /// observedGeneration, so the match is exact once the spec is observed.
    fn new_replicaset(&self) -> Option<&ReplicaSet> {
        let Some(Live::Deployment(d)) = &self.live else {
            return None;
        };
        if !self.live.as_ref()?.observed() {
            return None;
        }
        let revision = annotation(&d.metadata, DEPLOYMENT_REVISION)?;
        self.replicasets.items.values().find(|rs| {
            controller_uid(&rs.metadata) == Some(self.uid.as_str())
                && annotation(&rs.metadata, DEPLOYMENT_REVISION) == Some(revision)
        })
    }

    /// For a DaemonSet: the hash of its newest ControllerRevision.
    fn daemonset_hash(&self) -> Option<&str> {
        self.revisions
            .items
            .values()
            .filter(|r| controller_uid(&r.metadata) == Some(self.uid.as_str()))
            .max_by_key(|r| r.revision)
            .and_then(|r| label(&r.metadata, CONTROLLER_REVISION_HASH))
    }

    fn role(&self, pod: &Pod) -> PodRole {
        let Some(live) = &self.live else {
            return PodRole::Unknown;
        };
        let owner = controller_uid(&pod.metadata);
        match live {
            Live::Deployment(_) => {
                let Some(owner) = owner else {
                    return PodRole::Unknown;
                };
                let new_rs = self.new_replicaset();
                if let Some(rs) = new_rs {
                    let new_hash = label(&rs.metadata, POD_TEMPLATE_HASH);
                    if rs.metadata.uid.as_deref() == Some(owner)
                        || (new_hash.is_some()
                            && label(&pod.metadata, POD_TEMPLATE_HASH) == new_hash)
                    {
                        return PodRole::New;
                    }
                }
                let owner_rs = self
                    .replicasets
                    .items
                    .values()
                    .find(|rs| rs.metadata.uid.as_deref() == Some(owner));
                match owner_rs {
                    // A ReplicaSet of this Deployment that is not the new one.
                    Some(rs) if controller_uid(&rs.metadata) == Some(self.uid.as_str()) => {
                        if new_rs.is_some() {
                            PodRole::Old
                        } else {
                            PodRole::Unknown
                        }
                    }
                    Some(_) => PodRole::Unknown,
                    // The RS watch matches every RS whose pods match the
                    // selector; after sync, a missing owner is an RS that was
                    // deleted (history cleanup) while its pods still terminate.
                    None if self.replicasets.synced && new_rs.is_some() => {
                        if pod
                            .metadata
                            .owner_references
                            .iter()
                            .flatten()
                            .any(|o| o.controller == Some(true) && o.kind == "ReplicaSet")
                        {
                            PodRole::Old
                        } else {
                            PodRole::Unknown
                        }
                    }
                    None => PodRole::Unknown,
                }
            }
            Live::StatefulSet(s) => {
                if owner != Some(self.uid.as_str()) || !live.observed() {
                    return PodRole::Unknown;
                }
                let Some(update) = s
                    .status
                    .as_ref()
                    .and_then(|st| st.update_revision.as_deref())
                else {
                    return PodRole::Unknown;
                };
                if label(&pod.metadata, CONTROLLER_REVISION_HASH) == Some(update) {
                    PodRole::New
                } else {
                    PodRole::Old
                }
            }
            Live::DaemonSet(d) => {
                if owner != Some(self.uid.as_str()) || !live.observed() {
                    return PodRole::Unknown;
                }
                let generation = annotation(&d.metadata, DS_TEMPLATE_GENERATION_ANNOTATION);
                let by_generation = generation.is_some()
                    && label(&pod.metadata, DS_TEMPLATE_GENERATION_LABEL) == generation;
                let hash = self.daemonset_hash();
                let by_hash =
                    hash.is_some() && label(&pod.metadata, CONTROLLER_REVISION_HASH) == hash;
                if by_generation || by_hash {
                    PodRole::New
                } else if (hash.is_some() && self.revisions.synced)
                    || (self.revisions_forbidden && generation.is_some())
                {
                    PodRole::Old
                } else {
                    PodRole::Unknown
                }
            }
        }
    }

    /// Whether old pods must be gone before the rollout counts as complete.
    /// A partitioned StatefulSet keeps old pods below the partition on purpose.
    fn requires_old_pods_gone(&self) -> bool {
        match &self.live {
            Some(Live::StatefulSet(s)) => {
                s.spec
                    .as_ref()
                    .and_then(|s| s.update_strategy.as_ref())
                    .and_then(|u| u.rolling_update.as_ref())
                    .and_then(|r| r.partition)
                    .unwrap_or(0)
                    == 0
            }
            _ => true,
        }
    }

    fn evaluate(&self) -> Verdict {
        if !self.exists {
            return Verdict::Failed(RolloutFailure {
                object: self.object.clone(),
                reason: "Deleted".into(),
                message: "the workload was deleted while waiting for its rollout".into(),
                fix: "find out who deleted it (`kubectl get events`), then deploy again".into(),
            });
        }
        let Some(live) = &self.live else {
            return Verdict::Pending("waiting for the first status".into());
        };
        let state = live.state();
        if let RolloutState::Failed(f) = state {
            return Verdict::Failed(f);
        }
        if let Some(rs) = self.new_replicaset()
            && let Some(f) = replicaset_failure(rs)
        {
            return Verdict::Failed(f);
        }
        let mut old = Vec::new();
        for pod in self.pods.items.values() {
            match self.role(pod) {
                PodRole::New => {
                    if let Some(f) = pod_failure(pod) {
                        return Verdict::Failed(f);
                    }
                }
                PodRole::Old => old.push(pod.name_any()),
                PodRole::Unknown => {}
            }
        }
        match state {
            RolloutState::Progressing(msg) => Verdict::Pending(msg),
            RolloutState::Failed(_) => unreachable!("handled above"),
            RolloutState::Complete => {
                let revision_known = match live {
                    Live::Deployment(_) => self.new_replicaset().is_some(),
                    Live::StatefulSet(_) => true,
                    Live::DaemonSet(_) => self.revisions.synced || self.revisions_forbidden,
                };
                if !self.pods.synced {
                    return Verdict::Pending("waiting for the pod list to sync".into());
                }
                if !revision_known {
                    return Verdict::Pending("waiting to see the new revision's pods".into());
                }
                if self.requires_old_pods_gone() && !old.is_empty() {
                    let n = old.len() as i32;
                    let shown: Vec<_> = old.iter().take(3).map(String::as_str).collect();
                    let more = if old.len() > 3 { ", …" } else { "" };
                    return Verdict::Pending(format!(
                        "waiting for {} to terminate ({}{more})",
                        plural(n, "old pod", "old pods"),
                        shown.join(", ")
                    ));
                }
                Verdict::Done
            }
        }
    }

    /// Why new pods are not ready yet, for the timeout message: unschedulable,
    /// or a container waiting (e.g. ContainerCreating), or a failing readiness.
    fn pending_hints(&self) -> Vec<String> {
        let mut hints = Vec::new();
        for pod in self.pods.items.values() {
            if self.role(pod) != PodRole::New || pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let Some(status) = &pod.status else { continue };
            let conds = status.conditions.iter().flatten();
            let unscheduled = conds
                .clone()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False");
            if let Some(c) = unscheduled {
                hints.push(format!(
                    "Pod {} is {}: {}",
                    pod.name_any(),
                    c.reason.as_deref().unwrap_or("not scheduled"),
                    one_line(c.message.as_deref().unwrap_or(""))
                ));
                continue;
            }
            if pod_ready(pod) {
                continue;
            }
            let waiting = status
                .container_statuses
                .iter()
                .flatten()
                .find_map(|cs| cs.state.as_ref()?.waiting.as_ref().map(|w| (cs, w)));
            match waiting {
                Some((cs, w)) => hints.push(format!(
                    "Pod {}: container {:?} waiting ({})",
                    pod.name_any(),
                    cs.name,
                    w.reason.as_deref().unwrap_or("unknown reason")
                )),
                None => hints.push(format!("Pod {} is not ready", pod.name_any())),
            }
        }
        hints
    }
}

pub(super) fn is_forbidden(e: &watcher::Error) -> bool {
    let code = match e {
        watcher::Error::InitialListFailed(::kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(::kube::Error::Api(s))
        | watcher::Error::WatchFailed(::kube::Error::Api(s)) => s.code,
        watcher::Error::WatchError(s) => s.code,
        _ => return false,
    };
    code == 401 || code == 403
}

/// Turn a watcher error into a pake error if retrying cannot help
/// (permission denied); other errors are retried by the watcher with backoff.
pub(super) fn fatal_watch_error(what: &str, e: &watcher::Error) -> Option<Error> {
    if is_forbidden(e) {
        Some(
            Error::cluster(format!("cannot watch {what}: permission denied ({e})"))
                .fix("the identity needs get/list/watch on deployments, statefulsets, daemonsets, replicasets, controllerrevisions and pods in the namespace; run `pake doctor`"),
        )
    } else {
        None
    }
}

/// Wait for the rollout of `name` to complete, failing fast on failures of
/// the new revision.
///
/// Complete means `kubectl rollout status` is satisfied *and* no pod of an
/// older revision exists any more (not even terminating). It fails at once
/// when a pod of the new revision reports one of [`FATAL_WAITING_REASONS`] or
/// keeps exiting non-zero, when the new ReplicaSet cannot create pods
/// (FailedCreate, e.g. PodSecurity), on ProgressDeadlineExceeded, or when a
/// paused Deployment cannot finish. It gives up at `timeout`, or for a
/// Deployment at `progressDeadlineSeconds` if that is shorter (both counted
/// from the start of the wait), with an error saying what was still missing.
///
/// `on_progress` receives a short human message each time the state changes.
/// Everything is driven by watches (workload, pods, ReplicaSets or
/// ControllerRevisions) merged into one stream; there is no polling.
pub async fn rollout(
    client: &::kube::Client,
    workload: Workload,
    namespace: &str,
    name: &str,
    timeout: Duration,
    on_progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<()> {
    rollout_from(
        client,
        workload,
        namespace,
        name,
        None,
        timeout,
        on_progress,
    )
    .await
    .map(drop)
}

/// The workload from an apply response, if it is a whole object (it has a
/// uid and a spec); anything else is read from the server instead.
pub(super) fn known_as<T: serde::de::DeserializeOwned>(
    known: Option<&serde_json::Value>,
) -> Option<T> {
    let v = known?;
    if v["metadata"]["uid"].as_str().is_none_or(str::is_empty) || v["spec"].is_null() {
        return None;
    }
    serde_json::from_value(v.clone()).ok()
}

/// The rollout's pod watch, handed on when the rollout is complete so the
/// endpoint proof that follows needs no LIST and WATCH of its own: the pods
/// as last seen and the still-open watch (already past its initial LIST).
pub struct PodFeed {
    /// The workload's pod selector (`k=v,...`) the watch filters by.
    pub selector: String,
    /// The pods as the rollout last saw them.
    pub pods: Vec<Pod>,
    /// The watch, to be polled for what changes next.
    pub stream: PodStream,
}

/// A pod watch (kube-runtime's watcher, with backoff).
pub type PodStream =
    BoxStream<'static, std::result::Result<watcher::Event<Pod>, (String, watcher::Error)>>;

type EvStream = BoxStream<'static, std::result::Result<Ev, (String, watcher::Error)>>;

/// How long a new pod may wait for its sandbox before the rollout also
/// watches `FailedCreatePodSandBox` Events. A healthy pod gets its sandbox in
/// well under this; a failing one needs [`sandbox::ATTEMPTS`] kubelet retries
/// (10-15 s apart) before it counts, and the Events' own LIST finds the
/// attempts made before the watch started, so fail-fast loses nothing.
pub const SANDBOX_GRACE: Duration = Duration::from_secs(3);

/// [`rollout`], starting from `known`: the workload as the server returned it
/// (the apply's response), so no GET repeats what that response says. The
/// watches that follow start from their own LIST, so nothing newer is missed.
/// Returns the pod watch for the next wait on the same pods ([`PodFeed`]).
pub async fn rollout_from(
    client: &::kube::Client,
    workload: Workload,
    namespace: &str,
    name: &str,
    known: Option<&serde_json::Value>,
    timeout: Duration,
    on_progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<PodFeed> {
    let start = Instant::now();
    let object = format!("{workload} {namespace}/{name}");
    let (live, workload_stream) =
        initial_workload(client, workload, namespace, name, known, &object).await?;
    let selector = pod_selector(&live, &object)?;
    let cfg = watcher::Config::default().labels(&selector);
    let mut streams = vec![workload_stream];
    streams.extend(owner_stream(client, workload, namespace, cfg.clone()));
    let pods: PodStream = collection_stream(
        Api::<Pod>::namespaced(client.clone(), namespace),
        cfg,
        "pods",
    )
    .boxed();
    let (limit, by_progress_deadline) = wait_limit(&live, timeout);
    let tracker = Tracker {
        object: object.clone(),
        uid: live.meta().uid.clone().unwrap_or_default(),
        live: Some(live),
        exists: true,
        replicasets: Store::new(),
        revisions: Store::new(),
        revisions_forbidden: false,
        pods: Store::new(),
    };
    let mut run = Run {
        client,
        namespace,
        tracker,
        merged: futures::stream::select_all(streams),
        pods,
        sandbox: SandboxWatch::default(),
        deadline: start + limit,
    };
    let expired = |t: &Tracker| {
        deadline_error(
            t,
            limit,
            by_progress_deadline,
            timeout,
            namespace,
            &selector,
        )
    };
    run.drive(on_progress, expired).await?;
    Ok(PodFeed {
        selector: selector.clone(),
        pods: run.tracker.pods.items.into_values().collect(),
        stream: run.pods,
    })
}

/// Stage 1: the workload (from the apply's response, else one GET) and its watch.
async fn initial_workload(
    client: &::kube::Client,
    workload: Workload,
    namespace: &str,
    name: &str,
    known: Option<&serde_json::Value>,
    object: &str,
) -> Result<(Live, EvStream)> {
    match workload {
        Workload::Deployment => {
            let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
            let d = known_or_get(&api, name, known, object).await?;
            let s = object_stream_from(
                api,
                name,
                resume_at(known, &d.metadata),
                "the Deployment",
                Live::Deployment,
            );
            Ok((Live::Deployment(d), s))
        }
        Workload::StatefulSet => {
            let api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
            let s = known_or_get(&api, name, known, object).await?;
            let at = resume_at(known, &s.metadata);
            let st = object_stream_from(api, name, at, "the StatefulSet", Live::StatefulSet);
            Ok((Live::StatefulSet(s), st))
        }
        Workload::DaemonSet => {
            let api: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
            let d = known_or_get(&api, name, known, object).await?;
            let s = object_stream_from(
                api,
                name,
                resume_at(known, &d.metadata),
                "the DaemonSet",
                Live::DaemonSet,
            );
            Ok((Live::DaemonSet(d), s))
        }
    }
}

/// The resourceVersion to watch the workload from: the apply response's, when
/// that response stood in for the GET (`known_as`); else none (LIST first).
fn resume_at(known: Option<&serde_json::Value>, meta: &ObjectMeta) -> Option<String> {
    known?;
    meta.resource_version.clone().filter(|rv| !rv.is_empty())
}

/// The workload's watch, resumed at `resource_version` (the object as the
/// apply returned it) with a bare WATCH instead of kube-runtime's LIST+WATCH;
/// when that watch ends or fails (expired version, timeout, permission), the
/// usual [`object_stream`] takes over with its own LIST, so nothing is missed.
fn object_stream_from<K>(
    api: Api<K>,
    name: &str,
    resource_version: Option<String>,
    what: &'static str,
    wrap: fn(K) -> Live,
) -> EvStream
where
    K: ::kube::Resource + Clone + serde::de::DeserializeOwned + fmt::Debug + Send + 'static,
{
    use ::kube::api::{WatchEvent, WatchParams};
    let fallback = object_stream(api.clone(), name, what, wrap);
    let Some(rv) = resource_version else {
        return fallback;
    };
    let wp = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(290);
    let resumed = futures::stream::once(async move {
        match api.watch(&wp, &rv).await {
            Ok(events) => events.boxed(),
            Err(e) => futures::stream::once(futures::future::ready(Err(e))).boxed(),
        }
    })
    .flatten()
    .take_while(|r| {
        futures::future::ready(matches!(
            r,
            Ok(WatchEvent::Added(_) | WatchEvent::Modified(_) | WatchEvent::Deleted(_))
                | Ok(WatchEvent::Bookmark(_))
        ))
    })
    .filter_map(move |r| {
        futures::future::ready(match r {
            Ok(WatchEvent::Added(o) | WatchEvent::Modified(o)) => {
                Some(Ok(Ev::Workload(Some(wrap(o)))))
            }
            Ok(WatchEvent::Deleted(_)) => Some(Ok(Ev::Workload(None))),
            _ => None,
        })
    });
    resumed.chain(fallback).boxed()
}

/// The workload from `known` (see [`known_as`]), else one GET.
async fn known_or_get<K>(
    api: &Api<K>,
    name: &str,
    known: Option<&serde_json::Value>,
    object: &str,
) -> Result<K>
where
    K: ::kube::Resource + Clone + serde::de::DeserializeOwned + fmt::Debug,
{
    if let Some(k) = known_as::<K>(known) {
        return Ok(k);
    }
    api.get_opt(name)
        .await
        .map_err(|e| Error::from_kube(format!("GET {object}"), e))?
        .ok_or_else(|| {
            Error::failed(format!(
                "{object} not found, so there is no rollout to wait for"
            ))
            .on(object.to_string())
            .fix("apply the workload first (pake deploy does), and check the name and namespace")
        })
}

/// Stage 2: the workload's pod selector as a label-selector string.
fn pod_selector(live: &Live, object: &str) -> Result<String> {
    let selector = live
        .selector()
        .ok_or_else(|| Error::failed(format!("{object} has no spec")).on(object.to_string()))?;
    Ok(Selector::try_from(selector)
        .map_err(|e| {
            Error::failed(format!("{object} has an invalid selector: {e}")).on(object.to_string())
        })?
        .to_string())
}

/// Stage 3: the watch that tells new pods from old: ReplicaSets for a
/// Deployment, ControllerRevisions for a DaemonSet, none for a StatefulSet.
fn owner_stream(
    client: &::kube::Client,
    workload: Workload,
    namespace: &str,
    cfg: watcher::Config,
) -> Option<EvStream> {
    match workload {
        Workload::Deployment => Some(
            collection_stream(
                Api::<ReplicaSet>::namespaced(client.clone(), namespace),
                cfg,
                "replicasets",
            )
            .map(|r| r.map(Ev::ReplicaSet))
            .boxed(),
        ),
        Workload::DaemonSet => Some(
            collection_stream(
                Api::<ControllerRevision>::namespaced(client.clone(), namespace),
                cfg,
                "controllerrevisions",
            )
            // ControllerRevisions only sharpen the DaemonSet's new/old pod
            // split; without permission to list them, end this watch with a
            // marker instead of failing the wait.
            .scan(false, |ended, r| {
                let item = match r {
                    _ if *ended => None,
                    Err((_, e)) if is_forbidden(&e) => {
                        *ended = true;
                        Some(Ok(Ev::RevisionsForbidden))
                    }
                    other => Some(other.map(Ev::Revision)),
                };
                futures::future::ready(item)
            })
            .boxed(),
        ),
        Workload::StatefulSet => None,
    }
}

/// Stage 4: the deadline: `timeout`, or progressDeadlineSeconds when shorter
/// (and whether that is what set it).
fn wait_limit(live: &Live, timeout: Duration) -> (Duration, bool) {
    let progress_deadline = match live {
        Live::Deployment(d) => d
            .spec
            .as_ref()
            .and_then(|s| s.progress_deadline_seconds)
            .filter(|s| *s > 0 && *s != NO_PROGRESS_DEADLINE)
            .map(|s| Duration::from_secs(s as u64)),
        _ => None,
    };
    match progress_deadline {
        Some(p) if p < timeout => (p, true),
        _ => (timeout, false),
    }
}

/// The `FailedCreatePodSandBox` Events watch, started only once a new pod
/// has waited [`SANDBOX_GRACE`] for its sandbox.
#[derive(Default)]
struct SandboxWatch {
    started: bool,
    /// When to start it (a new pod is waiting for its sandbox).
    due: Option<Instant>,
    events: Option<Store<k8s_openapi::api::core::v1::Event>>,
}

impl SandboxWatch {
    /// Arm or disarm the timer from the new pods' state.
    fn track(&mut self, new_pods: &[&Pod]) {
        if self.started {
            return;
        }
        if new_pods.iter().any(|p| sandbox::awaiting_sandbox(p)) {
            self.due
                .get_or_insert_with(|| Instant::now() + SANDBOX_GRACE);
        } else {
            self.due = None;
        }
    }
}

/// Stage 5: the watches merged and the conditions re-evaluated per event.
struct Run<'a> {
    client: &'a ::kube::Client,
    namespace: &'a str,
    tracker: Tracker,
    merged: futures::stream::SelectAll<EvStream>,
    pods: PodStream,
    sandbox: SandboxWatch,
    deadline: Instant,
}

/// What woke the driver.
enum Wake {
    Event(Box<std::result::Result<Ev, (String, watcher::Error)>>),
    Ended,
    SandboxDue,
    Deadline,
}

impl Run<'_> {
    async fn drive(
        &mut self,
        on_progress: &(dyn Fn(&str) + Send + Sync),
        expired: impl Fn(&Tracker) -> Error,
    ) -> Result<()> {
        let object = self.tracker.object.clone();
        let mut last_msg = String::new();
        let mut report = |v: &Verdict| {
            if let Verdict::Pending(m) = v
                && *m != last_msg
            {
                on_progress(m);
                last_msg = m.clone();
            }
        };
        // Report the initial state right away (from the GET).
        report(&self.tracker.evaluate());
        loop {
            match self.next().await {
                Wake::Event(ev) => self.apply(*ev)?,
                Wake::SandboxDue => self.start_sandbox_watch(),
                Wake::Ended => {
                    return Err(Error::failed(format!(
                        "the watches for {object} ended unexpectedly"
                    ))
                    .on(object.clone()));
                }
                Wake::Deadline => return Err(expired(&self.tracker)),
            }
            match self.verdict() {
                Verdict::Done => return Ok(()),
                Verdict::Failed(f) => return Err(f.into_error(&object)),
                v @ Verdict::Pending(_) => report(&v),
            }
        }
    }

    /// The next watch event, or the sandbox timer, or the deadline.
    async fn next(&mut self) -> Wake {
        let wake = match self.sandbox.due {
            Some(due) if due < self.deadline => due,
            _ => self.deadline,
        };
        let pods = (&mut self.pods).map(|r| r.map(Ev::Pod));
        let mut both = futures::stream::select(&mut self.merged, pods);
        match tokio::time::timeout_at(wake, both.next()).await {
            Ok(Some(ev)) => Wake::Event(Box::new(ev)),
            Ok(None) => Wake::Ended,
            Err(_) if wake < self.deadline => Wake::SandboxDue,
            Err(_) => Wake::Deadline,
        }
    }

    fn apply(&mut self, ev: std::result::Result<Ev, (String, watcher::Error)>) -> Result<()> {
        let (t, ns) = (&mut self.tracker, self.namespace);
        match ev {
            Ok(Ev::Workload(Some(live))) => t.live = Some(live),
            Ok(Ev::Workload(None)) => t.exists = false,
            Ok(Ev::ReplicaSet(e)) => t.replicasets.apply(e),
            Ok(Ev::Revision(e)) => t.revisions.apply(e),
            Ok(Ev::RevisionsForbidden) => {
                tracing::debug!(
                    "no permission to list controllerrevisions in {ns}: telling new DaemonSet pods by template generation"
                );
                t.revisions_forbidden = true;
            }
            Ok(Ev::Pod(e)) => t.pods.apply(e),
            Ok(Ev::SandboxEvent(e)) => self.sandbox.events.get_or_insert_with(Store::new).apply(e),
            Ok(Ev::SandboxEventsForbidden) => {
                tracing::debug!(
                    "no permission to list events in {ns}: a pod sandbox that cannot be created shows only at the deadline"
                );
            }
            Err((what, e)) => {
                if let Some(err) = fatal_watch_error(&what, &e) {
                    return Err(err.on(t.object.clone()));
                }
                tracing::debug!("watch of {what} for {}: {e} (retrying)", t.object);
            }
        }
        Ok(())
    }

    fn start_sandbox_watch(&mut self) {
        self.sandbox.started = true;
        self.sandbox.due = None;
        self.merged
            .push(sandbox_event_stream(self.client, self.namespace));
    }

    /// The tracker's verdict, or a sandbox failure of a new pod while pending.
    fn verdict(&mut self) -> Verdict {
        let verdict = self.tracker.evaluate();
        if let Verdict::Pending(_) = verdict {
            let t = &self.tracker;
            let new_pods: Vec<&Pod> = t
                .pods
                .items
                .values()
                .filter(|p| t.role(p) == PodRole::New)
                .collect();
            self.sandbox.track(&new_pods);
            if let Some(events) = &self.sandbox.events
                && let Some(f) = sandbox::failure(events.items.values(), &new_pods)
            {
                return Verdict::Failed(f);
            }
        }
        verdict
    }
}

/// The namespace's `FailedCreatePodSandBox` Events; without permission to list Events, one
/// marker and the stream ends (the wait goes on without them).
fn sandbox_event_stream(
    client: &::kube::Client,
    namespace: &str,
) -> BoxStream<'static, std::result::Result<Ev, (String, watcher::Error)>> {
    collection_stream(
        Api::<k8s_openapi::api::core::v1::Event>::namespaced(client.clone(), namespace),
        super::sandbox::watcher_config(),
        "events",
    )
    .scan(false, |ended, r| {
        let item = match r {
            _ if *ended => None,
            Err((_, e)) if is_forbidden(&e) => {
                *ended = true;
                Some(Ok(Ev::SandboxEventsForbidden))
            }
            other => Some(other.map(Ev::SandboxEvent)),
        };
        futures::future::ready(item)
    })
    .boxed()
}

pub(super) fn object_stream<K>(
    api: Api<K>,
    name: &str,
    what: &'static str,
    wrap: fn(K) -> Live,
) -> BoxStream<'static, std::result::Result<Ev, (String, watcher::Error)>>
where
    K: ::kube::Resource + Clone + serde::de::DeserializeOwned + fmt::Debug + Send + 'static,
{
    watch_object(api, name)
        .default_backoff()
        .map(move |r| match r {
            Ok(o) => Ok(Ev::Workload(o.map(wrap))),
            Err(e) => Err((what.to_string(), e)),
        })
        .boxed()
}

pub(super) fn collection_stream<K>(
    api: Api<K>,
    cfg: watcher::Config,
    what: &'static str,
) -> impl futures::Stream<Item = std::result::Result<watcher::Event<K>, (String, watcher::Error)>>
+ Send
+ 'static
where
    K: ::kube::Resource + Clone + serde::de::DeserializeOwned + fmt::Debug + Send + 'static,
{
    watcher::watcher(api, cfg)
        .default_backoff()
        .map(move |r| r.map_err(|e| (what.to_string(), e)))
}

pub(super) fn deadline_error(
    tracker: &Tracker,
    limit: Duration,
    by_progress_deadline: bool,
    timeout: Duration,
    namespace: &str,
    selector: &str,
) -> Error {
    let missing = match tracker.evaluate() {
        Verdict::Pending(m) => m,
        Verdict::Done => "complete at the last moment".into(),
        Verdict::Failed(f) => f.to_string(),
    };
    let secs = limit.as_secs();
    let mut message = if by_progress_deadline {
        format!(
            "rollout of {} failed: ProgressDeadlineExceeded: no rollout within progressDeadlineSeconds ({secs}s, shorter than --timeout {}s): {missing} after {secs}s",
            tracker.object,
            timeout.as_secs()
        )
    } else {
        format!(
            "rollout of {} timed out: {missing} after {secs}s",
            tracker.object
        )
    };
    let hints = tracker.pending_hints();
    if !hints.is_empty() {
        let shown: Vec<_> = hints.iter().take(3).cloned().collect();
        message.push_str(&format!("; {}", shown.join("; ")));
        if hints.len() > 3 {
            message.push_str(&format!("; and {} more", hints.len() - 3));
        }
    }
    Error::failed(message).on(tracker.object.clone()).fix(format!(
        "find out why the new pods do not become ready: `kubectl describe pods -n {namespace} -l {selector}` (unschedulable: nodeSelector/affinity/taints or requests larger than any node; not ready: the readiness probe). If the rollout is only slow, raise --timeout{}",
        if by_progress_deadline {
            " and spec.progressDeadlineSeconds"
        } else {
            ""
        }
    ))
}

#[cfg(test)]
mod tests {
    #![allow(unused_imports)]
    use std::collections::BTreeMap;
    use std::time::Duration;

    use ::kube::api::{ObjectMeta, ResourceExt};
    use ::kube::runtime::wait::Condition;
    use ::kube::runtime::watcher;
    use k8s_openapi::api::apps::v1::{
        ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
    };
    use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    use super::super::conditions::*;
    use super::super::*;
    use super::*;

    #[test]
    fn an_apply_response_stands_in_for_the_get() {
        let full = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "w", "uid": "u1", "generation": 2},
            "spec": {"selector": {"matchLabels": {"app": "w"}}, "template": {}}});
        let d: Deployment = known_as(Some(&full)).expect("whole object");
        assert_eq!(d.metadata.uid.as_deref(), Some("u1"));
        // Without a uid (a client-side object) or a spec: read from the server.
        let mut no_uid = full.clone();
        no_uid["metadata"]["uid"] = serde_json::Value::Null;
        assert!(known_as::<Deployment>(Some(&no_uid)).is_none());
        let mut no_spec = full.clone();
        no_spec["spec"] = serde_json::Value::Null;
        assert!(known_as::<Deployment>(Some(&no_spec)).is_none());
        assert!(known_as::<Deployment>(None).is_none());
    }
    use serde_json::json;

    fn deployment(
        spec: serde_json::Value,
        status: serde_json::Value,
        generation: i64,
    ) -> Deployment {
        let mut spec = spec;
        spec["selector"] = json!({"matchLabels": {"app": "backend"}});
        spec["template"] = json!({"metadata": {"labels": {"app": "backend"}}, "spec": {"containers": [{"name": "app", "image": "backend:1"}]}});
        serde_json::from_value(json!({
            "metadata": {"name": "backend", "namespace": "pake-prod", "generation": generation, "uid": "d-uid",
                         "annotations": {"deployment.kubernetes.io/revision": "2"}},
            "spec": spec,
            "status": status,
        }))
        .unwrap()
    }

    fn progressing(s: RolloutState) -> String {
        match s {
            RolloutState::Progressing(m) => m,
            other => panic!("expected Progressing, got {other:?}"),
        }
    }

    fn failed(s: RolloutState) -> RolloutFailure {
        match s {
            RolloutState::Failed(f) => f,
            other => panic!("expected Failed, got {other:?}"),
        }
    }

    #[test]
    fn deployment_waits_for_observed_generation() {
        let d = deployment(
            json!({"replicas": 3}),
            json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
            2,
        );
        assert!(progressing(deployment_state(&d)).contains("observe generation 2"));
    }

    #[test]
    fn deployment_follows_kubectl_order() {
        let d = deployment(
            json!({"replicas": 3}),
            json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3}),
            2,
        );
        assert_eq!(
            progressing(deployment_state(&d)),
            "1 of 3 new replicas have been updated"
        );
        let d = deployment(
            json!({"replicas": 3}),
            json!({"observedGeneration": 2, "replicas": 5, "updatedReplicas": 3, "availableReplicas": 3}),
            2,
        );
        assert_eq!(
            progressing(deployment_state(&d)),
            "2 old replicas are pending termination"
        );
        let d = deployment(
            json!({"replicas": 3}),
            json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3}),
            2,
        );
        assert_eq!(
            progressing(deployment_state(&d)),
            "1 old replica is pending termination"
        );
        let d = deployment(
            json!({"replicas": 3}),
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2}),
            2,
        );
        assert_eq!(
            progressing(deployment_state(&d)),
            "2 of 3 updated replicas are available"
        );
        let d = deployment(
            json!({"replicas": 3}),
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
            2,
        );
        assert_eq!(deployment_state(&d), RolloutState::Complete);
    }

    #[test]
    fn deployment_defaults_to_one_replica_and_zero_is_complete_at_once() {
        let d = deployment(json!({}), json!({"observedGeneration": 1}), 1);
        assert_eq!(
            progressing(deployment_state(&d)),
            "0 of 1 new replica have been updated"
        );
        let d = deployment(json!({"replicas": 0}), json!({"observedGeneration": 1}), 1);
        assert_eq!(deployment_state(&d), RolloutState::Complete);
    }

    #[test]
    fn deployment_progress_deadline_exceeded_is_a_failure() {
        let d = deployment(
            json!({"replicas": 3, "progressDeadlineSeconds": 10}),
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 0,
                   "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                   "message": "ReplicaSet \"backend-abc\" has timed out progressing."}]}),
            2,
        );
        let f = failed(deployment_state(&d));
        assert_eq!(f.reason, "ProgressDeadlineExceeded");
        assert_eq!(f.object, "Deployment pake-prod/backend");
        assert!(f.message.contains("(10s)") && f.message.contains("has timed out progressing"));
        assert!(
            f.fix
                .contains("kubectl describe pods -n pake-prod -l app=backend"),
            "{}",
            f.fix
        );
        // An old deadline condition does not count before the new spec is observed.
        let mut old = d.clone();
        old.metadata.generation = Some(3);
        assert!(matches!(
            deployment_state(&old),
            RolloutState::Progressing(_)
        ));
    }

    #[test]
    fn paused_deployment_is_reported_unless_complete() {
        let d = deployment(
            json!({"replicas": 3, "paused": true}),
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 0, "availableReplicas": 3}),
            2,
        );
        let f = failed(deployment_state(&d));
        assert_eq!(f.reason, "DeploymentPaused");
        assert!(
            f.fix
                .contains("kubectl rollout resume deployment/backend -n pake-prod")
        );
        let done = deployment(
            json!({"replicas": 3, "paused": true}),
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
            2,
        );
        assert_eq!(deployment_state(&done), RolloutState::Complete);
    }

    fn statefulset(spec: serde_json::Value, status: serde_json::Value) -> StatefulSet {
        let mut spec = spec;
        spec["selector"] = json!({"matchLabels": {"app": "db"}});
        spec["template"] = json!({"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "db:1"}]}});
        spec["serviceName"] = json!("db");
        serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "pake-prod", "generation": 2},
            "spec": spec, "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn statefulset_on_delete_is_unsupported() {
        let s = statefulset(
            json!({"replicas": 2, "updateStrategy": {"type": "OnDelete"}}),
            json!({"replicas": 2}),
        );
        let f = failed(statefulset_state(&s));
        assert_eq!(f.reason, "OnDeleteUnsupported");
        assert_eq!(f.object, "StatefulSet pake-prod/db");
    }

    #[test]
    fn statefulset_rolling_update_needs_ready_updated_and_revision() {
        let s = statefulset(
            json!({"replicas": 3}),
            json!({"replicas": 3, "observedGeneration": 0}),
        );
        assert!(progressing(statefulset_state(&s)).contains("observe generation"));
        let s = statefulset(
            json!({"replicas": 3}),
            json!({"replicas": 3, "observedGeneration": 2, "readyReplicas": 2, "updatedReplicas": 3}),
        );
        assert_eq!(progressing(statefulset_state(&s)), "2 of 3 pods are ready");
        let s = statefulset(
            json!({"replicas": 3}),
            json!({"replicas": 3, "observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 1,
                   "currentRevision": "db-1", "updateRevision": "db-2"}),
        );
        assert_eq!(
            progressing(statefulset_state(&s)),
            "1 of 3 pods have been updated to revision db-2"
        );
        let s = statefulset(
            json!({"replicas": 3}),
            json!({"replicas": 3, "observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 3,
                   "currentRevision": "db-1", "updateRevision": "db-2"}),
        );
        assert!(progressing(statefulset_state(&s)).contains("rolling update to finish"));
        let s = statefulset(
            json!({"replicas": 3, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}}),
            json!({"replicas": 3, "observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 3,
                   "currentRevision": "db-2", "updateRevision": "db-2"}),
        );
        assert_eq!(statefulset_state(&s), RolloutState::Complete);
    }

    #[test]
    fn statefulset_partition_only_needs_pods_above_it() {
        let spec = json!({"replicas": 5, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 3}}});
        let s = statefulset(
            spec.clone(),
            json!({"replicas": 5, "observedGeneration": 2, "readyReplicas": 5, "updatedReplicas": 1,
                   "currentRevision": "db-1", "updateRevision": "db-2"}),
        );
        assert_eq!(
            progressing(statefulset_state(&s)),
            "partitioned rollout: 1 of 2 new pods have been updated"
        );
        let s = statefulset(
            spec,
            json!({"replicas": 5, "observedGeneration": 2, "readyReplicas": 5, "updatedReplicas": 2,
                   "currentRevision": "db-1", "updateRevision": "db-2"}),
        );
        assert_eq!(statefulset_state(&s), RolloutState::Complete);
    }

    fn daemonset(strategy: Option<&str>, status: serde_json::Value) -> DaemonSet {
        let mut spec = json!({
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "a", "image": "a:1"}]}},
        });
        if let Some(t) = strategy {
            spec["updateStrategy"] = json!({"type": t});
        }
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "pake-prod", "generation": 4},
            "spec": spec, "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn daemonset_follows_kubectl() {
        let base = json!({"currentNumberScheduled": 3, "desiredNumberScheduled": 3, "numberMisscheduled": 0, "numberReady": 3});
        let with = |extra: serde_json::Value| {
            let mut s = base.clone();
            for (k, v) in extra.as_object().unwrap() {
                s[k] = v.clone();
            }
            s
        };
        assert!(matches!(
            daemonset_state(&daemonset(Some("OnDelete"), base.clone())),
            RolloutState::Failed(f) if f.reason == "OnDeleteUnsupported"
        ));
        let d = daemonset(None, with(json!({"observedGeneration": 3})));
        assert!(progressing(daemonset_state(&d)).contains("observe generation 4"));
        let d = daemonset(
            None,
            with(
                json!({"observedGeneration": 4, "updatedNumberScheduled": 2, "numberAvailable": 3}),
            ),
        );
        assert_eq!(
            progressing(daemonset_state(&d)),
            "2 of 3 new pods have been updated"
        );
        let d = daemonset(
            Some("RollingUpdate"),
            with(
                json!({"observedGeneration": 4, "updatedNumberScheduled": 3, "numberAvailable": 1}),
            ),
        );
        assert_eq!(
            progressing(daemonset_state(&d)),
            "1 of 3 updated pods are available"
        );
        let d = daemonset(
            None,
            with(
                json!({"observedGeneration": 4, "updatedNumberScheduled": 3, "numberAvailable": 3}),
            ),
        );
        assert_eq!(daemonset_state(&d), RolloutState::Complete);
    }

    fn pod_with(statuses: serde_json::Value, init: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "backend-7d9f-x2k4q", "namespace": "pake-prod"},
            "spec": {"containers": [{"name": "app", "image": "registry.local/backend:1.2"}],
                     "initContainers": [{"name": "migrate", "image": "registry.local/migrate:1"}]},
            "status": {"phase": "Pending", "containerStatuses": statuses, "initContainerStatuses": init},
        }))
        .unwrap()
    }

    fn waiting(name: &str, reason: &str, message: &str, restarts: i32) -> serde_json::Value {
        json!({"name": name, "image": "x", "imageID": "", "ready": false, "restartCount": restarts,
               "state": {"waiting": {"reason": reason, "message": message}}})
    }

    #[test]
    fn every_fatal_waiting_reason_fails_the_pod() {
        for reason in FATAL_WAITING_REASONS {
            let p = pod_with(json!([waiting("app", reason, "boom", 0)]), json!([]));
            let f = pod_failure(&p).unwrap_or_else(|| panic!("{reason} not detected"));
            assert_eq!(&f.reason, reason);
            assert_eq!(f.object, "Pod pake-prod/backend-7d9f-x2k4q");
            assert!(
                f.message.contains("container \"app\" is waiting with"),
                "{}",
                f.message
            );
            assert!(!f.fix.is_empty());
        }
    }

    #[test]
    fn benign_waiting_reasons_are_not_failures() {
        for reason in ["ContainerCreating", "PodInitializing"] {
            let p = pod_with(json!([waiting("app", reason, "", 0)]), json!([]));
            assert_eq!(pod_failure(&p), None, "{reason}");
        }
        let running = json!([{"name": "app", "image": "x", "imageID": "", "ready": true, "restartCount": 0,
                               "state": {"running": {}}}]);
        assert_eq!(pod_failure(&pod_with(running, json!([]))), None);
    }

    #[test]
    fn init_container_failures_count() {
        let p = pod_with(
            json!([waiting("app", "PodInitializing", "", 0)]),
            json!([waiting("migrate", "CrashLoopBackOff", "back-off", 4)]),
        );
        let f = pod_failure(&p).unwrap();
        assert!(
            f.message.starts_with("init container \"migrate\""),
            "{}",
            f.message
        );
    }

    #[test]
    fn terminating_pods_are_ignored() {
        let mut p = pod_with(
            json!([waiting("app", "CrashLoopBackOff", "", 5)]),
            json!([]),
        );
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::now(),
        ));
        assert_eq!(pod_failure(&p), None);
    }

    #[test]
    fn repeated_nonzero_exit_fails_after_threshold() {
        let term = |restarts: i32, code: i32| {
            json!([{"name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": restarts,
                    "state": {"terminated": {"exitCode": code, "reason": "Error", "message": "open /app/data: permission denied"}}}])
        };
        assert_eq!(
            pod_failure(&pod_with(term(RESTART_THRESHOLD - 1, 1), json!([]))),
            None
        );
        assert_eq!(
            pod_failure(&pod_with(term(RESTART_THRESHOLD, 0), json!([]))),
            None
        );
        let f = pod_failure(&pod_with(term(RESTART_THRESHOLD, 1), json!([]))).unwrap();
        assert_eq!(f.reason, "Error");
        assert!(f.message.contains("exited with code 1"));
        assert!(f.fix.contains("uid/gid 1000"), "{}", f.fix);
    }

    #[test]
    fn fixes_follow_the_guide_troubleshooting() {
        let fix = |reason: &str, msg: &str, last: serde_json::Value| {
            let mut st = waiting("app", reason, msg, 3);
            st["lastState"] = last;
            pod_failure(&pod_with(json!([st]), json!([]))).unwrap().fix
        };
        let none = json!({});
        assert!(
            fix("ImagePullBackOff", "", none.clone()).contains("\"registry.local/backend:1.2\"")
        );
        assert!(fix("ErrImagePull", "", none.clone()).contains("imagePullSecrets"));
        assert!(
            fix(
                "CreateContainerConfigError",
                "couldn't find key password in Secret pake-prod/db",
                none.clone()
            )
            .contains("Secret or ConfigMap")
        );
        assert!(
            fix(
                "CreateContainerConfigError",
                "container has runAsNonRoot and image will run as root",
                none.clone()
            )
            .contains("USER 1000:1000")
        );
        let ro = json!({"terminated": {"exitCode": 1, "reason": "Error", "message": "mkdir /app/cache: read-only file system"}});
        let f = fix("CrashLoopBackOff", "back-off 10s", ro);
        assert!(f.contains("emptyDir") && f.contains("/app/logs"), "{f}");
        let oom = json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}});
        assert!(fix("CrashLoopBackOff", "back-off", oom).contains("resources.limits.memory"));
        let generic = fix(
            "CrashLoopBackOff",
            "back-off",
            json!({"terminated": {"exitCode": 2, "reason": "Error"}}),
        );
        assert!(
            generic.contains("kubectl logs backend-7d9f-x2k4q -n pake-prod -c app --previous"),
            "{generic}"
        );
        assert!(generic.contains("USER 1000:1000") && generic.contains("uid/gid 1000"));
    }

    fn replicaset(conditions: serde_json::Value) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": "backend-7d9f", "namespace": "pake-prod"},
            "spec": {"selector": {"matchLabels": {"app": "backend"}}},
            "status": {"replicas": 0, "conditions": conditions},
        }))
        .unwrap()
    }

    const PSA_MESSAGE: &str = "pods \"backend-7d9f-abcde\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"app\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"app\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"app\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"app\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")";

    #[test]
    fn podsecurity_rejection_names_each_failed_check() {
        let rs = replicaset(
            json!([{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": PSA_MESSAGE}]),
        );
        let f = replicaset_failure(&rs).unwrap();
        assert_eq!(f.reason, "FailedCreate");
        assert_eq!(f.object, "ReplicaSet pake-prod/backend-7d9f");
        assert!(f.fix.contains("\"restricted:latest\""));
        assert!(f.fix.contains("pake audit"));
        let (level, checks) = podsecurity_violations(PSA_MESSAGE).unwrap();
        assert_eq!(level, "restricted:latest");
        assert_eq!(checks.len(), 4, "{checks:?}");
        assert!(checks[0].starts_with("allowPrivilegeEscalation != false (container"));
        assert!(checks[1].contains("capabilities.drop=[\"ALL\"]"));
        assert!(checks[3].starts_with("seccompProfile ("));
    }

    #[test]
    fn replicaset_without_failure_or_with_resolved_failure_is_fine() {
        assert_eq!(replicaset_failure(&replicaset(json!([]))), None);
        let resolved = json!([{"type": "ReplicaFailure", "status": "False", "reason": "FailedCreate", "message": "x"}]);
        assert_eq!(replicaset_failure(&replicaset(resolved)), None);
        let quota = json!([{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                            "message": "pods \"x\" is forbidden: exceeded quota: compute, requested: limits.memory=2Gi"}]);
        assert!(
            replicaset_failure(&replicaset(quota))
                .unwrap()
                .fix
                .contains("ResourceQuota")
        );
        assert_eq!(podsecurity_violations("something else"), None);
    }

    #[test]
    fn failure_becomes_a_pake_error_on_the_failing_object() {
        let rs = replicaset(
            json!([{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": PSA_MESSAGE}]),
        );
        let e = replicaset_failure(&rs)
            .unwrap()
            .into_error("Deployment pake-prod/backend");
        assert_eq!(e.kind, crate::ExitCode::Failed);
        assert!(
            e.message
                .starts_with("rollout of Deployment pake-prod/backend failed: FailedCreate: pods")
        );
        assert_eq!(
            e.object.as_deref(),
            Some("ReplicaSet pake-prod/backend-7d9f")
        );
    }

    #[test]
    fn conditions_match_the_predicates() {
        let done = deployment(
            json!({"replicas": 1}),
            json!({"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}),
            2,
        );
        let c = conditions::deployment_complete();
        assert!(c.matches_object(Some(&done)));
        assert!(!c.matches_object(None));
        let not = deployment(json!({"replicas": 1}), json!({"observedGeneration": 1}), 2);
        assert!(!c.matches_object(Some(&not)));
    }

    // The driver's bookkeeping, without a cluster: which pods are new or old.

    fn rs_obj(name: &str, uid: &str, hash: &str, revision: &str, owner: &str) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "pake-prod", "uid": uid,
                         "labels": {"app": "backend", "pod-template-hash": hash},
                         "annotations": {"deployment.kubernetes.io/revision": revision},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "backend", "uid": owner, "controller": true}]},
            "spec": {"selector": {"matchLabels": {"app": "backend"}}},
        }))
        .unwrap()
    }

    fn pod_obj(
        name: &str,
        hash: &str,
        owner_uid: &str,
        status: serde_json::Value,
        terminating: bool,
    ) -> Pod {
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "pake-prod", "labels": {"app": "backend", "pod-template-hash": hash},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": owner_uid, "controller": true}]},
            "spec": {"containers": [{"name": "app", "image": "backend:2"}]},
            "status": status,
        }))
        .unwrap();
        if terminating {
            p.metadata.deletion_timestamp = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
            );
        }
        p
    }

    fn tracker(d: Deployment, rss: Vec<ReplicaSet>, pods: Vec<Pod>) -> Tracker {
        let mut t = Tracker {
            object: "Deployment pake-prod/backend".into(),
            uid: "d-uid".into(),
            live: Some(Live::Deployment(d)),
            exists: true,
            replicasets: Store::new(),
            revisions: Store::new(),
            revisions_forbidden: false,
            pods: Store::new(),
        };
        t.replicasets.apply(watcher::Event::Init);
        for rs in rss {
            t.replicasets.apply(watcher::Event::InitApply(rs));
        }
        t.replicasets.apply(watcher::Event::InitDone);
        t.pods.apply(watcher::Event::Init);
        for p in pods {
            t.pods.apply(watcher::Event::InitApply(p));
        }
        t.pods.apply(watcher::Event::InitDone);
        t
    }

    fn complete_deployment() -> Deployment {
        deployment(
            json!({"replicas": 1}),
            json!({"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}),
            2,
        )
    }

    #[test]
    fn complete_status_still_waits_for_terminating_old_pods() {
        let rss = vec![
            rs_obj("backend-old", "rs1", "old", "1", "d-uid"),
            rs_obj("backend-new", "rs2", "new", "2", "d-uid"),
        ];
        let pods = vec![
            pod_obj(
                "backend-new-a",
                "new",
                "rs2",
                json!({"phase": "Running"}),
                false,
            ),
            pod_obj(
                "backend-old-a",
                "old",
                "rs1",
                json!({"phase": "Running"}),
                true,
            ),
        ];
        let mut t = tracker(complete_deployment(), rss, pods);
        match t.evaluate() {
            Verdict::Pending(m) => {
                assert_eq!(m, "waiting for 1 old pod to terminate (backend-old-a)")
            }
            _ => panic!("must wait for the old pod"),
        }
        t.pods.apply(watcher::Event::Delete(pod_obj(
            "backend-old-a",
            "old",
            "rs1",
            json!({}),
            true,
        )));
        assert!(matches!(t.evaluate(), Verdict::Done));
    }

    #[test]
    fn pods_of_a_deleted_old_replicaset_are_old() {
        let rss = vec![rs_obj("backend-new", "rs2", "new", "2", "d-uid")];
        let pods = vec![pod_obj(
            "backend-gone-a",
            "gone",
            "rs-deleted",
            json!({}),
            true,
        )];
        let t = tracker(complete_deployment(), rss, pods);
        assert!(matches!(t.evaluate(), Verdict::Pending(m) if m.contains("1 old pod")));
    }

    #[test]
    fn only_new_pods_fail_fast() {
        let crash = json!({"phase": "Running", "containerStatuses": [waiting("app", "CrashLoopBackOff", "back-off", 4)]});
        let rss = vec![
            rs_obj("backend-old", "rs1", "old", "1", "d-uid"),
            rs_obj("backend-new", "rs2", "new", "2", "d-uid"),
        ];
        let rolling = deployment(
            json!({"replicas": 2}),
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2}),
            2,
        );
        let t = tracker(
            rolling.clone(),
            rss.clone(),
            vec![pod_obj("backend-old-a", "old", "rs1", crash.clone(), false)],
        );
        assert!(
            matches!(t.evaluate(), Verdict::Pending(_)),
            "old pod failure must be ignored"
        );
        let t = tracker(
            rolling,
            rss,
            vec![pod_obj("backend-new-a", "new", "rs2", crash, false)],
        );
        match t.evaluate() {
            Verdict::Failed(f) => {
                assert_eq!(f.reason, "CrashLoopBackOff");
                assert_eq!(f.object, "Pod pake-prod/backend-new-a");
            }
            _ => panic!("new pod failure must fail fast"),
        }
    }

    #[test]
    fn new_replicaset_failure_fails_fast_but_old_does_not() {
        let failing = |mut rs: ReplicaSet| {
            rs.status = Some(serde_json::from_value(json!({"replicas": 0, "conditions": [
                {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": PSA_MESSAGE}]})).unwrap());
            rs
        };
        let rolling = deployment(
            json!({"replicas": 1}),
            json!({"observedGeneration": 2, "replicas": 1, "updatedReplicas": 0, "availableReplicas": 1}),
            2,
        );
        let t = tracker(
            rolling.clone(),
            vec![
                failing(rs_obj("backend-old", "rs1", "old", "1", "d-uid")),
                rs_obj("backend-new", "rs2", "new", "2", "d-uid"),
            ],
            vec![],
        );
        assert!(matches!(t.evaluate(), Verdict::Pending(_)));
        let t = tracker(
            rolling,
            vec![
                rs_obj("backend-old", "rs1", "old", "1", "d-uid"),
                failing(rs_obj("backend-new", "rs2", "new", "2", "d-uid")),
            ],
            vec![],
        );
        assert!(matches!(t.evaluate(), Verdict::Failed(f) if f.reason == "FailedCreate"));
    }

    #[test]
    fn complete_needs_synced_pods_and_known_new_replicaset() {
        // The RS of the Deployment's revision is not seen yet: not done.
        let t = tracker(
            complete_deployment(),
            vec![rs_obj("backend-old", "rs1", "old", "1", "d-uid")],
            vec![],
        );
        assert!(matches!(t.evaluate(), Verdict::Pending(_)));
        let mut t = tracker(
            complete_deployment(),
            vec![rs_obj("backend-new", "rs2", "new", "2", "d-uid")],
            vec![],
        );
        t.pods = Store::new();
        assert!(matches!(t.evaluate(), Verdict::Pending(m) if m.contains("sync")));
    }

    #[test]
    fn deleted_workload_fails() {
        let mut t = tracker(complete_deployment(), vec![], vec![]);
        t.exists = false;
        assert!(matches!(t.evaluate(), Verdict::Failed(f) if f.reason == "Deleted"));
    }

    #[test]
    fn timeout_message_says_what_is_missing() {
        let d = deployment(
            json!({"replicas": 3}),
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2}),
            2,
        );
        let unsched = json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                                                  "message": "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."}]});
        let t = tracker(
            d,
            vec![rs_obj("backend-new", "rs2", "new", "2", "d-uid")],
            vec![pod_obj("backend-new-c", "new", "rs2", unsched, false)],
        );
        let e = deadline_error(
            &t,
            Duration::from_secs(120),
            false,
            Duration::from_secs(120),
            "pake-prod",
            "app=backend",
        );
        assert_eq!(e.kind, crate::ExitCode::Failed);
        assert!(
            e.message.starts_with("rollout of Deployment pake-prod/backend timed out: 2 of 3 updated replicas are available after 120s"),
            "{}",
            e.message
        );
        assert!(
            e.message
                .contains("Pod backend-new-c is Unschedulable: 0/2 nodes"),
            "{}",
            e.message
        );
        assert!(
            e.fix
                .unwrap()
                .contains("kubectl describe pods -n pake-prod -l app=backend")
        );
        let e = deadline_error(
            &t,
            Duration::from_secs(8),
            true,
            Duration::from_secs(120),
            "pake-prod",
            "app=backend",
        );
        assert!(
            e.message.starts_with(
                "rollout of Deployment pake-prod/backend failed: ProgressDeadlineExceeded: no rollout within progressDeadlineSeconds (8s, shorter than --timeout 120s): 2 of 3 updated replicas are available after 8s"
            ),
            "{}",
            e.message
        );
        assert!(e.fix.unwrap().contains("spec.progressDeadlineSeconds"));
    }
}
