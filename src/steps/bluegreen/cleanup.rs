//! `pake bluegreen cleanup`: scale down or delete inactive versions by the
//! rules of `plan_cleanup`, recorded in history.

use std::collections::BTreeMap;
use std::time::Duration;

use ::kube::Api;
use ::kube::api::{Patch, PatchParams};
use k8s_openapi::api::apps::v1::Deployment;
use serde::Serialize;

use crate::config::Resolved;
use crate::error::{Error, Result};
use crate::kube::Cluster;
use crate::kube::apply::{self, FIELD_MANAGER};
use crate::kube::list::list_json_selected;
use crate::output::Ui;
use crate::workflow::executor::ErrorReport;
use crate::workflow::history::{self, Revision};
use crate::workflow::release;

use super::*;

// ---------------------------------------------------------------------------
// cleanup
// ---------------------------------------------------------------------------

pub struct CleanupOptions {
    /// Keep this many of the most recently active inactive versions.
    pub keep: usize,
    /// Only versions inactive for at least this long.
    pub after: Option<Duration>,
    /// Delete the Deployment and its PDB instead of scaling to 0.
    pub delete: bool,
    pub include_rollback_target: bool,
    pub include_preview: bool,
    pub dry_run: bool,
    pub wait_lock: bool,
    pub yes: bool,
}

/// A version as cleanup sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub version: String,
    pub deployment: String,
    pub replicas: i32,
    /// When it stopped serving (or was created, if it never served).
    pub inactive_since: jiff::Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupDecision {
    pub version: String,
    pub deployment: String,
    /// scale-down | delete | keep
    pub action: String,
    pub reason: String,
    /// What happened: done, would (dry run), unchanged, or failed.
    pub result: String,
}

/// Pure: what cleanup does with each version. The active version is never
/// touched; the rollback target and the preview candidate only when asked.
pub fn plan_cleanup(
    candidates: &[Candidate],
    active: &str,
    rollback: Option<&str>,
    preview: Option<&str>,
    o: &CleanupOptions,
    now: jiff::Timestamp,
) -> Vec<CleanupDecision> {
    let decide = |c: &Candidate, action: &str, reason: String| CleanupDecision {
        version: c.version.clone(),
        deployment: c.deployment.clone(),
        action: action.into(),
        reason,
        result: String::new(),
    };
    let mut out = Vec::new();
    let mut inactive: Vec<&Candidate> = Vec::new();
    for c in candidates {
        if c.version == active {
            out.push(decide(c, "keep", "active: serves the traffic".into()));
        } else if Some(c.version.as_str()) == rollback && !o.include_rollback_target {
            out.push(decide(
                c,
                "keep",
                "rollback target (--include-rollback-target to clean it up)".into(),
            ));
        } else if Some(c.version.as_str()) == preview && !o.include_preview {
            out.push(decide(
                c,
                "keep",
                "candidate behind the preview Service (--include-preview to clean it up)".into(),
            ));
        } else {
            inactive.push(c);
        }
    }
    // Newest first: --keep N spares the N most recently active ones.
    inactive.sort_by_key(|c| std::cmp::Reverse(c.inactive_since));
    for (i, c) in inactive.into_iter().enumerate() {
        let idle = now.duration_since(c.inactive_since);
        let idle = Duration::from_secs(idle.as_secs().max(0) as u64);
        if i < o.keep {
            out.push(decide(
                c,
                "keep",
                format!("one of the {} kept (--keep)", o.keep),
            ));
        } else if let Some(after) = o.after.filter(|a| idle < *a) {
            out.push(decide(
                c,
                "keep",
                format!(
                    "inactive for {}, less than --after {}",
                    human(idle),
                    human(after)
                ),
            ));
        } else if o.delete {
            out.push(decide(c, "delete", format!("inactive for {}", human(idle))));
        } else if c.replicas == 0 {
            out.push(decide(c, "keep", "already scaled down".into()));
        } else {
            out.push(decide(
                c,
                "scale-down",
                format!("inactive for {}", human(idle)),
            ));
        }
    }
    out.sort_by(|a, b| a.version.cmp(&b.version));
    out
}

/// `3d4h`, `2h5m`, `3m12s`, `45s`: the two largest units.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (days, hours, mins) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m{secs}s"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupReport {
    pub ok: bool,
    pub app: String,
    pub env: String,
    pub namespace: String,
    pub active: String,
    pub rollback_target: Option<String>,
    pub preview: Option<String>,
    pub dry_run: bool,
    pub decisions: Vec<CleanupDecision>,
    pub revision: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
}

pub async fn cleanup(
    cluster: &Cluster,
    r: &Resolved,
    ui: &Ui,
    o: &CleanupOptions,
) -> Result<CleanupReport> {
    require_active(cluster, r).await?;
    let tx = release::Release::new(cluster, r, ui);
    if !o.dry_run {
        tx.confirm(
            o.yes,
            "clean up",
            &format!("scale down or delete inactive versions of {}", r.app),
        )?;
    }
    let guard = if o.dry_run {
        None
    } else {
        Some(tx.lock(o.wait_lock, None).await?)
    };
    let res = cleanup_locked(cluster, r, o).await;
    if let Some(g) = guard
        && let Err(e) = g.release().await
    {
        tracing::warn!("could not release the lock: {e}");
    }
    res
}

pub(super) async fn cleanup_locked(
    cluster: &Cluster,
    r: &Resolved,
    o: &CleanupOptions,
) -> Result<CleanupReport> {
    let ns = &r.namespace;
    // Read under the lock: no switch can move the active version meanwhile.
    let active = require_active(cluster, r).await?;
    let preview = get_service(cluster, ns, &preview_name(&r.app))
        .await?
        .as_ref()
        .and_then(selected_version);
    let revs = history::list(cluster, ns, &r.app, &r.env).await?;
    let rollback = rollback_target(&revs, &active);
    let sw = switches(&revs);
    let deployments = list_json_selected(
        cluster,
        "apps/v1",
        "Deployment",
        ns,
        Some(&format!("app={}", r.app)),
    )
    .await?;
    let candidates: Vec<Candidate> = deployments
        .iter()
        .filter_map(|d| {
            let version = d["spec"]["template"]["metadata"]["labels"]["version"].as_str()?;
            let created: Option<jiff::Timestamp> = d["metadata"]["creationTimestamp"]
                .as_str()
                .and_then(|t| t.parse().ok());
            let since = match (inactive_since(&sw, version), created) {
                (Some(a), Some(b)) => a.max(b),
                (a, b) => a.or(b).unwrap_or_else(jiff::Timestamp::now),
            };
            Some(Candidate {
                version: version.to_string(),
                deployment: d["metadata"]["name"].as_str()?.to_string(),
                replicas: d["spec"]["replicas"].as_i64().unwrap_or(1) as i32,
                inactive_since: since,
            })
        })
        .collect();
    let mut decisions = plan_cleanup(
        &candidates,
        &active,
        rollback.as_deref(),
        preview.as_deref(),
        o,
        jiff::Timestamp::now(),
    );
    let mut report = CleanupReport {
        ok: true,
        app: r.app.clone(),
        env: r.env.clone(),
        namespace: ns.clone(),
        active: active.clone(),
        rollback_target: rollback,
        preview,
        dry_run: o.dry_run,
        decisions: Vec::new(),
        revision: None,
        error: None,
    };
    let deploy_api: Api<Deployment> = Api::namespaced(cluster.client.clone(), ns);
    let mut changed = Vec::new();
    for d in decisions.iter_mut() {
        if d.action == "keep" {
            d.result = "unchanged".into();
            continue;
        }
        // Never the active one, whatever the plan says.
        if d.version == active {
            d.result = "unchanged".into();
            continue;
        }
        if o.dry_run {
            d.result = "would".into();
            continue;
        }
        let res = if d.action == "delete" {
            delete_version(cluster, ns, &r.app, &d.version, &d.deployment).await
        } else {
            deploy_api
                .patch_scale(
                    &d.deployment,
                    &PatchParams {
                        field_manager: Some(FIELD_MANAGER.into()),
                        ..Default::default()
                    },
                    &Patch::Merge(serde_json::json!({"spec": {"replicas": 0}})),
                )
                .await
                .map(drop)
                .map_err(|e| {
                    Error::from_kube(format!("scale Deployment {ns}/{} to 0", d.deployment), e)
                })
        };
        match res {
            Ok(()) => {
                d.result = "done".into();
                changed.push(serde_json::json!({"version": d.version, "action": d.action}));
            }
            Err(e) => {
                d.result = format!("failed: {}", e.message);
                report.ok = false;
                report.error.get_or_insert((&e).into());
            }
        }
    }
    report.decisions = decisions;
    if !changed.is_empty() {
        let revision = history::next_revision(cluster, ns, &r.app, &r.env).await?;
        let rev = Revision {
            revision,
            status: ACTION_CLEANUP.into(),
            action: ACTION_CLEANUP.into(),
            time: history::now_rfc3339(),
            user: history::current_user(),
            image: String::new(),
            message: String::new(),
            manifests: Vec::new(),
            hashes: BTreeMap::new(),
            secret_hashes: BTreeMap::new(),
            details: serde_json::json!({"active": active, "changed": changed}),
        };
        history::record(cluster, ns, &r.app, &r.env, &rev).await?;
        report.revision = Some(revision);
    }
    Ok(report)
}

/// Delete a version's Deployment and the PDBs labelled with its version.
pub(super) async fn delete_version(
    cluster: &Cluster,
    ns: &str,
    app: &str,
    version: &str,
    deployment: &str,
) -> Result<()> {
    let pdbs = list_json_selected(
        cluster,
        "policy/v1",
        "PodDisruptionBudget",
        ns,
        Some(&format!("app={app},version={version}")),
    )
    .await?;
    apply::delete(
        cluster,
        &serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": deployment, "namespace": ns}}),
    )
    .await?;
    for p in &pdbs {
        apply::delete(cluster, p).await?;
    }
    Ok(())
}
