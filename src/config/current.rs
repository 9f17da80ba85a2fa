//! Which pake.yaml and which environment a command acts on when the user
//! did not say: the kubectl "current context" habit, for pake.
//!
//! - pake.yaml: `--config`/`PAKE_CONFIG`, else the current directory or the
//!   nearest parent holding one (like cargo and git), stopping at the
//!   repository root (a directory with `.git`) or `/`.
//! - environment, first match wins: `--env`/`PAKE_ENV`; the one chosen for
//!   this checkout with `pake env use NAME` (`.pake/env`, git-ignored); the
//!   project's `defaultEnvironment`; the only environment when there is one.

use std::path::{Path, PathBuf};

use super::{FILE_NAME, Project, ProjectConfig};
use crate::error::{Error, Result};

/// Where the checkout's chosen environment is kept, relative to pake.yaml's directory.
pub const CURRENT_ENV_PATH: &str = ".pake/env";

/// Why an environment was selected: shown on every command's first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum EnvSource {
    /// `--env NAME` or `PAKE_ENV`.
    Flag,
    /// `pake env use NAME` (`.pake/env`).
    Checkout,
    /// `defaultEnvironment:` in pake.yaml.
    ProjectDefault,
    /// pake.yaml has exactly one environment.
    Only,
}

impl EnvSource {
    pub fn describe(self) -> &'static str {
        match self {
            EnvSource::Flag => "--env/PAKE_ENV",
            EnvSource::Checkout => "`pake env use`",
            EnvSource::ProjectDefault => "defaultEnvironment in pake.yaml",
            EnvSource::Only => "the only environment",
        }
    }
}

/// Find pake.yaml for a command run in `start`: `start` itself or the nearest
/// parent, not above the repository root (the first directory holding `.git`).
pub fn discover(start: &Path) -> Result<PathBuf> {
    let start_abs = std::fs::canonicalize(start).unwrap_or_else(|_| start.to_path_buf());
    let mut dir = Some(start_abs.as_path());
    while let Some(d) = dir {
        let candidate = d.join(FILE_NAME);
        if candidate.is_file() {
            // Keep the short relative form when it is the current directory,
            // so messages read `pake.yaml:12` as before.
            return Ok(if d == start_abs && start == Path::new(".") {
                PathBuf::from(FILE_NAME)
            } else if d == start_abs {
                start.join(FILE_NAME)
            } else {
                candidate
            });
        }
        if d.join(".git").exists() {
            break;
        }
        dir = d.parent();
    }
    let stop = dir
        .map(|d| format!("up to the repository root {}", d.display()))
        .unwrap_or_else(|| "up to /".into());
    Err(Error::usage(format!(
        "no {FILE_NAME} in {} or any parent directory ({stop})",
        start_abs.display()
    ))
    .fix("run pake inside the project, pass --config PATH (or set PAKE_CONFIG), or create one with `pake init`"))
}

/// The environment chosen for this checkout (`pake env use`), if any.
pub fn checkout_env(root: &Path) -> Result<Option<String>> {
    let path = root.join(CURRENT_ENV_PATH);
    match std::fs::read_to_string(&path) {
        Ok(s) => {
            let name = s.trim();
            Ok((!name.is_empty()).then(|| name.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::usage(format!("cannot read {}: {e}", path.display()))
            .fix("run `pake env use NAME` to choose the environment again")),
    }
}

/// Record `name` as this checkout's environment (`pake env use NAME`).
pub fn set_checkout_env(root: &Path, name: &str) -> Result<PathBuf> {
    let path = root.join(CURRENT_ENV_PATH);
    let dir = path.parent().expect(".pake/env has a parent");
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::usage(format!("cannot create {}: {e}", dir.display())))?;
    std::fs::write(&path, format!("{name}\n"))
        .map_err(|e| Error::usage(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

/// Forget the checkout's environment (`pake env use --unset`).
pub fn clear_checkout_env(root: &Path) -> Result<()> {
    let path = root.join(CURRENT_ENV_PATH);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::usage(format!(
            "cannot remove {}: {e}",
            path.display()
        ))),
    }
}

/// `defaultEnvironment` must name an environment (checked at load, exit 2).
pub fn check_default(c: &ProjectConfig, text: &str, path: &Path) -> Result<()> {
    match &c.default_environment {
        Some(d) if !c.environments.contains_key(d) => {
            let line = text
                .lines()
                .position(|l| l.trim_start().starts_with("defaultEnvironment"))
                .map(|i| i + 1)
                .unwrap_or(0);
            Err(Error::usage(format!(
                "{}:{line}: defaultEnvironment {d:?} is not one of the environments",
                path.display()
            ))
            .fix(format!("use one of: {}", known(c).join(", "))))
        }
        _ => Ok(()),
    }
}

fn known(c: &ProjectConfig) -> Vec<&str> {
    c.environments.keys().map(String::as_str).collect()
}

impl Project {
    /// The environment a command acts on and why (see the module docs).
    pub fn select_env(&self, explicit: Option<&str>) -> Result<(String, EnvSource)> {
        let c = &self.config;
        if let Some(e) = explicit {
            return Ok((e.to_string(), EnvSource::Flag));
        }
        if let Some(e) = checkout_env(&self.root())? {
            if !c.environments.contains_key(&e) {
                return Err(Error::usage(format!(
                    "the environment chosen for this checkout ({e:?}, in {}) is not in {}",
                    self.root().join(CURRENT_ENV_PATH).display(),
                    self.path.display()
                ))
                .fix(format!(
                    "choose another with `pake env use NAME` ({}) or pass --env NAME",
                    known(c).join(", ")
                )));
            }
            return Ok((e, EnvSource::Checkout));
        }
        if let Some(d) = &c.default_environment {
            return Ok((d.clone(), EnvSource::ProjectDefault));
        }
        if c.environments.len() == 1 {
            let only = c.environments.keys().next().expect("one environment");
            return Ok((only.clone(), EnvSource::Only));
        }
        Err(Error::usage("no environment selected").fix(format!(
            "pass --env NAME, set PAKE_ENV, choose one for this checkout with `pake env use NAME`, or set `defaultEnvironment:` in pake.yaml; known environments: {}",
            known(c).join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "app: backend\nimage: pake-backend\nenvironments:\n  dev:\n    namespace: pake-dev\n  prod:\n    namespace: pake-prod\n    protected: true\n";

    fn project(dir: &Path, yaml: &str) -> Project {
        let path = dir.join(FILE_NAME);
        std::fs::write(&path, yaml).unwrap();
        Project::load(Some(&path)).unwrap()
    }

    #[test]
    fn precedence_flag_checkout_default_only() {
        let d = tempfile::tempdir().unwrap();
        let p = project(d.path(), &format!("defaultEnvironment: dev\n{TWO}"));
        assert_eq!(
            p.select_env(None).unwrap(),
            ("dev".into(), EnvSource::ProjectDefault)
        );
        set_checkout_env(&p.root(), "prod").unwrap();
        let (env, src) = p.select_env(None).unwrap();
        assert_eq!((env.as_str(), src), ("prod", EnvSource::Checkout));
        // A protected environment reached by default is still protected.
        assert!(p.resolve(None).unwrap().protected);
        assert_eq!(
            p.select_env(Some("dev")).unwrap(),
            ("dev".into(), EnvSource::Flag)
        );
        clear_checkout_env(&p.root()).unwrap();
        assert_eq!(p.select_env(None).unwrap().1, EnvSource::ProjectDefault);

        let p = project(d.path(), TWO);
        let e = p.select_env(None).unwrap_err();
        assert_eq!(e.kind, crate::ExitCode::Usage);
        assert!(e.fix.unwrap().contains("pake env use"));

        let p = project(
            d.path(),
            "app: a\nimage: i\nenvironments:\n  only:\n    namespace: x\n",
        );
        assert_eq!(
            p.select_env(None).unwrap(),
            ("only".into(), EnvSource::Only)
        );
    }

    #[test]
    fn stale_checkout_choice_is_a_usage_error() {
        let d = tempfile::tempdir().unwrap();
        let p = project(d.path(), TWO);
        set_checkout_env(&p.root(), "qa").unwrap();
        let e = p.select_env(None).unwrap_err();
        assert!(e.message.contains("\"qa\""), "{}", e.message);
        assert!(e.fix.unwrap().contains("dev, prod"));
    }

    #[test]
    fn unknown_default_environment_is_refused_with_its_line() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(FILE_NAME);
        std::fs::write(&path, format!("{TWO}defaultEnvironment: qa\n")).unwrap();
        let e = Project::load(Some(&path)).unwrap_err();
        assert!(e.message.contains("pake.yaml:9"), "{}", e.message);
        assert!(e.fix.unwrap().contains("dev, prod"));
    }

    #[test]
    fn discovery_walks_up_to_the_repository_root() {
        let d = tempfile::tempdir().unwrap();
        let repo = d.path().join("repo");
        let deep = repo.join("svc/src/handlers");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        // Above the repository root: never found.
        std::fs::write(d.path().join(FILE_NAME), TWO).unwrap();
        let e = discover(&deep).unwrap_err();
        assert!(e.message.contains("repository root"), "{}", e.message);
        std::fs::write(repo.join("svc").join(FILE_NAME), TWO).unwrap();
        let found = discover(&deep).unwrap();
        assert_eq!(
            found,
            std::fs::canonicalize(repo.join("svc"))
                .unwrap()
                .join(FILE_NAME)
        );
    }
}
