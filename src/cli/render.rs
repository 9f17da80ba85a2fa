//! `pake render`: the manifests a deploy would apply. No cluster needed.

use clap::Args;

use super::{Global, only_formats};
use crate::error::{ExitCode, Result};
use crate::output::Format;
use crate::workflow::release;

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Workflow file under workflows/ (without .yaml).
    #[arg(long, default_value = "deploy")]
    pub workflow: String,
}

pub async fn run(g: &Global, a: RenderArgs) -> Result<ExitCode> {
    only_formats(g, &[Format::Text, Format::Json], "render")?;
    let p = release::prepare(&super::deploy::selection(g), &a.workflow)?;
    super::announce(g, &p.project, &p.resolved, None);
    let ms: Vec<_> = p.plan.manifests().cloned().collect();
    match g.output {
        Format::Json => crate::output::out_line(serde_json::to_string_pretty(&serde_json::json!({"apiVersion": "v1", "kind": "List", "items": ms.iter().map(|m| &m.object).collect::<Vec<_>>()})).expect("json")),
        _ => crate::output::out(crate::render::to_yaml(&ms)),
    }
    Ok(ExitCode::Ok)
}
