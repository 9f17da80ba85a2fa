//! The executor: runs a plan's steps in order, applying and verifying each,
//! keeps a journal of what it changed, and on any failure restores the
//! previous state of everything it touched, then verifies the restore.
//!
//! The journal lives in memory only: it holds previous Secret values so a
//! failed run can put them back, and is never printed or written anywhere.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::config::Resolved;
use crate::error::{Error, ExitCode, Result};
use crate::kube::Cluster;
use crate::kube::apply::{self, strip_server_fields};
use crate::output::Ui;
use crate::render::{Manifest, describe};
use crate::workflow::definition::{Plan, StepKind};
use crate::workflow::history::{self, Revision, RevisionStatus};
use crate::workflow::{recovery, release, signals, wait};

pub use crate::workflow::step::{
    Applied, CheckResult, Ctx, Journal, JournalEntry, ObjectResult, Outcome, Progress, Step,
};

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Server-side dry run: nothing is persisted, no lock, no history.
    pub dry_run: bool,
    /// Take over fields owned by other managers.
    pub force_conflicts: bool,
    /// Upper bound for each rollout wait (also capped by progressDeadlineSeconds).
    pub timeout: Duration,
    /// Wait for another run's lock instead of failing at once.
    pub wait_lock: bool,
    /// What is recorded in history: deploy, rollback, ...
    pub action: String,
    /// Free-form details recorded in history.
    pub details: Value,
    /// No-op detection: object (`Kind ns/name`) -> hash of the manifest the
    /// last deployed revision applied. Set by `run` from history; empty
    /// means every object is applied.
    pub last_applied: std::collections::BTreeMap<String, String>,
    /// Revisions kept in history after a successful run (0 keeps all);
    /// see `history::to_prune` for the records that are always kept.
    pub history_max: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dry_run: false,
            force_conflicts: false,
            timeout: Duration::from_secs(300),
            wait_lock: false,
            action: "deploy".into(),
            details: Value::Null,
            last_applied: Default::default(),
            history_max: history::DEFAULT_HISTORY_MAX,
        }
    }
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    pub name: String,
    pub kind: StepKind,
    pub ok: bool,
    pub duration_ms: u128,
    pub objects: Vec<ObjectResult>,
    pub checks: Vec<CheckResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorReport {
    /// Exit code class of the error.
    pub kind: ExitCode,
    pub message: String,
    pub object: Option<String>,
    pub fix: Option<String>,
}

impl From<&Error> for ErrorReport {
    fn from(e: &Error) -> Self {
        ErrorReport {
            kind: e.kind,
            message: e.message.clone(),
            object: e.object.clone(),
            fix: e.fix.clone(),
        }
    }
}

/// The final report (`-o json` prints it whole).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub ok: bool,
    pub action: String,
    pub app: String,
    pub env: String,
    pub namespace: String,
    pub image: String,
    pub dry_run: bool,
    pub revision: Option<u32>,
    pub duration_ms: u128,
    pub steps: Vec<StepReport>,
    pub rolled_back: bool,
    pub rollback: Vec<ObjectResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_error: Option<ErrorReport>,
    /// Revisions of runs that ended without finishing, found and settled by
    /// this run (write-ahead history, `workflow::recovery`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interrupted: Vec<Interrupted>,
}

/// A dead run's revision, as this run found it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Interrupted {
    pub revision: u32,
    pub action: String,
    pub user: String,
    pub started: String,
    /// Which step it reached and how many objects are live as it wanted.
    pub message: String,
}

impl Report {
    /// Permission denied or unreachable mid-run: 3, after the rollback; a
    /// source that cannot be read is configuration: 2 (`release::exit_code`).
    pub fn exit_code(&self) -> ExitCode {
        release::exit_code(self.ok, self.error.as_ref())
    }
}

/// Apply one manifest: journal the previous state first, server-side apply,
/// and say what changed.
pub async fn apply_manifest(
    ctx: &Ctx<'_>,
    journal: &mut Journal,
    object: &Value,
) -> Result<(Value, ObjectResult)> {
    let previous = apply::get(ctx.cluster, object).await?;
    let index = (!ctx.opts.dry_run).then(|| {
        journal.push(JournalEntry {
            desired: object.clone(),
            previous: previous.clone(),
            applied: Applied::InFlight,
        });
        journal.entries.len() - 1
    });
    let (applied, result, changed) = apply_prepared(ctx, object, previous).await?;
    if let Some(i) = index {
        journal.entries[i].applied = if changed {
            Applied::Changed
        } else {
            Applied::Unchanged
        };
    }
    Ok((applied, result))
}

/// No-op detection: skip the server-side apply of `object` only when all of
/// these hold (when in doubt, apply): not a dry run, no forced take-over, not
/// a Secret (its values are resolved per run); the manifest's hash is the
/// one the last deployed revision recorded for this object; the live object
/// still has pake's apply entry in managedFields; and every field pake sets
/// has exactly that value live (same list lengths, same scalars). Another
/// writer that changed one of pake's fields, or a manifest that drops a
/// field, therefore always gets a PATCH.
fn unchanged_since_last(ctx: &Ctx<'_>, object: &Value, live: &Value) -> bool {
    if ctx.opts.dry_run || ctx.opts.force_conflicts || object["kind"] == "Secret" {
        return false;
    }
    let key = describe(
        object["kind"].as_str().unwrap_or(""),
        object["metadata"]["namespace"].as_str(),
        object["metadata"]["name"].as_str().unwrap_or(""),
    );
    ctx.opts.last_applied.get(&key) == Some(&history::object_hash(object))
        && applied_by_pake(live)
        && holds(object, live)
}

/// The live object has a server-side apply entry of pake's field manager.
fn applied_by_pake(live: &Value) -> bool {
    live["metadata"]["managedFields"]
        .as_array()
        .is_some_and(|m| {
            m.iter().any(|e| {
                e["manager"] == apply::FIELD_MANAGER
                    && e["operation"] == "Apply"
                    && e["subresource"].as_str().is_none_or(str::is_empty)
            })
        })
}

/// Every field of `desired` has the same value in `live` (objects: each key
/// recursively; lists: same length, item by item; anything else: equal).
fn holds(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d
            .iter()
            .all(|(k, v)| l.get(k).is_some_and(|lv| holds(v, lv))),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(a, b)| holds(a, b))
        }
        (d, l) => d == l,
    }
}

/// Server-side apply of `object` whose live state before the apply was
/// `previous`: the applied object, what happened, and whether it changed.
pub async fn apply_prepared(
    ctx: &Ctx<'_>,
    object: &Value,
    previous: Option<Value>,
) -> Result<(Value, ObjectResult, bool)> {
    if let Some(live) = previous
        .as_ref()
        .filter(|live| unchanged_since_last(ctx, object, live))
    {
        // Nothing to do: pake applied exactly this before and the live object
        // still holds it (journalled as unchanged: rollback leaves it alone).
        let who = describe(
            object["kind"].as_str().unwrap_or(""),
            object["metadata"]["namespace"].as_str(),
            object["metadata"]["name"].as_str().unwrap_or(""),
        );
        let result = ObjectResult {
            object: who,
            action: "unchanged".into(),
        };
        return Ok((live.clone(), result, false));
    }
    let applied = match apply::apply(
        ctx.cluster,
        object,
        ctx.opts.dry_run,
        ctx.opts.force_conflicts,
    )
    .await
    {
        // A dry run cannot bind a Role that the same run would create first:
        // the escalation check needs the Role to exist. It is checked for real on deploy.
        Err(e) if ctx.opts.dry_run && object["kind"] == "RoleBinding" && e.is_not_found() => {
            let who = describe(
                "RoleBinding",
                object["metadata"]["namespace"].as_str(),
                object["metadata"]["name"].as_str().unwrap_or(""),
            );
            let action = "created (its Role is created by this run)".to_string();
            return Ok((
                object.clone(),
                ObjectResult {
                    object: who,
                    action,
                },
                false,
            ));
        }
        r => r?,
    };
    let same = |p: &Value| {
        if ctx.opts.dry_run {
            // A dry run keeps the old resourceVersion: compare content instead.
            comparable(p) == comparable(&applied)
        } else {
            p["metadata"]["resourceVersion"] == applied["metadata"]["resourceVersion"]
        }
    };
    let action = match &previous {
        None => "created",
        Some(p) if same(p) => "unchanged",
        Some(_) => "configured",
    };
    let who = describe(
        object["kind"].as_str().unwrap_or(""),
        object["metadata"]["namespace"].as_str(),
        object["metadata"]["name"].as_str().unwrap_or(""),
    );
    Ok((
        applied,
        ObjectResult {
            object: who,
            action: action.into(),
        },
        action != "unchanged",
    ))
}

/// An object without the fields the server changes on every write.
fn comparable(v: &Value) -> Value {
    let mut v = strip_server_fields(v.clone());
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("annotations");
    }
    v
}

/// Run a plan. Errors before anything changed (config, connection, lock) are
/// returned as `Err`; failures after changes are rolled back and reported in
/// the `Report` with `ok: false`.
pub async fn run(
    cluster: &Cluster,
    resolved: &Resolved,
    ui: &Ui,
    plan: &Plan,
    steps: &[Box<dyn Step + '_>],
    opts: &Options,
) -> Result<Report> {
    let started = Instant::now();
    let ctx = Ctx {
        cluster,
        resolved,
        ui,
        opts,
    };
    let mut report = new_report(resolved, opts);
    // The lock lives in the namespace, so the namespace must exist first.
    let ns_exists = crate::kube::namespace_exists(cluster, &resolved.namespace).await?;
    if opts.dry_run {
        dry_run(&ctx, steps, ns_exists, &mut report).await;
        report.duration_ms = started.elapsed().as_millis();
        return Ok(report);
    }
    if !ns_exists {
        ensure_namespace(cluster, resolved, plan, opts).await?;
    }
    let guard = release::Release::new(cluster, resolved, ui)
        .lock(opts.wait_lock, Some(opts.timeout))
        .await?;
    // Transient API errors are retried within the run's own timeout.
    crate::kube::retry::set_budget(opts.timeout.max(std::time::Duration::from_secs(30)));
    // Write-ahead: settle what a dead run left, then record this revision as
    // pending before the first change. Failing here changes nothing.
    let (prior, mut rev, settled) = match write_ahead(&ctx, plan, guard.holder()).await {
        Ok(p) => p,
        Err(e) => {
            let _ = guard.release().await;
            return Err(e);
        }
    };
    // No-op detection needs what the last deployed revision applied; any
    // other latest record (failed, interrupted, a switch...) means apply all.
    let run_opts = Options {
        last_applied: prior
            .last()
            .filter(|r| r.status == RevisionStatus::Deployed)
            .map(|r| r.hashes.clone())
            .unwrap_or_default(),
        ..opts.clone()
    };
    let ctx = Ctx {
        opts: &run_opts,
        ..ctx
    };
    report.revision = Some(rev.revision);
    report.interrupted = settled;

    let mut journal = Journal::default();
    let mut stopped_by = None;
    let mut outcome = tokio::select! {
        r = run_steps(&ctx, steps, &mut journal, &mut report) => r,
        s = signals::received() => {
            stopped_by = Some(s);
            Err(Error::failed(format!("interrupted by {s}")).fix("re-run the command; the previous state was restored"))
        }
    };
    if outcome.is_ok() && guard.lost() {
        outcome = Err(Error::failed("the lock was lost during the run: another pake run may have changed the same objects")
            .on(format!("Lease {}/{}", resolved.namespace, release::lock_name(resolved)))
            .fix("check `pake history` and re-run; a run must finish within the lease renewals (network trouble?)"));
    }

    rev.status = RevisionStatus::Deployed;
    rev.message = String::new();
    rev.time = history::now_rfc3339();
    rev.secret_hashes = journal.secret_hashes.clone();
    rev.details = opts.details.clone();

    match outcome {
        Ok(()) => record_deployed(&ctx, &mut report, &rev, &prior).await?,
        Err(e) => {
            let interrupted = stopped_by.is_some();
            undo_and_record(&ctx, &mut journal, &mut report, &mut rev, e, interrupted).await
        }
    }
    if let Err(e) = guard.release().await {
        tracing::warn!("could not release the lock: {e}");
    }
    report.duration_ms = started.elapsed().as_millis();
    Ok(report)
}

/// The report before anything ran.
fn new_report(resolved: &Resolved, opts: &Options) -> Report {
    Report {
        ok: false,
        action: opts.action.clone(),
        app: resolved.app.clone(),
        env: resolved.env.clone(),
        namespace: resolved.namespace.clone(),
        image: resolved.image_ref.clone(),
        dry_run: opts.dry_run,
        revision: None,
        duration_ms: 0,
        steps: Vec::new(),
        rolled_back: false,
        rollback: Vec::new(),
        error: None,
        rollback_error: None,
        interrupted: Vec::new(),
    }
}

/// `--dry-run`: every step's objects as a server-side dry run; no lock, no
/// history, no namespace created (namespaced objects are checked offline only
/// when it does not exist yet).
async fn dry_run(
    ctx: &Ctx<'_>,
    steps: &[Box<dyn Step + '_>],
    ns_exists: bool,
    report: &mut Report,
) {
    let (ui, resolved) = (ctx.ui, ctx.resolved);
    let mut journal = Journal::default();
    if !ns_exists {
        ui.line(format!(
            "note: namespace {} does not exist yet; namespaced objects are checked offline only",
            resolved.namespace
        ));
    }
    let mut ok = true;
    for step in steps {
        let t = Instant::now();
        let mut objects = Vec::new();
        let mut err = None;
        for m in step.dry_run_manifests() {
            if m.namespace().is_some() && !ns_exists {
                continue;
            }
            match apply_manifest(ctx, &mut journal, &m.object).await {
                Ok((_, r)) => objects.push(r),
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        ok &= err.is_none();
        let line = format!("{} (dry run)", step.name());
        ui.line(format!(
            "{} {line}: {}",
            ui.mark(err.is_none()),
            summarize(&objects)
        ));
        if let Some(e) = &err {
            ui.line(format!("  {e}"));
        }
        report.steps.push(StepReport {
            name: step.name().to_string(),
            kind: step.kind(),
            ok: err.is_none(),
            duration_ms: t.elapsed().as_millis(),
            objects,
            checks: Vec::new(),
            error: err.as_ref().map(|e| e.to_string()),
        });
        if let Some(e) = err {
            report.error = Some((&e).into());
            break;
        }
    }
    report.ok = ok;
}

/// Create the namespace (the plan's Namespace object, or a bare one).
async fn ensure_namespace(
    cluster: &Cluster,
    resolved: &Resolved,
    plan: &Plan,
    opts: &Options,
) -> Result<()> {
    let ns = plan
        .manifests()
        .find(|m| m.kind() == "Namespace" && m.name() == resolved.namespace)
        .map(|m| m.object.clone())
        .unwrap_or_else(|| serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": resolved.namespace}}));
    apply::apply(cluster, &ns, false, opts.force_conflicts).await?;
    cluster.namespace_seen(&resolved.namespace);
    Ok(())
}

/// Write-ahead history: settle what dead runs left (reported as
/// `interrupted`), then record this run's revision as `pending`. Returns the
/// prior history, the pending record and the settled runs.
async fn write_ahead(
    ctx: &Ctx<'_>,
    plan: &Plan,
    holder: &str,
) -> Result<(Vec<Revision>, Revision, Vec<Interrupted>)> {
    let (cluster, ui, resolved, opts) = (ctx.cluster, ctx.ui, ctx.resolved, ctx.opts);
    let (ns, app, env) = (&resolved.namespace, &resolved.app, &resolved.env);
    let prior = history::list(cluster, ns, app, env).await?;
    let pending: Vec<u32> = prior
        .iter()
        .filter(|r| r.status == recovery::PENDING)
        .map(|r| r.revision)
        .collect();
    let prior = recovery::settle(cluster, ui, ns, app, env, prior).await?;
    let settled: Vec<Interrupted> = prior
        .iter()
        .filter(|r| pending.contains(&r.revision))
        .map(|r| Interrupted {
            revision: r.revision,
            action: r.action.to_string(),
            user: r.user.clone(),
            started: r.time.clone(),
            message: r.message.clone(),
        })
        .collect();
    let revision = prior.last().map(|r| r.revision + 1).unwrap_or(1);
    let pending = Revision {
        revision,
        status: recovery::PENDING.into(),
        action: opts.action.as_str().into(),
        time: history::now_rfc3339(),
        user: history::current_user(),
        image: resolved.image_ref.clone(),
        message: format!("in progress: {holder}"),
        manifests: plan.manifests().map(|m| m.object.clone()).collect(),
        hashes: plan
            .manifests()
            .map(|m| (m.describe(), history::object_hash(&m.object)))
            .collect(),
        secret_hashes: Default::default(),
        details: recovery::pending_details(&opts.details, plan, holder),
    };
    history::record(cluster, ns, app, env, &pending).await?;
    Ok((prior, pending, settled))
}

/// A successful run: the revision is `deployed`, the previous one
/// `superseded`, and history is pruned (a prune failure is only a warning).
async fn record_deployed(
    ctx: &Ctx<'_>,
    report: &mut Report,
    rev: &Revision,
    prior: &[Revision],
) -> Result<()> {
    let (cluster, ui, resolved, opts) = (ctx.cluster, ctx.ui, ctx.resolved, ctx.opts);
    let revision = rev.revision;
    report.ok = true;
    history::record(
        cluster,
        &resolved.namespace,
        &resolved.app,
        &resolved.env,
        rev,
    )
    .await?;
    history::supersede(
        cluster,
        &resolved.namespace,
        &resolved.app,
        &resolved.env,
        revision,
        prior,
    )
    .await?;
    // Prune after the new record is written; a failure here leaves
    // only extra history behind, so it is a warning, not a failed run.
    let mut all = prior.to_vec();
    all.push(rev.clone());
    if let Err(e) = history::prune(
        cluster,
        &resolved.namespace,
        &resolved.app,
        &resolved.env,
        &all,
        opts.history_max,
    )
    .await
    {
        ui.line(format!("warning: history not pruned: {e}"));
    }
    Ok(())
}

/// A failed or interrupted run: undo the journal, and record the revision
/// as `failed` (or `rolled-back` after a signal).
async fn undo_and_record(
    ctx: &Ctx<'_>,
    journal: &mut Journal,
    report: &mut Report,
    rev: &mut Revision,
    e: Error,
    interrupted: bool,
) {
    let (cluster, ui, resolved) = (ctx.cluster, ctx.ui, ctx.resolved);
    let revision = rev.revision;
    report.error = Some((&e).into());
    if interrupted {
        ui.line(format!(
            "{} {}: restoring the previous state (a second signal does not interrupt this)",
            ui.mark(false),
            e.message
        ));
    }
    let rb = rollback(ctx, journal).await;
    report.rolled_back = true;
    let restored_ok = rb.is_ok();
    match rb {
        Ok(restored) => {
            ui.line(format!(
                "{} rollback: restored {} object(s) to their previous state",
                ui.mark(true),
                restored.len()
            ));
            report.rollback = restored;
        }
        Err(re) => {
            ui.line(format!("{} rollback failed: {re}", ui.mark(false)));
            report.rollback_error = Some((&re).into());
        }
    }
    rev.status = if interrupted && restored_ok {
        recovery::ROLLED_BACK.into()
    } else {
        "failed".into()
    };
    rev.message = if restored_ok {
        e.message.clone()
    } else {
        format!("{}; rollback FAILED", e.message)
    };
    if let Err(he) = history::record(
        cluster,
        &resolved.namespace,
        &resolved.app,
        &resolved.env,
        rev,
    )
    .await
    {
        ui.line(format!(
            "{} could not record revision {revision} ({he}); it stays pending and the next run reports it",
            ui.mark(false)
        ));
    }
}

async fn run_steps(
    ctx: &Ctx<'_>,
    steps: &[Box<dyn Step + '_>],
    journal: &mut Journal,
    report: &mut Report,
) -> Result<()> {
    for step in steps {
        let t = Instant::now();
        let progress = ctx.ui.step(step.name());
        let r = run_step(ctx, step.as_ref(), journal, &|m| progress.message(m)).await;
        match r {
            Ok((objects, checks)) => {
                let failed: Vec<&CheckResult> = checks.iter().filter(|c| !c.ok).collect();
                let summary = if checks.is_empty() {
                    summarize(&objects)
                } else {
                    format!(
                        "{} {} checks passed",
                        summarize(&objects),
                        checks.len() - failed.len()
                    )
                };
                let err = if failed.is_empty() {
                    None
                } else {
                    let f = failed[0];
                    Some(
                        Error::failed(format!(
                            "step {}: {} of {} checks failed; first: {} — {}",
                            step.name(),
                            failed.len(),
                            checks.len(),
                            f.check,
                            f.message
                        ))
                        .on(f.object.clone())
                        .fix(f.fix.clone().unwrap_or_default()),
                    )
                };
                if err.is_none() {
                    progress.done(summary.trim());
                } else {
                    progress.fail(summary.trim());
                    print_failed_checks(ctx.ui, &failed);
                }
                report.steps.push(StepReport {
                    name: step.name().to_string(),
                    kind: step.kind(),
                    ok: err.is_none(),
                    duration_ms: t.elapsed().as_millis(),
                    objects,
                    checks,
                    error: err.as_ref().map(|e| e.message.clone()),
                });
                if let Some(e) = err {
                    return Err(e);
                }
            }
            Err(e) => {
                progress.fail("failed");
                report.steps.push(StepReport {
                    name: step.name().to_string(),
                    kind: step.kind(),
                    ok: false,
                    duration_ms: t.elapsed().as_millis(),
                    objects: Vec::new(),
                    checks: Vec::new(),
                    error: Some(e.message.clone()),
                });
                let msg = format!("step {} failed: {}", step.name(), e.message);
                return Err(Error { message: msg, ..e });
            }
        }
    }
    Ok(())
}

fn print_failed_checks(ui: &Ui, failed: &[&CheckResult]) {
    for c in failed {
        ui.line(format!(
            "    {} {} {}: {}",
            ui.mark(false),
            c.check,
            c.object,
            c.message
        ));
        if let Some(f) = &c.fix {
            ui.line(format!("      fix: {f}"));
        }
    }
}

/// Apply and verify one step.
async fn run_step(
    ctx: &Ctx<'_>,
    step: &dyn Step,
    journal: &mut Journal,
    progress: Progress<'_>,
) -> Result<(Vec<ObjectResult>, Vec<CheckResult>)> {
    let mut outcome = step.apply(ctx, journal, progress).await?;
    let checks = step.verify(ctx, &outcome, progress).await?;
    outcome.checks.extend(checks);
    Ok((outcome.objects, outcome.checks))
}

/// The usual `Step::apply`: a step's manifests, concurrently in waves that
/// keep the order that matters (Namespaces, then NetworkPolicies, then the
/// rest), every previous state journalled before any apply goes out.
pub async fn apply_waves(
    ctx: &Ctx<'_>,
    journal: &mut Journal,
    manifests: &[Manifest],
    progress: Progress<'_>,
) -> Result<Outcome> {
    let mut out = Outcome::default();
    for wave in waves(manifests) {
        let names: Vec<String> = wave.iter().map(|m| m.describe()).collect();
        progress(&format!("applying {}", names.join(", ")));
        let previous =
            futures::future::join_all(wave.iter().map(|m| apply::get(ctx.cluster, &m.object)))
                .await;
        let mut prepared = Vec::new();
        for (m, p) in wave.iter().zip(previous) {
            let p = p?;
            let index = (!ctx.opts.dry_run).then(|| {
                journal.push(JournalEntry {
                    desired: m.object.clone(),
                    previous: p.clone(),
                    applied: Applied::InFlight,
                });
                journal.entries.len() - 1
            });
            prepared.push((*m, p, index));
        }
        let results = futures::future::join_all(
            prepared
                .iter()
                .map(|(m, p, _)| apply_prepared(ctx, &m.object, p.clone())),
        )
        .await;
        let mut first_err = None;
        for ((m, _, index), r) in prepared.into_iter().zip(results) {
            match r {
                Ok((live, res, changed)) => {
                    if let Some(i) = index {
                        journal.entries[i].applied = if changed {
                            Applied::Changed
                        } else {
                            Applied::Unchanged
                        };
                    }
                    out.objects.push(res);
                    out.applied.push((m.clone(), live));
                }
                Err(e) => {
                    // Refused: nothing changed (the entry stays in flight; undoing it is a no-op).
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
    }
    Ok(out)
}

/// Split a step's manifests into waves that may be applied concurrently.
fn waves(ms: &[Manifest]) -> Vec<Vec<&Manifest>> {
    let rank = |m: &Manifest| match m.kind() {
        "Namespace" => 0,
        "NetworkPolicy" => 1,
        "ServiceAccount" | "Role" | "ConfigMap" | "Secret" => 2,
        "RoleBinding" => 3,
        _ => 4,
    };
    let mut out: Vec<Vec<&Manifest>> = Vec::new();
    for r in 0..=4 {
        let wave: Vec<&Manifest> = ms.iter().filter(|m| rank(m) == r).collect();
        if !wave.is_empty() {
            out.push(wave);
        }
    }
    out
}

fn summarize(objects: &[ObjectResult]) -> String {
    if objects.is_empty() {
        return String::new();
    }
    let mut counts = std::collections::BTreeMap::new();
    for o in objects {
        *counts.entry(o.action.as_str()).or_insert(0) += 1;
    }
    counts
        .iter()
        .map(|(a, n)| format!("{n} {a}"))
        .collect::<Vec<_>>()
        .join(", ")
        + ";"
}

/// Undo the journal backwards, then wait for restored workloads to roll out.
pub async fn rollback(ctx: &Ctx<'_>, journal: &mut Journal) -> Result<Vec<ObjectResult>> {
    let mut restored = Vec::new();
    let mut first_err = None;
    let mut workloads = Vec::new();
    while let Some(entry) = journal.entries.pop() {
        if entry.applied == Applied::Unchanged {
            continue;
        }
        let d = &entry.desired;
        let kind = d["kind"].as_str().unwrap_or("").to_string();
        let who = describe(
            &kind,
            d["metadata"]["namespace"].as_str(),
            d["metadata"]["name"].as_str().unwrap_or(""),
        );
        let r = match &entry.previous {
            // Namespaces are left in place: deleting one deletes everything in it.
            None if kind == "Namespace" => continue,
            None => apply::delete(ctx.cluster, d).await.map(|_| "deleted"),
            // Server-side apply as pake, so pake stays the single owner of its
            // fields and the next deploy applies without a conflict.
            Some(prev) => apply::restore(ctx.cluster, prev).await.map(|_| "restored"),
        };
        match r {
            Ok(action) => {
                if action == "restored"
                    && matches!(kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet")
                {
                    workloads.push((
                        kind.clone(),
                        d["metadata"]["namespace"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                        d["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    ));
                }
                restored.push(ObjectResult {
                    object: who,
                    action: action.into(),
                });
            }
            Err(e) => {
                tracing::warn!("rollback of {who} failed: {e}");
                first_err.get_or_insert(e);
            }
        }
    }
    // Verify the restore: restored workloads must be fully rolled out again.
    for (kind, ns, name) in workloads {
        let wl = match kind.as_str() {
            "StatefulSet" => wait::Workload::StatefulSet,
            "DaemonSet" => wait::Workload::DaemonSet,
            _ => wait::Workload::Deployment,
        };
        if let Err(e) = wait::rollout(
            &ctx.cluster.client,
            wl,
            &ns,
            &name,
            ctx.opts.timeout,
            &|_| {},
        )
        .await
        {
            first_err.get_or_insert(
                Error::failed(format!(
                    "restored {kind} {ns}/{name} did not become available: {}",
                    e.message
                ))
                .fix("inspect it with `pake verify` and `kubectl describe`"),
            );
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(restored),
    }
}

#[cfg(test)]
mod noop_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn holds_means_every_desired_field_is_live() {
        let desired = json!({"metadata": {"name": "a", "labels": {"app": "a"}},
            "spec": {"ports": [{"port": 80}], "type": "ClusterIP"}});
        let live = json!({"metadata": {"name": "a", "labels": {"app": "a", "x": "y"}, "uid": "u"},
            "spec": {"ports": [{"port": 80, "protocol": "TCP"}], "type": "ClusterIP", "clusterIP": "10.0.0.1"}});
        assert!(holds(&desired, &live));
        let mut changed = live.clone();
        changed["spec"]["ports"][0]["port"] = json!(81);
        assert!(!holds(&desired, &changed));
        let mut more = live.clone();
        more["spec"]["ports"] = json!([{"port": 80}, {"port": 81}]);
        assert!(
            !holds(&desired, &more),
            "a list of another length is a change"
        );
        let mut gone = live.clone();
        gone["metadata"]["labels"] = json!({"x": "y"});
        assert!(!holds(&desired, &gone));
    }

    #[test]
    fn only_pakes_own_apply_counts() {
        let by = |manager: &str, op: &str, sub: Option<&str>| json!({"metadata": {"managedFields": [{"manager": manager, "operation": op, "subresource": sub}]}});
        assert!(applied_by_pake(&by("pake", "Apply", None)));
        assert!(!applied_by_pake(&by("pake", "Update", None)));
        assert!(!applied_by_pake(&by("pake", "Apply", Some("status"))));
        assert!(!applied_by_pake(&by("kubectl", "Apply", None)));
        assert!(!applied_by_pake(&json!({"metadata": {}})));
    }
}
