//! Release history, stored in the cluster as one ConfigMap per revision.
//!
//! Like Helm's release records, but never with secret values: Secret objects
//! are stored with their keys only, plus a keyed fingerprint (HMAC-SHA256
//! under [`fingerprint_key`]) of each value so a later run can tell whether a
//! Secret changed (rotation) without knowing it, and a guessable value cannot
//! be recovered by hashing guesses.

use std::collections::BTreeMap;

use ::kube::Api;
use ::kube::api::{ListParams, Patch, PatchParams};
use k8s_openapi::api::core::v1::ConfigMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::kube::Cluster;
use crate::kube::apply::FIELD_MANAGER;

pub const LABEL_HISTORY: &str = "pake.dev/history";
pub const LABEL_APP: &str = "pake.dev/app";
pub const LABEL_ENV: &str = "pake.dev/env";
pub const LABEL_REVISION: &str = "pake.dev/revision";
/// History action of a secret rotation (`steps::rotate::ROTATION` is the same).
pub const ROTATION_ACTION: &str = "rotation";

/// Defines a string-valued enum stored in history as its string: the known
/// values as variants, anything else kept as `Other` so a record written by a
/// newer (or older) pake still loads. Compares with `&str` and converts from
/// it, so `status == "deployed"` and `"failed".into()` read as before.
macro_rules! history_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($(#[$vm])* $variant,)*
            /// A value this version of pake does not know.
            Other(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $($text => $name::$variant,)*
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name::from(s.as_str())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_string()
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // `pad`, not `write_str`: tables align these with `{:<10}`.
                f.pad(self.as_str())
            }
        }
    };
}

history_enum! {
    /// Where a revision stands (`pending` is written before a run's first
    /// change; see workflow::recovery).
    RevisionStatus {
        Pending = "pending",
        Deployed = "deployed",
        Superseded = "superseded",
        Failed = "failed",
        RolledBack = "rolled-back",
        Interrupted = "interrupted",
        /// A verified blue-green switch.
        Switch = "switch",
        /// A verified secret rotation.
        Rotation = "rotation",
        /// A blue-green cleanup.
        Cleanup = "cleanup",
    }
}

history_enum! {
    /// What a revision records.
    ReleaseAction {
        Deploy = "deploy",
        Rollback = "rollback",
        Switch = "switch",
        Rotation = "rotation",
        Cleanup = "cleanup",
        BluegreenDeploy = "bluegreen-deploy",
    }
}

/// One revision.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    pub revision: u32,
    /// pending | deployed | failed | rolled-back | interrupted | superseded | switch | rotation
    /// (`pending` is written before a run's first change; see workflow::recovery)
    pub status: RevisionStatus,
    pub action: ReleaseAction,
    pub time: String,
    pub user: String,
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub message: String,
    /// Objects as applied (Secrets without values).
    #[serde(default)]
    pub manifests: Vec<Value>,
    /// `Kind ns/name` -> SHA-256 of the applied object (objects hold no secret values).
    #[serde(default)]
    pub hashes: BTreeMap<String, String>,
    /// `secret/key` -> keyed fingerprint (HMAC-SHA256 under `fingerprint_key`) of the value.
    #[serde(default)]
    pub secret_hashes: BTreeMap<String, String>,
    /// Free-form details of the action (blue-green from/to, rotation targets).
    #[serde(default)]
    pub details: Value,
}

fn cm_name(app: &str, env: &str, revision: u32) -> String {
    format!("pake-history-{app}-{env}-{revision}")
}

/// Every revision of app/env, oldest first.
pub async fn list(
    cluster: &Cluster,
    namespace: &str,
    app: &str,
    env: &str,
) -> Result<Vec<Revision>> {
    let api: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), namespace);
    let lp = ListParams::default().labels(&format!(
        "{LABEL_HISTORY}=true,{LABEL_APP}={app},{LABEL_ENV}={env}"
    ));
    let cms = match api.list(&lp).await {
        Ok(l) => l.items,
        Err(::kube::Error::Api(s)) if s.code == 404 => Vec::new(),
        Err(e) => {
            return Err(Error::from_kube(
                format!("list release history in {namespace}"),
                e,
            ));
        }
    };
    let mut revs: Vec<Revision> = cms
        .into_iter()
        .filter_map(|cm| cm.data.and_then(|d| d.get("release.json").cloned()))
        .filter_map(|s| serde_json::from_str(&s).ok())
        .collect();
    revs.sort_by_key(|r| r.revision);
    Ok(revs)
}

/// The next revision number.
pub async fn next_revision(
    cluster: &Cluster,
    namespace: &str,
    app: &str,
    env: &str,
) -> Result<u32> {
    Ok(list(cluster, namespace, app, env)
        .await?
        .last()
        .map(|r| r.revision + 1)
        .unwrap_or(1))
}

/// How many revisions `pake deploy` keeps by default (like Helm's --history-max).
pub const DEFAULT_HISTORY_MAX: usize = 10;
/// The action of a blue-green switch record (steps::bluegreen::ACTION_SWITCH).
pub const SWITCH_ACTION: &str = "switch";

/// The revisions history pruning deletes so that `keep` remain (0 keeps all),
/// oldest first. Never pruned, whatever their age, are the records others
/// still read back: blue-green switches (which version serves traffic),
/// rotations and, once any rotation exists, every record carrying secret
/// hashes (a deploy keeps a rotated value only while history knows the
/// value from before it), and pending/interrupted records (recovery).
pub fn to_prune(revs: &[Revision], keep: usize) -> Vec<u32> {
    if keep == 0 || revs.len() <= keep {
        return Vec::new();
    }
    let mut sorted: Vec<&Revision> = revs.iter().collect();
    sorted.sort_by_key(|r| r.revision);
    let rotated = revs.iter().any(|r| r.action == ROTATION_ACTION);
    let still_read = |r: &Revision| {
        r.action == SWITCH_ACTION
            || r.action == ROTATION_ACTION
            || matches!(
                r.status.as_str(),
                super::recovery::PENDING | super::recovery::INTERRUPTED
            )
            || (rotated
                && (!r.secret_hashes.is_empty() || r.details.get("previousHashes").is_some()))
    };
    let excess = sorted.len() - keep;
    sorted
        .into_iter()
        .take(excess)
        .filter(|r| !still_read(r))
        .map(|r| r.revision)
        .collect()
}

/// Delete the revisions [`to_prune`] names; returns them.
pub async fn prune(
    cluster: &Cluster,
    namespace: &str,
    app: &str,
    env: &str,
    revs: &[Revision],
    keep: usize,
) -> Result<Vec<u32>> {
    let api: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), namespace);
    let doomed = to_prune(revs, keep);
    for n in &doomed {
        let name = cm_name(app, env, *n);
        match api.delete(&name, &Default::default()).await {
            Ok(_) => {}
            Err(::kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(Error::from_kube(
                    format!("prune revision {n}: DELETE ConfigMap {namespace}/{name}"),
                    e,
                ));
            }
        }
    }
    Ok(doomed)
}

/// Store (or update) a revision.
pub async fn record(
    cluster: &Cluster,
    namespace: &str,
    app: &str,
    env: &str,
    rev: &Revision,
) -> Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), namespace);
    let name = cm_name(app, env, rev.revision);
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                LABEL_HISTORY: "true",
                LABEL_APP: app,
                LABEL_ENV: env,
                LABEL_REVISION: rev.revision.to_string(),
                "app.kubernetes.io/managed-by": "pake",
            },
        },
        "data": {
            "release.json": serde_json::to_string(rev).expect("revision serializes"),
        },
    });
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|e| {
        Error::from_kube(
            format!(
                "record revision {} in ConfigMap {namespace}/{name}",
                rev.revision
            ),
            e,
        )
    })?;
    Ok(())
}

/// Mark the newest `deployed` revision before `rev` as superseded.
pub async fn supersede(
    cluster: &Cluster,
    namespace: &str,
    app: &str,
    env: &str,
    current: u32,
    known: &[Revision],
) -> Result<()> {
    // `known` is the history as read at the start of the run (under the lock).
    for mut r in known.iter().cloned() {
        if r.revision < current && r.status == "deployed" {
            r.status = "superseded".into();
            record(cluster, namespace, app, env, &r).await?;
        }
    }
    Ok(())
}

/// Canonical SHA-256 of an object (keys sorted by serde_json's map).
pub fn object_hash(v: &Value) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(
        serde_json::to_vec(v).expect("value serializes"),
    ))
}

/// Who is running pake: the CI actor, else the login name ($USER, $LOGNAME,
/// else the passwd entry of the process's uid), plus the host. One place, used
/// by history records and the lock holder identity.
pub fn current_user() -> String {
    format!("{}@{}", user_name(), host_name())
}

pub fn user_name() -> String {
    ["GITHUB_ACTOR", "USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .or_else(passwd_name)
        .unwrap_or_else(|| "unknown".into())
}

pub fn host_name() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The name of the process's uid in /etc/passwd (CI jobs often have no $USER).
fn passwd_name() -> Option<String> {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() }.to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2] == uid).then(|| f[0].to_string())
    })
}

pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string()
}

/// Name of the Secret holding the namespace's fingerprint key.
pub const FINGERPRINT_KEY_SECRET: &str = "pake-fingerprint-key";

/// The key for [`SecretValue::fingerprint`] in `namespace`: 32 random bytes
/// kept in a Secret that only pake's identity reads (the app's Role has no
/// access to Secrets). Created on first use; with `dry_run` a missing key is
/// replaced by a throw-away one and nothing is created.
pub async fn fingerprint_key(
    cluster: &Cluster,
    namespace: &str,
    dry_run: bool,
) -> Result<crate::secret::SecretValue> {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    let api: Api<Secret> = Api::namespaced(cluster.client.clone(), namespace);
    let read = |s: Secret| {
        s.data
            .and_then(|mut d| d.remove("key"))
            .map(|b| crate::secret::SecretValue::from_bytes(b.0))
    };
    let object = format!("Secret {namespace}/{FINGERPRINT_KEY_SECRET}");
    for _ in 0..3 {
        match api.get_opt(FINGERPRINT_KEY_SECRET).await {
            Ok(Some(s)) => {
                return read(s).ok_or_else(|| {
                    Error::failed("fingerprint key Secret has no `key`").on(object.clone()).fix(format!(
                        "delete it (`kubectl delete secret -n {namespace} {FINGERPRINT_KEY_SECRET}`); pake creates a new one, and older history fingerprints stop matching"
                    ))
                });
            }
            Ok(None) if dry_run => return crate::secret::SecretValue::random_base64(32),
            Ok(None) => {
                let key = crate::secret::SecretValue::random_base64(32)?;
                let mut body: Secret = serde_json::from_value(serde_json::json!({
                    "metadata": {
                        "name": FINGERPRINT_KEY_SECRET,
                        "labels": {"app.kubernetes.io/managed-by": "pake"},
                        "annotations": {"pake.dev/purpose": "HMAC key for secret fingerprints in pake history; never used by apps"},
                    },
                    "type": "Opaque",
                }))
                .expect("static secret");
                body.data = Some(
                    std::iter::once(("key".to_string(), ByteString(key.expose().to_vec())))
                        .collect(),
                );
                match api.create(&Default::default(), &body).await {
                    Ok(_) => return Ok(key),
                    // Created concurrently by another run: read theirs.
                    Err(::kube::Error::Api(s)) if s.code == 409 => continue,
                    Err(e) => return Err(Error::from_kube(format!("create {object}"), e)),
                }
            }
            Err(e) => return Err(Error::from_kube(format!("GET {object}"), e)),
        }
    }
    Err(Error::failed(format!("could not read or create {object}")))
}

#[cfg(test)]
mod prune_tests {
    use super::*;

    #[test]
    fn typed_statuses_align_in_tables_like_the_strings_did() {
        // `pake history` pads these with `{:<10}`; Display must honour the width.
        assert_eq!(
            format!("[{:<12}]", RevisionStatus::Deployed),
            "[deployed    ]"
        );
        assert_eq!(format!("[{:<8}]", ReleaseAction::Deploy), "[deploy  ]");
    }

    #[test]
    fn an_old_history_record_still_loads_and_round_trips() {
        // A record as pake wrote it before statuses and actions were typed.
        let old = r#"{"revision": 7, "status": "rolled-back", "action": "bluegreen-deploy",
            "time": "2026-01-02T03:04:05Z", "user": "ci", "image": "r/a:1", "message": "m",
            "manifests": [], "hashes": {"Deployment ns/a": "h"},
            "secretHashes": {"db/password": "f"}, "details": {"version": "v2"}}"#;
        let r: Revision = serde_json::from_str(old).unwrap();
        assert_eq!(r.status, RevisionStatus::RolledBack);
        assert_eq!(r.action, ReleaseAction::BluegreenDeploy);
        assert!(r.status == "rolled-back" && r.action == "bluegreen-deploy");
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(back["status"], "rolled-back");
        assert_eq!(back["action"], "bluegreen-deploy");
        // A value this pake does not know is kept as written.
        let newer: Revision = serde_json::from_str(&old.replace("rolled-back", "paused")).unwrap();
        assert_eq!(newer.status, RevisionStatus::Other("paused".into()));
        assert_eq!(serde_json::to_value(&newer).unwrap()["status"], "paused");
        for s in [
            "pending",
            "deployed",
            "superseded",
            "failed",
            "interrupted",
            "switch",
            "rotation",
            "cleanup",
        ] {
            assert_eq!(RevisionStatus::from(s).as_str(), s);
            assert!(
                !matches!(RevisionStatus::from(s), RevisionStatus::Other(_)),
                "{s}"
            );
        }
    }

    fn rev(n: u32, action: &str, status: &str) -> Revision {
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
            secret_hashes: BTreeMap::new(),
            details: Value::Null,
        }
    }

    fn deploys(n: u32) -> Vec<Revision> {
        (1..=n)
            .map(|i| rev(i, "deploy", if i == n { "deployed" } else { "superseded" }))
            .collect()
    }

    #[test]
    fn keeps_the_newest_and_zero_keeps_all() {
        assert_eq!(to_prune(&deploys(12), 10), vec![1, 2]);
        assert!(to_prune(&deploys(10), 10).is_empty());
        assert!(to_prune(&deploys(30), 0).is_empty());
        assert_eq!(to_prune(&deploys(4), 1), vec![1, 2, 3]);
    }
}
