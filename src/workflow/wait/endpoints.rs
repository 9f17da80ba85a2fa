//! Service endpoints, watch-driven like the rollout: the EndpointSlices of a
//! Service and the pods it selects, merged into one stream, a pure verdict
//! re-evaluated on every event; no polling. [`endpoint_verdict`] is the
//! blue-green proof (only Ready pods of one version, one per replica),
//! [`selected_verdict`] the generic check (one ready endpoint per Ready pod).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ::kube::Api;
use ::kube::runtime::WatchStreamExt;
use ::kube::runtime::reflector::store::Writer;
use ::kube::runtime::watcher;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::Value;
use tokio::time::Instant;

use super::conditions::pod_ready;
use super::rollout::{PodFeed, is_forbidden};
use crate::error::{Error, Result};
use crate::render::describe;

/// Where the active Service's endpoints stand, judged from one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointVerdict {
    /// The Service lists only Ready pods of the version, one per desired replica.
    pub converged: bool,
    /// Ready endpoints of the version.
    pub ready: usize,
    /// What is still missing (or "ok").
    pub message: String,
}

fn names(set: &BTreeSet<String>) -> String {
    let v: Vec<&str> = set.iter().map(String::as_str).take(3).collect();
    let more = set.len().saturating_sub(3);
    if more > 0 {
        format!("{} and {more} more", v.join(", "))
    } else {
        v.join(", ")
    }
}

/// Does the Service serve only `version`? `slices` are the Service's
/// EndpointSlices, `pods` the pods labelled with the version, `desired` its
/// Deployment's replicas. Converged when every endpoint is a Ready pod of the
/// version that carries the Service's ports, every Ready pod of the version
/// is an endpoint, and there is one per desired replica. An endpoint with no
/// port is a Service whose targetPort names no container port: kube-proxy
/// would send it nothing.
pub fn endpoint_verdict(
    slices: &[EndpointSlice],
    pods: &[Pod],
    version: &str,
    desired: i32,
    service_has_ports: bool,
) -> EndpointVerdict {
    let live: BTreeMap<&str, &Pod> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("version"))
                .map(String::as_str)
                == Some(version)
        })
        .filter_map(|p| Some((p.metadata.name.as_deref()?, p)))
        .collect();
    let ready_pods: BTreeSet<String> = live
        .iter()
        .filter(|(_, p)| pod_ready(p))
        .map(|(n, _)| n.to_string())
        .collect();
    let mut foreign = BTreeSet::new();
    let mut not_ready = BTreeSet::new();
    let mut portless = BTreeSet::new();
    let mut ready = BTreeSet::new();
    for s in slices {
        let has_ports = s.ports.as_ref().is_some_and(|p| !p.is_empty());
        for e in s.endpoints.iter().flatten() {
            let target = e
                .target_ref
                .as_ref()
                .filter(|t| t.kind.as_deref() == Some("Pod"))
                .and_then(|t| t.name.clone());
            let Some(pod) = target.filter(|n| live.contains_key(n.as_str())) else {
                foreign.insert(
                    e.target_ref
                        .as_ref()
                        .and_then(|t| t.name.clone())
                        .unwrap_or_else(|| e.addresses.join(",")),
                );
                continue;
            };
            // The API: a nil `ready` means unknown and is to be read as ready.
            if e.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                not_ready.insert(pod);
            } else {
                if service_has_ports && !has_ports {
                    portless.insert(pod.clone());
                }
                ready.insert(pod);
            }
        }
    }
    let want = desired.max(0) as usize;
    let message = if !foreign.is_empty() {
        format!(
            "{} endpoint(s) not of {version} still listed ({})",
            foreign.len(),
            names(&foreign)
        )
    } else if !portless.is_empty() {
        format!(
            "{} endpoint(s) of {version} carry no port: the Service's targetPort matches no container port of {version} ({})",
            portless.len(),
            names(&portless)
        )
    } else if !not_ready.is_empty() {
        format!(
            "{} endpoint(s) of {version} not ready ({})",
            not_ready.len(),
            names(&not_ready)
        )
    } else if ready.len() != want || ready_pods.len() != want {
        format!(
            "{} of {want} desired pod(s) of {version} are ready endpoints ({} pod(s) Ready)",
            ready.len(),
            ready_pods.len()
        )
    } else if ready != ready_pods {
        let missing: BTreeSet<String> = ready_pods.difference(&ready).cloned().collect();
        format!("ready pod(s) {} are not endpoints yet", names(&missing))
    } else {
        String::new()
    };
    EndpointVerdict {
        converged: message.is_empty(),
        ready: ready.len(),
        message: if message.is_empty() {
            format!("{} ready endpoint(s), all {version}", ready.len())
        } else {
            message
        },
    }
}

enum Ev {
    Slice(Box<watcher::Event<EndpointSlice>>),
    Pod(Box<watcher::Event<Pod>>),
}

/// What [`await_endpoints`] waits for: Service `service` listing exactly the
/// Ready pods of `app` at `version`, one per desired replica.
pub struct EndpointTarget<'a> {
    pub namespace: &'a str,
    pub service: &'a str,
    pub app: &'a str,
    pub version: &'a str,
    pub desired: i32,
    /// The Service declares ports (so every endpoint must carry one).
    pub service_has_ports: bool,
}

/// Watch the Service's EndpointSlices and the version's pods until
/// [`endpoint_verdict`] converges or `timeout` passes. No polling, no sleeps:
/// every evaluation follows a watch event. On timeout the error carries the
/// last verdict (what was still wrong).
pub async fn await_endpoints(
    client: &::kube::Client,
    t: &EndpointTarget<'_>,
    timeout: Duration,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<EndpointVerdict> {
    await_endpoints_fed(client, t, timeout, progress, None).await
}

/// The pods an [`EndpointTarget`] is about (`app=...,version=...`).
pub fn target_pod_labels(t: &EndpointTarget<'_>) -> String {
    format!("app={},version={}", t.app, t.version)
}

/// [`await_endpoints`], reading the pods from `feed` (the rollout's pod watch,
/// see [`PodFeed`]) when it watches the same selector, instead of a LIST and
/// WATCH of its own.
pub async fn await_endpoints_fed(
    client: &::kube::Client,
    t: &EndpointTarget<'_>,
    timeout: Duration,
    progress: &(dyn Fn(&str) + Send + Sync),
    feed: Option<PodFeed>,
) -> Result<EndpointVerdict> {
    let version = t.version;
    let watch = Watch {
        namespace: t.namespace,
        service: t.service,
        pod_labels: &target_pod_labels(t),
        feed,
    };
    let verdict = |s: &[EndpointSlice], p: &[Pod]| {
        endpoint_verdict(s, p, version, t.desired, t.service_has_ports)
    };
    let expired = |who: &str, last: &EndpointVerdict| {
        format!(
            "{who} did not list only Ready {version} pods within {}s: {}",
            timeout.as_secs(),
            last.message
        )
    };
    drive(client, watch, timeout, progress, verdict, expired).await
}

/// Any Service: one ready endpoint per Ready pod it selects, and at least one.
pub fn selected_verdict(slices: &[EndpointSlice], pods: &[Pod], selector: &str) -> EndpointVerdict {
    let want = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && pod_ready(p))
        .count();
    let ready = slices
        .iter()
        .flat_map(|s| s.endpoints.iter().flatten())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
        .count();
    let converged = want > 0 && ready == want;
    EndpointVerdict {
        converged,
        ready,
        message: if converged {
            format!("{ready} ready endpoint(s), one per ready pod")
        } else {
            format!("{ready} ready endpoint(s) for {want} ready pod(s) selected by {selector}")
        },
    }
}

/// Watch Service `service` until every Ready pod selected by `pod_labels`
/// (the Service's selector, `k=v,...`) is a ready endpoint, or `timeout`
/// passes; the error then carries the last verdict.
pub async fn await_selected(
    client: &::kube::Client,
    namespace: &str,
    service: &str,
    pod_labels: &str,
    timeout: Duration,
    progress: &(dyn Fn(&str) + Send + Sync),
    feed: Option<PodFeed>,
) -> Result<EndpointVerdict> {
    let watch = Watch {
        namespace,
        service,
        pod_labels,
        feed,
    };
    let verdict = |s: &[EndpointSlice], p: &[Pod]| selected_verdict(s, p, pod_labels);
    let expired = |_: &str, last: &EndpointVerdict| last.message.clone();
    drive(client, watch, timeout, progress, verdict, expired).await
}

/// Pure: do two `k=v,...` label selectors select the same pods (the same
/// terms, in any order)?
pub fn same_selector(a: &str, b: &str) -> bool {
    let terms = |s: &str| -> BTreeSet<String> {
        s.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect()
    };
    terms(a) == terms(b)
}

/// Take the feed of `feeds` that watches exactly `pod_labels`, if any.
pub fn take_feed(feeds: &mut Vec<PodFeed>, pod_labels: &str) -> Option<PodFeed> {
    let i = feeds
        .iter()
        .position(|f| same_selector(&f.selector, pod_labels))?;
    Some(feeds.swap_remove(i))
}

/// What the endpoint driver watches.
struct Watch<'a> {
    namespace: &'a str,
    service: &'a str,
    pod_labels: &'a str,
    /// The rollout's pod watch of the same selector, if there was one.
    feed: Option<PodFeed>,
}

/// The pod events: the feed's pods as an initial list, then its watch; or a
/// watch (LIST, then WATCH) of our own.
fn pod_events(
    client: &::kube::Client,
    w: &mut Watch<'_>,
) -> futures::stream::BoxStream<'static, std::result::Result<watcher::Event<Pod>, watcher::Error>> {
    match w
        .feed
        .take()
        .filter(|f| same_selector(&f.selector, w.pod_labels))
    {
        Some(f) => {
            let init = std::iter::once(watcher::Event::Init)
                .chain(f.pods.into_iter().map(watcher::Event::InitApply))
                .chain(std::iter::once(watcher::Event::InitDone))
                .map(Ok);
            futures::stream::iter(init)
                .chain(f.stream.map(|r| r.map_err(|(_, e)| e)))
                .boxed()
        }
        None => watcher::watcher(
            Api::<Pod>::namespaced(client.clone(), w.namespace),
            watcher::Config::default().labels(w.pod_labels),
        )
        .default_backoff()
        .boxed(),
    }
}

/// The driver: both watches merged, `verdict` after every event once both
/// lists are synced, `expired` words the timeout.
async fn drive(
    client: &::kube::Client,
    mut w: Watch<'_>,
    timeout: Duration,
    progress: &(dyn Fn(&str) + Send + Sync),
    verdict: impl Fn(&[EndpointSlice], &[Pod]) -> EndpointVerdict,
    expired: impl Fn(&str, &EndpointVerdict) -> String,
) -> Result<EndpointVerdict> {
    let (ns, service) = (w.namespace, w.service);
    let deadline = Instant::now() + timeout;
    let slices = watcher::watcher(
        Api::<EndpointSlice>::namespaced(client.clone(), ns),
        watcher::Config::default().labels(&format!("kubernetes.io/service-name={service}")),
    )
    .default_backoff()
    .map(|r| {
        r.map(|e| Ev::Slice(Box::new(e)))
            .map_err(|e| ("endpointslices", e))
    });
    let pods = pod_events(client, &mut w)
        .map(|r| r.map(|e| Ev::Pod(Box::new(e))).map_err(|e| ("pods", e)));
    let mut merged = futures::stream::select(slices.boxed(), pods.boxed());
    let mut slice_store: Writer<EndpointSlice> = Writer::default();
    let mut pod_store: Writer<Pod> = Writer::default();
    let (mut slices_synced, mut pods_synced) = (false, false);
    let who = describe("Service", Some(ns), service);
    let mut last = EndpointVerdict {
        converged: false,
        ready: 0,
        message: "waiting for the EndpointSlice and pod lists".into(),
    };
    loop {
        let ev = match tokio::time::timeout_at(deadline, merged.next()).await {
            Ok(Some(ev)) => ev,
            Ok(None) => {
                return Err(Error::failed(format!("the watches of {who} ended")).on(who));
            }
            Err(_) => {
                return Err(Error::failed(expired(&who, &last)).on(who));
            }
        };
        match ev {
            Ok(Ev::Slice(e)) => {
                slices_synced |= matches!(*e, watcher::Event::InitDone);
                slice_store.apply_watcher_event(&e);
            }
            Ok(Ev::Pod(e)) => {
                pods_synced |= matches!(*e, watcher::Event::InitDone);
                pod_store.apply_watcher_event(&e);
            }
            Err((what, e)) if is_forbidden(&e) => {
                return Err(Error::cluster(format!(
                    "cannot watch {what} in {ns}: permission denied ({e})"
                ))
                .on(who)
                .fix("the identity needs list/watch on endpointslices and pods (the deployer role in templates/rbac/ has them); run `pake doctor`"));
            }
            Err((what, e)) => {
                tracing::debug!("watch of {what} for {who}: {e} (retrying)");
                continue;
            }
        }
        if !(slices_synced && pods_synced) {
            continue;
        }
        let s: Vec<EndpointSlice> = slice_store
            .as_reader()
            .state()
            .iter()
            .map(|a| (**a).clone())
            .collect();
        let p: Vec<Pod> = pod_store
            .as_reader()
            .state()
            .iter()
            .map(|a| (**a).clone())
            .collect();
        let v = verdict(&s, &p);
        if v.converged {
            return Ok(v);
        }
        if v.message != last.message {
            progress(&v.message);
        }
        last = v;
    }
}

pub fn service_has_ports(svc: &Value) -> bool {
    svc["spec"]["ports"]
        .as_array()
        .is_some_and(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ready: bool) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}}))
        .unwrap()
    }

    fn slice(ready: &[Option<bool>]) -> EndpointSlice {
        let endpoints: Vec<Value> = ready
            .iter()
            .map(|r| match r {
                Some(r) => {
                    serde_json::json!({"addresses": ["198.18.0.1"], "conditions": {"ready": r}})
                }
                None => serde_json::json!({"addresses": ["198.18.0.1"]}),
            })
            .collect();
        serde_json::from_value(serde_json::json!({"metadata": {"name": "s"}, "addressType": "IPv4", "endpoints": endpoints})).unwrap()
    }

    #[test]
    fn selectors_match_as_sets_of_terms() {
        assert!(same_selector("app=a,version=v1", "version=v1,app=a"));
        assert!(same_selector("app=a, version=v1", "app=a,version=v1"));
        assert!(!same_selector("app=a", "app=a,version=v1"));
        assert!(!same_selector("app=a,version=v1", "app=a,version=v2"));
    }

    #[test]
    fn one_ready_endpoint_per_ready_pod_and_at_least_one() {
        let pods = [pod("a", true), pod("b", true), pod("c", false)];
        // A nil `ready` counts as ready (the API's rule).
        let v = selected_verdict(&[slice(&[Some(true), None])], &pods, "app=w");
        assert!(v.converged, "{}", v.message);
        assert_eq!(v.message, "2 ready endpoint(s), one per ready pod");
        let v = selected_verdict(&[slice(&[Some(true), Some(false)])], &pods, "app=w");
        assert!(!v.converged);
        assert_eq!(
            v.message,
            "1 ready endpoint(s) for 2 ready pod(s) selected by app=w"
        );
        assert!(!selected_verdict(&[], &[], "app=w").converged);
    }

    #[test]
    fn one_pod_ready_rule_for_typed_and_json_pods() {
        for ready in [true, false] {
            let p = pod("a", ready);
            assert_eq!(pod_ready(&p), ready);
            assert_eq!(
                crate::workflow::wait::pod_ready_json(&serde_json::to_value(&p).unwrap()),
                ready
            );
        }
        assert!(!crate::workflow::wait::pod_ready_json(&serde_json::json!(
            {}
        )));
    }
}
