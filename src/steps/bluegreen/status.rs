//! `pake bluegreen status`: versions, Services and endpoints, read only.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::config::Resolved;
use crate::error::Result;
use crate::kube::Cluster;
use crate::kube::list::list_json_selected;
use crate::workflow::history::{self};

use super::*;

// ---------------------------------------------------------------------------
// status
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionStatus {
    pub version: String,
    pub deployment: String,
    pub image: String,
    /// Desired replicas (spec).
    pub replicas: i32,
    pub ready: i32,
    pub available: i32,
    pub updated: i32,
    /// active, preview, rollback-target
    pub roles: Vec<String>,
    pub created: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    pub name: String,
    pub exists: bool,
    pub selects: Option<String>,
    pub endpoints_ready: usize,
    pub endpoints_total: usize,
    /// Ready endpoints per pod version.
    pub by_version: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub app: String,
    pub env: String,
    pub namespace: String,
    pub active: Option<String>,
    pub preview: Option<String>,
    pub rollback_target: Option<String>,
    pub last_switch: Option<SwitchRecord>,
    pub versions: Vec<VersionStatus>,
    pub services: Vec<ServiceStatus>,
}

/// Ready/total endpoints and ready endpoints per version (via pod labels).
pub fn endpoint_counts(
    slices: &[Value],
    pod_versions: &BTreeMap<String, String>,
) -> (usize, usize, BTreeMap<String, usize>) {
    let mut seen = BTreeSet::new();
    let (mut ready, mut total) = (0, 0);
    let mut by = BTreeMap::new();
    for s in slices {
        for e in s["endpoints"].as_array().into_iter().flatten() {
            let pod = e["targetRef"]["name"].as_str().unwrap_or("").to_string();
            // Dual-stack Services list a pod once per address family.
            if !pod.is_empty() && !seen.insert(pod.clone()) {
                continue;
            }
            total += 1;
            if e["conditions"]["ready"] != Value::Bool(false) {
                ready += 1;
                let v = pod_versions
                    .get(&pod)
                    .cloned()
                    .unwrap_or_else(|| "?".into());
                *by.entry(v).or_insert(0) += 1;
            }
        }
    }
    (ready, total, by)
}

pub async fn status(cluster: &Cluster, r: &Resolved) -> Result<Status> {
    let ns = &r.namespace;
    let app_sel = format!("app={}", r.app);
    let deployments =
        list_json_selected(cluster, "apps/v1", "Deployment", ns, Some(&app_sel)).await?;
    let pods = list_json_selected(cluster, "v1", "Pod", ns, Some(&app_sel)).await?;
    let pod_versions: BTreeMap<String, String> = pods
        .iter()
        .filter_map(|p| {
            Some((
                p["metadata"]["name"].as_str()?.to_string(),
                p["metadata"]["labels"]["version"].as_str()?.to_string(),
            ))
        })
        .collect();
    let mut services = Vec::new();
    for name in [r.app.clone(), preview_name(&r.app)] {
        let svc = get_service(cluster, ns, &name).await?;
        let slices = if svc.is_some() {
            list_json_selected(
                cluster,
                "discovery.k8s.io/v1",
                "EndpointSlice",
                ns,
                Some(&format!("kubernetes.io/service-name={name}")),
            )
            .await?
        } else {
            Vec::new()
        };
        let (ready, total, by) = endpoint_counts(&slices, &pod_versions);
        services.push(ServiceStatus {
            name,
            exists: svc.is_some(),
            selects: svc.as_ref().and_then(selected_version),
            endpoints_ready: ready,
            endpoints_total: total,
            by_version: by,
        });
    }
    let active = services[0].selects.clone();
    let preview = services[1].selects.clone();
    let revs = history::list(cluster, ns, &r.app, &r.env).await?;
    let rollback = active.as_deref().and_then(|a| rollback_target(&revs, a));
    let mut versions: Vec<VersionStatus> = deployments
        .iter()
        .filter_map(|d| {
            let version = d["spec"]["template"]["metadata"]["labels"]["version"]
                .as_str()?
                .to_string();
            let mut roles = Vec::new();
            if active.as_deref() == Some(version.as_str()) {
                roles.push("active".to_string());
            }
            if preview.as_deref() == Some(version.as_str()) {
                roles.push("preview".to_string());
            }
            if rollback.as_deref() == Some(version.as_str()) {
                roles.push("rollback-target".to_string());
            }
            let n = |k: &str| d["status"][k].as_i64().unwrap_or(0) as i32;
            Some(VersionStatus {
                deployment: d["metadata"]["name"].as_str().unwrap_or("").to_string(),
                image: d["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                replicas: d["spec"]["replicas"].as_i64().unwrap_or(1) as i32,
                ready: n("readyReplicas"),
                available: n("availableReplicas"),
                updated: n("updatedReplicas"),
                roles,
                created: d["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                version,
            })
        })
        .collect();
    versions.sort_by(|a, b| a.created.cmp(&b.created).then(a.version.cmp(&b.version)));
    Ok(Status {
        app: r.app.clone(),
        env: r.env.clone(),
        namespace: ns.clone(),
        active,
        preview,
        rollback_target: rollback,
        last_switch: switches(&revs).pop(),
        versions,
        services,
    })
}
