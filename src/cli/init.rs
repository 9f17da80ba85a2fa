//! `pake init`: scaffold pake.yaml, templates/ and workflows/ in a project.

use std::path::{Path, PathBuf};

use clap::Args;

use super::Global;
use crate::error::{Error, ExitCode, Result};
use crate::render::builtin;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to scaffold (default: current directory).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// App name (default: the directory's name).
    #[arg(long)]
    pub app: Option<String>,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

pub const PAKE_YAML: &str = include_str!("../../templates/pake.yaml");

pub async fn run(g: &Global, a: InitArgs) -> Result<ExitCode> {
    let ui = g.ui();
    let dir_name = std::fs::canonicalize(&a.dir)
        .ok()
        .and_then(|p| p.file_name().map(|s| s.to_string_lossy().to_lowercase()))
        .unwrap_or_else(|| "app".into());
    let app = a.app.clone().unwrap_or(dir_name);
    if !crate::config::is_dns_label(&app) {
        return Err(
            Error::usage(format!("app name {app:?} is not a valid DNS label"))
                .fix("pass --app NAME (lower-case letters, digits, '-')"),
        );
    }
    let mut files: Vec<(PathBuf, String)> = vec![
        (
            a.dir.join("pake.yaml"),
            PAKE_YAML.replace("app: backend", &format!("app: {app}")),
        ),
        (
            a.dir.join("workflows/deploy.yaml"),
            builtin::DEPLOY_WORKFLOW.to_string(),
        ),
    ];
    for (name, text) in builtin::K8S {
        files.push((a.dir.join("templates/k8s").join(name), text.to_string()));
    }
    for (name, text) in builtin::DOCKER {
        files.push((a.dir.join(name), text.to_string()));
    }
    for (name, text) in builtin::CI {
        files.push((a.dir.join(name), text.to_string()));
    }
    let existing: Vec<&Path> = files
        .iter()
        .map(|(p, _)| p.as_path())
        .filter(|p| p.exists())
        .collect();
    if !a.force && !existing.is_empty() {
        return Err(Error::usage(format!(
            "{} already exist(s): {}",
            existing.len(),
            existing
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .fix("pass --force to overwrite"));
    }
    for (path, text) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::usage(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(path, text)
            .map_err(|e| Error::usage(format!("cannot write {}: {e}", path.display())))?;
        ui.line(format!("{} wrote {}", ui.mark(true), path.display()));
    }
    ui.line("next: edit pake.yaml, then `pake render --env dev` and `pake deploy --env dev`");
    Ok(ExitCode::Ok)
}
