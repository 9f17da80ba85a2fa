//! `pake deploy`: namespace -> secrets -> policies -> deploy -> verify.

use std::time::Duration;

use clap::Args;

use super::{Global, only_formats};
use crate::error::{ExitCode, Result};
use crate::output::Format;
use crate::workflow::{executor, release};

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// `server` (the default): the API server validates everything, nothing is changed;
    /// `client`: render and the offline checks only, no cluster.
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "server", value_name = "STRATEGY")]
    pub dry_run: Option<release::DryRun>,
    /// Deploy this image reference instead of pake.yaml's (`repo:tag` or `repo@sha256:...`).
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Upper bound on each rollout wait (also capped by progressDeadlineSeconds).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Wait for a concurrent run's lock instead of failing at once.
    #[arg(long)]
    pub wait_lock: bool,
    /// Revisions kept in history (default: pake.yaml's historyMax, else 10;
    /// 0 keeps all). Switch and rotation records are always kept.
    #[arg(long, value_name = "N")]
    pub history_max: Option<usize>,
    /// Take over fields owned by another field manager.
    #[arg(long)]
    pub force_conflicts: bool,
    /// Workflow file under workflows/ (without .yaml).
    #[arg(long, default_value = "deploy")]
    pub workflow: String,
}

pub fn selection(g: &Global) -> release::Selection {
    release::Selection {
        config: g.config.clone(),
        env: g.env.clone(),
        namespace: g.namespace.clone(),
        cluster: g.clusters.first().cloned(),
        ..Default::default()
    }
}

pub async fn run(g: &Global, a: DeployArgs) -> Result<ExitCode> {
    only_formats(g, &[Format::Text, Format::Json], "deploy")?;
    let ui = g.ui();
    if a.dry_run == Some(release::DryRun::Client) {
        // A fleet: each cluster's manifests (its overrides applied), offline.
        let each = super::each_cluster(g, |g| {
            let (workflow, image) = (a.workflow.clone(), a.image.clone());
            async move {
                let mut sel = selection(&g);
                sel.image = image;
                client_dry_run(&g, &release::prepare(&sel, &workflow)?)
            }
        });
        if let Some(r) = each.await {
            return r;
        }
    }
    let mut sel = selection(g);
    sel.image = a.image.clone();
    if a.dry_run != Some(release::DryRun::Client) && has_clusters(g)? {
        return fleet(g, a, sel).await;
    }
    let p = release::prepare(&sel, &a.workflow)?;
    if a.dry_run == Some(release::DryRun::Client) {
        return client_dry_run(g, &p);
    }
    let cluster = g.target().connect().await?;
    super::announce(g, &p.project, &p.resolved, Some(&cluster.context));
    let p = crate::steps::bluegreen::follow_active(&cluster, &sel, &a.workflow, p, &ui).await?;
    if a.dry_run.is_none() {
        // Only an interactive run of a protected environment shows the diff
        // summary before asking; everything else is decided without it.
        let summary = if p.resolved.protected && !g.yes && ui.interactive {
            let diffs = crate::steps::diff::compute(&cluster, &p.resolved, &p.plan).await?;
            crate::steps::diff::summary(&diffs, &p.resolved.image_ref)
        } else {
            String::new()
        };
        release::confirm_protected(&p.resolved, &ui, g.yes, "deploy", &summary)?;
    }
    // After the cluster answered (so an unreachable cluster is still exit 3),
    // before the first change.
    p.resolved.check_secret_sources()?;
    let opts = executor::Options {
        dry_run: a.dry_run.is_some(),
        force_conflicts: a.force_conflicts,
        timeout: a.timeout,
        wait_lock: a.wait_lock,
        history_max: a
            .history_max
            .or(p.project.config.history_max)
            .unwrap_or(crate::workflow::history::DEFAULT_HISTORY_MAX),
        ..Default::default()
    };
    let report = executor::run(
        &cluster,
        &p.resolved,
        &ui,
        &p.plan,
        &crate::steps::for_plan(&p.plan),
        &opts,
    )
    .await?;
    crate::report::deploy::print(&ui, &report);
    if report.exit_code() == ExitCode::Failed && ui.is_text() && !opts.dry_run {
        crate::output::err_line(format!(
            "next: `pake diagnose --env {}` shows the release as it runs now, with this run's record",
            p.resolved.env
        ));
    }
    Ok(report.exit_code())
}

/// The environment lists `clusters:` (a fleet deploy), checked before
/// anything else so bad flags are exit 2.
fn has_clusters(g: &Global) -> Result<bool> {
    let project = crate::config::Project::load(g.config.as_deref())?;
    let (env, _) = project.select_env(g.env.as_deref())?;
    let Some(o) = project.config.environments.get(&env) else {
        return Ok(false);
    };
    if o.clusters.is_empty() {
        return Ok(false);
    }
    if g.context.is_some() {
        return Err(crate::Error::usage(format!(
            "environment {env} names the context of each cluster: --context cannot be used with it"
        ))
        .fix("drop --context; narrow the fleet with --cluster NAME (repeatable)"));
    }
    Ok(true)
}

/// `pake deploy` across the environment's clusters (docs/fleet.md).
async fn fleet(g: &Global, a: DeployArgs, mut sel: release::Selection) -> Result<ExitCode> {
    use crate::steps::fleet as fleet_member;
    sel.cluster = None;
    let opts = fleet_member::DeployOptions {
        dry_run: a.dry_run.is_some(),
        force_conflicts: a.force_conflicts,
        timeout: a.timeout,
        wait_lock: a.wait_lock,
        history_max: a.history_max,
        workflow: a.workflow,
        yes: g.yes,
    };
    let ui = g.ui();
    let report = fleet_member::deploy(&sel, &g.clusters, g.kubeconfig.clone(), &opts, &ui).await?;
    crate::report::fleet::print(&ui, &report);
    Ok(report.exit_code())
}

/// `--dry-run=client`: what would be applied, rendered and put through the
/// offline checks of `pake audit` (Pod Security Standards and the guide's
/// checklist). No cluster is contacted.
fn client_dry_run(g: &Global, p: &release::Prepared) -> Result<ExitCode> {
    use crate::checks::audit::{self, AuditOptions};
    let ui = g.ui();
    super::announce(g, &p.project, &p.resolved, None);
    let objects: Vec<(String, usize, serde_json::Value)> = p
        .plan
        .manifests()
        // ExternalSecrets (`external:`) are complete objects: checked too.
        .filter(|m| m.template != "pake.yaml#secrets" || m.kind() == "ExternalSecret")
        .map(|m| (m.template.clone(), m.doc, m.object.clone()))
        .collect();
    let opts = AuditOptions {
        level: crate::checks::pss::Level::Restricted,
        version: crate::checks::pss::Version::Latest,
        fail_on: crate::checks::Severity::High,
        overrides: p.project.config.audit.checks.clone(),
        protected: p.resolved.protected,
    };
    let report = audit::audit_objects(&objects, &opts)?;
    if ui.is_text() {
        crate::output::out(crate::report::audit::text(&report, &ui));
        ui.line(format!(
            "{} deploy of {} to {} (client dry run): {} objects rendered, {} checked offline (Secret values are read at apply time); nothing was sent",
            ui.mark(report.summary.passed),
            p.resolved.app,
            p.resolved.env,
            p.plan.manifests().count(),
            objects.len()
        ));
    } else {
        ui.document("AuditReport", &report);
    }
    Ok(if report.summary.passed {
        ExitCode::Ok
    } else {
        ExitCode::Failed
    })
}

/// kubectl's (Go's) durations: `90s`, `1m30s`, `2h`, `1.5h`, `500ms`, plus a
/// plain number of seconds and `d` for days (pake's earlier spelling).
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("invalid duration {s:?} (use e.g. 90s, 1m30s, 2h)");
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            u => {
                return Err(format!(
                    "invalid duration unit {u:?} in {s:?} (use ns, us, ms, s, m, h or d)"
                ));
            }
        };
        rest = &rest[unit_len..];
        total += n * unit;
    }
    if !total.is_finite() || total > 1e10 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_durations() {
        let d = |s| parse_duration(s).unwrap();
        assert_eq!(d("90s"), Duration::from_secs(90));
        assert_eq!(d("1m30s"), Duration::from_secs(90));
        assert_eq!(d("2h"), Duration::from_secs(7200));
        assert_eq!(d("1h2m3s"), Duration::from_secs(3723));
        assert_eq!(d("1.5h"), Duration::from_secs(5400));
        assert_eq!(d("500ms"), Duration::from_millis(500));
        assert_eq!(d("45"), Duration::from_secs(45));
        assert_eq!(d("2d"), Duration::from_secs(172800));
        for bad in ["", "m", "5x", "1m30", "-5s", "1..5s", "99999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
