//! The zero-trust check: every workload of the app is isolated in both
//! directions, and what its policies allow is exactly what pake.yaml
//! declares — the app port from each `allowFrom` app, DNS to kube-dns, the
//! ingress controller when an Ingress is configured, and each `egress` rule.
//!
//! Only the app's own side is judged (its ingress from peers, its egress to
//! peers): a peer's policies are that peer's business. Peers pake.yaml names
//! but the input lacks are added as stand-ins (`[Peer]`), and two "any pod"
//! stand-ins (`[Any]`: one in the app's namespace, one in a namespace no
//! selector names) reveal rules that open the app to more than its peers.

use std::collections::BTreeMap;

use serde_json::Value;

use super::conn::{ConnSet, Protocol};
use super::eval::{Direction, Endpoint, Engine};
use super::ip::{IpRange, parse_cidr};
use super::model::{ContainerPort, Input, InputError, Labels, Workload};
use crate::checks::{Finding, Severity};

pub const ISOLATION: &str = "NETPOL-ZERO-TRUST-ISOLATION";
pub const EXTRA: &str = "NETPOL-ZERO-TRUST-EXTRA";
pub const MISSING: &str = "NETPOL-ZERO-TRUST-MISSING";
pub const IDS: &[&str] = &[ISOLATION, EXTRA, MISSING];

/// Namespace and labels of the stand-ins for well-known peers.
pub const DNS_NAMESPACE: &str = "kube-system";
pub const INGRESS_NAMESPACE: &str = "ingress-nginx";
const ANY: &str = "*";

/// What pake.yaml declares about one app's traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub namespace: String,
    pub app: String,
    pub port: u16,
    pub allow_from: Vec<String>,
    pub allow_dns: bool,
    pub ingress_controller: bool,
    pub egress: Vec<DeclaredEgress>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredEgress {
    pub app: Option<String>,
    pub cidr: Option<String>,
    pub protocol: Protocol,
    pub port: u16,
}

impl Declared {
    pub fn from_resolved(r: &crate::config::Resolved) -> Self {
        Declared {
            namespace: r.namespace.clone(),
            app: r.app.clone(),
            port: r.port,
            allow_from: r.network.allow_from.clone(),
            allow_dns: r.network.allow_dns,
            ingress_controller: r.ingress.is_some(),
            egress: r
                .network
                .egress
                .iter()
                .map(|e| DeclaredEgress {
                    app: e.app.clone(),
                    cidr: e.cidr.clone(),
                    protocol: Protocol::parse(&e.protocol.to_ascii_uppercase())
                        .unwrap_or(Protocol::Tcp),
                    port: e.port,
                })
                .collect(),
        }
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn standin(ns: &str, name: &str, kind: &str, l: Labels, ports: Vec<ContainerPort>) -> Workload {
    Workload {
        namespace: ns.into(),
        name: name.into(),
        kind: kind.into(),
        labels: l,
        ports,
        standin: true,
    }
}

/// A declared edge: the peer's selector (namespace + labels) and the connection.
struct PeerDecl {
    namespace: String,
    labels: Labels,
    incoming: bool,
    conn: ConnSet,
    why: String,
}

fn peer_decls(d: &Declared) -> Vec<PeerDecl> {
    let mut out = Vec::new();
    let app_port = ConnSet::port(Protocol::Tcp, d.port);
    for f in &d.allow_from {
        out.push(PeerDecl {
            namespace: d.namespace.clone(),
            labels: labels(&[("app", f)]),
            incoming: true,
            conn: app_port.clone(),
            why: format!("network.allowFrom: {f}"),
        });
    }
    if d.allow_dns {
        out.push(PeerDecl {
            namespace: DNS_NAMESPACE.into(),
            labels: labels(&[("k8s-app", "kube-dns")]),
            incoming: false,
            conn: ConnSet::port(Protocol::Udp, 53).union(&ConnSet::port(Protocol::Tcp, 53)),
            why: "network.allowDns".into(),
        });
    }
    if d.ingress_controller {
        out.push(PeerDecl {
            namespace: INGRESS_NAMESPACE.into(),
            labels: labels(&[("app.kubernetes.io/name", "ingress-nginx")]),
            incoming: true,
            conn: app_port.clone(),
            why: "ingress (the ingress controller)".into(),
        });
    }
    for e in &d.egress {
        if let Some(a) = &e.app {
            out.push(PeerDecl {
                namespace: d.namespace.clone(),
                labels: labels(&[("app", a)]),
                incoming: false,
                conn: ConnSet::port(e.protocol, e.port),
                why: format!("network.egress: app {a}"),
            });
        }
    }
    out
}

fn matches(w: &Workload, ns: &str, l: &Labels) -> bool {
    w.namespace == ns && l.iter().all(|(k, v)| w.labels.get(k) == Some(v))
}

/// The input plus stand-ins for declared peers it lacks and the two "any pod" probes.
pub fn with_standins(mut input: Input, d: &Declared, any: bool) -> Input {
    for p in peer_decls(d) {
        if input
            .workloads
            .iter()
            .any(|w| matches(w, &p.namespace, &p.labels))
        {
            continue;
        }
        let (name, ports) = match p.namespace.as_str() {
            DNS_NAMESPACE => (
                "kube-dns".to_string(),
                vec![
                    ContainerPort {
                        name: Some("dns".into()),
                        port: 53,
                        protocol: Protocol::Udp,
                    },
                    ContainerPort {
                        name: Some("dns-tcp".into()),
                        port: 53,
                        protocol: Protocol::Tcp,
                    },
                ],
            ),
            INGRESS_NAMESPACE => ("ingress-nginx-controller".to_string(), Vec::new()),
            _ => (p.labels.get("app").cloned().unwrap_or_default(), Vec::new()),
        };
        let mut l = p.labels.clone();
        if p.namespace == INGRESS_NAMESPACE {
            l.insert("app.kubernetes.io/component".into(), "controller".into());
        }
        input
            .workloads
            .push(standin(&p.namespace, &name, "Peer", l, ports));
    }
    if any {
        input
            .workloads
            .push(standin(&d.namespace, ANY, "Any", Labels::new(), Vec::new()));
        input
            .workloads
            .push(standin(ANY, ANY, "Any", Labels::new(), Vec::new()));
    }
    input.complete_namespaces();
    input
}

fn object_ref(w: &Workload) -> String {
    format!("{} {}/{}", w.kind, w.namespace, w.name)
}

/// Run the check on objects (rendered or live). Each finding comes with the
/// index of the app workload object it is about.
pub fn check(objects: &[Value], d: &Declared) -> Result<Vec<(usize, Finding)>, InputError> {
    let input = with_standins(Input::from_objects(objects)?, d, true);
    let engine = Engine::new(&input);
    let decls = peer_decls(d);
    let mut out = Vec::new();
    for (wi, w) in input.workloads.iter().enumerate() {
        if w.namespace != d.namespace
            || w.labels.get("app") != Some(&d.app)
            || matches!(w.kind.as_str(), "Peer" | "Any")
        {
            continue;
        }
        let Some(index) = objects.iter().position(|o| {
            o["kind"].as_str() == Some(w.kind.as_str())
                && o["metadata"]["name"].as_str() == Some(w.name.as_str())
        }) else {
            continue;
        };
        for f in check_workload(&engine, wi, d, &decls) {
            out.push((index, f.on(object_ref(w))));
        }
    }
    Ok(out)
}

fn check_workload(engine: &Engine, wi: usize, d: &Declared, decls: &[PeerDecl]) -> Vec<Finding> {
    let input = engine.input;
    let w = &input.workloads[wi];
    let me = Endpoint::Workload(wi);
    let mut out = Vec::new();
    for dir in [Direction::Ingress, Direction::Egress] {
        if engine.isolating_policies(wi, dir).is_empty() {
            out.push(Finding::new(
                ISOLATION,
                Severity::High,
                format!("{} is not isolated for {}: no NetworkPolicy of type {} selects it, so {} any pod and any address",
                    w.id(), dir.as_str(), if dir == Direction::Ingress { "Ingress" } else { "Egress" },
                    if dir == Direction::Ingress { "it accepts connections from" } else { "it may connect to" }),
                "add the guide's default-deny-all NetworkPolicy (podSelector: {}, policyTypes: [Ingress, Egress]) to the namespace",
            ));
            continue;
        }
        // Declared connections with each peer on this side.
        let mut declared: BTreeMap<usize, (ConnSet, Vec<&str>)> = BTreeMap::new();
        for p in decls
            .iter()
            .filter(|p| p.incoming == (dir == Direction::Ingress))
        {
            for (pi, peer) in input.workloads.iter().enumerate() {
                if pi != wi && matches(peer, &p.namespace, &p.labels) {
                    let e = declared.entry(pi).or_default();
                    e.0.add(&p.conn);
                    e.1.push(&p.why);
                }
            }
        }
        let between = |peer: &Endpoint| match dir {
            Direction::Ingress => (*peer, me),
            Direction::Egress => (me, *peer),
        };
        for (pi, _) in input
            .workloads
            .iter()
            .enumerate()
            .filter(|(pi, _)| *pi != wi)
        {
            let peer = Endpoint::Workload(pi);
            let (s, t) = between(&peer);
            let v = engine.direction(dir, &s, &t);
            let (want, why) = declared.get(&pi).cloned().unwrap_or_default();
            let extra = v.conn.subtract(&want);
            if !extra.is_empty() {
                out.push(extra_finding(engine, &s, &t, &extra, &v));
            }
            let missing = want.subtract(&v.conn);
            if !missing.is_empty() {
                out.push(missing_finding(
                    engine,
                    &s,
                    &t,
                    &missing,
                    dir,
                    &why.join(", "),
                ));
            }
        }
        out.extend(external(engine, me, dir, d));
    }
    out
}

/// Edges with addresses outside the cluster: extra ones by range, and declared CIDRs.
fn external(engine: &Engine, me: Endpoint, dir: Direction, d: &Declared) -> Vec<Finding> {
    let declared: Vec<(IpRange, ConnSet)> = if dir == Direction::Egress {
        d.egress
            .iter()
            .filter_map(|e| {
                Some((
                    parse_cidr(e.cidr.as_deref()?).ok()?,
                    ConnSet::port(e.protocol, e.port),
                ))
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    let mut last: Option<(IpRange, ConnSet, Vec<String>)> = None;
    let flush = |l: Option<(IpRange, ConnSet, Vec<String>)>, out: &mut Vec<Finding>| {
        if let Some((r, extra, rules)) = l {
            let (s, t) = match dir {
                Direction::Ingress => (format!("{r}[External]"), engine.node_name(&me)),
                Direction::Egress => (engine.node_name(&me), format!("{r}[External]")),
            };
            out.push(extra_message(&s, &t, &extra, &rules));
        }
    };
    for atom in engine.atoms() {
        let peer = Endpoint::External(atom);
        let (s, t) = match dir {
            Direction::Ingress => (peer, me),
            Direction::Egress => (me, peer),
        };
        let v = engine.direction(dir, &s, &t);
        let want = declared
            .iter()
            .filter(|(c, _)| c.contains(&atom))
            .fold(ConnSet::none(), |acc, (_, c)| acc.union(c));
        let extra = v.conn.subtract(&want);
        let rules: Vec<String> = v.rules.iter().map(ToString::to_string).collect();
        match &mut last {
            Some((r, e, ru))
                if !extra.is_empty()
                    && *e == extra
                    && *ru == rules
                    && r.family == atom.family
                    && r.hi.checked_add(1) == Some(atom.lo) =>
            {
                r.hi = atom.hi
            }
            _ => {
                flush(last.take(), &mut out);
                if !extra.is_empty() {
                    last = Some((atom, extra, rules));
                }
            }
        }
    }
    flush(last, &mut out);
    for (cidr, want) in &declared {
        let peer = Endpoint::External(*cidr);
        let v = engine.direction(dir, &me, &peer);
        let missing = want.subtract(&v.conn);
        if !missing.is_empty() {
            out.push(missing_finding(
                engine,
                &me,
                &peer,
                &missing,
                dir,
                "network.egress: cidr",
            ));
        }
    }
    out
}

fn extra_finding(
    engine: &Engine,
    s: &Endpoint,
    t: &Endpoint,
    extra: &ConnSet,
    v: &super::eval::DirectionVerdict,
) -> Finding {
    let rules: Vec<String> = v
        .rules
        .iter()
        .filter(|r| !r.conn.intersect(extra).is_empty())
        .map(ToString::to_string)
        .collect();
    extra_message(&engine.node_name(s), &engine.node_name(t), extra, &rules)
}

fn extra_message(s: &str, t: &str, extra: &ConnSet, rules: &[String]) -> Finding {
    Finding::new(
        EXTRA,
        Severity::High,
        format!(
            "`{s} => {t} : {extra}` is allowed but pake.yaml does not declare it{}; opened by {}",
            if s.contains("[Any]") || t.contains("[Any]") {
                " (`*` stands for any pod or namespace)"
            } else {
                ""
            },
            rules.join(" and ")
        ),
        "narrow that rule's peers and ports to what the app needs, or declare the connection in pake.yaml `network`",
    )
}

fn missing_finding(
    engine: &Engine,
    s: &Endpoint,
    t: &Endpoint,
    missing: &ConnSet,
    dir: Direction,
    why: &str,
) -> Finding {
    Finding::new(
        MISSING,
        Severity::Medium,
        format!(
            "pake.yaml declares `{} => {} : {missing}` ({why}) but the {} policies do not allow it",
            engine.node_name(s),
            engine.node_name(t),
            dir.as_str()
        ),
        format!(
            "apply the rendered network policies (`pake deploy`), or see `pake netpol explain {} {}` for the rule that would open it",
            engine.node_name(s),
            engine.node_name(t)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn declared() -> Declared {
        Declared {
            namespace: "p".into(),
            app: "backend".into(),
            port: 8000,
            allow_from: vec!["frontend".into()],
            allow_dns: true,
            ingress_controller: false,
            egress: vec![],
        }
    }

    fn rendered(extra: &[Value]) -> Vec<Value> {
        let cfg = crate::config::parse(
            "app: backend\nimage: b\nnetwork:\n  allowFrom: [frontend]\n  allowDns: true\nenvironments:\n  dev:\n    namespace: p\n",
            std::path::Path::new("pake.yaml"),
        )
        .unwrap();
        let p = crate::config::Project {
            path: "pake.yaml".into(),
            config: cfg,
        };
        let r = p.resolve(Some("dev")).unwrap();
        let names: Vec<String> = ["network-policies.yaml", "deployment.yaml"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut v: Vec<Value> = crate::render::render_templates(&r, &names)
            .unwrap()
            .into_iter()
            .map(|m| m.object)
            .collect();
        v.extend(extra.iter().cloned());
        v
    }

    fn ids(f: &[(usize, Finding)]) -> Vec<String> {
        f.iter()
            .map(|(_, f)| format!("{} {}", f.id, f.message))
            .collect()
    }

    #[test]
    fn the_rendered_templates_are_exactly_what_is_declared() {
        let f = check(&rendered(&[]), &declared()).unwrap();
        assert!(f.is_empty(), "{:#?}", ids(&f));
    }

    #[test]
    fn an_allow_that_opens_more_is_an_extra_edge_naming_the_rule() {
        let wide = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "too-wide", "namespace": "p"},
            "spec": {"podSelector": {"matchLabels": {"app": "backend"}}, "ingress": [{"from": [{"namespaceSelector": {}}]}]}});
        let f = ids(&check(&rendered(&[wide]), &declared()).unwrap());
        assert!(
            f.iter().any(|m| m.starts_with(EXTRA)
                && m.contains("*/*[Any] => p/backend-v1[Deployment] : All Connections")
                && m.contains("NetworkPolicy p/too-wide ingress[0]")),
            "{f:#?}"
        );
        // frontend already had TCP 8000; the rest of its ports is extra too.
        assert!(f.iter().any(|m| m.contains("p/frontend[Peer] => p/backend-v1[Deployment] : TCP 1-7999,8001-65535,UDP 1-65535,SCTP 1-65535` is allowed but pake.yaml does not declare it; opened by NetworkPolicy p/too-wide ingress[0] (All Connections)")), "{f:#?}");
    }

    #[test]
    fn missing_isolation_and_missing_declared_edges_are_findings() {
        let objs: Vec<Value> = rendered(&[])
            .into_iter()
            .filter(|o| o["kind"] == "Deployment")
            .collect();
        let f = ids(&check(&objs, &declared()).unwrap());
        assert_eq!(
            f.iter().filter(|m| m.starts_with(ISOLATION)).count(),
            2,
            "{f:#?}"
        );
        let mut d = declared();
        d.ingress_controller = true;
        d.egress.push(DeclaredEgress {
            app: None,
            cidr: Some("192.0.2.0/24".into()),
            protocol: Protocol::Tcp,
            port: 5432,
        });
        let f = ids(&check(&rendered(&[]), &d).unwrap());
        assert!(f.iter().any(|m| m.starts_with(MISSING) && m.contains("ingress-nginx/ingress-nginx-controller[Peer] => p/backend-v1[Deployment] : TCP 8000")), "{f:#?}");
        assert!(
            f.iter().any(|m| m.starts_with(MISSING)
                && m.contains("192.0.2.0-192.0.2.255[External] : TCP 5432")),
            "{f:#?}"
        );
    }

    #[test]
    fn a_declared_cidr_egress_is_not_extra() {
        let cfg = "app: backend\nimage: b\nnetwork:\n  allowFrom: [frontend]\n  egress:\n    - cidr: 192.0.2.0/24\n      port: 5432\nenvironments:\n  dev:\n    namespace: p\n";
        let p = crate::config::Project {
            path: "pake.yaml".into(),
            config: crate::config::parse(cfg, std::path::Path::new("pake.yaml")).unwrap(),
        };
        let r = p.resolve(Some("dev")).unwrap();
        let names: Vec<String> = ["network-policies.yaml", "deployment.yaml"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let objs: Vec<Value> = crate::render::render_templates(&r, &names)
            .unwrap()
            .into_iter()
            .map(|m| m.object)
            .collect();
        let f = check(&objs, &Declared::from_resolved(&r)).unwrap();
        assert!(f.is_empty(), "{:#?}", ids(&f));
    }
}
