//! `pake doctor`

use clap::Args;

use super::{Global, only_formats};
use crate::error::{ExitCode, Result};
use crate::output::Format;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Skip the Docker engine check (for CI jobs that only deploy).
    #[arg(long)]
    pub no_docker: bool,
}

pub async fn run(g: &Global, a: DoctorArgs) -> Result<ExitCode> {
    only_formats(g, &[Format::Text, Format::Json], "doctor")?;
    let ui = g.ui();
    // The namespace of the selected environment (--env, else the default one), if any.
    let resolved = crate::config::Project::load(g.config.as_deref())
        .ok()
        .and_then(|p| p.resolve(g.env.as_deref()).ok());
    let namespace = g
        .namespace
        .clone()
        .or_else(|| resolved.as_ref().map(|r| r.namespace.clone()));
    let mut report = crate::preflight::run(&g.target(), namespace.as_deref(), !a.no_docker).await;
    if let Some(r) = &resolved {
        let eso = crate::preflight::external_secrets(
            &g.target(),
            namespace.as_deref().unwrap_or(&r.namespace),
            &r.secrets,
        )
        .await;
        report.ok &= eso.iter().all(|c| c.ok);
        report.checks.extend(eso);
    }
    crate::output::err_line(format!(
        "{}context {} · namespace {}",
        resolved
            .as_ref()
            .map(|r| format!("environment {} · ", r.env))
            .unwrap_or_default(),
        report.context.as_deref().unwrap_or("none"),
        namespace.as_deref().unwrap_or("(the context's)")
    ));
    if ui.is_text() {
        for c in &report.checks {
            ui.line(format!("{} {:<14} {}", ui.mark(c.ok), c.name, c.detail));
            if let Some(fix) = &c.fix {
                ui.line(format!("  {:<14} fix: {fix}", ""));
            }
        }
    } else {
        ui.document("DoctorReport", &report);
    }
    // Every doctor check is about reaching the cluster or engine, or permissions: exit 3.
    Ok(if report.ok {
        ExitCode::Ok
    } else {
        ExitCode::Cluster
    })
}
