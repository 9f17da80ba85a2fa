//! Thin adapter over kube-rs: building a client from the user's kubeconfig,
//! server-side apply, dry runs and access reviews. No policy lives here.

pub mod access;
pub mod apply;
pub mod connect;
pub mod debug;
pub mod external_secrets;
pub mod fields;
pub mod list;
pub mod retry;
pub mod stats;

use std::path::PathBuf;

use ::kube::config::{KubeConfigOptions, Kubeconfig};
use ::kube::{Client, Config};

use crate::error::{Error, Result};

/// API requests sent by this process (all clients); by verb and resource in [`stats`].
pub use stats::API_REQUESTS;

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
    /// The kubeconfig file the context came from, or the merged $KUBECONFIG
    /// list (joined like the variable), if any.
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of the context (used when neither -n nor pake.yaml sets one).
    pub default_namespace: String,
    /// Namespaces this run has seen exist (a GET answered, or pake created
    /// them): asking again within one run repeats what we know.
    pub known_namespaces: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
    /// Lists this run made and kept for one later reader (`list::list_json_kept`,
    /// `list::list_json_reused`), by (apiVersion, kind, namespace); any write of
    /// that kind through `apply` drops them.
    pub kept_lists: std::sync::Arc<std::sync::Mutex<KeptLists>>,
}

/// See `Cluster::kept_lists`.
pub type KeptLists = std::collections::BTreeMap<(String, String, String), Vec<serde_json::Value>>;

impl Cluster {
    /// Remember that `namespace` exists (for the rest of this run).
    pub fn namespace_seen(&self, namespace: &str) {
        if let Ok(mut k) = self.known_namespaces.lock() {
            k.insert(namespace.to_string());
        }
    }

    /// Drop the kept lists of `kind` (this run wrote an object of that kind).
    pub fn forget_lists(&self, kind: &str) {
        if let Ok(mut k) = self.kept_lists.lock() {
            k.retain(|(_, k, _), _| k != kind);
        }
    }

    /// Whether this run already saw `namespace` exist.
    pub fn namespace_known(&self, namespace: &str) -> bool {
        self.known_namespaces
            .lock()
            .is_ok_and(|k| k.contains(namespace))
    }
}

impl Target {
    /// The kubeconfig files in effect, like kubectl: the `--kubeconfig` file;
    /// else every entry of $KUBECONFIG (a `:`-separated list; missing files
    /// skipped, as kubectl does); else ~/.kube/config.
    pub fn kubeconfig_paths(&self) -> Vec<PathBuf> {
        if let Some(p) = &self.kubeconfig {
            return vec![p.clone()];
        }
        if let Some(v) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
            return std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect();
        }
        std::env::var_os("HOME")
            .map(|h| vec![PathBuf::from(h).join(".kube").join("config")])
            .unwrap_or_default()
    }

    /// The kubeconfig path in effect (the first one of a $KUBECONFIG list).
    pub fn kubeconfig_path(&self) -> Option<PathBuf> {
        self.kubeconfig_paths().into_iter().next()
    }

    /// Read and merge the kubeconfig files (first file wins per key, kube-rs's
    /// `Kubeconfig::merge`, which follows kubectl's rules). `None` when none exists.
    fn load_kubeconfig(&self) -> Result<Option<(Kubeconfig, PathBuf)>> {
        merge_files(&self.kubeconfig_paths())
    }

    /// Load the kubeconfig and pick the context, without contacting the server.
    pub async fn config(&self) -> Result<(Config, String, Option<PathBuf>)> {
        let opts = KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        match self.load_kubeconfig()? {
            Some((kc, p)) => {
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
                Ok((cfg, context, Some(p)))
            }
            None => {
                if let Ok(cfg) = Config::incluster() {
                    return Ok((cfg, "in-cluster".into(), None));
                }
                let all = self.kubeconfig_paths();
                let shown = if all.is_empty() {
                    "~/.kube/config".to_string()
                } else {
                    all.iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                Err(Error::cluster(format!("no kubeconfig found at {shown}"))
                    .fix("pass --kubeconfig PATH or set KUBECONFIG (a file, or a list like kubectl's); see `pake help cluster`"))
            }
        }
    }

    /// Connect (lazily: the first request actually contacts the server).
    pub async fn connect(&self) -> Result<Cluster> {
        let (mut cfg, context, kubeconfig) = self.config().await?;
        // Our retry layer (retry.rs) replaces kube's default one, which
        // covers only 429/503/504 and may back off for minutes.
        cfg.default_retry = false;
        let default_namespace = cfg.default_namespace.clone();
        crate::error::set_endpoint(&cfg.cluster_url.to_string(), &context);
        let builder = connect::builder(cfg).map_err(|e| {
            Error::cluster(format!("cannot build a client for context {context}: {e}"))
        })?;
        // Count API requests, every attempt (reported with PAKE_API_STATS=1;
        // used by scripts/bench); retry transient errors above that (retry.rs),
        // through a buffer because a retried service must be cloneable.
        let client = builder
            .with_layer(&tower::util::MapRequestLayer::new(
                |req: http::Request<::kube::client::Body>| {
                    stats::record(req.method(), req.uri());
                    req
                },
            ))
            .with_layer(&tower::buffer::BufferLayer::new(1024))
            .with_layer(&tower::retry::RetryLayer::new(retry::Policy::default()))
            .build();
        Ok(Cluster {
            client,
            context,
            kubeconfig,
            default_namespace,
            known_namespaces: Default::default(),
            kept_lists: Default::default(),
        })
    }
}

/// Read and merge kubeconfig files in order (first file wins per key);
/// missing files are skipped like kubectl does. Returns the merged config and
/// how to show its source (the file, or the list joined like $KUBECONFIG).
pub fn merge_files(all: &[PathBuf]) -> Result<Option<(Kubeconfig, PathBuf)>> {
    // --kubeconfig names one file that must exist; a $KUBECONFIG list may name missing files.
    let existing: Vec<&PathBuf> = all.iter().filter(|p| p.exists()).collect();
    if existing.is_empty() {
        return Ok(None);
    }
    let mut merged = Kubeconfig::default();
    for p in &existing {
        let kc = Kubeconfig::read_from(p).map_err(|e| {
            Error::cluster(format!("cannot read kubeconfig {}: {e}", p.display()))
                .fix("pass --kubeconfig PATH or set KUBECONFIG to valid files")
        })?;
        merged = merged
            .merge(kc)
            .map_err(|e| Error::cluster(format!("cannot merge kubeconfig {}: {e}", p.display())))?;
    }
    let shown = if existing.len() == 1 {
        existing[0].clone()
    } else {
        PathBuf::from(std::env::join_paths(existing).unwrap_or_default())
    };
    Ok(Some((merged, shown)))
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

/// Whether the namespace exists: asked once per run (a namespace seen to
/// exist is remembered, see `Cluster::namespace_seen`).
pub async fn namespace_exists(cluster: &Cluster, name: &str) -> Result<bool> {
    if cluster.namespace_known(name) {
        return Ok(true);
    }
    let api: ::kube::Api<k8s_openapi::api::core::v1::Namespace> =
        ::kube::Api::all(cluster.client.clone());
    let found = api
        .get_opt(name)
        .await
        .map(|o| o.is_some())
        .map_err(|e| Error::from_kube(format!("GET Namespace {name}"), e))?;
    if found {
        cluster.namespace_seen(name);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kc(current: &str, ctx: &str, server: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\n{current}clusters:\n- name: {ctx}\n  cluster:\n    server: {server}\ncontexts:\n- name: {ctx}\n  context:\n    cluster: {ctx}\n    user: {ctx}\nusers:\n- name: {ctx}\n  user:\n    token: t\n"
        )
    }

    #[test]
    fn kubeconfig_lists_merge_like_kubectl() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        let b = d.path().join("b");
        std::fs::write(
            &a,
            kc("current-context: one\n", "one", "https://127.0.0.1:1"),
        )
        .unwrap();
        // b redefines `one` (ignored: first file wins) and adds `two`.
        let mut text = kc("current-context: two\n", "two", "https://127.0.0.1:2");
        text = text.replace(
            "contexts:\n",
            "contexts:\n- name: one\n  context:\n    cluster: two\n    user: two\n",
        );
        std::fs::write(&b, text).unwrap();
        let missing = d.path().join("missing");
        let (m, shown) = merge_files(&[a.clone(), missing, b.clone()])
            .unwrap()
            .unwrap();
        assert_eq!(m.current_context.as_deref(), Some("one"));
        let names: Vec<&str> = m.contexts.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["one", "two"]);
        let one = m.contexts.iter().find(|c| c.name == "one").unwrap();
        assert_eq!(one.context.as_ref().unwrap().cluster, "one");
        assert_eq!(
            shown,
            PathBuf::from(std::env::join_paths([&a, &b]).unwrap())
        );
        assert!(merge_files(&[d.path().join("nope")]).unwrap().is_none());
    }
}
