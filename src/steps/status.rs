//! `pake status`: the one-screen answer a Helm user gets from `helm status`.
//! Read-only: the release history, the live workloads (through the blue-green
//! status, which also covers a single version), the rotations recorded per
//! secret key, and the deploy lock's holder.

use std::collections::BTreeMap;

use ::kube::Api;
use k8s_openapi::api::coordination::v1::Lease;
use serde::Serialize;

use crate::config::Resolved;
use crate::error::{Error, Result};
use crate::kube::Cluster;
use crate::steps::bluegreen::{self, VersionStatus};
use crate::steps::rotate::ROTATION;
use crate::workflow::history::{self, Revision};

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseStatus {
    pub app: String,
    pub env: String,
    pub namespace: String,
    pub context: String,
    /// The revision the cluster runs (last `deployed`), if any.
    pub current: Option<RevisionSummary>,
    /// The newest revision of any kind (a failed deploy, a switch, a rotation).
    pub last: Option<RevisionSummary>,
    /// Image of the active version's Deployment (live), else of the current revision.
    pub image: Option<String>,
    /// `sha256:...` when the image is pinned by digest or a pod reports one.
    pub digest: Option<String>,
    /// The version the Service `<app>` selects (blue-green), if it exists.
    pub active_version: Option<String>,
    pub workloads: Vec<VersionStatus>,
    /// The last rotation per `secret/key`.
    pub rotations: Vec<Rotation>,
    /// Who holds the deploy lock now, if anyone.
    pub lock: Option<LockStatus>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionSummary {
    pub revision: u32,
    pub status: String,
    pub action: String,
    pub time: String,
    pub user: String,
    pub image: String,
    pub message: String,
}

impl From<&Revision> for RevisionSummary {
    fn from(r: &Revision) -> Self {
        RevisionSummary {
            revision: r.revision,
            status: r.status.to_string(),
            action: r.action.to_string(),
            time: r.time.clone(),
            user: r.user.clone(),
            image: r.image.clone(),
            message: r.message.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// `secret/key`.
    pub key: String,
    pub revision: u32,
    pub time: String,
    pub user: String,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LockStatus {
    pub holder: String,
    pub renewed: Option<String>,
    pub lease_seconds: Option<i32>,
}

/// The last rotation of every secret key, in key order (pure).
pub fn last_rotations(revs: &[Revision]) -> Vec<Rotation> {
    let mut by: BTreeMap<String, Rotation> = BTreeMap::new();
    for r in revs.iter().filter(|r| r.action == ROTATION) {
        for key in r.secret_hashes.keys() {
            by.insert(
                key.clone(),
                Rotation {
                    key: key.clone(),
                    revision: r.revision,
                    time: r.time.clone(),
                    user: r.user.clone(),
                },
            );
        }
    }
    by.into_values().collect()
}

/// The digest of an image reference pinned by digest.
pub fn digest_of(image: &str) -> Option<String> {
    image.split_once('@').map(|(_, d)| d.to_string())
}

pub async fn status(cluster: &Cluster, r: &Resolved) -> Result<ReleaseStatus> {
    let revs = history::list(cluster, &r.namespace, &r.app, &r.env).await?;
    let bg = bluegreen::status(cluster, r).await?;
    let current = revs.iter().rev().find(|v| v.status == "deployed");
    let active = bg
        .active
        .clone()
        .or_else(|| (bg.versions.len() == 1).then(|| bg.versions[0].version.clone()));
    let live_image = bg
        .versions
        .iter()
        .find(|v| Some(&v.version) == active.as_ref())
        .map(|v| v.image.clone());
    let image = live_image.or_else(|| current.map(|c| c.image.clone()));
    Ok(ReleaseStatus {
        app: r.app.clone(),
        env: r.env.clone(),
        namespace: r.namespace.clone(),
        context: cluster.context.clone(),
        current: current.map(Into::into),
        last: revs.last().map(Into::into),
        digest: image.as_deref().and_then(digest_of),
        image,
        active_version: bg.active.clone(),
        workloads: bg.versions,
        rotations: last_rotations(&revs),
        lock: lock_holder(cluster, r).await?,
    })
}

async fn lock_holder(cluster: &Cluster, r: &Resolved) -> Result<Option<LockStatus>> {
    let name = format!("pake-lock-{}-{}", r.app, r.env);
    let api: Api<Lease> = Api::namespaced(cluster.client.clone(), &r.namespace);
    let lease = match api.get_opt(&name).await {
        Ok(l) => l,
        Err(::kube::Error::Api(s)) if s.code == 404 => None,
        Err(e) => {
            return Err(Error::from_kube(
                format!("get Lease {}/{name}", r.namespace),
                e,
            ));
        }
    };
    Ok(lease.and_then(|l| l.spec).and_then(|s| {
        let holder = s.holder_identity.filter(|h| !h.is_empty())?;
        Some(LockStatus {
            holder,
            renewed: s.renew_time.map(|t| t.0.to_string()),
            lease_seconds: s.lease_duration_seconds,
        })
    }))
}

/// The human screen.
pub fn text(s: &ReleaseStatus) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<15}{v}\n"));
    line("NAME:", s.app.clone());
    line(
        "ENVIRONMENT:",
        format!(
            "{} (namespace {}, context {})",
            s.env, s.namespace, s.context
        ),
    );
    match &s.current {
        Some(c) => line(
            "REVISION:",
            format!(
                "{} {} {} by {} ({})",
                c.revision, c.status, c.time, c.user, c.action
            ),
        ),
        None => line("REVISION:", "none deployed".into()),
    }
    if let Some(l) = &s.last
        && s.current.as_ref().map(|c| c.revision) != Some(l.revision)
    {
        line(
            "LAST ACTION:",
            format!(
                "{} {} {} by {}: {}",
                l.revision, l.status, l.time, l.user, l.message
            ),
        );
    }
    line(
        "IMAGE:",
        match (&s.image, &s.digest) {
            (Some(i), Some(_)) => i.clone(),
            (Some(i), None) => format!("{i} (not pinned by digest)"),
            (None, _) => "none".into(),
        },
    );
    if let Some(v) = &s.active_version {
        line("ACTIVE:", format!("{v} (Service {} selects it)", s.app));
    }
    line(
        "LOCK:",
        match &s.lock {
            Some(l) => format!(
                "held by {}{}",
                l.holder,
                l.renewed
                    .as_ref()
                    .map(|t| format!(" (renewed {t})"))
                    .unwrap_or_default()
            ),
            None => "free".into(),
        },
    );
    if s.workloads.is_empty() {
        out.push_str("WORKLOADS:     none\n");
    } else {
        out.push_str("WORKLOADS:\n");
        out.push_str(&format!(
            "  {:<10} {:<30} {:<7} {:<9} ROLES\n",
            "VERSION", "DEPLOYMENT", "READY", "AVAILABLE"
        ));
        for w in &s.workloads {
            out.push_str(&format!(
                "  {:<10} {:<30} {:<7} {:<9} {}\n",
                w.version,
                w.deployment,
                format!("{}/{}", w.ready, w.replicas),
                w.available,
                w.roles.join(",")
            ));
        }
    }
    if !s.rotations.is_empty() {
        out.push_str("ROTATIONS:\n");
        for r in &s.rotations {
            out.push_str(&format!(
                "  {:<40} revision {} {} by {}\n",
                r.key, r.revision, r.time, r.user
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(n: u32, action: &str, keys: &[&str]) -> Revision {
        serde_json::from_value(serde_json::json!({
            "revision": n, "status": action, "action": action, "time": format!("t{n}"), "user": "u",
            "secretHashes": keys.iter().map(|k| (k.to_string(), "h")).collect::<BTreeMap<_, _>>(),
        }))
        .unwrap()
    }

    #[test]
    fn last_rotation_per_key() {
        let revs = vec![
            rev(1, "deployed", &["db/password"]),
            rev(2, ROTATION, &["db/password"]),
            rev(3, ROTATION, &["api/token"]),
            rev(4, ROTATION, &["db/password"]),
        ];
        let r = last_rotations(&revs);
        assert_eq!(
            r.iter()
                .map(|r| (r.key.as_str(), r.revision))
                .collect::<Vec<_>>(),
            [("api/token", 3), ("db/password", 4)]
        );
    }

    #[test]
    fn digest_only_when_pinned() {
        assert_eq!(digest_of("r/x@sha256:ab").as_deref(), Some("sha256:ab"));
        assert_eq!(digest_of("r/x:1"), None);
    }
}
