//! `pake deploy` on the local cluster's real node (`pake-node-0`: a kubelet on containerd,
//! see docs/local-cluster.md): containers really start, images are really pulled from the
//! local registry, probes are real HTTP requests, and the kubelet's real failure modes must
//! end a deploy fast, with the guide's fix, and roll back.
//!
//! Needs the local cluster with its real node (`scripts/cluster up`, as root) and the Docker
//! engine with the local registry (`scripts/docker-engine`, `scripts/docker-engine registry`):
//! PAKE_TEST_KUBECONFIG and PAKE_TEST_DOCKER=1. Without either, or when the cluster has no
//! Ready node `pake-node-0` (e.g. `PAKE_CLUSTER_REAL_NODE=0`), every test prints SKIP and why.

mod k8s;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};

const NS: &str = "pake-test";
const NODE: &str = "pake-node-0";
const REPO: &str = "127.0.0.1:5000/pake-test/realnode";
/// A failure must end the deploy well before this (the wait's own deadline is longer).
const FAST: Duration = Duration::from_secs(90);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The kubeconfig, when the cluster has a Ready real node and Docker tests are on.
async fn real_cluster(test: &str) -> Option<PathBuf> {
    let kc = k8s::kubeconfig(test)?;
    if std::env::var("PAKE_TEST_DOCKER").ok().as_deref() != Some("1") {
        eprintln!(
            "SKIP {test}: PAKE_TEST_DOCKER is not 1 (the real-node tests build and push an image)"
        );
        return None;
    }
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let node = Api::<Node>::all(admin).get_opt(NODE).await.ok().flatten();
    let ready = node
        .and_then(|n| n.status)
        .and_then(|s| s.conditions)
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    if !ready {
        eprintln!(
            "SKIP {test}: no Ready real node {NODE} in this cluster (scripts/cluster up starts one as root; PAKE_CLUSTER_REAL_NODE=0 clusters have none)"
        );
        return None;
    }
    Some(kc)
}

/// The example backend built by `pake build --push` into the local registry, once per run:
/// its digest reference.
fn image() -> String {
    static IMAGE: Mutex<Option<String>> = Mutex::new(None);
    let mut guard = IMAGE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = guard.as_ref() {
        return i.clone();
    }
    let example = repo_root().join("examples/backend");
    let st = Command::new(example.join("prepare")).status().unwrap();
    assert!(st.success(), "examples/backend/prepare failed");
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "main.go",
        "go.mod",
        "Dockerfile.production",
        ".dockerignore",
    ] {
        std::fs::copy(example.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(
        dir.path().join("pake.yaml"),
        format!(
            "app: realnode\nimage: {REPO}\nport: 8000\nbuild:\n  dockerfile: Dockerfile.production\nenvironments:\n  test:\n    namespace: {NS}\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pake"))
        .current_dir(dir.path())
        .args(["--env", "test", "build", "--push", "-t", "realnode-test"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pake build --push: {}",
        k8s::text(&out)
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(".pake/build.json")).unwrap())
            .unwrap();
    let reference = record["reference"].as_str().unwrap().to_string();
    assert!(reference.contains("@sha256:"), "{record}");
    *guard = Some(reference.clone());
    reference
}

/// pake.yaml for `app` on the real node, small requests (several tests share the node).
fn pake_yaml(app: &str, extra: &str) -> String {
    format!(
        "app: {app}
image: {REPO}
tag: \"1\"
port: 8000
replicas: 1
network:
  allowFrom: [frontend]
nodeSelector:
  pake.dev/node: real
tolerations:
  - {{key: pake.dev/node, operator: Equal, value: real, effect: NoSchedule}}
resources:
  requests: {{cpu: 10m, memory: 32Mi, ephemeral-storage: 64Mi}}
  limits: {{cpu: 500m, memory: 64Mi, ephemeral-storage: 256Mi}}
{extra}environments:
  test:
    namespace: {NS}
"
    )
}

fn deploy(kc: &Path, dir: &Path, image: &str, timeout: &str) -> (std::process::Output, Duration) {
    let t0 = Instant::now();
    let out = k8s::pake(
        kc,
        dir,
        &[
            "--context",
            k8s::DEPLOYER,
            "--env",
            "test",
            "deploy",
            "--image",
            image,
            "--timeout",
            timeout,
        ],
        &[],
    );
    (out, t0.elapsed())
}

async fn image_of(client: &kube::Client, name: &str) -> Option<String> {
    let d = Api::<Deployment>::namespaced(client.clone(), NS)
        .get_opt(name)
        .await
        .unwrap()?;
    d.spec?.template.spec?.containers.first()?.image.clone()
}

/// A first, good revision of `app` on the real node; returns its image.
async fn good_revision(kc: &Path, dir: &Path) -> String {
    let img = image();
    let (out, _) = deploy(kc, dir, &img, "120s");
    assert!(out.status.success(), "{}", k8s::text(&out));
    img
}

/// After a failed deploy: exit 1, rolled back to `good`, fast, the expected words shown.
async fn assert_failed_and_rolled_back(
    admin: &kube::Client,
    app: &str,
    out: &std::process::Output,
    took: Duration,
    good: &str,
    expect: &[&str],
) {
    let t = k8s::text(out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("rolled back"), "{t}");
    for e in expect {
        assert!(
            t.to_ascii_lowercase().contains(&e.to_ascii_lowercase()),
            "expected {e:?} in:\n{t}"
        );
    }
    assert!(took < FAST, "took {took:?}:\n{t}");
    assert_eq!(
        image_of(admin, &format!("{app}-v1")).await.as_deref(),
        Some(good)
    );
}

#[tokio::test]
async fn app_runs_on_the_real_node_and_answers_its_probes() {
    let Some(kc) = real_cluster("app_runs_on_the_real_node").await else {
        return;
    };
    let app = format!("rn-ok-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(&pake_yaml(&app, ""), &[]);
    good_revision(&kc, p.path()).await;
    let pods = Api::<Pod>::namespaced(admin.clone(), NS)
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap();
    assert_eq!(pods.items.len(), 1);
    let pod = &pods.items[0];
    assert_eq!(pod.spec.as_ref().unwrap().node_name.as_deref(), Some(NODE));
    let status = pod.status.as_ref().unwrap();
    let cs = &status.container_statuses.as_ref().unwrap()[0];
    assert!(
        cs.ready
            && cs
                .container_id
                .as_deref()
                .unwrap_or("")
                .starts_with("containerd://")
    );
    // The pod's own address answers from this machine (the node's network namespace routes it).
    let ip = status.pod_ip.clone().unwrap();
    let body = http_get(&ip, 8000, "/health");
    assert!(
        body.starts_with("HTTP/1.1 200") && body.contains("\"ok\""),
        "{body}"
    );
    k8s::cleanup_app(&admin, NS, &app).await;
}

/// A minimal HTTP/1.1 GET (no client library in the test dependencies).
fn http_get(ip: &str, port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let addr = format!("{ip}:{port}").parse().unwrap();
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test]
async fn missing_image_fails_fast_and_rolls_back() {
    let Some(kc) = real_cluster("missing_image").await else {
        return;
    };
    let app = format!("rn-pull-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(&pake_yaml(&app, ""), &[]);
    let good = good_revision(&kc, p.path()).await;
    let (out, took) = deploy(&kc, p.path(), &format!("{REPO}:no-such-tag"), "120s");
    assert_failed_and_rolled_back(&admin, &app, &out, took, &good, &["ImagePull"]).await;
    k8s::cleanup_app(&admin, NS, &app).await;
}

#[tokio::test]
async fn write_to_read_only_root_fails_fast_with_the_log_line() {
    let Some(kc) = real_cluster("write_to_read_only_root").await else {
        return;
    };
    let app = format!("rn-rofs-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let good_dir = k8s::project(&pake_yaml(&app, ""), &[]);
    let good = good_revision(&kc, good_dir.path()).await;
    // Revision 2: same image, the app writes to / at start.
    let bad = k8s::project(
        &pake_yaml(
            &app,
            "env:\n  - name: PAKE_EXAMPLE_FAULT\n    value: write-root\n",
        ),
        &[],
    );
    let (out, took) = deploy(&kc, bad.path(), &good, "120s");
    assert_failed_and_rolled_back(
        &admin,
        &app,
        &out,
        took,
        &good,
        &["read-only file system", "emptyDir"],
    )
    .await;
    k8s::cleanup_app(&admin, NS, &app).await;
}

#[tokio::test]
async fn memory_over_the_limit_is_oomkilled_and_rolled_back() {
    let Some(kc) = real_cluster("oomkilled").await else {
        return;
    };
    let app = format!("rn-oom-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let good_dir = k8s::project(&pake_yaml(&app, ""), &[]);
    let good = good_revision(&kc, good_dir.path()).await;
    let bad = k8s::project(
        &pake_yaml(&app, "env:\n  - name: PAKE_EXAMPLE_FAULT\n    value: oom\n"),
        &[],
    );
    let (out, took) = deploy(&kc, bad.path(), &good, "120s");
    assert_failed_and_rolled_back(&admin, &app, &out, took, &good, &["OOMKilled"]).await;
    k8s::cleanup_app(&admin, NS, &app).await;
}

#[tokio::test]
async fn readiness_that_never_passes_ends_at_the_deadline_and_rolls_back() {
    let Some(kc) = real_cluster("never_ready").await else {
        return;
    };
    let app = format!("rn-unready-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let good_dir = k8s::project(&pake_yaml(&app, ""), &[]);
    let good = good_revision(&kc, good_dir.path()).await;
    // Revision 2: the probes ask a path the app does not serve (404): never ready.
    let bad = k8s::project(&pake_yaml(&app, "healthPath: /no-such-path\n"), &[]);
    let (out, took) = deploy(&kc, bad.path(), &good, "25s");
    assert_failed_and_rolled_back(&admin, &app, &out, took, &good, &["ready"]).await;
    k8s::cleanup_app(&admin, NS, &app).await;
}

#[tokio::test]
async fn root_image_under_run_as_non_root_fails_fast_and_rolls_back() {
    let Some(kc) = real_cluster("root_image").await else {
        return;
    };
    let app = format!("rn-root-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let good_dir = k8s::project(&pake_yaml(&app, ""), &[]);
    let good = good_revision(&kc, good_dir.path()).await;
    let root_image = root_image(&good);
    // pake's template pins uid 1000, which hides the image's user; a project template that
    // leaves the uid to the image (runAsNonRoot only) meets the kubelet's own check.
    let tpl = std::fs::read_to_string(repo_root().join("templates/k8s/deployment.yaml"))
        .unwrap()
        .replace("            runAsUser: 1000\n", "")
        .replace("        runAsUser: 1000\n", "")
        // containerd refuses a group without a user ("user group ... is specified without user").
        .replace("            runAsGroup: 1000\n", "")
        .replace("        runAsGroup: 1000\n", "");
    assert!(!tpl.contains("runAsUser") && !tpl.contains("runAsGroup"));
    let bad = k8s::project(
        &pake_yaml(&app, ""),
        &[("templates/k8s/deployment.yaml", &tpl)],
    );
    let (out, took) = deploy(&kc, bad.path(), &root_image, "120s");
    assert_failed_and_rolled_back(
        &admin,
        &app,
        &out,
        took,
        &good,
        &["CreateContainerConfigError", "USER 1000:1000"],
    )
    .await;
    k8s::cleanup_app(&admin, NS, &app).await;
}

#[tokio::test]
async fn sandbox_that_cannot_be_created_fails_fast_with_the_runtime_message() {
    let Some(kc) = real_cluster("sandbox_cannot_be_created").await else {
        return;
    };
    let app = format!("rn-sbx-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let good_dir = k8s::project(&pake_yaml(&app, ""), &[]);
    let good = good_revision(&kc, good_dir.path()).await;
    // A project template that sets runAsGroup without runAsUser: containerd refuses to build
    // the pod's sandbox ("user group ... is specified without user"). The pod stays
    // ContainerCreating; the reason is only in FailedCreatePodSandBox Events.
    let tpl = std::fs::read_to_string(repo_root().join("templates/k8s/deployment.yaml"))
        .unwrap()
        .replace("            runAsUser: 1000\n", "")
        .replace("        runAsUser: 1000\n", "");
    assert!(!tpl.contains("runAsUser") && tpl.contains("runAsGroup: 1000"));
    let bad = k8s::project(
        &pake_yaml(&app, ""),
        &[("templates/k8s/deployment.yaml", &tpl)],
    );
    let (out, took) = deploy(&kc, bad.path(), &good, "300s");
    assert_failed_and_rolled_back(
        &admin,
        &app,
        &out,
        took,
        &good,
        &[
            "FailedCreatePodSandBox",
            "is specified without user",
            "runAsUser",
        ],
    )
    .await;
    k8s::cleanup_app(&admin, NS, &app).await;
}

/// The good image with `USER 0:0` on top, pushed as `REPO:root` (docker CLI: pake build
/// refuses a root USER, which is the point).
fn root_image(good: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {good}\nUSER 0:0\n"),
    )
    .unwrap();
    let tag = format!("{REPO}:root");
    for args in [
        vec!["build", "-q", "-t", tag.as_str(), "."],
        vec!["push", "-q", tag.as_str()],
    ] {
        let out = Command::new("docker")
            .args(&args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "docker {args:?}: {}", k8s::text(&out));
    }
    tag
}

fn verify_json(kc: &Path, dir: &Path) -> serde_json::Value {
    let out = k8s::pake(
        kc,
        dir,
        &[
            "--context",
            k8s::DEPLOYER,
            "--env",
            "test",
            "verify",
            "-o",
            "json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", k8s::text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn posture_checks(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "RUNTIME-POSTURE")
        .cloned()
        .collect()
}

#[tokio::test]
async fn verify_proves_the_runtime_posture_from_inside_the_process() {
    let Some(kc) = real_cluster("verify_runtime_posture").await else {
        return;
    };
    let app = format!("rn-posture-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(&pake_yaml(&app, ""), &[]);
    good_revision(&kc, p.path()).await;
    let checks = posture_checks(&verify_json(&kc, p.path()));
    assert_eq!(checks.len(), 1, "{checks:?}");
    let c = &checks[0];
    assert_eq!(c["ok"], true, "{c}");
    assert!(c.get("notProvable").is_none(), "{c}");
    let m = c["message"].as_str().unwrap();
    for seen in [
        "Uid 1000 1000 1000 1000",
        "Gid 1000 1000 1000 1000",
        "CapEff 0000000000000000",
        "NoNewPrivs 1",
        "Seccomp 2",
        "/ mounted ro",
    ] {
        assert!(m.contains(seen), "{seen:?} not in {m}");
    }
    k8s::cleanup_app(&admin, NS, &app).await;
}

/// On a kwok node nothing runs: the posture is "not provable", never a pass. Needs only
/// the local cluster (no real node, no Docker).
#[tokio::test]
async fn verify_on_a_simulated_node_says_not_provable() {
    let Some(kc) = k8s::kubeconfig("verify_simulated_node") else {
        return;
    };
    let app = format!("rn-kwok-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);
    let out = k8s::pake(
        &kc,
        p.path(),
        &[
            "--context",
            k8s::DEPLOYER,
            "--env",
            "test",
            "deploy",
            "--timeout",
            "60s",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", k8s::text(&out));
    let checks = posture_checks(&verify_json(&kc, p.path()));
    assert_eq!(checks.len(), 2, "{checks:?}");
    for c in &checks {
        assert_eq!(c["notProvable"], true, "{c}");
        let m = c["message"].as_str().unwrap();
        assert!(
            m.starts_with("not provable: simulated node kwok-node-"),
            "{m}"
        );
    }
    k8s::cleanup_app(&admin, NS, &app).await;
}

/// A client pod on the real node (app=frontend, the client the app's policy admits, with its
/// own egress allowance to `app` and the cluster DNS: the namespace denies all egress) that,
/// once the node admits its first request, GETs `url` every 20 ms for `seconds`
/// (`backend -get URL -for D`, through exec); `load_summary` waits for its JSON summary.
/// Waiting for the first answer first: a NetworkPolicy enforcer programs a new pod's address a
/// moment after the pod starts, and a request in that moment is dropped, as on any cluster.
async fn start_load(
    admin: &kube::Client,
    app: &str,
    name: &str,
    image: &str,
    url: &str,
    seconds: u32,
) -> tokio::task::JoinHandle<String> {
    allow_client_egress(admin, app, name).await;
    let labels = serde_json::json!({"app": "frontend", "pake.dev/test": "realnode", "pake.dev/client": name});
    start_client_pod(admin, name, image, labels).await;
    wait_admitted(admin, name, url).await;
    let (admin, name, url) = (admin.clone(), name.to_string(), url.to_string());
    tokio::spawn(async move {
        let d = format!("{seconds}s");
        exec_out(&admin, &name, &["/app/backend", "-get", &url, "-for", &d])
            .await
            .1
    })
}

/// The load's JSON summary; the load pod is deleted.
async fn load_summary(
    admin: &kube::Client,
    name: &str,
    load: tokio::task::JoinHandle<String>,
) -> serde_json::Value {
    let out = tokio::time::timeout(Duration::from_secs(120), load)
        .await
        .expect("load did not finish")
        .unwrap();
    let _ = Api::<Pod>::namespaced(admin.clone(), NS)
        .delete(name, &Default::default())
        .await;
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn pake_ok(kc: &Path, dir: &Path, args: &[&str]) {
    let mut all = vec!["--context", k8s::DEPLOYER, "--env", "test"];
    all.extend_from_slice(args);
    let out = k8s::pake(kc, dir, &all, &[]);
    assert!(out.status.success(), "pake {args:?}: {}", k8s::text(&out));
}

#[tokio::test]
async fn bluegreen_switch_and_rollback_move_real_traffic_without_losing_a_request() {
    let Some(kc) = real_cluster("bluegreen_real_traffic").await else {
        return;
    };
    let app = format!("rn-bg-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(
        &pake_yaml(&app, "").replace("replicas: 1", "replicas: 2"),
        &[],
    );
    let img = good_revision(&kc, p.path()).await;
    pake_ok(
        &kc,
        p.path(),
        &["bluegreen", "deploy", "v2", "--image", &img],
    );

    let load = format!("{app}-load");
    let url = format!("http://{app}:8000/version");
    let running = start_load(&admin, &app, &load, &img, &url, 30).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    pake_ok(&kc, p.path(), &["bluegreen", "switch", "v2"]);
    tokio::time::sleep(Duration::from_secs(8)).await;
    pake_ok(&kc, p.path(), &["bluegreen", "rollback"]);
    let s = load_summary(&admin, &load, running).await;
    assert_eq!(s["failed"], 0, "{s}");
    assert!(s["requests"].as_u64().unwrap() > 100, "{s}");
    // Real answers through the Service: v1, then v2 after the switch, then v1 again.
    assert_eq!(s["versions"], serde_json::json!(["v1", "v2", "v1"]), "{s}");
    k8s::cleanup_app(&admin, NS, &app).await;
}

fn secret_checks(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "SECRET-IN-PROCESS")
        .cloned()
        .collect()
}

/// The built-in deployment template with `<app>-creds` also mounted as files, as the guide's
/// "secrets as files" pattern does: the whole Secret at /run/secrets/creds (the kubelet updates
/// it in place when the Secret changes) and its `password` key alone at /run/secrets/password
/// through subPath (never updated: only a new pod sees a new value).
fn template_with_secret_files(app: &str) -> String {
    let tpl = std::fs::read_to_string(repo_root().join("templates/k8s/deployment.yaml")).unwrap();
    let mounts =
        "          volumeMounts:\n            - name: tmp\n              mountPath: /tmp\n";
    let volumes = "      volumes:\n        - name: tmp\n";
    assert!(
        tpl.contains(mounts) && tpl.contains(volumes),
        "deployment template changed"
    );
    tpl.replace(
        mounts,
        &format!("{mounts}            - name: creds\n              mountPath: /run/secrets/creds\n              readOnly: true\n            - name: creds\n              mountPath: /run/secrets/password\n              subPath: password\n              readOnly: true\n"),
    )
    .replace(
        volumes,
        &format!("      volumes:\n        - name: creds\n          secret:\n            secretName: {app}-creds\n            defaultMode: 288\n        - name: tmp\n"),
    )
}

/// `pake verify -o json` in `dir`: (exit ok, the SECRET-IN-PROCESS checks by object suffix).
fn secret_in_process(kc: &Path, dir: &Path) -> (bool, Vec<serde_json::Value>) {
    let out = k8s::pake(
        kc,
        dir,
        &[
            "--context",
            k8s::DEPLOYER,
            "--env",
            "test",
            "verify",
            "-o",
            "json",
        ],
        &[],
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", k8s::text(&out)));
    (out.status.success(), secret_checks(&v))
}

fn check_for<'a>(checks: &'a [serde_json::Value], suffix: &str) -> &'a serde_json::Value {
    checks
        .iter()
        .find(|c| c["object"].as_str().unwrap_or_default().ends_with(suffix))
        .unwrap_or_else(|| panic!("no SECRET-IN-PROCESS check for {suffix}: {checks:?}"))
}

#[tokio::test]
async fn rotation_reaches_secret_files_as_the_process_sees_them() {
    let Some(kc) = real_cluster("rotation_reaches_secret_files").await else {
        return;
    };
    let app = format!("rn-rotf-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let extra = format!(
        "secrets:\n  - name: {app}-creds\n    keys:\n      password:\n        generate: {{bytes: 32}}\nenv:\n  - name: APP_PASSWORD\n    secretKeyRef: {{name: {app}-creds, key: password}}\n"
    );
    let tpl = template_with_secret_files(&app);
    let p = k8s::project(
        &pake_yaml(&app, &extra),
        &[("templates/k8s/deployment.yaml", &tpl)],
    );
    good_revision(&kc, p.path()).await;
    let (env, whole, sub) = (
        " env APP_PASSWORD",
        " file /run/secrets/creds/password",
        " file /run/secrets/password",
    );
    let (ok, before) = secret_in_process(&kc, p.path());
    assert!(ok, "{before:?}");
    assert_eq!(before.len(), 3, "{before:?}");
    for c in [env, whole, sub] {
        let c = check_for(&before, c);
        assert!(c["ok"] == true && c["notProvable"].is_null(), "{c}");
    }
    let creds = format!("{app}-creds");

    // A new value, no restart: the environment and the subPath file keep the old value (fail);
    // the whole-volume file follows once the kubelet syncs the volume (within its sync period).
    pake_ok(&kc, p.path(), &["rotate-secret", &creds, "--no-restart"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let stale = loop {
        let (ok, checks) = secret_in_process(&kc, p.path());
        assert!(!ok, "{checks:?}");
        if check_for(&checks, whole)["ok"] == true || Instant::now() > deadline {
            break checks;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    assert_eq!(
        check_for(&stale, whole)["ok"],
        true,
        "the kubelet never updated the volume: {stale:?}"
    );
    assert_eq!(check_for(&stale, env)["ok"], false, "{stale:?}");
    let s = check_for(&stale, sub);
    assert_eq!(s["ok"], false, "{s}");
    assert!(s["message"].as_str().unwrap().contains("subPath"), "{s}");

    // The rotation with its restart: every way the new process sees the Secret is current.
    pake_ok(&kc, p.path(), &["rotate-secret", &creds]);
    let (ok, after) = secret_in_process(&kc, p.path());
    assert!(ok, "{after:?}");
    for c in [env, whole, sub] {
        assert_eq!(check_for(&after, c)["ok"], true, "{after:?}");
    }
    k8s::cleanup_app(&admin, NS, &app).await;
}

#[tokio::test]
async fn rotation_reaches_the_process_compared_by_keyed_fingerprint() {
    let Some(kc) = real_cluster("rotation_reaches_the_process").await else {
        return;
    };
    let app = format!("rn-rot-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let extra = format!(
        "secrets:\n  - name: {app}-creds\n    keys:\n      password:\n        generate: {{bytes: 32}}\nenv:\n  - name: APP_PASSWORD\n    secretKeyRef: {{name: {app}-creds, key: password}}\n"
    );
    let p = k8s::project(&pake_yaml(&app, &extra), &[]);
    good_revision(&kc, p.path()).await;
    let verify = |expect_ok: bool| {
        let out = k8s::pake(
            &kc,
            p.path(),
            &[
                "--context",
                k8s::DEPLOYER,
                "--env",
                "test",
                "verify",
                "-o",
                "json",
            ],
            &[],
        );
        assert_eq!(out.status.success(), expect_ok, "{}", k8s::text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        secret_checks(&v)
    };
    let creds = format!("{app}-creds");
    // verify proves only pods that are Running at that moment; under a loaded
    // node a just-rolled-out pod can still be settling (seen once in a full
    // run): give it a few tries before the proof is expected.
    let mut before = verify(true);
    for _ in 0..10 {
        if !before.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        before = verify(true);
    }
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0]["ok"], true, "{before:?}");

    // A new value the running process does not have: verify must fail.
    pake_ok(&kc, p.path(), &["rotate-secret", &creds, "--no-restart"]);
    let stale = verify(false);
    assert_eq!(stale[0]["ok"], false, "{stale:?}");
    assert!(
        stale[0]["message"].as_str().unwrap().contains("differ"),
        "{stale:?}"
    );

    // The rotation with its restart reaches the new process; the old pod is gone.
    pake_ok(&kc, p.path(), &["rotate-secret", &creds]);
    let after = verify(true);
    assert_eq!(after[0]["ok"], true, "{after:?}");
    let pods = Api::<Pod>::namespaced(admin.clone(), NS)
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap();
    assert!(
        pods.items
            .iter()
            .all(|p| p.metadata.deletion_timestamp.is_none()
                && !before[0]["object"]
                    .as_str()
                    .unwrap()
                    .contains(p.metadata.name.as_deref().unwrap())),
        "an old pod is still there"
    );
    // The probe's key Secret is gone again.
    let secrets = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(admin.clone(), NS)
        .list(&ListParams::default().labels("pake.dev/purpose=probe-key"))
        .await
        .unwrap();
    assert!(
        secrets
            .items
            .iter()
            .all(|s| !s.metadata.labels.as_ref().unwrap()["app"].eq(&app))
    );
    k8s::cleanup_app(&admin, NS, &app).await;
}

// ---------------------------------------------------------------------------------------------
// NetworkPolicy, enforced on the real node (kube-router's network policy controller, see
// docs/local-cluster.md): real connections between real pods, and pake's own verdicts for them.

/// The `network-policy` line of `scripts/cluster status` for the cluster of `kc` (its state
/// dir holds the kubeconfig): Ok when it says "enforced", else the line (the reason).
fn netpol_enforced(kc: &Path) -> Result<(), String> {
    let state = kc.parent().ok_or("kubeconfig has no directory")?;
    let out = Command::new(repo_root().join("scripts/cluster"))
        .arg("status")
        .env("PAKE_CLUSTER_DIR", state)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("scripts/cluster status: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("network-policy"))
        .ok_or("scripts/cluster status has no network-policy line (cluster started by an older scripts/cluster?)")?;
    let state_word = line.split_whitespace().nth(1).unwrap_or_default();
    if state_word == "enforced" {
        Ok(())
    } else {
        Err(line.split_whitespace().collect::<Vec<_>>().join(" "))
    }
}

/// A NetworkPolicy for the test's client pods (label `pake.dev/client=<client>`): egress to the
/// pods of `app` on TCP 8000 and to the cluster DNS, as a frontend's own deployment would carry
/// under the namespace's default-deny. Labelled app=<app>: `cleanup_app` removes it.
async fn allow_client_egress(admin: &kube::Client, app: &str, client: &str) {
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    let np: NetworkPolicy = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("{client}-egress"), "labels": {"app": app, "pake.dev/test": "realnode"}},
        "spec": {
            "podSelector": {"matchLabels": {"pake.dev/client": client}},
            "policyTypes": ["Egress"],
            "egress": [
                {"to": [{"podSelector": {"matchLabels": {"app": app}}}],
                 "ports": [{"protocol": "TCP", "port": 8000}]},
                {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                         "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                 "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
            ]
        }
    }))
    .unwrap();
    Api::<NetworkPolicy>::namespaced(admin.clone(), NS)
        .create(&Default::default(), &np)
        .await
        .unwrap();
}

/// A long-running hardened pod on the real node (the example image serving its own port 8000,
/// with a readiness probe), to run connections from with `exec_get`; Ready when it returns.
async fn start_client_pod(
    admin: &kube::Client,
    name: &str,
    image: &str,
    labels: serde_json::Value,
) {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 1,
            "nodeSelector": {"pake.dev/node": "real"},
            "tolerations": [{"key": "pake.dev/node", "operator": "Equal", "value": "real", "effect": "NoSchedule"}],
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "client",
                "image": image,
                "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}, "periodSeconds": 2},
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}}
            }]
        }
    }))
    .unwrap();
    let api = Api::<Pod>::namespaced(admin.clone(), NS);
    api.create(&Default::default(), &pod).await.unwrap();
    let ready = kube::runtime::wait::await_condition(
        api,
        name,
        kube::runtime::conditions::is_pod_running(),
    );
    tokio::time::timeout(Duration::from_secs(90), ready)
        .await
        .unwrap_or_else(|_| panic!("client pod {name} did not start"))
        .unwrap();
}

/// Run `cmd` in `pod` (its only container) through exec: (succeeded, stdout, stderr).
async fn exec_out(admin: &kube::Client, pod: &str, cmd: &[&str]) -> (bool, String, String) {
    use tokio::io::AsyncReadExt;
    let api = Api::<Pod>::namespaced(admin.clone(), NS);
    let ap = kube::api::AttachParams::default().stdout(true).stderr(true);
    let mut p = api
        .exec(pod, cmd.iter().copied(), &ap)
        .await
        .unwrap_or_else(|e| panic!("exec in {pod}: {e}"));
    let (mut so, mut se) = (p.stdout().unwrap(), p.stderr().unwrap());
    let (mut out, mut err) = (String::new(), String::new());
    let _ = tokio::join!(so.read_to_string(&mut out), se.read_to_string(&mut err));
    let status = p.take_status().unwrap().await;
    let _ = p.join().await;
    let ok = status.and_then(|s| s.status).as_deref() == Some("Success");
    (ok, out, err)
}

/// A real HTTP GET of `url` from inside `pod` (`/app/backend -get URL`: the image has no
/// shell): Ok(body) on a 200, Err(the client's error) otherwise.
async fn exec_get(admin: &kube::Client, pod: &str, url: &str) -> Result<String, String> {
    match exec_out(admin, pod, &["/app/backend", "-get", url]).await {
        (true, out, _) => Ok(out.trim().to_string()),
        (false, _, err) => Err(err.trim().to_string()),
    }
}

/// Until `pod`'s GET of `url` is answered (at most 30 s): the enforcer has programmed the pod.
async fn wait_admitted(admin: &kube::Client, pod: &str, url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match exec_get(admin, pod, url).await {
            Ok(body) => return body,
            Err(e) if Instant::now() > deadline => {
                panic!("{pod} -> {url}: not admitted within 30 s: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// pake's own verdict: `pake netpol explain SRC DST --port 8000/TCP --live -n pake-test`
/// (no project: the live objects only, no stand-ins), as the deployer.
fn pake_verdict(kc: &Path, src: &str, dst: &str) -> (bool, serde_json::Value) {
    let empty = tempfile::tempdir().unwrap();
    let out = k8s::pake(
        kc,
        empty.path(),
        &[
            "--context",
            k8s::DEPLOYER,
            "-n",
            NS,
            "-o",
            "json",
            "netpol",
            "explain",
            src,
            dst,
            "--port",
            "8000/TCP",
            "--live",
        ],
        &[],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("pake netpol explain {src} {dst}: {e}: {}", k8s::text(&out)));
    let allowed = v["allowed"].as_bool().unwrap();
    assert_eq!(out.status.code(), Some(if allowed { 0 } else { 1 }), "{v}");
    (allowed, v)
}

#[tokio::test]
async fn network_policy_default_deny_drops_and_the_allow_rule_admits_exactly_frontend() {
    let Some(kc) = real_cluster("netpol_enforced").await else {
        return;
    };
    if let Err(why) = netpol_enforced(&kc) {
        eprintln!("SKIP netpol_enforced: NetworkPolicy is not enforced on {NODE}: {why}");
        return;
    }
    let app = format!("rn-np-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    // pake's policies for the app: default-deny-all (every pod, both directions) and
    // `<app>-allow` (ingress from app=frontend on TCP 8000), as the guide writes them.
    let p = k8s::project(&pake_yaml(&app, ""), &[]);
    let img = good_revision(&kc, p.path()).await;
    let backend_ip = Api::<Pod>::namespaced(admin.clone(), NS)
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
        .iter()
        .find_map(|p| p.status.as_ref()?.pod_ip.clone())
        .expect("a backend pod with an IP");
    let url = format!("http://{backend_ip}:8000/health");

    // Three clients on the node. `fe` (app=frontend) and `other` may send to the app
    // (their own egress allowance); `lone` is a frontend without one.
    let (fe, other, lone) = (
        format!("{app}-fe"),
        format!("{app}-other"),
        format!("{app}-lone"),
    );
    let egress = format!("{app}-clients");
    allow_client_egress(&admin, &app, &egress).await;
    let l = |a: &str, client: Option<&str>| {
        let mut m =
            serde_json::json!({"app": a, "pake.dev/test": "realnode", "pake.dev/np-test": app});
        if let Some(c) = client {
            m["pake.dev/client"] = c.into();
        }
        m
    };
    let (fe_l, other_l, lone_l) = (
        l("frontend", Some(&egress)),
        l(&other, Some(&egress)),
        l("frontend", None),
    );
    tokio::join!(
        start_client_pod(&admin, &fe, &img, fe_l),
        start_client_pod(&admin, &other, &img, other_l),
        start_client_pod(&admin, &lone, &img, lone_l),
    );

    // The allowed flow: the enforcer programs a new pod within seconds of its IP appearing.
    let admitted = wait_admitted(&admin, &fe, &url).await;
    assert!(admitted.contains("\"ok\""), "{admitted}");
    // Now that the enforcer has seen all three pods: the other two are dropped, every time.
    for _ in 0..3 {
        let e = exec_get(&admin, &other, &url).await;
        assert!(
            e.is_err(),
            "{other} -> {app}:8000 (not app=frontend) got through: {e:?}"
        );
        let e = exec_get(&admin, &lone, &url).await;
        assert!(
            e.is_err(),
            "{lone} (no egress allowance) -> {app}:8000 got through: {e:?}"
        );
        assert!(
            exec_get(&admin, &fe, &url).await.is_ok(),
            "frontend -> {app}:8000 stopped"
        );
    }
    // The node itself (kubelet probes; here a GET from the machine) still reaches the pod.
    assert!(http_get(&backend_ip, 8000, "/health").contains("ok"));

    // pake's verdicts for the same three flows agree with what was enforced, with the reasons.
    let dst = format!("{NS}/{app}-v1");
    let (ok, v) = pake_verdict(&kc, &format!("{NS}/{fe}"), &dst);
    assert!(
        ok,
        "pake says frontend -> {app} is denied, the node admitted it: {v}"
    );
    let (ok, v) = pake_verdict(&kc, &format!("{NS}/{other}"), &dst);
    assert!(
        !ok,
        "pake says {other} -> {app} is allowed, the node dropped it: {v}"
    );
    assert_eq!(v["denied"], serde_json::json!(["Ingress"]), "{v}");
    let (ok, v) = pake_verdict(&kc, &format!("{NS}/{lone}"), &dst);
    assert!(
        !ok,
        "pake says {lone} -> {app} is allowed, the node dropped it: {v}"
    );
    assert_eq!(v["denied"], serde_json::json!(["Egress"]), "{v}");

    let pods = Api::<Pod>::namespaced(admin.clone(), NS);
    for n in [&fe, &other, &lone] {
        let _ = pods.delete(n, &Default::default()).await;
    }
    k8s::cleanup_app(&admin, NS, &app).await;
}
