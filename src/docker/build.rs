//! Building an image through the engine's `/build` endpoint.
//!
//! Uses the classic builder (bollard's default, `BuilderV1`): it is what every
//! engine serves over the plain HTTP API down to API 1.41 (Debian's docker.io
//! 20.10 here). BuildKit over the API needs a gRPC session (bollard's
//! `buildkit` feature, tonic and more); the Dockerfiles pake writes and checks
//! need nothing BuildKit-only. Intermediate containers are always removed
//! (`forcerm`), also when the build fails or the stream is dropped.

use std::collections::HashMap;

use bollard::query_parameters::BuildImageOptions;
use futures::StreamExt;

use super::{Engine, engine_error};
use crate::error::{Error, Result};

/// The build context as the request body: a tar in memory, or streamed
/// (see [`super::context::Plan::into_stream`]) so memory stays bounded.
pub enum BuildContext {
    Tar(Vec<u8>),
    Stream(std::pin::Pin<Box<dyn futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send>>),
}

impl std::fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildContext::Tar(t) => write!(f, "Tar({} bytes)", t.len()),
            BuildContext::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// What to build.
#[derive(Debug)]
pub struct BuildRequest {
    pub context: BuildContext,
    /// Path of the Dockerfile inside the tar.
    pub dockerfile: String,
    /// The first tag (`repo:tag`); more are added with [`Engine::tag`].
    pub tag: String,
    pub build_args: HashMap<String, String>,
    pub labels: HashMap<String, String>,
    /// Build without the layer cache.
    pub no_cache: bool,
}

/// One event of the build output, for progress.
#[derive(Debug, Clone, PartialEq)]
pub enum BuildEvent {
    /// A line of builder output (`Step 3/12 : COPY ...`, RUN output).
    Line(String),
    /// A status update (pulling a base image).
    Status(String),
}

impl Engine {
    /// Build and return the image id. `on_event` sees the output as it streams.
    pub async fn build(
        &self,
        req: BuildRequest,
        mut on_event: impl FnMut(BuildEvent),
    ) -> Result<String> {
        let opts = BuildImageOptions {
            dockerfile: req.dockerfile.clone(),
            t: Some(req.tag.clone()),
            rm: true,
            forcerm: true,
            nocache: req.no_cache,
            buildargs: Some(req.build_args.clone()),
            labels: Some(req.labels.clone()),
            ..Default::default()
        };
        let body = match req.context {
            BuildContext::Tar(t) => bollard::body_full(t.into()),
            BuildContext::Stream(s) => bollard::body_try_stream(s),
        };
        let mut stream = self.docker.build_image(opts, None, Some(body));
        let mut image_id = None;
        let mut last_lines: Vec<String> = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(s) = info.stream {
                        for line in s.lines().filter(|l| !l.trim().is_empty()) {
                            if let Some(id) = line.strip_prefix("Successfully built ") {
                                image_id.get_or_insert_with(|| id.trim().to_string());
                            }
                            last_lines.push(line.to_string());
                            if last_lines.len() > 20 {
                                last_lines.remove(0);
                            }
                            on_event(BuildEvent::Line(line.to_string()));
                        }
                    }
                    if let Some(status) = info.status {
                        on_event(BuildEvent::Status(status));
                    }
                    if let Some(id) = info.aux.and_then(|a| a.id) {
                        image_id = Some(id);
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    let step = last_lines
                        .iter()
                        .rev()
                        .find(|l| l.starts_with("Step "))
                        .map(|l| format!(" at `{l}`"))
                        .unwrap_or_default();
                    let output: Vec<&String> = last_lines
                        .iter()
                        .rev()
                        .take(5)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    return Err(Error::failed(format!(
                        "the build failed{step}: {}\n  last output:\n    {}",
                        error.trim(),
                        output
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join("\n    ")
                    ))
                    .on(format!("image {}", req.tag))
                    .fix(
                        "fix the failing Dockerfile step (or the sources it uses) and build again",
                    ));
                }
                Err(e) => return Err(engine_error(&format!("build of {}", req.tag), e)),
            }
        }
        let id = image_id.ok_or_else(|| {
            Error::failed("the engine finished the build without reporting an image id")
                .on(format!("image {}", req.tag))
        })?;
        // The classic builder prints a short id; resolve it to the full one.
        let full = self.image_id(&id).await.unwrap_or(id);
        Ok(full)
    }
}
