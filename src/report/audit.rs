//! Text output of `pake audit` (JSON is the report itself; SARIF is in `sarif.rs`).

use std::fmt::Write as _;

use crate::checks::audit::{AuditReport, ObjectResult};
use crate::output::{API_VERSION, Format, Ui};

/// The human report: one block per object with a problem, one line per clean
/// object, the overrides applied with their reasons, and a summary.
pub fn text(report: &AuditReport, ui: &Ui) -> String {
    let mut out = String::new();
    for r in &report.results {
        object_block(r, ui, &mut out);
    }
    trailer(report, ui, &mut out);
    out
}

/// Everything after the objects: suppressed findings, overrides, notes, summary.
fn trailer(report: &AuditReport, ui: &Ui, out: &mut String) {
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
}

/// The report written as its results come (`pake audit PATHS`): the same
/// text, JSON or YAML document as [`text`] / `Ui::document` print for the
/// whole report, without holding it. Output goes out in pieces of about
/// 1 MiB through [`crate::output::out`].
pub struct Stream {
    format: Format,
    buf: String,
    results: usize,
    /// SARIF: the rules so far and how many results were written.
    sarif: crate::report::sarif::Log,
    sarif_results: usize,
}

const FLUSH_AT: usize = 1 << 20;

impl Stream {
    pub fn new(format: Format) -> Self {
        Stream {
            format,
            buf: String::new(),
            results: 0,
            sarif: Default::default(),
            sarif_results: 0,
        }
    }

    /// The document's head: written with the first result (or at the end),
    /// so an audit that fails on bad input prints nothing.
    fn head(&mut self) {
        match self.format {
            Format::Json => {
                let _ = write!(
                    self.buf,
                    "{{\n  \"apiVersion\": {},\n  \"kind\": \"{KIND}\",\n  \"results\": [",
                    serde_json::to_string(API_VERSION).expect("a string serializes")
                );
            }
            Format::Yaml => {
                let _ = write!(
                    self.buf,
                    "---\napiVersion: {API_VERSION}\nkind: {KIND}\nresults:"
                );
            }
            // The run's results first, its tool (with the rules used) at the end.
            Format::Sarif => {
                let _ = write!(
                    self.buf,
                    "{{\n  \"$schema\": {},\n  \"version\": \"2.1.0\",\n  \"runs\": [\n    {{\n      \"results\": [",
                    serde_json::to_string(crate::report::sarif::SCHEMA)
                        .expect("a string serializes")
                );
            }
            _ => {}
        }
    }

    fn sarif_items(&mut self, items: Vec<serde_json::Value>) {
        for v in items {
            let v = serde_json::to_string_pretty(&v).expect("report serializes");
            self.buf.push_str(if self.sarif_results == 0 {
                "\n        "
            } else {
                ",\n        "
            });
            self.buf.push_str(&v.replace('\n', "\n        "));
            self.sarif_results += 1;
        }
    }

    /// One object's result.
    pub fn result(&mut self, r: &ObjectResult, ui: &Ui) {
        if self.results == 0 {
            self.head();
        }
        match self.format {
            Format::Json => {
                let v = serde_json::to_string_pretty(r).expect("report serializes");
                self.buf.push_str(if self.results == 0 {
                    "\n    "
                } else {
                    ",\n    "
                });
                self.buf.push_str(&v.replace('\n', "\n    "));
            }
            Format::Yaml => {
                let v = serde_saphyr::to_string(&[r]).expect("report serializes as YAML");
                self.buf.push('\n');
                self.buf.push_str(v.trim_end_matches('\n'));
            }
            Format::Sarif => {
                let items = self.sarif.results(r);
                self.sarif_items(items);
            }
            _ => object_block(r, ui, &mut self.buf),
        }
        self.results += 1;
        if self.buf.len() >= FLUSH_AT {
            crate::output::out(std::mem::take(&mut self.buf));
        }
    }

    /// The rest of the report (everything but `results`, which were written).
    pub fn finish(mut self, report: &AuditReport, ui: &Ui) {
        let empty = self.results == 0;
        if empty {
            self.head();
        }
        match self.format {
            Format::Json | Format::Yaml => {
                let doc = crate::output::with_header(KIND, report);
                let rest: serde_json::Map<String, serde_json::Value> = doc
                    .as_object()
                    .expect("a report is an object")
                    .iter()
                    .skip_while(|(k, _)| *k != "results")
                    .skip(1)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if self.format == Format::Json {
                    self.buf.push_str(if empty { "]" } else { "\n  ]" });
                    for (k, v) in &rest {
                        let v = serde_json::to_string_pretty(v).expect("report serializes");
                        let _ = write!(
                            self.buf,
                            ",\n  {}: {}",
                            serde_json::to_string(k).expect("a string serializes"),
                            v.replace('\n', "\n  ")
                        );
                    }
                    self.buf.push_str("\n}\n");
                } else {
                    self.buf.push_str(if empty { " []\n" } else { "\n" });
                    self.buf.push_str(
                        &serde_saphyr::to_string(&rest).expect("report serializes as YAML"),
                    );
                }
            }
            Format::Sarif => {
                let items = self.sarif.suppressed(report);
                self.sarif_items(items);
                let tool = std::mem::take(&mut self.sarif).head()["runs"][0]["tool"].take();
                let tool = serde_json::to_string_pretty(&tool).expect("report serializes");
                self.buf.push_str(if self.sarif_results == 0 {
                    "]"
                } else {
                    "\n      ]"
                });
                let _ = write!(
                    self.buf,
                    ",\n      \"tool\": {}\n    }}\n  ]\n}}\n",
                    tool.replace('\n', "\n      ")
                );
            }
            _ => trailer(report, ui, &mut self.buf),
        }
        crate::output::out(self.buf);
    }
}

const KIND: &str = "AuditReport";

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
