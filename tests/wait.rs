//! Rollout wait against the real local cluster (kwok nodes).
//!
//! Needs PAKE_TEST_KUBECONFIG (set by the test script from
//! `scripts/cluster env kubeconfig`); without it every test prints why it is
//! skipped and passes. Each test works in its own namespace `pake-t-<random>`
//! and deletes it at the end, also when the test fails.
//!
//! kwok makes pods Running/Ready without running containers, so failures are
//! produced the way the cluster itself would report them: PodSecurity
//! admission rejecting the template (ReplicaSet FailedCreate), an
//! unschedulable nodeSelector with a short progressDeadlineSeconds, and, for
//! CrashLoopBackOff, a patch of the pod's status subresource as admin (kwok's
//! stages only touch Pending or terminating pods, so it does not overwrite it).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, ResourceExt};
use pake::workflow::wait::{self, RolloutState, Workload};
use serde_json::json;

async fn client() -> Option<kube::Client> {
    let Some(path) = std::env::var_os("PAKE_TEST_KUBECONFIG").filter(|p| !p.is_empty()) else {
        eprintln!(
            "skipping: PAKE_TEST_KUBECONFIG is not set (the test script sets it to `scripts/cluster env kubeconfig`)"
        );
        return None;
    };
    let target = pake::kube::Target {
        kubeconfig: Some(path.into()),
        context: Some("pake-local".into()),
    };
    Some(
        target
            .connect()
            .await
            .expect("connect to the local cluster")
            .client,
    )
}

/// The least-privileged `deployer` identity of the local cluster.
async fn deployer_client() -> kube::Client {
    let path = std::env::var_os("PAKE_TEST_KUBECONFIG").unwrap();
    let target = pake::kube::Target {
        kubeconfig: Some(path.into()),
        context: Some("pake-local-deployer".into()),
    };
    target.connect().await.expect("connect as deployer").client
}

/// Grant `deployer` its usual role (ClusterRole pake-deployer from
/// templates/rbac/) in a test namespace, as scripts/cluster does for pake-*.
async fn bind_deployer(admin: &kube::Client, ns: &str) {
    let rb: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "pake-deployer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pake-deployer"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "deployer"}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &rb)
        .await
        .expect("bind pake-deployer (does scripts/cluster install templates/rbac?)");
}

fn random_suffix() -> String {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("random bytes");
    hex::encode(b)
}

/// Run `body` in a fresh namespace and delete it afterwards, even on panic.
async fn in_namespace<F, Fut>(client: &kube::Client, labels: serde_json::Value, body: F)
where
    F: FnOnce(kube::Client, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let name = format!("pake-t-{}", random_suffix());
    let mut labels = labels;
    labels["pake-test"] = json!("true");
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(&PostParams::default(), &ns)
        .await
        .expect("create test namespace");
    let result = AssertUnwindSafe(body(client.clone(), name.clone()))
        .catch_unwind()
        .await;
    // Pods held by the test finalizer would keep the namespace terminating.
    release_finalizers(client, &name).await;
    let _ = api.delete(&name, &DeleteParams::background()).await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

const HOLD: &str = "pake.test/hold";

async fn release_finalizers(client: &kube::Client, ns: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    if let Ok(list) = pods.list(&ListParams::default()).await {
        for p in list {
            if p.finalizers().iter().any(|f| f == HOLD) {
                let _ = pods
                    .patch(
                        &p.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                    )
                    .await;
            }
        }
    }
}

/// The guide's hardened pod template (passes PodSecurity "restricted").
fn hardened_pod(app: &str, version: &str) -> serde_json::Value {
    json!({
        "metadata": {"labels": {"app": app, "version": version}},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "automountServiceAccountToken": false,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "app",
                "image": format!("127.0.0.1:5000/pake-test/{app}:{version}"),
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                    "capabilities": {"drop": ["ALL"]}},
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}}
            }]
        }
    })
}

fn deployment(
    name: &str,
    replicas: i32,
    template: serde_json::Value,
    extra: serde_json::Value,
) -> Deployment {
    let mut spec = json!({
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": template,
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

/// Collects progress messages, and forwards them to a channel for tests
/// that react to a particular state.
type Seen = Arc<Mutex<Vec<String>>>;

fn progress() -> (
    impl Fn(&str) + Send + Sync,
    Seen,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let s = seen.clone();
    let cb = move |m: &str| {
        s.lock().unwrap().push(m.to_string());
        let _ = tx.send(m.to_string());
    };
    (cb, seen, rx)
}

const TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn three_replica_deployment_completes() {
    let Some(client) = client().await else { return };
    in_namespace(
        &client,
        json!({"pod-security.kubernetes.io/enforce": "restricted"}),
        |client, ns| async move {
            let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
            api.create(
                &PostParams::default(),
                &deployment("web", 3, hardened_pod("web", "v1"), json!({})),
            )
            .await
            .unwrap();
            let (cb, seen, _rx) = progress();
            let t = Instant::now();
            wait::rollout(&client, Workload::Deployment, &ns, "web", TIMEOUT, &cb)
                .await
                .unwrap_or_else(|e| panic!("rollout failed: {e}"));
            eprintln!(
                "3-replica rollout completed in {:?}; progress: {:?}",
                t.elapsed(),
                seen.lock().unwrap()
            );
            let d = api.get("web").await.unwrap();
            assert_eq!(wait::deployment_state(&d), RolloutState::Complete);
            assert_eq!(d.status.unwrap().available_replicas, Some(3));
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let live: Vec<_> = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .unwrap()
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            assert_eq!(live.len(), 3);
        },
    )
    .await;
}

#[tokio::test]
async fn update_completes_only_after_old_pods_are_gone() {
    let Some(client) = client().await else { return };
    in_namespace(&client, json!({}), |client, ns| async move {
        let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        api.create(
            &PostParams::default(),
            &deployment("web", 3, hardened_pod("web", "v1"), json!({})),
        )
        .await
        .unwrap();
        wait::rollout(&client, Workload::Deployment, &ns, "web", TIMEOUT, &|_| {})
            .await
            .unwrap();

        // Hold the v1 pods in Terminating with a finalizer, as a slow shutdown would.
        let old: Vec<String> = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.name_any())
            .collect();
        assert_eq!(old.len(), 3);
        for p in &old {
            pods.patch(
                p,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": [HOLD]}})),
            )
            .await
            .unwrap();
        }
        api.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": hardened_pod("web", "v2")}})),
        )
        .await
        .unwrap();

        let (cb, _seen, mut rx) = progress();
        let waiting = wait::rollout(&client, Workload::Deployment, &ns, "web", TIMEOUT, &cb);
        tokio::pin!(waiting);
        let phase1 = tokio::time::sleep(Duration::from_secs(60));
        tokio::pin!(phase1);
        // Phase 1: the rollout must report the terminating old pods and keep waiting.
        loop {
            tokio::select! {
                r = &mut waiting => panic!("rollout returned while old pods still exist: {r:?}"),
                m = rx.recv() => {
                    let m = m.expect("progress channel open");
                    if m.contains("old pods to terminate") { break; }
                }
                _ = &mut phase1 => panic!("never reported waiting for old pods"),
            }
        }
        // At this point `kubectl rollout status` would already be satisfied.
        let d = api.get("web").await.unwrap();
        assert_eq!(
            wait::deployment_state(&d),
            RolloutState::Complete,
            "kubectl semantics are met"
        );
        let terminating = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .into_iter()
            .filter(|p| old.contains(&p.name_any()) && p.metadata.deletion_timestamp.is_some())
            .count();
        assert!(terminating > 0, "old pods are terminating");

        // Phase 2: let the old pods go; the rollout completes, and no old pod remains.
        let release = release_finalizers(&client, &ns);
        let (r, ()) = tokio::join!(&mut waiting, release);
        r.unwrap_or_else(|e| panic!("rollout failed: {e}"));
        let left: Vec<_> = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.name_any())
            .filter(|n| old.contains(n))
            .collect();
        assert!(left.is_empty(), "old pods left after the rollout: {left:?}");
    })
    .await;
}

#[tokio::test]
async fn podsecurity_violation_fails_fast_with_failed_create() {
    let Some(client) = client().await else { return };
    in_namespace(
        &client,
        json!({"pod-security.kubernetes.io/enforce": "restricted"}),
        |client, ns| async move {
            let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
            let insecure = json!({
                "metadata": {"labels": {"app": "bad"}},
                "spec": {"containers": [{"name": "app", "image": "127.0.0.1:5000/pake-test/bad:1",
                                         "securityContext": {"privileged": true}}]}
            });
            // Creating the Deployment itself is allowed (PSA only warns on templates).
            api.create(
                &PostParams::default(),
                &deployment("bad", 2, insecure, json!({})),
            )
            .await
            .unwrap();
            let t = Instant::now();
            let e = wait::rollout(&client, Workload::Deployment, &ns, "bad", TIMEOUT, &|_| {})
                .await
                .expect_err("a PodSecurity violation must fail the rollout");
            let took = t.elapsed();
            eprintln!("FailedCreate reported after {took:?}:\n{e}");
            assert!(
                took < Duration::from_secs(30),
                "fail fast, not at the timeout: {took:?}"
            );
            assert_eq!(e.kind, pake::ExitCode::Failed);
            assert!(e.message.contains("FailedCreate"), "{}", e.message);
            assert!(e.message.contains("violates PodSecurity"), "{}", e.message);
            assert!(
                e.object
                    .as_deref()
                    .unwrap()
                    .starts_with(&format!("ReplicaSet {ns}/bad-"))
            );
            let fix = e.fix.unwrap();
            assert!(
                fix.contains("privileged"),
                "the failed check is named: {fix}"
            );
            assert!(fix.contains("pake audit"), "{fix}");
        },
    )
    .await;
}

#[tokio::test]
async fn progress_deadline_exceeded_is_reported() {
    let Some(client) = client().await else { return };
    in_namespace(&client, json!({}), |client, ns| async move {
        let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let mut template = hardened_pod("stuck", "v1");
        template["spec"]["nodeSelector"] = json!({"pake.test/no-such-node": "true"});
        api.create(
            &PostParams::default(),
            &deployment("stuck", 2, template, json!({"progressDeadlineSeconds": 6})),
        )
        .await
        .unwrap();
        let t = Instant::now();
        let e = wait::rollout(
            &client,
            Workload::Deployment,
            &ns,
            "stuck",
            TIMEOUT,
            &|_| {},
        )
        .await
        .expect_err("an unschedulable rollout must fail");
        let took = t.elapsed();
        eprintln!("progress deadline reported after {took:?}:\n{e}");
        assert!(
            took < Duration::from_secs(30),
            "stops at progressDeadlineSeconds, not --timeout: {took:?}"
        );
        assert!(
            took >= Duration::from_secs(4),
            "not before the deadline: {took:?}"
        );
        assert!(
            e.message.contains("ProgressDeadlineExceeded"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("Unschedulable") || e.message.contains("timed out progressing"),
            "{}",
            e.message
        );
        assert_eq!(
            e.object.as_deref(),
            Some(format!("Deployment {ns}/stuck").as_str())
        );
        assert!(e.fix.unwrap().contains("kubectl describe pods"));
    })
    .await;
}

/// Give a pod a container status the kubelet would report for a crashing container.
async fn crash(pods: &Api<Pod>, name: &str) {
    let status = json!({"status": {"containerStatuses": [{
        "name": "app", "image": "127.0.0.1:5000/pake-test/web:v2", "imageID": "", "ready": false,
        "restartCount": 4, "started": false,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off 1m20s restarting failed container=app pod={name}")}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": "mkdir /app/cache: read-only file system"}}
    }]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Strategic(status))
        .await
        .unwrap();
}

#[tokio::test]
async fn crashloop_of_a_new_pod_fails_fast_and_old_pods_are_ignored() {
    let Some(client) = client().await else { return };
    in_namespace(&client, json!({}), |client, ns| async move {
        let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        api.create(
            &PostParams::default(),
            &deployment("web", 2, hardened_pod("web", "v1"), json!({})),
        )
        .await
        .unwrap();
        wait::rollout(&client, Workload::Deployment, &ns, "web", TIMEOUT, &|_| {})
            .await
            .unwrap();
        let old: Vec<String> = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.name_any())
            .collect();
        // An old pod crashing must not fail the new rollout.
        crash(&pods, &old[0]).await;
        let p = pods.get(&old[0]).await.unwrap();
        assert!(
            wait::pod_failure(&p).is_some(),
            "kwok kept the patched status"
        );

        // v2: minReadySeconds keeps the new pods unavailable, so the rollout is still running.
        api.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"minReadySeconds": 300, "template": hardened_pod("web", "v2")}}),
            ),
        )
        .await
        .unwrap();
        let (cb, _seen, mut rx) = progress();
        let waiting = wait::rollout(&client, Workload::Deployment, &ns, "web", TIMEOUT, &cb);
        tokio::pin!(waiting);
        // Wait until a v2 pod exists and is Ready, while the rollout keeps going.
        let new_pod = loop {
            tokio::select! {
                r = &mut waiting => panic!("rollout ended early: {r:?}"),
                _ = rx.recv() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            let list = pods
                .list(&ListParams::default().labels("app=web,version=v2"))
                .await
                .unwrap();
            if let Some(p) = list.items.iter().find(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            }) {
                break p.name_any();
            }
        };
        let t = Instant::now();
        crash(&pods, &new_pod).await;
        let e = tokio::time::timeout(Duration::from_secs(30), &mut waiting)
            .await
            .expect("fail fast")
            .expect_err("a crashing new pod must fail the rollout");
        eprintln!(
            "CrashLoopBackOff reported {:?} after the patch:\n{e}",
            t.elapsed()
        );
        assert_eq!(
            e.object.as_deref(),
            Some(format!("Pod {ns}/{new_pod}").as_str()),
            "{e}"
        );
        assert!(e.message.contains("CrashLoopBackOff"), "{}", e.message);
        assert!(e.message.contains("read-only file system"), "{}", e.message);
        assert!(e.fix.unwrap().contains("emptyDir"));
    })
    .await;
}

#[tokio::test]
async fn statefulset_update_completes() {
    let Some(client) = client().await else { return };
    in_namespace(&client, json!({}), |client, ns| async move {
        let api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
        let sts: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "db"},
            "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                     "template": hardened_pod("db", "v1")}
        }))
        .unwrap();
        api.create(&PostParams::default(), &sts).await.unwrap();
        wait::rollout(&client, Workload::StatefulSet, &ns, "db", TIMEOUT, &|_| {})
            .await
            .unwrap_or_else(|e| panic!("initial rollout: {e}"));
        api.patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": hardened_pod("db", "v2")}})),
        )
        .await
        .unwrap();
        wait::rollout(&client, Workload::StatefulSet, &ns, "db", TIMEOUT, &|_| {})
            .await
            .unwrap_or_else(|e| panic!("update rollout: {e}"));
        let s = api.get("db").await.unwrap();
        assert_eq!(wait::statefulset_state(&s), RolloutState::Complete);
        let status = s.status.unwrap();
        let rev = status.update_revision.unwrap();
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        for p in pods
            .list(&ListParams::default().labels("app=db"))
            .await
            .unwrap()
        {
            assert_eq!(
                p.labels().get("controller-revision-hash"),
                Some(&rev),
                "{} is at the new revision",
                p.name_any()
            );
        }
    })
    .await;
}

#[tokio::test]
async fn missing_workload_is_an_error_not_a_wait() {
    let Some(client) = client().await else { return };
    in_namespace(&client, json!({}), |client, ns| async move {
        let e = wait::rollout(&client, Workload::Deployment, &ns, "nope", TIMEOUT, &|_| {})
            .await
            .expect_err("no such deployment");
        assert!(e.message.contains("not found"), "{}", e.message);
        assert_eq!(
            e.object.as_deref(),
            Some(format!("Deployment {ns}/nope").as_str())
        );
    })
    .await;
}

#[tokio::test]
async fn deployer_identity_can_wait_for_deployment_and_daemonset() {
    let Some(client) = client().await else { return };
    in_namespace(&client, json!({"pod-security.kubernetes.io/enforce": "restricted"}), |client, ns| async move {
        bind_deployer(&client, &ns).await;
        let deployer = deployer_client().await;
        let deployments: Api<Deployment> = Api::namespaced(deployer.clone(), &ns);
        deployments
            .create(&PostParams::default(), &deployment("web", 2, hardened_pod("web", "v1"), json!({})))
            .await
            .unwrap();
        wait::rollout(&deployer, Workload::Deployment, &ns, "web", TIMEOUT, &|_| {})
            .await
            .unwrap_or_else(|e| panic!("deployment rollout as deployer: {e}"));

        // The deployer role may update but not create DaemonSets, and may not
        // list ControllerRevisions: the wait tells new pods by template generation.
        let ds: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": hardened_pod("agent", "v1")}
        }))
        .unwrap();
        Api::<DaemonSet>::namespaced(client.clone(), &ns).create(&PostParams::default(), &ds).await.unwrap();
        wait::rollout(&deployer, Workload::DaemonSet, &ns, "agent", TIMEOUT, &|_| {})
            .await
            .unwrap_or_else(|e| panic!("daemonset rollout as deployer: {e}"));
        let daemonsets: Api<DaemonSet> = Api::namespaced(deployer.clone(), &ns);
        daemonsets
            .patch("agent", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": hardened_pod("agent", "v2")}})))
            .await
            .unwrap();
        let (cb, seen, _rx) = progress();
        wait::rollout(&deployer, Workload::DaemonSet, &ns, "agent", TIMEOUT, &cb)
            .await
            .unwrap_or_else(|e| panic!("daemonset update as deployer: {e}"));
        eprintln!("daemonset update progress: {:?}", seen.lock().unwrap());
        let d = daemonsets.get("agent").await.unwrap();
        assert_eq!(wait::daemonset_state(&d), RolloutState::Complete);
        let generation = d.annotations().get("deprecated.daemonset.template.generation").cloned().unwrap();
        let pods: Vec<Pod> = Api::<Pod>::namespaced(client.clone(), &ns)
            .list(&ListParams::default().labels("app=agent"))
            .await
            .unwrap()
            .items;
        assert_eq!(pods.len(), d.status.unwrap().desired_number_scheduled as usize, "no old pod left");
        for p in &pods {
            assert_eq!(p.labels().get("pod-template-generation"), Some(&generation), "{} is new", p.name_any());
        }
    })
    .await;
}
