//! Argument parsing only: one file per subcommand, each a thin call into the
//! layers below. Global flags follow kubectl's names.

pub mod audit;
pub mod bluegreen;
pub mod build;
pub mod deploy;
pub mod diff;
pub mod doctor;
pub mod history;
pub mod init;
pub mod netpol;
pub mod render;
pub mod rotate;
pub mod verify;

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::error::{ExitCode, Result};
use crate::kube::Target;
use crate::output::{Format, Ui};

#[derive(Debug, Parser)]
#[command(
    name = "pake",
    version,
    about = "Deploy a service to Kubernetes the hardened way, and prove each step.",
    long_about = None,
    after_help = "Exit codes: 0 ok, 1 failed (after rollback), 2 usage or configuration error, 3 cluster unreachable or permission denied."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(
        long,
        global = true,
        env = "KUBECONFIG",
        hide_env_values = true,
        value_name = "PATH"
    )]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace (default: from pake.yaml for the environment; `doctor` falls back to the context's).
    #[arg(short = 'n', long, global = true, value_name = "NAME")]
    pub namespace: Option<String>,
    /// Environment from pake.yaml (dev, staging, prod, ...).
    #[arg(long, global = true, env = "PAKE_ENV", value_name = "ENV")]
    pub env: Option<String>,
    /// Path to pake.yaml.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Confirm changes to a protected environment without a prompt.
    #[arg(long, global = true)]
    pub yes: bool,
    /// No progress bars or spinners, even on a terminal.
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// More logging (-v info, -vv debug, -vvv trace); logs go to stderr.
    #[arg(short = 'v', long = "verbose", global = true, action = ArgAction::Count)]
    pub verbose: u8,
}

impl Global {
    pub fn target(&self) -> Target {
        Target {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        }
    }
    pub fn ui(&self) -> Ui {
        Ui::new(self.output, self.no_progress)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Offline security audit of manifests and Dockerfiles (Pod Security Standards and the guide's checklist).
    Audit(audit::AuditArgs),
    /// Pre-flight checks: kubeconfig, API server, permissions, Docker engine.
    Doctor(doctor::DoctorArgs),
    /// Build the image: Dockerfile checks, build, image checks, hardened smoke run; --push, --scan, --sign.
    Build(build::BuildArgs),
    /// Scaffold pake.yaml, templates/ and workflows/ in a project.
    Init(init::InitArgs),
    /// Print the manifests a deploy would apply (no cluster needed).
    Render(render::RenderArgs),
    /// Show what a deploy would change (server-side dry run; Secret values masked).
    Diff(diff::DiffArgs),
    /// Run the deploy workflow: namespace, secrets, policies, deploy, verify.
    Deploy(deploy::DeployArgs),
    /// Check the live cluster against the guide's Kubernetes checklist.
    Verify(verify::VerifyArgs),
    /// List the release history of the app in an environment.
    History(history::HistoryArgs),
    /// Return to an earlier revision, verified like a deploy.
    Rollback(history::RollbackArgs),
    /// Blue-green releases: deploy a candidate next to the active version, switch with endpoint verification, roll back, status, cleanup.
    Bluegreen(bluegreen::BluegreenArgs),
    /// Who can talk to whom: the connectivity the NetworkPolicies allow (offline or live), and `explain SRC DST`.
    Netpol(netpol::NetpolArgs),
    /// Rotate one key of a Secret, restart every workload that uses it, and prove the new pods carry it.
    RotateSecret(rotate::RotateArgs),
}

/// Run the parsed command; returns the exit code to use.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let g = cli.global;
    crate::input::check_env()?;
    match cli.command {
        Command::Audit(a) => audit::run(&g, a).await,
        Command::Doctor(a) => doctor::run(&g, a).await,
        Command::Build(a) => build::run(&g, a).await,
        Command::Init(a) => init::run(&g, a).await,
        Command::Render(a) => render::run(&g, a).await,
        Command::Diff(a) => diff::run(&g, a).await,
        Command::Deploy(a) => deploy::run(&g, a).await,
        Command::Verify(a) => verify::run(&g, a).await,
        Command::History(a) => history::history(&g, a).await,
        Command::Rollback(a) => history::rollback(&g, a).await,
        Command::Bluegreen(a) => bluegreen::run(&g, a).await,
        Command::RotateSecret(a) => rotate::run(&g, a).await,
        Command::Netpol(a) => netpol::run(&g, a).await,
    }
}

/// Refuse an output format a command does not support (exit 2).
pub fn only_formats(g: &Global, allowed: &[Format], command: &str) -> Result<()> {
    if allowed.contains(&g.output) {
        Ok(())
    } else {
        let names: Vec<_> = allowed
            .iter()
            .map(|f| format!("{f:?}").to_lowercase())
            .collect();
        Err(crate::Error::usage(
            format!("`pake {command}` does not support -o {:?}", g.output).to_lowercase(),
        )
        .fix(format!("use -o {}", names.join(" or -o "))))
    }
}
