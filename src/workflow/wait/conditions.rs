//! Pure conditions over object status, unit tested without a cluster (the
//! `kube_runtime::wait::conditions` half of kube-rs's shape): workload
//! rollout states with `kubectl rollout status` semantics, the one Pod-Ready
//! predicate, and the classification of failures that waiting cannot heal.

use ::kube::api::ObjectMeta;
use ::kube::core::Selector;
use ::kube::runtime::wait::Condition;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::*;

/// Container waiting reasons that never resolve by themselves: the new
/// revision is broken and waiting longer only delays the rollback.
pub const FATAL_WAITING_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "InvalidImageName",
    "RunContainerError",
];

/// A container that terminated with a non-zero exit code this many times is
/// treated as crashing even before the kubelet reports `CrashLoopBackOff`.
pub const RESTART_THRESHOLD: i32 = 3;

/// Label the Deployment controller puts on a ReplicaSet and its pods.
pub(super) const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Label the StatefulSet and DaemonSet controllers put on their pods.
pub(super) const CONTROLLER_REVISION_HASH: &str = "controller-revision-hash";
/// Revision number of a Deployment and of each of its ReplicaSets.
pub(super) const DEPLOYMENT_REVISION: &str = "deployment.kubernetes.io/revision";
/// Template generation of a DaemonSet (annotation) and of its pods (label);
/// the DaemonSet controller treats a pod as updated if either this or the
/// revision hash matches, and so do we.
pub(super) const DS_TEMPLATE_GENERATION_ANNOTATION: &str =
    "deprecated.daemonset.template.generation";
pub(super) const DS_TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// `progressDeadlineSeconds: 2147483647` means "no deadline".
pub(super) const NO_PROGRESS_DEADLINE: i32 = i32::MAX;

// ---------------------------------------------------------------------------
// Pure predicates
// ---------------------------------------------------------------------------

/// `kubectl rollout status deployment/x`, as a pure function.
///
/// Order and meaning follow kubectl: wait until the controller has seen the
/// latest spec (observedGeneration >= generation); ProgressDeadlineExceeded on
/// the Progressing condition is a failure; then all replicas updated, no old
/// replicas left, and all updated replicas available. A paused Deployment that
/// is not complete can never finish, so it is reported as a failure instead of
/// running into the timeout.
pub fn deployment_state(d: &Deployment) -> RolloutState {
    let object = object_name("Deployment", &d.metadata);
    let spec = d.spec.clone().unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    let generation = d.metadata.generation.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0);
    if observed < generation {
        return RolloutState::Progressing(format!(
            "waiting for the deployment controller to observe generation {generation} (observed {observed})"
        ));
    }
    let deadline_exceeded = status.conditions.iter().flatten().find(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if let Some(c) = deadline_exceeded {
        let secs = spec
            .progress_deadline_seconds
            .map(|s| format!(" ({s}s)"))
            .unwrap_or_default();
        return RolloutState::Failed(RolloutFailure {
            object,
            reason: "ProgressDeadlineExceeded".into(),
            message: format!(
                "the deployment made no progress within its progress deadline{secs}: {}",
                c.message.as_deref().unwrap_or("no message")
            ),
            fix: progress_fix(&d.metadata, &spec.selector),
        });
    }
    let desired = spec.replicas.unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let waiting = if updated < desired {
        Some(format!(
            "{updated} of {} have been updated",
            plural(desired, "new replica", "new replicas")
        ))
    } else if replicas > updated {
        Some(format!(
            "{} pending termination",
            plural(replicas - updated, "old replica is", "old replicas are")
        ))
    } else if available < updated {
        Some(format!(
            "{available} of {} available",
            plural(updated, "updated replica is", "updated replicas are")
        ))
    } else {
        None
    };
    match waiting {
        None => RolloutState::Complete,
        Some(w) if spec.paused == Some(true) => RolloutState::Failed(RolloutFailure {
            fix: format!(
                "resume it with `kubectl rollout resume deployment/{} -n {}`, or remove `paused: true` from the manifest",
                d.metadata.name.as_deref().unwrap_or(""),
                d.metadata.namespace.as_deref().unwrap_or("")
            ),
            object,
            reason: "DeploymentPaused".into(),
            message: format!("the deployment is paused, so the rollout cannot finish ({w})"),
        }),
        Some(w) => RolloutState::Progressing(w),
    }
}

/// `kubectl rollout status statefulset/x`, as a pure function.
///
/// kubectl refuses OnDelete (pods are only replaced when someone deletes them,
/// so waiting is pointless); so do we, as a failure with a fix. With a
/// partition only the pods at or above it must be updated. Without one, all
/// replicas must be ready and updated and the controller must have moved
/// currentRevision to updateRevision.
pub fn statefulset_state(s: &StatefulSet) -> RolloutState {
    let object = object_name("StatefulSet", &s.metadata);
    let spec = s.spec.clone().unwrap_or_default();
    let status = s.status.clone().unwrap_or_default();
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let strategy_type = strategy.type_.as_deref().unwrap_or("RollingUpdate");
    if strategy_type != "RollingUpdate" {
        return RolloutState::Failed(RolloutFailure {
            object,
            reason: format!("{strategy_type}Unsupported"),
            message: format!(
                "rollout status is only available for the RollingUpdate strategy; with {strategy_type} pods are replaced only when deleted by hand"
            ),
            fix: "set spec.updateStrategy.type: RollingUpdate, or delete the old pods yourself and check them with `kubectl get pods`".into(),
        });
    }
    let generation = s.metadata.generation.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0);
    if observed == 0 || observed < generation {
        return RolloutState::Progressing(format!(
            "waiting for the statefulset controller to observe generation {generation} (observed {observed})"
        ));
    }
    let desired = spec.replicas.unwrap_or(1);
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    if ready < desired {
        return RolloutState::Progressing(format!(
            "{ready} of {} ready",
            plural(desired, "pod is", "pods are")
        ));
    }
    if status.replicas > desired {
        return RolloutState::Progressing(format!(
            "{} pending termination",
            plural(status.replicas - desired, "extra pod is", "extra pods are")
        ));
    }
    let partition = strategy
        .rolling_update
        .as_ref()
        .and_then(|r| r.partition)
        .unwrap_or(0);
    if partition > 0 {
        let want = (desired - partition).max(0);
        if updated < want {
            return RolloutState::Progressing(format!(
                "partitioned rollout: {updated} of {} have been updated",
                plural(want, "new pod", "new pods")
            ));
        }
        return RolloutState::Complete;
    }
    let update_revision = status.update_revision.as_deref().unwrap_or("");
    if updated < desired {
        return RolloutState::Progressing(format!(
            "{updated} of {} have been updated to revision {update_revision}",
            plural(desired, "pod", "pods")
        ));
    }
    if status.current_revision.as_deref() != Some(update_revision) {
        return RolloutState::Progressing(format!(
            "waiting for the rolling update to finish: {} at revision {update_revision}",
            plural(updated, "pod", "pods")
        ));
    }
    RolloutState::Complete
}

/// `kubectl rollout status daemonset/x`, as a pure function.
pub fn daemonset_state(d: &DaemonSet) -> RolloutState {
    let object = object_name("DaemonSet", &d.metadata);
    let spec = d.spec.clone().unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    let strategy_type = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.clone())
        .unwrap_or_else(|| "RollingUpdate".into());
    if strategy_type != "RollingUpdate" {
        return RolloutState::Failed(RolloutFailure {
            object,
            reason: format!("{strategy_type}Unsupported"),
            message: format!(
                "rollout status is only available for the RollingUpdate strategy; with {strategy_type} pods are replaced only when deleted by hand"
            ),
            fix: "set spec.updateStrategy.type: RollingUpdate, or delete the old pods yourself and check them with `kubectl get pods`".into(),
        });
    }
    let generation = d.metadata.generation.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0);
    if observed < generation {
        return RolloutState::Progressing(format!(
            "waiting for the daemonset controller to observe generation {generation} (observed {observed})"
        ));
    }
    let desired = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let available = status.number_available.unwrap_or(0);
    if updated < desired {
        return RolloutState::Progressing(format!(
            "{updated} of {} have been updated",
            plural(desired, "new pod", "new pods")
        ));
    }
    if available < desired {
        return RolloutState::Progressing(format!(
            "{available} of {} available",
            plural(desired, "updated pod is", "updated pods are")
        ));
    }
    RolloutState::Complete
}

/// A failure of one pod that will not heal by waiting: a container (or init
/// container) stuck in one of [`FATAL_WAITING_REASONS`], or terminated with a
/// non-zero exit code after at least [`RESTART_THRESHOLD`] restarts.
/// Terminating pods are never reported: they are on their way out.
pub fn pod_failure(p: &Pod) -> Option<RolloutFailure> {
    if p.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = p.status.as_ref()?;
    let object = object_name("Pod", &p.metadata);
    let init = status.init_container_statuses.iter().flatten();
    let main = status.container_statuses.iter().flatten();
    for (cs, is_init) in init.map(|c| (c, true)).chain(main.map(|c| (c, false))) {
        if let Some(f) = container_failure(&object, p, cs, is_init) {
            return Some(f);
        }
    }
    None
}

pub(super) fn container_failure(
    object: &str,
    pod: &Pod,
    cs: &ContainerStatus,
    is_init: bool,
) -> Option<RolloutFailure> {
    let what = if is_init {
        format!("init container {:?}", cs.name)
    } else {
        format!("container {:?}", cs.name)
    };
    let state = cs.state.as_ref()?;
    let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    let last_text = last
        .map(|t| {
            let mut s = format!(
                "; last exit code {} ({})",
                t.exit_code,
                t.reason.as_deref().unwrap_or("Error")
            );
            if let Some(m) = t.message.as_deref().filter(|m| !m.trim().is_empty()) {
                s.push_str(&format!(": {}", one_line(m)));
            }
            s
        })
        .unwrap_or_default();
    if let Some(w) = &state.waiting {
        let reason = w.reason.as_deref().unwrap_or("");
        if FATAL_WAITING_REASONS.contains(&reason) {
            let msg = w.message.as_deref().map(one_line).unwrap_or_default();
            let detail = if msg.is_empty() {
                String::new()
            } else {
                format!(": {msg}")
            };
            let evidence = format!(
                "{msg} {}",
                last.and_then(|t| t.message.as_deref()).unwrap_or("")
            );
            return Some(RolloutFailure {
                object: object.to_string(),
                reason: reason.to_string(),
                message: format!(
                    "{what} is waiting with {reason}{detail} (restarts: {}){last_text}",
                    cs.restart_count
                ),
                fix: container_fix(
                    reason,
                    &evidence,
                    last.and_then(|t| t.reason.as_deref()),
                    pod,
                    cs,
                ),
            });
        }
    }
    if let Some(t) = &state.terminated
        && t.exit_code != 0
        && cs.restart_count >= RESTART_THRESHOLD
    {
        let reason = t.reason.clone().unwrap_or_else(|| "Error".into());
        let msg = t.message.as_deref().map(one_line).unwrap_or_default();
        return Some(RolloutFailure {
            object: object.to_string(),
            reason: reason.clone(),
            message: format!(
                "{what} exited with code {} ({reason}) after {} restarts{}",
                t.exit_code,
                cs.restart_count,
                if msg.is_empty() {
                    String::new()
                } else {
                    format!(": {msg}")
                }
            ),
            fix: container_fix("CrashLoopBackOff", &msg, Some(&reason), pod, cs),
        });
    }
    None
}

pub(super) fn one_line(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() > 1000 {
        let cut: String = joined.chars().take(1000).collect();
        format!("{cut}…")
    } else {
        joined
    }
}

/// The guide's troubleshooting section, keyed by what the kubelet reported.
pub(super) fn container_fix(
    reason: &str,
    evidence: &str,
    last_reason: Option<&str>,
    pod: &Pod,
    cs: &ContainerStatus,
) -> String {
    let ev = evidence.to_ascii_lowercase();
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let image = pod
        .spec
        .as_ref()
        .and_then(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
                .find(|c| c.name == cs.name)
        })
        .and_then(|c| c.image.clone())
        .unwrap_or_else(|| cs.image.clone());
    let logs = format!("`kubectl logs {name} -n {ns} -c {} --previous`", cs.name);
    let read_only = "the container writes to the read-only root filesystem: mount an emptyDir volume at the path it writes (the guide mounts /tmp, /app/logs and /app/cache), keep readOnlyRootFilesystem: true";
    let permission = "the process cannot read or write its files as uid/gid 1000: create the user with `groupadd -r -g 1000 appuser && useradd -r -u 1000 -g appuser` in the Dockerfile, give it ownership of /app (COPY --chown=1000:1000), and check with `kubectl exec <pod> -- id` (uid=1000 gid=1000)";
    let non_root = "the image runs as root but the pod requires runAsNonRoot: add `USER 1000:1000` to the Dockerfile (the guide's Security Context Violations), or use an image that already does";
    match reason {
        "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" => format!(
            "check the image reference {image:?} (registry host, repository, tag or digest exist and are spelled right) and the registry credentials: the pod's imagePullSecrets must name a docker-registry Secret in namespace {ns} that may pull it"
        ),
        "CreateContainerConfigError" if ev.contains("runasnonroot") => non_root.to_string(),
        "CreateContainerConfigError" => format!(
            "a Secret or ConfigMap (or a key in it) that container {:?} references is missing: create it (pake deploy's secrets step, from its external source) or fix the reference (env valueFrom / envFrom / volumes) in the template; `kubectl describe pod {name} -n {ns}` names it",
            cs.name
        ),
        _ if ev.contains("read-only file system") => read_only.to_string(),
        _ if ev.contains("permission denied") => permission.to_string(),
        _ if ev.contains("runasnonroot") || ev.contains("will run as root") => non_root.to_string(),
        _ if last_reason == Some("OOMKilled") => format!(
            "container {:?} was killed for exceeding its memory limit (OOMKilled): raise resources.limits.memory (the guide's Resource Limits), or lower the app's memory use; `kubectl top pods -n {ns}` shows current usage",
            cs.name
        ),
        "CreateContainerError" | "RunContainerError" => format!(
            "the container runtime could not create or start the container: check that the image's command/entrypoint exists and is executable by uid 1000; `kubectl describe pod {name} -n {ns}` shows the runtime error"
        ),
        _ => format!(
            "the container exits right after it starts: read {logs}. The guide's usual causes: \"Permission denied\" ({permission}); \"Read-only file system\" ({read_only}); \"runAsNonRoot and image will run as root\" (add `USER 1000:1000` to the Dockerfile)"
        ),
    }
}

/// The ReplicaSet could not create (or delete) pods: its `ReplicaFailure`
/// condition, e.g. FailedCreate because the namespace's PodSecurity admission
/// rejected the pod template. The same text appears as a FailedCreate Event,
/// but the condition is level-triggered and stays while the problem lasts.
pub fn replicaset_failure(rs: &ReplicaSet) -> Option<RolloutFailure> {
    let cond = rs
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")?;
    let reason = cond
        .reason
        .clone()
        .unwrap_or_else(|| "ReplicaFailure".into());
    let message = cond.message.clone().unwrap_or_default();
    let ns = rs.metadata.namespace.as_deref().unwrap_or("");
    let fix = if let Some((level, checks)) = podsecurity_violations(&message) {
        format!(
            "the pod template violates the namespace's Pod Security level {level:?}; failed checks: {}. Set these fields in the pod/container securityContext (the guide's hardened Deployment: runAsNonRoot, uid/gid 1000, seccomp RuntimeDefault, allowPrivilegeEscalation: false, capabilities drop ALL), then run `pake audit` to check the manifests before deploying",
            checks.join("; ")
        )
    } else if message.contains("exceeded quota") {
        format!(
            "the namespace's ResourceQuota does not leave room for the new pods: lower the pods' requests/limits or raise the quota (`kubectl describe resourcequota -n {ns}`)"
        )
    } else if message.contains("serviceaccount") || message.contains("service account") {
        "the pod's ServiceAccount does not exist yet: create it first (pake deploy applies it in the rbac step) or fix serviceAccountName".to_string()
    } else {
        format!(
            "the ReplicaSet cannot create pods: `kubectl describe replicaset {} -n {ns}` and `kubectl get events -n {ns} --field-selector reason=FailedCreate` show the API server's answer",
            rs.metadata.name.as_deref().unwrap_or("")
        )
    };
    Some(RolloutFailure {
        object: object_name("ReplicaSet", &rs.metadata),
        reason,
        message: one_line(&message),
        fix,
    })
}

/// Split a PodSecurity admission rejection into its level and failed checks:
/// `... violates PodSecurity "restricted:latest": a (x), b (y)` gives
/// `("restricted:latest", ["a (x)", "b (y)"])`.
pub fn podsecurity_violations(message: &str) -> Option<(String, Vec<String>)> {
    const MARK: &str = "violates PodSecurity \"";
    let rest = &message[message.find(MARK)? + MARK.len()..];
    let (level, rest) = rest.split_once('"')?;
    let checks_text = rest.strip_prefix(':').unwrap_or(rest).trim();
    let mut checks = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    let mut chars = checks_text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 && chars.peek() == Some(&' ') {
            checks.push(cur.trim().to_string());
            cur.clear();
            chars.next();
            continue;
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        checks.push(cur.trim().to_string());
    }
    Some((level.to_string(), checks))
}

pub(super) fn progress_fix(meta: &ObjectMeta, selector: &LabelSelector) -> String {
    let ns = meta.namespace.as_deref().unwrap_or("");
    let sel = Selector::try_from(selector.clone())
        .map(|s| s.to_string())
        .unwrap_or_default();
    format!(
        "find out why the new pods do not become ready: `kubectl describe pods -n {ns} -l {sel}`. Unschedulable: a nodeSelector/affinity/taint no node satisfies, or requests larger than any node; not ready: the readiness probe path/port. Raise --timeout only if the rollout is just slow"
    )
}

/// kube-runtime [`Condition`]s over the same predicates, for callers that only
/// need "is it rolled out" through `kube::runtime::wait::await_condition`
/// (no fail-fast, no old-pod check; use [`rollout`] for a deploy).
pub fn deployment_complete() -> impl Condition<Deployment> {
    |d: Option<&Deployment>| d.is_some_and(|d| deployment_state(d) == RolloutState::Complete)
}
pub fn statefulset_complete() -> impl Condition<StatefulSet> {
    |s: Option<&StatefulSet>| s.is_some_and(|s| statefulset_state(s) == RolloutState::Complete)
}
pub fn daemonset_complete() -> impl Condition<DaemonSet> {
    |d: Option<&DaemonSet>| d.is_some_and(|d| daemonset_state(d) == RolloutState::Complete)
}

/// The one Pod-Ready rule: the pod's `Ready` condition is `True` (what the
/// kubelet sets once every container passed its readiness probe).
pub fn pod_ready(p: &Pod) -> bool {
    ready_in(
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default()
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str())),
    )
}

/// [`pod_ready`] on a pod as JSON (what list calls and `pake verify` read).
pub fn pod_ready_json(p: &serde_json::Value) -> bool {
    ready_in(
        p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["type"].as_str().unwrap_or(""),
                    c["status"].as_str().unwrap_or(""),
                )
            }),
    )
}

fn ready_in<'a>(mut conditions: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
    conditions.any(|(t, s)| t == "Ready" && s == "True")
}
