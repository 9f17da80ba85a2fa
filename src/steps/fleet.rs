//! The one seam between the fleet (`workflow::fleet`) and the single-cluster
//! release: a [`ReleaseMember`] is today's `pake deploy` for one cluster —
//! pake.yaml with the cluster's overrides, its own client (its context), then
//! `executor::run` with its Lease, write-ahead history, journal and rollback.
//! Only this file knows how a single-cluster deploy is put together; when the
//! release transaction changes shape, this is the file to adapt.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::Project;
use crate::config::fleet::{FleetPlan, Member as PlannedMember};
use crate::error::{Error, Result};
use crate::kube::{Cluster, Target};
use crate::output::Ui;
use crate::workflow::executor::{self, Report};
use crate::workflow::fleet::{self, FleetReport, Head, Member};
use crate::workflow::release::{self, Prepared, Selection};
use crate::workflow::{history, rollback};

/// `pake deploy`'s flags that shape each cluster's run.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub dry_run: bool,
    pub force_conflicts: bool,
    pub timeout: Duration,
    pub wait_lock: bool,
    pub history_max: Option<usize>,
    pub workflow: String,
    /// `--yes`: confirms a protected environment for the whole fleet.
    pub yes: bool,
}

/// One cluster, prepared: everything that can fail before a change has run.
pub struct ReleaseMember {
    pub name: String,
    pub context: String,
    server: String,
    cluster: Cluster,
    prepared: Prepared,
    ui: Ui,
    opts: DeployOptions,
    history_max: usize,
}

impl ReleaseMember {
    /// Config and render with the cluster's overrides (exit 2), a client for
    /// its context and the first reads of the release (exit 3 when it does
    /// not answer), secret sources (exit 2). Changes nothing.
    pub async fn prepare(
        base: &Selection,
        m: &PlannedMember,
        kubeconfig: Option<PathBuf>,
        opts: &DeployOptions,
        ui: &Ui,
    ) -> Result<Self> {
        let run = async {
            let mut sel = base.clone();
            sel.cluster = Some(m.name.clone());
            let p = release::prepare(&sel, &opts.workflow)?;
            let target = Target {
                kubeconfig,
                context: Some(m.context.clone()),
            };
            let (cfg, _, _) = target.config().await?;
            let server = cfg.cluster_url.to_string();
            let cluster = target.connect().await?;
            let ui = ui.for_cluster(&m.name);
            let p = crate::error::with_endpoint(
                server.clone(),
                m.context.clone(),
                crate::steps::bluegreen::follow_active(&cluster, &sel, &opts.workflow, p, &ui),
            )
            .await?;
            p.resolved.check_secret_sources()?;
            let history_max = opts
                .history_max
                .or(p.project.config.history_max)
                .unwrap_or(history::DEFAULT_HISTORY_MAX);
            Ok(ReleaseMember {
                name: m.name.clone(),
                context: m.context.clone(),
                server,
                cluster,
                prepared: p,
                ui,
                opts: opts.clone(),
                history_max,
            })
        };
        run.await
            .map_err(|e| fleet::on_cluster(e, &m.name, &m.context))
    }

    async fn scoped<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        crate::error::with_endpoint(self.server.clone(), self.context.clone(), f).await
    }
}

impl Member for ReleaseMember {
    async fn deploy(&self, details: Value) -> Result<Report> {
        let opts = executor::Options {
            dry_run: self.opts.dry_run,
            force_conflicts: self.opts.force_conflicts,
            timeout: self.opts.timeout,
            wait_lock: self.opts.wait_lock,
            history_max: self.history_max,
            details,
            ..Default::default()
        };
        let p = &self.prepared;
        self.ui.line(format!(
            "deploying to context {} (namespace {})",
            self.context, p.resolved.namespace
        ));
        self.scoped(executor::run(
            &self.cluster,
            &p.resolved,
            &self.ui,
            &p.plan,
            &crate::steps::for_plan(&p.plan),
            &opts,
        ))
        .await
    }

    async fn rollback(&self, revision: u32, details: Value) -> Result<Report> {
        self.scoped(async {
            let r = &self.prepared.resolved;
            let revs = history::list(&self.cluster, &r.namespace, &r.app, &r.env).await?;
            let target = rollback::before(&revs, revision).ok_or_else(|| {
                Error::failed(format!(
                    "cluster {}: no revision before {revision} finished a deploy; it stays at revision {revision}",
                    self.name
                ))
                .fix(format!(
                    "`pake history --env {} --cluster {}` lists its revisions",
                    r.env, self.name
                ))
            })?;
            let plan = rollback::restore_plan(target)?;
            let mut resolved = r.clone();
            resolved.image_ref = target.image.clone();
            let mut details = details;
            details["toRevision"] = json!(target.revision);
            self.ui.line(format!(
                "rolling back to revision {} ({})",
                target.revision, target.image
            ));
            let opts = executor::Options {
                timeout: self.opts.timeout,
                wait_lock: true,
                action: "rollback".into(),
                details,
                ..Default::default()
            };
            executor::run(
                &self.cluster,
                &resolved,
                &self.ui,
                &plan,
                &crate::steps::for_plan(&plan),
                &opts,
            )
            .await
        })
        .await
    }
}

/// `pake deploy` for an environment with `clusters:`: plan the waves (only
/// the `only` clusters when given), prepare every cluster (nothing changes
/// anywhere unless all of them are ready: config, render, reachability),
/// confirm a protected environment once, then run the fleet.
pub async fn deploy(
    base: &Selection,
    only: &[String],
    kubeconfig: Option<PathBuf>,
    opts: &DeployOptions,
    ui: &Ui,
) -> Result<FleetReport> {
    let project = Project::load(base.config.as_deref())?;
    let (env, _) = project.select_env(base.env.as_deref())?;
    let resolved = project.resolve(Some(&env))?;
    let plan = crate::config::fleet::plan(&env, &project.config.environments[&env], only)?;
    announce(&plan, &resolved.app, &env, opts);
    let members = futures::future::try_join_all(
        plan.members()
            .map(|m| ReleaseMember::prepare(base, m, kubeconfig.clone(), opts, ui)),
    )
    .await?;
    if !opts.dry_run {
        release::confirm_protected(
            &resolved,
            ui,
            opts.yes,
            "deploy",
            &format!("fleet of {} cluster(s): {}", members.len(), describe(&plan)),
        )?;
    }
    let fleet_id = fleet::new_id();
    let head = Head {
        fleet_id: &fleet_id,
        app: &resolved.app,
        env: &env,
        dry_run: opts.dry_run,
    };
    Ok(fleet::run(&plan, &members, ui, head).await)
}

/// `canary → eu, us` (waves in order, clusters of a wave by comma).
pub fn describe(plan: &FleetPlan) -> String {
    plan.waves
        .iter()
        .map(|w| {
            w.members
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

fn announce(plan: &FleetPlan, app: &str, env: &str, opts: &DeployOptions) {
    crate::output::err_line(format!(
        "fleet deploy{} of {app} to {env}: {} ({} wave(s), maxParallel {}, onFailure {})",
        if opts.dry_run { " (dry run)" } else { "" },
        describe(plan),
        plan.waves.len(),
        plan.max_parallel,
        plan.on_failure.as_str()
    ));
}

/// One cluster's part of a fleet-wide blue-green switch.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSwitch {
    pub name: String,
    pub context: String,
    /// The switch on this cluster, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch: Option<crate::steps::bluegreen::SwitchReport>,
    /// An error before this cluster's switch changed anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<executor::ErrorReport>,
    /// This cluster had switched, a later one failed: the switch back to its
    /// previous version (verified like a switch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switched_back: Option<crate::steps::bluegreen::SwitchReport>,
}

/// `pake bluegreen switch VERSION` on a fleet (`-o json`: kind `FleetSwitchReport`).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetSwitchReport {
    pub ok: bool,
    pub app: String,
    pub env: String,
    pub to: String,
    pub clusters: Vec<ClusterSwitch>,
}

impl FleetSwitchReport {
    /// 0 when every cluster switched; 3 when one did not answer; else 1.
    pub fn exit_code(&self) -> crate::error::ExitCode {
        use crate::error::ExitCode;
        if self.ok {
            return ExitCode::Ok;
        }
        let kinds = self.clusters.iter().filter_map(|c| {
            c.error
                .as_ref()
                .map(|e| e.kind)
                .or(c.switch.as_ref().map(|s| s.exit_code()))
        });
        let kinds: Vec<ExitCode> = kinds.collect();
        if kinds.contains(&ExitCode::Cluster) {
            ExitCode::Cluster
        } else {
            ExitCode::Failed
        }
    }
}

struct SwitchTarget {
    name: String,
    context: String,
    server: String,
    cluster: Cluster,
    resolved: crate::config::Resolved,
    ui: Ui,
}

/// A blue-green switch across every cluster of the environment, all or none:
/// every cluster is prepared and answers first (nothing changes otherwise);
/// protected environments are confirmed once; then the clusters switch one
/// after another in wave order, each proving its switch (pre-checks, smoke
/// test, endpoints) as a single switch does. When one fails (and, as a
/// single switch, put itself back), the clusters that already switched are
/// switched back to their previous version, verified.
pub async fn switch(
    base: &Selection,
    kubeconfig: Option<PathBuf>,
    to: &str,
    workflow: &str,
    o: &crate::steps::bluegreen::SwitchOptions,
    ui: &Ui,
) -> Result<FleetSwitchReport> {
    use crate::steps::bluegreen::{self, SwitchKind, SwitchOptions};
    let project = Project::load(base.config.as_deref())?;
    let (env, _) = project.select_env(base.env.as_deref())?;
    let resolved = project.resolve(Some(&env))?;
    let plan = crate::config::fleet::plan(&env, &project.config.environments[&env], &[])?;
    crate::output::err_line(format!(
        "fleet switch of {} in {env} to {to}: {} (one cluster at a time; all or none)",
        resolved.app,
        describe(&plan)
    ));
    let mut targets = Vec::new();
    for m in plan.members() {
        let t = async {
            let mut sel = base.clone();
            sel.cluster = Some(m.name.clone());
            let p = release::prepare(&sel, workflow)?;
            let target = Target {
                kubeconfig: kubeconfig.clone(),
                context: Some(m.context.clone()),
            };
            let (cfg, _, _) = target.config().await?;
            let server = cfg.cluster_url.to_string();
            let cluster = target.connect().await?;
            crate::error::with_endpoint(server.clone(), m.context.clone(), cluster.version())
                .await?;
            Ok::<_, Error>(SwitchTarget {
                name: m.name.clone(),
                context: m.context.clone(),
                server,
                cluster,
                resolved: p.resolved,
                ui: ui.for_cluster(&m.name),
            })
        }
        .await
        .map_err(|e| fleet::on_cluster(e, &m.name, &m.context))?;
        targets.push(t);
    }
    if o.dry_run.is_none() {
        release::confirm_protected(
            &resolved,
            ui,
            o.yes,
            "switch",
            &format!(
                "switch {} cluster(s) to {to}: {}",
                targets.len(),
                describe(&plan)
            ),
        )?;
    }
    let one = SwitchOptions {
        kind: o.kind,
        check: o.check.clone(),
        check_timeout: o.check_timeout,
        timeout: o.timeout,
        wait_lock: o.wait_lock,
        force_conflicts: o.force_conflicts,
        yes: true,
        dry_run: o.dry_run,
    };
    let mut out: Vec<ClusterSwitch> = Vec::new();
    let mut failed = false;
    for t in &targets {
        let mut c = ClusterSwitch {
            name: t.name.clone(),
            context: t.context.clone(),
            switch: None,
            error: None,
            switched_back: None,
        };
        if failed {
            out.push(c);
            continue;
        }
        let r = crate::error::with_endpoint(
            t.server.clone(),
            t.context.clone(),
            bluegreen::switch(&t.cluster, &t.resolved, &t.ui, to, workflow, &one),
        )
        .await;
        match r {
            Ok(rep) => {
                failed = !rep.ok;
                c.switch = Some(rep);
            }
            Err(e) => {
                failed = true;
                c.error = Some((&e).into());
            }
        }
        out.push(c);
    }
    if failed && o.dry_run.is_none() {
        let back = SwitchOptions {
            kind: SwitchKind::Rollback,
            check: None,
            check_timeout: o.check_timeout,
            timeout: o.timeout,
            wait_lock: true,
            force_conflicts: o.force_conflicts,
            yes: true,
            dry_run: None,
        };
        for (t, c) in targets.iter().zip(out.iter_mut()) {
            let Some(done) = c.switch.as_ref().filter(|s| s.ok && s.changed) else {
                continue;
            };
            let from = done.from.clone();
            t.ui.line(format!(
                "switching back to {from}: a later cluster did not switch"
            ));
            let r = crate::error::with_endpoint(
                t.server.clone(),
                t.context.clone(),
                bluegreen::switch(&t.cluster, &t.resolved, &t.ui, &from, workflow, &back),
            )
            .await;
            match r {
                Ok(rep) => c.switched_back = Some(rep),
                Err(e) => c.error = Some((&e).into()),
            }
        }
    }
    Ok(FleetSwitchReport {
        ok: !failed,
        app: resolved.app,
        env,
        to: to.to_string(),
        clusters: out,
    })
}

// ---------------------------------------------------------------------------
// rotate-secret across a fleet.
//
// Not through the `fleet::Member` seam: a member's `rollback` returns to a
// history revision, and history holds fingerprints only; undoing a rotation
// needs the previous value, which only the run that replaced it holds (in
// memory). Like the blue-green switch, a rotation is all or none: clusters
// rotate one at a time in wave order (maxParallel does not apply), and the
// first failure undoes every cluster that already rotated.

/// What happened on one cluster of a fleet rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RotationStatus {
    Rotated,
    Failed,
    /// Rotated, then undone because another cluster failed.
    Restored,
    RestoreFailed,
    /// Not started: an earlier cluster failed.
    Skipped,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationCluster {
    pub name: String,
    pub context: String,
    pub wave: u32,
    pub status: RotationStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<crate::steps::rotate::Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<executor::ErrorReport>,
    /// The undo's own report (restored value, restarts, proof).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undo: Option<crate::steps::rotate::Report>,
}

/// `-o json` of a fleet rotation (kind `FleetRotationReport`). Fingerprints only.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetRotation {
    pub fleet_id: String,
    pub app: String,
    pub env: String,
    pub secret: String,
    pub key: String,
    /// One new value per cluster (`--per-cluster`) instead of one shared value.
    pub per_cluster: bool,
    pub dry_run: bool,
    pub ok: bool,
    pub duration_ms: u128,
    pub clusters: Vec<RotationCluster>,
}

impl FleetRotation {
    /// 0 ok; otherwise the class of the first error (3 cluster, 2 usage, 1).
    pub fn exit_code(&self) -> crate::error::ExitCode {
        let first = self.clusters.iter().find_map(|c| {
            c.error
                .as_ref()
                .or_else(|| c.report.as_ref().and_then(|r| r.error.as_ref()))
        });
        release::exit_code(self.ok, first)
    }
}

/// One cluster of a fleet rotation, connected.
struct RotationMember<'m> {
    planned: &'m PlannedMember,
    server: String,
    cluster: Cluster,
    resolved: crate::config::Resolved,
    ui: Ui,
}

async fn rotation_member<'m>(
    base: &Selection,
    m: &'m PlannedMember,
    kubeconfig: Option<PathBuf>,
    (secret, key): (&str, &str),
    ui: &Ui,
) -> Result<RotationMember<'m>> {
    let run = async {
        let mut sel = base.clone();
        sel.cluster = Some(m.name.clone());
        let (_, resolved) = release::resolve(&sel)?;
        let target = Target {
            kubeconfig,
            context: Some(m.context.clone()),
        };
        let (cfg, _, _) = target.config().await?;
        let server = cfg.cluster_url.to_string();
        let cluster = target.connect().await?;
        crate::steps::rotate::check_secret(&cluster, &resolved.namespace, secret, key).await?;
        Ok(RotationMember {
            planned: m,
            server,
            cluster,
            resolved,
            ui: ui.for_cluster(&m.name),
        })
    };
    run.await
        .map_err(|e| fleet::on_cluster(e, &m.name, &m.context))
}

/// `pake rotate-secret NAME` for an environment with `clusters:`: connect to
/// every cluster and read its Secret first (nothing changes unless all answer
/// and hold the key), confirm once,
/// resolve ONE new value (or one per cluster with `per_cluster`), rotate in
/// wave order; on the first failure undo every cluster that rotated.
pub async fn rotate_secret(
    base: &Selection,
    only: &[String],
    kubeconfig: Option<PathBuf>,
    opts: &crate::steps::rotate::Options,
    per_cluster: bool,
    ui: &Ui,
) -> Result<FleetRotation> {
    use crate::steps::rotate::NewValue;
    let started = std::time::Instant::now();
    let project = Project::load(base.config.as_deref())?;
    let (env, _) = project.select_env(base.env.as_deref())?;
    let resolved = project.resolve(Some(&env))?;
    if per_cluster && !matches!(opts.source, NewValue::Random(_)) {
        return Err(Error::usage(
            "--per-cluster generates one random value per cluster: it cannot be combined with --from-env, --from-file or --from-command",
        )
        .fix("drop --per-cluster to give every cluster the value from that source"));
    }
    let plan = crate::config::fleet::plan(&env, &project.config.environments[&env], only)?;
    // Validates the source (and --length) before anything else; the shared value.
    let shared = opts.source.resolve()?;
    let members = futures::future::try_join_all(
        plan.members()
            .map(|m| rotation_member(base, m, kubeconfig.clone(), (&opts.secret, &opts.key), ui)),
    )
    .await?;
    if !opts.dry_run {
        let how = if per_cluster {
            "one new value per cluster"
        } else {
            "one new value on every cluster"
        };
        release::confirm_protected(
            &resolved,
            ui,
            opts.yes,
            "secret rotation",
            &format!(
                "rotate {}/{} ({how}) across {}",
                opts.secret,
                opts.key,
                describe(&plan)
            ),
        )?;
    }
    let mut each = opts.clone();
    each.yes = true;
    let mut out = FleetRotation {
        fleet_id: fleet::new_id(),
        app: resolved.app.clone(),
        env: env.clone(),
        secret: opts.secret.clone(),
        key: opts.key.clone(),
        per_cluster,
        dry_run: opts.dry_run,
        ok: false,
        duration_ms: 0,
        clusters: Vec::new(),
    };
    let (failed, undos) = rotate_in_order(&members, &each, per_cluster, shared, &mut out).await?;
    if failed {
        undo_rotated(&members, &each, undos, &mut out).await;
    }
    out.ok = !failed;
    out.duration_ms = started.elapsed().as_millis();
    Ok(out)
}

/// Rotate cluster by cluster in wave order; stop at the first failure (the
/// rest are `skipped`). Returns whether one failed and the undos of the
/// clusters that rotated (by index).
async fn rotate_in_order(
    members: &[RotationMember<'_>],
    each: &crate::steps::rotate::Options,
    per_cluster: bool,
    shared: crate::secret::SecretValue,
    out: &mut FleetRotation,
) -> Result<(bool, Vec<(usize, crate::steps::rotate::Undo)>)> {
    let mut undos = Vec::new();
    let mut failed = false;
    for m in members {
        let mut c = RotationCluster {
            name: m.planned.name.clone(),
            context: m.planned.context.clone(),
            wave: m.planned.wave,
            status: RotationStatus::Skipped,
            report: None,
            error: None,
            undo: None,
        };
        if !failed {
            let value = if per_cluster {
                each.source.resolve()?
            } else {
                shared.clone()
            };
            let run = crate::steps::rotate::run_with(&m.cluster, &m.resolved, &m.ui, each, value);
            match crate::error::with_endpoint(m.server.clone(), m.planned.context.clone(), run)
                .await
            {
                Ok((r, undo)) => {
                    failed = !r.ok;
                    c.status = if r.ok {
                        RotationStatus::Rotated
                    } else {
                        RotationStatus::Failed
                    };
                    c.report = Some(r);
                    undos.extend(undo.map(|u| (out.clusters.len(), u)));
                }
                Err(e) => {
                    m.ui.line(format!("{} {e}", m.ui.mark(false)));
                    failed = true;
                    c.status = RotationStatus::Failed;
                    c.error =
                        Some((&fleet::on_cluster(e, &m.planned.name, &m.planned.context)).into());
                }
            }
        }
        out.clusters.push(c);
    }
    Ok((failed, undos))
}

/// Undo the clusters that rotated, last first.
async fn undo_rotated(
    members: &[RotationMember<'_>],
    each: &crate::steps::rotate::Options,
    undos: Vec<(usize, crate::steps::rotate::Undo)>,
    out: &mut FleetRotation,
) {
    for (i, u) in undos.into_iter().rev() {
        let m = &members[i];
        let c = &mut out.clusters[i];
        match crate::steps::rotate::undo(&m.cluster, &m.resolved, &m.ui, each, u).await {
            Ok(r) => {
                c.status = if r.ok {
                    RotationStatus::Restored
                } else {
                    RotationStatus::RestoreFailed
                };
                c.undo = Some(r);
            }
            Err(e) => {
                m.ui.line(format!("{} undo failed: {e}", m.ui.mark(false)));
                c.status = RotationStatus::RestoreFailed;
                c.error = Some((&e).into());
            }
        }
    }
}
