//! Fleet rollouts (`environments.<env>.clusters`) against real control
//! planes: the shared cluster plus two more instances of scripts/cluster
//! (kwok nodes only) that these tests start and stop themselves, with the
//! deployer contexts of all three merged into one kubeconfig (`flt-a`,
//! `flt-b`, `flt-c`). Set PAKE_TEST_SECOND_CLUSTER=0 to skip them.

mod k8s;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, Weak};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use serde_json::Value;

const NS: &str = "pake-test";

/// One more local control plane (own state dir and ports, no real node).
struct Instance {
    dir: tempfile::TempDir,
    envs: Vec<(String, String)>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Instance {
    fn cmd(&self, args: &[&str]) -> Output {
        let mut c = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster"));
        c.args(args);
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        c.output().unwrap()
    }
    fn up() -> Instance {
        let dir = tempfile::tempdir().unwrap();
        let mut envs = vec![
            (
                "PAKE_CLUSTER_DIR".to_string(),
                dir.path().join("state").display().to_string(),
            ),
            ("PAKE_CLUSTER_REAL_NODE".to_string(), "0".to_string()),
            // ESO is not under test here (and its metrics port is the shared cluster's).
            ("PAKE_CLUSTER_ESO".to_string(), "0".to_string()),
        ];
        for var in [
            "PAKE_CLUSTER_PORT",
            "PAKE_CLUSTER_ETCD_PORT",
            "PAKE_CLUSTER_ETCD_PEER_PORT",
            "PAKE_CLUSTER_KCM_PORT",
            "PAKE_CLUSTER_SCHEDULER_PORT",
            "PAKE_CLUSTER_KWOK_PORT",
        ] {
            envs.push((var.to_string(), free_port().to_string()));
        }
        let c = Instance { dir, envs };
        let out = c.cmd(&["up"]);
        assert!(out.status.success(), "extra cluster: {}", k8s::text(&out));
        c
    }
    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("state/kubeconfig")
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let out = self.cmd(&["down"]);
        if !out.status.success() {
            eprintln!("extra cluster down: {}", k8s::text(&out));
        }
    }
}

/// The two extra instances, shared by the tests of this file that run at
/// the same time and stopped when the last of them drops its handle.
struct Extras([Instance; 2]);

static EXTRAS: Mutex<Weak<Extras>> = Mutex::new(Weak::new());

fn extras() -> Arc<Extras> {
    let mut slot = EXTRAS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(e) = slot.upgrade() {
        return e;
    }
    let second = std::thread::spawn(Instance::up);
    let first = Instance::up();
    let e = Arc::new(Extras([first, second.join().unwrap()]));
    *slot = Arc::downgrade(&e);
    e
}

/// Three clusters and one kubeconfig naming their deployer contexts
/// `flt-a` (the shared cluster), `flt-b`, `flt-c`, plus `flt-dead` (a
/// server nothing listens on).
struct Fleet {
    _extras: Arc<Extras>,
    dir: tempfile::TempDir,
    /// Admin kubeconfig of a, b, c.
    admin: [PathBuf; 3],
}

impl Fleet {
    fn new(test: &str) -> Option<Fleet> {
        let shared = k8s::kubeconfig(test)?;
        if std::env::var("PAKE_TEST_SECOND_CLUSTER").as_deref() == Ok("0") {
            eprintln!("SKIP {test}: PAKE_TEST_SECOND_CLUSTER=0");
            return None;
        }
        let extras = extras();
        let admin = [shared, extras.0[0].kubeconfig(), extras.0[1].kubeconfig()];
        let dir = tempfile::tempdir().unwrap();
        let mut merged = kube::config::Kubeconfig::default();
        for (name, kc) in ["flt-a", "flt-b", "flt-c"].iter().zip(&admin) {
            add_context(&mut merged, kc, name, None);
        }
        let dead = format!("https://127.0.0.1:{}", free_port());
        add_context(&mut merged, &admin[1], "flt-dead", Some(&dead));
        std::fs::write(
            dir.path().join("kubeconfig"),
            serde_json::to_string(&merged).unwrap(),
        )
        .unwrap();
        Some(Fleet {
            _extras: extras,
            dir,
            admin,
        })
    }
    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }
    async fn admins(&self) -> Vec<kube::Client> {
        let mut v = Vec::new();
        for kc in &self.admin {
            v.push(k8s::client(kc, k8s::ADMIN).await);
        }
        v
    }
    async fn cleanup(&self, app: &str) {
        for c in self.admins().await {
            k8s::cleanup_app(&c, NS, app).await;
        }
    }
}

/// Copy the deployer context of `from` into `into` as `name` (its cluster
/// and user renamed alike; the server replaced when `server` is given).
fn add_context(into: &mut kube::config::Kubeconfig, from: &Path, name: &str, server: Option<&str>) {
    let kc = kube::config::Kubeconfig::read_from(from).unwrap();
    let ctx = kc
        .contexts
        .iter()
        .find(|c| c.name == k8s::DEPLOYER)
        .unwrap()
        .clone();
    let inner = ctx.context.clone().unwrap();
    let mut cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == inner.cluster)
        .unwrap()
        .clone();
    let mut user = kc
        .auth_infos
        .iter()
        .find(|u| Some(&u.name) == inner.user.as_ref())
        .unwrap()
        .clone();
    cluster.name = name.into();
    if let Some(s) = server {
        cluster.cluster.as_mut().unwrap().server = Some(s.into());
    }
    user.name = name.into();
    let mut ctx = ctx;
    ctx.name = name.into();
    let c = ctx.context.as_mut().unwrap();
    c.cluster = name.into();
    c.user = Some(name.into());
    into.clusters.push(cluster);
    into.auth_infos.push(user);
    into.contexts.push(ctx);
}

fn fleet_yaml(app: &str, clusters: &[&str], rollout: &str) -> String {
    let mut s = format!(
        "app: {app}\nimage: pake-test/{app}\ntag: \"1\"\nport: 8000\nreplicas: 2\nnetwork:\n  allowFrom: [frontend]\nenvironments:\n  prod:\n    namespace: {NS}\n    protected: true\n    clusters:\n"
    );
    for c in clusters {
        s.push_str(&format!("      - {c}\n"));
    }
    if !rollout.is_empty() {
        s.push_str(&format!("    rollout: {rollout}\n"));
    }
    s
}

/// A cluster whose pods can never be scheduled: its deploy fails at the rollout wait.
const NEVER: &str = "nodeSelector: {pake.dev/no-such-node: \"true\"}";

fn pake(f: &Fleet, dir: &Path, args: &[&str]) -> Output {
    let mut a = vec!["--env", "prod", "--yes"];
    a.extend_from_slice(args);
    k8s::pake(&f.kubeconfig(), dir, &a, &[])
}

/// `pake deploy -o json`: exit code and the FleetReport.
fn deploy(f: &Fleet, dir: &Path, extra: &[&str]) -> (Option<i32>, Value, String) {
    let mut a = vec!["deploy", "-o", "json", "--timeout", "20s"];
    a.extend_from_slice(extra);
    let out = pake(f, dir, &a);
    let t = k8s::text(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), v, t)
}

fn status_of<'a>(report: &'a Value, cluster: &str) -> &'a str {
    report["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == cluster)
        .unwrap_or_else(|| panic!("no cluster {cluster} in {report}"))["status"]
        .as_str()
        .unwrap()
}

fn ms(report: &Value, cluster: &str, field: &str) -> u64 {
    report["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == cluster)
        .unwrap()[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{cluster}.{field} in {report}"))
}

async fn image_of(c: &kube::Client, app: &str) -> Option<String> {
    let d = Api::<Deployment>::namespaced(c.clone(), NS)
        .get_opt(&format!("{app}-v1"))
        .await
        .unwrap()?;
    d.spec?.template.spec?.containers[0].image.clone()
}

fn write_yaml(dir: &Path, yaml: &str) {
    std::fs::write(dir.join("pake.yaml"), yaml).unwrap();
}

fn history(f: &Fleet, dir: &Path, cluster: &str) -> Vec<Value> {
    let out = pake(f, dir, &["history", "--cluster", cluster, "-o", "json"]);
    assert!(out.status.success(), "{}", k8s::text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["revisions"].as_array().unwrap().clone()
}

/// A fleet on all three at image :1, `clusters` as given.
fn first_release(f: &Fleet, dir: &Path, app: &str, clusters: &[&str]) -> Value {
    write_yaml(dir, &fleet_yaml(app, clusters, ""));
    let (code, r, t) = deploy(f, dir, &[]);
    assert_eq!(code, Some(0), "{t}");
    r
}

#[tokio::test]
async fn two_waves_pass_in_order_with_one_fleet_id_and_per_cluster_history_and_rollback() {
    let Some(f) = Fleet::new("fleet_two_waves") else {
        return;
    };
    let app = format!("flta-{}", k8s::suffix());
    let p = k8s::project(&fleet_yaml(&app, &[], ""), &[]);
    let dir = p.path();
    let clusters = [
        "{name: a, context: flt-a}",
        "{name: b, context: flt-b, replicas: 3}",
    ];
    let r = first_release(&f, dir, &app, &clusters);
    assert_eq!(r["kind"], "FleetReport", "{r}");
    assert_eq!(
        (status_of(&r, "a"), status_of(&r, "b")),
        ("passed", "passed")
    );
    assert_eq!(r["waves"], 2);
    // Wave 2 started only after wave 1 finished (verify included).
    assert!(ms(&r, "b", "startedMs") >= ms(&r, "a", "finishedMs"), "{r}");
    let admins = f.admins().await;
    // The per-cluster override reached cluster b only.
    let replicas = |c: kube::Client| {
        let app = app.clone();
        async move {
            Api::<Deployment>::namespaced(c, NS)
                .get(&format!("{app}-v1"))
                .await
                .unwrap()
                .spec
                .unwrap()
                .replicas
        }
    };
    assert_eq!(replicas(admins[0].clone()).await, Some(2));
    assert_eq!(replicas(admins[1].clone()).await, Some(3));

    // Second release: both at :2, one fleet id in each cluster's revision.
    let (code, r2, t) = deploy(&f, dir, &["--image", &format!("pake-test/{app}:2")]);
    assert_eq!(code, Some(0), "{t}");
    let id = r2["fleetId"].as_str().unwrap();
    for c in ["a", "b"] {
        let h = history(&f, dir, c);
        let last = h.last().unwrap();
        assert_eq!(last["details"]["fleet"]["id"], id, "{c}: {last}");
        assert_eq!(last["details"]["fleet"]["cluster"], c);
        assert_eq!(last["status"], "deployed");
    }
    // History and rollback per cluster: b returns to :1, a stays at :2.
    let out = pake(&f, dir, &["rollback", "--cluster", "b"]);
    assert!(out.status.success(), "{}", k8s::text(&out));
    let one = format!("pake-test/{app}:1");
    let two = format!("pake-test/{app}:2");
    assert_eq!(
        image_of(&admins[1], &app).await.as_deref(),
        Some(one.as_str())
    );
    assert_eq!(
        image_of(&admins[0], &app).await.as_deref(),
        Some(two.as_str())
    );
    assert_eq!(history(&f, dir, "b").last().unwrap()["action"], "rollback");
    assert_eq!(history(&f, dir, "a").last().unwrap()["action"], "deploy");
    // Without --cluster, a command that changes one cluster says which to pick ...
    let out = pake(&f, dir, &["rollback"]);
    assert_eq!(out.status.code(), Some(2), "{}", k8s::text(&out));
    assert!(k8s::text(&out).contains("--cluster NAME (one of: a, b)"));
    // ... and history shows each cluster's own.
    let out = pake(&f, dir, &["history"]);
    let t = k8s::text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("== cluster a (context flt-a)") && t.contains("== cluster b (context flt-b)"),
        "{t}"
    );
    assert!(t.contains(id), "the fleet id in the MESSAGE column: {t}");
    // Read-only commands go through every cluster.
    let out = pake(&f, dir, &["verify"]);
    let t = k8s::text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("== cluster a (context flt-a)") && t.contains("== cluster b (context flt-b)"),
        "{t}"
    );
    // a runs :2, pake.yaml says :1: the fleet diff shows both and exits 1.
    let out = pake(&f, dir, &["diff"]);
    let t = k8s::text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("== cluster a") && t.contains("== cluster b"),
        "{t}"
    );
    let out = pake(&f, dir, &["doctor", "--no-docker", "-o", "json"]);
    let t = k8s::text(&out);
    assert!(out.status.success(), "{t}");
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["kind"], "FleetDoctorReport", "{d}");
    assert_eq!(d["clusters"].as_array().unwrap().len(), 2, "{d}");
    f.cleanup(&app).await;
}

#[tokio::test]
async fn halt_stops_before_the_next_wave_and_restores_the_failed_cluster() {
    let Some(f) = Fleet::new("fleet_halt") else {
        return;
    };
    let app = format!("fltb-{}", k8s::suffix());
    let p = k8s::project(&fleet_yaml(&app, &[], ""), &[]);
    let dir = p.path();
    let ok = [
        "{name: a, context: flt-a}",
        "{name: b, context: flt-b, wave: 1}",
        "{name: c, context: flt-c, wave: 2}",
    ];
    first_release(&f, dir, &app, &ok);
    let broken = format!("{{name: b, context: flt-b, wave: 1, {NEVER}}}");
    write_yaml(
        dir,
        &fleet_yaml(&app, &[ok[0], &broken, ok[2]], "{onFailure: halt}"),
    );
    let (code, r, t) = deploy(&f, dir, &["--image", &format!("pake-test/{app}:2")]);
    assert_eq!(code, Some(1), "{t}");
    assert_eq!(status_of(&r, "a"), "passed", "{r}");
    assert_eq!(status_of(&r, "b"), "failed", "{r}");
    assert_eq!(status_of(&r, "c"), "skipped", "{r}");
    let admins = f.admins().await;
    let (one, two) = (format!("pake-test/{app}:1"), format!("pake-test/{app}:2"));
    assert_eq!(image_of(&admins[0], &app).await, Some(two));
    assert_eq!(image_of(&admins[1], &app).await, Some(one.clone()));
    assert_eq!(image_of(&admins[2], &app).await, Some(one));
    assert_eq!(history(&f, dir, "b").last().unwrap()["status"], "failed");
    assert_eq!(history(&f, dir, "c").len(), 1);
    f.cleanup(&app).await;
}

#[tokio::test]
async fn rollback_all_restores_the_clusters_that_passed_verified() {
    let Some(f) = Fleet::new("fleet_rollback_all") else {
        return;
    };
    let app = format!("fltc-{}", k8s::suffix());
    let p = k8s::project(&fleet_yaml(&app, &[], ""), &[]);
    let dir = p.path();
    let ok = [
        "{name: a, context: flt-a}",
        "{name: b, context: flt-b}",
        "{name: c, context: flt-c}",
    ];
    first_release(&f, dir, &app, &ok);
    let broken = format!("{{name: b, context: flt-b, {NEVER}}}");
    write_yaml(
        dir,
        &fleet_yaml(&app, &[ok[0], &broken, ok[2]], "{onFailure: rollback-all}"),
    );
    let (code, r, t) = deploy(&f, dir, &["--image", &format!("pake-test/{app}:2")]);
    assert_eq!(code, Some(1), "{t}");
    assert_eq!(status_of(&r, "a"), "rolled-back", "{r}");
    assert_eq!(status_of(&r, "b"), "failed", "{r}");
    assert_eq!(status_of(&r, "c"), "skipped", "{r}");
    assert_eq!(r["summary"]["rolledBack"], 1);
    // a's rollback ran its verify step and passed.
    let rb = &r["clusters"][0]["rollback"];
    assert_eq!(rb["ok"], true, "{rb}");
    assert!(
        rb["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "verify" && s["ok"] == true),
        "{rb}"
    );
    let one = format!("pake-test/{app}:1");
    for c in f.admins().await {
        assert_eq!(image_of(&c, &app).await.as_deref(), Some(one.as_str()));
    }
    let last = history(&f, dir, "a");
    let last = last.last().unwrap();
    assert_eq!(last["action"], "rollback");
    assert_eq!(last["details"]["fleet"]["id"], r["fleetId"]);
    f.cleanup(&app).await;
}

#[tokio::test]
async fn continue_deploys_the_others_and_exits_1() {
    let Some(f) = Fleet::new("fleet_continue") else {
        return;
    };
    let app = format!("fltd-{}", k8s::suffix());
    let p = k8s::project(&fleet_yaml(&app, &[], ""), &[]);
    let dir = p.path();
    let ok = [
        "{name: b, context: flt-b}",
        "{name: a, context: flt-a}",
        "{name: c, context: flt-c}",
    ];
    first_release(&f, dir, &app, &ok);
    let broken = format!("{{name: b, context: flt-b, {NEVER}}}");
    write_yaml(
        dir,
        &fleet_yaml(&app, &[&broken, ok[1], ok[2]], "{onFailure: continue}"),
    );
    let (code, r, t) = deploy(&f, dir, &["--image", &format!("pake-test/{app}:2")]);
    assert_eq!(code, Some(1), "{t}");
    assert_eq!(status_of(&r, "b"), "failed", "{r}");
    assert_eq!(status_of(&r, "a"), "passed", "{r}");
    assert_eq!(status_of(&r, "c"), "passed", "{r}");
    let admins = f.admins().await;
    let (one, two) = (format!("pake-test/{app}:1"), format!("pake-test/{app}:2"));
    assert_eq!(image_of(&admins[1], &app).await, Some(one));
    assert_eq!(image_of(&admins[0], &app).await, Some(two.clone()));
    assert_eq!(image_of(&admins[2], &app).await, Some(two));
    f.cleanup(&app).await;
}

#[tokio::test]
async fn max_parallel_bounds_the_clusters_running_at_once() {
    let Some(f) = Fleet::new("fleet_max_parallel") else {
        return;
    };
    let app = format!("flte-{}", k8s::suffix());
    let clusters = [
        "{name: a, context: flt-a, wave: 1}",
        "{name: b, context: flt-b, wave: 1}",
        "{name: c, context: flt-c, wave: 1}",
    ];
    let p = k8s::project(&fleet_yaml(&app, &clusters, "{maxParallel: 2}"), &[]);
    let summary = p.path().join("step-summary.md");
    let out = k8s::pake(
        &f.kubeconfig(),
        p.path(),
        &["--env", "prod", "--yes", "deploy", "-o", "json"],
        &[("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())],
    );
    let t = k8s::text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The GitHub step summary: one table row per cluster.
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains("| cluster | context | wave | result | revision | time |"),
        "{md}"
    );
    for c in [
        "| a | flt-a | 1 | passed |",
        "| b | flt-b | 1 | passed |",
        "| c | flt-c | 1 | passed |",
    ] {
        assert!(md.contains(c), "{md}");
    }
    assert_eq!(r["maxParallel"], 2);
    let mut spans: Vec<(u64, u64)> = ["a", "b", "c"]
        .iter()
        .map(|c| (ms(&r, c, "startedMs"), ms(&r, c, "finishedMs")))
        .collect();
    spans.sort();
    // Two ran at once (the second started before the first ended) ...
    assert!(spans[1].0 < spans[0].1.min(spans[1].1), "{spans:?}");
    // ... and the third waited for one of them.
    assert!(spans[2].0 >= spans[0].1.min(spans[1].1), "{spans:?}");
    f.cleanup(&app).await;
}

#[tokio::test]
async fn an_unreachable_cluster_stops_the_fleet_before_any_change() {
    let Some(f) = Fleet::new("fleet_unreachable") else {
        return;
    };
    let app = format!("fltf-{}", k8s::suffix());
    let clusters = [
        "{name: a, context: flt-a}",
        "{name: dead, context: flt-dead}",
    ];
    let p = k8s::project(&fleet_yaml(&app, &clusters, ""), &[]);
    let out = pake(&f, p.path(), &["deploy"]);
    let t = k8s::text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert!(t.contains("cluster dead"), "{t}");
    assert!(t.contains("cannot reach the API server"), "{t}");
    let admins = f.admins().await;
    assert_eq!(
        image_of(&admins[0], &app).await,
        None,
        "wave 1 changed: {t}"
    );
    // Bad fleet input is exit 2 with nothing changed: an unknown --cluster.
    let out = pake(&f, p.path(), &["deploy", "--cluster", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", k8s::text(&out));
    assert!(k8s::text(&out).contains("use one of: a, dead"));
    f.cleanup(&app).await;
}

// Multi-threaded: the Lease holder renews and releases while pake runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_are_serialized_per_cluster_by_the_leases() {
    let Some(f) = Fleet::new("fleet_concurrent") else {
        return;
    };
    let app = format!("fltg-{}", k8s::suffix());
    let clusters = ["{name: a, context: flt-a}", "{name: b, context: flt-b}"];
    let p = k8s::project(&fleet_yaml(&app, &clusters, ""), &[]);
    let dir = p.path();
    let admins = f.admins().await;
    // Another run holds cluster b's Lease (its own, in b's namespace).
    let other = pake::workflow::lock::acquire(
        &admins[1],
        NS,
        &format!("pake-lock-{app}-prod"),
        "another-run@ci pid 7",
        Default::default(),
    )
    .await
    .unwrap();
    let (code, r, t) = deploy(&f, dir, &[]);
    assert_eq!(code, Some(1), "{t}");
    assert_eq!(status_of(&r, "a"), "passed", "{r}");
    assert_eq!(status_of(&r, "b"), "failed", "{r}");
    let b = &r["clusters"][1]["error"];
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("another-run@ci pid 7"),
        "{b}"
    );
    // b was not touched: the Lease is taken before the first change.
    assert_eq!(image_of(&admins[1], &app).await, None);
    assert!(history(&f, dir, "b").is_empty());
    // --wait-lock waits for b's holder, then deploys there.
    let release = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        other.release().await.unwrap();
    });
    let (code, r, t) = deploy(&f, dir, &["--wait-lock"]);
    assert_eq!(code, Some(0), "{t}");
    assert_eq!(status_of(&r, "b"), "passed", "{r}");
    release.await.unwrap();

    // Two fleet runs at once: whichever meets the other's Lease waits
    // (--wait-lock) and both finish, each cluster's history without gaps or
    // pending records.
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_pake"))
            .current_dir(dir)
            .arg("--kubeconfig")
            .arg(f.kubeconfig())
            .args([
                "--env",
                "prod",
                "--yes",
                "deploy",
                "--wait-lock",
                "--timeout",
                "120s",
            ])
            .env_remove("PAKE_ENV")
            .env_remove("GITHUB_STEP_SUMMARY")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let runs = [spawn(), spawn()].map(|c| c.wait_with_output().unwrap());
    for o in &runs {
        assert!(o.status.success(), "{}", k8s::text(o));
    }
    for c in ["a", "b"] {
        let h = history(&f, dir, c);
        assert!(h.iter().all(|r| r["status"] != "pending"), "{c}: {h:?}");
        let revs: Vec<u64> = h.iter().map(|r| r["revision"].as_u64().unwrap()).collect();
        assert_eq!(revs, (1..=revs.len() as u64).collect::<Vec<_>>(), "{c}");
        assert_eq!(
            h.iter().filter(|r| r["status"] == "deployed").count(),
            1,
            "{c}"
        );
    }
    f.cleanup(&app).await;
}

// Multi-threaded: the test watches the cluster while pake runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_restores_the_running_cluster_and_starts_no_other() {
    let Some(f) = Fleet::new("fleet_sigterm") else {
        return;
    };
    let app = format!("flth-{}", k8s::suffix());
    let p = k8s::project(&fleet_yaml(&app, &[], ""), &[]);
    let dir = p.path();
    let ok = [
        "{name: a, context: flt-a}",
        "{name: b, context: flt-b}",
        "{name: c, context: flt-c}",
    ];
    first_release(&f, dir, &app, &ok);
    // b never becomes ready; even `continue` must not go on to c after a signal.
    let slow = format!("{{name: b, context: flt-b, {NEVER}}}");
    write_yaml(
        dir,
        &fleet_yaml(&app, &[ok[0], &slow, ok[2]], "{onFailure: continue}"),
    );
    let two = format!("pake-test/{app}:2");
    let child = Command::new(env!("CARGO_BIN_EXE_pake"))
        .current_dir(dir)
        .arg("--kubeconfig")
        .arg(f.kubeconfig())
        .args([
            "--env",
            "prod",
            "--yes",
            "deploy",
            "-o",
            "json",
            "--timeout",
            "120s",
        ])
        .args(["--image", &two])
        .env_remove("PAKE_ENV")
        .env_remove("GITHUB_STEP_SUMMARY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let admins = f.admins().await;
    let t = std::time::Instant::now();
    while image_of(&admins[1], &app).await.as_deref() != Some(two.as_str()) {
        assert!(t.elapsed().as_secs() < 90, "b never started");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    let text = k8s::text(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status_of(&r, "a"), "passed", "{r}");
    assert_eq!(status_of(&r, "b"), "failed", "{r}");
    assert_eq!(status_of(&r, "c"), "skipped", "{r}");
    let one = format!("pake-test/{app}:1");
    assert_eq!(image_of(&admins[0], &app).await, Some(two));
    assert_eq!(image_of(&admins[1], &app).await, Some(one.clone()));
    assert_eq!(image_of(&admins[2], &app).await, Some(one));
    assert_eq!(
        history(&f, dir, "b").last().unwrap()["status"],
        "rolled-back"
    );
    assert_eq!(history(&f, dir, "c").len(), 1);
    f.cleanup(&app).await;
}

async fn selects(c: &kube::Client, service: &str) -> Option<String> {
    let s = Api::<k8s_openapi::api::core::v1::Service>::namespaced(c.clone(), NS)
        .get(service)
        .await
        .unwrap();
    s.spec?.selector?.get("version").cloned()
}

#[tokio::test]
async fn a_bluegreen_switch_across_clusters_switches_all_or_none() {
    let Some(f) = Fleet::new("fleet_bluegreen") else {
        return;
    };
    let app = format!("flti-{}", k8s::suffix());
    let p = k8s::project(&fleet_yaml(&app, &[], ""), &[]);
    let dir = p.path();
    first_release(
        &f,
        dir,
        &app,
        &["{name: a, context: flt-a}", "{name: b, context: flt-b}"],
    );
    let image = format!("pake-test/{app}:2");
    let candidate = |cluster: &str| {
        let out = pake(
            &f,
            dir,
            &[
                "bluegreen",
                "deploy",
                "v2",
                "--image",
                &image,
                "--timeout",
                "60s",
                "--cluster",
                cluster,
            ],
        );
        assert!(out.status.success(), "{}", k8s::text(&out));
    };
    let admins = f.admins().await;
    // v2 is a candidate on a only: a switches, b cannot, a is switched back.
    candidate("a");
    let out = pake(&f, dir, &["bluegreen", "switch", "v2", "-o", "json"]);
    let t = k8s::text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["kind"], "FleetSwitchReport", "{r}");
    assert_eq!(r["clusters"][0]["switch"]["ok"], true, "{r}");
    assert_eq!(r["clusters"][0]["switchedBack"]["ok"], true, "{r}");
    assert_eq!(r["clusters"][0]["switchedBack"]["to"], "v1", "{r}");
    assert!(r["clusters"][1]["switch"]["ok"] != true, "{r}");
    for c in &admins[..2] {
        assert_eq!(selects(c, &app).await.as_deref(), Some("v1"));
    }
    // With the candidate everywhere, both switch.
    candidate("b");
    let out = pake(&f, dir, &["bluegreen", "switch", "v2"]);
    let t = k8s::text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("switched to v2 on all 2 cluster(s)"), "{t}");
    // bluegreen status goes through both clusters.
    let out = pake(&f, dir, &["bluegreen", "status", "-o", "json"]);
    let t = k8s::text(&out);
    assert!(out.status.success(), "{t}");
    let docs: Vec<Value> = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect();
    assert_eq!(docs.len(), 2, "{t}");
    assert!(docs.iter().all(|d| d["active"] == "v2"), "{t}");
    for c in &admins[..2] {
        assert_eq!(selects(c, &app).await.as_deref(), Some("v2"));
    }
    f.cleanup(&app).await;
}

/// Offline: per-cluster overrides in what is rendered, and bad fleets are exit 2.
#[test]
fn per_cluster_overrides_render_offline_and_bad_fleets_are_usage_errors() {
    let yaml = "app: fltj\nimage: pake-test/fltj\nreplicas: 2\nenvironments:\n  prod:\n    namespace: pake-test\n    clusters:\n      - {name: canary, context: c1}\n      - {name: eu, context: c2, wave: 2, replicas: 4, namespace: pake-prod}\n";
    let p = k8s::project(yaml, &[]);
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_pake"))
            .current_dir(p.path())
            .args(args)
            .env_remove("PAKE_ENV")
            .env_remove("KUBECONFIG")
            .output()
            .unwrap()
    };
    let out = run(&["render", "--env", "prod", "--cluster", "eu"]);
    let t = k8s::text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("replicas: 4") && t.contains("namespace: pake-prod"),
        "{t}"
    );
    let out = run(&["render", "--env", "prod", "--cluster", "canary"]);
    let t = k8s::text(&out);
    assert!(t.contains("replicas: 2") && !t.contains("pake-prod"), "{t}");
    let out = run(&["deploy", "--env", "prod", "--dry-run=client"]);
    let t = k8s::text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("== cluster canary (context c1)") && t.contains("== cluster eu (context c2)"),
        "{t}"
    );
    // Two clusters on one context: exit 2 naming the line, before any cluster is contacted.
    std::fs::write(
        p.path().join("pake.yaml"),
        yaml.replace("context: c2", "context: c1"),
    )
    .unwrap();
    let out = run(&["deploy", "--env", "prod", "--yes"]);
    let t = k8s::text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("pake.yaml:") && t.contains("both use context \"c1\""),
        "{t}"
    );
}

/// The value of key `password` of Secret `name` (test-side only, never printed).
async fn password(c: &kube::Client, name: &str) -> Vec<u8> {
    let s = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(c.clone(), NS)
        .get(name)
        .await
        .unwrap();
    s.data.unwrap()["password"].0.clone()
}

/// `pake rotate-secret NAME -o json` on the fleet: exit code and the report.
fn rotate(f: &Fleet, dir: &Path, extra: &[&str]) -> (Option<i32>, Value, String) {
    let mut a = vec!["rotate-secret", "-o", "json", "--timeout", "15s"];
    a.extend_from_slice(extra);
    let out = pake(f, dir, &a);
    let t = k8s::text(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), v, t)
}

#[tokio::test]
async fn rotate_secret_shares_one_value_or_one_per_cluster_and_a_failure_undoes_the_rest() {
    let Some(f) = Fleet::new("fleet_rotate") else {
        return;
    };
    let app = format!("fltr-{}", k8s::suffix());
    let secret = format!("{app}-db");
    let extra = format!(
        "secrets:\n  - name: {secret}\n    keys:\n      password:\n        generate: {{bytes: 32}}\nenv:\n  - name: DB_PASSWORD\n    secretKeyRef: {{name: {secret}, key: password}}\n"
    );
    let clusters = ["{name: a, context: flt-a}", "{name: b, context: flt-b}"];
    let yaml =
        fleet_yaml(&app, &clusters, "").replace("environments:", &format!("{extra}environments:"));
    let p = k8s::project(&yaml, &[]);
    let dir = p.path();
    let (code, _, t) = deploy(&f, dir, &[]);
    assert_eq!(code, Some(0), "{t}");
    let admins = f.admins().await;
    let before = [
        password(&admins[0], &secret).await,
        password(&admins[1], &secret).await,
    ];

    // Shared (the default): one new value, the same on both clusters, in wave order.
    let (code, r, t) = rotate(&f, dir, &[&secret]);
    assert_eq!(code, Some(0), "{t}");
    assert_eq!(r["kind"], "FleetRotationReport", "{r}");
    assert_eq!(
        (status_of(&r, "a"), status_of(&r, "b")),
        ("rotated", "rotated"),
        "{r}"
    );
    assert_eq!(r["perCluster"], false);
    let shared = [
        password(&admins[0], &secret).await,
        password(&admins[1], &secret).await,
    ];
    assert_eq!(shared[0], shared[1], "one value on every cluster");
    assert_ne!(shared[0], before[0]);
    assert_ne!(shared[1], before[1]);
    assert!(
        !t.contains(std::str::from_utf8(&shared[0]).unwrap()),
        "the value was printed"
    );
    for c in ["a", "b"] {
        let last = history(&f, dir, c).last().unwrap().clone();
        assert_eq!(
            (last["action"].as_str(), last["status"].as_str()),
            (Some("rotation"), Some("rotation")),
            "{last}"
        );
    }

    // --per-cluster: a different value on each.
    let (code, r, t) = rotate(&f, dir, &[&secret, "--per-cluster"]);
    assert_eq!(code, Some(0), "{t}");
    assert_eq!(r["perCluster"], true);
    let each = [
        password(&admins[0], &secret).await,
        password(&admins[1], &secret).await,
    ];
    assert_ne!(each[0], each[1], "one value per cluster");
    assert_ne!(each[0], shared[0]);

    // A failure on the second cluster (its pods can no longer be scheduled):
    // b restores itself, a (already rotated) is undone.
    let patch = serde_json::json!({"spec": {"template": {"spec": {"nodeSelector": {"pake.dev/no-such-node": "true"}}}}});
    Api::<Deployment>::namespaced(admins[1].clone(), NS)
        .patch(
            &format!("{app}-v1"),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    let (code, r, t) = rotate(&f, dir, &[&secret]);
    assert_eq!(code, Some(1), "{t}");
    assert_eq!(
        (status_of(&r, "a"), status_of(&r, "b")),
        ("restored", "failed"),
        "{r}"
    );
    assert_eq!(
        password(&admins[0], &secret).await,
        each[0],
        "a has its previous value again"
    );
    assert_eq!(
        password(&admins[1], &secret).await,
        each[1],
        "b has its previous value again"
    );
    assert_eq!(
        history(&f, dir, "a").last().unwrap()["status"],
        "rolled-back"
    );

    // Narrowed with --cluster: only that cluster rotates.
    let (code, _, t) = rotate(&f, dir, &[&secret, "--cluster", "a"]);
    assert_eq!(code, Some(0), "{t}");
    let narrowed = password(&admins[0], &secret).await;
    assert_ne!(narrowed, each[0]);
    assert_eq!(password(&admins[1], &secret).await, each[1]);

    // Bad input changes nothing anywhere (exit 2): --per-cluster with a given
    // value, and a cluster whose Secret is missing (checked before the first
    // cluster rotates).
    let (code, _, t) = rotate(&f, dir, &[&secret, "--per-cluster", "--from-env", "HOME"]);
    assert_eq!(code, Some(2), "{t}");
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(admins[1].clone(), NS)
        .delete(&secret, &Default::default())
        .await
        .unwrap();
    let (code, _, t) = rotate(&f, dir, &[&secret]);
    assert_eq!(code, Some(2), "{t}");
    assert!(t.contains("not found"), "{t}");
    assert_eq!(password(&admins[0], &secret).await, narrowed, "a unchanged");
    f.cleanup(&app).await;
    for c in &admins {
        let _ = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(c.clone(), NS)
            .delete(&secret, &Default::default())
            .await;
    }
}
