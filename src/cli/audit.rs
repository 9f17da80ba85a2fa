//! `pake audit`: offline security audit of manifests and Dockerfiles.

use std::path::PathBuf;

use clap::Args;

use super::{Global, only_formats};
use crate::checks::Severity;
use crate::checks::audit::{self, AuditOptions};
use crate::checks::pss::{Level, Version};
use crate::error::{Error, ExitCode, Result};
use crate::output::Format;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Files or directories: multi-document YAML (.yaml/.yml) and Dockerfiles
    /// (Dockerfile, Dockerfile.*, *.Dockerfile). Without paths, `--env` audits
    /// the rendered templates.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Pod Security Standards level to evaluate pods against.
    #[arg(long = "pss", value_name = "LEVEL", default_value = "restricted", value_parser = parse_level)]
    pub pss: Level,
    /// Pod Security policy version: v1.0 ... v1.37 or latest.
    #[arg(long = "pss-version", value_name = "VERSION", default_value = "latest", value_parser = parse_version)]
    pub pss_version: Version,
    /// Fail (exit 1) on findings at or above this severity.
    #[arg(long, value_enum, value_name = "SEVERITY", default_value_t = Severity::High)]
    pub fail_on: Severity,
    /// Largest file read (e.g. 256MiB, 1G; default 64 MiB). Larger files are refused.
    #[arg(long, value_name = "SIZE", env = "PAKE_MAX_FILE_SIZE", value_parser = crate::input::parse_size)]
    pub max_file_size: Option<u64>,
}

fn parse_level(s: &str) -> std::result::Result<Level, String> {
    match Level::parse(s) {
        Some(l @ (Level::Baseline | Level::Restricted)) => Ok(l),
        _ => Err("must be baseline or restricted".into()),
    }
}

fn parse_version(s: &str) -> std::result::Result<Version, String> {
    Version::parse(s).ok_or_else(|| "must be \"latest\" or \"v1.x\" (e.g. v1.30)".into())
}

pub async fn run(g: &Global, a: AuditArgs) -> Result<ExitCode> {
    only_formats(g, &[Format::Text, Format::Json, Format::Sarif], "audit")?;
    if let Some(n) = a.max_file_size {
        crate::input::set_max_file_size(n);
    }
    let ui = g.ui();
    // pake.yaml is optional for an audit of files: its overrides apply when present.
    let project = match &g.config {
        Some(p) => Some(crate::config::Project::load(Some(p))?),
        // Found here or in a parent directory; without one, an audit of files.
        None => crate::config::current::discover(std::path::Path::new("."))
            .ok()
            .map(|p| crate::config::Project::load(Some(&p)))
            .transpose()?,
    };
    let mut opts = AuditOptions {
        level: a.pss,
        version: a.pss_version,
        fail_on: a.fail_on,
        overrides: project
            .as_ref()
            .map(|p| p.config.audit.checks.clone())
            .unwrap_or_default(),
        protected: false,
    };
    if !a.paths.is_empty() {
        return stream_paths(g.output, &ui, &a.paths, &opts);
    }
    let report = if !a.paths.is_empty() {
        audit::audit_paths(&a.paths, &opts)?
    } else if project.is_some() || g.env.is_some() {
        // `pake audit` in a project audits the rendered templates of the
        // selected environment (--env, else the default one).
        let p = crate::workflow::release::prepare(&super::deploy::selection(g), "deploy")?;
        opts.protected = p.resolved.protected;
        super::announce(g, &p.project, &p.resolved, None);
        // Secret skeletons carry placeholders; their values are resolved at apply time.
        let objects: Vec<(String, usize, serde_json::Value)> = p
            .plan
            .manifests()
            // ExternalSecrets (`external:`) are complete objects: audited.
            .filter(|m| m.template != "pake.yaml#secrets" || m.kind() == "ExternalSecret")
            .map(|m| (m.template.clone(), m.doc, m.object.clone()))
            .collect();
        let declared = crate::checks::netpol::zero_trust::Declared::from_resolved(&p.resolved);
        audit::audit_objects_declared(&objects, &opts, Some(&declared))?
    } else {
        return Err(Error::usage("nothing to audit").fix(
            "pass files or directories (`pake audit k8s/ Dockerfile`), or run it in a project with pake.yaml (`pake audit --env dev`)",
        ));
    };
    if crate::report::github::in_actions() {
        for o in &report.results {
            github_annotate(o, report.summary.fail_on);
        }
    }
    github_summary(&report);
    match g.output {
        Format::Json | Format::Yaml => ui.document("AuditReport", &report),
        Format::Sarif => ui.raw(&crate::report::sarif::audit(&report)),
        _ => crate::output::out(crate::report::audit::text(&report, &ui)),
    }
    Ok(exit(&report))
}

fn exit(report: &audit::AuditReport) -> ExitCode {
    if report.summary.passed {
        ExitCode::Ok
    } else {
        ExitCode::Failed
    }
}

/// Audit files printing each object's result as soon as it is checked, so a
/// large input's report is never held in memory (text, JSON, YAML, SARIF).
/// Every file is parsed and every pod decoded before the
/// first result, so bad input fails (exit 2) before any output.
fn stream_paths(
    format: Format,
    ui: &crate::output::Ui,
    paths: &[PathBuf],
    opts: &AuditOptions,
) -> Result<ExitCode> {
    let mut w = crate::report::audit::Stream::new(format);
    let actions = crate::report::github::in_actions();
    let report = audit::audit_paths_each(paths, opts, &mut |r| {
        if actions {
            github_annotate(&r, opts.fail_on);
        }
        w.result(&r, ui);
        Ok(())
    })?;
    w.finish(&report, ui);
    github_summary(&report);
    Ok(exit(&report))
}

/// GitHub Actions annotations for one object's findings (file and line where
/// known) and its PodSecurity denial.
fn github_annotate(o: &audit::ObjectResult, fail_on: Severity) {
    use crate::report::github::{self, Level, Location};
    for f in &o.findings {
        let level = if f.severity >= fail_on {
            Level::Error
        } else {
            Level::Warning
        };
        let at = Location {
            file: Some(o.source.clone()),
            line: f.line.or(o.line),
        };
        let what = format!("{} {}: {}", o.kind, o.name, f.message);
        github::annotate(level, &format!("pake audit: {}", f.id), &at, &what);
    }
    if let Some(p) = o.pss.as_ref().filter(|p| !p.allowed) {
        let at = Location {
            file: Some(o.source.clone()),
            line: o.line,
        };
        let msg = p
            .message
            .clone()
            .unwrap_or_else(|| "denied by Pod Security admission".into());
        github::annotate(Level::Error, "pake audit: PodSecurity", &at, &msg);
    }
}

/// The step summary, in GitHub Actions.
fn github_summary(r: &audit::AuditReport) {
    use crate::report::github::{self, Row};
    let rows: Vec<Row> = r
        .summary
        .findings
        .iter()
        .map(|(sev, n)| {
            Row::new(
                format!("{} findings", sev.as_str()),
                *sev < r.summary.fail_on || *n == 0,
                n.to_string(),
            )
        })
        .chain(std::iter::once(Row::new(
            "pods admitted by Pod Security",
            r.summary.pods_denied == 0,
            format!(
                "{} of {} pods denied",
                r.summary.pods_denied, r.summary.pods_evaluated
            ),
        )))
        .collect();
    github::summarize(
        &format!(
            "pake audit: {} objects in {} files",
            r.summary.objects, r.summary.files
        ),
        r.summary.passed,
        &rows,
        None,
        false,
    );
}
