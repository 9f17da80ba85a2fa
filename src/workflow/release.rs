//! The release transaction every changing command runs inside (Helm's
//! `pkg/action` shape: one shared configuration for every action): config +
//! environment resolution (`resolve`/`prepare`, the only route from `--env`
//! to a `Resolved`), the protected-environment confirmation, the Lease lock
//! (`Release::lock`), the next revision and the history record, signals
//! (`until_signal`), and the one mapping from a run's outcome to the exit
//! code (`exit_code`). Deploy and rollback (`executor::run`), blue-green
//! deploy/switch/rollback/cleanup and rotate-secret all go through it.

use std::future::Future;
use std::time::Duration;

use crate::config::{Project, Resolved};
use crate::error::{Error, ExitCode, Result};
use crate::kube::Cluster;
use crate::output::Ui;
use crate::workflow::definition::{self, Plan};
use crate::workflow::executor::ErrorReport;
use crate::workflow::history::{self, Revision};
use crate::workflow::lock::{self, LockGuard};

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

/// Load pake.yaml and resolve the environment with the `-n` override: the
/// only route from `--env` to a `Resolved` (no plan rendered).
pub fn resolve(sel: &Selection) -> Result<(Project, Resolved)> {
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
    Ok((project, resolved))
}

/// Load, resolve and plan: everything that can fail before touching a cluster.
pub fn prepare(sel: &Selection, workflow: &str) -> Result<Prepared> {
    let (project, mut resolved) = resolve(sel)?;
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

/// The one mapping from a run's outcome to the exit code: 0 when it
/// succeeded, 3 when the cluster was unreachable or refused (permission),
/// 2 for configuration (a source that cannot be read, ...), 1 otherwise.
pub fn exit_code(ok: bool, error: Option<&ErrorReport>) -> ExitCode {
    match error {
        _ if ok => ExitCode::Ok,
        Some(e) if e.kind == ExitCode::Cluster => ExitCode::Cluster,
        Some(e) if e.kind == ExitCode::Usage => ExitCode::Usage,
        _ => ExitCode::Failed,
    }
}

/// The Lease that serializes changing runs of one app in one environment.
pub fn lock_name(r: &Resolved) -> String {
    format!("pake-lock-{}-{}", r.app, r.env)
}

/// Run `work` unless a signal (SIGINT, SIGTERM, SIGHUP) arrives first; then
/// `work` is dropped and the error says what was interrupted.
pub async fn until_signal<T>(work: impl Future<Output = Result<T>>, during: &str) -> Result<T> {
    tokio::select! {
        r = work => r,
        sig = crate::workflow::signals::received() => Err(Error::failed(format!("interrupted by {sig}{during}"))),
    }
}

/// One release transaction on one app and environment: what every changing
/// command shares once the environment is resolved and the cluster answered.
pub struct Release<'a> {
    pub cluster: &'a Cluster,
    pub resolved: &'a Resolved,
    pub ui: &'a Ui,
}

impl<'a> Release<'a> {
    pub fn new(cluster: &'a Cluster, resolved: &'a Resolved, ui: &'a Ui) -> Self {
        Release {
            cluster,
            resolved,
            ui,
        }
    }

    /// Protected environments: see `confirm_protected`.
    pub fn confirm(&self, yes: bool, action: &str, summary: &str) -> Result<()> {
        confirm_protected(self.resolved, self.ui, yes, action, summary)
    }

    /// Take the Lease (`lock_name`), waiting up to `wait_timeout` for another
    /// run when `wait` is set.
    pub async fn lock(&self, wait: bool, wait_timeout: Option<Duration>) -> Result<LockGuard> {
        let mut opts = lock::LockOptions {
            wait,
            ..Default::default()
        };
        if let Some(t) = wait_timeout {
            opts.wait_timeout = t;
        }
        lock::acquire(
            &self.cluster.client,
            &self.resolved.namespace,
            &lock_name(self.resolved),
            &lock::holder_identity(),
            opts,
        )
        .await
    }

    /// The revision history of this app and environment, oldest first.
    pub async fn history(&self) -> Result<Vec<Revision>> {
        let r = self.resolved;
        history::list(self.cluster, &r.namespace, &r.app, &r.env).await
    }

    /// The number the next record gets.
    pub async fn next_revision(&self) -> Result<u32> {
        let r = self.resolved;
        history::next_revision(self.cluster, &r.namespace, &r.app, &r.env).await
    }

    /// Write (or overwrite) one history record.
    pub async fn record(&self, rev: &Revision) -> Result<()> {
        let r = self.resolved;
        history::record(self.cluster, &r.namespace, &r.app, &r.env, rev).await
    }
}
