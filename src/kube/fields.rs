//! Field sets of server-side apply (`metadata.managedFields[].fieldsV1`).
//!
//! A field set is a trie: `f:name` is a map field, `k:{...}` a list item
//! identified by its key fields, `v:<json>` a set item, `i:N` a list index,
//! `.` the node itself. [`extract`] keeps exactly the parts of an object that
//! a set names, which is what a manager would have to apply to own those
//! fields with those values (client-go's `Extract*` does the same with typed
//! schemas). Pure: no I/O.

use serde_json::{Map, Value};

/// The union of the field sets of every entry of `manager` on the main
/// resource (not a subresource), whatever the operation: an `Update` entry of
/// the same manager (a PUT or merge patch) is owned by it just the same.
pub fn owned_by(object: &Value, manager: &str) -> Value {
    let mut set = Value::Object(Map::new());
    for m in object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let main = m["subresource"].as_str().unwrap_or("").is_empty();
        if m["manager"] == manager && main {
            union_into(&mut set, &m["fieldsV1"]);
        }
    }
    set
}

/// Managers (other than `except`) with an entry on the main resource, with its operation.
pub fn managers(object: &Value) -> Vec<(String, String)> {
    object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["subresource"].as_str().unwrap_or("").is_empty())
        .map(|m| {
            (
                m["manager"].as_str().unwrap_or("").to_string(),
                m["operation"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Merge field set `b` into `a`.
pub fn union_into(a: &mut Value, b: &Value) {
    let Some(bm) = b.as_object() else { return };
    if !a.is_object() {
        *a = Value::Object(Map::new());
    }
    let am = a.as_object_mut().expect("object");
    for (k, v) in bm {
        union_into(am.entry(k.clone()).or_insert(Value::Object(Map::new())), v);
    }
}

/// True if the set names nothing below this node (a leaf `{}` or only `.`):
/// the whole value is owned.
fn is_leaf(set: &Map<String, Value>) -> bool {
    set.keys().all(|k| k == ".")
}

/// The part of `value` named by `set`, or None if the set names nothing in it.
pub fn extract(value: &Value, set: &Value) -> Option<Value> {
    let set = set.as_object()?;
    if is_leaf(set) {
        return Some(value.clone());
    }
    match value {
        Value::Object(obj) => {
            let mut out = Map::new();
            for (k, sub) in set {
                if let Some(name) = k.strip_prefix("f:")
                    && let Some(v) = obj.get(name)
                    && let Some(x) = extract(v, sub)
                {
                    out.insert(name.to_string(), x);
                }
            }
            Some(Value::Object(out))
        }
        Value::Array(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if let Some(x) = extract_item(i, item, set) {
                    out.push(x);
                }
            }
            Some(Value::Array(out))
        }
        other => Some(other.clone()),
    }
}

/// One list item, if the set names it (by key, value or index).
fn extract_item(index: usize, item: &Value, set: &Map<String, Value>) -> Option<Value> {
    for (k, sub) in set {
        if let Some(key) = k.strip_prefix("k:") {
            let Ok(Value::Object(key)) = serde_json::from_str::<Value>(key) else {
                continue;
            };
            if key.iter().all(|(f, v)| item.get(f) == Some(v)) {
                let mut x = extract(item, sub).unwrap_or(Value::Object(Map::new()));
                if let Some(o) = x.as_object_mut() {
                    // The key fields identify the item in an apply: always send them.
                    for (f, v) in key {
                        o.insert(f, v);
                    }
                }
                return Some(x);
            }
        } else if let Some(v) = k.strip_prefix("v:") {
            if serde_json::from_str::<Value>(v).ok().as_ref() == Some(item) {
                return Some(item.clone());
            }
        } else if let Some(i) = k.strip_prefix("i:")
            && i.parse::<usize>().ok() == Some(index)
        {
            return extract(item, sub);
        }
    }
    None
}

/// What `manager` must apply to own, with the values they have in `previous`,
/// the fields it owned in `previous` plus the fields it owns in `live`: the
/// body of a server-side apply that restores `previous` as far as `manager`
/// is concerned. Fields it owns now but that `previous` did not have are left
/// out, so the apply removes them (unless another manager owns them too).
pub fn restore_body(previous: &Value, live: Option<&Value>, manager: &str) -> Value {
    let mut set = owned_by(previous, manager);
    if let Some(live) = live {
        union_into(&mut set, &owned_by(live, manager));
    }
    // Identity fields are never in a field set, and are required by apply.
    for f in ["apiVersion", "kind"] {
        set.as_object_mut()
            .expect("object")
            .remove(&format!("f:{f}"));
    }
    // An empty set at the top means nothing is owned (a leaf `{}` deeper
    // down means the whole value is).
    let owns_nothing = set.as_object().is_none_or(Map::is_empty);
    let mut body = if owns_nothing {
        Value::Object(Map::new())
    } else {
        extract(previous, &set).unwrap_or(Value::Object(Map::new()))
    };
    if !body.is_object() {
        body = Value::Object(Map::new());
    }
    body["apiVersion"] = previous["apiVersion"].clone();
    body["kind"] = previous["kind"].clone();
    if !body["metadata"].is_object() {
        body["metadata"] = Value::Object(Map::new());
    }
    body["metadata"]["name"] = previous["metadata"]["name"].clone();
    if let Some(ns) = previous["metadata"]["namespace"].as_str() {
        body["metadata"]["namespace"] = Value::String(ns.to_string());
    }
    if let Some(m) = body["metadata"].as_object_mut() {
        for k in [
            "managedFields",
            "resourceVersion",
            "uid",
            "generation",
            "creationTimestamp",
        ] {
            m.remove(k);
        }
    }
    if let Some(o) = body.as_object_mut() {
        o.remove("status");
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(image: &str, cpu: &str, fields: Value, extra_mf: Vec<Value>) -> Value {
        let mut mf = vec![json!({"manager": "pake", "operation": "Apply", "fieldsV1": fields})];
        mf.extend(extra_mf);
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns", "resourceVersion": "9", "uid": "u",
                         "labels": {"app": "web", "team": "x"},
                         "annotations": {"deployment.kubernetes.io/revision": "3"},
                         "managedFields": mf},
            "spec": {"replicas": 2, "revisionHistoryLimit": 10,
                     "template": {"metadata": {"labels": {"app": "web"}, "annotations": {"pake.dev/secret-db-hash": "h"}},
                                  "spec": {"containers": [
                                      {"name": "app", "image": image, "ports": [{"containerPort": 8000, "protocol": "TCP"}],
                                       "resources": {"limits": {"cpu": cpu, "memory": "1Gi"}},
                                       "terminationMessagePath": "/dev/termination-log"},
                                      {"name": "side", "image": "side:1"}]}}},
            "status": {"replicas": 2}
        })
    }

    fn pake_fields(with_extra_env: bool) -> Value {
        let mut c = json!({".": {}, "f:name": {}, "f:image": {},
            "f:ports": {"k:{\"containerPort\":8000,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}, "f:protocol": {}}},
            "f:resources": {"f:limits": {"f:cpu": {}, "f:memory": {}}}});
        if with_extra_env {
            c["f:env"] = json!({"k:{\"name\":\"NEW\"}": {".": {}, "f:name": {}, "f:value": {}}});
        }
        json!({"f:metadata": {"f:labels": {"f:app": {}}},
               "f:spec": {"f:replicas": {}, "f:template": {"f:metadata": {"f:labels": {"f:app": {}}},
                   "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": c}}}}})
    }

    #[test]
    fn extracts_exactly_the_managers_fields_with_list_keys() {
        let d = deployment("web:1", "500m", pake_fields(false), vec![]);
        let body = restore_body(&d, None, "pake");
        assert_eq!(
            body,
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "ns", "labels": {"app": "web"}},
                "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "web:1",
                        "ports": [{"containerPort": 8000, "protocol": "TCP"}],
                        "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}}]}}}
            })
        );
    }

    #[test]
    fn restore_takes_previous_values_and_drops_fields_the_run_added() {
        let previous = deployment("web:1", "500m", pake_fields(false), vec![]);
        // Live: the run applied a new image, cpu and an env var.
        let mut live = deployment("web:2", "5000", pake_fields(true), vec![]);
        live["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "NEW", "value": "1"}]);
        let body = restore_body(&previous, Some(&live), "pake");
        let c = &body["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "web:1");
        assert_eq!(c["resources"]["limits"]["cpu"], "500m");
        assert!(c.get("env").is_none(), "{c}");
        // Fields owned by others (the controller's annotation, other labels) stay out.
        assert!(body["metadata"].get("annotations").is_none());
        assert!(body["metadata"]["labels"].get("team").is_none());
        assert!(body.get("status").is_none());
    }

    #[test]
    fn update_entries_of_the_same_manager_count_as_owned() {
        // A restore by PUT (older pake) left an Update entry of "pake".
        let d = deployment(
            "web:1",
            "500m",
            json!({"f:spec": {"f:replicas": {}}}),
            vec![
                json!({"manager": "pake", "operation": "Update", "fieldsV1": {"f:spec": {"f:revisionHistoryLimit": {}}}}),
                json!({"manager": "pake", "operation": "Update", "subresource": "status", "fieldsV1": {"f:status": {"f:replicas": {}}}}),
            ],
        );
        let body = restore_body(&d, None, "pake");
        assert_eq!(
            body["spec"],
            json!({"replicas": 2, "revisionHistoryLimit": 10})
        );
    }

    #[test]
    fn set_and_index_items() {
        let v = json!({"finalizers": ["a", "b"], "args": ["x", "y"]});
        let set = json!({"f:finalizers": {"v:\"b\"": {}}, "f:args": {"i:1": {}}});
        assert_eq!(
            extract(&v, &set).unwrap(),
            json!({"finalizers": ["b"], "args": ["y"]})
        );
    }

    #[test]
    fn an_object_without_entries_restores_to_identity_only() {
        let v = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}, "data": {"a": "1"}});
        assert_eq!(
            restore_body(&v, None, "pake"),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}})
        );
    }
}
