//! One module per step of the guide's deployment workflow. Each step applies
//! its objects (through the executor) and then proves the result on the live
//! cluster; the executor owns ordering, the journal and rollback.

pub mod bluegreen;
pub mod build;
pub mod deploy;
pub mod diagnose;
pub mod namespace;
pub mod policies;
pub mod rotate;
pub mod secrets;
pub mod status;
pub mod verify;

use serde_json::Value;

use crate::error::Result;
use crate::render::Manifest;
use crate::workflow::executor::{CheckResult, Ctx};

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
