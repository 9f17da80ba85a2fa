//! Diff of a plan against live state, computed from a server-side dry run so
//! defaults and admission are included. Secret values are never shown: each
//! key is `<redacted>` or `<redacted: changed>`.

use serde::Serialize;
use serde_json::Value;

use crate::config::Resolved;
use crate::error::Result;
use crate::kube::Cluster;
use crate::kube::apply::{self, strip_server_fields};
use crate::secret::REDACTED;
use crate::workflow::definition::{Plan, StepKind};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDiff {
    pub object: String,
    /// create | update | unchanged
    pub change: String,
    pub diff: String,
}

pub async fn compute(cluster: &Cluster, r: &Resolved, plan: &Plan) -> Result<Vec<ObjectDiff>> {
    let ns_exists = crate::kube::namespace_exists(cluster, &r.namespace).await?;
    let mut out = Vec::new();
    for step in &plan.steps {
        for m in &step.manifests {
            let live = apply::get(cluster, &m.object).await?;
            let (mut desired, mut live) = if step.kind == StepKind::Secrets && m.kind() == "Secret"
            {
                secret_view(cluster, r, m, live.as_ref()).await?
            } else if m.namespace().is_some() && !ns_exists {
                (m.object.clone(), None)
            } else {
                match apply::apply(cluster, &m.object, true, false).await {
                    Ok(dry) => (normalize(dry), live.map(normalize)),
                    // A RoleBinding to a Role this deploy creates first cannot be
                    // dry-run (the escalation check needs the Role): show it as rendered.
                    Err(e) if m.kind() == "RoleBinding" && live.is_none() && e.is_not_found() => {
                        (m.object.clone(), None)
                    }
                    Err(e) => return Err(e),
                }
            };
            if m.kind() == "Secret" && step.kind != StepKind::Secrets {
                mask_all(&mut desired);
                if let Some(l) = live.as_mut() {
                    mask_all(l);
                }
            }
            let new = serde_saphyr::to_string(&desired).unwrap_or_default();
            let (change, old) = match &live {
                None => ("create", String::new()),
                Some(l) => {
                    let old = serde_saphyr::to_string(l).unwrap_or_default();
                    (if old == new { "unchanged" } else { "update" }, old)
                }
            };
            let diff = similar::TextDiff::from_lines(&old, &new)
                .unified_diff()
                .context_radius(3)
                .header("live", "desired")
                .to_string();
            out.push(ObjectDiff {
                object: m.describe(),
                change: change.into(),
                diff,
            });
        }
    }
    Ok(out)
}

fn normalize(v: Value) -> Value {
    let mut v = strip_server_fields(v);
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("annotations")
            .filter(|a| a.as_object().is_some_and(|o| !o.is_empty()))
            .map(|a| m.insert("annotations".into(), a));
    }
    v
}

fn mask_all(v: &mut Value) {
    for field in ["data", "stringData"] {
        if let Some(d) = v[field].as_object_mut() {
            for (_, val) in d.iter_mut() {
                *val = Value::String(REDACTED.into());
            }
        }
    }
}

/// Desired vs live Secret with values replaced by change markers. A value
/// kept by the deploy after a rotation (see `steps::secrets::keep_rotated`)
/// shows as unchanged, as the deploy would leave it.
async fn secret_view(
    cluster: &Cluster,
    r: &Resolved,
    m: &crate::render::Manifest,
    live: Option<&Value>,
) -> Result<(Value, Option<Value>)> {
    let spec = r
        .secrets
        .iter()
        .find(|s| s.name == m.name())
        .expect("skeleton from config");
    let live_vals = super::secrets::live_values(live);
    let mut desired = m.object.clone();
    let mut history = None;
    for (key, src) in &spec.keys {
        let existing = live_vals.get(key).cloned();
        let v = super::secrets::resolve_value(src, existing.clone(), &r.root)?;
        let marker = match existing {
            Some(e) if e == v => REDACTED.to_string(),
            Some(e) => {
                if history.is_none() {
                    let fkey =
                        crate::workflow::history::fingerprint_key(cluster, &r.namespace, true)
                            .await?;
                    let revs =
                        crate::workflow::history::list(cluster, &r.namespace, &r.app, &r.env)
                            .await?;
                    history = Some((fkey, revs));
                }
                let (fkey, revs) = history.as_ref().expect("just set");
                let id = format!("{}/{key}", spec.name);
                if super::secrets::keep_rotated(
                    revs,
                    &id,
                    &e.fingerprint(fkey),
                    &v.fingerprint(fkey),
                )
                .is_some()
                {
                    REDACTED.to_string()
                } else {
                    format!("{REDACTED}: changed")
                }
            }
            None => format!("{REDACTED}: new"),
        };
        desired["data"][key] = Value::String(marker);
    }
    let live = live.map(|l| {
        let mut l = normalize(l.clone());
        mask_all(&mut l);
        serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": l["metadata"]["name"], "namespace": l["metadata"]["namespace"], "labels": l["metadata"]["labels"]}, "type": l["type"], "data": l["data"]})
    });
    Ok((desired, live))
}

/// The summary shown before confirming a protected deploy: what would be
/// created or updated (Secret values never shown; `pake diff` has the detail).
pub fn summary(diffs: &[ObjectDiff], image: &str) -> String {
    let changed: Vec<String> = diffs
        .iter()
        .filter(|d| d.change != "unchanged")
        .map(|d| format!("  {:<7} {}", d.change, d.object))
        .collect();
    let mut s = format!(
        "image {image}: {} of {} objects would change",
        changed.len(),
        diffs.len()
    );
    for line in changed {
        s.push('\n');
        s.push_str(&line);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lists_only_changes() {
        let d = |o: &str, c: &str| ObjectDiff {
            object: o.into(),
            change: c.into(),
            diff: String::new(),
        };
        let s = summary(
            &[
                d("Deployment a/b", "update"),
                d("Service a/b", "unchanged"),
                d("Secret a/db", "create"),
            ],
            "img:1",
        );
        assert!(s.starts_with("image img:1: 2 of 3 objects would change"));
        assert!(s.contains("update  Deployment a/b") && s.contains("create  Secret a/db"));
        assert!(!s.contains("Service"));
    }
}
