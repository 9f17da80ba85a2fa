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

/// The deployer roles `pake init` writes to `templates/rbac/`.
pub const RBAC: &[(&str, &str)] = &[
    (
        "deployer-cluster.yaml",
        include_str!("../../templates/rbac/deployer-cluster.yaml"),
    ),
    (
        "deployer-role.yaml",
        include_str!("../../templates/rbac/deployer-role.yaml"),
    ),
    (
        "deployer-rolebinding.yaml",
        include_str!("../../templates/rbac/deployer-rolebinding.yaml"),
    ),
];

/// A DNS label from a folder name: lower-case, runs of anything but letters
/// and digits become one `-`, no leading or trailing `-`, at most 63 characters.
pub fn dns_label_from(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed: String = out.trim_matches('-').chars().take(63).collect();
    trimmed.trim_end_matches('-').to_string()
}

pub async fn run(g: &Global, a: InitArgs) -> Result<ExitCode> {
    let ui = g.ui();
    // The directory's name made a DNS label (`My_App` -> `my-app`); an
    // explicit --app must be one already.
    let dir_name = std::fs::canonicalize(&a.dir)
        .ok()
        .or_else(|| Some(a.dir.clone()))
        .and_then(|p| p.file_name().map(|s| dns_label_from(&s.to_string_lossy())))
        .filter(|s| !s.is_empty())
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
    // The roles of the identity pake deploys as (README, `pake doctor` and
    // `pake help rbac` point at them).
    for (name, text) in RBAC {
        files.push((a.dir.join("templates/rbac").join(name), text.to_string()));
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
    if ignore_pake_state(&a.dir)? {
        ui.line(format!(
            "{} added .pake/ to {}",
            ui.mark(true),
            a.dir.join(".gitignore").display()
        ));
    }
    ui.line("next: edit pake.yaml, then `pake render` and `pake deploy` (environment dev; `pake env` lists them)");
    Ok(ExitCode::Ok)
}

/// `.pake/` holds this checkout's state (`pake env use`, the build record):
/// never committed. Appends it to `.gitignore` unless already listed; true
/// when the file changed.
pub fn ignore_pake_state(dir: &Path) -> Result<bool> {
    let path = dir.join(".gitignore");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::usage(format!("cannot read {}: {e}", path.display()))),
    };
    let listed = text
        .lines()
        .map(str::trim)
        .any(|l| matches!(l, ".pake" | ".pake/" | "/.pake" | "/.pake/" | ".pake/*"));
    if listed {
        return Ok(false);
    }
    let mut out = text;
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("# pake's state for this checkout (`pake env use`, the build record)\n.pake/\n");
    std::fs::write(&path, out)
        .map_err(|e| Error::usage(format!("cannot write {}: {e}", path.display())))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_become_dns_labels() {
        for (from, to) in [
            ("My_App", "my-app"),
            ("backend", "backend"),
            ("--Weird  name!!", "weird-name"),
            ("über.service", "ber-service"),
            ("___", ""),
        ] {
            assert_eq!(dns_label_from(from), to, "{from}");
            assert!(to.is_empty() || crate::config::is_dns_label(to));
        }
        assert_eq!(dns_label_from(&"a".repeat(100)).len(), 63);
    }

    #[test]
    fn gitignore_gets_pake_state_once() {
        let d = tempfile::tempdir().unwrap();
        assert!(ignore_pake_state(d.path()).unwrap());
        assert!(!ignore_pake_state(d.path()).unwrap());
        let t = std::fs::read_to_string(d.path().join(".gitignore")).unwrap();
        assert_eq!(t.matches(".pake/").count(), 1, "{t}");
        std::fs::write(d.path().join(".gitignore"), "target").unwrap();
        assert!(ignore_pake_state(d.path()).unwrap());
        let t = std::fs::read_to_string(d.path().join(".gitignore")).unwrap();
        assert!(t.starts_with("target\n"), "{t}");
        assert!(t.ends_with(".pake/\n"), "{t}");
    }
}
