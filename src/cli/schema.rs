//! `pake schema NAME`: JSON Schemas (draft 2020-12) of pake.yaml and of the
//! reports, derived with schemars from the same serde types that read the
//! file and write the documents, so they cannot drift. Report schemas include
//! the `apiVersion`/`kind` header every document carries.

use clap::{Args, ValueEnum};
use schemars::JsonSchema;

use super::Global;
use crate::error::{ExitCode, Result};

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which schema.
    #[arg(value_enum)]
    pub name: SchemaName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaName {
    /// pake.yaml (`# yaml-language-server: $schema=...` in pake.yaml uses it).
    Config,
    /// `pake deploy|rollback|bluegreen deploy -o json`.
    DeployReport,
    /// `pake audit -o json`, `pake deploy --dry-run=client -o json`.
    AuditReport,
    /// `pake build -o json`.
    BuildReport,
    /// `pake status -o json`.
    ReleaseStatus,
    /// `pake deploy -o json` on an environment with `clusters:`.
    FleetReport,
    /// `pake diagnose -o json`.
    Diagnosis,
    /// `pake diagnose connectivity -o json`.
    ConnectivityDiagnosis,
}

/// Where pake.yaml's schema is published (the yaml-language-server line `pake init` writes).
pub const CONFIG_SCHEMA_URL: &str =
    "https://raw.githubusercontent.com/pake-dev/pake/main/schemas/pake.schema.json";

pub fn schema(name: SchemaName) -> serde_json::Value {
    match name {
        SchemaName::Config => {
            let mut s = serde_json::to_value(schemars::schema_for!(crate::config::ProjectConfig))
                .expect("schema serializes");
            s["$id"] = CONFIG_SCHEMA_URL.into();
            s["title"] = "pake.yaml".into();
            s
        }
        SchemaName::DeployReport => document::<crate::workflow::executor::Report>("DeployReport"),
        SchemaName::AuditReport => document::<crate::checks::audit::AuditReport>("AuditReport"),
        SchemaName::BuildReport => document::<crate::steps::build::BuildReport>("BuildReport"),
        SchemaName::ReleaseStatus => {
            document::<crate::steps::status::ReleaseStatus>("ReleaseStatus")
        }
        SchemaName::FleetReport => document::<crate::workflow::fleet::FleetReport>("FleetReport"),
        SchemaName::Diagnosis => document::<crate::steps::diagnose::DiagnoseReport>("Diagnosis"),
        SchemaName::ConnectivityDiagnosis => {
            document::<crate::steps::diagnose::ConnectivityReport>("ConnectivityDiagnosis")
        }
    }
}

/// The schema of `T` with the document header required.
fn document<T: JsonSchema>(kind: &str) -> serde_json::Value {
    let mut s = serde_json::to_value(schemars::schema_for!(T)).expect("schema serializes");
    s["title"] = kind.into();
    if let Some(props) = s["properties"].as_object_mut() {
        props.insert(
            "apiVersion".into(),
            serde_json::json!({"const": crate::output::API_VERSION}),
        );
        props.insert("kind".into(), serde_json::json!({"const": kind}));
    }
    if let Some(req) = s["required"].as_array_mut() {
        req.insert(0, "kind".into());
        req.insert(0, "apiVersion".into());
    }
    s
}

pub async fn run(_g: &Global, a: SchemaArgs) -> Result<ExitCode> {
    println!(
        "{}",
        serde_json::to_string_pretty(&schema(a.name)).expect("schema serializes")
    );
    Ok(ExitCode::Ok)
}
