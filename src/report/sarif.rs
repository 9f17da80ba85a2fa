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
use crate::checks::audit::AuditReport;

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
    let mut rules: BTreeMap<String, Value> = BTreeMap::new();
    let mut results = Vec::new();
    let location = |source: &str, line: Option<usize>, object: &str| {
        let mut phys = json!({"artifactLocation": {"uri": uri_path(&source.replace('\\', "/"))}});
        if let Some(l) = line {
            phys["region"] = json!({"startLine": l});
        }
        json!([{"physicalLocation": phys, "logicalLocations": [{"fullyQualifiedName": object}]}])
    };
    for r in &report.results {
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
                rules.entry(id.clone()).or_insert_with(|| {
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
            rules.entry(f.id.clone()).or_insert_with(|| {
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
                "level": level(f.severity),
                "message": {"text": format!("{object}: {}", f.message)},
                "locations": location(&r.source, f.line.or(r.line), &object),
                "properties": {"severity": f.severity, "fix": f.fix},
            }));
        }
    }
    for s in &report.suppressed {
        if crate::checks::pss::is_check_id(&s.id) {
            continue; // already emitted above, with its suppression
        }
        rules.entry(s.id.clone()).or_insert_with(
            || json!({"id": s.id, "name": s.id, "shortDescription": {"text": s.id}}),
        );
        results.push(json!({
            "ruleId": s.id,
            "level": "note",
            "message": {"text": format!("{}: {}", s.object, s.message)},
            "locations": location(&s.source, s.line, &s.object),
            "suppressions": [{"kind": "external", "justification": s.reason}],
        }));
    }
    let ids: Vec<String> = rules.keys().cloned().collect();
    for r in &mut results {
        let idx = ids
            .iter()
            .position(|i| Some(i.as_str()) == r["ruleId"].as_str());
        r["ruleIndex"] = json!(idx);
    }
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "pake",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://kubernetes.io/docs/concepts/security/pod-security-standards/",
                "rules": rules.into_values().collect::<Vec<_>>(),
            }},
            "results": results,
        }],
    })
}
