//! The evaluator: Kubernetes NetworkPolicy semantics over an [`Input`].
//!
//! A pod is isolated for a direction once any policy of its namespace with
//! that policy type selects it; an isolated pod allows only the union of the
//! rules of those policies, a non-isolated one allows everything. A
//! connection needs the source's egress and the destination's ingress.
//! Workloads with the same namespace, labels and container ports behave the
//! same, so the work is done once per such group.

use std::collections::HashMap;

use serde::Serialize;

use super::conn::ConnSet;
use super::ip::{Family, IpRange, atoms};
use super::model::{ContainerPort, Input, Labels, Peer, Policy, PortRef, Rule};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// One edge of the graph, with node names as printed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Edge {
    pub src: String,
    pub dst: String,
    pub conn: ConnSet,
}

/// A graph node: a workload of the input, or addresses outside the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Workload(usize),
    External(IpRange),
}

struct Group<'a> {
    standin: bool,
    ns: &'a str,
    labels: &'a Labels,
    ports: &'a [ContainerPort],
    members: Vec<usize>,
}

/// A node during the group-level computation: a group or an address atom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum End {
    G(usize),
    A(usize),
}

/// An input prepared for evaluation (groups and indexes built once).
pub struct Engine<'a> {
    pub input: &'a Input,
    groups: Vec<Group<'a>>,
    group_of: Vec<usize>,
    ns_groups: HashMap<&'a str, Vec<usize>>,
    atoms: Vec<IpRange>,
    /// Per group: policies selecting it, for ingress and for egress.
    selecting: [Vec<Vec<usize>>; 2],
}

fn dir_index(d: Direction) -> usize {
    d as usize
}

fn rules(p: &Policy, d: Direction) -> Option<&Vec<Rule>> {
    match d {
        Direction::Ingress => p.ingress.as_ref(),
        Direction::Egress => p.egress.as_ref(),
    }
}

impl<'a> Engine<'a> {
    pub fn new(input: &'a Input) -> Self {
        let mut groups: Vec<Group<'a>> = Vec::new();
        let mut index: HashMap<(bool, &str, &Labels, &[ContainerPort]), usize> = HashMap::new();
        let mut group_of = Vec::with_capacity(input.workloads.len());
        for (i, w) in input.workloads.iter().enumerate() {
            let key = (
                w.standin,
                w.namespace.as_str(),
                &w.labels,
                w.ports.as_slice(),
            );
            let g = *index.entry(key).or_insert_with(|| {
                groups.push(Group {
                    standin: key.0,
                    ns: key.1,
                    labels: key.2,
                    ports: key.3,
                    members: Vec::new(),
                });
                groups.len() - 1
            });
            groups[g].members.push(i);
            group_of.push(g);
        }
        let mut ns_groups: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, g) in groups.iter().enumerate() {
            ns_groups.entry(g.ns).or_default().push(i);
        }
        let mut selecting = [
            vec![Vec::new(); groups.len()],
            vec![Vec::new(); groups.len()],
        ];
        for (pi, p) in input.policies.iter().enumerate() {
            for g in ns_groups.get(p.namespace.as_str()).into_iter().flatten() {
                if !groups[*g].standin && p.selector.matches(groups[*g].labels) {
                    for d in [Direction::Ingress, Direction::Egress] {
                        if rules(p, d).is_some() {
                            selecting[dir_index(d)][*g].push(pi);
                        }
                    }
                }
            }
        }
        let blocks: Vec<IpRange> = input
            .policies
            .iter()
            .flat_map(|p| p.ingress.iter().chain(p.egress.iter()).flatten())
            .flat_map(|r| &r.peers)
            .flat_map(|peer| match peer {
                Peer::Ip { cidr, except } => std::iter::once(*cidr)
                    .chain(except.iter().copied())
                    .collect(),
                Peer::Pods { .. } => Vec::new(),
            })
            .collect();
        let mut families = vec![Family::V4];
        if blocks.iter().any(|b| b.family == Family::V6) {
            families.push(Family::V6);
        }
        Engine {
            atoms: atoms(&blocks, &families),
            input,
            groups,
            group_of,
            ns_groups,
            selecting,
        }
    }

    /// The address ranges between ipBlock boundaries (before merging).
    pub fn atoms(&self) -> Vec<IpRange> {
        self.atoms.clone()
    }

    /// Distinct (namespace, labels, ports) groups: the unit of work.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    pub fn node_name(&self, e: &Endpoint) -> String {
        match e {
            Endpoint::Workload(w) => self.input.workloads[*w].id(),
            Endpoint::External(r) => format!("{r}[External]"),
        }
    }

    /// Find a workload by `ns/name[Kind]`, `ns/name` or `name` (unique), or an IP address.
    pub fn find(&self, s: &str) -> Result<Endpoint, String> {
        if let Ok(ip) = s.parse::<std::net::IpAddr>() {
            let v = match ip {
                std::net::IpAddr::V4(a) => IpRange {
                    family: Family::V4,
                    lo: u128::from(u32::from(a)),
                    hi: u128::from(u32::from(a)),
                },
                std::net::IpAddr::V6(a) => IpRange {
                    family: Family::V6,
                    lo: u128::from(a),
                    hi: u128::from(a),
                },
            };
            return Ok(Endpoint::External(v));
        }
        let ws = &self.input.workloads;
        let by_name: Vec<usize> = (0..ws.len())
            .filter(|&i| {
                let w = &ws[i];
                s == w.id() || s == format!("{}/{}", w.namespace, w.name) || s == w.name
            })
            .collect();
        // Else by `app` label: `backend` finds `backend-v1`.
        let hits = if by_name.is_empty() {
            let (ns, app) = s.split_once('/').map_or((None, s), |(n, a)| (Some(n), a));
            (0..ws.len())
                .filter(|&i| {
                    ws[i].labels.get("app").map(String::as_str) == Some(app)
                        && ns.is_none_or(|n| n == ws[i].namespace)
                })
                .collect()
        } else {
            by_name
        };
        match hits.as_slice() {
            [one] => Ok(Endpoint::Workload(*one)),
            [] => Err(format!(
                "no workload `{s}` (use NAMESPACE/NAME[KIND] as `pake netpol` prints it, or an IP address)"
            )),
            many => Err(format!(
                "`{s}` is ambiguous: {}",
                many.iter()
                    .map(|i| ws[*i].id())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    fn namespace_labels(&self, ns: &str) -> Option<&Labels> {
        self.input.namespaces.get(ns)
    }

    /// Groups a peer selects, for a policy in `policy_ns`.
    fn peer_groups(&self, policy_ns: &str, peer: &Peer, out: &mut Vec<usize>) {
        let Peer::Pods { namespaces, pods } = peer else {
            return;
        };
        let mut take = |ns: &str| {
            for &g in self.ns_groups.get(ns).into_iter().flatten() {
                if pods
                    .as_ref()
                    .is_none_or(|s| s.matches(self.groups[g].labels))
                {
                    out.push(g);
                }
            }
        };
        match namespaces {
            None => take(policy_ns),
            Some(sel) => {
                for (ns, labels) in &self.input.namespaces {
                    if sel.matches(labels) {
                        take(ns);
                    }
                }
            }
        }
    }

    fn peer_matches_group(&self, policy_ns: &str, peer: &Peer, g: usize) -> bool {
        let grp = &self.groups[g];
        match peer {
            Peer::Ip { .. } => false,
            Peer::Pods { namespaces, pods } => {
                let ns_ok = match namespaces {
                    None => grp.ns == policy_ns,
                    Some(sel) => self
                        .namespace_labels(grp.ns)
                        .is_some_and(|l| sel.matches(l)),
                };
                ns_ok && pods.as_ref().is_none_or(|s| s.matches(grp.labels))
            }
        }
    }

    fn rule_targets(&self, p: &Policy, r: &Rule) -> (Vec<usize>, Vec<usize>) {
        if r.peers.is_empty() {
            return (
                (0..self.groups.len()).collect(),
                (0..self.atoms.len()).collect(),
            );
        }
        let mut gs = Vec::new();
        for peer in &r.peers {
            self.peer_groups(&p.namespace, peer, &mut gs);
        }
        gs.sort_unstable();
        gs.dedup();
        (gs, self.rule_atoms(r))
    }

    /// The atoms inside a rule's ipBlocks (minus excepts), found by binary search.
    fn rule_atoms(&self, r: &Rule) -> Vec<usize> {
        let mut out = Vec::new();
        for peer in &r.peers {
            if let Peer::Ip { cidr, except } = peer {
                let start = self
                    .atoms
                    .partition_point(|a| (a.family, a.lo) < (cidr.family, cidr.lo));
                for (i, a) in self.atoms.iter().enumerate().skip(start) {
                    if !cidr.contains(a) {
                        break;
                    }
                    if !except.iter().any(|e| e.contains(a)) {
                        out.push(i);
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Per group, what its egress allows, by peer (None: not isolated).
    fn egress_maps(&self) -> Vec<Option<HashMap<End, ConnSet>>> {
        let d = Direction::Egress;
        let mut cache: HashMap<(usize, usize), (Vec<usize>, Vec<usize>)> = HashMap::new();
        let mut out = Vec::with_capacity(self.groups.len());
        for g in 0..self.groups.len() {
            let sel = &self.selecting[dir_index(d)][g];
            if sel.is_empty() {
                out.push(None);
                continue;
            }
            let mut m: HashMap<End, ConnSet> = HashMap::new();
            for &pi in sel {
                let p = &self.input.policies[pi];
                for (ri, r) in rules(p, d).into_iter().flatten().enumerate() {
                    let (gs, atoms) = cache
                        .entry((pi, ri))
                        .or_insert_with(|| self.rule_targets(p, r));
                    for &peer in gs.iter() {
                        // Named ports resolve against the destination's containers.
                        let c = rule_conn(r, Some(self.groups[peer].ports));
                        if !c.is_empty() {
                            m.entry(End::G(peer)).or_default().add(&c);
                        }
                    }
                    let c = rule_conn(r, None);
                    if !c.is_empty() {
                        for &a in atoms.iter() {
                            m.entry(End::A(a)).or_default().add(&c);
                        }
                    }
                }
            }
            out.push(Some(m));
        }
        out
    }

    /// The atoms group `d`'s ingress may allow something from.
    fn ingress_atoms(&self, d: usize) -> Vec<usize> {
        let sel = &self.selecting[dir_index(Direction::Ingress)][d];
        let every = || (0..self.atoms.len()).collect::<Vec<_>>();
        if sel.is_empty() {
            return every();
        }
        let mut out = Vec::new();
        for &pi in sel {
            for r in self.input.policies[pi].ingress.iter().flatten() {
                if r.peers.is_empty() {
                    return every();
                }
                out.extend(self.rule_atoms(r));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// What group `d`'s ingress allows from `src`.
    fn ingress_conn(&self, d: usize, src: End) -> ConnSet {
        let sel = &self.selecting[dir_index(Direction::Ingress)][d];
        if sel.is_empty() {
            return ConnSet::all();
        }
        let mut c = ConnSet::none();
        for &pi in sel {
            let p = &self.input.policies[pi];
            for r in p.ingress.iter().flatten() {
                let peer_ok = r.peers.is_empty()
                    || match src {
                        End::G(s) => r
                            .peers
                            .iter()
                            .any(|pe| self.peer_matches_group(&p.namespace, pe, s)),
                        End::A(a) => rule_matches_range(r, &self.atoms[a]),
                    };
                if peer_ok {
                    c.add(&rule_conn(r, Some(self.groups[d].ports)));
                    if c.is_all() {
                        return c;
                    }
                }
            }
        }
        c
    }

    /// The whole graph: every allowed connection between workloads and with
    /// external address ranges, sorted by source then destination.
    pub fn graph(&self) -> Vec<Edge> {
        let egress = self.egress_maps();
        let all = ConnSet::all();
        let mut edges: Vec<(End, End, ConnSet)> = Vec::new();
        for (s, eg) in egress.iter().enumerate() {
            let mut push = |dst: End, e: &ConnSet| {
                let c = match dst {
                    End::G(d) => e.intersect(&self.ingress_conn(d, End::G(s))),
                    End::A(_) => e.clone(),
                };
                if !c.is_empty() {
                    edges.push((End::G(s), dst, c));
                }
            };
            match eg {
                Some(m) => m.iter().for_each(|(dst, e)| push(*dst, e)),
                None => {
                    (0..self.groups.len()).for_each(|d| push(End::G(d), &all));
                    (0..self.atoms.len()).for_each(|a| push(End::A(a), &all));
                }
            }
        }
        drop(egress);
        for d in 0..self.groups.len() {
            for a in self.ingress_atoms(d) {
                let c = self.ingress_conn(d, End::A(a));
                if !c.is_empty() {
                    edges.push((End::A(a), End::G(d), c));
                }
            }
        }
        let merged = self.merge_atoms(&edges);
        let mut out = Vec::new();
        let mut seen_atom_edges = std::collections::HashSet::new();
        for (s, d, c) in edges {
            match (s, d) {
                (End::G(s), End::G(d)) => {
                    for &ws in &self.groups[s].members {
                        for &wd in &self.groups[d].members {
                            if ws != wd {
                                out.push(self.edge(
                                    Endpoint::Workload(ws),
                                    Endpoint::Workload(wd),
                                    &c,
                                ));
                            }
                        }
                    }
                }
                (End::G(g), End::A(a)) | (End::A(a), End::G(g)) => {
                    let range = merged[a];
                    let outward = matches!(s, End::G(_));
                    if !seen_atom_edges.insert((g, range, outward)) {
                        continue;
                    }
                    for &w in &self.groups[g].members {
                        let (x, y) = (Endpoint::Workload(w), Endpoint::External(range));
                        out.push(if outward {
                            self.edge(x, y, &c)
                        } else {
                            self.edge(y, x, &c)
                        });
                    }
                }
                (End::A(_), End::A(_)) => {}
            }
        }
        out.sort();
        out
    }

    fn edge(&self, s: Endpoint, d: Endpoint, c: &ConnSet) -> Edge {
        Edge {
            src: self.node_name(&s),
            dst: self.node_name(&d),
            conn: c.clone(),
        }
    }

    /// Join adjacent atoms on which no group's connectivity differs; returns
    /// each atom's merged range.
    fn merge_atoms(&self, edges: &[(End, End, ConnSet)]) -> Vec<IpRange> {
        let mut sig: Vec<Vec<(bool, usize, &ConnSet)>> = vec![Vec::new(); self.atoms.len()];
        for (s, d, c) in edges {
            match (s, d) {
                (End::G(g), End::A(a)) => sig[*a].push((true, *g, c)),
                (End::A(a), End::G(g)) => sig[*a].push((false, *g, c)),
                _ => {}
            }
        }
        sig.iter_mut().for_each(|s| s.sort());
        let mut out = self.atoms.clone();
        let mut start = 0;
        for a in 1..=self.atoms.len() {
            let joins = a < self.atoms.len()
                && self.atoms[a].family == self.atoms[start].family
                && sig[a] == sig[start];
            if !joins {
                let range = IpRange {
                    family: self.atoms[start].family,
                    lo: self.atoms[start].lo,
                    hi: self.atoms[a - 1].hi,
                };
                out[start..a].iter_mut().for_each(|r| *r = range);
                start = a;
            }
        }
        out
    }

    /// One direction of one connection, with the rules that allow it.
    pub fn direction(&self, d: Direction, src: &Endpoint, dst: &Endpoint) -> DirectionVerdict {
        // The pod whose policies decide this direction, and its peer.
        let (own, peer) = match d {
            Direction::Egress => (src, dst),
            Direction::Ingress => (dst, src),
        };
        let Endpoint::Workload(w) = own else {
            return DirectionVerdict {
                isolated: false,
                policies: Vec::new(),
                rules: Vec::new(),
                conn: ConnSet::all(),
            };
        };
        let g = self.group_of[*w];
        let dst_ports = match dst {
            Endpoint::Workload(x) => Some(self.input.workloads[*x].ports.as_slice()),
            Endpoint::External(_) => None,
        };
        let sel = &self.selecting[dir_index(d)][g];
        let mut v = DirectionVerdict {
            isolated: !sel.is_empty(),
            policies: sel.iter().map(|&p| self.input.policies[p].id()).collect(),
            rules: Vec::new(),
            conn: if sel.is_empty() {
                ConnSet::all()
            } else {
                ConnSet::none()
            },
        };
        for &pi in sel {
            let p = &self.input.policies[pi];
            for (ri, r) in rules(p, d).into_iter().flatten().enumerate() {
                let peer_ok = r.peers.is_empty()
                    || match peer {
                        Endpoint::Workload(x) => r
                            .peers
                            .iter()
                            .any(|pe| self.peer_matches_group(&p.namespace, pe, self.group_of[*x])),
                        Endpoint::External(range) => rule_matches_range(r, range),
                    };
                if !peer_ok {
                    continue;
                }
                let c = rule_conn(r, dst_ports);
                if !c.is_empty() {
                    v.conn.add(&c);
                    v.rules.push(RuleRef {
                        policy: p.id(),
                        direction: d,
                        index: ri,
                        conn: c,
                    });
                }
            }
        }
        v
    }

    /// Both directions of src -> dst and the connection they allow together.
    pub fn explain(&self, src: &Endpoint, dst: &Endpoint) -> Verdict {
        let egress = self.direction(Direction::Egress, src, dst);
        let ingress = self.direction(Direction::Ingress, src, dst);
        let same = src == dst;
        Verdict {
            src: self.node_name(src),
            dst: self.node_name(dst),
            conn: if same {
                ConnSet::all()
            } else {
                egress.conn.intersect(&ingress.conn)
            },
            egress,
            ingress,
        }
    }

    /// Whether a workload is isolated for a direction, and by which policies.
    pub fn isolating_policies(&self, w: usize, d: Direction) -> Vec<String> {
        self.selecting[dir_index(d)][self.group_of[w]]
            .iter()
            .map(|&p| self.input.policies[p].id())
            .collect()
    }
}

/// A rule of a policy (index into its `ingress` or `egress` list, from 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    pub policy: String,
    pub direction: Direction,
    pub index: usize,
    pub conn: ConnSet,
}

impl std::fmt::Display for RuleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NetworkPolicy {} {}[{}] ({})",
            self.policy,
            self.direction.as_str(),
            self.index,
            self.conn
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectionVerdict {
    /// Some policy selects the pod for this direction.
    pub isolated: bool,
    pub policies: Vec<String>,
    pub rules: Vec<RuleRef>,
    pub conn: ConnSet,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub src: String,
    pub dst: String,
    pub conn: ConnSet,
    pub egress: DirectionVerdict,
    pub ingress: DirectionVerdict,
}

/// The rule's peers include the whole range (atoms never straddle a block).
fn rule_matches_range(r: &Rule, range: &IpRange) -> bool {
    r.peers.is_empty()
        || r.peers.iter().any(|p| match p {
            Peer::Ip { cidr, except } => {
                cidr.contains(range)
                    && !except.iter().any(|e| {
                        e.contains(range)
                            || (e.family == range.family && e.lo <= range.hi && range.lo <= e.hi)
                    })
            }
            Peer::Pods { .. } => false,
        })
}

/// The ports a rule allows to a destination with these container ports
/// (None: outside the cluster, where named ports match nothing).
fn rule_conn(r: &Rule, dst_ports: Option<&[ContainerPort]>) -> ConnSet {
    if r.ports.is_empty() {
        return ConnSet::all();
    }
    let mut c = ConnSet::none();
    for spec in &r.ports {
        match &spec.port {
            PortRef::All => c.add(&ConnSet::protocol(spec.protocol)),
            PortRef::Range(lo, hi) => c.add(&ConnSet::ports(
                spec.protocol,
                super::conn::Ranges::range(*lo, *hi),
            )),
            PortRef::Named(name) => {
                for cp in dst_ports.into_iter().flatten() {
                    if cp.name.as_deref() == Some(name.as_str()) && cp.protocol == spec.protocol {
                        c.add(&ConnSet::port(spec.protocol, cp.port));
                    }
                }
            }
        }
    }
    c
}

impl Engine<'_> {
    /// The NetworkPolicy that would open `dir` of src -> dst on `port` (all
    /// ports when None): the guide's "Solution: add explicit allow rule".
    pub fn allow_snippet(
        &self,
        dir: Direction,
        src: &Endpoint,
        dst: &Endpoint,
        port: Option<(super::conn::Protocol, u16)>,
    ) -> Option<serde_json::Value> {
        use serde_json::json;
        let (own, peer) = match dir {
            Direction::Egress => (src, dst),
            Direction::Ingress => (dst, src),
        };
        let Endpoint::Workload(w) = own else {
            return None;
        };
        let w = &self.input.workloads[*w];
        let peer_json = match peer {
            Endpoint::Workload(p) => {
                let p = &self.input.workloads[*p];
                let mut v = json!({"podSelector": {"matchLabels": selector_labels(&p.labels)}});
                if p.namespace != w.namespace {
                    v["namespaceSelector"] =
                        json!({"matchLabels": {super::model::NAMESPACE_NAME_LABEL: p.namespace}});
                }
                v
            }
            Endpoint::External(r) => {
                json!({"ipBlock": {"cidr": r.as_cidr().unwrap_or_else(|| format!("{r}"))}})
            }
        };
        let short = |e: &Endpoint| match e {
            Endpoint::Workload(x) => self.input.workloads[*x].name.clone(),
            Endpoint::External(_) => "external".to_string(),
        };
        let (field, peers, ty) = match dir {
            Direction::Egress => ("egress", "to", "Egress"),
            Direction::Ingress => ("ingress", "from", "Ingress"),
        };
        let mut rule = json!({peers: [peer_json]});
        if let Some((proto, n)) = port {
            rule["ports"] = json!([{"protocol": proto.as_str(), "port": n}]);
        }
        Some(json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": format!("allow-{}-to-{}", short(src), short(dst)), "namespace": w.namespace},
            "spec": {
                "podSelector": {"matchLabels": selector_labels(&w.labels)},
                "policyTypes": [ty],
                field: [rule],
            }
        }))
    }
}

/// The labels to select a workload by: `app` when it has one, else all.
fn selector_labels(l: &Labels) -> Labels {
    match l.get("app") {
        Some(a) => Labels::from([("app".to_string(), a.clone())]),
        None => l.clone(),
    }
}
