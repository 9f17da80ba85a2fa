//! `pake deploy` against the real local cluster, as the least-privilege
//! `deployer` identity, in the shared `pake-test` namespace (one app per test).

mod k8s;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};

const NS: &str = "pake-test";

fn deploy(
    kc: &std::path::Path,
    dir: &std::path::Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut args = vec!["--context", k8s::DEPLOYER, "--env", "test", "deploy"];
    if !extra.contains(&"--timeout") {
        args.extend_from_slice(&["--timeout", "60s"]);
    }
    args.extend_from_slice(extra);
    k8s::pake(kc, dir, &args, env)
}

async fn image_of(client: &kube::Client, name: &str) -> Option<String> {
    let d = Api::<Deployment>::namespaced(client.clone(), NS)
        .get_opt(name)
        .await
        .unwrap()?;
    d.spec?.template.spec?.containers.first()?.image.clone()
}

#[tokio::test]
async fn first_deploy_verifies_and_redeploy_is_a_no_op() {
    let Some(kc) = k8s::kubeconfig("first_deploy") else {
        return;
    };
    let app = format!("first-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);

    let out = deploy(&kc, p.path(), &["-o", "json"], &[]);
    let t = k8s::text(&out);
    assert!(out.status.success(), "{t}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["ok"], true);
    let names: Vec<&str> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["namespace", "secrets", "policies", "deploy", "verify"]
    );
    let verify = &r["steps"][4]["checks"];
    assert!(verify.as_array().unwrap().len() > 10, "{verify}");
    assert!(
        verify.as_array().unwrap().iter().all(|c| c["ok"] == true),
        "{verify}"
    );
    assert_eq!(r["revision"], 1);

    let rs_api: Api<ReplicaSet> = Api::namespaced(admin.clone(), NS);
    let lp = ListParams::default().labels(&format!("app={app}"));
    let before = rs_api.list(&lp).await.unwrap().items.len();
    let gen_before = Api::<Deployment>::namespaced(admin.clone(), NS)
        .get(&format!("{app}-v1"))
        .await
        .unwrap()
        .metadata
        .generation;

    // Unchanged re-deploy: nothing configured, no new ReplicaSet, same generation.
    let summary = p.path().join("summary.md");
    let out = deploy(
        &kc,
        p.path(),
        &["-o", "json"],
        &[("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())],
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("| verify | ok |"), "{md}");
    assert!(out.status.success(), "{}", k8s::text(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for s in r["steps"].as_array().unwrap() {
        for o in s["objects"].as_array().unwrap() {
            assert_eq!(o["action"], "unchanged", "{o}");
        }
    }
    assert_eq!(rs_api.list(&lp).await.unwrap().items.len(), before);
    let gen_after = Api::<Deployment>::namespaced(admin.clone(), NS)
        .get(&format!("{app}-v1"))
        .await
        .unwrap()
        .metadata
        .generation;
    assert_eq!(gen_before, gen_after);

    // verify and history agree.
    let out = k8s::pake(
        &kc,
        p.path(),
        &["--context", k8s::DEPLOYER, "--env", "test", "verify"],
        &[],
    );
    assert!(out.status.success(), "{}", k8s::text(&out));
    let out = k8s::pake(
        &kc,
        p.path(),
        &[
            "--context",
            k8s::DEPLOYER,
            "--env",
            "test",
            "history",
            "-o",
            "json",
        ],
        &[],
    );
    let h: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(h["revisions"].as_array().unwrap().len(), 2, "{h}");
    k8s::cleanup_app(&admin, NS, &app).await;
}

#[tokio::test]
async fn release_that_never_becomes_ready_is_rolled_back() {
    let Some(kc) = k8s::kubeconfig("never_ready") else {
        return;
    };
    let app = format!("stuck-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);
    assert!(deploy(&kc, p.path(), &[], &[]).status.success());
    let good = image_of(&admin, &format!("{app}-v1")).await.unwrap();

    // Revision 2: a new image whose pods can never be scheduled.
    let tpl = k8s::deployment_template_with(
        "      serviceAccountName:",
        "      nodeSelector:\n        pake.dev/no-such-node: \"true\"\n      serviceAccountName:",
    );
    std::fs::create_dir_all(p.path().join("templates/k8s")).unwrap();
    std::fs::write(p.path().join("templates/k8s/deployment.yaml"), tpl).unwrap();
    let out = deploy(
        &kc,
        p.path(),
        &["--image", "pake-test/stuck:2", "--timeout", "15s"],
        &[],
    );
    let t = k8s::text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("step deploy failed"), "{t}");
    assert!(t.contains("rolled back"), "{t}");
    assert_eq!(image_of(&admin, &format!("{app}-v1")).await.unwrap(), good);
    // The restored Deployment is fully available again.
    let d = Api::<Deployment>::namespaced(admin.clone(), NS)
        .get(&format!("{app}-v1"))
        .await
        .unwrap();
    assert_eq!(d.status.unwrap().available_replicas, Some(2));
    k8s::cleanup_app(&admin, NS, &app).await;
}

#[tokio::test]
async fn podsecurity_violation_fails_fast_and_rolls_back() {
    let Some(kc) = k8s::kubeconfig("pss_violation") else {
        return;
    };
    let app = format!("pss-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);
    assert!(deploy(&kc, p.path(), &[], &[]).status.success());
    let good = image_of(&admin, &format!("{app}-v1")).await.unwrap();

    let tpl = k8s::deployment_template_with(
        "            allowPrivilegeEscalation: false",
        "            allowPrivilegeEscalation: true",
    );
    std::fs::create_dir_all(p.path().join("templates/k8s")).unwrap();
    std::fs::write(p.path().join("templates/k8s/deployment.yaml"), tpl).unwrap();
    let started = Instant::now();
    let out = deploy(
        &kc,
        p.path(),
        &["--image", "pake-test/pss:2", "--timeout", "120s"],
        &[],
    );
    let t = k8s::text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "did not fail fast: {:?}\n{t}",
        started.elapsed()
    );
    assert!(t.contains("PodSecurity"), "{t}");
    assert!(t.contains("allowPrivilegeEscalation"), "{t}");
    assert_eq!(image_of(&admin, &format!("{app}-v1")).await.unwrap(), good);
    k8s::cleanup_app(&admin, NS, &app).await;
}

#[tokio::test]
async fn concurrent_deploys_are_serialized() {
    let Some(kc) = k8s::kubeconfig("concurrent") else {
        return;
    };
    let app = format!("lock-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);
    let bin = env!("CARGO_BIN_EXE_pake");
    let spawn = |extra: &[&str]| {
        std::process::Command::new(bin)
            .current_dir(p.path())
            .args([
                "--kubeconfig",
                kc.to_str().unwrap(),
                "--context",
                k8s::DEPLOYER,
                "--env",
                "test",
                "deploy",
            ])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Without --wait-lock: exactly one of two simultaneous runs gets the lock.
    let a = spawn(&[]);
    let b = spawn(&[]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let oks = [a.status.success(), b.status.success()]
        .iter()
        .filter(|x| **x)
        .count();
    let loser = if a.status.success() { &b } else { &a };
    let lt = k8s::text(loser);
    assert_eq!(oks, 1, "a: {}\nb: {}", k8s::text(&a), k8s::text(&b));
    assert!(lt.contains("lock"), "{lt}");
    // With --wait-lock: both succeed, one after the other.
    let a = spawn(&["--wait-lock", "--image", "pake-test/lock:2"]);
    let b = spawn(&["--wait-lock", "--image", "pake-test/lock:3"]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(
        a.status.success() && b.status.success(),
        "a: {}\nb: {}",
        k8s::text(&a),
        k8s::text(&b)
    );
    k8s::cleanup_app(&admin, NS, &app).await;
}

#[tokio::test]
async fn protected_environment_without_yes_is_refused() {
    let Some(kc) = k8s::kubeconfig("protected") else {
        return;
    };
    let app = format!("prot-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);
    let out = k8s::pake(
        &kc,
        p.path(),
        &["--context", k8s::DEPLOYER, "--env", "prod", "deploy"],
        &[],
    );
    let t = k8s::text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("protected") && t.contains("--yes"), "{t}");
    assert!(
        image_of(&admin, &format!("{app}-v1")).await.is_none(),
        "something was deployed"
    );
    let out = k8s::pake(
        &kc,
        p.path(),
        &[
            "--context",
            k8s::DEPLOYER,
            "--env",
            "prod",
            "--yes",
            "deploy",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", k8s::text(&out));
    k8s::cleanup_app(&admin, NS, &app).await;
}

#[tokio::test]
async fn no_secret_value_in_any_output() {
    let Some(kc) = k8s::kubeconfig("no_secret_value") else {
        return;
    };
    let app = format!("sec-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let value = format!("s3cr3t-{}-{}", k8s::suffix(), k8s::suffix());
    let extra = "secrets:\n  - name: db\n    keys:\n      password:\n        fromEnv: PAKE_T_DB_PASSWORD\n      token:\n        generate: {bytes: 32}\nenv:\n  - name: DB_PASSWORD\n    secretKeyRef: {name: db, key: password}\n";
    let p = k8s::project(&k8s::pake_yaml(&app, NS, extra), &[]);
    let env = [
        ("PAKE_T_DB_PASSWORD", value.as_str()),
        ("PAKE_LOG", "trace"),
    ];
    let mut all = String::new();
    for args in [vec!["-vvv"], vec!["-o", "json"]] {
        let out = deploy(&kc, p.path(), &args, &env);
        all.push_str(&k8s::text(&out));
        assert!(out.status.success(), "{}", k8s::text(&out));
    }
    for cmd in [
        vec!["diff"],
        vec!["render"],
        vec!["history", "-o", "json"],
        vec!["verify", "-o", "json"],
    ] {
        let mut args = vec!["--context", k8s::DEPLOYER, "--env", "test"];
        args.extend(cmd);
        all.push_str(&k8s::text(&k8s::pake(&kc, p.path(), &args, &env)));
    }
    // A failing run too: the error path must not leak it either.
    let tpl = k8s::deployment_template_with(
        "            allowPrivilegeEscalation: false",
        "            allowPrivilegeEscalation: true",
    );
    std::fs::create_dir_all(p.path().join("templates/k8s")).unwrap();
    std::fs::write(p.path().join("templates/k8s/deployment.yaml"), tpl).unwrap();
    all.push_str(&k8s::text(&deploy(
        &kc,
        p.path(),
        &["--image", "x:2", "-vvv"],
        &env,
    )));
    assert!(!all.contains(&value), "secret value leaked into output");
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, value.as_bytes());
    assert!(
        !all.contains(&b64),
        "base64 of the secret leaked into output"
    );
    // History records hashes, never the value.
    let cms = Api::<ConfigMap>::namespaced(admin.clone(), NS)
        .list(&ListParams::default().labels(&format!("pake.dev/app={app}")))
        .await
        .unwrap();
    assert!(!cms.items.is_empty());
    for cm in cms.items {
        let s = serde_json::to_string(&cm.data).unwrap();
        assert!(!s.contains(&value) && !s.contains(&b64));
        assert!(
            s.contains("db/password"),
            "secret hash missing from history"
        );
    }
    // The Secret itself holds the value.
    let secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(admin.clone(), NS)
        .get("db")
        .await
        .unwrap();
    assert_eq!(secret.data.unwrap()["password"].0, value.as_bytes());
    k8s::cleanup_app(&admin, NS, &app).await;
}

#[tokio::test]
async fn rollback_returns_to_previous_revision() {
    let Some(kc) = k8s::kubeconfig("rollback") else {
        return;
    };
    let app = format!("rb-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);
    let none = k8s::pake(
        &kc,
        p.path(),
        &["--context", k8s::DEPLOYER, "--env", "test", "rollback"],
        &[],
    );
    assert_eq!(none.status.code(), Some(2), "{}", k8s::text(&none));
    assert!(
        deploy(&kc, p.path(), &["--image", "pake-test/rb:1"], &[])
            .status
            .success()
    );
    assert!(
        deploy(&kc, p.path(), &["--image", "pake-test/rb:2"], &[])
            .status
            .success()
    );
    assert_eq!(
        image_of(&admin, &format!("{app}-v1")).await.unwrap(),
        "pake-test/rb:2"
    );
    let out = k8s::pake(
        &kc,
        p.path(),
        &["--context", k8s::DEPLOYER, "--env", "test", "rollback"],
        &[],
    );
    assert!(out.status.success(), "{}", k8s::text(&out));
    assert_eq!(
        image_of(&admin, &format!("{app}-v1")).await.unwrap(),
        "pake-test/rb:1"
    );
    let out = k8s::pake(
        &kc,
        p.path(),
        &[
            "--context",
            k8s::DEPLOYER,
            "--env",
            "test",
            "rollback",
            "--to-revision",
            "2",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", k8s::text(&out));
    assert_eq!(
        image_of(&admin, &format!("{app}-v1")).await.unwrap(),
        "pake-test/rb:2"
    );
    k8s::cleanup_app(&admin, NS, &app).await;
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let Some(kc) = k8s::kubeconfig("dry_run") else {
        return;
    };
    let app = format!("dry-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);
    let out = deploy(&kc, p.path(), &["--dry-run"], &[]);
    assert!(out.status.success(), "{}", k8s::text(&out));
    assert!(image_of(&admin, &format!("{app}-v1")).await.is_none());
    let cms = Api::<ConfigMap>::namespaced(admin.clone(), NS)
        .list(&ListParams::default().labels(&format!("pake.dev/app={app}")))
        .await
        .unwrap();
    assert!(cms.items.is_empty());
}

/// No-op detection: a re-deploy with a new image patches only the Deployment
/// (and the history); an object another writer changed since is patched back.
#[tokio::test]
async fn unchanged_objects_are_not_patched_again_unless_changed_live() {
    let Some(kc) = k8s::kubeconfig("noop_detection") else {
        return;
    };
    let app = format!("noop-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);
    let out = deploy(&kc, p.path(), &[], &[]);
    assert!(out.status.success(), "{}", k8s::text(&out));
    let stats = [("PAKE_API_STATS", "1")];
    let requests = |out: &std::process::Output| {
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("pake: api PATCH "))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };

    let out = deploy(&kc, p.path(), &["--image", "pake-test/noop:2"], &stats);
    assert!(out.status.success(), "{}", k8s::text(&out));
    let patched = requests(&out);
    assert!(
        patched.contains(&"pake: api PATCH deployments 1".to_string()),
        "{patched:?}"
    );
    for kind in [
        "serviceaccounts",
        "roles",
        "rolebindings",
        "networkpolicies",
        "services",
        "poddisruptionbudgets",
    ] {
        assert!(
            !patched.iter().any(|l| l.contains(&format!(" {kind} "))),
            "{kind} patched again although unchanged: {patched:?}"
        );
    }
    // Nothing read twice: verify reuses the steps' NetworkPolicy, PDB and
    // Namespace reads, the endpoint proof takes the rollout's pod watch, and
    // the rollout watches the Deployment from the apply's resourceVersion.
    let count = |verb_resource: &str| -> u32 {
        let prefix = format!("pake: api {verb_resource} ");
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).and_then(|n| n.parse().ok()))
            .unwrap_or(0)
    };
    let api_lines = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("pake: api "))
        .collect::<Vec<_>>()
        .join("\n");
    for (what, most) in [
        ("LIST networkpolicies", 1),
        ("LIST poddisruptionbudgets", 1),
        ("LIST pods", 2),
        ("LIST deployments", 1),
        ("GET namespaces", 2),
    ] {
        assert!(count(what) <= most, "{what} more than {most}:\n{api_lines}");
    }

    // Another writer removes a label pake set: the next run patches it back.
    let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(admin.clone(), NS);
    let name = format!("{app}-sa");
    let patch = serde_json::json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": null}}});
    sa.patch(
        &name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .unwrap();
    let out = deploy(&kc, p.path(), &["--image", "pake-test/noop:3"], &stats);
    assert!(out.status.success(), "{}", k8s::text(&out));
    let patched = requests(&out);
    assert!(
        patched.contains(&"pake: api PATCH serviceaccounts 1".to_string()),
        "{patched:?}"
    );
    let live = sa.get(&name).await.unwrap();
    assert_eq!(
        live.metadata
            .labels
            .unwrap_or_default()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("pake")
    );
    k8s::cleanup_app(&admin, NS, &app).await;
}

/// `--history-max`: a deploy prunes history to the newest N records.
#[tokio::test]
async fn history_is_pruned_to_history_max() {
    let Some(kc) = k8s::kubeconfig("history_max") else {
        return;
    };
    let app = format!("hmax-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);
    for i in 1..=4 {
        let tag = format!("pake-test/hmax:{i}");
        let out = deploy(&kc, p.path(), &["--image", &tag, "--history-max", "2"], &[]);
        assert!(out.status.success(), "{}", k8s::text(&out));
    }
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), NS);
    let lp = ListParams::default().labels(&format!("pake.dev/history=true,pake.dev/app={app}"));
    let mut revs: Vec<String> = cms
        .list(&lp)
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|c| {
            c.metadata
                .labels
                .as_ref()?
                .get("pake.dev/revision")
                .cloned()
        })
        .collect();
    revs.sort();
    assert_eq!(revs, ["3", "4"]);
    k8s::cleanup_app(&admin, NS, &app).await;
}
