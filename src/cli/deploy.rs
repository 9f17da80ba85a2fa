//! `pake deploy`: namespace -> secrets -> policies -> deploy -> verify.

use std::time::Duration;

use clap::Args;

use super::{Global, only_formats};
use crate::error::{ExitCode, Result};
use crate::output::Format;
use crate::workflow::{executor, release};

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Server-side dry run: the API server validates everything, nothing is changed.
    #[arg(long)]
    pub dry_run: bool,
    /// Deploy this image reference instead of pake.yaml's (`repo:tag` or `repo@sha256:...`).
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Upper bound on each rollout wait (also capped by progressDeadlineSeconds).
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

pub fn selection(g: &Global) -> release::Selection {
    release::Selection {
        config: g.config.clone(),
        env: g.env.clone(),
        namespace: g.namespace.clone(),
        ..Default::default()
    }
}

pub async fn run(g: &Global, a: DeployArgs) -> Result<ExitCode> {
    only_formats(g, &[Format::Text, Format::Json], "deploy")?;
    let ui = g.ui();
    let mut sel = selection(g);
    sel.image = a.image.clone();
    let p = release::prepare(&sel, &a.workflow)?;
    let cluster = g.target().connect().await?;
    let p = release::follow_active(&cluster, &sel, &a.workflow, p, &ui).await?;
    if !a.dry_run {
        // Only an interactive run of a protected environment shows the diff
        // summary before asking; everything else is decided without it.
        let summary = if p.resolved.protected && !g.yes && ui.interactive {
            let diffs = crate::workflow::diff::compute(&cluster, &p.resolved, &p.plan).await?;
            crate::workflow::diff::summary(&diffs, &p.resolved.image_ref)
        } else {
            String::new()
        };
        release::confirm_protected(&p.resolved, &ui, g.yes, "deploy", &summary)?;
    }
    let opts = executor::Options {
        dry_run: a.dry_run,
        force_conflicts: a.force_conflicts,
        timeout: a.timeout,
        wait_lock: a.wait_lock,
        ..Default::default()
    };
    let report = executor::run(&cluster, &p.resolved, &ui, &p.plan, &opts).await?;
    crate::report::deploy::print(&ui, &report);
    Ok(report.exit_code())
}

/// `90s`, `5m`, `1h`, or plain seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (use e.g. 90s, 5m, 1h)"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("invalid duration unit in {s:?} (use s, m, h or d)")),
    };
    Ok(Duration::from_secs(secs))
}
