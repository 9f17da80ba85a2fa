//! Blue-green releases, the guide's way but checked at every point.
//!
//! The model is the guide's: the Service `<app>` selects `app=<app>,
//! version=<active>`; every version is its own hardened Deployment
//! `<app>-<version>` (with its PDB) rendered from the same templates as
//! `pake deploy`, so policies, Pod Security and `pake verify` cover it too.
//! The Service `<app>-preview` selects the candidate.
//!
//! - `deploy` runs through the executor (lock, journal, rollback, history):
//!   policies, the candidate's version-labelled objects plus the preview
//!   Service, then the verify checklist.
//! - `switch` cannot be an executor plan: its proof is not "the objects are as
//!   applied" but "the active Service's EndpointSlices list exactly the Ready
//!   pods of the new version", and its undo is a second switch with the same
//!   proof. So it takes the same Lease lock itself, refuses unless the target
//!   is healthy, applies the Service (SSA, field manager `pake`), watches
//!   EndpointSlices and pods until they agree, and switches back otherwise.
//! - The active version is whatever the live Service selects; history
//!   records every switch (from, to, time, who), which is where "the previous
//!   version" for `rollback` and `cleanup` comes from.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ::kube::Api;
use ::kube::api::{Patch, PatchParams};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::config::{Resolved, is_dns_label};
use crate::error::{Error, ExitCode, Result};
use crate::kube::Cluster;
use crate::kube::apply::{self, FIELD_MANAGER};
use crate::kube::list::list_json_selected;
use crate::output::Ui;
use crate::render::{self, describe, workload_name};
use crate::workflow::definition::{self, Plan, PlannedStep, StepKind, check_order};
use crate::workflow::executor::{self, CheckResult, Ctx, ErrorReport, Report};
use crate::workflow::history::{self, Revision};
use crate::workflow::{lock, release, wait};

/// The template of the preview Service (project override or built in).
pub const PREVIEW_TEMPLATE: &str = "service-preview.yaml";
/// History action of a switch (and of a blue-green rollback, which is a switch).
pub const ACTION_SWITCH: &str = "switch";
/// History status of a switch that was verified.
pub const STATUS_SWITCHED: &str = "switch";
pub const ACTION_DEPLOY: &str = "bluegreen-deploy";
pub const ACTION_CLEANUP: &str = "cleanup";

pub fn preview_name(app: &str) -> String {
    format!("{app}-preview")
}

fn check_version(v: &str) -> Result<()> {
    if is_dns_label(v) {
        Ok(())
    } else {
        Err(
            Error::usage(format!("version {v:?} is not a valid label value"))
                .fix("use lowercase letters, digits and '-', e.g. v2"),
        )
    }
}

// ---------------------------------------------------------------------------
// The switch history
// ---------------------------------------------------------------------------

/// One verified switch, as recorded in history.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SwitchRecord {
    pub revision: u32,
    pub from: String,
    pub to: String,
    pub time: String,
    pub user: String,
    /// `switch` or `rollback`.
    pub kind: String,
}

/// Successful switches, oldest first.
pub fn switches(revs: &[Revision]) -> Vec<SwitchRecord> {
    revs.iter()
        .filter(|r| r.action == ACTION_SWITCH && r.status == STATUS_SWITCHED)
        .filter_map(|r| {
            Some(SwitchRecord {
                revision: r.revision,
                from: r.details["from"].as_str()?.to_string(),
                to: r.details["to"].as_str()?.to_string(),
                time: r.time.clone(),
                user: r.user.clone(),
                kind: r.details["kind"].as_str().unwrap_or("switch").to_string(),
            })
        })
        .collect()
}

/// The version a rollback returns to: the one the latest switch *to the
/// active version* came from. None if the active version was never switched
/// to (first deploy, or someone changed the selector by hand).
pub fn rollback_target(revs: &[Revision], active: &str) -> Option<String> {
    switches(revs)
        .into_iter()
        .rev()
        .find(|s| s.to == active)
        .map(|s| s.from)
        .filter(|f| f != active)
}

/// When a version stopped serving: the latest switch away from it.
fn inactive_since(sw: &[SwitchRecord], version: &str) -> Option<jiff::Timestamp> {
    sw.iter()
        .rev()
        .find(|s| s.from == version)
        .and_then(|s| s.time.parse().ok())
}

// ---------------------------------------------------------------------------
// Live state
// ---------------------------------------------------------------------------

async fn get_service(cluster: &Cluster, ns: &str, name: &str) -> Result<Option<Service>> {
    Api::<Service>::namespaced(cluster.client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| Error::from_kube(format!("GET Service {ns}/{name}"), e))
}

async fn get_deployment(cluster: &Cluster, ns: &str, name: &str) -> Result<Option<Deployment>> {
    Api::<Deployment>::namespaced(cluster.client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| Error::from_kube(format!("GET Deployment {ns}/{name}"), e))
}

fn selected_version(s: &Service) -> Option<String> {
    s.spec.as_ref()?.selector.as_ref()?.get("version").cloned()
}

/// The version the live Service `<app>` sends traffic to.
pub async fn active_version(cluster: &Cluster, r: &Resolved) -> Result<Option<String>> {
    Ok(get_service(cluster, &r.namespace, &r.app)
        .await?
        .as_ref()
        .and_then(selected_version))
}

/// The active version, or a clear error when there is no release to work with.
async fn require_active(cluster: &Cluster, r: &Resolved) -> Result<String> {
    let who = describe("Service", Some(&r.namespace), &r.app);
    match get_service(cluster, &r.namespace, &r.app).await? {
        None => Err(Error::failed(format!(
            "{who} not found: {} is not deployed in {}",
            r.app, r.env
        ))
        .on(who)
        .fix(format!(
            "deploy the first version with `pake deploy --env {}`",
            r.env
        ))),
        Some(s) => selected_version(&s).ok_or_else(|| {
            Error::failed(format!("{who} does not select a `version` label"))
                .on(who)
                .fix("blue-green needs the Service to select app and version (templates/k8s/service.yaml); redeploy with `pake deploy`")
        }),
    }
}

/// For `pake deploy`: once blue-green is in use (a switch is recorded), the
/// version that serves traffic is the live Service's, not pake.yaml's. A
/// deploy then updates that version (its Deployment, PDB, and a Service that
/// keeps selecting it) instead of flipping traffic back to pake.yaml's
/// version without any of the switch's checks. Returns the version to deploy
/// when it differs from `r.version`.
pub async fn version_to_deploy(cluster: &Cluster, r: &Resolved) -> Result<Option<String>> {
    // First deploy: no namespace, so no history (and an identity bound only
    // inside the namespace could not even list it).
    if !super::namespace::exists(cluster, &r.namespace).await? {
        return Ok(None);
    }
    let revs = history::list(cluster, &r.namespace, &r.app, &r.env).await?;
    let sw = switches(&revs);
    let Some(last) = sw.last() else {
        return Ok(None);
    };
    let active = active_version(cluster, r)
        .await?
        .unwrap_or_else(|| last.to.clone());
    Ok((active != r.version).then_some(active))
}

/// Blue-green: once traffic was switched (`pake bluegreen switch`), the
/// active version is the live Service's, and `pake deploy` updates that one
/// rather than pake.yaml's `version` — which would move the traffic back
/// without any of the switch's checks. Re-plans with the active version when
/// the two differ (and `sel.version` does not set one explicitly).
pub async fn follow_active(
    cluster: &Cluster,
    sel: &release::Selection,
    workflow: &str,
    p: release::Prepared,
    ui: &Ui,
) -> Result<release::Prepared> {
    if sel.version.is_some() {
        return Ok(p);
    }
    match version_to_deploy(cluster, &p.resolved).await? {
        None => Ok(p),
        Some(active) => {
            ui.line(format!(
                "note: blue-green is in use and Service {} serves {active}: deploying {active} (pake.yaml says {}); release a new version with `pake bluegreen deploy`",
                p.resolved.app, p.resolved.version
            ));
            let mut sel = sel.clone();
            sel.version = Some(active);
            release::prepare(&sel, workflow)
        }
    }
}

// ---------------------------------------------------------------------------
// bluegreen deploy
// ---------------------------------------------------------------------------

/// The plan of `bluegreen deploy`: the workflow's policy steps (the guide's
/// order: policies before workloads), the candidate's own objects — those of
/// the workflow's deploy steps labelled `version: <candidate>`, i.e. the
/// Deployment and its PDB, never the active Service or the Ingress — plus the
/// preview Service, then the verify checklist. `r.version` is the candidate.
pub fn deploy_plan(r: &Resolved, workflow: &str) -> Result<Plan> {
    let (source, wf) = definition::load(r, workflow)?;
    let full = definition::plan(r, &source, &wf)?;
    let mut steps = Vec::new();
    let mut candidate = Vec::new();
    for s in full.steps {
        match s.kind {
            StepKind::Policies => steps.push(s),
            StepKind::Deploy | StepKind::Apply => candidate.extend(
                s.manifests
                    .into_iter()
                    .filter(|m| m.object["metadata"]["labels"]["version"] == r.version.as_str()),
            ),
            _ => {}
        }
    }
    if !candidate.iter().any(|m| render::is_workload(m.kind())) {
        return Err(Error::usage(format!(
            "{source}: no workload labelled version={} in the deploy step",
            r.version
        ))
        .fix("the Deployment template must carry the label `version: {{ version }}` (templates/k8s/deployment.yaml)"));
    }
    candidate.extend(render::render_templates(
        r,
        &[PREVIEW_TEMPLATE.to_string()],
    )?);
    steps.push(PlannedStep {
        name: format!("deploy {}", r.version),
        kind: StepKind::Deploy,
        templates: Vec::new(),
        manifests: candidate,
    });
    steps.push(PlannedStep {
        name: "verify".into(),
        kind: StepKind::Verify,
        templates: Vec::new(),
        manifests: Vec::new(),
    });
    let plan = Plan {
        workflow: format!("bluegreen deploy {} ({source})", r.version),
        steps,
    };
    check_order(&plan, &plan.workflow)?;
    Ok(plan)
}

pub struct DeployOptions {
    pub timeout: Duration,
    pub wait_lock: bool,
    pub force_conflicts: bool,
    pub workflow: String,
    pub yes: bool,
}

/// `pake bluegreen deploy VERSION`: the candidate next to the active version.
pub async fn deploy(
    cluster: &Cluster,
    sel: &release::Selection,
    ui: &Ui,
    o: &DeployOptions,
) -> Result<Report> {
    let version = sel.version.clone().unwrap_or_default();
    check_version(&version)?;
    // Offline first: a configuration error is exit 2 before any request.
    let p = release::prepare(sel, &o.workflow)?;
    let r = &p.resolved;
    let plan = deploy_plan(r, &o.workflow)?;
    let active = require_active(cluster, r).await?;
    if active == version {
        return Err(Error::usage(format!(
            "{version} is the active version of {} in {}; a candidate must be a new version",
            r.app, r.env
        ))
        .fix(format!(
            "update the active version with `pake deploy --env {}`, or pick a new version name",
            r.env
        )));
    }
    release::confirm_protected(
        r,
        ui,
        o.yes,
        "blue-green deploy",
        &format!(
            "deploy {} {version} ({}) next to active {active}, preview -> {version}",
            r.app, r.image_ref
        ),
    )?;
    let opts = executor::Options {
        timeout: o.timeout,
        wait_lock: o.wait_lock,
        force_conflicts: o.force_conflicts,
        action: ACTION_DEPLOY.into(),
        details: serde_json::json!({"version": version, "active": active, "preview": preview_name(&r.app)}),
        ..Default::default()
    };
    executor::run(cluster, r, ui, &plan, &super::for_plan(&plan), &opts).await
}

pub use crate::workflow::wait::endpoints::{
    EndpointTarget, EndpointVerdict, await_endpoints, endpoint_verdict, service_has_ports,
};

// ---------------------------------------------------------------------------
// switch / rollback
// ---------------------------------------------------------------------------

/// Why a switch runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SwitchKind {
    Switch,
    Rollback,
}

impl SwitchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SwitchKind::Switch => "switch",
            SwitchKind::Rollback => "rollback",
        }
    }
}

pub struct SwitchOptions {
    pub kind: SwitchKind,
    /// Smoke test run with `sh -c` against the preview before the switch.
    pub check: Option<String>,
    pub check_timeout: Duration,
    /// Bound on the endpoint verification (and on the switch back).
    pub timeout: Duration,
    pub wait_lock: bool,
    pub force_conflicts: bool,
    pub yes: bool,
    /// Check the target and (server) dry-run apply the Service; no traffic moves, no lock.
    pub dry_run: Option<release::DryRun>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SmokeResult {
    pub command: String,
    pub ok: bool,
    pub exit_code: Option<i32>,
    pub duration_ms: u128,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SwitchReport {
    pub ok: bool,
    pub action: SwitchKind,
    pub app: String,
    pub env: String,
    pub namespace: String,
    pub from: String,
    pub to: String,
    /// The Service was changed (false: refused, or `to` was already active).
    pub changed: bool,
    /// The switch failed verification and traffic went back to `from`.
    pub switched_back: bool,
    /// Pre-switch checks on the target.
    pub checks: Vec<CheckResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smoke: Option<SmokeResult>,
    /// Ready endpoints of `to` once verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<usize>,
    /// From applying the Service to verified endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_ms: Option<u128>,
    /// From the start of the switch (checks included) to verified endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch_ms: Option<u128>,
    pub revision: Option<u32>,
    pub duration_ms: u128,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch_back_error: Option<ErrorReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<release::DryRun>,
}

impl SwitchReport {
    pub fn exit_code(&self) -> ExitCode {
        release::exit_code(self.ok, self.error.as_ref())
    }
}

/// The Service `<app>` as the templates render it selecting `version`:
/// applying the whole object (not a selector-only patch) keeps server-side
/// apply's ownership intact, since pake owns every field it rendered.
pub fn active_service(r: &Resolved, version: &str, workflow: &str) -> Result<Value> {
    let mut r = r.clone();
    r.version = version.to_string();
    let (source, wf) = definition::load(&r, workflow)?;
    let plan = definition::plan(&r, &source, &wf)?;
    plan.manifests()
        .find(|m| m.kind() == "Service" && m.name() == r.app)
        .map(|m| m.object.clone())
        .ok_or_else(|| {
            Error::usage(format!(
                "{source}: no Service named {} in the workflow's templates",
                r.app
            ))
            .fix("blue-green switches the Service named after the app (templates/k8s/service.yaml)")
        })
}

/// Only the verify checks about the target: namespace-wide checks, and
/// pod/Deployment checks of the target version's own objects, so an old
/// version's pod does not block a switch away from it.
pub fn relevant_checks(
    checks: Vec<CheckResult>,
    ns: &str,
    deployment: &str,
    pods: &BTreeSet<String>,
) -> Vec<CheckResult> {
    let dep = describe("Deployment", Some(ns), deployment);
    let pod_prefix = format!("Pod {ns}/");
    checks
        .into_iter()
        .filter(|c| {
            if let Some(p) = c.object.strip_prefix(&pod_prefix) {
                pods.contains(p)
            } else if c.object.starts_with("Deployment ") {
                c.object == dep
            } else {
                true
            }
        })
        .collect()
}

/// The target must exist, be fully rolled out with every pod Ready, and pass
/// the verify checklist. Returns the checks and the desired replicas.
async fn precheck(ctx: &Ctx<'_>, to: &str) -> Result<(Vec<CheckResult>, i32)> {
    let r = ctx.resolved;
    let ns = &r.namespace;
    let name = workload_name(&r.app, to);
    let who = describe("Deployment", Some(ns), &name);
    let mut out = Vec::new();
    let Some(d) = get_deployment(ctx.cluster, ns, &name).await? else {
        out.push(CheckResult::fail(
            "exists",
            &who,
            format!("version {to} is not deployed"),
            format!(
                "deploy it first: `pake bluegreen deploy {to} --env {}`",
                r.env
            ),
        ));
        return Ok((out, 0));
    };
    out.push(CheckResult::pass("exists", &who, "present"));
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    if desired < 1 {
        out.push(CheckResult::fail(
            "replicas",
            &who,
            "scaled down to 0 replicas (by `pake bluegreen cleanup`?)",
            format!(
                "bring it back with `pake bluegreen deploy {to} --env {}`",
                r.env
            ),
        ));
        return Ok((out, desired));
    }
    match wait::deployment_state(&d) {
        wait::RolloutState::Complete => out.push(CheckResult::pass(
            "rollout",
            &who,
            format!("{desired} replica(s) updated and available"),
        )),
        wait::RolloutState::Progressing(m) => out.push(CheckResult::fail(
            "rollout",
            &who,
            format!("not fully available: {m}"),
            "wait for the rollout (`pake bluegreen deploy` waits for it) and try again",
        )),
        wait::RolloutState::Failed(f) => out.push(CheckResult::fail(
            "rollout",
            &who,
            format!("{}: {}", f.reason, f.message),
            f.fix,
        )),
    }
    let pods = list_json_selected(
        ctx.cluster,
        "v1",
        "Pod",
        ns,
        Some(&format!("app={},version={to}", r.app)),
    )
    .await?;
    let live: Vec<&Value> = pods
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect();
    let unready: Vec<&str> = live
        .iter()
        .filter(|p| !wait::pod_ready_json(p))
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    out.push(if unready.is_empty() && live.len() == desired as usize {
        CheckResult::pass(
            "pods-ready",
            &who,
            format!("all {} pod(s) Ready", live.len()),
        )
    } else if !unready.is_empty() {
        CheckResult::fail(
            "pods-ready",
            &who,
            format!(
                "{} of {} pod(s) not Ready: {}",
                unready.len(),
                live.len(),
                unready.join(", ")
            ),
            "see `kubectl describe pod`; the guide's troubleshooting section lists the usual causes",
        )
    } else {
        CheckResult::fail(
            "pods-ready",
            &who,
            format!("{} pod(s) for {desired} desired replica(s)", live.len()),
            "wait until the Deployment has settled and try again",
        )
    });
    let pod_names: BTreeSet<String> = live
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(String::from))
        .collect();
    let checks = super::verify::run(ctx).await?;
    out.extend(relevant_checks(checks, ns, &name, &pod_names));
    Ok((out, desired))
}

/// Run the smoke test: `sh -c CMD` with the preview's coordinates in the
/// environment. Its stdout goes to our stderr so `-o json` stays one document.
async fn smoke_test(
    cluster: &Cluster,
    r: &Resolved,
    cmd: &str,
    to: &str,
    from: &str,
    timeout: Duration,
) -> Result<SmokeResult> {
    use std::os::fd::AsFd;
    let started = Instant::now();
    let preview = preview_name(&r.app);
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c")
        .arg(cmd)
        .env("PAKE_APP", &r.app)
        .env("PAKE_ENV", &r.env)
        .env("PAKE_NAMESPACE", &r.namespace)
        .env("PAKE_VERSION", to)
        .env("PAKE_ACTIVE_VERSION", from)
        .env("PAKE_PREVIEW_SERVICE", &preview)
        .env("PAKE_PREVIEW_PORT", r.port.to_string())
        .env(
            "PAKE_PREVIEW_URL",
            format!(
                "http://{preview}.{}.svc.cluster.local:{}",
                r.namespace, r.port
            ),
        )
        .env("PAKE_CONTEXT", &cluster.context)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(k) = &cluster.kubeconfig {
        c.env("KUBECONFIG", k);
    }
    if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
        c.stdout(std::process::Stdio::from(fd));
    }
    let mut child = c
        .spawn()
        .map_err(|e| Error::usage(format!("cannot run the --check command with sh: {e}")))?;
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(s) => s.map_err(|e| Error::failed(format!("--check command: {e}")))?,
        Err(_) => {
            let _ = child.kill().await;
            return Ok(SmokeResult {
                command: cmd.to_string(),
                ok: false,
                exit_code: None,
                duration_ms: started.elapsed().as_millis(),
            });
        }
    };
    Ok(SmokeResult {
        command: cmd.to_string(),
        ok: status.success(),
        exit_code: status.code(),
        duration_ms: started.elapsed().as_millis(),
    })
}

/// Apply the Service selecting `version` and prove it on the endpoints.
async fn switch_to(
    cluster: &Cluster,
    r: &Resolved,
    ui: &Ui,
    svc: &Value,
    version: &str,
    desired: i32,
    o: &SwitchOptions,
) -> Result<EndpointVerdict> {
    apply::apply(cluster, svc, false, o.force_conflicts).await?;
    verify_switch(cluster, r, ui, svc, version, desired, o).await
}

/// Prove that the Service (already applied) serves only `version`.
async fn verify_switch(
    cluster: &Cluster,
    r: &Resolved,
    ui: &Ui,
    svc: &Value,
    version: &str,
    desired: i32,
    o: &SwitchOptions,
) -> Result<EndpointVerdict> {
    let step = ui.step(&format!("endpoints of Service {} -> {version}", r.app));
    let target = EndpointTarget {
        namespace: &r.namespace,
        service: &r.app,
        app: &r.app,
        version,
        desired,
        service_has_ports: service_has_ports(svc),
    };
    let res = await_endpoints(&cluster.client, &target, o.timeout, &|m| step.message(m)).await;
    match &res {
        Ok(v) => step.done(&v.message),
        Err(e) => step.fail(&e.message),
    }
    res
}

/// `pake bluegreen switch VERSION` (and `rollback`, which is a switch to the
/// previous version): refuse unless the target is healthy, switch, verify on
/// the EndpointSlices, switch back if that fails; all under the deploy lock.
pub async fn switch(
    cluster: &Cluster,
    r: &Resolved,
    ui: &Ui,
    to: &str,
    workflow: &str,
    o: &SwitchOptions,
) -> Result<SwitchReport> {
    let started = Instant::now();
    check_version(to)?;
    let from = require_active(cluster, r).await?;
    let mut report = SwitchReport {
        ok: false,
        action: o.kind,
        app: r.app.clone(),
        env: r.env.clone(),
        namespace: r.namespace.clone(),
        from: from.clone(),
        to: to.to_string(),
        changed: false,
        switched_back: false,
        checks: Vec::new(),
        smoke: None,
        endpoints: None,
        verified_ms: None,
        switch_ms: None,
        revision: None,
        duration_ms: 0,
        error: None,
        switch_back_error: None,
        dry_run: o.dry_run,
    };
    if from == to {
        ui.line(format!(
            "{} {to} is already the active version of {} in {}; nothing to do",
            ui.mark(true),
            r.app,
            r.env
        ));
        report.ok = true;
        report.duration_ms = started.elapsed().as_millis();
        return Ok(report);
    }
    // Render both Services before anything changes: a template error is exit 2.
    let svc_to = active_service(r, to, workflow)?;
    let svc_back = active_service(r, &from, workflow)?;
    if let Some(mode) = o.dry_run {
        dry_run_switch(cluster, r, ui, to, &svc_to, o, mode, &mut report).await?;
        report.duration_ms = started.elapsed().as_millis();
        return Ok(report);
    }
    let tx = release::Release::new(cluster, r, ui);
    tx.confirm(
        o.yes,
        o.kind.as_str(),
        &format!("switch Service {} from {from} to {to}", r.app),
    )?;
    let guard = tx
        .lock(o.wait_lock, Some(o.timeout.max(Duration::from_secs(60))))
        .await?;
    // Until the Service is changed, Ctrl-C simply abandons the run.
    let ready = release::until_signal(
        precheck_locked(cluster, r, ui, &from, to, o, &mut report),
        " before the switch; nothing was changed",
    )
    .await;
    let res = match ready {
        Ok(desired) => {
            let targets = Targets {
                from: &from,
                to,
                desired,
                svc_to: &svc_to,
                svc_back: &svc_back,
            };
            perform_switch(cluster, r, ui, &targets, o, &mut report, started, &guard).await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = res {
        report.error = Some((&e).into());
        if !report.changed && e.kind != ExitCode::Failed {
            // Not a refusal: unreachable, permission denied, configuration.
            if let Err(le) = guard.release().await {
                tracing::warn!("could not release the lock: {le}");
            }
            return Err(e);
        }
    }
    if let Err(e) = guard.release().await {
        tracing::warn!("could not release the lock: {e}");
    }
    report.duration_ms = started.elapsed().as_millis();
    Ok(report)
}

/// `--dry-run`: the target's checks (read-only), and with `server` the
/// Service applied as a server-side dry run. No lock, no confirmation, no
/// smoke test, no traffic change.
#[allow(clippy::too_many_arguments)]
async fn dry_run_switch(
    cluster: &Cluster,
    r: &Resolved,
    ui: &Ui,
    to: &str,
    svc_to: &Value,
    o: &SwitchOptions,
    mode: release::DryRun,
    report: &mut SwitchReport,
) -> Result<()> {
    let opts = executor::Options::default();
    let ctx = Ctx {
        cluster,
        resolved: r,
        ui,
        opts: &opts,
    };
    let step = ui.step(&format!("checks on {to} (dry run)"));
    let (checks, _) = precheck(&ctx, to).await?;
    let failed = checks.iter().filter(|c| !c.ok).count();
    report.checks = checks;
    if failed > 0 {
        step.fail(&format!(
            "{failed} of {} checks failed",
            report.checks.len()
        ));
        let f = report
            .checks
            .iter()
            .find(|c| !c.ok)
            .expect("a failed check");
        report.error = Some(
            (&Error::failed(format!(
                "a switch of {} to {to} would be refused: {} — {}",
                r.app, f.check, f.message
            ))
            .on(f.object.clone()))
                .into(),
        );
        return Ok(());
    }
    step.done(&format!("{} checks passed", report.checks.len()));
    if mode == release::DryRun::Server {
        let step = ui.step(&format!("Service {} -> {to} (server-side dry run)", r.app));
        match apply::apply(cluster, svc_to, true, o.force_conflicts).await {
            Ok(_) => step.done("the API server accepts it"),
            Err(e) => {
                step.fail(&e.message);
                report.error = Some((&e).into());
                return Ok(());
            }
        }
    }
    report.ok = true;
    Ok(())
}

/// Everything before the change: the target's health and the smoke test.
/// Returns the target's desired replicas.
async fn precheck_locked(
    cluster: &Cluster,
    r: &Resolved,
    ui: &Ui,
    from: &str,
    to: &str,
    o: &SwitchOptions,
    report: &mut SwitchReport,
) -> Result<i32> {
    let opts = executor::Options::default();
    let ctx = Ctx {
        cluster,
        resolved: r,
        ui,
        opts: &opts,
    };
    // The selector may have moved while we waited for the lock.
    let now_active = require_active(cluster, r).await?;
    if now_active != from {
        return Err(Error::failed(format!(
            "the active version changed from {from} to {now_active} while waiting for the lock; nothing was changed"
        ))
        .fix("check `pake bluegreen status` and run the switch again"));
    }

    // 1. Refuse unless the target is healthy.
    let step = ui.step(&format!("checks on {to}"));
    let (checks, desired) = precheck(&ctx, to).await?;
    let failed: Vec<&CheckResult> = checks.iter().filter(|c| !c.ok).collect();
    report.checks = checks.clone();
    if let Some(f) = failed.first() {
        step.fail(&format!(
            "{} of {} checks failed",
            failed.len(),
            checks.len()
        ));
        for c in &failed {
            ui.line(format!(
                "    {} {} {}: {}",
                ui.mark(false),
                c.check,
                c.object,
                c.message
            ));
        }
        return Err(Error::failed(format!(
            "refusing to switch {} to {to}: {} — {}; nothing was changed",
            r.app, f.check, f.message
        ))
        .on(f.object.clone())
        .fix(f.fix.clone().unwrap_or_default()));
    }
    step.done(&format!("{} checks passed", checks.len()));

    // 2. The smoke test against the preview.
    if let Some(cmd) = &o.check {
        let preview = get_service(cluster, &r.namespace, &preview_name(&r.app)).await?;
        let pv = preview.as_ref().and_then(selected_version);
        if pv.as_deref() != Some(to) {
            return Err(Error::failed(format!(
                "refusing to run the smoke test: Service {}/{} selects {}, not {to}; nothing was changed",
                r.namespace,
                preview_name(&r.app),
                pv.as_deref().unwrap_or("nothing (not found)")
            ))
            .fix(format!(
                "point the preview at {to} with `pake bluegreen deploy {to} --env {}`",
                r.env
            )));
        }
        let step = ui.step(&format!("smoke test against {}", preview_name(&r.app)));
        let s = smoke_test(cluster, r, cmd, to, from, o.check_timeout).await?;
        let ok = s.ok;
        let code = s.exit_code;
        report.smoke = Some(s);
        if !ok {
            step.fail("failed");
            return Err(Error::failed(format!(
                "refusing to switch {} to {to}: the --check command {}; nothing was changed",
                r.app,
                match code {
                    Some(c) => format!("exited with {c}"),
                    None => format!("did not finish within {}s", o.check_timeout.as_secs()),
                }
            ))
            .fix(
                "fix the candidate (or the check) and run the switch again; its output is above",
            ));
        }
        step.done("passed");
    }
    Ok(desired)
}

/// What a switch moves between.
struct Targets<'a> {
    from: &'a str,
    to: &'a str,
    /// Desired replicas of `to`.
    desired: i32,
    /// The Service selecting `to`, and selecting `from` (for the way back).
    svc_to: &'a Value,
    svc_back: &'a Value,
}

/// Change the Service and prove it; switch back if the proof fails, on
/// Ctrl-C, or if the lock is lost. Records the outcome in history.
#[allow(clippy::too_many_arguments)]
async fn perform_switch(
    cluster: &Cluster,
    r: &Resolved,
    ui: &Ui,
    t: &Targets<'_>,
    o: &SwitchOptions,
    report: &mut SwitchReport,
    started: Instant,
    guard: &lock::LockGuard,
) -> Result<()> {
    let (from, to, desired, svc_to, svc_back) = (t.from, t.to, t.desired, t.svc_to, t.svc_back);
    // 3. Switch and prove it; Ctrl-C or a lost lock from here on switches back.
    let switch_started = Instant::now();
    // Write-ahead: the switch is recorded as pending before the Service changes.
    let revision = crate::workflow::recovery::switch_pending(
        cluster,
        ui,
        r,
        guard.holder(),
        svc_to,
        (from, to),
    )
    .await?;
    // A failed apply (a field conflict, permission) changed nothing.
    if let Err(e) = apply::apply(cluster, svc_to, false, o.force_conflicts).await {
        let mut rev = crate::workflow::recovery::unchanged(revision, r, &e.message);
        rev.action = ACTION_SWITCH.into();
        let _ = history::record(cluster, &r.namespace, &r.app, &r.env, &rev).await;
        return Err(e);
    }
    report.changed = true;
    let mut lost = guard.lost_signal();
    let outcome = tokio::select! {
        v = verify_switch(cluster, r, ui, svc_to, to, desired, o) => v,
        sig = crate::workflow::signals::received() => Err(Error::failed(format!("interrupted by {sig} during the endpoint verification"))),
        _ = lost.wait_for(|l| *l) => Err(Error::failed("the deploy lock was lost during the switch; another run may be changing the release")),
    };
    report.revision = Some(revision);
    let image = get_deployment(cluster, &r.namespace, &workload_name(&r.app, to))
        .await
        .ok()
        .flatten()
        .and_then(|d| d.spec?.template.spec?.containers.first()?.image.clone())
        .unwrap_or_default();
    let mut rev = Revision {
        revision,
        status: STATUS_SWITCHED.into(),
        action: ACTION_SWITCH.into(),
        time: history::now_rfc3339(),
        user: history::current_user(),
        image,
        message: String::new(),
        manifests: vec![svc_to.clone()],
        hashes: [(
            describe("Service", Some(&r.namespace), &r.app),
            history::object_hash(svc_to),
        )]
        .into(),
        secret_hashes: BTreeMap::new(),
        details: serde_json::json!({"from": from, "to": to, "kind": o.kind.as_str()}),
    };
    let result = match outcome {
        Ok(v) => {
            report.ok = true;
            report.endpoints = Some(v.ready);
            report.verified_ms = Some(switch_started.elapsed().as_millis());
            report.switch_ms = Some(started.elapsed().as_millis());
            rev.details["endpoints"] = v.ready.into();
            rev.details["verifiedMs"] = (switch_started.elapsed().as_millis() as u64).into();
            Ok(())
        }
        Err(e) => {
            // 4. Switch back, with the same proof.
            ui.line(format!(
                "{} switch to {to} failed: {}; switching back to {from}",
                ui.mark(false),
                e.message
            ));
            report.switched_back = true;
            let back_desired = get_deployment(cluster, &r.namespace, &workload_name(&r.app, from))
                .await?
                .and_then(|d| d.spec?.replicas)
                .unwrap_or(0);
            match switch_to(cluster, r, ui, svc_back, from, back_desired, o).await {
                Ok(_) => ui.line(format!(
                    "{} switched back: Service {} serves {from} again",
                    ui.mark(true),
                    r.app
                )),
                Err(be) => {
                    ui.line(format!(
                        "{} switch back failed: {}",
                        ui.mark(false),
                        be.message
                    ));
                    report.switch_back_error = Some((&be).into());
                }
            }
            rev.status = "failed".into();
            rev.message = e.message.clone();
            rev.manifests = vec![svc_back.clone()];
            rev.details["switchedBack"] = true.into();
            Err(Error::failed(format!(
                "switch of {} to {to} failed and was reverted to {from}: {}",
                r.app, e.message
            ))
            .on(e.object.clone().unwrap_or_else(|| describe("Service", Some(&r.namespace), &r.app)))
            .fix(format!(
                "inspect the pods of {to} (`pake bluegreen status`, `kubectl describe pod -l app={},version={to}`) and switch again when they are Ready",
                r.app
            )))
        }
    };
    if let Err(he) = history::record(cluster, &r.namespace, &r.app, &r.env, &rev).await {
        tracing::warn!("could not record the switch in history: {he}");
        if result.is_ok() {
            return Err(he);
        }
    }
    result
}

/// The closing lines of a switch (the steps printed their own lines).
pub fn switch_text(ui: &Ui, r: &SwitchReport) -> String {
    let mut out = String::new();
    let what = match r.action {
        SwitchKind::Switch => "switch",
        SwitchKind::Rollback => "rollback",
    };
    if let (true, Some(mode)) = (r.ok, r.dry_run) {
        out.push_str(&format!(
            "{} {what} of {} in {} from {} to {} would go ahead ({} dry run; nothing was changed)\n",
            ui.mark(true),
            r.app,
            r.env,
            r.from,
            r.to,
            mode.as_str(),
        ));
        return out;
    }
    if r.ok && r.changed {
        out.push_str(&format!(
            "{} {what} of {} in {}: Service {} now serves {} only ({} ready endpoint(s), verified in {:.2}s){}\n",
            ui.mark(true),
            r.app,
            r.env,
            r.app,
            r.to,
            r.endpoints.unwrap_or(0),
            r.verified_ms.unwrap_or(0) as f64 / 1000.0,
            r.revision.map(|n| format!(", revision {n}")).unwrap_or_default(),
        ));
        out.push_str(&format!(
            "  previous version {} stays up for `pake bluegreen rollback`\n",
            r.from
        ));
    } else if !r.ok {
        out.push_str(&format!(
            "{} {what} of {} in {} from {} to {} failed{}\n",
            ui.mark(false),
            r.app,
            r.env,
            r.from,
            r.to,
            if r.switched_back && r.switch_back_error.is_none() {
                format!("; switched back, {} serves again", r.from)
            } else if r.changed {
                String::new()
            } else {
                "; nothing was changed".into()
            }
        ));
        if let Some(e) = &r.error {
            out.push_str(&format!("  error: {}\n", e.message));
            if let Some(o) = &e.object {
                out.push_str(&format!("  object: {o}\n"));
            }
            if let Some(f) = &e.fix {
                out.push_str(&format!("  fix: {f}\n"));
            }
        }
        if let Some(e) = &r.switch_back_error {
            out.push_str(&format!(
                "  switch back error: {} — check `pake bluegreen status` now\n",
                e.message
            ));
        }
    }
    out
}

/// `pake bluegreen rollback`: switch back to the version that was active
/// before the current one. Nothing recorded to go back to is exit 2.
pub async fn rollback(
    cluster: &Cluster,
    r: &Resolved,
    ui: &Ui,
    workflow: &str,
    o: &SwitchOptions,
) -> Result<SwitchReport> {
    let active = require_active(cluster, r).await?;
    let revs = history::list(cluster, &r.namespace, &r.app, &r.env).await?;
    let target = rollback_target(&revs, &active).ok_or_else(|| {
        Error::usage(format!(
            "nothing to roll back to: no recorded switch to the active version {active} of {} in {}",
            r.app, r.env
        ))
        .fix(format!(
            "`pake history --env {}` lists what happened; switch explicitly with `pake bluegreen switch VERSION`",
            r.env
        ))
    })?;
    switch(cluster, r, ui, &target, workflow, o).await
}

// ---------------------------------------------------------------------------
// status
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionStatus {
    pub version: String,
    pub deployment: String,
    pub image: String,
    /// Desired replicas (spec).
    pub replicas: i32,
    pub ready: i32,
    pub available: i32,
    pub updated: i32,
    /// active, preview, rollback-target
    pub roles: Vec<String>,
    pub created: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    pub name: String,
    pub exists: bool,
    pub selects: Option<String>,
    pub endpoints_ready: usize,
    pub endpoints_total: usize,
    /// Ready endpoints per pod version.
    pub by_version: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub app: String,
    pub env: String,
    pub namespace: String,
    pub active: Option<String>,
    pub preview: Option<String>,
    pub rollback_target: Option<String>,
    pub last_switch: Option<SwitchRecord>,
    pub versions: Vec<VersionStatus>,
    pub services: Vec<ServiceStatus>,
}

/// Ready/total endpoints and ready endpoints per version (via pod labels).
pub fn endpoint_counts(
    slices: &[Value],
    pod_versions: &BTreeMap<String, String>,
) -> (usize, usize, BTreeMap<String, usize>) {
    let mut seen = BTreeSet::new();
    let (mut ready, mut total) = (0, 0);
    let mut by = BTreeMap::new();
    for s in slices {
        for e in s["endpoints"].as_array().into_iter().flatten() {
            let pod = e["targetRef"]["name"].as_str().unwrap_or("").to_string();
            // Dual-stack Services list a pod once per address family.
            if !pod.is_empty() && !seen.insert(pod.clone()) {
                continue;
            }
            total += 1;
            if e["conditions"]["ready"] != Value::Bool(false) {
                ready += 1;
                let v = pod_versions
                    .get(&pod)
                    .cloned()
                    .unwrap_or_else(|| "?".into());
                *by.entry(v).or_insert(0) += 1;
            }
        }
    }
    (ready, total, by)
}

pub async fn status(cluster: &Cluster, r: &Resolved) -> Result<Status> {
    let ns = &r.namespace;
    let app_sel = format!("app={}", r.app);
    let deployments =
        list_json_selected(cluster, "apps/v1", "Deployment", ns, Some(&app_sel)).await?;
    let pods = list_json_selected(cluster, "v1", "Pod", ns, Some(&app_sel)).await?;
    let pod_versions: BTreeMap<String, String> = pods
        .iter()
        .filter_map(|p| {
            Some((
                p["metadata"]["name"].as_str()?.to_string(),
                p["metadata"]["labels"]["version"].as_str()?.to_string(),
            ))
        })
        .collect();
    let mut services = Vec::new();
    for name in [r.app.clone(), preview_name(&r.app)] {
        let svc = get_service(cluster, ns, &name).await?;
        let slices = if svc.is_some() {
            list_json_selected(
                cluster,
                "discovery.k8s.io/v1",
                "EndpointSlice",
                ns,
                Some(&format!("kubernetes.io/service-name={name}")),
            )
            .await?
        } else {
            Vec::new()
        };
        let (ready, total, by) = endpoint_counts(&slices, &pod_versions);
        services.push(ServiceStatus {
            name,
            exists: svc.is_some(),
            selects: svc.as_ref().and_then(selected_version),
            endpoints_ready: ready,
            endpoints_total: total,
            by_version: by,
        });
    }
    let active = services[0].selects.clone();
    let preview = services[1].selects.clone();
    let revs = history::list(cluster, ns, &r.app, &r.env).await?;
    let rollback = active.as_deref().and_then(|a| rollback_target(&revs, a));
    let mut versions: Vec<VersionStatus> = deployments
        .iter()
        .filter_map(|d| {
            let version = d["spec"]["template"]["metadata"]["labels"]["version"]
                .as_str()?
                .to_string();
            let mut roles = Vec::new();
            if active.as_deref() == Some(version.as_str()) {
                roles.push("active".to_string());
            }
            if preview.as_deref() == Some(version.as_str()) {
                roles.push("preview".to_string());
            }
            if rollback.as_deref() == Some(version.as_str()) {
                roles.push("rollback-target".to_string());
            }
            let n = |k: &str| d["status"][k].as_i64().unwrap_or(0) as i32;
            Some(VersionStatus {
                deployment: d["metadata"]["name"].as_str().unwrap_or("").to_string(),
                image: d["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                replicas: d["spec"]["replicas"].as_i64().unwrap_or(1) as i32,
                ready: n("readyReplicas"),
                available: n("availableReplicas"),
                updated: n("updatedReplicas"),
                roles,
                created: d["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                version,
            })
        })
        .collect();
    versions.sort_by(|a, b| a.created.cmp(&b.created).then(a.version.cmp(&b.version)));
    Ok(Status {
        app: r.app.clone(),
        env: r.env.clone(),
        namespace: ns.clone(),
        active,
        preview,
        rollback_target: rollback,
        last_switch: switches(&revs).pop(),
        versions,
        services,
    })
}

/// The text form of [`Status`].
pub fn status_text(s: &Status) -> String {
    let mut out = String::new();
    let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    out.push_str(&format!(
        "{} in {} (namespace {})\n",
        s.app, s.env, s.namespace
    ));
    out.push_str(&format!("active:          {}", dash(&s.active)));
    if let Some(l) = &s.last_switch
        && s.active.as_deref() == Some(l.to.as_str())
    {
        out.push_str(&format!(
            "  ({} from {} at {} by {})",
            l.kind, l.from, l.time, l.user
        ));
    }
    out.push('\n');
    out.push_str(&format!("preview:         {}\n", dash(&s.preview)));
    out.push_str(&format!(
        "rollback target: {}\n\n",
        dash(&s.rollback_target)
    ));
    let mut rows = vec![[
        "VERSION".to_string(),
        "DEPLOYMENT".into(),
        "REPLICAS".into(),
        "READY".into(),
        "AVAILABLE".into(),
        "IMAGE".into(),
        "ROLE".into(),
    ]];
    for v in &s.versions {
        rows.push([
            v.version.clone(),
            v.deployment.clone(),
            v.replicas.to_string(),
            v.ready.to_string(),
            v.available.to_string(),
            v.image.clone(),
            if v.roles.is_empty() {
                if v.replicas == 0 {
                    "scaled down".into()
                } else {
                    "inactive".into()
                }
            } else {
                v.roles.join(", ")
            },
        ]);
    }
    out.push_str(&table(&rows));
    out.push('\n');
    let mut rows = vec![[
        "SERVICE".to_string(),
        "SELECTS".into(),
        "ENDPOINTS READY/TOTAL".into(),
        "READY BY VERSION".into(),
    ]];
    for sv in &s.services {
        rows.push(if sv.exists {
            [
                sv.name.clone(),
                dash(&sv.selects),
                format!("{}/{}", sv.endpoints_ready, sv.endpoints_total),
                sv.by_version
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            ]
        } else {
            [
                sv.name.clone(),
                "-".into(),
                "-".into(),
                "(not found)".into(),
            ]
        });
    }
    out.push_str(&table(&rows));
    out
}

fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut w = [0usize; N];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------
// cleanup
// ---------------------------------------------------------------------------

pub struct CleanupOptions {
    /// Keep this many of the most recently active inactive versions.
    pub keep: usize,
    /// Only versions inactive for at least this long.
    pub after: Option<Duration>,
    /// Delete the Deployment and its PDB instead of scaling to 0.
    pub delete: bool,
    pub include_rollback_target: bool,
    pub include_preview: bool,
    pub dry_run: bool,
    pub wait_lock: bool,
    pub yes: bool,
}

/// A version as cleanup sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub version: String,
    pub deployment: String,
    pub replicas: i32,
    /// When it stopped serving (or was created, if it never served).
    pub inactive_since: jiff::Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupDecision {
    pub version: String,
    pub deployment: String,
    /// scale-down | delete | keep
    pub action: String,
    pub reason: String,
    /// What happened: done, would (dry run), unchanged, or failed.
    pub result: String,
}

/// Pure: what cleanup does with each version. The active version is never
/// touched; the rollback target and the preview candidate only when asked.
pub fn plan_cleanup(
    candidates: &[Candidate],
    active: &str,
    rollback: Option<&str>,
    preview: Option<&str>,
    o: &CleanupOptions,
    now: jiff::Timestamp,
) -> Vec<CleanupDecision> {
    let decide = |c: &Candidate, action: &str, reason: String| CleanupDecision {
        version: c.version.clone(),
        deployment: c.deployment.clone(),
        action: action.into(),
        reason,
        result: String::new(),
    };
    let mut out = Vec::new();
    let mut inactive: Vec<&Candidate> = Vec::new();
    for c in candidates {
        if c.version == active {
            out.push(decide(c, "keep", "active: serves the traffic".into()));
        } else if Some(c.version.as_str()) == rollback && !o.include_rollback_target {
            out.push(decide(
                c,
                "keep",
                "rollback target (--include-rollback-target to clean it up)".into(),
            ));
        } else if Some(c.version.as_str()) == preview && !o.include_preview {
            out.push(decide(
                c,
                "keep",
                "candidate behind the preview Service (--include-preview to clean it up)".into(),
            ));
        } else {
            inactive.push(c);
        }
    }
    // Newest first: --keep N spares the N most recently active ones.
    inactive.sort_by_key(|c| std::cmp::Reverse(c.inactive_since));
    for (i, c) in inactive.into_iter().enumerate() {
        let idle = now.duration_since(c.inactive_since);
        let idle = Duration::from_secs(idle.as_secs().max(0) as u64);
        if i < o.keep {
            out.push(decide(
                c,
                "keep",
                format!("one of the {} kept (--keep)", o.keep),
            ));
        } else if let Some(after) = o.after.filter(|a| idle < *a) {
            out.push(decide(
                c,
                "keep",
                format!(
                    "inactive for {}, less than --after {}",
                    human(idle),
                    human(after)
                ),
            ));
        } else if o.delete {
            out.push(decide(c, "delete", format!("inactive for {}", human(idle))));
        } else if c.replicas == 0 {
            out.push(decide(c, "keep", "already scaled down".into()));
        } else {
            out.push(decide(
                c,
                "scale-down",
                format!("inactive for {}", human(idle)),
            ));
        }
    }
    out.sort_by(|a, b| a.version.cmp(&b.version));
    out
}

/// `3d4h`, `2h5m`, `3m12s`, `45s`: the two largest units.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (days, hours, mins) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m{secs}s"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupReport {
    pub ok: bool,
    pub app: String,
    pub env: String,
    pub namespace: String,
    pub active: String,
    pub rollback_target: Option<String>,
    pub preview: Option<String>,
    pub dry_run: bool,
    pub decisions: Vec<CleanupDecision>,
    pub revision: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
}

pub async fn cleanup(
    cluster: &Cluster,
    r: &Resolved,
    ui: &Ui,
    o: &CleanupOptions,
) -> Result<CleanupReport> {
    require_active(cluster, r).await?;
    let tx = release::Release::new(cluster, r, ui);
    if !o.dry_run {
        tx.confirm(
            o.yes,
            "clean up",
            &format!("scale down or delete inactive versions of {}", r.app),
        )?;
    }
    let guard = if o.dry_run {
        None
    } else {
        Some(tx.lock(o.wait_lock, None).await?)
    };
    let res = cleanup_locked(cluster, r, o).await;
    if let Some(g) = guard
        && let Err(e) = g.release().await
    {
        tracing::warn!("could not release the lock: {e}");
    }
    res
}

async fn cleanup_locked(
    cluster: &Cluster,
    r: &Resolved,
    o: &CleanupOptions,
) -> Result<CleanupReport> {
    let ns = &r.namespace;
    // Read under the lock: no switch can move the active version meanwhile.
    let active = require_active(cluster, r).await?;
    let preview = get_service(cluster, ns, &preview_name(&r.app))
        .await?
        .as_ref()
        .and_then(selected_version);
    let revs = history::list(cluster, ns, &r.app, &r.env).await?;
    let rollback = rollback_target(&revs, &active);
    let sw = switches(&revs);
    let deployments = list_json_selected(
        cluster,
        "apps/v1",
        "Deployment",
        ns,
        Some(&format!("app={}", r.app)),
    )
    .await?;
    let candidates: Vec<Candidate> = deployments
        .iter()
        .filter_map(|d| {
            let version = d["spec"]["template"]["metadata"]["labels"]["version"].as_str()?;
            let created: Option<jiff::Timestamp> = d["metadata"]["creationTimestamp"]
                .as_str()
                .and_then(|t| t.parse().ok());
            let since = match (inactive_since(&sw, version), created) {
                (Some(a), Some(b)) => a.max(b),
                (a, b) => a.or(b).unwrap_or_else(jiff::Timestamp::now),
            };
            Some(Candidate {
                version: version.to_string(),
                deployment: d["metadata"]["name"].as_str()?.to_string(),
                replicas: d["spec"]["replicas"].as_i64().unwrap_or(1) as i32,
                inactive_since: since,
            })
        })
        .collect();
    let mut decisions = plan_cleanup(
        &candidates,
        &active,
        rollback.as_deref(),
        preview.as_deref(),
        o,
        jiff::Timestamp::now(),
    );
    let mut report = CleanupReport {
        ok: true,
        app: r.app.clone(),
        env: r.env.clone(),
        namespace: ns.clone(),
        active: active.clone(),
        rollback_target: rollback,
        preview,
        dry_run: o.dry_run,
        decisions: Vec::new(),
        revision: None,
        error: None,
    };
    let deploy_api: Api<Deployment> = Api::namespaced(cluster.client.clone(), ns);
    let mut changed = Vec::new();
    for d in decisions.iter_mut() {
        if d.action == "keep" {
            d.result = "unchanged".into();
            continue;
        }
        // Never the active one, whatever the plan says.
        if d.version == active {
            d.result = "unchanged".into();
            continue;
        }
        if o.dry_run {
            d.result = "would".into();
            continue;
        }
        let res = if d.action == "delete" {
            delete_version(cluster, ns, &r.app, &d.version, &d.deployment).await
        } else {
            deploy_api
                .patch_scale(
                    &d.deployment,
                    &PatchParams {
                        field_manager: Some(FIELD_MANAGER.into()),
                        ..Default::default()
                    },
                    &Patch::Merge(serde_json::json!({"spec": {"replicas": 0}})),
                )
                .await
                .map(drop)
                .map_err(|e| {
                    Error::from_kube(format!("scale Deployment {ns}/{} to 0", d.deployment), e)
                })
        };
        match res {
            Ok(()) => {
                d.result = "done".into();
                changed.push(serde_json::json!({"version": d.version, "action": d.action}));
            }
            Err(e) => {
                d.result = format!("failed: {}", e.message);
                report.ok = false;
                report.error.get_or_insert((&e).into());
            }
        }
    }
    report.decisions = decisions;
    if !changed.is_empty() {
        let revision = history::next_revision(cluster, ns, &r.app, &r.env).await?;
        let rev = Revision {
            revision,
            status: ACTION_CLEANUP.into(),
            action: ACTION_CLEANUP.into(),
            time: history::now_rfc3339(),
            user: history::current_user(),
            image: String::new(),
            message: String::new(),
            manifests: Vec::new(),
            hashes: BTreeMap::new(),
            secret_hashes: BTreeMap::new(),
            details: serde_json::json!({"active": active, "changed": changed}),
        };
        history::record(cluster, ns, &r.app, &r.env, &rev).await?;
        report.revision = Some(revision);
    }
    Ok(report)
}

/// The text form of a cleanup.
pub fn cleanup_text(r: &CleanupReport) -> String {
    let mut out = format!(
        "{} in {} (namespace {}): active {}, rollback target {}, preview {}{}\n",
        r.app,
        r.env,
        r.namespace,
        r.active,
        r.rollback_target.as_deref().unwrap_or("-"),
        r.preview.as_deref().unwrap_or("-"),
        if r.dry_run { " (dry run)" } else { "" }
    );
    let mut rows = vec![[
        "VERSION".to_string(),
        "DEPLOYMENT".into(),
        "ACTION".into(),
        "RESULT".into(),
        "WHY".into(),
    ]];
    for d in &r.decisions {
        rows.push([
            d.version.clone(),
            d.deployment.clone(),
            d.action.clone(),
            d.result.clone(),
            d.reason.clone(),
        ]);
    }
    out.push_str(&table(&rows));
    if let Some(e) = &r.error {
        out.push_str(&format!("error: {}\n", e.message));
        if let Some(f) = &e.fix {
            out.push_str(&format!("  fix: {f}\n"));
        }
    }
    out
}

/// Delete a version's Deployment and the PDBs labelled with its version.
async fn delete_version(
    cluster: &Cluster,
    ns: &str,
    app: &str,
    version: &str,
    deployment: &str,
) -> Result<()> {
    let pdbs = list_json_selected(
        cluster,
        "policy/v1",
        "PodDisruptionBudget",
        ns,
        Some(&format!("app={app},version={version}")),
    )
    .await?;
    apply::delete(
        cluster,
        &serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": deployment, "namespace": ns}}),
    )
    .await?;
    for p in &pdbs {
        apply::delete(cluster, p).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::api::core::v1::{ObjectReference, PodCondition, PodStatus};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, version: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    [
                        ("app".to_string(), "web".to_string()),
                        ("version".to_string(), version.to_string()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn ep(pod: &str, ready: Option<bool>) -> Endpoint {
        Endpoint {
            addresses: vec!["10.0.0.1".into()],
            conditions: Some(EndpointConditions {
                ready,
                ..Default::default()
            }),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                name: Some(pod.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn slice(eps: Vec<Endpoint>, ports: bool) -> EndpointSlice {
        EndpointSlice {
            address_type: "IPv4".into(),
            endpoints: Some(eps),
            ports: ports.then(|| {
                vec![EndpointPort {
                    name: Some("http".into()),
                    port: Some(8000),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }
    }

    #[test]
    fn converged_only_when_all_endpoints_are_ready_pods_of_the_version() {
        let pods = vec![pod("b-1", "v2", true), pod("b-2", "v2", true)];
        let ok = endpoint_verdict(
            &[slice(vec![ep("b-1", Some(true)), ep("b-2", None)], true)],
            &pods,
            "v2",
            2,
            true,
        );
        assert!(ok.converged, "{ok:?}");
        assert_eq!(ok.ready, 2);

        // An old pod still listed.
        let v = endpoint_verdict(
            &[slice(
                vec![
                    ep("b-1", Some(true)),
                    ep("b-2", Some(true)),
                    ep("a-1", Some(true)),
                ],
                true,
            )],
            &pods,
            "v2",
            2,
            true,
        );
        assert!(!v.converged);
        assert!(
            v.message.contains("not of v2") && v.message.contains("a-1"),
            "{v:?}"
        );

        // One of two only.
        let v = endpoint_verdict(
            &[slice(vec![ep("b-1", Some(true))], true)],
            &pods,
            "v2",
            2,
            true,
        );
        assert!(!v.converged);
        assert!(v.message.contains("1 of 2"), "{v:?}");

        // A not-ready endpoint.
        let v = endpoint_verdict(
            &[slice(
                vec![ep("b-1", Some(true)), ep("b-2", Some(false))],
                true,
            )],
            &pods,
            "v2",
            2,
            true,
        );
        assert!(!v.converged);
        assert!(
            v.message.contains("not ready") && v.message.contains("b-2"),
            "{v:?}"
        );

        // Endpoints without ports: the targetPort matches nothing.
        let v = endpoint_verdict(
            &[slice(
                vec![ep("b-1", Some(true)), ep("b-2", Some(true))],
                false,
            )],
            &pods,
            "v2",
            2,
            true,
        );
        assert!(!v.converged);
        assert!(v.message.contains("no port"), "{v:?}");
    }

    #[test]
    fn unready_pod_that_is_not_an_endpoint_blocks_convergence() {
        // 2 desired, both endpoints ready, but the pod store says b-2 is not
        // Ready (the slice is behind): not yet.
        let pods = vec![pod("b-1", "v2", true), pod("b-2", "v2", false)];
        let v = endpoint_verdict(
            &[slice(
                vec![ep("b-1", Some(true)), ep("b-2", Some(true))],
                true,
            )],
            &pods,
            "v2",
            2,
            true,
        );
        assert!(!v.converged, "{v:?}");
        // Empty slices and no pods: zero desired converges (a scaled-down version).
        let v = endpoint_verdict(&[], &[], "v1", 0, true);
        assert!(v.converged);
    }

    fn rev(n: u32, action: &str, status: &str, details: Value) -> Revision {
        Revision {
            revision: n,
            status: status.into(),
            action: action.into(),
            time: format!("2025-01-01T00:00:{n:02}Z"),
            user: "u@h".into(),
            image: String::new(),
            message: String::new(),
            manifests: Vec::new(),
            hashes: BTreeMap::new(),
            secret_hashes: BTreeMap::new(),
            details,
        }
    }

    #[test]
    fn rollback_target_is_where_the_active_version_came_from() {
        let revs = vec![
            rev(1, "deploy", "superseded", Value::Null),
            rev(
                2,
                ACTION_DEPLOY,
                "deployed",
                serde_json::json!({"version": "v2"}),
            ),
            rev(
                3,
                ACTION_SWITCH,
                STATUS_SWITCHED,
                serde_json::json!({"from": "v1", "to": "v2"}),
            ),
            // A failed switch does not count.
            rev(
                4,
                ACTION_SWITCH,
                "failed",
                serde_json::json!({"from": "v2", "to": "v3"}),
            ),
        ];
        assert_eq!(rollback_target(&revs, "v2").as_deref(), Some("v1"));
        assert_eq!(rollback_target(&revs, "v1"), None);
        assert_eq!(rollback_target(&revs[..2], "v1"), None);
        let mut more = revs.clone();
        more.push(rev(
            5,
            ACTION_SWITCH,
            STATUS_SWITCHED,
            serde_json::json!({"from": "v2", "to": "v1", "kind": "rollback"}),
        ));
        assert_eq!(rollback_target(&more, "v1").as_deref(), Some("v2"));
        assert_eq!(switches(&more).len(), 2);
        assert_eq!(switches(&more)[1].kind, "rollback");
    }

    fn opts() -> CleanupOptions {
        CleanupOptions {
            keep: 0,
            after: None,
            delete: false,
            include_rollback_target: false,
            include_preview: false,
            dry_run: false,
            wait_lock: false,
            yes: false,
        }
    }

    fn cand(v: &str, replicas: i32, secs: i64) -> Candidate {
        Candidate {
            version: v.into(),
            deployment: format!("web-{v}"),
            replicas,
            inactive_since: jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap(),
        }
    }

    fn actions(d: &[CleanupDecision]) -> Vec<(String, String)> {
        d.iter()
            .map(|d| (d.version.clone(), d.action.clone()))
            .collect()
    }

    #[test]
    fn cleanup_never_touches_the_active_version() {
        let now = jiff::Timestamp::from_second(1_700_010_000).unwrap();
        let c = vec![
            cand("v1", 2, 0),
            cand("v2", 2, 100),
            cand("v3", 2, 200),
            cand("v4", 2, 300),
        ];
        for include in [false, true] {
            for delete in [false, true] {
                let o = CleanupOptions {
                    include_rollback_target: include,
                    include_preview: include,
                    delete,
                    ..opts()
                };
                let d = plan_cleanup(&c, "v3", Some("v2"), Some("v4"), &o, now);
                let v3 = d.iter().find(|d| d.version == "v3").unwrap();
                assert_eq!(v3.action, "keep", "{d:?}");
            }
        }
        let d = plan_cleanup(&c, "v3", Some("v2"), Some("v4"), &opts(), now);
        assert_eq!(
            actions(&d),
            [
                ("v1".into(), "scale-down".into()),
                ("v2".into(), "keep".into()),
                ("v3".into(), "keep".into()),
                ("v4".into(), "keep".into())
            ]
        );
        let o = CleanupOptions {
            include_rollback_target: true,
            delete: true,
            ..opts()
        };
        let d = plan_cleanup(&c, "v3", Some("v2"), Some("v4"), &o, now);
        assert_eq!(actions(&d)[0].1, "delete");
        assert_eq!(actions(&d)[1].1, "delete");
    }

    #[test]
    fn human_durations() {
        let h = |s| human(Duration::from_secs(s));
        assert_eq!(
            [h(0), h(45), h(192), h(7500), h(273_600)],
            ["0s", "45s", "3m12s", "2h5m", "3d4h"]
        );
    }

    #[test]
    fn cleanup_keep_and_after() {
        let now = jiff::Timestamp::from_second(1_700_000_400).unwrap();
        let c = vec![
            cand("v1", 2, 0),
            cand("v2", 0, 100),
            cand("v3", 2, 350),
            cand("v9", 2, 400),
        ];
        // --keep 1 spares the most recently inactive one (v3).
        let o = CleanupOptions { keep: 1, ..opts() };
        let d = plan_cleanup(&c, "v9", None, None, &o, now);
        assert_eq!(
            actions(&d),
            [
                ("v1".into(), "scale-down".into()),
                ("v2".into(), "keep".into()), // already at 0
                ("v3".into(), "keep".into()),
                ("v9".into(), "keep".into())
            ]
        );
        // --after 5m: only v1 (400s idle) qualifies; v3 (50s) is spared.
        let o = CleanupOptions {
            after: Some(Duration::from_secs(300)),
            ..opts()
        };
        let d = plan_cleanup(&c, "v9", None, None, &o, now);
        assert_eq!(actions(&d)[0].1, "scale-down");
        assert_eq!(actions(&d)[2].1, "keep");
        assert!(d[2].reason.contains("--after"), "{:?}", d[2]);
    }

    #[test]
    fn verify_checks_of_other_versions_are_ignored() {
        let checks = vec![
            CheckResult::pass("pss-labels", "Namespace ns", "ok"),
            CheckResult::fail("non-root", "Pod ns/web-v1-abc", "root", "fix"),
            CheckResult::pass("non-root", "Pod ns/web-v2-xyz", "ok"),
            CheckResult::fail("pdb", "Deployment ns/web-v1", "none", "fix"),
            CheckResult::pass("pdb", "Deployment ns/web-v2", "ok"),
        ];
        let pods: BTreeSet<String> = ["web-v2-xyz".to_string()].into();
        let kept = relevant_checks(checks, "ns", "web-v2", &pods);
        let objs: Vec<&str> = kept.iter().map(|c| c.object.as_str()).collect();
        assert_eq!(
            objs,
            ["Namespace ns", "Pod ns/web-v2-xyz", "Deployment ns/web-v2"]
        );
    }

    #[test]
    fn endpoint_counts_per_version() {
        let slices = vec![
            serde_json::json!({"endpoints": [
                {"targetRef": {"name": "a"}, "conditions": {"ready": true}},
                {"targetRef": {"name": "b"}, "conditions": {"ready": false}},
                {"targetRef": {"name": "c"}},
            ]}),
            serde_json::json!({"endpoints": [
                {"targetRef": {"name": "a"}, "conditions": {"ready": true}},
            ]}),
        ];
        let pv: BTreeMap<String, String> = [
            ("a".into(), "v1".into()),
            ("b".into(), "v1".into()),
            ("c".into(), "v2".into()),
        ]
        .into();
        let (ready, total, by) = endpoint_counts(&slices, &pv);
        assert_eq!((ready, total), (2, 3));
        assert_eq!(by, [("v1".to_string(), 1), ("v2".to_string(), 1)].into());
    }
}
