//! Text forms of the blue-green reports (`pake bluegreen switch`, `status`,
//! `cleanup`); the JSON forms are the reports themselves.

use crate::output::Ui;
use crate::steps::bluegreen::{CleanupReport, Status, SwitchKind, SwitchReport};

/// The closing lines of a switch (the steps printed their own lines).
pub fn switch_text(ui: &Ui, r: &SwitchReport) -> String {
    let mut out = String::new();
    let what = match r.action {
        SwitchKind::Switch => "switch",
        SwitchKind::Rollback => "rollback",
    };
    if let (true, Some(mode)) = (r.ok, r.dry_run) {
        out.push_str(&format!(
            "{} {what} of {} in {} from {} to {} would go ahead ({} dry run; nothing was changed)\n",
            ui.mark(true),
            r.app,
            r.env,
            r.from,
            r.to,
            mode.as_str(),
        ));
        return out;
    }
    if r.ok && r.changed {
        out.push_str(&format!(
            "{} {what} of {} in {}: Service {} now serves {} only ({} ready endpoint(s), verified in {:.2}s){}\n",
            ui.mark(true),
            r.app,
            r.env,
            r.app,
            r.to,
            r.endpoints.unwrap_or(0),
            r.verified_ms.unwrap_or(0) as f64 / 1000.0,
            r.revision.map(|n| format!(", revision {n}")).unwrap_or_default(),
        ));
        out.push_str(&format!(
            "  previous version {} stays up for `pake bluegreen rollback`\n",
            r.from
        ));
    } else if !r.ok {
        out.push_str(&format!(
            "{} {what} of {} in {} from {} to {} failed{}\n",
            ui.mark(false),
            r.app,
            r.env,
            r.from,
            r.to,
            if r.switched_back && r.switch_back_error.is_none() {
                format!("; switched back, {} serves again", r.from)
            } else if r.changed {
                String::new()
            } else {
                "; nothing was changed".into()
            }
        ));
        if let Some(e) = &r.error {
            out.push_str(&format!("  error: {}\n", e.message));
            if let Some(o) = &e.object {
                out.push_str(&format!("  object: {o}\n"));
            }
            if let Some(f) = &e.fix {
                out.push_str(&format!("  fix: {f}\n"));
            }
        }
        if let Some(e) = &r.switch_back_error {
            out.push_str(&format!(
                "  switch back error: {} — check `pake bluegreen status` now\n",
                e.message
            ));
        }
    }
    out
}

/// The text form of [`Status`].
pub fn status_text(s: &Status) -> String {
    let mut out = String::new();
    let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    out.push_str(&format!(
        "{} in {} (namespace {})\n",
        s.app, s.env, s.namespace
    ));
    out.push_str(&format!("active:          {}", dash(&s.active)));
    if let Some(l) = &s.last_switch
        && s.active.as_deref() == Some(l.to.as_str())
    {
        out.push_str(&format!(
            "  ({} from {} at {} by {})",
            l.kind.as_str(),
            l.from,
            l.time,
            l.user
        ));
    }
    out.push('\n');
    out.push_str(&format!("preview:         {}\n", dash(&s.preview)));
    out.push_str(&format!(
        "rollback target: {}\n\n",
        dash(&s.rollback_target)
    ));
    let mut rows = vec![[
        "VERSION".to_string(),
        "DEPLOYMENT".into(),
        "REPLICAS".into(),
        "READY".into(),
        "AVAILABLE".into(),
        "IMAGE".into(),
        "ROLE".into(),
    ]];
    for v in &s.versions {
        rows.push([
            v.version.clone(),
            v.deployment.clone(),
            v.replicas.to_string(),
            v.ready.to_string(),
            v.available.to_string(),
            v.image.clone(),
            if v.roles.is_empty() {
                if v.replicas == 0 {
                    "scaled down".into()
                } else {
                    "inactive".into()
                }
            } else {
                v.roles.join(", ")
            },
        ]);
    }
    out.push_str(&table(&rows));
    out.push('\n');
    let mut rows = vec![[
        "SERVICE".to_string(),
        "SELECTS".into(),
        "ENDPOINTS READY/TOTAL".into(),
        "READY BY VERSION".into(),
    ]];
    for sv in &s.services {
        rows.push(if sv.exists {
            [
                sv.name.clone(),
                dash(&sv.selects),
                format!("{}/{}", sv.endpoints_ready, sv.endpoints_total),
                sv.by_version
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            ]
        } else {
            [
                sv.name.clone(),
                "-".into(),
                "-".into(),
                "(not found)".into(),
            ]
        });
    }
    out.push_str(&table(&rows));
    out
}

fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut w = [0usize; N];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The text form of a cleanup.
pub fn cleanup_text(r: &CleanupReport) -> String {
    let mut out = format!(
        "{} in {} (namespace {}): active {}, rollback target {}, preview {}{}\n",
        r.app,
        r.env,
        r.namespace,
        r.active,
        r.rollback_target.as_deref().unwrap_or("-"),
        r.preview.as_deref().unwrap_or("-"),
        if r.dry_run { " (dry run)" } else { "" }
    );
    let mut rows = vec![[
        "VERSION".to_string(),
        "DEPLOYMENT".into(),
        "ACTION".into(),
        "RESULT".into(),
        "WHY".into(),
    ]];
    for d in &r.decisions {
        rows.push([
            d.version.clone(),
            d.deployment.clone(),
            d.action.clone(),
            d.result.clone(),
            d.reason.clone(),
        ]);
    }
    out.push_str(&table(&rows));
    if let Some(e) = &r.error {
        out.push_str(&format!("error: {}\n", e.message));
        if let Some(f) = &e.fix {
            out.push_str(&format!("  fix: {f}\n"));
        }
    }
    out
}
