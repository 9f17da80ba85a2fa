//! `pake rotate-secret`: the guide's "Secret Rotation" (a new `openssl rand
//! -base64 32` value, then `kubectl rollout restart`) as one verified step.
//!
//! Order: read the Secret and find every Deployment, StatefulSet and DaemonSet
//! whose pods use the rotated key; take the deploy lock; write the new value
//! (the previous one stays in memory only); stamp each workload's pod template
//! with the restart time and a hash of the Secret's new content; wait for each
//! rollout; prove that every Ready pod carries that hash. If anything fails,
//! the previous value is written back and the same workloads are restarted and
//! verified again with it, so the app never stays half on a value that broke it.
//!
//! Field managers, and why two:
//! - The Secret is written with server-side apply by `pake` (the deploy's
//!   manager) when `pake` already owns the key, re-applying everything `pake`
//!   owns on it (see [`extract_owned`]) so nothing it manages is dropped; the
//!   next `pake deploy` then applies to a field it still owns, without a
//!   conflict (whether it keeps the rotated value is decided in
//!   `steps::secrets`, by the rotation record this step writes). A key that
//!   `pake` does not manage is written by `pake-rotate`.
//! - Pod template annotations are applied by `pake-rotate` ([`ROTATE_MANAGER`]).
//!   `pake deploy` applies Deployments as `pake` without these annotations; were
//!   they written as `pake`, the next deploy would remove them and restart
//!   every pod a second time.
//!
//! Values never leave memory except inside API request bodies: errors from
//! Secret writes are scrubbed of them, reports and history carry keyed
//! fingerprints (HMAC-SHA256, `history::fingerprint_key`) only.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ::kube::api::{Api, ListParams, Patch, PatchParams};
use ::kube::core::Selector;
use base64::Engine;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::Resolved;
use crate::error::{Error, ExitCode, Result};
use crate::kube::Cluster;
use crate::kube::apply::FIELD_MANAGER;
use crate::output::Ui;
use crate::secret::{REDACTED, SecretValue};
use crate::workflow::history::{self, Revision};
use crate::workflow::wait::{self, Workload};
use crate::workflow::{executor::ErrorReport, release};

/// History action and status of a successful rotation.
pub const ROTATION: &str = "rotation";
/// Field manager of the pod template annotations (and of Secret keys the deploy does not manage).
pub const ROTATE_MANAGER: &str = "pake-rotate";
/// What `kubectl rollout restart` stamps; kept so kubectl and pake restarts look alike.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// Smallest `--length` accepted: below 16 random bytes a password is guessable offline.
pub const MIN_LENGTH: usize = 16;
pub const MAX_LENGTH: usize = 4096;
/// Attempts for a write that meets HTTP 409 (someone else changed the object).
const CONFLICT_ATTEMPTS: u32 = 5;

// ---------------------------------------------------------------------------
// Pure parts: references, hashes, annotation names, owned-field extraction.

/// How a pod spec refers to the Secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Style {
    /// `env[].valueFrom.secretKeyRef`: one key.
    SecretKeyRef,
    /// `envFrom[].secretRef`: every key.
    EnvFrom,
    /// `volumes[].secret`: every key, or the keys in `items`.
    Volume,
    /// `volumes[].projected.sources[].secret`: every key, or the keys in `items`.
    Projected,
}

/// One reference from a pod spec to the Secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    pub style: Style,
    /// The container (or init container) for env/envFrom; None for volumes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub init_container: bool,
    /// The env var, envFrom prefix or volume name.
    pub name: String,
    /// The keys it reads; None means every key of the Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<String>>,
}

impl Reference {
    pub fn uses_key(&self, key: &str) -> bool {
        self.keys
            .as_ref()
            .is_none_or(|ks| ks.iter().any(|k| k == key))
    }

    /// Human form, e.g. `env DB_PASSWORD (container app)`.
    pub fn describe(&self) -> String {
        let place = match (&self.container, self.init_container) {
            (Some(c), true) => format!(" (init container {c})"),
            (Some(c), false) => format!(" (container {c})"),
            _ => String::new(),
        };
        let keys = match &self.keys {
            Some(k) if self.style != Style::SecretKeyRef => format!(" items {}", k.join(",")),
            _ => String::new(),
        };
        match self.style {
            Style::SecretKeyRef => format!("env {}{place}", self.name),
            Style::EnvFrom if self.name.is_empty() => format!("envFrom{place}"),
            Style::EnvFrom => format!("envFrom prefix {}{place}", self.name),
            Style::Volume => format!("volume {}{keys}", self.name),
            Style::Projected => format!("projected volume {}{keys}", self.name),
        }
    }
}

/// Every reference of `spec` to Secret `secret`, in containers and init
/// containers (env, envFrom) and volumes (secret, projected).
pub fn pod_spec_references(spec: &PodSpec, secret: &str) -> Vec<Reference> {
    let mut out = Vec::new();
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| (c, true))
        .chain(spec.containers.iter().map(|c| (c, false)));
    for (c, init) in containers {
        for e in c.env.iter().flatten() {
            if let Some(r) = e
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
                && r.name == secret
            {
                out.push(Reference {
                    style: Style::SecretKeyRef,
                    container: Some(c.name.clone()),
                    init_container: init,
                    name: e.name.clone(),
                    keys: Some(vec![r.key.clone()]),
                });
            }
        }
        for e in c.env_from.iter().flatten() {
            if e.secret_ref.as_ref().is_some_and(|r| r.name == secret) {
                out.push(Reference {
                    style: Style::EnvFrom,
                    container: Some(c.name.clone()),
                    init_container: init,
                    name: e.prefix.clone().unwrap_or_default(),
                    keys: None,
                });
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(s) = &v.secret
            && s.secret_name.as_deref() == Some(secret)
        {
            out.push(Reference {
                style: Style::Volume,
                container: None,
                init_container: false,
                name: v.name.clone(),
                keys: s
                    .items
                    .as_ref()
                    .map(|items| items.iter().map(|i| i.key.clone()).collect()),
            });
        }
        if let Some(p) = &v.projected {
            for s in p.sources.iter().flatten().filter_map(|s| s.secret.as_ref()) {
                if s.name == secret {
                    out.push(Reference {
                        style: Style::Projected,
                        container: None,
                        init_container: false,
                        name: v.name.clone(),
                        keys: s
                            .items
                            .as_ref()
                            .map(|items| items.iter().map(|i| i.key.clone()).collect()),
                    });
                }
            }
        }
    }
    out
}

/// Fingerprint of a Secret's whole content (keys and values, length-prefixed
/// so no two different contents collide by concatenation), keyed with the
/// namespace's fingerprint key (see `SecretValue::fingerprint`) so that pod
/// annotations reveal nothing about guessable values. This is what pods are
/// stamped with: two pods with the same stamp started with the same Secret.
pub fn content_hash(data: &BTreeMap<String, SecretValue>, fkey: &SecretValue) -> String {
    let mut buf = Vec::new();
    for (k, v) in data {
        buf.extend_from_slice(&(k.len() as u64).to_be_bytes());
        buf.extend_from_slice(k.as_bytes());
        buf.extend_from_slice(&(v.len() as u64).to_be_bytes());
        buf.extend_from_slice(v.expose());
    }
    let all = SecretValue::from_bytes(buf);
    all.fingerprint(fkey)
}

/// The pod template annotation carrying the content hash of Secret `secret`:
/// `pake.dev/secret-<name>-hash`. An annotation name is at most 63 characters;
/// longer Secret names are shortened and disambiguated by a hash of the name.
pub fn hash_annotation(secret: &str) -> String {
    let name = format!("secret-{secret}-hash");
    if name.len() <= 63 {
        return format!("pake.dev/{name}");
    }
    let digest = hex::encode(Sha256::digest(secret.as_bytes()));
    let mut head: String = secret.chars().take(40).collect();
    while head.ends_with(['.', '-', '_']) {
        head.pop();
    }
    format!("pake.dev/secret-{head}-{}-hash", &digest[..8])
}

/// The fields of `live` that `manager` owns through server-side apply
/// (`operation: Apply`), as an apply body, like client-go's `Extract*`
/// functions. Re-applying this body with one field changed changes only that
/// field: a smaller body would make the server delete whatever the manager
/// owned but left out. None if the manager has applied nothing to `live`.
pub fn extract_owned(live: &Value, manager: &str) -> Option<Value> {
    let entry = live["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|m| {
            m["manager"] == manager && m["operation"] == "Apply" && m["subresource"].is_null()
        })?;
    let mut out = select_fields(live, &entry["fieldsV1"]);
    if !out.is_object() {
        out = Value::Object(Default::default());
    }
    out["apiVersion"] = live["apiVersion"].clone();
    out["kind"] = live["kind"].clone();
    out["metadata"]["name"] = live["metadata"]["name"].clone();
    out["metadata"]["namespace"] = live["metadata"]["namespace"].clone();
    Some(out)
}

/// The part of `value` named by a `fieldsV1` set. Map fields (`f:name`) are
/// followed; a leaf (`{}`), a set with only `.`, or list entries (`k:`, `v:`,
/// `i:`) take the whole value below it.
fn select_fields(value: &Value, fields: &Value) -> Value {
    let Some(set) = fields.as_object() else {
        return value.clone();
    };
    let named: Vec<(&str, &Value)> = set
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("f:").map(|n| (n, v)))
        .collect();
    let other = set.keys().any(|k| k != "." && !k.starts_with("f:"));
    match value {
        Value::Object(obj) if !named.is_empty() && !other => {
            let mut out = serde_json::Map::new();
            for (name, sub) in named {
                if let Some(v) = obj.get(name) {
                    out.insert(name.to_string(), select_fields(v, sub));
                }
            }
            Value::Object(out)
        }
        _ => value.clone(),
    }
}

/// Remove secret values (raw and base64) from a message before it can be shown.
pub fn scrub(message: &str, values: &[&SecretValue]) -> String {
    let mut m = message.to_string();
    for v in values {
        if v.is_empty() {
            continue;
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(v.expose());
        m = m.replace(&b64, REDACTED);
        if let Ok(s) = std::str::from_utf8(v.expose()) {
            m = m.replace(s, REDACTED);
        }
    }
    m
}

/// Decoded values of a typed Secret (`data` and, for safety, `stringData`).
pub fn secret_data(s: &Secret) -> BTreeMap<String, SecretValue> {
    let mut out: BTreeMap<String, SecretValue> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), SecretValue::from_bytes(v.0.clone())))
        .collect();
    for (k, v) in s.string_data.iter().flatten() {
        out.insert(k.clone(), SecretValue::from_bytes(v.as_bytes().to_vec()));
    }
    out
}

/// A workload that references the Secret.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub kind: Workload,
    pub name: String,
    #[serde(skip)]
    pub uid: String,
    #[serde(skip)]
    pub selector: LabelSelector,
    pub paused: bool,
    pub references: Vec<Reference>,
    /// Some reference reads the rotated key.
    pub uses_key: bool,
}

impl Target {
    pub fn describe(&self, ns: &str) -> String {
        format!("{} {ns}/{}", self.kind.kind(), self.name)
    }
}

fn target(
    kind: Workload,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    spec: Option<&PodSpec>,
    selector: &LabelSelector,
    paused: bool,
    secret: &str,
    key: &str,
) -> Option<Target> {
    let refs = pod_spec_references(spec?, secret);
    if refs.is_empty() {
        return None;
    }
    Some(Target {
        kind,
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        selector: selector.clone(),
        paused,
        uses_key: refs.iter().any(|r| r.uses_key(key)),
        references: refs,
    })
}

/// Every workload among the given ones that references `secret`, sorted by kind and name.
pub fn find_targets(
    deployments: &[Deployment],
    statefulsets: &[StatefulSet],
    daemonsets: &[DaemonSet],
    secret: &str,
    key: &str,
) -> Vec<Target> {
    let mut out = Vec::new();
    for d in deployments {
        if let Some(s) = &d.spec {
            out.extend(target(
                Workload::Deployment,
                &d.metadata,
                s.template.spec.as_ref(),
                &s.selector,
                s.paused == Some(true),
                secret,
                key,
            ));
        }
    }
    for d in statefulsets {
        if let Some(s) = &d.spec {
            out.extend(target(
                Workload::StatefulSet,
                &d.metadata,
                s.template.spec.as_ref(),
                &s.selector,
                false,
                secret,
                key,
            ));
        }
    }
    for d in daemonsets {
        if let Some(s) = &d.spec {
            out.extend(target(
                Workload::DaemonSet,
                &d.metadata,
                s.template.spec.as_ref(),
                &s.selector,
                false,
                secret,
                key,
            ));
        }
    }
    out.sort_by(|a, b| (a.kind.kind(), &a.name).cmp(&(b.kind.kind(), &b.name)));
    out
}

/// What the Ready pods of one workload carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodCheck {
    pub ready: usize,
    pub carrying: usize,
    /// Ready pods without the expected hash (names).
    pub stale: Vec<String>,
}

impl PodCheck {
    pub fn ok(&self) -> bool {
        self.stale.is_empty()
    }
}

/// Which Ready pods (owned by one of `owners`, not terminating) carry
/// `annotation: expected`.
pub fn check_pods(
    pods: &[Pod],
    owners: &BTreeSet<String>,
    annotation: &str,
    expected: &str,
) -> PodCheck {
    let mut c = PodCheck::default();
    for p in pods {
        let owned = p
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| owners.contains(&o.uid));
        let ready = p.metadata.deletion_timestamp.is_none() && crate::workflow::wait::pod_ready(p);
        if !owned || !ready {
            continue;
        }
        c.ready += 1;
        let carries = p
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(annotation))
            .is_some_and(|v| v == expected);
        if carries {
            c.carrying += 1;
        } else {
            c.stale
                .push(p.metadata.name.clone().unwrap_or_else(|| "?".into()));
        }
    }
    c.stale.sort();
    c
}

fn short(hash: &str) -> &str {
    let h = hash.strip_prefix("hmac-sha256:").unwrap_or(hash);
    &h[..h.len().min(12)]
}

// ---------------------------------------------------------------------------
// The run.

/// Where the new value comes from. Never a command-line literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewValue {
    /// `n` random bytes from the OS CSPRNG, base64 encoded.
    Random(usize),
    Env(String),
    File(std::path::PathBuf),
    Command(String),
}

impl NewValue {
    /// Where the value came from, safe to show and to record.
    pub fn describe(&self) -> String {
        match self {
            NewValue::Random(n) => format!("{n} random bytes from the OS CSPRNG, base64"),
            NewValue::Env(v) => format!("environment variable {v}"),
            NewValue::File(p) => format!("file {}", p.display()),
            // Not the command line itself: it may carry a token, and this
            // text goes to reports, CI logs and the release history.
            NewValue::Command(_) => "the output of the --from-command command".to_string(),
        }
    }

    pub fn resolve(&self) -> Result<SecretValue> {
        match self {
            NewValue::Random(n) if !(MIN_LENGTH..=MAX_LENGTH).contains(n) => Err(Error::usage(
                format!("--length {n} is out of range"),
            )
            .fix(format!(
                "use {MIN_LENGTH} to {MAX_LENGTH} bytes (the guide's `openssl rand -base64 32`: 32)"
            ))),
            NewValue::Random(n) => SecretValue::random_base64(*n),
            NewValue::Env(v) => SecretValue::from_env(v),
            NewValue::File(p) => SecretValue::from_file(p),
            NewValue::Command(c) => SecretValue::from_command(c),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub secret: String,
    pub key: String,
    pub source: NewValue,
    pub dry_run: bool,
    pub no_restart: bool,
    /// Upper bound of each rollout wait.
    pub timeout: Duration,
    pub wait_lock: bool,
    /// `--yes`: confirmation for protected environments.
    pub yes: bool,
}

/// What happened to one workload (serialized as `restarted`, `would-restart`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Restarted,
    WouldRestart,
    Paused,
    NotRestarted,
    Unaffected,
    Failed,
    Restored,
    RestoreFailed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Restarted => "restarted",
            Action::WouldRestart => "would-restart",
            Action::Paused => "paused",
            Action::NotRestarted => "not-restarted",
            Action::Unaffected => "unaffected",
            Action::Failed => "failed",
            Action::Restored => "restored",
            Action::RestoreFailed => "restore-failed",
        }
    }

    /// The workload ended in a failure.
    pub fn failed(self) -> bool {
        matches!(self, Action::Failed | Action::RestoreFailed)
    }

    /// The workload still runs the old value on purpose (paused, --no-restart, unaffected).
    pub fn left_alone(self) -> bool {
        matches!(
            self,
            Action::Paused | Action::NotRestarted | Action::Unaffected
        )
    }
}

/// One workload in the report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadReport {
    pub kind: Workload,
    pub name: String,
    pub references: Vec<Reference>,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub duration_ms: u128,
}

/// The result of a rotation (`-o json` prints it whole). Hashes only.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub ok: bool,
    pub action: String,
    pub app: String,
    pub env: String,
    pub namespace: String,
    pub secret: String,
    pub key: String,
    pub source: String,
    pub dry_run: bool,
    pub no_restart: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
    /// The pod template annotation pods are stamped with.
    pub annotation: String,
    /// Keyed fingerprint (HMAC-SHA256) of the key's value before and after.
    pub previous_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_hash: Option<String>,
    pub previous_content_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    pub workloads: Vec<WorkloadReport>,
    /// The previous value was written back after a failure.
    pub restored: bool,
    pub duration_ms: u128,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_error: Option<ErrorReport>,
}

impl Report {
    pub fn exit_code(&self) -> ExitCode {
        crate::workflow::release::exit_code(self.ok, self.error.as_ref())
    }
}

fn secret_probe(ns: &str, name: &str) -> Value {
    serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}})
}

/// Read the Secret; a missing Secret or key is a usage error (exit 2).
async fn read_secret(cluster: &Cluster, ns: &str, name: &str, key: &str) -> Result<Value> {
    let who = format!("Secret {ns}/{name}");
    let live = crate::kube::apply::get(cluster, &secret_probe(ns, name))
        .await?
        .ok_or_else(|| {
            Error::usage(format!("{who} not found; nothing was changed"))
                .on(who.clone())
                .fix(format!(
                    "check the name and the namespace (`kubectl get secrets -n {ns}`); pake deploy creates the Secrets listed in pake.yaml"
                ))
        })?;
    if live["data"].get(key).is_none() {
        let keys: Vec<&str> = live["data"]
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        return Err(
            Error::usage(format!("{who} has no key {key:?}; nothing was changed"))
                .on(who)
                .fix(if keys.is_empty() {
                    "the Secret has no data keys".to_string()
                } else {
                    format!("pass --key with one of: {}", keys.join(", "))
                }),
        );
    }
    Ok(live)
}

/// The Secret exists and has `key` (exit 2 otherwise; nothing is changed):
/// a fleet checks every cluster before the first one rotates.
pub async fn check_secret(cluster: &Cluster, ns: &str, name: &str, key: &str) -> Result<()> {
    read_secret(cluster, ns, name, key).await.map(drop)
}

fn typed_secret(live: &Value) -> Secret {
    serde_json::from_value(live.clone()).unwrap_or_default()
}

/// What a Secret write did.
struct Written {
    /// The key's value just before the write (memory only).
    previous: SecretValue,
    /// Content hash of the Secret just before the write.
    previous_content: String,
    content: String,
}

/// Write `value` into `key` of the Secret, keeping every other key, with
/// optimistic concurrency: the body carries the resourceVersion it was built
/// from, and a 409 (changed meanwhile) starts over from a fresh read.
/// `expect_current`: refuse if the key's value is no longer this (restore).
#[allow(clippy::too_many_arguments)]
async fn write_key(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    key: &str,
    value: &SecretValue,
    expect_current: Option<&SecretValue>,
    dry_run: bool,
    fkey: &SecretValue,
) -> Result<Written> {
    let who = format!("Secret {ns}/{name}");
    let api: Api<Secret> = Api::namespaced(cluster.client.clone(), ns);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let live = read_secret(cluster, ns, name, key).await?;
        let before = secret_data(&typed_secret(&live));
        let previous = before
            .get(key)
            .cloned()
            .expect("read_secret checked the key");
        if let Some(exp) = expect_current
            && previous != *exp
        {
            return Err(Error::failed(format!(
                "{who} key {key} was changed by someone else since the rotation; it was not overwritten"
            ))
            .on(who)
            .fix("find out who changed it (`kubectl get secret -o yaml` shows managedFields), then re-run pake rotate-secret"));
        }
        let owned_by_pake = live["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| {
                m["manager"] == FIELD_MANAGER
                    && m["operation"] == "Apply"
                    && m["fieldsV1"]["f:data"].get(format!("f:{key}")).is_some()
            });
        let (manager, mut body) = if owned_by_pake {
            (
                FIELD_MANAGER,
                extract_owned(&live, FIELD_MANAGER).expect("pake owns fields"),
            )
        } else {
            (ROTATE_MANAGER, secret_probe(ns, name))
        };
        body["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"].clone();
        body["data"][key] =
            Value::String(base64::engine::general_purpose::STANDARD.encode(value.expose()));
        let mut pp = PatchParams::apply(manager).force();
        pp.dry_run = dry_run;
        let res = api.patch(name, &pp, &Patch::Apply(&body)).await;
        drop(body);
        match res {
            Ok(s) => {
                let mut after = secret_data(&s);
                if dry_run {
                    // A dry run answers with what would be stored; be exact anyway.
                    after.insert(key.to_string(), value.clone());
                }
                return Ok(Written {
                    previous_content: content_hash(&before, fkey),
                    content: content_hash(&after, fkey),
                    previous,
                });
            }
            Err(::kube::Error::Api(s)) if s.code == 409 && attempt < CONFLICT_ATTEMPTS => {
                tracing::debug!("{who} changed meanwhile (409), retrying (attempt {attempt})");
                tokio::time::sleep(Duration::from_millis(100 * 2u64.pow(attempt))).await;
            }
            Err(::kube::Error::Api(mut s)) => {
                s.message = scrub(&s.message, &[value, &previous]);
                return Err(Error::from_kube(
                    format!("write key {key} of {who}"),
                    ::kube::Error::Api(s),
                )
                .on(who));
            }
            Err(e) => {
                let msg = scrub(&e.to_string(), &[value, &previous]);
                return Err(Error::cluster(format!(
                    "write key {key} of {who}: cannot reach the API server: {msg}"
                ))
                .on(who)
                .fix("check that the cluster is up and re-run; the Secret may or may not have changed, `pake history` shows the last recorded value hash"));
            }
        }
    }
}

fn workload_object(t: &Target, ns: &str) -> Value {
    let api_version = "apps/v1";
    serde_json::json!({"apiVersion": api_version, "kind": t.kind.kind(), "metadata": {"name": t.name, "namespace": ns}})
}

/// Stamp the pod template of `t` with `restartedAt` and the content hash
/// (server-side apply as [`ROTATE_MANAGER`], keeping the other annotations it
/// owns, e.g. the hash of another Secret). Retries 409.
async fn stamp(
    cluster: &Cluster,
    ns: &str,
    t: &Target,
    annotation: &str,
    hash: &str,
    restarted_at: &str,
    dry_run: bool,
) -> Result<()> {
    let who = t.describe(ns);
    let probe = workload_object(t, ns);
    let api = crate::kube::apply::api_for(cluster, &probe);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let live = crate::kube::apply::get(cluster, &probe)
            .await?
            .ok_or_else(|| Error::failed(format!("{who} disappeared")).on(who.clone()))?;
        let mut body = extract_owned(&live, ROTATE_MANAGER).unwrap_or_else(|| probe.clone());
        let annotations = &mut body["spec"]["template"]["metadata"]["annotations"];
        annotations[RESTARTED_AT] = Value::String(restarted_at.to_string());
        annotations[annotation] = Value::String(hash.to_string());
        let mut pp = PatchParams::apply(ROTATE_MANAGER).force();
        pp.dry_run = dry_run;
        match api.patch(&t.name, &pp, &Patch::Apply(&body)).await {
            Ok(_) => return Ok(()),
            Err(::kube::Error::Api(s)) if s.code == 409 && attempt < CONFLICT_ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(100 * 2u64.pow(attempt))).await;
            }
            Err(e) => {
                return Err(Error::from_kube(format!("restart {who}"), e).on(who));
            }
        }
    }
}

/// The pods of `t` that are Ready, and whether they carry `annotation: hash`.
async fn verify_pods(
    cluster: &Cluster,
    ns: &str,
    t: &Target,
    annotation: &str,
    hash: &str,
) -> Result<PodCheck> {
    let selector = Selector::try_from(t.selector.clone())
        .map_err(|e| Error::failed(format!("{} has an invalid selector: {e}", t.describe(ns))))?
        .to_string();
    let lp = ListParams::default().labels(&selector);
    let mut owners = BTreeSet::from([t.uid.clone()]);
    if t.kind == Workload::Deployment {
        let rs: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), ns);
        let list = rs
            .list(&lp)
            .await
            .map_err(|e| Error::from_kube(format!("list ReplicaSets of {}", t.describe(ns)), e))?;
        owners.extend(
            list.items
                .iter()
                .filter(|r| {
                    r.metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| o.uid == t.uid)
                })
                .filter_map(|r| r.metadata.uid.clone()),
        );
    }
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
    let list = pods
        .list(&lp)
        .await
        .map_err(|e| Error::from_kube(format!("list pods of {}", t.describe(ns)), e))?;
    Ok(check_pods(&list.items, &owners, annotation, hash))
}

/// Every Deployment, StatefulSet and DaemonSet in `ns` that references `secret`.
pub async fn discover(cluster: &Cluster, ns: &str, secret: &str, key: &str) -> Result<Vec<Target>> {
    let lp = ListParams::default();
    let c = &cluster.client;
    let ctx = |k: &str| format!("list {k}s in namespace {ns}");
    let (d, s, ds) = futures::try_join!(
        async {
            Api::<Deployment>::namespaced(c.clone(), ns)
                .list(&lp)
                .await
                .map_err(|e| Error::from_kube(ctx("Deployment"), e))
        },
        async {
            Api::<StatefulSet>::namespaced(c.clone(), ns)
                .list(&lp)
                .await
                .map_err(|e| Error::from_kube(ctx("StatefulSet"), e))
        },
        async {
            Api::<DaemonSet>::namespaced(c.clone(), ns)
                .list(&lp)
                .await
                .map_err(|e| Error::from_kube(ctx("DaemonSet"), e))
        },
    )?;
    Ok(find_targets(&d.items, &s.items, &ds.items, secret, key))
}

fn key_of(t: &Target) -> String {
    format!("{}/{}", t.kind.kind(), t.name)
}

/// The report line of `t`, created with `action` if it is not there yet.
fn entry<'a>(
    reports: &'a mut BTreeMap<String, WorkloadReport>,
    t: &Target,
    action: Action,
) -> &'a mut WorkloadReport {
    reports.entry(key_of(t)).or_insert_with(|| WorkloadReport {
        kind: t.kind,
        name: t.name.clone(),
        references: t.references.clone(),
        action,
        pods: None,
        message: None,
        duration_ms: 0,
    })
}

/// Set the action (and message) of `t`'s report line.
pub fn set(
    reports: &mut BTreeMap<String, WorkloadReport>,
    t: &Target,
    action: Action,
    message: Option<String>,
) {
    let r = entry(reports, t, action);
    r.action = action;
    r.message = message;
}

/// Mark what is not restarted (`uses` false: unaffected, with
/// `unaffected_why`; paused) and return the workloads to restart.
pub fn to_restart<'t>(
    reports: &mut BTreeMap<String, WorkloadReport>,
    targets: &'t [Target],
    ns: &str,
    uses: impl Fn(&Target) -> bool,
    unaffected_why: &str,
) -> Vec<&'t Target> {
    let mut out = Vec::new();
    for t in targets {
        if !uses(t) {
            set(reports, t, Action::Unaffected, Some(unaffected_why.into()));
        } else if t.paused {
            set(
                reports,
                t,
                Action::Paused,
                Some(format!(
                    "paused: not restarted, its pods still run the old value; resume it, then `kubectl rollout restart deployment/{} -n {ns}`",
                    t.name
                )),
            );
        } else {
            out.push(t);
        }
    }
    out
}

/// Print the rotation's header and every workload that references the Secret.
pub fn announce_targets(ui: &Ui, ns: &str, secret: &str, header: String, targets: &[Target]) {
    ui.line(header);
    for t in targets {
        let refs: Vec<String> = t.references.iter().map(Reference::describe).collect();
        ui.line(format!("  used by {}: {}", t.describe(ns), refs.join("; ")));
    }
    if targets.is_empty() {
        ui.line(format!(
            "  no Deployment, StatefulSet or DaemonSet in {ns} references {secret}"
        ));
    }
}

/// The restart-and-verify stage shared by every rotation: one cluster, one
/// namespace, one pod template annotation.
pub struct Restart<'a> {
    pub cluster: &'a Cluster,
    pub ui: &'a Ui,
    pub ns: &'a str,
    pub annotation: &'a str,
    pub timeout: Duration,
}

impl Restart<'_> {
    /// Restart `targets` with `hash`, wait for each rollout and verify its
    /// pods; each finished workload gets `done` as its action. Stops at the
    /// first failure; `stamped` collects what was restarted, so a restore
    /// knows what to restart again.
    pub async fn all(
        &self,
        targets: &[&Target],
        hash: &str,
        (label, done): (&str, Action),
        stamped: &mut Vec<String>,
        reports: &mut BTreeMap<String, WorkloadReport>,
    ) -> Result<()> {
        let restarted_at = history::now_rfc3339();
        // Stamp all first: the rollouts then run side by side, each within its
        // own maxUnavailable/maxSurge and PodDisruptionBudget.
        for t in targets {
            let (c, ns, a) = (self.cluster, self.ns, self.annotation);
            stamp(c, ns, t, a, hash, &restarted_at, false).await?;
            stamped.push(key_of(t));
        }
        for t in targets {
            self.one(t, hash, (label, done), reports).await?;
        }
        Ok(())
    }

    /// `all`, stopped by a signal (SIGINT, SIGTERM, SIGHUP).
    pub async fn all_until_signal(
        &self,
        targets: &[&Target],
        hash: &str,
        stamped: &mut Vec<String>,
        reports: &mut BTreeMap<String, WorkloadReport>,
    ) -> Result<()> {
        let work = self.all(
            targets,
            hash,
            ("restart", Action::Restarted),
            stamped,
            reports,
        );
        release::until_signal(work, "").await
    }

    /// Wait for the rollout of one stamped workload and prove its pods.
    async fn one(
        &self,
        t: &Target,
        hash: &str,
        (label, done): (&str, Action),
        reports: &mut BTreeMap<String, WorkloadReport>,
    ) -> Result<()> {
        let (cluster, ns, annotation) = (self.cluster, self.ns, self.annotation);
        let who = t.describe(ns);
        let started = Instant::now();
        let step = self.ui.step(&format!("{label} {who}"));
        let waited = wait::rollout(&cluster.client, t.kind, ns, &t.name, self.timeout, &|m| {
            step.message(m)
        })
        .await;
        let checked = match waited {
            Ok(()) => verify_pods(cluster, ns, t, annotation, hash).await,
            Err(e) => Err(e),
        };
        let r = entry(reports, t, Action::Failed);
        r.duration_ms = started.elapsed().as_millis();
        let check = match checked {
            Ok(c) => c,
            Err(e) => {
                step.fail("rollout failed (details below)");
                r.action = Action::Failed;
                r.message = Some(e.message.clone());
                return Err(e);
            }
        };
        r.pods = Some(check.clone());
        if check.ok() {
            r.action = done;
            step.done(&format!(
                "{}/{} ready pods carry {annotation}={}",
                check.carrying,
                check.ready,
                short(hash)
            ));
            return Ok(());
        }
        step.fail(&format!(
            "{} of {} ready pods do not carry {annotation}={}",
            check.stale.len(),
            check.ready,
            short(hash)
        ));
        let e = Error::failed(format!(
            "{who}: ready pods without the Secret hash {} after the rollout: {}",
            short(hash),
            check.stale.join(", ")
        ))
        .on(who)
        .fix("another controller or a manual change may be creating these pods; `kubectl get pods -o yaml` shows their ownerReferences and annotations");
        r.action = Action::Failed;
        r.message = Some(e.message.clone());
        Err(e)
    }
}

// ---------------------------------------------------------------------------
// The transaction every rotation shares.

/// What gates a rotation's change: `--yes`, `--wait-lock`, `--timeout`.
#[derive(Debug, Clone, Copy)]
pub struct Gate {
    pub yes: bool,
    pub wait_lock: bool,
    pub timeout: Duration,
}

/// A rotation inside the release transaction (`workflow::release`): confirmed,
/// locked, its pending record written; `close` records the outcome and
/// releases the Lease.
pub struct Transaction<'a> {
    tx: release::Release<'a>,
    guard: crate::workflow::lock::LockGuard,
    pub revision: u32,
}

impl<'a> Transaction<'a> {
    /// Confirm (protected environments), take the Lease shared with deploy and
    /// switch, settle what a dead run left and record this rotation as
    /// pending with both fingerprints, before any write (write-ahead).
    pub async fn begin(
        tx: release::Release<'a>,
        gate: Gate,
        summary: &str,
        (secret, key): (&str, &str),
        (previous, new): (&str, &str),
    ) -> Result<Transaction<'a>> {
        tx.confirm(gate.yes, "secret rotation", summary)?;
        let guard = tx.lock(gate.wait_lock, Some(gate.timeout)).await?;
        let pending = crate::workflow::recovery::rotation_pending(
            tx.cluster,
            tx.ui,
            tx.resolved,
            guard.holder(),
            (secret, key),
            (previous, new),
        )
        .await;
        match pending {
            Ok(revision) => Ok(Transaction {
                tx,
                guard,
                revision,
            }),
            Err(e) => {
                let _ = guard.release().await;
                Err(e)
            }
        }
    }

    /// Release the Lease without a record (the change was never made).
    pub async fn abandon(self) {
        let _ = self.guard.release().await;
    }

    /// The final record of this rotation (`status`: rotation or failed).
    pub fn record(&self, secret_hashes: BTreeMap<String, String>) -> Revision {
        Revision {
            revision: self.revision,
            status: ROTATION.into(),
            action: ROTATION.into(),
            time: history::now_rfc3339(),
            user: history::current_user(),
            image: String::new(),
            message: String::new(),
            manifests: Vec::new(),
            hashes: BTreeMap::new(),
            secret_hashes,
            details: Value::Null,
        }
    }

    /// Write `rev` (a failed write fails an ok report), release the Lease,
    /// and stamp the report's duration.
    pub async fn close(self, rev: &Revision, report: &mut Report, started: Instant) {
        if let Err(e) = self.tx.record(rev).await {
            let ui = self.tx.ui;
            ui.line(format!(
                "{} could not record revision {}: {e}",
                ui.mark(false),
                self.revision
            ));
            if report.ok {
                report.ok = false;
                report.error = Some((&e).into());
            }
        }
        if let Err(e) = self.guard.release().await {
            tracing::warn!("could not release the lock: {e}");
        }
        report.duration_ms = started.elapsed().as_millis();
    }
}

/// How each workload ended, for the history record's details.
pub fn workload_details(workloads: &[WorkloadReport]) -> Vec<Value> {
    workloads
        .iter()
        .map(|w| serde_json::json!({"kind": w.kind.kind(), "name": w.name, "action": w.action}))
        .collect()
}

/// How many workloads were restarted with the new value.
pub fn restarted(reports: &BTreeMap<String, WorkloadReport>) -> usize {
    reports
        .values()
        .filter(|r| r.action == Action::Restarted)
        .count()
}

/// One rotation of one key: what every stage of `run` reads.
struct Rotation<'a> {
    cluster: &'a Cluster,
    resolved: &'a Resolved,
    ui: &'a Ui,
    opts: &'a Options,
    ns: &'a str,
    /// `secret/key`.
    id: String,
    who: String,
    annotation: String,
}

/// What a rotation knows before it changes anything. The new value lives
/// here, in memory only, until the run ends.
struct Plan {
    value: SecretValue,
    fkey: SecretValue,
    new_hash: String,
    previous_hash: String,
    previous_content: String,
    targets: Vec<Target>,
}

/// Rotate one key of one Secret and restart what uses it. Errors before any
/// change are returned as `Err` (exit 2 or 3); a failure after the change is
/// restored and reported with `ok: false` (exit 1).
pub async fn run(
    cluster: &Cluster,
    resolved: &Resolved,
    ui: &Ui,
    opts: &Options,
) -> Result<Report> {
    let value = opts.source.resolve()?;
    Ok(run_with(cluster, resolved, ui, opts, value).await?.0)
}

/// What a finished rotation leaves to undo it should a later cluster of a
/// fleet fail: the previous value (memory only) and what was restarted.
pub struct Undo {
    previous: SecretValue,
    value: SecretValue,
    fkey: SecretValue,
    new_hash: String,
    previous_hash: String,
    restarted: Vec<Target>,
}

/// [`run`] with the new value given (a fleet resolves it once for every
/// cluster); a successful, non-dry run also returns its [`Undo`].
pub async fn run_with(
    cluster: &Cluster,
    resolved: &Resolved,
    ui: &Ui,
    opts: &Options,
    value: SecretValue,
) -> Result<(Report, Option<Undo>)> {
    let started = Instant::now();
    let rot = Rotation::new(cluster, resolved, ui, opts);
    let plan = rot.preflight(value).await?;
    let mut report = rot.report(&plan);
    let mut reports: BTreeMap<String, WorkloadReport> = BTreeMap::new();
    let why = format!(
        "references {} but not key {}: not restarted",
        opts.secret, opts.key
    );
    let restart = to_restart(&mut reports, &plan.targets, rot.ns, |t| t.uses_key, &why);
    rot.announce(&plan);
    if opts.dry_run {
        rot.dry_run(&plan, &restart, &mut reports).await?;
        report.ok = true;
        report.workloads = reports.into_values().collect();
        report.duration_ms = started.elapsed().as_millis();
        return Ok((report, None));
    }
    let txn = rot.begin(&plan, &restart).await?;
    report.revision = Some(txn.revision);
    let written = match rot.write(&plan, &mut report).await {
        Ok(w) => w,
        Err(e) => {
            txn.abandon().await;
            return Err(e);
        }
    };
    let mut stamped = Vec::new();
    let outcome = rot
        .apply_to_pods(&plan, &written, &restart, &mut stamped, &mut reports)
        .await;
    let mut rev = txn.record(BTreeMap::from([(rot.id.clone(), plan.new_hash.clone())]));
    match outcome {
        Ok(()) => {
            report.ok = true;
            rev.message = rot.success_message(&reports);
        }
        Err(e) => {
            report.error = Some((&e).into());
            report.restored = true;
            let again: Vec<&Target> = restart
                .iter()
                .copied()
                .filter(|t| stamped.contains(&key_of(t)))
                .collect();
            let restored = rot.restore(&plan, &written, &again, &mut reports).await;
            rot.restore_outcome(restored, again.len(), &mut report);
            rot.failure_record(&e, &report, &mut rev);
        }
    }
    report.workloads = reports.into_values().collect();
    rev.details = rot.details(&report, &plan.new_hash);
    txn.close(&rev, &mut report, started).await;
    let undo = report.ok.then(|| Undo {
        previous: written.previous,
        previous_hash: report.previous_hash.clone(),
        new_hash: plan.new_hash.clone(),
        restarted: restart
            .iter()
            .filter(|t| stamped.contains(&key_of(t)))
            .map(|t| (*t).clone())
            .collect(),
        value: plan.value.clone(),
        fkey: plan.fkey.clone(),
    });
    Ok((report, undo))
}

/// Undo a finished rotation (a later cluster of its fleet failed): in its
/// own transaction (Lease, pending record), write the previous value back
/// only while the key still holds the rotated one, restart what the
/// rotation restarted and prove its pods; recorded as `rolled-back`.
pub async fn undo(
    cluster: &Cluster,
    resolved: &Resolved,
    ui: &Ui,
    opts: &Options,
    undo: Undo,
) -> Result<Report> {
    let started = Instant::now();
    let rot = Rotation::new(cluster, resolved, ui, opts);
    let plan = Plan {
        value: undo.value,
        fkey: undo.fkey,
        new_hash: undo.previous_hash.clone(),
        previous_hash: undo.new_hash.clone(),
        previous_content: String::new(),
        targets: undo.restarted,
    };
    let mut report = rot.report(&plan);
    report.restored = true;
    let gate = Gate {
        yes: true,
        wait_lock: true,
        timeout: opts.timeout,
    };
    let tx = release::Release::new(cluster, resolved, ui);
    let id = (opts.secret.as_str(), opts.key.as_str());
    let hashes = (undo.new_hash.as_str(), undo.previous_hash.as_str());
    let txn = Transaction::begin(tx, gate, "", id, hashes).await?;
    report.revision = Some(txn.revision);
    let written = Written {
        previous: undo.previous,
        previous_content: String::new(),
        content: String::new(),
    };
    let again: Vec<&Target> = plan.targets.iter().collect();
    let mut reports = BTreeMap::new();
    let restored = rot.restore(&plan, &written, &again, &mut reports).await;
    let ok = restored.is_ok();
    rot.restore_outcome(restored, again.len(), &mut report);
    report.ok = ok;
    report.error = report.restore_error.clone();
    let hash = if ok {
        &undo.previous_hash
    } else {
        &undo.new_hash
    };
    let mut rev = txn.record(BTreeMap::from([(rot.id.clone(), hash.clone())]));
    rev.status = if ok {
        crate::workflow::recovery::ROLLED_BACK
    } else {
        "failed"
    }
    .into();
    rev.message = format!(
        "rotation of {} undone: another cluster of the fleet failed; {}",
        rot.id,
        if ok {
            "previous value restored"
        } else {
            "restore FAILED"
        }
    );
    report.workloads = reports.into_values().collect();
    rev.details = rot.details(&report, &undo.previous_hash);
    txn.close(&rev, &mut report, started).await;
    Ok(report)
}

impl<'a> Rotation<'a> {
    fn new(cluster: &'a Cluster, resolved: &'a Resolved, ui: &'a Ui, opts: &'a Options) -> Self {
        let ns = resolved.namespace.as_str();
        Rotation {
            cluster,
            resolved,
            ui,
            opts,
            ns,
            id: format!("{}/{}", opts.secret, opts.key),
            who: format!("Secret {ns}/{}", opts.secret),
            annotation: hash_annotation(&opts.secret),
        }
    }

    /// Everything that can fail without changing anything: the new value,
    /// the Secret and its key, the fingerprint key, the workloads.
    async fn preflight(&self, value: SecretValue) -> Result<Plan> {
        let (cluster, ns, opts) = (self.cluster, self.ns, self.opts);
        let (name, key) = (opts.secret.as_str(), opts.key.as_str());
        let live = read_secret(cluster, ns, name, key).await?;
        let current = secret_data(&typed_secret(&live));
        drop(live);
        if current.get(key) == Some(&value) {
            return Err(Error::usage(format!(
                "the new value for {} is the value the Secret already has; nothing was changed",
                self.id
            ))
            .on(self.who.clone())
            .fix(format!(
                "update the source ({}) first, or rotate without --from-* for a random value",
                opts.source.describe()
            )));
        }
        // As read now; recomputed from what the write replaced, should another
        // run have changed the Secret while this one waited for the lock.
        let fkey = history::fingerprint_key(cluster, ns, opts.dry_run).await?;
        let targets = discover(cluster, ns, name, key).await?;
        Ok(Plan {
            new_hash: value.fingerprint(&fkey),
            previous_hash: current[key].fingerprint(&fkey),
            previous_content: content_hash(&current, &fkey),
            value,
            fkey,
            targets,
        })
    }

    fn report(&self, plan: &Plan) -> Report {
        let (r, opts) = (self.resolved, self.opts);
        Report {
            ok: false,
            action: ROTATION.into(),
            app: r.app.clone(),
            env: r.env.clone(),
            namespace: self.ns.to_string(),
            secret: opts.secret.clone(),
            key: opts.key.clone(),
            source: opts.source.describe(),
            dry_run: opts.dry_run,
            no_restart: opts.no_restart,
            revision: None,
            annotation: self.annotation.clone(),
            previous_hash: plan.previous_hash.clone(),
            new_hash: None,
            previous_content_hash: plan.previous_content.clone(),
            content_hash: None,
            workloads: Vec::new(),
            restored: false,
            duration_ms: 0,
            error: None,
            restore_error: None,
        }
    }

    fn announce(&self, plan: &Plan) {
        let (r, opts) = (self.resolved, self.opts);
        let header = format!(
            "rotate {} key {} ({} in {}), new value: {}",
            self.who,
            opts.key,
            r.app,
            r.env,
            opts.source.describe()
        );
        announce_targets(self.ui, self.ns, &opts.secret, header, &plan.targets);
    }

    fn restarter(&self) -> Restart<'_> {
        Restart {
            cluster: self.cluster,
            ui: self.ui,
            ns: self.ns,
            annotation: &self.annotation,
            timeout: self.opts.timeout,
        }
    }

    /// Server-side dry runs: the API server checks permissions, admission
    /// and validation of every write; nothing is persisted.
    async fn dry_run(
        &self,
        plan: &Plan,
        restart: &[&Target],
        reports: &mut BTreeMap<String, WorkloadReport>,
    ) -> Result<()> {
        let (cluster, ns, opts) = (self.cluster, self.ns, self.opts);
        let (name, key) = (opts.secret.as_str(), opts.key.as_str());
        let w = write_key(cluster, ns, name, key, &plan.value, None, true, &plan.fkey).await?;
        for t in restart {
            if opts.no_restart {
                set(
                    reports,
                    t,
                    Action::NotRestarted,
                    Some("--no-restart".into()),
                );
            } else {
                stamp(
                    cluster,
                    ns,
                    t,
                    &self.annotation,
                    &w.content,
                    "dry-run",
                    true,
                )
                .await?;
                set(reports, t, Action::WouldRestart, None);
            }
        }
        for r in reports.values() {
            self.ui.line(format!(
                "{} {} {ns}/{}{}",
                r.action.as_str().replace('-', " "),
                r.kind.kind(),
                r.name,
                r.message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ));
        }
        self.ui
            .line("dry run: the API server accepted every write; nothing was changed");
        Ok(())
    }

    /// Confirm, lock, record as pending (see `Transaction::begin`).
    async fn begin(&self, plan: &Plan, restart: &[&Target]) -> Result<Transaction<'a>> {
        let opts = self.opts;
        let restart_list = if restart.is_empty() || opts.no_restart {
            "nothing".to_string()
        } else {
            let names: Vec<String> = restart.iter().map(|t| t.describe(self.ns)).collect();
            names.join(", ")
        };
        let summary = format!(
            "rotate {} in namespace {}; restart {restart_list}",
            self.id, self.ns
        );
        let gate = Gate {
            yes: opts.yes,
            wait_lock: opts.wait_lock,
            timeout: opts.timeout,
        };
        let tx = release::Release::new(self.cluster, self.resolved, self.ui);
        let id = (opts.secret.as_str(), opts.key.as_str());
        Transaction::begin(
            tx,
            gate,
            &summary,
            id,
            (&plan.previous_hash, &plan.new_hash),
        )
        .await
    }

    /// The change. A failed write changed nothing (or nothing we could restore).
    async fn write(&self, plan: &Plan, report: &mut Report) -> Result<Written> {
        let (cluster, ns, opts) = (self.cluster, self.ns, self.opts);
        let (name, key) = (opts.secret.as_str(), opts.key.as_str());
        let step = self.ui.step(&format!("write {}", self.id));
        match write_key(cluster, ns, name, key, &plan.value, None, false, &plan.fkey).await {
            Ok(w) => {
                report.previous_hash = w.previous.fingerprint(&plan.fkey);
                report.previous_content_hash = w.previous_content.clone();
                report.new_hash = Some(plan.new_hash.clone());
                report.content_hash = Some(w.content.clone());
                step.done(&format!(
                    "fingerprint {} (was {}); other keys kept",
                    short(&plan.new_hash),
                    short(&report.previous_hash)
                ));
                Ok(w)
            }
            Err(e) => {
                step.fail("not written");
                Err(e)
            }
        }
    }

    /// Prove the write (read back, compare fingerprints), then restart and
    /// verify, or with `--no-restart` list the pods still on the old value.
    async fn apply_to_pods(
        &self,
        plan: &Plan,
        written: &Written,
        restart: &[&Target],
        stamped: &mut Vec<String>,
        reports: &mut BTreeMap<String, WorkloadReport>,
    ) -> Result<()> {
        self.prove_write(plan).await?;
        if !self.opts.no_restart {
            let r = self.restarter();
            return r
                .all_until_signal(restart, &written.content, stamped, reports)
                .await;
        }
        for t in restart {
            let check =
                verify_pods(self.cluster, self.ns, t, &self.annotation, &written.content).await?;
            let r = entry(reports, t, Action::NotRestarted);
            r.action = Action::NotRestarted;
            r.message = Some(format!(
                "--no-restart: {} ready pod(s) still run the old value",
                check.stale.len()
            ));
            r.pods = Some(check);
        }
        Ok(())
    }

    async fn prove_write(&self, plan: &Plan) -> Result<()> {
        let (name, key) = (self.opts.secret.as_str(), self.opts.key.as_str());
        let back = read_secret(self.cluster, self.ns, name, key).await?;
        let back_hash = secret_data(&typed_secret(&back))
            .get(key)
            .map(|v| v.fingerprint(&plan.fkey));
        if back_hash.as_deref() == Some(plan.new_hash.as_str()) {
            return Ok(());
        }
        Err(Error::failed(format!(
            "{} key {key} does not hold the new value after the write (changed concurrently?)",
            self.who
        ))
        .on(self.who.clone())
        .fix("check for another tool writing this Secret (`kubectl get secret -o yaml` shows managedFields)"))
    }

    /// Restore: the previous value (only if the key still holds ours), then
    /// restart whatever already started with the new one, verified like the
    /// rotation.
    async fn restore(
        &self,
        plan: &Plan,
        written: &Written,
        again: &[&Target],
        reports: &mut BTreeMap<String, WorkloadReport>,
    ) -> Result<()> {
        let (cluster, ns, opts) = (self.cluster, self.ns, self.opts);
        let (name, key) = (opts.secret.as_str(), opts.key.as_str());
        let step = self
            .ui
            .step(&format!("restore the previous value of {}", self.id));
        let previous = &written.previous;
        let expect = Some(&plan.value);
        let w = match write_key(cluster, ns, name, key, previous, expect, false, &plan.fkey).await {
            Ok(w) => w,
            Err(e) => {
                step.fail("not restored");
                return Err(e);
            }
        };
        step.done(&format!(
            "fingerprint {}",
            short(&previous.fingerprint(&plan.fkey))
        ));
        let label = ("restart with the previous value:", Action::Restored);
        let mut restamped = Vec::new();
        self.restarter()
            .all(again, &w.content, label, &mut restamped, reports)
            .await
    }

    fn restore_outcome(&self, restored: Result<()>, again: usize, report: &mut Report) {
        let ui = self.ui;
        match restored {
            Ok(()) => ui.line(format!(
                "{} restored: {} has its previous value again; {again} workload(s) restarted with it and verified",
                ui.mark(true),
                self.id
            )),
            Err(re) => {
                ui.line(format!("{} restore failed: {re}", ui.mark(false)));
                report.restore_error = Some((&re).into());
            }
        }
    }

    fn success_message(&self, reports: &BTreeMap<String, WorkloadReport>) -> String {
        let mut m = format!(
            "rotated {}; restarted {} workload(s)",
            self.id,
            restarted(reports)
        );
        let paused = reports
            .values()
            .filter(|r| r.action == Action::Paused)
            .count();
        if paused > 0 {
            m += &format!(", {paused} paused one(s) not restarted");
        }
        if self.opts.no_restart {
            m += " (--no-restart)";
        }
        m
    }

    fn failure_record(&self, e: &Error, report: &Report, rev: &mut Revision) {
        let restored = report.restore_error.is_none();
        rev.status = "failed".into();
        if restored {
            rev.secret_hashes = BTreeMap::from([(self.id.clone(), report.previous_hash.clone())]);
        }
        rev.message = format!(
            "rotation of {} failed: {}; {}",
            self.id,
            e.message,
            if restored {
                "previous value restored"
            } else {
                "restore FAILED"
            }
        );
    }

    fn details(&self, report: &Report, new_hash: &str) -> Value {
        serde_json::json!({
            "secret": self.opts.secret,
            "key": self.opts.key,
            "source": report.source,
            "previousHashes": {self.id.clone(): report.previous_hash},
            "attemptedHash": new_hash,
            "annotation": self.annotation,
            "contentHash": report.content_hash,
            "previousContentHash": report.previous_content_hash,
            "noRestart": self.opts.no_restart,
            "workloads": workload_details(&report.workloads),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn workload_actions_serialize_as_the_strings_reports_always_had() {
        let all = [
            (Action::Restarted, "restarted"),
            (Action::WouldRestart, "would-restart"),
            (Action::Paused, "paused"),
            (Action::NotRestarted, "not-restarted"),
            (Action::Unaffected, "unaffected"),
            (Action::Failed, "failed"),
            (Action::Restored, "restored"),
            (Action::RestoreFailed, "restore-failed"),
        ];
        for (a, s) in all {
            assert_eq!(serde_json::to_value(a).unwrap(), Value::String(s.into()));
            assert_eq!(a.as_str(), s);
        }
        assert!(Action::RestoreFailed.failed() && !Action::Restored.failed());
        assert!(Action::Paused.left_alone() && !Action::Restarted.left_alone());
    }

    #[test]
    fn finds_all_four_styles_in_containers_and_init_containers() {
        let s = spec(serde_json::json!({
            "initContainers": [{"name": "migrate", "envFrom": [{"secretRef": {"name": "db"}}]}],
            "containers": [
                {"name": "app", "env": [
                    {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                    {"name": "OTHER", "valueFrom": {"secretKeyRef": {"name": "other", "key": "password"}}},
                    {"name": "PLAIN", "value": "x"}
                ], "envFrom": [{"secretRef": {"name": "other"}}, {"prefix": "DB_", "secretRef": {"name": "db"}}]},
                {"name": "side", "env": [{"name": "U", "valueFrom": {"secretKeyRef": {"name": "db", "key": "username"}}}]}
            ],
            "volumes": [
                {"name": "creds", "secret": {"secretName": "db"}},
                {"name": "only-user", "secret": {"secretName": "db", "items": [{"key": "username", "path": "u"}]}},
                {"name": "unrelated", "secret": {"secretName": "tls"}},
                {"name": "proj", "projected": {"sources": [
                    {"configMap": {"name": "db"}},
                    {"secret": {"name": "db", "items": [{"key": "password", "path": "p"}]}}
                ]}},
                {"name": "tmp", "emptyDir": {}}
            ]
        }));
        let refs = pod_spec_references(&s, "db");
        let shown: Vec<String> = refs.iter().map(Reference::describe).collect();
        assert_eq!(
            shown,
            [
                "envFrom (init container migrate)",
                "env DB_PASSWORD (container app)",
                "envFrom prefix DB_ (container app)",
                "env U (container side)",
                "volume creds",
                "volume only-user items username",
                "projected volume proj items password",
            ]
        );
        let users: Vec<bool> = refs.iter().map(|r| r.uses_key("password")).collect();
        assert_eq!(users, [true, true, true, false, true, false, true]);
        assert!(refs[0].init_container);
        assert!(pod_spec_references(&s, "nope").is_empty());
        assert!(pod_spec_references(&s, "tls")[0].uses_key("anything"));
    }

    fn deployment(name: &str, pod: Value, paused: bool) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "uid": format!("uid-{name}")},
            "spec": {"paused": paused, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": pod}}
        }))
        .unwrap()
    }

    #[test]
    fn targets_only_workloads_that_reference_the_secret() {
        let env = serde_json::json!({"containers": [{"name": "a", "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]}]});
        let user = serde_json::json!({"containers": [{"name": "a", "env": [{"name": "U", "valueFrom": {"secretKeyRef": {"name": "db", "key": "username"}}}]}]});
        let none = serde_json::json!({"containers": [{"name": "a"}]});
        let ds: DaemonSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {"spec": {"containers": [{"name": "a"}], "volumes": [{"name": "v", "secret": {"secretName": "db"}}]}}}
        }))
        .unwrap();
        let t = find_targets(
            &[
                deployment("web", env.clone(), false),
                deployment("idle", env, true),
                deployment("users", user, false),
                deployment("plain", none, false),
            ],
            &[],
            &[ds],
            "db",
            "password",
        );
        let got: Vec<(&str, &str, bool, bool)> = t
            .iter()
            .map(|t| (t.kind.kind(), t.name.as_str(), t.uses_key, t.paused))
            .collect();
        assert_eq!(
            got,
            [
                ("DaemonSet", "agent", true, false),
                ("Deployment", "idle", true, true),
                ("Deployment", "users", false, false),
                ("Deployment", "web", true, false),
            ]
        );
        assert_eq!(t[3].uid, "uid-web");
    }

    #[test]
    fn content_hash_covers_keys_and_values_unambiguously() {
        let m = |pairs: &[(&str, &str)]| -> BTreeMap<String, SecretValue> {
            pairs
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        SecretValue::from_bytes(v.as_bytes().to_vec()),
                    )
                })
                .collect()
        };
        let k = SecretValue::random_base64(32).unwrap();
        let a = content_hash(&m(&[("password", "x"), ("username", "u")]), &k);
        assert_eq!(a.len(), "hmac-sha256:".len() + 64);
        assert_eq!(
            a,
            content_hash(&m(&[("username", "u"), ("password", "x")]), &k)
        );
        assert_ne!(
            a,
            content_hash(&m(&[("password", "y"), ("username", "u")]), &k)
        );
        assert_ne!(
            content_hash(&m(&[("ab", "c")]), &k),
            content_hash(&m(&[("a", "bc")]), &k)
        );
        // Keyed: another namespace's key gives another stamp.
        let other = SecretValue::random_base64(32).unwrap();
        assert_ne!(
            a,
            content_hash(&m(&[("password", "x"), ("username", "u")]), &other)
        );
    }

    #[test]
    fn annotation_names_stay_valid() {
        assert_eq!(
            hash_annotation("database-credentials"),
            "pake.dev/secret-database-credentials-hash"
        );
        let long = "a-very-long-secret-name-that-goes-on.and-on-and-on-beyond-limits";
        let k = hash_annotation(long);
        let name = k.strip_prefix("pake.dev/").unwrap();
        assert!(name.len() <= 63, "{name}");
        assert!(name.ends_with("-hash"));
        assert_ne!(k, hash_annotation(&format!("{long}x")));
    }

    #[test]
    fn extract_owned_keeps_exactly_the_managers_fields() {
        let live = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {
                "name": "db", "namespace": "ns", "resourceVersion": "7",
                "labels": {"app": "web", "app.kubernetes.io/managed-by": "pake", "team": "x"},
                "managedFields": [
                    {"manager": "pake", "operation": "Apply", "fieldsV1": {
                        "f:data": {"f:password": {}, "f:username": {}},
                        "f:metadata": {"f:labels": {"f:app": {}, "f:app.kubernetes.io/managed-by": {}}},
                        "f:type": {}}},
                    {"manager": "kubectl", "operation": "Update", "fieldsV1": {
                        "f:data": {"f:extra": {}}, "f:metadata": {"f:labels": {".": {}, "f:team": {}}}}}
                ]
            },
            "type": "Opaque",
            "data": {"password": "cA==", "username": "dQ==", "extra": "ZQ=="}
        });
        let body = extract_owned(&live, "pake").unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "data": {"password": "cA==", "username": "dQ=="},
                "metadata": {"labels": {"app": "web", "app.kubernetes.io/managed-by": "pake"}, "name": "db", "namespace": "ns"},
                "type": "Opaque",
                "apiVersion": "v1", "kind": "Secret"
            })
        );
        assert!(extract_owned(&live, "pake-rotate").is_none());
        // Template annotations of a workload, as pake-rotate owns them.
        let d = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns", "managedFields": [
                {"manager": "pake-rotate", "operation": "Apply", "fieldsV1": {"f:spec": {"f:template": {"f:metadata": {"f:annotations": {"f:pake.dev/secret-a-hash": {}}}}}}}
            ]},
            "spec": {"replicas": 2, "template": {"metadata": {"annotations": {"pake.dev/secret-a-hash": "h", "other": "o"}}, "spec": {"containers": []}}}
        });
        assert_eq!(
            extract_owned(&d, "pake-rotate").unwrap()["spec"],
            serde_json::json!({"template": {"metadata": {"annotations": {"pake.dev/secret-a-hash": "h"}}}})
        );
    }

    #[test]
    fn scrub_removes_raw_and_base64_values() {
        let v = SecretValue::from_bytes(b"hunter2hunter2".to_vec());
        let msg = "bad value hunter2hunter2 and aHVudGVyMmh1bnRlcjI= here";
        let s = scrub(msg, &[&v]);
        assert!(
            !s.contains("hunter2") && !s.contains("aHVudGVyMmh1bnRlcjI="),
            "{s}"
        );
        assert_eq!(s.matches(REDACTED).count(), 2);
    }

    fn pod(name: &str, owner: &str, ready: bool, hash: Option<&str>, deleting: bool) -> Pod {
        let mut p = serde_json::json!({
            "metadata": {"name": name, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": owner}]},
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        });
        if let Some(h) = hash {
            p["metadata"]["annotations"] = serde_json::json!({"pake.dev/secret-db-hash": h});
        }
        if deleting {
            p["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
        }
        serde_json::from_value(p).unwrap()
    }

    #[test]
    fn pod_check_counts_only_ready_owned_pods() {
        let owners = BTreeSet::from(["rs-new".to_string(), "rs-old".to_string()]);
        let pods = [
            pod("a", "rs-new", true, Some("new"), false),
            pod("b", "rs-new", true, Some("new"), false),
            pod("c", "rs-old", true, Some("old"), false),
            pod("d", "rs-old", true, None, true),
            pod("e", "rs-new", false, None, false),
            pod("f", "someone-else", true, None, false),
        ];
        let c = check_pods(&pods, &owners, "pake.dev/secret-db-hash", "new");
        assert_eq!(
            c,
            PodCheck {
                ready: 3,
                carrying: 2,
                stale: vec!["c".into()]
            }
        );
        assert!(!c.ok());
        assert!(check_pods(&pods[..2], &owners, "pake.dev/secret-db-hash", "new").ok());
    }

    #[test]
    fn length_is_bounded_and_random_values_differ() {
        assert!(NewValue::Random(8).resolve().is_err());
        assert_eq!(
            NewValue::Random(8).resolve().unwrap_err().kind,
            ExitCode::Usage
        );
        let a = NewValue::Random(32).resolve().unwrap();
        let b = NewValue::Random(32).resolve().unwrap();
        assert_ne!(a, b);
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(a.expose())
                .unwrap()
                .len(),
            32
        );
    }
}
