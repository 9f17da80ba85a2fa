//! Printing an executor report: a text summary, `-o json`, and a markdown
//! summary appended to `$GITHUB_STEP_SUMMARY` when it is set.

use std::io::Write;

use crate::output::Ui;
use crate::workflow::executor::Report;

pub fn print(ui: &Ui, r: &Report) {
    if !ui.is_text() {
        ui.document("DeployReport", r);
    } else {
        let what = if r.dry_run {
            format!("{} (dry run)", r.action)
        } else {
            r.action.clone()
        };
        if r.ok {
            ui.line(format!(
                "{} {what} of {} to {} (namespace {}) done{} in {:.1}s",
                ui.mark(true),
                r.app,
                r.env,
                r.namespace,
                r.revision
                    .map(|n| format!(", revision {n}"))
                    .unwrap_or_default(),
                r.duration_ms as f64 / 1000.0
            ));
        } else {
            ui.line(format!(
                "{} {what} of {} to {} failed{}",
                ui.mark(false),
                r.app,
                r.env,
                if r.rolled_back {
                    "; rolled back to the previous state"
                } else {
                    ""
                }
            ));
            if let Some(e) = &r.error {
                ui.line(format!("  error: {}", e.message));
                if let Some(o) = &e.object {
                    ui.line(format!("  object: {o}"));
                }
                if let Some(f) = &e.fix {
                    ui.line(format!("  fix: {f}"));
                }
            }
            if let Some(e) = &r.rollback_error {
                ui.line(format!(
                    "  rollback error: {} — the cluster may be partly changed; run `pake verify`",
                    e.message
                ));
            }
        }
    }
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY")
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
    {
        let _ = f.write_all(markdown(r).as_bytes());
    }
    if let Some(e) = &r.error {
        let text = match &e.fix {
            Some(f) => format!("{}\nfix: {f}", e.message),
            None => e.message.clone(),
        };
        super::github::annotate(
            super::github::Level::Error,
            &format!("pake {}: {} → {}", r.action, r.app, r.env),
            &super::github::Location::default(),
            &text,
        );
    }
}

/// The GitHub step summary: one table row per step.
pub fn markdown(r: &Report) -> String {
    let mut s = format!(
        "### pake {}: {} → {} {}\n\n| step | result | objects | checks | time |\n|---|---|---|---|---|\n",
        r.action,
        r.app,
        r.env,
        if r.ok { "✅" } else { "❌" }
    );
    for st in &r.steps {
        let passed = st.checks.iter().filter(|c| c.ok).count();
        s.push_str(&format!(
            "| {} | {} | {} | {}/{} | {:.1}s |\n",
            st.name,
            if st.ok { "ok" } else { "failed" },
            st.objects.len(),
            passed,
            st.checks.len(),
            st.duration_ms as f64 / 1000.0
        ));
    }
    if let Some(e) = &r.error {
        s.push_str(&format!("\n**Error:** {}\n", e.message.replace('|', "\\|")));
        if let Some(f) = &e.fix {
            s.push_str(&format!("\n**Fix:** {f}\n"));
        }
    }
    s.push('\n');
    s
}
