//! The evaluator's input, decoded from Kubernetes objects: namespaces with
//! labels, workloads (one pod template each) and NetworkPolicies.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::conn::Protocol;
use super::ip::{IpRange, parse_cidr};

pub type Labels = BTreeMap<String, String>;

/// The label every namespace carries (set by the API server).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Workload kinds and where their pod template is.
const WORKLOAD_KINDS: &[(&str, &[&str])] = &[
    ("Deployment", &["spec", "template"]),
    ("StatefulSet", &["spec", "template"]),
    ("DaemonSet", &["spec", "template"]),
    ("ReplicaSet", &["spec", "template"]),
    ("ReplicationController", &["spec", "template"]),
    ("Job", &["spec", "template"]),
    ("CronJob", &["spec", "jobTemplate", "spec", "template"]),
];

/// A bad object: which one, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{object}: {message}")]
pub struct InputError {
    pub object: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerPort {
    pub name: Option<String>,
    pub port: u16,
    pub protocol: Protocol,
}

/// Pods of one template: a workload, a bare Pod, or a synthesized peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub namespace: String,
    pub name: String,
    pub kind: String,
    pub labels: Labels,
    pub ports: Vec<ContainerPort>,
    /// A stand-in for a peer pake.yaml names but the input lacks: its own
    /// policies are unknown, so no policy applies to it (its side is open).
    pub standin: bool,
}

impl Workload {
    /// `namespace/name[Kind]`.
    pub fn id(&self) -> String {
        format!("{}/{}[{}]", self.namespace, self.name, self.kind)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
    pub values: BTreeSet<String>,
}

/// A label selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    pub match_labels: Labels,
    pub exprs: Vec<Requirement>,
}

impl Selector {
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.exprs.iter().all(|r| {
                let v = labels.get(&r.key);
                match r.op {
                    Op::In => v.is_some_and(|v| r.values.contains(v)),
                    Op::NotIn => v.is_none_or(|v| !r.values.contains(v)),
                    Op::Exists => v.is_some(),
                    Op::DoesNotExist => v.is_none(),
                }
            })
    }
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.exprs.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// `podSelector` and/or `namespaceSelector` (None: the field is absent).
    Pods {
        namespaces: Option<Selector>,
        pods: Option<Selector>,
    },
    /// `ipBlock`: addresses outside the cluster's pods.
    Ip { cidr: IpRange, except: Vec<IpRange> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortRef {
    /// No `port`: every port of the protocol.
    All,
    Range(u16, u16),
    Named(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub protocol: Protocol,
    pub port: PortRef,
}

/// One `ingress` or `egress` entry. Empty `peers` or `ports` means all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub peers: Vec<Peer>,
    pub ports: Vec<PortSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub namespace: String,
    pub name: String,
    pub selector: Selector,
    /// Some when the policy has the Ingress type (isolates selected pods for ingress).
    pub ingress: Option<Vec<Rule>>,
    pub egress: Option<Vec<Rule>>,
}

impl Policy {
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Everything the evaluator looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Input {
    pub namespaces: BTreeMap<String, Labels>,
    pub workloads: Vec<Workload>,
    pub policies: Vec<Policy>,
}

impl Input {
    /// Decode objects (also `kind: List`); other kinds are ignored.
    pub fn from_objects(objects: &[Value]) -> Result<Input, InputError> {
        let mut flat = Vec::new();
        for o in objects {
            flatten(o, &mut flat);
        }
        let present: BTreeSet<(String, &str, &str)> = flat
            .iter()
            .map(|o| {
                (
                    namespace_of(o),
                    str_at(o, &["kind"]),
                    str_at(o, &["metadata", "name"]),
                )
            })
            .collect();
        let mut input = Input::default();
        let mut seen = BTreeSet::new();
        for o in &flat {
            let kind = str_at(o, &["kind"]);
            match kind {
                "Namespace" => {
                    let name = str_at(o, &["metadata", "name"]).to_string();
                    let mut labels = labels_at(o, &["metadata", "labels"], &describe(o))?;
                    labels.insert(NAMESPACE_NAME_LABEL.into(), name.clone());
                    input.namespaces.insert(name, labels);
                }
                "NetworkPolicy" => input.policies.push(policy(o)?),
                _ => {
                    if let Some(w) = workload(o, &present)?
                        && seen.insert(w.id())
                    {
                        input.workloads.push(w);
                    }
                }
            }
        }
        input.complete_namespaces();
        Ok(input)
    }

    /// Every namespace a workload or policy is in exists, with its name label.
    pub fn complete_namespaces(&mut self) {
        let names: Vec<String> = self
            .workloads
            .iter()
            .map(|w| w.namespace.clone())
            .chain(self.policies.iter().map(|p| p.namespace.clone()))
            .collect();
        for n in names {
            self.add_namespace(&n);
        }
    }

    pub fn add_namespace(&mut self, name: &str) {
        self.namespaces.entry(name.to_string()).or_insert_with(|| {
            Labels::from([(NAMESPACE_NAME_LABEL.to_string(), name.to_string())])
        });
    }
}

fn flatten<'a>(o: &'a Value, out: &mut Vec<&'a Value>) {
    if o["kind"].as_str().is_some_and(|k| k.ends_with("List"))
        && let Some(items) = o["items"].as_array()
    {
        for i in items {
            flatten(i, out);
        }
    } else if o.is_object() {
        out.push(o);
    }
}

fn str_at<'a>(o: &'a Value, path: &[&str]) -> &'a str {
    at(o, path).and_then(Value::as_str).unwrap_or("")
}

fn at<'a>(o: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(o, |v, k| v.get(*k))
}

fn namespace_of(o: &Value) -> String {
    match str_at(o, &["metadata", "namespace"]) {
        "" => "default".into(),
        n => n.into(),
    }
}

fn describe(o: &Value) -> String {
    format!(
        "{} {}/{}",
        str_at(o, &["kind"]),
        namespace_of(o),
        str_at(o, &["metadata", "name"])
    )
}

fn err(o: &Value, message: impl Into<String>) -> InputError {
    InputError {
        object: describe(o),
        message: message.into(),
    }
}

fn labels_at(o: &Value, path: &[&str], who: &str) -> Result<Labels, InputError> {
    match at(o, path) {
        None | Some(Value::Null) => Ok(Labels::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(InputError {
                    object: who.into(),
                    message: format!("label `{k}` must be a string, not {other}"),
                }),
            })
            .collect(),
        Some(other) => Err(InputError {
            object: who.into(),
            message: format!("`{}` must be a map, not {other}", path.join(".")),
        }),
    }
}

/// A workload, or None when the object is not one (or belongs to an owner in the input).
fn workload(
    o: &Value,
    present: &BTreeSet<(String, &str, &str)>,
) -> Result<Option<Workload>, InputError> {
    let kind = str_at(o, &["kind"]);
    let ns = namespace_of(o);
    let (template, mut kind, mut name) = if kind == "Pod" {
        (
            o,
            "Pod".to_string(),
            str_at(o, &["metadata", "name"]).to_string(),
        )
    } else if let Some((_, path)) = WORKLOAD_KINDS.iter().find(|(k, _)| *k == kind) {
        match at(o, path) {
            Some(t) => (
                t,
                kind.to_string(),
                str_at(o, &["metadata", "name"]).to_string(),
            ),
            None => return Err(err(o, format!("no pod template at `{}`", path.join(".")))),
        }
    } else {
        return Ok(None);
    };
    let labels = labels_at(template, &["metadata", "labels"], &describe(o))?;
    // An owned object belongs to its owner: skip it when the owner is in the
    // input, otherwise stand in for it (a ReplicaSet's pod for its Deployment).
    if let Some(owner) = owner(o) {
        let (okind, oname) = (str_at(owner, &["kind"]), str_at(owner, &["name"]));
        if present.contains(&(ns.clone(), okind, oname)) {
            return Ok(None);
        }
        (kind, name) = (okind.to_string(), oname.to_string());
        if okind == "ReplicaSet"
            && let Some(hash) = labels.get("pod-template-hash")
            && let Some(d) = oname.strip_suffix(&format!("-{hash}"))
        {
            if present.contains(&(ns.clone(), "Deployment", d)) {
                return Ok(None);
            }
            (kind, name) = ("Deployment".into(), d.to_string());
        }
    }
    let ports = container_ports(o, template)?;
    Ok(Some(Workload {
        namespace: ns,
        name,
        kind,
        labels,
        ports,
        standin: false,
    }))
}

fn owner(o: &Value) -> Option<&Value> {
    let refs = o["metadata"]["ownerReferences"].as_array()?;
    refs.iter()
        .find(|r| r["controller"] == Value::Bool(true))
        .or_else(|| refs.first())
}

fn container_ports(o: &Value, template: &Value) -> Result<Vec<ContainerPort>, InputError> {
    let mut out = Vec::new();
    for list in ["containers", "initContainers"] {
        for c in template["spec"][list].as_array().into_iter().flatten() {
            for p in c["ports"].as_array().into_iter().flatten() {
                let port = p["containerPort"]
                    .as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        err(
                            o,
                            format!("containerPort must be 1-65535, not {}", p["containerPort"]),
                        )
                    })?;
                out.push(ContainerPort {
                    name: p["name"].as_str().map(str::to_string),
                    port,
                    protocol: protocol(o, &p["protocol"])?,
                });
            }
        }
    }
    Ok(out)
}

fn protocol(o: &Value, v: &Value) -> Result<Protocol, InputError> {
    match v {
        Value::Null => Ok(Protocol::Tcp),
        Value::String(s) => Protocol::parse(s)
            .ok_or_else(|| err(o, format!("protocol must be TCP, UDP or SCTP, not `{s}`"))),
        other => Err(err(o, format!("protocol must be a string, not {other}"))),
    }
}

fn policy(o: &Value) -> Result<Policy, InputError> {
    let spec = &o["spec"];
    let types: Vec<&str> = match &spec["policyTypes"] {
        Value::Null => Vec::new(),
        Value::Array(a) => a
            .iter()
            .map(|t| match t.as_str() {
                Some(s @ ("Ingress" | "Egress")) => Ok(s),
                _ => Err(err(
                    o,
                    format!("policyTypes entries must be Ingress or Egress, not {t}"),
                )),
            })
            .collect::<Result<_, _>>()?,
        other => return Err(err(o, format!("policyTypes must be a list, not {other}"))),
    };
    // The API server's default: Ingress always, Egress when there are egress rules.
    let (has_ingress, has_egress) = if types.is_empty() {
        let egress_rules = spec["egress"].as_array().is_some_and(|a| !a.is_empty());
        (true, egress_rules)
    } else {
        (types.contains(&"Ingress"), types.contains(&"Egress"))
    };
    let rules = |field: &str, peers: &str| -> Result<Vec<Rule>, InputError> {
        match &spec[field] {
            Value::Null => Ok(Vec::new()),
            Value::Array(a) => a.iter().map(|r| rule(o, r, peers)).collect(),
            other => Err(err(o, format!("spec.{field} must be a list, not {other}"))),
        }
    };
    Ok(Policy {
        namespace: namespace_of(o),
        name: str_at(o, &["metadata", "name"]).to_string(),
        selector: selector(o, &spec["podSelector"], "spec.podSelector")?.unwrap_or_default(),
        ingress: if has_ingress {
            Some(rules("ingress", "from")?)
        } else {
            None
        },
        egress: if has_egress {
            Some(rules("egress", "to")?)
        } else {
            None
        },
    })
}

fn rule(o: &Value, r: &Value, peers_field: &str) -> Result<Rule, InputError> {
    let peers = match &r[peers_field] {
        Value::Null => Vec::new(),
        Value::Array(a) => a.iter().map(|p| peer(o, p)).collect::<Result<_, _>>()?,
        other => {
            return Err(err(
                o,
                format!("`{peers_field}` must be a list, not {other}"),
            ));
        }
    };
    let ports = match &r["ports"] {
        Value::Null => Vec::new(),
        Value::Array(a) => a
            .iter()
            .map(|p| port_spec(o, p))
            .collect::<Result<_, _>>()?,
        other => return Err(err(o, format!("`ports` must be a list, not {other}"))),
    };
    Ok(Rule { peers, ports })
}

fn peer(o: &Value, p: &Value) -> Result<Peer, InputError> {
    if let Some(b) = p.get("ipBlock").filter(|b| !b.is_null()) {
        let parse = |v: &Value| -> Result<IpRange, InputError> {
            v.as_str()
                .ok_or_else(|| err(o, format!("ipBlock cidr must be a string, not {v}")))
                .and_then(|s| parse_cidr(s).map_err(|m| err(o, format!("ipBlock: {m}"))))
        };
        let cidr = parse(&b["cidr"])?;
        let except = b["except"]
            .as_array()
            .into_iter()
            .flatten()
            .map(parse)
            .collect::<Result<Vec<_>, _>>()?;
        if p.get("podSelector").is_some_and(|v| !v.is_null())
            || p.get("namespaceSelector").is_some_and(|v| !v.is_null())
        {
            return Err(err(
                o,
                "a peer with ipBlock may not also have podSelector or namespaceSelector",
            ));
        }
        return Ok(Peer::Ip { cidr, except });
    }
    let namespaces = selector(o, &p["namespaceSelector"], "namespaceSelector")?;
    let pods = selector(o, &p["podSelector"], "podSelector")?;
    if namespaces.is_none() && pods.is_none() {
        return Err(err(
            o,
            "a peer needs podSelector, namespaceSelector or ipBlock",
        ));
    }
    Ok(Peer::Pods { namespaces, pods })
}

fn port_spec(o: &Value, p: &Value) -> Result<PortSpec, InputError> {
    let protocol = protocol(o, &p["protocol"])?;
    let end = match &p["endPort"] {
        Value::Null => None,
        v => Some(
            v.as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| err(o, format!("endPort must be 1-65535, not {v}")))?,
        ),
    };
    let port = match &p["port"] {
        Value::Null => {
            if end.is_some() {
                return Err(err(o, "endPort needs port"));
            }
            PortRef::All
        }
        Value::String(s) => {
            if end.is_some() {
                return Err(err(
                    o,
                    format!("endPort cannot be used with the named port `{s}`"),
                ));
            }
            match s.parse::<u16>() {
                Ok(n) if n > 0 => PortRef::Range(n, n),
                _ => PortRef::Named(s.clone()),
            }
        }
        v => {
            let n = v
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| err(o, format!("port must be 1-65535 or a name, not {v}")))?;
            let hi = end.unwrap_or(n);
            if hi < n {
                return Err(err(o, format!("endPort {hi} is below port {n}")));
            }
            PortRef::Range(n, hi)
        }
    };
    Ok(PortSpec { protocol, port })
}

fn selector(o: &Value, v: &Value, field: &str) -> Result<Option<Selector>, InputError> {
    if v.is_null() {
        return Ok(None);
    }
    if !v.is_object() {
        return Err(err(o, format!("{field} must be a map, not {v}")));
    }
    let match_labels = labels_at(v, &["matchLabels"], &describe(o))?;
    let mut exprs = Vec::new();
    for e in v["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"]
            .as_str()
            .ok_or_else(|| err(o, format!("{field}.matchExpressions: key must be a string")))?
            .to_string();
        let values: BTreeSet<String> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                err(
                    o,
                    format!("{field}.matchExpressions `{key}`: values must be strings"),
                )
            })?;
        let op = match e["operator"].as_str() {
            Some("In") => Op::In,
            Some("NotIn") => Op::NotIn,
            Some("Exists") => Op::Exists,
            Some("DoesNotExist") => Op::DoesNotExist,
            other => {
                return Err(err(
                    o,
                    format!(
                        "{field}.matchExpressions `{key}`: operator must be In, NotIn, Exists or DoesNotExist, not {other:?}"
                    ),
                ));
            }
        };
        let needs_values = matches!(op, Op::In | Op::NotIn);
        if needs_values == values.is_empty() {
            return Err(err(
                o,
                format!(
                    "{field}.matchExpressions `{key}`: {op:?} {}",
                    if needs_values {
                        "needs values"
                    } else {
                        "takes no values"
                    }
                ),
            ));
        }
        exprs.push(Requirement { key, op, values });
    }
    Ok(Some(Selector {
        match_labels,
        exprs,
    }))
}
