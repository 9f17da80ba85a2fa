//! Step 2 of the guide: Secrets from external sources (vault CLI, CI secret
//! environment variables, files), never from a value written in the repo.
//!
//! Values exist only in memory: read from the source, put into the apply
//! request body, and hashed (SHA-256) for verification and history.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::Value;

use crate::config::{SecretSource, SecretSpec};
use crate::error::{Error, Result};
use crate::secret::SecretValue;
use crate::workflow::executor::{CheckResult, Ctx, Journal, ObjectResult, apply_manifest};

/// Read one key's value from its source. `existing` is the value in the
/// cluster, kept for `generate` sources so a deploy does not rotate them.
pub fn resolve_value(
    src: &SecretSource,
    existing: Option<SecretValue>,
    root: &std::path::Path,
) -> Result<SecretValue> {
    if let Some(var) = &src.from_env {
        SecretValue::from_env(var)
    } else if let Some(path) = &src.from_file {
        SecretValue::from_file(&root.join(path))
    } else if let Some(cmd) = &src.from_command {
        SecretValue::from_command(cmd)
    } else if let Some(g) = &src.generate {
        match existing {
            Some(v) => Ok(v),
            None => SecretValue::random_base64(g.bytes),
        }
    } else {
        Err(Error::usage(
            "secret source has no fromEnv, fromFile, fromCommand or generate",
        ))
    }
}

/// The live Secret's values, decoded (memory only).
pub fn live_values(live: Option<&Value>) -> BTreeMap<String, SecretValue> {
    let mut out = BTreeMap::new();
    if let Some(data) = live.and_then(|l| l["data"].as_object()) {
        for (k, v) in data {
            if let Some(bytes) = v
                .as_str()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            {
                out.insert(k.clone(), SecretValue::from_bytes(bytes));
            }
        }
    }
    out
}

/// The Secret object with data: only ever used as a request body.
pub fn secret_object(
    namespace: &str,
    app: &str,
    name: &str,
    values: &BTreeMap<String, SecretValue>,
) -> Value {
    let data: serde_json::Map<String, Value> = values
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(v.expose())),
            )
        })
        .collect();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app": app, "app.kubernetes.io/managed-by": "pake"},
        },
        "type": "Opaque",
        "data": data,
    })
}

/// Verify a live Secret holds exactly the expected keys with the expected value hashes.
pub fn check_secret(
    who: &str,
    live: Option<&Value>,
    expected: &BTreeMap<String, String>,
) -> CheckResult {
    let live_vals = live_values(live);
    let missing: Vec<&String> = expected
        .keys()
        .filter(|k| !live_vals.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return CheckResult::fail(
            "secret-keys",
            who,
            format!(
                "missing keys: {}",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "check the keys in pake.yaml `secrets:`",
        );
    }
    let differ: Vec<&String> = expected
        .iter()
        .filter(|(k, h)| live_vals[*k].sha256() != **h)
        .map(|(k, _)| k)
        .collect();
    if !differ.is_empty() {
        return CheckResult::fail(
            "secret-keys",
            who,
            format!(
                "value of {} differs from what was applied (changed concurrently?)",
                differ
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "re-run the deploy; check for another tool writing this Secret",
        );
    }
    CheckResult::pass(
        "secret-keys",
        who,
        format!(
            "keys {} present with the applied values",
            expected.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    )
}

pub async fn run(
    ctx: &Ctx<'_>,
    journal: &mut Journal,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<(Vec<ObjectResult>, Vec<CheckResult>)> {
    let r = ctx.resolved;
    let mut objects = Vec::new();
    let mut checks = Vec::new();
    for SecretSpec { name, keys } in &r.secrets {
        progress(&format!("Secret {}/{name}", r.namespace));
        let probe = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": r.namespace}});
        let live = crate::kube::apply::get(ctx.cluster, &probe).await?;
        let mut existing = live_values(live.as_ref());
        let mut values = BTreeMap::new();
        for (key, src) in keys {
            let v = resolve_value(src, existing.remove(key), &r.root).map_err(|e| Error {
                message: format!("secret {name}/{key}: {}", e.message),
                ..e
            })?;
            values.insert(key.clone(), v);
        }
        let expected: BTreeMap<String, String> = values
            .iter()
            .map(|(k, v)| (k.clone(), v.sha256()))
            .collect();
        let obj = secret_object(&r.namespace, &r.app, name, &values);
        drop(values);
        let (_, res) = apply_manifest(ctx, journal, &obj).await?;
        objects.push(res);
        let who = format!("Secret {}/{name}", r.namespace);
        let live = crate::kube::apply::get(ctx.cluster, &probe).await?;
        checks.push(check_secret(&who, live.as_ref(), &expected));
        for (k, h) in expected {
            journal.secret_hashes.insert(format!("{name}/{k}"), h);
        }
    }
    Ok((objects, checks))
}
