//! `pake build`: the guide's image layer as one verified step.
//!
//! Order: static checks of the Dockerfile and context (errors stop here unless
//! `--force`) -> build through the engine API with provenance build args and
//! OCI labels, tagged with the git commit -> checks of the built image (never
//! overridable: `--force` only lets a build start) -> smoke run the way
//! production runs it -> scan -> push and prove the digest resolves -> sign
//! -> record `.pake/build.json` (what `digest: record` in pake.yaml deploys).
//!
//! Every failure after the configuration is loaded ends in a [`BuildReport`]
//! with `ok: false`, so `-o json` always carries the checks that ran. Ctrl-C
//! cancels the run; the smoke container's guard removes it on the way out.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::checks::dockerfile::check_dockerfile_with_args;
use crate::checks::image::check_image;
use crate::checks::{Finding, Severity};
use crate::config::Project;
use crate::docker::build::{BuildEvent, BuildRequest};
use crate::docker::container::{ContainerGuard, RunSpec};
use crate::docker::registry::{ImageRef, credentials_for, valid_tag};
use crate::docker::{Engine, context};
use crate::error::{Error, ExitCode, Result};
use crate::output::Ui;

/// Label on every smoke container: tests and operators find leftovers with it.
pub const SMOKE_LABEL: &str = "io.pake.smoke";
/// Label with the image repository on every smoke container.
pub const SMOKE_REPO_LABEL: &str = "io.pake.repository";
/// Name prefix of smoke containers.
pub const SMOKE_PREFIX: &str = "pake-smoke-";
/// Where the build record goes, relative to the directory of pake.yaml.
pub const RECORD_PATH: &str = ".pake/build.json";
/// The exit code trivy is told to use for findings, so "vulnerabilities
/// found" can be told apart from "trivy failed" (which exits 1).
const TRIVY_FOUND: i32 = 13;
/// After the smoke window, how long a health check may still take to pass.
const HEALTH_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Options {
    /// Environment from pake.yaml (validated, and written to the record).
    pub env: Option<String>,
    /// Extra tags besides the git commit.
    pub tags: Vec<String>,
    pub push: bool,
    /// Build even when the static checks find errors (printed as a warning).
    pub force: bool,
    pub scan: bool,
    pub sign: bool,
    pub smoke: bool,
    pub smoke_window: Duration,
    pub no_cache: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            env: None,
            tags: Vec::new(),
            push: false,
            force: false,
            scan: false,
            sign: false,
            smoke: true,
            smoke_window: Duration::from_secs(5),
            no_cache: false,
        }
    }
}

/// Everything `pake build` did, for `-o json` and for tests.
#[derive(Debug, Clone, Serialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildReport {
    pub ok: bool,
    /// Repository from pake.yaml (`image:`).
    pub image: String,
    pub image_id: Option<String>,
    /// Full references this build tagged (`repo:tag`).
    pub tags: Vec<String>,
    pub git_commit: Option<String>,
    pub git_dirty: bool,
    pub dockerfile: String,
    pub context: String,
    /// Files, links and directories sent to the engine, and how many the ignore file left out.
    pub context_entries: usize,
    pub context_excluded: usize,
    /// `classic` (the engine's first builder, served down to API 1.41).
    pub builder: String,
    /// The Docker Engine API version negotiated (not the report's own `apiVersion`).
    #[serde(rename = "engineApiVersion")]
    pub api_version: Option<String>,
    pub checks: Checks,
    /// Static-check errors overridden by `--force`.
    pub forced: Vec<String>,
    pub size_bytes: Option<u64>,
    pub smoke: Option<SmokeResult>,
    pub scan: Option<ToolResult>,
    pub sign: Option<ToolResult>,
    pub push: Option<PushResult>,
    /// Warnings (also printed in text mode): no git, dirty tree, --force overrides.
    pub warnings: Vec<String>,
    /// The build record written (path), when the build succeeded.
    pub record: Option<String>,
    pub durations_ms: Durations,
    pub failure: Option<Failure>,
}

#[derive(Debug, Clone, Serialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Checks {
    pub dockerfile: Vec<Finding>,
    pub image: Vec<Finding>,
}

#[derive(Debug, Clone, Serialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Durations {
    pub checks: u64,
    pub context: u64,
    pub build: u64,
    pub inspect: u64,
    pub smoke: u64,
    pub scan: u64,
    pub push: u64,
    pub sign: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// Which stage failed: checks, engine, context, build, image-checks, smoke, scan, push, sign, record.
    pub stage: String,
    pub message: String,
    pub object: Option<String>,
    pub fix: Option<String>,
    pub exit_code: i32,
}

/// How a smoke run, scan or signature ended (serialized as before:
/// `passed`, `failed`, `skipped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StageStatus {
    Passed,
    Failed,
    /// The tool is not installed (a failure unless --force).
    Skipped,
}

impl StageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StageStatus::Passed => "passed",
            StageStatus::Failed => "failed",
            StageStatus::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmokeResult {
    /// `passed` or `failed`.
    pub status: StageStatus,
    pub container: String,
    /// How it was run: the production hardening.
    pub user: String,
    pub read_only_rootfs: bool,
    pub tmpfs: Vec<String>,
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
    pub network: String,
    /// `healthy`, `unhealthy`, `starting`, or none without a HEALTHCHECK.
    pub health: Option<String>,
    pub up_ms: u64,
    pub detail: String,
    /// The container's last log lines, on failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
    /// The container was removed afterwards.
    pub removed: bool,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolResult {
    /// `passed`, `failed` or `skipped`.
    pub status: StageStatus,
    pub tool: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushResult {
    pub digest: String,
    /// `repo@sha256:...`: what to deploy.
    pub reference: String,
    pub pushed_tags: Vec<String>,
    /// The registry serves the manifest by this digest.
    pub resolved: bool,
    /// Where the credentials came from (never the credentials).
    pub credentials: String,
}

/// `.pake/build.json`: the last successful build. No secrets.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BuildRecord {
    pub image: String,
    pub tag: String,
    pub tags: Vec<String>,
    pub image_id: String,
    /// `sha256:...` when pushed; `null` otherwise.
    pub digest: Option<String>,
    /// What to deploy: `repo@digest` when pushed, else `repo:tag`.
    pub reference: String,
    pub git_commit: Option<String>,
    pub git_dirty: bool,
    pub built_at: String,
    pub pushed_at: Option<String>,
    pub env: Option<String>,
    pub dockerfile: String,
}

impl BuildRecord {
    /// Read the record of the project whose pake.yaml is in `root`.
    pub fn load(root: &Path) -> Result<Option<Self>> {
        let path = root.join(RECORD_PATH);
        match std::fs::read_to_string(&path) {
            Ok(t) => serde_json::from_str(&t).map(Some).map_err(|e| {
                Error::usage(format!("cannot parse {}: {e}", path.display()))
                    .fix("run `pake build --push` again to rewrite it")
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::usage(format!("cannot read {}: {e}", path.display()))),
        }
    }
}

impl BuildReport {
    pub fn exit_code(&self) -> ExitCode {
        match &self.failure {
            None => ExitCode::Ok,
            Some(f) => match f.exit_code {
                2 => ExitCode::Usage,
                3 => ExitCode::Cluster,
                _ => ExitCode::Failed,
            },
        }
    }

    fn warn(&mut self, ui: &Ui, msg: String) {
        ui.line(format!("warning: {msg}"));
        self.warnings.push(msg);
    }

    fn fail(&mut self, stage: &str, e: Error) {
        self.ok = false;
        self.failure = Some(Failure {
            stage: stage.into(),
            message: e.message,
            object: e.object,
            fix: e.fix,
            exit_code: e.kind.code(),
        });
    }
}

/// Run `pake build` for the project. Ctrl-C cancels it (removing the smoke
/// container) and returns an error.
pub async fn run(project: &Project, ui: &Ui, opts: &Options) -> Result<BuildReport> {
    tokio::select! {
        r = run_inner(project, ui, opts) => r,
        _ = tokio::signal::ctrl_c() => Err(Error::failed("interrupted (Ctrl-C): the build was cancelled and its smoke container, if any, removed")),
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Why a stage ended the build early: its failure is already in the report
/// (`BuildReport::fail`), or an error that is not part of a report.
enum Halt {
    Reported,
    Err(Error),
}

type Stage<T> = std::result::Result<T, Halt>;

/// What every stage reads: the validated configuration and the provenance.
struct Inputs {
    root: PathBuf,
    image: ImageRef,
    credentials: Option<crate::docker::registry::Credentials>,
    dockerfile: PathBuf,
    context_dir: PathBuf,
    text: String,
    git: Option<GitInfo>,
    primary_tag: String,
    primary_ref: String,
    built_at: String,
    build_args: BTreeMap<String, String>,
    labels: HashMap<String, String>,
    /// The smoke run's memory limit: pake.yaml's, else 512 MiB.
    memory: i64,
}

/// The stages in order: checks -> build -> inspect -> smoke -> scan -> push
/// -> sign -> record, each adding its part to the report (which `-o json`
/// prints whole, whichever stage stopped the build).
async fn run_inner(project: &Project, ui: &Ui, opts: &Options) -> Result<BuildReport> {
    let t0 = Instant::now();
    let inp = inputs(project, opts)?;
    let mut report = start_report(&inp, ui);
    match stages(&inp, ui, opts, &mut report, t0).await {
        Ok(()) => {
            report.ok = true;
            report.durations_ms.total = ms(t0.elapsed());
            Ok(report)
        }
        Err(Halt::Reported) => Ok(report),
        Err(Halt::Err(e)) => Err(e),
    }
}

async fn stages(
    inp: &Inputs,
    ui: &Ui,
    opts: &Options,
    report: &mut BuildReport,
    t0: Instant,
) -> Stage<()> {
    static_checks(inp, ui, opts, report, t0)?;
    let (engine, image_id) = build_image(inp, ui, opts, report).await?;
    let facts = image_checks(&engine, inp, ui, report).await?;
    if opts.smoke {
        smoke_run(&engine, inp, &facts, ui, opts, report).await?;
    } else {
        ui.line("- smoke run: skipped (--no-smoke)");
    }
    if opts.scan {
        scan_image(inp, ui, opts, report).await?;
    }
    let digest = if opts.push {
        push_image(&engine, inp, ui, opts, report).await?
    } else {
        None
    };
    if opts.sign {
        sign_image(inp, digest.as_deref(), ui, opts, report).await?;
    }
    record(inp, image_id, digest, ui, opts, report)
}

/// Everything that can be refused before any work (exit 2, no report), and
/// the provenance: git commit, tags, build arguments and labels.
fn inputs(project: &Project, opts: &Options) -> Result<Inputs> {
    let cfg = &project.config;
    if let Some(env) = &opts.env {
        project.resolve(Some(env))?;
    }
    // Absolute, so git (run with -C root) and messages agree on paths.
    let root = project.root();
    let root = root.canonicalize().map_err(|e| {
        Error::usage(format!(
            "cannot open the project directory {}: {e}",
            root.display()
        ))
    })?;
    let image = ImageRef::parse(&cfg.image)?;
    if image.tag.is_some() || image.digest.is_some() {
        return Err(Error::usage(format!(
            "pake.yaml image {:?} has a tag or digest; `image:` is the repository only",
            cfg.image
        ))
        .fix("write `image: registry/name` and the tag under `tag:` (pake build tags with the git commit)"));
    }
    for t in &opts.tags {
        if !valid_tag(t) {
            return Err(Error::usage(format!("invalid tag {t:?}"))
                .fix("a tag is up to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"));
        }
    }
    if opts.sign && !opts.push {
        return Err(Error::usage("--sign signs the pushed digest")
            .fix("add --push (cosign signs what the registry holds)"));
    }
    if opts.push && image.registry.is_none() {
        return Err(Error::usage(format!(
            "--push: image {:?} names no registry, so it would go to Docker Hub",
            cfg.image
        ))
        .fix("put the registry in pake.yaml's image, e.g. `image: 127.0.0.1:5000/pake-backend`"));
    }
    // Resolve registry credentials before building: a broken login should not cost a build.
    let credentials = match (&image.registry, opts.push) {
        (Some(r), true) => credentials_for(r)?,
        _ => None,
    };
    let dockerfile = root.join(&cfg.build.dockerfile);
    let context_dir = root.join(&cfg.build.context);
    if let Err(e) = std::fs::metadata(&dockerfile) {
        return Err(Error::usage(format!(
            "cannot read Dockerfile {}: {e}",
            dockerfile.display()
        ))
        .fix("set build.dockerfile in pake.yaml (relative to pake.yaml's directory)"));
    }
    let text = crate::input::read_text(&dockerfile, "Dockerfile")?;
    if !context_dir.is_dir() {
        return Err(Error::usage(format!(
            "build context {} is not a directory",
            context_dir.display()
        ))
        .fix("set build.context in pake.yaml (relative to pake.yaml's directory)"));
    }

    let git = git_info(&root, &[&context_dir, &dockerfile]);
    let primary_tag = match &git {
        Some(g) if g.dirty => format!("{}-dirty", g.short),
        Some(g) => g.short.clone(),
        None => format!("build-{}", jiff::Timestamp::now().strftime("%Y%m%d%H%M%S")),
    };
    let built_at = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    // Build arguments and labels: the guide's provenance.
    let commit = git
        .as_ref()
        .map(|g| g.commit.clone())
        .unwrap_or_else(|| "unknown".into());
    let mut build_args: BTreeMap<String, String> = cfg.build.args.clone();
    build_args.insert("BUILD_DATE".into(), built_at.clone());
    build_args.insert("GIT_COMMIT".into(), commit.clone());
    let mut labels = HashMap::from([
        (
            "org.opencontainers.image.created".to_string(),
            built_at.clone(),
        ),
        (
            "org.opencontainers.image.revision".to_string(),
            commit.clone(),
        ),
        (
            "org.opencontainers.image.version".to_string(),
            primary_tag.clone(),
        ),
    ]);
    if let Some(src) = cfg.build.source.clone().or_else(|| git_remote(&root)) {
        labels.insert("org.opencontainers.image.source".into(), src);
    }

    let primary_ref = format!("{}:{primary_tag}", image.repository);
    let memory = parse_quantity(&cfg.resources.limits.memory).unwrap_or(512 << 20);
    Ok(Inputs {
        root,
        image,
        credentials,
        dockerfile,
        context_dir,
        text,
        git,
        primary_tag,
        primary_ref,
        built_at,
        build_args,
        labels,
        memory,
    })
}

/// The report as the build starts, with the warnings about its provenance.
fn start_report(inp: &Inputs, ui: &Ui) -> BuildReport {
    let Inputs {
        root,
        image,
        dockerfile,
        context_dir,
        git,
        primary_tag,
        ..
    } = inp;
    let mut report = BuildReport {
        image: image.repository.clone(),
        git_commit: git.as_ref().map(|g| g.commit.clone()),
        git_dirty: git.as_ref().is_some_and(|g| g.dirty),
        dockerfile: display_rel(dockerfile, root),
        context: display_rel(context_dir, root),
        builder: "classic".into(),
        ..Default::default()
    };
    match &git {
        None => report.warn(
            ui,
            format!(
                "{} is not in a git work tree: GIT_COMMIT is \"unknown\" and the image is tagged {primary_tag}",
                root.display()
            ),
        ),
        Some(g) if g.dirty => report.warn(
            ui,
            format!("uncommitted changes in the build context: tagging {primary_tag}"),
        ),
        _ => {}
    }
    report
}

/// 1. The Dockerfile and context checks; errors refuse the build unless --force.
fn static_checks(
    inp: &Inputs,
    ui: &Ui,
    opts: &Options,
    report: &mut BuildReport,
    t0: Instant,
) -> Stage<()> {
    let Inputs {
        root,
        dockerfile,
        context_dir,
        text,
        build_args,
        ..
    } = inp;
    // 1. Static checks.
    let t = Instant::now();
    let step = ui.step("Dockerfile checks");
    let findings = relative_objects(
        check_dockerfile_with_args(dockerfile, text, Some(context_dir), build_args),
        root,
    );
    let errors: Vec<Finding> = findings
        .iter()
        .filter(|f| f.severity >= Severity::High)
        .cloned()
        .collect();
    let summary = format!(
        "{}: {} error{}, {} other finding{}",
        report.dockerfile,
        errors.len(),
        plural(errors.len()),
        findings.len() - errors.len(),
        plural(findings.len() - errors.len())
    );
    let refused = !errors.is_empty() && !opts.force;
    if errors.is_empty() {
        step.done(&summary);
    } else {
        step.fail(&summary);
    }
    print_findings(ui, &findings);
    report.durations_ms.checks = ms(t.elapsed());
    if !errors.is_empty() {
        if refused {
            let ids: Vec<&str> = errors.iter().map(|f| f.id.as_str()).collect();
            report.checks.dockerfile = findings;
            report.fail(
                "checks",
                Error::failed(format!(
                    "refused before building: {} error{} ({})",
                    ids.len(),
                    plural(ids.len()),
                    ids.join(", ")
                ))
                .on(report.dockerfile.clone())
                .fix("fix the findings above (each has a fix), or pass --force to build anyway"),
            );
            report.durations_ms.total = ms(t0.elapsed());
            return Err(Halt::Reported);
        }
        report.forced = errors.iter().map(|f| f.id.clone()).collect();
        let msg = format!(
            "--force: building despite {} error{} ({})",
            errors.len(),
            plural(errors.len()),
            report.forced.join(", ")
        );
        report.warn(ui, msg);
    }
    report.checks.dockerfile = findings;
    Ok(())
}

/// 2-3. Connect to the engine, stream the context, build and tag.
async fn build_image(
    inp: &Inputs,
    ui: &Ui,
    opts: &Options,
    report: &mut BuildReport,
) -> Stage<(Engine, String)> {
    let Inputs {
        image,
        dockerfile,
        context_dir,
        primary_ref,
        build_args,
        labels,
        ..
    } = inp;
    // 2. Engine and context.
    let engine = match Engine::connect().await {
        Ok(e) => e,
        Err(e) => {
            report.fail("engine", e);
            return Err(Halt::Reported);
        }
    };
    report.api_version = Some(engine.docker.client_version().to_string());
    let t = Instant::now();
    let (ctx_dir, df) = (context_dir.clone(), dockerfile.clone());
    let plan = match tokio::task::spawn_blocking(move || context::plan(&ctx_dir, &df)).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            report.fail(
                "context",
                Error::usage(e.to_string()).fix("fix the build context or its .dockerignore"),
            );
            return Err(Halt::Reported);
        }
        Err(e) => {
            return Err(Halt::Err(Error::failed(format!(
                "packing the context panicked: {e}"
            ))));
        }
    };
    report.context_entries = plan.entries;
    report.context_excluded = plan.excluded;
    report.durations_ms.context = ms(t.elapsed());
    let dockerfile_in_context = plan.dockerfile.clone();
    // Streamed to the engine while it is read: memory stays bounded for a
    // context of any size (the classic builder reads it before the first step).
    let sending = ui.bytes("sending build context", plan.bytes);
    let progress = sending.clone();
    let (context_stream, context_task) = plan.into_stream(move |n| progress.set(n));

    // 3. Build.
    let t = Instant::now();
    let step = ui.step("build");
    let req = BuildRequest {
        context: crate::docker::build::BuildContext::Stream(Box::pin(context_stream)),
        dockerfile: dockerfile_in_context,
        tag: primary_ref.clone(),
        build_args: build_args.clone().into_iter().collect(),
        labels: labels.clone(),
        no_cache: opts.no_cache,
    };
    let built = engine
        .build(req, |ev| {
            let line = match ev {
                BuildEvent::Line(l) | BuildEvent::Status(l) => l,
            };
            // A spinner line must fit the terminal; plain output keeps whole lines.
            if ui.progress {
                step.message(&truncate(line.trim(), 90));
            } else {
                step.message(&line);
            }
        })
        .await;
    sending.finish();
    report.durations_ms.build = ms(t.elapsed());
    // A context that could not be read explains a failed build better than the engine does.
    let context_error = match context_task.await {
        Ok(Err(e)) if !e.engine_stopped() => Some(e),
        _ => None,
    };
    let image_id = match (built, context_error) {
        (Ok(id), None) => id,
        (_, Some(e)) => {
            step.fail("failed");
            report.fail(
                "context",
                Error::usage(e.to_string()).fix("fix the build context or its .dockerignore"),
            );
            return Err(Halt::Reported);
        }
        (Err(e), None) => {
            step.fail("failed");
            report.fail("build", e);
            return Err(Halt::Reported);
        }
    };
    report.image_id = Some(image_id.clone());
    report.tags.push(primary_ref.clone());
    for t in &opts.tags {
        if let Err(e) = engine.tag(&image_id, &image.repository, t).await {
            step.fail("tagging failed");
            report.fail("build", e);
            return Err(Halt::Reported);
        }
        report.tags.push(format!("{}:{t}", image.repository));
    }
    step.done(&format!(
        "{} ({}) in {:.1}s, {} context entries ({} excluded by .dockerignore)",
        report.tags.join(", "),
        short_id(&image_id),
        report.durations_ms.build as f64 / 1000.0,
        report.context_entries,
        report.context_excluded
    ));
    Ok((engine, image_id))
}

/// 4. Inspect the built image and check it (--force does not override these).
async fn image_checks(
    engine: &Engine,
    inp: &Inputs,
    ui: &Ui,
    report: &mut BuildReport,
) -> Stage<crate::checks::image::ImageFacts> {
    let primary_ref = &inp.primary_ref;
    // 4. Image checks.
    let t = Instant::now();
    let step = ui.step("image checks");
    let facts = match engine.image_facts(primary_ref).await {
        Ok(f) => f,
        Err(e) => {
            step.fail("inspect failed");
            report.fail("image-checks", e);
            return Err(Halt::Reported);
        }
    };
    report.size_bytes = Some(facts.size_bytes);
    let img_findings = check_image(&facts);
    let img_errors: Vec<String> = img_findings
        .iter()
        .filter(|f| f.severity >= Severity::High)
        .map(|f| f.id.clone())
        .collect();
    let summary = format!(
        "user {:?}, {:.1} MiB, {} error{}",
        facts.user,
        facts.size_bytes as f64 / 1048576.0,
        img_errors.len(),
        plural(img_errors.len())
    );
    if img_errors.is_empty() {
        step.done(&summary);
    } else {
        step.fail(&summary);
    }
    print_findings(ui, &img_findings);
    report.checks.image = img_findings;
    report.durations_ms.inspect = ms(t.elapsed());
    if !img_errors.is_empty() {
        report.fail(
            "image-checks",
            Error::failed(format!(
                "the built image fails its checks: {} (it stays tagged locally, but is not pushed)",
                img_errors.join(", ")
            ))
            .on(primary_ref.clone())
            .fix("fix the Dockerfile (see each finding's fix); --force does not override checks of the built image"),
        );
        return Err(Halt::Reported);
    }
    Ok(facts)
}

/// 5. Run the image hardened, as production does.
async fn smoke_run(
    engine: &Engine,
    inp: &Inputs,
    facts: &crate::checks::image::ImageFacts,
    ui: &Ui,
    opts: &Options,
    report: &mut BuildReport,
) -> Stage<()> {
    let Inputs {
        image,
        primary_ref,
        memory,
        ..
    } = inp;
    // 5. Smoke run.
    let t = Instant::now();
    let step = ui.step("smoke run");
    let has_health = facts
        .healthcheck
        .as_ref()
        .is_some_and(|h| !h.is_empty() && h[0] != "NONE");
    let result = smoke(
        engine,
        primary_ref,
        &image.repository,
        has_health,
        *memory,
        opts.smoke_window,
    )
    .await;
    report.durations_ms.smoke = ms(t.elapsed());
    match result {
        Ok(r) if r.status == StageStatus::Passed => {
            step.done(&r.detail);
            report.smoke = Some(r);
        }
        Ok(r) => {
            step.fail(&r.detail);
            for l in &r.logs {
                ui.line(format!("    | {l}"));
            }
            let msg = format!("smoke run failed: {}", r.detail);
            report.smoke = Some(r);
            report.fail(
                "smoke",
                Error::failed(msg).on(primary_ref.clone()).fix(
                    "run it as production does (read-only root, tmpfs /tmp, user 1000:1000, no capabilities) and fix what it writes or needs; the container's last log lines are above",
                ),
            );
            return Err(Halt::Reported);
        }
        Err(e) => {
            step.fail("could not run the container");
            report.fail("smoke", e);
            return Err(Halt::Reported);
        }
    }
    Ok(())
}

/// 6. trivy, HIGH/CRITICAL.
async fn scan_image(inp: &Inputs, ui: &Ui, opts: &Options, report: &mut BuildReport) -> Stage<()> {
    let primary_ref = &inp.primary_ref;
    // 6. Scan.
    let t = Instant::now();
    let step = ui.step("scan (trivy, HIGH/CRITICAL)");
    let r = scan(primary_ref).await;
    report.durations_ms.scan = ms(t.elapsed());
    match r.status.as_str() {
        "passed" => step.done(&r.detail),
        _ => step.fail(&r.detail),
    }
    report.scan = Some(r.clone());
    if let Some(e) = tool_failure(&r, opts.force, "scan", ui, report) {
        report.fail("scan", e);
        return Err(Halt::Reported);
    }
    Ok(())
}

/// 7. Push every tag; the digest the registry serves.
async fn push_image(
    engine: &Engine,
    inp: &Inputs,
    ui: &Ui,
    opts: &Options,
    report: &mut BuildReport,
) -> Stage<Option<String>> {
    let Inputs {
        image,
        primary_tag,
        credentials,
        ..
    } = inp;
    // 7. Push.
    let t = Instant::now();
    let step = ui.step(&format!(
        "push to {}",
        image.registry.as_deref().unwrap_or("?")
    ));
    let pushed = push(
        engine,
        image,
        primary_tag,
        &opts.tags,
        credentials.as_ref(),
        &step,
    )
    .await;
    report.durations_ms.push = ms(t.elapsed());
    match pushed {
        Ok(p) => {
            step.done(&format!(
                "{}{}",
                p.reference,
                if p.resolved {
                    " (the registry serves it by digest)"
                } else {
                    ""
                }
            ));
            let digest = Some(p.digest.clone());
            report.push = Some(p);
            Ok(digest)
        }
        Err(e) => {
            step.fail("failed");
            report.fail("push", e);
            Err(Halt::Reported)
        }
    }
}

/// 8. cosign the pushed digest.
async fn sign_image(
    inp: &Inputs,
    digest: Option<&str>,
    ui: &Ui,
    opts: &Options,
    report: &mut BuildReport,
) -> Stage<()> {
    let image = &inp.image;
    // 8. Sign.
    let t = Instant::now();
    let step = ui.step("sign (cosign)");
    let reference = format!("{}@{}", image.repository, digest.unwrap_or_default());
    let r = sign(&reference).await;
    report.durations_ms.sign = ms(t.elapsed());
    match r.status.as_str() {
        "passed" => step.done(&r.detail),
        _ => step.fail(&r.detail),
    }
    report.sign = Some(r.clone());
    if let Some(e) = tool_failure(&r, opts.force, "sign", ui, report) {
        report.fail("sign", e);
        return Err(Halt::Reported);
    }
    Ok(())
}

/// 9. `.pake/build.json`, which `digest: record` deploys.
fn record(
    inp: &Inputs,
    image_id: String,
    digest: Option<String>,
    ui: &Ui,
    opts: &Options,
    report: &mut BuildReport,
) -> Stage<()> {
    let Inputs {
        root,
        image,
        git,
        primary_tag,
        primary_ref,
        built_at,
        ..
    } = inp;
    // 9. Record.
    let record = BuildRecord {
        image: image.repository.clone(),
        tag: primary_tag.clone(),
        tags: std::iter::once(primary_tag.clone())
            .chain(opts.tags.iter().cloned())
            .collect(),
        image_id,
        reference: match &digest {
            Some(d) => format!("{}@{d}", image.repository),
            None => primary_ref.clone(),
        },
        digest,
        git_commit: git.as_ref().map(|g| g.commit.clone()),
        git_dirty: report.git_dirty,
        built_at: built_at.clone(),
        pushed_at: opts.push.then(|| {
            jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        }),
        env: opts.env.clone(),
        dockerfile: report.dockerfile.clone(),
    };
    match write_record(root, &record) {
        Ok(p) => {
            ui.line(format!(
                "record: {} ({})",
                display_rel(&p, root),
                record.reference
            ));
            report.record = Some(p.display().to_string());
        }
        Err(e) => {
            report.fail("record", e);
            return Err(Halt::Reported);
        }
    }
    Ok(())
}

/// Name files relative to pake.yaml's directory in findings, as pake.yaml does.
fn relative_objects(findings: Vec<Finding>, root: &Path) -> Vec<Finding> {
    let prefix = format!("{}/", root.display());
    findings
        .into_iter()
        .map(|mut f| {
            if let Some(o) = &f.object
                && let Some(rest) = o.strip_prefix(&prefix)
            {
                f.object = Some(rest.to_string());
            }
            f
        })
        .collect()
}

fn print_findings(ui: &Ui, findings: &[Finding]) {
    for f in findings {
        let at = f.object.as_deref().unwrap_or("");
        ui.line(format!("    {:<8} {:<30} {at}", f.severity.as_str(), f.id));
        ui.line(format!("             {}", f.message));
        if f.severity > Severity::Info {
            ui.line(format!("             fix: {}", f.fix));
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn short_id(id: &str) -> &str {
    let h = id.strip_prefix("sha256:").unwrap_or(id);
    &h[..h.len().min(12)]
}

fn display_rel(p: &Path, root: &Path) -> String {
    p.strip_prefix(root)
        .map(|r| {
            if r.as_os_str().is_empty() {
                ".".to_string()
            } else {
                r.display().to_string()
            }
        })
        .unwrap_or_else(|_| p.display().to_string())
}

/// The smoke run: the image as production runs it, watched for a short window.
async fn smoke(
    engine: &Engine,
    image: &str,
    repository: &str,
    has_health: bool,
    memory: i64,
    window: Duration,
) -> Result<SmokeResult> {
    let mut rnd = [0u8; 4];
    getrandom::fill(&mut rnd).map_err(|e| Error::failed(format!("random name: {e}")))?;
    let name = format!("{SMOKE_PREFIX}{}", hex::encode(rnd));
    // The deployment template's writable paths (emptyDirs there), as tmpfs here.
    let tmpfs: HashMap<String, String> = ["/tmp", "/app/logs", "/app/cache"]
        .into_iter()
        .map(|p| {
            (
                p.to_string(),
                "rw,noexec,nosuid,nodev,size=64m,mode=1777".to_string(),
            )
        })
        .collect();
    let spec = RunSpec {
        name: name.clone(),
        image: image.to_string(),
        labels: HashMap::from([
            (SMOKE_LABEL.to_string(), "true".to_string()),
            ("io.pake.image".to_string(), image.to_string()),
            (SMOKE_REPO_LABEL.to_string(), repository.to_string()),
        ]),
        user: "1000:1000".into(),
        read_only_rootfs: true,
        tmpfs: tmpfs.clone(),
        cap_drop: vec!["ALL".into()],
        security_opt: vec!["no-new-privileges".into()],
        network_mode: "none".into(),
        memory_bytes: Some(memory),
        pids_limit: Some(256),
        env: Vec::new(),
        health_interval: has_health.then_some(Duration::from_secs(1)),
    };
    let mut tmpfs_paths: Vec<String> = tmpfs.keys().cloned().collect();
    tmpfs_paths.sort();
    let mut result = SmokeResult {
        status: StageStatus::Failed,
        container: name.clone(),
        user: spec.user.clone(),
        read_only_rootfs: true,
        tmpfs: tmpfs_paths,
        cap_drop: spec.cap_drop.clone(),
        security_opt: spec.security_opt.clone(),
        network: spec.network_mode.clone(),
        health: None,
        up_ms: 0,
        detail: String::new(),
        logs: Vec::new(),
        removed: false,
    };
    let guard = ContainerGuard::new(engine.clone(), name.clone());
    let watched = async {
        engine.run(&spec).await?;
        let start = Instant::now();
        let mut healthy_seen = false;
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let st = engine.state(&name).await?;
            let up = start.elapsed();
            result.up_ms = ms(up);
            result.health = st.health.clone();
            if !st.running {
                let why = if st.oom_killed {
                    "it was killed for exceeding its memory limit".to_string()
                } else if let Some(e) = &st.error {
                    format!("it could not run: {e}")
                } else {
                    format!("it exited with code {}", st.exit_code.unwrap_or(-1))
                };
                return Ok::<_, Error>(Some(format!("{why} after {:.1}s", up.as_secs_f64())));
            }
            if has_health {
                match st.health.as_deref() {
                    Some("healthy") => healthy_seen = true,
                    Some("unhealthy") => {
                        let out = st
                            .last_health_output
                            .map(|o| format!(" (last check: {})", o.lines().last().unwrap_or("")))
                            .unwrap_or_default();
                        return Ok(Some(format!(
                            "its HEALTHCHECK reports unhealthy after {:.1}s{out}",
                            up.as_secs_f64()
                        )));
                    }
                    _ => {}
                }
            }
            if up >= window && (!has_health || healthy_seen) {
                return Ok(None);
            }
            if has_health && up >= window + HEALTH_GRACE {
                return Ok(Some(format!(
                    "its HEALTHCHECK did not report healthy within {:.0}s",
                    up.as_secs_f64()
                )));
            }
        }
    }
    .await;
    let outcome = match watched {
        Ok(o) => o,
        Err(e) => {
            let _ = guard.remove().await;
            return Err(e);
        }
    };
    if outcome.is_some() {
        result.logs = engine.logs_tail(&name, 10).await.unwrap_or_default();
    }
    let removed = guard.remove().await;
    result.removed = removed.is_ok();
    match outcome {
        None => {
            result.status = StageStatus::Passed;
            result.detail = format!(
                "up {:.1}s{} as 1000:1000, read-only root, tmpfs {}, cap_drop ALL, no-new-privileges, network none; container removed",
                result.up_ms as f64 / 1000.0,
                if has_health {
                    ", healthy"
                } else {
                    " (no HEALTHCHECK)"
                },
                result.tmpfs.join(" ")
            );
        }
        Some(why) => {
            result.detail =
                format!("{why} (run read-only as 1000:1000 with all capabilities dropped)");
        }
    }
    removed?;
    Ok(result)
}

async fn push(
    engine: &Engine,
    image: &ImageRef,
    primary_tag: &str,
    extra: &[String],
    creds: Option<&crate::docker::registry::Credentials>,
    step: &crate::output::StepProgress,
) -> Result<PushResult> {
    let source = creds
        .as_ref()
        .map(|c| c.source.clone())
        .unwrap_or_else(|| "none (anonymous)".into());
    let digest = engine
        .push(image, primary_tag, creds, |s| step.message(s))
        .await?;
    let mut pushed = vec![primary_tag.to_string()];
    for t in extra {
        engine.push(image, t, creds, |s| step.message(s)).await?;
        pushed.push(t.clone());
    }
    let resolved = engine.resolve_digest(image, &digest, creds).await?;
    if resolved != digest {
        return Err(Error::failed(format!(
            "the registry resolves {}@{digest} to {resolved}",
            image.repository
        ))
        .fix(
            "check that nothing else pushed to this repository at the same time, then push again",
        ));
    }
    Ok(PushResult {
        reference: format!("{}@{digest}", image.repository),
        digest,
        pushed_tags: pushed,
        resolved: true,
        credentials: source,
    })
}

/// Turn a scan/sign result into a failure: a failed run always fails; a
/// skipped one (tool missing) fails unless --force, because the user asked
/// for the gate. Never a silent pass.
fn tool_failure(
    r: &ToolResult,
    force: bool,
    what: &str,
    ui: &Ui,
    report: &mut BuildReport,
) -> Option<Error> {
    match r.status.as_str() {
        "passed" => None,
        "skipped" if force => {
            report.warn(ui, format!("--force: continuing without the {what} ({})", r.detail));
            None
        }
        "skipped" => Some(
            Error::failed(format!("--{what} was asked for but {}", r.detail)).fix(format!(
                "install {} (it is not in Debian's archive: see its project's install notes), or pass --force to continue without the {what}",
                r.tool
            )),
        ),
        _ => Some(Error::failed(format!("{what} failed: {}", r.detail))),
    }
}

/// `trivy image --severity HIGH,CRITICAL`, failing on any finding (the guide's gate).
async fn scan(reference: &str) -> ToolResult {
    let Some(bin) = find_on_path("trivy") else {
        return ToolResult {
            status: StageStatus::Skipped,
            tool: "trivy".into(),
            detail: "skipped: trivy not found on PATH".into(),
        };
    };
    let code = TRIVY_FOUND.to_string();
    let out = tokio::process::Command::new(&bin)
        .args([
            "image",
            "--severity",
            "HIGH,CRITICAL",
            "--exit-code",
            &code,
            "--no-progress",
            reference,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            return ToolResult {
                status: StageStatus::Failed,
                tool: "trivy".into(),
                detail: format!("cannot run {}: {e}", bin.display()),
            };
        }
    };
    let tail = tail_lines(&out.stdout, &out.stderr, 15);
    match out.status.code() {
        Some(0) => ToolResult {
            status: StageStatus::Passed,
            tool: "trivy".into(),
            detail: "no HIGH or CRITICAL vulnerabilities".into(),
        },
        Some(c) if c == TRIVY_FOUND => ToolResult {
            status: StageStatus::Failed,
            tool: "trivy".into(),
            detail: format!("HIGH or CRITICAL vulnerabilities found:\n{tail}"),
        },
        c => ToolResult {
            status: StageStatus::Failed,
            tool: "trivy".into(),
            detail: format!("trivy itself failed (exit {c:?}):\n{tail}"),
        },
    }
}

/// `cosign sign` of the pushed digest. A key from PAKE_COSIGN_KEY (a path or
/// KMS URI) is passed with --key; without it cosign signs keyless.
async fn sign(reference: &str) -> ToolResult {
    let Some(bin) = find_on_path("cosign") else {
        return ToolResult {
            status: StageStatus::Skipped,
            tool: "cosign".into(),
            detail: "skipped: cosign not found on PATH".into(),
        };
    };
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.arg("sign").arg("--yes");
    if let Ok(k) = std::env::var("PAKE_COSIGN_KEY")
        && !k.is_empty()
    {
        cmd.arg("--key").arg(k);
    }
    cmd.arg(reference).stdin(std::process::Stdio::null());
    match cmd.output().await {
        Ok(o) if o.status.success() => ToolResult {
            status: StageStatus::Passed,
            tool: "cosign".into(),
            detail: format!("signed {reference}"),
        },
        Ok(o) => ToolResult {
            status: StageStatus::Failed,
            tool: "cosign".into(),
            detail: format!(
                "cosign sign exited with {:?}:\n{}",
                o.status.code(),
                tail_lines(&o.stdout, &o.stderr, 15)
            ),
        },
        Err(e) => ToolResult {
            status: StageStatus::Failed,
            tool: "cosign".into(),
            detail: format!("cannot run {}: {e}", bin.display()),
        },
    }
}

fn tail_lines(stdout: &[u8], stderr: &[u8], n: usize) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(stdout),
        String::from_utf8_lossy(stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

fn write_record(root: &Path, record: &BuildRecord) -> Result<PathBuf> {
    let path = root.join(RECORD_PATH);
    let dir = path.parent().expect("record path has a parent");
    let err = |e: std::io::Error| {
        Error::failed(format!("cannot write {}: {e}", path.display()))
            .fix("check that the project directory is writable")
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = dir.join(".build.json.tmp");
    let text = serde_json::to_string_pretty(record).expect("record serializes") + "\n";
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)?;
    Ok(path)
}

/// Git facts for the tag and the labels.
#[derive(Debug, Clone)]
struct GitInfo {
    commit: String,
    short: String,
    /// Uncommitted changes in the paths the image is built from.
    dirty: bool,
}

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Dirtiness is judged on the context and the Dockerfile only: a change
/// elsewhere in the repository does not change the image.
fn git_info(root: &Path, paths: &[&Path]) -> Option<GitInfo> {
    let commit = git(root, &["rev-parse", "HEAD"])?;
    let short = git(root, &["rev-parse", "--short", "HEAD"])?;
    let mut args = vec!["status", "--porcelain", "--untracked-files=normal", "--"];
    let owned: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    args.extend(owned.iter().map(String::as_str));
    let dirty = git(root, &args).map(|s| !s.is_empty()).unwrap_or(true);
    Some(GitInfo {
        commit,
        short,
        dirty,
    })
}

/// `origin`'s URL without any credentials in it.
fn git_remote(root: &Path) -> Option<String> {
    let url = git(root, &["remote", "get-url", "origin"])?;
    if url.is_empty() {
        return None;
    }
    Some(match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((userinfo, host)) if !userinfo.contains('/') => format!("{scheme}://{host}"),
            _ => url.clone(),
        },
        None => url,
    })
}

/// Kubernetes memory quantities (`512Mi`, `2Gi`, `1G`, plain bytes).
fn parse_quantity(q: &str) -> Option<i64> {
    let q = q.trim();
    let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let (n, unit) = q.split_at(split);
    let n: i64 = n.parse().ok()?;
    let mult: i64 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_statuses_serialize_as_the_strings_build_json_always_had() {
        for (st, text) in [
            (StageStatus::Passed, "passed"),
            (StageStatus::Failed, "failed"),
            (StageStatus::Skipped, "skipped"),
        ] {
            assert_eq!(serde_json::to_value(st).unwrap(), text);
            assert_eq!(st.as_str(), text);
        }
    }

    #[test]
    fn truncation_keeps_char_boundaries() {
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("ab", 3), "ab");
        assert_eq!(truncate("ééé", 2), "éé…");
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("512Mi"), Some(512 << 20));
        assert_eq!(parse_quantity("2Gi"), Some(2 << 30));
        assert_eq!(parse_quantity("1G"), Some(1_000_000_000));
        assert_eq!(parse_quantity("x"), None);
    }

    #[test]
    fn remote_urls_lose_credentials() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let run = |args: &[&str]| {
            std::process::Command::new("git")
                .arg("-C")
                .arg(r)
                .args(args)
                .output()
                .unwrap()
        };
        run(&["init", "-q"]);
        run(&[
            "remote",
            "add",
            "origin",
            "https://user:tok3n@git.example/x.git",
        ]);
        assert_eq!(git_remote(r).as_deref(), Some("https://git.example/x.git"));
    }

    #[test]
    fn git_tag_and_dirty_scope() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let run = |args: &[&str]| {
            let o = std::process::Command::new("git")
                .arg("-C")
                .arg(r)
                .args(["-c", "user.email=t@t", "-c", "user.name=t"])
                .args(args)
                .output()
                .unwrap();
            assert!(o.status.success(), "{o:?}");
        };
        std::fs::create_dir(r.join("app")).unwrap();
        std::fs::write(r.join("app/main.go"), "package main").unwrap();
        run(&["init", "-q"]);
        run(&["add", "."]);
        run(&["commit", "-q", "-m", "x"]);
        let g = git_info(r, &[&r.join("app")]).unwrap();
        assert!(!g.dirty);
        assert_eq!(g.commit.len(), 40);
        assert!(g.commit.starts_with(&g.short));
        std::fs::write(r.join("elsewhere.txt"), "x").unwrap();
        assert!(
            !git_info(r, &[&r.join("app")]).unwrap().dirty,
            "outside the context"
        );
        std::fs::write(r.join("app/main.go"), "package main // changed").unwrap();
        assert!(git_info(r, &[&r.join("app")]).unwrap().dirty);
        assert!(git_info(Path::new("/"), &[]).is_none());
    }

    #[test]
    fn record_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let rec = BuildRecord {
            image: "127.0.0.1:5000/app".into(),
            tag: "abc1234".into(),
            tags: vec!["abc1234".into()],
            image_id: "sha256:1".into(),
            digest: Some(format!("sha256:{}", "a".repeat(64))),
            reference: format!("127.0.0.1:5000/app@sha256:{}", "a".repeat(64)),
            git_commit: Some("abc1234".into()),
            git_dirty: false,
            built_at: "2026-01-01T00:00:00Z".into(),
            pushed_at: None,
            env: None,
            dockerfile: "Dockerfile.production".into(),
        };
        assert_eq!(BuildRecord::load(d.path()).unwrap(), None);
        write_record(d.path(), &rec).unwrap();
        assert_eq!(BuildRecord::load(d.path()).unwrap(), Some(rec));
    }
}
