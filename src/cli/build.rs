//! `pake build`: build the image named in pake.yaml, checked before and after,
//! smoke-run hardened; optionally scan, push and sign.

use std::time::Duration;

use clap::Args;

use super::{Global, only_formats};
use crate::config::Project;
use crate::error::{ExitCode, Result};
use crate::output::Format;
use crate::steps::build::{self, Options, StageStatus};

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Also tag the image with TAG (repeatable); the git commit is always a tag.
    #[arg(short = 't', long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Push to the registry in pake.yaml's image and record the digest in .pake/build.json.
    #[arg(long)]
    pub push: bool,
    /// Build even when the Dockerfile checks find errors (prints a warning); also
    /// continue when --scan/--sign find no tool. Never overrides the built image's checks.
    #[arg(long)]
    pub force: bool,
    /// Scan with trivy (fails on HIGH or CRITICAL).
    #[arg(long)]
    pub scan: bool,
    /// Sign the pushed digest with cosign (needs --push; key from PAKE_COSIGN_KEY).
    #[arg(long)]
    pub sign: bool,
    /// Skip the hardened smoke run.
    #[arg(long)]
    pub no_smoke: bool,
    /// How long the smoke container must stay up (and healthy, with a HEALTHCHECK).
    #[arg(long, default_value = "5s", value_parser = super::deploy::parse_duration, value_name = "DURATION")]
    pub smoke_window: Duration,
    /// Build without the engine's layer cache.
    #[arg(long)]
    pub no_cache: bool,
}

pub async fn run(g: &Global, a: BuildArgs) -> Result<ExitCode> {
    only_formats(g, &[Format::Text, Format::Json], "build")?;
    let ui = g.ui();
    let project = Project::load(g.config.as_deref())?;
    let opts = Options {
        env: g.env.clone(),
        tags: a.tags,
        push: a.push,
        force: a.force,
        scan: a.scan,
        sign: a.sign,
        smoke: !a.no_smoke,
        smoke_window: a.smoke_window,
        no_cache: a.no_cache,
    };
    let report = build::run(&project, &ui, &opts).await?;
    if ui.is_text() {
        if let Some(f) = &report.failure {
            crate::output::err_line(format!("error: {}", f.message));
            if let Some(o) = &f.object {
                crate::output::err_line(format!("  object: {o}"));
            }
            if let Some(fix) = &f.fix {
                crate::output::err_line(format!("  fix: {fix}"));
            }
        }
    } else {
        ui.document("BuildReport", &report);
    }
    github_summary(&report);
    Ok(report.exit_code())
}

/// The step summary and annotations of a build in GitHub Actions.
fn github_summary(r: &build::BuildReport) {
    use crate::report::github::{self, Level, Location, Row};
    let mut rows = Vec::new();
    for (what, findings) in [
        ("Dockerfile checks", &r.checks.dockerfile),
        ("image checks", &r.checks.image),
    ] {
        let worst = findings.iter().map(|f| f.severity).max();
        rows.push(Row::new(
            what,
            worst.is_none_or(|s| s < crate::checks::Severity::High),
            format!("{} finding(s)", findings.len()),
        ));
        for f in findings {
            let level = if f.severity >= crate::checks::Severity::High {
                Level::Error
            } else {
                Level::Warning
            };
            let at = Location {
                file: (what == "Dockerfile checks").then(|| r.dockerfile.clone()),
                line: f.line,
            };
            github::annotate(level, &format!("pake build: {}", f.id), &at, &f.message);
        }
    }
    if let Some(s) = &r.smoke {
        rows.push(Row::new(
            "smoke run",
            s.status == StageStatus::Passed,
            s.status.as_str(),
        ));
    }
    for t in [&r.scan, &r.sign].into_iter().flatten() {
        rows.push(Row::new(
            &t.tool,
            t.status != StageStatus::Failed,
            &t.detail,
        ));
    }
    if let Some(p) = &r.push {
        rows.push(Row::new("push", p.resolved, &p.reference));
    }
    github::summarize(
        &format!("pake build: {}", r.image),
        r.ok,
        &rows,
        r.failure
            .as_ref()
            .map(|f| (f.message.as_str(), f.fix.as_deref())),
        false,
    );
}
