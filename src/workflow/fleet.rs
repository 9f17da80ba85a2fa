//! One release across an environment's clusters, wave by wave.
//!
//! The fleet is an orchestration *over* the single-cluster release: each
//! cluster is one full run (its own client, Lease, write-ahead history,
//! journal and rollback), reached through the [`Member`] seam
//! (`steps::fleet` implements it with today's deploy). This module
//! only decides order and reacts to outcomes:
//!
//! - waves run in ascending order; the clusters of a wave run concurrently,
//!   at most `maxParallel` at a time; a wave starts only when every cluster
//!   of the previous one passed (its verify step included);
//! - a failed cluster is rolled back by its own run; then `onFailure`
//!   decides: `halt` starts nothing more, `rollback-all` also returns every
//!   cluster that passed to its previous revision (a verified rollback run),
//!   `continue` deploys all the other clusters anyway;
//! - every cluster's revision records the same fleet id
//!   (`details.fleet.id`), so `pake history --cluster NAME` ties them together.

use std::cell::Cell;
use std::future::Future;
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::fleet::{FleetPlan, Member as PlannedMember, OnFailure};
use crate::error::{Error, ExitCode, Result};
use crate::output::Ui;
use crate::workflow::executor::{ErrorReport, Report};
use crate::workflow::signals;

/// The seam: one cluster's release. `deploy` is one full single-cluster run
/// (errors before any change are `Err`, failures after changes are rolled
/// back by the run and come back as `Ok(report)` with `ok: false`);
/// `rollback` returns the cluster to the newest revision older than
/// `revision` that finished a deploy, verified.
pub trait Member {
    fn deploy(&self, details: Value) -> impl Future<Output = Result<Report>>;
    fn rollback(&self, revision: u32, details: Value) -> impl Future<Output = Result<Report>>;
}

/// Where one cluster ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterStatus {
    /// Deployed and verified.
    Passed,
    /// The deploy failed: nothing changed, or its changes were rolled back by the run.
    Failed,
    /// Not started: an earlier failure halted the fleet.
    Skipped,
    /// Passed, then returned to its previous revision by `rollback-all`, verified.
    RolledBack,
    /// Passed, but `rollback-all` could not return it to its previous revision.
    RollbackFailed,
}

/// One cluster's part of the fleet report.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterResult {
    pub name: String,
    pub context: String,
    pub wave: u32,
    pub status: ClusterStatus,
    /// When its deploy started and ended, in ms since the fleet started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u128>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u128>,
    /// The revision its deploy recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
    /// The deploy's own report (steps, checks, rollback), when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
    /// An error before the deploy changed anything (lock held, ...), or why
    /// `rollback-all` could not roll it back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
    /// `rollback-all`'s run on this cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Report>,
}

/// Counts over the fleet.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub clusters: usize,
    pub passed: usize,
    pub failed: usize,
    pub rolled_back: usize,
    pub skipped: usize,
}

/// The whole fleet run (`-o json`: kind `FleetReport`).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FleetReport {
    pub fleet_id: String,
    pub action: String,
    pub app: String,
    pub env: String,
    pub ok: bool,
    pub dry_run: bool,
    pub max_parallel: usize,
    pub on_failure: String,
    pub waves: usize,
    pub duration_ms: u128,
    pub summary: Summary,
    pub clusters: Vec<ClusterResult>,
}

impl FleetReport {
    /// Exit codes as for one cluster, over the whole fleet: 0 when every
    /// cluster passed; otherwise 3 if a cluster was unreachable or refused
    /// permission, 2 for a configuration error, else 1.
    pub fn exit_code(&self) -> ExitCode {
        if self.ok {
            return ExitCode::Ok;
        }
        let codes: Vec<ExitCode> = self
            .clusters
            .iter()
            .filter(|c| c.status != ClusterStatus::Passed)
            .filter_map(|c| {
                c.report
                    .as_ref()
                    .filter(|r| !r.ok)
                    .map(Report::exit_code)
                    .or(c.error.as_ref().map(|e| e.kind))
            })
            .collect();
        [ExitCode::Cluster, ExitCode::Usage]
            .into_iter()
            .find(|k| codes.contains(k))
            .unwrap_or(ExitCode::Failed)
    }
}

/// A fresh fleet id: `fleet-` and 12 hex digits from the OS CSPRNG.
pub fn new_id() -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).expect("OS random source");
    format!("fleet-{}", hex::encode(b))
}

/// What each revision of the fleet records in `details.fleet`.
pub fn details(fleet_id: &str, m: &PlannedMember) -> Value {
    json!({"fleet": {"id": fleet_id, "cluster": m.name, "context": m.context, "wave": m.wave}})
}

/// Run the plan. `members` holds one prepared release per planned cluster,
/// in `plan.members()` order. Never fails as a whole: each cluster's outcome
/// is in the report.
pub async fn run<M: Member>(
    plan: &FleetPlan,
    members: &[M],
    ui: &Ui,
    head: Head<'_>,
) -> FleetReport {
    let t0 = Instant::now();
    let halted = Cell::new(false);
    let planned: Vec<&PlannedMember> = plan.members().collect();
    assert_eq!(
        planned.len(),
        members.len(),
        "one member per planned cluster"
    );
    let mut results: Vec<ClusterResult> = Vec::with_capacity(members.len());
    let mut offset = 0;
    for wave in &plan.waves {
        let n = wave.members.len();
        if !halted.get() && plan.waves.len() > 1 {
            ui.line(format!(
                "wave {}: {}",
                wave.number,
                wave.members
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let idx: Vec<usize> = (offset..offset + n).collect();
        let mut done: Vec<(usize, ClusterResult)> = futures::stream::iter(idx)
            .map(|i| {
                let halted = &halted;
                let (m, member) = (planned[i], &members[i]);
                async move {
                    let r = deploy_one(m, member, plan.on_failure, halted, t0, head.fleet_id).await;
                    (i, r)
                }
            })
            .buffer_unordered(plan.max_parallel)
            .collect()
            .await;
        done.sort_by_key(|(i, _)| *i);
        results.extend(done.into_iter().map(|(_, r)| r));
        offset += n;
    }
    if plan.on_failure == OnFailure::RollbackAll && halted.get() {
        rollback_passed(plan, members, &mut results, head.fleet_id, ui).await;
    }
    let summary = summarize(&results);
    FleetReport {
        fleet_id: head.fleet_id.to_string(),
        action: "deploy".into(),
        app: head.app.to_string(),
        env: head.env.to_string(),
        ok: summary.passed == summary.clusters,
        dry_run: head.dry_run,
        max_parallel: plan.max_parallel,
        on_failure: plan.on_failure.as_str().into(),
        waves: plan.waves.len(),
        duration_ms: t0.elapsed().as_millis(),
        summary,
        clusters: results,
    }
}

/// What the report says about the run as a whole.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    pub fleet_id: &'a str,
    pub app: &'a str,
    pub env: &'a str,
    pub dry_run: bool,
}

fn blank(m: &PlannedMember, status: ClusterStatus) -> ClusterResult {
    ClusterResult {
        name: m.name.clone(),
        context: m.context.clone(),
        wave: m.wave,
        status,
        started_ms: None,
        finished_ms: None,
        revision: None,
        report: None,
        error: None,
        rollback: None,
    }
}

/// One cluster's deploy, unless the fleet was halted before it started.
async fn deploy_one<M: Member>(
    m: &PlannedMember,
    member: &M,
    policy: OnFailure,
    halted: &Cell<bool>,
    t0: Instant,
    fleet_id: &str,
) -> ClusterResult {
    // A signal (Ctrl-C, SIGTERM, SIGHUP) stops the fleet whatever the policy:
    // running clusters restore themselves, nothing new starts.
    if halted.get() || signals::pending().is_some() {
        return blank(m, ClusterStatus::Skipped);
    }
    let mut r = blank(m, ClusterStatus::Failed);
    r.started_ms = Some(t0.elapsed().as_millis());
    match member.deploy(details(fleet_id, m)).await {
        Ok(report) => {
            r.revision = report.revision;
            if report.ok {
                r.status = ClusterStatus::Passed;
            }
            r.report = Some(report);
        }
        Err(e) => r.error = Some((&e).into()),
    }
    r.finished_ms = Some(t0.elapsed().as_millis());
    if r.status != ClusterStatus::Passed && policy != OnFailure::Continue {
        halted.set(true);
    }
    r
}

/// `rollback-all`: every cluster that passed returns to its previous revision.
async fn rollback_passed<M: Member>(
    plan: &FleetPlan,
    members: &[M],
    results: &mut [ClusterResult],
    fleet_id: &str,
    ui: &Ui,
) {
    let passed: Vec<usize> = (0..results.len())
        .filter(|&i| results[i].status == ClusterStatus::Passed && !dry(&results[i]))
        .collect();
    if passed.is_empty() {
        return;
    }
    if let Some(sig) = signals::pending() {
        // Each run would stop at once on the pending signal: say what to do instead.
        ui.line(format!(
            "rollback-all not started: interrupted by {sig}; {} keep the new revision (`pake rollback --cluster NAME` returns one)",
            passed
                .iter()
                .map(|&i| results[i].name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return;
    }
    ui.line(format!(
        "rollback-all: returning {} to the previous revision",
        passed
            .iter()
            .map(|&i| results[i].name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let planned: Vec<&PlannedMember> = plan.members().collect();
    let outcomes: Vec<(usize, Result<Report>)> = futures::stream::iter(passed)
        .map(|i| {
            let revision = results[i].revision.unwrap_or(0);
            let mut d = details(fleet_id, planned[i]);
            d["fleet"]["rollbackAll"] = json!(true);
            async move { (i, members[i].rollback(revision, d).await) }
        })
        .buffer_unordered(plan.max_parallel)
        .collect()
        .await;
    for (i, outcome) in outcomes {
        let r = &mut results[i];
        match outcome {
            Ok(rep) => {
                r.status = if rep.ok {
                    ClusterStatus::RolledBack
                } else {
                    ClusterStatus::RollbackFailed
                };
                r.rollback = Some(rep);
            }
            Err(e) => {
                r.status = ClusterStatus::RollbackFailed;
                r.error = Some((&e).into());
            }
        }
    }
}

fn dry(r: &ClusterResult) -> bool {
    r.report.as_ref().is_some_and(|x| x.dry_run)
}

fn summarize(results: &[ClusterResult]) -> Summary {
    let count = |s: ClusterStatus| results.iter().filter(|r| r.status == s).count();
    Summary {
        clusters: results.len(),
        passed: count(ClusterStatus::Passed),
        failed: count(ClusterStatus::Failed) + count(ClusterStatus::RollbackFailed),
        rolled_back: count(ClusterStatus::RolledBack),
        skipped: count(ClusterStatus::Skipped),
    }
}

/// An error for a fleet step that could not even start on one cluster,
/// naming it (preparation: config, render, connection).
pub fn on_cluster(e: Error, name: &str, context: &str) -> Error {
    let object = e
        .object
        .clone()
        .unwrap_or_else(|| format!("cluster {name} (context {context})"));
    Error {
        message: format!("cluster {name}: {}", e.message),
        object: Some(object),
        ..e
    }
}

#[cfg(test)]
mod tests {
    //! The orchestration alone, over members that answer from a script
    //! (the real runs are tested against real control planes in tests/fleet.rs).
    use super::*;
    use crate::config::fleet::{FleetPlan, Member as Pm, Wave};
    use std::cell::RefCell;
    use std::time::Duration;

    struct Scripted<'a> {
        name: &'static str,
        fail: bool,
        log: &'a RefCell<Vec<String>>,
        running: &'a Cell<usize>,
        peak: &'a Cell<usize>,
    }

    fn report(ok: bool, revision: u32, action: &str) -> Report {
        Report {
            ok,
            action: action.into(),
            app: "a".into(),
            env: "prod".into(),
            namespace: "ns".into(),
            image: "i".into(),
            dry_run: false,
            revision: Some(revision),
            duration_ms: 0,
            steps: vec![],
            rolled_back: !ok,
            rollback: vec![],
            error: (!ok).then(|| ErrorReport {
                kind: ExitCode::Failed,
                message: "verify failed".into(),
                object: None,
                fix: None,
            }),
            rollback_error: None,
            interrupted: vec![],
        }
    }

    impl Member for Scripted<'_> {
        async fn deploy(&self, details: Value) -> Result<Report> {
            assert_eq!(details["fleet"]["cluster"], self.name);
            self.running.set(self.running.get() + 1);
            self.peak.set(self.peak.get().max(self.running.get()));
            self.log.borrow_mut().push(format!("start {}", self.name));
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.log.borrow_mut().push(format!("end {}", self.name));
            self.running.set(self.running.get() - 1);
            Ok(report(!self.fail, 7, "deploy"))
        }
        async fn rollback(&self, revision: u32, _d: Value) -> Result<Report> {
            assert_eq!(revision, 7);
            self.log
                .borrow_mut()
                .push(format!("rollback {}", self.name));
            Ok(report(true, 8, "rollback"))
        }
    }

    fn fleet(waves: &[&[&'static str]], max: usize, on: OnFailure) -> FleetPlan {
        FleetPlan {
            waves: waves
                .iter()
                .enumerate()
                .map(|(i, names)| Wave {
                    number: i as u32 + 1,
                    members: names
                        .iter()
                        .map(|n| Pm {
                            name: n.to_string(),
                            context: format!("ctx-{n}"),
                            wave: i as u32 + 1,
                        })
                        .collect(),
                })
                .collect(),
            max_parallel: max,
            on_failure: on,
        }
    }

    async fn go(
        waves: &[&[&'static str]],
        fail: &[&str],
        max: usize,
        on: OnFailure,
    ) -> (FleetReport, Vec<String>, usize) {
        let plan = fleet(waves, max, on);
        let log = RefCell::new(vec![]);
        let (running, peak) = (Cell::new(0), Cell::new(0));
        let members: Vec<Scripted> = waves
            .iter()
            .flat_map(|w| w.iter())
            .map(|n| Scripted {
                name: n,
                fail: fail.contains(n),
                log: &log,
                running: &running,
                peak: &peak,
            })
            .collect();
        let head = Head {
            fleet_id: "fleet-test",
            app: "a",
            env: "prod",
            dry_run: false,
        };
        let r = run(
            &plan,
            &members,
            &Ui::plain(crate::output::Format::Json),
            head,
        )
        .await;
        (r, log.into_inner(), peak.get())
    }

    fn statuses(r: &FleetReport) -> Vec<(&str, ClusterStatus)> {
        r.clusters
            .iter()
            .map(|c| (c.name.as_str(), c.status))
            .collect()
    }

    #[tokio::test]
    async fn waves_in_order_parallel_within_up_to_max() {
        let (r, log, peak) = go(
            &[&["canary"], &["eu", "us", "asia"]],
            &[],
            2,
            OnFailure::Halt,
        )
        .await;
        assert!(r.ok);
        assert_eq!(r.exit_code(), ExitCode::Ok);
        assert_eq!(peak, 2);
        // Wave 2 starts only after wave 1 ended.
        assert_eq!(log[..2], ["start canary", "end canary"]);
        assert_eq!(r.summary.passed, 4);
        // Report order is plan order, whatever finished first.
        let names: Vec<&str> = r.clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["canary", "eu", "us", "asia"]);
        let c = &r.clusters[1];
        assert!(c.started_ms.unwrap() >= r.clusters[0].finished_ms.unwrap());
    }

    #[tokio::test]
    async fn halt_stops_before_the_next_wave_and_queued_clusters() {
        let (r, log, _) = go(&[&["a", "b", "c"], &["d"]], &["a"], 1, OnFailure::Halt).await;
        use ClusterStatus::*;
        assert_eq!(
            statuses(&r),
            [
                ("a", Failed),
                ("b", Skipped),
                ("c", Skipped),
                ("d", Skipped)
            ]
        );
        assert_eq!(log, ["start a", "end a"]);
        assert_eq!(r.exit_code(), ExitCode::Failed);
    }

    #[tokio::test]
    async fn rollback_all_returns_the_passed_clusters() {
        let (r, log, _) = go(
            &[&["a"], &["b", "c"], &["d"]],
            &["c"],
            2,
            OnFailure::RollbackAll,
        )
        .await;
        use ClusterStatus::*;
        assert_eq!(
            statuses(&r),
            [
                ("a", RolledBack),
                ("b", RolledBack),
                ("c", Failed),
                ("d", Skipped)
            ]
        );
        assert!(log.contains(&"rollback a".to_string()) && log.contains(&"rollback b".to_string()));
        assert_eq!(r.summary.rolled_back, 2);
        assert_eq!(r.exit_code(), ExitCode::Failed);
    }

    #[tokio::test]
    async fn continue_deploys_everything_and_fails_the_run() {
        let (r, _, _) = go(&[&["a"], &["b"], &["c"]], &["a"], 1, OnFailure::Continue).await;
        use ClusterStatus::*;
        assert_eq!(statuses(&r), [("a", Failed), ("b", Passed), ("c", Passed)]);
        assert!(!r.ok);
        assert_eq!(r.exit_code(), ExitCode::Failed);
    }
}
