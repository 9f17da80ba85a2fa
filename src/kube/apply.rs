//! Generic get / server-side apply / replace / delete of rendered objects.
//!
//! Objects travel as `serde_json::Value` (already type-checked by render), so
//! one code path serves every kind. Apply uses field manager `pake` and strict
//! field validation, so a misspelt field is an error, not silently dropped.

use ::kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, ValidationDirective};
use ::kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use super::Cluster;
use crate::error::{Error, Result};
use crate::render::describe;

/// The field manager pake applies with. Conflicts name the other manager.
pub const FIELD_MANAGER: &str = "pake";

/// The API of an object's kind, scoped to its namespace.
pub fn api_for(cluster: &Cluster, object: &Value) -> Api<DynamicObject> {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let kind = object["kind"].as_str().unwrap_or("");
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let ar = ApiResource::from_gvk(&gvk);
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(cluster.client.clone(), ns, &ar),
        None => Api::all_with(cluster.client.clone(), &ar),
    }
}

fn who(object: &Value) -> String {
    describe(
        object["kind"].as_str().unwrap_or(""),
        object["metadata"]["namespace"].as_str(),
        object["metadata"]["name"].as_str().unwrap_or(""),
    )
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or("")
}

/// The live object, or None if it does not exist.
pub async fn get(cluster: &Cluster, object: &Value) -> Result<Option<Value>> {
    let api = api_for(cluster, object);
    match api.get_opt(name(object)).await {
        Ok(o) => Ok(o.map(|o| serde_json::to_value(o).expect("object serializes"))),
        Err(e) => Err(Error::from_kube(format!("GET {}", who(object)), e)),
    }
}

/// Server-side apply. `dry_run` asks the server to validate and compute the
/// result without persisting it. Without `force`, a field owned by another
/// manager is a conflict error that names the manager and the field.
///
/// A conflict with `pake` itself (fields pake last wrote with an update
/// rather than an apply, e.g. by a rollback of an older pake, or a scale) is
/// not another tool's claim: pake takes them back by forcing, says so in the
/// log, and the apply goes on. Conflicts naming any other manager stay errors.
pub async fn apply(cluster: &Cluster, object: &Value, dry_run: bool, force: bool) -> Result<Value> {
    cluster.forget_lists(object["kind"].as_str().unwrap_or_default());
    match apply_once(cluster, object, dry_run, force).await {
        Err(Conflict::Managers(status)) => {
            let managers = conflict_managers(&status);
            if !force && !managers.is_empty() && managers.iter().all(|m| m == FIELD_MANAGER) {
                tracing::warn!(
                    "{}: {} field(s) were last written by pake itself with an update instead of an apply (a rollback of an older pake, or a scale); taking them back — no other field manager is involved",
                    who(object),
                    conflict_fields(&status).len()
                );
                return match apply_once(cluster, object, dry_run, true).await {
                    Ok(v) => Ok(v),
                    Err(Conflict::Managers(s)) => Err(conflict_error(object, &s)),
                    Err(Conflict::Other(e)) => Err(e),
                };
            }
            Err(conflict_error(object, &status))
        }
        Err(Conflict::Other(e)) => Err(e),
        Ok(v) => Ok(v),
    }
}

enum Conflict {
    Managers(Box<::kube::core::Status>),
    Other(Error),
}

async fn apply_once(
    cluster: &Cluster,
    object: &Value,
    dry_run: bool,
    force: bool,
) -> std::result::Result<Value, Conflict> {
    let api = api_for(cluster, object);
    let mut pp = PatchParams::apply(FIELD_MANAGER).validation(ValidationDirective::Strict);
    pp.dry_run = dry_run;
    pp.force = force;
    match api.patch(name(object), &pp, &Patch::Apply(object)).await {
        Ok(o) => Ok(serde_json::to_value(o).expect("object serializes")),
        Err(::kube::Error::Api(s)) if s.code == 409 => Err(Conflict::Managers(s)),
        Err(e) => Err(Conflict::Other(
            Error::from_kube(format!("apply {}", who(object)), e).on(who(object)),
        )),
    }
}

/// The managers named by an apply conflict (`conflict with "X" using ...`).
pub fn conflict_managers(s: &::kube::core::Status) -> Vec<String> {
    let mut texts: Vec<&str> = s
        .details
        .iter()
        .flat_map(|d| d.causes.iter())
        .map(|c| c.message.as_str())
        .collect();
    texts.push(&s.message);
    let mut out: Vec<String> = Vec::new();
    for t in texts {
        for part in t.split("conflict").skip(1) {
            let part = part.trim_start_matches('s').trim_start();
            if let Some(rest) = part.strip_prefix("with \"")
                && let Some(end) = rest.find('"')
            {
                let m = rest[..end].to_string();
                if !out.contains(&m) {
                    out.push(m);
                }
            }
        }
    }
    out
}

fn conflict_fields(s: &::kube::core::Status) -> Vec<String> {
    s.details
        .iter()
        .flat_map(|d| d.causes.iter())
        .map(|c| c.field.clone())
        .collect()
}

fn conflict_error(object: &Value, s: &::kube::core::Status) -> Error {
    let managers = conflict_managers(s);
    let others: Vec<&String> = managers.iter().filter(|m| *m != FIELD_MANAGER).collect();
    let fix = if others.is_empty() {
        "these fields are owned by pake itself through an earlier update (not an apply); re-run with --force-conflicts to take them back — no other tool's fields are involved".to_string()
    } else {
        format!(
            "field manager(s) {} own these fields; remove them from that tool's configuration, or re-run with --force-conflicts to take them over",
            others
                .iter()
                .map(|m| format!("{m:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut message = format!("server-side apply conflict: {}", s.message);
    if managers.iter().any(|m| m == FIELD_MANAGER) {
        message.push_str(
            " (\"pake\" is pake itself: fields it last wrote with an update rather than an apply)",
        );
    }
    Error::failed(message).on(who(object)).fix(fix)
}

/// Put `previous` (an object as read before this run changed it) back with a
/// server-side apply as `pake`, forcing: the body is exactly the fields pake
/// owned before plus those it owns now, with their previous values (see
/// [`fields::restore_body`]). Fields the run added are dropped, fields of
/// other managers are left alone, and pake stays the single owner of its
/// fields through an Apply entry — so the next `pake deploy` applies without
/// conflicts. An object deleted meanwhile is re-created the same way.
pub async fn restore(cluster: &Cluster, previous: &Value) -> Result<Value> {
    cluster.forget_lists(previous["kind"].as_str().unwrap_or_default());
    let api = api_for(cluster, previous);
    let live = api
        .get_opt(name(previous))
        .await
        .map_err(|e| Error::from_kube(format!("GET {}", who(previous)), e))?
        .map(|o| serde_json::to_value(o).expect("object serializes"));
    let body = super::fields::restore_body(previous, live.as_ref(), FIELD_MANAGER);
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    match api.patch(name(previous), &pp, &Patch::Apply(&body)).await {
        Ok(o) => Ok(serde_json::to_value(o).expect("object serializes")),
        Err(e) => Err(Error::from_kube(format!("restore {}", who(previous)), e).on(who(previous))),
    }
}

/// Delete an object; absent is fine.
pub async fn delete(cluster: &Cluster, object: &Value) -> Result<()> {
    cluster.forget_lists(object["kind"].as_str().unwrap_or_default());
    let api = api_for(cluster, object);
    match api.delete(name(object), &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(::kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::from_kube(format!("delete {}", who(object)), e).on(who(object))),
    }
}

/// Remove what the server owns (status, uid, managedFields, ...), leaving
/// what a user would write. Used for restores and for history.
pub fn strip_server_fields(mut v: Value) -> Value {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
        ] {
            m.remove(k);
        }
        if let Some(a) = m.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("deployment.kubernetes.io/revision");
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
            if a.is_empty() {
                m.remove("annotations");
            }
        }
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(message: &str, causes: &[&str]) -> ::kube::core::Status {
        serde_json::from_value(serde_json::json!({
            "code": 409, "message": message, "reason": "Conflict",
            "details": {"causes": causes.iter().map(|m| serde_json::json!({"reason": "FieldManagerConflict", "message": m, "field": ".spec.replicas"})).collect::<Vec<_>>()}
        }))
        .unwrap()
    }

    #[test]
    fn conflict_managers_are_read_from_causes_and_message() {
        let s = status(
            "Apply failed with 2 conflicts: conflicts with \"pake\" using apps/v1:\n- .spec.template.spec.containers[name=\"app\"].image\n- .spec.replicas",
            &["conflict with \"pake\" using apps/v1"],
        );
        assert_eq!(conflict_managers(&s), ["pake"]);
        let s = status(
            "Apply failed with 2 conflicts: conflicts with \"kubectl-edit\" using apps/v1:\n- .spec.replicas\nconflicts with \"pake\" using apps/v1:\n- .spec.template",
            &[],
        );
        assert_eq!(conflict_managers(&s), ["kubectl-edit", "pake"]);
        let obj = serde_json::json!({"kind": "Deployment", "metadata": {"name": "web", "namespace": "ns"}});
        let e = conflict_error(&obj, &s);
        assert!(e.message.contains("is pake itself"), "{}", e.message);
        assert!(e.fix.unwrap().contains("\"kubectl-edit\""));
        let own = conflict_error(&obj, &status("conflicts with \"pake\" using v1", &[]));
        assert!(own.fix.unwrap().contains("owned by pake itself"));
    }
}
