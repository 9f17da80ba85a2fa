//! Listing objects of any kind as JSON (for checks that work on `Value`s).

use ::kube::api::{Api, DynamicObject, ListParams};
use ::kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use super::Cluster;
use crate::error::{Error, Result};

/// All objects of `kind` in `namespace`, each with apiVersion and kind set.
pub async fn list_json(
    cluster: &Cluster,
    api_version: &str,
    kind: &str,
    namespace: &str,
) -> Result<Vec<Value>> {
    list_json_selected(cluster, api_version, kind, namespace, None).await
}

/// [`list_json`], keeping the result for one later [`list_json_reused`] in
/// this run (until this run writes an object of `kind`, see
/// `Cluster::forget_lists`).
pub async fn list_json_kept(
    cluster: &Cluster,
    api_version: &str,
    kind: &str,
    namespace: &str,
) -> Result<Vec<Value>> {
    let items = list_json(cluster, api_version, kind, namespace).await?;
    keep(cluster, api_version, kind, namespace, items.clone());
    Ok(items)
}

/// Keep `items` (objects of `kind` in `namespace` as this run last read or
/// wrote them) for one later [`take_kept`]; for a cluster-scoped object, its
/// name stands in for `namespace`.
pub fn keep(cluster: &Cluster, api_version: &str, kind: &str, namespace: &str, items: Vec<Value>) {
    if let Ok(mut k) = cluster.kept_lists.lock() {
        k.insert(key(api_version, kind, namespace), items);
    }
}

/// What [`keep`] or [`list_json_kept`] kept, if no write of `kind` came
/// after it; taken once.
pub fn take_kept(
    cluster: &Cluster,
    api_version: &str,
    kind: &str,
    namespace: &str,
) -> Option<Vec<Value>> {
    cluster
        .kept_lists
        .lock()
        .ok()
        .and_then(|mut k| k.remove(&key(api_version, kind, namespace)))
}

/// The list a step of this run kept ([`list_json_kept`]) if no write of
/// `kind` came after it, else a new LIST. Taken once: a second reader lists.
pub async fn list_json_reused(
    cluster: &Cluster,
    api_version: &str,
    kind: &str,
    namespace: &str,
) -> Result<Vec<Value>> {
    match take_kept(cluster, api_version, kind, namespace) {
        Some(items) => Ok(items),
        None => list_json(cluster, api_version, kind, namespace).await,
    }
}

fn key(api_version: &str, kind: &str, namespace: &str) -> (String, String, String) {
    (api_version.into(), kind.into(), namespace.into())
}

pub async fn list_json_selected(
    cluster: &Cluster,
    api_version: &str,
    kind: &str,
    namespace: &str,
    selector: Option<&str>,
) -> Result<Vec<Value>> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    let api: Api<DynamicObject> = Api::namespaced_with(cluster.client.clone(), namespace, &ar);
    let mut lp = ListParams::default();
    if let Some(s) = selector {
        lp = lp.labels(s);
    }
    let list = api
        .list(&lp)
        .await
        .map_err(|e| Error::from_kube(format!("list {kind} in namespace {namespace}"), e))?;
    Ok(list
        .items
        .into_iter()
        .map(|o| {
            let mut v = serde_json::to_value(o).expect("object serializes");
            v["apiVersion"] = Value::String(api_version.to_string());
            v["kind"] = Value::String(kind.to_string());
            v
        })
        .collect())
}
