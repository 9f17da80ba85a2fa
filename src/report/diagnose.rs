//! `pake diagnose` as text: one section per finding (what is wrong, the
//! evidence, the fix as a ready change), then the release's Warning events.

use crate::checks::diagnose::{ConnFacts, Diagnosis, EventSummary, Live, Status};
use crate::steps::diagnose::{ConnectivityReport, DiagnoseReport};

fn mark(d: &Diagnosis) -> &'static str {
    match d.status {
        Status::Problem => "✗",
        Status::NotProvable => "?",
    }
}

/// One finding: header, summary, evidence, fix and its change (indented).
pub fn finding_text(d: &Diagnosis) -> String {
    let mut out = format!(
        "{} {}  {}\n  {}\n",
        mark(d),
        d.check.id(),
        d.object,
        d.summary
    );
    if !d.evidence.is_empty() {
        out += "  evidence:\n";
        for e in &d.evidence {
            out += &format!("    {e}\n");
        }
    }
    match &d.fix.file {
        Some(f) => out += &format!("  fix ({f}): {}\n", d.fix.summary),
        None => out += &format!("  fix: {}\n", d.fix.summary),
    }
    if let Some(c) = &d.fix.change {
        for l in c.lines() {
            out += &format!("    {l}\n");
        }
    }
    out
}

fn events_text(events: &[EventSummary]) -> String {
    if events.is_empty() {
        return String::new();
    }
    let mut out = String::from("Warning events (oldest first):\n");
    for e in events {
        out += &format!(
            "  {}  {}  {}{}: {}{}\n",
            if e.last_seen.is_empty() {
                "-"
            } else {
                e.last_seen.as_str()
            },
            e.object,
            e.reason,
            if e.count > 1 {
                format!(" (x{})", e.count)
            } else {
                String::new()
            },
            e.message,
            e.finding
                .map(|f| format!("  [{}]", f.id()))
                .unwrap_or_default()
        );
    }
    out
}

fn tally(findings: &[Diagnosis]) -> String {
    let problems = findings
        .iter()
        .filter(|f| f.status == Status::Problem)
        .count();
    let unprovable = findings.len() - problems;
    let mut s = match problems {
        0 => "no problems found".to_string(),
        1 => "1 problem".to_string(),
        n => format!("{n} problems"),
    };
    if unprovable > 0 {
        s += &format!(", {unprovable} not provable");
    }
    s
}

pub fn text(r: &DiagnoseReport) -> String {
    let mut out = format!(
        "diagnose {} in namespace {} (environment {}): {} ({})\n",
        r.app,
        r.namespace,
        r.env,
        tally(&r.findings),
        r.pods
    );
    if let Some(l) = &r.last_release {
        out += &format!(
            "last release: revision {} {} ({}) {} by {}: {}\n",
            l.revision, l.status, l.action, l.time, l.user, l.message
        );
    }
    for f in &r.findings {
        out += "\n";
        out += &finding_text(f);
    }
    let ev = events_text(&r.events);
    if !ev.is_empty() {
        out += "\n";
        out += &ev;
    }
    out
}

fn live_text(c: &ConnFacts) -> String {
    match &c.live {
        Live::Skipped => "live test: skipped (--no-probe)\n".into(),
        Live::NotProvable { why } => format!("live test: {why}\n"),
        Live::Seen {
            pod,
            url,
            resolved,
            http,
            error,
        } => format!(
            "live test from pod {pod}: {url}\n  DNS: {}\n  HTTP: {}\n",
            resolved.as_deref().unwrap_or("did not resolve"),
            http.as_deref().map_or_else(
                || format!("no answer ({})", error.as_deref().unwrap_or("?")),
                str::to_string
            )
        ),
    }
}

pub fn connectivity_text(r: &ConnectivityReport) -> String {
    let c = &r.connection;
    let mut out = format!(
        "{} -> {} on {}: {} by the NetworkPolicies\n",
        c.src,
        c.dst,
        c.port,
        if c.allowed { "ALLOWED" } else { "DENIED" }
    );
    for s in &c.sides {
        out += &format!(
            "  {} of {}: {}\n",
            s.direction,
            s.workload,
            if !s.isolated {
                "not isolated, open".to_string()
            } else if s.rules.is_empty() {
                format!(
                    "isolated by {}; no rule allows this peer",
                    s.policies.join(", ")
                )
            } else {
                format!(
                    "isolated by {}; rules: {}",
                    s.policies.join(", "),
                    s.rules.join(", ")
                )
            }
        );
    }
    out += &live_text(c);
    out += &format!("{}\n", tally(&r.findings));
    for f in &r.findings {
        out += "\n";
        out += &finding_text(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::diagnose::{Cause, Fix, Target};

    #[test]
    fn a_finding_reads_as_what_evidence_fix() {
        let d = Diagnosis {
            check: Cause::OomKilled,
            status: Status::Problem,
            object: "Pod ns/p container app".into(),
            summary: "killed".into(),
            evidence: vec!["restarts: 3".into()],
            fix: Fix {
                summary: "raise it".into(),
                target: Target::PakeYaml,
                file: Some("pake.yaml".into()),
                change: Some("resources:\n  limits:\n    memory: 128Mi".into()),
            },
        };
        let t = finding_text(&d);
        assert_eq!(
            t,
            "✗ OOM-KILLED  Pod ns/p container app\n  killed\n  evidence:\n    restarts: 3\n  fix (pake.yaml): raise it\n    resources:\n      limits:\n        memory: 128Mi\n"
        );
        assert_eq!(tally(std::slice::from_ref(&d)), "1 problem");
        assert_eq!(tally(&[]), "no problems found");
    }
}
