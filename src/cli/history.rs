//! `pake history` and `pake rollback`.

use std::time::Duration;

use clap::Args;

use super::{Global, only_formats};
use crate::error::{ExitCode, Result};
use crate::output::Format;
use crate::workflow::{executor, history, recovery, release, rollback};

#[derive(Debug, Args)]
pub struct HistoryArgs {}

pub async fn history(g: &Global, _a: HistoryArgs) -> Result<ExitCode> {
    only_formats(g, &[Format::Text, Format::Json], "history")?;
    // A fleet: each cluster's own history in turn (docs/fleet.md).
    if let Some(r) = super::each_cluster(g, |g| async move { history_one(&g).await }).await {
        return r;
    }
    history_one(g).await
}

async fn history_one(g: &Global) -> Result<ExitCode> {
    let ui = g.ui();
    let p = release::prepare(&super::deploy::selection(g), "deploy")?;
    let cluster = super::target_for(g, &p)?.connect().await?;
    super::announce(g, &p.project, &p.resolved, Some(&cluster.context));
    let r = &p.resolved;
    let mut revs = history::list(&cluster, &r.namespace, &r.app, &r.env).await?;
    // A pending revision whose run no longer holds the lock shows as interrupted.
    if revs.iter().any(|v| v.status == recovery::PENDING) {
        let holder = recovery::lock_holder(&cluster, &r.namespace, &r.app, &r.env).await;
        for v in revs.iter_mut() {
            let shown = recovery::shown_status(v, holder.as_deref());
            if v.status != shown.as_str() {
                v.message = format!(
                    "its run ended without finishing ({}); the next deploy or rotate-secret reports what is live",
                    v.message
                );
                v.status = shown.into();
            }
        }
    }
    if ui.is_text() {
        if revs.is_empty() {
            ui.line(format!(
                "no releases of {} in {} (namespace {})",
                r.app, r.env, r.namespace
            ));
        } else {
            ui.line(format!(
                "{:<8} {:<20} {:<11} {:<16} {:<20} {:<30} MESSAGE",
                "REVISION", "TIME", "STATUS", "ACTION", "USER", "IMAGE"
            ));
            for v in &revs {
                // A fleet run's revisions say which fleet they belong to.
                let message = match v.details["fleet"]["id"].as_str() {
                    Some(id) if v.message.is_empty() => id.to_string(),
                    Some(id) => format!("{id}: {}", v.message),
                    None => v.message.clone(),
                };
                ui.line(format!(
                    "{:<8} {:<20} {:<11} {:<16} {:<20} {:<30} {}",
                    v.revision, v.time, v.status, v.action, v.user, v.image, message
                ));
            }
        }
    } else {
        let slim: Vec<_> = revs
            .iter()
            .map(|v| serde_json::json!({"revision": v.revision, "time": v.time, "status": v.status, "action": v.action, "user": v.user, "image": v.image, "message": v.message, "hashes": v.hashes, "secretHashes": v.secret_hashes, "details": v.details}))
            .collect();
        ui.document("History", &serde_json::json!({"app": r.app, "env": r.env, "namespace": r.namespace, "revisions": slim}));
    }
    Ok(ExitCode::Ok)
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Revision to return to (default: the one before the current).
    #[arg(long, value_name = "N")]
    pub to_revision: Option<u32>,
    /// Upper bound on each rollout wait (kubectl durations: 90s, 1m30s, 2h).
    #[arg(long, default_value = "5m", value_parser = super::deploy::parse_duration)]
    pub timeout: Duration,
    /// Wait for a concurrent run's lock instead of failing at once.
    #[arg(long)]
    pub wait_lock: bool,
    /// `server` (the default): restore as a server-side dry run, nothing is changed;
    /// `client`: read the history and show what would be restored, no write.
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "server", value_name = "STRATEGY")]
    pub dry_run: Option<release::DryRun>,
}

pub async fn rollback(g: &Global, a: RollbackArgs) -> Result<ExitCode> {
    only_formats(g, &[Format::Text, Format::Json], "rollback")?;
    let ui = g.ui();
    let p = release::prepare(&super::deploy::selection(g), "deploy")?;
    let cluster = super::target_for(g, &p)?.connect().await?;
    super::announce(g, &p.project, &p.resolved, Some(&cluster.context));
    let revs = history::list(
        &cluster,
        &p.resolved.namespace,
        &p.resolved.app,
        &p.resolved.env,
    )
    .await?;
    let rollback::Rollback {
        resolved: r,
        target,
        plan,
    } = rollback::plan(&p.resolved, &revs, a.to_revision)?;
    if plan.manifests().any(|m| m.kind() == "ExternalSecret") {
        ui.line(format!(
            "note: {}; ESO re-syncs the restored ExternalSecret from what the store holds now",
            crate::steps::external_secrets::NOT_OURS
        ));
    }
    if a.dry_run == Some(release::DryRun::Client) {
        let objects: Vec<String> = plan.manifests().map(|m| describe(&m.object)).collect();
        if ui.is_text() {
            ui.line(format!(
                "rollback of {} in {} would restore revision {} ({}): {} objects (client dry run; nothing was sent)",
                r.app,
                r.env,
                target.revision,
                target.image,
                objects.len()
            ));
            for o in &objects {
                ui.line(format!("  {o}"));
            }
        } else {
            ui.document(
                "RollbackPlan",
                &serde_json::json!({"app": r.app, "env": r.env, "namespace": r.namespace, "toRevision": target.revision, "image": target.image, "objects": objects, "dryRun": "client"}),
            );
        }
        return Ok(ExitCode::Ok);
    }
    if a.dry_run.is_none() {
        release::confirm_protected(
            &r,
            &ui,
            g.yes,
            "roll back",
            &format!("return to revision {} ({})", target.revision, target.image),
        )?;
    }
    let opts = executor::Options {
        dry_run: a.dry_run.is_some(),
        timeout: a.timeout,
        wait_lock: a.wait_lock,
        ..rollback::options(&target)
    };
    let report = executor::run(
        &cluster,
        &r,
        &ui,
        &plan,
        &crate::steps::for_plan(&plan),
        &opts,
    )
    .await?;
    crate::report::deploy::print(&ui, &report);
    Ok(report.exit_code())
}

/// `Kind namespace/name` of a manifest.
fn describe(o: &serde_json::Value) -> String {
    let ns = o["metadata"]["namespace"]
        .as_str()
        .map(|n| format!("{n}/"))
        .unwrap_or_default();
    format!(
        "{} {ns}{}",
        o["kind"].as_str().unwrap_or("?"),
        o["metadata"]["name"].as_str().unwrap_or("?")
    )
}
