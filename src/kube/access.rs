//! SelfSubjectAccessReview: "may the current identity do X?"

use ::kube::Api;
use ::kube::api::PostParams;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};

use super::Cluster;
use crate::error::{Error, Result};

/// One permission pake needs: verb on group/resource, in a namespace or cluster-wide.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
    /// `None` for cluster-scoped resources.
    pub namespaced: bool,
}

impl Permission {
    pub fn describe(&self, namespace: &str) -> String {
        let gr = if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        };
        if self.namespaced {
            format!("{} {} in namespace {}", self.verb, gr, namespace)
        } else {
            format!("{} {} (cluster-wide)", self.verb, gr)
        }
    }
}

/// Ask the API server whether the current identity may do `p` (in `namespace` if namespaced).
/// Returns (allowed, reason).
pub async fn can_i(cluster: &Cluster, p: &Permission, namespace: &str) -> Result<(bool, String)> {
    let (resource, subresource) = match p.resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_string())),
        None => (p.resource, None),
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(p.verb.into()),
                group: Some(p.group.into()),
                resource: Some(resource.into()),
                subresource,
                namespace: p.namespaced.then(|| namespace.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(cluster.client.clone());
    let r = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| Error::from_kube("SelfSubjectAccessReview", e))?;
    let status = r.status.unwrap_or_default();
    Ok((status.allowed, status.reason.unwrap_or_default()))
}
