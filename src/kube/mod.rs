//! Thin adapter over kube-rs: building a client from the user's kubeconfig,
//! server-side apply, dry runs and access reviews. No policy lives here.

pub mod access;
pub mod apply;
pub mod debug;
pub mod list;

use std::path::PathBuf;

use ::kube::config::{KubeConfigOptions, Kubeconfig};
use ::kube::{Client, Config};

use crate::error::{Error, Result};

/// API requests sent by this process (all clients).
pub static API_REQUESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Where to find the cluster: the kubectl-style global flags.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

/// A connected client plus what we learned while connecting.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    /// The context name in use ("in-cluster" when running in a pod).
    pub context: String,
    /// The kubeconfig file the context came from, if any.
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of the context (used when neither -n nor pake.yaml sets one).
    pub default_namespace: String,
}

impl Target {
    /// The kubeconfig path in effect: the flag, else $KUBECONFIG (first entry), else ~/.kube/config.
    pub fn kubeconfig_path(&self) -> Option<PathBuf> {
        if let Some(p) = &self.kubeconfig {
            return Some(p.clone());
        }
        if let Some(v) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
            return std::env::split_paths(&v).next();
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube").join("config"))
    }

    /// Load the kubeconfig and pick the context, without contacting the server.
    pub async fn config(&self) -> Result<(Config, String, Option<PathBuf>)> {
        let path = self.kubeconfig_path();
        let opts = KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        match &path {
            Some(p) if p.exists() => {
                let kc = Kubeconfig::read_from(p).map_err(|e| {
                    Error::cluster(format!("cannot read kubeconfig {}: {e}", p.display()))
                        .fix("pass --kubeconfig PATH or set KUBECONFIG to a valid file")
                })?;
                let context = self
                    .context
                    .clone()
                    .or_else(|| kc.current_context.clone())
                    .ok_or_else(|| {
                        Error::cluster(format!("kubeconfig {} has no current context", p.display()))
                            .fix("pass --context NAME or run `kubectl config use-context NAME`")
                    })?;
                if !kc.contexts.iter().any(|c| c.name == context) {
                    let known: Vec<_> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
                    return Err(Error::cluster(format!(
                        "context {context:?} not found in kubeconfig {}",
                        p.display()
                    ))
                    .fix(format!("use one of: {}", known.join(", "))));
                }
                let cfg = Config::from_custom_kubeconfig(kc, &opts)
                    .await
                    .map_err(|e| {
                        Error::cluster(format!("kubeconfig {} context {context}: {e}", p.display()))
                            .fix("check the cluster, user and certificate entries of that context")
                    })?;
                Ok((cfg, context, Some(p.clone())))
            }
            _ => {
                if let Ok(cfg) = Config::incluster() {
                    return Ok((cfg, "in-cluster".into(), None));
                }
                let shown = path
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "~/.kube/config".into());
                Err(Error::cluster(format!("no kubeconfig found at {shown}"))
                    .fix("pass --kubeconfig PATH, set KUBECONFIG, or for the local cluster: export KUBECONFIG=$(scripts/cluster env kubeconfig)"))
            }
        }
    }

    /// Connect (lazily: the first request actually contacts the server).
    pub async fn connect(&self) -> Result<Cluster> {
        let (cfg, context, kubeconfig) = self.config().await?;
        let default_namespace = cfg.default_namespace.clone();
        let builder = ::kube::client::ClientBuilder::try_from(cfg).map_err(|e| {
            Error::cluster(format!("cannot build a client for context {context}: {e}"))
        })?;
        // Count API requests (reported with PAKE_API_STATS=1; used by scripts/bench).
        let client = builder
            .with_layer(&tower::util::MapRequestLayer::new(
                |req: http::Request<::kube::client::Body>| {
                    API_REQUESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    req
                },
            ))
            .build();
        Ok(Cluster {
            client,
            context,
            kubeconfig,
            default_namespace,
        })
    }
}

impl Cluster {
    /// The API server's version (`/version`).
    pub async fn version(&self) -> Result<k8s_openapi::apimachinery::pkg::version::Info> {
        self.client
            .apiserver_version()
            .await
            .map_err(|e| Error::from_kube(format!("GET /version on context {}", self.context), e))
    }
}
