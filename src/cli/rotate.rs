//! `pake rotate-secret NAME`: arguments only; the work is in `steps::rotate`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args};

use super::{Global, only_formats};
use crate::error::{ExitCode, Result};
use crate::output::Format;
use crate::report::github::{self, Row};
use crate::steps::rotate::{self, NewValue};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").args(["length", "from_env", "from_file", "from_command"])))]
pub struct RotateArgs {
    /// The Secret to rotate (in the environment's namespace, or -n).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The key of the Secret that gets the new value; the other keys are kept.
    #[arg(long, default_value = "password")]
    pub key: String,
    /// Random bytes of the new value (base64 encoded, like `openssl rand -base64 N`).
    #[arg(long, value_name = "BYTES", default_value_t = 32)]
    pub length: usize,
    /// Take the new value from this environment variable (e.g. a CI secret).
    #[arg(long, value_name = "VAR")]
    pub from_env: Option<String>,
    /// Take the new value from this file.
    #[arg(long, value_name = "PATH")]
    pub from_file: Option<PathBuf>,
    /// Take the new value from this command's standard output (e.g. a vault CLI).
    #[arg(long, value_name = "CMD")]
    pub from_command: Option<String>,
    /// List the workloads that would restart; the API server checks every write, nothing changes.
    #[arg(long)]
    pub dry_run: bool,
    /// Only update the Secret; list the workloads that still run the old value.
    #[arg(long)]
    pub no_restart: bool,
    /// Upper bound of each rollout wait (also capped by progressDeadlineSeconds).
    #[arg(long, default_value = "5m", value_parser = super::deploy::parse_duration)]
    pub timeout: Duration,
    /// Wait for a concurrent run's lock instead of failing at once.
    #[arg(long)]
    pub wait_lock: bool,
    /// A fleet (`clusters:`): one random value per cluster instead of one shared value.
    #[arg(long)]
    pub per_cluster: bool,
}

pub async fn run(g: &Global, a: RotateArgs) -> Result<ExitCode> {
    only_formats(g, &[Format::Text, Format::Json], "rotate-secret")?;
    let ui = g.ui();
    let (project, resolved) = crate::workflow::release::resolve(&super::deploy::selection(g))?;
    if let Some(ext) = resolved
        .secrets
        .iter()
        .find(|s| s.name == a.name)
        .and_then(|s| s.external.clone())
    {
        return rotate_external(g, a, &project, &resolved, &ext).await;
    }
    let fleet = !project.config.environments[&resolved.env]
        .clusters
        .is_empty()
        && g.clusters.len() != 1
        && g.context.is_none();
    if a.per_cluster && !fleet {
        return Err(crate::error::Error::usage(format!(
            "--per-cluster applies to an environment with `clusters:` rotated across its clusters; {} is one cluster here",
            resolved.env
        ))
        .fix("drop --per-cluster"));
    }
    let source = match (a.from_env, a.from_file, a.from_command) {
        (Some(v), _, _) => NewValue::Env(v),
        (_, Some(p), _) => NewValue::File(resolved.root.join(p)),
        (_, _, Some(c)) => NewValue::Command(c),
        _ => NewValue::Random(a.length),
    };
    let opts = rotate::Options {
        secret: a.name,
        key: a.key,
        source,
        dry_run: a.dry_run,
        no_restart: a.no_restart,
        timeout: a.timeout,
        wait_lock: a.wait_lock,
        yes: g.yes,
    };
    if fleet {
        let sel = crate::workflow::release::Selection {
            cluster: None,
            ..super::deploy::selection(g)
        };
        let r = crate::steps::fleet::rotate_secret(
            &sel,
            &g.clusters,
            g.kubeconfig.clone(),
            &opts,
            a.per_cluster,
            &ui,
        )
        .await?;
        return Ok(finish_fleet(g, &r));
    }
    let cluster = super::target_in(g, &project, &resolved.env)?
        .connect()
        .await?;
    super::announce(g, &project, &resolved, Some(&cluster.context));
    let report = rotate::run(&cluster, &resolved, &ui, &opts).await?;
    finish(g, report)
}

/// An `external:` secret: the value changes in the store (the user's
/// `--from-command`, or already), ESO syncs it, pake restarts what reads it.
async fn rotate_external(
    g: &Global,
    a: RotateArgs,
    project: &crate::config::Project,
    resolved: &crate::config::Resolved,
    ext: &crate::config::ExternalSource,
) -> Result<ExitCode> {
    let o = &project.config.environments[&resolved.env];
    if !o.clusters.is_empty() && g.clusters.len() != 1 {
        return Err(crate::error::Error::usage(format!(
            "secret {} is synced by the External Secrets Operator on each cluster: rotate it one cluster at a time",
            a.name
        ))
        .fix(format!(
            "pass --cluster NAME (one of: {})",
            o.clusters
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if a.from_env.is_some() || a.from_file.is_some() || a.no_restart {
        return Err(crate::error::Error::usage(format!(
            "secret {} is synced by the External Secrets Operator from {} {}: pake never holds its value, so --from-env, --from-file and --no-restart do not apply",
            a.name,
            ext.store.kind.as_str(),
            ext.store.name
        ))
        .fix(format!(
            "change the value in the store with your own command: `pake rotate-secret {} --from-command \"vault kv put ...\"` (or change it first, then run `pake rotate-secret {}`)",
            a.name, a.name
        )));
    }
    let ui = g.ui();
    let opts = crate::steps::external_secrets::RotateOptions {
        secret: a.name,
        command: a.from_command,
        dry_run: a.dry_run,
        timeout: a.timeout,
        wait_lock: a.wait_lock,
        yes: g.yes,
    };
    let cluster = g.target().connect().await?;
    super::announce(g, project, resolved, Some(&cluster.context));
    let report =
        crate::steps::external_secrets::rotate(&cluster, resolved, &ui, ext, &opts).await?;
    finish(g, report)
}

/// Print the report (text or `-o json`) and the CI step summary; the exit code.
fn finish(g: &Global, report: rotate::Report) -> Result<ExitCode> {
    let ui = g.ui();
    if ui.is_text() {
        let mark = ui.mark(report.ok);
        match (&report.error, report.dry_run) {
            (_, true) => {}
            (None, _) => ui.line(format!(
                "{mark} rotated {}/{} in {} (revision {}) in {:.1}s",
                report.secret,
                report.key,
                report.namespace,
                report.revision.unwrap_or_default(),
                report.duration_ms as f64 / 1000.0
            )),
            (Some(e), _) => {
                ui.line(format!("{mark} rotation failed: {}", e.message));
                if let Some(o) = &e.object {
                    ui.line(format!("  object: {o}"));
                }
                if let Some(f) = &e.fix {
                    ui.line(format!("  fix: {f}"));
                }
            }
        }
        for w in &report.workloads {
            if w.action.left_alone() {
                ui.line(format!(
                    "! {} {}/{}: {}",
                    w.kind.kind(),
                    report.namespace,
                    w.name,
                    w.message.as_deref().unwrap_or(w.action.as_str())
                ));
            }
        }
    } else {
        ui.document("RotationReport", &report);
    }
    if !report.dry_run {
        let rows: Vec<Row> = report
            .workloads
            .iter()
            .map(|w| {
                Row::new(
                    format!("{} {}", w.kind.kind(), w.name),
                    !w.action.failed(),
                    w.message
                        .clone()
                        .unwrap_or_else(|| w.action.as_str().to_string()),
                )
            })
            .collect();
        github::finish(
            &format!(
                "pake rotate-secret: {}/{} in {}",
                report.secret, report.key, report.env
            ),
            report.ok,
            &rows,
            report
                .error
                .as_ref()
                .map(|e| (e.message.as_str(), e.fix.as_deref())),
        );
    }
    Ok(report.exit_code())
}

/// Print a fleet rotation (one line per cluster, or `-o json`); the exit code.
fn finish_fleet(g: &Global, r: &crate::steps::fleet::FleetRotation) -> ExitCode {
    let ui = g.ui();
    if !ui.is_text() {
        ui.document("FleetRotationReport", r);
        return r.exit_code();
    }
    for c in &r.clusters {
        let status = serde_json::to_value(c.status).unwrap_or_default();
        let revision = c.report.as_ref().and_then(|x| x.revision);
        ui.line(format!(
            "{} [{}] {}{}",
            ui.mark(matches!(
                c.status,
                crate::steps::fleet::RotationStatus::Rotated
                    | crate::steps::fleet::RotationStatus::Restored
            )),
            c.name,
            status.as_str().unwrap_or_default(),
            revision
                .map(|n| format!(" (revision {n})"))
                .unwrap_or_default()
        ));
    }
    let how = if r.per_cluster {
        "one new value per cluster"
    } else {
        "one new value on every cluster"
    };
    ui.line(format!(
        "{} {}/{} across {} cluster(s), {how}: {} in {:.1}s",
        ui.mark(r.ok),
        r.secret,
        r.key,
        r.clusters.len(),
        if r.ok {
            "rotated"
        } else {
            "failed; every rotated cluster was undone"
        },
        r.duration_ms as f64 / 1000.0
    ));
    r.exit_code()
}
