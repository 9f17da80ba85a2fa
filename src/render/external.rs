//! The `ExternalSecret` of a secret declared with `external:` in pake.yaml:
//! what the External Secrets Operator turns into the Secret. Pure; no values.

use serde_json::{Value, json};

use crate::config::{ExternalSource, Resolved};

/// The ESO API group and the version pake renders (what ESO v0.16+ serves;
/// the secrets step switches to `v1beta1` on a cluster that serves only that).
pub const GROUP: &str = "external-secrets.io";
pub const API_VERSION: &str = "external-secrets.io/v1";
pub const KIND: &str = "ExternalSecret";

/// The ExternalSecret named like its target Secret, owning it
/// (`creationPolicy: Owner`), with one `data` entry per declared key.
pub fn external_secret(r: &Resolved, name: &str, e: &ExternalSource) -> Value {
    let data: Vec<Value> = e
        .keys
        .iter()
        .map(|(key, remote)| {
            let mut rr = json!({"key": remote.key});
            if let Some(p) = &remote.property {
                rr["property"] = json!(p);
            }
            if let Some(v) = &remote.version {
                rr["version"] = json!(v);
            }
            json!({"secretKey": key, "remoteRef": rr})
        })
        .collect();
    let labels = json!({"app": r.app, "app.kubernetes.io/managed-by": "pake"});
    json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": r.namespace, "labels": labels},
        "spec": {
            "refreshInterval": e.refresh_interval,
            "secretStoreRef": {"name": e.store.name, "kind": e.store.kind.as_str()},
            "target": {
                "name": name,
                "creationPolicy": "Owner",
                "deletionPolicy": "Retain",
                // The Secret carries the app label (ESO manages it, not pake).
                "template": {"metadata": {"labels": {"app": r.app}}},
            },
            "data": data,
        },
    })
}
