//! Fault injection: pake is killed, cancelled or cut off mid-run, and the
//! next run must succeed with history matching the live objects, no lock
//! outliving its expiry and no credential lost. Runs against the shared
//! cluster (own app names, `pake-test` namespace) as the `deployer` identity;
//! the API-server restart runs on a second cluster instance this test starts
//! and stops itself (own PAKE_CLUSTER_DIR and ports).

mod k8s;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::Value;

const NS: &str = "pake-test";

fn args<'a>(cmd: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["--context", k8s::DEPLOYER, "--env", "test"];
    a.extend_from_slice(cmd);
    a
}

fn run(kc: &Path, dir: &Path, cmd: &[&str], env: &[(&str, &str)]) -> Output {
    k8s::pake(kc, dir, &args(cmd), env)
}

fn spawn(kc: &Path, dir: &Path, cmd: &[&str], env: &[(&str, &str)]) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pake"));
    c.current_dir(dir)
        .arg("--kubeconfig")
        .arg(kc)
        .args(args(cmd))
        .env_remove("PAKE_ENV")
        .env_remove("GITHUB_STEP_SUMMARY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t = Instant::now();
    while !f().await {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn image_of(c: &kube::Client, ns: &str, name: &str) -> Option<String> {
    let d = Api::<Deployment>::namespaced(c.clone(), ns)
        .get_opt(name)
        .await
        .ok()??;
    d.spec?.template.spec?.containers.first()?.image.clone()
}

/// The managedFields entries of `manager` on the Deployment (main resource).
async fn entries_of(c: &kube::Client, name: &str, manager: &str) -> Vec<String> {
    let d = Api::<Deployment>::namespaced(c.clone(), NS)
        .get(name)
        .await
        .unwrap();
    d.metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.manager.as_deref() == Some(manager) && m.subresource.is_none())
        .map(|m| m.operation.unwrap_or_default())
        .collect()
}

fn history(kc: &Path, dir: &Path) -> Vec<Value> {
    let out = run(kc, dir, &["history", "-o", "json"], &[]);
    assert!(out.status.success(), "{}", k8s::text(&out));
    let h: Value = serde_json::from_slice(&out.stdout).unwrap();
    h["revisions"].as_array().unwrap().clone()
}

fn statuses(h: &[Value]) -> Vec<String> {
    h.iter()
        .map(|r| r["status"].as_str().unwrap().to_string())
        .collect()
}

async fn lease(c: &kube::Client, app: &str) -> Option<Lease> {
    Api::<Lease>::namespaced(c.clone(), NS)
        .get_opt(&format!("pake-lock-{app}-test"))
        .await
        .unwrap()
}

/// A template whose pods never schedule: the rollout wait runs until --timeout.
fn stuck_template() -> String {
    k8s::deployment_template_with(
        "      serviceAccountName:",
        "      nodeSelector:\n        pake.dev/no-such-node: \"true\"\n      serviceAccountName:",
    )
}

fn set_template(dir: &Path, t: Option<&str>) {
    let p = dir.join("templates/k8s/deployment.yaml");
    match t {
        Some(t) => {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        }
        None => {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Start a stuck deploy of `image` and return once its new Deployment is live.
async fn stuck_deploy_in_wait(
    kc: &Path,
    dir: &Path,
    admin: &kube::Client,
    app: &str,
    image: &str,
) -> Child {
    set_template(dir, Some(&stuck_template()));
    let child = spawn(
        kc,
        dir,
        &["deploy", "--image", image, "--timeout", "120s"],
        &[],
    );
    let name = format!("{app}-v1");
    wait_for(
        "the new image to be applied",
        Duration::from_secs(60),
        || async { image_of(admin, NS, &name).await.as_deref() == Some(image) },
    )
    .await;
    // Let it settle into the rollout wait.
    tokio::time::sleep(Duration::from_millis(500)).await;
    child
}

/// Every automatic rollback (failed rollout, PodSecurity rejection, SIGINT)
/// leaves pake the single owner of its fields: the next deploy applies
/// without --force-conflicts.
#[tokio::test]
async fn deploy_after_each_kind_of_rollback_needs_no_force() {
    let Some(kc) = k8s::kubeconfig("faults_rollback_ssa") else {
        return;
    };
    let app = format!("frb-{}", k8s::suffix());
    let name = format!("{app}-v1");
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);
    let dir = p.path();
    let ok = |image: &str| {
        set_template(dir, None);
        let out = run(
            &kc,
            dir,
            &["deploy", "--image", image, "--timeout", "60s"],
            &[],
        );
        assert!(out.status.success(), "deploy {image}: {}", k8s::text(&out));
    };
    ok("pake-test/frb:1");

    // 1. A rollout that never becomes ready (the reproduction).
    set_template(dir, Some(&stuck_template()));
    let out = run(
        &kc,
        dir,
        &["deploy", "--image", "pake-test/frb:2", "--timeout", "10s"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", k8s::text(&out));
    assert_eq!(
        image_of(&admin, NS, &name).await.unwrap(),
        "pake-test/frb:1"
    );
    assert_eq!(
        entries_of(&admin, &name, "pake").await,
        ["Apply"],
        "pake must own its fields through one Apply entry"
    );
    ok("pake-test/frb:3");

    // 2. PodSecurity rejection.
    let pss = k8s::deployment_template_with(
        "            allowPrivilegeEscalation: false",
        "            allowPrivilegeEscalation: true",
    );
    set_template(dir, Some(&pss));
    let out = run(
        &kc,
        dir,
        &["deploy", "--image", "pake-test/frb:4", "--timeout", "60s"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", k8s::text(&out));
    assert_eq!(
        image_of(&admin, NS, &name).await.unwrap(),
        "pake-test/frb:3"
    );
    assert_eq!(entries_of(&admin, &name, "pake").await, ["Apply"]);
    ok("pake-test/frb:5");

    // 3. Ctrl-C in the middle of the rollout wait.
    let child = stuck_deploy_in_wait(&kc, dir, &admin, &app, "pake-test/frb:6").await;
    signal(&child, libc::SIGINT);
    let out = child.wait_with_output().unwrap();
    let t = k8s::text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("interrupted by SIGINT"), "{t}");
    assert_eq!(
        image_of(&admin, NS, &name).await.unwrap(),
        "pake-test/frb:5"
    );
    assert_eq!(entries_of(&admin, &name, "pake").await, ["Apply"]);
    assert!(
        lease(&admin, &app).await.is_none(),
        "the lock was not released"
    );
    ok("pake-test/frb:7");

    let h = history(&kc, dir);
    assert_eq!(
        statuses(&h),
        [
            "superseded",
            "failed",
            "superseded",
            "failed",
            "superseded",
            "rolled-back",
            "deployed"
        ],
        "{h:?}"
    );
    k8s::cleanup_app(&admin, NS, &app).await;
    let _ = Api::<Lease>::namespaced(admin.clone(), NS)
        .delete(&format!("pake-lock-{app}-test"), &Default::default())
        .await;
}

/// SIGTERM (a cancelled CI job) and SIGHUP (a closed terminal) are handled
/// exactly like Ctrl-C; a second signal does not stop the restore.
#[tokio::test]
async fn sigterm_and_sighup_mid_deploy_roll_back_record_and_unlock() {
    let Some(kc) = k8s::kubeconfig("faults_sigterm") else {
        return;
    };
    let app = format!("fsig-{}", k8s::suffix());
    let name = format!("{app}-v1");
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);
    let dir = p.path();
    let out = run(&kc, dir, &["deploy", "--image", "pake-test/fsig:1"], &[]);
    assert!(out.status.success(), "{}", k8s::text(&out));

    for (sig, shown, image) in [
        (libc::SIGTERM, "SIGTERM", "pake-test/fsig:2"),
        (libc::SIGHUP, "SIGHUP", "pake-test/fsig:3"),
    ] {
        let child = stuck_deploy_in_wait(&kc, dir, &admin, &app, image).await;
        signal(&child, sig);
        // A second signal while it restores: announced, not obeyed.
        tokio::time::sleep(Duration::from_millis(50)).await;
        signal(&child, sig);
        let out = child.wait_with_output().unwrap();
        let t = k8s::text(&out);
        assert_eq!(out.status.code(), Some(1), "{shown}: {t}");
        assert!(t.contains(&format!("interrupted by {shown}")), "{t}");
        assert!(t.contains("will not stop half way"), "{t}");
        assert!(t.contains("rollback: restored"), "{t}");
        assert_eq!(
            image_of(&admin, NS, &name).await.unwrap(),
            "pake-test/fsig:1"
        );
        assert!(
            lease(&admin, &app).await.is_none(),
            "{shown}: lock not released"
        );
        let h = history(&kc, dir);
        assert_eq!(h.last().unwrap()["status"], "rolled-back", "{h:?}");
    }
    set_template(dir, None);
    let out = run(&kc, dir, &["deploy", "--image", "pake-test/fsig:4"], &[]);
    assert!(out.status.success(), "{}", k8s::text(&out));
    k8s::cleanup_app(&admin, NS, &app).await;
}

/// SIGKILL mid-deploy: the pending revision stays; the lock expires by
/// itself; the next deploy reports how far the dead run got, marks it
/// interrupted and reconciles; history then matches the live objects.
#[tokio::test]
async fn sigkill_mid_deploy_is_reported_and_reconciled() {
    let Some(kc) = k8s::kubeconfig("faults_sigkill") else {
        return;
    };
    let app = format!("fkill-{}", k8s::suffix());
    let name = format!("{app}-v1");
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);
    let dir = p.path();
    let out = run(&kc, dir, &["deploy", "--image", "pake-test/fkill:1"], &[]);
    assert!(out.status.success(), "{}", k8s::text(&out));

    let mut child = stuck_deploy_in_wait(&kc, dir, &admin, &app, "pake-test/fkill:2").await;
    child.kill().unwrap();
    let killed = Instant::now();
    child.wait().unwrap();
    // The dead run left its revision pending (written before its first change).
    let h = history(&kc, dir);
    assert_eq!(h.last().unwrap()["status"], "pending", "{h:?}");
    assert!(lease(&admin, &app).await.is_some());

    set_template(dir, None);
    let out = run(
        &kc,
        dir,
        &[
            "deploy",
            "--image",
            "pake-test/fkill:3",
            "--wait-lock",
            "--timeout",
            "90s",
        ],
        &[],
    );
    let t = k8s::text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        killed.elapsed() < Duration::from_secs(30 + 30),
        "the killed run's lock outlived its expiry: {:?}",
        killed.elapsed()
    );
    assert!(
        t.contains("revision 2") && t.contains("did not finish"),
        "{t}"
    );
    assert!(t.contains("it reached step deploy"), "{t}");
    assert!(
        t.contains(&format!("Deployment pake-test/{name}: as this revision")),
        "{t}"
    );
    eprintln!("deploy after SIGKILL:\n{t}");
    let h = history(&kc, dir);
    assert_eq!(
        statuses(&h),
        ["superseded", "interrupted", "deployed"],
        "{h:?}"
    );
    assert_eq!(h[2]["image"], "pake-test/fkill:3");
    assert_eq!(
        image_of(&admin, NS, &name).await.unwrap(),
        "pake-test/fkill:3"
    );
    assert!(lease(&admin, &app).await.is_none());
    k8s::cleanup_app(&admin, NS, &app).await;
}

/// A closed stdout (`pake deploy | head -0`) neither kills pake nor stops it
/// half way: the deploy finishes and is recorded.
#[tokio::test]
async fn closed_stdout_does_not_cut_a_deploy() {
    let Some(kc) = k8s::kubeconfig("faults_sigpipe") else {
        return;
    };
    let app = format!("fpipe-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);
    let mut child = spawn(
        &kc,
        p.path(),
        &["deploy", "--image", "pake-test/fpipe:1"],
        &[],
    );
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let h = history(&kc, p.path());
    assert_eq!(statuses(&h), ["deployed"]);
    assert_eq!(
        image_of(&admin, NS, &format!("{app}-v1")).await.unwrap(),
        "pake-test/fpipe:1"
    );
    k8s::cleanup_app(&admin, NS, &app).await;
}

fn rotation_project(app: &str) -> tempfile::TempDir {
    let extra = "secrets:\n  - name: CREDS\n    keys:\n      username:\n        fromEnv: PAKE_T_USER\nenv:\n  - name: DB_USER\n    secretKeyRef: {name: CREDS, key: username}\n"
        .replace("CREDS", &format!("{app}-db"));
    k8s::project(&k8s::pake_yaml(app, NS, &extra), &[])
}

async fn secret_value(c: &kube::Client, name: &str, key: &str) -> Vec<u8> {
    Api::<Secret>::namespaced(c.clone(), NS)
        .get(name)
        .await
        .unwrap()
        .data
        .unwrap()[key]
        .0
        .clone()
}

/// Rotation cut by SIGTERM right after its write is restored and recorded;
/// cut by SIGKILL it is reported by the next deploy, which keeps the rotated
/// value (the pods may run it) instead of silently reverting it.
#[tokio::test]
async fn rotation_cut_mid_way_loses_no_credential() {
    let Some(kc) = k8s::kubeconfig("faults_rotation") else {
        return;
    };
    let app = format!("frot-{}", k8s::suffix());
    let secret = format!("{app}-db");
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = rotation_project(&app);
    let dir = p.path();
    let env = [("PAKE_T_USER", "app-user-1")];
    let out = run(&kc, dir, &["deploy"], &env);
    assert!(out.status.success(), "{}", k8s::text(&out));
    let original = secret_value(&admin, &secret, "username").await;

    // SIGTERM right after the Secret write: restored to the original value.
    let child = spawn(
        &kc,
        dir,
        &[
            "rotate-secret",
            &secret,
            "--key",
            "username",
            "--length",
            "16",
        ],
        &[],
    );
    wait_for("the rotated value", Duration::from_secs(60), || async {
        secret_value(&admin, &secret, "username").await != original
    })
    .await;
    signal(&child, libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    let t = k8s::text(&out);
    // Either caught mid-way (restored, exit 1) or it had already finished (exit 0).
    let live = secret_value(&admin, &secret, "username").await;
    let h = history(&kc, dir);
    let last = h.last().unwrap();
    eprintln!(
        "rotation SIGTERM: exit {:?}, status {}",
        out.status.code(),
        last["status"]
    );
    match out.status.code() {
        Some(1) => {
            assert!(t.contains("interrupted by SIGTERM"), "{t}");
            assert_eq!(live, original, "not restored: {t}");
            assert_eq!(last["status"], "failed", "{h:?}");
        }
        Some(0) => assert_eq!(last["status"], "rotation", "{h:?}"),
        other => panic!("exit {other:?}: {t}"),
    }
    assert!(lease(&admin, &app).await.is_none());
    let before_kill = secret_value(&admin, &secret, "username").await;

    // SIGKILL right after the write: nothing restores it.
    let mut child = spawn(
        &kc,
        dir,
        &[
            "rotate-secret",
            &secret,
            "--key",
            "username",
            "--length",
            "16",
        ],
        &[],
    );
    wait_for("the rotated value", Duration::from_secs(60), || async {
        secret_value(&admin, &secret, "username").await != before_kill
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let rotated = secret_value(&admin, &secret, "username").await;
    assert_ne!(rotated, before_kill);
    let h = history(&kc, dir);
    let last = h.last().unwrap().clone();
    eprintln!("rotation SIGKILL: status {}", last["status"]);
    // Its Lease has not expired yet, so the record still shows as pending.
    assert!(
        matches!(last["status"].as_str(), Some("pending" | "rotation")),
        "{h:?}"
    );

    // The next deploy (its source still yields the original username) reports
    // the interrupted rotation and keeps the rotated value.
    let out = run(
        &kc,
        dir,
        &["deploy", "--wait-lock", "--timeout", "90s"],
        &env,
    );
    let t = k8s::text(&out);
    eprintln!("deploy after the killed rotation:\n{t}");
    assert!(out.status.success(), "{t}");
    if last["status"] == "pending" {
        assert!(
            t.contains("did not finish") && t.contains("NEW value"),
            "{t}"
        );
        // Kept: the Secret is left as it is.
        assert!(t.contains("secrets: 1 unchanged"), "{t}");
    }
    assert_eq!(
        secret_value(&admin, &secret, "username").await,
        rotated,
        "the rotated credential was reverted: {t}"
    );
    let h = history(&kc, dir);
    assert!(
        h.iter().all(|r| r["status"] != "pending"),
        "a pending revision survived the next run: {h:?}"
    );
    // And rotate-secret works again.
    let out = run(
        &kc,
        dir,
        &[
            "rotate-secret",
            &secret,
            "--key",
            "username",
            "--length",
            "16",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", k8s::text(&out));
    k8s::cleanup_app(&admin, NS, &app).await;
}

/// A second cluster instance, started and stopped by the test.
struct SecondCluster {
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

impl SecondCluster {
    fn script() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster")
    }
    fn cmd(&self, args: &[&str]) -> Output {
        let mut c = Command::new(Self::script());
        c.args(args);
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        c.output().unwrap()
    }
    fn up() -> SecondCluster {
        let dir = tempfile::tempdir().unwrap();
        let mut envs = vec![
            (
                "PAKE_CLUSTER_DIR".to_string(),
                dir.path().join("state").display().to_string(),
            ),
            // Control plane and kwok nodes only: the shared cluster owns the
            // real node (its network namespace and pod range) and ESO's port.
            ("PAKE_CLUSTER_REAL_NODE".to_string(), "0".to_string()),
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
        let c = SecondCluster { dir, envs };
        let out = c.cmd(&["up"]);
        assert!(out.status.success(), "second cluster: {}", k8s::text(&out));
        c
    }
    fn kubeconfig(&self) -> std::path::PathBuf {
        self.dir.path().join("state/kubeconfig")
    }
    fn pid(&self, component: &str) -> i32 {
        std::fs::read_to_string(self.dir.path().join(format!("state/run/{component}.pid")))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for SecondCluster {
    fn drop(&mut self) {
        let out = self.cmd(&["down"]);
        if !out.status.success() {
            eprintln!("second cluster down: {}", k8s::text(&out));
        }
    }
}

/// The API server dies and comes back while pake waits for a rollout, then
/// etcd does: pake rides it out (connection refused, 5xx and the 403s of an API server whose
/// authorization caches are still syncing are retried) and verifies.
#[tokio::test]
async fn api_server_restart_mid_wait_is_ridden_out() {
    let Some(_) = k8s::kubeconfig("faults_apiserver_restart") else {
        return;
    };
    if std::env::var("PAKE_TEST_SECOND_CLUSTER").as_deref() == Ok("0") {
        eprintln!("SKIP faults_apiserver_restart: PAKE_TEST_SECOND_CLUSTER=0");
        return;
    }
    let cluster = SecondCluster::up();
    let kc = cluster.kubeconfig();
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let app = format!("frst-{}", k8s::suffix());
    let name = format!("{app}-v1");
    // pake-test is one of the deployer's namespaces on every instance.
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);
    let dir = p.path();
    let out = run(&kc, dir, &["deploy", "--image", "pake-test/frst:1"], &[]);
    assert!(out.status.success(), "{}", k8s::text(&out));

    // A release that schedules only on a node labelled later.
    let tpl = k8s::deployment_template_with(
        "      serviceAccountName:",
        "      nodeSelector:\n        pake.dev/fault-test: \"ready\"\n      serviceAccountName:",
    );
    set_template(dir, Some(&tpl));
    let child = spawn(
        &kc,
        dir,
        &["deploy", "--image", "pake-test/frst:2", "--timeout", "180s"],
        &[("PAKE_LOG", "pake=info"), ("PAKE_API_STATS", "1")],
    );
    wait_for("the new image", Duration::from_secs(60), || async {
        image_of(&admin, NS, &name).await.as_deref() == Some("pake-test/frst:2")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Kill the API server (not the shared cluster's: this instance's pid file).
    let pid = cluster.pid("kube-apiserver");
    // SAFETY: kill(2) on the API server process of the cluster this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let out = cluster.cmd(&["up"]);
    assert!(out.status.success(), "restart: {}", k8s::text(&out));
    // And etcd too, while pake keeps waiting.
    let pid = cluster.pid("etcd");
    // SAFETY: kill(2) on the etcd process of the cluster this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let out = cluster.cmd(&["up"]);
    assert!(out.status.success(), "etcd restart: {}", k8s::text(&out));
    // Now let the pods schedule.
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(admin.clone());
    nodes
        .patch(
            "kwok-node-0",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                serde_json::json!({"metadata": {"labels": {"pake.dev/fault-test": "ready"}}}),
            ),
        )
        .await
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let t = k8s::text(&out);
    eprintln!("deploy across the API server restart:\n{t}");
    assert!(out.status.success(), "{t}");
    // It did see the outage: requests were retried.
    assert!(t.contains("retried after a transient error"), "{t}");
    let h = history(&kc, dir);
    assert_eq!(statuses(&h), ["superseded", "deployed"], "{h:?}");
    assert_eq!(
        image_of(&admin, NS, &name).await.unwrap(),
        "pake-test/frst:2"
    );
    assert!(lease(&admin, &app).await.is_none());
}

/// A 403 with no outage before it is final: permission denied, exit 3, at
/// once (not retried for the run's timeout).
#[test]
fn persistent_permission_denied_is_still_exit_3_at_once() {
    let Some(kc) = k8s::kubeconfig("faults_persistent_403") else {
        return;
    };
    let app = format!("f403-{}", k8s::suffix());
    // kube-public exists, and the deployer has no rights there.
    let p = k8s::project(&k8s::pake_yaml(&app, "kube-public", ""), &[]);
    let t0 = Instant::now();
    let out = run(&kc, p.path(), &["deploy", "--timeout", "120s"], &[]);
    let t = k8s::text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert!(t.contains("permission denied"), "{t}");
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "retried a real 403: {:?}",
        t0.elapsed()
    );
}

/// A signal while waiting for another run's lock ends the wait at once;
/// nothing was changed and the holder carries on.
#[tokio::test]
async fn sigterm_while_waiting_for_the_lock_changes_nothing() {
    let Some(kc) = k8s::kubeconfig("faults_sigterm_lock_wait") else {
        return;
    };
    let app = format!("fwait-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);
    let dir = p.path();
    let out = run(&kc, dir, &["deploy", "--image", "pake-test/fwait:1"], &[]);
    assert!(out.status.success(), "{}", k8s::text(&out));
    let holder = stuck_deploy_in_wait(&kc, dir, &admin, &app, "pake-test/fwait:2").await;
    let waiter = spawn(
        &kc,
        dir,
        &["deploy", "--image", "pake-test/fwait:3", "--wait-lock"],
        &[],
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t0 = Instant::now();
    signal(&waiter, libc::SIGTERM);
    let out = waiter.wait_with_output().unwrap();
    let t = k8s::text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(
        t.contains("while waiting for the lock; nothing was changed"),
        "{t}"
    );
    // The holder still holds it and still runs; stop it the ordinary way.
    assert!(lease(&admin, &app).await.is_some());
    signal(&holder, libc::SIGINT);
    let out = holder.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", k8s::text(&out));
    assert_eq!(
        image_of(&admin, NS, &format!("{app}-v1")).await.unwrap(),
        "pake-test/fwait:1"
    );
    let h = history(&kc, dir);
    assert_eq!(statuses(&h), ["deployed", "rolled-back"], "{h:?}");
    k8s::cleanup_app(&admin, NS, &app).await;
}

/// Fields pake last wrote with an update (what older pake's PUT rollback
/// left) conflict with pake's own apply: recognised as a self-conflict, taken
/// back, and said so — while a real other manager still blocks.
#[tokio::test]
async fn self_conflict_is_recognised_and_taken_back() {
    let Some(kc) = k8s::kubeconfig("faults_self_conflict") else {
        return;
    };
    let app = format!("fself-{}", k8s::suffix());
    let name = format!("{app}-v1");
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);
    let dir = p.path();
    let out = run(&kc, dir, &["deploy", "--image", "pake-test/fself:1"], &[]);
    assert!(out.status.success(), "{}", k8s::text(&out));
    let api = Api::<Deployment>::namespaced(admin.clone(), NS);
    let put_as = |manager: &'static str, image: &'static str| {
        let api = api.clone();
        let name = name.clone();
        async move {
            for _ in 0..5 {
                let mut d = api.get(&name).await.unwrap();
                d.metadata.managed_fields = None;
                d.spec
                    .as_mut()
                    .unwrap()
                    .template
                    .spec
                    .as_mut()
                    .unwrap()
                    .containers[0]
                    .image = Some(image.into());
                let pp = kube::api::PostParams {
                    field_manager: Some(manager.into()),
                    ..Default::default()
                };
                if api.replace(&name, &pp, &d).await.is_ok() {
                    return;
                }
            }
            panic!("could not PUT the Deployment");
        }
    };
    // An Update by "pake" (as the old rollback did).
    put_as("pake", "pake-test/fself:0").await;
    assert!(
        entries_of(&admin, &name, "pake")
            .await
            .contains(&"Update".to_string())
    );
    let out = run(
        &kc,
        dir,
        &["deploy", "--image", "pake-test/fself:2", "--timeout", "60s"],
        &[],
    );
    let t = k8s::text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("last written by pake itself"), "{t}");
    // A real other manager: still a conflict, named as such.
    put_as("someone-else", "pake-test/fself:9").await;
    let out = run(
        &kc,
        dir,
        &["deploy", "--image", "pake-test/fself:3", "--timeout", "60s"],
        &[],
    );
    let t = k8s::text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("someone-else") && t.contains("--force-conflicts"),
        "{t}"
    );
    k8s::cleanup_app(&admin, NS, &app).await;
}
