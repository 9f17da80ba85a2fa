//! Thin adapter over bollard: connecting to the Docker engine.
//! bollard negotiates the API version, so engines as old as API 1.41 work.

pub mod build;
pub mod container;
pub mod context;
pub mod dockerignore;
pub mod image;
pub mod registry;

use bollard::Docker;

use crate::error::{Error, Result};

/// A connected engine and the API version agreed with it.
#[derive(Clone)]
pub struct Engine {
    pub docker: Docker,
}

/// What the engine reports about itself.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineVersion {
    pub version: String,
    pub api_version: String,
    pub negotiated_api_version: String,
    pub os: String,
    pub arch: String,
}

impl Engine {
    /// Connect using DOCKER_HOST or the default socket, then negotiate the API version.
    pub async fn connect() -> Result<Self> {
        let docker = Docker::connect_with_defaults().map_err(|e| {
            Error::cluster(format!("cannot connect to the Docker engine: {e}"))
                .fix("start the Docker engine (e.g. `sudo systemctl start docker`) or set DOCKER_HOST; see `pake help build`")
        })?;
        let docker = docker.negotiate_version().await.map_err(|e| {
            Error::cluster(format!("the Docker engine does not answer: {e}"))
                .on(describe_host())
                .fix("start the Docker engine (e.g. `sudo systemctl start docker`) or set DOCKER_HOST to a running one; see `pake help build`")
        })?;
        Ok(Engine { docker })
    }

    pub async fn version(&self) -> Result<EngineVersion> {
        let v = self.docker.version().await.map_err(|e| {
            Error::cluster(format!("the Docker engine does not answer: {e}")).on(describe_host())
        })?;
        Ok(EngineVersion {
            version: v.version.unwrap_or_default(),
            api_version: v.api_version.unwrap_or_default(),
            negotiated_api_version: self.docker.client_version().to_string(),
            os: v.os.unwrap_or_default(),
            arch: v.arch.unwrap_or_default(),
        })
    }
}

/// The engine address in use, for messages.
pub fn describe_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// Classify a bollard error for `context` (what pake was doing): an engine
/// that cannot be reached is exit 3, anything the engine answered is exit 1.
pub fn engine_error(context: &str, e: bollard::errors::Error) -> Error {
    use bollard::errors::Error as B;
    match e {
        B::DockerResponseServerError {
            status_code,
            message,
        } => Error::failed(format!(
            "{context}: {} (HTTP {status_code})",
            message.trim()
        )),
        B::IOError { .. }
        | B::HyperLegacyError { .. }
        | B::HyperResponseError { .. }
        | B::RequestTimeoutError
        | B::SocketNotFoundError(_) => Error::cluster(format!(
            "{context}: the Docker engine does not answer: {e}"
        ))
        .on(describe_host())
        .fix("start the Docker engine (e.g. `sudo systemctl start docker`) or set DOCKER_HOST to a running one; see `pake help build`"),
        other => Error::failed(format!("{context}: {other}")),
    }
}
