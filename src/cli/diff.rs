//! `pake diff`: what a deploy would change, from a server-side dry run.

use clap::Args;

use super::{Global, only_formats};
use crate::error::{ExitCode, Result};
use crate::output::Format;
use crate::steps::diff;
use crate::workflow::release;

#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    #[arg(long, default_value = "deploy")]
    pub workflow: String,
    /// Diff as if deploying this image reference (as `deploy --image`).
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
}

pub async fn run(g: &Global, a: DiffArgs) -> Result<ExitCode> {
    only_formats(g, &[Format::Text, Format::Json], "diff")?;
    // A fleet: every cluster in turn, each with its overrides (docs/fleet.md).
    let each = super::each_cluster(g, |g| {
        let a = a.clone();
        async move { run_one(&g, a).await }
    });
    if let Some(r) = each.await {
        return r;
    }
    run_one(g, a).await
}

async fn run_one(g: &Global, a: DiffArgs) -> Result<ExitCode> {
    let ui = g.ui();
    let mut sel = super::deploy::selection(g);
    sel.image = a.image.clone();
    let p = release::prepare(&sel, &a.workflow)?;
    let cluster = super::target_for(g, &p)?.connect().await?;
    super::announce(g, &p.project, &p.resolved, Some(&cluster.context));
    let p = crate::steps::bluegreen::follow_active(&cluster, &sel, &a.workflow, p, &ui).await?;
    let diffs = diff::compute(&cluster, &p.resolved, &p.plan).await?;
    let changed = diffs.iter().filter(|d| d.change != "unchanged").count();
    // What the change does to who can talk to whom.
    let declared = crate::checks::netpol::zero_trust::Declared::from_resolved(&p.resolved);
    let connectivity =
        crate::workflow::netpol::diff(&cluster, &p.resolved.namespace, &p.plan, &declared).await?;
    if ui.is_text() {
        for d in &diffs {
            if d.change == "unchanged" {
                continue;
            }
            ui.line(format!("=== {} ({})", d.object, d.change));
            ui.line(&d.diff);
        }
        ui.line(format!("{changed} of {} objects would change", diffs.len()));
        if !connectivity.is_empty() {
            ui.line("=== connectivity (pake netpol)");
            for c in &connectivity {
                ui.line(c.to_string());
            }
        }
        ui.line(format!("{} connections would change", connectivity.len()));
    } else {
        ui.document(
            "DiffReport",
            &serde_json::json!({"changed": changed, "objects": diffs, "connectivity": connectivity}),
        );
    }
    // Like `kubectl diff`: exit 1 when there are differences.
    Ok(if changed == 0 && connectivity.is_empty() {
        ExitCode::Ok
    } else {
        ExitCode::Failed
    })
}
