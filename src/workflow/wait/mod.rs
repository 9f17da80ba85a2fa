//! Watch-based rollout wait: `kubectl rollout status` semantics, plus fail-fast.
//!
//! The shape follows kube-runtime's `conditions` + `await_condition`: small pure
//! predicates over object status ([`deployment_state`], [`statefulset_state`],
//! [`daemonset_state`], [`pod_failure`], [`replicaset_failure`]) that are unit
//! tested without a cluster, and one async driver ([`rollout`]) that feeds them
//! from watches.
//!
//! Why more than kubectl: `kubectl rollout status` only reads the workload's
//! status, so it keeps waiting while a pod of the new revision sits in
//! `CrashLoopBackOff` or while the ReplicaSet cannot create pods at all (a
//! PodSecurity rejection), and it returns while old pods are still terminating.
//! The guide's deploy is only "done" when the new revision serves alone, and a
//! broken release should be reported (and rolled back) in seconds, not after the
//! progress deadline. So [`rollout`] watches the workload, its pods and (for a
//! Deployment) its ReplicaSets concurrently, and returns at the first decisive
//! event: complete with no old pods left, or a failure of the *new* revision.
//! Failures of old pods are ignored: they are about to be replaced.

//!
//! Layout: [`conditions`] (pure), [`rollout`] (the workload driver),
//! [`endpoints`] (Service endpoints: the blue-green proof and the generic check).

use std::fmt;

use ::kube::api::ObjectMeta;

use crate::error::Error;

pub mod conditions;
pub mod endpoints;
pub mod rollout;
mod sandbox;

pub use conditions::*;
pub use rollout::*;

/// The workload kinds pake can wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Workload {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl Workload {
    pub fn kind(self) -> &'static str {
        match self {
            Workload::Deployment => "Deployment",
            Workload::StatefulSet => "StatefulSet",
            Workload::DaemonSet => "DaemonSet",
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

/// Where a rollout stands, judged from one snapshot of the workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutState {
    /// Still moving; the text says what is missing, e.g.
    /// "2 of 3 updated replicas are available".
    Progressing(String),
    Complete,
    Failed(RolloutFailure),
}

/// Why a rollout cannot succeed, on which object, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutFailure {
    /// The object that shows the failure, e.g. "Pod pake-prod/backend-7d9f-x2k4q".
    pub object: String,
    /// A machine-friendly reason, e.g. "CrashLoopBackOff", "FailedCreate".
    pub reason: String,
    pub message: String,
    /// The next step for the user, following the guide's troubleshooting section.
    pub fix: String,
}

impl RolloutFailure {
    /// The pake error for a failed rollout of `workload` (e.g. "Deployment ns/name").
    pub fn into_error(self, workload: &str) -> Error {
        Error::failed(format!(
            "rollout of {workload} failed: {}: {}",
            self.reason, self.message
        ))
        .on(self.object)
        .fix(self.fix)
    }
}

impl fmt::Display for RolloutFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.object, self.reason, self.message)
    }
}

/// "Kind namespace/name" as used in every pake message.
fn object_name(kind: &str, meta: &ObjectMeta) -> String {
    format!(
        "{kind} {}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or("")
    )
}

fn plural(n: i32, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
