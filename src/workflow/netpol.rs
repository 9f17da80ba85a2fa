//! Where `pake netpol`, `pake diff` and `pake verify` get the objects the
//! NetworkPolicy evaluator (`checks::netpol`, pure) works on: manifest files,
//! the rendered templates of an environment, or a live namespace.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::checks::netpol::{self, Edge, EdgeChange, zero_trust::Declared};
use crate::error::{Error, ExitCode, Result};
use crate::kube::Cluster;
use crate::kube::list::list_json;
use crate::workflow::definition::Plan;

/// Largest manifest file read (a guard against a wrong path such as a disk image).
const MAX_FILE: u64 = 64 << 20;

/// Kinds read from a live namespace: policies and every workload kind.
const LIVE_KINDS: &[(&str, &str)] = &[
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "ReplicaSet"),
    ("v1", "ReplicationController"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("v1", "Pod"),
];

/// Objects from YAML files and directories (recursively, `.yaml`/`.yml`).
pub fn read_files(paths: &[PathBuf]) -> Result<Vec<Value>> {
    let mut files = Vec::new();
    for p in paths {
        collect(p, true, &mut files)?;
    }
    files.sort();
    files.dedup();
    let mut out = Vec::new();
    for f in &files {
        read_file(f, &mut out)?;
    }
    Ok(out)
}

fn collect(p: &Path, explicit: bool, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(p).map_err(|e| {
        Error::usage(format!("cannot read {}: {e}", p.display()))
            .fix("pass existing files or directories of Kubernetes manifests")
    })?;
    if meta.is_dir() {
        for e in walkdir::WalkDir::new(p).sort_by_file_name().min_depth(1) {
            let e = e.map_err(|e| Error::usage(format!("cannot list {}: {e}", p.display())))?;
            let name = e.file_name().to_string_lossy();
            if e.file_type().is_file() && (name.ends_with(".yaml") || name.ends_with(".yml")) {
                out.push(e.into_path());
            }
        }
    } else if !meta.is_file() {
        return Err(
            Error::usage(format!("{} is not a regular file", p.display()))
                .fix("pass manifest files or directories (not a FIFO or a device)"),
        );
    } else if explicit {
        out.push(p.to_path_buf());
    }
    Ok(())
}

fn read_file(f: &Path, out: &mut Vec<Value>) -> Result<()> {
    let size = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
    if size > MAX_FILE {
        return Err(Error::usage(format!(
            "{} is {size} bytes, more than the 64 MiB pake reads",
            f.display()
        ))
        .fix("pass the manifests themselves"));
    }
    let text = std::fs::read_to_string(f).map_err(|e| {
        Error::usage(format!("cannot read {}: {e}", f.display()))
            .fix("check the path and its permissions")
    })?;
    for (index, (start, doc)) in crate::checks::audit::split_documents(&text)
        .into_iter()
        .enumerate()
    {
        let opts = serde_saphyr::options! { with_snippet: false };
        let v: Value = serde_saphyr::from_str_with_options(&doc, opts).map_err(|e| {
            let line = e
                .location()
                .map(|l| start + l.line() as usize - 1)
                .unwrap_or(start);
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            Error::usage(format!(
                "{}: document {index}, line {line}: invalid YAML: {msg}",
                f.display()
            ))
            .fix(if doc.contains("{{") || doc.contains("{%") {
                "this looks like a template: use `pake netpol --env ENV` for the rendered manifests"
            } else {
                "fix the YAML at that line"
            })
        })?;
        if v.is_object() {
            out.push(v);
        }
    }
    Ok(())
}

/// The rendered objects of a plan (Secrets left out: they carry no connectivity).
pub fn rendered(plan: &Plan) -> Vec<Value> {
    plan.manifests()
        .filter(|m| m.kind() != "Secret")
        .map(|m| m.object.clone())
        .collect()
}

/// The live namespace: the Namespace, its NetworkPolicies and workloads.
/// Kinds the identity may not list (the deployer role has no Jobs, CronJobs or
/// ReplicationControllers) are left out: their Pods stand in for them.
pub async fn live(cluster: &Cluster, namespace: &str) -> Result<Vec<Value>> {
    let ns = crate::kube::apply::get(
        cluster,
        &serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
    )
    .await?
    .ok_or_else(|| {
        Error::failed(format!("namespace {namespace} does not exist")).fix("deploy first, or pass -n NAMESPACE")
    })?;
    let lists = futures::future::join_all(
        LIVE_KINDS
            .iter()
            .map(|(av, kind)| list_json(cluster, av, kind, namespace)),
    )
    .await;
    let mut out = vec![ns];
    for ((_, kind), r) in LIVE_KINDS.iter().zip(lists) {
        match r {
            Ok(items) => out.extend(items),
            Err(e)
                if e.kind == ExitCode::Cluster
                    && e.message.contains("permission denied")
                    && *kind != "NetworkPolicy" =>
            {
                tracing::info!(
                    "cannot list {kind} in {namespace} (permission denied): their pods stand in for them"
                );
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The graph of objects, as a usage error (exit 2) when an object is invalid.
pub fn graph(objects: &[Value], declared: Option<&Declared>) -> Result<(Vec<String>, Vec<Edge>)> {
    netpol::graph_of(objects, declared).map_err(|e| {
        Error::usage(format!("{}: {}", e.object, e.message))
            .on(e.object.clone())
            .fix("fix the object (the API server would refuse it too)")
    })
}

/// Connectivity before and after a plan is applied to the live namespace.
pub async fn diff(
    cluster: &Cluster,
    namespace: &str,
    plan: &Plan,
    declared: &Declared,
) -> Result<Vec<EdgeChange>> {
    let before = match live(cluster, namespace).await {
        Ok(v) => v,
        // A namespace the deploy will create: nothing is connected yet.
        Err(e) if e.kind == ExitCode::Failed && e.message.contains("does not exist") => Vec::new(),
        Err(e) => return Err(e),
    };
    let after = overlay(&before, &rendered(plan));
    let (_, b) = graph(&before, Some(declared))?;
    let (_, a) = graph(&after, Some(declared))?;
    Ok(netpol::diff(&b, &a))
}

/// `base` with each object of `top` replacing the one of the same kind,
/// namespace and name (or added).
pub fn overlay(base: &[Value], top: &[Value]) -> Vec<Value> {
    let key = |o: &Value| {
        (
            o["kind"].as_str().unwrap_or("").to_string(),
            o["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            o["metadata"]["name"].as_str().unwrap_or("").to_string(),
        )
    };
    let mut out: Vec<Value> = base.to_vec();
    for t in top {
        match out.iter_mut().find(|b| key(b) == key(t)) {
            Some(b) => *b = t.clone(),
            None => out.push(t.clone()),
        }
    }
    out
}

/// Write the graph: the dot text itself for `.dot`, else rendered by
/// graphviz' `dot -T<extension>`.
pub fn draw(dot: &str, path: &Path) -> Result<()> {
    use std::io::Write;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let write_err = |e: std::io::Error| {
        Error::usage(format!("cannot write {}: {e}", path.display()))
            .fix("check the directory exists and is writable")
    };
    if ext == "dot" || ext == "gv" {
        return std::fs::write(path, dot).map_err(write_err);
    }
    if !matches!(ext.as_str(), "svg" | "png" | "pdf") {
        return Err(Error::usage(format!(
            "--graph {}: unknown picture format `{ext}`",
            path.display()
        ))
        .fix("use a .svg, .png, .pdf or .dot file name"));
    }
    let mut child = std::process::Command::new("dot")
        .arg(format!("-T{ext}"))
        .arg("-o")
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::usage(format!(
                "cannot run graphviz `dot` to draw {}: {e}",
                path.display()
            ))
            .fix("install graphviz (Debian: `apt-get install graphviz`), or use --graph FILE.dot")
        })?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(dot.as_bytes())
        .map_err(|e| Error::failed(format!("graphviz `dot`: {e}")))?;
    let out = child
        .wait_with_output()
        .map_err(|e| Error::failed(format!("graphviz `dot`: {e}")))?;
    if !out.status.success() {
        return Err(Error::failed(format!(
            "graphviz `dot` failed drawing {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}
