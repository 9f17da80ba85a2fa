//! Audit depth: what the widely used manifest scanners catch beyond the
//! guide's checklist, run by `pake audit` (not by `pake verify`, whose live
//! checks stay the guide's).
//!
//! | ID | Severity | What |
//! |----|----------|------|
//! | `AUDIT-NOT-EVALUATED` | high (always fails) | a workload pake cannot evaluate (apiVersion does not serve the kind, no pod template) |
//! | `GUIDE-IMAGE-TAG` | medium | image without a tag, or `:latest` |
//! | `GUIDE-IMAGE-PULL-POLICY` | low | a mutable tag with `imagePullPolicy: IfNotPresent`/`Never` |
//! | `GUIDE-IMAGE-DIGEST` | medium | protected environments: image not pinned by digest |
//! | `GUIDE-RBAC-EXEC` | high | `pods/exec`, `pods/attach` |
//! | `GUIDE-RBAC-ESCALATE` | high | `escalate`, `bind`, `impersonate` verbs |
//! | `GUIDE-RBAC-BINDING` | critical / high | bindings to `cluster-admin`/`admin`/`edit`; anonymous, all-authenticated or all-service-account subjects |
//! | `GUIDE-PDB-BLOCKS-DRAIN` | medium | a PDB that allows no voluntary disruption |
//! | `GUIDE-HPA-PDB` | medium | an HPA whose minimum leaves the PDB no disruption |
//! | `GUIDE-TOPOLOGY-SPREAD` | medium | protected environments: ≥ 2 replicas without topology spread or pod anti-affinity |
//! | `GUIDE-NAKED-POD` | medium | a Pod without a controller |
//! | `GUIDE-SERVICE-EXPOSED` | medium | Service of type LoadBalancer or NodePort |
//! | `GUIDE-INGRESS-HARDENING` | low | nginx Ingress without the guide's redirect and TLS-versions annotations |

use std::collections::BTreeMap;

use serde_json::Value;

use super::guide::{
    arr, at, containers, describe, kind, namespace, pod_spec_path, selector_matches, str_at, strs,
};
use super::pss::{pod_template_of, pod_template_path};
use super::{FieldPath, Finding, Severity};

pub const NOT_EVALUATED: &str = "AUDIT-NOT-EVALUATED";
pub const IMAGE_TAG: &str = "GUIDE-IMAGE-TAG";
pub const IMAGE_PULL_POLICY: &str = "GUIDE-IMAGE-PULL-POLICY";
pub const IMAGE_DIGEST: &str = "GUIDE-IMAGE-DIGEST";
pub const RBAC_EXEC: &str = "GUIDE-RBAC-EXEC";
pub const RBAC_ESCALATE: &str = "GUIDE-RBAC-ESCALATE";
pub const RBAC_BINDING: &str = "GUIDE-RBAC-BINDING";
pub const PDB_BLOCKS_DRAIN: &str = "GUIDE-PDB-BLOCKS-DRAIN";
pub const HPA_PDB: &str = "GUIDE-HPA-PDB";
pub const TOPOLOGY_SPREAD: &str = "GUIDE-TOPOLOGY-SPREAD";
pub const NAKED_POD: &str = "GUIDE-NAKED-POD";
pub const SERVICE_EXPOSED: &str = "GUIDE-SERVICE-EXPOSED";
pub const INGRESS_HARDENING: &str = "GUIDE-INGRESS-HARDENING";

/// Every check ID of this module.
pub const IDS: [&str; 13] = [
    NOT_EVALUATED,
    IMAGE_TAG,
    IMAGE_PULL_POLICY,
    IMAGE_DIGEST,
    RBAC_EXEC,
    RBAC_ESCALATE,
    RBAC_BINDING,
    PDB_BLOCKS_DRAIN,
    HPA_PDB,
    TOPOLOGY_SPREAD,
    NAKED_POD,
    SERVICE_EXPOSED,
    INGRESS_HARDENING,
];

/// What the audit knows about the target environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct DepthOptions {
    /// `protected: true` in pake.yaml (`pake audit --env prod`): digests and
    /// topology spread are required.
    pub protected: bool,
}

/// Run the checks on a set of objects: `(index into objects, finding)`.
pub fn check_objects(objects: &[Value], opts: DepthOptions) -> Vec<(usize, Finding)> {
    check_objects_in(objects, 0..objects.len(), opts)
}

/// [`check_objects`] for `objects[range]` only; every object of `objects` is
/// context (the workloads and PDBs that PDBs and HPAs are compared with).
pub fn check_objects_in<V: std::borrow::Borrow<Value>>(
    objects: &[V],
    range: std::ops::Range<usize>,
    opts: DepthOptions,
) -> Vec<(usize, Finding)> {
    let ctx = Context::new(objects);
    let mut out = Vec::new();
    for (i, obj) in objects[range.clone()]
        .iter()
        .enumerate()
        .map(|(i, o)| (range.start + i, o.borrow()))
    {
        let mut push = |f: Finding| out.push((i, f.on(super::guide::object_ref(obj))));
        not_evaluated(obj, &mut push);
        if let Some((_, spec)) = pod_template_of(obj) {
            check_images(obj, spec, opts, &mut push);
            check_workload(obj, spec, opts, &mut push);
        }
        match kind(obj) {
            "Role" | "ClusterRole" => check_rules(obj, &mut push),
            "RoleBinding" | "ClusterRoleBinding" => check_binding(obj, &mut push),
            "PodDisruptionBudget" => check_pdb(obj, &ctx, &mut push),
            "HorizontalPodAutoscaler" => check_hpa(obj, &ctx, &mut push),
            "Service" => check_service(obj, &mut push),
            "Ingress" => check_ingress(obj, &mut push),
            _ => {}
        }
    }
    out
}

// ---- not evaluated ----

/// The API groups that serve each kind that carries a pod spec.
fn pod_kind_groups(kind: &str) -> Option<(&'static [&'static str], &'static str)> {
    Some(match kind {
        "Pod" | "ReplicationController" | "PodTemplate" => (&[""], "v1"),
        "Deployment" | "ReplicaSet" | "DaemonSet" => (&["apps", "extensions"], "apps/v1"),
        "StatefulSet" => (&["apps"], "apps/v1"),
        "Job" | "CronJob" => (&["batch"], "batch/v1"),
        _ => return None,
    })
}

/// A pod-carrying kind pake would skip: say so instead of passing silently.
///
/// A group with a dot (`batch.volcano.sh`) is a custom resource that happens
/// to share the kind's name: not a Kubernetes workload, not flagged.
fn not_evaluated(obj: &Value, push: &mut dyn FnMut(Finding)) {
    let k = kind(obj);
    let Some((groups, want)) = pod_kind_groups(k) else {
        return;
    };
    let api_version = str_at(obj, &["apiVersion"]).unwrap_or("");
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    if group.contains('.') {
        return;
    }
    if !groups.contains(&group) {
        push(
            Finding::new(
                NOT_EVALUATED,
                Severity::High,
                format!(
                    "not evaluated: apiVersion {api_version:?} does not serve kind {k} (the API server would reject it), so none of its pod checks ran"
                ),
                format!("set apiVersion: {want}"),
            )
            .at_field(FieldPath::of(&["apiVersion"])),
        );
        return;
    }
    if pod_template_of(obj).is_none() {
        let path = pod_template_path(obj).unwrap_or(&[]);
        push(
            Finding::new(
                NOT_EVALUATED,
                Severity::High,
                format!(
                    "not evaluated: {k} has no pod template at {}, so none of its pod checks ran",
                    path.join(".")
                ),
                format!("add {} with the pod's metadata and spec", path.join(".")),
            )
            .at_field(FieldPath::of(&["spec"])),
        );
    }
}

// ---- images ----

/// `(tag, has digest)` of an image reference; the tag is `None` when absent.
fn image_parts(image: &str) -> (Option<&str>, bool) {
    let (name, digest) = match image.split_once('@') {
        Some((n, _)) => (n, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    (last.split_once(':').map(|(_, t)| t), digest)
}

fn check_images(obj: &Value, spec: &Value, opts: DepthOptions, push: &mut dyn FnMut(Finding)) {
    for c in containers(spec, &pod_spec_path(obj)) {
        let Some(image) = c.v.get("image").and_then(Value::as_str) else {
            continue;
        };
        let (tag, digest) = image_parts(image);
        let mutable = !digest && matches!(tag, None | Some("latest") | Some(""));
        if mutable {
            push(
                Finding::new(
                    IMAGE_TAG,
                    Severity::Medium,
                    format!(
                        "{} runs image {image:?}, {}: what runs changes with every push",
                        describe(&c),
                        if tag.is_none() { "without a tag (it means :latest)" } else { "with a mutable :latest tag" }
                    ),
                    "pin a version tag (e.g. :1.4.2), or a digest (@sha256:...; pake.yaml `digest: record`)",
                )
                .at_field(c.path.key("image")),
            );
        }
        let policy = c.v.get("imagePullPolicy").and_then(Value::as_str);
        if mutable && matches!(policy, Some("IfNotPresent" | "Never")) {
            push(
                Finding::new(
                    IMAGE_PULL_POLICY,
                    Severity::Low,
                    format!(
                        "{} uses imagePullPolicy: {} with a mutable tag: each node keeps whichever image it pulled first",
                        describe(&c),
                        policy.unwrap_or("")
                    ),
                    "pin the image by version or digest (then IfNotPresent is right), or use imagePullPolicy: Always",
                )
                .at_field(c.path.key("imagePullPolicy")),
            );
        }
        if opts.protected && !digest {
            push(
                Finding::new(
                    IMAGE_DIGEST,
                    Severity::Medium,
                    format!(
                        "{} runs image {image:?} by tag in a protected environment: a re-pushed tag changes what runs without a deploy",
                        describe(&c)
                    ),
                    "deploy by digest: set `digest: record` in pake.yaml (pake build --push records it) or write image@sha256:...",
                )
                .at_field(c.path.key("image")),
            );
        }
    }
}

// ---- workloads: naked pods, topology spread ----

fn check_workload(obj: &Value, spec: &Value, opts: DepthOptions, push: &mut dyn FnMut(Finding)) {
    let k = kind(obj);
    if k == "Pod"
        && arr(at(obj, &["metadata", "ownerReferences"]))
            .next()
            .is_none()
    {
        push(
            Finding::new(
                NAKED_POD,
                Severity::Medium,
                "a Pod without a controller: nothing recreates it when its node drains or fails, and no rolling update or rollback applies",
                "run it from a Deployment (or a Job for one-off work)",
            )
            .at_field(FieldPath::of(&["kind"])),
        );
    }
    if opts.protected && matches!(k, "Deployment" | "StatefulSet") && replicas(obj) >= 2 {
        let spread = arr(spec.get("topologySpreadConstraints")).next().is_some();
        let anti = at(spec, &["affinity", "podAntiAffinity"]).is_some_and(|a| !a.is_null());
        if !spread && !anti {
            push(
                Finding::new(
                    TOPOLOGY_SPREAD,
                    Severity::Medium,
                    format!(
                        "{} replicas in a protected environment with no topologySpreadConstraints or pod anti-affinity: they may all land on one node (or zone) and fail together",
                        replicas(obj)
                    ),
                    "add topologySpreadConstraints (topologyKey: kubernetes.io/hostname and topology.kubernetes.io/zone, maxSkew: 1, whenUnsatisfiable: ScheduleAnyway) selecting the app's labels",
                )
                .at_field(pod_spec_path(obj)),
            );
        }
    }
}

/// `spec.replicas`, defaulting to 1 as the API server does.
fn replicas(obj: &Value) -> i64 {
    at(obj, &["spec", "replicas"])
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

// ---- RBAC ----

fn check_rules(obj: &Value, push: &mut dyn FnMut(Finding)) {
    for (i, rule) in arr(obj.get("rules")).enumerate() {
        let rule_path = FieldPath::of(&["rules"]).index(i);
        let resources: Vec<&str> = strs(rule.get("resources")).collect();
        let verbs: Vec<&str> = strs(rule.get("verbs")).collect();
        let exec: Vec<&str> = resources
            .iter()
            .copied()
            .filter(|r| matches!(*r, "pods/exec" | "pods/attach" | "pods/*"))
            .collect();
        if !exec.is_empty() && !verbs.is_empty() {
            push(
                Finding::new(
                    RBAC_EXEC,
                    Severity::High,
                    format!(
                        "rule {} grants {}: a shell in any pod it reaches, with that pod's secrets and identity",
                        i + 1,
                        exec.join(", ")
                    ),
                    "remove pods/exec and pods/attach from the app's and CI's roles; grant them to a break-glass role bound on demand",
                )
                .at_field(rule_path.key("resources")),
            );
        }
        let esc: Vec<&str> = verbs
            .iter()
            .copied()
            .filter(|v| matches!(*v, "escalate" | "bind" | "impersonate"))
            .collect();
        if !esc.is_empty() {
            push(
                Finding::new(
                    RBAC_ESCALATE,
                    Severity::High,
                    format!(
                        "rule {} grants {}: a way to obtain permissions the role does not have",
                        i + 1,
                        esc.join(", ")
                    ),
                    "remove escalate, bind and impersonate; grant the specific permissions instead",
                )
                .at_field(rule_path.key("verbs")),
            );
        }
    }
}

fn check_binding(obj: &Value, push: &mut dyn FnMut(Finding)) {
    let cluster = kind(obj) == "ClusterRoleBinding";
    let role = str_at(obj, &["roleRef", "name"]).unwrap_or("");
    let role_kind = str_at(obj, &["roleRef", "kind"]).unwrap_or("ClusterRole");
    if role_kind == "ClusterRole" && matches!(role, "cluster-admin" | "admin" | "edit") {
        let sev = if role == "cluster-admin" || cluster {
            Severity::Critical
        } else {
            Severity::High
        };
        push(
            Finding::new(
                RBAC_BINDING,
                sev,
                format!(
                    "binds the built-in ClusterRole {role} {}: far more than an app or a deployer needs (it includes reading every Secret{})",
                    if cluster { "cluster-wide" } else { "in its namespace" },
                    if role == "cluster-admin" { " and changing RBAC" } else { "" }
                ),
                "bind a Role listing exactly what is needed (templates/rbac/ holds pake's deployer roles)",
            )
            .at_field(FieldPath::of(&["roleRef", "name"])),
        );
    }
    for (i, s) in arr(obj.get("subjects")).enumerate() {
        let name = s.get("name").and_then(Value::as_str).unwrap_or("");
        let sk = s.get("kind").and_then(Value::as_str).unwrap_or("");
        let who = match (sk, name) {
            ("Group", "system:unauthenticated") | ("User", "system:anonymous") => Some((
                Severity::Critical,
                "anyone who can reach the API server, without credentials",
            )),
            ("Group", "system:authenticated") => Some((
                Severity::High,
                "every authenticated identity in the cluster",
            )),
            ("Group", "system:serviceaccounts") => {
                Some((Severity::High, "every ServiceAccount in every namespace"))
            }
            ("Group", n) if n.starts_with("system:serviceaccounts:") => {
                Some((Severity::High, "every ServiceAccount of a namespace"))
            }
            _ => None,
        };
        if let Some((sev, what)) = who {
            push(
                Finding::new(
                    RBAC_BINDING,
                    sev,
                    format!("subject {sk} {name} grants role {role} to {what}"),
                    "bind the role to the specific ServiceAccount or user that needs it",
                )
                .at_field(FieldPath::of(&["subjects"]).index(i).key("name")),
            );
        }
    }
}

// ---- availability: PDBs and HPAs ----

/// Workloads with replicas and pod labels, by namespace; HPAs by target.
struct Context<'a> {
    workloads: BTreeMap<&'a str, Vec<&'a Value>>,
    pdbs: BTreeMap<&'a str, Vec<&'a Value>>,
}

impl<'a> Context<'a> {
    fn new<V: std::borrow::Borrow<Value>>(objects: &'a [V]) -> Self {
        let mut c = Context {
            workloads: BTreeMap::new(),
            pdbs: BTreeMap::new(),
        };
        for o in objects.iter().map(std::borrow::Borrow::borrow) {
            match kind(o) {
                "Deployment" | "StatefulSet" | "ReplicaSet" => {
                    c.workloads.entry(namespace(o)).or_default().push(o)
                }
                "PodDisruptionBudget" => c.pdbs.entry(namespace(o)).or_default().push(o),
                _ => {}
            }
        }
        c
    }

    /// Workloads in the PDB's namespace whose pods its selector matches.
    fn selected_by(&self, pdb: &'a Value) -> impl Iterator<Item = &'a Value> + '_ {
        let sel = at(pdb, &["spec", "selector"]);
        self.workloads
            .get(namespace(pdb))
            .into_iter()
            .flatten()
            .copied()
            .filter(move |w| {
                sel.is_some_and(|s| {
                    selector_matches(s, at(w, &["spec", "template", "metadata", "labels"]))
                })
            })
    }
}

/// An integer or an `"N%"` string.
enum IntOrPercent {
    Int(i64),
    Percent(i64),
}

fn int_or_percent(v: Option<&Value>) -> Option<IntOrPercent> {
    let v = v?;
    if let Some(n) = v.as_i64() {
        return Some(IntOrPercent::Int(n));
    }
    let s = v.as_str()?;
    match s.strip_suffix('%') {
        Some(p) => p.trim().parse().ok().map(IntOrPercent::Percent),
        None => s.trim().parse().ok().map(IntOrPercent::Int),
    }
}

fn check_pdb(obj: &Value, ctx: &Context, push: &mut dyn FnMut(Finding)) {
    let fix = "allow at least one disruption: minAvailable below the replica count (e.g. replicas - 1) or maxUnavailable: 1";
    let spec = obj.get("spec");
    match int_or_percent(spec.and_then(|s| s.get("maxUnavailable"))) {
        Some(IntOrPercent::Int(0) | IntOrPercent::Percent(0)) => {
            push(
                Finding::new(
                    PDB_BLOCKS_DRAIN,
                    Severity::Medium,
                    "maxUnavailable is 0: no pod may ever be evicted, so every node drain (upgrades, autoscaling) blocks",
                    fix,
                )
                .at_field(FieldPath::of(&["spec", "maxUnavailable"])),
            );
            return;
        }
        Some(_) => return,
        None => {}
    }
    let field = FieldPath::of(&["spec", "minAvailable"]);
    match int_or_percent(spec.and_then(|s| s.get("minAvailable"))) {
        Some(IntOrPercent::Percent(p)) if p >= 100 => push(
            Finding::new(
                PDB_BLOCKS_DRAIN,
                Severity::Medium,
                "minAvailable is 100%: no pod may ever be evicted, so every node drain blocks",
                fix,
            )
            .at_field(field),
        ),
        Some(IntOrPercent::Int(m)) => {
            for w in ctx.selected_by(obj) {
                let r = replicas(w);
                if m >= r {
                    push(
                        Finding::new(
                            PDB_BLOCKS_DRAIN,
                            Severity::Medium,
                            format!(
                                "minAvailable {m} with {r} replica{} of {} {}: no pod may be evicted, so every node drain blocks",
                                if r == 1 { "" } else { "s" },
                                kind(w),
                                str_at(w, &["metadata", "name"]).unwrap_or("")
                            ),
                            fix,
                        )
                        .at_field(field.clone()),
                    );
                }
            }
        }
        _ => {}
    }
}

fn check_hpa(obj: &Value, ctx: &Context, push: &mut dyn FnMut(Finding)) {
    let target_kind = str_at(obj, &["spec", "scaleTargetRef", "kind"]).unwrap_or("");
    let target = str_at(obj, &["spec", "scaleTargetRef", "name"]).unwrap_or("");
    let min = at(obj, &["spec", "minReplicas"])
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let Some(w) = ctx
        .workloads
        .get(namespace(obj))
        .into_iter()
        .flatten()
        .find(|w| kind(w) == target_kind && str_at(w, &["metadata", "name"]) == Some(target))
    else {
        return;
    };
    let labels = at(w, &["spec", "template", "metadata", "labels"]);
    for pdb in ctx.pdbs.get(namespace(obj)).into_iter().flatten() {
        let selects = at(pdb, &["spec", "selector"]).is_some_and(|s| selector_matches(s, labels));
        if let (true, Some(IntOrPercent::Int(m))) =
            (selects, int_or_percent(at(pdb, &["spec", "minAvailable"])))
            && min <= m
        {
            push(
                Finding::new(
                    HPA_PDB,
                    Severity::Medium,
                    format!(
                        "minReplicas {min} is not above minAvailable {m} of PodDisruptionBudget {}: when scaled down to its minimum, no pod may be evicted and node drains block",
                        str_at(pdb, &["metadata", "name"]).unwrap_or("")
                    ),
                    format!("set minReplicas to at least {} or lower the PDB's minAvailable (or use maxUnavailable: 1)", m + 1),
                )
                .at_field(FieldPath::of(&["spec", "minReplicas"])),
            );
        }
    }
}

// ---- exposure ----

fn check_service(obj: &Value, push: &mut dyn FnMut(Finding)) {
    let t = str_at(obj, &["spec", "type"]).unwrap_or("ClusterIP");
    if !matches!(t, "LoadBalancer" | "NodePort") {
        return;
    }
    let ranges = arr(at(obj, &["spec", "loadBalancerSourceRanges"]))
        .next()
        .is_some();
    push(
        Finding::new(
            SERVICE_EXPOSED,
            Severity::Medium,
            format!(
                "Service of type {t}: reachable from outside the cluster{}, around the Ingress and its TLS",
                if t == "NodePort" {
                    " on every node's address"
                } else if ranges {
                    " (limited by loadBalancerSourceRanges)"
                } else {
                    " from any address"
                }
            ),
            "use type: ClusterIP behind the Ingress (the guide's setup); if it must be external, restrict loadBalancerSourceRanges and override this check with a reason",
        )
        .at_field(FieldPath::of(&["spec", "type"])),
    );
}

/// The guide's nginx annotations: force HTTPS and TLS 1.2+. Only for Ingresses
/// served by ingress-nginx (class `nginx` or nginx annotations present).
fn check_ingress(obj: &Value, push: &mut dyn FnMut(Finding)) {
    let ann = at(obj, &["metadata", "annotations"]).and_then(Value::as_object);
    let nginx = str_at(obj, &["spec", "ingressClassName"]) == Some("nginx")
        || ann.is_some_and(|a| {
            a.keys()
                .any(|k| k.starts_with("nginx.ingress.kubernetes.io/"))
        });
    if !nginx || arr(at(obj, &["spec", "tls"])).next().is_none() {
        return; // no TLS at all is GUIDE-INGRESS-TLS
    }
    let has = |k: &str| ann.is_some_and(|a| a.contains_key(k));
    let mut missing = Vec::new();
    if !has("nginx.ingress.kubernetes.io/force-ssl-redirect") {
        missing.push("nginx.ingress.kubernetes.io/force-ssl-redirect: \"true\"");
    }
    if !has("nginx.ingress.kubernetes.io/ssl-protocols") {
        missing.push("nginx.ingress.kubernetes.io/ssl-protocols: \"TLSv1.2 TLSv1.3\"");
    }
    if !missing.is_empty() {
        push(
            Finding::new(
                INGRESS_HARDENING,
                Severity::Low,
                format!(
                    "the Ingress relies on the controller's defaults for HTTP redirect and TLS versions; the guide sets {}",
                    missing.join(" and ")
                ),
                format!("add the annotations {}", missing.join(", ")),
            )
            .at_field(FieldPath::of(&["metadata", "annotations"])),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(objs: &[Value], protected: bool) -> Vec<Finding> {
        check_objects(objs, DepthOptions { protected })
            .into_iter()
            .map(|(_, f)| f)
            .collect()
    }
    fn ids(objs: &[Value], protected: bool) -> Vec<String> {
        run(objs, protected).into_iter().map(|f| f.id).collect()
    }
    fn field(f: &Finding) -> String {
        f.field.as_ref().map(|p| p.to_string()).unwrap_or_default()
    }

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
              "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "web"}}}],
                "containers": [{"name": "web", "image": image, "imagePullPolicy": "IfNotPresent"}]}}}})
    }

    const PINNED: &str = "registry.example.com:5000/shop/web:1.4.2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_clean_workload_passes_even_when_protected() {
        assert!(ids(&[deployment(3, PINNED)], true).is_empty());
        assert!(
            ids(
                &[deployment(3, "registry.example.com:5000/web:1.4.2")],
                false
            )
            .is_empty()
        );
    }

    #[test]
    fn apiversion_that_does_not_fit_the_kind_is_not_evaluated() {
        let mut d = deployment(1, PINNED);
        d["apiVersion"] = json!("v1");
        let f = run(&[d.clone()], false);
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].id.as_str(), field(&f[0]).as_str()),
            (NOT_EVALUATED, "apiVersion")
        );
        assert!(f[0].message.starts_with("not evaluated: apiVersion \"v1\""));
        assert_eq!(f[0].fix, "set apiVersion: apps/v1");
        // Missing template.
        d["apiVersion"] = json!("apps/v1");
        d["spec"].as_object_mut().unwrap().remove("template");
        assert_eq!(ids(&[d.clone()], false), vec![NOT_EVALUATED]);
        // Look-alikes: an old but valid group, and a custom resource named Job.
        let mut old = deployment(1, PINNED);
        old["apiVersion"] = json!("extensions/v1beta1");
        assert!(ids(&[old], false).is_empty());
        let crd = json!({"apiVersion": "batch.volcano.sh/v1alpha1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"tasks": []}});
        assert!(ids(&[crd], false).is_empty());
    }

    #[test]
    fn images_tags_digests_and_pull_policy() {
        for (image, want) in [
            ("nginx", vec![IMAGE_TAG, IMAGE_PULL_POLICY]),
            ("nginx:latest", vec![IMAGE_TAG, IMAGE_PULL_POLICY]),
            ("localhost:5000/nginx", vec![IMAGE_TAG, IMAGE_PULL_POLICY]),
            ("localhost:5000/nginx:1.27", vec![]),
            (
                "nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                vec![],
            ),
        ] {
            assert_eq!(ids(&[deployment(1, image)], false), want, "{image}");
        }
        let f = run(&[deployment(1, "nginx")], false);
        assert_eq!(field(&f[0]), "spec.template.spec.containers[0].image");
        assert_eq!(
            field(&f[1]),
            "spec.template.spec.containers[0].imagePullPolicy"
        );
        // Always with a mutable tag is consistent.
        let mut d = deployment(1, "nginx:latest");
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("Always");
        assert_eq!(ids(&[d], false), vec![IMAGE_TAG]);
        // Protected: a tag is not enough.
        assert_eq!(
            ids(&[deployment(2, "localhost:5000/nginx:1.27")], true),
            vec![IMAGE_DIGEST]
        );
        // Ephemeral containers' images count too.
        let mut d = deployment(1, PINNED);
        d["spec"]["template"]["spec"]["ephemeralContainers"] =
            json!([{"name": "dbg", "image": "busybox"}]);
        let f = run(&[d], false);
        assert_eq!(
            field(&f[0]),
            "spec.template.spec.ephemeralContainers[0].image"
        );
    }

    fn role(rules: Value) -> Value {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r", "namespace": "shop"}, "rules": rules})
    }

    #[test]
    fn rbac_exec_and_escalation() {
        assert!(ids(&[role(json!([{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}]))], false).is_empty());
        let f = run(
            &[role(json!([
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}]))],
            false,
        );
        assert_eq!(
            (f[0].id.as_str(), field(&f[0]).as_str()),
            (RBAC_EXEC, "rules[1].resources")
        );
        assert_eq!(
            ids(
                &[role(
                    json!([{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["bind", "escalate"]}])
                )],
                false
            ),
            vec![RBAC_ESCALATE]
        );
        assert_eq!(
            ids(
                &[role(
                    json!([{"apiGroups": [""], "resources": ["users", "serviceaccounts"], "verbs": ["impersonate"]}])
                )],
                false
            ),
            vec![RBAC_ESCALATE]
        );
    }

    #[test]
    fn rbac_bindings() {
        let binding = |k: &str, role: &str, subjects: Value| {
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": k, "metadata": {"name": "b", "namespace": "shop"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}, "subjects": subjects})
        };
        let sa = json!([{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}]);
        assert!(
            ids(
                &[binding("RoleBinding", "pake-deployer", sa.clone())],
                false
            )
            .is_empty()
        );
        assert!(ids(&[binding("RoleBinding", "view", sa.clone())], false).is_empty());
        let f = run(
            &[binding("ClusterRoleBinding", "cluster-admin", sa.clone())],
            false,
        );
        assert_eq!(
            (f[0].severity, field(&f[0]).as_str()),
            (Severity::Critical, "roleRef.name")
        );
        let f = run(&[binding("RoleBinding", "edit", sa)], false);
        assert_eq!(f[0].severity, Severity::High);
        let f = run(
            &[binding(
                "RoleBinding",
                "pake-deployer",
                json!([
            {"kind": "ServiceAccount", "name": "web"},
            {"kind": "Group", "name": "system:unauthenticated", "apiGroup": "rbac.authorization.k8s.io"},
            {"kind": "Group", "name": "system:serviceaccounts:shop", "apiGroup": "rbac.authorization.k8s.io"}]),
            )],
            false,
        );
        assert_eq!(f.len(), 2);
        assert_eq!(
            (f[0].severity, field(&f[0]).as_str()),
            (Severity::Critical, "subjects[1].name")
        );
        assert_eq!(field(&f[1]), "subjects[2].name");
    }

    fn pdb(spec: Value) -> Value {
        let mut s = spec;
        s["selector"] = json!({"matchLabels": {"app": "web"}});
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web", "namespace": "shop"}, "spec": s})
    }

    #[test]
    fn pdbs_that_block_drains() {
        let d3 = deployment(3, PINNED);
        assert!(ids(&[d3.clone(), pdb(json!({"minAvailable": 2}))], false).is_empty());
        assert!(ids(&[d3.clone(), pdb(json!({"maxUnavailable": 1}))], false).is_empty());
        assert!(ids(&[d3.clone(), pdb(json!({"minAvailable": "50%"}))], false).is_empty());
        let f = run(&[d3.clone(), pdb(json!({"minAvailable": 3}))], false);
        assert_eq!(
            (f[0].id.as_str(), field(&f[0]).as_str()),
            (PDB_BLOCKS_DRAIN, "spec.minAvailable")
        );
        assert!(
            f[0].message
                .contains("minAvailable 3 with 3 replicas of Deployment web")
        );
        assert_eq!(
            ids(&[d3.clone(), pdb(json!({"maxUnavailable": 0}))], false),
            vec![PDB_BLOCKS_DRAIN]
        );
        assert_eq!(
            ids(&[d3, pdb(json!({"minAvailable": "100%"}))], false),
            vec![PDB_BLOCKS_DRAIN]
        );
        // A PDB over a single replica with minAvailable 1.
        assert_eq!(
            ids(
                &[deployment(1, PINNED), pdb(json!({"minAvailable": 1}))],
                false
            ),
            vec![PDB_BLOCKS_DRAIN]
        );
        // Another app's PDB in the same namespace does not count.
        let mut other = pdb(json!({"minAvailable": 5}));
        other["spec"]["selector"] = json!({"matchLabels": {"app": "api"}});
        assert!(ids(&[deployment(1, PINNED), other], false).is_empty());
    }

    #[test]
    fn hpa_minimum_against_pdb() {
        let hpa = |min: i64| {
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": min, "maxReplicas": 10}})
        };
        let objs = |min| {
            vec![
                deployment(4, PINNED),
                pdb(json!({"minAvailable": 2})),
                hpa(min),
            ]
        };
        assert!(ids(&objs(3), false).is_empty());
        let f = run(&objs(2), false);
        assert_eq!(
            (f[0].id.as_str(), field(&f[0]).as_str()),
            (HPA_PDB, "spec.minReplicas")
        );
    }

    #[test]
    fn topology_spread_in_protected_environments() {
        let mut d = deployment(3, PINNED);
        d["spec"]["template"]["spec"]
            .as_object_mut()
            .unwrap()
            .remove("topologySpreadConstraints");
        assert!(
            ids(&[d.clone()], false).is_empty(),
            "only required when protected"
        );
        let f = run(&[d.clone()], true);
        assert_eq!(
            (f[0].id.as_str(), field(&f[0]).as_str()),
            (TOPOLOGY_SPREAD, "spec.template.spec")
        );
        d["spec"]["template"]["spec"]["affinity"] =
            json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}});
        assert!(ids(&[d.clone()], true).is_empty());
        let mut one = deployment(1, PINNED);
        one["spec"]["template"]["spec"]
            .as_object_mut()
            .unwrap()
            .remove("topologySpreadConstraints");
        assert!(
            ids(&[one], true).is_empty(),
            "one replica has nothing to spread"
        );
    }

    #[test]
    fn naked_pods() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x:1"}]}});
        assert_eq!(ids(std::slice::from_ref(&pod), false), vec![NAKED_POD]);
        let mut owned = pod;
        owned["metadata"]["ownerReferences"] =
            json!([{"kind": "ReplicaSet", "name": "rs", "uid": "1", "apiVersion": "apps/v1"}]);
        assert!(ids(&[owned], false).is_empty());
    }

    #[test]
    fn exposure() {
        let svc = |t: &str| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"type": t, "ports": [{"port": 80}]}});
        assert!(ids(&[svc("ClusterIP")], false).is_empty());
        assert!(ids(&[json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}})], false).is_empty());
        let f = run(&[svc("LoadBalancer")], false);
        assert_eq!(
            (f[0].id.as_str(), field(&f[0]).as_str()),
            (SERVICE_EXPOSED, "spec.type")
        );
        assert_eq!(ids(&[svc("NodePort")], false), vec![SERVICE_EXPOSED]);

        let ing = |ann: Value| {
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i", "annotations": ann},
            "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example.com"], "secretName": "t"}], "rules": [{"host": "a.example.com"}]}})
        };
        assert!(ids(&[ing(json!({"nginx.ingress.kubernetes.io/force-ssl-redirect": "true", "nginx.ingress.kubernetes.io/ssl-protocols": "TLSv1.2 TLSv1.3"}))], false).is_empty());
        let f = run(
            &[ing(
                json!({"nginx.ingress.kubernetes.io/force-ssl-redirect": "true"}),
            )],
            false,
        );
        assert_eq!(f[0].id, INGRESS_HARDENING);
        assert!(
            f[0].message.contains("ssl-protocols") && !f[0].message.contains("force-ssl-redirect")
        );
        // Not an nginx Ingress: the controller's own settings apply.
        let mut traefik = ing(json!({}));
        traefik["spec"]["ingressClassName"] = json!("traefik");
        assert!(ids(&[traefik], false).is_empty());
    }
}
