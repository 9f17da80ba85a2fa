//! The local cluster is real: pods become Ready on simulated nodes,
//! PodSecurity admission rejects, RBAC refuses, and `pake doctor` tells.

mod k8s;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

async fn namespace(client: &kube::Client, labels: serde_json::Value) -> String {
    let name = format!("pake-t-{}", k8s::suffix());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    // Pods are admitted only once the controller-manager made the default ServiceAccount.
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
    let made = kube::runtime::wait::await_condition(
        sas,
        "default",
        kube::runtime::wait::conditions::is_created(),
    );
    tokio::time::timeout(std::time::Duration::from_secs(30), made)
        .await
        .unwrap()
        .unwrap();
    name
}

async fn drop_namespace(client: &kube::Client, name: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
}

#[tokio::test]
async fn three_replica_deployment_becomes_available() {
    let Some(kc) = k8s::kubeconfig("three_replica_deployment_becomes_available") else {
        return;
    };
    let client = k8s::client(&kc, k8s::ADMIN).await;
    let ns = namespace(&client, json!({})).await;
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "example.invalid/web:1"}]}}
        }
    }))
    .unwrap();
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &d).await.unwrap();
    let cond =
        kube::runtime::wait::await_condition(api.clone(), "web", |d: Option<&Deployment>| {
            d.and_then(|d| d.status.as_ref())
                .and_then(|s| s.available_replicas)
                == Some(3)
        });
    let r = tokio::time::timeout(std::time::Duration::from_secs(90), cond).await;
    drop_namespace(&client, &ns).await;
    assert!(r.is_ok(), "availableReplicas did not reach 3 within 90s");
}

#[tokio::test]
async fn restricted_namespace_rejects_privileged_pod() {
    let Some(kc) = k8s::kubeconfig("restricted_namespace_rejects_privileged_pod") else {
        return;
    };
    let client = k8s::client(&kc, k8s::ADMIN).await;
    let ns = namespace(
        &client,
        json!({"pod-security.kubernetes.io/enforce": "restricted"}),
    )
    .await;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "evil"},
        "spec": {"containers": [{"name": "c", "image": "example.invalid/x:1", "securityContext": {"privileged": true}}]}
    }))
    .unwrap();
    let r = Api::<Pod>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &pod)
        .await;
    drop_namespace(&client, &ns).await;
    match r {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403);
            assert!(
                s.message.contains("violates PodSecurity \"restricted"),
                "{}",
                s.message
            );
            assert!(s.message.contains("privileged"), "{}", s.message);
        }
        other => panic!("expected a PodSecurity rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn deployer_is_refused_outside_its_role() {
    let Some(kc) = k8s::kubeconfig("deployer_is_refused_outside_its_role") else {
        return;
    };
    let client = k8s::client(&kc, k8s::DEPLOYER).await;
    let r = Api::<Secret>::namespaced(client.clone(), "kube-system")
        .list(&Default::default())
        .await;
    match r {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{}", s.message),
        other => panic!(
            "deployer could list secrets in kube-system: {:?}",
            other.map(|l| l.items.len())
        ),
    }
    // ... while it may work in a namespace bound to it.
    Api::<Secret>::namespaced(client, "pake-test")
        .list(&Default::default())
        .await
        .unwrap();
}

#[test]
fn doctor_passes_as_deployer() {
    let Some(kc) = k8s::kubeconfig("doctor_passes_as_deployer") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = k8s::pake(
        &kc,
        dir.path(),
        &["--context", k8s::DEPLOYER, "-n", "pake-test", "doctor"],
        &[],
    );
    let t = k8s::text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("✓ permissions"), "{t}");
    assert!(t.contains("✓ docker-engine"), "{t}");
}

#[test]
fn doctor_names_missing_permissions() {
    let Some(kc) = k8s::kubeconfig("doctor_names_missing_permissions") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // kube-system is not bound to the deployer.
    let out = k8s::pake(
        &kc,
        dir.path(),
        &[
            "--context",
            k8s::DEPLOYER,
            "-n",
            "kube-system",
            "doctor",
            "--no-docker",
            "-o",
            "json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(3), "{}", k8s::text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let perms = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "permissions")
        .unwrap();
    assert_eq!(perms["ok"], false);
    assert!(
        perms["detail"]
            .as_str()
            .unwrap()
            .contains("secrets in namespace kube-system"),
        "{perms}"
    );
}

#[test]
fn doctor_fails_clearly_when_api_server_is_down() {
    let Some(kc) = k8s::kubeconfig("doctor_fails_clearly_when_api_server_is_down") else {
        return;
    };
    // Same credentials, but a port where nothing listens.
    let text = std::fs::read_to_string(&kc).unwrap();
    let server = text
        .lines()
        .find(|l| l.trim_start().starts_with("server:"))
        .unwrap()
        .trim()
        .trim_start_matches("server:")
        .trim()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("kubeconfig");
    std::fs::write(&bad, text.replace(&server, "https://127.0.0.1:1")).unwrap();
    let out = k8s::pake(&bad, dir.path(), &["doctor", "--no-docker"], &[]);
    let t = k8s::text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert!(t.contains("✗ api-server"), "{t}");
    assert!(t.contains("cannot reach the API server"), "{t}");
    assert!(t.contains("fix:"), "{t}");
}

#[test]
fn doctor_fails_clearly_when_engine_is_unreachable() {
    let Some(kc) = k8s::kubeconfig("doctor_fails_clearly_when_engine_is_unreachable") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = k8s::pake(
        &kc,
        dir.path(),
        &["-n", "pake-test", "doctor"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    let t = k8s::text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert!(t.contains("✗ docker-engine"), "{t}");
    // The fix names what a user has, not a script of pake's repository.
    assert!(t.contains("DOCKER_HOST"), "{t}");
    assert!(!t.contains("scripts/"), "{t}");
}
