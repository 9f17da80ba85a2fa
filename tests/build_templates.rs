//! Offline checks of what `pake build` ships: the Docker templates users get
//! from `pake init`, and the example backend's Dockerfile. No engine needed.

use std::path::{Path, PathBuf};

use pake::checks::Severity;
use pake::checks::dockerfile::check_dockerfile;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A context holding `files` and the given ignore file.
fn context(ignore: &Path, files: &[&str]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(ignore, d.path().join(".dockerignore")).unwrap();
    for f in files {
        let p = d.path().join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "x").unwrap();
    }
    d
}

#[test]
fn template_dockerfile_and_dockerignore_pass_every_check() {
    let df = root().join("templates/docker/Dockerfile.production");
    let text = std::fs::read_to_string(&df).unwrap();
    // A typical project: sources, a local .env, a key, git, build output.
    let ctx = context(
        &root().join("templates/docker/.dockerignore"),
        &[
            "src/main.py",
            "pyproject.toml",
            "poetry.lock",
            ".env",
            ".env.example",
            "certs/dev.key",
            ".git/HEAD",
            "node_modules/x/index.js",
            "dist/app.whl",
        ],
    );
    let f = check_dockerfile(&df, &text, Some(ctx.path()));
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn template_dockerfile_is_refused_when_the_final_user_becomes_root() {
    let df = root().join("templates/docker/Dockerfile.production");
    let text = std::fs::read_to_string(&df)
        .unwrap()
        .replace("USER 1000:1000", "USER 1000:1000\nUSER root");
    let f = check_dockerfile(&df, &text, None);
    let root_user = f.iter().find(|f| f.id == "DOCKERFILE-USER-ROOT").unwrap();
    assert!(root_user.severity >= Severity::High);
    let line = text.lines().position(|l| l == "USER root").unwrap() + 1;
    assert_eq!(root_user.line, Some(line));
}

#[test]
fn example_dockerfile_passes_every_check() {
    let dir = root().join("examples/backend");
    let df = dir.join("Dockerfile.production");
    let text = std::fs::read_to_string(&df).unwrap();
    let f = check_dockerfile(&df, &text, Some(&dir));
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn compose_file_is_hardened() {
    let text =
        std::fs::read_to_string(root().join("templates/docker/docker-compose.secure.yml")).unwrap();
    let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let b = &v["services"]["backend"];
    assert_eq!(b["read_only"], true);
    assert_eq!(b["user"], "1000:1000");
    assert_eq!(b["cap_drop"], serde_json::json!(["ALL"]));
    assert!(
        b["security_opt"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().starts_with("no-new-privileges"))
    );
    let tmpfs: Vec<&str> = b["tmpfs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tmpfs.iter().any(|t| t.starts_with("/tmp:")), "{tmpfs:?}");
    assert!(b["healthcheck"]["test"].is_array());
    assert!(b["deploy"]["resources"]["limits"]["memory"].is_string());
    assert!(b["deploy"]["resources"]["limits"]["cpus"].is_string());
    for p in b["ports"].as_array().unwrap() {
        assert!(
            p.as_str().unwrap().starts_with("127.0.0.1:"),
            "published beyond loopback: {p}"
        );
    }
    assert!(b.get("privileged").is_none());
    assert!(
        b.get("env_file").is_none(),
        "secrets come from files under secrets/, not env files"
    );
    assert_eq!(b["build"]["dockerfile"], "Dockerfile.production");
}

fn pake_json(args: &[&str], docker_host: &str) -> (i32, serde_json::Value) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_pake"))
        .args(args)
        .env("DOCKER_HOST", docker_host)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)));
    (o.status.code().unwrap(), v)
}

#[test]
fn engine_unreachable_is_exit_3_and_the_report_keeps_the_checks() {
    let cfg = root().join("examples/backend/pake.yaml");
    let (code, v) = pake_json(
        &["-o", "json", "--config", cfg.to_str().unwrap(), "build"],
        "unix:///nonexistent/pake-test.sock",
    );
    assert_eq!(code, 3, "{v:#}");
    assert_eq!(v["failure"]["stage"], "engine");
    assert_eq!(v["failure"]["exitCode"], 3);
    assert_eq!(v["checks"]["dockerfile"], serde_json::json!([]));
}

#[test]
fn a_root_dockerfile_is_refused_without_contacting_the_engine() {
    let cfg = root().join("tests/fixtures/build/root-user/pake.yaml");
    // No engine at all: the refusal happens before pake connects.
    let (code, v) = pake_json(
        &["-o", "json", "--config", cfg.to_str().unwrap(), "build"],
        "unix:///nonexistent/pake-test.sock",
    );
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["failure"]["stage"], "checks");
    let ids: Vec<&str> = v["checks"]["dockerfile"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"DOCKERFILE-USER-ROOT"), "{ids:?}");
    assert_eq!(
        v["engineApiVersion"],
        serde_json::Value::Null,
        "the engine was never asked"
    );
    assert_eq!(v["apiVersion"], "pake.dev/v1");
}
