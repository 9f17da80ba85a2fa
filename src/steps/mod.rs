//! One module per step of the guide's deployment workflow. Each step applies
//! its objects (through the executor) and then proves the result on the live
//! cluster; the executor owns ordering, the journal and rollback.

pub mod bluegreen;
pub mod build;
pub mod deploy;
pub mod diagnose;
pub mod diff;
pub mod external_secrets;
pub mod fleet;
pub mod namespace;
pub mod policies;
pub mod rotate;
pub mod secrets;
pub mod status;
pub mod verify;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;

use crate::error::Result;
use crate::render::Manifest;
use crate::workflow::definition::{Plan, PlannedStep, StepKind};
use crate::workflow::executor::{self, CheckResult, Ctx, Journal, Outcome, Progress, Step};

/// The steps that carry out `plan`, in its order: what the executor is handed.
pub fn for_plan(plan: &Plan) -> Vec<Box<dyn Step + '_>> {
    plan.steps
        .iter()
        .map(|step| Box::new(Planned { step }) as Box<dyn Step + '_>)
        .collect()
}

/// A step of a workflow file bound to the module that applies and proves it:
/// `secrets` (values resolved at run time), `verify` (checks only) and the
/// manifest steps (`namespace`, `policies`, `deploy`, custom steps), whose
/// objects are applied in waves and then verified by their module.
struct Planned<'p> {
    step: &'p PlannedStep,
}

impl Step for Planned<'_> {
    fn name(&self) -> &str {
        &self.step.name
    }

    fn kind(&self) -> StepKind {
        self.step.kind
    }

    fn dry_run_manifests(&self) -> &[Manifest] {
        match self.step.kind {
            StepKind::Secrets | StepKind::Verify => &[],
            _ => &self.step.manifests,
        }
    }

    fn apply<'a>(
        &'a self,
        ctx: &'a Ctx<'a>,
        journal: &'a mut Journal,
        progress: Progress<'a>,
    ) -> BoxFuture<'a, Result<Outcome>> {
        async move {
            match self.step.kind {
                StepKind::Secrets => {
                    let (objects, checks) = secrets::run(ctx, journal, progress).await?;
                    Ok(Outcome {
                        objects,
                        applied: Vec::new(),
                        checks,
                    })
                }
                StepKind::Verify => Ok(Outcome::default()),
                _ => executor::apply_waves(ctx, journal, &self.step.manifests, progress).await,
            }
        }
        .boxed()
    }

    fn verify<'a>(
        &'a self,
        ctx: &'a Ctx<'a>,
        outcome: &'a Outcome,
        progress: Progress<'a>,
    ) -> BoxFuture<'a, Result<Vec<CheckResult>>> {
        let applied = &outcome.applied;
        async move {
            match self.step.kind {
                StepKind::Secrets => Ok(Vec::new()),
                StepKind::Verify => verify::run(ctx).await,
                StepKind::Namespace => namespace::verify(ctx, applied).await,
                StepKind::Policies => policies::verify(ctx, applied).await,
                StepKind::Deploy => deploy::verify(ctx, applied, progress).await,
                _ => verify_applied(ctx, applied).await,
            }
        }
        .boxed()
    }
}

/// Generic verification for custom steps: every object exists on the server
/// as applied (the server's copy has our name and kind).
pub async fn verify_applied(
    ctx: &Ctx<'_>,
    applied: &[(Manifest, Value)],
) -> Result<Vec<CheckResult>> {
    let mut out = Vec::new();
    for (m, _) in applied {
        let live = crate::kube::apply::get(ctx.cluster, &m.object).await?;
        out.push(match live {
            Some(_) => CheckResult::pass("exists", m.describe(), "present on the server"),
            None => CheckResult::fail(
                "exists",
                m.describe(),
                "not found after apply",
                "check for an admission webhook or controller that deletes it",
            ),
        });
    }
    Ok(out)
}

/// Read a label from an object.
pub fn label<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v["metadata"]["labels"][key].as_str()
}

#[cfg(test)]
mod prune_tests;
