//! Secrets synced by the External Secrets Operator (`external:` in pake.yaml)
//! against the real local cluster and the real ESO controller that
//! `scripts/cluster up` runs. The store is ESO's `kubernetes` provider reading
//! a Secret in a separate "vault" namespace, so the whole path — store,
//! ExternalSecret, sync, target Secret, restart — runs for real. pake runs as
//! the least-privilege `deployer`; setup and assertions use the admin identity.
//! Pods run on kwok nodes: what a container reads from its environment is not
//! provable here; the pod-template fingerprint every Ready pod carries is.

mod k8s;

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use pake::secret::SecretValue;
use serde_json::{Value, json};

const NS: &str = "pake-test";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn pp() -> PostParams {
    PostParams {
        field_manager: Some("test-admin".into()),
        ..Default::default()
    }
}

fn es_api(c: &kube::Client, kind: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("external-secrets.io", "v1", kind));
    Api::namespaced_with(c.clone(), NS, &ar)
}

/// The cluster serves ESO's API, or the test cannot run: skipped only when
/// the cluster was started without ESO on purpose (PAKE_CLUSTER_ESO=0).
async fn eso_served(admin: &kube::Client, test: &str) -> bool {
    let served = admin
        .list_api_groups()
        .await
        .unwrap()
        .groups
        .iter()
        .any(|g| g.name == "external-secrets.io");
    if !served && std::env::var("PAKE_CLUSTER_ESO").as_deref() == Ok("0") {
        eprintln!(
            "SKIP {test}: the cluster runs without the External Secrets Operator (PAKE_CLUSTER_ESO=0)"
        );
        return false;
    }
    assert!(
        served,
        "the cluster does not serve external-secrets.io: start it with `scripts/cluster up` (ESO is on by default)"
    );
    true
}

/// The "vault": a namespace with one Secret holding the values, a reader
/// ServiceAccount in the app namespace allowed to read it, and a SecretStore
/// (kubernetes provider) authenticating as that ServiceAccount.
struct Vault {
    ns: String,
    secret: String,
    store: String,
}

async fn vault(
    admin: &kube::Client,
    kc: &std::path::Path,
    app: &str,
    values: &[(&str, &str)],
) -> Vault {
    let v = Vault {
        ns: format!("pake-vault-{}", k8s::suffix()),
        secret: format!("db-{app}"),
        store: format!("vault-{app}"),
    };
    let nsobj: Namespace = serde_json::from_value(json!({"metadata": {"name": v.ns}})).unwrap();
    Api::<Namespace>::all(admin.clone())
        .create(&pp(), &nsobj)
        .await
        .unwrap();
    if Api::<Namespace>::all(admin.clone())
        .get_opt(NS)
        .await
        .unwrap()
        .is_none()
    {
        let n: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
        let _ = Api::<Namespace>::all(admin.clone()).create(&pp(), &n).await;
    }
    set_vault(admin, &v, values, true).await;
    let reader = format!("eso-reader-{app}");
    let sa: ServiceAccount = serde_json::from_value(
        json!({"metadata": {"name": reader, "namespace": NS, "labels": {"app": app}}}),
    )
    .unwrap();
    Api::<ServiceAccount>::namespaced(admin.clone(), NS)
        .create(&pp(), &sa)
        .await
        .unwrap();
    let role: Role = serde_json::from_value(json!({"metadata": {"name": "eso-reader", "namespace": v.ns},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]},
                  {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectrulesreviews"], "verbs": ["create"]}]})).unwrap();
    Api::<Role>::namespaced(admin.clone(), &v.ns)
        .create(&pp(), &role)
        .await
        .unwrap();
    let rb: RoleBinding = serde_json::from_value(
        json!({"metadata": {"name": "eso-reader", "namespace": v.ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "eso-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": reader, "namespace": NS}]}),
    )
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), &v.ns)
        .create(&pp(), &rb)
        .await
        .unwrap();
    // The API server as the kubeconfig names it (ESO runs on this machine).
    let kcv: Value = serde_saphyr::from_str(&std::fs::read_to_string(kc).unwrap()).unwrap();
    let cluster = &kcv["clusters"][0]["cluster"];
    let store = json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": v.store, "namespace": NS, "labels": {"app": app}},
        "spec": {"provider": {"kubernetes": {
            "remoteNamespace": v.ns,
            "server": {"url": cluster["server"], "caBundle": cluster["certificate-authority-data"]},
            "auth": {"serviceAccount": {"name": reader}},
        }}},
    });
    let obj: DynamicObject = serde_json::from_value(store).unwrap();
    es_api(admin, "SecretStore")
        .create(&pp(), &obj)
        .await
        .unwrap();
    // Ready before pake runs (pake's own store check is tested by the wrong-store case).
    for _ in 0..120 {
        let s = es_api(admin, "SecretStore").get(&v.store).await.unwrap();
        let s = serde_json::to_value(s).unwrap();
        let ready = s["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        if ready {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    panic!("SecretStore {} did not become Ready", v.store);
}

/// Write the values into the vault's Secret (create, or replace its data).
async fn set_vault(admin: &kube::Client, v: &Vault, values: &[(&str, &str)], create: bool) {
    let data: BTreeMap<&str, String> = values.iter().map(|(k, x)| (*k, B64.encode(x))).collect();
    let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": v.secret, "namespace": v.ns}, "type": "Opaque", "data": data});
    let api = Api::<Secret>::namespaced(admin.clone(), &v.ns);
    if create {
        api.create(&pp(), &serde_json::from_value(body).unwrap())
            .await
            .unwrap();
    } else {
        api.patch(
            &v.secret,
            &PatchParams::apply("test-admin").force(),
            &Patch::Apply(&body),
        )
        .await
        .unwrap();
    }
}

async fn cleanup(admin: &kube::Client, app: &str, v: &Vault) {
    let _ = es_api(admin, "ExternalSecret")
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels(&format!("app={app}")),
        )
        .await;
    let _ = es_api(admin, "SecretStore")
        .delete(&v.store, &DeleteParams::default())
        .await;
    k8s::cleanup_app(admin, NS, app).await;
    let _ = Api::<Namespace>::all(admin.clone())
        .delete(&v.ns, &DeleteParams::default())
        .await;
}

fn yaml(app: &str, v: &Vault, property: &str) -> String {
    let extra = format!(
        "secrets:\n  - name: {s}\n    external:\n      store: {{name: {st}, kind: SecretStore}}\n      refreshInterval: 1h\n      keys:\n        password: {{key: {s}, property: {property}}}\n        username: {{key: {s}, property: username}}\nenv:\n  - name: DB_PASSWORD\n    secretKeyRef: {{name: {s}, key: password}}\n",
        s = v.secret,
        st = v.store
    );
    k8s::pake_yaml(app, NS, &extra)
}

fn pake(kc: &std::path::Path, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut a = vec!["--context", k8s::DEPLOYER, "--env", "test"];
    a.extend_from_slice(args);
    k8s::pake(kc, dir, &a, &[("PAKE_LOG", "trace")])
}

fn assert_no_value(all: &str, values: &[&str]) {
    for v in values {
        assert!(!all.contains(v), "a secret value leaked into the output");
        assert!(
            !all.contains(&B64.encode(v)),
            "base64 of a secret value leaked into the output"
        );
    }
}

async fn history_text(admin: &kube::Client, app: &str) -> String {
    let cms = Api::<ConfigMap>::namespaced(admin.clone(), NS)
        .list(&ListParams::default().labels(&format!("pake.dev/app={app}")))
        .await
        .unwrap();
    serde_json::to_string(&cms.items.iter().map(|c| &c.data).collect::<Vec<_>>()).unwrap()
}

#[tokio::test]
async fn deploy_waits_for_the_sync_and_records_no_value() {
    let Some(kc) = k8s::kubeconfig("eso_deploy") else {
        return;
    };
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    if !eso_served(&admin, "eso_deploy").await {
        return;
    }
    let app = format!("esod-{}", k8s::suffix());
    let (pw, user) = (
        format!("pw-{}-{}", k8s::suffix(), k8s::suffix()),
        format!("user-{}", k8s::suffix()),
    );
    let v = vault(&admin, &kc, &app, &[("password", &pw), ("username", &user)]).await;
    let p = k8s::project(&yaml(&app, &v, "password"), &[]);

    let out = pake(&kc, p.path(), &["deploy", "--timeout", "90s", "-o", "json"]);
    let mut all = k8s::text(&out);
    assert!(out.status.success(), "{all}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let secrets = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "secrets")
        .unwrap();
    assert_eq!(
        secrets["objects"][0]["object"],
        format!("ExternalSecret {NS}/{}", v.secret)
    );
    let check = &secrets["checks"][0];
    assert_eq!(check["check"], "external-secret-synced", "{check}");
    assert_eq!(check["ok"], true, "{check}");
    assert!(
        check["message"]
            .as_str()
            .unwrap()
            .contains("keys password, username exactly"),
        "{check}"
    );

    // ESO's Secret: exactly the declared keys with the vault's values, controlled by the ExternalSecret.
    let s = Api::<Secret>::namespaced(admin.clone(), NS)
        .get(&v.secret)
        .await
        .unwrap();
    let data = s.data.clone().unwrap();
    assert_eq!(
        data.keys().cloned().collect::<Vec<_>>(),
        ["password", "username"]
    );
    assert_eq!(data["password"].0, pw.as_bytes());
    let es = serde_json::to_value(
        es_api(&admin, "ExternalSecret")
            .get(&v.secret)
            .await
            .unwrap(),
    )
    .unwrap();
    let owner = s.metadata.owner_references.unwrap();
    assert!(owner.iter().any(|o| o.kind == "ExternalSecret"
        && Some(o.uid.as_str()) == es["metadata"]["uid"].as_str()
        && o.controller == Some(true)));

    // History: the ExternalSecret and keyed fingerprints, never a value.
    let h = history_text(&admin, &app).await;
    assert!(
        h.contains("ExternalSecret") && h.contains(&format!("{}/password", v.secret)),
        "{h}"
    );
    let fkey = {
        let k = Api::<Secret>::namespaced(admin.clone(), NS)
            .get("pake-fingerprint-key")
            .await
            .unwrap();
        SecretValue::from_bytes(k.data.unwrap()["key"].0.clone())
    };
    assert!(h.contains(&SecretValue::from_bytes(pw.as_bytes().to_vec()).fingerprint(&fkey)));

    // A second deploy: unchanged, still verified.
    let out = pake(&kc, p.path(), &["deploy", "--timeout", "90s", "-vv"]);
    all.push_str(&k8s::text(&out));
    assert!(out.status.success(), "{}", k8s::text(&out));
    for cmd in [
        vec!["history", "-o", "json"],
        vec!["render"],
        vec!["diff"],
        vec!["status"],
    ] {
        all.push_str(&k8s::text(&pake(&kc, p.path(), &cmd)));
    }
    assert_no_value(&all, &[&pw, &user]);
    assert_no_value(&h, &[&pw, &user]);
    cleanup(&admin, &app, &v).await;
}

#[tokio::test]
async fn wrong_remote_key_fails_the_secrets_step_fast_and_rolls_back() {
    let Some(kc) = k8s::kubeconfig("eso_wrong_key") else {
        return;
    };
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    if !eso_served(&admin, "eso_wrong_key").await {
        return;
    }
    let app = format!("esow-{}", k8s::suffix());
    let pw = format!("pw-{}-{}", k8s::suffix(), k8s::suffix());
    let v = vault(&admin, &kc, &app, &[("password", &pw), ("username", "app")]).await;

    // First deploy ever with a property the vault does not have: the step fails
    // with ESO's message before any workload, and the new ExternalSecret is deleted.
    let p = k8s::project(&yaml(&app, &v, "passwrod"), &[]);
    let out = pake(
        &kc,
        p.path(),
        &["deploy", "--timeout", "120s", "-o", "json"],
    );
    let mut all = k8s::text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["namespace", "secrets"], "{all}");
    let err = r["error"].to_string();
    assert!(err.contains("ESO could not sync"), "{err}");
    assert!(
        !err.contains("not synced within"),
        "must fail on ESO's error, not the timeout: {err}"
    );
    assert!(err.contains("not pake's to restore"), "{err}");
    assert_eq!(r["rolledBack"], true);
    assert!(
        Api::<Deployment>::namespaced(admin.clone(), NS)
            .get_opt(&format!("{app}-v1"))
            .await
            .unwrap()
            .is_none(),
        "no workload may be applied"
    );
    assert!(
        es_api(&admin, "ExternalSecret")
            .get_opt(&v.secret)
            .await
            .unwrap()
            .is_none(),
        "the new ExternalSecret is removed"
    );

    // A good deploy, then a bad change: rollback restores the previous ExternalSecret.
    std::fs::write(p.path().join("pake.yaml"), yaml(&app, &v, "password")).unwrap();
    let out = pake(&kc, p.path(), &["deploy", "--timeout", "90s"]);
    all.push_str(&k8s::text(&out));
    assert!(out.status.success(), "{}", k8s::text(&out));
    std::fs::write(p.path().join("pake.yaml"), yaml(&app, &v, "passwrod")).unwrap();
    let out = pake(&kc, p.path(), &["deploy", "--timeout", "120s"]);
    let t = k8s::text(&out);
    all.push_str(&t);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("not pake's to restore"), "{t}");
    let es = serde_json::to_value(
        es_api(&admin, "ExternalSecret")
            .get(&v.secret)
            .await
            .unwrap(),
    )
    .unwrap();
    let props: Vec<&str> = es["spec"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["remoteRef"]["property"].as_str().unwrap())
        .collect();
    assert!(
        props.contains(&"password") && !props.contains(&"passwrod"),
        "previous ExternalSecret restored: {es}"
    );
    let d = Api::<Deployment>::namespaced(admin.clone(), NS)
        .get(&format!("{app}-v1"))
        .await
        .unwrap();
    assert_eq!(
        d.metadata.generation,
        Some(1),
        "the workload was not touched by the failed run"
    );
    assert_no_value(&all, &[&pw]);
    cleanup(&admin, &app, &v).await;
}

#[tokio::test]
async fn rotation_through_the_store_restarts_exactly_the_readers() {
    let Some(kc) = k8s::kubeconfig("eso_rotate") else {
        return;
    };
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    if !eso_served(&admin, "eso_rotate").await {
        return;
    }
    let app = format!("esor-{}", k8s::suffix());
    let (pw1, pw2) = (
        format!("pw1-{}-{}", k8s::suffix(), k8s::suffix()),
        format!("pw2-{}-{}", k8s::suffix(), k8s::suffix()),
    );
    let v = vault(
        &admin,
        &kc,
        &app,
        &[("password", &pw1), ("username", "app")],
    )
    .await;
    let p = k8s::project(&yaml(&app, &v, "password"), &[]);
    let out = pake(&kc, p.path(), &["deploy", "--timeout", "90s"]);
    let mut all = k8s::text(&out);
    assert!(out.status.success(), "{all}");
    // A second workload that reads only `username`: it must not restart.
    let other = format!("{app}-user");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": other, "namespace": NS, "labels": {"app": app}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"wl": other}},
            "template": {"metadata": {"labels": {"app": app, "wl": other}}, "spec": {
                "automountServiceAccountToken": false,
                "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "app", "image": "pake-test/eso:1",
                    "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                    "env": [{"name": "DB_USER", "valueFrom": {"secretKeyRef": {"name": v.secret, "key": "username"}}}]}]}}}
    }))
    .unwrap();
    Api::<Deployment>::namespaced(admin.clone(), NS)
        .create(&pp(), &d)
        .await
        .unwrap();
    let gen_other = Api::<Deployment>::namespaced(admin.clone(), NS)
        .get(&other)
        .await
        .unwrap()
        .metadata
        .generation;

    // Nothing changed in the store: ESO syncs, no key changed, nothing restarts (exit 1).
    let out = pake(
        &kc,
        p.path(),
        &["rotate-secret", &v.secret, "--timeout", "90s", "-o", "json"],
    );
    all.push_str(&k8s::text(&out));
    assert_eq!(out.status.code(), Some(1), "{}", k8s::text(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no key changed"),
        "{r}"
    );
    let gen_app = Api::<Deployment>::namespaced(admin.clone(), NS)
        .get(&format!("{app}-v1"))
        .await
        .unwrap()
        .metadata
        .generation;

    // The user's own command fails: nothing is synced or restarted.
    let out = pake(
        &kc,
        p.path(),
        &[
            "rotate-secret",
            &v.secret,
            "--from-command",
            "exit 3",
            "--timeout",
            "30s",
        ],
    );
    all.push_str(&k8s::text(&out));
    assert_eq!(out.status.code(), Some(1), "{}", k8s::text(&out));
    assert_eq!(
        Api::<Deployment>::namespaced(admin.clone(), NS)
            .get(&format!("{app}-v1"))
            .await
            .unwrap()
            .metadata
            .generation,
        gen_app
    );

    // The value changes in the vault; the rotation syncs it and restarts only the reader of `password`.
    set_vault(
        &admin,
        &v,
        &[("password", &pw2), ("username", "app")],
        false,
    )
    .await;
    let out = pake(
        &kc,
        p.path(),
        &["rotate-secret", &v.secret, "--timeout", "90s", "-o", "json"],
    );
    all.push_str(&k8s::text(&out));
    assert!(out.status.success(), "{}", k8s::text(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["key"], "password", "{r}");
    let actions: BTreeMap<String, String> = r["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["name"].as_str().unwrap().to_string(),
                w["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        actions.get(&format!("{app}-v1")).map(String::as_str),
        Some("restarted"),
        "{r}"
    );
    assert_eq!(
        actions.get(&other).map(String::as_str),
        Some("unaffected"),
        "{r}"
    );
    assert_eq!(
        Api::<Deployment>::namespaced(admin.clone(), NS)
            .get(&other)
            .await
            .unwrap()
            .metadata
            .generation,
        gen_other
    );

    // ESO's Secret holds the new value; every Ready pod of the app carries its fingerprint.
    let s = Api::<Secret>::namespaced(admin.clone(), NS)
        .get(&v.secret)
        .await
        .unwrap();
    let data: BTreeMap<String, SecretValue> = s
        .data
        .unwrap()
        .into_iter()
        .map(|(k, b)| (k, SecretValue::from_bytes(b.0)))
        .collect();
    assert_eq!(data["password"].expose(), pw2.as_bytes());
    let fkey = {
        let k = Api::<Secret>::namespaced(admin.clone(), NS)
            .get("pake-fingerprint-key")
            .await
            .unwrap();
        SecretValue::from_bytes(k.data.unwrap()["key"].0.clone())
    };
    let want = pake::steps::rotate::content_hash(&data, &fkey);
    assert_eq!(r["contentHash"], want.as_str());
    let ann = pake::steps::rotate::hash_annotation(&v.secret);
    let pods = Api::<Pod>::namespaced(admin.clone(), NS)
        .list(&ListParams::default().labels(&format!("app={app},wl!={other}")))
        .await
        .unwrap();
    let ready: Vec<&Pod> = pods
        .items
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .collect();
    assert!(!ready.is_empty());
    for p in ready {
        assert_eq!(
            p.metadata.annotations.as_ref().and_then(|a| a.get(&ann)),
            Some(&want),
            "pod {:?}",
            p.metadata.name
        );
    }
    // Not provable on kwok: that the process inside reads the new value (no container runs).
    assert_no_value(&all, &[&pw1, &pw2]);
    assert_no_value(&history_text(&admin, &app).await, &[&pw1, &pw2]);
    let _ = Api::<Deployment>::namespaced(admin.clone(), NS)
        .delete(&other, &DeleteParams::default())
        .await;
    cleanup(&admin, &app, &v).await;
}

#[tokio::test]
async fn missing_store_fails_before_any_change_and_doctor_names_it() {
    let Some(kc) = k8s::kubeconfig("eso_missing_store") else {
        return;
    };
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    if !eso_served(&admin, "eso_missing_store").await {
        return;
    }
    let app = format!("esom-{}", k8s::suffix());
    let v = Vault {
        ns: String::new(),
        secret: format!("db-{app}"),
        store: format!("no-such-store-{app}"),
    };
    let p = k8s::project(&yaml(&app, &v, "password"), &[]);

    let out = pake(&kc, p.path(), &["doctor", "--no-docker", "-o", "json"]);
    let t = k8s::text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = r["checks"].as_array().unwrap();
    let crds = checks.iter().find(|c| c["name"] == "eso-crds").unwrap();
    assert_eq!(crds["ok"], true, "{crds}");
    let store = checks.iter().find(|c| c["name"] == "eso-store").unwrap();
    assert_eq!(store["ok"], false, "{store}");
    assert!(
        store["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("SecretStore {} not found", v.store)),
        "{store}"
    );

    let out = pake(&kc, p.path(), &["deploy", "--timeout", "60s", "-o", "json"]);
    let t = k8s::text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let secrets = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "secrets")
        .unwrap();
    assert_eq!(secrets["checks"][0]["check"], "external-secret-store");
    assert!(
        secrets["objects"].as_array().unwrap().is_empty(),
        "nothing applied: {secrets}"
    );
    assert!(
        es_api(&admin, "ExternalSecret")
            .get_opt(&v.secret)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<Deployment>::namespaced(admin.clone(), NS)
            .get_opt(&format!("{app}-v1"))
            .await
            .unwrap()
            .is_none()
    );
    k8s::cleanup_app(&admin, NS, &app).await;
}

/// Offline: `pake render` shows the ExternalSecret as pake applies it (snapshot).
#[test]
fn render_shows_the_external_secret() {
    let v = Vault {
        ns: String::new(),
        secret: "database-credentials".into(),
        store: "vault-backend".into(),
    };
    let p = k8s::project(&yaml("esorender", &v, "password"), &[]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pake"))
        .current_dir(p.path())
        .args(["render", "--env", "test"])
        .env_remove("PAKE_ENV")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = String::from_utf8(out.stdout).unwrap();
    let doc = all
        .split("---\n")
        .find(|d| d.contains("kind: ExternalSecret"))
        .expect("the ExternalSecret is rendered");
    insta::assert_snapshot!("external_secret_render", doc);
}
