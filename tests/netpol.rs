//! `pake netpol` end to end: the offline evaluation of files and of an
//! environment, and the live agreement test — on the local cluster, the graph
//! `--live` reads equals the offline graph of the same manifests.
//!
//! The cluster's nodes are simulated (kwok): policies are stored, not
//! enforced, so no traffic is tried here.

mod k8s;

use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

fn run(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pake"))
        .current_dir(dir)
        .args(args)
        .env_remove("PAKE_ENV")
        .output()
        .unwrap()
}

fn example() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/backend")
}

#[test]
fn example_dev_prints_the_declared_edges() {
    let out = run(&example(), &["netpol", "--env", "dev"]);
    let t = k8s::text(&out);
    assert!(out.status.success(), "{t}");
    let edges: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(
        edges,
        [
            "pake-dev/backend-v1[Deployment] => kube-system/kube-dns[Peer] : TCP 53,UDP 53",
            "pake-dev/frontend[Peer] => pake-dev/backend-v1[Deployment] : TCP 8000",
        ],
        "{t}"
    );
    let explain = |port: &str| {
        let out = run(
            &example(),
            &[
                "netpol", "explain", "frontend", "backend", "--port", port, "--env", "dev",
            ],
        );
        (out.status.code(), k8s::text(&out))
    };
    let (code, t) = explain("8000/TCP");
    assert_eq!(code, Some(0), "{t}");
    assert!(
        t.contains("allowed by NetworkPolicy pake-dev/backend-allow ingress[0] (TCP 8000)"),
        "{t}"
    );
    // Any other port is denied by backend's ingress, with the rule that would open it.
    let (code, t) = explain("9000");
    assert_eq!(code, Some(1), "{t}");
    assert!(
        t.contains("DENIED") && t.contains("policyTypes:\n  - Ingress") && t.contains("port: 9000"),
        "{t}"
    );
    // Every format of the same graph.
    for (fmt, start) in [
        ("json", "["),
        ("dot", "digraph"),
        ("md", "```mermaid"),
        ("csv", "src,dst,conn"),
    ] {
        let out = run(&example(), &["netpol", "--env", "dev", "-o", fmt]);
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with(start),
            "{fmt}: {}",
            k8s::text(&out)
        );
    }
}

#[test]
fn example_audit_carries_the_zero_trust_check() {
    // prod has an Ingress: the ingress controller is declared and allowed.
    for env in ["dev", "prod"] {
        let out = run(&example(), &["audit", "--env", env, "-o", "json"]);
        let r: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", k8s::text(&out)));
        let ids: Vec<&str> = r["results"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|o| o["findings"].as_array().unwrap())
            .filter_map(|f| f["id"].as_str())
            .filter(|id| id.starts_with("NETPOL-"))
            .collect();
        assert!(ids.is_empty(), "{env}: {ids:?}");
    }
}

#[test]
fn bad_files_are_usage_errors() {
    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("bad.yaml");
    std::fs::write(&bad, "kind: NetworkPolicy\nmetadata: {name: x, namespace: a}\nspec:\n  podSelector:\n    matchExpressions: [{key: k, operator: Like}]\n").unwrap();
    let out = run(d.path(), &["netpol", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", k8s::text(&out));
    assert!(
        k8s::text(&out).contains("NetworkPolicy a/x"),
        "{}",
        k8s::text(&out)
    );
    let out = run(d.path(), &["netpol", "/dev/null/nope"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(d.path(), &["netpol"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(k8s::text(&out).contains("nothing to evaluate"));
}

/// Objects beyond the example: every workload kind and every kind of peer.
fn extras(ns: &str) -> Vec<Value> {
    // The namespace enforces the restricted Pod Security Standard.
    let container = |ports: Value| {
        json!({"name": "c", "image": "pake-test/none:1", "ports": ports,
        "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true, "runAsUser": 1000,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}})
    };
    let tmpl = |app: &str, ports: Value| {
        json!({"metadata": {"labels": {"app": app, "tier": "batch"}},
        "spec": {"restartPolicy": "Never", "containers": [container(ports)]}})
    };
    let mut sts_tmpl = tmpl("db", json!([{"name": "pg", "containerPort": 5432}]));
    sts_tmpl["spec"]["restartPolicy"] = json!("Always");
    let mut ds_tmpl = tmpl("agent", json!([{"name": "metrics", "containerPort": 9100}]));
    ds_tmpl["spec"]["restartPolicy"] = json!("Always");
    vec![
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": ns},
            "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": {"app": "db"}}, "template": sts_tmpl}}),
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": ns},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": ds_tmpl}}),
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": ns},
            "spec": {"template": tmpl("migrate", json!([]))}}),
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "report", "namespace": ns},
            "spec": {"schedule": "* * * * *", "suspend": true, "jobTemplate": {"spec": {"template": tmpl("report", json!([]))}}}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "debug", "namespace": ns, "labels": {"app": "debug"}},
            "spec": {"containers": [container(json!([]))]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "db", "namespace": ns},
            "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                "ingress": [{"from": [{"podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["batch"]}]}},
                                      {"namespaceSelector": {"matchLabels": {"team": "data"}}}],
                             "ports": [{"port": "pg"}]}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "batch-egress", "namespace": ns},
            "spec": {"podSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, "policyTypes": ["Egress"],
                "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}], "ports": [{"port": 5432}]},
                           {"to": [{"ipBlock": {"cidr": "198.18.0.0/15", "except": ["198.18.1.0/24"]}}], "ports": [{"port": 443}, {"protocol": "UDP", "port": 30000, "endPort": 30100}]},
                           {"to": [{"ipBlock": {"cidr": "fd00::/8"}}], "ports": [{"protocol": "SCTP"}]}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "agent", "namespace": ns},
            "spec": {"podSelector": {"matchLabels": {"app": "agent"}}, "policyTypes": ["Ingress"],
                "ingress": [{"ports": [{"port": "metrics"}]}]}}),
    ]
}

async fn apply_all(client: &kube::Client, objects: &[Value]) {
    for o in objects {
        let (group, version) = o["apiVersion"]
            .as_str()
            .unwrap()
            .split_once('/')
            .unwrap_or(("", o["apiVersion"].as_str().unwrap()));
        let gvk = GroupVersionKind::gvk(group, version, o["kind"].as_str().unwrap());
        let (ar, _) = kube::discovery::pinned_kind(client, &gvk).await.unwrap();
        let name = o["metadata"]["name"].as_str().unwrap();
        let api: Api<DynamicObject> = match o["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        api.patch(
            name,
            &PatchParams::apply("pake-netpol-test").force(),
            &Patch::Apply(o),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {} {name}: {e}", o["kind"]));
    }
}

#[tokio::test]
async fn live_graph_equals_the_offline_graph_of_the_same_manifests() {
    let Some(kc) = k8s::kubeconfig("live_netpol_agreement") else {
        return;
    };
    let sfx = k8s::suffix();
    let ns = format!("pake-netpol-{sfx}");
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(
        &k8s::pake_yaml(
            "backend",
            &ns,
            "  allowDns: true\n  egress:\n    - cidr: 198.18.0.0/16\n      port: 5432\n",
        ),
        &[],
    );
    let rendered = run(p.path(), &["render", "--env", "test", "-o", "json"]);
    assert!(rendered.status.success(), "{}", k8s::text(&rendered));
    let list: Value = serde_json::from_slice(&rendered.stdout).unwrap();
    let mut objects: Vec<Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["kind"] != "Secret")
        .cloned()
        .collect();
    objects.extend(extras(&ns));
    let manifests = p.path().join("manifests.json");
    std::fs::write(
        &manifests,
        serde_json::to_string(&json!({"apiVersion": "v1", "kind": "List", "items": objects}))
            .unwrap(),
    )
    .unwrap();

    // Namespace first, then the rest, as the admin (the deployer is bound to fixed namespaces).
    let guard = NamespaceGuard {
        kubeconfig: kc.clone(),
        name: ns.clone(),
    };
    apply_all(&admin, &objects).await;
    // Wait until the controllers made the ReplicaSet and pods: live owned objects must fold into their owners.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(admin.clone(), &ns);
    let start = Instant::now();
    while pods.list(&Default::default()).await.unwrap().items.len() < 4
        && start.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let kcs = kc.to_str().unwrap();
    let offline = run(
        p.path(),
        &["netpol", manifests.to_str().unwrap(), "-o", "json"],
    );
    let live = run(
        p.path(),
        &[
            "--kubeconfig",
            kcs,
            "--context",
            k8s::ADMIN,
            "netpol",
            "--live",
            "-n",
            &ns,
            "-o",
            "json",
        ],
    );
    assert!(offline.status.success(), "{}", k8s::text(&offline));
    assert!(live.status.success(), "{}", k8s::text(&live));
    let (o, l): (Value, Value) = (
        serde_json::from_slice(&offline.stdout).unwrap(),
        serde_json::from_slice(&live.stdout).unwrap(),
    );
    assert!(o.as_array().unwrap().len() > 10, "{o:#}");
    assert_eq!(
        o,
        l,
        "offline:\n{}\nlive:\n{}",
        String::from_utf8_lossy(&offline.stdout),
        String::from_utf8_lossy(&live.stdout)
    );

    // With the environment: stand-ins for the declared peers, on both sides.
    let offline = run(p.path(), &["netpol", "--env", "test", "-o", "json"]);
    let live = run(
        p.path(),
        &[
            "--kubeconfig",
            kcs,
            "--context",
            k8s::ADMIN,
            "netpol",
            "--env",
            "test",
            "--live",
            "-o",
            "json",
        ],
    );
    let (o, l): (Value, Value) = (
        serde_json::from_slice(&offline.stdout).unwrap(),
        serde_json::from_slice(&live.stdout).unwrap(),
    );
    // The extras' ipBlocks split the external ranges differently: compare the app's in-cluster edges.
    let mine = |v: &Value| -> Vec<Value> {
        v.as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                let (s, d) = (e["src"].as_str().unwrap(), e["dst"].as_str().unwrap());
                (s.contains("/backend") || d.contains("/backend"))
                    && !s.ends_with("[External]")
                    && !d.ends_with("[External]")
            })
            .cloned()
            .collect()
    };
    assert!(!mine(&o).is_empty(), "{o:#}");
    assert_eq!(mine(&o), mine(&l));
    drop(guard);
}

/// Deletes the test namespace even when an assertion fails (with its own
/// client: the test's runtime is blocked while this runs).
struct NamespaceGuard {
    kubeconfig: std::path::PathBuf,
    name: String,
}

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        let (kc, name) = (self.kubeconfig.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    let client = k8s::client(&kc, k8s::ADMIN).await;
                    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
                    let _ = api.delete(&name, &Default::default()).await;
                })
        })
        .join();
    }
}
