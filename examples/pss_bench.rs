//! Benchmark helper for `scripts/bench.d/audit` (not a test).
//!
//!     pss_bench eval [SECONDS]        Pod Security evaluations per second (one thread)
//!     pss_bench generate DIR OBJECTS  write OBJECTS manifests (100 per file) into DIR
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
        Some("generate") if args.len() == 4 => {
            generate(&args[2], args[3].parse().expect("OBJECTS"))
        }
        _ => {
            eprintln!("usage: pss_bench eval [SECONDS] | pss_bench generate DIR OBJECTS");
            std::process::exit(2);
        }
    }
}
