//! Step 1 of the guide: the namespace with the Restricted Pod Security
//! Standard, and the app's ServiceAccount and minimal Role.

use ::kube::Api;
use k8s_openapi::api::core::v1::Namespace;
use serde_json::Value;

use super::label;
use crate::error::{Error, Result};
use crate::kube::Cluster;
use crate::render::Manifest;
use crate::workflow::executor::{CheckResult, Ctx};

pub async fn exists(cluster: &Cluster, name: &str) -> Result<bool> {
    let api: Api<Namespace> = Api::all(cluster.client.clone());
    api.get_opt(name)
        .await
        .map(|o| o.is_some())
        .map_err(|e| Error::from_kube(format!("GET Namespace {name}"), e))
}

/// The PSS labels the guide requires, checked on a live Namespace object.
pub fn check_pss_labels(ns: &Value) -> Vec<CheckResult> {
    let name = format!(
        "Namespace {}",
        ns["metadata"]["name"].as_str().unwrap_or("")
    );
    ["enforce", "audit", "warn"]
        .iter()
        .map(|mode| {
            let key = format!("pod-security.kubernetes.io/{mode}");
            match label(ns, &key) {
                Some("restricted") => CheckResult::pass("pss-labels", &name, format!("{key}=restricted")),
                other => CheckResult::fail(
                    "pss-labels",
                    &name,
                    format!("{key} is {}", other.map(|s| format!("{s:?}")).unwrap_or_else(|| "missing".into())),
                    format!("label the namespace {key}=restricted (the namespace template does; another tool may have changed it)"),
                ),
            }
        })
        .collect()
}

/// ServiceAccounts must not mount API tokens; Roles must not use wildcards or read secrets.
pub fn check_identity(kind: &str, obj: &Value, who: &str) -> Vec<CheckResult> {
    match kind {
        "ServiceAccount" => vec![
            if obj["automountServiceAccountToken"] == Value::Bool(false) {
                CheckResult::pass("sa-token", who, "automountServiceAccountToken: false")
            } else {
                CheckResult::fail(
                    "sa-token",
                    who,
                    "API token is mounted into pods",
                    "set automountServiceAccountToken: false (the guide: disable unless needed)",
                )
            },
        ],
        "Role" | "ClusterRole" => {
            let mut out = Vec::new();
            for rule in obj["rules"].as_array().into_iter().flatten() {
                let has = |field: &str, s: &str| {
                    rule[field].as_array().into_iter().flatten().any(|v| v == s)
                };
                if has("verbs", "*") || has("resources", "*") || has("apiGroups", "*") {
                    out.push(CheckResult::fail(
                        "rbac-wildcard",
                        who,
                        "a rule uses a wildcard",
                        "list the exact apiGroups, resources and verbs the app needs",
                    ));
                }
                if has("resources", "secrets") {
                    out.push(CheckResult::fail(
                        "rbac-secrets",
                        who,
                        "the app's role can access secrets",
                        "remove secrets from the role; mount the one Secret the app needs instead",
                    ));
                }
            }
            if out.is_empty() {
                out.push(CheckResult::pass(
                    "rbac-minimal",
                    who,
                    "no wildcards, no secret access",
                ));
            }
            out
        }
        _ => Vec::new(),
    }
}

pub async fn verify(ctx: &Ctx<'_>, applied: &[(Manifest, Value)]) -> Result<Vec<CheckResult>> {
    let mut out = Vec::new();
    for (m, _) in applied {
        // Read back from the server: the applied response could predate a mutating webhook.
        let live = crate::kube::apply::get(ctx.cluster, &m.object)
            .await?
            .ok_or_else(|| Error::failed("not found after apply").on(m.describe()))?;
        match m.kind() {
            "Namespace" => out.extend(check_pss_labels(&live)),
            k => out.extend(check_identity(k, &live, &m.describe())),
        }
    }
    Ok(out)
}
