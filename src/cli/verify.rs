//! `pake verify`: the guide's Kubernetes checklist against the live cluster.

use clap::Args;

use super::{Global, only_formats};
use crate::error::{ExitCode, Result};
use crate::output::Format;
use crate::report::github::{self, Row};
use crate::workflow::{executor, release};

#[derive(Debug, Args)]
pub struct VerifyArgs {}

pub async fn run(g: &Global, _a: VerifyArgs) -> Result<ExitCode> {
    only_formats(g, &[Format::Text, Format::Json], "verify")?;
    // A fleet: every cluster in turn (docs/fleet.md).
    if let Some(r) = super::each_cluster(g, |g| async move { run_one(&g).await }).await {
        return r;
    }
    run_one(g).await
}

async fn run_one(g: &Global) -> Result<ExitCode> {
    only_formats(g, &[Format::Text, Format::Json], "verify")?;
    let ui = g.ui();
    let p = release::prepare(&super::deploy::selection(g), "deploy")?;
    let cluster = super::target_for(g, &p)?.connect().await?;
    super::announce(g, &p.project, &p.resolved, Some(&cluster.context));
    let opts = executor::Options::default();
    let ctx = executor::Ctx {
        cluster: &cluster,
        resolved: &p.resolved,
        ui: &ui,
        opts: &opts,
    };
    let mut checks = crate::steps::verify::run(&ctx).await?;
    checks.extend(crate::steps::verify::runtime_posture(&ctx).await?);
    let ok = checks.iter().all(|c| c.ok);
    if ui.is_text() {
        let w = checks.iter().map(|c| c.check.len()).max().unwrap_or(0);
        for c in &checks {
            ui.line(format!(
                "{} {:<w$}  {:<40}  {}",
                if c.not_provable {
                    "?".to_string()
                } else {
                    ui.mark(c.ok)
                },
                c.check,
                c.object,
                c.message
            ));
            if let Some(f) = &c.fix {
                ui.line(format!("  {:<w$}  fix: {f}", ""));
            }
        }
        let failed = checks.iter().filter(|c| !c.ok).count();
        let unprovable = checks.iter().filter(|c| c.not_provable).count();
        ui.line(format!(
            "{} of {} checks passed in namespace {}{}",
            checks.len() - failed - unprovable,
            checks.len(),
            p.resolved.namespace,
            if unprovable > 0 {
                format!(" ({unprovable} not provable)")
            } else {
                String::new()
            }
        ));
    } else {
        ui.document("VerifyReport", &serde_json::json!({"ok": ok, "namespace": p.resolved.namespace, "env": p.resolved.env, "checks": checks}));
    }
    let rows: Vec<Row> = checks
        .iter()
        .map(|c| Row::new(format!("{} {}", c.check, c.object), c.ok, &c.message))
        .collect();
    github::finish(
        &format!("pake verify: {} → {}", p.resolved.app, p.resolved.env),
        ok,
        &rows,
        None,
    );
    Ok(if ok { ExitCode::Ok } else { ExitCode::Failed })
}
