//! Step 5 and 6 of the guide ("Verify deployment", "Check security context"),
//! as live checks: `pake verify` and the last step of `pake deploy`.
//!
//! Checks run on what the cluster actually has — the Namespace, the running
//! Pods, their ServiceAccounts and Roles, NetworkPolicies and PDBs — not on
//! the templates, so drift and admission mutations are caught too.

use serde_json::Value;

use super::namespace::{check_identity, check_pss_labels};
use super::policies::check_default_deny;
use crate::config::looks_secret_name;
use crate::error::{Error, Result};
use crate::kube::list::{list_json, list_json_selected};
use crate::workflow::executor::{CheckResult, Ctx};

pub async fn run(ctx: &Ctx<'_>) -> Result<Vec<CheckResult>> {
    let r = ctx.resolved;
    let ns = &r.namespace;
    let c = ctx.cluster;
    let nsobj = crate::kube::apply::get(
        c,
        &serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .await?
    .ok_or_else(|| {
        Error::failed(format!("namespace {ns} does not exist"))
            .fix(format!("run `pake deploy --env {}` first", r.env))
    })?;
    let pods = list_json_selected(c, "v1", "Pod", ns, Some(&format!("app={}", r.app))).await?;
    let policies = list_json(c, "networking.k8s.io/v1", "NetworkPolicy", ns).await?;
    let deployments = list_json_selected(
        c,
        "apps/v1",
        "Deployment",
        ns,
        Some(&format!("app={}", r.app)),
    )
    .await?;
    let pdbs = list_json(c, "policy/v1", "PodDisruptionBudget", ns).await?;
    let sas = list_json(c, "v1", "ServiceAccount", ns).await?;
    let roles = list_json(c, "rbac.authorization.k8s.io/v1", "Role", ns).await?;
    let bindings = list_json(c, "rbac.authorization.k8s.io/v1", "RoleBinding", ns).await?;
    Ok(evaluate(
        ns,
        &nsobj,
        &pods,
        &policies,
        &deployments,
        &pdbs,
        &sas,
        &roles,
        &bindings,
    ))
}

/// Pure: every check of the guide's Kubernetes checklist over live objects.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    ns: &str,
    nsobj: &Value,
    pods: &[Value],
    policies: &[Value],
    deployments: &[Value],
    pdbs: &[Value],
    sas: &[Value],
    roles: &[Value],
    bindings: &[Value],
) -> Vec<CheckResult> {
    let mut out = check_pss_labels(nsobj);
    out.push(check_default_deny(ns, policies));
    let running: Vec<&Value> = pods
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect();
    if running.is_empty() {
        out.push(CheckResult::fail(
            "pods",
            format!("Namespace {ns}"),
            "no pods of the app are running",
            "deploy first, or check the Deployment's events",
        ));
    }
    for d in deployments {
        let who = format!(
            "Deployment {ns}/{}",
            d["metadata"]["name"].as_str().unwrap_or("")
        );
        out.push(super::deploy::check_pdb(&who, d, pdbs));
    }
    let mut app_sas = std::collections::BTreeSet::new();
    for p in &running {
        out.extend(check_pod(ns, p));
        app_sas.insert(
            p["spec"]["serviceAccountName"]
                .as_str()
                .unwrap_or("default")
                .to_string(),
        );
    }
    for sa_name in &app_sas {
        let who = format!("ServiceAccount {ns}/{sa_name}");
        match sas
            .iter()
            .find(|s| s["metadata"]["name"].as_str() == Some(sa_name))
        {
            Some(sa) => out.extend(check_identity("ServiceAccount", sa, &who)),
            None => out.push(CheckResult::fail(
                "sa-token",
                who,
                "ServiceAccount not found",
                "apply the rbac.yaml template",
            )),
        }
        // Roles bound to the app's ServiceAccount.
        for b in bindings {
            let binds_sa = b["subjects"].as_array().into_iter().flatten().any(|s| {
                s["kind"] == "ServiceAccount"
                    && s["name"].as_str() == Some(sa_name)
                    && s["namespace"].as_str().is_none_or(|n| n == ns)
            });
            if !binds_sa || b["roleRef"]["kind"] != "Role" {
                continue;
            }
            let role_name = b["roleRef"]["name"].as_str().unwrap_or("");
            if let Some(role) = roles
                .iter()
                .find(|r| r["metadata"]["name"].as_str() == Some(role_name))
            {
                out.extend(check_identity(
                    "Role",
                    role,
                    &format!("Role {ns}/{role_name}"),
                ));
            }
        }
    }
    out
}

/// The guide's security context, resources, probes and secret hygiene, on one live pod.
pub fn check_pod(ns: &str, pod: &Value) -> Vec<CheckResult> {
    let who = format!(
        "Pod {ns}/{}",
        pod["metadata"]["name"].as_str().unwrap_or("")
    );
    let spec = &pod["spec"];
    let psc = &spec["securityContext"];
    let mut out = Vec::new();
    let mut check = |id: &str, ok: bool, msg: String, fix: &str| {
        out.push(if ok {
            CheckResult::pass(id, &who, msg)
        } else {
            CheckResult::fail(id, &who, msg, fix)
        });
    };
    if !super::deploy::is_ready(pod) {
        check(
            "pod-ready",
            false,
            "pod is not Ready".into(),
            "see `kubectl describe` of the pod; the guide's troubleshooting section lists the usual causes",
        );
    }
    if spec["automountServiceAccountToken"] == Value::Bool(true) {
        check(
            "sa-token",
            false,
            "pod mounts an API token".into(),
            "set automountServiceAccountToken: false",
        );
    }
    let seccomp_pod = psc["seccompProfile"]["type"].as_str();
    for c in spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(spec["initContainers"].as_array().into_iter().flatten())
    {
        let name = c["name"].as_str().unwrap_or("");
        let sc = &c["securityContext"];
        let get = |k: &str| if sc[k].is_null() { &psc[k] } else { &sc[k] };
        let uid = get("runAsUser").as_i64();
        let gid = get("runAsGroup").as_i64();
        check(
            "non-root",
            get("runAsNonRoot") == &Value::Bool(true) && uid.is_some_and(|u| u != 0),
            format!(
                "container {name}: runAsNonRoot={}, runAsUser={}",
                get("runAsNonRoot"),
                uid.map(|u| u.to_string()).unwrap_or_else(|| "unset".into())
            ),
            "set runAsNonRoot: true and runAsUser: 1000 (and USER 1000:1000 in the Dockerfile)",
        );
        check(
            "uid-gid-1000",
            uid == Some(1000) && gid == Some(1000),
            format!(
                "container {name}: uid={} gid={}",
                uid.map(|u| u.to_string()).unwrap_or_else(|| "unset".into()),
                gid.map(|u| u.to_string()).unwrap_or_else(|| "unset".into())
            ),
            "run as uid=1000 gid=1000 as the guide asks (runAsUser/runAsGroup: 1000)",
        );
        check(
            "read-only-rootfs",
            sc["readOnlyRootFilesystem"] == Value::Bool(true),
            format!(
                "container {name}: readOnlyRootFilesystem={}",
                sc["readOnlyRootFilesystem"]
            ),
            "set readOnlyRootFilesystem: true and mount emptyDir volumes at the paths the app writes (/tmp, /app/logs, /app/cache)",
        );
        let drops_all = sc["capabilities"]["drop"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v == "ALL");
        let adds = sc["capabilities"]["add"]
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0);
        check(
            "capabilities",
            drops_all && adds == 0,
            format!("container {name}: drop ALL={drops_all}, added={adds}"),
            "set capabilities.drop: [ALL] and add none",
        );
        check(
            "no-privilege-escalation",
            sc["allowPrivilegeEscalation"] == Value::Bool(false)
                && sc["privileged"] != Value::Bool(true),
            format!(
                "container {name}: allowPrivilegeEscalation={}",
                sc["allowPrivilegeEscalation"]
            ),
            "set allowPrivilegeEscalation: false",
        );
        let seccomp = sc["seccompProfile"]["type"].as_str().or(seccomp_pod);
        check(
            "seccomp",
            matches!(seccomp, Some("RuntimeDefault") | Some("Localhost")),
            format!(
                "container {name}: seccompProfile={}",
                seccomp.unwrap_or("unset")
            ),
            "set seccompProfile.type: RuntimeDefault in the pod securityContext",
        );
        let res = &c["resources"];
        let missing: Vec<String> = ["requests", "limits"]
            .iter()
            .flat_map(|kind| {
                ["cpu", "memory", "ephemeral-storage"]
                    .iter()
                    .map(move |r| (kind, r))
            })
            .filter(|(kind, r)| res[**kind][**r].is_null())
            .map(|(kind, r)| format!("{kind}.{r}"))
            .collect();
        check(
            "resources",
            missing.is_empty(),
            if missing.is_empty() {
                format!("container {name}: requests and limits set")
            } else {
                format!("container {name}: missing {}", missing.join(", "))
            },
            "set requests and limits for cpu, memory and ephemeral-storage (the guide's values: 250m/512Mi/1Gi, 1000m/2Gi/2Gi)",
        );
        let is_init = spec["initContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|i| i["name"] == c["name"]);
        if !is_init {
            check(
                "probes",
                !c["livenessProbe"].is_null() && !c["readinessProbe"].is_null(),
                format!(
                    "container {name}: liveness={}, readiness={}",
                    !c["livenessProbe"].is_null(),
                    !c["readinessProbe"].is_null()
                ),
                "add livenessProbe and readinessProbe (the templates probe the health path)",
            );
        }
        let literal: Vec<&str> = c["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| {
                e["value"].as_str().is_some_and(|v| !v.is_empty())
                    && looks_secret_name(e["name"].as_str().unwrap_or(""))
            })
            .filter_map(|e| e["name"].as_str())
            .collect();
        check(
            "no-secret-env",
            literal.is_empty(),
            if literal.is_empty() {
                format!("container {name}: no literal secret values in env")
            } else {
                format!("container {name}: literal values in {}", literal.join(", "))
            },
            "use valueFrom.secretKeyRef (the guide: Never Hardcode Secrets)",
        );
    }
    out
}
