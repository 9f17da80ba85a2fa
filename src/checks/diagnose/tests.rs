use serde_json::json;

use super::*;

fn pod(name: &str, node: &str, statuses: Value) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"app": "api", "version": "v1"}},
        "spec": {
            "nodeName": node,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 1000},
            "containers": [{
                "name": "app", "image": "reg/api@sha256:1",
                "ports": [{"containerPort": 8000, "name": "http"}],
                "resources": {"limits": {"memory": "64Mi"}, "requests": {"memory": "32Mi", "cpu": "10m"}},
                "securityContext": {"readOnlyRootFilesystem": true},
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}}
            }]
        },
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}], "containerStatuses": statuses}
    })
}

fn real_node() -> Value {
    json!({"metadata": {"name": "node-0", "labels": {"pake.dev/node": "real"}}, "status": {"allocatable": {"cpu": "2", "memory": "4Gi"}}})
}

fn kwok_node() -> Value {
    json!({"metadata": {"name": "kwok-node-0", "annotations": {"kwok.x-k8s.io/node": "fake"}, "labels": {}}, "status": {"allocatable": {"cpu": "32", "memory": "256Gi"}}})
}

fn snap(pods: Vec<Value>) -> Snapshot {
    Snapshot {
        app: "api".into(),
        namespace: "ns".into(),
        pods,
        nodes: vec![real_node(), kwok_node()],
        ..Snapshot::default()
    }
}

fn crashing(last: Value, restarts: i64) -> Value {
    json!([{"name": "app", "ready": false, "restartCount": restarts,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s restarting failed container"}},
        "lastState": {"terminated": last}}])
}

fn with_log(mut s: Snapshot, lines: &[&str]) -> Snapshot {
    s.logs.insert(
        ("p1".into(), "app".into()),
        LogTail {
            previous: true,
            lines: lines.iter().map(|l| l.to_string()).collect(),
        },
    );
    s
}

fn only(s: &Snapshot) -> Diagnosis {
    let d = diagnose(s);
    assert_eq!(d.len(), 1, "{d:#?}");
    d.into_iter().next().unwrap()
}

#[test]
fn read_only_filesystem_names_the_path_and_mounts_an_empty_dir_there() {
    let s = with_log(
        snap(vec![pod(
            "p1",
            "node-0",
            crashing(json!({"reason": "Error", "exitCode": 1}), 3),
        )]),
        &["2026/11/29 17:00:00 fault write-app: mkdir /app/data: read-only file system"],
    );
    let d = only(&s);
    assert_eq!(d.check, Cause::ReadOnlyFilesystem);
    assert_eq!(d.object, "Pod ns/p1 container app");
    assert!(d.summary.contains("/app/data"), "{}", d.summary);
    assert!(
        d.evidence
            .iter()
            .any(|e| e.starts_with("log of the previous container:")
                && e.contains("mkdir /app/data"))
    );
    assert!(
        d.evidence.contains(&"writable mounts: /tmp".to_string()),
        "{:?}",
        d.evidence
    );
    assert_eq!(d.fix.target, Target::Template);
    let c = d.fix.change.unwrap();
    assert!(
        c.contains("mountPath: /app/data")
            && c.contains("name: app-data")
            && c.contains("emptyDir"),
        "{c}"
    );
}

#[test]
fn a_file_written_under_a_directory_mounts_the_directory() {
    assert_eq!(
        path_in("open /app/logs/x.log: read-only file system"),
        Some(("/app/logs/x.log".into(), false))
    );
    assert_eq!(
        writable_dir("/app/logs/x.log", false).as_deref(),
        Some("/app/logs")
    );
    // Python's form.
    assert_eq!(
        path_in("OSError: [Errno 30] Read-only file system: '/app/cache/a.db'"),
        Some(("/app/cache/a.db".into(), false))
    );
    // A file directly under / has no directory to mount.
    assert_eq!(
        path_in("open /fault-probe: read-only file system"),
        Some(("/fault-probe".into(), false))
    );
    assert_eq!(writable_dir("/fault-probe", false), None);
    assert_eq!(path_in("read-only file system"), None);
}

#[test]
fn write_under_root_says_write_under_tmp() {
    let s = with_log(
        snap(vec![pod(
            "p1",
            "node-0",
            crashing(json!({"reason": "Error", "exitCode": 1}), 2),
        )]),
        &["fault write-root: open /fault-probe: read-only file system"],
    );
    let d = only(&s);
    assert_eq!(d.check, Cause::ReadOnlyFilesystem);
    assert!(
        d.fix.summary.contains("/tmp") && d.fix.change.is_none(),
        "{:?}",
        d.fix
    );
}

#[test]
fn termination_message_is_evidence_without_a_log() {
    let s = snap(vec![pod(
        "p1",
        "node-0",
        crashing(
            json!({"reason": "Error", "exitCode": 1, "message": "mkdir /app/cache/x: read-only file system"}),
            1,
        ),
    )]);
    let d = only(&s);
    assert_eq!(d.check, Cause::ReadOnlyFilesystem);
    assert!(d.fix.change.unwrap().contains("mountPath: /app/cache/x"));
}

#[test]
fn permission_denied_shows_ids_from_the_probe_and_the_dockerfile_fix() {
    let mut s = with_log(
        snap(vec![pod(
            "p1",
            "node-0",
            crashing(json!({"reason": "Error", "exitCode": 1}), 2),
        )]),
        &["fault write-app: mkdir /app/data: permission denied"],
    );
    s.probes.insert(
        ("p1".into(), "app".into()),
        ProbeSeen::Read {
            status: "Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\n".into(),
            listing: "dr-xr-xr-x 2 0 0 4096 Jan 1 /app\n".into(),
        },
    );
    s.dockerfile = Some(("Dockerfile.production".into(), Some("1000:1000".into())));
    let d = only(&s);
    assert_eq!(d.check, Cause::PermissionDenied);
    assert!(
        d.evidence.iter().any(|e| e
            == "id (from inside the process): Uid 1000 1000 1000 1000, Gid 1000 1000 1000 1000"),
        "{:?}",
        d.evidence
    );
    assert!(
        d.evidence
            .iter()
            .any(|e| e.starts_with("ls -ln: dr-xr-xr-x 2 0 0"))
    );
    assert!(
        d.evidence
            .iter()
            .any(|e| e == "Dockerfile.production: USER 1000:1000")
    );
    assert_eq!(d.fix.target, Target::Dockerfile);
    assert_eq!(d.fix.file.as_deref(), Some("Dockerfile.production"));
    let c = d.fix.change.unwrap();
    assert!(
        c.contains("chown -R 1000:1000 /app/data") && c.contains("useradd -r -u 1000"),
        "{c}"
    );
}

#[test]
fn permission_denied_without_a_probe_reads_the_spec() {
    let mut s = with_log(
        snap(vec![pod(
            "p1",
            "node-0",
            crashing(json!({"reason": "Error", "exitCode": 1}), 2),
        )]),
        &["sh: /app/run.sh: Permission denied"],
    );
    s.probes.insert(
        ("p1".into(), "app".into()),
        ProbeSeen::Unavailable("the process exits before it can be inspected".into()),
    );
    let d = only(&s);
    assert_eq!(d.check, Cause::PermissionDenied);
    assert!(
        d.evidence
            .contains(&"spec: runAsUser 1000, runAsGroup 1000".to_string()),
        "{:?}",
        d.evidence
    );
    assert!(
        d.evidence
            .iter()
            .any(|e| e.starts_with("in-pod id check not run:"))
    );
    assert!(d.summary.contains("/app/run.sh"));
}

#[test]
fn run_as_root_reads_the_image_user_and_adds_user_1000() {
    let statuses = json!([{"name": "app", "ready": false, "restartCount": 0, "state": {"waiting": {
        "reason": "CreateContainerConfigError",
        "message": "container has runAsNonRoot and image will run as root (pod: \"p1_ns(uid)\", container: app)"}}}]);
    let mut s = snap(vec![pod("p1", "node-0", statuses)]);
    s.image_users
        .insert("reg/api@sha256:1".into(), "0:0".into());
    let d = only(&s);
    assert_eq!(d.check, Cause::RunAsRoot);
    assert!(
        d.evidence
            .iter()
            .any(|e| e.contains("docker inspect reg/api@sha256:1: User \"0:0\"")),
        "{:?}",
        d.evidence
    );
    assert_eq!(d.fix.change.as_deref(), Some("USER 1000:1000"));
    assert_eq!(d.fix.target, Target::Dockerfile);
}

#[test]
fn non_numeric_user_is_named() {
    let statuses = json!([{"name": "app", "restartCount": 0, "state": {"waiting": {
        "reason": "CreateContainerConfigError",
        "message": "container has runAsNonRoot and image has non-numeric user (appuser), cannot verify user is non-root"}}}]);
    let d = only(&snap(vec![pod("p1", "node-0", statuses)]));
    assert_eq!(d.check, Cause::RunAsRoot);
    assert!(d.summary.contains("name"));
}

#[test]
fn missing_secret_is_not_run_as_root() {
    let statuses = json!([{"name": "app", "restartCount": 0, "state": {"waiting": {
        "reason": "CreateContainerConfigError", "message": "secret \"db\" not found"}}}]);
    assert_eq!(
        only(&snap(vec![pod("p1", "node-0", statuses)])).check,
        Cause::MissingConfig
    );
}

#[test]
fn oom_killed_proposes_twice_the_limit_in_pake_yaml() {
    let s = snap(vec![pod(
        "p1",
        "node-0",
        crashing(json!({"reason": "OOMKilled", "exitCode": 137}), 4),
    )]);
    let d = only(&s);
    assert_eq!(d.check, Cause::OomKilled);
    assert!(
        d.evidence
            .contains(&"last state: terminated (OOMKilled, exit code 137)".to_string())
    );
    assert!(d.evidence.contains(&"restarts: 4".to_string()));
    assert!(d.evidence.iter().any(|e| e.contains("limits.memory 64Mi")));
    assert_eq!(d.fix.target, Target::PakeYaml);
    assert!(d.fix.change.unwrap().contains("memory: 128Mi   # was 64Mi"));
    let mut s = s;
    s.memory_usage = Some(Err("metrics.k8s.io is not served by this cluster".into()));
    assert!(only(&s).evidence.contains(
        &"memory in use: not available (metrics.k8s.io is not served by this cluster)".to_string()
    ));
    s.memory_usage = Some(Ok([(
        ("p1".to_string(), "app".to_string()),
        "61Mi".to_string(),
    )]
    .into()));
    assert!(
        only(&s)
            .evidence
            .contains(&"memory in use now (metrics.k8s.io, `kubectl top`): 61Mi".to_string())
    );
}

#[test]
fn oom_killed_before_the_first_restart() {
    let statuses = json!([{"name": "app", "restartCount": 0, "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]);
    assert_eq!(
        only(&snap(vec![pod("p1", "node-0", statuses)])).check,
        Cause::OomKilled
    );
}

#[test]
fn image_pull_and_unknown_crash() {
    let statuses = json!([{"name": "app", "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]);
    assert_eq!(
        only(&snap(vec![pod("p1", "node-0", statuses)])).check,
        Cause::ImagePull
    );
    let s = with_log(
        snap(vec![pod(
            "p1",
            "node-0",
            crashing(json!({"reason": "Error", "exitCode": 2}), 5),
        )]),
        &["panic: nil map"],
    );
    let d = only(&s);
    assert_eq!(d.check, Cause::CrashLoop);
    assert!(d.evidence.iter().any(|e| e.ends_with("panic: nil map")));
}

#[test]
fn healthy_pod_is_clean_and_simulated_pods_are_not_provable() {
    let ok = json!([{"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}}]);
    let mut p = pod("p1", "node-0", ok.clone());
    p["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    assert!(diagnose(&snap(vec![p.clone()])).is_empty());
    let mut k = pod("p2", "kwok-node-0", ok);
    k["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    let d = diagnose(&snap(vec![p, k]));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].check, Cause::SimulatedNode);
    assert_eq!(d[0].status, Status::NotProvable);
    assert!(d[0].summary.starts_with("not provable on a simulated node"));
}

#[test]
fn simulated_pods_hide_no_failure_but_prove_none() {
    // kwok reports a crash it made up: not trusted as a finding.
    let k = pod(
        "p2",
        "kwok-node-0",
        crashing(json!({"reason": "OOMKilled", "exitCode": 137}), 3),
    );
    let d = diagnose(&snap(vec![k]));
    assert_eq!(
        d.iter().map(|d| d.check).collect::<Vec<_>>(),
        [Cause::SimulatedNode]
    );
}

#[test]
fn not_ready_uses_the_probe_events() {
    let ok = json!([{"name": "app", "ready": false, "restartCount": 0, "state": {"running": {}}}]);
    let mut s = snap(vec![pod("p1", "node-0", ok)]);
    assert!(
        diagnose(&s).is_empty(),
        "no probe failure seen yet: not a finding"
    );
    s.events.push(json!({"type": "Warning", "reason": "Unhealthy", "involvedObject": {"kind": "Pod", "name": "p1"},
        "message": "Readiness probe failed: HTTP probe failed with statuscode: 404"}));
    let d = only(&s);
    assert_eq!(d.check, Cause::NotReady);
    assert!(d.evidence.iter().any(|e| e.contains("statuscode: 404")));
}

#[test]
fn unschedulable_shows_the_node_capacity_missing() {
    let mut p = pod("p1", "", json!(null));
    p["spec"]["nodeSelector"] = json!({"pake.dev/node": "real"});
    p["spec"]["containers"][0]["resources"]["requests"]["memory"] = json!("8Gi");
    p["status"] = json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/4 nodes are available: 1 Insufficient memory, 3 node(s) didn't match Pod's node affinity/selector."}]});
    let d = only(&snap(vec![p]));
    assert_eq!(d.check, Cause::Unschedulable);
    assert!(
        d.evidence
            .iter()
            .any(|e| e == "node node-0: allocatable cpu 2000m, memory 4Gi (memory short by 4Gi)"),
        "{:?}",
        d.evidence
    );
    assert!(
        !d.evidence.iter().any(|e| e.contains("kwok-node-0")),
        "selector excludes it"
    );
    assert_eq!(d.fix.target, Target::PakeYaml);
}

#[test]
fn pod_security_rejection_is_explained_by_the_pss_engine() {
    let rs = json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "api-v1-abc"},
        "spec": {"template": {"metadata": {}, "spec": {"containers": [{"name": "app", "image": "x",
            "securityContext": {"privileged": true}}]}}},
        "status": {"conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
            "message": "pods \"api-v1-abc-x\" is forbidden: violates PodSecurity \"restricted:latest\": privileged (container \"app\" must not set securityContext.privileged=true)"}]}
    });
    let mut s = snap(vec![]);
    assert_eq!(
        only(&s).check,
        Cause::NoPods,
        "nothing deployed is not clean"
    );
    s.replicasets.push(rs);
    s.pss_enforce = Some(("restricted".into(), "latest".into()));
    let d = only(&s);
    assert_eq!(d.check, Cause::PodSecurity);
    assert!(
        d.evidence
            .iter()
            .any(|e| e.starts_with("PSS engine: privileged (container \"app\"")),
        "{:?}",
        d.evidence
    );
    assert!(
        d.evidence
            .iter()
            .any(|e| e.starts_with("PSS engine: runAsNonRoot != true")),
        "{:?}",
        d.evidence
    );
    assert_eq!(d.fix.target, Target::Template);
}

#[test]
fn service_without_endpoints_compares_selector_and_ports() {
    let ok = json!([{"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}}]);
    let mut p = pod("p1", "node-0", ok);
    p["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    let svc = |sel: Value, tp: Value| json!({"metadata": {"name": "api"}, "spec": {"selector": sel, "ports": [{"port": 80, "targetPort": tp}]}});
    let slice = json!({"metadata": {"labels": {"kubernetes.io/service-name": "api"}}, "endpoints": [{"conditions": {"ready": true}}]});
    let mut s = snap(vec![p]);
    // Selector matches nothing.
    s.services = vec![svc(json!({"app": "apii"}), json!(8000))];
    let d = only(&s);
    assert_eq!(d.check, Cause::NoEndpoints);
    assert!(
        d.evidence
            .iter()
            .any(|e| e == "selector app=apii: 0 pods match, 0 Ready"),
        "{:?}",
        d.evidence
    );
    assert!(
        d.evidence.iter().any(|e| e.contains("app=api,version=v1")),
        "{:?}",
        d.evidence
    );
    // targetPort no container has.
    s.services = vec![svc(json!({"app": "api"}), json!(9000))];
    let d = only(&s);
    assert!(
        d.evidence
            .iter()
            .any(|e| e == "targetPort 9000 is no container port of the selected pods"),
        "{:?}",
        d.evidence
    );
    // Named port that exists, with an endpoint: clean.
    s.services = vec![svc(json!({"app": "api"}), json!("http"))];
    s.endpoint_slices = vec![slice];
    assert!(diagnose(&s).is_empty());
}

#[test]
fn events_are_deduplicated_sorted_and_tied_to_findings() {
    let mut s = with_log(
        snap(vec![pod(
            "p1",
            "node-0",
            crashing(json!({"reason": "OOMKilled", "exitCode": 137}), 2),
        )]),
        &[],
    );
    let ev = |name: &str, reason: &str, t: &str, count: i64| {
        json!({"type": "Warning", "reason": reason, "message": "m", "count": count, "lastTimestamp": t,
            "involvedObject": {"kind": "Pod", "name": name}})
    };
    s.events = vec![
        ev("p1", "BackOff", "2026-01-01T00:00:02Z", 3),
        ev("p1", "BackOff", "2026-01-01T00:00:05Z", 2),
        ev("other-app-pod", "BackOff", "2026-01-01T00:00:01Z", 1),
        json!({"type": "Normal", "reason": "Pulled", "involvedObject": {"kind": "Pod", "name": "p1"}}),
    ];
    let f = diagnose(&s);
    let e = events(&s, &f);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].count, 5);
    assert_eq!(e[0].last_seen, "2026-01-01T00:00:05Z");
    assert_eq!(e[0].finding, Some(Cause::OomKilled));
    assert_eq!(e[0].object, "Pod ns/p1");
}

#[test]
fn quantities() {
    assert_eq!(memory_bytes("64Mi"), Some(64 << 20));
    assert_eq!(memory_bytes("1G"), Some(1_000_000_000));
    assert_eq!(memory_bytes("128974848"), Some(128974848));
    assert_eq!(memory_bytes("12Qi"), None);
    assert_eq!(memory_bytes("-1Mi"), None);
    assert_eq!(proposed_limit(64 << 20), "128Mi");
    assert_eq!(proposed_limit(2 << 30), "4Gi");
    assert_eq!(cpu_millis("500m"), Some(500));
    assert_eq!(cpu_millis("2"), Some(2000));
    assert_eq!(cpu_millis("x"), None);
}

#[test]
fn hostile_input_never_panics() {
    for v in [
        json!(null),
        json!({"status": "x"}),
        json!({"status": {"containerStatuses": [1, "x", null]}}),
        json!([]),
    ] {
        let s = snap(vec![v.clone()]);
        let _ = diagnose(&s);
        let mut s = snap(vec![]);
        s.replicasets.push(v.clone());
        s.services.push(v.clone());
        s.events.push(v);
        let f = diagnose(&s);
        let _ = events(&s, &f);
    }
    let long = "x/".repeat(10_000) + ": read-only file system";
    let _ = path_in(&long);
    assert_eq!(
        path_in("/a/b: permission denied").map(|p| p.0),
        Some("/a/b".into())
    );
}

fn side(direction: &str, workload: &str, allows: bool, pake: Option<&str>) -> SideSeen {
    SideSeen {
        direction: direction.into(),
        workload: workload.into(),
        isolated: true,
        policies: vec![format!("ns/{workload}-deny")],
        rules: Vec::new(),
        allows,
        allow_policy: (!allows).then(|| "kind: NetworkPolicy\n".to_string()),
        pake_yaml: pake.map(str::to_string),
    }
}

fn facts(allowed: bool, sides: Vec<SideSeen>, live: Live) -> ConnFacts {
    ConnFacts {
        src: "ns/fe[Deployment]".into(),
        dst: "ns/be[Deployment]".into(),
        port: "8000/TCP".into(),
        allowed,
        sides,
        live,
    }
}

const DNS_OK: &str = "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10:53\n\nName:\tbe.ns.svc.cluster.local\nAddress: 10.96.3.7\n\n";

#[test]
fn live_output_is_parsed() {
    let seen = parse_live(
        "fe-1",
        "http://be:8000/health",
        &format!(
            "{DNS_OK}--pake-http--\nConnecting to be:8000 (10.96.3.7:8000)\n  HTTP/1.1 200 OK\n  Content-Type: application/json\n"
        ),
    );
    assert_eq!(
        seen,
        Live::Seen {
            pod: "fe-1".into(),
            url: "http://be:8000/health".into(),
            resolved: Some("10.96.3.7".into()),
            http: Some("HTTP/1.1 200 OK".into()),
            error: None
        }
    );
    let refused = parse_live(
        "fe-1",
        "u",
        &format!(
            "{DNS_OK}--pake-http--\nwget: can't connect to remote host (10.96.3.7): Connection refused\n"
        ),
    );
    assert!(
        matches!(refused, Live::Seen { http: None, error: Some(ref e), .. } if e.contains("Connection refused")),
        "{refused:?}"
    );
    let nxdomain = parse_live(
        "fe-1",
        "u",
        "Server: 10.96.0.10\nAddress: 10.96.0.10:53\n\n** server can't find be: NXDOMAIN\n--pake-http--\nwget: bad address 'be:8000'\n",
    );
    assert!(
        matches!(
            nxdomain,
            Live::Seen {
                resolved: None,
                http: None,
                ..
            }
        ),
        "{nxdomain:?}"
    );
    assert!(matches!(
        parse_live("p", "u", ""),
        Live::Seen {
            resolved: None,
            http: None,
            error: Some(_),
            ..
        }
    ));
    let nc = parse_live(
        "p",
        "u",
        &format!(
            "{DNS_OK}--pake-http--\nnc: can't connect to remote host (198.19.3.7): Connection refused\n"
        ),
    );
    assert!(
        matches!(nc, Live::Seen { error: Some(ref e), .. } if e == "can't connect to remote host (198.19.3.7): Connection refused"),
        "{nc:?}"
    );
    let ok = parse_live(
        "p",
        "u",
        &format!("{DNS_OK}--pake-http--\nHTTP/1.1 200 OK\n"),
    );
    assert!(matches!(ok, Live::Seen { http: Some(ref h), .. } if h == "HTTP/1.1 200 OK"));
    let crash = parse_live(
        "p",
        "u",
        &format!("{DNS_OK}--pake-http--\nSegmentation fault\n"),
    );
    assert!(
        matches!(crash, Live::Seen { error: Some(ref e), .. } if e == "Segmentation fault"),
        "{crash:?}"
    );
}

#[test]
fn a_denied_connection_gets_the_pake_yaml_line_for_the_closed_side() {
    let f = facts(
        false,
        vec![
            side("egress", "ns/fe[Deployment]", true, None),
            side(
                "ingress",
                "ns/be[Deployment]",
                false,
                Some("network:\n  allowFrom: [fe]"),
            ),
        ],
        Live::Skipped,
    );
    let d = connectivity(&f);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].check, Cause::NetworkPolicy);
    assert_eq!(
        d[0].summary,
        "the NetworkPolicies deny it: ingress of ns/be[Deployment]"
    );
    assert_eq!(d[0].fix.target, Target::PakeYaml);
    assert!(
        d[0].fix
            .change
            .as_deref()
            .unwrap()
            .contains("allowFrom: [fe]")
    );
    assert!(d[0].evidence.iter().any(|e| e == "ingress of ns/be[Deployment]: isolated by ns/ns/be[Deployment]-deny; no rule allows this peer"), "{:?}", d[0].evidence);
}

#[test]
fn a_side_of_another_project_gets_the_network_policy() {
    let f = facts(
        false,
        vec![
            side("egress", "ns/fe[Deployment]", false, None),
            side(
                "ingress",
                "ns/be[Deployment]",
                false,
                Some("network:\n  allowFrom: [fe]"),
            ),
        ],
        Live::Skipped,
    );
    let d = connectivity(&f);
    assert_eq!(d[0].fix.target, Target::NetworkPolicy);
    let c = d[0].fix.change.as_deref().unwrap();
    assert!(
        c.contains("# egress of ns/fe[Deployment]")
            && c.contains("kind: NetworkPolicy")
            && c.contains("allowFrom: [fe]"),
        "{c}"
    );
}

#[test]
fn denied_but_answered_means_not_enforced() {
    let live = Live::Seen {
        pod: "fe-1".into(),
        url: "http://be:8000/health".into(),
        resolved: Some("10.0.0.1".into()),
        http: Some("HTTP/1.1 200 OK".into()),
        error: None,
    };
    let f = facts(
        false,
        vec![side("ingress", "ns/be[Deployment]", false, None)],
        live,
    );
    let d = connectivity(&f);
    assert_eq!(
        d.iter().map(|d| d.check).collect::<Vec<_>>(),
        [Cause::NetworkPolicy, Cause::PolicyNotEnforced]
    );
    assert!(
        d[1].evidence
            .iter()
            .any(|e| e.contains("answered HTTP/1.1 200 OK"))
    );
}

#[test]
fn denied_and_blocked_live_is_one_finding_with_the_live_evidence() {
    let live = Live::Seen {
        pod: "fe-1".into(),
        url: "u".into(),
        resolved: Some("10.0.0.1".into()),
        http: None,
        error: Some("download timed out".into()),
    };
    let d = connectivity(&facts(
        false,
        vec![side("ingress", "ns/be[Deployment]", false, None)],
        live,
    ));
    assert_eq!(d.len(), 1);
    assert!(
        d[0].evidence
            .iter()
            .any(|e| e.contains("no answer (download timed out)"))
    );
}

#[test]
fn allowed_connections() {
    let ok = Live::Seen {
        pod: "fe-1".into(),
        url: "u".into(),
        resolved: Some("10.0.0.1".into()),
        http: Some("HTTP/1.1 200 OK".into()),
        error: None,
    };
    assert!(connectivity(&facts(true, vec![side("ingress", "be", true, None)], ok)).is_empty());
    let dns = Live::Seen {
        pod: "fe-1".into(),
        url: "u".into(),
        resolved: None,
        http: None,
        error: Some("bad address".into()),
    };
    let d = connectivity(&facts(true, vec![], dns));
    assert_eq!(d[0].check, Cause::Unreachable);
    assert!(d[0].fix.summary.contains("does not resolve"));
    let d = connectivity(&facts(
        true,
        vec![],
        Live::NotProvable {
            why: "not provable on a simulated node: kwok".into(),
        },
    ));
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].status, Status::NotProvable);
    assert!(
        d[0].summary
            .starts_with("enforcement could not be observed")
    );
}

#[test]
fn a_container_that_recovered_is_not_a_crash_loop_but_an_oom_kill_stays_a_finding() {
    let recovered = |last: Value| {
        let mut p = pod(
            "p1",
            "node-0",
            json!([{"name": "app", "ready": true, "restartCount": 1, "state": {"running": {}}, "lastState": {"terminated": last}}]),
        );
        p["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
        p
    };
    assert!(
        diagnose(&snap(vec![recovered(
            json!({"reason": "Error", "exitCode": 2})
        )]))
        .is_empty()
    );
    let d = diagnose(&snap(vec![recovered(
        json!({"reason": "OOMKilled", "exitCode": 137}),
    )]));
    assert_eq!(
        d.iter().map(|d| d.check).collect::<Vec<_>>(),
        [Cause::OomKilled]
    );
}
