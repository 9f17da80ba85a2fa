//! `pake bluegreen deploy | switch | rollback | status | cleanup`.

use std::time::Duration;

use clap::{Args, Subcommand};

use super::deploy::{parse_duration, selection};
use super::{Global, only_formats};
use crate::error::{ExitCode, Result};
use crate::output::{Format, Ui};
use crate::report::github::{self, Row};
use crate::steps::bluegreen::{self, SwitchKind, SwitchOptions, SwitchReport};
use crate::workflow::release;

#[derive(Debug, Args)]
pub struct BluegreenArgs {
    #[command(subcommand)]
    pub command: BluegreenCommand,
}

#[derive(Debug, Subcommand)]
pub enum BluegreenCommand {
    /// Deploy VERSION next to the active one, wait until it is available, point the preview Service at it.
    Deploy(DeployArgs),
    /// Move the Service to VERSION after checks; verify its endpoints, switch back if they do not follow.
    Switch(SwitchArgs),
    /// Switch back to the version that was active before the current one.
    Rollback(RollbackArgs),
    /// Active and preview versions, replicas and readiness per version, endpoints per Service.
    Status(StatusArgs),
    /// Scale down (or delete) inactive versions; never the active one.
    Cleanup(CleanupArgs),
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The candidate version, e.g. v2 (Deployment `<app>-v2`).
    pub version: String,
    /// Image reference for the candidate (`repo:tag` or `repo@sha256:...`); default from pake.yaml.
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Upper bound on the rollout wait.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Wait for a concurrent run's lock instead of failing at once.
    #[arg(long)]
    pub wait_lock: bool,
    /// Take over fields owned by another field manager.
    #[arg(long)]
    pub force_conflicts: bool,
    /// Workflow file under workflows/ (without .yaml).
    #[arg(long, default_value = "deploy")]
    pub workflow: String,
}

#[derive(Debug, Args)]
pub struct SwitchCommon {
    /// Smoke test run with `sh -c` before the switch (env: PAKE_PREVIEW_SERVICE, PAKE_PREVIEW_URL, PAKE_NAMESPACE, ...); non-zero refuses the switch.
    #[arg(long, value_name = "CMD")]
    pub check: Option<String>,
    /// Upper bound on the --check command.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub check_timeout: Duration,
    /// Upper bound on the endpoint verification (and on the switch back).
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Wait for a concurrent run's lock instead of failing at once.
    #[arg(long)]
    pub wait_lock: bool,
    /// Take over Service fields owned by another field manager.
    #[arg(long)]
    pub force_conflicts: bool,
    /// Workflow file that renders the Service (without .yaml).
    #[arg(long, default_value = "deploy")]
    pub workflow: String,
    /// Check the target, and with `server` (the default) have the API server validate the Service; traffic does not move.
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "server", value_name = "STRATEGY")]
    pub dry_run: Option<release::DryRun>,
}

#[derive(Debug, Args)]
pub struct SwitchArgs {
    /// The version to send traffic to.
    pub version: String,
    #[command(flatten)]
    pub common: SwitchCommon,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub common: SwitchCommon,
}

#[derive(Debug, Args)]
pub struct StatusArgs {}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Keep the N most recently active inactive versions.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep: usize,
    /// Only versions inactive for at least this long (e.g. 1h, 2d).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub after: Option<Duration>,
    /// Delete the Deployment and its PDB instead of scaling it to 0.
    #[arg(long)]
    pub delete: bool,
    /// Also clean up the version `bluegreen rollback` would return to.
    #[arg(long)]
    pub include_rollback_target: bool,
    /// Also clean up the candidate behind the preview Service.
    #[arg(long)]
    pub include_preview: bool,
    /// Show what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Wait for a concurrent run's lock instead of failing at once.
    #[arg(long)]
    pub wait_lock: bool,
}

pub async fn run(g: &Global, a: BluegreenArgs) -> Result<ExitCode> {
    only_formats(g, &[Format::Text, Format::Json], "bluegreen")?;
    let ui = g.ui();
    match a.command {
        BluegreenCommand::Deploy(d) => {
            let mut sel = selection(g);
            sel.image = d.image;
            sel.version = Some(d.version);
            // Fails early on bad input; bluegreen::deploy plans again with the live state.
            let p = release::prepare(&sel, &d.workflow)?;
            let cluster = super::target_for(g, &p)?.connect().await?;
            super::announce(g, &p.project, &p.resolved, Some(&cluster.context));
            let o = bluegreen::DeployOptions {
                timeout: d.timeout,
                wait_lock: d.wait_lock,
                force_conflicts: d.force_conflicts,
                workflow: d.workflow,
                yes: g.yes,
            };
            let report = bluegreen::deploy(&cluster, &sel, &ui, &o).await?;
            crate::report::deploy::print(&ui, &report);
            Ok(report.exit_code())
        }
        BluegreenCommand::Switch(s) if is_fleet(g)? => {
            let o = switch_options(SwitchKind::Switch, &s.common, g.yes);
            let r = crate::steps::fleet::switch(
                &selection(g),
                g.kubeconfig.clone(),
                &s.version,
                &s.common.workflow,
                &o,
                &ui,
            )
            .await?;
            Ok(print_fleet_switch(&ui, &r))
        }
        BluegreenCommand::Switch(s) => {
            let p = release::prepare(&selection(g), &s.common.workflow)?;
            let cluster = super::target_for(g, &p)?.connect().await?;
            super::announce(g, &p.project, &p.resolved, Some(&cluster.context));
            let o = switch_options(SwitchKind::Switch, &s.common, g.yes);
            let r = bluegreen::switch(
                &cluster,
                &p.resolved,
                &ui,
                &s.version,
                &s.common.workflow,
                &o,
            )
            .await?;
            Ok(print_switch(&ui, &r))
        }
        BluegreenCommand::Rollback(s) => {
            let p = release::prepare(&selection(g), &s.common.workflow)?;
            let cluster = super::target_for(g, &p)?.connect().await?;
            super::announce(g, &p.project, &p.resolved, Some(&cluster.context));
            let o = switch_options(SwitchKind::Rollback, &s.common, g.yes);
            let r = bluegreen::rollback(&cluster, &p.resolved, &ui, &s.common.workflow, &o).await?;
            Ok(print_switch(&ui, &r))
        }
        BluegreenCommand::Status(_) => {
            // A fleet: each cluster's in turn (docs/fleet.md).
            if let Some(r) = super::each_cluster(g, |g| async move { status(&g).await }).await {
                return r;
            }
            status(g).await
        }
        BluegreenCommand::Cleanup(c) => {
            let p = release::prepare(&selection(g), "deploy")?;
            let cluster = super::target_for(g, &p)?.connect().await?;
            super::announce(g, &p.project, &p.resolved, Some(&cluster.context));
            let o = bluegreen::CleanupOptions {
                keep: c.keep,
                after: c.after,
                delete: c.delete,
                include_rollback_target: c.include_rollback_target,
                include_preview: c.include_preview,
                dry_run: c.dry_run,
                wait_lock: c.wait_lock,
                yes: g.yes,
            };
            let r = bluegreen::cleanup(&cluster, &p.resolved, &ui, &o).await?;
            if !r.dry_run {
                let rows: Vec<Row> = r
                    .decisions
                    .iter()
                    .map(|d| {
                        Row::new(
                            format!("{} {}", d.action, d.deployment),
                            d.result != "failed",
                            format!("{} ({})", d.result, d.reason),
                        )
                    })
                    .collect();
                github::finish(
                    &format!("pake bluegreen cleanup: {} in {}", r.app, r.env),
                    r.ok,
                    &rows,
                    r.error
                        .as_ref()
                        .map(|e| (e.message.as_str(), e.fix.as_deref())),
                );
            }
            if ui.is_text() {
                crate::output::out(crate::report::bluegreen::cleanup_text(&r));
            } else {
                ui.document("CleanupReport", &r);
            }
            Ok(if r.ok { ExitCode::Ok } else { ExitCode::Failed })
        }
    }
}

fn switch_options(kind: SwitchKind, c: &SwitchCommon, yes: bool) -> SwitchOptions {
    SwitchOptions {
        kind,
        check: c.check.clone(),
        check_timeout: c.check_timeout,
        timeout: c.timeout,
        wait_lock: c.wait_lock,
        force_conflicts: c.force_conflicts,
        yes,
        dry_run: c.dry_run,
    }
}

fn print_switch(ui: &Ui, r: &SwitchReport) -> ExitCode {
    if r.dry_run.is_none() {
        let mut rows: Vec<Row> = r
            .checks
            .iter()
            .map(|c| Row::new(format!("{} {}", c.check, c.object), c.ok, &c.message))
            .collect();
        if let Some(n) = r.endpoints {
            rows.push(Row::new(
                format!("endpoints of Service {}", r.app),
                r.ok,
                format!("{n} ready endpoint(s) of {}", r.to),
            ));
        }
        github::finish(
            &format!(
                "pake bluegreen {}: {} {} → {} in {}",
                r.action.as_str(),
                r.app,
                r.from,
                r.to,
                r.env
            ),
            r.ok,
            &rows,
            r.error
                .as_ref()
                .map(|e| (e.message.as_str(), e.fix.as_deref())),
        );
    }
    if ui.is_text() {
        crate::output::out(crate::report::bluegreen::switch_text(ui, r));
    } else {
        ui.document("SwitchReport", r);
    }
    r.exit_code()
}

/// A fleet-wide switch: the environment lists `clusters:` and neither
/// `--cluster` nor `--context` picks one.
fn is_fleet(g: &Global) -> Result<bool> {
    if !g.clusters.is_empty() || g.context.is_some() {
        return Ok(false);
    }
    let project = crate::config::Project::load(g.config.as_deref())?;
    let (env, _) = project.select_env(g.env.as_deref())?;
    Ok(project
        .config
        .environments
        .get(&env)
        .is_some_and(|o| !o.clusters.is_empty()))
}

fn print_fleet_switch(ui: &Ui, r: &crate::steps::fleet::FleetSwitchReport) -> ExitCode {
    if !ui.is_text() {
        ui.document("FleetSwitchReport", r);
        return r.exit_code();
    }
    for c in &r.clusters {
        let u = ui.for_cluster(&c.name);
        for rep in [&c.switch, &c.switched_back].into_iter().flatten() {
            for l in crate::report::bluegreen::switch_text(ui, rep).lines() {
                u.line(l);
            }
        }
        if let Some(e) = &c.error {
            u.line(format!("{} {}", ui.mark(false), e.message));
        }
        if c.switch.is_none() && c.error.is_none() {
            u.line("- not switched: an earlier cluster failed");
        }
    }
    let back: Vec<&str> = r
        .clusters
        .iter()
        .filter(|c| c.switched_back.as_ref().is_some_and(|s| s.ok))
        .map(|c| c.name.as_str())
        .collect();
    ui.line(if r.ok {
        format!(
            "{} {} switched to {} on all {} cluster(s)",
            ui.mark(true),
            r.app,
            r.to,
            r.clusters.len()
        )
    } else {
        format!(
            "{} switch of {} to {} in {} failed; {}",
            ui.mark(false),
            r.app,
            r.to,
            r.env,
            if back.is_empty() {
                "no cluster had switched".to_string()
            } else {
                format!("switched back: {}", back.join(", "))
            }
        )
    });
    r.exit_code()
}

/// `pake bluegreen status` on one cluster.
async fn status(g: &Global) -> Result<ExitCode> {
    let ui = g.ui();
    let p = release::prepare(&selection(g), "deploy")?;
    let cluster = super::target_for(g, &p)?.connect().await?;
    super::announce(g, &p.project, &p.resolved, Some(&cluster.context));
    let s = bluegreen::status(&cluster, &p.resolved).await?;
    if ui.is_text() {
        crate::output::out(crate::report::bluegreen::status_text(&s));
    } else {
        ui.document("BlueGreenStatus", &s);
    }
    Ok(ExitCode::Ok)
}
