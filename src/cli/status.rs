//! `pake status`: current revision, image and digest, who and when, replicas
//! ready, active blue-green version, last rotation per secret, lock holder.

use clap::Args;

use super::{Global, only_formats};
use crate::error::{ExitCode, Result};
use crate::output::Format;
use crate::workflow::release;

#[derive(Debug, Args)]
pub struct StatusArgs {}

pub async fn run(g: &Global, _a: StatusArgs) -> Result<ExitCode> {
    only_formats(g, &[Format::Text, Format::Json], "status")?;
    // A fleet: every cluster in turn (docs/fleet.md).
    if let Some(r) = super::each_cluster(g, |g| async move { run_one(&g).await }).await {
        return r;
    }
    run_one(g).await
}

async fn run_one(g: &Global) -> Result<ExitCode> {
    only_formats(g, &[Format::Text, Format::Json], "status")?;
    let ui = g.ui();
    let p = release::prepare(&super::deploy::selection(g), "deploy")?;
    let cluster = super::target_for(g, &p)?.connect().await?;
    super::announce(g, &p.project, &p.resolved, Some(&cluster.context));
    let s = crate::steps::status::status(&cluster, &p.resolved).await?;
    if ui.is_text() {
        crate::output::out(crate::steps::status::text(&s));
    } else {
        ui.document("ReleaseStatus", &s);
    }
    Ok(ExitCode::Ok)
}
