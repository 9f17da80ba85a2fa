//! `workflows/deploy.yaml`: the ordered list of steps, and the one place where
//! the guide's ordering rule lives ("Apply network policies (before deployments!)").

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::Resolved;
use crate::error::{Error, Result};
use crate::render::{self, Manifest, builtin, is_workload};

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// Namespace with PSS labels, ServiceAccount, Role, RoleBinding.
    Namespace,
    /// Secrets from external sources (pake.yaml `secrets:`).
    Secrets,
    /// NetworkPolicies: default deny, then allows.
    Policies,
    /// Deployment, Service, PDB, Ingress; waits for the rollout.
    Deploy,
    /// The guide's checklist against the live cluster.
    Verify,
    /// Any other templates: applied and checked to exist as applied.
    Apply,
}

impl StepKind {
    fn from_name(name: &str) -> StepKind {
        match name {
            "namespace" => StepKind::Namespace,
            "secrets" => StepKind::Secrets,
            "policies" => StepKind::Policies,
            "deploy" => StepKind::Deploy,
            "verify" => StepKind::Verify,
            _ => StepKind::Apply,
        }
    }
    fn default_templates(self) -> &'static [&'static str] {
        match self {
            StepKind::Namespace => &["namespace.yaml", "rbac.yaml"],
            StepKind::Policies => &["network-policies.yaml"],
            StepKind::Deploy => &[
                "deployment.yaml",
                "service.yaml",
                "pdb.yaml",
                "ingress.yaml",
            ],
            _ => &[],
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkflowFile {
    #[serde(default)]
    pub name: Option<String>,
    pub steps: Vec<StepEntry>,
}

/// `- verify` or `- {name: deploy, templates: [...]}`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum StepEntry {
    Name(String),
    Full {
        name: String,
        #[serde(default)]
        templates: Option<Vec<String>>,
    },
}

/// A step with its rendered objects.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    pub name: String,
    pub kind: StepKind,
    pub templates: Vec<String>,
    pub manifests: Vec<Manifest>,
}

/// Everything a deploy will do, computed offline.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub workflow: String,
    pub steps: Vec<PlannedStep>,
}

impl Plan {
    /// Every manifest in apply order (secrets as data-less skeletons).
    pub fn manifests(&self) -> impl Iterator<Item = &Manifest> {
        self.steps.iter().flat_map(|s| s.manifests.iter())
    }
}

/// Load the project's workflow file, or the built-in one.
pub fn load(r: &Resolved, name: &str) -> Result<(String, WorkflowFile)> {
    let path = r.workflows_dir.join(format!("{name}.yaml"));
    let (source, text) = if path.exists() {
        let t = crate::input::read_text(&path, "workflow")?;
        (path.display().to_string(), t)
    } else if name == "deploy" {
        (
            "builtin:workflows/deploy.yaml".to_string(),
            builtin::DEPLOY_WORKFLOW.to_string(),
        )
    } else {
        return Err(Error::usage(format!(
            "workflow {} not found",
            path.display()
        )));
    };
    let wf = parse(&text, Path::new(&source))?;
    Ok((source, wf))
}

pub fn parse(text: &str, source: &Path) -> Result<WorkflowFile> {
    let wf: WorkflowFile = serde_saphyr::from_str_with_options(text, crate::redact::yaml_options())
        .map_err(|e| {
            let (line, msg) = crate::redact::yaml_error(&e, text);
            let at = match line {
                Some(l) => format!("{}:{l}", crate::input::show_path(source)),
                None => crate::input::show_path(source),
            };
            Error::usage(format!("{at}: invalid workflow: {msg}"))
                .fix("`steps:` is a list of built-in step names (`- secrets`) or `{name: STEP, templates: [FILE, ...]}`")
        })?;
    if wf.steps.is_empty() {
        return Err(Error::usage(format!(
            "{}: workflow has no steps",
            source.display()
        )));
    }
    Ok(wf)
}

/// Render every step of the workflow and check the ordering rule.
pub fn plan(r: &Resolved, source: &str, wf: &WorkflowFile) -> Result<Plan> {
    let mut steps = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for e in &wf.steps {
        let (name, templates) = match e {
            StepEntry::Name(n) => (n.clone(), None),
            StepEntry::Full { name, templates } => (name.clone(), templates.clone()),
        };
        if !names.insert(name.clone()) {
            return Err(Error::usage(format!(
                "{source}: step {name:?} appears twice"
            )));
        }
        let kind = StepKind::from_name(&name);
        let templates: Vec<String> = templates.unwrap_or_else(|| {
            kind.default_templates()
                .iter()
                .map(|s| s.to_string())
                .collect()
        });
        if kind == StepKind::Apply && templates.is_empty() {
            return Err(Error::usage(format!(
                "{source}: unknown step {name:?} without templates"
            ))
            .fix("built-in steps are namespace, secrets, policies, deploy, verify; a custom step needs `templates: [...]`"));
        }
        let manifests = match kind {
            StepKind::Secrets => render::secret_skeletons(r),
            StepKind::Verify => Vec::new(),
            _ => render::render_templates(r, &templates)?,
        };
        steps.push(PlannedStep {
            name,
            kind,
            templates,
            manifests,
        });
    }
    let plan = Plan {
        workflow: source.to_string(),
        steps,
    };
    check_order(&plan, source)?;
    Ok(plan)
}

/// The guide: "Apply network policies (before deployments!)". A workflow that
/// applies a workload before (or without) a default-deny NetworkPolicy is refused.
pub fn check_order(plan: &Plan, source: &str) -> Result<()> {
    // Objects are applied in plan order, step by step and within a step in
    // template order, so one pass over that order is the whole rule.
    let mut policies_seen = false;
    for step in &plan.steps {
        for m in &step.manifests {
            if is_default_deny(m) {
                policies_seen = true;
            }
            if is_workload(m.kind()) && !policies_seen {
                return Err(Error::usage(format!(
                    "{source}: step {:?} applies {} before any default-deny network policy",
                    step.name,
                    m.describe()
                ))
                .fix("the guide: \"Apply network policies (before deployments!)\" — apply the policies step (default-deny-all) before this one"));
            }
        }
    }
    Ok(())
}

/// A NetworkPolicy selecting every pod and denying both directions.
pub fn is_default_deny(m: &Manifest) -> bool {
    m.kind() == "NetworkPolicy"
        && m.object["spec"]["podSelector"]
            .as_object()
            .is_none_or(|o| o.is_empty())
        && {
            let types: Vec<&str> = m.object["spec"]["policyTypes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
                .collect();
            types.contains(&"Ingress")
                && types.contains(&"Egress")
                && m.object["spec"]["ingress"]
                    .as_array()
                    .is_none_or(|a| a.is_empty())
                && m.object["spec"]["egress"]
                    .as_array()
                    .is_none_or(|a| a.is_empty())
        }
}
