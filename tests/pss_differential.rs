//! Differential test: pake's Pod Security engine against the real API server.
//!
//! Generates pod variants (systematic single-field variants plus pseudo-random
//! combinations from a fixed seed), server-side dry-run creates each into
//! namespaces labelled `pod-security.kubernetes.io/enforce=<level>` and
//! `enforce-version=<version>`, and asserts that pake's verdict and its full
//! rejection message (so every violated check's reason and detail) equal the
//! server's. Pods the API server rejects as invalid (422) before admission are
//! counted and skipped. Needs the local cluster (`scripts/cluster up`);
//! `scripts/test` sets PAKE_TEST_KUBECONFIG.

mod k8s;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use pake::checks::pss::{self, Level, Version};
use serde_json::{Value, json};

/// The API server's own version: `latest` on the server means this policy.
const SERVER_MINOR: u32 = 36;

/// One dry-run create: namespace, its policy, the pod and the server's answer.
type DryRun<'a> = (String, Level, Version, &'a Value, Result<Pod, kube::Error>);

/// splitmix64: a small deterministic generator so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// A restricted-compliant pod: the base every variant changes.
fn base() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [{"name": "init", "image": "example.invalid/init:1",
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
            "containers": [{"name": "app", "image": "example.invalid/app:1",
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}},
                {"name": "side", "image": "example.invalid/side:1",
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]
        }
    })
}

/// One mutation of a pod: a name (for messages) and an edit.
type Mutation = (&'static str, fn(&mut Value, &mut Rng));

fn ctr<'a>(p: &'a mut Value, rng: &mut Rng) -> &'a mut Value {
    let list = if rng.chance(25) {
        "initContainers"
    } else {
        "containers"
    };
    let n = p["spec"][list].as_array().unwrap().len();
    let i = rng.below(n);
    &mut p["spec"][list][i]
}

fn sc<'a>(p: &'a mut Value, rng: &mut Rng) -> &'a mut Value {
    let c = ctr(p, rng);
    if c.get("securityContext").is_none() {
        c["securityContext"] = json!({});
    }
    &mut c["securityContext"]
}

fn mutations() -> Vec<Mutation> {
    vec![
        ("privileged", |p, r| {
            let s = sc(p, r);
            s["privileged"] = json!(true);
            s.as_object_mut()
                .unwrap()
                .remove("allowPrivilegeEscalation");
        }),
        ("hostNetwork", |p, _| p["spec"]["hostNetwork"] = json!(true)),
        ("hostPID", |p, _| p["spec"]["hostPID"] = json!(true)),
        ("hostIPC", |p, _| p["spec"]["hostIPC"] = json!(true)),
        ("hostPath", |p, _| {
            p["spec"]["volumes"] = json!([{"name": "host", "hostPath": {"path": "/tmp"}}]);
        }),
        ("restricted volume", |p, r| {
            let v = r.pick(&[
                json!({"name": "nfs", "nfs": {"server": "127.0.0.1", "path": "/x"}}),
                json!({"name": "cm", "configMap": {"name": "c"}}),
                json!({"name": "s", "secret": {"secretName": "s"}}),
                json!({"name": "d", "downwardAPI": {"items": []}}),
                json!({"name": "e", "emptyDir": {}}),
                json!({"name": "pvc", "persistentVolumeClaim": {"claimName": "c"}}),
                json!({"name": "iscsi", "iscsi": {"targetPortal": "127.0.0.1:3260", "iqn": "iqn.2001-04.com.example:storage", "lun": 0}}),
                json!({"name": "rbd", "rbd": {"monitors": ["127.0.0.1:6789"], "image": "i"}}),
                json!({"name": "fc", "fc": {"wwids": ["w"]}}),
            ])
            .clone();
            match p["spec"]["volumes"].as_array_mut() {
                Some(vs) if !vs.iter().any(|x| x["name"] == v["name"]) => vs.push(v),
                Some(_) => {}
                None => p["spec"]["volumes"] = json!([v]),
            }
        }),
        ("hostPort", |p, r| {
            let port = *r.pick(&[80, 8080, 443, 9000]);
            let c = ctr(p, r);
            c["ports"] = json!([{"containerPort": port, "hostPort": port}]);
        }),
        ("containerPort", |p, r| {
            let port = *r.pick(&[80, 8081, 9001]);
            let c = ctr(p, r);
            c["ports"] = json!([{"containerPort": port}]);
        }),
        ("add capability", |p, r| {
            let cap = *r.pick(&[
                "NET_RAW",
                "NET_BIND_SERVICE",
                "CHOWN",
                "SYS_TIME",
                "NET_ADMIN",
                "KILL",
            ]);
            let s = sc(p, r);
            if s.get("capabilities").is_none() {
                s["capabilities"] = json!({});
            }
            match s["capabilities"]["add"].as_array_mut() {
                Some(a) => a.push(json!(cap)),
                None => s["capabilities"]["add"] = json!([cap]),
            }
        }),
        ("no drop ALL", |p, r| {
            let s = sc(p, r);
            if r.chance(50) {
                s.as_object_mut().unwrap().remove("capabilities");
            } else {
                s["capabilities"]["drop"] = json!(["NET_RAW"]);
            }
        }),
        ("allowPrivilegeEscalation", |p, r| {
            let s = sc(p, r);
            if r.chance(50) {
                s.as_object_mut()
                    .unwrap()
                    .remove("allowPrivilegeEscalation");
            } else {
                s["allowPrivilegeEscalation"] = json!(true);
            }
        }),
        ("pod runAsNonRoot", |p, r| {
            let v = r.pick(&[json!(false), Value::Null]).clone();
            match v {
                Value::Null => {
                    p["spec"]["securityContext"]
                        .as_object_mut()
                        .unwrap()
                        .remove("runAsNonRoot");
                }
                v => p["spec"]["securityContext"]["runAsNonRoot"] = v,
            }
        }),
        ("container runAsNonRoot", |p, r| {
            let v = r.chance(50);
            sc(p, r)["runAsNonRoot"] = json!(v);
        }),
        ("runAsUser", |p, r| {
            let uid = *r.pick(&[0, 1000, 0, 65534]);
            if r.chance(40) {
                p["spec"]["securityContext"]["runAsUser"] = json!(uid);
            } else {
                sc(p, r)["runAsUser"] = json!(uid);
            }
        }),
        ("seccomp", |p, r| {
            let t = r
                .pick(&[
                    json!({"type": "Unconfined"}),
                    json!({"type": "RuntimeDefault"}),
                    json!({"type": "Localhost", "localhostProfile": "p.json"}),
                    Value::Null,
                ])
                .clone();
            let target = if r.chance(50) {
                &mut p["spec"]["securityContext"]
            } else {
                sc(p, r)
            };
            match t {
                Value::Null => {
                    target.as_object_mut().unwrap().remove("seccompProfile");
                }
                t => target["seccompProfile"] = t,
            }
        }),
        ("seccomp annotation", |p, r| {
            let key = if r.chance(50) {
                "seccomp.security.alpha.kubernetes.io/pod".to_string()
            } else {
                format!(
                    "container.seccomp.security.alpha.kubernetes.io/{}",
                    r.pick(&["app", "side", "init"])
                )
            };
            let v = *r.pick(&[
                "runtime/default",
                "unconfined",
                "localhost/p.json",
                "docker/default",
            ]);
            // The field and the annotation must agree: drop the field the annotation covers.
            if key.ends_with("/pod") {
                p["spec"]["securityContext"]
                    .as_object_mut()
                    .unwrap()
                    .remove("seccompProfile");
            } else {
                let name = key.rsplit('/').next().unwrap().to_string();
                for list in ["containers", "initContainers"] {
                    for c in p["spec"][list].as_array_mut().unwrap() {
                        if c["name"] == name.as_str()
                            && let Some(s) =
                                c.get_mut("securityContext").and_then(Value::as_object_mut)
                        {
                            s.remove("seccompProfile");
                        }
                    }
                }
            }
            p["metadata"]["annotations"][key] = json!(v);
        }),
        ("apparmor field", |p, r| {
            let t = r
                .pick(&[
                    json!({"type": "Unconfined"}),
                    json!({"type": "RuntimeDefault"}),
                    json!({"type": "Localhost", "localhostProfile": "prof"}),
                ])
                .clone();
            if r.chance(40) {
                p["spec"]["securityContext"]["appArmorProfile"] = t;
            } else {
                sc(p, r)["appArmorProfile"] = t;
            }
        }),
        ("apparmor annotation", |p, r| {
            let name = *r.pick(&["app", "side", "init"]);
            let v = *r.pick(&["runtime/default", "unconfined", "localhost/prof"]);
            // The field and the annotation must agree: drop the container's field.
            for list in ["containers", "initContainers"] {
                for c in p["spec"][list].as_array_mut().unwrap() {
                    if c["name"] == name
                        && let Some(s) = c.get_mut("securityContext").and_then(Value::as_object_mut)
                    {
                        s.remove("appArmorProfile");
                    }
                }
            }
            p["metadata"]["annotations"]
                [format!("container.apparmor.security.beta.kubernetes.io/{name}")] = json!(v);
        }),
        ("seLinuxOptions", |p, r| {
            let o = r
                .pick(&[
                    json!({"type": "container_t"}),
                    json!({"type": "container_engine_t"}),
                    json!({"type": "spc_t"}),
                    json!({"user": "system_u"}),
                    json!({"role": "system_r"}),
                    json!({"level": "s0:c123,c456"}),
                ])
                .clone();
            if r.chance(40) {
                p["spec"]["securityContext"]["seLinuxOptions"] = o;
            } else {
                sc(p, r)["seLinuxOptions"] = o;
            }
        }),
        ("sysctl", |p, r| {
            let n = *r.pick(&[
                "kernel.shm_rmid_forced",
                "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time",
                "net.ipv4.tcp_rmem",
                "net.ipv4.tcp_notsent_lowat",
                "kernel.msgmax",
                "net.core.somaxconn",
            ]);
            let value = if n.ends_with("rmem") {
                "4096 87380 6291456"
            } else {
                "1"
            };
            match p["spec"]["securityContext"]["sysctls"].as_array_mut() {
                Some(a) if !a.iter().any(|s| s["name"] == n) => {
                    a.push(json!({"name": n, "value": value}))
                }
                Some(_) => {}
                None => {
                    p["spec"]["securityContext"]["sysctls"] = json!([{"name": n, "value": value}])
                }
            }
        }),
        ("procMount Unmasked", |p, r| {
            p["spec"]["hostUsers"] = json!(false);
            sc(p, r)["procMount"] = json!("Unmasked");
        }),
        ("hostUsers false", |p, _| {
            p["spec"]["hostUsers"] = json!(false)
        }),
        ("probe host", |p, r| {
            let host = *r.pick(&["127.0.0.1", "example.com", "localhost"]);
            let c = ctr(p, r);
            if c["name"] == "init" {
                // A sidecar (restartPolicy: Always) init container may have lifecycle hooks.
                c["restartPolicy"] = json!("Always");
                c["lifecycle"] = json!({"postStart": {"tcpSocket": {"host": host, "port": 80}}});
            } else {
                c["readinessProbe"] = json!({"httpGet": {"host": host, "port": 80, "path": "/"}});
            }
        }),
        ("linux os", |p, _| {
            p["spec"]["os"] = json!({"name": "linux"})
        }),
    ]
}

/// Fix combinations the API server refuses as invalid before admission.
fn make_valid(p: &mut Value) {
    let spec = &mut p["spec"];
    let host_ns = ["hostNetwork", "hostPID", "hostIPC"]
        .iter()
        .any(|k| spec[*k] == json!(true));
    if spec["hostUsers"] == json!(false) && host_ns {
        spec.as_object_mut().unwrap().remove("hostUsers");
    }
    let userns = spec["hostUsers"] == json!(false);
    let host_network = spec["hostNetwork"] == json!(true);
    let host_ipc = spec["hostIPC"] == json!(true);
    if let Some(s) = spec["securityContext"]["sysctls"].as_array_mut() {
        s.retain(|x| {
            let n = x["name"].as_str().unwrap_or("");
            !(host_network && n.starts_with("net.") || host_ipc && n.starts_with("kernel."))
        });
    }
    for list in ["initContainers", "containers"] {
        let mut used_ports = std::collections::BTreeSet::new();
        for c in spec[list].as_array_mut().unwrap() {
            if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                for port in ports.iter_mut() {
                    if host_network && port.get("hostPort").is_some() {
                        port["hostPort"] = port["containerPort"].clone();
                    }
                }
                ports.retain(|x| used_ports.insert(x["containerPort"].as_i64()));
            }
            let Some(s) = c.get_mut("securityContext").and_then(Value::as_object_mut) else {
                continue;
            };
            let privileged = s.get("privileged") == Some(&json!(true));
            let sys_admin = s
                .get("capabilities")
                .and_then(|c| c.get("add"))
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|x| x == "SYS_ADMIN" || x == "CAP_SYS_ADMIN"));
            if (privileged || sys_admin) && s.get("allowPrivilegeEscalation") == Some(&json!(false))
            {
                s.remove("allowPrivilegeEscalation");
            }
            if s.get("procMount").is_some() && !userns {
                s.remove("procMount");
            }
        }
    }
    // Init containers cannot have readiness probes; the mutation uses lifecycle for them.
    for c in spec["initContainers"].as_array_mut().unwrap() {
        if let Some(o) = c.as_object_mut() {
            o.remove("readinessProbe");
        }
    }
}

fn variants(seed: u64, random: usize) -> Vec<Value> {
    let muts = mutations();
    let mut rng = Rng(seed);
    let mut out = vec![base()];
    // Systematic: each mutation alone, a few times (they pick targets at random).
    for (_, m) in &muts {
        for _ in 0..3 {
            let mut p = base();
            m(&mut p, &mut rng);
            out.push(p);
        }
    }
    // Pseudo-random combinations of 2-6 mutations.
    for _ in 0..random {
        let mut p = base();
        for _ in 0..2 + rng.below(5) {
            let (_, m) = rng.pick(&muts);
            m(&mut p, &mut rng);
        }
        out.push(p);
    }
    for (i, p) in out.iter_mut().enumerate() {
        make_valid(p);
        p["metadata"]["name"] = json!(format!("v{i}"));
    }
    out
}

/// What pake says the server will answer: `None` if allowed, else the message after `is forbidden: `.
fn expected(level: Level, label: Version, pod: &Value) -> Option<String> {
    let effective = match label {
        Version::Latest => Version::V1(SERVER_MINOR),
        Version::V1(m) => Version::V1(m.min(SERVER_MINOR)),
    };
    let input = pss::pod_of(pod).unwrap().unwrap();
    let mut v = pss::evaluate(level, effective, &input);
    v.version = label;
    (!v.allowed).then(|| v.admission_message())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pss_engine_matches_api_server() {
    if std::env::var_os("PAKE_TEST_KUBECONFIG").is_none() {
        // Written to the stream directly so the test harness does not capture it.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIP pss_engine_matches_api_server: PAKE_TEST_KUBECONFIG is not set (scripts/test sets it after `scripts/cluster up`)"
        );
        return;
    }
    let Some(kc) = k8s::kubeconfig("pss_engine_matches_api_server") else {
        return;
    };
    let client = k8s::client(&kc, k8s::ADMIN).await;
    let policies: Vec<(Level, Version)> = [
        (Level::Baseline, "v1.0"),
        (Level::Baseline, "v1.22"),
        (Level::Baseline, "v1.30"),
        (Level::Baseline, "v1.34"),
        (Level::Baseline, "latest"),
        (Level::Restricted, "v1.0"),
        (Level::Restricted, "v1.18"),
        (Level::Restricted, "v1.22"),
        (Level::Restricted, "v1.24"),
        (Level::Restricted, "v1.25"),
        (Level::Restricted, "v1.30"),
        (Level::Restricted, "v1.34"),
        (Level::Restricted, "v1.35"),
        (Level::Restricted, "latest"),
    ]
    .into_iter()
    .map(|(l, v)| (l, Version::parse(v).unwrap()))
    .collect();
    let pods = variants(0x5EED_0007, 260);
    let ns_api = Api::<Namespace>::all(client.clone());
    let run = format!("pake-pss-{}", k8s::suffix());
    let mut namespaces = Vec::new();
    for (i, (level, version)) in policies.iter().enumerate() {
        let name = format!("{run}-{i}");
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name, "labels": {
            "pod-security.kubernetes.io/enforce": level.as_str(),
            "pod-security.kubernetes.io/enforce-version": version.to_string(),
        }}}))
        .unwrap();
        ns_api.create(&PostParams::default(), &ns).await.unwrap();
        namespaces.push((name, *level, *version));
    }
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let jobs = namespaces.iter().flat_map(|(ns, level, version)| {
        pods.iter()
            .map(move |pod| (ns.clone(), *level, *version, pod))
    });
    let results: Vec<DryRun> = futures::stream::iter(jobs)
        .map(|(ns, level, version, pod)| {
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let dry = dry.clone();
            async move {
                let typed: Pod = serde_json::from_value(pod.clone()).unwrap();
                let r = api.create(&dry, &typed).await;
                (ns, level, version, pod, r)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for (ns, _, _) in &namespaces {
        let _ = ns_api.delete(ns, &DeleteParams::default()).await;
    }

    let (mut compared, mut invalid, mut denied) = (0, 0, 0);
    let mut invalid_causes: std::collections::BTreeMap<String, usize> = Default::default();
    let mut mismatches = Vec::new();
    for (_, level, version, pod, r) in &results {
        let want = expected(*level, *version, pod);
        let got = match r {
            Ok(_) => None,
            Err(kube::Error::Api(s))
                if s.code == 403 && s.message.contains("violates PodSecurity") =>
            {
                Some(
                    s.message
                        .split_once("is forbidden: ")
                        .map(|x| x.1)
                        .unwrap_or(&s.message)
                        .to_string(),
                )
            }
            Err(kube::Error::Api(s)) if s.code == 422 => {
                invalid += 1;
                let cause = s
                    .message
                    .split_once("is invalid: ")
                    .map(|x| x.1)
                    .unwrap_or(&s.message);
                *invalid_causes
                    .entry(cause.chars().take(120).collect())
                    .or_default() += 1;
                continue;
            }
            Err(e) => panic!("dry-run create failed unexpectedly: {e}"),
        };
        compared += 1;
        denied += usize::from(got.is_some());
        if want != got {
            mismatches.push(format!(
                "{level}:{version} pod {}\n  pake:   {want:?}\n  server: {got:?}",
                serde_json::to_string(pod).unwrap()
            ));
        }
    }
    println!(
        "pss differential: {} pods x {} policies: {compared} compared ({denied} denied, {} allowed), {invalid} invalid (skipped), {} mismatches",
        pods.len(),
        namespaces.len(),
        compared - denied,
        mismatches.len()
    );
    for (cause, n) in invalid_causes.iter().take(10) {
        println!("  invalid x{n}: {cause}");
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        compared > results.len() * 2 / 3,
        "too many invalid variants: {invalid} of {}",
        results.len()
    );
    assert!(
        denied > compared / 4 && denied < compared,
        "variants should both pass and fail: {denied} of {compared} denied"
    );
}
