//! `pake rotate-secret` against the real local cluster, run as the
//! least-privilege `deployer` identity in the shared `pake-test` namespace
//! (one app name per test). Setup and assertions use the admin identity.

mod k8s;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use pake::secret::SecretValue;
use pake::steps::rotate::{content_hash, hash_annotation};
use serde_json::{Value, json};

const NS: &str = "pake-test";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn rotate(
    kc: &std::path::Path,
    dir: &std::path::Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut args = vec!["--context", k8s::DEPLOYER, "--env", "test", "rotate-secret"];
    args.extend_from_slice(extra);
    k8s::pake(kc, dir, &args, env)
}

fn pp() -> PostParams {
    PostParams {
        field_manager: Some("test-admin".into()),
        ..Default::default()
    }
}

/// The namespace exists (without labels of ours, so `pake deploy` in other
/// tests can still apply its PodSecurity labels without a conflict).
async fn ensure_namespace(admin: &kube::Client) {
    let api: Api<Namespace> = Api::all(admin.clone());
    if api.get_opt(NS).await.unwrap().is_none() {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
        let _ = api.create(&pp(), &ns).await;
    }
}

async fn create_secret(admin: &kube::Client, app: &str, name: &str, data: &[(&str, &str)]) {
    let data: BTreeMap<&str, String> = data.iter().map(|(k, v)| (*k, B64.encode(v))).collect();
    let s: Secret = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS, "labels": {"app": app}},
        "type": "Opaque",
        "data": data,
    }))
    .unwrap();
    Api::<Secret>::namespaced(admin.clone(), NS)
        .create(&pp(), &s)
        .await
        .unwrap();
}

async fn secret_data(admin: &kube::Client, name: &str) -> BTreeMap<String, Vec<u8>> {
    let s = Api::<Secret>::namespaced(admin.clone(), NS)
        .get(name)
        .await
        .unwrap();
    s.data.unwrap().into_iter().map(|(k, v)| (k, v.0)).collect()
}

/// The namespace's fingerprint key (created here if no pake run made it yet,
/// the same way pake does: create, and on a conflict read the winner's).
async fn fkey(admin: &kube::Client) -> SecretValue {
    let api = Api::<Secret>::namespaced(admin.clone(), NS);
    loop {
        if let Some(s) = api.get_opt("pake-fingerprint-key").await.unwrap() {
            return SecretValue::from_bytes(s.data.unwrap()["key"].0.clone());
        }
        let body: Secret = serde_json::from_value(json!({
            "metadata": {"name": "pake-fingerprint-key"},
            "data": {"key": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, SecretValue::random_base64(32).unwrap().expose())},
        }))
        .unwrap();
        let _ = api.create(&pp(), &body).await;
    }
}

async fn content_of(admin: &kube::Client, data: &BTreeMap<String, Vec<u8>>) -> String {
    content_hash(
        &data
            .iter()
            .map(|(k, v)| (k.clone(), SecretValue::from_bytes(v.clone())))
            .collect(),
        &fkey(admin).await,
    )
}

/// A PodSecurity-restricted pod template labelled `wl: name`, with `extra`
/// merged into the container and `volumes` into the pod spec.
fn template(app: &str, wl: &str, container: Value, pod: Value, labels: Value) -> Value {
    let mut c = json!({
        "name": "app",
        "image": "pake-test/rotate:1",
        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": true},
        "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}, "requests": {"cpu": "10m", "memory": "16Mi"}},
    });
    merge(&mut c, container);
    let mut spec = json!({
        "automountServiceAccountToken": false,
        "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [c],
    });
    merge(&mut spec, pod);
    let mut l = json!({"app": app, "wl": wl});
    merge(&mut l, labels);
    json!({"metadata": {"labels": l}, "spec": spec})
}

fn merge(a: &mut Value, b: Value) {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        for (k, v) in b {
            a.insert(k, v);
        }
    }
}

async fn create_deployment(admin: &kube::Client, app: &str, name: &str, template: Value) {
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS, "labels": {"app": app}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"wl": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": template,
        }
    }))
    .unwrap();
    Api::<Deployment>::namespaced(admin.clone(), NS)
        .create(&pp(), &d)
        .await
        .unwrap();
}

async fn wait_available(admin: &kube::Client, names: &[&str]) {
    let api: Api<Deployment> = Api::namespaced(admin.clone(), NS);
    for _ in 0..120 {
        let mut all = true;
        for n in names {
            let d = api.get(n).await.unwrap();
            let s = d.status.unwrap_or_default();
            all &= s.available_replicas == Some(2)
                && s.updated_replicas == Some(2)
                && s.replicas == Some(2)
                && s.observed_generation == d.metadata.generation;
        }
        if all {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("deployments {names:?} did not become available");
}

async fn template_annotations(admin: &kube::Client, name: &str) -> BTreeMap<String, String> {
    Api::<Deployment>::namespaced(admin.clone(), NS)
        .get(name)
        .await
        .unwrap()
        .spec
        .unwrap()
        .template
        .metadata
        .and_then(|m| m.annotations)
        .unwrap_or_default()
}

async fn generation(admin: &kube::Client, name: &str) -> Option<i64> {
    Api::<Deployment>::namespaced(admin.clone(), NS)
        .get(name)
        .await
        .unwrap()
        .metadata
        .generation
}

/// The hash annotation of every live (not terminating) pod labelled `wl: name`.
async fn pod_hashes(admin: &kube::Client, wl: &str, annotation: &str) -> Vec<Option<String>> {
    let pods = Api::<Pod>::namespaced(admin.clone(), NS)
        .list(&ListParams::default().labels(&format!("wl={wl}")))
        .await
        .unwrap();
    pods.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            p.metadata
                .annotations
                .and_then(|a| a.get(annotation).cloned())
        })
        .collect()
}

fn assert_no_value(all: &str, value: &[u8]) {
    let text = String::from_utf8_lossy(value);
    assert!(
        !all.contains(text.as_ref()),
        "secret value leaked into output"
    );
    assert!(
        !all.contains(&B64.encode(value)),
        "base64 of the secret value leaked into output"
    );
}

async fn cleanup(admin: &kube::Client, app: &str) {
    k8s::cleanup_app(admin, NS, app).await;
    let _ = Api::<StatefulSet>::namespaced(admin.clone(), NS)
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels(&format!("app={app}")),
        )
        .await;
    let _ = Api::<DaemonSet>::namespaced(admin.clone(), NS)
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels(&format!("app={app}")),
        )
        .await;
}

#[tokio::test]
async fn restarts_exactly_the_workloads_that_use_the_key() {
    let Some(kc) = k8s::kubeconfig("rotate_styles") else {
        return;
    };
    let sfx = k8s::suffix();
    let app = format!("rot-{sfx}");
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    ensure_namespace(&admin).await;
    let secret = format!("db-{sfx}");
    let original = format!("orig-{}-{}", k8s::suffix(), k8s::suffix());
    create_secret(
        &admin,
        &app,
        &secret,
        &[("password", &original), ("username", "app-user")],
    )
    .await;
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);

    // One workload per reference style (envFrom in an init container), one
    // that reads only another key, one that does not reference the Secret.
    let n = |s: &str| format!("{s}-{sfx}");
    let env_ref = json!({"env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}}]});
    let mut init = template(&app, &n("envfrom"), json!({}), json!({}), json!({}));
    init["spec"]["initContainers"] = json!([{
        "name": "init", "image": "pake-test/rotate:1",
        "envFrom": [{"secretRef": {"name": secret}}],
        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
    }]);
    let deployments = [
        (
            n("env"),
            template(&app, &n("env"), env_ref.clone(), json!({}), json!({})),
        ),
        (n("envfrom"), init),
        (
            n("vol"),
            template(
                &app,
                &n("vol"),
                json!({"volumeMounts": [{"name": "creds", "mountPath": "/creds", "readOnly": true}]}),
                json!({"volumes": [{"name": "creds", "secret": {"secretName": secret}}]}),
                json!({}),
            ),
        ),
        (
            n("proj"),
            template(
                &app,
                &n("proj"),
                json!({"volumeMounts": [{"name": "all", "mountPath": "/all", "readOnly": true}]}),
                json!({"volumes": [{"name": "all", "projected": {"sources": [{"secret": {"name": secret, "items": [{"key": "password", "path": "pw"}]}}]}}]}),
                json!({}),
            ),
        ),
        (
            n("user"),
            template(
                &app,
                &n("user"),
                json!({"env": [{"name": "DB_USER", "valueFrom": {"secretKeyRef": {"name": secret, "key": "username"}}}]}),
                json!({}),
                json!({}),
            ),
        ),
        (
            n("other"),
            template(&app, &n("other"), json!({}), json!({}), json!({})),
        ),
    ];
    for (name, t) in &deployments {
        create_deployment(&admin, &app, name, t.clone()).await;
    }
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": n("sts"), "namespace": NS, "labels": {"app": app}},
        "spec": {
            "replicas": 1, "serviceName": n("sts"),
            "selector": {"matchLabels": {"wl": n("sts")}},
            "template": template(&app, &n("sts"), env_ref, json!({}), json!({})),
        }
    }))
    .unwrap();
    Api::<StatefulSet>::namespaced(admin.clone(), NS)
        .create(&pp(), &sts)
        .await
        .unwrap();
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": n("ds"), "namespace": NS, "labels": {"app": app}},
        "spec": {
            "selector": {"matchLabels": {"wl": n("ds")}},
            "template": template(
                &app,
                &n("ds"),
                json!({"volumeMounts": [{"name": "pw", "mountPath": "/pw", "readOnly": true}]}),
                json!({"volumes": [{"name": "pw", "secret": {"secretName": secret, "items": [{"key": "password", "path": "pw"}]}}]}),
                json!({}),
            ),
        }
    }))
    .unwrap();
    Api::<DaemonSet>::namespaced(admin.clone(), NS)
        .create(&pp(), &ds)
        .await
        .unwrap();
    let names: Vec<&str> = deployments.iter().map(|(n, _)| n.as_str()).collect();
    wait_available(&admin, &names).await;
    let before = secret_data(&admin, &secret).await;
    let gens_before: Vec<Option<i64>> =
        futures::future::join_all(names.iter().map(|d| generation(&admin, d))).await;
    let mut all_output = String::new();

    // --dry-run: lists what would restart, changes nothing.
    let out = rotate(&kc, p.path(), &[&secret, "--dry-run", "-o", "json"], &[]);
    all_output.push_str(&k8s::text(&out));
    assert!(out.status.success(), "{}", k8s::text(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let actions: BTreeMap<String, String> = r["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                format!(
                    "{}/{}",
                    w["kind"].as_str().unwrap(),
                    w["name"].as_str().unwrap()
                ),
                w["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: BTreeMap<String, String> = [
        ("Deployment/env", "would-restart"),
        ("Deployment/envfrom", "would-restart"),
        ("Deployment/vol", "would-restart"),
        ("Deployment/proj", "would-restart"),
        ("Deployment/user", "unaffected"),
        ("StatefulSet/sts", "would-restart"),
        ("DaemonSet/ds", "would-restart"),
    ]
    .iter()
    .map(|(k, v)| (format!("{k}-{sfx}"), v.to_string()))
    .collect();
    assert_eq!(actions, expected, "{r}");
    assert_eq!(
        secret_data(&admin, &secret).await,
        before,
        "dry run changed the Secret"
    );
    for (d, g) in names.iter().zip(&gens_before) {
        assert_eq!(generation(&admin, d).await, *g, "dry run changed {d}");
    }
    let history = Api::<ConfigMap>::namespaced(admin.clone(), NS)
        .list(&ListParams::default().labels(&format!("pake.dev/app={app}")))
        .await
        .unwrap();
    assert!(history.items.is_empty(), "dry run recorded history");

    // The rotation.
    let out = rotate(&kc, p.path(), &[&secret, "-o", "json"], &[]);
    all_output.push_str(&k8s::text(&out));
    assert!(out.status.success(), "{}", k8s::text(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["ok"], true, "{r}");
    let after = secret_data(&admin, &secret).await;
    assert_eq!(after["username"], b"app-user", "other keys are kept");
    assert_ne!(after["password"], before["password"]);
    let first = after["password"].clone();
    assert_eq!(first.len(), 44, "32 bytes of base64");
    assert_eq!(B64.decode(&first).unwrap().len(), 32);
    let hash = content_of(&admin, &after).await;
    assert_eq!(r["contentHash"], hash.as_str());
    let annotation = hash_annotation(&secret);
    for short in ["env", "envfrom", "vol", "proj"] {
        let a = template_annotations(&admin, &n(short)).await;
        assert_eq!(a.get(&annotation), Some(&hash), "{short}: {a:?}");
        assert!(
            a.contains_key("kubectl.kubernetes.io/restartedAt"),
            "{short}"
        );
        let pods = pod_hashes(&admin, &n(short), &annotation).await;
        assert_eq!(pods.len(), 2, "{short}: old pods are gone");
        assert!(
            pods.iter().all(|h| h.as_ref() == Some(&hash)),
            "{short}: {pods:?}"
        );
    }
    let pods = pod_hashes(&admin, &n("sts"), &annotation).await;
    assert_eq!(pods, vec![Some(hash.clone())]);
    let pods = pod_hashes(&admin, &n("ds"), &annotation).await;
    assert!(!pods.is_empty());
    assert!(
        pods.iter().all(|h| h.as_ref() == Some(&hash)),
        "DaemonSet: {pods:?}"
    );
    // Not restarted: the key is not used, or the Secret is not referenced.
    for short in ["user", "other"] {
        let i = names.iter().position(|d| *d == n(short)).unwrap();
        assert_eq!(
            generation(&admin, &n(short)).await,
            gens_before[i],
            "{short} was restarted"
        );
        assert!(template_annotations(&admin, &n(short)).await.is_empty());
    }

    // A second rotation: a different value, same shape.
    let out = rotate(&kc, p.path(), &[&secret, "--key", "password"], &[]);
    all_output.push_str(&k8s::text(&out));
    assert!(out.status.success(), "{}", k8s::text(&out));
    let second = secret_data(&admin, &secret).await["password"].clone();
    assert_ne!(second, first);
    assert_eq!(B64.decode(&second).unwrap().len(), 32);

    // History: two rotations, hashes only.
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
    all_output.push_str(&k8s::text(&out));
    let h: Value = serde_json::from_slice(&out.stdout).unwrap();
    let revs = h["revisions"].as_array().unwrap();
    assert_eq!(revs.len(), 2, "{h}");
    assert!(
        revs.iter()
            .all(|v| v["action"] == "rotation" && v["status"] == "rotation"),
        "{h}"
    );
    let key = fkey(&admin).await;
    let sha = |v: &[u8]| SecretValue::from_bytes(v.to_vec()).fingerprint(&key);
    assert_eq!(
        revs[1]["secretHashes"][format!("{secret}/password")],
        sha(&second).as_str()
    );
    assert_eq!(
        revs[1]["details"]["previousHashes"][format!("{secret}/password")],
        sha(&first).as_str()
    );

    for v in [&before["password"], &first, &second] {
        assert_no_value(&all_output, v);
    }
    cleanup(&admin, &app).await;
}

#[tokio::test]
async fn failing_rollout_restores_the_previous_value() {
    let Some(kc) = k8s::kubeconfig("rotate_restore") else {
        return;
    };
    let sfx = k8s::suffix();
    let app = format!("rotfail-{sfx}");
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    ensure_namespace(&admin).await;
    let secret = format!("db-{sfx}");
    let original = format!("orig-{}-{}", k8s::suffix(), k8s::suffix());
    create_secret(
        &admin,
        &app,
        &secret,
        &[("password", &original), ("username", "u")],
    )
    .await;
    let before = secret_data(&admin, &secret).await;
    let original_hash = content_of(&admin, &before).await;
    let annotation = hash_annotation(&secret);
    let p = k8s::project(&k8s::pake_yaml(&app, NS, ""), &[]);
    let env_ref = json!({"env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}}]});
    // `broken` cannot start with any but the original Secret content, as an
    // app whose database rejects the new password would: an admission policy
    // refuses its pods stamped with another hash. `fine` takes any value.
    let broken = format!("broken-{sfx}");
    let fine = format!("fine-{sfx}");
    create_deployment(
        &admin,
        &app,
        &fine,
        template(&app, &fine, env_ref.clone(), json!({}), json!({})),
    )
    .await;
    create_deployment(
        &admin,
        &app,
        &broken,
        template(
            &app,
            &broken,
            env_ref,
            json!({}),
            json!({"rotate-deny": sfx}),
        ),
    )
    .await;
    wait_available(&admin, &[&fine, &broken]).await;

    let policy = format!("pake-test-rotate-{sfx}");
    let client = admin.clone();
    let dyn_api = |kind: &str, plural: &str| {
        let ar = kube::core::ApiResource {
            group: "admissionregistration.k8s.io".into(),
            version: "v1".into(),
            api_version: "admissionregistration.k8s.io/v1".into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        Api::<kube::api::DynamicObject>::all_with(client.clone(), &ar)
    };
    let vap = dyn_api("ValidatingAdmissionPolicy", "validatingadmissionpolicies");
    let vapb = dyn_api(
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
    );
    let expr = format!(
        "!has(object.metadata.annotations) || !('{annotation}' in object.metadata.annotations) || object.metadata.annotations['{annotation}'] == '{original_hash}'"
    );
    let policy_obj: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": policy},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
                "objectSelector": {"matchLabels": {"rotate-deny": sfx}},
            },
            "validations": [{"expression": expr, "message": "test: this app only works with the original database password"}],
        }
    }))
    .unwrap();
    vap.create(&pp(), &policy_obj).await.unwrap();
    let binding: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": policy},
        "spec": {"policyName": policy, "validationActions": ["Deny"],
                 "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NS}}}},
    }))
    .unwrap();
    vapb.create(&pp(), &binding).await.unwrap();
    // The policy is active once a (dry-run) pod with another hash is refused.
    let mut probe_pod = template(
        &app,
        &broken,
        json!({}),
        json!({}),
        json!({"rotate-deny": sfx}),
    );
    probe_pod["metadata"]["name"] = json!(format!("probe-{sfx}"));
    probe_pod["metadata"]["annotations"] = json!({annotation.clone(): "not-the-original"});
    let probe_pod: Pod = serde_json::from_value(probe_pod).unwrap();
    let pods: Api<Pod> = Api::namespaced(admin.clone(), NS);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let mut active = false;
    for _ in 0..100 {
        if let Err(kube::Error::Api(s)) = pods.create(&dry, &probe_pod).await
            && s.message.contains("original database password")
        {
            active = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(active, "the admission policy did not become active");

    let out = rotate(&kc, p.path(), &[&secret, "--timeout", "60s"], &[]);
    let t = k8s::text(&out);
    let _ = vapb.delete(&policy, &DeleteParams::default()).await;
    let _ = vap.delete(&policy, &DeleteParams::default()).await;
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("rotation failed"), "{t}");
    assert!(
        t.contains(&format!("Deployment {NS}/{broken}")),
        "names the failed workload: {t}"
    );
    assert!(t.contains("original database password"), "says why: {t}");
    assert!(t.contains("restored"), "{t}");

    // The previous value is back, and every pod of both workloads runs it again (verified by pake, checked here).
    assert_eq!(secret_data(&admin, &secret).await, before);
    for wl in [&fine, &broken] {
        let a = template_annotations(&admin, wl).await;
        assert_eq!(a.get(&annotation), Some(&original_hash), "{wl}: {a:?}");
        let hashes = pod_hashes(&admin, wl, &annotation).await;
        assert_eq!(hashes.len(), 2, "{wl}: {hashes:?}");
        assert!(
            hashes.iter().all(|h| h.as_ref() == Some(&original_hash)),
            "{wl}: {hashes:?}"
        );
    }
    // History says it failed, with the restored hash.
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
    let h: Value = serde_json::from_slice(&out.stdout).unwrap();
    let last = h["revisions"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["status"], "failed", "{h}");
    assert_eq!(
        last["secretHashes"][format!("{secret}/password")],
        SecretValue::from_bytes(original.as_bytes().to_vec())
            .fingerprint(&fkey(&admin).await)
            .as_str()
    );
    assert_no_value(&t, original.as_bytes());
    cleanup(&admin, &app).await;
}

#[tokio::test]
async fn deploy_keeps_the_rotated_value_and_refusals_change_nothing() {
    let Some(kc) = k8s::kubeconfig("rotate_deploy") else {
        return;
    };
    let app = format!("rotdep-{}", k8s::suffix());
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let secret = format!("{app}-db");
    let extra = format!(
        "secrets:\n  - name: {secret}\n    keys:\n      password:\n        fromEnv: PAKE_T_ROT_PW\n      token:\n        generate: {{bytes: 32}}\nenv:\n  - name: DB_PASSWORD\n    secretKeyRef: {{name: {secret}, key: password}}\n"
    );
    let p = k8s::project(&k8s::pake_yaml(&app, NS, &extra), &[]);
    let source = format!("src-{}-{}", k8s::suffix(), k8s::suffix());
    let env = [("PAKE_T_ROT_PW", source.as_str()), ("PAKE_LOG", "trace")];
    let deploy = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec![
            "--context",
            k8s::DEPLOYER,
            "--env",
            "test",
            "deploy",
            "--timeout",
            "60s",
        ];
        args.extend_from_slice(extra);
        k8s::pake(&kc, p.path(), &args, env)
    };
    let mut all = String::new();
    let out = deploy(&[], &env);
    assert!(out.status.success(), "{}", k8s::text(&out));
    let workload = format!("{app}-v1");
    let before = secret_data(&admin, &secret).await;

    // Refusals change nothing and exit 2: a protected environment without
    // --yes, a missing Secret, a missing key, a value equal to the current one.
    for (args, env, needle) in [
        (
            vec!["--env", "prod", "rotate-secret", secret.as_str()],
            &env[..],
            "--yes",
        ),
        (
            vec!["--env", "test", "rotate-secret", "no-such-secret"],
            &env[..],
            "not found",
        ),
        (
            vec![
                "--env",
                "test",
                "rotate-secret",
                secret.as_str(),
                "--key",
                "nope",
            ],
            &env[..],
            "password, token",
        ),
        (
            vec![
                "--env",
                "test",
                "rotate-secret",
                secret.as_str(),
                "--from-env",
                "PAKE_T_ROT_PW",
            ],
            &env[..],
            "already has",
        ),
        (
            vec![
                "--env",
                "test",
                "rotate-secret",
                secret.as_str(),
                "--length",
                "4",
            ],
            &env[..],
            "out of range",
        ),
    ] {
        let mut a = vec!["--context", k8s::DEPLOYER];
        a.extend(args);
        let out = k8s::pake(&kc, p.path(), &a, env);
        let t = k8s::text(&out);
        all.push_str(&t);
        assert_eq!(out.status.code(), Some(2), "{a:?}: {t}");
        assert!(t.contains(needle), "{a:?}: {t}");
        assert!(
            t.contains("nothing was changed") || needle == "out of range",
            "{a:?}: {t}"
        );
    }
    assert_eq!(secret_data(&admin, &secret).await, before);
    assert!(template_annotations(&admin, &workload).await.is_empty());

    // Rotate (verbose, then JSON for the hashes).
    let out = rotate(&kc, p.path(), &[&secret, "-vvv"], &env);
    all.push_str(&k8s::text(&out));
    assert!(out.status.success(), "{}", k8s::text(&out));
    let rotated = secret_data(&admin, &secret).await;
    assert_ne!(rotated["password"], before["password"]);
    assert_eq!(rotated["token"], before["token"]);
    let gen_rotated = generation(&admin, &workload).await;
    let annotations = template_annotations(&admin, &workload).await;

    // The next deploy with the same (stale) source keeps the rotated value,
    // and does not remove the annotations (no second restart).
    let out = deploy(&["-o", "json"], &env);
    all.push_str(&k8s::text(&out));
    assert!(out.status.success(), "{}", k8s::text(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kept = r["steps"][1]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["check"] == "secret-rotation-kept");
    assert!(kept, "{r}");
    assert_eq!(secret_data(&admin, &secret).await, rotated);
    assert_eq!(generation(&admin, &workload).await, gen_rotated);
    assert_eq!(template_annotations(&admin, &workload).await, annotations);

    // An updated source wins.
    let updated = format!("new-{}-{}", k8s::suffix(), k8s::suffix());
    let env2 = [("PAKE_T_ROT_PW", updated.as_str())];
    let out = deploy(&[], &env2);
    all.push_str(&k8s::text(&out));
    assert!(out.status.success(), "{}", k8s::text(&out));
    assert_eq!(
        secret_data(&admin, &secret).await["password"],
        updated.as_bytes()
    );

    // --no-restart: only the Secret changes; the output lists what still runs the old value.
    let gen_before = generation(&admin, &workload).await;
    let out = rotate(
        &kc,
        p.path(),
        &[
            &secret,
            "--no-restart",
            "--from-command",
            "head -c 24 /dev/urandom | base64",
        ],
        &env2,
    );
    let t = k8s::text(&out);
    all.push_str(&t);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains(&format!("Deployment {NS}/{workload}")) && t.contains("still run the old value"),
        "{t}"
    );
    assert_eq!(generation(&admin, &workload).await, gen_before);
    let last = secret_data(&admin, &secret).await;
    assert_eq!(B64.decode(last["password"].trim_ascii()).unwrap().len(), 24);

    for v in [
        source.as_bytes(),
        &rotated["password"],
        updated.as_bytes(),
        &last["password"],
        &before["token"],
    ] {
        assert_no_value(&all, v);
    }
    k8s::cleanup_app(&admin, NS, &app).await;
}
