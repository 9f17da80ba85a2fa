//! Containers: create/start with explicit hardening fields, watch, remove.
//!
//! The caller decides the hardening (see `steps::build`'s smoke run); this
//! module maps it onto the API. [`ContainerGuard`] removes a container when it
//! goes out of scope, so an error, a panic or a cancelled future (Ctrl-C)
//! cannot leave one behind.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions,
};
use futures::StreamExt;

use super::{Engine, engine_error};
use crate::error::Result;

/// How to run a container. Every field is explicit: nothing is left to the
/// engine's defaults that matters for security.
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    pub name: String,
    pub image: String,
    pub labels: HashMap<String, String>,
    /// `uid:gid`; empty keeps the image's USER.
    pub user: String,
    pub read_only_rootfs: bool,
    /// Mount point -> tmpfs options (`rw,noexec,nosuid,size=64m`).
    pub tmpfs: HashMap<String, String>,
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
    /// `none`, or a network name. Never `host`.
    pub network_mode: String,
    pub memory_bytes: Option<i64>,
    pub pids_limit: Option<i64>,
    pub env: Vec<String>,
    /// Run the image's own health check at this interval instead of its own
    /// (the other health settings come from the image).
    pub health_interval: Option<Duration>,
}

/// A container's state, as far as a smoke run cares.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub running: bool,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub error: Option<String>,
    /// `starting`, `healthy`, `unhealthy`, or `None` without a health check.
    pub health: Option<String>,
    /// Output of the last health check, when there is one.
    pub last_health_output: Option<String>,
}

impl Engine {
    /// Create and start a container; returns its id.
    pub async fn run(&self, spec: &RunSpec) -> Result<String> {
        let host = HostConfig {
            readonly_rootfs: Some(spec.read_only_rootfs),
            tmpfs: Some(spec.tmpfs.clone()),
            cap_drop: Some(spec.cap_drop.clone()),
            security_opt: Some(spec.security_opt.clone()),
            network_mode: Some(spec.network_mode.clone()),
            memory: spec.memory_bytes,
            pids_limit: spec.pids_limit,
            privileged: Some(false),
            auto_remove: Some(false),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            user: (!spec.user.is_empty()).then(|| spec.user.clone()),
            labels: Some(spec.labels.clone()),
            env: Some(spec.env.clone()),
            healthcheck: spec.health_interval.map(|i| HealthConfig {
                interval: Some(i.as_nanos() as i64),
                ..Default::default()
            }),
            network_disabled: Some(spec.network_mode == "none"),
            host_config: Some(host),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(spec.name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(|e| engine_error(&format!("create container {}", spec.name), e))?;
        self.docker
            .start_container(
                &spec.name,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .map_err(|e| engine_error(&format!("start container {}", spec.name), e))?;
        Ok(created.id)
    }

    pub async fn state(&self, name: &str) -> Result<State> {
        let c = self
            .docker
            .inspect_container(name, None)
            .await
            .map_err(|e| engine_error(&format!("inspect container {name}"), e))?;
        let s = c.state.unwrap_or_default();
        let health = s.health.as_ref();
        Ok(State {
            running: s.running.unwrap_or(false),
            exit_code: s.exit_code,
            oom_killed: s.oom_killed.unwrap_or(false),
            error: s.error.filter(|e| !e.is_empty()),
            health: health
                .and_then(|h| h.status)
                .map(|st| st.to_string())
                .filter(|st| !st.is_empty() && st != "none"),
            last_health_output: health
                .and_then(|h| h.log.as_ref())
                .and_then(|l| l.last())
                .and_then(|r| r.output.clone())
                .map(|o| o.trim().to_string())
                .filter(|o| !o.is_empty()),
        })
    }

    /// The last `n` lines of a container's stdout and stderr.
    pub async fn logs_tail(&self, name: &str, n: usize) -> Result<Vec<String>> {
        let mut s = self.docker.logs(
            name,
            Some(LogsOptions {
                stdout: true,
                stderr: true,
                tail: n.to_string(),
                ..Default::default()
            }),
        );
        let mut out = String::new();
        while let Some(item) = s.next().await {
            let item = item.map_err(|e| engine_error(&format!("logs of {name}"), e))?;
            out.push_str(&item.to_string());
        }
        Ok(out.lines().map(str::to_string).collect())
    }

    /// Remove a container, stopping it first. A missing container is not an error.
    pub async fn remove_container(&self, name: &str) -> Result<()> {
        match self
            .docker
            .remove_container(
                name,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    link: false,
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            // Removal already in progress (e.g. a second Ctrl-C): fine.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(e) => Err(engine_error(&format!("remove container {name}"), e)),
        }
    }

    /// Names of containers (running or not) carrying `label` (`key` or `key=value`).
    pub async fn containers_with_label(&self, label: &str) -> Result<Vec<String>> {
        let list = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(HashMap::from([("label".into(), vec![label.to_string()])])),
                ..Default::default()
            }))
            .await
            .map_err(|e| engine_error("list containers", e))?;
        Ok(list
            .into_iter()
            .flat_map(|c| c.names.unwrap_or_default())
            .map(|n| n.trim_start_matches('/').to_string())
            .collect())
    }
}

/// Removes its container when dropped, unless [`ContainerGuard::remove`] ran.
///
/// Drop cannot await, and the runtime that created the engine connection may
/// be shutting down (Ctrl-C), so the fallback removal runs on its own thread
/// with a fresh connection and runtime, and Drop waits for it.
pub struct ContainerGuard {
    engine: Engine,
    name: String,
    armed: bool,
}

impl ContainerGuard {
    pub fn new(engine: Engine, name: impl Into<String>) -> Self {
        ContainerGuard {
            engine,
            name: name.into(),
            armed: true,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Remove the container now and report the outcome.
    pub async fn remove(mut self) -> Result<()> {
        self.armed = false;
        self.engine.remove_container(&self.name).await
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let name = self.name.clone();
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let engine = Engine::connect().await.ok()?;
                tokio::time::timeout(Duration::from_secs(30), engine.remove_container(&name))
                    .await
                    .ok()?
                    .ok()
            })
        });
        if handle.join().ok().flatten().is_none() {
            crate::output::err_line(format!(
                "warning: could not remove container {}; remove it with `docker rm -f {}`",
                self.name, self.name
            ));
        }
    }
}
