//! Step 1 of the guide: the namespace with the Restricted Pod Security
//! Standard, and the app's ServiceAccount and minimal Role.

use serde_json::Value;

use super::label;
use crate::error::Result;
use crate::render::Manifest;
use crate::workflow::executor::{CheckResult, Ctx};

pub use crate::kube::namespace_exists as exists;

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

/// ServiceAccounts must not mount API tokens; Roles must not use wildcards or
/// read secrets: the guide checks of `pake audit`, on the object read back.
pub fn check_identity(obj: &Value) -> Vec<CheckResult> {
    use crate::checks::guide;
    let who = guide::object_ref(obj);
    let expected: &[&str] = match obj["kind"].as_str() {
        Some("ServiceAccount") => &[guide::SA_AUTOMOUNT],
        Some("Role") => &[guide::RBAC_WILDCARD, guide::RBAC_SECRETS],
        _ => &[],
    };
    let findings = guide::check_objects(std::slice::from_ref(obj));
    let mut out: Vec<CheckResult> = expected
        .iter()
        .filter(|id| !findings.iter().any(|(_, f)| f.id == **id))
        .map(|id| CheckResult::pass(id, &who, "passes"))
        .collect();
    out.extend(findings.into_iter().map(|(_, f)| {
        CheckResult::fail(
            &f.id,
            &who,
            format!("{} ({})", f.message, f.severity),
            f.fix,
        )
    }));
    out
}

pub async fn verify(ctx: &Ctx<'_>, applied: &[(Manifest, Value)]) -> Result<Vec<CheckResult>> {
    let mut out = Vec::new();
    for (m, live) in applied {
        // The apply response is the object as stored, after admission
        // (mutating webhooks included), so it needs no second read.
        match m.kind() {
            "Namespace" => {
                out.extend(check_pss_labels(live));
                // The verify step reads it again unless pake writes it first.
                crate::kube::list::keep(
                    ctx.cluster,
                    "v1",
                    "Namespace",
                    m.name(),
                    vec![live.clone()],
                );
            }
            _ => out.extend(check_identity(live)),
        }
    }
    Ok(out)
}
