//! `pake help [TOPIC | COMMAND...]`: the documentation's key pages, built into
//! the binary, so fix lines can point at `pake help <topic>` instead of files
//! that exist only in pake's own repository.

use clap::{Args, CommandFactory};

use super::Global;
use crate::error::{Error, ExitCode, Result};

#[derive(Debug, Args)]
pub struct HelpArgs {
    /// A topic (`pake help` lists them) or a command, e.g. `bluegreen switch`.
    #[arg(value_name = "TOPIC")]
    pub topic: Vec<String>,
}

/// (name, one line, page).
pub const TOPICS: &[(&str, &str, &str)] = &[
    (
        "environments",
        "which environment a command acts on; `pake env`",
        include_str!("../../docs/environments.md"),
    ),
    (
        "config",
        "every field of pake.yaml, templates and workflows",
        include_str!("../../docs/config.md"),
    ),
    (
        "cluster",
        "kubeconfig, contexts, KUBECONFIG lists, connection problems",
        include_str!("../../docs/cluster.md"),
    ),
    (
        "rbac",
        "the deployer identity and its roles (templates/rbac/)",
        include_str!("../../docs/rbac.md"),
    ),
    (
        "ci",
        "pake in CI: the GitHub Actions template, annotations, step summaries",
        include_str!("../../docs/ci.md"),
    ),
    (
        "output",
        "text, -o json/yaml, the report header, schemas, colour",
        include_str!("../../docs/output.md"),
    ),
    (
        "exit-codes",
        "what 0, 1, 2 and 3 mean for each command",
        include_str!("../../docs/exit-codes.md"),
    ),
    (
        "init",
        "what `pake init` writes",
        include_str!("../../docs/init.md"),
    ),
    (
        "deploy",
        "the deploy workflow, protected environments, rollback",
        include_str!("../../docs/deploy.md"),
    ),
    (
        "fleet",
        "several clusters per environment: waves, maxParallel, onFailure, --cluster",
        include_str!("../../docs/fleet.md"),
    ),
    (
        "rollback",
        "history and rollback",
        include_str!("../../docs/history.md"),
    ),
    (
        "status",
        "one screen on a release (like helm status)",
        include_str!("../../docs/status.md"),
    ),
    (
        "bluegreen",
        "blue-green deploy, switch, rollback, status, cleanup",
        include_str!("../../docs/bluegreen.md"),
    ),
    (
        "rotate-secret",
        "secret rotation",
        include_str!("../../docs/rotate-secret.md"),
    ),
    (
        "external-secrets",
        "secrets synced by the External Secrets Operator (`external:`)",
        include_str!("../../docs/external-secrets.md"),
    ),
    (
        "build",
        "build, smoke run, scan, push, the build record",
        include_str!("../../docs/build.md"),
    ),
    (
        "audit",
        "the offline audit, Pod Security Standards, SARIF",
        include_str!("../../docs/audit.md"),
    ),
    (
        "verify",
        "the guide's checklist on the live cluster",
        include_str!("../../docs/verify.md"),
    ),
    (
        "diagnose",
        "the guide's troubleshooting run live: findings, evidence, fixes",
        include_str!("../../docs/diagnose.md"),
    ),
    (
        "doctor",
        "pre-flight checks and the permissions pake uses",
        include_str!("../../docs/doctor.md"),
    ),
    (
        "render",
        "rendering templates, template variables",
        include_str!("../../docs/render.md"),
    ),
    (
        "diff",
        "what a deploy would change",
        include_str!("../../docs/diff.md"),
    ),
];

pub fn topic(name: &str) -> Option<&'static str> {
    TOPICS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, t)| *t)
}

pub async fn run(_g: &Global, a: HelpArgs) -> Result<ExitCode> {
    let mut cmd = super::Cli::command();
    if a.topic.is_empty() {
        cmd.print_help().ok();
        crate::output::out_line("\nHelp topics (`pake help TOPIC`):");
        for (n, line, _) in TOPICS {
            crate::output::out_line(format!("  {n:<15} {line}"));
        }
        return Ok(ExitCode::Ok);
    }
    // A command path first (`pake help bluegreen switch`), like clap's own help.
    let mut sub = Some(&mut cmd);
    for word in &a.topic {
        sub = sub.and_then(|c| c.find_subcommand_mut(word));
    }
    if let Some(c) = sub {
        let mut c = c.clone();
        // The built-in page too, when there is one for this command.
        c.print_long_help().ok();
        if let Some(page) = topic(&a.topic.join(" ")) {
            crate::output::out_line(format!("\n{page}"));
        }
        return Ok(ExitCode::Ok);
    }
    match topic(&a.topic.join(" ")) {
        Some(page) => {
            crate::output::out(page);
            Ok(ExitCode::Ok)
        }
        None => Err(
            Error::usage(format!("no help topic or command {:?}", a.topic.join(" "))).fix(format!(
                "topics: {}; or a command (`pake help deploy`)",
                TOPICS.iter().map(|t| t.0).collect::<Vec<_>>().join(", ")
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fix_topic_exists() {
        // Topics that fix lines in the code point at.
        for t in [
            "cluster",
            "config",
            "doctor",
            "render",
            "build",
            "rbac",
            "ci",
            "environments",
        ] {
            assert!(topic(t).is_some(), "{t}");
        }
    }
}
