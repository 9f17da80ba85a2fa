//! Checks: pure functions from objects to findings.
//!
//! `pake audit` runs them on files, `pake verify` on live objects, `pake build`
//! on Dockerfiles and images. A finding always carries an ID, a severity, the
//! object it concerns, a message and a fix.

pub mod audit;
pub mod depth;
pub mod diagnose;
pub mod dockerfile;
pub mod external_secrets;
pub mod guide;
pub mod image;
pub mod lines;
pub mod netpol;
pub mod posture;
pub mod pss;
pub mod secrets;

pub use lines::FieldPath;

use serde::{Deserialize, Serialize};

/// Severity, ordered: `Info < Low < Medium < High < Critical`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Some(Severity::Info),
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One result of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// Stable ID, e.g. `GUIDE-READONLY-ROOTFS` or `DOCKERFILE-USER-ROOT`.
    pub id: String,
    pub severity: Severity,
    /// `Kind namespace/name` or `Dockerfile:LINE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    pub message: String,
    pub fix: String,
    /// Line number in the source file, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The offending field inside the object (for manifests), which `pake
    /// audit` turns into `line`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub field: Option<FieldPath>,
}

impl Finding {
    pub fn new(
        id: &str,
        severity: Severity,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Finding {
            id: id.to_string(),
            severity,
            object: None,
            message: message.into(),
            fix: fix.into(),
            line: None,
            field: None,
        }
    }
    pub fn on(mut self, object: impl Into<String>) -> Self {
        self.object = Some(object.into());
        self
    }
    pub fn at_line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }
    pub fn at_field(mut self, field: FieldPath) -> Self {
        self.field = Some(field);
        self
    }
}
