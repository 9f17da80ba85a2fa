//! `pake netpol`: an exact, offline NetworkPolicy connectivity evaluator.
//!
//! Pure: objects in ([`Input::from_objects`]), the allowed connections out
//! ([`Engine::graph`], [`Engine::explain`]), and the zero-trust check that
//! compares them with what pake.yaml declares ([`zero_trust`]). Printing the
//! graph (text, json, dot, mermaid, csv) lives in `report::netpol`; reading
//! files or a live namespace lives in the command.

pub mod conn;
pub mod eval;
pub mod ip;
pub mod model;
pub mod zero_trust;

pub use conn::{ConnSet, Protocol, Ranges};
pub use eval::{Direction, Edge, Endpoint, Engine, Verdict};
pub use model::{Input, InputError, Workload};

/// Parse `8000`, `8000/TCP`, `53/udp`: a port and protocol (TCP by default).
pub fn parse_port(s: &str) -> Result<(Protocol, u16), String> {
    let (n, p) = s.split_once('/').unwrap_or((s, "TCP"));
    let port = n
        .parse::<u16>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{s}`: port must be 1-65535"))?;
    let proto = Protocol::parse(&p.to_ascii_uppercase())
        .ok_or_else(|| format!("`{s}`: protocol must be TCP, UDP or SCTP"))?;
    Ok((proto, port))
}

/// How one edge changes between two graphs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgeChange {
    pub src: String,
    pub dst: String,
    /// added | removed | changed
    pub change: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<ConnSet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<ConnSet>,
}

impl std::fmt::Display for EdgeChange {
    /// `+ a => b : TCP 8000`, `- ...`, `~ a => b : TCP 8000 -> All Connections`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.before, &self.after) {
            (None, Some(a)) => write!(f, "+ {} => {} : {a}", self.src, self.dst),
            (Some(b), None) => write!(f, "- {} => {} : {b}", self.src, self.dst),
            (Some(b), Some(a)) => write!(f, "~ {} => {} : {b} -> {a}", self.src, self.dst),
            (None, None) => Ok(()),
        }
    }
}

/// Edges added, removed or changed from `before` to `after` (both sorted).
pub fn diff(before: &[Edge], after: &[Edge]) -> Vec<EdgeChange> {
    use std::collections::BTreeMap;
    let key = |e: &Edge| (e.src.clone(), e.dst.clone());
    let b: BTreeMap<_, _> = before.iter().map(|e| (key(e), &e.conn)).collect();
    let a: BTreeMap<_, _> = after.iter().map(|e| (key(e), &e.conn)).collect();
    let mut keys: Vec<_> = b.keys().chain(a.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (x, y) = (b.get(&k).copied(), a.get(&k).copied());
            let change = match (x, y) {
                (None, Some(_)) => "added",
                (Some(_), None) => "removed",
                (Some(x), Some(y)) if x != y => "changed",
                _ => return None,
            };
            Some(EdgeChange {
                src: k.0,
                dst: k.1,
                change,
                before: x.cloned(),
                after: y.cloned(),
            })
        })
        .collect()
}

/// The graph of objects, with stand-ins for the peers pake.yaml declares
/// (when given): node names (every workload, even without edges) and edges.
pub fn graph_of(
    objects: &[serde_json::Value],
    declared: Option<&zero_trust::Declared>,
) -> Result<(Vec<String>, Vec<Edge>), InputError> {
    let mut input = Input::from_objects(objects)?;
    if let Some(d) = declared {
        input = zero_trust::with_standins(input, d, false);
    }
    let engine = Engine::new(&input);
    let nodes = input.workloads.iter().map(Workload::id).collect();
    // Stand-ins' own policies are unknown: keep only edges with a real workload.
    let real = |n: &str| !n.ends_with("[Peer]") && !n.ends_with("[External]");
    let edges = engine
        .graph()
        .into_iter()
        .filter(|e| real(&e.src) || real(&e.dst))
        .collect();
    Ok((nodes, edges))
}

#[cfg(test)]
mod tests;
