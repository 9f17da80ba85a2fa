//! Returning to an earlier revision: which one, and the plan that restores
//! it (its recorded objects, Secrets excluded, then verify). Shared by
//! `pake rollback` and a fleet's `onFailure: rollback-all`.

use crate::error::{Error, Result};
use crate::render::Manifest;
use crate::workflow::definition::{Plan, PlannedStep, StepKind, check_order};
use crate::workflow::history::Revision;

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
/// values were never recorded), then the verify step.
pub fn plan(target: &Revision) -> Result<Plan> {
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
