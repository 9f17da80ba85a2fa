//! Printing a fleet report: one section per cluster and a fleet summary
//! (text), the whole `FleetReport` (`-o json`), and a table in
//! `$GITHUB_STEP_SUMMARY`.

use std::io::Write;

use crate::output::Ui;
use crate::workflow::fleet::{ClusterResult, ClusterStatus, FleetReport};

pub fn print(ui: &Ui, r: &FleetReport) {
    if ui.is_text() {
        for c in &r.clusters {
            for l in cluster_lines(ui, c) {
                ui.line(l);
            }
        }
        ui.line(table(r));
        ui.line(summary_line(ui, r));
    } else {
        ui.document("FleetReport", r);
    }
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY")
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
    {
        let _ = f.write_all(markdown(r).as_bytes());
    }
    for c in r.clusters.iter().filter(|c| !ok(c)) {
        if let Some(e) = error_of(c) {
            super::github::annotate(
                super::github::Level::Error,
                &format!("pake deploy: {} → {} cluster {}", r.app, r.env, c.name),
                &super::github::Location::default(),
                e,
            );
        }
    }
}

fn ok(c: &ClusterResult) -> bool {
    c.status == ClusterStatus::Passed
}

fn status(s: ClusterStatus) -> &'static str {
    match s {
        ClusterStatus::Passed => "passed",
        ClusterStatus::Failed => "failed",
        ClusterStatus::Skipped => "skipped",
        ClusterStatus::RolledBack => "rolled-back",
        ClusterStatus::RollbackFailed => "rollback-failed",
    }
}

fn error_of(c: &ClusterResult) -> Option<&str> {
    c.error
        .as_ref()
        .or_else(|| c.rollback.as_ref().and_then(|r| r.error.as_ref()))
        .or_else(|| c.report.as_ref().and_then(|r| r.error.as_ref()))
        .map(|e| e.message.as_str())
}

fn seconds(c: &ClusterResult) -> String {
    match (c.started_ms, c.finished_ms) {
        (Some(a), Some(b)) => format!("{:.1}s", (b - a) as f64 / 1000.0),
        _ => "-".into(),
    }
}

/// The section of one cluster: its outcome, and what to do when it failed.
fn cluster_lines(ui: &Ui, c: &ClusterResult) -> Vec<String> {
    let p = format!("[{}] ", c.name);
    let rev = c
        .revision
        .map(|n| format!(", revision {n}"))
        .unwrap_or_default();
    let mut out = vec![match c.status {
        ClusterStatus::Passed => format!(
            "{p}{} deployed and verified{rev} in {}",
            ui.mark(true),
            seconds(c)
        ),
        ClusterStatus::Failed => {
            let rolled = c.report.as_ref().is_some_and(|r| r.rolled_back);
            format!(
                "{p}{} failed{}{rev}",
                ui.mark(false),
                if rolled {
                    " and was rolled back to its previous state"
                } else {
                    "; nothing was changed"
                }
            )
        }
        ClusterStatus::Skipped => format!("{p}- skipped: the fleet halted before this cluster"),
        ClusterStatus::RolledBack => format!(
            "{p}{} returned to its previous release by rollback-all, verified (recorded as revision {})",
            ui.mark(true),
            c.rollback
                .as_ref()
                .and_then(|r| r.revision)
                .map(|n| format!("{n}"))
                .unwrap_or_else(|| "?".into())
        ),
        ClusterStatus::RollbackFailed => format!(
            "{p}{} could not be rolled back: it may still run revision {}",
            ui.mark(false),
            c.revision
                .map(|n| n.to_string())
                .unwrap_or_else(|| "?".into())
        ),
    }];
    if !ok(c)
        && c.status != ClusterStatus::Skipped
        && c.status != ClusterStatus::RolledBack
        && let Some(e) = error_of(c)
    {
        out.push(format!("{p}  error: {e}"));
        let fix = c
            .error
            .as_ref()
            .or_else(|| c.report.as_ref().and_then(|r| r.error.as_ref()))
            .and_then(|e| e.fix.as_deref());
        if let Some(f) = fix {
            out.push(format!("{p}  fix: {f}"));
        }
    }
    out
}

fn table(r: &FleetReport) -> String {
    let mut s = format!(
        "{:<16} {:<28} {:<5} {:<16} {:<9} TIME",
        "CLUSTER", "CONTEXT", "WAVE", "STATUS", "REVISION"
    );
    for c in &r.clusters {
        s.push_str(&format!(
            "\n{:<16} {:<28} {:<5} {:<16} {:<9} {}",
            c.name,
            c.context,
            c.wave,
            status(c.status),
            c.revision
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
            seconds(c)
        ));
    }
    s
}

fn summary_line(ui: &Ui, r: &FleetReport) -> String {
    let s = &r.summary;
    format!(
        "{} fleet {}{} of {} to {} ({}): {} of {} cluster(s) passed, {} failed, {} rolled back, {} skipped in {:.1}s",
        ui.mark(r.ok),
        r.action,
        if r.dry_run { " (dry run)" } else { "" },
        r.app,
        r.env,
        r.fleet_id,
        s.passed,
        s.clusters,
        s.failed,
        s.rolled_back,
        s.skipped,
        r.duration_ms as f64 / 1000.0
    )
}

/// The GitHub step summary: one row per cluster.
pub fn markdown(r: &FleetReport) -> String {
    let mut s = format!(
        "### pake fleet {}: {} → {} {} (`{}`)\n\n| cluster | context | wave | result | revision | time |\n|---|---|---|---|---|---|\n",
        r.action,
        r.app,
        r.env,
        if r.ok { "✅" } else { "❌" },
        r.fleet_id
    );
    for c in &r.clusters {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            c.name,
            c.context.replace('|', "\\|"),
            c.wave,
            status(c.status),
            c.revision
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
            seconds(c)
        ));
    }
    let m = &r.summary;
    s.push_str(&format!(
        "\n{} passed, {} failed, {} rolled back, {} skipped in {:.1}s\n\n",
        m.passed,
        m.failed,
        m.rolled_back,
        m.skipped,
        r.duration_ms as f64 / 1000.0
    ));
    s
}
