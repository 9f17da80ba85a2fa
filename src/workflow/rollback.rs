//! `pake rollback`: return to an earlier revision of the release, as a plan
//! built from what that revision recorded (Secrets excluded: their values
//! are never stored), run by the executor inside the same release
//! transaction as a deploy (lock, write-ahead history, undo on failure).

use crate::config::Resolved;
use crate::error::{Error, Result};
use crate::render::Manifest;
use crate::workflow::definition::{Plan, PlannedStep, StepKind, check_order};
use crate::workflow::executor;
use crate::workflow::history::Revision;

/// What a rollback restores: the environment with the revision's image, the
/// revision itself, and the plan (restore its objects, then verify).
pub struct Rollback {
    pub resolved: Resolved,
    pub target: Revision,
    pub plan: Plan,
}

/// Choose the revision to return to (`to`, or the newest successful one
/// before the current) and plan its restore. Pure: `revs` is the history.
pub fn plan(resolved: &Resolved, revs: &[Revision], to: Option<u32>) -> Result<Rollback> {
    let mut r = resolved.clone();
    let current = revs
        .iter()
        .rev()
        .find(|v| v.status == "deployed")
        .map(|v| v.revision);
    let target = match to {
        Some(n) => revs.iter().find(|v| v.revision == n).ok_or_else(|| {
            Error::usage(format!("revision {n} of {} in {} not found", r.app, r.env)).fix(format!(
                "`pake history --env {}` lists the revisions",
                r.env
            ))
        })?,
        None => revs
            .iter()
            .rev()
            .find(|v| Some(v.revision) != current && restorable(v))
            .ok_or_else(|| {
                Error::usage(format!(
                    "nothing to roll back to: {} in {} has no earlier successful revision",
                    r.app, r.env
                ))
            })?,
    };
    if !restorable(target) {
        return Err(Error::usage(format!(
            "revision {} is {} (it never finished a deploy); roll back to a revision that was deployed",
            target.revision, target.status
        ))
        .fix(format!(
            "`pake history --env {}` lists the revisions; pick one that is deployed or superseded",
            r.env
        )));
    }
    r.image_ref = target.image.clone();
    Ok(Rollback {
        resolved: r,
        target: target.clone(),
        plan: restore_plan(target)?,
    })
}

/// A revision a rollback may return to: one that finished a deploy.
pub fn restorable(v: &Revision) -> bool {
    matches!(v.status.as_str(), "deployed" | "superseded")
}

/// The latest restorable revision older than `revision` (a fleet rolls a
/// cluster back from the revision it just deployed).
pub fn before(revs: &[Revision], revision: u32) -> Option<&Revision> {
    revs.iter()
        .rev()
        .find(|v| v.revision < revision && restorable(v))
}

/// The plan restoring `target`: its objects (Secrets stay as they are: their
/// values were never recorded), then the verify step. Shared by `pake
/// rollback` and a fleet's `onFailure: rollback-all`.
pub fn restore_plan(target: &Revision) -> Result<Plan> {
    if !restorable(target) {
        return Err(Error::usage(format!(
            "revision {} is {} (it never finished a deploy); roll back to a revision that was deployed",
            target.revision, target.status
        )));
    }
    let manifests: Vec<Manifest> = target
        .manifests
        .iter()
        .filter(|o| o["kind"] != "Secret")
        .enumerate()
        .map(|(i, o)| Manifest {
            template: format!("revision {}", target.revision),
            doc: i,
            object: o.clone(),
        })
        .collect();
    let plan = Plan {
        workflow: format!("rollback to revision {}", target.revision),
        steps: vec![
            PlannedStep {
                name: "restore".into(),
                kind: StepKind::Deploy,
                templates: Vec::new(),
                manifests,
            },
            PlannedStep {
                name: "verify".into(),
                kind: StepKind::Verify,
                templates: Vec::new(),
                manifests: Vec::new(),
            },
        ],
    };
    check_order(&plan, &plan.workflow)?;
    Ok(plan)
}

/// How the executor records a rollback in history.
pub fn options(target: &Revision) -> executor::Options {
    executor::Options {
        action: "rollback".into(),
        details: serde_json::json!({"toRevision": target.revision}),
        ..Default::default()
    }
}
