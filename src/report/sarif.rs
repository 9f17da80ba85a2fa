//! SARIF 2.1.0 for code scanning (GitHub, GitLab, Azure DevOps).
//!
//! Each PodSecurity violation is a result of rule `pss/<checkId>` at level
//! `error`; each finding is a result of its check ID with a level from its
//! severity (critical/high: error, medium: warning, low/info: note).
//! Each result points at the line of the offending field (the container's
//! `securityContext.privileged`, the env var's `value`, a rule's `verbs`),
//! not at the object's first line.
//! Findings and violations turned off in pake.yaml are kept as results with
//! an external suppression carrying the reason, so scanners show them as
//! dismissed instead of losing them.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::checks::Severity;
use crate::checks::audit::{AuditReport, ObjectResult};

pub const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// A relative path as a URI reference: everything but unreserved characters
/// and `/` percent-encoded (RFC 3986), so spaces, `#`, `%` or `:` in a file
/// name stay part of the path.
pub fn uri_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The audit as one SARIF log.
pub fn audit(report: &AuditReport) -> Value {
    let mut log = Log::default();
    let mut results: Vec<Value> = report.results.iter().flat_map(|r| log.results(r)).collect();
    results.extend(log.suppressed(report));
    let mut doc = log.head();
    doc["runs"][0]["results"] = Value::Array(results);
    doc
}

/// The rules seen so far, numbered in order of first use (a result's
/// `ruleIndex` is known when it is written, so results can be streamed).
#[derive(Default)]
pub struct Log {
    rules: Vec<Value>,
    index: BTreeMap<String, usize>,
}

fn location(source: &str, line: Option<usize>, object: &str) -> Value {
    let mut phys = json!({"artifactLocation": {"uri": uri_path(&source.replace('\\', "/"))}});
    if let Some(l) = line {
        phys["region"] = json!({"startLine": l});
    }
    json!([{"physicalLocation": phys, "logicalLocations": [{"fullyQualifiedName": object}]}])
}

impl Log {
    fn rule(&mut self, id: &str, make: impl FnOnce() -> Value) -> usize {
        if let Some(i) = self.index.get(id) {
            return *i;
        }
        self.rules.push(make());
        self.index.insert(id.to_string(), self.rules.len() - 1);
        self.rules.len() - 1
    }

    /// The SARIF results of one object: its PodSecurity violations and findings.
    pub fn results(&mut self, r: &ObjectResult) -> Vec<Value> {
        let mut results = Vec::new();
        let object = if r.kind == "Dockerfile" {
            r.source.clone()
        } else {
            match &r.namespace {
                Some(ns) => format!("{} {ns}/{}", r.kind, r.name),
                None => format!("{} {}", r.kind, r.name),
            }
        };
        if let Some(p) = &r.pss {
            for v in &p.violations {
                let id = format!("pss/{}", v.check);
                let idx = self.rule(&id, || {
                    json!({
                        "id": id,
                        "name": v.check,
                        "shortDescription": {"text": format!("Pod Security Standards check {}", v.check)},
                        "helpUri": "https://kubernetes.io/docs/concepts/security/pod-security-standards/",
                        "defaultConfiguration": {"level": "error"},
                    })
                });
                let mut res = json!({
                    "ruleId": id,
                    "ruleIndex": idx,
                    "level": "error",
                    "message": {"text": format!("{object} violates PodSecurity \"{}:{}\": {} ({})", p.level, p.version, v.reason, v.detail)},
                    "locations": location(&r.source, v.line.or(r.line), &object),
                });
                if let Some(why) = &v.suppressed {
                    res["suppressions"] = json!([{"kind": "external", "justification": why}]);
                }
                results.push(res);
            }
        }
        for f in &r.findings {
            let idx = self.rule(&f.id, || {
                json!({
                    "id": f.id,
                    "name": f.id,
                    "shortDescription": {"text": f.id},
                    "help": {"text": f.fix},
                    "defaultConfiguration": {"level": level(f.severity)},
                })
            });
            results.push(json!({
                "ruleId": f.id,
                "ruleIndex": idx,
                "level": level(f.severity),
                "message": {"text": format!("{object}: {}", f.message)},
                "locations": location(&r.source, f.line.or(r.line), &object),
                "properties": {"severity": f.severity, "fix": f.fix},
            }));
        }
        results
    }

    /// Findings turned off in pake.yaml, as results with an external suppression
    /// (PodSecurity violations carry theirs already).
    pub fn suppressed(&mut self, report: &AuditReport) -> Vec<Value> {
        let mut results = Vec::new();
        for s in &report.suppressed {
            if crate::checks::pss::is_check_id(&s.id) {
                continue; // already emitted above, with its suppression
            }
            let idx = self.rule(
                &s.id,
                || json!({"id": s.id, "name": s.id, "shortDescription": {"text": s.id}}),
            );
            results.push(json!({
                "ruleId": s.id,
                "ruleIndex": idx,
                "level": "note",
                "message": {"text": format!("{}: {}", s.object, s.message)},
                "locations": location(&s.source, s.line, &s.object),
                "suppressions": [{"kind": "external", "justification": s.reason}],
            }));
        }
        results
    }

    /// The log without its results: schema, version, and the run's tool with every rule used.
    pub fn head(self) -> Value {
        json!({
            "$schema": SCHEMA,
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": {
                    "name": "pake",
                    "version": env!("CARGO_PKG_VERSION"),
                    "informationUri": "https://kubernetes.io/docs/concepts/security/pod-security-standards/",
                    "rules": self.rules,
                }},
                "results": [],
            }],
        })
    }
}
