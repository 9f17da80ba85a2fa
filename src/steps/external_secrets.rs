//! Secrets synced by the External Secrets Operator (`external:` in pake.yaml).
//!
//! Deploy: the secrets step applies the `ExternalSecret` (journalled, so a
//! rollback restores the previous one or deletes a new one) and waits — on
//! watches of the ExternalSecret and its target Secret, never polling — until
//! ESO reports it Ready for this generation and the target Secret exists with
//! exactly the declared keys, controlled by that ExternalSecret. A sync error
//! fails the step at once with ESO's own message and a fix; no workload has
//! been applied yet. History gets keyed fingerprints of the synced keys
//! (ESO's data hash is itself an unkeyed hash of the values, so it is only
//! compared in memory).
//!
//! Rotation: the value changes in the store (the user's `--from-command`, or
//! already); pake sets ESO's force-sync annotation, waits for a sync newer
//! than the annotation, compares keyed fingerprints of the Secret before and
//! after, and restarts exactly the workloads that read a changed key, proving
//! every Ready pod carries the new content fingerprint. The store's values are
//! not pake's to restore: a failure restarts nothing more and says so.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use serde_json::Value;

use crate::config::{ExternalSource, Resolved};
use crate::error::{Error, Result};
use crate::kube::Cluster;
use crate::kube::external_secrets::{self as eso, SyncEvent};
use crate::secret::SecretValue;
use crate::steps::rotate as rot;
use crate::workflow::executor::{CheckResult, Ctx, Journal, ObjectResult, apply_manifest};
use crate::workflow::history::{self, Revision};

/// What pake says whenever an ExternalSecret is rolled back or a sync failed after the store changed.
pub const NOT_OURS: &str = "pake restores the previous ExternalSecret object; the values in the store (the vault) are not pake's to restore";

// ---------------------------------------------------------------------------
// Pure parts: the state of a sync, judged from the objects.

/// The Ready condition of an ExternalSecret: (status, reason, message).
pub fn ready_condition(es: &Value) -> Option<(String, String, String)> {
    es["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| {
            let s = |f: &str| c[f].as_str().unwrap_or_default().to_string();
            (s("status"), s("reason"), s("message"))
        })
}

/// ESO records `<generation>-<hash of labels and annotations>` as
/// `status.syncedResourceVersion` after each successful sync.
pub fn synced_version(es: &Value) -> Option<&str> {
    es["status"]["syncedResourceVersion"]
        .as_str()
        .filter(|s| !s.is_empty())
}

/// Whether the last successful sync was of the ExternalSecret's current generation.
pub fn synced_this_generation(es: &Value) -> bool {
    let generation = es["metadata"]["generation"].as_i64().unwrap_or(0);
    synced_version(es)
        .is_some_and(|v| v.split_once('-').map(|(g, _)| g) == Some(&generation.to_string()))
}

/// What is wrong with the target Secret, or None: it must exist, be
/// controlled by the ExternalSecret `es_uid`, and hold exactly `keys`.
pub fn target_problem(
    secret: Option<&Value>,
    es_uid: &str,
    keys: &BTreeSet<String>,
) -> Option<String> {
    let Some(s) = secret else {
        return Some("the target Secret does not exist yet".into());
    };
    let owned = s["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|o| o["kind"] == "ExternalSecret" && o["uid"] == es_uid && o["controller"] == true);
    if !owned {
        return Some(
            "the target Secret is not controlled by this ExternalSecret (ownerReference missing)"
                .into(),
        );
    }
    let live: BTreeSet<String> = s["data"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    if &live != keys {
        let missing: Vec<&str> = keys.difference(&live).map(String::as_str).collect();
        let extra: Vec<&str> = live.difference(keys).map(String::as_str).collect();
        return Some(format!(
            "the target Secret's keys differ from pake.yaml (missing: {}; extra: {})",
            if missing.is_empty() {
                "none".into()
            } else {
                missing.join(", ")
            },
            if extra.is_empty() {
                "none".into()
            } else {
                extra.join(", ")
            },
        ));
    }
    None
}

/// Where a sync stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncState {
    /// Not there yet: why.
    Pending(String),
    /// ESO reports Ready for this generation and the Secret is as declared.
    Synced,
    /// ESO reports a sync error (to be confirmed as fresh): its condition message.
    Error(String),
}

/// The sync of a deploy: Ready for the current generation and a correct
/// target Secret; or a sync error that is not older than the last success.
pub fn sync_state(
    es: Option<&Value>,
    secret: Option<&Value>,
    keys: &BTreeSet<String>,
) -> SyncState {
    let Some(es) = es else {
        return SyncState::Pending("the ExternalSecret is not visible yet".into());
    };
    let uid = es["metadata"]["uid"].as_str().unwrap_or_default();
    match ready_condition(es) {
        Some((s, _, _)) if s == "True" && synced_this_generation(es) => {
            match target_problem(secret, uid, keys) {
                None => SyncState::Synced,
                Some(p) => SyncState::Pending(p),
            }
        }
        Some((s, reason, msg)) if s == "False" && !synced_this_generation(es) => {
            if reason == "SecretSyncedError" {
                SyncState::Error(msg)
            } else {
                SyncState::Pending(format!("ESO reports {reason}: {msg}"))
            }
        }
        Some((_, reason, msg)) => SyncState::Pending(format!(
            "ESO has not synced this generation yet ({reason}: {msg})"
        )),
        None => SyncState::Pending(
            "ESO has not reported a status yet (is the External Secrets Operator running?)".into(),
        ),
    }
}

/// The time pake's field manager last applied the object (server clock), from managedFields.
pub fn applied_at(obj: &Value, manager: &str) -> Option<Timestamp> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .filter(|m| m["manager"] == manager && m["operation"] == "Apply")
        .filter_map(|m| m["time"].as_str()?.parse::<Timestamp>().ok())
        .max()
}

/// The newest Warning event at or after `since` (both server-side times,
/// whole seconds), or None: a sync error is only believed when ESO reported
/// it after pake's change, never from an older failure.
pub fn fresh_warning(
    warnings: &[(String, String, String)],
    since: Option<Timestamp>,
) -> Option<&(String, String, String)> {
    warnings.iter().rev().find(|(t, _, _)| match since {
        None => true,
        Some(s) => t
            .parse::<Timestamp>()
            .is_ok_and(|t| t.as_second() >= s.as_second()),
    })
}

/// The guide's fix for an ESO sync error, by what ESO said.
pub fn fix_for(message: &str, store: &str, store_kind: &str, ns: &str) -> String {
    let m = message.to_ascii_lowercase();
    let store_ref = format!("{store_kind} {store}");
    let fix = if m.contains("not ready")
        || m.contains("could not get provider")
        || (m.contains("secretstore") && m.contains("not found"))
    {
        format!(
            "check the store: `kubectl get {} {store} -n {ns}` must exist and be Ready (`pake doctor` checks it); fix its provider settings and credentials",
            store_kind.to_ascii_lowercase()
        )
    } else if m.contains("forbidden")
        || m.contains("unauthorized")
        || m.contains("permission")
        || m.contains("access denied")
        || m.contains("auth")
    {
        format!(
            "the identity of {store_ref} may not read that key: grant it read access in the vault (for the kubernetes provider: a Role allowing get on secrets in the remote namespace)"
        )
    } else if m.contains("not found")
        || m.contains("does not exist")
        || m.contains("no such")
        || m.contains("property")
    {
        "the remote key or property does not exist in the store: fix `secrets[].external.keys` in pake.yaml, or create the value in the vault first".to_string()
    } else {
        format!(
            "see `kubectl describe externalsecret -n {ns}` and the External Secrets Operator's log; check {store_ref}"
        )
    };
    format!("{fix}. {NOT_OURS}")
}

/// The keys whose value differs between two fingerprint maps (added and removed keys too).
pub fn changed_keys(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<String> {
    before
        .keys()
        .chain(after.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------
// Cluster side.

/// The `external-secrets.io` version to use: v1 when served, else v1beta1.
pub async fn api_version(cluster: &Cluster) -> Result<String> {
    let served = eso::served_versions(cluster).await?;
    ["v1", "v1beta1"]
        .into_iter()
        .find(|v| served.iter().any(|s| s == v))
        .map(str::to_string)
        .ok_or_else(|| {
            Error::failed("the cluster does not serve external-secrets.io/v1 (or v1beta1): the External Secrets Operator's CRDs are not installed")
                .on("CustomResourceDefinition externalsecrets.external-secrets.io")
                .fix("install the External Secrets Operator (its CRDs and controller), or declare the secret with `keys:` instead; `pake doctor` checks it")
        })
}

/// The store of `e` as (kind, namespace) for a GET.
fn store_scope<'a>(e: &ExternalSource, ns: &'a str) -> Option<&'a str> {
    match e.store.kind {
        crate::config::StoreKind::SecretStore => Some(ns),
        crate::config::StoreKind::ClusterSecretStore => None,
    }
}

/// Whether the store exists and is Ready: Ok(None) if so, Ok(Some(problem)) if not.
pub async fn store_problem(
    cluster: &Cluster,
    version: &str,
    e: &ExternalSource,
    ns: &str,
) -> Result<Option<String>> {
    let kind = e.store.kind.as_str();
    let store = eso::get(cluster, version, kind, store_scope(e, ns), &e.store.name).await?;
    let where_ = match e.store.kind {
        crate::config::StoreKind::SecretStore => format!(" in namespace {ns}"),
        crate::config::StoreKind::ClusterSecretStore => String::new(),
    };
    Ok(match store {
        None => Some(format!("{kind} {} not found{where_}", e.store.name)),
        Some(s) => match ready_condition(&s) {
            Some((st, _, _)) if st == "True" => None,
            Some((_, reason, msg)) => Some(format!(
                "{kind} {} is not Ready ({reason}: {msg})",
                e.store.name
            )),
            None => Some(format!(
                "{kind} {} has no Ready condition yet (is the External Secrets Operator running?)",
                e.store.name
            )),
        },
    })
}

/// How a wait for ESO ended.
pub enum Waited {
    /// The ExternalSecret and the target Secret as last seen.
    Synced(Value, Value),
    Failed {
        message: String,
    },
    TimedOut {
        last: String,
    },
}

/// Watch the ExternalSecret and its Secret until `done` says Synced, or a
/// sync error newer than `since` is confirmed by ESO's Warning event, or the
/// timeout. Every event re-evaluates; nothing polls.
#[allow(clippy::too_many_arguments)]
pub async fn wait_sync(
    cluster: &Cluster,
    version: &str,
    ns: &str,
    name: &str,
    since: Option<Timestamp>,
    timeout: Duration,
    done: &(dyn Fn(Option<&Value>, Option<&Value>) -> SyncState + Send + Sync),
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Waited> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut stream = eso::watch(cluster, version, ns, name);
    let (mut es, mut secret): (Option<Value>, Option<Value>) = (None, None);
    let (mut seen_es, mut seen_secret) = (false, false);
    let mut last = "waiting for the first watch events".to_string();
    let mut checked_error = String::new();
    loop {
        let ev = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return Ok(Waited::TimedOut { last }),
            Ok(None) => return Ok(Waited::TimedOut { last }),
            Ok(Some(Err(e))) => {
                if let Some(f) = forbidden(&e) {
                    return Err(Error::cluster(format!("watch ExternalSecret {ns}/{name}: {f}"))
                        .fix("the identity needs get/list/watch on externalsecrets.external-secrets.io and secrets in this namespace (`pake doctor`, `pake help rbac`)"));
                }
                tracing::debug!("watch of ExternalSecret {ns}/{name}: {e}; the watcher retries");
                continue;
            }
            Ok(Some(Ok(ev))) => ev,
        };
        match ev {
            SyncEvent::ExternalSecret(o) => {
                es = o;
                seen_es = true;
            }
            SyncEvent::Secret(o) => {
                secret = o;
                seen_secret = true;
            }
        }
        if !(seen_es && seen_secret) {
            // watch_object starts with the current state of each; judge both together.
            continue;
        }
        match done(es.as_ref(), secret.as_ref()) {
            SyncState::Synced => {
                // The two watches are separate streams: ESO writes the Secret
                // before its status, but the Secret's event may arrive after
                // the status event. Read the Secret now (a consistent read)
                // and judge again with it.
                let probe = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}});
                secret = crate::kube::apply::get(cluster, &probe).await?;
                if done(es.as_ref(), secret.as_ref()) == SyncState::Synced {
                    return Ok(Waited::Synced(
                        es.unwrap_or_default(),
                        secret.unwrap_or_default(),
                    ));
                }
            }
            SyncState::Pending(why) => {
                if why != last {
                    progress(&why);
                    last = why;
                }
            }
            SyncState::Error(msg) => {
                // Confirm it is about this change: ESO's Warning event carries
                // the provider's detail and its time.
                let warnings = eso::warnings(cluster, ns, name).await?;
                match fresh_warning(&warnings, since) {
                    Some((_, _, detail)) => {
                        let message = if detail.is_empty() || msg.contains(detail.as_str()) {
                            msg
                        } else {
                            format!("{msg}: {detail}")
                        };
                        return Ok(Waited::Failed { message });
                    }
                    None => {
                        if checked_error != msg {
                            progress("ESO reports an older sync error; waiting for its next sync");
                            checked_error = msg.clone();
                        }
                        last = format!("ESO last reported: {msg}");
                    }
                }
            }
        }
    }
}

fn forbidden(e: &::kube::runtime::watcher::Error) -> Option<String> {
    use ::kube::runtime::watcher::Error as W;
    match e {
        W::InitialListFailed(::kube::Error::Api(s))
        | W::WatchStartFailed(::kube::Error::Api(s))
        | W::WatchFailed(::kube::Error::Api(s))
            if s.code == 403 || s.code == 404 =>
        {
            Some(format!("{} ({})", s.message, s.code))
        }
        W::WatchError(s) if s.code == 403 => Some(format!("{} ({})", s.message, s.code)),
        _ => None,
    }
}

/// Keyed fingerprints of a Secret's values (memory only; the values are dropped).
pub fn fingerprints(secret: &Value, fkey: &SecretValue) -> BTreeMap<String, String> {
    crate::steps::secrets::live_values(Some(secret))
        .into_iter()
        .map(|(k, v)| (k, v.fingerprint(fkey)))
        .collect()
}

/// The secrets step for one `external:` secret: apply the ExternalSecret,
/// wait for ESO's sync, verify the target Secret. A failed check (returned,
/// not raised) makes the executor roll back before any workload.
pub async fn deploy(
    ctx: &Ctx<'_>,
    journal: &mut Journal,
    name: &str,
    e: &ExternalSource,
    fkey: &SecretValue,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<(Vec<ObjectResult>, Vec<CheckResult>)> {
    let r: &Resolved = ctx.resolved;
    let ns = r.namespace.as_str();
    let who = format!("ExternalSecret {ns}/{name}");
    let version = api_version(ctx.cluster).await?;
    progress(&format!(
        "{who} ({} {})",
        e.store.kind.as_str(),
        e.store.name
    ));
    // The store first: a missing or broken store fails before anything changes.
    if let Some(p) = store_problem(ctx.cluster, &version, e, ns).await? {
        return Ok((
            Vec::new(),
            vec![CheckResult::fail(
                "external-secret-store",
                who,
                p.clone(),
                fix_for(&p, &e.store.name, e.store.kind.as_str(), ns),
            )],
        ));
    }
    let mut obj = crate::render::external::external_secret(r, name, e);
    obj["apiVersion"] = Value::String(format!("{}/{version}", eso::GROUP));
    let (applied, result) = apply_manifest(ctx, journal, &obj).await?;
    let since = (result.action != "unchanged")
        .then(|| applied_at(&applied, crate::kube::apply::FIELD_MANAGER))
        .flatten();
    let keys: BTreeSet<String> = e.keys.keys().cloned().collect();
    let started = Instant::now();
    let waited = wait_sync(
        ctx.cluster,
        &version,
        ns,
        name,
        since,
        ctx.opts.timeout,
        &|es, s| sync_state(es, s, &keys),
        &|m| progress(&format!("{who}: {m}")),
    )
    .await?;
    let check = match waited {
        Waited::Synced(es, secret) => {
            for (k, h) in fingerprints(&secret, fkey) {
                journal.secret_hashes.insert(format!("{name}/{k}"), h);
            }
            let rv = synced_version(&es).unwrap_or_default().to_string();
            CheckResult::pass(
                "external-secret-synced",
                who,
                format!(
                    "ESO synced Secret {ns}/{name} from {} {} in {:.1}s: keys {} exactly, controlled by the ExternalSecret (synced version {rv})",
                    e.store.kind.as_str(),
                    e.store.name,
                    started.elapsed().as_secs_f64(),
                    keys.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        }
        Waited::Failed { message } => CheckResult::fail(
            "external-secret-synced",
            who,
            format!("ESO could not sync: {message}"),
            fix_for(&message, &e.store.name, e.store.kind.as_str(), ns),
        ),
        Waited::TimedOut { last } => CheckResult::fail(
            "external-secret-synced",
            who,
            format!("not synced within {}s: {last}", ctx.opts.timeout.as_secs()),
            format!(
                "check that the External Secrets Operator runs and reconciles namespace {ns} (`kubectl describe externalsecret {name} -n {ns}`); raise --timeout for a slow store. {NOT_OURS}"
            ),
        ),
    };
    Ok((vec![result], vec![check]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn es(generation: i64, synced: &str, status: &str, reason: &str, msg: &str) -> Value {
        json!({"metadata": {"uid": "u1", "generation": generation},
               "status": {"syncedResourceVersion": synced,
                          "conditions": [{"type": "Ready", "status": status, "reason": reason, "message": msg}]}})
    }
    fn secret(keys: &[&str], owner: &str) -> Value {
        let data: serde_json::Map<String, Value> = keys
            .iter()
            .map(|k| (k.to_string(), json!("eA==")))
            .collect();
        json!({"metadata": {"ownerReferences": [{"kind": "ExternalSecret", "uid": owner, "controller": true}]}, "data": data})
    }
    fn keys(k: &[&str]) -> BTreeSet<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn synced_only_for_this_generation_with_exact_owned_keys() {
        let k = keys(&["password", "username"]);
        let ok = es(2, "2-abc", "True", "SecretSynced", "secret synced");
        assert_eq!(
            sync_state(
                Some(&ok),
                Some(&secret(&["password", "username"], "u1")),
                &k
            ),
            SyncState::Synced
        );
        // An older generation's success is not this deploy's.
        let old = es(3, "2-abc", "True", "SecretSynced", "secret synced");
        assert!(matches!(
            sync_state(
                Some(&old),
                Some(&secret(&["password", "username"], "u1")),
                &k
            ),
            SyncState::Pending(_)
        ));
        // Keys must match exactly, and the Secret must be controlled by this ExternalSecret.
        assert!(
            matches!(sync_state(Some(&ok), Some(&secret(&["password"], "u1")), &k), SyncState::Pending(p) if p.contains("missing: username"))
        );
        assert!(
            matches!(sync_state(Some(&ok), Some(&secret(&["password", "username", "x"], "u1")), &k), SyncState::Pending(p) if p.contains("extra: x"))
        );
        assert!(
            matches!(sync_state(Some(&ok), Some(&secret(&["password", "username"], "other")), &k), SyncState::Pending(p) if p.contains("not controlled"))
        );
        assert!(matches!(
            sync_state(Some(&ok), None, &k),
            SyncState::Pending(_)
        ));
        assert!(matches!(sync_state(None, None, &k), SyncState::Pending(_)));
    }

    #[test]
    fn sync_errors_fail_only_when_not_synced_since() {
        let k = keys(&["password"]);
        let bad = es(
            2,
            "1-abc",
            "False",
            "SecretSyncedError",
            "could not get secret data from provider",
        );
        assert_eq!(
            sync_state(Some(&bad), None, &k),
            SyncState::Error("could not get secret data from provider".into())
        );
        // Ready=False for another reason (e.g. deleted) is not a sync error.
        let other = es(2, "", "False", "SecretDeleted", "x");
        assert!(matches!(
            sync_state(Some(&other), None, &k),
            SyncState::Pending(_)
        ));
        // No status yet: pending, naming the operator.
        let fresh = json!({"metadata": {"uid": "u1", "generation": 1}});
        assert!(
            matches!(sync_state(Some(&fresh), None, &k), SyncState::Pending(p) if p.contains("External Secrets Operator"))
        );
    }

    #[test]
    fn warnings_count_only_from_the_change_on() {
        let w = vec![
            (
                "2026-11-29T17:00:00Z".to_string(),
                "UpdateFailed".to_string(),
                "old".to_string(),
            ),
            (
                "2026-11-29T17:05:03Z".to_string(),
                "UpdateFailed".to_string(),
                "key not found".to_string(),
            ),
        ];
        let at = |s: &str| Some(s.parse::<Timestamp>().unwrap());
        assert_eq!(
            fresh_warning(&w, at("2026-11-29T17:05:03Z")).map(|w| w.2.as_str()),
            Some("key not found")
        );
        assert_eq!(fresh_warning(&w, at("2026-11-29T17:05:04Z")), None);
        assert_eq!(
            fresh_warning(&w, None).map(|w| w.2.as_str()),
            Some("key not found")
        );
        let applied = json!({"metadata": {"managedFields": [
            {"manager": "pake", "operation": "Apply", "time": "2026-11-29T17:05:03Z"},
            {"manager": "external-secrets", "operation": "Update", "time": "2026-11-29T17:06:00Z"}]}});
        assert_eq!(applied_at(&applied, "pake"), at("2026-11-29T17:05:03Z"));
    }

    #[test]
    fn fixes_name_the_cause_and_never_promise_the_vault() {
        let f = fix_for(
            "could not get secret data from provider: Secret \"db\" not found",
            "vault",
            "SecretStore",
            "ns",
        );
        assert!(
            f.contains("remote key") && f.contains("not pake's to restore"),
            "{f}"
        );
        let f = fix_for(
            "SecretStore \"vault\" is not ready",
            "vault",
            "SecretStore",
            "ns",
        );
        assert!(f.contains("kubectl get secretstore vault -n ns"), "{f}");
        let f = fix_for(
            "secrets is forbidden: User cannot get",
            "vault",
            "SecretStore",
            "ns",
        );
        assert!(f.contains("read access"), "{f}");
    }

    #[test]
    fn changed_keys_include_added_and_removed() {
        let m = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            changed_keys(
                &m(&[("a", "1"), ("b", "2")]),
                &m(&[("a", "1"), ("b", "3"), ("c", "4")])
            ),
            vec!["b", "c"]
        );
        assert!(changed_keys(&m(&[("a", "1")]), &m(&[("a", "1")])).is_empty());
    }
}

// ---------------------------------------------------------------------------
// Rotation through the store.

/// A rotation's sync: ESO must report Ready with a synced version other than
/// the one before the force-sync annotation (any sync after it records a new
/// one, since the annotation is part of what ESO hashes) from a refresh that
/// started no earlier than the annotation (`status.refreshTime`, whole
/// seconds: a sync already under way when the annotation landed may have
/// read the store before the change), and the Secret must be as declared.
pub fn rotation_sync_state(
    es: Option<&Value>,
    secret: Option<&Value>,
    keys: &BTreeSet<String>,
    before: Option<&str>,
    since: Option<Timestamp>,
) -> SyncState {
    let Some(es) = es else {
        return SyncState::Pending("the ExternalSecret disappeared".into());
    };
    let uid = es["metadata"]["uid"].as_str().unwrap_or_default();
    let refreshed = es["status"]["refreshTime"]
        .as_str()
        .and_then(|t| t.parse::<Timestamp>().ok());
    let after_annotation = match (since, refreshed) {
        (None, _) => true,
        (Some(s), Some(r)) => r.as_second() >= s.as_second(),
        (Some(_), None) => false,
    };
    let newer = after_annotation && synced_version(es).is_some_and(|v| Some(v) != before);
    match ready_condition(es) {
        Some((s, _, _)) if s == "True" && newer => match target_problem(secret, uid, keys) {
            None => SyncState::Synced,
            Some(p) => SyncState::Pending(p),
        },
        Some((s, reason, msg)) if s == "False" && reason == "SecretSyncedError" => {
            SyncState::Error(msg)
        }
        _ => SyncState::Pending("waiting for ESO to sync after the force-sync annotation".into()),
    }
}

#[derive(Debug, Clone)]
pub struct RotateOptions {
    pub secret: String,
    /// The user's own command that writes the new value into the store; None: already changed.
    pub command: Option<String>,
    pub dry_run: bool,
    pub timeout: Duration,
    pub wait_lock: bool,
    pub yes: bool,
}

/// One rotation through the store: what every stage of `rotate` reads.
struct StoreRotation<'a> {
    cluster: &'a Cluster,
    resolved: &'a Resolved,
    ui: &'a crate::output::Ui,
    e: &'a ExternalSource,
    opts: &'a RotateOptions,
    ns: &'a str,
    who: String,
    annotation: String,
    source: String,
}

/// The Secret as synced before the rotation (keyed fingerprints only).
struct Before {
    version: String,
    fkey: SecretValue,
    hashes: BTreeMap<String, String>,
    content: String,
    synced_version: Option<String>,
    targets: Vec<rot::Target>,
}

/// What the new sync brought.
#[derive(Default)]
struct Arrived {
    hashes: BTreeMap<String, String>,
    changed: Vec<String>,
}

/// `pake rotate-secret NAME` for an `external:` secret. Errors before any
/// change are `Err` (exit 2/3); later failures are in the report (exit 1).
/// The same transaction and restart-and-verify stages as `steps::rotate::run`;
/// only the way the new value arrives differs (the user's command, ESO's
/// force-sync, waiting for the content to change), and nothing is restored.
pub async fn rotate(
    cluster: &Cluster,
    resolved: &Resolved,
    ui: &crate::output::Ui,
    e: &ExternalSource,
    opts: &RotateOptions,
) -> Result<rot::Report> {
    let started = Instant::now();
    let sr = StoreRotation::new(cluster, resolved, ui, e, opts);
    let before = sr.preflight().await?;
    let mut report = sr.report(&before);
    let header = format!(
        "rotate Secret {}/{} through the store: {}",
        sr.ns, opts.secret, sr.source
    );
    rot::announce_targets(ui, sr.ns, &opts.secret, header, &before.targets);
    if opts.dry_run {
        sr.dry_run();
        report.ok = true;
        report.duration_ms = started.elapsed().as_millis();
        return Ok(report);
    }
    let txn = sr.begin(&before).await?;
    report.revision = Some(txn.revision);
    let mut reports: BTreeMap<String, rot::WorkloadReport> = BTreeMap::new();
    let mut arrived = Arrived::default();
    let outcome = match sr.new_value(&before).await {
        Ok((a, content)) => {
            report.content_hash = Some(content.clone());
            report.new_hash = Some(content.clone());
            let r = sr.restart(&before, &a, &content, &mut reports).await;
            arrived = a;
            r
        }
        Err(err) => Err(err),
    };
    report.key = arrived.changed.join(",");
    let mut rev = txn.record(
        arrived
            .changed
            .iter()
            .filter_map(|k| {
                arrived
                    .hashes
                    .get(k)
                    .map(|h| (format!("{}/{k}", opts.secret), h.clone()))
            })
            .collect(),
    );
    match &outcome {
        Ok(()) => {
            report.ok = true;
            rev.message = format!(
                "rotated {} through the store (keys {}); restarted {} workload(s)",
                opts.secret,
                arrived.changed.join(", "),
                rot::restarted(&reports)
            );
        }
        Err(err) => sr.failed(err, &arrived, &mut report, &mut rev),
    }
    report.workloads = reports.into_values().collect();
    rev.details = sr.details(&before, &arrived, &report);
    txn.close(&rev, &mut report, started).await;
    Ok(report)
}

impl<'a> StoreRotation<'a> {
    fn new(
        cluster: &'a Cluster,
        resolved: &'a Resolved,
        ui: &'a crate::output::Ui,
        e: &'a ExternalSource,
        opts: &'a RotateOptions,
    ) -> Self {
        let ns = resolved.namespace.as_str();
        let how = match &opts.command {
            Some(_) => "written by the --from-command command",
            None => "already changed there",
        };
        StoreRotation {
            cluster,
            resolved,
            ui,
            e,
            opts,
            ns,
            who: format!("ExternalSecret {ns}/{}", opts.secret),
            annotation: rot::hash_annotation(&opts.secret),
            source: format!(
                "{} {} ({how}), synced by the External Secrets Operator",
                e.store.kind.as_str(),
                e.store.name
            ),
        }
    }

    /// Everything that can fail without changing anything: the
    /// ExternalSecret, its synced Secret, the fingerprints, the workloads.
    async fn preflight(&self) -> Result<Before> {
        let (cluster, ns, name, who) =
            (self.cluster, self.ns, self.opts.secret.as_str(), &self.who);
        let version = api_version(cluster).await?;
        let es = eso::get(cluster, &version, "ExternalSecret", Some(ns), name)
            .await?
            .ok_or_else(|| {
                Error::usage(format!("{who} not found; nothing was changed"))
                    .on(who.clone())
                    .fix("deploy it first: `pake deploy` applies the ExternalSecret of every `external:` secret")
            })?;
        let probe = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}});
        let live = crate::kube::apply::get(cluster, &probe).await?.ok_or_else(|| {
            Error::failed(format!("Secret {ns}/{name} does not exist: ESO has not synced {who}; nothing was changed"))
                .on(who.clone())
                .fix(format!("`kubectl describe externalsecret {name} -n {ns}` shows why; `pake deploy` waits for the sync and reports ESO's error"))
        })?;
        let fkey = history::fingerprint_key(cluster, ns, self.opts.dry_run).await?;
        let hashes = fingerprints(&live, &fkey);
        let content = rot::content_hash(&crate::steps::secrets::live_values(Some(&live)), &fkey);
        drop(live);
        Ok(Before {
            synced_version: synced_version(&es).map(str::to_string),
            targets: rot::discover(cluster, ns, name, "").await?,
            version,
            fkey,
            hashes,
            content,
        })
    }

    fn report(&self, before: &Before) -> rot::Report {
        let (r, opts) = (self.resolved, self.opts);
        rot::Report {
            ok: false,
            action: rot::ROTATION.into(),
            app: r.app.clone(),
            env: r.env.clone(),
            namespace: self.ns.to_string(),
            secret: opts.secret.clone(),
            key: String::new(),
            source: self.source.clone(),
            dry_run: opts.dry_run,
            no_restart: false,
            revision: None,
            annotation: self.annotation.clone(),
            previous_hash: before.content.clone(),
            new_hash: None,
            previous_content_hash: before.content.clone(),
            content_hash: None,
            workloads: Vec::new(),
            restored: false,
            duration_ms: 0,
            error: None,
            restore_error: None,
        }
    }

    fn dry_run(&self) {
        self.ui.line(format!(
            "dry run: would {}annotate {} with {}, wait for ESO's sync, and restart the workloads above that read a changed key",
            if self.opts.command.is_some() { "run the --from-command command, " } else { "" },
            self.who,
            eso::FORCE_SYNC
        ));
    }

    async fn begin(&self, before: &Before) -> Result<rot::Transaction<'a>> {
        let (opts, e) = (self.opts, self.e);
        let summary = format!(
            "rotate {} in namespace {} through {} {}; restart what reads a changed key",
            opts.secret,
            self.ns,
            e.store.kind.as_str(),
            e.store.name
        );
        let gate = rot::Gate {
            yes: opts.yes,
            wait_lock: opts.wait_lock,
            timeout: opts.timeout,
        };
        let tx = crate::workflow::release::Release::new(self.cluster, self.resolved, self.ui);
        rot::Transaction::begin(
            tx,
            gate,
            &summary,
            (&opts.secret, "*"),
            (&before.content, ""),
        )
        .await
    }

    /// How the new value arrives: the user's command writes it into the
    /// store, ESO is told to sync now, and the synced Secret must differ.
    /// Returns the new fingerprints and the new content hash.
    async fn new_value(&self, before: &Before) -> Result<(Arrived, String)> {
        if let Some(cmd) = &self.opts.command {
            self.run_store_command(cmd).await?;
        }
        let step = self
            .ui
            .step(&format!("sync {} now ({})", self.who, eso::FORCE_SYNC));
        let (secret, step) = self.force_sync(before, step).await?;
        let hashes = fingerprints(&secret, &before.fkey);
        let changed = changed_keys(&before.hashes, &hashes);
        if changed.is_empty() {
            step.fail("synced, but no value changed");
            return Err(Error::failed(format!("ESO synced {}, but the store still holds the previous values: no key changed; nothing was restarted", self.who))
                .on(self.who.clone())
                .fix("change the value in the store first (e.g. `pake rotate-secret NAME --from-command \"vault kv put ...\"`), then re-run"));
        }
        let content = rot::content_hash(
            &crate::steps::secrets::live_values(Some(&secret)),
            &before.fkey,
        );
        drop(secret);
        step.done(&format!(
            "ESO synced: key(s) {} changed",
            changed.join(", ")
        ));
        Ok((Arrived { hashes, changed }, content))
    }

    async fn run_store_command(&self, cmd: &str) -> Result<()> {
        let step = self
            .ui
            .step("write the new value into the store (--from-command)");
        let timeout = crate::secret::command_timeout()?;
        let cmd = cmd.to_string();
        let r =
            tokio::task::spawn_blocking(move || crate::secret::run_store_command(&cmd, timeout))
                .await
                .map_err(|j| {
                    Error::failed(format!("the --from-command command did not finish: {j}"))
                })?;
        match r {
            Ok(()) => {
                step.done("the command succeeded (its output was discarded)");
                Ok(())
            }
            Err(err) => {
                step.fail("failed");
                Err(err)
            }
        }
    }

    /// Annotate the ExternalSecret (a new value every time, sub-second: an
    /// unchanged annotation syncs nothing) and wait for a sync after it.
    async fn force_sync(
        &self,
        before: &Before,
        step: crate::output::StepProgress,
    ) -> Result<(Value, crate::output::StepProgress)> {
        let (cluster, ns, name, who) =
            (self.cluster, self.ns, self.opts.secret.as_str(), &self.who);
        let stamp = Timestamp::now().to_string();
        let annotated = eso::force_sync(cluster, &before.version, ns, name, &stamp).await?;
        let since = applied_at(&annotated, eso::SYNC_MANAGER);
        let keys: BTreeSet<String> = self.e.keys.keys().cloned().collect();
        let prev = before.synced_version.as_deref();
        let state =
            |es: Option<&Value>, s: Option<&Value>| rotation_sync_state(es, s, &keys, prev, since);
        let waited = wait_sync(
            cluster,
            &before.version,
            ns,
            name,
            since,
            self.opts.timeout,
            &state,
            &|m| step.message(m),
        )
        .await?;
        match waited {
            Waited::Synced(_, secret) => Ok((secret, step)),
            Waited::Failed { message } => {
                step.fail("ESO could not sync");
                Err(Error::failed(format!(
                    "ESO could not sync {who}: {message}; nothing was restarted"
                ))
                .on(who.clone())
                .fix(fix_for(
                    &message,
                    &self.e.store.name,
                    self.e.store.kind.as_str(),
                    ns,
                )))
            }
            Waited::TimedOut { last } => {
                step.fail("not synced");
                Err(Error::failed(format!(
                    "ESO did not sync {who} within {}s: {last}; nothing was restarted",
                    self.opts.timeout.as_secs()
                ))
                .on(who.clone())
                .fix("check that the External Secrets Operator runs (`pake doctor`), then re-run"))
            }
        }
    }

    /// Restart exactly the workloads that read a changed key (the stage
    /// shared with `steps::rotate`).
    async fn restart(
        &self,
        before: &Before,
        arrived: &Arrived,
        content: &str,
        reports: &mut BTreeMap<String, rot::WorkloadReport>,
    ) -> Result<()> {
        let changed = &arrived.changed;
        let uses = |t: &rot::Target| {
            t.references
                .iter()
                .any(|r| changed.iter().any(|k| r.uses_key(k)))
        };
        let why = format!(
            "references {} but no changed key: not restarted",
            self.opts.secret
        );
        let to_restart = rot::to_restart(reports, &before.targets, self.ns, uses, &why);
        let restart = rot::Restart {
            cluster: self.cluster,
            ui: self.ui,
            ns: self.ns,
            annotation: &self.annotation,
            timeout: self.opts.timeout,
        };
        let mut stamped = Vec::new();
        restart
            .all_until_signal(&to_restart, content, &mut stamped, reports)
            .await
    }

    fn failed(&self, err: &Error, arrived: &Arrived, report: &mut rot::Report, rev: &mut Revision) {
        report.error = Some(err.into());
        rev.status = "failed".into();
        rev.message = format!(
            "rotation of {} through the store failed: {}",
            self.opts.secret, err.message
        );
        if !arrived.changed.is_empty() {
            self.ui.line(format!(
                "{} the new value is live in Secret {}/{}: {NOT_OURS}",
                self.ui.mark(false),
                self.ns,
                self.opts.secret
            ));
        }
    }

    fn details(&self, before: &Before, arrived: &Arrived, report: &rot::Report) -> Value {
        let name = &self.opts.secret;
        serde_json::json!({
            "secret": name,
            "key": "*",
            "source": self.source,
            "store": {"kind": self.e.store.kind.as_str(), "name": self.e.store.name},
            "changedKeys": arrived.changed,
            "previousHashes": before.hashes.iter().map(|(k, h)| (format!("{name}/{k}"), Value::String(h.clone()))).collect::<serde_json::Map<_, _>>(),
            "annotation": self.annotation,
            "contentHash": report.content_hash,
            "previousContentHash": before.content,
            "workloads": rot::workload_details(&report.workloads),
        })
    }
}

#[cfg(test)]
mod rotation_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_rotation_needs_a_sync_after_the_annotation() {
        let keys: BTreeSet<String> = ["password".to_string()].into();
        let es = |v: &str, status: &str, reason: &str, refreshed: &str| {
            json!({"metadata": {"uid": "u", "generation": 1},
            "status": {"syncedResourceVersion": v, "refreshTime": refreshed,
                "conditions": [{"type": "Ready", "status": status, "reason": reason, "message": "m"}]}})
        };
        let at = |t: &str| Some(t.parse::<Timestamp>().unwrap());
        let since = at("2026-11-29T17:00:05Z");
        let secret = json!({"metadata": {"ownerReferences": [{"kind": "ExternalSecret", "uid": "u", "controller": true}]}, "data": {"password": "eA=="}});
        let state =
            |e: Value| rotation_sync_state(Some(&e), Some(&secret), &keys, Some("1-old"), since);
        // Still the sync from before the annotation: wait.
        assert!(matches!(
            state(es("1-old", "True", "SecretSynced", "2026-11-29T17:00:06Z")),
            SyncState::Pending(_)
        ));
        assert_eq!(
            state(es("1-new", "True", "SecretSynced", "2026-11-29T17:00:05Z")),
            SyncState::Synced
        );
        // A new version from a refresh that started before the annotation may hold the old value: wait.
        assert!(matches!(
            state(es("1-new", "True", "SecretSynced", "2026-11-29T17:00:04Z")),
            SyncState::Pending(_)
        ));
        assert_eq!(
            state(es(
                "1-old",
                "False",
                "SecretSyncedError",
                "2026-11-29T17:00:04Z"
            )),
            SyncState::Error("m".into())
        );
    }
}
