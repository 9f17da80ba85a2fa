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
    if let Some((project, r)) = fleet_env(g)? {
        return fleet(g, &a, &ui, &project, &r).await;
    }
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

/// The selected environment when it lists `clusters:` and no `--context` was given.
fn fleet_env(g: &Global) -> Result<Option<(crate::config::Project, crate::config::Resolved)>> {
    if g.context.is_some() {
        return Ok(None);
    }
    let Ok(project) = crate::config::Project::load(g.config.as_deref()) else {
        return Ok(None);
    };
    let Ok(r) = project.resolve(g.env.as_deref()) else {
        return Ok(None);
    };
    if project.config.environments[&r.env].clusters.is_empty() {
        return Ok(None);
    }
    Ok(Some((project, r)))
}

/// `pake doctor --env ENV` on a fleet: every cluster's context (narrowed by
/// `--cluster`), with its namespace; the Docker engine once.
async fn fleet(
    g: &Global,
    a: &DoctorArgs,
    ui: &crate::output::Ui,
    project: &crate::config::Project,
    r: &crate::config::Resolved,
) -> Result<ExitCode> {
    let o = &project.config.environments[&r.env];
    let plan = crate::config::fleet::plan(&r.env, o, &g.clusters)?;
    let mut reports = Vec::new();
    for (i, m) in plan.members().enumerate() {
        let mut cr = r.clone();
        crate::workflow::release::cluster_spec(project, &r.env, &m.name)?.apply(&mut cr);
        let namespace = g.namespace.clone().unwrap_or(cr.namespace);
        let target = crate::kube::Target {
            kubeconfig: g.kubeconfig.clone(),
            context: Some(m.context.clone()),
        };
        let docker = i == 0 && !a.no_docker;
        let report = crate::preflight::run(&target, Some(&namespace), docker).await;
        if ui.is_text() {
            let u = ui.for_cluster(&m.name);
            u.line(format!("context {} · namespace {namespace}", m.context));
            for c in &report.checks {
                u.line(format!("{} {:<14} {}", ui.mark(c.ok), c.name, c.detail));
                if let Some(fix) = &c.fix {
                    u.line(format!("  {:<14} fix: {fix}", ""));
                }
            }
        }
        reports.push(serde_json::json!({"cluster": m.name, "report": report}));
    }
    let ok = reports.iter().all(|v| v["report"]["ok"] == true);
    if !ui.is_text() {
        ui.document(
            "FleetDoctorReport",
            &serde_json::json!({"ok": ok, "env": r.env, "clusters": reports}),
        );
    }
    Ok(if ok { ExitCode::Ok } else { ExitCode::Cluster })
}
