//! Ephemeral containers: run a short command next to a running container, in
//! its PID namespace (`kubectl debug --target`), and read what it printed.
//! The probe itself satisfies Pod Security "restricted". No policy lives here.

use std::time::Duration;

use ::kube::api::{Api, LogParams, Patch, PatchParams};
use ::kube::runtime::wait::await_condition;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::Cluster;
use crate::error::{Error, Result};

/// Why a probe produced no output.
#[derive(Debug)]
pub enum ProbeError {
    /// The probe image could not be pulled or the container not created
    /// (waiting reason and message): nothing was learned about the pod.
    Unavailable(String),
    /// Any other failure (API error, timeout).
    Failed(Error),
}

/// Add an ephemeral container running `command` (uid `uid`, no capabilities,
/// read-only root, RuntimeDefault seccomp) that targets `target`, wait until it
/// exits, and return its log. Ephemeral containers stay in the pod spec (as
/// with `kubectl debug`) until the pod is replaced.
#[allow(clippy::too_many_arguments)]
pub async fn run_in_pod(
    cluster: &Cluster,
    ns: &str,
    pod: &str,
    target: &str,
    image: &str,
    command: &[&str],
    env: &[serde_json::Value],
    uid: u32,
    timeout: Duration,
) -> std::result::Result<String, ProbeError> {
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
    let name = format!(
        "pake-probe-{}",
        random_suffix().map_err(ProbeError::Failed)?
    );
    let patch = serde_json::json!({"spec": {"ephemeralContainers": [{
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "env": env,
        "targetContainerName": target,
        "terminationMessagePolicy": "File",
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": uid,
            "runAsGroup": uid,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }]}});
    let what = format!("ephemeral container {name} in Pod {ns}/{pod}");
    api.patch_ephemeral_containers(pod, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .map_err(|e| ProbeError::Failed(Error::from_kube(format!("add {what}"), e)))?;

    let done = await_condition(api.clone(), pod, |p: Option<&Pod>| {
        status_of(p, &name).is_some_and(|s| finished(s).is_some())
    });
    let pod_now = match tokio::time::timeout(timeout, done).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            return Err(ProbeError::Failed(
                Error::cluster(format!("watch {what}: {e}")).on(format!("Pod {ns}/{pod}")),
            ));
        }
        Err(_) => {
            return Err(ProbeError::Failed(
                Error::failed(format!("{what} did not finish within {timeout:?}"))
                    .on(format!("Pod {ns}/{pod}")),
            ));
        }
    };
    if let Some(Finished::Unavailable(why)) = status_of(pod_now.as_ref(), &name).and_then(finished)
    {
        return Err(ProbeError::Unavailable(why));
    }
    api.logs(
        pod,
        &LogParams {
            container: Some(name.clone()),
            limit_bytes: Some(256 * 1024),
            ..LogParams::default()
        },
    )
    .await
    .map_err(|e| ProbeError::Failed(Error::from_kube(format!("read the log of {what}"), e)))
}

enum Finished {
    Exited,
    Unavailable(String),
}

fn status_of<'a>(p: Option<&'a Pod>, name: &str) -> Option<&'a ContainerStatus> {
    p?.status
        .as_ref()?
        .ephemeral_container_statuses
        .as_ref()?
        .iter()
        .find(|s| s.name == name)
}

fn finished(s: &ContainerStatus) -> Option<Finished> {
    let state = s.state.as_ref()?;
    if state.terminated.is_some() {
        return Some(Finished::Exited);
    }
    let w = state.waiting.as_ref()?;
    let reason = w.reason.as_deref().unwrap_or("");
    matches!(
        reason,
        "ErrImagePull"
            | "ImagePullBackOff"
            | "InvalidImageName"
            | "CreateContainerConfigError"
            | "CreateContainerError"
            | "RunContainerError"
    )
    .then(|| {
        Finished::Unavailable(format!(
            "{reason}: {}",
            w.message.as_deref().unwrap_or("").trim()
        ))
    })
}

fn random_suffix() -> Result<String> {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).map_err(|e| Error::failed(format!("random name: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}
