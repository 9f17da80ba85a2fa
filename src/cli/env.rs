//! `pake env`: list the environments and mark the current one (like
//! `kubectl config get-contexts`); `pake env use NAME` chooses one for this
//! checkout (kept in `.pake/env`, which `pake init` git-ignores).

use clap::{Args, Subcommand};

use super::{Global, only_formats};
use crate::config::{Project, current};
use crate::error::{Error, ExitCode, Result};
use crate::output::Format;

#[derive(Debug, Args)]
pub struct EnvArgs {
    #[command(subcommand)]
    pub command: Option<EnvCommand>,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// List the environments of pake.yaml; `*` marks the one commands act on without --env.
    List,
    /// Choose the environment commands act on in this checkout (kept in .pake/env).
    Use(UseArgs),
    /// Print the environment commands act on without --env, and why.
    Current,
}

#[derive(Debug, Args)]
pub struct UseArgs {
    /// An environment of pake.yaml.
    #[arg(value_name = "NAME", required_unless_present = "unset")]
    pub name: Option<String>,
    /// Forget this checkout's choice (back to defaultEnvironment or the only environment).
    #[arg(long, conflicts_with = "name")]
    pub unset: bool,
}

pub async fn run(g: &Global, a: EnvArgs) -> Result<ExitCode> {
    only_formats(g, &[Format::Text, Format::Json, Format::Yaml], "env")?;
    let project = Project::load(g.config.as_deref())?;
    match a.command.unwrap_or(EnvCommand::List) {
        EnvCommand::List => list(g, &project),
        EnvCommand::Current => current_env(g, &project),
        EnvCommand::Use(u) => use_env(g, &project, u),
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct EnvRow {
    name: String,
    namespace: String,
    protected: bool,
    current: bool,
}

fn list(g: &Global, project: &Project) -> Result<ExitCode> {
    let ui = g.ui();
    // A listing still works when nothing is selected (or the choice is stale).
    let selected = project.select_env(g.env.as_deref());
    let current = selected.as_ref().ok().map(|(e, _)| e.clone());
    let rows: Vec<EnvRow> = project
        .config
        .environments
        .iter()
        .map(|(name, o)| EnvRow {
            name: name.clone(),
            namespace: o
                .namespace
                .clone()
                .unwrap_or_else(|| project.config.namespace.clone()),
            protected: o.protected,
            current: current.as_deref() == Some(name),
        })
        .collect();
    if ui.is_text() {
        let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
        let nw = rows.iter().map(|r| r.namespace.len()).max().unwrap_or(9);
        ui.line(format!(
            "{:<8} {:<w$}  {:<nw$}  PROTECTED",
            "CURRENT", "NAME", "NAMESPACE"
        ));
        for r in &rows {
            ui.line(format!(
                "{:<8} {:<w$}  {:<nw$}  {}",
                if r.current { "*" } else { "" },
                r.name,
                r.namespace,
                if r.protected { "yes" } else { "no" }
            ));
        }
        match &selected {
            Ok((_, source)) => crate::output::err_line(format!("(current: {})", source.describe())),
            Err(e) => crate::output::err_line(format!(
                "(no current environment: {})",
                e.fix.as_deref().unwrap_or(&e.message)
            )),
        }
    } else {
        let source = selected.as_ref().ok().map(|(_, s)| *s);
        ui.document(
            "EnvironmentList",
            &serde_json::json!({"current": current, "source": source, "environments": rows}),
        );
    }
    Ok(ExitCode::Ok)
}

fn current_env(g: &Global, project: &Project) -> Result<ExitCode> {
    let ui = g.ui();
    let (env, source) = project.select_env(g.env.as_deref())?;
    let r = project.resolve(Some(&env))?;
    if ui.is_text() {
        ui.line(&env);
        crate::output::err_line(format!(
            "({}; namespace {}{})",
            source.describe(),
            r.namespace,
            if r.protected { ", protected" } else { "" }
        ));
    } else {
        // The registry of pake.yaml's image, for `docker login` in CI (`jq -r .registry`).
        let registry = crate::docker::registry::ImageRef::parse(&r.image)
            .ok()
            .map(|i| i.registry.unwrap_or_else(|| "docker.io".into()));
        ui.document(
            "CurrentEnvironment",
            &serde_json::json!({
                "name": env, "source": source, "namespace": r.namespace, "protected": r.protected,
                "app": r.app, "image": r.image, "imageRef": r.image_ref, "registry": registry,
            }),
        );
    }
    Ok(ExitCode::Ok)
}

fn use_env(g: &Global, project: &Project, u: UseArgs) -> Result<ExitCode> {
    let ui = g.ui();
    let root = project.root();
    let Some(name) = u.name else {
        current::clear_checkout_env(&root)?;
        let now = project.select_env(None).ok();
        ui.line(match now {
            Some((e, s)) => format!(
                "forgot this checkout's environment; current: {e} ({})",
                s.describe()
            ),
            None => "forgot this checkout's environment; none is current now".to_string(),
        });
        return Ok(ExitCode::Ok);
    };
    let Some(o) = project.config.environments.get(&name) else {
        let known: Vec<&str> = project
            .config
            .environments
            .keys()
            .map(String::as_str)
            .collect();
        return Err(Error::usage(format!(
            "unknown environment {name:?} in {}",
            project.path.display()
        ))
        .fix(format!("use one of: {}", known.join(", "))));
    };
    let path = current::set_checkout_env(&root, &name)?;
    ui.line(format!(
        "{} switched to environment {name} (namespace {}{}); kept in {}",
        ui.mark(true),
        o.namespace.as_deref().unwrap_or(&project.config.namespace),
        if o.protected {
            ", protected: changes still need --yes or a confirmation"
        } else {
            ""
        },
        path.display()
    ));
    if std::env::var_os("PAKE_ENV").is_some() {
        crate::output::err_line("note: PAKE_ENV is set in this shell and wins over `pake env use`");
    }
    Ok(ExitCode::Ok)
}
