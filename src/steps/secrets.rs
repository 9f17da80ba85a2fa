//! Step 2 of the guide: Secrets from external sources (vault CLI, CI secret
//! environment variables, files), never from a value written in the repo.
//!
//! Values exist only in memory: read from the source, put into the apply
//! request body, and fingerprinted (HMAC-SHA256 under the namespace's
//! `pake-fingerprint-key`) for verification and history.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::Value;

use crate::config::{SecretSource, SecretSpec};
use crate::error::{Error, Result};
use crate::secret::SecretValue;
use crate::workflow::executor::{CheckResult, Ctx, Journal, ObjectResult, apply_manifest};
use crate::workflow::history::Revision;

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
        let timeout = match &src.timeout {
            Some(t) => crate::secret::parse_duration(t).map_err(|e| {
                Error::usage(format!("fromCommand timeout {t:?}: {e}"))
                    .fix("use a duration such as 30s, 2m or 1m30s")
            })?,
            None => crate::secret::command_timeout()?,
        };
        SecretValue::from_command_with_timeout(cmd, timeout)
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

/// Whether a deploy keeps a value set by `pake rotate-secret` instead of the
/// one its `fromEnv`/`fromFile`/`fromCommand` source yields (`generate`
/// sources always keep the live value). The rule (docs/rotate-secret.md):
/// keep the live value when
/// 1. the newest successful rotation of `id` (`secret/key`) wrote it, i.e.
///    the rotation's recorded hash is the live value's hash, and
/// 2. the source yields a value the history already knew: one some revision
///    recorded for `id`, or one a rotation replaced. Such a source was simply
///    not updated after the rotation.
///
/// A source yielding a value the history never saw was changed on purpose
/// (the rotated value copied into the vault, or a newer one) and wins.
/// Returns the number of the rotation revision whose value is kept.
pub fn keep_rotated(
    history: &[Revision],
    id: &str,
    live_hash: &str,
    source_hash: &str,
) -> Option<u32> {
    use crate::steps::rotate::ROTATION;
    if live_hash == source_hash {
        return None;
    }
    let rotation = history
        .iter()
        .filter(|r| {
            // An interrupted (or still pending) rotation whose new value is
            // live counts too: the next deploy never silently reverts it. So
            // does a fleet rotation undone on this cluster (`rolled-back`,
            // holding the value it restored): the value before it stays.
            r.action == ROTATION
                && matches!(
                    r.status.as_str(),
                    ROTATION
                        | crate::workflow::recovery::INTERRUPTED
                        | crate::workflow::recovery::PENDING
                        | crate::workflow::recovery::ROLLED_BACK
                )
                && r.secret_hashes.contains_key(id)
        })
        .max_by_key(|r| r.revision)?;
    if rotation.secret_hashes[id] != live_hash {
        return None;
    }
    let known = history.iter().any(|r| {
        r.secret_hashes.get(id).map(String::as_str) == Some(source_hash)
            || r.details["previousHashes"][id].as_str() == Some(source_hash)
    });
    known.then_some(rotation.revision)
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
    fkey: &SecretValue,
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
        .filter(|(k, h)| live_vals[*k].fingerprint(fkey) != **h)
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
    // Release history, read only when a rotated value might have to be kept.
    let mut history: Option<Vec<Revision>> = None;
    if r.secrets.is_empty() {
        return Ok((objects, checks));
    }
    // Hashes that are stored or compared are keyed fingerprints, never plain hashes.
    let fkey =
        crate::workflow::history::fingerprint_key(ctx.cluster, &r.namespace, ctx.opts.dry_run)
            .await?;
    for spec in &r.secrets {
        if let Some(ext) = &spec.external {
            // Synced by the External Secrets Operator: stop at its first failure
            // (fail fast, before any workload).
            let (o, c) = crate::steps::external_secrets::deploy(
                ctx, journal, &spec.name, ext, &fkey, progress,
            )
            .await?;
            let failed = c.iter().any(|c| !c.ok);
            objects.extend(o);
            checks.extend(c);
            if failed {
                break;
            }
            continue;
        }
        let SecretSpec { name, keys, .. } = spec;
        progress(&format!("Secret {}/{name}", r.namespace));
        let who = format!("Secret {}/{name}", r.namespace);
        let probe = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": r.namespace}});
        let live = crate::kube::apply::get(ctx.cluster, &probe).await?;
        let mut existing = live_values(live.as_ref());
        let mut values = BTreeMap::new();
        for (key, src) in keys {
            let live_value = existing.remove(key);
            let mut v = resolve_value(src, live_value.clone(), &r.root).map_err(|e| Error {
                message: format!("secret {name}/{key}: {}", e.message),
                ..e
            })?;
            if src.generate.is_none()
                && let Some(l) = live_value
                && l != v
            {
                if history.is_none() {
                    history = Some(
                        crate::workflow::history::list(ctx.cluster, &r.namespace, &r.app, &r.env)
                            .await?,
                    );
                }
                let revs = history.as_deref().unwrap_or_default();
                if let Some(n) = keep_rotated(
                    revs,
                    &format!("{name}/{key}"),
                    &l.fingerprint(&fkey),
                    &v.fingerprint(&fkey),
                ) {
                    checks.push(CheckResult::pass(
                        "secret-rotation-kept",
                        who.clone(),
                        format!("{key}: kept the value rotated in revision {n}; its source still yields the value from before the rotation"),
                    ));
                    v = l;
                }
            }
            values.insert(key.clone(), v);
        }
        let expected: BTreeMap<String, String> = values
            .iter()
            .map(|(k, v)| (k.clone(), v.fingerprint(&fkey)))
            .collect();
        let obj = secret_object(&r.namespace, &r.app, name, &values);
        drop(values);
        // The apply response is the Secret as stored: check it, no second read.
        let (stored, res) = apply_manifest(ctx, journal, &obj).await?;
        objects.push(res);
        checks.push(check_secret(&who, Some(&stored), &expected, &fkey));
        for (k, h) in expected {
            journal.secret_hashes.insert(format!("{name}/{k}"), h);
        }
    }
    Ok((objects, checks))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(n: u32, action: &str, status: &str, hash: &str, previous: Option<&str>) -> Revision {
        Revision {
            revision: n,
            status: status.into(),
            action: action.into(),
            time: String::new(),
            user: String::new(),
            image: String::new(),
            message: String::new(),
            manifests: Vec::new(),
            hashes: BTreeMap::new(),
            secret_hashes: BTreeMap::from([("db/password".to_string(), hash.to_string())]),
            details: match previous {
                Some(p) => serde_json::json!({"previousHashes": {"db/password": p}}),
                None => Value::Null,
            },
        }
    }

    #[test]
    fn deploy_keeps_a_rotated_value_while_the_source_is_stale() {
        let id = "db/password";
        // deploy A, rotate to B.
        let mut h = vec![
            rev(1, "deploy", "superseded", "A", None),
            rev(2, "rotation", "rotation", "B", Some("A")),
        ];
        assert_eq!(keep_rotated(&h, id, "B", "A"), Some(2));
        // The source was updated to the rotated value, or to a new one: it wins.
        assert_eq!(keep_rotated(&h, id, "B", "B"), None);
        assert_eq!(keep_rotated(&h, id, "B", "N"), None);
        // Someone else changed the live value since the rotation: not ours to keep.
        assert_eq!(keep_rotated(&h, id, "X", "A"), None);
        // A second rotation (B -> C) after a deploy that kept B: A is still stale.
        h.push(rev(3, "deploy", "deployed", "B", None));
        h.push(rev(4, "rotation", "rotation", "C", Some("B")));
        assert_eq!(keep_rotated(&h, id, "C", "A"), Some(4));
        // A failed (restored) rotation is not a rotation of record.
        h.push(rev(5, "rotation", "failed", "C", Some("C")));
        assert_eq!(keep_rotated(&h, id, "C", "A"), Some(4));
        // A fleet rotation C -> D that another cluster's failure undid here:
        // C is live again and still kept over the stale source.
        h.push(rev(6, "rotation", "rotation", "D", Some("C")));
        h.push(rev(7, "rotation", "rolled-back", "C", Some("D")));
        assert_eq!(keep_rotated(&h, id, "C", "A"), Some(7));
        // No rotation at all: the source wins (the deploy's usual behaviour).
        assert_eq!(keep_rotated(&h[..1], id, "A", "Z"), None);
        assert_eq!(keep_rotated(&h, "db/username", "C", "A"), None);
    }
}
