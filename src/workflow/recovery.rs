//! Write-ahead history: what a run records before it changes anything, and
//! what the next run does when it finds such a record unfinished.
//!
//! A run that changes the cluster records its revision as `pending` (what it
//! will apply, by whom, when, which steps) right after taking the lock and
//! before its first change, then finishes that same record as `deployed`,
//! `failed` or `rolled-back`. A rotation records the old and the new
//! fingerprint before its write. A record still `pending` when the next run
//! holds the lock belongs to a run that ended without finishing (SIGKILL, a
//! machine gone, a lost lock): that run is reported first — which step it
//! reached and what is live now — and its record becomes `interrupted`.
//! `pake history` shows a `pending` record whose run no longer holds the
//! lock as `interrupted` too, before anyone settled it.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::Value;

use crate::error::Result;
use crate::kube::Cluster;
use crate::kube::apply;
use crate::output::Ui;
use crate::workflow::definition::Plan;
use crate::workflow::history::{self, Revision};

/// Status of a revision whose run is still going (or died).
pub const PENDING: &str = "pending";
/// Status of a pending revision whose run ended without finishing it.
pub const INTERRUPTED: &str = "interrupted";
/// Status of a run that was stopped by a signal and restored.
pub const ROLLED_BACK: &str = "rolled-back";

/// `details` of a pending deploy: the run's own details plus the holder and
/// the objects of each step, so that a later run can tell how far it got.
pub fn pending_details(details: &Value, plan: &Plan, holder: &str) -> Value {
    let mut d = match details {
        Value::Object(m) => Value::Object(m.clone()),
        _ => Value::Object(Default::default()),
    };
    d["holder"] = Value::String(holder.to_string());
    d["steps"] = Value::Array(
        plan.steps
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name,
                    "objects": s.manifests.iter().map(|m| m.describe()).collect::<Vec<_>>(),
                })
            })
            .collect(),
    );
    d
}

/// True if every field of `desired` has the same value in `live` (lists
/// element by element): the object is live as `desired` asks.
pub fn live_matches(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d
            .iter()
            .all(|(k, v)| l.get(k).is_some_and(|lv| live_matches(v, lv)) || v.is_null()),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(a, b)| live_matches(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        // The API server canonicalizes quantities ("1000m" is stored as "1").
        (Value::String(a), Value::String(b)) => {
            a == b || quantity(a).is_some_and(|x| quantity(b) == Some(x))
        }
        (a, b) => a == b,
    }
}

/// The value of a Kubernetes quantity (`250m`, `2Gi`, `1.5`), if it is one.
fn quantity(s: &str) -> Option<f64> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let k = 1024f64;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => k,
        "Mi" => k * k,
        "Gi" => k * k * k,
        "Ti" => k * k * k * k,
        "Pi" => k * k * k * k * k,
        "Ei" => k * k * k * k * k * k,
        _ => return None,
    };
    Some(n * factor)
}

/// Is the lock of app/env held by a live run now? Returns its holder.
pub async fn lock_holder(cluster: &Cluster, ns: &str, app: &str, env: &str) -> Option<String> {
    let api: ::kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        ::kube::Api::namespaced(cluster.client.clone(), ns);
    let lease = api
        .get_opt(&format!("pake-lock-{app}-{env}"))
        .await
        .ok()??;
    let spec = lease.spec?;
    let holder = spec.holder_identity.filter(|h| !h.is_empty())?;
    let renewed = spec.renew_time.or(spec.acquire_time)?.0;
    let until = renewed
        .checked_add(jiff::SignedDuration::from_secs(
            spec.lease_duration_seconds.unwrap_or(0) as i64,
        ))
        .ok()?;
    (until > jiff::Timestamp::now()).then_some(holder)
}

/// What the revision's objects look like now, one line each, and the last
/// step with an object live as the revision wanted.
async fn deploy_state(cluster: &Cluster, rev: &Revision) -> (Vec<String>, Option<String>) {
    let mut lines = Vec::new();
    let mut state: BTreeMap<String, &'static str> = BTreeMap::new();
    for m in &rev.manifests {
        let kind = m["kind"].as_str().unwrap_or("");
        let who = crate::render::describe(
            kind,
            m["metadata"]["namespace"].as_str(),
            m["metadata"]["name"].as_str().unwrap_or(""),
        );
        let s = if kind == "Secret" {
            "not compared (values are recorded only after the write)"
        } else {
            match apply::get(cluster, m).await {
                Ok(Some(live)) if live_matches(m, &live) => "as this revision",
                Ok(Some(_)) => "not as this revision (previous state or changed since)",
                Ok(None) => "absent",
                Err(_) => "unknown (could not read it)",
            }
        };
        state.insert(who.clone(), s);
        lines.push(format!("{who}: {s}"));
    }
    let reached = rev.details["steps"].as_array().and_then(|steps| {
        steps
            .iter()
            .rev()
            .find(|st| {
                st["objects"].as_array().into_iter().flatten().any(|o| {
                    o.as_str()
                        .and_then(|o| state.get(o))
                        .is_some_and(|s| *s == "as this revision")
                })
            })
            .and_then(|st| st["name"].as_str().map(String::from))
    });
    (lines, reached)
}

/// For a rotation: which of the two recorded values is live.
async fn rotation_state(cluster: &Cluster, ns: &str, rev: &Revision) -> (String, Option<String>) {
    let (secret, key) = (
        rev.details["secret"].as_str().unwrap_or(""),
        rev.details["key"].as_str().unwrap_or(""),
    );
    let id = format!("{secret}/{key}");
    let new = rev.details["attemptedHash"].as_str().unwrap_or("");
    let old = rev.details["previousHashes"][&id].as_str().unwrap_or("");
    let probe = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret, "namespace": ns}});
    let live = match (
        history::fingerprint_key(cluster, ns, true).await,
        apply::get(cluster, &probe).await,
    ) {
        (Ok(fkey), Ok(Some(s))) => s["data"][key]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(|b| crate::secret::SecretValue::from_bytes(b).fingerprint(&fkey)),
        _ => None,
    };
    match live.as_deref() {
        Some(h) if h == new => (
            format!(
                "the NEW value of {id} is live (written before the run ended); pods started before it still use the previous one. Nothing reverts it: `pake deploy` keeps it, `pake rotate-secret {secret} --key {key}` rotates again and restarts every workload that uses it"
            ),
            Some(new.to_string()),
        ),
        Some(h) if h == old => (
            format!(
                "the previous value of {id} is live: the run ended before its write; nothing changed"
            ),
            Some(old.to_string()),
        ),
        Some(_) => (
            format!(
                "{id} holds neither the previous nor the new value: changed by someone else since"
            ),
            None,
        ),
        None => (
            format!("could not read {id} to tell which value is live"),
            None,
        ),
    }
}

/// Report and settle every `pending` revision of app/env: call with the lock
/// held (so no live run owns them). Marks them `interrupted` with what was
/// found, and returns the history as it is now.
pub async fn settle(
    cluster: &Cluster,
    ui: &Ui,
    ns: &str,
    app: &str,
    env: &str,
    mut revs: Vec<Revision>,
) -> Result<Vec<Revision>> {
    for rev in revs.iter_mut().filter(|r| r.status == PENDING) {
        let who = rev.details["holder"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| rev.user.clone());
        ui.line(format!(
            "! revision {} ({} by {who}, started {}) did not finish: its run ended without recording the outcome (killed, or it lost the lock)",
            rev.revision, rev.action, rev.time
        ));
        let message = if rev.action == crate::workflow::history::ROTATION_ACTION {
            let (line, live) = rotation_state(cluster, ns, rev).await;
            ui.line(format!("  {line}"));
            if let Some(h) = live {
                let id = format!(
                    "{}/{}",
                    rev.details["secret"].as_str().unwrap_or(""),
                    rev.details["key"].as_str().unwrap_or("")
                );
                rev.secret_hashes = BTreeMap::from([(id, h)]);
            }
            line
        } else {
            let (lines, reached) = deploy_state(cluster, rev).await;
            let reached = reached
                .map(|s| format!("it reached step {s}"))
                .unwrap_or_else(|| "none of its objects is live as it wanted".into());
            ui.line(format!("  {reached}; live now:"));
            for l in &lines {
                ui.line(format!("    {l}"));
            }
            format!(
                "interrupted: {reached}; {} of {} object(s) live as this revision; this run reconciles from there",
                lines
                    .iter()
                    .filter(|l| l.ends_with(": as this revision"))
                    .count(),
                lines.len()
            )
        };
        rev.status = INTERRUPTED.into();
        rev.message = message;
        history::record(cluster, ns, app, env, rev).await?;
    }
    Ok(revs)
}

/// A rotation's write-ahead record: settle dead runs' records, then record
/// revision N as `pending` with the previous and the new fingerprint of
/// `secret/key` before the new value is written. Returns N. The rotation
/// finishes the same record (rotation / failed).
pub async fn rotation_pending(
    cluster: &Cluster,
    ui: &Ui,
    r: &crate::config::Resolved,
    holder: &str,
    (secret, key): (&str, &str),
    (previous_hash, new_hash): (&str, &str),
) -> Result<u32> {
    let (ns, app, env) = (&r.namespace, &r.app, &r.env);
    let revs = history::list(cluster, ns, app, env).await?;
    let revs = settle(cluster, ui, ns, app, env, revs).await?;
    let revision = revs.last().map(|r| r.revision + 1).unwrap_or(1);
    let id = format!("{secret}/{key}");
    let rev = Revision {
        revision,
        status: PENDING.into(),
        action: history::ROTATION_ACTION.into(),
        time: history::now_rfc3339(),
        user: history::current_user(),
        image: String::new(),
        message: format!("in progress: {holder}"),
        manifests: Vec::new(),
        hashes: BTreeMap::new(),
        secret_hashes: BTreeMap::from([(id.clone(), new_hash.to_string())]),
        details: serde_json::json!({
            "holder": holder,
            "secret": secret,
            "key": key,
            "previousHashes": {id: previous_hash},
            "attemptedHash": new_hash,
        }),
    };
    history::record(cluster, ns, app, env, &rev).await?;
    Ok(revision)
}

/// A blue-green switch's write-ahead record: settle dead runs' records, then
/// record revision N as `pending` with the Service it will apply, before
/// applying it. Returns N; the switch finishes the same record.
pub async fn switch_pending(
    cluster: &Cluster,
    ui: &Ui,
    r: &crate::config::Resolved,
    holder: &str,
    service: &Value,
    (from, to): (&str, &str),
) -> Result<u32> {
    let (ns, app, env) = (&r.namespace, &r.app, &r.env);
    let revs = history::list(cluster, ns, app, env).await?;
    let revs = settle(cluster, ui, ns, app, env, revs).await?;
    let revision = revs.last().map(|r| r.revision + 1).unwrap_or(1);
    let who = crate::render::describe(
        "Service",
        service["metadata"]["namespace"].as_str(),
        service["metadata"]["name"].as_str().unwrap_or(""),
    );
    let rev = Revision {
        revision,
        status: PENDING.into(),
        action: "switch".into(),
        time: history::now_rfc3339(),
        user: history::current_user(),
        image: String::new(),
        message: format!("in progress: {holder}"),
        manifests: vec![service.clone()],
        hashes: BTreeMap::from([(who.clone(), history::object_hash(service))]),
        secret_hashes: BTreeMap::new(),
        details: serde_json::json!({
            "holder": holder, "from": from, "to": to,
            "steps": [{"name": "switch", "objects": [who]}],
        }),
    };
    history::record(cluster, ns, app, env, &rev).await?;
    Ok(revision)
}

/// The finished record of a pending revision whose first change was refused:
/// `failed`, nothing changed.
pub fn unchanged(revision: u32, r: &crate::config::Resolved, why: &str) -> Revision {
    Revision {
        revision,
        status: "failed".into(),
        action: "".into(),
        time: history::now_rfc3339(),
        user: history::current_user(),
        image: String::new(),
        message: format!("refused, nothing changed: {why}"),
        manifests: Vec::new(),
        hashes: BTreeMap::new(),
        secret_hashes: BTreeMap::new(),
        details: serde_json::json!({"app": r.app}),
    }
}

/// How `pake history` shows a revision's status: a `pending` one whose run
/// no longer holds the lock is `interrupted` (not yet settled by a next run).
pub fn shown_status(rev: &Revision, lock_holder: Option<&str>) -> String {
    if rev.status != PENDING {
        return rev.status.to_string();
    }
    match (rev.details["holder"].as_str(), lock_holder) {
        (Some(h), Some(l)) if h == l => PENDING.into(),
        (None, Some(_)) => PENDING.into(),
        _ => INTERRUPTED.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn live_matches_is_a_subset_check() {
        let want = json!({"kind": "Deployment", "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "x:2"}]}}}});
        let live = json!({"kind": "Deployment", "metadata": {"uid": "u"}, "spec": {"replicas": 2, "revisionHistoryLimit": 10,
            "template": {"spec": {"containers": [{"name": "a", "image": "x:2", "imagePullPolicy": "Always"}]}}}});
        assert!(live_matches(&want, &live));
        let old = json!({"kind": "Deployment", "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}}});
        assert!(!live_matches(&want, &old));
        assert!(live_matches(&json!({"a": 1}), &json!({"a": 1.0})));
        assert!(live_matches(&json!({"cpu": "1000m"}), &json!({"cpu": "1"})));
        assert!(live_matches(&json!({"m": "1024Mi"}), &json!({"m": "1Gi"})));
        assert!(!live_matches(&json!({"cpu": "500m"}), &json!({"cpu": "1"})));
        assert!(!live_matches(
            &json!({"image": "a:1"}),
            &json!({"image": "a:2"})
        ));
    }

    fn rev(status: &str, holder: Option<&str>) -> Revision {
        Revision {
            revision: 3,
            status: status.into(),
            action: "deploy".into(),
            time: String::new(),
            user: "ann@h".into(),
            image: String::new(),
            message: String::new(),
            manifests: vec![],
            hashes: Default::default(),
            secret_hashes: Default::default(),
            details: holder.map(|h| json!({"holder": h})).unwrap_or(Value::Null),
        }
    }

    #[test]
    fn pending_without_its_holder_shows_as_interrupted() {
        let r = rev(PENDING, Some("ann@h pid 1"));
        assert_eq!(shown_status(&r, Some("ann@h pid 1")), PENDING);
        assert_eq!(shown_status(&r, Some("bob@h pid 2")), INTERRUPTED);
        assert_eq!(shown_status(&r, None), INTERRUPTED);
        assert_eq!(shown_status(&rev("deployed", None), None), "deployed");
    }

    #[test]
    fn old_records_without_new_fields_still_load() {
        // A record written before write-ahead history: no holder, no steps.
        let old = r#"{"revision":4,"status":"deployed","action":"deploy","time":"2026-01-01T00:00:00Z","user":"u@h"}"#;
        let r: Revision = serde_json::from_str(old).unwrap();
        assert_eq!(r.revision, 4);
        assert_eq!(shown_status(&r, None), "deployed");
    }
}
