//! Argument parsing only: one file per subcommand, each a thin call into the
//! layers below. Global flags follow kubectl's names.

pub mod audit;
pub mod bluegreen;
pub mod build;
pub mod completion;
pub mod deploy;
pub mod diagnose;
pub mod diff;
pub mod doctor;
pub mod env;
pub mod help;
pub mod history;
pub mod init;
pub mod netpol;
pub mod render;
pub mod rotate;
pub mod schema;
pub mod status;
pub mod verify;
pub mod version;

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::config::{Project, Resolved};
use crate::error::{ExitCode, Result};
use crate::kube::Target;
use crate::output::{ColorChoice, Format, Ui};

#[derive(Debug, Parser)]
#[command(
    name = "pake",
    version,
    about = "Deploy a service to Kubernetes the hardened way, and prove each step.",
    long_about = None,
    after_help = "Exit codes: 0 ok, 1 failed (after rollback), 2 usage or configuration error, 3 cluster unreachable or permission denied.\nTopics: `pake help environments|config|cluster|rbac|ci|output|exit-codes|...`",
    disable_help_subcommand = true
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
    /// Path to one kubeconfig file (default: the files of $KUBECONFIG, merged like kubectl, then ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace (default: from pake.yaml for the environment; `doctor` falls back to the context's).
    #[arg(short = 'n', long, global = true, value_name = "NAME")]
    pub namespace: Option<String>,
    /// Environment from pake.yaml (default: `pake env use`, else defaultEnvironment, else the only one).
    #[arg(long, global = true, env = "PAKE_ENV", value_name = "ENV")]
    pub env: Option<String>,
    /// Path to pake.yaml (default: ./pake.yaml or the nearest parent's, up to the repository root).
    #[arg(long, global = true, env = "PAKE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// One cluster of the environment's `clusters:` in pake.yaml; `deploy` takes it
    /// repeatedly to narrow the fleet.
    #[arg(long = "cluster", global = true, value_name = "NAME", action = ArgAction::Append)]
    pub clusters: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Confirm changes to a protected environment without a prompt.
    #[arg(long, global = true)]
    pub yes: bool,
    /// No progress bars or spinners, even on a terminal.
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Colour: auto (only on a terminal, off with NO_COLOR), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
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
        Ui::new(self.output, self.no_progress, self.color)
    }
}

/// The cluster a single-cluster command talks to: `--context` (or the
/// current context) for an environment without `clusters:`; the context of
/// `--cluster NAME` for one with them (exit 2 without exactly one).
pub fn target_for(g: &Global, p: &crate::workflow::release::Prepared) -> Result<Target> {
    target_in(g, &p.project, &p.resolved.env)
}

/// [`target_for`] for a command that resolved environment `env` of `project` itself.
pub fn target_in(g: &Global, project: &Project, env: &str) -> Result<Target> {
    let o = &project.config.environments[env];
    if o.clusters.is_empty() {
        if !g.clusters.is_empty() {
            crate::config::fleet::plan(env, o, &g.clusters)?;
        }
        return Ok(g.target());
    }
    let names: Vec<&str> = o.clusters.iter().map(|c| c.name.as_str()).collect();
    match g.clusters.as_slice() {
        [one] if g.context.is_none() => {
            let spec = crate::workflow::release::cluster_spec(project, env, one)?;
            Ok(Target {
                kubeconfig: g.kubeconfig.clone(),
                context: Some(spec.context.clone()),
            })
        }
        [_] => Err(crate::Error::usage(format!(
            "environment {env} names the context of each cluster: --context cannot be combined with --cluster"
        ))
        .fix("drop --context")),
        _ => Err(crate::Error::usage(format!(
            "environment {env} has {} clusters ({}): this command acts on one",
            names.len(),
            names.join(", ")
        ))
        .fix(format!("pass --cluster NAME (one of: {})", names.join(", ")))),
    }
}

/// Read-only commands on a fleet (`status`, `verify`, `diff`, ...): when the
/// environment lists `clusters:` and neither one `--cluster` nor `--context`
/// picks one, run
/// `one` on each cluster in plan order, or on each `--cluster` given (text: a heading per cluster; `-o json`:
/// one document per cluster, in order) and return the worst exit code
/// (3, 2, 1, 0). `None`: not a fleet, the caller runs as usual.
pub async fn each_cluster<F, Fut>(g: &Global, one: F) -> Option<Result<ExitCode>>
where
    F: Fn(Global) -> Fut,
    Fut: std::future::Future<Output = Result<ExitCode>>,
{
    if g.clusters.len() == 1 || g.context.is_some() {
        return None;
    }
    let project = Project::load(g.config.as_deref()).ok()?;
    let (env, _) = project.select_env(g.env.as_deref()).ok()?;
    let o = project.config.environments.get(&env)?;
    if o.clusters.is_empty() {
        return None;
    }
    let plan = match crate::config::fleet::plan(&env, o, &g.clusters) {
        Ok(p) => p,
        Err(e) => return Some(Err(e)),
    };
    let mut worst = ExitCode::Ok;
    for m in plan.members() {
        if g.output == Format::Text {
            crate::output::out_line(format!("== cluster {} (context {})", m.name, m.context));
        }
        let mut gm = g.clone();
        gm.clusters = vec![m.name.clone()];
        let code = match one(gm).await {
            Ok(c) => c,
            Err(e) => {
                crate::output::err_line(format!("[{}] error: {e}", m.name));
                e.kind
            }
        };
        worst = [ExitCode::Cluster, ExitCode::Usage, ExitCode::Failed]
            .into_iter()
            .find(|k| *k == code || *k == worst)
            .unwrap_or(ExitCode::Ok);
    }
    Some(Ok(worst))
}

/// Every command that acts on an environment says so first (on stderr, so
/// stdout stays the result): which environment and why, which kubeconfig
/// context, which namespace.
pub fn announce(g: &Global, project: &Project, r: &Resolved, context: Option<&str>) {
    crate::output::err_line(context_line(g, project, r, context));
}

pub fn context_line(g: &Global, project: &Project, r: &Resolved, context: Option<&str>) -> String {
    let source = project
        .select_env(g.env.as_deref())
        .map(|(_, s)| s.describe())
        .unwrap_or("--env");
    format!(
        "environment {} ({source}{}) · context {} · namespace {}",
        r.env,
        if r.protected { ", protected" } else { "" },
        context.unwrap_or("none (offline)"),
        r.namespace
    )
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
    /// What is wrong with the release and how to fix it: the guide's troubleshooting section, run live.
    Diagnose(diagnose::DiagnoseArgs),
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
    /// List the environments and mark the current one; `pake env use NAME` chooses one for this checkout.
    Env(env::EnvArgs),
    /// Client version, commit and build date, and the API server's version when a cluster answers.
    Version(version::VersionArgs),
    /// One screen on a release: revision, image and digest, who and when, replicas ready, active version, rotations, lock.
    Status(status::StatusArgs),
    /// Help on a command or a topic (environments, config, cluster, rbac, ci, output, exit-codes, ...).
    Help(help::HelpArgs),
    /// Shell completions: `source <(pake completion bash)`.
    Completion(completion::CompletionArgs),
    /// The man page (or, with --dir, one page per command).
    Man(completion::ManArgs),
    /// JSON Schema of pake.yaml (`config`) or of a report (`deploy-report`, `audit-report`, ...).
    Schema(schema::SchemaArgs),
}

/// Parse the command line. Run as `kubectl-pake` (a kubectl plugin: a link
/// or copy on PATH), usage and help say `kubectl pake`.
pub fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let plugin = std::path::Path::new(&argv0)
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("kubectl-pake"));
    let mut cmd = Cli::command();
    if plugin {
        cmd = cmd.bin_name("kubectl pake").name("kubectl-pake");
    }
    let matches = cmd.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
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
        Command::Diagnose(a) => diagnose::run(&g, a).await,
        Command::History(a) => history::history(&g, a).await,
        Command::Rollback(a) => history::rollback(&g, a).await,
        Command::Bluegreen(a) => bluegreen::run(&g, a).await,
        Command::RotateSecret(a) => rotate::run(&g, a).await,
        Command::Netpol(a) => netpol::run(&g, a).await,
        Command::Env(a) => env::run(&g, a).await,
        Command::Version(a) => version::run(&g, a).await,
        Command::Status(a) => status::run(&g, a).await,
        Command::Help(a) => help::run(&g, a).await,
        Command::Completion(a) => completion::completion(&g, a).await,
        Command::Man(a) => completion::man(&g, a).await,
        Command::Schema(a) => schema::run(&g, a).await,
    }
}

/// Refuse an output format a command does not support (exit 2).
/// `-o yaml` goes wherever `-o json` does.
pub fn only_formats(g: &Global, allowed: &[Format], command: &str) -> Result<()> {
    let mut allowed = allowed.to_vec();
    if allowed.contains(&Format::Json) && !allowed.contains(&Format::Yaml) {
        allowed.insert(
            allowed.iter().position(|f| *f == Format::Json).unwrap() + 1,
            Format::Yaml,
        );
    }
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
