//! External Secrets Operator objects: which `external-secrets.io` version the
//! cluster serves, watches of an ExternalSecret and its target Secret, the
//! operator's Warning events, the force-sync annotation. No policy.

use ::kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use ::kube::core::{ApiResource, GroupVersionKind};
use ::kube::runtime::watcher::{self, watch_object};
use futures::stream::{BoxStream, StreamExt};
use k8s_openapi::api::core::v1::{Event, Secret};
use serde_json::Value;

use super::Cluster;
use crate::error::{Error, Result};

pub const GROUP: &str = "external-secrets.io";
/// The annotation whose change makes ESO sync now (its documented force-sync).
pub const FORCE_SYNC: &str = "force-sync";
/// Field manager of the force-sync annotation (not `pake`: a deploy would drop it).
pub const SYNC_MANAGER: &str = "pake-rotate";

/// The versions of `external-secrets.io` the cluster serves, preferred first;
/// empty when ESO's CRDs are not installed.
pub async fn served_versions(cluster: &Cluster) -> Result<Vec<String>> {
    let groups = cluster
        .client
        .list_api_groups()
        .await
        .map_err(|e| Error::from_kube("list API groups", e))?;
    let Some(g) = groups.groups.into_iter().find(|g| g.name == GROUP) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<String> = g
        .preferred_version
        .iter()
        .map(|v| v.version.clone())
        .collect();
    for v in g.versions {
        if !out.contains(&v.version) {
            out.push(v.version);
        }
    }
    Ok(out)
}

fn resource(version: &str, kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(GROUP, version, kind))
}

/// The API of an ESO kind (`ExternalSecret`, `SecretStore`, `ClusterSecretStore`).
pub fn api(cluster: &Cluster, version: &str, kind: &str, ns: Option<&str>) -> Api<DynamicObject> {
    let ar = resource(version, kind);
    match ns {
        Some(ns) => Api::namespaced_with(cluster.client.clone(), ns, &ar),
        None => Api::all_with(cluster.client.clone(), &ar),
    }
}

/// One ESO object as JSON, or None.
pub async fn get(
    cluster: &Cluster,
    version: &str,
    kind: &str,
    ns: Option<&str>,
    name: &str,
) -> Result<Option<Value>> {
    let who = match ns {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    };
    api(cluster, version, kind, ns)
        .get_opt(name)
        .await
        .map(|o| o.map(|o| serde_json::to_value(o).expect("object serializes")))
        .map_err(|e| Error::from_kube(format!("GET {who}"), e).on(who))
}

/// What changed: the ExternalSecret or its target Secret (None: deleted/absent).
#[derive(Debug)]
pub enum SyncEvent {
    ExternalSecret(Option<Value>),
    Secret(Option<Value>),
}

/// Watches of the ExternalSecret and its target Secret (same name), merged.
pub fn watch(
    cluster: &Cluster,
    version: &str,
    ns: &str,
    name: &str,
) -> BoxStream<'static, std::result::Result<SyncEvent, watcher::Error>> {
    let es = watch_object(api(cluster, version, "ExternalSecret", Some(ns)), name).map(|r| {
        r.map(|o| SyncEvent::ExternalSecret(o.map(|o| serde_json::to_value(o).expect("object"))))
    });
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), ns);
    let secret = watch_object(secrets, name)
        .map(|r| r.map(|o| SyncEvent::Secret(o.map(|o| serde_json::to_value(o).expect("object")))));
    futures::stream::select(es.boxed(), secret.boxed()).boxed()
}

/// The Warning events ESO recorded on the ExternalSecret, newest last, as
/// (time, reason, message). The time is RFC 3339 (lastTimestamp or eventTime).
pub async fn warnings(
    cluster: &Cluster,
    ns: &str,
    name: &str,
) -> Result<Vec<(String, String, String)>> {
    let api: Api<Event> = Api::namespaced(cluster.client.clone(), ns);
    let lp = ListParams::default().fields(&format!(
        "involvedObject.kind=ExternalSecret,involvedObject.name={name},type=Warning"
    ));
    let list = api
        .list(&lp)
        .await
        .map_err(|e| Error::from_kube(format!("list events of ExternalSecret {ns}/{name}"), e))?;
    let mut out: Vec<(String, String, String)> = list
        .items
        .into_iter()
        .map(|e| {
            let t = e
                .last_timestamp
                .map(|t| t.0.to_string())
                .or_else(|| e.event_time.map(|t| t.0.to_string()))
                .unwrap_or_default();
            (
                t,
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Ask ESO to sync now: set the force-sync annotation to `stamp` (server-side
/// apply as [`SYNC_MANAGER`], so the deploy's own apply leaves it alone).
pub async fn force_sync(
    cluster: &Cluster,
    version: &str,
    ns: &str,
    name: &str,
    stamp: &str,
) -> Result<Value> {
    let who = format!("ExternalSecret {ns}/{name}");
    let body = serde_json::json!({
        "apiVersion": format!("{GROUP}/{version}"),
        "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": ns, "annotations": {FORCE_SYNC: stamp}},
    });
    api(cluster, version, "ExternalSecret", Some(ns))
        .patch(
            name,
            &PatchParams::apply(SYNC_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map(|o| serde_json::to_value(o).expect("object serializes"))
        .map_err(|e| Error::from_kube(format!("annotate {who} ({FORCE_SYNC})"), e).on(who))
}
