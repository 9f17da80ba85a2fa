//! `pake doctor`: pre-flight checks a user runs first.
//!
//! Each check passes or fails with a fix. Permission checks ask the API server
//! itself (SelfSubjectAccessReview) for every verb and resource pake uses, so
//! the answer is the cluster's RBAC as it is, not a guess.

use serde::Serialize;

use crate::docker::Engine;
use crate::kube::Target;
use crate::kube::access::{Permission, can_i};

/// Kinds pake applies, reads back, and restores or deletes on rollback.
const APPLIED: &[(&str, &str)] = &[
    ("", "secrets"),
    ("", "configmaps"),
    ("", "serviceaccounts"),
    ("", "services"),
    ("apps", "deployments"),
    ("networking.k8s.io", "networkpolicies"),
    ("networking.k8s.io", "ingresses"),
    ("policy", "poddisruptionbudgets"),
    ("rbac.authorization.k8s.io", "roles"),
    ("rbac.authorization.k8s.io", "rolebindings"),
    ("external-secrets.io", "externalsecrets"),
];
const APPLY_VERBS: &[&str] = &["get", "list", "create", "patch", "update", "delete"];

/// Everything else pake's commands use: namespaces, access reviews, watching
/// rollouts and endpoints, restarting workloads, the Lease lock.
const OTHER: &[Permission] = &[
    p("get", "", "namespaces", false),
    p("create", "", "namespaces", false),
    p("patch", "", "namespaces", false),
    p(
        "create",
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        false,
    ),
    p("get", "", "pods", true),
    p("list", "", "pods", true),
    p("watch", "", "pods", true),
    p("list", "", "events", true),
    // pake diagnose: failing containers' logs, the in-pod probe (also verify's), node capacity.
    p("get", "", "pods/log", true),
    p("patch", "", "pods/ephemeralcontainers", true),
    p("list", "", "nodes", false),
    p("watch", "apps", "deployments", true),
    p("patch", "apps", "deployments/scale", true),
    p("list", "apps", "replicasets", true),
    p("watch", "apps", "replicasets", true),
    p("list", "apps", "controllerrevisions", true),
    p("watch", "apps", "controllerrevisions", true),
    p("get", "apps", "statefulsets", true),
    p("list", "apps", "statefulsets", true),
    p("watch", "apps", "statefulsets", true),
    p("patch", "apps", "statefulsets", true),
    p("get", "apps", "daemonsets", true),
    p("list", "apps", "daemonsets", true),
    p("watch", "apps", "daemonsets", true),
    p("patch", "apps", "daemonsets", true),
    p("list", "discovery.k8s.io", "endpointslices", true),
    p("watch", "discovery.k8s.io", "endpointslices", true),
    p("get", "coordination.k8s.io", "leases", true),
    p("list", "coordination.k8s.io", "leases", true),
    p("watch", "coordination.k8s.io", "leases", true),
    p("create", "coordination.k8s.io", "leases", true),
    p("update", "coordination.k8s.io", "leases", true),
    p("delete", "coordination.k8s.io", "leases", true),
    p("watch", "", "secrets", true),
    p("watch", "external-secrets.io", "externalsecrets", true),
    p("get", "external-secrets.io", "secretstores", true),
    p("get", "external-secrets.io", "clustersecretstores", false),
];

/// Every permission pake's commands use. `templates/rbac/` grants exactly these
/// to the `deployer` identity; the test below keeps the two in step.
pub fn required() -> Vec<Permission> {
    let mut v: Vec<Permission> = APPLIED
        .iter()
        .flat_map(|(g, r)| APPLY_VERBS.iter().map(move |verb| p(verb, g, r, true)))
        .collect();
    v.extend_from_slice(OTHER);
    v
}

const fn p(
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    namespaced: bool,
) -> Permission {
    Permission {
        verb,
        group,
        resource,
        namespaced,
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DoctorReport {
    pub ok: bool,
    pub context: Option<String>,
    pub namespace: String,
    pub checks: Vec<Check>,
}

fn pass(name: &str, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok: true,
        detail: detail.into(),
        fix: None,
    }
}
fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok: false,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

/// Run every pre-flight check. Never fails itself: failures are checks.
pub async fn run(target: &Target, namespace: Option<&str>, docker: bool) -> DoctorReport {
    let mut checks = Vec::new();
    let mut context = None;
    let mut ns = namespace.map(str::to_string);

    match target.connect().await {
        Err(e) => checks.push(fail(
            "kubeconfig",
            e.message.clone(),
            e.fix.clone().unwrap_or_default(),
        )),
        Ok(cluster) => {
            let path = cluster
                .kubeconfig
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "in-cluster".into());
            checks.push(pass(
                "kubeconfig",
                format!("{path}, context {}", cluster.context),
            ));
            context = Some(cluster.context.clone());
            if ns.is_none() {
                ns = Some(cluster.default_namespace.clone());
            }
            let ns = ns.clone().unwrap_or_default();
            match cluster.version().await {
                Err(e) => checks.push(fail(
                    "api-server",
                    e.to_string().lines().next().unwrap_or_default().to_string(),
                    e.fix
                        .clone()
                        .unwrap_or_else(|| "check the API server address in the kubeconfig".into()),
                )),
                Ok(v) => {
                    checks.push(pass(
                        "api-server",
                        format!("reachable, Kubernetes {}", v.git_version),
                    ));
                    let mut missing = Vec::new();
                    let mut error = None;
                    let required = required();
                    let results =
                        futures::future::join_all(required.iter().map(|p| can_i(&cluster, p, &ns)))
                            .await;
                    for (p, r) in required.iter().zip(results) {
                        match r {
                            Ok((true, _)) => {}
                            Ok((false, _)) => missing.push(p.describe(&ns)),
                            Err(e) => {
                                error = Some(e);
                                break;
                            }
                        }
                    }
                    match (error, missing.is_empty()) {
                        (Some(e), _) => checks.push(fail(
                            "permissions",
                            format!("cannot review permissions: {}", e.message),
                            "the identity needs `create selfsubjectaccessreviews` (granted to every authenticated user by default)",
                        )),
                        (None, true) => checks.push(pass(
                            "permissions",
                            format!("all {} permissions pake uses are granted in namespace {ns}", required.len()),
                        )),
                        (None, false) => checks.push(fail(
                            "permissions",
                            format!("{} of {} missing: {}", missing.len(), required.len(), missing.join("; ")),
                            format!("bind the pake-deployer roles from templates/rbac/ to this identity in namespace {ns} (`pake help rbac`)"),
                        )),
                    }
                }
            }
        }
    }

    if docker {
        match Engine::connect().await {
            Err(e) => checks.push(fail(
                "docker-engine",
                e.message.clone(),
                e.fix.clone().unwrap_or_default(),
            )),
            Ok(engine) => match engine.version().await {
                Ok(v) => checks.push(pass(
                    "docker-engine",
                    format!(
                        "reachable at {}, Docker {} (engine API {}, using {})",
                        crate::docker::describe_host(),
                        v.version,
                        v.api_version,
                        v.negotiated_api_version
                    ),
                )),
                Err(e) => checks.push(fail(
                    "docker-engine",
                    e.message.clone(),
                    e.fix.clone().unwrap_or_default(),
                )),
            },
        }
    }

    DoctorReport {
        ok: checks.iter().all(|c| c.ok),
        context,
        namespace: ns.unwrap_or_default(),
        checks,
    }
}

/// For the `external:` secrets of pake.yaml: the External Secrets Operator's
/// CRDs are served, and every store they name exists and is Ready.
pub async fn external_secrets(
    target: &Target,
    namespace: &str,
    secrets: &[crate::config::SecretSpec],
) -> Vec<Check> {
    use crate::steps::external_secrets as es;
    let externals: Vec<&crate::config::ExternalSource> =
        secrets.iter().filter_map(|s| s.external.as_ref()).collect();
    if externals.is_empty() {
        return Vec::new();
    }
    let Ok(cluster) = target.connect().await else {
        return Vec::new(); // the kubeconfig check already failed
    };
    let version = match es::api_version(&cluster).await {
        Ok(v) => v,
        Err(e) => {
            return vec![fail(
                "eso-crds",
                e.message.clone(),
                e.fix.clone().unwrap_or_default(),
            )];
        }
    };
    let mut checks = vec![pass(
        "eso-crds",
        format!(
            "external-secrets.io/{version} is served (External Secrets Operator CRDs installed)"
        ),
    )];
    let mut seen = std::collections::BTreeSet::new();
    for e in externals {
        if !seen.insert((e.store.kind, e.store.name.clone())) {
            continue;
        }
        let what = format!("{} {}", e.store.kind.as_str(), e.store.name);
        checks.push(
            match es::store_problem(&cluster, &version, e, namespace).await {
                Ok(None) => pass("eso-store", format!("{what} exists and is Ready")),
                Ok(Some(p)) => fail(
                    "eso-store",
                    p.clone(),
                    es::fix_for(&p, &e.store.name, e.store.kind.as_str(), namespace),
                ),
                Err(err) => fail(
                    "eso-store",
                    format!("cannot read {what}: {}", err.message),
                    "the identity needs get on secretstores/clustersecretstores (`pake help rbac`)",
                ),
            },
        );
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (apiGroup, resource, verb) granted by a role file's rules.
    fn grants(path: &str) -> Vec<(String, String, String)> {
        let text =
            std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
        let mut out = Vec::new();
        for d in docs.iter().filter(|d| d["kind"] == "ClusterRole") {
            for rule in d["rules"].as_array().unwrap() {
                for g in rule["apiGroups"].as_array().unwrap() {
                    for r in rule["resources"].as_array().unwrap() {
                        for v in rule["verbs"].as_array().unwrap() {
                            out.push((
                                g.as_str().unwrap().into(),
                                r.as_str().unwrap().into(),
                                v.as_str().unwrap().into(),
                            ));
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn deployer_roles_grant_exactly_what_pake_uses() {
        let ns = grants("templates/rbac/deployer-role.yaml");
        let cluster = grants("templates/rbac/deployer-cluster.yaml");
        for p in required() {
            let set = if p.namespaced { &ns } else { &cluster };
            assert!(
                set.iter()
                    .any(|(g, r, v)| g == p.group && r == p.resource && v == p.verb),
                "templates/rbac does not grant {p:?}"
            );
        }
        // And nothing on secrets cluster-wide.
        assert!(!cluster.iter().any(|(_, r, _)| r == "secrets"));
    }
}
