//! Generic get / server-side apply / replace / delete of rendered objects.
//!
//! Objects travel as `serde_json::Value` (already type-checked by render), so
//! one code path serves every kind. Apply uses field manager `pake` and strict
//! field validation, so a misspelt field is an error, not silently dropped.

use ::kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, ValidationDirective,
};
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
pub async fn apply(cluster: &Cluster, object: &Value, dry_run: bool, force: bool) -> Result<Value> {
    let api = api_for(cluster, object);
    let mut pp = PatchParams::apply(FIELD_MANAGER).validation(ValidationDirective::Strict);
    pp.dry_run = dry_run;
    pp.force = force;
    match api.patch(name(object), &pp, &Patch::Apply(object)).await {
        Ok(o) => Ok(serde_json::to_value(o).expect("object serializes")),
        Err(::kube::Error::Api(s)) if s.code == 409 => Err(Error::failed(format!(
            "server-side apply conflict: {}",
            s.message
        ))
        .on(who(object))
        .fix("another field manager owns these fields; remove them from the other tool's configuration, or re-run with --force-conflicts to take them over")),
        Err(e) => Err(Error::from_kube(format!("apply {}", who(object)), e).on(who(object))),
    }
}

/// Replace the live object with `object` (a previous revision), keeping
/// the live resourceVersion so a concurrent change is a conflict, not lost.
pub async fn replace(cluster: &Cluster, object: &Value) -> Result<Value> {
    let api = api_for(cluster, object);
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    // Controllers keep writing status (a Deployment mid-rollout does so many
    // times a second), which moves resourceVersion between our read and our
    // write: a 409 there is retried with a fresh read, a few times.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let live = api
            .get_opt(name(object))
            .await
            .map_err(|e| Error::from_kube(format!("GET {}", who(object)), e))?;
        let mut body = strip_server_fields(object.clone());
        let (what, r) = match live {
            Some(l) => {
                body["metadata"]["resourceVersion"] =
                    Value::String(l.metadata.resource_version.unwrap_or_default());
                let obj: DynamicObject = serde_json::from_value(body).expect("dynamic object");
                ("restore", api.replace(name(object), &pp, &obj).await)
            }
            None => {
                let obj: DynamicObject = serde_json::from_value(body).expect("dynamic object");
                ("re-create", api.create(&pp, &obj).await)
            }
        };
        match r {
            Ok(o) => return Ok(serde_json::to_value(o).expect("object serializes")),
            Err(::kube::Error::Api(s)) if s.code == 409 && attempt < 5 => continue,
            Err(e) => {
                return Err(Error::from_kube(format!("{what} {}", who(object)), e).on(who(object)));
            }
        }
    }
}

/// Delete an object; absent is fine.
pub async fn delete(cluster: &Cluster, object: &Value) -> Result<()> {
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
