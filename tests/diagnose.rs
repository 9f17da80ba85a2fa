//! `pake diagnose` on the local cluster's real node (`pake-node-0`): each of the
//! guide's troubleshooting cases made to happen for real — the kubelet refuses a
//! root image, the app hits the read-only root or a directory it may not write,
//! the kernel OOM-kills it, the scheduler finds no room, PodSecurity admission
//! rejects the pods — and diagnose must name that cause, the evidence and the
//! fix, and nothing else. A healthy release diagnoses clean; one on kwok nodes
//! is "not provable", never a pass.
//!
//! Each case deploys a good revision with pake, then breaks the live Deployment
//! as the admin (a failed `pake deploy` would roll back and leave nothing to
//! diagnose). Needs what tests/realnode.rs needs: PAKE_TEST_KUBECONFIG, a Ready
//! `pake-node-0`, and PAKE_TEST_DOCKER=1 with the local registry; else SKIP.

mod k8s;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, LogParams, PostParams};
use serde_json::{Value, json};

const NS: &str = "pake-test";
const NODE: &str = "pake-node-0";
const REPO: &str = "127.0.0.1:5000/pake-test/diagnose";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

async fn real_cluster(test: &str) -> Option<PathBuf> {
    let kc = k8s::kubeconfig(test)?;
    if std::env::var("PAKE_TEST_DOCKER").ok().as_deref() != Some("1") {
        eprintln!("SKIP {test}: PAKE_TEST_DOCKER is not 1 (these tests build and push an image)");
        return None;
    }
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let node = Api::<Node>::all(admin).get_opt(NODE).await.ok().flatten();
    let ready = node
        .and_then(|n| n.status)
        .and_then(|s| s.conditions)
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    if !ready {
        eprintln!("SKIP {test}: no Ready real node {NODE} in this cluster");
        return None;
    }
    Some(kc)
}

/// The example backend, built and pushed once per run: its digest reference.
fn image() -> String {
    static IMAGE: Mutex<Option<String>> = Mutex::new(None);
    let mut guard = IMAGE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = guard.as_ref() {
        return i.clone();
    }
    let example = repo_root().join("examples/backend");
    assert!(
        Command::new(example.join("prepare"))
            .status()
            .unwrap()
            .success()
    );
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
        format!("app: diagnose\nimage: {REPO}\nport: 8000\nbuild:\n  dockerfile: Dockerfile.production\nenvironments:\n  test:\n    namespace: {NS}\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pake"))
        .current_dir(dir.path())
        .args(["--env", "test", "build", "--push", "-t", "diagnose-test"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pake build --push: {}",
        k8s::text(&out)
    );
    let record: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(".pake/build.json")).unwrap())
            .unwrap();
    let reference = record["reference"].as_str().unwrap().to_string();
    *guard = Some(reference.clone());
    reference
}

/// pake.yaml for `app` on the real node, with the example's Dockerfile next to it.
fn pake_yaml(app: &str, extra: &str) -> String {
    format!(
        "app: {app}
image: {REPO}
tag: \"1\"
port: 8000
replicas: 1
build:
  dockerfile: Dockerfile.production
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

fn project(app: &str, extra: &str) -> tempfile::TempDir {
    let dockerfile =
        std::fs::read_to_string(repo_root().join("examples/backend/Dockerfile.production"))
            .unwrap();
    k8s::project(
        &pake_yaml(app, extra),
        &[("Dockerfile.production", &dockerfile)],
    )
}

fn pake(kc: &Path, dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--context", k8s::DEPLOYER, "--env", "test"];
    all.extend_from_slice(args);
    k8s::pake(kc, dir, &all, &[])
}

/// A good first revision of the project in `dir`.
fn deploy_good(kc: &Path, dir: &Path) {
    let img = image();
    let out = pake(kc, dir, &["deploy", "--image", &img, "--timeout", "120s"]);
    assert!(out.status.success(), "{}", k8s::text(&out));
}

/// `pake diagnose -o json` and its exit code.
fn diagnose(kc: &Path, dir: &Path, extra: &[&str]) -> (Option<i32>, Value, String) {
    let mut args = vec!["diagnose", "-o", "json"];
    args.extend_from_slice(extra);
    let out = pake(kc, dir, &args);
    let t = k8s::text(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {t}"));
    assert_eq!(v["apiVersion"], "pake.dev/v1", "{v}");
    (out.status.code(), v, t)
}

fn findings(v: &Value) -> Vec<Value> {
    v["findings"].as_array().cloned().unwrap_or_default()
}

fn evidence_has(f: &Value, needle: &str) -> bool {
    f["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e.as_str().unwrap().contains(needle))
}

/// Exactly one finding, of `check`; returned.
fn only(v: &Value, check: &str) -> Value {
    let f = findings(v);
    assert_eq!(
        f.len(),
        1,
        "expected only {check}: {}",
        serde_json::to_string_pretty(v).unwrap()
    );
    assert_eq!(
        f[0]["check"],
        check,
        "{}",
        serde_json::to_string_pretty(v).unwrap()
    );
    assert_eq!(f[0]["status"], "problem");
    f[0].clone()
}

/// Apply JSON-patch-like ops (add, replace, remove; `/-` appends) to the app's
/// Deployment as the admin and replace it (the failure pake would not deploy).
async fn break_deployment(admin: &kube::Client, app: &str, ops: Value) {
    let api = Api::<Deployment>::namespaced(admin.clone(), NS);
    let name = format!("{app}-v1");
    let mut d = serde_json::to_value(api.get(&name).await.unwrap()).unwrap();
    for op in ops.as_array().unwrap() {
        let path = op["path"].as_str().unwrap();
        let (parent, last) = path.rsplit_once('/').unwrap();
        let target = d
            .pointer_mut(parent)
            .unwrap_or_else(|| panic!("no {parent}"));
        match op["op"].as_str().unwrap() {
            "add" if last == "-" => target.as_array_mut().unwrap().push(op["value"].clone()),
            "add" | "replace" => {
                target[last] = op["value"].clone();
            }
            "remove" => {
                target.as_object_mut().unwrap().remove(last);
            }
            o => panic!("op {o}"),
        }
    }
    let d: Deployment = serde_json::from_value(d).unwrap();
    api.replace(&name, &PostParams::default(), &d)
        .await
        .unwrap();
}

/// Poll the app's pods until `pred` holds for one (tests may poll; pake does not).
async fn wait_pod(
    admin: &kube::Client,
    app: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let api = Api::<Pod>::namespaced(admin.clone(), NS);
    let t0 = Instant::now();
    loop {
        let pods = api
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .unwrap();
        for p in pods.items {
            let v = serde_json::to_value(&p).unwrap();
            if v["metadata"]["deletionTimestamp"].is_null() && pred(&v) {
                return v;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no pod of {app} became {what}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Wait until the pod's current or previous log has a line containing `needle`.
async fn wait_log(admin: &kube::Client, app: &str, needle: &str) -> String {
    let api = Api::<Pod>::namespaced(admin.clone(), NS);
    let t0 = Instant::now();
    loop {
        let pods = api
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .unwrap();
        for p in &pods.items {
            let name = p.metadata.name.clone().unwrap();
            if let Ok(l) = api.logs(&name, &LogParams::default()).await
                && l.contains(needle)
            {
                return name;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no log of {app} shows {needle:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Deletes the app's objects when dropped, also when an assertion failed.
struct Cleanup {
    kc: PathBuf,
    apps: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (kc, apps) = (self.kc.clone(), std::mem::take(&mut self.apps));
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let admin = k8s::client(&kc, k8s::ADMIN).await;
                for app in apps {
                    k8s::cleanup_app(&admin, NS, &app).await;
                }
            });
        })
        .join();
    }
}

fn cleanup(kc: &Path, apps: &[&str]) -> Cleanup {
    Cleanup {
        kc: kc.to_path_buf(),
        apps: apps.iter().map(|a| a.to_string()).collect(),
    }
}

fn fault(value: &str) -> Value {
    json!({"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": {"name": "PAKE_EXAMPLE_FAULT", "value": value}})
}

#[tokio::test]
async fn a_healthy_release_diagnoses_clean() {
    let Some(kc) = real_cluster("diagnose_healthy").await else {
        return;
    };
    let app = format!("dg-ok-{}", k8s::suffix());
    let _cleanup = cleanup(&kc, &[&app]);
    let p = project(&app, "");
    deploy_good(&kc, p.path());
    let (code, v, t) = diagnose(&kc, p.path(), &[]);
    assert_eq!(code, Some(0), "{t}");
    assert_eq!(v["kind"], "Diagnosis");
    assert_eq!(v["ok"], true, "{t}");
    assert_eq!(v["pods"], 1, "{t}");
    assert!(findings(&v).is_empty(), "{t}");
    assert!(v.get("lastRelease").is_none(), "{t}");
    // Text: says so in one line.
    let out = pake(&kc, p.path(), &["diagnose"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no problems found"),
        "{}",
        k8s::text(&out)
    );
}

#[tokio::test]
async fn a_write_to_the_read_only_root_gets_an_empty_dir_at_that_path() {
    let Some(kc) = real_cluster("diagnose_read_only").await else {
        return;
    };
    let app = format!("dg-rofs-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let _cleanup = cleanup(&kc, &[&app]);
    let p = project(&app, "");
    deploy_good(&kc, p.path());
    break_deployment(&admin, &app, json!([fault("write-app")])).await;
    let pod = wait_log(&admin, &app, "mkdir /app/data: read-only file system").await;
    let (code, v, t) = diagnose(&kc, p.path(), &[]);
    assert_eq!(code, Some(1), "{t}");
    let f = only(&v, "READ-ONLY-FILESYSTEM");
    assert!(
        f["object"]
            .as_str()
            .unwrap()
            .starts_with(&format!("Pod {NS}/{pod} container ")),
        "{f}"
    );
    assert!(
        evidence_has(&f, "mkdir /app/data: read-only file system"),
        "{f}"
    );
    assert!(evidence_has(&f, "readOnlyRootFilesystem: true"), "{f}");
    assert!(
        evidence_has(&f, "writable mounts: /tmp, /app/logs, /app/cache"),
        "{f}"
    );
    assert_eq!(f["fix"]["target"], "template");
    let change = f["fix"]["change"].as_str().unwrap();
    assert!(
        change.contains("mountPath: /app/data") && change.contains("emptyDir"),
        "{change}"
    );
}

#[tokio::test]
async fn permission_denied_shows_the_process_ids_and_the_directory_owner() {
    let Some(kc) = real_cluster("diagnose_permission").await else {
        return;
    };
    let app = format!("dg-perm-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let _cleanup = cleanup(&kc, &[&app]);
    let p = project(&app, "");
    deploy_good(&kc, p.path());
    // A writable root: now the kernel checks ownership (/app is root's, mode 555).
    break_deployment(
        &admin,
        &app,
        json!([
            fault("write-app"),
            {"op": "replace", "path": "/spec/template/spec/containers/0/securityContext/readOnlyRootFilesystem", "value": false}
        ]),
    )
    .await;
    wait_log(&admin, &app, "mkdir /app/data: permission denied").await;
    let (code, v, t) = diagnose(&kc, p.path(), &[]);
    assert_eq!(code, Some(1), "{t}");
    let f = only(&v, "PERMISSION-DENIED");
    assert!(
        evidence_has(&f, "mkdir /app/data: permission denied"),
        "{f}"
    );
    // The guide's `id` and `ls -la /app`, read from inside the running process.
    assert!(
        evidence_has(
            &f,
            "id (from inside the process): Uid 1000 1000 1000 1000, Gid 1000 1000 1000 1000"
        ),
        "{f}"
    );
    assert!(evidence_has(&f, "/app is owned by 0:0 (d"), "{f}");
    assert!(
        evidence_has(&f, "the process runs as uid 1000: it may not write there"),
        "{f}"
    );
    assert!(
        evidence_has(&f, "Dockerfile.production: USER 1000:1000"),
        "{f}"
    );
    assert_eq!(f["fix"]["target"], "dockerfile");
    assert_eq!(f["fix"]["file"], "Dockerfile.production");
    assert!(
        f["fix"]["change"]
            .as_str()
            .unwrap()
            .contains("chown -R 1000:1000 /app/data"),
        "{f}"
    );
    // --no-probe: read-only, the ids come from the spec instead.
    let (_, v, t) = diagnose(&kc, p.path(), &["--no-probe"]);
    let f = only(&v, "PERMISSION-DENIED");
    assert!(
        evidence_has(&f, "spec: runAsUser 1000, runAsGroup 1000"),
        "{t}"
    );
}

#[tokio::test]
async fn a_memory_hog_is_oom_killed_and_gets_a_higher_limit() {
    let Some(kc) = real_cluster("diagnose_oom").await else {
        return;
    };
    let app = format!("dg-oom-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let _cleanup = cleanup(&kc, &[&app]);
    let p = project(&app, "");
    deploy_good(&kc, p.path());
    break_deployment(&admin, &app, json!([fault("oom")])).await;
    wait_pod(&admin, &app, "OOMKilled", |p| {
        p["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| {
                c["lastState"]["terminated"]["reason"] == "OOMKilled"
                    || c["state"]["terminated"]["reason"] == "OOMKilled"
            })
    })
    .await;
    let (code, v, t) = diagnose(&kc, p.path(), &[]);
    assert_eq!(code, Some(1), "{t}");
    let f = only(&v, "OOM-KILLED");
    assert!(evidence_has(&f, "(OOMKilled, exit code 137)"), "{f}");
    assert!(evidence_has(&f, "limits.memory 64Mi"), "{f}");
    // `kubectl top`: this cluster serves no metrics.k8s.io, and diagnose says so.
    assert!(evidence_has(&f, "memory in use"), "{f}");
    assert_eq!(f["fix"]["target"], "pakeYaml");
    assert!(
        f["fix"]["change"]
            .as_str()
            .unwrap()
            .contains("memory: 128Mi"),
        "{f}"
    );
    // The events section ties the kubelet's BackOff to the finding.
    assert!(
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["finding"].is_null() || e["finding"] == "OOM-KILLED"),
        "{t}"
    );
}

/// The good image with `USER 0:0` on top, pushed as `REPO:root`.
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

#[tokio::test]
async fn a_root_image_under_run_as_non_root_gets_a_user_line() {
    let Some(kc) = real_cluster("diagnose_root_image").await else {
        return;
    };
    let app = format!("dg-root-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let _cleanup = cleanup(&kc, &[&app]);
    let p = project(&app, "");
    deploy_good(&kc, p.path());
    let root = root_image(&image());
    // Leave the uid to the image (runAsNonRoot only): the kubelet's own check.
    let c = "/spec/template/spec/containers/0/securityContext";
    break_deployment(
        &admin,
        &app,
        json!([
            {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": root},
            {"op": "remove", "path": "/spec/template/spec/securityContext/runAsUser"},
            {"op": "remove", "path": "/spec/template/spec/securityContext/runAsGroup"},
            {"op": "remove", "path": format!("{c}/runAsUser")},
            {"op": "remove", "path": format!("{c}/runAsGroup")},
        ]),
    )
    .await;
    wait_pod(&admin, &app, "CreateContainerConfigError", |p| {
        p["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["state"]["waiting"]["reason"] == "CreateContainerConfigError")
    })
    .await;
    let (code, v, t) = diagnose(&kc, p.path(), &[]);
    assert_eq!(code, Some(1), "{t}");
    let f = only(&v, "RUN-AS-ROOT");
    assert!(
        evidence_has(&f, "runAsNonRoot and image will run as root"),
        "{f}"
    );
    assert!(
        evidence_has(&f, &format!("docker inspect {root}: User \"0:0\"")),
        "{f}"
    );
    assert_eq!(f["fix"]["change"], "USER 1000:1000");
    assert_eq!(f["fix"]["file"], "Dockerfile.production");
}

#[tokio::test]
async fn no_room_on_the_node_names_the_missing_memory() {
    let Some(kc) = real_cluster("diagnose_unschedulable").await else {
        return;
    };
    let app = format!("dg-pend-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let _cleanup = cleanup(&kc, &[&app]);
    let p = project(&app, "");
    deploy_good(&kc, p.path());
    let r = "/spec/template/spec/containers/0/resources";
    break_deployment(
        &admin,
        &app,
        json!([
            {"op": "replace", "path": format!("{r}/requests/memory"), "value": "4000Gi"},
            {"op": "replace", "path": format!("{r}/limits/memory"), "value": "4000Gi"},
        ]),
    )
    .await;
    wait_pod(&admin, &app, "Unschedulable", |p| {
        p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["reason"] == "Unschedulable")
    })
    .await;
    let (code, v, t) = diagnose(&kc, p.path(), &[]);
    assert_eq!(code, Some(1), "{t}");
    let f = only(&v, "UNSCHEDULABLE");
    assert!(evidence_has(&f, "Insufficient memory"), "{f}");
    assert!(
        evidence_has(&f, &format!("node {NODE}: allocatable"))
            && evidence_has(&f, "memory short by"),
        "{f}"
    );
    assert!(
        !evidence_has(&f, "kwok-node"),
        "the nodeSelector excludes them: {f}"
    );
}

#[tokio::test]
async fn a_pod_security_rejection_names_the_violating_field() {
    let Some(kc) = real_cluster("diagnose_pod_security").await else {
        return;
    };
    let app = format!("dg-pss-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let _cleanup = cleanup(&kc, &[&app]);
    let p = project(&app, "");
    deploy_good(&kc, p.path());
    break_deployment(
        &admin,
        &app,
        json!([{"op": "add", "path": "/spec/template/spec/containers/0/securityContext/capabilities/add", "value": ["NET_RAW"]}]),
    )
    .await;
    let rs_api = Api::<ReplicaSet>::namespaced(admin.clone(), NS);
    let t0 = Instant::now();
    while !rs_api
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
        .iter()
        .any(|rs| {
            rs.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "ReplicaFailure"))
        })
    {
        assert!(t0.elapsed() < Duration::from_secs(60), "no ReplicaFailure");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (code, v, t) = diagnose(&kc, p.path(), &[]);
    assert_eq!(code, Some(1), "{t}");
    let f = only(&v, "POD-SECURITY");
    assert!(
        evidence_has(&f, "violates PodSecurity \"restricted:latest\""),
        "{f}"
    );
    assert!(
        evidence_has(&f, "PSS engine: non-default capabilities")
            || evidence_has(&f, "PSS engine: unrestricted capabilities"),
        "{f}"
    );
    assert!(evidence_has(&f, "NET_RAW"), "{f}");
    assert_eq!(f["fix"]["target"], "template");
}

#[tokio::test]
async fn a_missing_allow_rule_is_named_with_the_pake_yaml_line_and_enforcement_is_tested_live() {
    let Some(kc) = real_cluster("diagnose_connectivity").await else {
        return;
    };
    let sfx = k8s::suffix();
    let (be, fe) = (format!("dg-be-{sfx}"), format!("dg-fe-{sfx}"));
    let _cleanup = cleanup(&kc, &[&be, &fe]);
    // The backend admits only some other app; the frontend may send to the backend.
    let backend = project(&be, "network:\n  allowFrom: [dg-nobody]\n");
    let frontend = project(
        &fe,
        &format!(
            "network:\n  allowFrom: [dg-nobody]\n  egress:\n    - app: {be}\n      port: 8000\n"
        ),
    );
    deploy_good(&kc, backend.path());
    deploy_good(&kc, frontend.path());
    let out = pake(
        &kc,
        backend.path(),
        &[
            "diagnose",
            "connectivity",
            &fe,
            &format!("{be}:8000"),
            "-o",
            "json",
        ],
    );
    let t = k8s::text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "ConnectivityDiagnosis", "{t}");
    assert_eq!(v["connection"]["allowed"], false, "{t}");
    let f = findings(&v);
    let np = f
        .iter()
        .find(|f| f["check"] == "NETWORK-POLICY")
        .unwrap_or_else(|| panic!("{t}"));
    assert!(
        evidence_has(
            np,
            &format!("ingress of {NS}/{be}-v1[Deployment]: isolated by")
        ),
        "{np}"
    );
    assert!(evidence_has(np, "no rule allows this peer"), "{np}");
    assert_eq!(np["fix"]["target"], "pakeYaml", "{np}");
    assert!(
        np["fix"]["change"]
            .as_str()
            .unwrap()
            .contains(&format!("allowFrom: [{fe}]")),
        "{np}"
    );
    // The live test ran from the frontend's own pod on the real node.
    let live = &v["connection"]["live"];
    assert_eq!(live["result"], "seen", "{t}");
    assert!(
        live["pod"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{fe}-v1-")),
        "{t}"
    );
    assert!(
        live["resolved"].is_string(),
        "DNS must resolve the Service: {t}"
    );
    if live["http"].is_string() {
        // This cluster does not enforce NetworkPolicy (docs/local-cluster.md): diagnose says so.
        let ne = f
            .iter()
            .find(|f| f["check"] == "POLICY-NOT-ENFORCED")
            .unwrap_or_else(|| panic!("{t}"));
        assert!(
            evidence_has(ne, "answered HTTP/1.0 200 OK")
                || evidence_has(ne, "answered HTTP/1.1 200 OK"),
            "{ne}"
        );
        assert_eq!(f.len(), 2, "{t}");
    } else {
        // An enforcing cluster: the connection was blocked, not the client broken.
        let e = live["error"].as_str().unwrap_or("");
        assert!(
            e.contains("can't connect") || e.contains("timed out"),
            "{t}"
        );
        assert_eq!(f.len(), 1, "{t}");
    }
    // The allowed direction (frontend's own egress) is not blamed.
    assert!(
        !evidence_has(np, "egress of")
            || evidence_has(np, "egress of") && !np["summary"].as_str().unwrap().contains("egress"),
        "{np}"
    );
    // The text report: the verdict per side, the live test, the findings.
    let out = pake(
        &kc,
        backend.path(),
        &["diagnose", "connectivity", &fe, &format!("{be}:8000")],
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{text}");
    assert!(
        text.contains("on 8000/TCP: DENIED by the NetworkPolicies"),
        "{text}"
    );
    assert!(
        text.contains(&format!("live test from pod {fe}-v1-")),
        "{text}"
    );
    assert!(
        text.contains(&format!("    network:\n      allowFrom: [{fe}]")),
        "{text}"
    );
}

/// On kwok nodes nothing runs: the containers are "not provable", never a pass,
/// and the exit code stays 0. Needs only the local cluster.
#[tokio::test]
async fn a_release_on_simulated_nodes_is_not_provable() {
    let Some(kc) = k8s::kubeconfig("diagnose_simulated") else {
        return;
    };
    let app = format!("dg-kwok-{}", k8s::suffix());
    let _cleanup = cleanup(&kc, &[&app]);
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);
    let out = pake(&kc, p.path(), &["deploy", "--timeout", "60s"]);
    assert!(out.status.success(), "{}", k8s::text(&out));
    let (code, v, t) = diagnose(&kc, p.path(), &[]);
    assert_eq!(code, Some(0), "{t}");
    let f = findings(&v);
    assert_eq!(f.len(), 1, "{t}");
    assert_eq!(f[0]["check"], "SIMULATED-NODE");
    assert_eq!(f[0]["status"], "notProvable");
    assert!(
        f[0]["summary"]
            .as_str()
            .unwrap()
            .starts_with("not provable on a simulated node"),
        "{t}"
    );
    let out = pake(
        &kc,
        p.path(),
        &["diagnose", "connectivity", &app, &format!("{app}:8000")],
    );
    let t = k8s::text(&out);
    assert!(t.contains("not provable on a simulated node"), "{t}");
}

#[tokio::test]
async fn a_readiness_probe_that_never_passes_names_the_probe_answer() {
    let Some(kc) = real_cluster("diagnose_not_ready").await else {
        return;
    };
    let app = format!("dg-unready-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let _cleanup = cleanup(&kc, &[&app]);
    let p = project(&app, "");
    deploy_good(&kc, p.path());
    break_deployment(
        &admin,
        &app,
        json!([{"op": "replace", "path": "/spec/template/spec/containers/0/readinessProbe/httpGet/path", "value": "/no-such-path"}]),
    )
    .await;
    // The kubelet reports the failed probe as an Unhealthy event of the new pod.
    let events = Api::<k8s_openapi::api::core::v1::Event>::namespaced(admin.clone(), NS);
    let t0 = Instant::now();
    while !events
        .list(&ListParams::default().fields("reason=Unhealthy"))
        .await
        .unwrap()
        .items
        .iter()
        .any(|e| {
            e.involved_object
                .name
                .as_deref()
                .unwrap_or("")
                .starts_with(&format!("{app}-v1-"))
        })
    {
        assert!(t0.elapsed() < Duration::from_secs(90), "no Unhealthy event");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (code, v, t) = diagnose(&kc, p.path(), &[]);
    assert_eq!(code, Some(1), "{t}");
    let f = only(&v, "NOT-READY");
    assert!(evidence_has(&f, "statuscode: 404"), "{f}");
    assert!(
        evidence_has(&f, "readinessProbe.httpGet.path: /no-such-path"),
        "{f}"
    );
    assert_eq!(f["fix"]["target"], "pakeYaml");
}

#[tokio::test]
async fn a_service_selecting_nothing_compares_selector_and_labels() {
    let Some(kc) = real_cluster("diagnose_no_endpoints").await else {
        return;
    };
    let app = format!("dg-noep-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let _cleanup = cleanup(&kc, &[&app]);
    let p = project(&app, "");
    deploy_good(&kc, p.path());
    let svcs = Api::<k8s_openapi::api::core::v1::Service>::namespaced(admin.clone(), NS);
    let mut svc = svcs.get(&app).await.unwrap();
    svc.spec.as_mut().unwrap().selector = Some([("app".to_string(), format!("{app}-typo"))].into());
    svcs.replace(&app, &PostParams::default(), &svc)
        .await
        .unwrap();
    // Wait for the EndpointSlice controller to drop the endpoint.
    let slices =
        Api::<k8s_openapi::api::discovery::v1::EndpointSlice>::namespaced(admin.clone(), NS);
    let t0 = Instant::now();
    while slices
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={app}")))
        .await
        .unwrap()
        .items
        .iter()
        .any(|s| s.endpoints.as_ref().is_some_and(|e| !e.is_empty()))
    {
        assert!(t0.elapsed() < Duration::from_secs(60), "endpoints stay");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (code, v, t) = diagnose(&kc, p.path(), &[]);
    assert_eq!(code, Some(1), "{t}");
    let f = only(&v, "NO-ENDPOINTS");
    assert!(
        evidence_has(
            &f,
            &format!("selector app={app}-typo: 0 pods match, 0 Ready")
        ),
        "{f}"
    );
    assert!(
        evidence_has(
            &f,
            &format!("pods of the release carry: app={app},version=v1")
        ),
        "{f}"
    );
    // The text report: a section with evidence and the fix.
    let out = pake(&kc, p.path(), &["diagnose"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{text}");
    assert!(
        text.contains(&format!("✗ NO-ENDPOINTS  Service {NS}/{app}")),
        "{text}"
    );
    assert!(
        text.contains("  evidence:\n") && text.contains("  fix (templates/k8s/service.yaml): "),
        "{text}"
    );
}

/// Bad input: a clear error, exit 2, before or without any change.
#[tokio::test]
async fn bad_input_is_a_usage_error() {
    let p = k8s::project(&k8s::pake_yaml("dg-bad", NS, ""), &[]);
    let kc = PathBuf::from("/nonexistent-kubeconfig");
    for (args, says) in [
        (
            &["diagnose", "connectivity", "a", "b:99999"][..],
            "port must be 1-65535",
        ),
        (
            &["diagnose", "connectivity", "a", "b:80/ICMP"][..],
            "protocol must be TCP, UDP or SCTP",
        ),
        (&["diagnose", "--tail", "0"][..], "0 is not in 1..=1000"),
        (
            &["diagnose", "-o", "sarif"][..],
            "does not support -o sarif",
        ),
    ] {
        let out = pake(&kc, p.path(), args);
        let t = k8s::text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {t}");
        assert!(t.contains(says), "{args:?}: {t}");
    }
    // An unknown workload, on a live namespace.
    let Some(kc) = k8s::kubeconfig("diagnose_bad_input") else {
        return;
    };
    let out = pake(
        &kc,
        p.path(),
        &[
            "diagnose",
            "connectivity",
            "dg-no-such-src",
            "dg-no-such-dst:8000",
        ],
    );
    let t = k8s::text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("no workload `dg-no-such-src`"), "{t}");
}

/// After a deploy that failed and was rolled back, the live release is the good one:
/// diagnose finds it healthy and says what the failed run saw (its pods are gone).
#[tokio::test]
async fn after_a_rolled_back_deploy_the_failure_is_shown() {
    let Some(kc) = real_cluster("diagnose_after_rollback").await else {
        return;
    };
    let app = format!("dg-rb-{}", k8s::suffix());
    let _cleanup = cleanup(&kc, &[&app]);
    let p = project(&app, "");
    deploy_good(&kc, p.path());
    let bad = project(&app, "env:\n  - name: PAKE_EXAMPLE_FAULT\n    value: oom\n");
    let out = pake(
        &kc,
        bad.path(),
        &["deploy", "--image", &image(), "--timeout", "120s"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", k8s::text(&out));
    // The failed deploy points at diagnose.
    assert!(
        k8s::text(&out).contains("next: `pake diagnose --env test`"),
        "{}",
        k8s::text(&out)
    );
    let (code, v, t) = diagnose(&kc, p.path(), &[]);
    assert_eq!(code, Some(0), "{t}");
    let last = &v["lastRelease"];
    assert_eq!(last["revision"], 2, "{t}");
    assert!(last["status"] != "deployed", "{t}");
    assert!(
        last["message"].as_str().unwrap().contains("OOMKilled"),
        "{t}"
    );
    let out = pake(&kc, p.path(), &["diagnose"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("last release: revision 2 "), "{text}");
}
