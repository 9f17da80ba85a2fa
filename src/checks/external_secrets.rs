//! Audit checks for secrets synced by the External Secrets Operator: an
//! `ExternalSecret` whose store is not among the audited objects, and a plain
//! Secret carrying literal data next to ExternalSecrets (its values bypass the
//! store). Pure: objects in, findings out.

use std::borrow::Borrow;
use std::ops::Range;

use serde_json::Value;

use super::guide::{at, kind, namespace, object_ref};
use super::lines::FieldPath;
use super::{Finding, Severity};

pub const STORE_MISSING: &str = "ESO-STORE-MISSING";
pub const LITERAL_BESIDE_EXTERNAL: &str = "ESO-LITERAL-SECRET";

fn is_external_secret(o: &Value) -> bool {
    kind(o) == "ExternalSecret"
        && o["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("external-secrets.io/"))
}

/// Findings, each with the index of the object it is about.
pub fn check(objects: &[Value]) -> Vec<(usize, Finding)> {
    check_in(objects, 0..objects.len())
}

/// [`check`] for the objects in `range`, the others being context: a
/// streamed audit checks one chunk at a time with the stores, ExternalSecrets
/// and network context of the other chunks around it
/// (`checks::audit`'s context kinds).
pub fn check_in<V: Borrow<Value>>(objects: &[V], range: Range<usize>) -> Vec<(usize, Finding)> {
    let mut out = Vec::new();
    let externals: Vec<(usize, &Value)> = objects
        .iter()
        .map(Borrow::borrow)
        .enumerate()
        .filter(|(_, o)| is_external_secret(o))
        .collect();
    for (i, es) in externals.iter().filter(|(i, _)| range.contains(i)) {
        let store = &es["spec"]["secretStoreRef"];
        let Some(name) = store["name"].as_str() else {
            continue;
        };
        let store_kind = store["kind"].as_str().unwrap_or("SecretStore");
        let found = objects.iter().map(Borrow::borrow).any(|o| {
            kind(o) == store_kind
                && o["metadata"]["name"] == name
                && (store_kind == "ClusterSecretStore" || namespace(o) == namespace(es))
        });
        if !found {
            out.push((
                *i,
                Finding::new(
                    STORE_MISSING,
                    Severity::Medium,
                    format!("{} reads {store_kind} {name}, which is not among the audited objects: ESO cannot sync it unless the store exists in the cluster", object_ref(es)),
                    format!("add the {store_kind} next to the ExternalSecret, or make sure your platform provides it (`pake doctor` checks that it exists and is Ready)"),
                )
                .on(object_ref(es))
                .at_field(FieldPath::of(&["spec", "secretStoreRef", "name"])),
            ));
        }
    }
    if externals.is_empty() {
        return out;
    }
    for (i, o) in objects
        .iter()
        .map(Borrow::borrow)
        .enumerate()
        .filter(|(i, _)| range.contains(i))
    {
        if kind(o) != "Secret" || at(o, &["metadata", "uid"]).is_some() {
            continue; // read from a cluster: ESO's own targets hold data there
        }
        let literal: Vec<(&str, &str)> = ["data", "stringData"]
            .into_iter()
            .flat_map(|f| {
                o[f].as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(_, v)| !v.is_null() && v.as_str() != Some(crate::secret::REDACTED))
                    .map(move |(k, _)| (f, k.as_str()))
            })
            .collect();
        if let Some((field, key)) = literal.first() {
            let keys: Vec<&str> = literal.iter().map(|(_, k)| *k).collect();
            out.push((
                i,
                Finding::new(
                    LITERAL_BESIDE_EXTERNAL,
                    Severity::High,
                    format!(
                        "{} carries literal data (keys {}; values not shown) next to {} ExternalSecret(s): its values bypass the store",
                        object_ref(o),
                        keys.join(", "),
                        externals.len()
                    ),
                    "put the values into the store and declare the secret with `external:` in pake.yaml (or an ExternalSecret), like the others",
                )
                .on(object_ref(o))
                .at_field(FieldPath::of(&[field, key])),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn es(store: &str, kind: &str) -> Value {
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
               "metadata": {"name": "db", "namespace": "p"},
               "spec": {"secretStoreRef": {"name": store, "kind": kind}}})
    }

    #[test]
    fn a_range_sees_the_others_as_context_and_reports_only_its_own() {
        let store = json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {"name": "vault", "namespace": "p"}});
        let literal = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "plain", "namespace": "p"}, "stringData": {"k": "v"}});
        let all = [store, es("vault", "SecretStore"), literal];
        let whole = check(&all);
        assert_eq!(whole.len(), 1, "{whole:?}");
        assert_eq!(whole[0].0, 2);
        // Checked one object at a time, the others as context: the same.
        let mut parts = Vec::new();
        for i in 0..all.len() {
            parts.extend(check_in(&all, i..i + 1));
        }
        assert_eq!(parts.len(), 1);
        assert_eq!((parts[0].0, &parts[0].1.id), (whole[0].0, &whole[0].1.id));
    }

    #[test]
    fn store_must_be_among_the_objects() {
        let store = json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {"name": "vault", "namespace": "p"}});
        assert!(check(&[es("vault", "SecretStore"), store.clone()]).is_empty());
        let f = check(&[es("vault", "SecretStore")]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].1.id, STORE_MISSING);
        // Another namespace's store is not this one.
        let mut other = store.clone();
        other["metadata"]["namespace"] = json!("q");
        assert_eq!(check(&[es("vault", "SecretStore"), other]).len(), 1);
        let css = json!({"kind": "ClusterSecretStore", "metadata": {"name": "vault"}});
        assert!(check(&[es("vault", "ClusterSecretStore"), css]).is_empty());
    }

    #[test]
    fn literal_secret_next_to_external_secret() {
        let store = json!({"kind": "SecretStore", "metadata": {"name": "vault", "namespace": "p"}});
        let plain = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api", "namespace": "p"}, "stringData": {"token": "hunter2"}});
        let f = check(&[es("vault", "SecretStore"), store.clone(), plain.clone()]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].1.id, LITERAL_BESIDE_EXTERNAL);
        assert!(!f[0].1.message.contains("hunter2"));
        // No ExternalSecret: the guide's own check covers it, not this one.
        assert!(check(&[plain]).is_empty());
        // pake's redacted skeleton is not literal data.
        let skeleton = json!({"kind": "Secret", "metadata": {"name": "x"}, "data": {"k": crate::secret::REDACTED}});
        assert!(check(&[es("vault", "SecretStore"), store, skeleton]).is_empty());
    }
}
