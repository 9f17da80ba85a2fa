//! `pake netpol`: who can talk to whom, computed from the NetworkPolicies.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Global;
use crate::checks::netpol::{self, Direction, Endpoint, Engine, Input, zero_trust::Declared};
use crate::error::{Error, ExitCode, Result};
use crate::output::Format;
use crate::workflow::{netpol as load, release};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct NetpolArgs {
    #[command(subcommand)]
    pub command: Option<NetpolCommand>,
    #[command(flatten)]
    pub source: Source,
    /// Also draw the graph into FILE: .dot always; .svg, .png, .pdf with graphviz' `dot`.
    #[arg(long, value_name = "FILE")]
    pub graph: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum NetpolCommand {
    /// Why SRC can or cannot reach DST: the policies and rules on each side, and the rule that would open it.
    Explain(ExplainArgs),
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Source: NAMESPACE/NAME[KIND] as `pake netpol` prints it, NAMESPACE/NAME, NAME, or an IP address.
    pub src: String,
    /// Destination, in the same forms.
    pub dst: String,
    /// One port: 8000, 8000/TCP, 53/UDP (default: every port and protocol).
    #[arg(long, value_name = "PORT[/PROTO]")]
    pub port: Option<String>,
    #[command(flatten)]
    pub source: Source,
}

/// Where the objects come from.
#[derive(Debug, Clone, Args)]
pub struct Source {
    /// Manifest files or directories (default: the rendered templates of --env).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Read the live namespace (of --env, or -n) instead of manifests.
    #[arg(long)]
    pub live: bool,
    /// Do not add stand-ins for the peers pake.yaml declares (frontend, kube-dns, ingress controller).
    #[arg(long)]
    pub no_peers: bool,
}

pub async fn run(g: &Global, a: NetpolArgs) -> Result<ExitCode> {
    match a.command {
        Some(NetpolCommand::Explain(e)) => explain(g, e).await,
        None => graph(g, &a.source, a.graph.as_deref()).await,
    }
}

async fn graph(g: &Global, s: &Source, draw: Option<&std::path::Path>) -> Result<ExitCode> {
    let (objects, declared) = objects(g, s).await?;
    let (nodes, edges) = load::graph(&objects, declared.as_ref())?;
    let out = match g.output {
        Format::Text => crate::report::netpol::text(&edges),
        Format::Json => crate::report::netpol::json(&edges) + "\n",
        Format::Yaml => crate::output::to_yaml(
            &serde_json::from_str(&crate::report::netpol::json(&edges)).expect("edges are JSON"),
        ),
        Format::Dot => crate::report::netpol::dot(&nodes, &edges),
        Format::Md => crate::report::netpol::mermaid(&nodes, &edges),
        Format::Csv => crate::report::netpol::csv(&edges),
        Format::Sarif => {
            return Err(Error::usage("`pake netpol` does not support -o sarif")
                .fix("use -o text, json, dot, md or csv"));
        }
    };
    crate::output::out(out);
    if let Some(path) = draw {
        load::draw(&crate::report::netpol::dot(&nodes, &edges), path)?;
        crate::output::err_line(format!("graph written to {}", path.display()));
    }
    Ok(ExitCode::Ok)
}

/// The objects to evaluate and, with an environment, what pake.yaml declares.
async fn objects(g: &Global, s: &Source) -> Result<(Vec<serde_json::Value>, Option<Declared>)> {
    if !s.paths.is_empty() {
        if s.live {
            return Err(Error::usage("--live reads the cluster: it takes no PATH")
                .fix("drop the paths, or drop --live to evaluate the files"));
        }
        return Ok((load::read_files(&s.paths)?, None));
    }
    let has_project = g.config.is_some() || std::path::Path::new(crate::config::FILE_NAME).exists();
    let prepared = if g.env.is_some() || (has_project && !s.live) {
        Some(release::prepare(&super::deploy::selection(g), "deploy")?)
    } else {
        None
    };
    let declared = prepared
        .as_ref()
        .filter(|_| !s.no_peers)
        .map(|p| Declared::from_resolved(&p.resolved));
    if s.live {
        let ns = g
            .namespace
            .clone()
            .or_else(|| prepared.as_ref().map(|p| p.resolved.namespace.clone()))
            .ok_or_else(|| {
                Error::usage("--live needs a namespace").fix("pass --env ENV or -n NAMESPACE")
            })?;
        let cluster = g.target().connect().await?;
        return Ok((load::live(&cluster, &ns).await?, declared));
    }
    match prepared {
        Some(p) => Ok((load::rendered(&p.plan), declared)),
        None => Err(Error::usage("nothing to evaluate").fix(
            "pass manifest files or directories (`pake netpol k8s/`), an environment (`pake netpol --env dev`), or `--live -n NAMESPACE`",
        )),
    }
}

async fn explain(g: &Global, a: ExplainArgs) -> Result<ExitCode> {
    super::only_formats(g, &[Format::Text, Format::Json], "netpol explain")?;
    let port = a
        .port
        .as_deref()
        .map(netpol::parse_port)
        .transpose()
        .map_err(|m| {
            Error::usage(format!("--port {m}")).fix("use e.g. --port 8000/TCP or --port 53/UDP")
        })?;
    let (objects, declared) = objects(g, &a.source).await?;
    let mut input = Input::from_objects(&objects)
        .map_err(|e| Error::usage(e.to_string()).on(e.object.clone()))?;
    if let Some(d) = &declared {
        input = netpol::zero_trust::with_standins(input, d, false);
    }
    let engine = Engine::new(&input);
    let find = |s: &str| {
        engine
            .find(s)
            .map_err(|m| Error::usage(m).fix("list the workloads with `pake netpol`"))
    };
    let (src, dst) = (find(&a.src)?, find(&a.dst)?);
    let v = engine.explain(&src, &dst);
    let allowed = match port {
        Some((p, n)) => v.conn.allows(p, n),
        None => !v.conn.is_empty(),
    };
    let what = match port {
        Some((p, n)) => format!("{n}/{}", p.as_str()),
        None => "any port".to_string(),
    };
    let denied: Vec<Direction> = [Direction::Egress, Direction::Ingress]
        .into_iter()
        .filter(|d| {
            let dv = if *d == Direction::Egress {
                &v.egress
            } else {
                &v.ingress
            };
            match port {
                Some((p, n)) => !dv.conn.allows(p, n),
                None => dv.conn.is_empty(),
            }
        })
        .collect();
    let snippets: Vec<serde_json::Value> = denied
        .iter()
        .filter_map(|d| engine.allow_snippet(*d, &src, &dst, port))
        .collect();
    if g.output == Format::Json {
        crate::output::out_line(
            serde_json::to_string_pretty(&serde_json::json!({
                "allowed": allowed, "port": port.map(|(p, n)| format!("{n}/{}", p.as_str())),
                "verdict": v, "denied": denied, "fix": snippets,
            }))
            .expect("verdict serializes"),
        );
    } else {
        crate::output::out(explain_text(
            &v, &what, allowed, &snippets, &engine, &src, &dst,
        ));
    }
    Ok(if allowed {
        ExitCode::Ok
    } else {
        ExitCode::Failed
    })
}

fn explain_text(
    v: &netpol::Verdict,
    what: &str,
    allowed: bool,
    snippets: &[serde_json::Value],
    engine: &Engine,
    src: &Endpoint,
    dst: &Endpoint,
) -> String {
    let mut out = format!(
        "{} => {} on {what}: {}\n  allowed: {}\n",
        v.src,
        v.dst,
        if allowed { "ALLOWED" } else { "DENIED" },
        v.conn
    );
    for (d, dv, who) in [
        (Direction::Egress, &v.egress, src),
        (Direction::Ingress, &v.ingress, dst),
    ] {
        let name = engine.node_name(who);
        if !dv.isolated {
            let why = if matches!(who, Endpoint::External(_)) {
                "outside the cluster: no policy applies"
            } else if name.ends_with("[Peer]") || name.ends_with("[Any]") {
                "a stand-in for a peer pake.yaml declares: its own policies are not in the input, so its side is taken as open"
            } else {
                "not isolated: no policy selects it for this direction, everything is allowed"
            };
            out += &format!("  {} of {name}: {why}\n", d.as_str());
            continue;
        }
        out += &format!(
            "  {} of {name}: {} (isolated by {})\n",
            d.as_str(),
            dv.conn,
            dv.policies.join(", ")
        );
        if dv.rules.is_empty() {
            out += "    no rule allows this peer\n";
        }
        for r in &dv.rules {
            out += &format!("    allowed by {r}\n");
        }
    }
    if !snippets.is_empty() {
        out += "Solution: add an explicit allow rule:\n";
        for s in snippets {
            out += "---\n";
            out += &serde_saphyr::to_string(s).unwrap_or_default();
        }
    }
    out
}
