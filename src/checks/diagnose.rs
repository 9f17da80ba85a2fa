//! `pake diagnose`: the guide's troubleshooting section as pure functions.
//!
//! In: what the cluster showed about one release ([`Snapshot`]: pods with their
//! container states, ReplicaSets, Services and EndpointSlices, nodes, Warning
//! events, the last log lines of failing containers, the image's configured
//! user, what an in-pod probe read). Out: [`Diagnosis`] values, each naming the
//! cause (a guide recipe), the object, the evidence it rests on and the fix as a
//! ready change to pake.yaml, a template or the Dockerfile. No I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

/// What went wrong: one of the guide's troubleshooting recipes (or a neighbour
/// an experienced operator checks next to them).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING-KEBAB-CASE")]
pub enum Cause {
    /// "Read-only file system": the app writes outside its writable mounts.
    ReadOnlyFilesystem,
    /// "Permission denied": the uid/gid cannot use the app's files.
    PermissionDenied,
    /// "container has runAsNonRoot and image will run as root".
    RunAsRoot,
    /// The pod template violates the namespace's Pod Security level.
    PodSecurity,
    /// The container was killed at its memory limit.
    OomKilled,
    /// The image cannot be pulled.
    ImagePull,
    /// A Secret, ConfigMap or key the container references is missing.
    MissingConfig,
    /// The runtime could not create or start the container.
    RunContainer,
    /// The container exits with an error and is restarted (no known recipe matched).
    CrashLoop,
    /// Running but never Ready (its readiness probe fails).
    NotReady,
    /// No node has room (or matches): the pod stays Pending.
    Unschedulable,
    /// The ReplicaSet cannot create pods for another reason (quota, ServiceAccount).
    FailedCreate,
    /// The Service selects no ready pod, or its targetPort is no container's port.
    NoEndpoints,
    /// A NetworkPolicy blocks the connection (`pake diagnose connectivity`).
    NetworkPolicy,
    /// The policies deny a connection that succeeded: the cluster does not enforce them.
    PolicyNotEnforced,
    /// The destination did not answer although the policies allow it.
    Unreachable,
    /// No pod of the release exists (nothing deployed, scaled to zero, or deleted).
    NoPods,
    /// Pods on a simulated (kwok) node: nothing runs there, container checks cannot be proven.
    SimulatedNode,
}

impl Cause {
    pub fn id(self) -> &'static str {
        match self {
            Cause::ReadOnlyFilesystem => "READ-ONLY-FILESYSTEM",
            Cause::PermissionDenied => "PERMISSION-DENIED",
            Cause::RunAsRoot => "RUN-AS-ROOT",
            Cause::PodSecurity => "POD-SECURITY",
            Cause::OomKilled => "OOM-KILLED",
            Cause::ImagePull => "IMAGE-PULL",
            Cause::MissingConfig => "MISSING-CONFIG",
            Cause::RunContainer => "RUN-CONTAINER",
            Cause::CrashLoop => "CRASH-LOOP",
            Cause::NotReady => "NOT-READY",
            Cause::Unschedulable => "UNSCHEDULABLE",
            Cause::FailedCreate => "FAILED-CREATE",
            Cause::NoEndpoints => "NO-ENDPOINTS",
            Cause::NetworkPolicy => "NETWORK-POLICY",
            Cause::PolicyNotEnforced => "POLICY-NOT-ENFORCED",
            Cause::Unreachable => "UNREACHABLE",
            Cause::NoPods => "NO-PODS",
            Cause::SimulatedNode => "SIMULATED-NODE",
        }
    }
}

/// Whether a diagnosis is a problem or something that could not be observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    /// Something is wrong (exit 1).
    Problem,
    /// Could not be observed here ("not provable on a simulated node"); never a pass.
    NotProvable,
}

/// Where a fix goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Target {
    /// pake.yaml (the environment's override where it applies).
    PakeYaml,
    /// The Deployment template (`templates/k8s/deployment.yaml`).
    Template,
    /// The Dockerfile `pake build` uses.
    Dockerfile,
    /// A NetworkPolicy to add (a template of its own).
    NetworkPolicy,
    /// Nothing to edit in the project: an action on the cluster or registry.
    Cluster,
}

/// The fix: what to do, and where possible the change to make, ready to paste.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Fix {
    pub summary: String,
    pub target: Target,
    /// The file the change goes into, when the project names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Lines to add or change (YAML or Dockerfile).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
}

/// One finding of `pake diagnose`.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Diagnosis {
    pub check: Cause,
    pub status: Status,
    /// `Pod ns/name container c`, `ReplicaSet ns/name`, `Service ns/name`.
    pub object: String,
    /// One line: what is wrong.
    pub summary: String,
    /// What it rests on: states, exit codes, log lines (redacted), event texts, probe output.
    pub evidence: Vec<String>,
    pub fix: Fix,
}

/// What an in-pod probe (the guide's `kubectl exec -- id` and `ls -la /app`) read.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeSeen {
    /// `/proc/1/status` of the container's process and `ls -ln` of the directories asked.
    Read { status: String, listing: String },
    /// The probe could not run (reason): the evidence comes from the spec instead.
    Unavailable(String),
}

/// The last log lines of one container (already redacted by the caller).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogTail {
    /// From the previous (crashed) instance.
    pub previous: bool,
    pub lines: Vec<String>,
}

/// (pod, container) → memory in use, or why metrics.k8s.io gave none.
pub type MemoryUsage = Result<BTreeMap<(String, String), String>, String>;

/// Everything the classifier reads about one release.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub app: String,
    pub namespace: String,
    pub pods: Vec<Value>,
    pub replicasets: Vec<Value>,
    pub services: Vec<Value>,
    pub endpoint_slices: Vec<Value>,
    pub nodes: Vec<Value>,
    /// Warning events of the namespace (all objects; the classifier picks the release's).
    pub events: Vec<Value>,
    /// (pod, container) → last log lines.
    pub logs: BTreeMap<(String, String), LogTail>,
    /// image reference → its configured `User` (`docker inspect`), "" when unset (root).
    pub image_users: BTreeMap<String, String>,
    /// (pod, container) → what the in-pod probe read.
    pub probes: BTreeMap<(String, String), ProbeSeen>,
    /// The project's Dockerfile (path as pake.yaml names it) and its last USER.
    pub dockerfile: Option<(String, Option<String>)>,
    /// The namespace's `pod-security.kubernetes.io/enforce` level and version.
    pub pss_enforce: Option<(String, String)>,
    /// Memory in use per (pod, container) from metrics.k8s.io (`kubectl top`),
    /// or why there is none; read only when a container was OOM-killed.
    pub memory_usage: Option<MemoryUsage>,
}

/// A Warning event, deduplicated (the guide's `get events --sort-by=.lastTimestamp`).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventSummary {
    /// `Kind ns/name`.
    pub object: String,
    pub reason: String,
    pub message: String,
    pub count: i64,
    pub last_seen: String,
    /// The finding this event belongs to, when one concerns the same object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<Cause>,
}

const TEMPLATE: &str = "templates/k8s/deployment.yaml";

/// Every finding about the release, in a stable order (problems first).
pub fn diagnose(s: &Snapshot) -> Vec<Diagnosis> {
    let mut out = Vec::new();
    for rs in &s.replicasets {
        out.extend(replicaset_failure(s, rs));
    }
    for pod in s
        .pods
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
    {
        out.extend(pod_findings(s, pod));
    }
    for svc in &s.services {
        out.extend(service_endpoints(s, svc));
    }
    out.extend(simulated_nodes(s));
    if s.pods.is_empty()
        && !out
            .iter()
            .any(|d| matches!(d.check, Cause::PodSecurity | Cause::FailedCreate))
    {
        out.push(no_pods(s));
    }
    out.sort_by_key(|d| (d.status == Status::NotProvable, d.check, d.object.clone()));
    out.dedup_by(|a, b| a.check == b.check && a.object == b.object);
    out
}

/// The release's Warning events, deduplicated by (object, reason, message),
/// newest last, each tied to a finding on the same object.
pub fn events(s: &Snapshot, findings: &[Diagnosis]) -> Vec<EventSummary> {
    let mine = release_objects(s);
    let mut by: BTreeMap<(String, String, String), EventSummary> = BTreeMap::new();
    for e in &s.events {
        if e["type"] != "Warning" {
            continue;
        }
        let io = &e["involvedObject"];
        let (kind, name) = (str_of(&io["kind"]), str_of(&io["name"]));
        if !mine.contains(&(kind.to_string(), name.to_string())) {
            continue;
        }
        let object = format!("{kind} {}/{name}", s.namespace);
        let reason = str_of(&e["reason"]).to_string();
        let message = one_line(str_of(&e["message"]));
        let last = ["lastTimestamp", "eventTime", "firstTimestamp"]
            .iter()
            .map(|k| str_of(&e[*k]))
            .find(|t| !t.is_empty())
            .unwrap_or("")
            .to_string();
        let count = e["count"].as_i64().unwrap_or(1).max(1);
        let entry = by
            .entry((object.clone(), reason.clone(), message.clone()))
            .or_insert(EventSummary {
                finding: findings
                    .iter()
                    .find(|d| d.object == object || d.object.starts_with(&format!("{object} ")))
                    .map(|d| d.check),
                object,
                reason,
                message,
                count: 0,
                last_seen: String::new(),
            });
        entry.count += count;
        if last > entry.last_seen {
            entry.last_seen = last;
        }
    }
    let mut v: Vec<EventSummary> = by.into_values().collect();
    v.sort_by(|a, b| a.last_seen.cmp(&b.last_seen).then(a.object.cmp(&b.object)));
    v
}

/// (kind, name) of every object of the release the snapshot holds, plus the
/// Deployment names its ReplicaSets belong to.
fn release_objects(s: &Snapshot) -> BTreeSet<(String, String)> {
    let mut set = BTreeSet::new();
    for (kind, list) in [
        ("Pod", &s.pods),
        ("ReplicaSet", &s.replicasets),
        ("Service", &s.services),
    ] {
        for o in list {
            set.insert((kind.to_string(), str_of(&o["metadata"]["name"]).to_string()));
            for r in o["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
            {
                set.insert((
                    str_of(&r["kind"]).to_string(),
                    str_of(&r["name"]).to_string(),
                ));
            }
        }
    }
    set
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn one_line(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() > 600 {
        format!("{}…", joined.chars().take(600).collect::<String>())
    } else {
        joined
    }
}

fn pod_object(s: &Snapshot, pod: &Value) -> String {
    format!("Pod {}/{}", s.namespace, str_of(&pod["metadata"]["name"]))
}

// ---------------------------------------------------------------- pods

fn is_simulated(s: &Snapshot, node: &str) -> bool {
    s.nodes.iter().any(|n| {
        n["metadata"]["name"] == node
            && n["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    })
}

/// Findings of one pod: scheduling, then each container.
fn pod_findings(s: &Snapshot, pod: &Value) -> Vec<Diagnosis> {
    if let Some(d) = unschedulable(s, pod) {
        return vec![d];
    }
    let node = str_of(&pod["spec"]["nodeName"]);
    if is_simulated(s, node) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let statuses = ["initContainerStatuses", "containerStatuses"]
        .iter()
        .flat_map(|k| pod["status"][*k].as_array().cloned().unwrap_or_default());
    for cs in statuses {
        if let Some(d) = container_finding(s, pod, &cs) {
            out.push(d);
        }
    }
    if out.is_empty()
        && let Some(d) = not_ready(s, pod)
    {
        out.push(d);
    }
    out
}

fn container_spec<'a>(pod: &'a Value, name: &str) -> Option<&'a Value> {
    ["containers", "initContainers"]
        .iter()
        .flat_map(|k| pod["spec"][*k].as_array().into_iter().flatten())
        .find(|c| c["name"] == name)
}

/// The container's state as evidence lines, and the texts the recipes search.
struct ContainerView<'a> {
    name: &'a str,
    object: String,
    waiting: Option<(&'a str, &'a str)>,
    /// Terminated now or last time: (reason, exit code, message).
    terminated: Option<(&'a str, i64, &'a str)>,
    restarts: i64,
    log: Option<&'a LogTail>,
}

impl ContainerView<'_> {
    fn evidence(&self) -> Vec<String> {
        let mut e = Vec::new();
        if let Some((r, m)) = self.waiting {
            e.push(if m.is_empty() {
                format!("state: waiting ({r})")
            } else {
                format!("state: waiting ({r}): {}", one_line(m))
            });
        }
        if let Some((r, code, m)) = self.terminated {
            let mut line = format!("last state: terminated ({r}, exit code {code})");
            if !m.trim().is_empty() {
                line.push_str(&format!(": {}", one_line(m)));
            }
            e.push(line);
        }
        if self.restarts > 0 {
            e.push(format!("restarts: {}", self.restarts));
        }
        e
    }

    /// Log and termination lines that contain `needle` (lower case), log lines first.
    fn lines_with(&self, needle: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .log
            .map(|l| {
                l.lines
                    .iter()
                    .filter(|x| x.to_ascii_lowercase().contains(needle))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if let Some((_, _, m)) = self.terminated
            && m.to_ascii_lowercase().contains(needle)
            && !v
                .iter()
                .any(|l| m.contains(l.as_str()) || l.contains(m.trim()))
        {
            v.push(one_line(m));
        }
        v
    }

    fn log_evidence(&self, lines: &[String]) -> Vec<String> {
        let which = if self.log.is_some_and(|l| l.previous) {
            "log of the previous container"
        } else {
            "log"
        };
        lines
            .iter()
            .rev()
            .take(3)
            .rev()
            .map(|l| format!("{which}: {l}"))
            .collect()
    }
}

fn container_finding(s: &Snapshot, pod: &Value, cs: &Value) -> Option<Diagnosis> {
    let name = str_of(&cs["name"]);
    let pod_name = str_of(&pod["metadata"]["name"]);
    let waiting = cs["state"]["waiting"].as_object().map(|w| {
        (
            w.get("reason").and_then(Value::as_str).unwrap_or(""),
            w.get("message").and_then(Value::as_str).unwrap_or(""),
        )
    });
    let term = if cs["state"]["terminated"].is_object() {
        &cs["state"]["terminated"]
    } else {
        &cs["lastState"]["terminated"]
    };
    let terminated = term.is_object().then(|| {
        (
            term["reason"].as_str().unwrap_or("Error"),
            term["exitCode"].as_i64().unwrap_or(0),
            str_of(&term["message"]),
        )
    });
    let v = ContainerView {
        name,
        object: format!("{} container {name}", pod_object(s, pod)),
        waiting,
        terminated,
        restarts: cs["restartCount"].as_i64().unwrap_or(0),
        log: s.logs.get(&(pod_name.to_string(), name.to_string())),
    };
    let reason = waiting.map(|w| w.0).unwrap_or("");
    let msg = waiting.map(|w| w.1).unwrap_or("").to_ascii_lowercase();
    let spec = container_spec(pod, name).cloned().unwrap_or(Value::Null);
    let failed_exit = terminated.is_some_and(|(r, code, _)| code != 0 || r == "OOMKilled");
    match reason {
        "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" => {
            return Some(image_pull(&v, &spec));
        }
        "CreateContainerConfigError" if msg.contains("runasnonroot") => {
            return Some(run_as_root(s, &v, pod, &spec));
        }
        "CreateContainerConfigError" => return Some(missing_config(&v)),
        "CreateContainerError" | "RunContainerError" => return Some(run_container(&v)),
        _ => {}
    }
    // An OOM kill, even one the container has recovered from, will come back.
    if terminated.is_some_and(|t| t.0 == "OOMKilled") {
        return Some(oom_killed(s, &v, pod, &spec));
    }
    // Running and Ready again: an earlier exit is history, not a crash loop.
    let recovered = cs["state"]["running"].is_object() && cs["ready"] == true;
    let crashing = !recovered
        && (reason == "CrashLoopBackOff"
            || (failed_exit && (v.restarts > 0 || cs["state"]["terminated"].is_object())));
    if !crashing {
        // A running container that logs the guide's errors is still worth naming.
        return recipe_from_logs(s, &v, pod, &spec);
    }
    recipe_from_logs(s, &v, pod, &spec).or_else(|| Some(crash_loop(&v)))
}

fn recipe_from_logs(
    s: &Snapshot,
    v: &ContainerView,
    pod: &Value,
    spec: &Value,
) -> Option<Diagnosis> {
    let ro = v.lines_with("read-only file system");
    if !ro.is_empty() {
        return Some(read_only(v, &ro, spec));
    }
    let denied = v.lines_with("permission denied");
    if !denied.is_empty() {
        return Some(permission_denied(s, v, &denied, pod, spec));
    }
    None
}

fn image_pull(v: &ContainerView, spec: &Value) -> Diagnosis {
    let image = str_of(&spec["image"]);
    Diagnosis {
        check: Cause::ImagePull,
        status: Status::Problem,
        object: v.object.clone(),
        summary: format!("image {image} cannot be pulled"),
        evidence: v.evidence(),
        fix: Fix {
            summary: format!(
                "check that {image} exists in the registry (`pake build --push` records the digest pake deploys) and that the pod's imagePullSecrets may pull it; then deploy again"
            ),
            target: Target::PakeYaml,
            file: Some("pake.yaml".into()),
            change: Some(
                "digest: record   # deploy the image `pake build --push` pushed, by digest".into(),
            ),
        },
    }
}

fn missing_config(v: &ContainerView) -> Diagnosis {
    Diagnosis {
        check: Cause::MissingConfig,
        status: Status::Problem,
        object: v.object.clone(),
        summary: "a Secret, ConfigMap or key the container references does not exist".into(),
        evidence: v.evidence(),
        fix: Fix {
            summary: "create the object the message names (`pake deploy` creates the Secrets pake.yaml declares under `secrets:`), or fix the reference in `env:`".into(),
            target: Target::PakeYaml,
            file: Some("pake.yaml".into()),
            change: None,
        },
    }
}

fn run_container(v: &ContainerView) -> Diagnosis {
    Diagnosis {
        check: Cause::RunContainer,
        status: Status::Problem,
        object: v.object.clone(),
        summary: "the container runtime could not create or start the container".into(),
        evidence: v.evidence(),
        fix: Fix {
            summary: "make the image's ENTRYPOINT/CMD exist and be executable by uid 1000 (the runtime's error above names the file)".into(),
            target: Target::Dockerfile,
            file: None,
            change: None,
        },
    }
}

fn crash_loop(v: &ContainerView) -> Diagnosis {
    let mut evidence = v.evidence();
    let last: Vec<String> = v
        .log
        .map(|l| l.lines.iter().rev().take(5).rev().cloned().collect())
        .unwrap_or_default();
    evidence.extend(v.log_evidence(&last));
    Diagnosis {
        check: Cause::CrashLoop,
        status: Status::Problem,
        object: v.object.clone(),
        summary: format!("container {} exits with an error and is restarted", v.name),
        evidence,
        fix: Fix {
            summary: "the log lines above say why the process exits; none of the guide's recipes (Permission denied, Read-only file system, runAsNonRoot, OOMKilled) matched".into(),
            target: Target::Cluster,
            file: None,
            change: None,
        },
    }
}

// ------------------------------------------------- read-only filesystem

/// The absolute path an error line names: Go (`open /x: read-only file system`),
/// Python (`[Errno 30] Read-only file system: '/x'`), shells (`/x: Permission denied`).
pub fn path_in(line: &str) -> Option<(String, bool)> {
    let low = line.to_ascii_lowercase();
    let anchor = low
        .find("read-only file system")
        .or_else(|| low.find("permission denied"))
        .unwrap_or(low.len());
    // Paths before the error text (Go, shells), nearest first; then after it (Python).
    let tokens = |s: &str| -> Vec<String> {
        s.split(|c: char| c.is_whitespace() || c == '\'' || c == '"' || c == '`')
            .map(|t| t.trim_end_matches([':', ',', ')', ';']).to_string())
            .filter(|t| t.starts_with('/') && t.len() > 1 && !t.contains("//"))
            .collect()
    };
    let before = tokens(&line[..anchor]);
    let (path, op_before) = if let Some(p) = before.last() {
        let op = line[..anchor]
            .split_whitespace()
            .rev()
            .nth(1)
            .map(|w| w.to_ascii_lowercase());
        (p.clone(), op)
    } else {
        (tokens(&line[anchor..]).first()?.clone(), None)
    };
    let is_dir = matches!(
        op_before.as_deref(),
        Some("mkdir") | Some("mkdirall") | Some("chdir")
    );
    Some((path, is_dir))
}

/// The directory to make writable for `path` (a file's parent; `/` never).
pub fn writable_dir(path: &str, is_dir: bool) -> Option<String> {
    let dir = if is_dir {
        path.trim_end_matches('/').to_string()
    } else {
        let p = std::path::Path::new(path);
        p.parent()?.to_string_lossy().into_owned()
    };
    (dir != "/" && !dir.is_empty()).then_some(dir)
}

/// A volume name for a directory: `/app/data` → `app-data`.
fn volume_name(dir: &str) -> String {
    let mut n: String = dir
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    n.truncate(63);
    let n = n.trim_matches('-').to_string();
    if n.is_empty() { "data".into() } else { n }
}

fn read_only(v: &ContainerView, lines: &[String], spec: &Value) -> Diagnosis {
    let mut evidence = v.evidence();
    evidence.extend(v.log_evidence(lines));
    let ro = spec["securityContext"]["readOnlyRootFilesystem"] == true;
    evidence.push(format!("securityContext.readOnlyRootFilesystem: {ro}"));
    let mounts: Vec<&str> = spec["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["readOnly"] != true)
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    evidence.push(format!(
        "writable mounts: {}",
        if mounts.is_empty() {
            "none".to_string()
        } else {
            mounts.join(", ")
        }
    ));
    let seen = lines.iter().find_map(|l| path_in(l));
    let dir = seen.as_ref().and_then(|(p, d)| writable_dir(p, *d));
    let (summary, change) = match (&seen, &dir) {
        (Some((p, _)), Some(d)) => {
            let vol = volume_name(d);
            (
                format!(
                    "mount an emptyDir at {d} (the app writes {p}) and keep readOnlyRootFilesystem: true, as the guide does for /tmp and /app/logs"
                ),
                Some(format!(
                    "# in the container\nvolumeMounts:\n  - name: {vol}\n    mountPath: {d}\n# in the pod spec\nvolumes:\n  - name: {vol}\n    emptyDir:\n      sizeLimit: 256Mi"
                )),
            )
        }
        (Some((p, _)), None) => (
            format!(
                "the app writes {p} directly under /, which cannot be a mount of its own: make it write under /tmp (an emptyDir in pake's template), keep readOnlyRootFilesystem: true"
            ),
            None,
        ),
        (None, _) => (
            "mount an emptyDir at the directory the app writes (the guide mounts /tmp and /app/logs), keep readOnlyRootFilesystem: true".into(),
            None,
        ),
    };
    Diagnosis {
        check: Cause::ReadOnlyFilesystem,
        status: Status::Problem,
        object: v.object.clone(),
        summary: match &seen {
            Some((p, _)) => format!("the app writes {p} on the read-only root filesystem"),
            None => "the app writes to the read-only root filesystem".into(),
        },
        evidence,
        fix: Fix {
            summary,
            target: Target::Template,
            file: Some(TEMPLATE.into()),
            change,
        },
    }
}

// ---------------------------------------------------- permission denied

/// uid and gid the container runs as per its spec (container over pod), if set.
fn spec_ids(pod: &Value, spec: &Value) -> (Option<i64>, Option<i64>) {
    let pick = |k: &str| {
        spec["securityContext"][k]
            .as_i64()
            .or_else(|| pod["spec"]["securityContext"][k].as_i64())
    };
    (pick("runAsUser"), pick("runAsGroup"))
}

/// `ls -ln` lines of directories not owned by `uid` and not writable by others:
/// "/app is owned by 0:0 (drwxr-xr-x), the process runs as uid 1000".
pub fn owner_mismatch(listing: &str, uid: &str) -> Option<String> {
    listing.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 9 || !f[0].starts_with('d') {
            return None;
        }
        let others_write = f[0].as_bytes().get(8) == Some(&b'w');
        (f[2] != uid && !others_write).then(|| {
            format!(
                "{} is owned by {}:{} ({}), the process runs as uid {uid}: it may not write there",
                f[f.len() - 1],
                f[2],
                f[3],
                f[0]
            )
        })
    })
}

fn permission_denied(
    s: &Snapshot,
    v: &ContainerView,
    lines: &[String],
    pod: &Value,
    spec: &Value,
) -> Diagnosis {
    let mut evidence = v.evidence();
    evidence.extend(v.log_evidence(lines));
    let pod_name = str_of(&pod["metadata"]["name"]);
    let (uid, gid) = spec_ids(pod, spec);
    let show = |x: Option<i64>| x.map_or("unset (the image's USER)".to_string(), |x| x.to_string());
    match s.probes.get(&(pod_name.to_string(), v.name.to_string())) {
        Some(ProbeSeen::Read { status, listing }) => {
            let field = |n: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(n)?.strip_prefix(':'))
                    .map(|x| x.split_whitespace().collect::<Vec<_>>().join(" "))
                    .unwrap_or_else(|| "?".into())
            };
            evidence.push(format!(
                "id (from inside the process): Uid {}, Gid {}",
                field("Uid"),
                field("Gid")
            ));
            for l in listing.lines().filter(|l| !l.trim().is_empty()).take(12) {
                evidence.push(format!("ls -ln: {}", l.trim()));
            }
            let uid_seen = field("Uid");
            let process_uid = uid_seen.split_whitespace().nth(1).unwrap_or("?");
            if let Some(o) = owner_mismatch(listing, process_uid) {
                evidence.push(o);
            }
        }
        Some(ProbeSeen::Unavailable(why)) => {
            evidence.push(format!(
                "spec: runAsUser {}, runAsGroup {}",
                show(uid),
                show(gid)
            ));
            evidence.push(format!("in-pod id check not run: {why}"));
        }
        None => evidence.push(format!(
            "spec: runAsUser {}, runAsGroup {}",
            show(uid),
            show(gid)
        )),
    }
    let image = str_of(&spec["image"]);
    if let Some(u) = s.image_users.get(image) {
        evidence.push(format!(
            "image {image} User: {}",
            if u.is_empty() { "(unset: root)" } else { u }
        ));
    }
    if let Some((file, user)) = &s.dockerfile {
        evidence.push(format!(
            "{file}: USER {}",
            user.as_deref().unwrap_or("(none)")
        ));
    }
    let seen = lines.iter().find_map(|l| path_in(l));
    let (u, g) = (uid.unwrap_or(1000), gid.or(uid).unwrap_or(1000));
    let dir = seen.as_ref().map(|(p, d)| {
        if *d {
            p.clone()
        } else {
            writable_dir(p, false).unwrap_or_else(|| p.clone())
        }
    });
    let change = match &dir {
        Some(d) => format!(
            "RUN groupadd -r -g {g} appuser && \\\n    useradd -r -u {u} -g appuser -m -d /app -s /sbin/nologin appuser \\\n && mkdir -p {d} && chown -R {u}:{g} {d}\nUSER {u}:{g}"
        ),
        None => format!(
            "RUN groupadd -r -g {g} appuser && \\\n    useradd -r -u {u} -g appuser -m -d /app -s /sbin/nologin appuser\nCOPY --chown={u}:{g} . /app\nUSER {u}:{g}"
        ),
    };
    let ro = spec["securityContext"]["readOnlyRootFilesystem"] == true;
    Diagnosis {
        check: Cause::PermissionDenied,
        status: Status::Problem,
        object: v.object.clone(),
        summary: match &seen {
            Some((p, _)) => format!("the process (uid {u}) may not use {p}"),
            None => format!("the process (uid {u}) is denied access to its files"),
        },
        evidence,
        fix: Fix {
            summary: format!(
                "create the user in the Dockerfile and give it the directory it uses{}",
                if ro {
                    ""
                } else {
                    " (better: keep readOnlyRootFilesystem: true and mount an emptyDir there)"
                }
            ),
            target: Target::Dockerfile,
            file: s.dockerfile.as_ref().map(|d| d.0.clone()),
            change: Some(change),
        },
    }
}

// --------------------------------------------------------- run as root

fn run_as_root(s: &Snapshot, v: &ContainerView, pod: &Value, spec: &Value) -> Diagnosis {
    let mut evidence = v.evidence();
    let image = str_of(&spec["image"]);
    match s.image_users.get(image) {
        Some(u) => evidence.push(format!(
            "docker inspect {image}: User {}",
            if u.is_empty() {
                "\"\" (unset: root)".to_string()
            } else {
                format!("{u:?}")
            }
        )),
        None => evidence.push(format!(
            "the image's User could not be read (no Docker engine has {image})"
        )),
    }
    let (uid, _) = spec_ids(pod, spec);
    evidence.push(format!(
        "spec: runAsNonRoot {}, runAsUser {}",
        spec["securityContext"]["runAsNonRoot"]
            .as_bool()
            .or(pod["spec"]["securityContext"]["runAsNonRoot"].as_bool())
            .unwrap_or(false),
        uid.map_or("unset (the image decides)".into(), |u| u.to_string())
    ));
    if let Some((file, user)) = &s.dockerfile {
        evidence.push(format!(
            "{file}: USER {}",
            user.as_deref().unwrap_or("(none)")
        ));
    }
    let non_numeric = v.waiting.is_some_and(|w| w.1.contains("non-numeric"));
    Diagnosis {
        check: Cause::RunAsRoot,
        status: Status::Problem,
        object: v.object.clone(),
        summary: if non_numeric {
            "the image's USER is a name, so the kubelet cannot prove it is not root (runAsNonRoot)".into()
        } else {
            "the image runs as root but the pod requires runAsNonRoot".into()
        },
        evidence,
        fix: Fix {
            summary: "add a numeric non-root USER to the final stage of the Dockerfile (the guide's Security Context Violations), rebuild and deploy; or set runAsUser: 1000 in the pod's securityContext".into(),
            target: Target::Dockerfile,
            file: s.dockerfile.as_ref().map(|d| d.0.clone()),
            change: Some("USER 1000:1000".into()),
        },
    }
}

// ------------------------------------------------------------ OOM

/// Bytes of a Kubernetes memory quantity (`64Mi`, `1G`, `134217728`, `1e3`).
pub fn memory_bytes(q: &str) -> Option<u128> {
    let q = q.trim();
    let split = q.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(q.len());
    let (num, unit) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "m" => 1e-3,
        _ => return None,
    };
    (n >= 0.0 && n.is_finite()).then(|| (n * mult).ceil() as u128)
}

/// A limit twice `bytes`, in Mi or Gi as people write them.
pub fn proposed_limit(bytes: u128) -> String {
    let mi = bytes.saturating_mul(2).div_ceil(1024 * 1024).max(16);
    if mi >= 1024 && mi.is_multiple_of(1024) {
        format!("{}Gi", mi / 1024)
    } else {
        format!("{mi}Mi")
    }
}

fn oom_killed(s: &Snapshot, v: &ContainerView, pod: &Value, spec: &Value) -> Diagnosis {
    let mut evidence = v.evidence();
    let limit = str_of(&spec["resources"]["limits"]["memory"]);
    let request = str_of(&spec["resources"]["requests"]["memory"]);
    evidence.push(format!(
        "resources: limits.memory {}, requests.memory {}",
        if limit.is_empty() { "unset" } else { limit },
        if request.is_empty() { "unset" } else { request }
    ));
    let key = (
        str_of(&pod["metadata"]["name"]).to_string(),
        v.name.to_string(),
    );
    match &s.memory_usage {
        Some(Ok(m)) => evidence.push(match m.get(&key) {
            Some(u) => format!("memory in use now (metrics.k8s.io, `kubectl top`): {u}"),
            None => "memory in use: no sample for this container (it is not running)".into(),
        }),
        Some(Err(why)) => evidence.push(format!("memory in use: not available ({why})")),
        None => {}
    }
    let proposed = memory_bytes(limit).map(proposed_limit);
    Diagnosis {
        check: Cause::OomKilled,
        status: Status::Problem,
        object: v.object.clone(),
        summary: format!(
            "container {} was killed at its memory limit{} (OOMKilled)",
            v.name,
            if limit.is_empty() {
                String::new()
            } else {
                format!(" of {limit}")
            }
        ),
        evidence,
        fix: Fix {
            summary: match &proposed {
                Some(p) => format!(
                    "raise the memory limit (the guide's Resource Limits) to {p} or more, or find what the process holds; a leak grows to any limit"
                ),
                None => {
                    "set and raise resources.limits.memory (the guide's Resource Limits)".into()
                }
            },
            target: Target::PakeYaml,
            file: Some("pake.yaml".into()),
            change: proposed
                .map(|p| format!("resources:\n  limits:\n    memory: {p}   # was {limit}")),
        },
    }
}

// ------------------------------------------------------- not ready

fn not_ready(s: &Snapshot, pod: &Value) -> Option<Diagnosis> {
    if pod["status"]["phase"] != "Running" {
        return None;
    }
    let ready = pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    if ready {
        return None;
    }
    let name = str_of(&pod["metadata"]["name"]);
    let probe_fail: Vec<String> = s
        .events
        .iter()
        .filter(|e| e["involvedObject"]["name"] == name && e["reason"] == "Unhealthy")
        .map(|e| one_line(str_of(&e["message"])))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if probe_fail.is_empty() {
        // Just started, or the kubelet has not probed yet: not a finding.
        return None;
    }
    let path = pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"]
        .as_str()
        .map(str::to_string);
    let mut evidence = vec!["condition Ready: False".to_string()];
    evidence.extend(probe_fail.iter().map(|m| format!("event Unhealthy: {m}")));
    if let Some(p) = &path {
        evidence.push(format!("readinessProbe.httpGet.path: {p}"));
    }
    Some(Diagnosis {
        check: Cause::NotReady,
        status: Status::Problem,
        object: pod_object(s, pod),
        summary: "the pod runs but its readiness probe fails, so no Service sends it traffic".into(),
        evidence,
        fix: Fix {
            summary: "point healthPath at a path the app answers with 2xx (the probe's failures above show the status it got)".into(),
            target: Target::PakeYaml,
            file: Some("pake.yaml".into()),
            change: Some("healthPath: /health".into()),
        },
    })
}

// ------------------------------------------------------- scheduling

fn unschedulable(s: &Snapshot, pod: &Value) -> Option<Diagnosis> {
    if pod["status"]["phase"] != "Pending" {
        return None;
    }
    let cond = pod["status"]["conditions"].as_array()?.iter().find(|c| {
        c["type"] == "PodScheduled" && c["status"] == "False" && c["reason"] == "Unschedulable"
    })?;
    let message = one_line(str_of(&cond["message"]));
    let mut evidence = vec![format!("PodScheduled False (Unschedulable): {message}")];
    let want = pod_requests(pod);
    evidence.push(format!(
        "requests: cpu {}m, memory {}",
        want.0,
        human_bytes(want.1)
    ));
    let selector = pod["spec"]["nodeSelector"].as_object();
    for n in &s.nodes {
        let labels = &n["metadata"]["labels"];
        if let Some(sel) = selector
            && !sel.iter().all(|(k, v)| &labels[k] == v)
        {
            continue;
        }
        let a = &n["status"]["allocatable"];
        let cpu = cpu_millis(str_of(&a["cpu"])).unwrap_or(0);
        let mem = memory_bytes(str_of(&a["memory"])).unwrap_or(0);
        let mut short = Vec::new();
        if want.0 > cpu {
            short.push(format!("cpu short by {}m", want.0 - cpu));
        }
        if want.1 > mem {
            short.push(format!("memory short by {}", human_bytes(want.1 - mem)));
        }
        evidence.push(format!(
            "node {}: allocatable cpu {cpu}m, memory {}{}",
            str_of(&n["metadata"]["name"]),
            human_bytes(mem),
            if short.is_empty() {
                String::new()
            } else {
                format!(" ({})", short.join(", "))
            }
        ));
    }
    let insufficient = message.contains("Insufficient");
    Some(Diagnosis {
        check: Cause::Unschedulable,
        status: Status::Problem,
        object: pod_object(s, pod),
        summary: "no node can take the pod: it stays Pending".into(),
        evidence,
        fix: if insufficient {
            Fix {
                summary: "lower the requests to what a node has free (the scheduler's message says which resource), or add node capacity".into(),
                target: Target::PakeYaml,
                file: Some("pake.yaml".into()),
                change: Some("resources:\n  requests:\n    cpu: 100m\n    memory: 128Mi   # at most what the node has free".into()),
            }
        } else {
            Fix {
                summary: "make nodeSelector and tolerations match a node that exists (the scheduler's message says what did not match)".into(),
                target: Target::PakeYaml,
                file: Some("pake.yaml".into()),
                change: None,
            }
        },
    })
}

/// Millicores of a CPU quantity (`500m`, `2`, `0.5`).
pub fn cpu_millis(q: &str) -> Option<u128> {
    let q = q.trim();
    if let Some(m) = q.strip_suffix('m') {
        return m
            .parse::<f64>()
            .ok()
            .filter(|x| *x >= 0.0)
            .map(|x| x.ceil() as u128);
    }
    q.parse::<f64>()
        .ok()
        .filter(|x| *x >= 0.0 && x.is_finite())
        .map(|x| (x * 1000.0).ceil() as u128)
}

fn human_bytes(b: u128) -> String {
    const MI: u128 = 1024 * 1024;
    if b >= 1024 * MI && b.is_multiple_of(1024 * MI) {
        format!("{}Gi", b / (1024 * MI))
    } else {
        format!("{}Mi", b.div_ceil(MI))
    }
}

/// (cpu millis, memory bytes) the scheduler counts: sum of containers, or the
/// largest init container if larger.
fn pod_requests(pod: &Value) -> (u128, u128) {
    let sum = |k: &str| -> (u128, u128) {
        pod["spec"][k]
            .as_array()
            .into_iter()
            .flatten()
            .fold((0, 0), |acc, c| {
                let r = &c["resources"]["requests"];
                (
                    acc.0 + cpu_millis(str_of(&r["cpu"])).unwrap_or(0),
                    acc.1 + memory_bytes(str_of(&r["memory"])).unwrap_or(0),
                )
            })
    };
    let main = sum("containers");
    let init = pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .fold((0, 0), |acc, c| {
            let r = &c["resources"]["requests"];
            (
                acc.0.max(cpu_millis(str_of(&r["cpu"])).unwrap_or(0)),
                acc.1.max(memory_bytes(str_of(&r["memory"])).unwrap_or(0)),
            )
        });
    (main.0.max(init.0), main.1.max(init.1))
}

// ------------------------------------------------ ReplicaSet failures

fn replicaset_failure(s: &Snapshot, rs: &Value) -> Option<Diagnosis> {
    let cond = rs["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "ReplicaFailure" && c["status"] == "True")?;
    let message = one_line(str_of(&cond["message"]));
    let object = format!(
        "ReplicaSet {}/{}",
        s.namespace,
        str_of(&rs["metadata"]["name"])
    );
    let mut evidence = vec![format!(
        "condition ReplicaFailure ({}): {message}",
        str_of(&cond["reason"])
    )];
    if message.contains("violates PodSecurity") {
        let level = s
            .pss_enforce
            .clone()
            .unwrap_or(("restricted".into(), "latest".into()));
        evidence.push(format!(
            "namespace enforces Pod Security {}:{}",
            level.0, level.1
        ));
        let violations = pss_violations(rs, &level.0, &level.1);
        evidence.extend(violations.iter().map(|v| format!("PSS engine: {v}")));
        return Some(Diagnosis {
            check: Cause::PodSecurity,
            status: Status::Problem,
            object,
            summary: format!("the pod template violates the namespace's Pod Security level {:?}: no pod is created", level.0),
            evidence,
            fix: Fix {
                summary: "restore the guide's securityContext in the template (run `pake audit --env ENV` before deploying; it runs the same checks offline)".into(),
                target: Target::Template,
                file: Some(TEMPLATE.into()),
                change: Some(
                    "securityContext:          # pod\n  runAsNonRoot: true\n  runAsUser: 1000\n  runAsGroup: 1000\n  seccompProfile: {type: RuntimeDefault}\nsecurityContext:          # each container\n  allowPrivilegeEscalation: false\n  privileged: false\n  readOnlyRootFilesystem: true\n  capabilities: {drop: [ALL]}".into(),
                ),
            },
        });
    }
    Some(Diagnosis {
        check: Cause::FailedCreate,
        status: Status::Problem,
        object,
        summary: "the ReplicaSet cannot create pods".into(),
        evidence,
        fix: Fix {
            summary: if message.contains("exceeded quota") {
                "lower the pods' requests/limits or raise the namespace's ResourceQuota".into()
            } else {
                "fix what the API server's answer above names (a missing ServiceAccount: deploy creates it first)".into()
            },
            target: Target::PakeYaml,
            file: Some("pake.yaml".into()),
            change: None,
        },
    })
}

/// What the PSS engine finds in the ReplicaSet's pod template at a level.
fn pss_violations(rs: &Value, level: &str, version: &str) -> Vec<String> {
    use super::pss;
    let (Some(level), Some(version)) = (pss::Level::parse(level), pss::Version::parse(version))
    else {
        return Vec::new();
    };
    let Some(Ok(pod)) = pss::pod_of(rs) else {
        return Vec::new();
    };
    pss::evaluate(level, version, &pod)
        .violations
        .iter()
        .map(|v| {
            if v.detail.is_empty() {
                v.reason.to_string()
            } else {
                format!("{} ({})", v.reason, v.detail)
            }
        })
        .collect()
}

// ------------------------------------------------------- Services

fn service_endpoints(s: &Snapshot, svc: &Value) -> Option<Diagnosis> {
    let sel = svc["spec"]["selector"].as_object()?;
    if sel.is_empty() || svc["spec"]["type"] == "ExternalName" {
        return None;
    }
    let name = str_of(&svc["metadata"]["name"]);
    let ready_endpoints = s
        .endpoint_slices
        .iter()
        .filter(|e| e["metadata"]["labels"]["kubernetes.io/service-name"] == name)
        .flat_map(|e| e["endpoints"].as_array().cloned().unwrap_or_default())
        .filter(|ep| ep["conditions"]["ready"] != false)
        .count();
    let selected: Vec<&Value> = s
        .pods
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| sel.iter().all(|(k, v)| &p["metadata"]["labels"][k] == v))
        .collect();
    let ready_pods = selected
        .iter()
        .filter(|p| {
            p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .count();
    if ready_endpoints > 0 {
        return None;
    }
    let object = format!("Service {}/{name}", s.namespace);
    let selector_text = sel
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect::<Vec<_>>()
        .join(",");
    let mut evidence = vec![
        format!(
            "selector {selector_text}: {} pods match, {ready_pods} Ready",
            selected.len()
        ),
        "EndpointSlices: no ready endpoint".to_string(),
    ];
    // targetPort vs the selected pods' container ports.
    let mut port_mismatch = Vec::new();
    for p in svc["spec"]["ports"].as_array().into_iter().flatten() {
        let tp = &p["targetPort"];
        let tp = if tp.is_null() { &p["port"] } else { tp };
        let found = selected.iter().any(|pod| {
            pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| {
                    c["ports"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|cp| match tp {
                            Value::Number(n) => cp["containerPort"].as_i64() == n.as_i64(),
                            Value::String(sname) => cp["name"] == sname.as_str(),
                            _ => false,
                        })
                })
        });
        if !selected.is_empty() && !found {
            port_mismatch.push(tp.to_string());
        }
    }
    if !port_mismatch.is_empty() {
        evidence.push(format!(
            "targetPort {} is no container port of the selected pods",
            port_mismatch.join(", ")
        ));
    }
    let fix = if selected.is_empty() {
        let labels: BTreeSet<String> = s
            .pods
            .iter()
            .map(|p| {
                p["metadata"]["labels"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .filter(|(k, _)| !k.contains("pod-template-hash"))
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default()
            })
            .collect();
        if !labels.is_empty() {
            evidence.push(format!(
                "pods of the release carry: {}",
                labels.into_iter().collect::<Vec<_>>().join("; ")
            ));
        }
        Fix {
            summary: "make the Service's selector match the pods' labels (pake's templates select app and version)".into(),
            target: Target::Template,
            file: Some("templates/k8s/service.yaml".into()),
            change: None,
        }
    } else if !port_mismatch.is_empty() {
        Fix {
            summary: "set targetPort to the port the container listens on (pake.yaml `port`)"
                .into(),
            target: Target::PakeYaml,
            file: Some("pake.yaml".into()),
            change: None,
        }
    } else if ready_pods == 0 {
        Fix {
            summary: "the selected pods are not Ready: the findings on the pods above say why"
                .into(),
            target: Target::Cluster,
            file: None,
            change: None,
        }
    } else {
        // Ready pods but no endpoint yet: the EndpointSlice controller lags; not a finding.
        return None;
    };
    Some(Diagnosis {
        check: Cause::NoEndpoints,
        status: Status::Problem,
        object,
        summary: "the Service has no ready endpoint: requests to it fail".into(),
        evidence,
        fix,
    })
}

fn no_pods(s: &Snapshot) -> Diagnosis {
    let mut evidence = vec![format!(
        "no Pod labelled app={} in namespace {}",
        s.app, s.namespace
    )];
    for rs in &s.replicasets {
        evidence.push(format!(
            "ReplicaSet {}: {} desired, {} ready",
            str_of(&rs["metadata"]["name"]),
            rs["spec"]["replicas"].as_i64().unwrap_or(0),
            rs["status"]["readyReplicas"].as_i64().unwrap_or(0)
        ));
    }
    Diagnosis {
        check: Cause::NoPods,
        status: Status::Problem,
        object: format!("app {} in namespace {}", s.app, s.namespace),
        summary: "nothing of the release runs: no pod exists".into(),
        evidence,
        fix: Fix {
            summary: "deploy it (`pake deploy --env ENV`), or check the environment and namespace diagnose looked at (`pake status`)".into(),
            target: Target::Cluster,
            file: None,
            change: None,
        },
    }
}

// ------------------------------------------------- simulated nodes

fn simulated_nodes(s: &Snapshot) -> Option<Diagnosis> {
    let mut on: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in &s.pods {
        let node = str_of(&p["spec"]["nodeName"]);
        if is_simulated(s, node) {
            on.entry(node.to_string())
                .or_default()
                .push(str_of(&p["metadata"]["name"]).to_string());
        }
    }
    if on.is_empty() {
        return None;
    }
    Some(Diagnosis {
        check: Cause::SimulatedNode,
        status: Status::NotProvable,
        object: format!("{} pods of {}", on.values().map(Vec::len).sum::<usize>(), s.app),
        summary: "not provable on a simulated node: container start, logs, OOM kills and in-pod checks need a real node".into(),
        evidence: on.iter().map(|(n, pods)| format!("node {n} (kwok: no process runs there): {}", pods.join(", "))).collect(),
        fix: Fix {
            summary: "run the release on a real node (nodeSelector/tolerations in pake.yaml) to diagnose its containers".into(),
            target: Target::PakeYaml,
            file: Some("pake.yaml".into()),
            change: Some("nodeSelector:\n  pake.dev/node: real   # the local cluster's real node".into()),
        },
    })
}

// ------------------------------------------------------ connectivity

/// One side of a connection as the NetworkPolicy engine judged it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SideSeen {
    /// `egress` (of the source) or `ingress` (of the destination).
    pub direction: String,
    /// The workload, `ns/name[Kind]`.
    pub workload: String,
    /// Some policy selects it for this direction.
    pub isolated: bool,
    /// The policies that isolate it.
    pub policies: Vec<String>,
    /// The rules that allow this peer (`NetworkPolicy p ingress[0] (TCP 8000)`).
    pub rules: Vec<String>,
    /// This side lets the connection through.
    pub allows: bool,
    /// The NetworkPolicy that would open this side (YAML), when it is closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_policy: Option<String>,
    /// The pake.yaml change that opens it, when this side is the project's app.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pake_yaml: Option<String>,
}

/// What the live test from inside a source pod saw.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", tag = "result")]
pub enum Live {
    /// `--no-probe`.
    Skipped,
    /// Nothing could be observed (every source pod on a simulated node, none running, probe image missing).
    NotProvable { why: String },
    /// The probe ran in `pod`: DNS, then one HTTP request.
    Seen {
        pod: String,
        url: String,
        /// The address the name resolved to, or None when it did not resolve.
        #[serde(skip_serializing_if = "Option::is_none")]
        resolved: Option<String>,
        /// The HTTP status line, when a server answered.
        #[serde(skip_serializing_if = "Option::is_none")]
        http: Option<String>,
        /// The client's error (refused, timed out, bad address), when none answered.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// `pake diagnose connectivity SRC DST[:PORT]`: the engine's verdict and the live test.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnFacts {
    pub src: String,
    pub dst: String,
    /// `8000/TCP` or `any port`.
    pub port: String,
    /// The NetworkPolicies allow it.
    pub allowed: bool,
    pub sides: Vec<SideSeen>,
    pub live: Live,
}

/// Parse what the probe printed: `nslookup`, then the first line of the HTTP
/// answer or the client's error (`nc: can't connect ...`, busybox `wget: ...`).
pub fn parse_live(pod: &str, url: &str, out: &str) -> Live {
    let (dns, http) = out.split_once("--pake-http--").unwrap_or((out, ""));
    // busybox nslookup: the answer section's `Address: x` (the server's own comes first as `Address:\tIP:53`).
    let resolved = dns
        .split_once("Name:")
        .map(|(_, answer)| answer)
        .and_then(|a| {
            a.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("Address:")
                    .or_else(|| l.trim().strip_prefix("Address 1:"))
            })
        })
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty());
    let status = http
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("HTTP/"))
        .map(str::to_string);
    let error = if status.is_some() {
        None
    } else {
        http.lines()
            .map(str::trim)
            .find(|l| l.starts_with("wget:") || l.starts_with("nc:"))
            .map(|l| {
                l.trim_start_matches("wget:")
                    .trim_start_matches("nc:")
                    .trim()
                    .to_string()
            })
            .or_else(|| {
                // Whatever the client said last (a shell error, a cut-off output).
                let last = http.lines().map(str::trim).rfind(|l| !l.is_empty());
                Some(last.map_or("the probe printed nothing".into(), one_line))
            })
    };
    Live::Seen {
        pod: pod.into(),
        url: url.into(),
        resolved,
        http: status,
        error,
    }
}

/// The findings of one connectivity question.
pub fn connectivity(f: &ConnFacts) -> Vec<Diagnosis> {
    let object = format!("{} -> {} on {}", f.src, f.dst, f.port);
    let mut engine_evidence: Vec<String> = f
        .sides
        .iter()
        .map(|s| {
            if !s.isolated {
                format!(
                    "{} of {}: not isolated (no policy selects it), open",
                    s.direction, s.workload
                )
            } else if s.rules.is_empty() {
                format!(
                    "{} of {}: isolated by {}; no rule allows this peer",
                    s.direction,
                    s.workload,
                    s.policies.join(", ")
                )
            } else {
                format!(
                    "{} of {}: isolated by {}; {} by {}",
                    s.direction,
                    s.workload,
                    s.policies.join(", "),
                    if s.allows {
                        "allowed"
                    } else {
                        "other ports allowed"
                    },
                    s.rules.join(", ")
                )
            }
        })
        .collect();
    engine_evidence.insert(
        0,
        format!(
            "NetworkPolicy engine: {}",
            if f.allowed { "ALLOWED" } else { "DENIED" }
        ),
    );
    let live_line = match &f.live {
        Live::Seen {
            pod,
            url,
            resolved,
            http,
            error,
        } => Some(format!(
            "live from pod {pod}: {url}: DNS {}; {}",
            resolved
                .as_deref()
                .map_or("did not resolve".to_string(), |a| format!(
                    "resolved to {a}"
                )),
            http.as_deref().map_or_else(
                || format!("no answer ({})", error.as_deref().unwrap_or("?")),
                |h| format!("answered {h}")
            )
        )),
        _ => None,
    };
    let connected = matches!(&f.live, Live::Seen { http: Some(_), .. });
    let mut out = Vec::new();
    if !f.allowed {
        let closed: Vec<&SideSeen> = f.sides.iter().filter(|s| !s.allows).collect();
        let pake: Vec<String> = closed.iter().filter_map(|s| s.pake_yaml.clone()).collect();
        let (target, file, change) = if pake.len() == closed.len() && !pake.is_empty() {
            (
                Target::PakeYaml,
                Some("pake.yaml".to_string()),
                pake.join("\n"),
            )
        } else {
            // Each closed side: this project's pake.yaml line, else the NetworkPolicy.
            let parts: Vec<String> = closed
                .iter()
                .filter_map(|s| {
                    let (how, text) = match (&s.pake_yaml, &s.allow_policy) {
                        (Some(p), _) => ("in pake.yaml", p),
                        (None, Some(p)) => ("a NetworkPolicy", p),
                        (None, None) => return None,
                    };
                    Some(format!(
                        "# {} of {}: {how}\n{}",
                        s.direction,
                        s.workload,
                        text.trim_end()
                    ))
                })
                .collect();
            (Target::NetworkPolicy, None, parts.join("\n---\n"))
        };
        let mut evidence = engine_evidence.clone();
        evidence.extend(live_line.clone().filter(|_| !connected));
        out.push(Diagnosis {
            check: Cause::NetworkPolicy,
            status: Status::Problem,
            object: object.clone(),
            summary: format!(
                "the NetworkPolicies deny it: {}",
                closed.iter().map(|s| format!("{} of {}", s.direction, s.workload)).collect::<Vec<_>>().join(" and ")
            ),
            evidence,
            fix: Fix {
                summary: "add the explicit allow rule (the guide's \"Solution: Add explicit allow rule\")".into(),
                target,
                file,
                change: (!change.is_empty()).then_some(change),
            },
        });
        if connected {
            let mut evidence = vec![format!(
                "NetworkPolicy engine: DENIED ({})",
                closed
                    .iter()
                    .map(|s| s.policies.join(", "))
                    .collect::<Vec<_>>()
                    .join("; ")
            )];
            evidence.extend(live_line.clone());
            out.push(Diagnosis {
                check: Cause::PolicyNotEnforced,
                status: Status::Problem,
                object: object.clone(),
                summary: "the connection the policies deny succeeded: this cluster does not enforce NetworkPolicy".into(),
                evidence,
                fix: Fix {
                    summary: "run a network plugin that enforces NetworkPolicy (Calico, Cilium, kube-network-policies); until then the policies are documentation only".into(),
                    target: Target::Cluster,
                    file: None,
                    change: None,
                },
            });
        }
    } else if let (Some(line), false) = (&live_line, connected) {
        let mut evidence = engine_evidence.clone();
        evidence.push(line.clone());
        let dns_failed = matches!(&f.live, Live::Seen { resolved: None, .. });
        out.push(Diagnosis {
            check: Cause::Unreachable,
            status: Status::Problem,
            object: object.clone(),
            summary: "the policies allow it but the destination did not answer".into(),
            evidence,
            fix: Fix {
                summary: if dns_failed {
                    "the name does not resolve: use the destination's Service name (and namespace), and check the source may reach DNS (network.allowDns)".into()
                } else {
                    "nothing answered on that port: check the Service's targetPort and that the destination pods are Ready (`pake diagnose` on the destination's project)".into()
                },
                target: Target::Cluster,
                file: None,
                change: None,
            },
        });
    }
    if let Live::NotProvable { why } = &f.live {
        out.push(Diagnosis {
            check: Cause::SimulatedNode,
            status: Status::NotProvable,
            object,
            summary: "enforcement could not be observed: the verdict above is the engine's, not a live test".into(),
            evidence: vec![why.clone()],
            fix: Fix {
                summary: "run a source pod on a real node whose network plugin enforces NetworkPolicy, then run this again".into(),
                target: Target::Cluster,
                file: None,
                change: None,
            },
        });
    }
    out
}

#[cfg(test)]
mod tests;
