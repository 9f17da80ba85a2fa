//! Printing a connectivity graph: one line per edge (`src => dst : conn`,
//! the format of network-policy analyzers), JSON, Graphviz dot, mermaid and
//! CSV. Pure: strings in, string out.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::checks::netpol::Edge;

/// `src => dst : conn`, one line per edge, sorted.
pub fn text(edges: &[Edge]) -> String {
    edges
        .iter()
        .map(|e| format!("{} => {} : {}\n", e.src, e.dst, e.conn))
        .collect()
}

/// A list of `{"src", "dst", "conn"}` with the same strings as the text.
pub fn json(edges: &[Edge]) -> String {
    serde_json::to_string_pretty(edges).expect("edges serialize")
}

/// `src,dst,conn` with RFC 4180 quoting (connection strings contain commas).
pub fn csv(edges: &[Edge]) -> String {
    let q = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = String::from("src,dst,conn\n");
    for e in edges {
        let _ = writeln!(
            out,
            "{},{},{}",
            q(&e.src),
            q(&e.dst),
            q(&e.conn.to_string())
        );
    }
    out
}

/// The namespace of a node name (`ns/name[Kind]`), or None for external ranges.
fn namespace(node: &str) -> Option<&str> {
    if node.ends_with("[External]") {
        None
    } else {
        node.split_once('/').map(|(ns, _)| ns)
    }
}

/// Node names in order, each with a stable short id.
fn node_ids<'a>(nodes: &'a [String], edges: &'a [Edge]) -> BTreeMap<&'a str, usize> {
    let mut all: Vec<&str> = nodes.iter().map(String::as_str).collect();
    all.extend(edges.iter().flat_map(|e| [e.src.as_str(), e.dst.as_str()]));
    all.sort_unstable();
    all.dedup();
    all.into_iter().enumerate().map(|(i, n)| (n, i)).collect()
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Graphviz: one cluster per namespace, external ranges as boxes.
pub fn dot(nodes: &[String], edges: &[Edge]) -> String {
    let ids = node_ids(nodes, edges);
    let mut by_ns: BTreeMap<Option<&str>, Vec<(&str, usize)>> = BTreeMap::new();
    for (n, i) in &ids {
        by_ns.entry(namespace(n)).or_default().push((n, *i));
    }
    let mut out = String::from(
        "digraph netpol {\n  rankdir=LR;\n  node [shape=ellipse, fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=9];\n",
    );
    for (k, (ns, members)) in by_ns.iter().enumerate() {
        match ns {
            Some(ns) => {
                let _ = writeln!(
                    out,
                    "  subgraph cluster_{k} {{\n    label=\"{}\";\n    style=dashed;",
                    dot_escape(ns)
                );
                for (n, i) in members {
                    let label = n.split_once('/').map_or(*n, |(_, r)| r);
                    let _ = writeln!(out, "    n{i} [label=\"{}\"];", dot_escape(label));
                }
                out.push_str("  }\n");
            }
            None => {
                for (n, i) in members {
                    let _ = writeln!(
                        out,
                        "  n{i} [label=\"{}\", shape=box, style=dashed];",
                        dot_escape(n)
                    );
                }
            }
        }
    }
    for e in edges {
        let _ = writeln!(
            out,
            "  n{} -> n{} [label=\"{}\"];",
            ids[e.src.as_str()],
            ids[e.dst.as_str()],
            dot_escape(&e.conn.to_string())
        );
    }
    out.push_str("}\n");
    out
}

/// Markdown with a mermaid flowchart: one subgraph per namespace.
pub fn mermaid(nodes: &[String], edges: &[Edge]) -> String {
    let ids = node_ids(nodes, edges);
    let esc = |s: &str| s.replace('"', "#quot;");
    let mut by_ns: BTreeMap<Option<&str>, Vec<(&str, usize)>> = BTreeMap::new();
    for (n, i) in &ids {
        by_ns.entry(namespace(n)).or_default().push((n, *i));
    }
    let mut out = String::from("```mermaid\nflowchart LR\n");
    for (k, (ns, members)) in by_ns.iter().enumerate() {
        match ns {
            Some(ns) => {
                let _ = writeln!(out, "  subgraph ns{k}[\"{}\"]", esc(ns));
                for (n, i) in members {
                    let label = n.split_once('/').map_or(*n, |(_, r)| r);
                    let _ = writeln!(out, "    n{i}([\"{}\"])", esc(label));
                }
                out.push_str("  end\n");
            }
            None => {
                for (n, i) in members {
                    let _ = writeln!(out, "  n{i}[\"{}\"]", esc(n));
                }
            }
        }
    }
    for e in edges {
        let _ = writeln!(
            out,
            "  n{} -->|\"{}\"| n{}",
            ids[e.src.as_str()],
            esc(&e.conn.to_string()),
            ids[e.dst.as_str()]
        );
    }
    out.push_str("```\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::netpol::{ConnSet, Protocol};

    fn edges() -> Vec<Edge> {
        vec![
            Edge {
                src: "p/frontend[Deployment]".into(),
                dst: "p/backend[Deployment]".into(),
                conn: ConnSet::port(Protocol::Tcp, 8000),
            },
            Edge {
                src: "p/backend[Deployment]".into(),
                dst: "kube-system/kube-dns[Peer]".into(),
                conn: ConnSet::port(Protocol::Tcp, 53).union(&ConnSet::port(Protocol::Udp, 53)),
            },
            Edge {
                src: "p/backend[Deployment]".into(),
                dst: "0.0.0.0-255.255.255.255[External]".into(),
                conn: ConnSet::all(),
            },
        ]
    }

    #[test]
    fn text_json_csv() {
        let e = edges();
        assert_eq!(
            text(&e[..1]),
            "p/frontend[Deployment] => p/backend[Deployment] : TCP 8000\n"
        );
        let j: serde_json::Value = serde_json::from_str(&json(&e)).unwrap();
        assert_eq!(
            j[1],
            serde_json::json!({"src": "p/backend[Deployment]", "dst": "kube-system/kube-dns[Peer]", "conn": "TCP 53,UDP 53"})
        );
        assert_eq!(
            csv(&e[1..2]),
            "src,dst,conn\np/backend[Deployment],kube-system/kube-dns[Peer],\"TCP 53,UDP 53\"\n"
        );
    }

    #[test]
    fn dot_and_mermaid_group_by_namespace() {
        let e = edges();
        let d = dot(&["p/lonely[Job]".to_string()], &e);
        assert!(d.starts_with("digraph netpol {"));
        assert!(d.contains("label=\"kube-system\""));
        assert!(d.contains("[label=\"lonely[Job]\"]"));
        assert!(d.contains("shape=box"));
        assert_eq!(d.matches(" -> ").count(), 3);
        let m = mermaid(&[], &e);
        assert!(m.starts_with("```mermaid\nflowchart LR\n"));
        assert!(m.contains("-->|\"TCP 8000\"|"));
        assert!(m.trim_end().ends_with("```"));
    }
}
