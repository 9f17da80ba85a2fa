//! The CI template `pake init` writes (templates/ci/github-actions.yml) works
//! as written: a small runner executes its jobs the way GitHub's runner does
//! (each job a fresh clone of the repository, every `run:` step through
//! `bash --noprofile --norc -eo pipefail` with the workflow, job and step
//! `env:`, `${{ }}` expressions, GITHUB_OUTPUT/GITHUB_ENV/GITHUB_STEP_SUMMARY,
//! `if: always()`), against the local registry (127.0.0.1:5000), the real
//! Docker engine and the shared cluster as the `deployer` identity.
//!
//! `uses:` steps are GitHub's own actions: checkout is the fresh clone,
//! upload-sarif is checked to receive a SARIF 2.1.0 file; trivy-action needs
//! the internet (its vulnerability database) and is reported as skipped.
//! Needs PAKE_TEST_KUBECONFIG and PAKE_TEST_DOCKER=1.

mod k8s;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sh(dir: &Path, cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the workflow sees of the outside: secrets and outputs.
#[derive(Default)]
struct Ctx {
    secrets: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
    steps: BTreeMap<String, BTreeMap<String, String>>,
    needs: BTreeMap<String, BTreeMap<String, String>>,
    workspace: PathBuf,
    temp: PathBuf,
    /// Files that skipped steps would have written.
    not_produced: Vec<String>,
}

/// `${{ expr }}` for the expressions the template may use; anything else
/// fails the test (so the template cannot grow a construct this runner ignores).
fn expand(s: &str, c: &Ctx) -> String {
    let re = regex::Regex::new(r"\$\{\{\s*([^}]+?)\s*\}\}").unwrap();
    re.replace_all(s, |m: &regex::Captures| {
        let e = &m[1];
        let parts: Vec<&str> = e.split('.').collect();
        match parts.as_slice() {
            ["secrets", n] => c.secrets.get(*n).cloned().unwrap_or_default(),
            ["env", n] => c.env.get(*n).cloned().unwrap_or_default(),
            ["steps", id, "outputs", n] => c
                .steps
                .get(*id)
                .and_then(|o| o.get(*n))
                .cloned()
                .unwrap_or_default(),
            ["needs", job, "outputs", n] => c
                .needs
                .get(*job)
                .and_then(|o| o.get(*n))
                .cloned()
                .unwrap_or_default(),
            ["github", "workspace"] => c.workspace.display().to_string(),
            ["runner", "temp"] => c.temp.display().to_string(),
            _ => panic!("the test runner does not know the expression ${{{{ {e} }}}}"),
        }
    })
    .into_owned()
}

fn env_map(v: &Value, c: &Ctx) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), expand(&s, c))
        })
        .collect()
}

/// `name=value` and `name<<DELIM ... DELIM` lines of GITHUB_OUTPUT / GITHUB_ENV.
fn read_kv(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if let Some((k, delim)) = l.split_once("<<") {
            let mut v = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                v.push(l);
            }
            out.insert(k.to_string(), v.join("\n"));
        } else if let Some((k, v)) = l.split_once('=') {
            out.insert(k.to_string(), v.to_string());
        }
    }
    out
}

struct StepLog {
    job: String,
    name: String,
    outcome: &'static str,
    output: String,
}

/// Run one job; returns false when a step failed.
#[allow(clippy::too_many_arguments)]
fn run_job(
    name: &str,
    job: &Value,
    wf_env: &Value,
    origin: &Path,
    scratch: &Path,
    base_env: &BTreeMap<String, String>,
    c: &mut Ctx,
    log: &mut Vec<StepLog>,
) -> bool {
    // Each job on its own "machine": workspace, temp and home of its own.
    let root = scratch.join(name);
    let ws = root.join("workspace");
    let temp = root.join("temp");
    let home = root.join("home");
    for d in [&root, &temp, &home] {
        std::fs::create_dir_all(d).unwrap();
    }
    c.workspace = ws.clone();
    c.temp = temp.clone();
    c.steps.clear();
    c.env = env_map(wf_env, c);
    c.env.extend(env_map(&job["env"], c));
    let summary = temp.join("step-summary.md");
    let mut failed = false;
    for (i, step) in job["steps"].as_array().unwrap().iter().enumerate() {
        let title = step["name"]
            .as_str()
            .or(step["uses"].as_str())
            .unwrap_or("step")
            .to_string();
        let cond = step["if"].as_str().unwrap_or("success()");
        let runs = match cond {
            "always()" => true,
            "success()" => !failed,
            other => panic!("the test runner does not know `if: {other}`"),
        };
        if !runs {
            log.push(StepLog {
                job: name.into(),
                name: title,
                outcome: "not run",
                output: String::new(),
            });
            continue;
        }
        if let Some(uses) = step["uses"].as_str() {
            let (outcome, output) = uses_step(uses, &step["with"], &ws, origin, c);
            failed |= outcome == "failure";
            log.push(StepLog {
                job: name.into(),
                name: title,
                outcome,
                output,
            });
            continue;
        }
        let script = expand(step["run"].as_str().expect("a step has run: or uses:"), c);
        let mut env = base_env.clone();
        env.extend(c.env.clone());
        env.extend(env_map(&step["env"], c));
        let output_file = temp.join(format!("output-{i}"));
        let env_file = temp.join(format!("env-{i}"));
        let script_file = temp.join(format!("step-{i}.sh"));
        std::fs::write(&script_file, &script).unwrap();
        for f in [&output_file, &env_file] {
            std::fs::write(f, "").unwrap();
        }
        let out = Command::new("bash")
            .args(["--noprofile", "--norc", "-eo", "pipefail"])
            .arg(&script_file)
            .current_dir(&ws)
            .env_clear()
            .envs(&env)
            .env("HOME", &home)
            .env("CI", "true")
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_WORKSPACE", &ws)
            .env("RUNNER_TEMP", &temp)
            .env("GITHUB_OUTPUT", &output_file)
            .env("GITHUB_ENV", &env_file)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(id) = step["id"].as_str() {
            c.steps.insert(id.into(), read_kv(&output_file));
        }
        c.env.extend(read_kv(&env_file));
        let ok = out.status.success();
        failed |= !ok;
        log.push(StepLog {
            job: name.into(),
            name: title,
            outcome: if ok { "success" } else { "failure" },
            output: text,
        });
    }
    let outputs = env_map(&job["outputs"], c);
    c.needs.insert(name.into(), outputs);
    let md = std::fs::read_to_string(&summary).unwrap_or_default();
    c.needs
        .get_mut(name)
        .unwrap()
        .insert("__summary".into(), md);
    !failed
}

fn uses_step(
    uses: &str,
    with: &Value,
    ws: &Path,
    origin: &Path,
    c: &mut Ctx,
) -> (&'static str, String) {
    let action = uses.split('@').next().unwrap();
    match action {
        "actions/checkout" => {
            sh(
                ws.parent().unwrap(),
                "git",
                &[
                    "clone",
                    "--quiet",
                    origin.to_str().unwrap(),
                    ws.to_str().unwrap(),
                ],
            );
            ("success", format!("cloned {}", origin.display()))
        }
        "github/codeql-action/upload-sarif" => {
            let name = expand(with["sarif_file"].as_str().unwrap(), c);
            if c.not_produced.contains(&name) {
                return (
                    "skipped",
                    format!("{name} comes from a step that cannot run here"),
                );
            }
            let file = ws.join(&name); // absolute names stay as they are
            match std::fs::read(&file) {
                Ok(b) => {
                    let v: Value = match serde_json::from_slice(&b) {
                        Ok(v) => v,
                        Err(e) => {
                            return ("failure", format!("{} is not JSON: {e}", file.display()));
                        }
                    };
                    if v["version"] == "2.1.0" && v["runs"].is_array() {
                        ("success", format!("{} is SARIF 2.1.0", file.display()))
                    } else {
                        ("failure", format!("{} is not SARIF 2.1.0", file.display()))
                    }
                }
                // Like the action: a missing file fails the step (it only runs
                // after a failure here, as `if: always()`).
                Err(e) => ("failure", format!("{}: {e}", file.display())),
            }
        }
        "aquasecurity/trivy-action" => {
            if let Some(out) = with["output"].as_str() {
                let out = expand(out, c);
                c.not_produced.push(out);
            }
            (
                "skipped",
                "not provable offline: trivy needs its vulnerability database from the internet"
                    .into(),
            )
        }
        other => panic!("the test runner does not know the action {other}"),
    }
}

#[tokio::test]
async fn ci_template_runs_as_written_and_the_deploy_lands() {
    let Some(kc) = k8s::kubeconfig("ci_template_runs_as_written_and_the_deploy_lands") else {
        return;
    };
    if std::env::var_os("PAKE_TEST_DOCKER").is_none() {
        eprintln!("SKIP ci_template: set PAKE_TEST_DOCKER=1 (scripts/test does)");
        return;
    }
    let root = repo_root();
    for script in ["scripts/docker-engine", "examples/backend/prepare"] {
        assert!(
            Command::new(root.join(script)).status().unwrap().success(),
            "{script}"
        );
    }
    assert!(
        Command::new(root.join("scripts/docker-engine"))
            .arg("registry")
            .status()
            .unwrap()
            .success()
    );

    // The repository a user has after `pake init`: the scaffold, the app's
    // source and a Dockerfile that builds offline (the example's), and
    // pake.yaml's image pointed at their registry.
    let app = format!("conv-ci-{}", k8s::suffix());
    let origin = tempfile::tempdir().unwrap();
    let o = origin.path();
    let init = k8s::pake(&kc, o, &["init", "--app", &app], &[]);
    assert!(init.status.success(), "{}", k8s::text(&init));
    for f in [
        "Dockerfile.production",
        "main.go",
        "main_test.go",
        "go.mod",
        ".dockerignore",
    ] {
        std::fs::copy(root.join("examples/backend").join(f), o.join(f)).unwrap();
    }
    let cfg = std::fs::read_to_string(o.join("pake.yaml")).unwrap();
    assert!(cfg.contains("image: registry.example.com/pake-backend"));
    std::fs::write(
        o.join("pake.yaml"),
        cfg.replace(
            "image: registry.example.com/pake-backend",
            &format!("image: 127.0.0.1:5000/{app}"),
        ),
    )
    .unwrap();
    let workflow_path = o.join(".github/workflows/pake.yml");
    let written = std::fs::read_to_string(&workflow_path)
        .unwrap_or_else(|e| panic!("init did not write {}: {e}", workflow_path.display()));
    assert_eq!(
        written,
        std::fs::read_to_string(root.join("templates/ci/github-actions.yml")).unwrap()
    );
    sh(o, "git", &["init", "--quiet", "-b", "main"]);
    sh(o, "git", &["add", "-A"]);
    sh(
        o,
        "git",
        &[
            "-c",
            "user.name=ci",
            "-c",
            "user.email=ci@example.invalid",
            "commit",
            "--quiet",
            "-m",
            "init",
        ],
    );

    // The secrets a user stores in the repository settings.
    let deployer_kc = {
        let text = std::fs::read_to_string(&kc).unwrap();
        text.lines()
            .map(|l| {
                if l.starts_with("current-context:") {
                    format!("current-context: {}", k8s::DEPLOYER)
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut c = Ctx::default();
    c.secrets.insert("KUBECONFIG".into(), deployer_kc);
    c.secrets.insert("REGISTRY_USERNAME".into(), "ci".into());
    c.secrets.insert("REGISTRY_PASSWORD".into(), k8s::suffix());

    // A runner's PATH: pake "installed", plus the system's tools.
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_pake"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let base_env: BTreeMap<String, String> = [("PATH".to_string(), path)].into();

    let wf: Value = serde_saphyr::from_str(&written).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mut log = Vec::new();
    let mut ok = true;
    for (name, job) in wf["jobs"].as_object().unwrap() {
        for need in job["needs"].as_str().into_iter() {
            assert!(
                c.needs.contains_key(need),
                "job {name} needs {need}, which has not run"
            );
        }
        if !ok {
            break;
        }
        ok = run_job(
            name,
            job,
            &wf["env"],
            o,
            scratch.path(),
            &base_env,
            &mut c,
            &mut log,
        );
    }
    let report: String = log
        .iter()
        .map(|s| format!("[{}] {} -> {}\n{}\n", s.job, s.name, s.outcome, s.output))
        .collect();

    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let image = c
        .needs
        .get("build")
        .and_then(|o| o.get("image"))
        .cloned()
        .unwrap_or_default();
    let live =
        kube::Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(admin.clone(), "pake-prod")
            .get_opt(&format!("{app}-v1"))
            .await
            .unwrap();
    k8s::cleanup_app(&admin, "pake-prod", &app).await;
    // The engine's tags of the built image (the registry keeps its copy, like a real one).
    let repo = format!("127.0.0.1:5000/{app}");
    if let Ok(out) = Command::new("docker")
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}", &repo])
        .output()
    {
        let tags: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        eprintln!("cleanup: images of {repo}: {tags:?}");
        if !tags.is_empty() {
            let _ = Command::new("docker")
                .args(["image", "rm", "-f"])
                .args(&tags)
                .output();
        }
    }

    assert!(ok, "a step failed:\n{report}");
    let skipped: Vec<&str> = log
        .iter()
        .filter(|s| s.outcome == "skipped")
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        skipped,
        [
            "Scan the pushed image (fails on HIGH or CRITICAL)",
            "Upload the scan to code scanning"
        ],
        "{report}"
    );
    assert!(
        log.iter()
            .all(|s| matches!(s.outcome, "success" | "skipped")),
        "{report}"
    );
    assert!(
        image.starts_with(&format!("127.0.0.1:5000/{app}@sha256:")),
        "build output image = {image:?}\n{report}"
    );
    // Each job's step summary got pake's table.
    let summary = |job: &str| c.needs[job]["__summary"].clone();
    assert!(
        summary("build").contains("### pake build: 127.0.0.1:5000/"),
        "{}",
        summary("build")
    );
    assert!(
        summary("build").contains("### pake audit:"),
        "{}",
        summary("build")
    );
    assert!(
        summary("deploy").contains("### pake deploy:"),
        "{}",
        summary("deploy")
    );
    // The checkout stays clean: the build is tagged with the commit, not `-dirty`.
    assert!(
        !report.contains("-dirty"),
        "the build saw a changed checkout:\n{report}"
    );
    let live = live.unwrap_or_else(|| panic!("no Deployment {app}-v1 in pake-prod\n{report}"));
    let live_image = live.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone();
    assert_eq!(live_image.as_deref(), Some(image.as_str()), "{report}");
}
