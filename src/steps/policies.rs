//! Step 3 of the guide: network policies, before any workload. Verifies that
//! a default-deny policy for both directions selects every pod.

use serde_json::Value;

use crate::error::Result;
use crate::render::Manifest;
use crate::workflow::definition::is_default_deny;
use crate::workflow::executor::{CheckResult, Ctx};

/// Live NetworkPolicies in the namespace include a default deny of ingress and egress.
pub fn check_default_deny(namespace: &str, policies: &[Value]) -> CheckResult {
    let found = policies.iter().find(|p| {
        let m = Manifest {
            template: String::new(),
            doc: 0,
            object: (*p).clone(),
        };
        is_default_deny(&m)
    });
    match found {
        Some(p) => CheckResult::pass(
            "netpol-default-deny",
            format!(
                "NetworkPolicy {namespace}/{}",
                p["metadata"]["name"].as_str().unwrap_or("")
            ),
            "denies all ingress and egress for every pod (podSelector: {})",
        ),
        None => CheckResult::fail(
            "netpol-default-deny",
            format!("Namespace {namespace}"),
            "no NetworkPolicy denies all ingress and egress for every pod",
            "apply the guide's default-deny-all policy (podSelector: {}, policyTypes: [Ingress, Egress]) before any workload",
        ),
    }
}

pub async fn verify(ctx: &Ctx<'_>, applied: &[(Manifest, Value)]) -> Result<Vec<CheckResult>> {
    let ns = &ctx.resolved.namespace;
    let live =
        crate::kube::list::list_json_kept(ctx.cluster, "networking.k8s.io/v1", "NetworkPolicy", ns)
            .await?;
    let mut out = vec![check_default_deny(ns, &live)];
    for (m, _) in applied {
        let present = live
            .iter()
            .any(|p| p["metadata"]["name"].as_str() == Some(m.name()));
        out.push(if present {
            CheckResult::pass("netpol-present", m.describe(), "present")
        } else {
            CheckResult::fail(
                "netpol-present",
                m.describe(),
                "not found after apply",
                "check the policy name and namespace",
            )
        });
    }
    Ok(out)
}
