//! The `Step` contract between the workflow engine and the steps it runs.
//!
//! The workflow layer owns this trait and the types a step sees (`Ctx`,
//! `Journal`, `ObjectResult`, `CheckResult`); `src/steps/` implements it, one
//! type per guide step, and the caller hands the executor the list of steps
//! to run (`steps::for_plan`). The executor knows no step by name: it runs
//! `apply` then `verify` for each, and on any failure undoes the journal the
//! applies wrote, backwards (the shape of kube-runtime's `Controller`, which
//! runs a reconciler it is given, and Helm's `pkg/action` over `pkg/kube`).

use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;

use crate::config::Resolved;
use crate::error::Result;
use crate::kube::Cluster;
use crate::output::Ui;
use crate::render::Manifest;
use crate::workflow::definition::StepKind;
use crate::workflow::executor::Options;

/// Progress messages of a running step (shown next to its spinner).
pub type Progress<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// What `Step::apply` produced: the objects it changed (or found unchanged),
/// the live objects as the server returned them (what `verify` reads), and
/// checks it could already settle while applying (e.g. a Secret verified on
/// the apply response, so no second read).
#[derive(Default)]
pub struct Outcome {
    pub objects: Vec<ObjectResult>,
    pub applied: Vec<(Manifest, Value)>,
    pub checks: Vec<CheckResult>,
}

/// One step of a workflow: apply (journalling every change first), then prove
/// the result on the live cluster. Undo is the journal's: the executor
/// restores every journalled object backwards, whichever step failed.
pub trait Step: Send + Sync {
    /// The name shown in progress, the report and history.
    fn name(&self) -> &str;
    fn kind(&self) -> StepKind;
    /// What a server-side dry run sends for this step; empty for steps whose
    /// objects exist only at run time (Secret values) or that apply nothing.
    fn dry_run_manifests(&self) -> &[Manifest];
    /// Make the step's changes, journalling each before its request goes out.
    fn apply<'a>(
        &'a self,
        ctx: &'a Ctx<'a>,
        journal: &'a mut Journal,
        progress: Progress<'a>,
    ) -> BoxFuture<'a, Result<Outcome>>;
    /// Prove the result on the live cluster; a failed check fails the run.
    fn verify<'a>(
        &'a self,
        ctx: &'a Ctx<'a>,
        outcome: &'a Outcome,
        progress: Progress<'a>,
    ) -> BoxFuture<'a, Result<Vec<CheckResult>>>;
}

/// What steps see.
pub struct Ctx<'a> {
    pub cluster: &'a Cluster,
    pub resolved: &'a Resolved,
    pub ui: &'a Ui,
    pub opts: &'a Options,
}

/// What happened to one object.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectResult {
    pub object: String,
    /// created | configured | unchanged | deleted | restored
    pub action: String,
}

/// A verification result: one check on one object.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    pub check: String,
    pub object: String,
    pub ok: bool,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Nothing could be proven either way (e.g. what runs inside a container on a
    /// simulated node): `ok` is true so it fails nothing, and it is never shown as a pass.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_provable: bool,
}

impl CheckResult {
    pub fn not_provable(check: &str, object: impl Into<String>, why: impl Into<String>) -> Self {
        CheckResult {
            check: check.into(),
            object: object.into(),
            ok: true,
            message: format!("not provable: {}", why.into()),
            fix: None,
            not_provable: true,
        }
    }
    pub fn pass(check: &str, object: impl Into<String>, message: impl Into<String>) -> Self {
        CheckResult {
            check: check.into(),
            object: object.into(),
            ok: true,
            message: message.into(),
            fix: None,
            not_provable: false,
        }
    }
    pub fn fail(
        check: &str,
        object: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        CheckResult {
            check: check.into(),
            object: object.into(),
            ok: false,
            message: message.into(),
            fix: Some(fix.into()),
            not_provable: false,
        }
    }
}

/// One change the run made (or was about to make), and how to undo it.
pub struct JournalEntry {
    /// The object as sent (identifies kind/namespace/name).
    pub desired: Value,
    /// The live object before the change, None if it did not exist.
    pub previous: Option<Value>,
    /// Whether the apply is known to have changed the object.
    pub applied: Applied,
}

/// What became of a journalled apply. Entries are journalled *before* the
/// request goes out, so an apply cut off by a signal (its response never
/// read) is still undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Sent, outcome unknown (interrupted): undo it.
    InFlight,
    /// The object changed: undo it.
    Changed,
    /// The server kept it as it was: nothing to undo.
    Unchanged,
}

/// The journal: changes in order. Memory only (may hold Secret values).
#[derive(Default)]
pub struct Journal {
    pub entries: Vec<JournalEntry>,
    /// `secret/key` -> keyed fingerprint (HMAC-SHA256) of the value now in the cluster (safe to record).
    pub secret_hashes: std::collections::BTreeMap<String, String>,
}

impl Journal {
    pub fn push(&mut self, entry: JournalEntry) {
        self.entries.push(entry);
    }
}
