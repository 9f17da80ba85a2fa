//! Fail fast when the kubelet cannot create a new pod's sandbox.
//!
//! A pod whose sandbox (its network namespace and pause container) cannot be created stays
//! `ContainerCreating`: no container status ever says why. The reason exists only as
//! `FailedCreatePodSandBox` Events on the pod, which the kubelet repeats on every retry (about
//! every 10-15 s) with the runtime's message, e.g. containerd refusing `runAsGroup` without
//! `runAsUser`, a CNI plugin that cannot set up the network, an unknown RuntimeClass handler or
//! a sandbox (pause) image it cannot pull. The rollout wait watches those Events in the
//! namespace (once a new pod has waited `rollout::SANDBOX_GRACE` for its sandbox, so a healthy
//! rollout makes no Events requests) and fails on the new revision's pod once the same failure came back after a
//! retry ([`ATTEMPTS`]): a single failure can be transient (a CNI plugin still starting).

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::ResourceExt;
use kube::runtime::watcher;

use super::{RolloutFailure, one_line};

/// The Event reason the kubelet reports.
pub const REASON: &str = "FailedCreatePodSandBox";

/// Failed attempts (the Event's count, summed over a pod's Events) that make it fatal.
pub const ATTEMPTS: i32 = 2;

/// Only the sandbox failures of pods in the namespace.
pub fn watcher_config() -> watcher::Config {
    watcher::Config::default().fields(&format!("reason={REASON},involvedObject.kind=Pod"))
}

/// Pure: could `pod` be failing to get its sandbox? It is on a node, still
/// `Pending`, not being deleted, and the kubelet has not reported
/// `PodReadyToStartContainers` (the sandbox is up). Only such pods can have
/// `FailedCreatePodSandBox` Events, so the rollout watches Events only while one
/// of the new pods stays like this (see `rollout::SANDBOX_GRACE`).
pub fn awaiting_sandbox(pod: &Pod) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let on_node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let Some(status) = pod.status.as_ref() else {
        return on_node;
    };
    let pending = status.phase.as_deref().is_none_or(|p| p == "Pending");
    let sandbox_up = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "PodReadyToStartContainers" && c.status == "True");
    on_node && pending && !sandbox_up
}

/// How many attempts an Event stands for (`count`, or the series' count, at least 1).
fn attempts(e: &Event) -> i32 {
    e.series
        .as_ref()
        .and_then(|s| s.count)
        .or(e.count)
        .unwrap_or(1)
        .max(1)
}

/// When the Event last happened (for picking the latest message).
fn last_seen(e: &Event) -> Option<String> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
}

/// Pure: the first of `new_pods` whose sandbox failed at least [`ATTEMPTS`] times, judged
/// from `events` (matched to the pod by uid, so a recreated pod of the same name starts over).
pub fn failure<'a>(
    events: impl IntoIterator<Item = &'a Event> + Clone,
    new_pods: &[&Pod],
) -> Option<RolloutFailure> {
    for pod in new_pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(uid) = pod.metadata.uid.as_deref() else {
            continue;
        };
        let mine: Vec<&Event> = events
            .clone()
            .into_iter()
            .filter(|e| {
                e.reason.as_deref() == Some(REASON) && e.involved_object.uid.as_deref() == Some(uid)
            })
            .collect();
        let total: i32 = mine.iter().map(|e| attempts(e)).sum();
        if total < ATTEMPTS {
            continue;
        }
        let latest = mine.iter().max_by_key(|e| last_seen(e))?;
        let message = one_line(latest.message.as_deref().unwrap_or(""));
        let ns = pod.namespace().unwrap_or_default();
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        return Some(RolloutFailure {
            object: format!("Pod {ns}/{}", pod.name_any()),
            reason: REASON.into(),
            message: format!("the pod's sandbox cannot be created ({total} attempts): {message}"),
            fix: fix(&message, &ns, &pod.name_any(), &node),
        });
    }
    None
}

/// The next step, from what the container runtime said.
pub fn fix(message: &str, ns: &str, pod: &str, node: &str) -> String {
    let m = message.to_ascii_lowercase();
    let describe = format!("`kubectl describe pod {pod} -n {ns}` shows the kubelet's events");
    if m.contains("specified without user") {
        "the container runtime refuses runAsGroup without runAsUser: set securityContext.runAsUser next to runAsGroup (the guide's securityContext: runAsUser 1000, runAsGroup 1000)".into()
    } else if m.contains("runtimehandler")
        || m.contains("runtime handler")
        || m.contains("runtimeclass")
        || m.contains("no runtime for")
    {
        format!(
            "the pod names a RuntimeClass whose handler node {node} does not have: fix or drop runtimeClassName, or schedule onto nodes that have it ({describe})"
        )
    } else if m.contains("cni") || m.contains("network") {
        format!(
            "the network plugin (CNI) on node {node} could not set up the pod's network: check the CNI configuration and pod address pool on that node ({describe})"
        )
    } else if m.contains("pause") || m.contains("sandbox image") || m.contains("pull") {
        format!(
            "node {node} cannot pull its sandbox (pause) image: check the runtime's sandbox_image and the node's registry access ({describe})"
        )
    } else {
        format!(
            "the container runtime on node {node} refused the pod's sandbox: fix what the message names, then deploy again ({describe})"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "app-v1-abc", "namespace": "ns", "uid": uid},
            "spec": {"nodeName": "pake-node-0", "containers": [{"name": "app"}]}
        }))
        .unwrap()
    }

    fn event(uid: &str, count: i32, last: &str, message: &str) -> Event {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("e-{last}"), "namespace": "ns"},
            "involvedObject": {"kind": "Pod", "name": "app-v1-abc", "namespace": "ns", "uid": uid},
            "reason": REASON, "count": count, "lastTimestamp": last, "message": message
        }))
        .unwrap()
    }

    const NO_USER: &str = "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to generate sanbdox container spec options: failed to generate user string: user group \"1000\" is specified without user";

    #[test]
    fn a_retried_failure_of_a_new_pod_is_fatal() {
        let p = pod("u1");
        let once = [event("u1", 1, "2026-01-01T00:00:00Z", NO_USER)];
        assert_eq!(failure(&once, &[&p]), None, "one failure may be transient");
        let twice = [event("u1", 2, "2026-01-01T00:00:12Z", NO_USER)];
        let f = failure(&twice, &[&p]).expect("fatal after a retry");
        assert_eq!(f.object, "Pod ns/app-v1-abc");
        assert_eq!(f.reason, REASON);
        assert!(
            f.message.contains("is specified without user") && f.message.contains("2 attempts"),
            "{f:?}"
        );
        assert!(f.fix.contains("runAsUser"), "{f:?}");
        // Two Events of one attempt each count too; the latest message is shown.
        let two = [
            event(
                "u1",
                1,
                "2026-01-01T00:00:00Z",
                "failed to setup network for sandbox: cni plugin not initialized",
            ),
            event("u1", 1, "2026-01-01T00:00:12Z", NO_USER),
        ];
        assert!(
            failure(&two, &[&p])
                .unwrap()
                .message
                .contains("without user")
        );
    }

    #[test]
    fn other_pods_and_deleted_pods_are_ignored() {
        let evs = [event("other-uid", 5, "2026-01-01T00:00:00Z", NO_USER)];
        assert_eq!(failure(&evs, &[&pod("u1")]), None);
        let mut gone = pod("other-uid");
        gone.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-01-01T00:00:00Z".parse().unwrap(),
            ));
        assert_eq!(failure(&evs, &[&gone]), None);
    }

    #[test]
    fn only_scheduled_pending_pods_without_a_sandbox_await_one() {
        let p = |v: serde_json::Value| -> Pod { serde_json::from_value(v).unwrap() };
        let unscheduled = p(
            serde_json::json!({"metadata": {"name": "a"}, "spec": {"containers": []}, "status": {"phase": "Pending"}}),
        );
        assert!(!awaiting_sandbox(&unscheduled));
        let waiting = p(
            serde_json::json!({"metadata": {"name": "a"}, "spec": {"nodeName": "n", "containers": []}, "status": {"phase": "Pending"}}),
        );
        assert!(awaiting_sandbox(&waiting));
        let no_status = p(
            serde_json::json!({"metadata": {"name": "a"}, "spec": {"nodeName": "n", "containers": []}}),
        );
        assert!(awaiting_sandbox(&no_status));
        let sandbox_up = p(
            serde_json::json!({"metadata": {"name": "a"}, "spec": {"nodeName": "n", "containers": []}, "status": {"phase": "Pending", "conditions": [{"type": "PodReadyToStartContainers", "status": "True"}]}}),
        );
        assert!(!awaiting_sandbox(&sandbox_up));
        let running = p(
            serde_json::json!({"metadata": {"name": "a"}, "spec": {"nodeName": "n", "containers": []}, "status": {"phase": "Running"}}),
        );
        assert!(!awaiting_sandbox(&running));
        let deleted = p(
            serde_json::json!({"metadata": {"name": "a", "deletionTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"nodeName": "n", "containers": []}, "status": {"phase": "Pending"}}),
        );
        assert!(!awaiting_sandbox(&deleted));
    }

    #[test]
    fn fixes_follow_the_runtime_message() {
        assert!(
            fix(
                "failed to setup network for sandbox: plugin type=\"bridge\" failed",
                "ns",
                "p",
                "n0"
            )
            .contains("CNI")
        );
        assert!(
            fix("no runtime for \"gvisor\" is configured", "ns", "p", "n0")
                .contains("RuntimeClass")
        );
        assert!(
            fix(
                "failed to pull image \"registry.k8s.io/pause:3.10\"",
                "ns",
                "p",
                "n0"
            )
            .contains("pause")
        );
        let other = fix("something else", "ns", "p", "n0");
        assert!(
            other.contains("kubectl describe pod p -n ns") && other.contains("n0"),
            "{other}"
        );
    }
}
