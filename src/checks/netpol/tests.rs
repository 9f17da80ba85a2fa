//! One test (or more) per semantic rule of NetworkPolicy.

use serde_json::{Value, json};

use super::*;

fn deploy(ns: &str, name: &str, labels: Value) -> Value {
    deploy_ports(ns, name, labels, json!([]))
}

fn deploy_ports(ns: &str, name: &str, labels: Value, ports: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
        "spec": {"template": {"metadata": {"labels": labels},
            "spec": {"containers": [{"name": "c", "image": "i", "ports": ports}]}}}})
}

fn np(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

fn deny_all(ns: &str) -> Value {
    np(
        ns,
        "default-deny-all",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
    )
}

fn graph(objects: &[Value]) -> Vec<String> {
    let input = Input::from_objects(objects).expect("valid input");
    Engine::new(&input)
        .graph()
        .into_iter()
        .map(|e| format!("{} => {} : {}", e.src, e.dst, e.conn))
        .collect()
}

/// Edges between workloads only (no external ranges).
fn internal(objects: &[Value]) -> Vec<String> {
    graph(objects)
        .into_iter()
        .filter(|e| !e.contains("[External]"))
        .collect()
}

fn conn(objects: &[Value], src: &str, dst: &str) -> String {
    let input = Input::from_objects(objects).unwrap();
    let e = Engine::new(&input);
    let v = e.explain(&e.find(src).unwrap(), &e.find(dst).unwrap());
    v.conn.to_string()
}

#[test]
fn no_policies_allow_everything_but_no_self_edges() {
    let g = graph(&[
        deploy("a", "x", json!({"app": "x"})),
        deploy("a", "y", json!({"app": "y"})),
    ]);
    assert_eq!(
        g,
        [
            "0.0.0.0-255.255.255.255[External] => a/x[Deployment] : All Connections",
            "0.0.0.0-255.255.255.255[External] => a/y[Deployment] : All Connections",
            "a/x[Deployment] => 0.0.0.0-255.255.255.255[External] : All Connections",
            "a/x[Deployment] => a/y[Deployment] : All Connections",
            "a/y[Deployment] => 0.0.0.0-255.255.255.255[External] : All Connections",
            "a/y[Deployment] => a/x[Deployment] : All Connections",
        ]
    );
}

#[test]
fn default_deny_isolates_both_directions_of_its_namespace_only() {
    let objs = [
        deploy("a", "x", json!({"app": "x"})),
        deploy("a", "y", json!({"app": "y"})),
        deploy("b", "z", json!({"app": "z"})),
        deploy("b", "w", json!({"app": "w"})),
        deny_all("a"),
    ];
    assert_eq!(
        graph(&objs),
        [
            "0.0.0.0-255.255.255.255[External] => b/w[Deployment] : All Connections",
            "0.0.0.0-255.255.255.255[External] => b/z[Deployment] : All Connections",
            "b/w[Deployment] => 0.0.0.0-255.255.255.255[External] : All Connections",
            "b/w[Deployment] => b/z[Deployment] : All Connections",
            "b/z[Deployment] => 0.0.0.0-255.255.255.255[External] : All Connections",
            "b/z[Deployment] => b/w[Deployment] : All Connections",
        ]
    );
}

#[test]
fn guide_example_needs_egress_and_ingress() {
    let mut objs = vec![
        deploy("p", "frontend", json!({"app": "frontend"})),
        deploy("p", "backend", json!({"app": "backend"})),
        deny_all("p"),
        // The guide's backend-allow: no policyTypes, so Ingress only.
        np(
            "p",
            "backend-allow",
            json!({"podSelector": {"matchLabels": {"app": "backend"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}],
                         "ports": [{"protocol": "TCP", "port": 8000}]}]}),
        ),
    ];
    // frontend's egress is still denied by default-deny.
    assert!(graph(&objs).is_empty(), "{:?}", graph(&objs));
    objs.push(np("p", "frontend-egress", json!({"podSelector": {"matchLabels": {"app": "frontend"}},
        "policyTypes": ["Egress"], "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "backend"}}}]}]})));
    assert_eq!(
        graph(&objs),
        ["p/frontend[Deployment] => p/backend[Deployment] : TCP 8000"]
    );
}

#[test]
fn a_pod_selected_only_for_egress_keeps_ingress_open() {
    let objs = [
        deploy("a", "x", json!({"app": "x"})),
        deploy("a", "y", json!({"app": "y"})),
        np(
            "a",
            "x-egress",
            json!({"podSelector": {"matchLabels": {"app": "x"}}, "policyTypes": ["Egress"]}),
        ),
    ];
    assert_eq!(
        internal(&objs),
        ["a/y[Deployment] => a/x[Deployment] : All Connections"]
    );
    assert!(graph(&objs).contains(
        &"0.0.0.0-255.255.255.255[External] => a/x[Deployment] : All Connections".to_string()
    ));
}

#[test]
fn missing_policy_types_follow_the_api_server_default() {
    // Egress rules present: both types. An empty list does not add Egress.
    let both = [
        deploy("a", "x", json!({"app": "x"})),
        deploy("a", "y", json!({"app": "y"})),
        np(
            "a",
            "p",
            json!({"podSelector": {"matchLabels": {"app": "x"}},
            "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]}),
        ),
    ];
    assert_eq!(
        internal(&both),
        ["a/x[Deployment] => a/y[Deployment] : UDP 53"]
    );
    let ingress_only = [
        deploy("a", "x", json!({"app": "x"})),
        deploy("a", "y", json!({"app": "y"})),
        np(
            "a",
            "p",
            json!({"podSelector": {"matchLabels": {"app": "x"}}, "egress": []}),
        ),
    ];
    assert_eq!(
        internal(&ingress_only),
        ["a/x[Deployment] => a/y[Deployment] : All Connections"]
    );
}

#[test]
fn empty_versus_missing_rule_fields() {
    let base = |spec: Value| {
        vec![
            deploy("a", "x", json!({"app": "x"})),
            deploy("a", "y", json!({"app": "y"})),
            np("a", "p", spec),
        ]
    };
    let sel = json!({"matchLabels": {"app": "y"}});
    // `ingress: []` (or missing) with type Ingress: deny all ingress.
    let deny = base(json!({"podSelector": sel, "policyTypes": ["Ingress"], "ingress": []}));
    assert_eq!(
        internal(&deny),
        ["a/y[Deployment] => a/x[Deployment] : All Connections"]
    );
    let deny2 = base(json!({"podSelector": sel, "policyTypes": ["Ingress"]}));
    assert_eq!(internal(&deny2), internal(&deny));
    // `ingress: [{}]`: one rule with no from and no ports: allow all.
    let all = base(json!({"podSelector": sel, "ingress": [{}]}));
    assert_eq!(internal(&all).len(), 2);
    // `from: []` and `ports: []` are "all" too.
    let all2 = base(json!({"podSelector": sel, "ingress": [{"from": [], "ports": []}]}));
    assert_eq!(internal(&all2), internal(&all));
    assert!(graph(&all2).contains(
        &"0.0.0.0-255.255.255.255[External] => a/y[Deployment] : All Connections".to_string()
    ));
}

#[test]
fn pod_selector_alone_means_the_policy_namespace() {
    let objs = [
        deploy("a", "x", json!({"app": "x"})),
        deploy("b", "x", json!({"app": "x"})),
        deploy("a", "y", json!({"app": "y"})),
        np(
            "a",
            "p",
            json!({"podSelector": {"matchLabels": {"app": "y"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "x"}}}]}]}),
        ),
    ];
    assert_eq!(conn(&objs, "a/x", "a/y"), "All Connections");
    assert_eq!(conn(&objs, "b/x", "a/y"), "No Connections");
}

#[test]
fn namespace_selector_alone_and_combined() {
    let objs = |peers: Value| {
        vec![
            namespace("team", json!({"team": "blue"})),
            namespace("other", json!({"team": "red"})),
            deploy("team", "web", json!({"app": "web"})),
            deploy("team", "job", json!({"app": "job"})),
            deploy("other", "web", json!({"app": "web"})),
            deploy("a", "db", json!({"app": "db"})),
            np(
                "a",
                "db",
                json!({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": peers}]}),
            ),
        ]
    };
    let alone = objs(json!([{"namespaceSelector": {"matchLabels": {"team": "blue"}}}]));
    assert_eq!(conn(&alone, "team/web", "a/db"), "All Connections");
    assert_eq!(conn(&alone, "team/job", "a/db"), "All Connections");
    assert_eq!(conn(&alone, "other/web", "a/db"), "No Connections");
    // Both in one peer: AND.
    let and = objs(
        json!([{"namespaceSelector": {"matchLabels": {"team": "blue"}}, "podSelector": {"matchLabels": {"app": "web"}}}]),
    );
    assert_eq!(conn(&and, "team/web", "a/db"), "All Connections");
    assert_eq!(conn(&and, "team/job", "a/db"), "No Connections");
    assert_eq!(conn(&and, "other/web", "a/db"), "No Connections");
    // Two peers: OR; the podSelector peer is the policy's own namespace.
    let or = objs(
        json!([{"namespaceSelector": {"matchLabels": {"team": "blue"}}}, {"podSelector": {"matchLabels": {"app": "web"}}}]),
    );
    assert_eq!(conn(&or, "team/job", "a/db"), "All Connections");
    assert_eq!(conn(&or, "other/web", "a/db"), "No Connections");
    // An empty namespaceSelector: every namespace, but not external addresses.
    let every = objs(json!([{"namespaceSelector": {}}]));
    assert_eq!(conn(&every, "other/web", "a/db"), "All Connections");
    assert_eq!(conn(&every, "192.0.2.1", "a/db"), "No Connections");
}

#[test]
fn every_namespace_has_its_name_label_and_unnamed_is_default() {
    let objs = [
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "p"}}, "spec": {"containers": []}}),
        deploy("kube-system", "dns", json!({"k8s-app": "kube-dns"})),
        np(
            "default",
            "p",
            json!({"podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}]}]}),
        ),
    ];
    assert_eq!(
        internal(&objs),
        [
            "default/p[Pod] => kube-system/dns[Deployment] : All Connections",
            "kube-system/dns[Deployment] => default/p[Pod] : All Connections"
        ]
    );
}

#[test]
fn match_expressions_operators() {
    let cases = [
        (
            json!({"key": "tier", "operator": "In", "values": ["web", "api"]}),
            ["a/api", "a/web"].as_slice(),
        ),
        (
            json!({"key": "tier", "operator": "NotIn", "values": ["web"]}),
            &["a/api", "a/none"],
        ),
        (
            json!({"key": "tier", "operator": "Exists"}),
            &["a/api", "a/web"],
        ),
        (
            json!({"key": "tier", "operator": "DoesNotExist"}),
            &["a/none"],
        ),
    ];
    for (expr, allowed) in cases {
        let objs = [
            deploy("a", "web", json!({"tier": "web"})),
            deploy("a", "api", json!({"tier": "api"})),
            deploy("a", "none", json!({"x": "y"})),
            deploy("a", "db", json!({"app": "db"})),
            np(
                "a",
                "db",
                json!({"podSelector": {"matchLabels": {"app": "db"}},
                "ingress": [{"from": [{"podSelector": {"matchExpressions": [expr.clone()]}}]}]}),
            ),
        ];
        for src in ["a/web", "a/api", "a/none"] {
            let want = if allowed.contains(&src) {
                "All Connections"
            } else {
                "No Connections"
            };
            assert_eq!(conn(&objs, src, "a/db"), want, "{expr} from {src}");
        }
    }
}

#[test]
fn ip_block_with_except_splits_only_where_it_matters() {
    let objs = [
        deploy("a", "x", json!({"app": "x"})),
        np(
            "a",
            "p",
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                        "ports": [{"port": 443}]}]}),
        ),
    ];
    assert_eq!(
        graph(&objs),
        [
            "a/x[Deployment] => 10.0.0.0-10.0.255.255[External] : TCP 443",
            "a/x[Deployment] => 10.2.0.0-10.255.255.255[External] : TCP 443"
        ]
    );
    // Two blocks with the same effect merge back into one range.
    let merged = [
        deploy("a", "x", json!({"app": "x"})),
        np(
            "a",
            "p",
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/9"}}, {"ipBlock": {"cidr": "10.128.0.0/9"}}]}]}),
        ),
    ];
    assert_eq!(
        graph(&merged),
        ["a/x[Deployment] => 10.0.0.0-10.255.255.255[External] : All Connections"]
    );
}

#[test]
fn ip_block_ingress_and_ipv6() {
    let objs = [
        deploy("a", "x", json!({"app": "x"})),
        np(
            "a",
            "p",
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"ipBlock": {"cidr": "2001:db8::/32"}}, {"ipBlock": {"cidr": "192.0.2.0/24"}}]}]}),
        ),
    ];
    assert_eq!(
        graph(&objs),
        [
            "192.0.2.0-192.0.2.255[External] => a/x[Deployment] : All Connections",
            "2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff[External] => a/x[Deployment] : All Connections",
        ]
    );
    assert_eq!(conn(&objs, "2001:db8::1", "a/x"), "All Connections");
    assert_eq!(conn(&objs, "2001:db9::1", "a/x"), "No Connections");
}

#[test]
fn named_ports_resolve_per_destination() {
    let objs = [
        deploy_ports(
            "a",
            "web",
            json!({"role": "server", "app": "web"}),
            json!([{"name": "http", "containerPort": 8080}]),
        ),
        deploy_ports(
            "a",
            "api",
            json!({"role": "server", "app": "api"}),
            json!([{"name": "http", "containerPort": 9000}, {"name": "dns", "containerPort": 53, "protocol": "UDP"}]),
        ),
        deploy("a", "other", json!({"role": "server", "app": "other"})),
        deploy("a", "client", json!({"app": "client"})),
        np(
            "a",
            "servers",
            json!({"podSelector": {"matchLabels": {"role": "server"}},
            "ingress": [{"ports": [{"port": "http"}, {"port": "dns", "protocol": "TCP"}]}]}),
        ),
    ];
    assert_eq!(conn(&objs, "a/client", "a/web"), "TCP 8080");
    assert_eq!(conn(&objs, "a/client", "a/api"), "TCP 9000");
    // No container port of that name (or not of that protocol): nothing.
    assert_eq!(conn(&objs, "a/client", "a/other"), "No Connections");
    // Egress named ports match nothing outside the cluster.
    let eg = [
        deploy("a", "client", json!({"app": "client"})),
        np(
            "a",
            "e",
            json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": "http"}]}]}),
        ),
    ];
    assert_eq!(conn(&eg, "a/client", "192.0.2.1"), "No Connections");
}

#[test]
fn end_port_ranges_and_protocols() {
    let objs = [
        deploy("a", "x", json!({"app": "x"})),
        deploy("a", "y", json!({"app": "y"})),
        np(
            "a",
            "p",
            json!({"podSelector": {"matchLabels": {"app": "y"}},
            "ingress": [{"ports": [{"port": 32000, "endPort": 32768}, {"protocol": "UDP", "port": 53},
                                   {"protocol": "SCTP"}, {"port": 32769}]}]}),
        ),
    ];
    assert_eq!(
        conn(&objs, "a/x", "a/y"),
        "TCP 32000-32769,UDP 53,SCTP 1-65535"
    );
    let every = [
        deploy("a", "x", json!({"app": "x"})),
        deploy("a", "y", json!({"app": "y"})),
        np(
            "a",
            "p",
            json!({"podSelector": {"matchLabels": {"app": "y"}},
            "ingress": [{"ports": [{"protocol": "TCP"}, {"protocol": "UDP"}]}, {"ports": [{"protocol": "SCTP"}]}]}),
        ),
    ];
    assert_eq!(conn(&every, "a/x", "a/y"), "All Connections");
}

#[test]
fn egress_and_ingress_intersect() {
    let objs = [
        deploy("a", "x", json!({"app": "x"})),
        deploy("a", "y", json!({"app": "y"})),
        np(
            "a",
            "eg",
            json!({"podSelector": {"matchLabels": {"app": "x"}}, "policyTypes": ["Egress"],
            "egress": [{"ports": [{"port": 1, "endPort": 100}]}]}),
        ),
        np(
            "a",
            "in",
            json!({"podSelector": {"matchLabels": {"app": "y"}},
            "ingress": [{"ports": [{"port": 50, "endPort": 200}]}]}),
        ),
    ];
    assert_eq!(conn(&objs, "a/x", "a/y"), "TCP 50-100");
}

#[test]
fn a_policy_in_another_namespace_does_not_apply() {
    let objs = [
        deploy("a", "x", json!({"app": "x"})),
        deploy("a", "y", json!({"app": "y"})),
        deny_all("b"),
    ];
    assert_eq!(internal(&objs).len(), 2);
}

#[test]
fn workloads_of_every_kind_and_owned_objects() {
    let t = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": []}});
    let objs = [
        json!({"kind": "StatefulSet", "metadata": {"name": "s", "namespace": "a"}, "spec": {"template": t}}),
        json!({"kind": "DaemonSet", "metadata": {"name": "d", "namespace": "a"}, "spec": {"template": t}}),
        json!({"kind": "ReplicationController", "metadata": {"name": "r", "namespace": "a"}, "spec": {"template": t}}),
        json!({"kind": "Job", "metadata": {"name": "j", "namespace": "a"}, "spec": {"template": t}}),
        json!({"kind": "CronJob", "metadata": {"name": "c", "namespace": "a"}, "spec": {"jobTemplate": {"spec": {"template": t}}}}),
        // A ReplicaSet owned by a Deployment in the input belongs to it.
        deploy("a", "web", json!({"app": "x"})),
        json!({"kind": "ReplicaSet", "metadata": {"name": "web-abc", "namespace": "a",
            "ownerReferences": [{"kind": "Deployment", "name": "web", "controller": true}]}, "spec": {"template": t}}),
        // A Pod of a ReplicaSet not in the input stands for its Deployment.
        json!({"kind": "Pod", "metadata": {"name": "api-5d9f-x1", "namespace": "a", "labels": {"app": "api", "pod-template-hash": "5d9f"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "api-5d9f", "controller": true}]}, "spec": {}}),
        json!({"kind": "Pod", "metadata": {"name": "api-5d9f-x2", "namespace": "a", "labels": {"app": "api", "pod-template-hash": "5d9f"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "api-5d9f", "controller": true}]}, "spec": {}}),
        json!({"kind": "Service", "metadata": {"name": "svc", "namespace": "a"}}),
    ];
    let input = Input::from_objects(&[json!({"kind": "List", "items": objs})]).unwrap();
    let ids: Vec<String> = input.workloads.iter().map(Workload::id).collect();
    assert_eq!(
        ids,
        [
            "a/s[StatefulSet]",
            "a/d[DaemonSet]",
            "a/r[ReplicationController]",
            "a/j[Job]",
            "a/c[CronJob]",
            "a/web[Deployment]",
            "a/api[Deployment]"
        ]
    );
    // Six workloads share one label set: one group does the work for all.
    assert_eq!(Engine::new(&input).group_count(), 2);
    let e = Engine::new(&input).graph();
    assert_eq!(
        e.iter()
            .filter(|e| e.src == "a/s[StatefulSet]" && !e.dst.contains("External"))
            .count(),
        6
    );
}

#[test]
fn explain_names_the_rules_and_the_denying_direction() {
    let objs = [
        deploy("p", "frontend", json!({"app": "frontend"})),
        deploy("p", "backend", json!({"app": "backend"})),
        deny_all("p"),
        np(
            "p",
            "backend-allow",
            json!({"podSelector": {"matchLabels": {"app": "backend"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}],
                         "ports": [{"protocol": "TCP", "port": 8000}]}]}),
        ),
    ];
    let input = Input::from_objects(&objs).unwrap();
    let e = Engine::new(&input);
    let v = e.explain(&e.find("frontend").unwrap(), &e.find("backend").unwrap());
    assert!(v.conn.is_empty());
    assert!(v.egress.isolated && v.egress.rules.is_empty());
    assert_eq!(v.egress.policies, ["p/default-deny-all"]);
    assert_eq!(v.ingress.rules.len(), 1);
    assert_eq!(
        v.ingress.rules[0].to_string(),
        "NetworkPolicy p/backend-allow ingress[0] (TCP 8000)"
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let bad = |spec: Value| {
        Input::from_objects(&[np("a", "bad", spec)])
            .unwrap_err()
            .to_string()
    };
    assert!(bad(json!({"podSelector": {"matchExpressions": [{"key": "k", "operator": "Like", "values": ["v"]}]}})).contains("operator must be In"));
    assert!(
        bad(json!({"podSelector": {"matchExpressions": [{"key": "k", "operator": "In"}]}}))
            .contains("needs values")
    );
    assert!(
        bad(json!({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/40"}}]}]}))
            .contains("prefix")
    );
    assert!(bad(json!({"ingress": [{"from": [{}]}]})).contains("needs podSelector"));
    assert!(
        bad(json!({"ingress": [{"ports": [{"port": 80, "endPort": 10}]}]})).contains("below port")
    );
    assert!(
        bad(json!({"ingress": [{"ports": [{"protocol": "ICMP"}]}]})).contains("TCP, UDP or SCTP")
    );
    assert!(bad(json!({"policyTypes": ["Sideways"]})).starts_with("NetworkPolicy a/bad"));
    assert_eq!(parse_port("53/udp").unwrap(), (Protocol::Udp, 53));
    assert!(parse_port("0").is_err());
}

#[test]
fn diff_reports_added_removed_and_changed_edges() {
    let before = [
        deploy("a", "x", json!({"app": "x"})),
        deploy("a", "y", json!({"app": "y"})),
        deny_all("a"),
        np(
            "a",
            "y",
            json!({"podSelector": {"matchLabels": {"app": "y"}}, "ingress": [{"ports": [{"port": 80}]}]}),
        ),
        np(
            "a",
            "x",
            json!({"podSelector": {"matchLabels": {"app": "x"}}, "policyTypes": ["Egress"], "egress": [{}]}),
        ),
    ];
    let mut after = before.to_vec();
    after[3] = np(
        "a",
        "y",
        json!({"podSelector": {"matchLabels": {"app": "y"}}, "ingress": [{}]}),
    );
    after.push(deploy("a", "z", json!({"app": "y"})));
    let g = |o: &[Value]| graph_of(o, None).unwrap().1;
    let d: Vec<String> = diff(&g(&before), &g(&after))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        d,
        [
            "~ 0.0.0.0-255.255.255.255[External] => a/y[Deployment] : TCP 80 -> All Connections",
            "+ 0.0.0.0-255.255.255.255[External] => a/z[Deployment] : All Connections",
            "~ a/x[Deployment] => a/y[Deployment] : TCP 80 -> All Connections",
            "+ a/x[Deployment] => a/z[Deployment] : All Connections",
        ]
    );
    assert!(diff(&g(&before), &g(&before)).is_empty());
}

#[test]
fn the_snippet_opens_exactly_the_denied_direction() {
    let objs = [
        deploy("a", "x", json!({"app": "x"})),
        deploy("b", "y", json!({"app": "y", "tier": "db"})),
        deny_all("a"),
        deny_all("b"),
    ];
    let input = Input::from_objects(&objs).unwrap();
    let e = Engine::new(&input);
    let (s, d) = (e.find("a/x").unwrap(), e.find("y").unwrap());
    let snip = e
        .allow_snippet(Direction::Ingress, &s, &d, Some((Protocol::Tcp, 5432)))
        .unwrap();
    assert_eq!(
        snip["metadata"],
        json!({"name": "allow-x-to-y", "namespace": "b"})
    );
    assert_eq!(
        snip["spec"]["podSelector"],
        json!({"matchLabels": {"app": "y"}})
    );
    assert_eq!(
        snip["spec"]["ingress"],
        json!([{"from": [{"podSelector": {"matchLabels": {"app": "x"}}, "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "a"}}}],
                "ports": [{"protocol": "TCP", "port": 5432}]}])
    );
    // Applying both snippets opens exactly that port.
    let egress = e
        .allow_snippet(Direction::Egress, &s, &d, Some((Protocol::Tcp, 5432)))
        .unwrap();
    let mut fixed = objs.to_vec();
    fixed.extend([snip, egress]);
    assert_eq!(conn(&fixed, "a/x", "b/y"), "TCP 5432");
}

#[test]
fn jobs_of_a_cron_job_and_pods_of_a_job_fold_into_the_owner() {
    let t = json!({"metadata": {"labels": {"app": "r"}}, "spec": {"containers": []}});
    let objs = [
        json!({"kind": "CronJob", "metadata": {"name": "report", "namespace": "a"}, "spec": {"jobTemplate": {"spec": {"template": t}}}}),
        json!({"kind": "Job", "metadata": {"name": "report-29000", "namespace": "a",
            "ownerReferences": [{"kind": "CronJob", "name": "report", "controller": true}]}, "spec": {"template": t}}),
        json!({"kind": "Pod", "metadata": {"name": "report-29000-abc", "namespace": "a", "labels": {"app": "r"},
            "ownerReferences": [{"kind": "Job", "name": "report-29000", "controller": true}]}, "spec": {}}),
        // A Job's pod without the Job in the input stands for the Job.
        json!({"kind": "Pod", "metadata": {"name": "m-xyz", "namespace": "a", "labels": {"app": "m"},
            "ownerReferences": [{"kind": "Job", "name": "m", "controller": true}]}, "spec": {}}),
    ];
    let input = Input::from_objects(&objs).unwrap();
    let ids: Vec<String> = input.workloads.iter().map(Workload::id).collect();
    assert_eq!(ids, ["a/report[CronJob]", "a/m[Job]"]);
}
