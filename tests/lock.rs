//! The Lease lock against the real local cluster.
//!
//! Needs PAKE_TEST_KUBECONFIG (set by the test script); without it every test
//! prints why it is skipped and passes. Each test uses its own namespace
//! `pake-t-<random>` and deletes it at the end, also when the test fails.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use pake::workflow::lock::{self, LockOptions};
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

fn random_suffix() -> String {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("random bytes");
    hex::encode(b)
}

async fn in_namespace<F, Fut>(client: &kube::Client, body: F)
where
    F: FnOnce(kube::Client, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let name = format!("pake-t-{}", random_suffix());
    let ns: Namespace = serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"pake-test": "true"}}}),
    )
    .unwrap();
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(&PostParams::default(), &ns)
        .await
        .expect("create test namespace");
    let result = AssertUnwindSafe(body(client.clone(), name.clone()))
        .catch_unwind()
        .await;
    let _ = api.delete(&name, &DeleteParams::background()).await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

const LOCK: &str = "pake-lock-backend-prod";

fn opts(wait: bool, wait_timeout: u64, lease_duration: u64) -> LockOptions {
    LockOptions {
        wait,
        wait_timeout: Duration::from_secs(wait_timeout),
        lease_duration: Duration::from_secs(lease_duration),
    }
}

fn holder_of(l: &Lease) -> Option<String> {
    l.spec.as_ref()?.holder_identity.clone()
}

#[tokio::test]
async fn second_acquire_fails_at_once_naming_the_holder() {
    let Some(client) = client().await else { return };
    in_namespace(&client, |client, ns| async move {
        let a = lock::acquire(
            &client,
            &ns,
            LOCK,
            "alice@laptop pid 11",
            opts(false, 10, 30),
        )
        .await
        .unwrap();
        assert_eq!(a.holder(), "alice@laptop pid 11");
        let t = Instant::now();
        let e = lock::acquire(&client, &ns, LOCK, "bob@ci pid 22", opts(false, 10, 30))
            .await
            .expect_err("the lock is held");
        assert!(t.elapsed() < Duration::from_secs(5), "fails at once");
        eprintln!("{e}");
        assert_eq!(e.kind, pake::ExitCode::Failed);
        assert!(
            e.message
                .starts_with("another pake run holds the lock: alice@laptop pid 11 since "),
            "{}",
            e.message
        );
        assert_eq!(
            e.object.as_deref(),
            Some(format!("Lease {ns}/{LOCK}").as_str())
        );
        assert!(e.fix.as_deref().unwrap().contains("--wait-lock"));
        assert_eq!(lock::held_by(&e).as_deref(), Some("alice@laptop pid 11"));
        assert!(!a.lost());
        a.release().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn wait_succeeds_after_release_and_gives_up_at_the_wait_timeout() {
    let Some(client) = client().await else { return };
    in_namespace(&client, |client, ns| async move {
        let a = lock::acquire(&client, &ns, LOCK, "alice", opts(false, 10, 30))
            .await
            .unwrap();

        // Bounded wait while alice holds it: gives up, naming her.
        let t = Instant::now();
        let e = lock::acquire(&client, &ns, LOCK, "bob", opts(true, 2, 30))
            .await
            .expect_err("alice still holds it");
        assert!(t.elapsed() >= Duration::from_secs(2) && t.elapsed() < Duration::from_secs(10));
        assert!(
            e.message.contains("gave up after waiting 2s"),
            "{}",
            e.message
        );
        assert_eq!(lock::held_by(&e).as_deref(), Some("alice"));

        // Now bob waits and alice releases after a moment: bob gets it from
        // the watch event, long before alice's 30s lease would have expired.
        let t = Instant::now();
        let (b, ()) = tokio::join!(
            lock::acquire(&client, &ns, LOCK, "bob", opts(true, 60, 30)),
            async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                a.release().await.unwrap();
            }
        );
        let b = b.unwrap();
        let took = t.elapsed();
        eprintln!("waiting acquire got the lock {took:?} after it started");
        assert!(
            took < Duration::from_secs(10),
            "reacted to the release: {took:?}"
        );
        let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
        assert_eq!(
            holder_of(&leases.get(LOCK).await.unwrap()).as_deref(),
            Some("bob")
        );
        b.release().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn expired_lease_is_taken_over() {
    let Some(client) = client().await else { return };
    in_namespace(&client, |client, ns| async move {
        let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
        let renewed = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(120);
        let ghost: Lease = serde_json::from_value(json!({
            "metadata": {"name": LOCK},
            "spec": {"holderIdentity": "ghost@gone pid 1", "leaseDurationSeconds": 30,
                     "acquireTime": renewed.to_string(), "renewTime": renewed.to_string(), "leaseTransitions": 4}
        }))
        .unwrap();
        leases.create(&PostParams::default(), &ghost).await.unwrap();
        let g = lock::acquire(&client, &ns, LOCK, "bob", opts(false, 10, 30)).await.unwrap();
        let l = leases.get(LOCK).await.unwrap();
        let spec = l.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("bob"));
        assert_eq!(spec.lease_transitions, Some(5));
        assert_eq!(spec.lease_duration_seconds, Some(30));
        assert!(spec.renew_time.unwrap().0 > renewed);
        g.release().await.unwrap();
    })
    .await;
}

/// A run killed with -9: no release, no renewals. The next run with
/// --wait-lock gets the lock once the lease expires; no manual cleanup.
#[tokio::test]
async fn killed_holder_expires_and_a_waiting_run_takes_over() {
    let Some(client) = client().await else { return };
    in_namespace(&client, |client, ns| async move {
        // The "killed" run: its own runtime, torn down without releasing.
        let path = std::env::var_os("PAKE_TEST_KUBECONFIG").unwrap();
        let ns2 = ns.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let target = pake::kube::Target {
                    kubeconfig: Some(path.into()),
                    context: Some("pake-local".into()),
                };
                let c = target.connect().await.unwrap().client;
                let g = lock::acquire(&c, &ns2, LOCK, "killed@ci pid 9", opts(false, 10, 3))
                    .await
                    .unwrap();
                std::mem::forget(g);
            });
            rt.shutdown_background();
        })
        .join()
        .unwrap();

        let e = lock::acquire(&client, &ns, LOCK, "next", opts(false, 10, 30))
            .await
            .expect_err("still held right after the kill");
        assert_eq!(lock::held_by(&e).as_deref(), Some("killed@ci pid 9"));
        assert!(
            e.fix.as_deref().unwrap().contains("expires by itself"),
            "{e}"
        );

        let t = Instant::now();
        let g = lock::acquire(&client, &ns, LOCK, "next", opts(true, 30, 30))
            .await
            .unwrap();
        eprintln!("took over the killed run's lock after {:?}", t.elapsed());
        assert!(t.elapsed() < Duration::from_secs(10));
        let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
        let spec = leases.get(LOCK).await.unwrap().spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("next"));
        assert_eq!(spec.lease_transitions, Some(1));
        g.release().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn release_then_reacquire() {
    let Some(client) = client().await else { return };
    in_namespace(&client, |client, ns| async move {
        let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
        let id = lock::holder_identity();
        let g = lock::acquire(&client, &ns, LOCK, &id, opts(false, 10, 30))
            .await
            .unwrap();
        let l = leases.get(LOCK).await.unwrap();
        let spec = l.spec.as_ref().unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some(id.as_str()));
        assert!(spec.acquire_time.is_some() && spec.renew_time.is_some());
        assert_eq!(spec.lease_duration_seconds, Some(30));
        g.release().await.unwrap();
        assert!(
            leases.get_opt(LOCK).await.unwrap().is_none(),
            "release deletes the Lease"
        );
        let g = lock::acquire(&client, &ns, LOCK, &id, opts(false, 10, 30))
            .await
            .unwrap();
        g.release().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn renewal_keeps_it_and_a_takeover_is_detected_and_not_deleted() {
    let Some(client) = client().await else { return };
    in_namespace(&client, |client, ns| async move {
        let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
        let g = lock::acquire(&client, &ns, LOCK, "alice", opts(false, 10, 3))
            .await
            .unwrap();
        let first = leases
            .get(LOCK)
            .await
            .unwrap()
            .spec
            .unwrap()
            .renew_time
            .unwrap();
        // Longer than the lease duration: only renewals keep it held.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let e = lock::acquire(&client, &ns, LOCK, "bob", opts(false, 10, 3))
            .await
            .expect_err("renewed, so still held");
        assert_eq!(lock::held_by(&e).as_deref(), Some("alice"));
        let later = leases
            .get(LOCK)
            .await
            .unwrap()
            .spec
            .unwrap()
            .renew_time
            .unwrap();
        assert!(later.0 > first.0, "renewTime moves on");

        // Someone else takes the Lease over behind alice's back.
        let mut lost = g.lost_signal();
        leases
            .patch(
                LOCK,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"holderIdentity": "mallory"}})),
            )
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), lost.wait_for(|l| *l))
            .await
            .expect("the next renewal notices")
            .unwrap();
        assert!(g.lost());
        g.release().await.unwrap();
        let l = leases
            .get_opt(LOCK)
            .await
            .unwrap()
            .expect("release must not delete someone else's lock");
        assert_eq!(holder_of(&l).as_deref(), Some("mallory"));
    })
    .await;
}

#[tokio::test]
async fn dropping_the_guard_releases_it() {
    let Some(client) = client().await else { return };
    in_namespace(&client, |client, ns| async move {
        let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
        let g = lock::acquire(&client, &ns, LOCK, "alice", opts(false, 10, 30))
            .await
            .unwrap();
        let uid = leases.get(LOCK).await.unwrap().metadata.uid.unwrap();
        drop(g);
        tokio::time::timeout(
            Duration::from_secs(10),
            await_condition(leases, LOCK, conditions::is_deleted(&uid)),
        )
        .await
        .expect("best-effort release on drop")
        .unwrap();
    })
    .await;
}

#[tokio::test]
async fn missing_namespace_is_recognizable() {
    let Some(client) = client().await else { return };
    let ns = format!("pake-t-missing-{}", random_suffix());
    let e = lock::acquire(&client, &ns, LOCK, "alice", opts(false, 10, 30))
        .await
        .expect_err("no namespace");
    assert!(lock::is_namespace_missing(&e), "{e}");
    assert!(e.message.contains(&ns), "{}", e.message);
    assert!(lock::held_by(&e).is_none());
}

/// The least-privileged `deployer` identity (ClusterRole pake-deployer from
/// templates/rbac/, bound in the test namespace) can take, wait for and release the lock.
#[tokio::test]
async fn deployer_identity_can_use_the_lock() {
    let Some(client) = client().await else { return };
    in_namespace(&client, |client, ns| async move {
        let rb: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": "pake-deployer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pake-deployer"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "deployer"}]
        }))
        .unwrap();
        Api::<RoleBinding>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &rb)
            .await
            .unwrap();
        let target = pake::kube::Target {
            kubeconfig: Some(std::env::var_os("PAKE_TEST_KUBECONFIG").unwrap().into()),
            context: Some("pake-local-deployer".into()),
        };
        let deployer = target.connect().await.unwrap().client;
        let a = lock::acquire(&deployer, &ns, LOCK, "ci-1", opts(false, 10, 30)).await.unwrap();
        let (b, ()) = tokio::join!(
            lock::acquire(&deployer, &ns, LOCK, "ci-2", opts(true, 30, 30)),
            async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                a.release().await.unwrap();
            }
        );
        b.unwrap().release().await.unwrap();

        // For deployer a missing namespace is a 403 (no RoleBinding there), still recognized.
        let missing = format!("pake-t-missing-{}", random_suffix());
        let e = lock::acquire(&deployer, &missing, LOCK, "ci-1", opts(false, 10, 30))
            .await
            .expect_err("no namespace");
        assert!(lock::is_namespace_missing(&e), "{e}");
    })
    .await;
}
