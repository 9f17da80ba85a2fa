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
