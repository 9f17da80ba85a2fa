//! Shared helpers for integration tests against the real local cluster.
//! `scripts/test` starts the cluster and sets PAKE_TEST_KUBECONFIG.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const DEPLOYER: &str = "pake-local-deployer";
pub const ADMIN: &str = "pake-local";

/// The kubeconfig of the local cluster, or None (the test prints why it skips).
pub fn kubeconfig(test: &str) -> Option<PathBuf> {
    match std::env::var_os("PAKE_TEST_KUBECONFIG") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            eprintln!(
                "SKIP {test}: PAKE_TEST_KUBECONFIG is not set (scripts/test sets it after `scripts/cluster up`)"
            );
            None
        }
    }
}

/// A kube client for a context of the test kubeconfig.
pub async fn client(kubeconfig: &Path, context: &str) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let opts = kube::config::KubeConfigOptions {
        context: Some(context.into()),
        ..Default::default()
    };
    let cfg = kube::Config::from_custom_kubeconfig(kc, &opts)
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

/// A short random suffix for names.
pub fn suffix() -> String {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).unwrap();
    hex::encode(b)
}

/// Run pake with the test kubeconfig, in `dir`, with extra env vars.
pub fn pake(kubeconfig: &Path, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pake"));
    c.current_dir(dir)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("PAKE_ENV")
        .env_remove("GITHUB_STEP_SUMMARY");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

pub fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A project directory with pake.yaml (and optional extra files).
pub fn project(pake_yaml: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("pake.yaml"), pake_yaml).unwrap();
    for (p, t) in files {
        let path = d.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, t).unwrap();
    }
    d
}

/// A minimal pake.yaml for `app` deploying to `namespace` (env `test`).
pub fn pake_yaml(app: &str, namespace: &str, extra: &str) -> String {
    format!(
        "app: {app}\nimage: pake-test/{app}\ntag: \"1\"\nport: 8000\nreplicas: 2\nnetwork:\n  allowFrom: [frontend]\n{extra}environments:\n  test:\n    namespace: {namespace}\n  prod:\n    namespace: {namespace}\n    protected: true\n"
    )
}

/// The built-in deployment template with `from` replaced by `to`.
pub fn deployment_template_with(from: &str, to: &str) -> String {
    let t = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates/k8s/deployment.yaml"),
    )
    .unwrap();
    assert!(t.contains(from), "template does not contain {from:?}");
    t.replace(from, to)
}

/// Delete every object of `app` that pake created in `ns` (tests share the deployer namespaces).
pub async fn cleanup_app(client: &kube::Client, ns: &str, app: &str) {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use kube::api::{Api, DeleteParams, ListParams};
    let lp = ListParams::default().labels(&format!("app={app}"));
    let dp = DeleteParams::default();
    let _ = Api::<Deployment>::namespaced(client.clone(), ns)
        .delete_collection(&dp, &lp)
        .await;
    let _ = Api::<Service>::namespaced(client.clone(), ns)
        .delete_collection(&dp, &lp)
        .await;
    let _ = Api::<Secret>::namespaced(client.clone(), ns)
        .delete_collection(&dp, &lp)
        .await;
    let _ = Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .delete_collection(&dp, &lp)
        .await;
    let _ = Api::<NetworkPolicy>::namespaced(client.clone(), ns)
        .delete_collection(&dp, &lp)
        .await;
    let _ = Api::<PodDisruptionBudget>::namespaced(client.clone(), ns)
        .delete_collection(&dp, &lp)
        .await;
    let _ = Api::<k8s_openapi::api::rbac::v1::Role>::namespaced(client.clone(), ns)
        .delete_collection(&dp, &lp)
        .await;
    let _ = Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(client.clone(), ns)
        .delete_collection(&dp, &lp)
        .await;
    let hl = ListParams::default().labels(&format!("pake.dev/app={app}"));
    let _ = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .delete_collection(&dp, &hl)
        .await;
}
