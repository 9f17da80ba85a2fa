//! `pake diagnose`: the guide's troubleshooting section run on the live release.

use clap::{Args, Subcommand};

use super::{Global, only_formats};
use crate::error::{Error, ExitCode, Result};
use crate::output::Format;
use crate::steps::diagnose::{self, Options, Question};
use crate::workflow::release;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DiagnoseArgs {
    #[command(subcommand)]
    pub command: Option<DiagnoseCommand>,
    /// Read only: no ephemeral probe container (the in-pod `id`/`ls` check is skipped).
    #[arg(long)]
    pub no_probe: bool,
    /// Log lines read from each failing container.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub tail: i64,
}

#[derive(Debug, Subcommand)]
pub enum DiagnoseCommand {
    /// Why SRC cannot reach DST: the NetworkPolicy verdict, the rule that opens it, and a live test from a SRC pod.
    Connectivity(ConnectivityArgs),
}

#[derive(Debug, Args)]
pub struct ConnectivityArgs {
    /// Source workload (`frontend`, `ns/name`, as `pake netpol` prints it).
    pub src: String,
    /// Destination workload with an optional port: `backend:8000`, `backend:53/UDP`.
    pub dst: String,
    /// HTTP path of the live test.
    #[arg(long, default_value = "/health")]
    pub path: String,
    /// No live test (no ephemeral container): the engine's verdict only.
    #[arg(long)]
    pub no_probe: bool,
}

pub async fn run(g: &Global, a: DiagnoseArgs) -> Result<ExitCode> {
    only_formats(g, &[Format::Text, Format::Json], "diagnose")?;
    if let Some(DiagnoseCommand::Connectivity(c)) = a.command {
        return connectivity(g, c).await;
    }
    let ui = g.ui();
    let p = release::prepare(&super::deploy::selection(g), "deploy")?;
    let cluster = g.target().connect().await?;
    super::announce(g, &p.project, &p.resolved, Some(&cluster.context));
    let dockerfile = p
        .project
        .config
        .build
        .dockerfile
        .to_string_lossy()
        .into_owned();
    let opts = Options {
        no_probe: a.no_probe,
        tail: a.tail,
        dockerfile: p
            .resolved
            .root
            .join(&dockerfile)
            .is_file()
            .then_some(dockerfile),
    };
    let r = diagnose::diagnose(&cluster, &p.resolved, &opts).await?;
    if ui.is_text() {
        crate::output::out(crate::report::diagnose::text(&r));
    } else {
        ui.document("Diagnosis", &r);
    }
    Ok(if r.ok { ExitCode::Ok } else { ExitCode::Failed })
}

/// `backend:8000` → ("backend", Some(8000/TCP)); `ns/backend` → no port.
fn split_port(dst: &str) -> Result<(String, Option<(crate::checks::netpol::Protocol, u16)>)> {
    match dst.rsplit_once(':') {
        None => Ok((dst.to_string(), None)),
        Some((name, port)) => {
            let p = crate::checks::netpol::parse_port(port).map_err(|m| {
                Error::usage(format!("DST {dst:?}: {m}"))
                    .fix("write the destination as NAME:PORT, e.g. backend:8000 or dns:53/UDP")
            })?;
            Ok((name.to_string(), Some(p)))
        }
    }
}

async fn connectivity(g: &Global, a: ConnectivityArgs) -> Result<ExitCode> {
    let ui = g.ui();
    let (dst, port) = split_port(&a.dst)?;
    let p = release::prepare(&super::deploy::selection(g), "deploy")?;
    let cluster = g.target().connect().await?;
    super::announce(g, &p.project, &p.resolved, Some(&cluster.context));
    let q = Question {
        src: a.src,
        dst,
        port,
        path: a.path,
        no_probe: a.no_probe,
    };
    let r = diagnose::connectivity(&cluster, &p.resolved, &q).await?;
    if ui.is_text() {
        crate::output::out(crate::report::diagnose::connectivity_text(&r));
    } else {
        ui.document("ConnectivityDiagnosis", &r);
    }
    Ok(if r.ok { ExitCode::Ok } else { ExitCode::Failed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_port_is_parsed_or_refused() {
        assert_eq!(split_port("backend").unwrap(), ("backend".into(), None));
        let (n, p) = split_port("backend:8000").unwrap();
        assert_eq!(n, "backend");
        assert_eq!(p.map(|p| p.1), Some(8000));
        assert_eq!(
            split_port("backend:http").unwrap_err().kind,
            ExitCode::Usage
        );
    }
}
