//! `pake bluegreen` against the real local cluster, as the least-privilege
//! `deployer` identity, in the shared `pake-test` namespace (one app per test).
//!
//! Endpoints are read back independently (as admin, straight from the
//! EndpointSlices and pod labels), not from pake's own report.

mod k8s;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::Value;

const NS: &str = "pake-test";

fn pake(kc: &Path, dir: &Path, args: &[&str]) -> Output {
    let mut a = vec!["--context", k8s::DEPLOYER, "--env", "test"];
    a.extend_from_slice(args);
    k8s::pake(kc, dir, &a, &[])
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", k8s::text(o));
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", k8s::text(o)))
}

/// Deploy v1 with `pake deploy`, then v2 with `pake bluegreen deploy`.
fn deploy_v1_and_v2(kc: &Path, dir: &Path, app: &str) {
    ok(&pake(kc, dir, &["deploy", "--timeout", "60s"]));
    let image = format!("pake-test/{app}:2");
    ok(&pake(
        kc,
        dir,
        &[
            "bluegreen",
            "deploy",
            "v2",
            "--image",
            &image,
            "--timeout",
            "60s",
        ],
    ));
}

async fn selects(admin: &kube::Client, service: &str) -> Option<String> {
    Api::<Service>::namespaced(admin.clone(), NS)
        .get_opt(service)
        .await
        .unwrap()?
        .spec?
        .selector?
        .get("version")
        .cloned()
}

async fn service_rv(admin: &kube::Client, service: &str) -> String {
    Api::<Service>::namespaced(admin.clone(), NS)
        .get(service)
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap()
}

/// Endpoints of a Service by the version label of their pods:
/// (ready per version, not-ready per version).
async fn endpoints(
    admin: &kube::Client,
    service: &str,
) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let pods = Api::<Pod>::namespaced(admin.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap();
    let version: BTreeMap<String, String> = pods
        .items
        .iter()
        .map(|p| {
            (
                p.metadata.name.clone().unwrap(),
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("version").cloned())
                    .unwrap_or_else(|| "?".into()),
            )
        })
        .collect();
    let slices = Api::<EndpointSlice>::namespaced(admin.clone(), NS)
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}")))
        .await
        .unwrap();
    let (mut ready, mut unready) = (BTreeMap::new(), BTreeMap::new());
    for s in &slices.items {
        for e in s.endpoints.iter().flatten() {
            let pod = e
                .target_ref
                .as_ref()
                .and_then(|t| t.name.clone())
                .unwrap_or_default();
            let v = version
                .get(&pod)
                .cloned()
                .unwrap_or_else(|| format!("gone:{pod}"));
            let is_ready = e.conditions.as_ref().and_then(|c| c.ready) != Some(false);
            *if is_ready { &mut ready } else { &mut unready }
                .entry(v)
                .or_insert(0) += 1;
        }
    }
    (ready, unready)
}

fn only(version: &str, n: usize) -> BTreeMap<String, usize> {
    [(version.to_string(), n)].into()
}

async fn pods_of(admin: &kube::Client, app: &str, version: &str) -> Vec<String> {
    Api::<Pod>::namespaced(admin.clone(), NS)
        .list(&ListParams::default().labels(&format!("app={app},version={version}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| p.metadata.name.unwrap())
        .collect()
}

/// Mark a pod not Ready the way a failing readiness probe would. kwok only
/// sets conditions on Pending pods, so a Running pod keeps what we write.
async fn set_unready(admin: &kube::Client, pod: &str) {
    Api::<Pod>::namespaced(admin.clone(), NS)
        .patch_status(
            pod,
            &PatchParams::default(),
            &Patch::Strategic(serde_json::json!({"status": {"conditions": [
                {"type": "Ready", "status": "False", "reason": "PakeTest"}
            ]}})),
        )
        .await
        .unwrap();
}

async fn replicas(admin: &kube::Client, name: &str) -> Option<(i32, i64)> {
    let d = Api::<Deployment>::namespaced(admin.clone(), NS)
        .get_opt(name)
        .await
        .unwrap()?;
    Some((
        d.spec.unwrap().replicas.unwrap_or(1),
        d.metadata.generation.unwrap(),
    ))
}

fn history(kc: &Path, dir: &Path) -> Vec<Value> {
    let out = pake(kc, dir, &["history", "-o", "json"]);
    ok(&out);
    json(&out)["revisions"].as_array().unwrap().clone()
}

fn status(kc: &Path, dir: &Path) -> Value {
    let out = pake(kc, dir, &["bluegreen", "status", "-o", "json"]);
    ok(&out);
    json(&out)
}

fn version_row<'a>(s: &'a Value, v: &str) -> &'a Value {
    s["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["version"] == v)
        .unwrap_or_else(|| panic!("no version {v} in {s}"))
}

/// The kubectl the check command uses (the cluster's own, else PATH).
fn kubectl() -> String {
    std::env::var("PAKE_CLUSTER_BIN_DIR")
        .map(|d| format!("{d}/kubectl"))
        .unwrap_or_else(|_| "kubectl".into())
}

#[tokio::test]
async fn switch_moves_every_endpoint_and_rollback_restores_them() {
    let Some(kc) = k8s::kubeconfig("bluegreen_switch") else {
        return;
    };
    let app = format!("bg-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);
    deploy_v1_and_v2(&kc, p.path(), &app);
    let preview = format!("{app}-preview");

    // State 1: v1 serves, v2 behind the preview; nothing to roll back to.
    assert_eq!(selects(&admin, &app).await.as_deref(), Some("v1"));
    assert_eq!(endpoints(&admin, &app).await.0, only("v1", 2));
    assert_eq!(endpoints(&admin, &preview).await.0, only("v2", 2));
    let s = status(&kc, p.path());
    assert_eq!(
        (s["active"].as_str(), s["preview"].as_str()),
        (Some("v1"), Some("v2")),
        "{s}"
    );
    assert!(s["rollbackTarget"].is_null(), "{s}");
    assert_eq!(
        version_row(&s, "v1")["roles"],
        serde_json::json!(["active"])
    );
    assert_eq!(
        version_row(&s, "v2")["roles"],
        serde_json::json!(["preview"])
    );
    assert_eq!(version_row(&s, "v2")["ready"], 2);
    assert_eq!(version_row(&s, "v2")["image"], format!("pake-test/{app}:2"));
    assert_eq!(
        s["services"][0]["byVersion"],
        serde_json::json!({"v1": 2}),
        "{s}"
    );
    assert_eq!(
        s["services"][1]["byVersion"],
        serde_json::json!({"v2": 2}),
        "{s}"
    );
    let out = pake(&kc, p.path(), &["bluegreen", "rollback"]);
    assert_eq!(out.status.code(), Some(2), "{}", k8s::text(&out));
    assert!(
        k8s::text(&out).contains("nothing to roll back to"),
        "{}",
        k8s::text(&out)
    );

    // Switch, with a smoke test that sees the preview's coordinates.
    let out = pake(
        &kc,
        p.path(),
        &[
            "bluegreen",
            "switch",
            "v2",
            "-o",
            "json",
            "--check",
            "test \"$PAKE_PREVIEW_SERVICE\" = \"$PAKE_APP-preview\" && test \"$PAKE_VERSION\" = v2 && test \"$PAKE_NAMESPACE\" = pake-test",
        ],
    );
    ok(&out);
    let r = json(&out);
    assert_eq!(
        (r["ok"].as_bool(), r["from"].as_str(), r["to"].as_str()),
        (Some(true), Some("v1"), Some("v2")),
        "{r}"
    );
    assert_eq!(r["endpoints"], 2);
    assert_eq!(r["smoke"]["ok"], true, "{r}");
    // Every endpoint is a Ready v2 pod; none remains on v1, not even unready.
    assert_eq!(selects(&admin, &app).await.as_deref(), Some("v2"));
    assert_eq!(
        endpoints(&admin, &app).await,
        (only("v2", 2), BTreeMap::new())
    );

    // State 2, and the switch is in the history with from, to, time and who.
    let s = status(&kc, p.path());
    assert_eq!(
        (s["active"].as_str(), s["rollbackTarget"].as_str()),
        (Some("v2"), Some("v1")),
        "{s}"
    );
    assert_eq!(
        version_row(&s, "v1")["roles"],
        serde_json::json!(["rollback-target"])
    );
    assert_eq!(s["lastSwitch"]["from"], "v1");
    let h = history(&kc, p.path());
    let sw = h.iter().rev().find(|v| v["action"] == "switch").unwrap();
    assert_eq!(sw["status"], "switch", "{sw}");
    assert_eq!(
        (sw["details"]["from"].as_str(), sw["details"]["to"].as_str()),
        (Some("v1"), Some("v2"))
    );
    assert!(
        !sw["user"].as_str().unwrap().is_empty() && !sw["time"].as_str().unwrap().is_empty(),
        "{sw}"
    );

    // A later `pake deploy` updates the active version and keeps serving it.
    let v1_before = replicas(&admin, &format!("{app}-v1")).await.unwrap();
    let out = pake(&kc, p.path(), &["deploy", "--timeout", "60s"]);
    ok(&out);
    assert!(
        k8s::text(&out).contains("deploying v2"),
        "{}",
        k8s::text(&out)
    );
    assert_eq!(selects(&admin, &app).await.as_deref(), Some("v2"));
    assert_eq!(endpoints(&admin, &app).await.0, only("v2", 2));
    assert_eq!(
        replicas(&admin, &format!("{app}-v1")).await.unwrap(),
        v1_before,
        "v1 was touched"
    );

    // Rollback: back to v1, verified the same way.
    let out = pake(&kc, p.path(), &["bluegreen", "rollback", "-o", "json"]);
    ok(&out);
    let r = json(&out);
    assert_eq!(
        (r["action"].as_str(), r["to"].as_str()),
        (Some("rollback"), Some("v1")),
        "{r}"
    );
    assert_eq!(selects(&admin, &app).await.as_deref(), Some("v1"));
    assert_eq!(
        endpoints(&admin, &app).await,
        (only("v1", 2), BTreeMap::new())
    );
    let s = status(&kc, p.path());
    assert_eq!(
        (s["active"].as_str(), s["rollbackTarget"].as_str()),
        (Some("v1"), Some("v2")),
        "{s}"
    );
    assert_eq!(s["lastSwitch"]["kind"], "rollback");

    // Switching to the active version changes nothing.
    let rv = service_rv(&admin, &app).await;
    ok(&pake(&kc, p.path(), &["bluegreen", "switch", "v1"]));
    assert_eq!(service_rv(&admin, &app).await, rv);
    k8s::cleanup_app(&admin, NS, &app).await;
}

#[tokio::test]
async fn switch_to_a_missing_or_unready_version_is_refused_with_nothing_changed() {
    let Some(kc) = k8s::kubeconfig("bluegreen_refused") else {
        return;
    };
    let app = format!("bgr-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);
    ok(&pake(&kc, p.path(), &["deploy", "--timeout", "60s"]));
    let revisions = history(&kc, p.path()).len();
    let rv = service_rv(&admin, &app).await;

    // Missing version.
    let out = pake(&kc, p.path(), &["bluegreen", "switch", "v9"]);
    let t = k8s::text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("not deployed") && t.contains("nothing was changed"),
        "{t}"
    );
    assert_eq!(service_rv(&admin, &app).await, rv);

    // Unready version: one v2 pod fails its readiness.
    let image = format!("pake-test/{app}:2");
    ok(&pake(
        &kc,
        p.path(),
        &[
            "bluegreen",
            "deploy",
            "v2",
            "--image",
            &image,
            "--timeout",
            "60s",
        ],
    ));
    let revisions = revisions + 1;
    let v2 = pods_of(&admin, &app, "v2").await;
    assert_eq!(v2.len(), 2);
    set_unready(&admin, &v2[0]).await;
    let out = pake(&kc, p.path(), &["bluegreen", "switch", "v2", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", k8s::text(&out));
    let r = json(&out);
    assert_eq!(
        (r["ok"].as_bool(), r["changed"].as_bool()),
        (Some(false), Some(false)),
        "{r}"
    );
    let failed: Vec<&str> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert!(failed.contains(&"pods-ready"), "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was changed"),
        "{r}"
    );
    // Nothing changed: same Service object, v1 endpoints, no new revision.
    assert_eq!(service_rv(&admin, &app).await, rv);
    assert_eq!(
        endpoints(&admin, &app).await,
        (only("v1", 2), BTreeMap::new())
    );
    assert_eq!(history(&kc, p.path()).len(), revisions);
    k8s::cleanup_app(&admin, NS, &app).await;
}

#[tokio::test]
async fn failed_smoke_test_refuses_and_lock_holder_blocks_the_switch() {
    let Some(kc) = k8s::kubeconfig("bluegreen_smoke_lock") else {
        return;
    };
    let app = format!("bgs-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);
    deploy_v1_and_v2(&kc, p.path(), &app);
    let rv = service_rv(&admin, &app).await;

    let out = pake(
        &kc,
        p.path(),
        &[
            "bluegreen",
            "switch",
            "v2",
            "--check",
            "echo smoke failing >&2; exit 3",
        ],
    );
    let t = k8s::text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("exited with 3") && t.contains("smoke failing"),
        "{t}"
    );
    assert_eq!(service_rv(&admin, &app).await, rv);

    // Another run holds the deploy lock: the switch fails at once, naming it.
    let lease = Lease {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("pake-lock-{app}-test")),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("ci@elsewhere pid 1".into()),
            acquire_time: Some(MicroTime(jiff::Timestamp::now())),
            renew_time: Some(MicroTime(jiff::Timestamp::now())),
            lease_duration_seconds: Some(60),
            ..Default::default()
        }),
    };
    let leases: Api<Lease> = Api::namespaced(admin.clone(), NS);
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let out = pake(&kc, p.path(), &["bluegreen", "switch", "v2"]);
    let t = k8s::text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("ci@elsewhere pid 1"), "{t}");
    assert_eq!(service_rv(&admin, &app).await, rv);
    leases
        .delete(&format!("pake-lock-{app}-test"), &Default::default())
        .await
        .unwrap();
    k8s::cleanup_app(&admin, NS, &app).await;
}

#[tokio::test]
async fn failed_endpoint_verification_switches_back_on_its_own() {
    let Some(kc) = k8s::kubeconfig("bluegreen_switch_back") else {
        return;
    };
    let app = format!("bgb-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);
    deploy_v1_and_v2(&kc, p.path(), &app);
    let revisions = history(&kc, p.path()).len();
    let v2 = pods_of(&admin, &app, "v2").await;

    // The smoke test passes, and right after it one v2 pod stops being Ready
    // (as if its readiness probe began to fail): the pre-checks saw a healthy
    // v2, so the switch happens, and the endpoint verification must catch it.
    let check = format!(
        "{} --kubeconfig \"$KUBECONFIG\" --context {} -n {NS} patch pod {} --subresource=status --type=strategic -p '{{\"status\":{{\"conditions\":[{{\"type\":\"Ready\",\"status\":\"False\",\"reason\":\"PakeTest\"}}]}}}}' >&2",
        kubectl(),
        k8s::ADMIN,
        v2[0]
    );
    let out = pake(
        &kc,
        p.path(),
        &[
            "bluegreen",
            "switch",
            "v2",
            "--timeout",
            "5s",
            "--check",
            &check,
            "-o",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", k8s::text(&out));
    let r = json(&out);
    assert_eq!(
        r["smoke"]["ok"],
        true,
        "the check itself must pass: {}",
        k8s::text(&out)
    );
    assert_eq!(
        (r["changed"].as_bool(), r["switchedBack"].as_bool()),
        (Some(true), Some(true)),
        "{r}"
    );
    assert!(r["switchBackError"].is_null(), "{r}");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("reverted to v1") && msg.contains(&v2[0]) && msg.contains("not ready"),
        "{msg}"
    );

    // Back on v1, every endpoint.
    assert_eq!(selects(&admin, &app).await.as_deref(), Some("v1"));
    assert_eq!(
        endpoints(&admin, &app).await,
        (only("v1", 2), BTreeMap::new())
    );
    let h = history(&kc, p.path());
    assert_eq!(h.len(), revisions + 1);
    let last = h.last().unwrap();
    assert_eq!(
        (last["action"].as_str(), last["status"].as_str()),
        (Some("switch"), Some("failed")),
        "{last}"
    );
    assert_eq!(last["details"]["switchedBack"], true);
    // A failed switch is no rollback target.
    let s = status(&kc, p.path());
    assert_eq!(s["active"], "v1");
    assert!(s["rollbackTarget"].is_null(), "{s}");
    k8s::cleanup_app(&admin, NS, &app).await;
}

#[tokio::test]
async fn cleanup_never_touches_the_active_version() {
    let Some(kc) = k8s::kubeconfig("bluegreen_cleanup") else {
        return;
    };
    let app = format!("bgc-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);
    deploy_v1_and_v2(&kc, p.path(), &app);
    ok(&pake(&kc, p.path(), &["bluegreen", "switch", "v2"]));
    let image = format!("pake-test/{app}:3");
    ok(&pake(
        &kc,
        p.path(),
        &[
            "bluegreen",
            "deploy",
            "v3",
            "--image",
            &image,
            "--timeout",
            "60s",
        ],
    ));
    let s = status(&kc, p.path());
    assert_eq!(
        (
            s["active"].as_str(),
            s["preview"].as_str(),
            s["rollbackTarget"].as_str()
        ),
        (Some("v2"), Some("v3"), Some("v1")),
        "{s}"
    );
    let (v1, v2, v3) = (
        format!("{app}-v1"),
        format!("{app}-v2"),
        format!("{app}-v3"),
    );
    let active_before = replicas(&admin, &v2).await.unwrap();
    let rv = service_rv(&admin, &app).await;

    // Default: the rollback target and the preview candidate are kept too.
    let out = pake(&kc, p.path(), &["bluegreen", "cleanup", "-o", "json"]);
    ok(&out);
    let r = json(&out);
    assert!(
        r["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["action"] == "keep"),
        "{r}"
    );
    assert_eq!(replicas(&admin, &v1).await.unwrap().0, 2);
    assert_eq!(replicas(&admin, &v3).await.unwrap().0, 2);

    // --after: nothing has been inactive for an hour yet.
    let out = pake(
        &kc,
        p.path(),
        &[
            "bluegreen",
            "cleanup",
            "--include-rollback-target",
            "--include-preview",
            "--after",
            "1h",
        ],
    );
    ok(&out);
    assert_eq!(
        replicas(&admin, &v1).await.unwrap().0,
        2,
        "{}",
        k8s::text(&out)
    );

    // Asked to: both inactive versions scale to 0, the active one is untouched.
    let out = pake(
        &kc,
        p.path(),
        &[
            "bluegreen",
            "cleanup",
            "--include-rollback-target",
            "--include-preview",
            "-o",
            "json",
        ],
    );
    ok(&out);
    assert_eq!(replicas(&admin, &v1).await.unwrap().0, 0);
    assert_eq!(replicas(&admin, &v3).await.unwrap().0, 0);
    assert_eq!(replicas(&admin, &v2).await.unwrap(), active_before);
    assert_eq!(service_rv(&admin, &app).await, rv);
    assert_eq!(endpoints(&admin, &app).await.0, only("v2", 2));
    let s = status(&kc, p.path());
    assert_eq!(version_row(&s, "v1")["replicas"], 0);

    // A scaled-down version is refused as a switch target.
    let out = pake(&kc, p.path(), &["bluegreen", "switch", "v1"]);
    assert_eq!(out.status.code(), Some(1), "{}", k8s::text(&out));
    assert!(
        k8s::text(&out).contains("scaled down"),
        "{}",
        k8s::text(&out)
    );

    // --delete removes them (Deployment and PDB); the active one stays.
    let out = pake(
        &kc,
        p.path(),
        &[
            "bluegreen",
            "cleanup",
            "--include-rollback-target",
            "--include-preview",
            "--delete",
        ],
    );
    ok(&out);
    assert!(replicas(&admin, &v1).await.is_none());
    assert!(replicas(&admin, &v3).await.is_none());
    let pdbs: Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> =
        Api::namespaced(admin.clone(), NS);
    assert!(pdbs.get_opt(&v1).await.unwrap().is_none());
    assert!(pdbs.get_opt(&v2).await.unwrap().is_some());
    assert_eq!(replicas(&admin, &v2).await.unwrap(), active_before);
    assert_eq!(endpoints(&admin, &app).await.0, only("v2", 2));
    // The history records what cleanup did.
    let h = history(&kc, p.path());
    assert!(h.iter().any(|v| v["action"] == "cleanup"), "{h:?}");
    k8s::cleanup_app(&admin, NS, &app).await;
}
