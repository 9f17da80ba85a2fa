//! Images: inspect, tag, remove, import. No policy: the checks in
//! `checks::image` judge what [`Engine::image_facts`] returns.

use std::collections::BTreeMap;

use bollard::query_parameters::{CreateImageOptions, RemoveImageOptions, TagImageOptions};
use futures::StreamExt;

use super::{Engine, engine_error};
use crate::checks::image::ImageFacts;
use crate::error::Result;

impl Engine {
    /// The full id (`sha256:...`) of an image.
    pub async fn image_id(&self, reference: &str) -> Result<String> {
        let i = self
            .docker
            .inspect_image(reference)
            .await
            .map_err(|e| engine_error(&format!("inspect image {reference}"), e))?;
        Ok(i.id.unwrap_or_default())
    }

    /// What the image checks need from `docker inspect`.
    pub async fn image_facts(&self, reference: &str) -> Result<ImageFacts> {
        let i = self
            .docker
            .inspect_image(reference)
            .await
            .map_err(|e| engine_error(&format!("inspect image {reference}"), e))?;
        let c = i.config.unwrap_or_default();
        Ok(ImageFacts {
            reference: reference.to_string(),
            id: i.id.unwrap_or_default(),
            user: c.user.unwrap_or_default(),
            env: c.env.unwrap_or_default(),
            labels: c
                .labels
                .unwrap_or_default()
                .into_iter()
                .collect::<BTreeMap<_, _>>(),
            size_bytes: i.size.unwrap_or(0).max(0) as u64,
            healthcheck: c.healthcheck.and_then(|h| h.test),
        })
    }

    /// `repo@sha256:...` entries the engine knows for an image (set by push/pull).
    pub async fn repo_digests(&self, reference: &str) -> Result<Vec<String>> {
        let i = self
            .docker
            .inspect_image(reference)
            .await
            .map_err(|e| engine_error(&format!("inspect image {reference}"), e))?;
        Ok(i.repo_digests.unwrap_or_default())
    }

    /// Tag `source` (an id or reference) as `repo:tag`.
    pub async fn tag(&self, source: &str, repo: &str, tag: &str) -> Result<()> {
        self.docker
            .tag_image(
                source,
                Some(TagImageOptions {
                    repo: Some(repo.to_string()),
                    tag: Some(tag.to_string()),
                }),
            )
            .await
            .map_err(|e| engine_error(&format!("tag {source} as {repo}:{tag}"), e))
    }

    /// Remove an image (tag or id). Missing images are not an error.
    pub async fn remove_image(&self, reference: &str, force: bool) -> Result<()> {
        match self
            .docker
            .remove_image(
                reference,
                Some(RemoveImageOptions {
                    force,
                    noprune: false,
                    ..Default::default()
                }),
                None,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(engine_error(&format!("remove image {reference}"), e)),
        }
    }

    /// `docker import`: make an image from a root filesystem tar (used to make
    /// local base images where no registry is reachable). `changes` are
    /// Dockerfile instructions such as `ENV PATH=/bin`.
    pub async fn import_rootfs(
        &self,
        rootfs_tar: Vec<u8>,
        repo: &str,
        tag: &str,
        changes: &[&str],
    ) -> Result<String> {
        let opts = CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(repo.into()),
            tag: Some(tag.into()),
            changes: changes.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        };
        let mut s = self.docker.create_image(
            Some(opts),
            Some(bollard::body_full(rootfs_tar.into())),
            None,
        );
        while let Some(item) = s.next().await {
            item.map_err(|e| engine_error(&format!("import {repo}:{tag}"), e))?;
        }
        self.image_id(&format!("{repo}:{tag}")).await
    }
}
