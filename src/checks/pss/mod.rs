//! Pod Security Standards: an exact port of Kubernetes' PodSecurity admission.
//!
//! The source of truth is the Go module `k8s.io/pod-security-admission`
//! (v0.37.2, package `policy`): every check below lives in its own file named
//! after the upstream `check_*.go`, keeps upstream's ID, its per-version
//! behaviour (`MinimumVersion`), its overrides of baseline checks, and its
//! reason and detail strings byte for byte, so [`Verdict::admission_message`]
//! is the message the API server returns when it rejects a pod.
//!
//! How versions resolve, as upstream's `checkRegistry` does it:
//! - a check applies from its first `MinimumVersion`; each later entry
//!   replaces the behaviour from that version on;
//! - the restricted level runs every baseline check except those a restricted
//!   check overrides (`capabilities_baseline` by `capabilities_restricted`,
//!   `seccompProfile_baseline` by `seccompProfile_restricted`,
//!   `hostPathVolumes` by `restrictedVolumes`, `procMount` by
//!   `procMount_restricted` from v1.35);
//! - checks run in the order of their IDs, baseline IDs first;
//! - `latest` and any version newer than the newest policy change
//!   ([`NEWEST_MINOR`]) evaluate as the newest version.
//!
//! Beyond the policy functions, admission sees the object *after* the API
//! server decoded and defaulted it. Two defaults change what the checks see
//! and are applied here too: a volume with no source becomes `emptyDir`
//! (every object with a pod spec), and, for `Pod` objects only, a
//! `hostNetwork` pod's container ports get `hostPort = containerPort` and
//! deprecated AppArmor annotations are copied into the container's
//! `appArmorProfile` field (the pod strategy's version-skew handling). See
//! [`Semantics`].

pub mod model;

mod allow_privilege_escalation;
mod app_armor_profile;
mod capabilities_baseline;
mod capabilities_restricted;
mod host_namespaces;
mod host_path_volumes;
mod host_ports;
mod host_probes_and_host_lifecycle;
mod privileged;
mod proc_mount_baseline;
mod proc_mount_restricted;
mod restricted_volumes;
mod run_as_non_root;
mod run_as_user;
mod se_linux_options;
mod seccomp_profile_baseline;
mod seccomp_profile_restricted;
mod sysctls;
mod windows_host_process;

use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

pub use model::{Container, PodMeta, PodSpec};

/// The newest policy version with a change (sysctls, v1.37). `latest` means this.
pub const NEWEST_MINOR: u32 = 37;

/// A Pod Security Standards level.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
    /// Parse a level label value (exact, lower case, as upstream's `ParseLevel`).
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A policy version: `latest` or `v1.<minor>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    Latest,
    V1(u32),
}

impl Version {
    /// Parse as upstream's `ParseVersion`: `latest` or `^v1\.(0|[1-9][0-9]*)$`.
    /// Versions newer than [`NEWEST_MINOR`] are accepted and evaluate as the newest.
    pub fn parse(s: &str) -> Option<Version> {
        if s == "latest" {
            return Some(Version::Latest);
        }
        let minor = s.strip_prefix("v1.")?;
        if minor.is_empty()
            || !minor.bytes().all(|b| b.is_ascii_digit())
            || (minor.len() > 1 && minor.starts_with('0'))
        {
            return None;
        }
        minor.parse().ok().map(Version::V1)
    }
    /// The minor version whose policy applies.
    pub fn effective_minor(self) -> u32 {
        match self {
            Version::Latest => NEWEST_MINOR,
            Version::V1(m) => m.min(NEWEST_MINOR),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Latest => f.write_str("latest"),
            Version::V1(m) => write!(f, "v1.{m}"),
        }
    }
}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Serialized as `latest` or `v1.<minor>` (see `Serialize`).
impl schemars::JsonSchema for Version {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PssVersion".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": "^(latest|v1\\.[0-9]+)$"})
    }
}

/// Which object the pod spec came from, which decides the API server defaults applied before admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Semantics {
    /// A `Pod`: volume defaulting, `hostNetwork` host-port defaulting, AppArmor annotation sync.
    Pod,
    /// The pod template of a workload: volume defaulting only (what the API server's
    /// PodSecurity warnings for the workload see).
    Template,
}

/// The pod a check evaluates: metadata, spec and how it was defaulted.
#[derive(Debug, Clone)]
pub struct PodInput {
    pub meta: PodMeta,
    pub spec: PodSpec,
    pub semantics: Semantics,
}

/// A container and which list it came from.
#[derive(Clone, Copy)]
pub(crate) struct ContainerRef<'a> {
    pub c: &'a Container,
    pub ephemeral: bool,
}

impl PodInput {
    /// Decode from the JSON of an object's `metadata` and pod `spec`.
    pub fn from_json(
        meta: Option<&serde_json::Value>,
        spec: &serde_json::Value,
        semantics: Semantics,
    ) -> Result<Self, serde_json::Error> {
        let meta = match meta {
            Some(m) if !m.is_null() => PodMeta::deserialize(m)?,
            _ => PodMeta::default(),
        };
        let spec = if spec.is_null() {
            PodSpec::default()
        } else {
            PodSpec::deserialize(spec)?
        };
        Ok(PodInput {
            meta,
            spec,
            semantics,
        })
    }

    /// Init containers, containers, then ephemeral containers (upstream's `visitContainers` order).
    pub(crate) fn containers(&self) -> impl Iterator<Item = ContainerRef<'_>> {
        let s = &self.spec;
        s.init_containers
            .iter()
            .flatten()
            .chain(s.containers.iter().flatten())
            .map(|c| ContainerRef {
                c,
                ephemeral: false,
            })
            .chain(
                s.ephemeral_containers
                    .iter()
                    .flatten()
                    .map(|c| ContainerRef { c, ephemeral: true }),
            )
    }

    pub(crate) fn is_windows(&self) -> bool {
        self.spec
            .os
            .as_ref()
            .is_some_and(|o| o.name.as_deref() == Some("windows"))
    }

    /// `hostUsers: false`: the pod runs in a user namespace.
    pub(crate) fn host_users_false(&self) -> bool {
        self.spec.host_users == Some(false)
    }
}

/// A failed check: upstream's `ForbiddenReason` and `ForbiddenDetail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden {
    pub reason: &'static str,
    pub detail: String,
}

pub(crate) type CheckFn = fn(&PodInput) -> Option<Forbidden>;

/// One behaviour of a check, from `min_minor` until the next entry.
pub struct VersionedCheck {
    pub min_minor: u32,
    pub check: CheckFn,
    /// Baseline checks this restricted check replaces at the restricted level.
    pub overrides: &'static [&'static str],
}

/// A check as upstream registers it.
pub struct Check {
    pub id: &'static str,
    pub level: Level,
    pub versions: &'static [VersionedCheck],
}

/// Every check of the policy, in no particular order.
pub fn checks() -> &'static [&'static Check] {
    static ALL: [&Check; 19] = [
        &allow_privilege_escalation::CHECK,
        &app_armor_profile::CHECK,
        &capabilities_baseline::CHECK,
        &capabilities_restricted::CHECK,
        &host_namespaces::CHECK,
        &host_path_volumes::CHECK,
        &host_ports::CHECK,
        &host_probes_and_host_lifecycle::CHECK,
        &privileged::CHECK,
        &proc_mount_baseline::CHECK,
        &proc_mount_restricted::CHECK,
        &restricted_volumes::CHECK,
        &run_as_non_root::CHECK,
        &run_as_user::CHECK,
        &se_linux_options::CHECK,
        &seccomp_profile_baseline::CHECK,
        &seccomp_profile_restricted::CHECK,
        &sysctls::CHECK,
        &windows_host_process::CHECK,
    ];
    &ALL
}

/// Is `id` the ID of a Pod Security check?
pub fn is_check_id(id: &str) -> bool {
    checks().iter().any(|c| c.id == id)
}

type Table = Vec<(&'static str, CheckFn)>;

/// Per minor version 0..=NEWEST_MINOR: (baseline checks, restricted checks), in run order.
fn tables() -> &'static [(Table, Table)] {
    static TABLES: OnceLock<Vec<(Table, Table)>> = OnceLock::new();
    TABLES.get_or_init(build_tables)
}

/// Upstream's `populate`: inflate each check over versions, apply overrides, order by ID.
fn build_tables() -> Vec<(Table, Table)> {
    let all = checks();
    let mut baseline_ids: Vec<&str> = all
        .iter()
        .filter(|c| c.level == Level::Baseline)
        .map(|c| c.id)
        .collect();
    let mut restricted_ids: Vec<&str> = all
        .iter()
        .filter(|c| c.level == Level::Restricted)
        .map(|c| c.id)
        .collect();
    baseline_ids.sort_unstable();
    restricted_ids.sort_unstable();
    let ordered: Vec<&'static str> = baseline_ids.into_iter().chain(restricted_ids).collect();
    let at = |c: &'static Check, minor: u32| -> Option<&'static VersionedCheck> {
        c.versions.iter().rev().find(|v| v.min_minor <= minor)
    };
    (0..=NEWEST_MINOR)
        .map(|minor| {
            let find = |id: &str| all.iter().find(|c| c.id == id).copied().expect("id");
            let overridden: Vec<&str> = all
                .iter()
                .filter(|c| c.level == Level::Restricted)
                .filter_map(|c| at(c, minor))
                .flat_map(|v| v.overrides.iter().copied())
                .collect();
            let mut baseline = Table::new();
            let mut restricted = Table::new();
            for id in &ordered {
                let c = find(id);
                let Some(v) = at(c, minor) else { continue };
                match c.level {
                    Level::Baseline => {
                        baseline.push((c.id, v.check));
                        if !overridden.contains(&c.id) {
                            restricted.push((c.id, v.check));
                        }
                    }
                    Level::Restricted => restricted.push((c.id, v.check)),
                    Level::Privileged => {}
                }
            }
            (baseline, restricted)
        })
        .collect()
}

/// The IDs of the checks that run at a level and version, in run order.
pub fn check_ids(level: Level, version: Version) -> Vec<&'static str> {
    let (b, r) = &tables()[version.effective_minor() as usize];
    match level {
        Level::Privileged => Vec::new(),
        Level::Baseline => b.iter().map(|(id, _)| *id).collect(),
        Level::Restricted => r.iter().map(|(id, _)| *id).collect(),
    }
}

/// One violated check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    /// Upstream check ID, e.g. `runAsNonRoot`.
    pub check: &'static str,
    /// Upstream `ForbiddenReason`, e.g. `runAsNonRoot != true`.
    pub reason: &'static str,
    /// Upstream `ForbiddenDetail`: which pod fields and containers.
    pub detail: String,
}

/// The result of evaluating one pod at one level and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub level: Level,
    pub version: Version,
    pub allowed: bool,
    pub violations: Vec<Violation>,
}

impl Verdict {
    /// Upstream `AggregateCheckResult.ForbiddenDetail`: `reason (detail), reason (detail)`.
    pub fn forbidden_detail(&self) -> String {
        let mut s = String::new();
        for (i, v) in self.violations.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            s.push_str(v.reason);
            if !v.detail.is_empty() {
                s.push_str(" (");
                s.push_str(&v.detail);
                s.push(')');
            }
        }
        s
    }
    /// The API server's rejection text: `violates PodSecurity "restricted:latest": ...`.
    pub fn admission_message(&self) -> String {
        format!(
            "violates PodSecurity \"{}:{}\": {}",
            self.level,
            self.version,
            self.forbidden_detail()
        )
    }
}

/// Evaluate a pod as PodSecurity admission does at `level`/`version`.
pub fn evaluate(level: Level, version: Version, pod: &PodInput) -> Verdict {
    let mut violations = Vec::new();
    if level != Level::Privileged {
        let (b, r) = &tables()[version.effective_minor() as usize];
        let table = if level == Level::Baseline { b } else { r };
        for (id, f) in table {
            if let Some(fb) = f(pod) {
                violations.push(Violation {
                    check: id,
                    reason: fb.reason,
                    detail: fb.detail,
                });
            }
        }
    }
    Verdict {
        level,
        version,
        allowed: violations.is_empty(),
        violations,
    }
}

/// Where an object keeps its pod spec, by kind.
fn template_path(kind: &str, api_version: Option<&str>) -> Option<&'static [&'static str]> {
    let group = api_version.map(|v| v.rsplit_once('/').map(|(g, _)| g).unwrap_or(""));
    let group_ok = |allowed: &[&str]| group.is_none_or(|g| allowed.contains(&g));
    match kind {
        "Pod" if group_ok(&[""]) => Some(&[]),
        "ReplicationController" if group_ok(&[""]) => Some(&["spec", "template"]),
        "PodTemplate" if group_ok(&[""]) => Some(&["template"]),
        "Deployment" | "ReplicaSet" | "DaemonSet" if group_ok(&["apps", "extensions"]) => {
            Some(&["spec", "template"])
        }
        "StatefulSet" if group_ok(&["apps"]) => Some(&["spec", "template"]),
        "Job" if group_ok(&["batch"]) => Some(&["spec", "template"]),
        "CronJob" if group_ok(&["batch"]) => Some(&["spec", "jobTemplate", "spec", "template"]),
        _ => None,
    }
}

/// Where `obj` keeps its pod template (`[]` for a Pod: the object is the pod),
/// when its kind and apiVersion carry one.
pub fn pod_template_path(obj: &serde_json::Value) -> Option<&'static [&'static str]> {
    template_path(
        obj.get("kind")?.as_str()?,
        obj.get("apiVersion").and_then(|v| v.as_str()),
    )
}

/// Does an object of this kind carry a pod spec that PodSecurity evaluates?
pub fn has_pod_spec(obj: &serde_json::Value) -> bool {
    obj.get("kind")
        .and_then(|k| k.as_str())
        .and_then(|k| template_path(k, obj.get("apiVersion").and_then(|v| v.as_str())))
        .is_some()
}

/// A pod spec that could not be decoded: `path` is the JSON path of the pod template.
#[derive(Debug)]
pub struct DecodeError {
    pub path: String,
    pub source: serde_json::Error,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.source)
    }
}

/// The `metadata` and `spec` of the pod an object describes: the object itself
/// for a `Pod`, its pod template for PodTemplate and the workload kinds
/// (including CronJob's `spec.jobTemplate.spec.template`). `None` for other
/// kinds or when the template is missing.
pub fn pod_template_of(
    obj: &serde_json::Value,
) -> Option<(Option<&serde_json::Value>, &serde_json::Value)> {
    let kind = obj.get("kind")?.as_str()?;
    let path = template_path(kind, obj.get("apiVersion").and_then(|v| v.as_str()))?;
    let mut cur = obj;
    for p in path {
        cur = cur.get(*p)?;
    }
    Some((
        cur.get("metadata"),
        cur.get("spec").unwrap_or(&serde_json::Value::Null),
    ))
}

/// The pod a Pod, PodTemplate or workload object describes; `None` for other kinds.
///
/// Works on any Kubernetes object as JSON, from a file or from a cluster.
pub fn pod_of(obj: &serde_json::Value) -> Option<Result<PodInput, DecodeError>> {
    let (meta, spec) = pod_template_of(obj)?;
    let kind = obj.get("kind")?.as_str()?;
    let semantics = if kind == "Pod" {
        Semantics::Pod
    } else {
        Semantics::Template
    };
    Some(
        PodInput::from_json(meta, spec, semantics).map_err(|source| {
            let api_version = obj.get("apiVersion").and_then(|v| v.as_str());
            let mut p: Vec<&str> = template_path(kind, api_version).unwrap_or(&[]).to_vec();
            p.push("spec");
            DecodeError {
                path: p.join("."),
                source,
            }
        }),
    )
}

// ---- helpers shared by the checks: upstream's joinQuote and pluralize ----

/// `"a", "b"`: upstream's `joinQuote`.
pub(crate) fn join_quote<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let mut out = String::new();
    for (i, s) in items.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('"');
        out.push_str(s.as_ref());
        out.push('"');
    }
    out
}

pub(crate) fn pluralize(singular: &'static str, plural: &'static str, n: usize) -> &'static str {
    if n == 1 { singular } else { plural }
}

/// Go's `%q` for the strings annotations carry: quoted, with Go escapes.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    /// A pod from YAML-ish JSON: `{"metadata": ..., "spec": ...}`.
    pub fn pod(v: serde_json::Value) -> PodInput {
        PodInput::from_json(v.get("metadata"), &v["spec"], Semantics::Template).unwrap()
    }
    pub fn run(check: &Check, minor: u32, v: serde_json::Value) -> Option<Forbidden> {
        let vc = check
            .versions
            .iter()
            .rev()
            .find(|x| x.min_minor <= minor)
            .expect("version");
        (vc.check)(&pod(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn version_parsing_matches_upstream() {
        assert_eq!(Version::parse("latest"), Some(Version::Latest));
        assert_eq!(Version::parse("v1.0"), Some(Version::V1(0)));
        assert_eq!(Version::parse("v1.25"), Some(Version::V1(25)));
        assert_eq!(Version::parse("v1.99"), Some(Version::V1(99)));
        assert_eq!(Version::parse("v1.99").unwrap().effective_minor(), 37);
        for bad in ["v1.01", "1.25", "v2.0", "v1.", "v1.x", "Latest", ""] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn restricted_checks_and_overrides_by_version() {
        assert_eq!(
            check_ids(Level::Restricted, Version::V1(0)),
            [
                "appArmorProfile",
                "capabilities_baseline",
                "hostNamespaces",
                "hostPorts",
                "privileged",
                "procMount",
                "seLinuxOptions",
                "seccompProfile_baseline",
                "sysctls",
                "windowsHostProcess",
                "restrictedVolumes",
                "runAsNonRoot"
            ]
        );
        let latest = check_ids(Level::Restricted, Version::Latest);
        assert!(!latest.contains(&"capabilities_baseline"));
        assert!(!latest.contains(&"seccompProfile_baseline"));
        assert!(!latest.contains(&"hostPathVolumes"));
        assert!(!latest.contains(&"procMount"));
        assert!(latest.contains(&"procMount_restricted"));
        assert!(latest.contains(&"hostProbesAndHostLifecycle"));
        assert!(
            check_ids(Level::Baseline, Version::V1(33)).len() + 1
                == check_ids(Level::Baseline, Version::V1(34)).len()
        );
        assert!(check_ids(Level::Privileged, Version::Latest).is_empty());
    }

    #[test]
    fn admission_message_format() {
        let p = testutil::pod(json!({"spec": {"containers": [{"name": "app"}]}}));
        let v = evaluate(Level::Restricted, Version::Latest, &p);
        assert!(!v.allowed);
        assert_eq!(
            v.admission_message(),
            "violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"app\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"app\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"app\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"app\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
        assert!(evaluate(Level::Baseline, Version::Latest, &p).allowed);
        assert!(evaluate(Level::Privileged, Version::Latest, &p).allowed);
    }

    #[test]
    fn pod_of_finds_templates() {
        let cj = json!({"apiVersion": "batch/v1", "kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {"hostPID": true, "containers": [{"name": "c"}]}}}}}});
        let p = pod_of(&cj).unwrap().unwrap();
        assert_eq!(p.semantics, Semantics::Template);
        let v = evaluate(Level::Baseline, Version::Latest, &p);
        assert_eq!(v.violations[0].check, "hostNamespaces");
        assert!(pod_of(&json!({"apiVersion": "v1", "kind": "Service"})).is_none());
        assert!(pod_of(&json!({"apiVersion": "example.com/v1", "kind": "Deployment", "spec": {"template": {}}})).is_none());
        let bad = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"hostPID": "yes please"}});
        let e = pod_of(&bad).unwrap().unwrap_err();
        assert_eq!(e.path, "spec");
    }

    #[test]
    fn go_quote_escapes() {
        assert_eq!(go_quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    }
}
