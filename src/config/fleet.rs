//! Several clusters per environment: `environments.<env>.clusters` and
//! `rollout`, their validation, and the pure planner that turns them into
//! ordered waves (`plan`). No I/O: `workflow::fleet` runs the plan.
//!
//! ```yaml
//! environments:
//!   prod:
//!     clusters:
//!       - { name: canary, context: prod-eu-canary }
//!       - { name: eu,     context: prod-eu-1, wave: 2 }
//!       - { name: us,     context: prod-us-1, wave: 2, replicas: 5 }
//!     rollout: { maxParallel: 2, onFailure: halt }
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{EnvironmentOverride, IngressConfig, Resolved, Resources, Toleration};
use crate::error::{Error, Result};

/// One cluster of an environment: where it is (a kubeconfig context), when it
/// is deployed (its wave) and what differs there (per-cluster overrides, on
/// top of the environment's).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSpec {
    /// Name used by `--cluster` and in reports (a DNS label, unique in the environment).
    pub name: String,
    /// Kubeconfig context of this cluster (unique in the environment).
    pub context: String,
    /// Wave number (1, 2, ...): waves run in ascending order, the clusters of
    /// one wave concurrently (up to `rollout.maxParallel`). Default: the
    /// cluster's position in the list (one cluster per wave, in file order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<u32>,
    /// Namespace in this cluster (default: the environment's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Replicas in this cluster (default: the environment's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Requests and limits in this cluster (default: the environment's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Ingress in this cluster (default: the environment's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressConfig>,
    /// Replaces the environment's nodeSelector in this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Replaces the environment's tolerations in this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
}

impl ClusterSpec {
    /// Apply this cluster's overrides to the environment's resolved config.
    pub fn apply(&self, r: &mut Resolved) {
        if let Some(ns) = &self.namespace {
            r.namespace = ns.clone();
        }
        if let Some(n) = self.replicas {
            r.replicas = n;
        }
        if let Some(res) = &self.resources {
            r.resources = res.clone();
        }
        if let Some(i) = &self.ingress {
            r.ingress = Some(i.clone());
        }
        if let Some(s) = &self.node_selector {
            r.node_selector = s.clone();
        }
        if let Some(t) = &self.tolerations {
            r.tolerations = t.clone();
        }
    }
}

/// How a fleet rollout proceeds.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rollout {
    /// Clusters of one wave deployed at the same time (default: the whole wave).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// What a failed cluster does to the rest of the fleet (default `halt`).
    #[serde(default)]
    pub on_failure: OnFailure,
}

/// What a failed cluster does to the rest of the fleet. The failed cluster
/// itself is always rolled back to its previous state (as a single deploy).
#[derive(
    Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Start no further cluster; clusters that finished keep the new revision.
    #[default]
    Halt,
    /// Halt, then roll every cluster that finished back to its previous revision, verified.
    RollbackAll,
    /// Deploy every other cluster (all waves) anyway; the run exits 1.
    Continue,
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Halt => "halt",
            OnFailure::RollbackAll => "rollback-all",
            OnFailure::Continue => "continue",
        }
    }
}

/// One cluster in a fleet plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub name: String,
    pub context: String,
    pub wave: u32,
}

/// The clusters of one wave, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Wave {
    pub number: u32,
    pub members: Vec<Member>,
}

/// Waves in the order they run, and how they run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetPlan {
    pub waves: Vec<Wave>,
    /// At least 1.
    pub max_parallel: usize,
    pub on_failure: OnFailure,
}

impl FleetPlan {
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.waves.iter().flat_map(|w| w.members.iter())
    }
}

/// The wave of the cluster at `index` (0-based) in the list.
pub fn wave_of(spec: &ClusterSpec, index: usize) -> u32 {
    spec.wave.unwrap_or(index as u32 + 1)
}

/// Turn an environment's clusters into waves. `only` (from `--cluster`,
/// repeatable) narrows the fleet to those clusters; every name must exist.
/// `env` names the environment in messages.
pub fn plan(env: &str, o: &EnvironmentOverride, only: &[String]) -> Result<FleetPlan> {
    if o.clusters.is_empty() {
        return Err(Error::usage(format!(
            "environment {env} has no clusters: --cluster applies to environments with `clusters:`"
        ))
        .fix("drop --cluster (the environment deploys to the current or --context context), or list its clusters in pake.yaml"));
    }
    let known: Vec<&str> = o.clusters.iter().map(|c| c.name.as_str()).collect();
    for name in only {
        if !known.contains(&name.as_str()) {
            return Err(
                Error::usage(format!("environment {env} has no cluster {name:?}"))
                    .fix(format!("use one of: {}", known.join(", "))),
            );
        }
    }
    let mut waves: BTreeMap<u32, Vec<Member>> = BTreeMap::new();
    for (i, c) in o.clusters.iter().enumerate() {
        if !only.is_empty() && !only.contains(&c.name) {
            continue;
        }
        let wave = wave_of(c, i);
        waves.entry(wave).or_default().push(Member {
            name: c.name.clone(),
            context: c.context.clone(),
            wave,
        });
    }
    let rollout = o.rollout.clone().unwrap_or_default();
    let widest = waves.values().map(Vec::len).max().unwrap_or(1);
    Ok(FleetPlan {
        waves: waves
            .into_iter()
            .map(|(number, members)| Wave { number, members })
            .collect(),
        max_parallel: rollout
            .max_parallel
            .map(|n| n as usize)
            .unwrap_or(widest)
            .max(1),
        on_failure: rollout.on_failure,
    })
}

/// Validate `clusters` and `rollout` of environment `env`: `err(field, rule)`
/// builds the located error (`domain`). Returns the first problem.
pub fn check(
    env: &str,
    o: &EnvironmentOverride,
    err: &dyn Fn(&[&str], String) -> Error,
) -> Result<()> {
    let base = ["environments", env];
    let at = |k: &'static str| [base[0], base[1], k];
    if o.clusters.is_empty() {
        if o.rollout.is_some() {
            return Err(err(
                &at("rollout"),
                "applies only to an environment with `clusters:`".into(),
            ));
        }
        return Ok(());
    }
    let mut names = BTreeSet::new();
    let mut contexts = BTreeMap::new();
    for c in &o.clusters {
        let f = |k: &'static str| [base[0], base[1], "clusters", k];
        if !crate::config::is_dns_label(&c.name) {
            return Err(err(
                &f("name"),
                format!(
                    "{:?} is not a valid cluster name: use lower-case letters, digits and '-', start and end with a letter or digit, at most 63 characters",
                    crate::input::escape_control(&c.name)
                ),
            ));
        }
        if !names.insert(c.name.as_str()) {
            return Err(err(
                &f("name"),
                format!("cluster {:?} is listed twice", c.name),
            ));
        }
        if c.context.trim().is_empty()
            || c.context.len() > 253
            || c.context.chars().any(char::is_control)
        {
            return Err(err(
                &f("context"),
                format!(
                    "cluster {}: {:?} is not a kubeconfig context name (non-empty, no control characters, at most 253)",
                    c.name,
                    crate::input::escape_control(&c.context)
                ),
            ));
        }
        if let Some(other) = contexts.insert(c.context.as_str(), c.name.as_str()) {
            return Err(err(
                &f("context"),
                format!(
                    "clusters {other} and {} both use context {:?}: each cluster keeps its own lock and history, so each needs its own context",
                    c.name, c.context
                ),
            ));
        }
        if c.wave == Some(0) {
            return Err(err(
                &f("wave"),
                format!("cluster {}: waves are numbered from 1", c.name),
            ));
        }
        if let Some(ns) = &c.namespace
            && !crate::config::is_dns_label(ns)
        {
            return Err(err(
                &f("namespace"),
                format!(
                    "cluster {}: {:?} is not a valid namespace (a DNS label)",
                    c.name,
                    crate::input::escape_control(ns)
                ),
            ));
        }
        if let Some(n) = c.replicas
            && n < 0
        {
            return Err(err(
                &f("replicas"),
                format!("cluster {}: {n}: replicas must be 0 or more", c.name),
            ));
        }
    }
    if let Some(r) = &o.rollout
        && r.max_parallel == Some(0)
    {
        return Err(err(
            &[base[0], base[1], "rollout", "maxParallel"],
            "must be 1 or more (omit it to deploy a whole wave at once)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn env_of(yaml_clusters: &str) -> crate::Result<crate::config::ProjectConfig> {
        let t = format!(
            "app: backend\nimage: pake-backend\nenvironments:\n  prod:\n    namespace: pake-prod\n{yaml_clusters}"
        );
        crate::config::parse(&t, Path::new("pake.yaml"))
    }

    const ISSUE: &str = "    clusters:\n      - { name: canary, context: prod-eu-canary }\n      - { name: eu,     context: prod-eu-1, wave: 2 }\n      - { name: us,     context: prod-us-1, wave: 2, replicas: 5 }\n    rollout: { maxParallel: 2, onFailure: halt }\n";

    fn names(p: &FleetPlan) -> Vec<Vec<&str>> {
        p.waves
            .iter()
            .map(|w| w.members.iter().map(|m| m.name.as_str()).collect())
            .collect()
    }

    #[test]
    fn the_issues_example_plans_two_waves() {
        let c = env_of(ISSUE).unwrap();
        let p = plan("prod", &c.environments["prod"], &[]).unwrap();
        assert_eq!(names(&p), [vec!["canary"], vec!["eu", "us"]]);
        assert_eq!(p.waves[1].number, 2);
        assert_eq!(p.max_parallel, 2);
        assert_eq!(p.on_failure, OnFailure::Halt);
        // --cluster narrows; file order within a wave is kept.
        let p = plan("prod", &c.environments["prod"], &["us".into(), "eu".into()]).unwrap();
        assert_eq!(names(&p), [vec!["eu", "us"]]);
        let e = plan("prod", &c.environments["prod"], &["asia".into()]).unwrap_err();
        assert_eq!(e.kind, crate::ExitCode::Usage);
        assert!(e.fix.unwrap().contains("canary, eu, us"));
    }

    #[test]
    fn default_is_one_cluster_per_wave_in_file_order_and_whole_wave_parallel() {
        let c = env_of(
            "    clusters:\n      - {name: b, context: cb}\n      - {name: a, context: ca}\n      - {name: c, context: cc, wave: 1}\n    rollout: {onFailure: rollback-all}\n",
        )
        .unwrap();
        let p = plan("prod", &c.environments["prod"], &[]).unwrap();
        assert_eq!(names(&p), [vec!["b", "c"], vec!["a"]]);
        assert_eq!(p.max_parallel, 2);
        assert_eq!(p.on_failure, OnFailure::RollbackAll);
    }

    #[test]
    fn overrides_apply_on_top_of_the_environment() {
        let c = env_of(ISSUE).unwrap();
        let project = crate::config::Project {
            path: "pake.yaml".into(),
            config: c,
        };
        let mut r = project.resolve(Some("prod")).unwrap();
        let us = &project.config.environments["prod"].clusters[2];
        us.apply(&mut r);
        assert_eq!(r.replicas, 5);
        assert_eq!(r.namespace, "pake-prod");
    }

    #[test]
    fn bad_fleets_are_usage_errors_naming_the_field() {
        let cases = [
            (
                "    clusters:\n      - {name: EU, context: a}\n",
                "not a valid cluster name",
            ),
            (
                "    clusters:\n      - {name: eu, context: a}\n      - {name: eu, context: b}\n",
                "listed twice",
            ),
            (
                "    clusters:\n      - {name: eu, context: a}\n      - {name: us, context: a}\n",
                "both use context \"a\"",
            ),
            (
                "    clusters:\n      - {name: eu, context: \"\"}\n",
                "not a kubeconfig context",
            ),
            (
                "    clusters:\n      - {name: eu, context: a, wave: 0}\n",
                "numbered from 1",
            ),
            (
                "    clusters:\n      - {name: eu, context: a, replicas: -1}\n",
                "replicas must be 0 or more",
            ),
            (
                "    clusters:\n      - {name: eu, context: a, namespace: Bad_NS}\n",
                "not a valid namespace",
            ),
            (
                "    clusters:\n      - {name: eu, context: a}\n    rollout: {maxParallel: 0}\n",
                "maxParallel: must be 1 or more",
            ),
            (
                "    rollout: {onFailure: halt}\n",
                "only to an environment with `clusters:`",
            ),
            (
                "    clusters:\n      - {name: eu, context: a}\n    rollout: {onFailure: stop}\n",
                "stop",
            ),
            (
                "    clusters:\n      - {name: eu, context: a, image: x}\n",
                "image",
            ),
        ];
        for (yaml, want) in cases {
            let e = env_of(yaml).unwrap_err();
            assert_eq!(e.kind, crate::ExitCode::Usage, "{yaml}");
            assert!(e.message.contains(want), "{yaml}: {}", e.message);
            assert!(e.message.starts_with("pake.yaml:"), "{}", e.message);
        }
    }
}
