//! `pake audit`: run the Pod Security engine, the guide's checks and the
//! Dockerfile checks over files (or rendered objects), apply the project's
//! overrides, and build one report.
//!
//! Two entry points:
//! - [`audit_paths`] walks files and directories: multi-document YAML
//!   (`.yaml`, `.yml`) and Dockerfiles (`Dockerfile`, `Dockerfile.*`,
//!   `*.Dockerfile`), keeping the document index and line of every object.
//! - [`audit_objects`] audits objects that are already parsed, e.g. rendered
//!   templates (`pake audit --env`): `(source, document index, object)`.
//!
//! Reading files is the only I/O; the checks themselves are pure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::lines::{FieldPath, LineMap, Lined};
use super::pss::{self, Level, Version};
use super::{Finding, Severity, depth, dockerfile, guide};
use crate::config::CheckOverride;
use crate::error::{Error, Result};
use crate::input;

/// What to check and what fails the audit.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    pub level: Level,
    pub version: Version,
    /// Findings at or above this severity fail the audit.
    pub fail_on: Severity,
    /// `pake.yaml` `audit.checks`: turn a check off or change its severity, with a reason.
    pub overrides: BTreeMap<String, CheckOverride>,
    /// The environment is `protected` (`pake audit --env prod`): digests and
    /// topology spread are required.
    pub protected: bool,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            level: Level::Restricted,
            version: Version::Latest,
            fail_on: Severity::High,
            overrides: BTreeMap::new(),
            protected: false,
        }
    }
}

/// One parsed object and where it came from.
#[derive(Debug, Clone)]
pub struct SourceObject {
    pub source: String,
    pub document: usize,
    /// 1-based line where the document starts, when known.
    pub line: Option<usize>,
    pub object: Value,
    /// The document's first line and text, to locate decoding errors.
    text: Option<(usize, String)>,
    /// File line of every field, when parsed from a file.
    lines: Option<LineMap>,
}

impl SourceObject {
    /// The file line of a field (or its nearest existing parent), when known.
    fn line_of(&self, field: &FieldPath) -> Option<usize> {
        self.lines
            .as_ref()
            .map(|l| l.line_of(field))
            .filter(|l| *l > 0)
    }
}

/// The field a PodSecurity violation is about: the first container its detail
/// names (`container "app" must ...`) and the check's field in it, else the
/// pod-level field.
fn violation_field(obj: &Value, check: &str, detail: &str) -> FieldPath {
    let spec_path = guide::pod_spec_path(obj);
    let container_field: &[&str] = match check {
        "privileged" => &["securityContext", "privileged"],
        "allowPrivilegeEscalation" => &["securityContext", "allowPrivilegeEscalation"],
        "capabilities_baseline" | "capabilities_restricted" => &["securityContext", "capabilities"],
        "runAsNonRoot" => &["securityContext", "runAsNonRoot"],
        "runAsUser" => &["securityContext", "runAsUser"],
        "seccompProfile_baseline" | "seccompProfile_restricted" => {
            &["securityContext", "seccompProfile"]
        }
        "seLinuxOptions" => &["securityContext", "seLinuxOptions"],
        "procMount" | "procMount_restricted" => &["securityContext", "procMount"],
        "appArmorProfile" => &["securityContext", "appArmorProfile"],
        "windowsHostProcess" => &["securityContext", "windowsOptions"],
        "hostPorts" => &["ports"],
        "hostProbesAndHostLifecycle" => &["livenessProbe"],
        _ => &[],
    };
    let pod_field: &[&str] = match check {
        "hostNamespaces" => {
            let spec = pss::pod_template_of(obj).map(|(_, s)| s);
            match ["hostNetwork", "hostPID", "hostIPC"]
                .into_iter()
                .find(|f| spec.and_then(|s| s.get(*f)).and_then(Value::as_bool) == Some(true))
            {
                Some("hostPID") => &["hostPID"],
                Some("hostIPC") => &["hostIPC"],
                _ => &["hostNetwork"],
            }
        }
        "hostPathVolumes" | "restrictedVolumes" => &["volumes"],
        "sysctls" => &["securityContext", "sysctls"],
        _ => &["securityContext"],
    };
    let named = detail
        .split_once("container")
        .and_then(|(_, rest)| rest.split('"').nth(1));
    if let (Some(name), false) = (named, container_field.is_empty())
        && let Some((_, spec)) = pss::pod_template_of(obj)
        && let Some(c) = guide::containers(spec, &spec_path)
            .into_iter()
            .find(|c| c.name == name)
    {
        return c.path.keys(container_field);
    }
    spec_path.keys(pod_field)
}

/// The whole audit, as `-o json` prints it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditReport {
    pub results: Vec<ObjectResult>,
    /// Findings and PSS violations turned off in pake.yaml, with the reason.
    pub suppressed: Vec<Suppressed>,
    /// Every override in pake.yaml and how often it applied.
    pub overrides: Vec<AppliedOverride>,
    pub summary: Summary,
    /// What the walk skipped and why (symlink loops).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectResult {
    pub source: String,
    pub document: usize,
    pub kind: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Only for objects with a pod spec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pss: Option<PssResult>,
    pub findings: Vec<FindingOut>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PssResult {
    pub level: Level,
    pub version: Version,
    /// Exactly what PodSecurity admission would decide (overrides do not change it).
    pub allowed: bool,
    pub violations: Vec<ViolationOut>,
    /// The API server's rejection message, when denied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ViolationOut {
    pub check: &'static str,
    pub reason: &'static str,
    pub detail: String,
    /// Line of the offending field (the first container or pod field the detail names).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The pake.yaml reason, when this check is turned off there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FindingOut {
    pub id: String,
    pub severity: Severity,
    pub message: String,
    pub fix: String,
    /// Line of the offending field (or of the object when the check is about the whole object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The offending field, e.g. `spec.template.spec.containers[0].image`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Set when pake.yaml changed the severity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overridden: Option<SeverityOverride>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeverityOverride {
    pub from: Severity,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Suppressed {
    pub id: String,
    pub source: String,
    pub document: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub object: String,
    pub message: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedOverride {
    pub id: String,
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    pub reason: String,
    /// How many findings or violations it changed.
    pub applied: usize,
    /// The ID is not a check pake knows (likely a typo).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unknown: bool,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub files: usize,
    pub objects: usize,
    /// Documents that are not Kubernetes objects (no `kind`), skipped.
    pub skipped_documents: usize,
    pub pss_level: Level,
    pub pss_version: Version,
    pub pods_evaluated: usize,
    pub pods_denied: usize,
    /// Objects pake could not evaluate (`AUDIT-NOT-EVALUATED`): these always fail the audit.
    pub not_evaluated: usize,
    pub findings: BTreeMap<Severity, usize>,
    pub suppressed: usize,
    pub fail_on: Severity,
    /// Everything allowed and nothing at or above `failOn`: exit 0.
    pub passed: bool,
}

/// Read and audit files and directories.
pub fn audit_paths(paths: &[PathBuf], opts: &AuditOptions) -> Result<AuditReport> {
    let mut results = Vec::new();
    let mut report = audit_paths_each(paths, opts, &mut |r| {
        results.push(r);
        Ok(())
    })?;
    report.results = results;
    Ok(report)
}

/// How [`audit_paths_each`] checks the objects.
#[derive(Debug, Clone, Copy)]
struct Streaming {
    /// Objects checked together.
    chunk: usize,
    /// Check at least as many objects together as there are context objects
    /// (each chunk's checks index all of them: this keeps the work linear).
    chunk_grows: bool,
}

const STREAMING: Streaming = Streaming {
    chunk: 1000,
    chunk_grows: true,
};

/// [`audit_paths`], handing each result to `emit` as soon as it is ready
/// instead of keeping it. The report returned has no `results`; its summary,
/// overrides and suppressed findings cover them all.
///
/// Pass 1 parses every document and decodes every pod (bad input fails, exit
/// 2, before the first result is emitted), keeps every object compactly
/// ([`Packed`]: JSON and packed line numbers, ~2x its YAML instead of ~25x
/// as a parsed tree) and, of the objects the cross-object checks look up,
/// what they need ([`context_part`]). Pass 2 unpacks and checks the objects a
/// chunk at a time, each chunk together with the context objects of all the
/// others, so every result is the one the whole input at once gives
/// (`streamed_audit_matches_whole_audit`). Memory: the largest file's text,
/// the packed objects, the context objects and one chunk.
pub fn audit_paths_each(
    paths: &[PathBuf],
    opts: &AuditOptions,
    emit: &mut dyn FnMut(ObjectResult) -> Result<()>,
) -> Result<AuditReport> {
    audit_paths_with(paths, opts, STREAMING, emit)
}

fn audit_paths_with(
    paths: &[PathBuf],
    opts: &AuditOptions,
    how: Streaming,
    emit: &mut dyn FnMut(ObjectResult) -> Result<()>,
) -> Result<AuditReport> {
    let mut walk = Walk::default();
    for p in paths {
        walk.collect(p, true, &mut Vec::new())?;
    }
    let files = std::mem::take(&mut walk.files);
    let mut dockerfiles = Vec::new();
    let mut first = PassOne::default();
    for f in &files {
        if is_dockerfile(f) {
            dockerfiles.push((f.clone(), input::read_text(f, "Dockerfile")?));
        } else {
            // The text is dropped once parsed: pass 2 reads the packed objects.
            first.file(&input::show_path(f), &input::read_text(f, "manifest")?)?;
        }
    }
    first.prune_context();
    let objects = first.kept.len();
    let mut two = PassTwo {
        chunk_size: if how.chunk_grows {
            how.chunk.max(first.context.len())
        } else {
            how.chunk
        },
        context: first.context,
        chunk: Vec::new(),
        fin: Finisher::new(opts),
        opts,
        emit,
    };
    for (seq, p) in first.kept.into_iter().enumerate() {
        two.push(seq, p.unpack())?;
    }
    two.flush()?;
    for (path, text) in &dockerfiles {
        let mut r = dockerfile_result(path, text);
        two.fin.result(&mut r);
        (two.emit)(r)?;
    }
    let mut report = empty_report(opts);
    report.summary.files = files.len();
    report.summary.objects = objects;
    report.summary.skipped_documents = first.skipped;
    report.notes = walk.notes;
    Ok(two.fin.into_report(report))
}

fn dockerfile_result(path: &Path, text: &str) -> ObjectResult {
    let context = path.parent().filter(|p| !p.as_os_str().is_empty());
    let findings = dockerfile::check_dockerfile(path, text, context.or(Some(Path::new("."))));
    ObjectResult {
        source: input::show_path(path),
        document: 0,
        kind: "Dockerfile".into(),
        name: path
            .file_name()
            .map(|n| input::escape_control(&n.to_string_lossy()))
            .unwrap_or_default(),
        namespace: None,
        line: None,
        pss: None,
        findings: findings.into_iter().map(finding_out).collect(),
    }
}

/// An object between the passes: its value as JSON (parsed back ~10x faster
/// than YAML) and its line numbers packed ([`LineMap::pack`]).
struct Packed {
    source: String,
    document: usize,
    line: Option<usize>,
    body: Body,
    lines: Option<Box<[u32]>>,
}

enum Body {
    Json(Box<[u8]>),
    /// A value with a fractional number stays a tree: serde_json reads floats
    /// back to the last bit only with a feature pake does not enable.
    Tree(Value),
}

fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(has_float),
        Value::Object(m) => m.values().any(has_float),
        _ => false,
    }
}

impl Packed {
    fn new(o: SourceObject) -> Packed {
        Packed {
            body: if has_float(&o.object) {
                Body::Tree(o.object)
            } else {
                Body::Json(
                    serde_json::to_vec(&o.object)
                        .expect("a JSON value serializes")
                        .into_boxed_slice(),
                )
            },
            lines: o.lines.map(|l| {
                let mut v = Vec::new();
                l.pack(&mut v);
                v.into_boxed_slice()
            }),
            source: o.source,
            document: o.document,
            line: o.line,
        }
    }

    fn unpack(self) -> SourceObject {
        SourceObject {
            object: match self.body {
                Body::Json(j) => serde_json::from_slice(&j).expect("pake's own JSON parses back"),
                Body::Tree(v) => v,
            },
            lines: self.lines.map(|l| LineMap::unpack(&l)),
            source: self.source,
            document: self.document,
            line: self.line,
            // Pods were decoded in pass 1: the text only served their error messages.
            text: None,
        }
    }
}

/// What pass 1 leaves for pass 2.
#[derive(Default)]
struct PassOne {
    /// Every object, in order.
    kept: Vec<Packed>,
    /// `(object number, context part)` of every object the cross-object checks look up.
    context: Vec<(usize, Value)>,
    skipped: usize,
}

impl PassOne {
    /// Parse a file, decode its pods, keep its objects and their context parts.
    fn file(&mut self, source: &str, text: &str) -> Result<()> {
        self.skipped += parse_yaml_each(source, text, &mut |o| {
            check_pod_decodes(&o)?;
            if let Some(c) = context_part(&o.object) {
                self.context.push((self.kept.len(), c));
            }
            self.kept.push(Packed::new(o));
            Ok(())
        })?;
        Ok(())
    }

    /// Workloads matter only to the PDBs (and HPAs, through them) of their namespace.
    fn prune_context(&mut self) {
        let with_pdb: std::collections::BTreeSet<String> = self
            .context
            .iter()
            .filter(|(_, v)| guide::kind(v) == "PodDisruptionBudget")
            .map(|(_, v)| guide::namespace(v).to_string())
            .collect();
        self.context.retain(|(_, v)| {
            !WORKLOAD_KINDS.contains(&guide::kind(v)) || with_pdb.contains(guide::namespace(v))
        });
    }
}

/// Kinds whose objects the guide's cross-object checks look up whole
/// (`guide::Context`).
const CONTEXT_KINDS: &[&str] = &[
    "NetworkPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    // `external_secrets::check_in`: is an ExternalSecret's store among the
    // objects, is a Secret with literal data next to ExternalSecrets.
    "SecretStore",
    "ClusterSecretStore",
    "ExternalSecret",
];

/// Kinds that PDBs and HPAs are compared with (`depth::Context`).
const WORKLOAD_KINDS: &[&str] = &["Deployment", "StatefulSet", "ReplicaSet"];

/// What the cross-object checks need of an object when it is audited in
/// another chunk: NetworkPolicies, PDBs, ServiceAccounts and the ESO kinds whole; of a
/// workload its identity, replicas and pod labels. `None` for the rest.
fn context_part(obj: &Value) -> Option<Value> {
    let kind = guide::kind(obj);
    if CONTEXT_KINDS.contains(&kind) {
        return Some(obj.clone());
    }
    if !WORKLOAD_KINDS.contains(&kind) {
        return None;
    }
    let pick = |v: Option<&Value>| v.cloned().unwrap_or(Value::Null);
    let meta = obj.get("metadata");
    let spec = obj.get("spec");
    Some(serde_json::json!({
        "apiVersion": pick(obj.get("apiVersion")),
        "kind": kind,
        "metadata": {
            "name": pick(meta.and_then(|m| m.get("name"))),
            "namespace": pick(meta.and_then(|m| m.get("namespace"))),
        },
        "spec": {
            "replicas": pick(spec.and_then(|s| s.get("replicas"))),
            "template": {"metadata": {"labels": pick(guide::at(obj, &["spec", "template", "metadata", "labels"]))}},
        },
    }))
}

/// Pass 2: objects in order, checked a chunk at a time with the context of the rest.
struct PassTwo<'a> {
    context: Vec<(usize, Value)>,
    chunk: Vec<(usize, SourceObject)>,
    chunk_size: usize,
    fin: Finisher<'a>,
    opts: &'a AuditOptions,
    emit: &'a mut dyn FnMut(ObjectResult) -> Result<()>,
}

impl PassTwo<'_> {
    fn push(&mut self, seq: usize, o: SourceObject) -> Result<()> {
        self.chunk.push((seq, o));
        if self.chunk.len() >= self.chunk_size {
            self.flush()?;
        }
        Ok(())
    }

    /// Check the chunk, with the context objects from before and after it, and emit its results.
    fn flush(&mut self) -> Result<()> {
        let (Some((lo, _)), Some((hi, _))) = (self.chunk.first(), self.chunk.last()) else {
            return Ok(());
        };
        let (lo, hi) = (*lo, *hi);
        let before = self.context.partition_point(|(s, _)| *s < lo);
        let after = self.context.partition_point(|(s, _)| *s <= hi);
        let objects: Vec<SourceObject> = self.chunk.drain(..).map(|(_, o)| o).collect();
        let results = chunk_results(
            &self.context[..before],
            &objects,
            &self.context[after..],
            self.opts,
            Vec::new(),
        )?;
        drop(objects);
        for mut r in results {
            self.fin.result(&mut r);
            (self.emit)(r)?;
        }
        Ok(())
    }
}

/// Audit the text of one multi-document YAML file (as read from `source`).
pub fn audit_text(source: &str, text: &str, opts: &AuditOptions) -> Result<AuditReport> {
    let mut objects = Vec::new();
    let skipped = parse_yaml_file(source, text, &mut objects)?;
    let mut report = audit_source_objects(&objects, opts, Vec::new())?;
    report.summary.files = 1;
    report.summary.skipped_documents = skipped;
    Ok(finish(report, opts))
}

/// Audit objects that are already parsed: `(source, document index, object)`.
///
/// This is the entry point for rendered templates (`pake audit --env`).
/// Objects without a `kind` are skipped; a pod spec that cannot be decoded is
/// an error (exit 2) naming the source and document.
pub fn audit_objects(
    objects: &[(String, usize, Value)],
    opts: &AuditOptions,
) -> Result<AuditReport> {
    audit_objects_declared(objects, opts, None)
}

/// [`audit_objects`] plus the zero-trust check of `checks::netpol` against
/// what pake.yaml declares (`pake audit --env`).
pub fn audit_objects_declared(
    objects: &[(String, usize, Value)],
    opts: &AuditOptions,
    declared: Option<&super::netpol::zero_trust::Declared>,
) -> Result<AuditReport> {
    let mut src = Vec::new();
    let mut skipped = 0;
    for (source, document, object) in objects {
        skipped += push_object(source, *document, None, None, object.clone(), &mut src);
    }
    let extra = match declared {
        Some(d) => {
            let values: Vec<Value> = src.iter().map(|o| o.object.clone()).collect();
            super::netpol::zero_trust::check(&values, d)
                .map_err(|e| Error::usage(e.to_string()).on(e.object))?
        }
        None => Vec::new(),
    };
    let mut report = audit_source_objects(&src, opts, extra)?;
    report.summary.files = objects
        .iter()
        .map(|(s, _, _)| s.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    report.summary.skipped_documents = skipped;
    Ok(finish(report, opts))
}

fn finding_out(f: Finding) -> FindingOut {
    FindingOut {
        id: f.id,
        severity: f.severity,
        message: input::escape_control(&f.message),
        fix: f.fix,
        line: f.line,
        field: f.field.map(|p| p.to_string()),
        overridden: None,
    }
}

/// Every object checked at once (no overrides applied yet). The checks read
/// the objects in place: no copy of the input is made.
fn audit_source_objects(
    objects: &[SourceObject],
    opts: &AuditOptions,
    extra: Vec<(usize, Finding)>,
) -> Result<AuditReport> {
    let mut report = empty_report(opts);
    report.results = chunk_results(&[], objects, &[], opts, extra)?;
    report.summary.objects = objects.len();
    Ok(report)
}

impl AuditReport {
    /// A report with no results yet (what [`audit_paths_each`] fills in).
    pub fn empty(opts: &AuditOptions) -> Self {
        empty_report(opts)
    }
}

fn empty_report(opts: &AuditOptions) -> AuditReport {
    AuditReport {
        results: Vec::new(),
        suppressed: Vec::new(),
        overrides: Vec::new(),
        notes: Vec::new(),
        summary: Summary {
            files: 0,
            objects: 0,
            skipped_documents: 0,
            pss_level: opts.level,
            pss_version: opts.version,
            pods_evaluated: 0,
            pods_denied: 0,
            not_evaluated: 0,
            findings: BTreeMap::new(),
            suppressed: 0,
            fail_on: opts.fail_on,
            passed: true,
        },
    }
}

/// A workload whose pod cannot be evaluated: a malformed template or a pod
/// spec that does not decode (exit 2, naming file, document, line and field).
fn check_pod_decodes(o: &SourceObject) -> Result<()> {
    if let Some(field) = malformed_pod_path(&o.object) {
        let at = match o.line {
            Some(l) => format!("{}: document {}, line {l}", o.source, o.document),
            None => format!("{}: document {}", o.source, o.document),
        };
        return Err(Error::usage(format!(
            "{at}: {field} is not a mapping, so the object has no pod to evaluate"
        ))
        .on(guide::object_ref(&o.object))
        .fix("fix the object's structure (the API server would reject it too)"));
    }
    if let Some(Err(e)) = pss::pod_of(&o.object) {
        return Err(decode_error(o, &e));
    }
    Ok(())
}

/// Results for `objects`, checked with `before` and `after` (context objects
/// that precede and follow them in the input) around them, in input order.
/// `extra` findings are indexed into `objects`.
fn chunk_results(
    before: &[(usize, Value)],
    objects: &[SourceObject],
    after: &[(usize, Value)],
    opts: &AuditOptions,
    extra: Vec<(usize, Finding)>,
) -> Result<Vec<ObjectResult>> {
    let all: Vec<&Value> = before
        .iter()
        .map(|(_, v)| v)
        .chain(objects.iter().map(|o| &o.object))
        .chain(after.iter().map(|(_, v)| v))
        .collect();
    let range = before.len()..before.len() + objects.len();
    let depth_opts = depth::DepthOptions {
        protected: opts.protected,
    };
    let mut findings: Vec<Vec<Finding>> = vec![Vec::new(); objects.len()];
    for (i, f) in guide::check_objects_in(&all, range.clone())
        .into_iter()
        .chain(depth::check_objects_in(&all, range.clone(), depth_opts))
    {
        findings[i - range.start].push(f);
    }
    for (i, f) in extra {
        findings[i].push(f);
    }
    objects
        .iter()
        .zip(findings)
        .map(|(o, f)| object_result(o, f, opts))
        .collect()
}

fn object_result(
    o: &SourceObject,
    findings: Vec<Finding>,
    opts: &AuditOptions,
) -> Result<ObjectResult> {
    if malformed_pod_path(&o.object).is_some() {
        check_pod_decodes(o)?;
    }
    let obj = &o.object;
    let pss = match pss::pod_of(obj) {
        None => None,
        Some(Ok(pod)) => {
            let v = pss::evaluate(opts.level, opts.version, &pod);
            Some(PssResult {
                level: v.level,
                version: v.version,
                allowed: v.allowed,
                message: (!v.allowed).then(|| v.admission_message()),
                violations: v
                    .violations
                    .into_iter()
                    .map(|x| ViolationOut {
                        line: o
                            .line_of(&violation_field(obj, x.check, &x.detail))
                            .or(o.line),
                        check: x.check,
                        reason: x.reason,
                        detail: x.detail,
                        suppressed: None,
                    })
                    .collect(),
            })
        }
        Some(Err(e)) => return Err(decode_error(o, &e)),
    };
    let meta = |k: &str| {
        obj.get("metadata")
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .map(input::escape_control)
    };
    Ok(ObjectResult {
        source: o.source.clone(),
        document: o.document,
        kind: obj
            .get("kind")
            .and_then(Value::as_str)
            .map(input::escape_control)
            .unwrap_or_default(),
        name: meta("name").unwrap_or_default(),
        namespace: meta("namespace"),
        line: o.line,
        pss,
        findings: findings
            .into_iter()
            .map(|f| FindingOut {
                line: f
                    .line
                    .or_else(|| f.field.as_ref().and_then(|p| o.line_of(p)))
                    .or(o.line),
                ..finding_out(f)
            })
            .collect(),
    })
}

/// Apply overrides and compute the summary.
fn finish(mut report: AuditReport, opts: &AuditOptions) -> AuditReport {
    let mut f = Finisher::new(opts);
    for r in &mut report.results {
        f.result(r);
    }
    f.into_report(report)
}

/// Overrides and summary, one result at a time (so results can be streamed).
struct Finisher<'o> {
    opts: &'o AuditOptions,
    applied: BTreeMap<String, usize>,
    suppressed: Vec<Suppressed>,
    pods_evaluated: usize,
    pods_denied: usize,
    not_evaluated: usize,
    findings: BTreeMap<Severity, usize>,
    passed: bool,
}

impl<'o> Finisher<'o> {
    fn new(opts: &'o AuditOptions) -> Self {
        Finisher {
            opts,
            applied: BTreeMap::new(),
            suppressed: Vec::new(),
            pods_evaluated: 0,
            pods_denied: 0,
            not_evaluated: 0,
            findings: BTreeMap::new(),
            passed: true,
        }
    }

    /// Apply the overrides to one result and count it.
    fn result(&mut self, r: &mut ObjectResult) {
        let opts = self.opts;
        let object = if r.kind == "Dockerfile" {
            r.source.clone()
        } else {
            match &r.namespace {
                Some(ns) => format!("{} {ns}/{}", r.kind, r.name),
                None => format!("{} {}", r.kind, r.name),
            }
        };
        if let Some(p) = &mut r.pss {
            for v in &mut p.violations {
                if let Some((id, o)) = opts.overrides.get_key_value(v.check)
                    && !o.enabled
                {
                    v.suppressed = Some(o.reason.clone());
                    *self.applied.entry(id.clone()).or_default() += 1;
                    self.suppressed.push(Suppressed {
                        id: v.check.to_string(),
                        source: r.source.clone(),
                        document: r.document,
                        line: v.line,
                        object: object.clone(),
                        message: format!("{} ({})", v.reason, v.detail),
                        reason: o.reason.clone(),
                    });
                }
            }
        }
        let mut kept = Vec::new();
        for mut f in std::mem::take(&mut r.findings) {
            match opts.overrides.get_key_value(f.id.as_str()) {
                Some((id, o)) if !o.enabled => {
                    *self.applied.entry(id.clone()).or_default() += 1;
                    self.suppressed.push(Suppressed {
                        id: f.id.clone(),
                        source: r.source.clone(),
                        document: r.document,
                        line: f.line,
                        object: object.clone(),
                        message: f.message.clone(),
                        reason: o.reason.clone(),
                    });
                }
                Some((id, o)) => {
                    if let Some(sev) = o.severity.as_deref().and_then(Severity::parse)
                        && sev != f.severity
                    {
                        *self.applied.entry(id.clone()).or_default() += 1;
                        f.overridden = Some(SeverityOverride {
                            from: f.severity,
                            reason: o.reason.clone(),
                        });
                        f.severity = sev;
                    }
                    kept.push(f);
                }
                None => kept.push(f),
            }
        }
        r.findings = kept;
        if let Some(p) = &r.pss {
            self.pods_evaluated += 1;
            if !p.allowed {
                self.pods_denied += 1;
            }
            if p.violations.iter().any(|v| v.suppressed.is_none()) {
                self.passed = false;
            }
        }
        for f in &r.findings {
            *self.findings.entry(f.severity).or_default() += 1;
            // What pake could not evaluate fails the audit whatever --fail-on says.
            if f.severity >= opts.fail_on || f.id == depth::NOT_EVALUATED {
                self.passed = false;
            }
            if f.id == depth::NOT_EVALUATED {
                self.not_evaluated += 1;
            }
        }
    }

    /// The overrides list, suppressed findings and summary counts.
    fn into_report(self, mut report: AuditReport) -> AuditReport {
        report.overrides = self
            .opts
            .overrides
            .iter()
            .map(|(id, o)| AppliedOverride {
                id: id.clone(),
                enabled: o.enabled,
                severity: o.severity.as_deref().and_then(Severity::parse),
                reason: o.reason.clone(),
                applied: self.applied.get(id.as_str()).copied().unwrap_or(0),
                unknown: !is_known_check(id),
            })
            .collect();
        let s = &mut report.summary;
        s.suppressed = self.suppressed.len();
        s.pods_evaluated = self.pods_evaluated;
        s.pods_denied = self.pods_denied;
        s.not_evaluated = self.not_evaluated;
        s.findings = self.findings;
        s.passed = self.passed;
        report.suppressed = self.suppressed;
        report
    }
}

/// A check ID pake knows: PSS, guide, or a Dockerfile/image check prefix.
fn is_known_check(id: &str) -> bool {
    pss::is_check_id(id)
        || guide::IDS.contains(&id)
        || depth::IDS.contains(&id)
        || id.starts_with("DOCKERFILE-")
        || id.starts_with("DOCKERIGNORE-")
        || id.starts_with("IMAGE-")
        || super::netpol::zero_trust::IDS.contains(&id)
}

/// The walk of the paths given to `pake audit`.
#[derive(Default)]
struct Walk {
    files: Vec<PathBuf>,
    /// Real (canonical) paths of the files and directories already taken:
    /// each real file is audited once, each real directory walked once.
    seen: std::collections::HashSet<PathBuf>,
    /// Notes for the report: symlink loops and repeats that were skipped.
    notes: Vec<String>,
}

/// Deepest directory nesting walked (a deeper tree is refused, not recursed into).
const MAX_DEPTH: usize = 128;

impl Walk {
    /// Files to audit under `p`: explicit files always, directories recursively
    /// (skipping hidden directories and `target`), YAML and Dockerfiles only.
    /// Symlinks are followed; a link back to a directory being walked is a loop
    /// and is skipped with a note.
    fn collect(&mut self, p: &Path, explicit: bool, ancestors: &mut Vec<PathBuf>) -> Result<()> {
        let meta = std::fs::metadata(p).map_err(|e| {
            let what = if explicit { "path" } else { "entry" };
            Error::usage(format!("cannot read {what} {}: {e}", input::show_path(p))).fix(
                if std::fs::symlink_metadata(p).is_ok() {
                    "a symlink points to nothing that exists (or loops): fix or remove it"
                } else {
                    "pass existing files or directories of manifests and Dockerfiles"
                },
            )
        })?;
        let real = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        if meta.is_dir() {
            if ancestors.contains(&real) {
                self.notes.push(format!(
                    "{}: symlink loop (points back to {}), not followed",
                    input::show_path(p),
                    input::show_path(&real)
                ));
                return Ok(());
            }
            if !self.seen.insert(real.clone()) {
                return Ok(());
            }
            if ancestors.len() >= MAX_DEPTH {
                return Err(Error::usage(format!(
                    "{}: directories nested more than {MAX_DEPTH} deep",
                    input::show_path(p)
                ))
                .fix("pass the directories of manifests themselves"));
            }
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| {
                    Error::usage(format!("cannot list {}: {e}", input::show_path(p)))
                        .fix("check the directory's permissions")
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            ancestors.push(real);
            for e in entries {
                let name = e
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if e.is_dir() {
                    if name.starts_with('.') || name == "target" || name == "node_modules" {
                        continue;
                    }
                    self.collect(&e, false, ancestors)?;
                } else if is_dockerfile(&e) || is_yaml(&e) {
                    self.collect(&e, false, ancestors)?;
                }
            }
            ancestors.pop();
        } else if explicit || is_dockerfile(p) || is_yaml(p) {
            input::require_regular(p, "file", &meta)?;
            if self.seen.insert(real) {
                self.files.push(p.to_path_buf());
            }
        }
        Ok(())
    }
}

fn is_yaml(p: &Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

/// `Dockerfile`, `Dockerfile.*` or `*.Dockerfile`.
pub fn is_dockerfile(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "Dockerfile" || name.starts_with("Dockerfile.") || name.ends_with(".Dockerfile")
}

/// Split a YAML stream into documents: `(first line, text)`.
///
/// A document starts at a `---` marker line (content after the marker stays
/// in the document, the marker itself becomes blanks); the text before the
/// first marker counts as a document only if it has content. Line 1 of a
/// document's text is line `first line` of the file.
pub fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let _ = for_each_document(text, &mut |start, doc| {
        docs.push((start, doc));
        Ok(())
    });
    docs
}

/// [`split_documents`], one document at a time (a large file is never copied whole).
fn for_each_document(text: &str, each: &mut dyn FnMut(usize, String) -> Result<()>) -> Result<()> {
    fn has_content(s: &str) -> bool {
        s.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    }
    let mut cur = String::new();
    let mut start = 1;
    let mut by_marker = false;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let lineno = i + 1;
        let bare = line.trim_end_matches(['\n', '\r']);
        if bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t") {
            if by_marker || has_content(&cur) {
                each(start, std::mem::take(&mut cur))?;
            }
            cur.clear();
            start = lineno;
            by_marker = true;
            cur.push_str("   ");
            cur.push_str(&line[3..]);
            continue;
        }
        if cur.is_empty() && !by_marker {
            start = lineno;
        }
        // `...` ends a document; keep the line count with a blank line.
        cur.push_str(if bare == "..." { "\n" } else { line });
    }
    if by_marker || has_content(&cur) {
        each(start, cur)?;
    }
    Ok(())
}

/// Parse a YAML file into objects; returns how many documents were skipped (not objects).
fn parse_yaml_file(source: &str, text: &str, out: &mut Vec<SourceObject>) -> Result<usize> {
    parse_yaml_each(source, text, &mut |o| {
        out.push(o);
        Ok(())
    })
}

/// [`parse_yaml_file`], one object at a time.
fn parse_yaml_each(
    source: &str,
    text: &str,
    each: &mut dyn FnMut(SourceObject) -> Result<()>,
) -> Result<usize> {
    let mut skipped = 0;
    let mut index = 0;
    let mut objects = Vec::new();
    for_each_document(text, &mut |start, doc| {
        skipped += parse_document(source, index, start, doc, &mut objects)?;
        index += 1;
        objects.drain(..).try_for_each(&mut *each)
    })?;
    Ok(skipped)
}

/// Parse one document (number `index`, starting at line `start`) into `out`;
/// returns 1 if it is not a Kubernetes object.
fn parse_document(
    source: &str,
    index: usize,
    start: usize,
    doc: String,
    out: &mut Vec<SourceObject>,
) -> Result<usize> {
    let opts = crate::redact::yaml_options();
    let parsed: Lined = serde_saphyr::from_str_with_options(&doc, opts).map_err(|e| {
        let (l, msg) = crate::redact::yaml_error(&e, &doc);
        let line = l.map(|l| start + l - 1).unwrap_or(start);
        Error::usage(format!("{source}: document {index}, line {line}: invalid YAML: {msg}"))
            .fix(if doc.contains("{{") || doc.contains("{%") {
                "this looks like a template: audit the rendered output with `pake audit --env ENV`, or pass the rendered manifests"
            } else {
                "fix the YAML at that line (kubectl would refuse it too)"
            })
    })?;
    let first = doc
        .lines()
        .position(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|i| start + i)
        .unwrap_or(start);
    let mut lines = parsed.lines;
    lines.shift(start - 1);
    let before = out.len();
    let skipped = push_object(
        source,
        index,
        Some(first),
        Some((start, doc)),
        parsed.value,
        out,
    );
    // A `kind: List` is expanded into several objects: their lines are
    // under `items[i]`, which the single-object map does not address.
    if out.len() == before + 1 {
        out[before].lines = Some(lines);
    }
    Ok(skipped)
}

/// Add an object (expanding `kind: List`); returns 1 if the document is not a Kubernetes object.
fn push_object(
    source: &str,
    document: usize,
    line: Option<usize>,
    text: Option<(usize, String)>,
    value: Value,
    out: &mut Vec<SourceObject>,
) -> usize {
    if value.is_null() {
        return 0;
    }
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind.is_empty() {
        return 1;
    }
    if kind == "List" || (kind.ends_with("List") && value.get("items").is_some_and(Value::is_array))
    {
        if let Value::Object(mut m) = value
            && let Some(Value::Array(items)) = m.remove("items")
        {
            for item in items {
                push_object(source, document, line, None, item, out);
            }
        }
        return 0;
    }
    out.push(SourceObject {
        source: source.to_string(),
        document,
        line,
        object: value,
        text,
        lines: None,
    });
    0
}

/// The first field on the way to a workload's pod spec that is present but not
/// a mapping (`spec.template: 'x'`): such an object is malformed, not "allowed".
fn malformed_pod_path(obj: &Value) -> Option<String> {
    if !pss::has_pod_spec(obj) {
        return None;
    }
    let path: &[&str] = match obj.get("kind").and_then(Value::as_str)? {
        "Pod" => &["spec"],
        "PodTemplate" => &["template", "spec"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        _ => &["spec", "template", "spec"],
    };
    let mut cur = obj;
    for (i, p) in path.iter().enumerate() {
        match cur.get(*p) {
            None | Some(Value::Null) => return None,
            Some(v) if v.is_object() => cur = v,
            Some(_) => return Some(path[..=i].join(".")),
        }
    }
    None
}

/// A pod spec that does not decode: name the file, document and (re-parsing
/// the document as typed YAML) the line of the offending field.
fn decode_error(o: &SourceObject, e: &pss::DecodeError) -> Error {
    let rel = o
        .text
        .as_ref()
        .and_then(|(start, t)| typed_error_line(&o.object, t).map(|l| (*start, l, t)));
    let line = rel.map(|(start, l, _)| start + l - 1).or(o.line);
    let at = match line {
        Some(l) => format!("{}: document {}, line {l}", o.source, o.document),
        None => format!("{}: document {}", o.source, o.document),
    };
    // The decoder quotes the value it refused: not when its line may hold a secret.
    let cause = match rel {
        Some((_, l, t)) => {
            let m = crate::redact::message_for_line(&e.source.to_string(), t, Some(l));
            match crate::redact::field_at(t, l) {
                Some(f) => format!("field `{f}`: {m}"),
                None => m,
            }
        }
        None => crate::redact::redact_quoted(&e.source.to_string()),
    };
    Error::usage(format!("{at}: {} is not a valid pod spec: {cause}", e.path))
        .on(guide::object_ref(&o.object))
        .fix("fix the field's type (the API server would reject the object too)")
}

/// Re-parse a document into the typed pod shape to find the line of a type error.
fn typed_error_line(obj: &Value, text: &str) -> Option<usize> {
    use serde::Deserialize;
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Pod {
        #[serde(default)]
        metadata: Option<pss::PodMeta>,
        #[serde(default)]
        spec: Option<pss::PodSpec>,
    }
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct WithTemplate {
        #[serde(default)]
        template: Option<Pod>,
    }
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Workload {
        #[serde(default)]
        spec: Option<WithTemplate>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct CronSpec {
        #[serde(default)]
        job_template: Option<Workload>,
    }
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Cron {
        #[serde(default)]
        spec: Option<CronSpec>,
    }
    let opts = || serde_saphyr::options! { with_snippet: false };
    let err = match obj.get("kind").and_then(Value::as_str)? {
        "Pod" => serde_saphyr::from_str_with_options::<Pod>(text, opts()).err(),
        "PodTemplate" => serde_saphyr::from_str_with_options::<WithTemplate>(text, opts()).err(),
        "CronJob" => serde_saphyr::from_str_with_options::<Cron>(text, opts()).err(),
        _ => serde_saphyr::from_str_with_options::<Workload>(text, opts()).err(),
    }?;
    err.location().map(|l| l.line() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splits_documents_keeping_lines() {
        let t = "# comment\n---\na: 1\n---\n---\nb: 2\n...\n--- {c: 3}\n";
        let d = split_documents(t);
        let starts: Vec<usize> = d.iter().map(|x| x.0).collect();
        assert_eq!(starts, vec![2, 4, 5, 8]);
        assert!(d[1].1.trim().is_empty());
        let v: Vec<Value> = d
            .iter()
            .map(|(_, t)| serde_saphyr::from_str::<Value>(t).unwrap())
            .collect();
        assert_eq!(
            v,
            vec![
                json!({"a": 1}),
                Value::Null,
                json!({"b": 2}),
                json!({"c": 3})
            ]
        );
        let d = split_documents("a: 1\n---\nb: 2\n");
        assert_eq!(d.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2]);
        let e = serde_saphyr::from_str::<Value>(&d[1].1.replace("b: 2", "b: [")).unwrap_err();
        assert_eq!(d[1].0 + e.location().unwrap().line() as usize - 1, 3);
    }

    #[test]
    fn invalid_yaml_names_file_document_and_line() {
        let mut out = Vec::new();
        let e = parse_yaml_file("m.yaml", "a: 1\n---\nkind: Pod\nspec: [\n", &mut out).unwrap_err();
        assert_eq!(e.kind, crate::ExitCode::Usage);
        assert!(
            e.message.starts_with("m.yaml: document 1, line "),
            "{}",
            e.message
        );
    }

    #[test]
    fn bad_pod_field_type_names_the_line() {
        let t = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n        securityContext:\n          privileged: \"yes please\"\n";
        let mut out = Vec::new();
        parse_yaml_file("d.yaml", t, &mut out).unwrap();
        let e = audit_source_objects(&out, &AuditOptions::default(), Vec::new()).unwrap_err();
        assert!(
            e.message.starts_with(
                "d.yaml: document 0, line 11: spec.template.spec is not a valid pod spec"
            ),
            "{}",
            e.message
        );
    }

    /// A mid-size input where every cross-object check has something to
    /// compare: namespaces with and without default-deny policies (declared
    /// after the workloads), PDBs that block drains or select nothing, HPAs
    /// against them, ServiceAccounts that mount tokens, a `List`, documents
    /// that are not objects.
    fn mixed_manifests(dir: &Path, files: usize, per_file: usize) {
        for f in 0..files {
            let mut t = String::from("# generated\n");
            for i in 0..per_file {
                let n = f * per_file + i;
                let ns = ["shop", "blog", "ops"][n % 3];
                let app = format!("app-{}", n % 17);
                let doc = match n % 11 {
                    0 => format!(
                        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p{n}\n  namespace: {ns}\n  labels: {{app: {app}}}\nspec:\n  serviceAccountName: sa-{}\n  containers:\n  - name: a\n    image: nginx\n    securityContext: {{privileged: {}}}\n",
                        n % 5,
                        n.is_multiple_of(2)
                    ),
                    1 | 2 => format!(
                        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {app}\n  namespace: {ns}\nspec:\n  replicas: {}\n  selector: {{matchLabels: {{app: {app}}}}}\n  template:\n    metadata:\n      labels: {{app: {app}}}\n    spec:\n      automountServiceAccountToken: {}\n      containers:\n      - name: web\n        image: registry.example.com/web:1.{n}\n        env:\n        - name: API_TOKEN\n          value: t0k{n}\n",
                        1 + n % 3,
                        n.is_multiple_of(4)
                    ),
                    3 => format!(
                        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: pdb{n}\n  namespace: {ns}\nspec:\n  minAvailable: {}\n  selector: {{matchLabels: {{app: {app}}}}}\n",
                        n % 4
                    ),
                    4 => format!(
                        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: h{n}\n  namespace: {ns}\nspec:\n  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {app}}}\n  minReplicas: {}\n  maxReplicas: 9\n",
                        1 + n % 3
                    ),
                    5 => format!(
                        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa-{}\n  namespace: {ns}\nautomountServiceAccountToken: {}\n",
                        n % 5,
                        n.is_multiple_of(3)
                    ),
                    6 if ns != "ops" && n > files * per_file / 2 => format!(
                        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: deny{n}\n  namespace: {ns}\nspec:\n  podSelector: {{}}\n  policyTypes: [{}]\n",
                        if ns == "shop" {
                            "Ingress, Egress"
                        } else {
                            "Ingress"
                        }
                    ),
                    7 => format!(
                        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {{name: s{n}, namespace: {ns}}}\n  spec: {{type: NodePort, ports: [{{port: 80}}]}}\n- apiVersion: apps/v1\n  kind: StatefulSet\n  metadata: {{name: st{n}, namespace: {ns}}}\n  spec:\n    replicas: 1\n    template:\n      metadata: {{labels: {{app: {app}}}}}\n      spec:\n        containers: [{{name: db, image: postgres}}]\n"
                    ),
                    8 => "values: {not: an object}\n".to_string(),
                    _ => format!(
                        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{n}\n  namespace: {ns}\n  annotations: {{weight: 0.{n}1}}\ndata:\n  LOG_LEVEL: info\n  DB_PASSWORD: hunter{n}\n"
                    ),
                };
                t.push_str("---\n");
                t.push_str(&doc);
            }
            std::fs::write(dir.join(format!("m{f:02}.yaml")), t).unwrap();
        }
    }

    /// The reference: every file parsed, every object checked at once.
    fn whole_audit(paths: &[PathBuf], opts: &AuditOptions) -> AuditReport {
        let mut walk = Walk::default();
        for p in paths {
            walk.collect(p, true, &mut Vec::new()).unwrap();
        }
        let mut objects = Vec::new();
        let mut dockerfiles = Vec::new();
        let mut skipped = 0;
        for f in &walk.files {
            let t = std::fs::read_to_string(f).unwrap();
            if is_dockerfile(f) {
                dockerfiles.push(dockerfile_result(f, &t));
            } else {
                skipped += parse_yaml_file(&input::show_path(f), &t, &mut objects).unwrap();
            }
        }
        let mut r = audit_source_objects(&objects, opts, Vec::new()).unwrap();
        r.results.extend(dockerfiles);
        r.summary.files = walk.files.len();
        r.summary.skipped_documents = skipped;
        r.notes = walk.notes;
        finish(r, opts)
    }

    #[test]
    fn streamed_audit_matches_whole_audit() {
        let d = tempfile::tempdir().unwrap();
        mixed_manifests(d.path(), 12, 60);
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audit");
        let paths = vec![
            d.path().to_path_buf(),
            fixtures.join("good"),
            fixtures.join("bad"),
            fixtures.join("depth"),
        ];
        let mut opts = AuditOptions {
            protected: true,
            ..AuditOptions::default()
        };
        opts.overrides.insert(
            guide::RESOURCES.into(),
            CheckOverride {
                enabled: false,
                severity: None,
                reason: "r".into(),
            },
        );
        let whole = whole_audit(&paths, &opts);
        assert!(whole.results.len() > 700, "{}", whole.results.len());
        let ids: std::collections::BTreeSet<&str> = whole
            .results
            .iter()
            .flat_map(|r| r.findings.iter().map(|f| f.id.as_str()))
            .collect();
        for id in [
            guide::NETPOL_DEFAULT_DENY,
            guide::PDB,
            guide::SA_AUTOMOUNT,
            depth::PDB_BLOCKS_DRAIN,
            depth::HPA_PDB,
        ] {
            assert!(ids.contains(id), "the input exercises {id}: {ids:?}");
        }
        let want = serde_json::to_value(&whole).unwrap();
        // All at once, and in chunks of one object and of a few.
        for chunk in [usize::MAX, 7, 1, 50] {
            let how = Streaming {
                chunk,
                chunk_grows: false,
            };
            let mut results = Vec::new();
            let mut r = audit_paths_with(&paths, &opts, how, &mut |r| {
                results.push(r);
                Ok(())
            })
            .unwrap();
            r.results = results;
            let got = serde_json::to_value(&r).unwrap();
            for (i, (g, w)) in got["results"]
                .as_array()
                .unwrap()
                .iter()
                .zip(want["results"].as_array().unwrap())
                .enumerate()
            {
                assert_eq!(g, w, "{how:?}: result {i}");
            }
            assert_eq!(got, want, "{how:?}");
        }
    }

    #[test]
    fn context_kinds_cover_what_the_checks_look_up() {
        // Every object of the fixtures, checked at once and one at a time with
        // only the context parts of the others: the same findings.
        let d = tempfile::tempdir().unwrap();
        mixed_manifests(d.path(), 2, 120);
        let mut objects = Vec::new();
        for f in 0..2 {
            let p = d.path().join(format!("m{f:02}.yaml"));
            parse_yaml_file("m", &std::fs::read_to_string(p).unwrap(), &mut objects).unwrap();
        }
        let values: Vec<&Value> = objects.iter().map(|o| &o.object).collect();
        let opts = depth::DepthOptions { protected: true };
        let key = |f: &Finding| format!("{} {} {:?}", f.id, f.message, f.field);
        let mut whole: Vec<Vec<String>> = vec![Vec::new(); values.len()];
        for (i, f) in guide::check_objects_in(&values, 0..values.len())
            .into_iter()
            .chain(depth::check_objects_in(&values, 0..values.len(), opts))
        {
            whole[i].push(key(&f));
        }
        let parts: Vec<Option<Value>> = values.iter().map(|v| context_part(v)).collect();
        for (i, v) in values.iter().enumerate() {
            let mut one: Vec<&Value> = Vec::new();
            for (j, p) in parts.iter().enumerate() {
                if j == i {
                    one.push(v);
                } else if let Some(p) = p {
                    one.push(p);
                }
            }
            let at = one.iter().position(|o| std::ptr::eq(*o, *v)).unwrap();
            let got: Vec<String> = guide::check_objects_in(&one, at..at + 1)
                .into_iter()
                .chain(depth::check_objects_in(&one, at..at + 1, opts))
                .map(|(_, f)| key(&f))
                .collect();
            assert_eq!(got, whole[i], "object {i}: {}", guide::object_ref(v));
        }
    }

    #[test]
    fn overrides_suppress_and_reseverity() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x"}]}});
        let mut opts = AuditOptions::default();
        let report = audit_objects(&[("p.yaml".into(), 0, pod.clone())], &opts).unwrap();
        assert!(!report.summary.passed);
        assert_eq!(report.summary.pods_denied, 1);
        let ov = |enabled, severity: Option<&str>| CheckOverride {
            enabled,
            severity: severity.map(str::to_string),
            reason: "because".into(),
        };
        for id in pss::check_ids(Level::Restricted, Version::Latest) {
            opts.overrides.insert(id.to_string(), ov(false, None));
        }
        opts.overrides
            .insert(guide::NETPOL_DEFAULT_DENY.into(), ov(false, None));
        opts.overrides
            .insert(guide::RESOURCES.into(), ov(true, Some("high")));
        opts.overrides.insert("GUIDE-TYPO".into(), ov(false, None));
        let r = audit_objects(&[("p.yaml".into(), 0, pod)], &opts).unwrap();
        let pss = r.results[0].pss.as_ref().unwrap();
        assert!(
            !pss.allowed,
            "the admission verdict is not changed by overrides"
        );
        assert!(pss.violations.iter().all(|v| v.suppressed.is_some()));
        let res = r.results[0]
            .findings
            .iter()
            .find(|f| f.id == guide::RESOURCES)
            .unwrap();
        assert_eq!(res.severity, Severity::High);
        assert_eq!(res.overridden.as_ref().unwrap().from, Severity::Medium);
        assert!(
            !r.summary.passed,
            "the re-severitied finding fails the audit"
        );
        assert!(
            r.suppressed
                .iter()
                .any(|s| s.id == guide::NETPOL_DEFAULT_DENY && s.reason == "because")
        );
        assert!(
            r.overrides
                .iter()
                .any(|o| o.id == "GUIDE-TYPO" && o.unknown && o.applied == 0)
        );
    }

    const LINED: &str = "# a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  LOG_LEVEL: info\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n        env:\n        - name: LOG_LEVEL\n          value: info\n        - name: API_TOKEN\n          value: hunter22\n        securityContext:\n          privileged: true\n";

    #[test]
    fn findings_and_violations_point_at_the_offending_field() {
        let mut out = Vec::new();
        parse_yaml_file("m.yaml", LINED, &mut out).unwrap();
        let r = audit_source_objects(&out, &AuditOptions::default(), Vec::new()).unwrap();
        let d = &r.results[1];
        assert_eq!(d.line, Some(9), "the object still starts at apiVersion");
        let line = |id: &str| d.findings.iter().find(|f| f.id == id).and_then(|f| f.line);
        assert_eq!(
            line(guide::SECRET_IN_MANIFEST),
            Some(26),
            "the value: line of API_TOKEN"
        );
        assert_eq!(
            line(guide::READONLY_ROOTFS),
            Some(27),
            "the container's securityContext"
        );
        assert_eq!(line(guide::RESOURCES), Some(20), "the container");
        assert_eq!(
            line(guide::NETPOL_DEFAULT_DENY),
            Some(11),
            "metadata (the namespace is left to apply time)"
        );
        let f = d
            .findings
            .iter()
            .find(|f| f.id == guide::SECRET_IN_MANIFEST)
            .unwrap();
        assert_eq!(
            f.field.as_deref(),
            Some("spec.template.spec.containers[0].env[1].value")
        );
        let v = &d.pss.as_ref().unwrap().violations;
        let priv_line = v.iter().find(|v| v.check == "privileged").unwrap().line;
        assert_eq!(priv_line, Some(28));
        let sarif = crate::report::sarif::audit(&finish(r.clone(), &AuditOptions::default()));
        let results = sarif["runs"][0]["results"].as_array().unwrap();
        let at = |rule: &str| {
            results
                .iter()
                .find(|x| x["ruleId"] == rule)
                .map(|x| x["locations"][0]["physicalLocation"]["region"]["startLine"].clone())
        };
        assert_eq!(at("pss/privileged"), Some(json!(28)));
        assert_eq!(at(guide::SECRET_IN_MANIFEST), Some(json!(26)));
        assert!(!sarif.to_string().contains("hunter22"));
    }

    #[test]
    fn a_workload_that_cannot_be_evaluated_fails_the_audit() {
        let t = "apiVersion: v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: x:1\n        securityContext: {privileged: true}\n";
        let mut out = Vec::new();
        parse_yaml_file("d.yaml", t, &mut out).unwrap();
        let opts = AuditOptions {
            fail_on: Severity::Critical,
            ..AuditOptions::default()
        };
        let r = finish(
            audit_source_objects(&out, &opts, Vec::new()).unwrap(),
            &opts,
        );
        assert!(r.results[0].pss.is_none());
        let f = &r.results[0].findings[0];
        assert_eq!((f.id.as_str(), f.line), (depth::NOT_EVALUATED, Some(1)));
        assert_eq!(r.summary.not_evaluated, 1);
        assert!(
            !r.summary.passed,
            "not evaluated fails even with --fail-on critical"
        );
        // Overridable with a reason, like every check.
        let mut opts = opts;
        opts.overrides.insert(
            depth::NOT_EVALUATED.into(),
            CheckOverride {
                enabled: false,
                severity: None,
                reason: "a CRD we evaluate elsewhere".into(),
            },
        );
        let r = finish(
            audit_source_objects(&out, &opts, Vec::new()).unwrap(),
            &opts,
        );
        assert!(r.summary.passed);
        assert!(!r.overrides[0].unknown);
    }
}
