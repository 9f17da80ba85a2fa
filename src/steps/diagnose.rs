//! `pake diagnose`: the reads behind the guide's troubleshooting section.
//!
//! This module only gathers: the release's pods, ReplicaSets, Services and
//! EndpointSlices, the nodes, the namespace's Warning events, the last log lines
//! of failing containers (redacted), the image's configured `User` from the
//! Docker engine, and — on a real node, where a process exists — what an
//! ephemeral probe reads inside the container (the guide's `id` / `ls -la`).
//! `checks::diagnose` decides; `report::diagnose` prints.
//!
//! It lives in `steps/` next to `status` and `verify`: a read-only screen on
//! the live release that uses the kube adapters (and `kube::debug` for the
//! probe), with no transaction, lock or history of its own.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use ::kube::Api;
use ::kube::api::{ListParams, LogParams};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde::Serialize;
use serde_json::Value;

use crate::checks::diagnose::{self as dx, Diagnosis, EventSummary, LogTail, ProbeSeen, Snapshot};
use crate::config::Resolved;
use crate::error::{Error, Result};
use crate::kube::Cluster;
use crate::kube::list::{list_json, list_json_selected};
use crate::secret::SecretValue;

/// `pake diagnose -o json`: the findings and the release's Warning events.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiagnoseReport {
    pub app: String,
    pub env: String,
    pub namespace: String,
    /// True when no finding is a problem (not-provable ones do not count).
    pub ok: bool,
    pub pods: usize,
    /// The newest release record when it is not `deployed` (a deploy that failed and
    /// was rolled back, a run that died): what that run saw, since its pods are gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_release: Option<super::status::RevisionSummary>,
    pub findings: Vec<Diagnosis>,
    pub events: Vec<EventSummary>,
}

/// How diagnose may touch the cluster.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// No probe containers (`--no-probe`): read-only throughout.
    pub no_probe: bool,
    /// Log lines read per container.
    pub tail: i64,
    /// The project's Dockerfile (relative to pake.yaml) when it has one.
    pub dockerfile: Option<String>,
}

/// Gather, classify, and report on the release of `r`.
pub async fn diagnose(c: &Cluster, r: &Resolved, o: &Options) -> Result<DiagnoseReport> {
    let snap = gather(c, r, o).await?;
    let findings = dx::diagnose(&snap);
    let events = dx::events(&snap, &findings);
    let revs = crate::workflow::history::list(c, &r.namespace, &r.app, &r.env).await?;
    let last_release = revs
        .last()
        .filter(|v| v.status != "deployed")
        .map(super::status::RevisionSummary::from);
    Ok(DiagnoseReport {
        app: r.app.clone(),
        env: r.env.clone(),
        namespace: r.namespace.clone(),
        ok: findings.iter().all(|f| f.status != dx::Status::Problem),
        pods: snap.pods.len(),
        last_release,
        findings,
        events,
    })
}

async fn gather(c: &Cluster, r: &Resolved, o: &Options) -> Result<Snapshot> {
    let ns = r.namespace.as_str();
    let sel = format!("app={}", r.app);
    let ns_ref =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    let (pods, replicasets, services, slices, events, nodes, nsobj) = tokio::try_join!(
        list_json_selected(c, "v1", "Pod", ns, Some(&sel)),
        list_json_selected(c, "apps/v1", "ReplicaSet", ns, Some(&sel)),
        list_json_selected(c, "v1", "Service", ns, Some(&sel)),
        list_json(c, "discovery.k8s.io/v1", "EndpointSlice", ns),
        list_json(c, "v1", "Event", ns),
        nodes(c),
        crate::kube::apply::get(c, &ns_ref),
    )?;
    let labels = nsobj
        .as_ref()
        .map(|n| n["metadata"]["labels"].clone())
        .unwrap_or(Value::Null);
    let pss_enforce = labels["pod-security.kubernetes.io/enforce"]
        .as_str()
        .map(|l| {
            let v = labels["pod-security.kubernetes.io/enforce-version"]
                .as_str()
                .unwrap_or("latest");
            (l.to_string(), v.to_string())
        });
    // Only the ReplicaSets that still matter: the newest, or any with a failure.
    let replicasets = replicasets
        .into_iter()
        .filter(|rs| {
            rs["status"]["conditions"]
                .as_array()
                .is_some_and(|c| !c.is_empty())
                || rs["spec"]["replicas"].as_i64() > Some(0)
        })
        .collect();
    let mut snap = Snapshot {
        app: r.app.clone(),
        namespace: ns.to_string(),
        pods,
        replicasets,
        services,
        endpoint_slices: slices,
        nodes,
        events: events
            .into_iter()
            .filter(|e| e["type"] == "Warning")
            .collect(),
        pss_enforce,
        dockerfile: o
            .dockerfile
            .as_ref()
            .map(|f| (f.clone(), dockerfile_user(&r.root.join(f)))),
        ..Snapshot::default()
    };
    let known = referenced_secret_values(c, ns, &snap.pods).await;
    redact_messages(&mut snap, &known);
    snap.logs = logs(c, ns, &snap, &known, o.tail).await;
    snap.image_users = image_users(&snap).await;
    snap.memory_usage = memory_usage(c, ns, &snap).await;
    if !o.no_probe {
        snap.probes = probes(c, ns, &snap).await?;
    }
    Ok(snap)
}

async fn nodes(c: &Cluster) -> Result<Vec<Value>> {
    let list = Api::<Node>::all(c.client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::from_kube("list Nodes", e))?;
    Ok(list
        .items
        .iter()
        .filter_map(|n| serde_json::to_value(n).ok())
        .collect())
}

/// The last USER of a Dockerfile (the final stage's), if the file reads.
fn dockerfile_user(path: &Path) -> Option<String> {
    let text = crate::input::read_text(path, "Dockerfile").ok()?;
    text.lines()
        .filter_map(|l| {
            let t = l.trim_start();
            let (word, rest) = t.split_once(char::is_whitespace)?;
            (word.eq_ignore_ascii_case("USER"))
                .then(|| rest.split('#').next().unwrap_or("").trim().to_string())
        })
        .next_back()
}

/// Containers worth reading a log of: restarted, waiting on an error, or terminated.
fn failing_containers(pod: &Value) -> Vec<(String, bool)> {
    ["initContainerStatuses", "containerStatuses"]
        .iter()
        .flat_map(|k| pod["status"][*k].as_array().cloned().unwrap_or_default())
        .filter_map(|cs| {
            let restarts = cs["restartCount"].as_i64().unwrap_or(0);
            let waiting = cs["state"]["waiting"]["reason"].as_str().unwrap_or("");
            let created = !matches!(
                waiting,
                "ContainerCreating"
                    | "PodInitializing"
                    | "ErrImagePull"
                    | "ImagePullBackOff"
                    | "CreateContainerConfigError"
                    | "InvalidImageName"
            );
            let interesting =
                restarts > 0 || cs["state"]["terminated"].is_object() || cs["ready"] == false;
            (created && interesting).then(|| {
                (
                    cs["name"].as_str().unwrap_or("").to_string(),
                    restarts > 0 && !cs["state"]["running"].is_object(),
                )
            })
        })
        .collect()
}

/// The values of every Secret key the release's containers reference, to mask
/// them exactly in log lines. Never printed, never stored.
async fn referenced_secret_values(c: &Cluster, ns: &str, pods: &[Value]) -> Vec<SecretValue> {
    let mut refs = std::collections::BTreeSet::new();
    for p in pods {
        for ctr in ["containers", "initContainers"]
            .iter()
            .flat_map(|k| p["spec"][*k].as_array().cloned().unwrap_or_default())
        {
            for e in ctr["env"].as_array().into_iter().flatten() {
                let r = &e["valueFrom"]["secretKeyRef"];
                if let (Some(n), Some(k)) = (r["name"].as_str(), r["key"].as_str()) {
                    refs.insert((n.to_string(), k.to_string()));
                }
            }
        }
    }
    let mut out = Vec::new();
    for (name, key) in refs {
        let obj = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}});
        if let Ok(Some(s)) = crate::kube::apply::get(c, &obj).await
            && let Some(b) = s["data"][&key].as_str()
            && let Ok(v) = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b)
        {
            out.push(SecretValue::from_bytes(v));
        }
    }
    out
}

/// Termination messages carry the last log lines (`FallbackToLogsOnError`), and
/// waiting messages and events quote what they like: every message diagnose may
/// print goes through the same redaction as log lines.
fn redact_messages(s: &mut Snapshot, known: &[SecretValue]) {
    // Only messages that exist (indexing a Value mutably would add nulls).
    let fix = |v: Option<&mut Value>| {
        if let Some(v) = v
            && let Some(m) = v.as_str()
        {
            let lines: Vec<String> = m
                .lines()
                .map(|l| crate::redact::log_line(l, known))
                .collect();
            *v = Value::String(lines.join("\n"));
        }
    };
    let conditions = |o: &mut Value| {
        if let Some(cs) = o
            .pointer_mut("/status/conditions")
            .and_then(Value::as_array_mut)
        {
            for c in cs {
                fix(c.get_mut("message"));
            }
        }
    };
    for pod in &mut s.pods {
        for k in [
            "initContainerStatuses",
            "containerStatuses",
            "ephemeralContainerStatuses",
        ] {
            let Some(list) = pod
                .pointer_mut(&format!("/status/{k}"))
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            for cs in list {
                for p in [
                    "/state/waiting/message",
                    "/state/terminated/message",
                    "/lastState/waiting/message",
                    "/lastState/terminated/message",
                ] {
                    fix(cs.pointer_mut(p));
                }
            }
        }
        conditions(pod);
    }
    for rs in &mut s.replicasets {
        conditions(rs);
    }
    for e in &mut s.events {
        fix(e.get_mut("message"));
    }
}

async fn logs(
    c: &Cluster,
    ns: &str,
    s: &Snapshot,
    known: &[SecretValue],
    tail: i64,
) -> BTreeMap<(String, String), LogTail> {
    let api: Api<Pod> = Api::namespaced(c.client.clone(), ns);
    let mut out = BTreeMap::new();
    for pod in &s.pods {
        let name = pod["metadata"]["name"].as_str().unwrap_or("");
        if simulated(s, pod) {
            continue;
        }
        for (ctr, previous) in failing_containers(pod) {
            let lp = LogParams {
                container: Some(ctr.clone()),
                previous,
                tail_lines: Some(tail.max(1)),
                limit_bytes: Some(64 * 1024),
                ..LogParams::default()
            };
            // A log that cannot be read (already gone, not started) is simply not evidence.
            let Ok(text) = api.logs(name, &lp).await else {
                continue;
            };
            let lines = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| crate::redact::log_line(l, known))
                .collect();
            out.insert((name.to_string(), ctr), LogTail { previous, lines });
        }
    }
    out
}

fn simulated(s: &Snapshot, pod: &Value) -> bool {
    let node = pod["spec"]["nodeName"].as_str().unwrap_or("");
    s.nodes.iter().any(|n| {
        n["metadata"]["name"] == node
            && n["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    })
}

/// `kubectl top pods` for the pods with an OOM-killed container: what
/// metrics.k8s.io reports per container, or why nothing (the API is not served
/// without metrics-server, or the identity may not read it).
async fn memory_usage(c: &Cluster, ns: &str, s: &Snapshot) -> Option<dx::MemoryUsage> {
    let oom: Vec<&str> = s
        .pods
        .iter()
        .filter(|p| {
            p["status"]["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|cs| {
                    cs["lastState"]["terminated"]["reason"] == "OOMKilled"
                        || cs["state"]["terminated"]["reason"] == "OOMKilled"
                })
        })
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    if oom.is_empty() {
        return None;
    }
    let mut out = BTreeMap::new();
    for pod in oom {
        let url = format!("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/{pod}");
        let req = match http::Request::get(&url).body(Vec::new()) {
            Ok(r) => r,
            Err(e) => return Some(Err(e.to_string())),
        };
        match c.client.request::<Value>(req).await {
            Ok(v) => {
                for ctr in v["containers"].as_array().into_iter().flatten() {
                    if let (Some(n), Some(m)) =
                        (ctr["name"].as_str(), ctr["usage"]["memory"].as_str())
                    {
                        out.insert((pod.to_string(), n.to_string()), m.to_string());
                    }
                }
            }
            Err(::kube::Error::Api(e)) if e.code == 404 && out.is_empty() => {
                // Either the API is not served or the pod has no sample yet.
                return Some(Err("metrics.k8s.io is not served by this cluster (no metrics-server), or has no sample of the pod".into()));
            }
            Err(::kube::Error::Api(e)) if e.code == 403 => {
                return Some(Err("the identity may not read metrics.k8s.io pods".into()));
            }
            Err(e) => return Some(Err(format!("metrics.k8s.io: {e}"))),
        }
    }
    Some(Ok(out))
}

/// The configured `User` of the images the guide's recipes need it for (a
/// runAsNonRoot refusal, "Permission denied"), from the Docker engine when one
/// answers and has the image (the guide's `docker inspect | grep User`).
async fn image_users(s: &Snapshot) -> BTreeMap<String, String> {
    let mut wanted = std::collections::BTreeSet::new();
    for pod in &s.pods {
        for cs in pod["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let msg = cs["state"]["waiting"]["message"].as_str().unwrap_or("");
            let name = cs["name"].as_str().unwrap_or("");
            let denied = s
                .logs
                .get(&(
                    pod["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    name.to_string(),
                ))
                .is_some_and(|l| {
                    l.lines
                        .iter()
                        .any(|x| x.to_ascii_lowercase().contains("permission denied"))
                });
            if msg.contains("runAsNonRoot") || denied {
                let image = pod["spec"]["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| c["name"] == name)
                    .and_then(|c| c["image"].as_str());
                if let Some(i) = image {
                    wanted.insert(i.to_string());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    if wanted.is_empty() {
        return out;
    }
    let Ok(engine) = crate::docker::Engine::connect().await else {
        return out;
    };
    for image in wanted {
        if let Ok(f) = engine.image_facts(&image).await {
            out.insert(image, f.user);
        }
    }
    out
}

/// The guide's `kubectl exec <pod> -- id` and `ls -la /app`, for containers
/// whose log says "Permission denied": an ephemeral container in the process's
/// PID namespace reads its `/proc/1/status` and lists the directory through
/// `/proc/1/root`. A container that is not running has no process to read.
async fn probes(
    c: &Cluster,
    ns: &str,
    s: &Snapshot,
) -> Result<BTreeMap<(String, String), ProbeSeen>> {
    let mut out = BTreeMap::new();
    for ((pod_name, ctr), tail) in &s.logs {
        let Some(line) = tail
            .lines
            .iter()
            .find(|l| l.to_ascii_lowercase().contains("permission denied"))
        else {
            continue;
        };
        let Some(pod) = s
            .pods
            .iter()
            .find(|p| p["metadata"]["name"] == pod_name.as_str())
        else {
            continue;
        };
        let running = pod["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|cs| cs["name"] == ctr.as_str() && cs["state"]["running"].is_object());
        let key = (pod_name.clone(), ctr.clone());
        if !running {
            out.insert(
                key,
                ProbeSeen::Unavailable(
                    "the process exits before it can be inspected (no running container to probe)"
                        .into(),
                ),
            );
            continue;
        }
        let dir = dx::path_in(line)
            .map(|(p, is_dir)| {
                if is_dir {
                    p
                } else {
                    dx::writable_dir(&p, false).unwrap_or(p)
                }
            })
            .unwrap_or_else(|| "/app".into());
        let dir = if dir
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "/._-".contains(ch))
        {
            dir
        } else {
            "/app".into()
        };
        let parent = dx::writable_dir(&dir, false).unwrap_or_else(|| "/".into());
        let script = format!(
            "cat /proc/1/status; echo --pake-ls--; /busybox ls -lnd /proc/1/root{parent} /proc/1/root{dir} 2>&1; true"
        );
        let probe = crate::kube::debug::run_in_pod(
            c,
            ns,
            pod_name,
            ctr,
            &super::verify::probe_image(),
            &["/busybox", "sh", "-c", &script],
            &[],
            1000,
            Duration::from_secs(60),
        )
        .await;
        let seen = match probe {
            Ok(text) => {
                let (status, listing) = text
                    .split_once("--pake-ls--")
                    .unwrap_or((text.as_str(), ""));
                ProbeSeen::Read {
                    status: status.to_string(),
                    listing: listing.replace("/proc/1/root", ""),
                }
            }
            Err(crate::kube::debug::ProbeError::Unavailable(why)) => {
                ProbeSeen::Unavailable(format!("the probe image could not run ({why})"))
            }
            Err(crate::kube::debug::ProbeError::Failed(e)) => {
                ProbeSeen::Unavailable(e.message.clone())
            }
        };
        out.insert(key, seen);
    }
    Ok(out)
}

/// `pake diagnose connectivity -o json`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectivityReport {
    pub namespace: String,
    pub ok: bool,
    pub connection: dx::ConnFacts,
    pub findings: Vec<Diagnosis>,
}

/// The question `SRC -> DST[:PORT]` asked of the live namespace.
#[derive(Debug, Clone)]
pub struct Question {
    pub src: String,
    pub dst: String,
    pub port: Option<(crate::checks::netpol::Protocol, u16)>,
    /// HTTP path of the live test (the guide's `/health`).
    pub path: String,
    pub no_probe: bool,
}

/// The NetworkPolicy engine's verdict on the live namespace, then (unless
/// `--no-probe`) a live test from an ephemeral container in a running pod of
/// the source: its network namespace, so its labels and its policies.
pub async fn connectivity(c: &Cluster, r: &Resolved, q: &Question) -> Result<ConnectivityReport> {
    use crate::checks::netpol::{Direction, Endpoint, Engine, Input};
    let ns = r.namespace.as_str();
    let objects = crate::workflow::netpol::live(c, ns).await?;
    let input = Input::from_objects(&objects)
        .map_err(|e| Error::usage(e.to_string()).on(e.object.clone()))?;
    let engine = Engine::new(&input);
    let find = |s: &str| {
        engine.find(s).map_err(|m| {
            Error::usage(m).fix(
                "name a workload of the namespace: `pake netpol --live -n NAMESPACE` lists them",
            )
        })
    };
    let (src, dst) = (find(&q.src)?, find(&q.dst)?);
    let v = engine.explain(&src, &dst);
    let allows = |conn: &crate::checks::netpol::ConnSet| match q.port {
        Some((p, n)) => conn.allows(p, n),
        None => !conn.is_empty(),
    };
    let workload = |e: &Endpoint| match e {
        Endpoint::Workload(w) => Some(&input.workloads[*w]),
        Endpoint::External(_) => None,
    };
    let app_of = |e: &Endpoint| workload(e).and_then(|w| w.labels.get("app").cloned());
    let mut sides = Vec::new();
    for (d, dv, who, peer) in [
        (Direction::Egress, &v.egress, &src, &dst),
        (Direction::Ingress, &v.ingress, &dst, &src),
    ] {
        let open = allows(&dv.conn);
        let pake_yaml = (!open && app_of(who).as_deref() == Some(r.app.as_str()))
            .then(|| match (d, app_of(peer)) {
                (Direction::Ingress, Some(a)) => Some(format!(
                    "network:\n  allowFrom: [{a}]   # with the apps already listed"
                )),
                (Direction::Egress, Some(a)) => q.port.map(|(p, n)| {
                    format!(
                        "network:\n  egress:\n    - app: {a}\n      port: {n}\n      protocol: {}",
                        p.as_str()
                    )
                }),
                _ => None,
            })
            .flatten();
        sides.push(dx::SideSeen {
            direction: d.as_str().to_string(),
            workload: engine.node_name(who),
            isolated: dv.isolated,
            policies: dv.policies.clone(),
            rules: dv.rules.iter().map(|r| r.to_string()).collect(),
            allows: open,
            allow_policy: (!open)
                .then(|| engine.allow_snippet(d, &src, &dst, q.port))
                .flatten()
                .and_then(|s| serde_saphyr::to_string(&s).ok()),
            pake_yaml,
        });
    }
    let live = if q.no_probe {
        dx::Live::Skipped
    } else {
        live_test(c, ns, workload(&src), workload(&dst), q).await?
    };
    let facts = dx::ConnFacts {
        src: engine.node_name(&src),
        dst: engine.node_name(&dst),
        port: q
            .port
            .map_or("any port".into(), |(p, n)| format!("{n}/{}", p.as_str())),
        allowed: allows(&v.conn),
        sides,
        live,
    };
    let findings = dx::connectivity(&facts);
    Ok(ConnectivityReport {
        namespace: ns.to_string(),
        ok: findings.iter().all(|f| f.status != dx::Status::Problem),
        connection: facts,
        findings,
    })
}

/// The guide's `kubectl run … netshoot -- curl http://backend:8000/health`,
/// without a privileged image or a pod of its own: busybox `nslookup` and
/// `nc` in an ephemeral container (uid 1000, no capabilities) of a running
/// source pod on a real node.
async fn live_test(
    c: &Cluster,
    ns: &str,
    src: Option<&crate::checks::netpol::Workload>,
    dst: Option<&crate::checks::netpol::Workload>,
    q: &Question,
) -> Result<dx::Live> {
    let (Some(src), Some(dst)) = (src, dst) else {
        return Ok(dx::Live::NotProvable {
            why: "one side is an address outside the cluster: no pod to test from".into(),
        });
    };
    let Some((proto, port)) = q.port else {
        return Ok(dx::Live::NotProvable {
            why: "no port given (SRC DST:PORT): nothing to connect to".into(),
        });
    };
    if proto != crate::checks::netpol::Protocol::Tcp {
        return Ok(dx::Live::NotProvable {
            why: format!("the live test speaks HTTP over TCP, not {}", proto.as_str()),
        });
    }
    let selector = src
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods = list_json_selected(c, "v1", "Pod", &src.namespace, Some(&selector)).await?;
    let nodes = nodes(c).await?;
    let snap = Snapshot {
        nodes,
        ..Snapshot::default()
    };
    let running: Vec<&Value> = pods
        .iter()
        .filter(|p| {
            p["metadata"]["deletionTimestamp"].is_null() && p["status"]["phase"] == "Running"
        })
        .collect();
    let Some(pod) = running.iter().find(|p| !simulated(&snap, p)) else {
        let why = if running.is_empty() {
            format!("no running pod of {} to test from", src.name)
        } else {
            format!(
                "not provable on a simulated node: every pod of {} runs on a kwok node ({}), where no process or network exists",
                src.name,
                running
                    .iter()
                    .filter_map(|p| p["spec"]["nodeName"].as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return Ok(dx::Live::NotProvable { why });
    };
    // The destination's Service (by its app label), else the workload's name.
    let host = match dst.labels.get("app") {
        Some(a) if a.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-') => a.clone(),
        _ => dst.name.clone(),
    };
    let host = if dst.namespace != ns {
        format!("{host}.{}", dst.namespace)
    } else {
        host
    };
    let path = if q.path.starts_with('/')
        && q.path
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "/._-".contains(ch))
    {
        q.path.clone()
    } else {
        "/".into()
    };
    let url = format!("http://{host}:{port}{path}");
    // One HTTP/1.0 request through `nc` (busybox's static `wget` crashes in the C
    // library's resolver in this image); its first line is the status.
    let script = format!(
        "/busybox nslookup {host} 2>&1; echo --pake-http--; printf 'GET {path} HTTP/1.0\\r\\nHost: {host}\\r\\nConnection: close\\r\\n\\r\\n' | /busybox nc -w 5 {host} {port} 2>&1 | /busybox head -n 1; true"
    );
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
    let target = pod["spec"]["containers"][0]["name"].as_str().unwrap_or("");
    let probe = crate::kube::debug::run_in_pod(
        c,
        &src.namespace,
        pod_name,
        target,
        &super::verify::probe_image(),
        &["/busybox", "sh", "-c", &script],
        &[],
        1000,
        Duration::from_secs(60),
    )
    .await;
    Ok(match probe {
        Ok(out) => dx::parse_live(pod_name, &url, &out),
        Err(crate::kube::debug::ProbeError::Unavailable(why)) => dx::Live::NotProvable {
            why: format!(
                "the probe image could not run in {pod_name} ({why}); set PAKE_PROBE_IMAGE to an image with /busybox"
            ),
        },
        Err(crate::kube::debug::ProbeError::Failed(e)) => return Err(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn logs_are_read_of_failing_created_containers_only() {
        let pod = json!({"status": {"containerStatuses": [
            {"name": "ok", "ready": true, "restartCount": 0, "state": {"running": {}}},
            {"name": "crash", "ready": false, "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
            {"name": "starting", "ready": false, "restartCount": 0, "state": {"running": {}}},
            {"name": "pull", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff"}}},
            {"name": "again", "ready": true, "restartCount": 1, "state": {"running": {}}}
        ]}});
        assert_eq!(
            failing_containers(&pod),
            [
                ("crash".to_string(), true),
                ("starting".to_string(), false),
                ("again".to_string(), false)
            ]
        );
        assert!(failing_containers(&json!(null)).is_empty());
    }

    #[test]
    fn messages_are_redacted_like_log_lines() {
        let known = [SecretValue::from_bytes(b"s3cr3t-db-pass".to_vec())];
        let mut s = Snapshot {
            pods: vec![json!({"status": {"containerStatuses": [{"name": "a",
                "lastState": {"terminated": {"message": "connect: password=s3cr3t-db-pass\nmkdir /app/data: read-only file system"}},
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}})],
            events: vec![json!({"message": "token: s3cr3t-db-pass"})],
            ..Snapshot::default()
        };
        redact_messages(&mut s, &known);
        let text = serde_json::to_string(&(&s.pods, &s.events)).unwrap();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.contains("read-only file system"), "{text}");
        assert!(
            s.pods[0]["status"]["containerStatuses"][0]["state"]["waiting"]
                .get("message")
                .is_none()
        );
    }

    #[test]
    fn the_last_user_of_a_dockerfile() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("Dockerfile");
        std::fs::write(
            &f,
            "FROM a AS b\nUSER root\nRUN x\nFROM scratch\nuser 1000:1000 # app\nCMD [\"/app\"]\n",
        )
        .unwrap();
        assert_eq!(dockerfile_user(&f).as_deref(), Some("1000:1000"));
        std::fs::write(&f, "FROM scratch\n").unwrap();
        assert_eq!(dockerfile_user(&f), None);
        assert_eq!(dockerfile_user(&d.path().join("missing")), None);
    }
}
