//! `pake bluegreen switch` and `rollback`: pre-check the target, apply the
//! Service, prove the switch on its endpoints, switch back if the proof fails.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::config::Resolved;
use crate::error::{Error, ExitCode, Result};
use crate::kube::Cluster;
use crate::kube::apply::{self};
use crate::kube::list::list_json_selected;
use crate::output::Ui;
use crate::render::{describe, workload_name};
use crate::workflow::definition::{self};
use crate::workflow::executor::{self, CheckResult, Ctx, ErrorReport};
use crate::workflow::history::{self, Revision};
use crate::workflow::{lock, release, wait};

use super::*;

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
pub(super) async fn precheck(ctx: &Ctx<'_>, to: &str) -> Result<(Vec<CheckResult>, i32)> {
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
    let checks = crate::steps::verify::run(ctx).await?;
    out.extend(relevant_checks(checks, ns, &name, &pod_names));
    Ok((out, desired))
}

/// Run the smoke test: `sh -c CMD` with the preview's coordinates in the
/// environment. Its stdout goes to our stderr so `-o json` stays one document.
pub(super) async fn smoke_test(
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
pub(super) async fn switch_to(
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
pub(super) async fn verify_switch(
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
pub(super) async fn dry_run_switch(
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
pub(super) async fn precheck_locked(
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
pub(super) struct Targets<'a> {
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
pub(super) async fn perform_switch(
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
