//! `pake bluegreen deploy`: the candidate next to the active version, as an
//! executor plan (policies, the version-labelled objects, the preview Service,
//! verify).

use std::time::Duration;

use crate::config::Resolved;
use crate::error::{Error, Result};
use crate::kube::Cluster;
use crate::output::Ui;
use crate::render::{self};
use crate::workflow::definition::{self, Plan, PlannedStep, StepKind, check_order};
use crate::workflow::executor::{self, Report};
use crate::workflow::release;

use super::*;

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
    executor::run(cluster, r, ui, &plan, &crate::steps::for_plan(&plan), &opts).await
}

pub use crate::workflow::wait::endpoints::{
    EndpointTarget, EndpointVerdict, await_endpoints, endpoint_verdict, service_has_ports,
};
