//! Benchmark helper for `scripts/bench.d/audit` (not a test).
//!
//!     pss_bench eval [SECONDS]        Pod Security evaluations per second (one thread)
//!     pss_bench generate DIR OBJECTS  write OBJECTS manifests (100 per file) into DIR
//!     pss_bench decode [SECONDS]      where an audit's time goes per Deployment document:
//!                                     YAML -> Value (plain and with line numbers),
//!                                     Value -> typed pod, YAML -> typed pod directly
//!
//! The pods mix compliant and violating variants so both the allowed path and
//! the message-building path are measured.

use std::time::{Duration, Instant};

use pake::checks::pss::{self, Level, PodInput, Version};
use serde_json::{Value, json};

fn container(name: &str, hardened: bool) -> Value {
    if hardened {
        json!({"name": name, "image": "registry.example.com/app:1.2.3",
            "ports": [{"containerPort": 8000}],
            "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}},
            "resources": {"requests": {"cpu": "250m", "memory": "512Mi", "ephemeral-storage": "1Gi"}, "limits": {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "2Gi"}},
            "livenessProbe": {"httpGet": {"path": "/health", "port": 8000}},
            "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}}})
    } else {
        json!({"name": name, "image": "busybox", "securityContext": {"privileged": true, "capabilities": {"add": ["NET_ADMIN", "SYS_TIME"]}}})
    }
}

fn pod_spec(i: usize) -> Value {
    let hardened = !i.is_multiple_of(3);
    let mut spec = json!({
        "automountServiceAccountToken": false,
        "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [container("init", hardened)],
        "containers": [container("app", hardened), container("sidecar", true)],
        "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cfg"}}]
    });
    if i.is_multiple_of(5) {
        spec["hostNetwork"] = json!(true);
        spec["volumes"] = json!([{"name": "host", "hostPath": {"path": "/var/run"}}]);
        spec["securityContext"]["sysctls"] = json!([{"name": "kernel.msgmax", "value": "1"}]);
    }
    spec
}

fn object(i: usize) -> Value {
    let name = format!("app-{i}");
    match i % 4 {
        0 => {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "bench"}, "spec": pod_spec(i)})
        }
        1 => {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "bench"}, "spec": {
            "replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec(i)}}})
        }
        2 => {
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "bench"}, "spec": {
            "selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8000}]}})
        }
        _ => {
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name, "namespace": "bench"}, "spec": {
            "schedule": "@hourly", "jobTemplate": {"spec": {"template": {"spec": pod_spec(i)}}}}})
        }
    }
}

fn eval(seconds: f64) {
    let pods: Vec<PodInput> = (0..64)
        .map(|i| {
            let o = object(i * 4 + if i % 2 == 0 { 0 } else { 1 });
            pss::pod_of(&o).unwrap().unwrap()
        })
        .collect();
    let objects: Vec<Value> = (0..64).map(|i| object(i * 4 + 1)).collect();
    for (label, level) in [
        ("restricted", Level::Restricted),
        ("baseline", Level::Baseline),
    ] {
        let (mut n, mut denied) = (0u64, 0u64);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs_f64(seconds) {
            for p in &pods {
                let v = pss::evaluate(level, Version::Latest, std::hint::black_box(p));
                denied += u64::from(!v.allowed);
                n += 1;
            }
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        println!(
            "pss evaluate {label}:latest (pre-decoded pods): {rate:.0} pods/s ({} denied of {n})",
            denied
        );
    }
    let mut n = 0u64;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs_f64(seconds) {
        for o in &objects {
            let p = pss::pod_of(std::hint::black_box(o)).unwrap().unwrap();
            std::hint::black_box(pss::evaluate(Level::Restricted, Version::Latest, &p));
            n += 1;
        }
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    println!("pss decode from JSON + evaluate restricted:latest: {rate:.0} pods/s");
}

/// Per-document costs of the audit pipeline, on the generated Deployments.
fn decode(seconds: f64) {
    use pake::checks::lines::Lined;
    use pake::checks::pss::{PodMeta, PodSpec, Semantics};
    #[derive(serde::Deserialize)]
    struct Template {
        #[serde(default)]
        metadata: Option<PodMeta>,
        #[serde(default)]
        spec: Option<PodSpec>,
    }
    #[derive(serde::Deserialize)]
    struct WorkloadSpec {
        #[serde(default)]
        template: Option<Template>,
    }
    #[derive(serde::Deserialize)]
    struct Workload {
        #[serde(default)]
        spec: Option<WorkloadSpec>,
    }
    let docs: Vec<String> = (0..64)
        .map(|i| serde_saphyr::to_string(&object(i * 4 + 1)).unwrap())
        .collect();
    let values: Vec<Value> = docs
        .iter()
        .map(|d| serde_saphyr::from_str(d).unwrap())
        .collect();
    let rate = |label: &str, f: &mut dyn FnMut(usize)| {
        let (mut n, start) = (0u64, Instant::now());
        while start.elapsed() < Duration::from_secs_f64(seconds) {
            for i in 0..docs.len() {
                f(i);
                n += 1;
            }
        }
        let r = n as f64 / start.elapsed().as_secs_f64();
        println!("{label}: {r:.0} docs/s ({:.1} us/doc)", 1e6 / r);
    };
    rate("yaml -> serde_json::Value", &mut |i| {
        std::hint::black_box(serde_saphyr::from_str::<Value>(&docs[i]).unwrap());
    });
    rate("yaml -> Value + line numbers (pake audit)", &mut |i| {
        std::hint::black_box(serde_saphyr::from_str::<Lined>(&docs[i]).unwrap());
    });
    rate("Value -> typed pod (pss::pod_of)", &mut |i| {
        std::hint::black_box(pss::pod_of(&values[i]).unwrap().unwrap());
    });
    rate("yaml -> typed pod directly", &mut |i| {
        let w: Workload = serde_saphyr::from_str(&docs[i]).unwrap();
        let t = w.spec.and_then(|s| s.template).unwrap();
        std::hint::black_box(PodInput {
            meta: t.metadata.unwrap_or_default(),
            spec: t.spec.unwrap_or_default(),
            semantics: Semantics::Template,
        });
    });
    let pods: Vec<PodInput> = values
        .iter()
        .map(|v| pss::pod_of(v).unwrap().unwrap())
        .collect();
    rate("evaluate restricted:latest", &mut |i| {
        std::hint::black_box(pss::evaluate(Level::Restricted, Version::Latest, &pods[i]));
    });
    rate(
        "guide + depth checks (per object, one-object set)",
        &mut |i| {
            let one = std::slice::from_ref(&values[i]);
            std::hint::black_box(pake::checks::guide::check_objects(one));
            std::hint::black_box(pake::checks::depth::check_objects(
                one,
                pake::checks::depth::DepthOptions::default(),
            ));
        },
    );
}

fn generate(dir: &str, count: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let per_file = 100;
    for f in 0..count.div_ceil(per_file) {
        let mut text = String::new();
        for i in f * per_file..((f + 1) * per_file).min(count) {
            text.push_str("---\n");
            text.push_str(&serde_saphyr::to_string(&object(i)).unwrap());
        }
        std::fs::write(format!("{dir}/manifests-{f:04}.yaml"), text).unwrap();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("eval") => eval(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3.0)),
        Some("decode") => decode(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2.0)),
        Some("generate") if args.len() == 4 => {
            generate(&args[2], args[3].parse().expect("OBJECTS"))
        }
        _ => {
            eprintln!(
                "usage: pss_bench eval [SECONDS] | pss_bench decode [SECONDS] | pss_bench generate DIR OBJECTS"
            );
            std::process::exit(2);
        }
    }
}
