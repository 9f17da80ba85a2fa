//! The deployment security guide's checklist, beyond what Pod Security
//! admission covers.
//!
//! [`check_objects`] takes a set of Kubernetes objects as JSON, the way they
//! are written in manifests or returned by the API server, so the same checks
//! serve `pake audit` (files) and `pake verify` (live objects). Checks that
//! need more than one object (a default-deny NetworkPolicy per namespace, a
//! PodDisruptionBudget per Deployment, the ServiceAccount a pod uses) look
//! across the whole set; their findings are attached to the workload they
//! concern.
//!
//! | ID | Severity | What |
//! |----|----------|------|
//! | `GUIDE-READONLY-ROOTFS` | medium | containers set `readOnlyRootFilesystem: true` |
//! | `GUIDE-UID-1000` | low | containers run as uid 1000 / gid 1000 with `fsGroup: 1000` |
//! | `GUIDE-RESOURCES` | medium | requests and limits for cpu, memory and ephemeral-storage |
//! | `GUIDE-PROBES` | medium | liveness and readiness probes (not for Jobs and CronJobs) |
//! | `GUIDE-SA-AUTOMOUNT` | medium | no ServiceAccount token mounted unless needed |
//! | `GUIDE-RBAC-WILDCARD` | high | no `*` in a Role's or ClusterRole's apiGroups, resources or verbs |
//! | `GUIDE-RBAC-SECRETS` | high / medium | no list/watch of secrets; get only by `resourceNames` |
//! | `GUIDE-NETPOL-DEFAULT-DENY` | high | a default-deny NetworkPolicy (all pods, ingress and egress) in each namespace |
//! | `GUIDE-PDB` | medium | a PodDisruptionBudget selecting each Deployment's pods |
//! | `GUIDE-SECRET-IN-MANIFEST` | critical / high | no secret values in env `value:`, Secret or ConfigMap data |
//! | `GUIDE-INGRESS-TLS` | high / medium | Ingress terminates TLS for every host, no TLS below 1.2, no HTTP |
//!
//! Live objects: a Secret read from the cluster always carries data, so the
//! Secret-data part of `GUIDE-SECRET-IN-MANIFEST` skips objects that have a
//! `metadata.uid` (i.e. were read from an API server).

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde_json::Value;

use super::pss::{pod_template_of, pod_template_path};
use super::secrets::secret_value_kind;
use super::{FieldPath, Finding, Severity};
use crate::config::looks_secret_name;

pub const READONLY_ROOTFS: &str = "GUIDE-READONLY-ROOTFS";
pub const UID_1000: &str = "GUIDE-UID-1000";
pub const RESOURCES: &str = "GUIDE-RESOURCES";
pub const PROBES: &str = "GUIDE-PROBES";
pub const SA_AUTOMOUNT: &str = "GUIDE-SA-AUTOMOUNT";
pub const RBAC_WILDCARD: &str = "GUIDE-RBAC-WILDCARD";
pub const RBAC_SECRETS: &str = "GUIDE-RBAC-SECRETS";
pub const NETPOL_DEFAULT_DENY: &str = "GUIDE-NETPOL-DEFAULT-DENY";
pub const PDB: &str = "GUIDE-PDB";
pub const SECRET_IN_MANIFEST: &str = "GUIDE-SECRET-IN-MANIFEST";
pub const INGRESS_TLS: &str = "GUIDE-INGRESS-TLS";

/// Every guide check ID (for validating `audit.checks` overrides and docs).
pub const IDS: [&str; 11] = [
    READONLY_ROOTFS,
    UID_1000,
    RESOURCES,
    PROBES,
    SA_AUTOMOUNT,
    RBAC_WILDCARD,
    RBAC_SECRETS,
    NETPOL_DEFAULT_DENY,
    PDB,
    SECRET_IN_MANIFEST,
    INGRESS_TLS,
];

/// The guide's user, group and fsGroup.
const GUIDE_ID: i64 = 1000;

/// Run every guide check on a set of objects.
///
/// Returns `(index into objects, finding)`; a finding's `object` is
/// `Kind namespace/name`. Objects of kinds the checks do not know are ignored.
pub fn check_objects(objects: &[Value]) -> Vec<(usize, Finding)> {
    check_objects_in(objects, 0..objects.len())
}

/// [`check_objects`] for `objects[range]` only; every object of `objects` is
/// context for the cross-object checks (NetworkPolicies, PDBs and
/// ServiceAccounts are looked up there). `pake audit` checks a large input
/// chunk by chunk this way, with the other chunks' context objects around it.
pub fn check_objects_in<V: Borrow<Value>>(
    objects: &[V],
    range: Range<usize>,
) -> Vec<(usize, Finding)> {
    let mut out = Vec::new();
    let ctx = Context::new(objects);
    for (i, obj) in objects[range.clone()]
        .iter()
        .enumerate()
        .map(|(i, o)| (range.start + i, o.borrow()))
    {
        let mut push = |f: Finding| out.push((i, f.on(object_ref(obj))));
        if let Some((meta, spec)) = pod_template_of(obj) {
            check_pod(obj, meta, spec, &ctx, &mut push);
        }
        match kind(obj) {
            "Role" | "ClusterRole" => check_rbac(obj, &mut push),
            "ServiceAccount" => check_service_account(obj, &mut push),
            "Secret" | "ConfigMap" => check_secret_data(obj, &mut push),
            "Ingress" => check_ingress(obj, &mut push),
            _ => {}
        }
    }
    out.extend(super::external_secrets::check_in(objects, range));
    out
}

/// `Kind namespace/name` (or `Kind name` without a namespace).
pub fn object_ref(obj: &Value) -> String {
    let name = str_at(obj, &["metadata", "name"]).unwrap_or("(unnamed)");
    match str_at(obj, &["metadata", "namespace"]) {
        Some(ns) if !ns.is_empty() => format!("{} {ns}/{name}", kind(obj)),
        _ => format!("{} {name}", kind(obj)),
    }
}

pub(crate) fn kind(obj: &Value) -> &str {
    obj.get("kind").and_then(Value::as_str).unwrap_or("")
}

/// The namespace, `""` when the manifest leaves it to the apply-time namespace.
pub(crate) fn namespace(obj: &Value) -> &str {
    str_at(obj, &["metadata", "namespace"]).unwrap_or("")
}

pub(crate) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, p| cur.get(*p))
}

pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

pub(crate) fn arr(v: Option<&Value>) -> impl Iterator<Item = &Value> {
    v.and_then(Value::as_array).into_iter().flatten()
}

pub(crate) fn strs(v: Option<&Value>) -> impl Iterator<Item = &str> {
    arr(v).filter_map(Value::as_str)
}

/// What cross-object checks need: NetworkPolicies, PDBs and ServiceAccounts by namespace.
struct Context<'a> {
    netpols: BTreeMap<&'a str, Vec<&'a Value>>,
    pdbs: BTreeMap<&'a str, Vec<&'a Value>>,
    service_accounts: BTreeMap<(&'a str, &'a str), &'a Value>,
}

impl<'a> Context<'a> {
    fn new<V: Borrow<Value>>(objects: &'a [V]) -> Self {
        let mut c = Context {
            netpols: BTreeMap::new(),
            pdbs: BTreeMap::new(),
            service_accounts: BTreeMap::new(),
        };
        for o in objects.iter().map(Borrow::borrow) {
            match kind(o) {
                "NetworkPolicy" => c.netpols.entry(namespace(o)).or_default().push(o),
                "PodDisruptionBudget" => c.pdbs.entry(namespace(o)).or_default().push(o),
                "ServiceAccount" => {
                    if let Some(n) = str_at(o, &["metadata", "name"]) {
                        c.service_accounts.insert((namespace(o), n), o);
                    }
                }
                _ => {}
            }
        }
        c
    }
}

/// Which list a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CtrKind {
    Init,
    Main,
    /// Debug containers added to a running pod (`kubectl debug`): containers
    /// like any other for security, but they cannot have resources or probes.
    Ephemeral,
}

pub(crate) struct Ctr<'a> {
    pub v: &'a Value,
    pub name: &'a str,
    pub kind: CtrKind,
    /// Where the container is in the object, e.g. `spec.template.spec.containers[0]`.
    pub path: FieldPath,
}

/// Every container of a pod spec: init containers, containers, ephemeral containers.
pub(crate) fn containers<'a>(spec: &'a Value, spec_path: &FieldPath) -> Vec<Ctr<'a>> {
    let mut out = Vec::new();
    for (field, kind) in [
        ("initContainers", CtrKind::Init),
        ("containers", CtrKind::Main),
        ("ephemeralContainers", CtrKind::Ephemeral),
    ] {
        for (i, c) in arr(spec.get(field)).enumerate() {
            out.push(Ctr {
                v: c,
                name: c.get("name").and_then(Value::as_str).unwrap_or(""),
                kind,
                path: spec_path.key(field).index(i),
            });
        }
    }
    out
}

pub(crate) fn describe(c: &Ctr) -> String {
    match c.kind {
        CtrKind::Init => format!("init container {:?}", c.name),
        CtrKind::Main => format!("container {:?}", c.name),
        CtrKind::Ephemeral => format!("ephemeral container {:?}", c.name),
    }
}

/// Where an object keeps its pod spec: `spec` for a Pod, `spec.template.spec`
/// for workloads, `spec.jobTemplate.spec.template.spec` for a CronJob.
pub(crate) fn pod_spec_path(obj: &Value) -> FieldPath {
    let mut p = FieldPath::of(pod_template_path(obj).unwrap_or(&[]));
    p = p.key("spec");
    p
}

fn check_pod(
    obj: &Value,
    meta: Option<&Value>,
    spec: &Value,
    ctx: &Context,
    push: &mut dyn FnMut(Finding),
) {
    let windows = str_at(spec, &["os", "name"]) == Some("windows");
    let spec_path = pod_spec_path(obj);
    let all = containers(spec, &spec_path);
    let pod_sc = spec.get("securityContext");
    let sc_bool =
        |c: &Ctr, field: &str| at(c.v, &["securityContext", field]).and_then(Value::as_bool);
    let sc_int = |c: &Ctr, field: &str| {
        at(c.v, &["securityContext", field])
            .and_then(Value::as_i64)
            .or_else(|| pod_sc.and_then(|s| s.get(field)).and_then(Value::as_i64))
    };

    // Read-only root filesystem (not supported on Windows), every container.
    if !windows {
        for c in all
            .iter()
            .filter(|c| sc_bool(c, "readOnlyRootFilesystem") != Some(true))
        {
            push(
                Finding::new(
                    READONLY_ROOTFS,
                    Severity::Medium,
                    format!("{} has a writable root filesystem", describe(c)),
                    "set securityContext.readOnlyRootFilesystem: true and mount emptyDir volumes for the directories the app writes (/tmp, /app/logs, /app/cache)",
                )
                .at_field(c.path.keys(&["securityContext", "readOnlyRootFilesystem"])),
            );
        }
    }

    // uid/gid 1000 and fsGroup 1000, as the guide's pod security context.
    if !windows {
        let mut wrong = Vec::new();
        let mut field = None;
        for c in &all {
            let uid = sc_int(c, "runAsUser");
            let gid = sc_int(c, "runAsGroup");
            if uid != Some(GUIDE_ID) || gid != Some(GUIDE_ID) {
                let show = |v: Option<i64>| v.map_or("unset".to_string(), |v| v.to_string());
                wrong.push(format!(
                    "{} (runAsUser {}, runAsGroup {})",
                    describe(c),
                    show(uid),
                    show(gid)
                ));
                let own = at(c.v, &["securityContext", "runAsUser"]).is_some();
                field.get_or_insert_with(|| {
                    if own {
                        c.path.keys(&["securityContext", "runAsUser"])
                    } else {
                        spec_path.keys(&["securityContext", "runAsUser"])
                    }
                });
            }
        }
        let fs_group = pod_sc
            .and_then(|s| s.get("fsGroup"))
            .and_then(Value::as_i64);
        if fs_group != Some(GUIDE_ID) {
            wrong.push(format!(
                "pod fsGroup {}",
                fs_group.map_or("unset".to_string(), |v| v.to_string())
            ));
            field.get_or_insert_with(|| spec_path.keys(&["securityContext", "fsGroup"]));
        }
        if !wrong.is_empty() {
            let mut f = Finding::new(
                UID_1000,
                Severity::Low,
                format!(
                    "not running as the guide's uid/gid 1000: {}",
                    wrong.join("; ")
                ),
                "set spec.securityContext runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000 (and USER 1000:1000 in the Dockerfile)",
            );
            f.field = field;
            push(f);
        }
    }

    // Requests and limits (ephemeral containers cannot have them).
    for c in all.iter().filter(|c| c.kind != CtrKind::Ephemeral) {
        let mut m = Vec::new();
        for kind in ["requests", "limits"] {
            for r in ["cpu", "memory", "ephemeral-storage"] {
                if at(c.v, &["resources", kind, r]).is_none_or(Value::is_null) {
                    m.push(format!("{kind}.{r}"));
                }
            }
        }
        if !m.is_empty() {
            push(
                Finding::new(
                    RESOURCES,
                    Severity::Medium,
                    format!(
                        "missing resource requests/limits: {}: {}",
                        describe(c),
                        m.join(", ")
                    ),
                    "set resources.requests and resources.limits for cpu, memory and ephemeral-storage (the guide: requests 250m/512Mi/1Gi, limits 1000m/2Gi/2Gi)",
                )
                .at_field(c.path.key("resources")),
            );
        }
    }

    // Probes, for long-running workloads.
    if !matches!(kind(obj), "Job" | "CronJob") {
        for c in all.iter().filter(|c| c.kind == CtrKind::Main) {
            let m: Vec<&str> = ["livenessProbe", "readinessProbe"]
                .into_iter()
                .filter(|p| c.v.get(*p).is_none_or(Value::is_null))
                .collect();
            if !m.is_empty() {
                push(
                    Finding::new(
                        PROBES,
                        Severity::Medium,
                        format!("missing health checks: {}: {}", describe(c), m.join(", ")),
                        "add livenessProbe and readinessProbe (e.g. httpGet on the health path, /health)",
                    )
                    .at_field(c.path.key(m[0])),
                );
            }
        }
    }

    // ServiceAccount token automount: the pod's setting wins over the ServiceAccount's.
    let sa_name = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    let pod_setting = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool);
    let sa_setting = ctx
        .service_accounts
        .get(&(namespace(obj), sa_name))
        .and_then(|sa| sa.get("automountServiceAccountToken"))
        .and_then(Value::as_bool);
    if pod_setting.or(sa_setting) != Some(false) {
        let why = match (pod_setting, sa_setting) {
            (Some(true), _) => "the pod sets automountServiceAccountToken: true".to_string(),
            (None, Some(true)) => {
                format!("ServiceAccount {sa_name:?} sets automountServiceAccountToken: true")
            }
            _ => format!(
                "neither the pod nor ServiceAccount {sa_name:?} sets automountServiceAccountToken: false"
            ),
        };
        push(
            Finding::new(
                SA_AUTOMOUNT,
                Severity::Medium,
                format!("the ServiceAccount token is mounted into the pod: {why}"),
                "set automountServiceAccountToken: false on the pod spec (or its ServiceAccount) unless the app calls the Kubernetes API",
            )
            .at_field(spec_path.key("automountServiceAccountToken")),
        );
    }

    // Hardcoded secrets: env values (by name and by value), command and args (by value).
    for c in &all {
        check_container_secrets(c, push);
    }

    // Namespace-level: default-deny NetworkPolicy.
    let ns = namespace(obj);
    let (ingress, egress) = default_deny(ctx.netpols.get(ns).map(Vec::as_slice).unwrap_or(&[]));
    if !(ingress && egress) {
        let missing: Vec<&str> = [(!ingress, "ingress"), (!egress, "egress")]
            .into_iter()
            .filter_map(|(m, n)| m.then_some(n))
            .collect();
        let where_ = if ns.is_empty() {
            "the namespace".to_string()
        } else {
            format!("namespace {ns}")
        };
        // At the namespace the policy is missing from (its `metadata` line
        // when the manifest leaves the namespace to apply time).
        push(Finding::new(
            NETPOL_DEFAULT_DENY,
            Severity::High,
            format!(
                "no default-deny NetworkPolicy for {} in {where_}: every pod accepts/opens any connection not otherwise restricted",
                missing.join(" and ")
            ),
            "add the guide's default-deny-all NetworkPolicy (podSelector: {}, policyTypes: [Ingress, Egress], no rules) next to the workloads, then allow only the traffic the app needs",
        ).at_field(FieldPath::of(&["metadata", "namespace"])));
    }

    // PodDisruptionBudget per Deployment.
    if kind(obj) == "Deployment" {
        let labels = meta.and_then(|m| m.get("labels"));
        let covered = ctx.pdbs.get(ns).into_iter().flatten().any(|p| {
            p.get("spec")
                .and_then(|s| s.get("selector"))
                .is_some_and(|s| selector_matches(s, labels))
        });
        if !covered {
            push(Finding::new(
                PDB,
                Severity::Medium,
                "no PodDisruptionBudget selects this Deployment's pods: a node drain may take all replicas down at once",
                "add a PodDisruptionBudget with the Deployment's selector labels and minAvailable: 1 (or maxUnavailable: 1)",
            ).at_field(FieldPath::of(&["spec", "selector"])));
        }
    }
}

/// Do the namespace's NetworkPolicies deny all ingress and all egress by default?
///
/// A policy denies a direction for every pod when its podSelector is empty,
/// its policyTypes include that direction (absent policyTypes mean Ingress,
/// plus Egress when egress rules exist) and it has no rules for it.
fn default_deny(policies: &[&Value]) -> (bool, bool) {
    let mut ingress = false;
    let mut egress = false;
    for p in policies {
        let Some(spec) = p.get("spec") else { continue };
        let sel = spec.get("podSelector");
        let empty_selector = sel.is_none_or(|s| {
            s.is_null()
                || (s
                    .get("matchLabels")
                    .and_then(Value::as_object)
                    .is_none_or(|m| m.is_empty())
                    && s.get("matchExpressions")
                        .and_then(Value::as_array)
                        .is_none_or(|m| m.is_empty()))
        });
        if !empty_selector {
            continue;
        }
        let rules = |k: &str| {
            spec.get(k)
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
        };
        let types: Vec<&str> = match spec.get("policyTypes").and_then(Value::as_array) {
            Some(t) => t.iter().filter_map(Value::as_str).collect(),
            None => {
                let mut t = vec!["Ingress"];
                if rules("egress") {
                    t.push("Egress");
                }
                t
            }
        };
        if types.contains(&"Ingress") && !rules("ingress") {
            ingress = true;
        }
        if types.contains(&"Egress") && !rules("egress") {
            egress = true;
        }
    }
    (ingress, egress)
}

/// Does a label selector (`matchLabels` and `matchExpressions`) select pods with these labels?
/// An empty selector selects everything, as for PodDisruptionBudgets in policy/v1.
pub fn selector_matches(selector: &Value, labels: Option<&Value>) -> bool {
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    if let Some(m) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            if label(k) != v.as_str() {
                return false;
            }
        }
    }
    for e in arr(selector.get("matchExpressions")) {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let values: BTreeSet<&str> = strs(e.get("values")).collect();
        let ok = match e.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" => label(key).is_some_and(|v| values.contains(v)),
            "NotIn" => label(key).is_none_or(|v| !values.contains(v)),
            "Exists" => label(key).is_some(),
            "DoesNotExist" => label(key).is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

fn check_rbac(obj: &Value, push: &mut dyn FnMut(Finding)) {
    let cluster = kind(obj) == "ClusterRole";
    let scope = if cluster {
        "in every namespace"
    } else {
        "in its namespace"
    };
    for (i, rule) in arr(obj.get("rules")).enumerate() {
        let groups: Vec<&str> = strs(rule.get("apiGroups")).collect();
        let resources: Vec<&str> = strs(rule.get("resources")).collect();
        let verbs: Vec<&str> = strs(rule.get("verbs")).collect();
        let urls: Vec<&str> = strs(rule.get("nonResourceURLs")).collect();
        let mut wild = Vec::new();
        for (field, vals) in [
            ("apiGroups", &groups),
            ("resources", &resources),
            ("verbs", &verbs),
            ("nonResourceURLs", &urls),
        ] {
            if vals
                .iter()
                .any(|v| *v == "*" || (field == "nonResourceURLs" && v.ends_with('*')))
            {
                wild.push(field);
            }
        }
        if !wild.is_empty() {
            push(Finding::new(
                RBAC_WILDCARD,
                Severity::High,
                format!(
                    "rule {} uses a wildcard in {}: it grants access to anything that exists now or is added later",
                    i + 1,
                    wild.join(", ")
                ),
                "list the exact apiGroups, resources and verbs the app needs (the guide's example: configmaps get, list)",
            ).at_field(FieldPath::of(&["rules"]).index(i).key(wild[0])));
        }
        let covers_secrets = groups.iter().any(|g| g.is_empty() || *g == "*")
            && resources.iter().any(|r| *r == "secrets" || *r == "*");
        if !covers_secrets {
            continue;
        }
        let named = rule
            .get("resourceNames")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        let bulk: Vec<&str> = verbs
            .iter()
            .copied()
            .filter(|v| matches!(*v, "list" | "watch" | "*"))
            .collect();
        if !bulk.is_empty() {
            push(Finding::new(
                RBAC_SECRETS,
                Severity::High,
                format!(
                    "rule {} can {} secrets: it can read every Secret {scope}",
                    i + 1,
                    if bulk.contains(&"*") {
                        "do anything (*) with".to_string()
                    } else {
                        bulk.join("/")
                    }
                ),
                "drop list/watch on secrets; grant get on the named secrets the app reads (resourceNames), or mount them instead",
            ).at_field(FieldPath::of(&["rules"]).index(i).key("verbs")));
        } else if verbs.contains(&"get") && !named {
            push(Finding::new(
                RBAC_SECRETS,
                Severity::Medium,
                format!("rule {} can get any Secret {scope} by name", i + 1),
                "restrict the rule with resourceNames to the secrets the app needs, or mount them instead of reading them from the API",
            ).at_field(FieldPath::of(&["rules"]).index(i)));
        }
    }
}

fn check_service_account(obj: &Value, push: &mut dyn FnMut(Finding)) {
    if obj
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        != Some(false)
    {
        push(Finding::new(
            SA_AUTOMOUNT,
            Severity::Low,
            "the ServiceAccount does not set automountServiceAccountToken: false, so every pod using it gets an API token",
            "set automountServiceAccountToken: false on the ServiceAccount (pods that need the API can opt in)",
        ).at_field(FieldPath::of(&["automountServiceAccountToken"])));
    }
}

/// Literal secrets in one container: env `value`s whose name looks secret or
/// whose value looks like a secret, and secrets in `command`/`args`. One
/// finding per variable or argument list, at its line; never the value.
fn check_container_secrets(c: &Ctr, push: &mut dyn FnMut(Finding)) {
    for (j, e) in arr(c.v.get("env")).enumerate() {
        let name = e.get("name").and_then(Value::as_str).unwrap_or("");
        let Some(value) = e
            .get("value")
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
        else {
            continue;
        };
        let why = match secret_value_kind(value) {
            Some(k) => format!("holds what looks like {k}"),
            None if looks_secret_name(name) && !is_reference(value) => {
                "looks like a secret and has a literal value".to_string()
            }
            None => continue,
        };
        push(
            Finding::new(
                SECRET_IN_MANIFEST,
                Severity::Critical,
                format!("{} env {name} {why} (value not shown)", describe(c)),
                crate::config::NEVER_HARDCODE,
            )
            .at_field(c.path.key("env").index(j).key("value")),
        );
    }
    for field in ["command", "args"] {
        let items: Vec<&str> = strs(c.v.get(field)).collect();
        if items.is_empty() {
            continue;
        }
        // One argument alone (`--password=x`), or a flag and its value (`--password`, `x`).
        let hit = items
            .iter()
            .position(|a| secret_value_kind(a).is_some())
            .map(|i| (i, secret_value_kind(items[i])))
            .or_else(|| {
                items
                    .windows(2)
                    .position(|w| secret_value_kind(&format!("{} {}", w[0], w[1])).is_some())
                    .map(|i| {
                        (
                            i,
                            secret_value_kind(&format!("{} {}", items[i], items[i + 1])),
                        )
                    })
            });
        if let Some((i, Some(k))) = hit {
            push(
                Finding::new(
                    SECRET_IN_MANIFEST,
                    Severity::Critical,
                    format!("{} {field}[{i}] holds what looks like {k} (value not shown)", describe(c)),
                    "pass the secret through an env var from a Secret (valueFrom.secretKeyRef) and reference it as $(VAR), or read it from a mounted file",
                )
                .at_field(c.path.key(field).index(i)),
            );
        }
    }
}

/// A value that only refers to a secret: `$(VAR)`, `${VAR}`, a template
/// expression, or pake's redaction placeholder.
fn is_reference(v: &str) -> bool {
    let t = v.trim();
    (t.starts_with("$(") || t.starts_with("${")) && t.ends_with([')', '}'])
        || t.starts_with("{{")
        || t == crate::secret::REDACTED
}

fn check_secret_data(obj: &Value, push: &mut dyn FnMut(Finding)) {
    if at(obj, &["metadata", "uid"]).is_some() {
        return; // read from a cluster: data there is expected
    }
    let entries = |field: &'static str| {
        obj.get(field)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            // pake's own placeholder (`pake render` output) is not a value.
            .filter(|(_, v)| !v.is_null() && v.as_str() != Some(crate::secret::REDACTED))
            .map(move |(k, v)| (field, k.as_str(), v))
    };
    if kind(obj) == "Secret" {
        for (field, k, _) in entries("data").chain(entries("stringData")) {
            push(
                Finding::new(
                    SECRET_IN_MANIFEST,
                    Severity::High,
                    format!("the Secret manifest carries a value for key {k} in {field} (value not shown)"),
                    crate::config::NEVER_HARDCODE,
                )
                .at_field(FieldPath::of(&[field, k])),
            );
        }
    } else {
        for (field, k, v) in entries("data").chain(entries("binaryData")) {
            let text = v.as_str().unwrap_or("");
            let why = match (field, secret_value_kind(text)) {
                ("data", Some(kind)) => format!("holds what looks like {kind}"),
                _ if looks_secret_name(k) && !is_reference(text) => {
                    "has a secret-looking name".to_string()
                }
                _ => continue,
            };
            push(
                Finding::new(
                    SECRET_IN_MANIFEST,
                    Severity::High,
                    format!("ConfigMap key {k} {why} (value not shown)"),
                    crate::config::NEVER_HARDCODE,
                )
                .at_field(FieldPath::of(&[field, k])),
            );
        }
    }
}

/// Protocols below TLS 1.2 as nginx-ingress spells them.
const WEAK_PROTOCOLS: [&str; 4] = ["SSLv2", "SSLv3", "TLSv1", "TLSv1.1"];

fn check_ingress(obj: &Value, push: &mut dyn FnMut(Finding)) {
    let spec = obj.get("spec");
    let tls: Vec<&Value> = arr(spec.and_then(|s| s.get("tls"))).collect();
    let tls_hosts: BTreeSet<&str> = tls.iter().flat_map(|t| strs(t.get("hosts"))).collect();
    if tls.is_empty() {
        push(Finding::new(
            INGRESS_TLS,
            Severity::High,
            "the Ingress has no tls section: traffic is served over plain HTTP",
            "add spec.tls with the hosts and a secretName (e.g. issued by cert-manager's cluster-issuer annotation)",
        ).at_field(FieldPath::of(&["spec"])));
    } else {
        let uncovered: Vec<(usize, &str)> = arr(spec.and_then(|s| s.get("rules")))
            .enumerate()
            .filter_map(|(i, r)| Some((i, r.get("host").and_then(Value::as_str)?)))
            .filter(|(_, h)| {
                !tls_hosts.contains(h) && !tls_hosts.iter().any(|t| wildcard_covers(t, h))
            })
            .collect();
        if let Some((first, _)) = uncovered.first() {
            let hosts: Vec<&str> = uncovered.iter().map(|(_, h)| *h).collect();
            push(
                Finding::new(
                    INGRESS_TLS,
                    Severity::High,
                    format!("hosts without TLS: {}", hosts.join(", ")),
                    "list every rule host under spec.tls[].hosts",
                )
                .at_field(FieldPath::of(&["spec", "rules"]).index(*first).key("host")),
            );
        }
    }
    let ann = |k: &str| str_at(obj, &["metadata", "annotations", k]);
    if let Some(p) = ann("nginx.ingress.kubernetes.io/ssl-protocols") {
        let weak: Vec<&str> = p
            .split_whitespace()
            .filter(|t| WEAK_PROTOCOLS.contains(t))
            .collect();
        if !weak.is_empty() {
            push(
                Finding::new(
                    INGRESS_TLS,
                    Severity::High,
                    format!(
                        "the Ingress allows protocols below TLS 1.2: {}",
                        weak.join(", ")
                    ),
                    "set nginx.ingress.kubernetes.io/ssl-protocols: \"TLSv1.2 TLSv1.3\"",
                )
                .at_field(FieldPath::of(&[
                    "metadata",
                    "annotations",
                    "nginx.ingress.kubernetes.io/ssl-protocols",
                ])),
            );
        }
    }
    for k in [
        "nginx.ingress.kubernetes.io/force-ssl-redirect",
        "nginx.ingress.kubernetes.io/ssl-redirect",
    ] {
        if ann(k) == Some("false") {
            push(Finding::new(
                INGRESS_TLS,
                Severity::Medium,
                format!("{k} is \"false\": clients may keep using plain HTTP"),
                "remove the annotation or set nginx.ingress.kubernetes.io/force-ssl-redirect: \"true\"",
            ).at_field(FieldPath::of(&["metadata", "annotations", k])));
        }
    }
}

/// `*.example.com` covers `api.example.com` (one label), as TLS wildcards do.
fn wildcard_covers(pattern: &str, host: &str) -> bool {
    pattern.strip_prefix("*.").is_some_and(|suffix| {
        host.split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The guide's hardened backend: every pod-level guide check passes.
    fn hardened() -> Vec<Value> {
        vec![
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "default-deny-all", "namespace": "pake"},
                   "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}),
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "backend", "namespace": "pake"},
                   "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "backend"}}}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "backend", "namespace": "pake"}, "spec": {
                "selector": {"matchLabels": {"app": "backend"}},
                "template": {"metadata": {"labels": {"app": "backend", "version": "v1"}}, "spec": {
                    "automountServiceAccountToken": false,
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{"name": "backend", "image": "pake:1",
                        "env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}, {"name": "LOG_LEVEL", "value": "info"}],
                        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}},
                        "resources": {"requests": {"cpu": "250m", "memory": "512Mi", "ephemeral-storage": "1Gi"}, "limits": {"cpu": "1000m", "memory": "2Gi", "ephemeral-storage": "2Gi"}},
                        "livenessProbe": {"httpGet": {"path": "/health", "port": 8000}}, "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}}}]}}}}),
        ]
    }

    fn ids(objs: &[Value]) -> Vec<String> {
        check_objects(objs).into_iter().map(|(_, f)| f.id).collect()
    }

    #[test]
    fn hardened_deployment_has_no_findings() {
        assert_eq!(ids(&hardened()), Vec::<String>::new());
    }

    #[test]
    fn each_weakening_is_found() {
        let mut o = hardened();
        let c = &mut o[2]["spec"]["template"]["spec"]["containers"][0];
        c["securityContext"]["readOnlyRootFilesystem"] = json!(false);
        c["resources"]["limits"]
            .as_object_mut()
            .unwrap()
            .remove("ephemeral-storage");
        c.as_object_mut().unwrap().remove("readinessProbe");
        c["env"][1] = json!({"name": "API_TOKEN", "value": "hunter2"});
        let s = &mut o[2]["spec"]["template"]["spec"];
        s["securityContext"]["runAsUser"] = json!(10001);
        s.as_object_mut()
            .unwrap()
            .remove("automountServiceAccountToken");
        let found = check_objects(&o);
        let got: BTreeSet<&str> = found.iter().map(|(_, f)| f.id.as_str()).collect();
        assert_eq!(
            got,
            BTreeSet::from([
                READONLY_ROOTFS,
                UID_1000,
                RESOURCES,
                PROBES,
                SA_AUTOMOUNT,
                SECRET_IN_MANIFEST
            ])
        );
        assert!(
            found
                .iter()
                .all(|(i, f)| *i == 2 && f.object.as_deref() == Some("Deployment pake/backend"))
        );
        let all: String = found
            .iter()
            .map(|(_, f)| format!("{} {}", f.message, f.fix))
            .collect();
        assert!(!all.contains("hunter2"), "a secret value was printed");
        assert!(
            all.contains("limits.ephemeral-storage")
                && all.contains("readinessProbe")
                && all.contains("runAsUser 10001")
        );
    }

    #[test]
    fn service_account_setting_is_honoured() {
        let mut o = hardened();
        o[2]["spec"]["template"]["spec"]
            .as_object_mut()
            .unwrap()
            .remove("automountServiceAccountToken");
        o[2]["spec"]["template"]["spec"]["serviceAccountName"] = json!("backend-sa");
        o.push(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "backend-sa", "namespace": "pake"}, "automountServiceAccountToken": false}));
        assert_eq!(ids(&o), Vec::<String>::new());
        o[3]["automountServiceAccountToken"] = json!(true);
        assert_eq!(ids(&o), vec![SA_AUTOMOUNT, SA_AUTOMOUNT]);
    }

    #[test]
    fn default_deny_needs_both_directions_and_all_pods() {
        let mut o = hardened();
        o[0]["spec"]["policyTypes"] = json!(["Ingress"]);
        let f = check_objects(&o);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].1.id, NETPOL_DEFAULT_DENY);
        assert!(
            f[0].1.message.contains("for egress in namespace pake"),
            "{}",
            f[0].1.message
        );
        // A separate egress deny completes it.
        o.push(json!({"kind": "NetworkPolicy", "metadata": {"name": "deny-egress", "namespace": "pake"}, "spec": {"podSelector": {}, "policyTypes": ["Egress"]}}));
        assert!(check_objects(&o).is_empty());
        // A policy selecting some pods is not a default deny; nor is one with allow-all rules.
        let mut o = hardened();
        o[0]["spec"]["podSelector"] = json!({"matchLabels": {"app": "backend"}});
        assert_eq!(ids(&o), vec![NETPOL_DEFAULT_DENY]);
        let mut o = hardened();
        o[0]["spec"]["ingress"] = json!([{}]);
        assert_eq!(ids(&o), vec![NETPOL_DEFAULT_DENY]);
        // Other namespaces' policies do not count.
        let mut o = hardened();
        o[0]["metadata"]["namespace"] = json!("other");
        assert_eq!(ids(&o), vec![NETPOL_DEFAULT_DENY]);
    }

    #[test]
    fn pdb_must_select_the_deployment() {
        let mut o = hardened();
        o[1]["spec"]["selector"] = json!({"matchLabels": {"app": "frontend"}});
        assert_eq!(ids(&o), vec![PDB]);
        o[1]["spec"]["selector"] = json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["backend", "x"]}, {"key": "tier", "operator": "DoesNotExist"}]});
        assert!(ids(&o).is_empty());
    }

    #[test]
    fn rbac_wildcards_and_secrets() {
        let role = |rules: Value| {
            vec![
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r", "namespace": "pake"}, "rules": rules}),
            ]
        };
        assert!(
            ids(&role(
                json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}])
            ))
            .is_empty()
        );
        assert_eq!(
            ids(&role(
                json!([{"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]}])
            )),
            vec![RBAC_WILDCARD]
        );
        assert_eq!(
            ids(&role(
                json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}])
            )),
            vec![RBAC_SECRETS]
        );
        assert!(ids(&role(json!([{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["db"], "verbs": ["get"]}]))).is_empty());
        let f = check_objects(&role(
            json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]),
        ));
        assert_eq!(
            (f[0].1.id.as_str(), f[0].1.severity),
            (RBAC_SECRETS, Severity::Medium)
        );
        assert_eq!(
            ids(&role(
                json!([{"apiGroups": [""], "resources": ["*"], "verbs": ["*"]}])
            )),
            vec![RBAC_WILDCARD, RBAC_SECRETS]
        );
    }

    #[test]
    fn secrets_in_manifests() {
        let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"password": "mypassword123"}});
        let f = check_objects(std::slice::from_ref(&s));
        assert_eq!(f[0].1.id, SECRET_IN_MANIFEST);
        assert!(!f[0].1.message.contains("mypassword123"));
        let mut live = s.clone();
        live["metadata"]["uid"] = json!("1234");
        assert!(check_objects(&[live]).is_empty());
        let cm = json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"LOG_LEVEL": "info", "db_password": "x"}});
        assert!(check_objects(&[cm])[0].1.message.contains("db_password"));
        assert!(
            check_objects(&[
                json!({"kind": "Secret", "metadata": {"name": "empty"}, "type": "Opaque"})
            ])
            .is_empty()
        );
        let placeholder = json!({"kind": "Secret", "metadata": {"name": "db"}, "data": {"password": crate::secret::REDACTED}});
        assert!(check_objects(&[placeholder]).is_empty());
    }

    #[test]
    fn ingress_tls() {
        let good = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i", "annotations": {
            "nginx.ingress.kubernetes.io/ssl-protocols": "TLSv1.2 TLSv1.3", "nginx.ingress.kubernetes.io/force-ssl-redirect": "true"}},
            "spec": {"tls": [{"hosts": ["api.example.com"], "secretName": "t"}], "rules": [{"host": "api.example.com"}]}});
        assert!(check_objects(std::slice::from_ref(&good)).is_empty());
        let mut weak = good.clone();
        weak["metadata"]["annotations"]["nginx.ingress.kubernetes.io/ssl-protocols"] =
            json!("TLSv1 TLSv1.1 TLSv1.2");
        assert!(
            check_objects(&[weak])[0]
                .1
                .message
                .contains("TLSv1, TLSv1.1")
        );
        let mut none = good.clone();
        none["spec"].as_object_mut().unwrap().remove("tls");
        assert_eq!(check_objects(&[none])[0].1.severity, Severity::High);
        let mut other = good;
        other["spec"]["rules"] =
            json!([{"host": "api.example.com"}, {"host": "admin.example.com"}]);
        assert!(
            check_objects(&[other])[0]
                .1
                .message
                .contains("admin.example.com")
        );
        assert!(wildcard_covers("*.example.com", "api.example.com"));
        assert!(!wildcard_covers("*.example.com", "a.b.example.com"));
    }

    #[test]
    fn jobs_need_no_probes() {
        let mut o = hardened();
        let tmpl = o[2]["spec"]["template"].clone();
        o[2] = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "backup", "namespace": "pake"},
            "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": tmpl}}}});
        for c in o[2]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
        {
            c.as_object_mut().unwrap().remove("livenessProbe");
            c.as_object_mut().unwrap().remove("readinessProbe");
        }
        assert!(ids(&o).is_empty());
    }

    #[test]
    fn ephemeral_containers_count() {
        let mut o = hardened();
        o[2]["spec"]["template"]["spec"]["ephemeralContainers"] =
            json!([{"name": "debug", "image": "busybox:1.36"}]);
        let f = check_objects(&o);
        let ro: Vec<&Finding> = f
            .iter()
            .map(|(_, f)| f)
            .filter(|f| f.id == READONLY_ROOTFS)
            .collect();
        assert_eq!(ro.len(), 1);
        assert!(ro[0].message.contains("ephemeral container \"debug\""));
        assert_eq!(
            ro[0].field.as_ref().unwrap().to_string(),
            "spec.template.spec.ephemeralContainers[0].securityContext.readOnlyRootFilesystem"
        );
        // Ephemeral containers cannot have resources or probes: not asked for.
        assert!(!f.iter().any(|(_, f)| f.id == RESOURCES || f.id == PROBES));
    }

    #[test]
    fn secrets_by_value_each_named_at_its_field() {
        let mut o = hardened();
        let pem = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----";
        o[2]["spec"]["template"]["spec"]["containers"][0]["env"] = json!([
            {"name": "TLS_MATERIAL", "value": pem},
            {"name": "DATABASE_URL", "value": "postgres://app:s3cr3tpw@db/app"},
            {"name": "AZURE_BATCH_KEY", "value": "abc123"},
            {"name": "LOG_LEVEL", "value": "info"},
        ]);
        o[2]["spec"]["template"]["spec"]["containers"][0]["args"] =
            json!(["serve", "--db-password", "hunter22"]);
        let f = check_objects(&o);
        let msgs: Vec<(&str, String)> = f
            .iter()
            .filter(|(_, f)| f.id == SECRET_IN_MANIFEST)
            .map(|(_, f)| (f.message.as_str(), f.field.as_ref().unwrap().to_string()))
            .collect();
        assert_eq!(msgs.len(), 4, "{msgs:?}");
        assert!(
            msgs[0]
                .0
                .contains("TLS_MATERIAL holds what looks like a private key")
        );
        assert!(msgs[0].1.ends_with("containers[0].env[0].value"));
        assert!(
            msgs[1]
                .0
                .contains("DATABASE_URL holds what looks like a password in a URL")
        );
        assert!(msgs[2].0.contains("AZURE_BATCH_KEY looks like a secret"));
        assert!(msgs[3].0.contains("args[1]"), "{}", msgs[3].0);
        let all: String = f
            .iter()
            .map(|(_, f)| format!("{} {}", f.message, f.fix))
            .collect();
        for secret in ["MHcCAQEE", "s3cr3tpw", "abc123", "hunter22"] {
            assert!(!all.contains(secret), "a secret value was printed");
        }
    }

    #[test]
    fn secret_look_alikes_pass() {
        let mut o = hardened();
        o[2]["spec"]["template"]["spec"]["containers"][0]["env"] = json!([
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            {"name": "DB_PASSWORD_COPY", "value": "$(DB_PASSWORD)"},
            {"name": "API_TOKEN", "value": "${API_TOKEN}"},
            {"name": "APP_SECRET_KEY_PATH", "value": "/run/secrets/app/key"},
            {"name": "GITHUB_TOKEN_PATH", "value": "/var/run/secrets/gh"},
            {"name": "DB_PASSWORD_FILE", "value": "/run/secrets/db/password"},
            {"name": "JWT_PUBLIC_KEY", "value": "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----"},
            {"name": "DATABASE_URL", "value": "postgres://app:$(DB_PASSWORD)@db/app"},
        ]);
        o[2]["spec"]["template"]["spec"]["containers"][0]["args"] = json!([
            "--password-file=/run/secrets/db",
            "--db-password",
            "$(DB_PASSWORD)"
        ]);
        assert_eq!(ids(&o), Vec::<String>::new());
        let cm = json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {
            "ca.crt": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
            "public.pem": "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----",
            "TOKEN_FILE": "/var/run/secrets/tokens/api", "app.conf": "listen 8080\n"}});
        assert!(check_objects(&[cm]).is_empty());
    }

    #[test]
    fn configmap_private_key_by_value() {
        let cm = json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {
            "server.conf": "ssl on\n", "bundle": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
            "OCI_CLI_KEY_CONTENT": "x"}});
        let f = check_objects(&[cm]);
        let fields: Vec<String> = f
            .iter()
            .map(|(_, f)| f.field.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(fields, vec!["data.bundle", "data.OCI_CLI_KEY_CONTENT"]);
        assert!(f[0].1.message.contains("private key") && !f[0].1.message.contains("MIIE"));
    }
}
