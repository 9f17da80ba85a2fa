//! Text output of `pake audit` (JSON is the report itself; SARIF is in `sarif.rs`).

use std::fmt::Write as _;

use crate::checks::audit::{AuditReport, ObjectResult};
use crate::output::Ui;

/// The human report: one block per object with a problem, one line per clean
/// object, the overrides applied with their reasons, and a summary.
pub fn text(report: &AuditReport, ui: &Ui) -> String {
    let mut out = String::new();
    for r in &report.results {
        object_block(r, ui, &mut out);
    }
    if !report.suppressed.is_empty() {
        out.push('\n');
        for s in &report.suppressed {
            let _ = writeln!(
                out,
                "suppressed {} on {} ({}#{}): {}",
                s.id, s.object, s.source, s.document, s.reason
            );
        }
    }
    for o in &report.overrides {
        let what = match (o.enabled, o.severity) {
            (false, _) => "disabled".to_string(),
            (true, Some(s)) => format!("severity {s}"),
            (true, None) => "no change".to_string(),
        };
        let _ = writeln!(
            out,
            "override {} ({what}): {} [applied {}x]{}",
            o.id,
            o.reason,
            o.applied,
            if o.unknown {
                " warning: not a known check ID"
            } else {
                ""
            }
        );
    }
    for n in &report.notes {
        let _ = writeln!(out, "note: {n}");
    }
    let s = &report.summary;
    let findings: Vec<String> = s
        .findings
        .iter()
        .rev()
        .map(|(sev, n)| format!("{n} {sev}"))
        .collect();
    let _ = writeln!(
        out,
        "\n{} objects in {} files ({} documents skipped: not Kubernetes objects); PodSecurity {}:{}: {} pods evaluated, {} denied; findings: {}; {} suppressed",
        s.objects,
        s.files,
        s.skipped_documents,
        s.pss_level,
        s.pss_version,
        s.pods_evaluated,
        s.pods_denied,
        if findings.is_empty() {
            "none".to_string()
        } else {
            findings.join(", ")
        },
        s.suppressed
    );
    let _ = writeln!(
        out,
        "{} audit {} (fails on PodSecurity denials and findings at or above {})",
        ui.mark(s.passed),
        if s.passed { "passed" } else { "failed" },
        s.fail_on
    );
    out
}

fn object_block(r: &ObjectResult, ui: &Ui, out: &mut String) {
    let denied = r.pss.as_ref().is_some_and(|p| !p.allowed);
    let ok = !denied && r.findings.is_empty();
    let at = match r.line {
        Some(l) => format!("{}:{l}", r.source),
        None => r.source.clone(),
    };
    if r.kind == "Dockerfile" {
        let _ = writeln!(out, "{} {at} (Dockerfile)", ui.mark(ok));
    } else {
        let obj = match &r.namespace {
            Some(ns) => format!("{} {ns}/{}", r.kind, r.name),
            None => format!("{} {}", r.kind, r.name),
        };
        let _ = writeln!(out, "{} {at} {obj} (document {})", ui.mark(ok), r.document);
    }
    if let Some(p) = &r.pss {
        if p.allowed {
            let _ = writeln!(
                out,
                "    {} PodSecurity {}:{}: allowed",
                ui.mark(true),
                p.level,
                p.version
            );
        } else {
            let _ = writeln!(
                out,
                "    {} PodSecurity {}:{}: denied",
                ui.mark(false),
                p.level,
                p.version
            );
            for v in &p.violations {
                let line = v.line.map(|l| format!(" line {l}")).unwrap_or_default();
                let _ = write!(out, "        {}{line}: {}", v.check, v.reason);
                if !v.detail.is_empty() {
                    let _ = write!(out, " ({})", v.detail);
                }
                if let Some(why) = &v.suppressed {
                    let _ = write!(out, " [suppressed: {why}]");
                }
                out.push('\n');
            }
        }
    }
    for f in &r.findings {
        let line = f.line.map(|l| format!(" line {l}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "    {:<8} {}{line}: {}",
            f.severity.as_str(),
            f.id,
            f.message
        );
        if let Some(o) = &f.overridden {
            let _ = writeln!(
                out,
                "             severity changed from {} by pake.yaml: {}",
                o.from, o.reason
            );
        }
        let _ = writeln!(out, "             fix: {}", f.fix);
    }
}
