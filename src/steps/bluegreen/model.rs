//! The switch history and the live state: which version is active, which
//! one a rollback returns to, and what `pake deploy` must deploy.

use ::kube::Api;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use serde::Serialize;

use crate::config::Resolved;
use crate::error::{Error, Result};
use crate::kube::Cluster;
use crate::output::Ui;
use crate::render::describe;
use crate::workflow::history::{self, Revision};
use crate::workflow::release;

use super::*;

// ---------------------------------------------------------------------------
// The switch history
// ---------------------------------------------------------------------------

/// One verified switch, as recorded in history.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SwitchRecord {
    pub revision: u32,
    pub from: String,
    pub to: String,
    pub time: String,
    pub user: String,
    /// `switch` or `rollback`.
    pub kind: SwitchKind,
}

/// Successful switches, oldest first.
pub fn switches(revs: &[Revision]) -> Vec<SwitchRecord> {
    revs.iter()
        .filter(|r| r.action == ACTION_SWITCH && r.status == STATUS_SWITCHED)
        .filter_map(|r| {
            Some(SwitchRecord {
                revision: r.revision,
                from: r.details["from"].as_str()?.to_string(),
                to: r.details["to"].as_str()?.to_string(),
                time: r.time.clone(),
                user: r.user.clone(),
                kind: match r.details["kind"].as_str() {
                    Some("rollback") => SwitchKind::Rollback,
                    _ => SwitchKind::Switch,
                },
            })
        })
        .collect()
}

/// The version a rollback returns to: the one the latest switch *to the
/// active version* came from. None if the active version was never switched
/// to (first deploy, or someone changed the selector by hand).
pub fn rollback_target(revs: &[Revision], active: &str) -> Option<String> {
    switches(revs)
        .into_iter()
        .rev()
        .find(|s| s.to == active)
        .map(|s| s.from)
        .filter(|f| f != active)
}

/// When a version stopped serving: the latest switch away from it.
pub(super) fn inactive_since(sw: &[SwitchRecord], version: &str) -> Option<jiff::Timestamp> {
    sw.iter()
        .rev()
        .find(|s| s.from == version)
        .and_then(|s| s.time.parse().ok())
}

// ---------------------------------------------------------------------------
// Live state
// ---------------------------------------------------------------------------

pub(super) async fn get_service(
    cluster: &Cluster,
    ns: &str,
    name: &str,
) -> Result<Option<Service>> {
    Api::<Service>::namespaced(cluster.client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| Error::from_kube(format!("GET Service {ns}/{name}"), e))
}

pub(super) async fn get_deployment(
    cluster: &Cluster,
    ns: &str,
    name: &str,
) -> Result<Option<Deployment>> {
    Api::<Deployment>::namespaced(cluster.client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| Error::from_kube(format!("GET Deployment {ns}/{name}"), e))
}

pub(super) fn selected_version(s: &Service) -> Option<String> {
    s.spec.as_ref()?.selector.as_ref()?.get("version").cloned()
}

/// The version the live Service `<app>` sends traffic to.
pub async fn active_version(cluster: &Cluster, r: &Resolved) -> Result<Option<String>> {
    Ok(get_service(cluster, &r.namespace, &r.app)
        .await?
        .as_ref()
        .and_then(selected_version))
}

/// The active version, or a clear error when there is no release to work with.
pub(super) async fn require_active(cluster: &Cluster, r: &Resolved) -> Result<String> {
    let who = describe("Service", Some(&r.namespace), &r.app);
    match get_service(cluster, &r.namespace, &r.app).await? {
        None => Err(Error::failed(format!(
            "{who} not found: {} is not deployed in {}",
            r.app, r.env
        ))
        .on(who)
        .fix(format!(
            "deploy the first version with `pake deploy --env {}`",
            r.env
        ))),
        Some(s) => selected_version(&s).ok_or_else(|| {
            Error::failed(format!("{who} does not select a `version` label"))
                .on(who)
                .fix("blue-green needs the Service to select app and version (templates/k8s/service.yaml); redeploy with `pake deploy`")
        }),
    }
}

/// For `pake deploy`: once blue-green is in use (a switch is recorded), the
/// version that serves traffic is the live Service's, not pake.yaml's. A
/// deploy then updates that version (its Deployment, PDB, and a Service that
/// keeps selecting it) instead of flipping traffic back to pake.yaml's
/// version without any of the switch's checks. Returns the version to deploy
/// when it differs from `r.version`.
pub async fn version_to_deploy(cluster: &Cluster, r: &Resolved) -> Result<Option<String>> {
    // First deploy: no namespace, so no history (and an identity bound only
    // inside the namespace could not even list it).
    if !crate::kube::namespace_exists(cluster, &r.namespace).await? {
        return Ok(None);
    }
    let revs = history::list(cluster, &r.namespace, &r.app, &r.env).await?;
    let sw = switches(&revs);
    let Some(last) = sw.last() else {
        return Ok(None);
    };
    let active = active_version(cluster, r)
        .await?
        .unwrap_or_else(|| last.to.clone());
    Ok((active != r.version).then_some(active))
}

/// Blue-green: once traffic was switched (`pake bluegreen switch`), the
/// active version is the live Service's, and `pake deploy` updates that one
/// rather than pake.yaml's `version` — which would move the traffic back
/// without any of the switch's checks. Re-plans with the active version when
/// the two differ (and `sel.version` does not set one explicitly).
pub async fn follow_active(
    cluster: &Cluster,
    sel: &release::Selection,
    workflow: &str,
    p: release::Prepared,
    ui: &Ui,
) -> Result<release::Prepared> {
    if sel.version.is_some() {
        return Ok(p);
    }
    match version_to_deploy(cluster, &p.resolved).await? {
        None => Ok(p),
        Some(active) => {
            ui.line(format!(
                "note: blue-green is in use and Service {} serves {active}: deploying {active} (pake.yaml says {}); release a new version with `pake bluegreen deploy`",
                p.resolved.app, p.resolved.version
            ));
            let mut sel = sel.clone();
            sel.version = Some(active);
            release::prepare(&sel, workflow)
        }
    }
}
