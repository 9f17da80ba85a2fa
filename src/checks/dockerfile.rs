//! Static checks of a Dockerfile and its build context: the guide's image layer.
//!
//! `pake build` runs them before building (errors stop the build unless
//! `--force`), and `pake audit` runs them on files. Pure apart from reading the
//! context's `.dockerignore` and listing the context when a context directory
//! is given.
//!
//! The Dockerfile is parsed with `parse-dockerfile` (line continuations,
//! comments, parser directives including `escape`, JSON and shell forms,
//! here-documents, `--flags`, `AS name`); on top of that this module evaluates
//! what Docker would: ARG scoping (global ARGs in `FROM`, re-declared ARGs in a
//! stage), `$VAR`/`${VAR}`/`${VAR:-default}`/`${VAR:+alt}` substitution with
//! quotes and escapes, `ENV` in both forms, and stage inheritance (`FROM
//! builder` carries `USER` and `HEALTHCHECK` over).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::LazyLock;

use parse_dockerfile::{Command, HealthcheckArguments, Instruction, Source};
use regex::Regex;

use super::{Finding, Severity};
use crate::config::looks_secret_name;
use crate::docker::dockerignore::IgnoreFile;

/// The guide's user and group.
pub const GUIDE_UID: u32 = 1000;

/// Check a Dockerfile (and, with `context_dir`, its build context).
///
/// `dockerfile` is used for messages and to find a `<Dockerfile>.dockerignore`
/// next to it; `text` is its content.
pub fn check_dockerfile(dockerfile: &Path, text: &str, context_dir: Option<&Path>) -> Vec<Finding> {
    check_dockerfile_with_args(dockerfile, text, context_dir, &BTreeMap::new())
}

/// [`check_dockerfile`] with the build arguments the build will pass, so
/// `FROM ${BASE}` and `USER ${UID}` are judged with the values actually used.
pub fn check_dockerfile_with_args(
    dockerfile: &Path,
    text: &str,
    context_dir: Option<&Path>,
    build_args: &BTreeMap<String, String>,
) -> Vec<Finding> {
    let name = dockerfile.display().to_string();
    let mut out = Vec::new();
    // A UTF-8 byte-order mark is not part of the first instruction (Docker drops it too).
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // parse-dockerfile reads only the first here-document of an instruction
    // (`RUN <<A <<B`); on a parse error, retry with the later bodies blanked.
    let normalized;
    let text = match parse_dockerfile::parse(text) {
        Err(_) => match blank_extra_heredocs(text) {
            Some(t) => {
                normalized = t;
                normalized.as_str()
            }
            None => text,
        },
        Ok(_) => text,
    };
    match parse_dockerfile::parse(text) {
        Err(e) => out.push(
            Finding::new(
                "DOCKERFILE-PARSE",
                Severity::High,
                format!("the Dockerfile cannot be parsed: {e}"),
                "fix the syntax at this line (`docker build` would refuse it too)",
            )
            .on(format!("{name}:{}", e.line()))
            .at_line(e.line()),
        ),
        Ok(df) => {
            let model = Model::new(&df, text, build_args);
            model.check(&name, &mut out);
        }
    }
    if let Some(ctx) = context_dir {
        check_context(dockerfile, ctx, &mut out);
    }
    out
}

// ---------------------------------------------------------------------------
// A small model of the Dockerfile: what the checks need, evaluated.

#[derive(Debug)]
struct Model {
    stages: Vec<Stage>,
    /// Findings about ENV/ARG/RUN found while evaluating (secrets).
    secrets: Vec<(usize, SecretHit)>,
    adds: Vec<(usize, bool)>,
}

#[derive(Debug)]
struct Stage {
    name: Option<String>,
    from_line: usize,
    base: Base,
    user: Option<(usize, Word)>,
    healthcheck: Option<(usize, bool)>,
    runs: Vec<(usize, Vec<String>)>,
    /// `COPY` without `--from` whose sources include the whole context.
    copies_context: Vec<usize>,
    declared_args: Vec<String>,
    /// ENV at the end of the stage, including what it inherited.
    env: HashMap<String, Option<String>>,
}

#[derive(Debug)]
enum Base {
    Scratch,
    Stage(usize),
    Image(String),
    Unresolved { raw: String, var: String },
}

/// A value after substitution, or the variable that made it unknowable.
type Word = Result<String, String>;

#[derive(Debug)]
enum SecretHit {
    EnvName(String),
    ArgName(String, bool),
    Value(&'static str, String),
}

impl Model {
    fn new(
        df: &parse_dockerfile::Dockerfile<'_>,
        text: &str,
        build_args: &BTreeMap<String, String>,
    ) -> Self {
        let escape = df
            .parser_directives
            .escape
            .as_ref()
            .map(|d| d.value.value)
            .unwrap_or('\\');
        let newlines: Vec<usize> = text
            .bytes()
            .enumerate()
            .filter(|(_, b)| *b == b'\n')
            .map(|(i, _)| i)
            .collect();
        let line = |offset: usize| newlines.partition_point(|&n| n < offset) + 1;

        let mut secrets = Vec::new();
        let mut adds = Vec::new();
        // Global ARGs: usable in FROM, and in a stage once re-declared there.
        let mut globals: HashMap<String, Option<String>> = HashMap::new();
        for arg in df.global_args() {
            for (k, v) in parse_args(&arg.arguments.value, &globals, escape) {
                let value = build_args.get(&k).cloned().or(v.ok());
                note_secret_arg(&k, &value, line(arg.arg.span.start), &mut secrets);
                globals.insert(k, value);
            }
        }

        let mut stages: Vec<Stage> = Vec::new();
        for st in df.stages() {
            let from_line = line(st.from.from.span.start);
            let raw = st.from.image.value.to_string();
            let base = match process_word(&raw, &globals, escape) {
                Err(var) => Base::Unresolved { raw, var },
                Ok(image) => {
                    let lower = image.to_ascii_lowercase();
                    if lower == "scratch" {
                        Base::Scratch
                    } else if let Some(i) = stages
                        .iter()
                        .position(|s| s.name.as_deref() == Some(lower.as_str()))
                    {
                        Base::Stage(i)
                    } else if let Ok(i) = lower.parse::<usize>()
                        && i < stages.len()
                    {
                        Base::Stage(i)
                    } else {
                        Base::Image(image)
                    }
                }
            };
            let mut stage = Stage {
                name: st
                    .from
                    .as_
                    .as_ref()
                    .map(|(_, n)| n.value.to_ascii_lowercase()),
                from_line,
                base,
                user: None,
                healthcheck: None,
                runs: Vec::new(),
                copies_context: Vec::new(),
                declared_args: Vec::new(),
                env: HashMap::new(),
            };
            // Variables visible in this stage: ENV of the parent stage carries over.
            let mut env: HashMap<String, Option<String>> = match stage.base {
                Base::Stage(p) => stages[p].env.clone(),
                _ => HashMap::new(),
            };
            let mut vars = env.clone();
            for ins in st.instructions {
                match ins {
                    Instruction::Arg(a) => {
                        let l = line(a.arg.span.start);
                        for (k, v) in parse_args(&a.arguments.value, &vars, escape) {
                            let value = build_args
                                .get(&k)
                                .cloned()
                                .or(v.ok())
                                .or_else(|| globals.get(&k).cloned().flatten());
                            note_secret_arg(&k, &value, l, &mut secrets);
                            stage.declared_args.push(k.clone());
                            // ENV wins over ARG of the same name.
                            if !env.contains_key(&k) {
                                vars.insert(k, value);
                            }
                        }
                    }
                    Instruction::Env(e) => {
                        let l = line(e.env.span.start);
                        for (k, v) in parse_env(&e.arguments.value, &vars, escape) {
                            if looks_secret_name(&k)
                                && v.as_ref().map(|s| !s.is_empty()).unwrap_or(true)
                            {
                                secrets.push((l, SecretHit::EnvName(k.clone())));
                            } else if let Ok(val) = &v
                                && let Some(kind) = secret_value_kind(val)
                            {
                                secrets.push((l, SecretHit::Value(kind, format!("ENV {k}"))));
                            }
                            env.insert(k.clone(), v.clone().ok());
                            vars.insert(k, v.ok());
                        }
                    }
                    Instruction::User(u) => {
                        let l = line(u.user.span.start);
                        stage.user =
                            Some((l, process_word(u.arguments.value.trim(), &vars, escape)));
                    }
                    Instruction::Healthcheck(h) => {
                        let l = line(h.healthcheck.span.start);
                        let none = matches!(h.arguments, HealthcheckArguments::None { .. });
                        stage.healthcheck = Some((l, !none));
                    }
                    Instruction::Run(r) => {
                        let l = line(r.run.span.start);
                        let (cmds, text) = match &r.arguments {
                            Command::Exec(v) => {
                                let words: Vec<String> =
                                    v.value.iter().map(|w| w.value.to_string()).collect();
                                (first_words_exec(&words), words.join(" "))
                            }
                            Command::Shell(s) => (first_words_shell(s.value), s.value.to_string()),
                            _ => (Vec::new(), String::new()),
                        };
                        let mut all = text.clone();
                        for h in &r.here_docs {
                            all.push('\n');
                            all.push_str(&h.value);
                        }
                        if let Some(kind) = secret_value_kind(&all) {
                            secrets.push((l, SecretHit::Value(kind, "RUN".into())));
                        }
                        stage.runs.push((l, cmds));
                    }
                    Instruction::Copy(c) => {
                        let l = line(c.copy.span.start);
                        let from = c.options.iter().any(|f| f.name.value == "from");
                        let whole = c.src.iter().any(|s| match s {
                            Source::Path(p) => {
                                matches!(p.value.trim_end_matches('/'), "." | "" | "*" | "./*")
                            }
                            _ => false,
                        });
                        if !from && whole {
                            stage.copies_context.push(l);
                        }
                    }
                    Instruction::Add(a) => {
                        let l = line(a.add.span.start);
                        let url = a.src.iter().any(|s| match s {
                            Source::Path(p) => {
                                let v = p.value.to_ascii_lowercase();
                                v.starts_with("http://")
                                    || v.starts_with("https://")
                                    || v.starts_with("git@")
                            }
                            _ => false,
                        });
                        adds.push((l, url));
                    }
                    Instruction::Label(lb) => {
                        let l = line(lb.label.span.start);
                        for (k, v) in parse_env(&lb.arguments.value, &vars, escape) {
                            if let Ok(val) = v
                                && let Some(kind) = secret_value_kind(&val)
                            {
                                secrets.push((l, SecretHit::Value(kind, format!("LABEL {k}"))));
                            }
                        }
                    }
                    _ => {}
                }
            }
            // Remember this stage's ENV (with what it inherited) for stages built FROM it.
            stage.env = env;
            stages.push(stage);
        }
        Model {
            stages,
            secrets,
            adds,
        }
    }

    fn check(&self, name: &str, out: &mut Vec<Finding>) {
        let at = |line: usize| format!("{name}:{line}");
        let Some(final_idx) = self.stages.len().checked_sub(1) else {
            return;
        };
        let fin = &self.stages[final_idx];

        // Base images pinned.
        for s in &self.stages {
            match &s.base {
                Base::Image(image) => {
                    if let Some(why) = unpinned(image) {
                        out.push(
                            Finding::new(
                                "DOCKERFILE-BASE-UNPINNED",
                                Severity::High,
                                format!("base image `{image}` {why}: the build changes whenever the tag moves"),
                                format!("pin a version tag, better a digest: `FROM {}:<version>@sha256:<digest>`", strip_tag(image)),
                            )
                            .on(at(s.from_line))
                            .at_line(s.from_line),
                        );
                    }
                }
                Base::Unresolved { raw, var } => out.push(
                    Finding::new(
                        "DOCKERFILE-BASE-UNRESOLVED",
                        Severity::Medium,
                        format!("base image `{raw}` uses ${{{var}}}, which has no value here: its pin cannot be verified"),
                        format!("give `ARG {var}` a pinned default before the first FROM, or set it under build.args in pake.yaml"),
                    )
                    .on(at(s.from_line))
                    .at_line(s.from_line),
                ),
                Base::Scratch | Base::Stage(_) => {}
            }
        }

        // Multi-stage, and a final stage that only copies artifacts.
        if self.stages.len() == 1 {
            out.push(
                Finding::new(
                    "DOCKERFILE-SINGLE-STAGE",
                    Severity::Medium,
                    "single-stage build: compilers, package managers and sources stay in the production image",
                    "build in a `FROM ... AS builder` stage and `COPY --from=builder` only the artifacts into a minimal final stage",
                )
                .on(at(fin.from_line))
                .at_line(fin.from_line),
            );
        } else {
            for (l, cmds) in &fin.runs {
                if let Some(tool) = cmds.iter().find(|c| is_build_tool(c)) {
                    out.push(
                        Finding::new(
                            "DOCKERFILE-FINAL-STAGE-BUILD",
                            Severity::Medium,
                            format!("the final stage runs `{tool}`: building or installing belongs in a builder stage"),
                            "move the step into the builder stage and `COPY --from=builder` its result",
                        )
                        .on(at(*l))
                        .at_line(*l),
                    );
                }
            }
            for l in &fin.copies_context {
                out.push(
                    Finding::new(
                        "DOCKERFILE-FINAL-STAGE-CONTEXT",
                        Severity::Medium,
                        "the final stage copies the whole build context, not just artifacts",
                        "copy only what runs (`COPY --from=builder /out/app /app`, or named files)",
                    )
                    .on(at(*l))
                    .at_line(*l),
                );
            }
        }

        // USER: numeric, non-root, the guide's 1000:1000.
        match self.effective_user(final_idx) {
            None => out.push(
                Finding::new(
                    "DOCKERFILE-USER-MISSING",
                    Severity::High,
                    "the final stage sets no USER: the container runs as root unless the base image says otherwise",
                    "add `USER 1000:1000` at the end of the final stage (create the user in the builder stage if the app needs a passwd entry)",
                )
                .on(at(fin.from_line))
                .at_line(fin.from_line),
            ),
            Some((l, Err(var))) => out.push(
                Finding::new(
                    "DOCKERFILE-USER-UNRESOLVED",
                    Severity::Medium,
                    format!("USER uses ${{{var}}}, which has no value here: cannot verify the container is non-root"),
                    "write the numeric user literally: `USER 1000:1000`",
                )
                .on(at(l))
                .at_line(l),
            ),
            Some((l, Ok(u))) => user_findings(&u, l, &at, out),
        }

        // HEALTHCHECK present in the final image.
        match self.effective_healthcheck(final_idx) {
            Some((_, true)) => {}
            Some((l, false)) => out.push(
                Finding::new(
                    "DOCKERFILE-HEALTHCHECK-MISSING",
                    Severity::Medium,
                    "HEALTHCHECK NONE disables the health check",
                    "define `HEALTHCHECK CMD ...` that checks the app's health endpoint",
                )
                .on(at(l))
                .at_line(l),
            ),
            None => out.push(
                Finding::new(
                    "DOCKERFILE-HEALTHCHECK-MISSING",
                    Severity::Medium,
                    "no HEALTHCHECK: `docker ps` and compose cannot tell a hung container from a healthy one",
                    "add e.g. `HEALTHCHECK --interval=10s --timeout=3s CMD [\"/app/server\", \"-healthcheck\"]` (or curl -f http://127.0.0.1:8000/health)",
                )
                .on(at(fin.from_line))
                .at_line(fin.from_line),
            ),
        }

        // COPY rather than ADD.
        for (l, url) in &self.adds {
            let f = if *url {
                Finding::new(
                    "DOCKERFILE-ADD-URL",
                    Severity::High,
                    "ADD downloads a remote file at build time without verifying it",
                    "download in a builder stage with a checksum check (`curl -fsSLo f URL && echo \"SHA256  f\" | sha256sum -c`) or use `ADD --checksum=sha256:...` with BuildKit",
                )
            } else {
                Finding::new(
                    "DOCKERFILE-ADD",
                    Severity::Medium,
                    "ADD used where COPY does: ADD also unpacks archives and fetches URLs, which hides what enters the image",
                    "use COPY",
                )
            };
            out.push(f.on(at(*l)).at_line(*l));
        }

        // Secrets in ENV/ARG/LABEL/RUN.
        for (l, hit) in &self.secrets {
            let f = match hit {
                SecretHit::EnvName(k) => Finding::new(
                    "DOCKERFILE-SECRET-ENV",
                    Severity::High,
                    format!(
                        "ENV {k} looks like a secret: its value is stored in the image for anyone who can pull it"
                    ),
                    "remove it from the Dockerfile; give it to the container at run time (a Kubernetes Secret through secretKeyRef)",
                ),
                SecretHit::ArgName(k, has_value) => Finding::new(
                    "DOCKERFILE-SECRET-ARG",
                    Severity::High,
                    if *has_value {
                        format!("ARG {k} looks like a secret and has a value in the Dockerfile")
                    } else {
                        format!(
                            "ARG {k} looks like a secret: build arguments are recorded in the image history"
                        )
                    },
                    "use a BuildKit secret mount (`RUN --mount=type=secret,id=...`) or pass it at run time, never as a build argument",
                ),
                SecretHit::Value(kind, whence) => Finding::new(
                    "DOCKERFILE-SECRET-VALUE",
                    Severity::Critical,
                    format!("{whence} contains what looks like {kind} (value not shown)"),
                    "remove the value, rotate it (it is in git history now), and pass it at run time from a secret store",
                ),
            };
            out.push(f.on(at(*l)).at_line(*l));
        }

        // Provenance arguments pake passes.
        let missing: Vec<&str> = ["BUILD_DATE", "GIT_COMMIT"]
            .into_iter()
            .filter(|a| !fin.declared_args.iter().any(|d| d == a))
            .collect();
        if !missing.is_empty() {
            out.push(
                Finding::new(
                    "DOCKERFILE-PROVENANCE-ARGS",
                    Severity::Info,
                    format!(
                        "the final stage does not declare ARG {}: pake still sets the OCI labels, but the Dockerfile cannot use the values",
                        missing.join(", ARG ")
                    ),
                    "declare `ARG BUILD_DATE` and `ARG GIT_COMMIT` in the final stage and use them in LABEL org.opencontainers.image.created/revision",
                )
                .on(at(fin.from_line))
                .at_line(fin.from_line),
            );
        }
    }

    fn effective_user(&self, i: usize) -> Option<(usize, Word)> {
        let s = &self.stages[i];
        if let Some((l, w)) = &s.user {
            return Some((*l, w.clone()));
        }
        match s.base {
            Base::Stage(p) if p < i => self.effective_user(p),
            _ => None,
        }
    }

    fn effective_healthcheck(&self, i: usize) -> Option<(usize, bool)> {
        let s = &self.stages[i];
        if let Some(h) = s.healthcheck {
            return Some(h);
        }
        match s.base {
            Base::Stage(p) if p < i => self.effective_healthcheck(p),
            _ => None,
        }
    }
}

fn user_findings(u: &str, l: usize, at: &dyn Fn(usize) -> String, out: &mut Vec<Finding>) {
    let (user, group) = match u.split_once(':') {
        Some((a, b)) => (a.trim(), Some(b.trim())),
        None => (u.trim(), None),
    };
    let push = |out: &mut Vec<Finding>, f: Finding| out.push(f.on(at(l)).at_line(l));
    match user.parse::<u32>() {
        Ok(0) => push(
            out,
            Finding::new(
                "DOCKERFILE-USER-ROOT",
                Severity::Critical,
                format!("the final stage runs as root (USER {u})"),
                "end the final stage with `USER 1000:1000`",
            ),
        ),
        Err(_) if user == "root" => push(
            out,
            Finding::new(
                "DOCKERFILE-USER-ROOT",
                Severity::Critical,
                format!("the final stage runs as root (USER {u})"),
                "end the final stage with `USER 1000:1000`",
            ),
        ),
        Err(_) => push(
            out,
            Finding::new(
                "DOCKERFILE-USER-NOT-NUMERIC",
                Severity::High,
                format!(
                    "USER {u} is a name: Kubernetes' runAsNonRoot cannot verify a name and refuses to start the pod"
                ),
                format!("use the numeric ids: `USER 1000:1000` (the uid/gid of `{user}`)"),
            ),
        ),
        Ok(uid) => {
            if uid != GUIDE_UID {
                push(
                    out,
                    Finding::new(
                        "DOCKERFILE-USER-UID",
                        Severity::Low,
                        format!("USER {u}: the guide runs every container as uid {GUIDE_UID}"),
                        "use `USER 1000:1000` so it matches runAsUser/runAsGroup/fsGroup 1000 in the pod's securityContext",
                    ),
                );
            }
            match group {
                None => push(
                    out,
                    Finding::new(
                        "DOCKERFILE-USER-GROUP",
                        Severity::Low,
                        format!(
                            "USER {u} has no group: a uid without a passwd entry runs with gid 0 (root's group)"
                        ),
                        format!("name the group too: `USER {uid}:{uid}`"),
                    ),
                ),
                Some("0") | Some("root") => push(
                    out,
                    Finding::new(
                        "DOCKERFILE-USER-GROUP",
                        Severity::Medium,
                        format!(
                            "USER {u} runs with root's group: files writable by gid 0 are writable by the app"
                        ),
                        format!("use a non-root group: `USER {uid}:{uid}`"),
                    ),
                ),
                Some(g) if g.parse::<u32>().is_err() => push(
                    out,
                    Finding::new(
                        "DOCKERFILE-USER-NOT-NUMERIC",
                        Severity::Medium,
                        format!("USER {u}: group `{g}` is a name"),
                        format!("use the numeric gid: `USER {uid}:1000`"),
                    ),
                ),
                Some(_) => {}
            }
        }
    }
}

fn note_secret_arg(
    k: &str,
    value: &Option<String>,
    line: usize,
    out: &mut Vec<(usize, SecretHit)>,
) {
    if looks_secret_name(k) {
        out.push((
            line,
            SecretHit::ArgName(k.to_string(), value.as_ref().is_some_and(|v| !v.is_empty())),
        ));
    } else if let Some(v) = value
        && let Some(kind) = secret_value_kind(v)
    {
        out.push((line, SecretHit::Value(kind, format!("ARG {k}"))));
    }
}

/// Why an image reference is not pinned, or `None` when it is.
fn unpinned(image: &str) -> Option<&'static str> {
    if image.contains('@') {
        return None;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        None => Some("has no tag (it means :latest)"),
        Some((_, "latest")) => Some("uses the :latest tag"),
        Some((_, "")) => Some("has an empty tag"),
        Some(_) => None,
    }
}

fn strip_tag(image: &str) -> &str {
    let slash = image.rfind('/').map(|i| i + 1).unwrap_or(0);
    match image[slash..].find(':') {
        Some(c) => &image[..slash + c],
        None => image,
    }
}

/// Compilers and package managers: signs that a stage builds rather than runs.
fn is_build_tool(cmd: &str) -> bool {
    const TOOLS: &[&str] = &[
        "apt-get",
        "apt",
        "aptitude",
        "apk",
        "yum",
        "dnf",
        "microdnf",
        "zypper",
        "pip",
        "pip3",
        "poetry",
        "pipenv",
        "uv",
        "npm",
        "yarn",
        "pnpm",
        "cargo",
        "rustc",
        "gcc",
        "g++",
        "cc",
        "clang",
        "make",
        "cmake",
        "mvn",
        "gradle",
        "bundle",
        "gem",
        "composer",
        "go build",
        "go install",
        "go get",
        "go mod",
    ];
    TOOLS.contains(&cmd)
}

/// The first word of each command in a shell-form RUN (after `sudo`, `env`
/// and `VAR=value` prefixes); `go` keeps its subcommand.
fn first_words_shell(s: &str) -> Vec<String> {
    static SEP: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"&&|\|\||;|\||\n|\(|\)|`|\$\(").unwrap());
    SEP.split(&s.replace("\\\n", " "))
        .filter_map(|seg| {
            let words: Vec<&str> = seg.split_whitespace().collect();
            first_command(&words)
        })
        .collect()
}

fn first_words_exec(words: &[String]) -> Vec<String> {
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    // ["sh", "-c", "..."]: look inside the script.
    if w.len() >= 3 && matches!(base_name(w[0]), "sh" | "bash" | "ash" | "dash") && w[1] == "-c" {
        return first_words_shell(w[2]);
    }
    first_command(&w).into_iter().collect()
}

fn first_command(words: &[&str]) -> Option<String> {
    let mut it = words.iter().copied().skip_while(|w| {
        *w == "sudo" || *w == "env" || *w == "exec" || (w.contains('=') && !w.starts_with('-'))
    });
    let cmd = base_name(it.next()?);
    if cmd == "go" {
        let sub = it.find(|w| !w.starts_with('-')).unwrap_or("");
        return Some(format!("go {sub}"));
    }
    Some(cmd.to_string())
}

fn base_name(w: &str) -> &str {
    w.rsplit('/').next().unwrap_or(w)
}

pub use super::secrets::secret_value_kind;

// ---------------------------------------------------------------------------
// Words, quotes and variables, as Docker's shell lexer treats them.

/// Split on unquoted whitespace, keeping quotes and escapes in the words.
fn split_words(s: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            _ if c == escape && quote != Some('\'') => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                cur.push(c);
            }
            Some(q) if c == q => {
                quote = None;
                cur.push(c);
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// `RUN <<A <<B` followed by both bodies: the text with every body after the
/// first replaced by blank lines (line numbers stay), or `None` when no
/// instruction has more than one here-document.
fn blank_extra_heredocs(text: &str) -> Option<String> {
    static MARKER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"<<(-?)(["']?)([A-Za-z_][A-Za-z0-9_]*)["']?"#).expect("valid regex")
    });
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        out.push_str(line);
        i += 1;
        let first = line.split_whitespace().next().unwrap_or("");
        if !["RUN", "COPY", "ADD"]
            .iter()
            .any(|k| first.eq_ignore_ascii_case(k))
        {
            continue;
        }
        let markers: Vec<(bool, String)> = MARKER
            .captures_iter(line)
            .map(|c| (!c[1].is_empty(), c[3].to_string()))
            .collect();
        if markers.len() < 2 {
            continue;
        }
        for (k, (strip_tabs, delim)) in markers.iter().enumerate() {
            while i < lines.len() {
                let l = lines[i];
                i += 1;
                let bare = l.trim_end_matches(['\n', '\r']);
                let bare = if *strip_tabs {
                    bare.trim_start_matches('\t')
                } else {
                    bare
                };
                let end = bare == delim;
                if k == 0 {
                    out.push_str(l);
                } else {
                    out.push('\n');
                    changed = true;
                }
                if end {
                    break;
                }
            }
        }
    }
    changed.then_some(out)
}

/// Remove quotes and escapes and substitute variables. `Err(name)` when a
/// variable that is undeclared, or declared without a value, is referenced.
fn process_word(s: &str, vars: &HashMap<String, Option<String>>, escape: char) -> Word {
    process_word_at(s, vars, escape, 0)
}

/// How deep `${a:-${b:-...}}` may nest (Docker has no limit; a deeper word is
/// treated as unresolvable rather than recursed into).
const MAX_NESTING: usize = 32;

fn process_word_at(
    s: &str,
    vars: &HashMap<String, Option<String>>,
    escape: char,
    depth: usize,
) -> Word {
    if depth > MAX_NESTING {
        return Err(format!(
            "(substitutions nested more than {MAX_NESTING} deep)"
        ));
    }
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match (quote, c) {
            (Some('\''), '\'') => quote = None,
            (Some('\''), _) => out.push(c),
            (None, '\'') => quote = Some('\''),
            (None, '"') => quote = Some('"'),
            (Some('"'), '"') => quote = None,
            (_, e) if e == escape => {
                if let Some(&n) = chars.get(i) {
                    i += 1;
                    // Inside double quotes only a few characters are escapable.
                    if quote == Some('"') && !matches!(n, '"' | '$' | '`') && n != escape {
                        out.push(e);
                    }
                    out.push(n);
                } else {
                    out.push(e);
                }
            }
            (_, '$') => {
                let (value, used) = expand_at(&chars[i..], vars, escape, depth)?;
                out.push_str(&value);
                i += used;
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// Expand the variable right after a `$`. Returns the value and the number of characters used.
fn expand_at(
    rest: &[char],
    vars: &HashMap<String, Option<String>>,
    escape: char,
    depth: usize,
) -> Result<(String, usize), String> {
    let lookup = |name: &str| -> Option<Option<String>> { vars.get(name).cloned() };
    if rest.first() == Some(&'{') {
        let close = matching_brace(rest).ok_or_else(|| "unterminated ${".to_string())?;
        let inner: String = rest[1..close].iter().collect();
        let name_end = inner
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(inner.len());
        let name = &inner[..name_end];
        let op = &inner[name_end..];
        let value = lookup(name).flatten();
        let v = if let Some(word) = op.strip_prefix(":-") {
            match value {
                Some(v) if !v.is_empty() => v,
                _ => process_word_at(word, vars, escape, depth + 1)?,
            }
        } else if let Some(word) = op.strip_prefix(":+") {
            match value {
                Some(v) if !v.is_empty() => process_word_at(word, vars, escape, depth + 1)?,
                Some(_) => String::new(),
                None if vars.contains_key(name) => return Err(name.to_string()),
                None => String::new(),
            }
        } else {
            value.ok_or_else(|| name.to_string())?
        };
        Ok((v, close + 1))
    } else {
        let n = rest
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
            .count();
        if n == 0 {
            return Ok(("$".into(), 0));
        }
        let name: String = rest[..n].iter().collect();
        let v = lookup(&name).flatten().ok_or_else(|| name.clone())?;
        Ok((v, n))
    }
}

fn matching_brace(rest: &[char]) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in rest.iter().enumerate() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `ARG a` / `ARG a=1 b=2`: names with their (substituted) defaults.
fn parse_args(
    s: &str,
    vars: &HashMap<String, Option<String>>,
    escape: char,
) -> Vec<(String, Word)> {
    split_words(s, escape)
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_string(), process_word(v, vars, escape)),
            None => (w.clone(), Err(w)),
        })
        .collect()
}

/// `ENV a=1 b="x y"` or the legacy `ENV a value with spaces` (also LABEL).
fn parse_env(s: &str, vars: &HashMap<String, Option<String>>, escape: char) -> Vec<(String, Word)> {
    let words = split_words(s, escape);
    match words.first() {
        Some(first) if !first.contains('=') => {
            let rest = s.trim_start()[first.len()..].trim();
            vec![(first.clone(), process_word(rest, vars, escape))]
        }
        _ => words
            .into_iter()
            .filter_map(|w| {
                let (k, v) = w.split_once('=')?;
                let key = process_word(k, vars, escape).unwrap_or_else(|_| k.to_string());
                Some((key, process_word(v, vars, escape)))
            })
            .collect(),
    }
}

// ---------------------------------------------------------------------------
// The build context and its ignore file.

/// Paths that must never reach the engine, by what they are.
const PROBES: &[(&str, &[&str])] = &[
    ("git", &[".git/HEAD", ".git/config"]),
    ("env", &[".env", ".env.production", ".env.local"]),
    (
        "secrets",
        &["secrets/db-password", "tls.key", "tls.pem", "id_rsa"],
    ),
];

/// Build output directories: excluded when they exist at the context root.
const BUILD_OUTPUT: &[&str] = &[
    "target",
    "node_modules",
    "dist",
    "build",
    "out",
    "bin",
    "__pycache__",
    ".venv",
    "venv",
    ".pytest_cache",
    ".next",
    "coverage",
    ".gradle",
];

/// How many context entries to look at for stray secret files.
const MAX_WALK: usize = 50_000;

fn check_context(dockerfile: &Path, ctx: &Path, out: &mut Vec<Finding>) {
    let default_path = ctx.join(".dockerignore");
    let ignore = match IgnoreFile::for_build(dockerfile, ctx) {
        Ok(f) => f,
        Err(e) => {
            out.push(
                Finding::new(
                    "DOCKERIGNORE-INVALID",
                    Severity::High,
                    format!("the ignore file cannot be used: {e}"),
                    "fix the pattern (Docker refuses it too)",
                )
                .on(default_path.display().to_string()),
            );
            return;
        }
    };
    let obj = ignore
        .path
        .clone()
        .unwrap_or(default_path)
        .display()
        .to_string();
    let p = &ignore.patterns;
    if ignore.path.is_none() {
        out.push(
            Finding::new(
                "DOCKERIGNORE-MISSING",
                Severity::High,
                "no .dockerignore: the whole directory (.git, .env files, keys, build output) is sent to the engine and `COPY . .` bakes it into the image",
                "create .dockerignore excluding at least .git, .env*, *.pem, *.key, secrets/ and build output (templates/docker/.dockerignore is a start)",
            )
            .on(obj.clone()),
        );
    } else {
        for (what, paths) in PROBES {
            let leaked: Vec<&str> = paths.iter().copied().filter(|x| !p.excludes(x)).collect();
            if leaked.is_empty() {
                continue;
            }
            let (id, sev, msg, fix) = match *what {
                "git" => (
                    "DOCKERIGNORE-GIT",
                    Severity::Medium,
                    ".dockerignore does not exclude .git: history (and anything ever committed) reaches the build",
                    "add `.git`",
                ),
                "env" => (
                    "DOCKERIGNORE-ENV",
                    Severity::High,
                    ".dockerignore does not exclude .env files, which hold local secrets",
                    "add `.env*` (and `**/.env*`); re-include a template with `!.env.example`",
                ),
                _ => (
                    "DOCKERIGNORE-SECRETS",
                    Severity::Medium,
                    ".dockerignore does not exclude key and secret files",
                    "add `secrets/`, `**/*.key`, `**/*.pem`, `**/id_rsa*`",
                ),
            };
            out.push(
                Finding::new(
                    id,
                    sev,
                    format!("{msg} (would send: {})", leaked.join(", ")),
                    fix,
                )
                .on(obj.clone()),
            );
        }
        let unexcluded: Vec<&str> = BUILD_OUTPUT
            .iter()
            .copied()
            .filter(|d| ctx.join(d).is_dir() && !p.excludes(&format!("{d}/x")))
            .collect();
        if !unexcluded.is_empty() {
            out.push(
                Finding::new(
                    "DOCKERIGNORE-BUILD-OUTPUT",
                    Severity::Low,
                    format!("build output is sent to the engine: {}", unexcluded.join(", ")),
                    format!("add {} to .dockerignore: the image should be built from sources, and the context stays small", unexcluded.iter().map(|d| format!("`{d}/`")).collect::<Vec<_>>().join(", ")),
                )
                .on(obj.clone()),
            );
        }
    }
    // Secret-looking files actually present and not excluded.
    let mut walk = walkdir::WalkDir::new(ctx)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    let mut seen = 0;
    let mut found = 0;
    while let Some(Ok(e)) = walk.next() {
        seen += 1;
        if seen > MAX_WALK || found >= 20 {
            break;
        }
        if e.depth() == 0 {
            continue;
        }
        let Ok(rel) = e.path().strip_prefix(ctx) else {
            continue;
        };
        let rel = rel.to_string_lossy().replace('\\', "/");
        if p.excludes(&rel) {
            if e.file_type().is_dir() && !p.has_exceptions() {
                walk.skip_current_dir();
            }
            continue;
        }
        if e.file_type().is_file() && looks_secret_file(&e.file_name().to_string_lossy()) {
            found += 1;
            out.push(
                Finding::new(
                    "DOCKERIGNORE-SECRET-FILE",
                    Severity::High,
                    format!("`{rel}` looks like a secret and is sent to the engine"),
                    format!("add `{rel}` (or a pattern for it) to .dockerignore, and keep secrets out of the source tree"),
                )
                .on(format!("{}/{rel}", ctx.display())),
            );
        }
    }
}

/// File names that usually hold secrets.
fn looks_secret_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if lower == ".env" {
        return true;
    }
    if let Some(rest) = lower.strip_prefix(".env.") {
        return !matches!(
            rest,
            "example" | "sample" | "template" | "dist" | "defaults"
        );
    }
    if matches!(
        lower.as_str(),
        "id_rsa"
            | "id_dsa"
            | "id_ecdsa"
            | "id_ed25519"
            | ".npmrc"
            | ".pypirc"
            | ".netrc"
            | ".htpasswd"
            | "credentials"
            | "credentials.json"
            | ".dockercfg"
            | "kubeconfig"
    ) {
        return true;
    }
    let (stem, ext) = match lower.rsplit_once('.') {
        Some((s, e)) => (s, e),
        None => (lower.as_str(), ""),
    };
    if matches!(
        ext,
        "pem" | "key" | "p12" | "pfx" | "jks" | "keystore" | "tfstate"
    ) {
        return true;
    }
    // secret.txt, db_password.json ... but not token.go or secrets.py (code).
    matches!(
        ext,
        "" | "txt" | "json" | "yaml" | "yml" | "env" | "ini" | "conf"
    ) && looks_secret_name(stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(fs: &[Finding]) -> Vec<&str> {
        fs.iter().map(|f| f.id.as_str()).collect()
    }

    fn check(text: &str) -> Vec<Finding> {
        check_dockerfile(Path::new("Dockerfile"), text, None)
    }

    const GOOD: &str = "\
# syntax=docker/dockerfile:1
ARG BASE=golang:1.22-bookworm
FROM ${BASE} AS builder
WORKDIR /src
COPY . .
RUN go build -o /out/app . \\
 && chmod -R 555 /out
FROM gcr.io/distroless/static:nonroot@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
ARG BUILD_DATE
ARG GIT_COMMIT
COPY --from=builder /out/app /app
USER 1000:1000
HEALTHCHECK CMD [\"/app\", \"-healthcheck\"]
ENTRYPOINT [\"/app\"]
";

    #[test]
    fn the_guide_shape_passes() {
        let f = check(GOOD);
        assert!(f.is_empty(), "{f:#?}");
    }

    #[test]
    fn last_user_root_is_critical_with_its_line() {
        let t = GOOD.replace("USER 1000:1000", "USER 1000:1000\nUSER root");
        let f = check(&t);
        let u = f
            .iter()
            .find(|f| f.id == "DOCKERFILE-USER-ROOT")
            .expect("root found");
        assert_eq!(u.severity, Severity::Critical);
        assert_eq!(u.line, Some(13));
        assert_eq!(u.object.as_deref(), Some("Dockerfile:13"));
        let f = check(&GOOD.replace("USER 1000:1000", "USER 0:0"));
        assert!(ids(&f).contains(&"DOCKERFILE-USER-ROOT"));
    }

    #[test]
    fn missing_user_and_names_are_high() {
        let f = check(&GOOD.replace("USER 1000:1000\n", ""));
        let u = f
            .iter()
            .find(|f| f.id == "DOCKERFILE-USER-MISSING")
            .unwrap();
        assert!(u.severity >= Severity::High);
        assert_eq!(u.line, Some(8), "points at the final FROM");
        let f = check(&GOOD.replace("USER 1000:1000", "USER appuser"));
        assert!(ids(&f).contains(&"DOCKERFILE-USER-NOT-NUMERIC"));
        let f = check(&GOOD.replace("USER 1000:1000", "USER 1001"));
        assert!(ids(&f).contains(&"DOCKERFILE-USER-UID"));
        assert!(ids(&f).contains(&"DOCKERFILE-USER-GROUP"));
    }

    #[test]
    fn user_comes_from_arg_env_and_parent_stage() {
        let t = "FROM alpine:3.20 AS base\nUSER 1000:1000\nHEALTHCHECK CMD true\nFROM base\nARG BUILD_DATE\nARG GIT_COMMIT\n";
        let f = check(t);
        assert!(
            !ids(&f).iter().any(|i| i.starts_with("DOCKERFILE-USER")),
            "{f:#?}"
        );
        let t = "FROM alpine:3.20 AS b\nFROM scratch\nARG UID=0\nUSER ${UID}:${UID}\n";
        assert!(ids(&check(t)).contains(&"DOCKERFILE-USER-ROOT"));
        let t = "FROM alpine:3.20 AS b\nFROM scratch\nENV APP_UID=1000\nUSER $APP_UID:$APP_UID\n";
        assert!(
            !ids(&check(t))
                .iter()
                .any(|i| i.starts_with("DOCKERFILE-USER"))
        );
        let t = "FROM alpine:3.20 AS b\nFROM scratch\nARG UID\nUSER ${UID}\n";
        assert!(ids(&check(t)).contains(&"DOCKERFILE-USER-UNRESOLVED"));
        // A build argument gives it a value.
        let args = BTreeMap::from([("UID".to_string(), "0".to_string())]);
        let f = check_dockerfile_with_args(Path::new("Dockerfile"), t, None, &args);
        assert!(ids(&f).contains(&"DOCKERFILE-USER-ROOT"));
    }

    #[test]
    fn unpinned_bases_with_arg_substitution() {
        let f = check(&GOOD.replace("golang:1.22-bookworm", "golang"));
        let u = f
            .iter()
            .find(|f| f.id == "DOCKERFILE-BASE-UNPINNED")
            .unwrap();
        assert_eq!(u.line, Some(3));
        assert!(u.message.contains("no tag"));
        let f = check(&GOOD.replace("golang:1.22-bookworm", "golang:latest"));
        assert!(ids(&f).contains(&"DOCKERFILE-BASE-UNPINNED"));
        let f = check(&GOOD.replace("ARG BASE=golang:1.22-bookworm", "ARG BASE"));
        assert!(ids(&f).contains(&"DOCKERFILE-BASE-UNRESOLVED"));
        let f = check(&GOOD.replace("${BASE}", "${BASE:-python}"));
        assert!(
            !ids(&f).contains(&"DOCKERFILE-BASE-UNPINNED"),
            "BASE has a value, the default is unused"
        );
        // Registry with a port is not a tag.
        let f = check(&GOOD.replace("golang:1.22-bookworm", "localhost:5000/golang"));
        assert!(ids(&f).contains(&"DOCKERFILE-BASE-UNPINNED"));
        // scratch and stage references are fine.
        assert!(!ids(&check(GOOD)).contains(&"DOCKERFILE-BASE-UNPINNED"));
    }

    #[test]
    fn single_stage_and_final_stage_building() {
        let t = "FROM python:3.12-slim\nRUN apt-get install -y gcc\nCOPY . .\nUSER 1000:1000\nHEALTHCHECK CMD true\n";
        let f = check(t);
        assert!(ids(&f).contains(&"DOCKERFILE-SINGLE-STAGE"));
        let t = GOOD.replace(
            "COPY --from=builder /out/app /app",
            "COPY --from=builder /out/app /app\nRUN set -e; sudo /usr/bin/apt-get update && echo ok\nCOPY . /app",
        );
        let f = check(&t);
        let b = f
            .iter()
            .find(|f| f.id == "DOCKERFILE-FINAL-STAGE-BUILD")
            .unwrap();
        assert!(b.message.contains("apt-get"));
        assert_eq!(b.line, Some(12));
        assert!(ids(&f).contains(&"DOCKERFILE-FINAL-STAGE-CONTEXT"));
        // chmod in the final stage is not building.
        let t = GOOD.replace(
            "USER 1000:1000",
            "RUN [\"sh\", \"-c\", \"chmod -R 555 /app\"]\nUSER 1000:1000",
        );
        assert!(!ids(&check(&t)).contains(&"DOCKERFILE-FINAL-STAGE-BUILD"));
    }

    #[test]
    fn add_and_secrets_never_show_values() {
        let t = GOOD.replace(
            "WORKDIR /src",
            "WORKDIR /src\nADD app.tar.gz /src\nADD https://example.invalid/x /x\nENV DB_PASSWORD=hunter2 MODE=prod\nARG API_TOKEN\nENV GITHUB=ghp_abcdefghijklmnopqrstuvwxyz0123456789AB\nENV LEGACY_SECRET some value here",
        );
        let f = check(&t);
        let i = ids(&f);
        assert!(i.contains(&"DOCKERFILE-ADD"));
        assert!(i.contains(&"DOCKERFILE-ADD-URL"));
        assert!(i.contains(&"DOCKERFILE-SECRET-ARG"));
        assert!(i.contains(&"DOCKERFILE-SECRET-VALUE"));
        assert_eq!(
            i.iter().filter(|x| **x == "DOCKERFILE-SECRET-ENV").count(),
            2,
            "{f:#?}"
        );
        let all = serde_json::to_string(&f).unwrap();
        assert!(!all.contains("hunter2"));
        assert!(!all.contains("ghp_abc"));
        assert!(!all.contains("some value"));
    }

    #[test]
    fn healthcheck_missing_or_none() {
        let f = check(&GOOD.replace("HEALTHCHECK CMD [\"/app\", \"-healthcheck\"]\n", ""));
        assert!(ids(&f).contains(&"DOCKERFILE-HEALTHCHECK-MISSING"));
        let f = check(&GOOD.replace(
            "HEALTHCHECK CMD [\"/app\", \"-healthcheck\"]",
            "HEALTHCHECK NONE",
        ));
        assert!(ids(&f).contains(&"DOCKERFILE-HEALTHCHECK-MISSING"));
    }

    #[test]
    fn escape_directive_comments_and_continuations() {
        let t = "# escape=`\nFROM alpine:3.20 AS b\nFROM scratch\n# a comment\nUSER `\n  0\nHEALTHCHECK CMD true\n";
        let f = check(t);
        let u = f
            .iter()
            .find(|f| f.id == "DOCKERFILE-USER-ROOT")
            .expect("USER 0 over a continuation");
        assert_eq!(u.line, Some(5));
    }

    #[test]
    fn parse_error_is_a_finding_with_a_line() {
        let f = check("FROM alpine:3.20\nFROBNICATE x\n");
        assert_eq!(ids(&f), vec!["DOCKERFILE-PARSE"]);
        assert_eq!(f[0].line, Some(2));
    }

    #[test]
    fn words_quotes_and_variables() {
        let vars = HashMap::from([
            ("A".to_string(), Some("1".to_string())),
            ("E".to_string(), Some(String::new())),
            ("U".to_string(), None),
        ]);
        assert_eq!(process_word("\"x $A\"", &vars, '\\'), Ok("x 1".into()));
        assert_eq!(process_word("'$A'", &vars, '\\'), Ok("$A".into()));
        assert_eq!(process_word("\\$A", &vars, '\\'), Ok("$A".into()));
        assert_eq!(process_word("${E:-d}", &vars, '\\'), Ok("d".into()));
        assert_eq!(process_word("${A:+y}", &vars, '\\'), Ok("y".into()));
        assert_eq!(process_word("${U}", &vars, '\\'), Err("U".into()));
        assert_eq!(process_word("${NOPE:-z}", &vars, '\\'), Ok("z".into()));
        assert_eq!(
            parse_env("a=1 b=\"x y\" c=$A", &vars, '\\'),
            vec![
                ("a".into(), Ok("1".into())),
                ("b".into(), Ok("x y".into())),
                ("c".into(), Ok("1".into()))
            ]
        );
        assert_eq!(
            parse_env("K some value", &vars, '\\'),
            vec![("K".into(), Ok("some value".into()))]
        );
    }

    #[test]
    fn context_checks() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::write(r.join("Dockerfile"), GOOD).unwrap();
        std::fs::create_dir(r.join("node_modules")).unwrap();
        std::fs::write(r.join("prod.key"), "k").unwrap();
        std::fs::write(r.join("token.go"), "package x").unwrap();
        let f = check_dockerfile(&r.join("Dockerfile"), GOOD, Some(r));
        assert!(ids(&f).contains(&"DOCKERIGNORE-MISSING"));
        assert!(
            f.iter()
                .any(|f| f.id == "DOCKERIGNORE-SECRET-FILE" && f.message.contains("prod.key"))
        );
        assert!(!f.iter().any(|f| f.message.contains("token.go")));

        std::fs::write(r.join(".dockerignore"), "*.key\n").unwrap();
        let f = check_dockerfile(&r.join("Dockerfile"), GOOD, Some(r));
        let i = ids(&f);
        assert!(i.contains(&"DOCKERIGNORE-GIT"));
        assert!(i.contains(&"DOCKERIGNORE-ENV"));
        assert!(i.contains(&"DOCKERIGNORE-SECRETS"));
        assert!(i.contains(&"DOCKERIGNORE-BUILD-OUTPUT"));
        assert!(
            !i.contains(&"DOCKERIGNORE-SECRET-FILE"),
            "prod.key is excluded now"
        );

        std::fs::write(
            r.join(".dockerignore"),
            ".git\n.env*\n**/*.key\n**/*.pem\n**/id_rsa*\nsecrets/\nnode_modules/\n",
        )
        .unwrap();
        let f = check_dockerfile(&r.join("Dockerfile"), GOOD, Some(r));
        assert!(f.is_empty(), "{f:#?}");
    }

    #[test]
    fn secret_files_by_name() {
        for yes in [
            ".env",
            ".env.production",
            "id_rsa",
            "tls.pem",
            "db_password.txt",
            "api-key.json",
        ] {
            assert!(looks_secret_file(yes), "{yes}");
        }
        for no in [
            ".env.example",
            "token.go",
            "secrets.py",
            "main.rs",
            "README.md",
        ] {
            assert!(!looks_secret_file(no), "{no}");
        }
    }
}
