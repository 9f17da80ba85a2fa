//! Shared preparation for commands that change a release: load pake.yaml,
//! select the environment, render the plan, and guard protected environments.

use crate::config::{Project, Resolved};
use crate::error::{Error, Result};
use crate::output::Ui;
use crate::workflow::definition::{self, Plan};

/// `--dry-run=server|client` in kubectl's spelling (bare `--dry-run` is `server`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DryRun {
    /// Everything the API server would check (admission, validation, conflicts); nothing is changed.
    Server,
    /// Only what pake can check without a write: render, offline checks, read-only reads.
    Client,
}

impl DryRun {
    pub fn as_str(self) -> &'static str {
        match self {
            DryRun::Server => "server",
            DryRun::Client => "client",
        }
    }
}

/// Inputs common to deploy, diff, render, rollback.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub config: Option<std::path::PathBuf>,
    pub env: Option<String>,
    pub namespace: Option<String>,
    /// Override the image reference (`repo:tag` or `repo@sha256:...`).
    pub image: Option<String>,
    /// Override the version label (blue-green).
    pub version: Option<String>,
    /// One cluster of the environment's `clusters` (its overrides apply).
    pub cluster: Option<String>,
}

pub struct Prepared {
    pub project: Project,
    pub resolved: Resolved,
    pub plan: Plan,
}

/// Load, resolve and plan: everything that can fail before touching a cluster.
pub fn prepare(sel: &Selection, workflow: &str) -> Result<Prepared> {
    let project = Project::load(sel.config.as_deref())?;
    let mut resolved = project.resolve(sel.env.as_deref())?;
    if let Some(name) = &sel.cluster {
        cluster_spec(&project, &resolved.env, name)?.apply(&mut resolved);
    }
    if let Some(ns) = &sel.namespace {
        if !crate::config::is_dns_label(ns) {
            return Err(Error::usage(format!(
                "namespace {ns:?} is not a valid DNS label"
            )));
        }
        resolved.namespace = ns.clone();
    }
    if let Some(img) = &sel.image {
        resolved.image_ref = img.clone();
    } else if resolved.image_ref.ends_with("@record") {
        resolved.image_ref = build_record(&resolved).ok_or_else(|| {
            Error::usage(format!(
                "environment {} deploys the pushed digest (`digest: record`), but {} has none",
                resolved.env,
                resolved.root.join(".pake/build.json").display()
            ))
            .fix("run `pake build --push` first, or pass --image REF")
        })?;
    }
    if let Some(v) = &sel.version {
        if !crate::config::is_dns_label(v) {
            return Err(Error::usage(format!(
                "version {v:?} is not a valid label value"
            )));
        }
        resolved.version = v.clone();
    }
    let (source, wf) = definition::load(&resolved, workflow)?;
    let plan = definition::plan(&resolved, &source, &wf)?;
    Ok(Prepared {
        project,
        resolved,
        plan,
    })
}

/// The cluster `name` of environment `env` (exit 2 naming the known ones).
pub fn cluster_spec<'a>(
    project: &'a Project,
    env: &str,
    name: &str,
) -> Result<&'a crate::config::fleet::ClusterSpec> {
    let o = &project.config.environments[env];
    crate::config::fleet::plan(env, o, &[name.to_string()])?;
    Ok(o.clusters
        .iter()
        .find(|c| c.name == name)
        .expect("plan checked the name"))
}

/// Blue-green: once traffic was switched (`pake bluegreen switch`), the
/// active version is the live Service's, and `pake deploy` updates that one
/// rather than pake.yaml's `version` — which would move the traffic back
/// without any of the switch's checks. Re-plans with the active version when
/// the two differ (and `sel.version` does not set one explicitly).
pub async fn follow_active(
    cluster: &crate::kube::Cluster,
    sel: &Selection,
    workflow: &str,
    p: Prepared,
    ui: &Ui,
) -> Result<Prepared> {
    if sel.version.is_some() {
        return Ok(p);
    }
    match crate::steps::bluegreen::version_to_deploy(cluster, &p.resolved).await? {
        None => Ok(p),
        Some(active) => {
            ui.line(format!(
                "note: blue-green is in use and Service {} serves {active}: deploying {active} (pake.yaml says {}); release a new version with `pake bluegreen deploy`",
                p.resolved.app, p.resolved.version
            ));
            let mut sel = sel.clone();
            sel.version = Some(active);
            prepare(&sel, workflow)
        }
    }
}

/// `pake build --push` records the pushed digest in `.pake/build.json`; when
/// the environment deploys by digest (`digest: record`), use it.
pub fn build_record(r: &Resolved) -> Option<String> {
    if !r.image_ref.ends_with("@record") {
        return None;
    }
    let text = std::fs::read_to_string(r.root.join(".pake/build.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let digest = v["digest"].as_str()?;
    Some(format!("{}@{digest}", r.image))
}

/// Protected environments: a TTY asks (after showing `summary`), `--yes`
/// confirms, anything else is refused with exit 2 before any change.
pub fn confirm_protected(
    r: &Resolved,
    ui: &Ui,
    yes: bool,
    action: &str,
    summary: &str,
) -> Result<()> {
    if !r.protected || yes {
        return Ok(());
    }
    if !ui.interactive {
        return Err(Error::usage(format!(
            "environment {} is protected and this run is not interactive; nothing was changed",
            r.env
        ))
        .fix(format!(
            "re-run with --yes to confirm the {action} of {} to {}",
            r.app, r.env
        )));
    }
    crate::output::err_line(summary);
    let ok = dialoguer::Confirm::new()
        .with_prompt(format!(
            "{action} {} to protected environment {} (namespace {})?",
            r.app, r.env, r.namespace
        ))
        .default(false)
        .interact()
        .map_err(|e| Error::usage(format!("cannot read confirmation: {e}")))?;
    if ok {
        Ok(())
    } else {
        Err(Error::usage("not confirmed; nothing was changed"))
    }
}
