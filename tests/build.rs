//! `pake build` against a real Docker engine (and the local registry for push).
//!
//! Needs PAKE_TEST_DOCKER=1 (scripts/test sets it after `scripts/docker-engine`
//! and `scripts/docker-engine registry`); without it each test prints why it
//! is skipped. Base images are made locally (`docker import` of Debian's
//! busybox-static), since no registry on the internet is reachable here.
//! Every test checks that no smoke container of its image is left behind.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pake::docker::Engine;
use pake::docker::container::RunSpec;
use serde_json::Value;

const BUSYBOX: &str = "pake-test/busybox:1";
const BUSYBOX_ENVUSER: &str = "pake-test/busybox-envuser:1";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Whether the engine tests run; starts the engine (idempotent) when they do.
fn docker_enabled(test: &str) -> bool {
    if std::env::var_os("PAKE_TEST_DOCKER").is_none() {
        eprintln!(
            "skipped {test}: set PAKE_TEST_DOCKER=1 to run the Docker engine tests (scripts/test does)"
        );
        return false;
    }
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let root = repo_root();
        let st = Command::new(root.join("scripts/docker-engine"))
            .status()
            .unwrap();
        assert!(st.success(), "scripts/docker-engine failed");
        // The Go builder base for the example, and busybox-static for ours.
        let st = Command::new(root.join("examples/backend/prepare"))
            .status()
            .unwrap();
        assert!(st.success(), "examples/backend/prepare failed");
        rt().block_on(make_bases());
    });
    true
}

/// `pake-test/busybox:1` and a variant whose ENV names root as the app user.
async fn make_bases() {
    let engine = Engine::connect().await.unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    let applets = String::from_utf8(list.stdout).unwrap();
    let busybox = std::fs::read("/bin/busybox").unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        b.append_data(&mut h, path, std::io::empty()).unwrap();
    };
    dir(&mut b, "bin/", 0o755);
    dir(&mut b, "etc/", 0o755);
    dir(&mut b, "tmp/", 0o1777);
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(busybox.len() as u64);
    b.append_data(&mut h, "bin/busybox", busybox.as_slice())
        .unwrap();
    for a in applets.lines().filter(|a| *a != "busybox") {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        b.append_link(&mut h, format!("bin/{a}"), "busybox")
            .unwrap();
    }
    let passwd = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/nonexistent:/bin/false\n";
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(passwd.len() as u64);
    b.append_data(&mut h, "etc/passwd", &passwd[..]).unwrap();
    let rootfs = b.into_inner().unwrap();
    engine
        .import_rootfs(rootfs.clone(), "pake-test/busybox", "1", &["ENV PATH=/bin"])
        .await
        .unwrap();
    engine
        .import_rootfs(
            rootfs,
            "pake-test/busybox-envuser",
            "1",
            &["ENV PATH=/bin", "ENV APP_USER=0"],
        )
        .await
        .unwrap();
    assert!(engine.image_id(BUSYBOX).await.is_ok());
    assert!(engine.image_id(BUSYBOX_ENVUSER).await.is_ok());
}

/// A temporary copy of a fixture (or of `dir`), as a committed git repository.
fn project(dir: &Path, image: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    copy_dir(dir, t.path());
    let ignore = repo_root().join("tests/fixtures/build/dockerignore");
    if !t.path().join(".dockerignore").exists() {
        std::fs::copy(ignore, t.path().join(".dockerignore")).unwrap();
    }
    let cfg = std::fs::read_to_string(t.path().join("pake.yaml")).unwrap();
    let cfg: String = cfg
        .lines()
        .map(|l| {
            if l.starts_with("image:") {
                format!("image: {image}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(t.path().join("pake.yaml"), cfg).unwrap();
    for args in [
        &["init", "-q"][..],
        &["add", "."],
        &[
            "-c",
            "user.email=t@pake.test",
            "-c",
            "user.name=pake test",
            "commit",
            "-q",
            "-m",
            "fixture",
        ],
    ] {
        let o = Command::new("git")
            .arg("-C")
            .arg(t.path())
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {o:?}");
    }
    t
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == ".pake" {
            continue;
        }
        let dest = to.join(&name);
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

struct Run {
    code: i32,
    json: Value,
    stderr: String,
}

fn pake(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pake"));
    c.current_dir(dir).args(["-o", "json", "build"]).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    Run {
        code: o.status.code().unwrap_or(-1),
        json,
        stderr: String::from_utf8_lossy(&o.stderr).to_string(),
    }
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

/// Smoke containers of `repo` still present (running or not).
fn leftovers(repo: &str) -> Vec<String> {
    rt().block_on(async {
        let e = Engine::connect().await.unwrap();
        e.containers_with_label(&format!("io.pake.repository={repo}"))
            .await
            .unwrap()
    })
}

fn remove_images(run: &Run) {
    let tags: Vec<String> = run.json["tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    rt().block_on(async {
        let e = Engine::connect().await.unwrap();
        for t in tags {
            e.remove_image(&t, true).await.unwrap();
        }
    });
}

#[test]
fn example_builds_and_passes_every_check() {
    if !docker_enabled("example_builds_and_passes_every_check") {
        return;
    }
    let dir = repo_root().join("examples/backend");
    let r = pake(&dir, &[], &[]);
    assert_eq!(r.code, 0, "{:#}\n{}", r.json, r.stderr);
    let j = &r.json;
    assert_eq!(j["ok"], true);
    assert_eq!(
        j["checks"]["dockerfile"],
        Value::Array(vec![]),
        "every Dockerfile check passes"
    );
    let image_checks = j["checks"]["image"].as_array().unwrap();
    assert!(
        image_checks.iter().all(|f| f["severity"] == "info"),
        "only notes on the image: {image_checks:#?}"
    );
    assert_eq!(j["smoke"]["status"], "passed");
    assert_eq!(j["smoke"]["health"], "healthy");
    assert_eq!(j["smoke"]["readOnlyRootfs"], true);
    assert_eq!(j["smoke"]["user"], "1000:1000");
    assert_eq!(j["smoke"]["capDrop"], serde_json::json!(["ALL"]));
    assert_eq!(j["smoke"]["removed"], true);
    let commit = j["gitCommit"].as_str().unwrap();
    let tag = j["tags"][0].as_str().unwrap();
    assert!(
        tag.starts_with("127.0.0.1:5000/pake-example/backend:")
            && commit.starts_with(tag.rsplit(':').next().unwrap().trim_end_matches("-dirty")),
        "tagged with the git commit: {tag} vs {commit}"
    );
    // The image carries the provenance labels and runs as 1000:1000.
    let facts = rt().block_on(async {
        Engine::connect()
            .await
            .unwrap()
            .image_facts(tag)
            .await
            .unwrap()
    });
    assert_eq!(facts.user, "1000:1000");
    assert_eq!(facts.labels["org.opencontainers.image.revision"], commit);
    assert!(facts.labels["org.opencontainers.image.created"].ends_with('Z'));
    assert!(facts.healthcheck.is_some());
    let record = pake::steps::build::BuildRecord::load(&dir)
        .unwrap()
        .unwrap();
    assert_eq!(record.image_id, j["imageId"].as_str().unwrap());
    assert_eq!(record.digest, None, "not pushed");
    assert!(leftovers("127.0.0.1:5000/pake-example/backend").is_empty());
}

#[test]
fn root_or_missing_user_refused_before_building() {
    if !docker_enabled("root_or_missing_user_refused_before_building") {
        return;
    }
    for (fixture, id, line) in [
        ("root-user", "DOCKERFILE-USER-ROOT", 9),
        ("no-user", "DOCKERFILE-USER-MISSING", 4),
    ] {
        let repo = format!("pake-test/{fixture}");
        let p = project(
            &repo_root().join("tests/fixtures/build").join(fixture),
            &repo,
        );
        let r = pake(p.path(), &[], &[]);
        assert_eq!(r.code, 1, "{fixture}: {:#}", r.json);
        assert_eq!(r.json["failure"]["stage"], "checks");
        assert!(
            r.json["failure"]["message"]
                .as_str()
                .unwrap()
                .starts_with("refused before building")
        );
        let f = r.json["checks"]["dockerfile"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .unwrap_or_else(|| panic!("{fixture}: no {id} in {:#}", r.json["checks"]));
        assert_eq!(f["line"], line, "{fixture}");
        assert!(f["fix"].as_str().unwrap().contains("USER 1000:1000"));
        assert_eq!(
            r.json["imageId"],
            Value::Null,
            "{fixture}: nothing was built"
        );
        assert!(r.json["tags"].as_array().unwrap().is_empty());
        assert!(!p.path().join(".pake/build.json").exists());
        assert!(leftovers(&repo).is_empty());
    }
}

#[test]
fn root_image_caught_by_the_inspect_check() {
    if !docker_enabled("root_image_caught_by_the_inspect_check") {
        return;
    }
    // 1. The user comes from the base image's ENV: invisible to the static checks.
    let repo = "pake-test/env-root";
    let p = project(&repo_root().join("tests/fixtures/build/env-root"), repo);
    let r = pake(p.path(), &[], &[]);
    assert_eq!(r.code, 1, "{:#}", r.json);
    assert!(
        ids(&r.json["checks"]["dockerfile"]).contains(&"DOCKERFILE-USER-UNRESOLVED".to_string())
    );
    assert_eq!(r.json["failure"]["stage"], "image-checks", "{:#}", r.json);
    let root = r.json["checks"]["image"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "IMAGE-USER-ROOT")
        .expect("IMAGE-USER-ROOT");
    assert_eq!(root["severity"], "critical");
    assert!(root["message"].as_str().unwrap().contains("\"0:0\""));
    assert!(r.json["imageId"].is_string(), "it was built");
    assert_eq!(r.json["smoke"], Value::Null, "a root image is not run");
    assert!(
        !p.path().join(".pake/build.json").exists(),
        "no record of a failed build"
    );
    remove_images(&r);

    // 2. --force builds past the static USER root error, but never past the image check.
    let repo2 = "pake-test/root-user-forced";
    let p = project(&repo_root().join("tests/fixtures/build/root-user"), repo2);
    let r = pake(p.path(), &["--force"], &[]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.json["forced"],
        serde_json::json!(["DOCKERFILE-USER-ROOT"])
    );
    assert!(
        r.json["warnings"][0]
            .as_str()
            .unwrap()
            .contains("--force: building despite 1 error")
    );
    assert_eq!(r.json["failure"]["stage"], "image-checks");
    assert!(ids(&r.json["checks"]["image"]).contains(&"IMAGE-USER-ROOT".to_string()));
    remove_images(&r);
    assert!(leftovers(repo).is_empty() && leftovers(repo2).is_empty());
}

#[test]
fn smoke_run_catches_an_image_that_cannot_run_read_only() {
    if !docker_enabled("smoke_run_catches_an_image_that_cannot_run_read_only") {
        return;
    }
    let repo = "pake-test/writes-rootfs";
    let p = project(
        &repo_root().join("tests/fixtures/build/writes-rootfs"),
        repo,
    );
    let r = pake(p.path(), &[], &[]);
    assert_eq!(r.code, 1, "{:#}", r.json);
    let j = &r.json;
    assert_eq!(
        j["checks"]["dockerfile"],
        Value::Array(vec![]),
        "the static checks pass"
    );
    assert_eq!(j["failure"]["stage"], "smoke", "{j:#}");
    assert_eq!(j["smoke"]["status"], "failed");
    assert!(
        j["smoke"]["detail"]
            .as_str()
            .unwrap()
            .contains("exited with code"),
        "{j:#}"
    );
    let logs = j["smoke"]["logs"].as_array().unwrap();
    assert!(
        logs.iter()
            .any(|l| l.as_str().unwrap().contains("Read-only file system")),
        "the container's own words are reported: {logs:?}"
    );
    assert_eq!(j["smoke"]["removed"], true);
    assert!(leftovers(repo).is_empty());

    // Control: the same image with a writable root stays up, so read-only is what the smoke run caught.
    let tag = j["tags"][0].as_str().unwrap().to_string();
    rt().block_on(async {
        let e = Engine::connect().await.unwrap();
        let name = format!("pake-test-control-{}", std::process::id());
        let guard = pake::docker::container::ContainerGuard::new(e.clone(), name.clone());
        e.run(&RunSpec {
            name: name.clone(),
            image: tag.clone(),
            user: "1000:1000".into(),
            read_only_rootfs: false,
            cap_drop: vec!["ALL".into()],
            security_opt: vec!["no-new-privileges".into()],
            network_mode: "none".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let st = e.state(&name).await.unwrap();
        guard.remove().await.unwrap();
        assert!(st.running, "with a writable root it runs: {st:?}");
        assert!(
            e.containers_with_label("io.pake.repository=pake-test/writes-rootfs")
                .await
                .unwrap()
                .is_empty()
        );
    });
    remove_images(&r);
}

/// Minimal HTTP GET to the local registry: status, headers (lowercased).
fn registry_get(path: &str, accept: &str) -> (u16, Vec<(String, String)>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect("127.0.0.1:5000").expect("registry on 127.0.0.1:5000");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1:5000\r\nAccept: {accept}\r\nConnection: close\r\n\r\n").unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let mut lines = buf.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers)
}

#[test]
fn push_to_the_local_registry_and_deploy_by_digest() {
    if !docker_enabled("push_to_the_local_registry_and_deploy_by_digest") {
        return;
    }
    let st = Command::new(repo_root().join("scripts/docker-engine"))
        .arg("registry")
        .status()
        .unwrap();
    assert!(st.success());
    let repo = "127.0.0.1:5000/pake-test-backend";
    let p = project(&repo_root().join("examples/backend"), repo);
    // Deploy by the recorded digest (the lead's `digest: record`).
    let cfg = std::fs::read_to_string(p.path().join("pake.yaml")).unwrap();
    assert!(
        cfg.contains("  dev:\n    namespace: pake-dev\n"),
        "the example's dev environment changed shape"
    );
    let cfg = cfg.replacen(
        "  dev:\n    namespace: pake-dev\n",
        "  dev:\n    namespace: pake-dev\n    digest: record\n",
        1,
    );
    std::fs::write(p.path().join("pake.yaml"), cfg).unwrap();

    // A half-configured login is refused before anything is built.
    let r = pake(
        p.path(),
        &["--push", "--no-smoke"],
        &[("PAKE_REGISTRY_USER", "ci")],
    );
    assert_eq!(r.code, 2, "{:#}", r.json);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("PAKE_REGISTRY_PASSWORD")
    );

    let r = pake(p.path(), &["--push", "--tag", "candidate"], &[]);
    assert_eq!(r.code, 0, "{:#}\n{}", r.json, r.stderr);
    let digest = r.json["push"]["digest"].as_str().unwrap().to_string();
    assert!(digest.starts_with("sha256:") && digest.len() == 71);
    assert_eq!(r.json["push"]["resolved"], true);
    assert_eq!(r.json["push"]["reference"], format!("{repo}@{digest}"));
    assert_eq!(r.json["push"]["pushedTags"].as_array().unwrap().len(), 2);

    // The registry serves the manifest by that digest.
    let (status, headers) = registry_get(
        &format!("/v2/pake-test-backend/manifests/{digest}"),
        "application/vnd.docker.distribution.manifest.v2+json",
    );
    assert_eq!(status, 200);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "docker-content-digest" && *v == digest),
        "{headers:?}"
    );
    // ... and by the tag, to the same digest.
    let (_, headers) = registry_get(
        "/v2/pake-test-backend/manifests/candidate",
        "application/vnd.docker.distribution.manifest.v2+json",
    );
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "docker-content-digest" && *v == digest),
        "{headers:?}"
    );

    // The record says what to deploy, and the deploy path resolves to it.
    let record = pake::steps::build::BuildRecord::load(p.path())
        .unwrap()
        .unwrap();
    assert_eq!(record.digest.as_deref(), Some(digest.as_str()));
    assert_eq!(record.reference, format!("{repo}@{digest}"));
    let text = std::fs::read_to_string(p.path().join(".pake/build.json")).unwrap();
    assert!(!text.to_lowercase().contains("password"));
    let rendered = Command::new(env!("CARGO_BIN_EXE_pake"))
        .current_dir(p.path())
        .args(["render", "--env", "dev"])
        .output()
        .unwrap();
    let rendered = String::from_utf8_lossy(&rendered.stdout);
    assert!(
        rendered.contains(&format!("{repo}@{digest}")),
        "deploy uses the digest:\n{rendered}"
    );
    assert!(leftovers(repo).is_empty());
    remove_images(&r);
}

#[test]
fn ctrl_c_during_the_smoke_run_leaves_no_container() {
    if !docker_enabled("ctrl_c_during_the_smoke_run_leaves_no_container") {
        return;
    }
    let repo = "pake-test/interrupted";
    let p = project(&repo_root().join("examples/backend"), repo);
    // stderr to a file: a pipe nobody reads while pake builds could fill and stall it.
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("pake-stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pake"))
        .current_dir(p.path())
        .args(["build", "--smoke-window", "120s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // A cold machine compiles the Go service first.
    let deadline = Instant::now() + Duration::from_secs(480);
    let mut seen = Vec::new();
    while seen.is_empty() {
        assert!(Instant::now() < deadline, "no smoke container appeared");
        assert!(
            child.try_wait().unwrap().is_none(),
            "pake exited before its smoke run"
        );
        std::thread::sleep(Duration::from_millis(300));
        seen = leftovers(repo);
    }
    assert!(seen[0].starts_with("pake-smoke-"), "{seen:?}");
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        leftovers(repo).is_empty(),
        "the smoke container was removed on Ctrl-C"
    );
    remove_repo(repo);
}

/// Remove every tag of `repo` (whatever the build tagged it with).
fn remove_repo(repo: &str) {
    rt().block_on(async {
        let e = Engine::connect().await.unwrap();
        let images = e
            .docker
            .list_images(Some(bollard::query_parameters::ListImagesOptions {
                filters: Some(std::collections::HashMap::from([(
                    "reference".to_string(),
                    vec![repo.to_string()],
                )])),
                ..Default::default()
            }))
            .await
            .unwrap();
        for i in images {
            for t in i.repo_tags {
                e.remove_image(&t, true).await.unwrap();
            }
        }
    });
}

#[test]
fn scan_and_sign_never_pass_silently() {
    if !docker_enabled("scan_and_sign_never_pass_silently") {
        return;
    }
    let repo = "pake-test/scanned";
    let p = project(&repo_root().join("examples/backend"), repo);
    let bin = tempfile::tempdir().unwrap();
    // A PATH with git but without trivy or cosign.
    let git = Command::new("sh")
        .args(["-c", "command -v git"])
        .output()
        .unwrap();
    let git_dir = Path::new(String::from_utf8_lossy(&git.stdout).trim())
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!("{}:{}", bin.path().display(), git_dir.display());

    let r = pake(p.path(), &["--scan", "--no-smoke"], &[("PATH", &path)]);
    assert_eq!(r.code, 1, "{:#}", r.json);
    assert_eq!(r.json["scan"]["status"], "skipped");
    assert!(
        r.json["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("trivy not found on PATH")
    );
    let r = pake(
        p.path(),
        &["--scan", "--no-smoke", "--force"],
        &[("PATH", &path)],
    );
    assert_eq!(r.code, 0, "--force continues, with a warning");
    assert_eq!(r.json["scan"]["status"], "skipped");
    assert!(
        r.json["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("continuing without the scan")),
        "{:#}",
        r.json["warnings"]
    );

    // A trivy that finds something fails the build; one that finds nothing passes.
    let trivy = bin.path().join("trivy");
    let args_file = bin.path().join("args");
    let script = |code: i32| {
        format!(
            "#!/bin/sh\necho \"$@\" > {}\necho 'CVE-2099-0001 CRITICAL'\nexit {code}\n",
            args_file.display()
        )
    };
    std::fs::write(&trivy, script(13)).unwrap();
    std::fs::set_permissions(&trivy, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let r = pake(
        p.path(),
        &["--scan", "--no-smoke", "--force"],
        &[("PATH", &path)],
    );
    assert_eq!(
        r.code, 1,
        "--force does not override findings: {:#}",
        r.json
    );
    assert!(
        r.json["scan"]["detail"]
            .as_str()
            .unwrap()
            .contains("CVE-2099-0001")
    );
    let args = std::fs::read_to_string(&args_file).unwrap();
    assert!(
        args.starts_with("image --severity HIGH,CRITICAL --exit-code 13"),
        "{args}"
    );
    std::fs::write(&trivy, script(1)).unwrap();
    let r = pake(p.path(), &["--scan", "--no-smoke"], &[("PATH", &path)]);
    assert_eq!(r.code, 1);
    assert!(
        r.json["scan"]["detail"]
            .as_str()
            .unwrap()
            .contains("trivy itself failed")
    );
    std::fs::write(&trivy, script(0)).unwrap();
    let passed = pake(p.path(), &["--scan", "--no-smoke"], &[("PATH", &path)]);
    assert_eq!(passed.code, 0, "{:#}", passed.json);
    assert_eq!(passed.json["scan"]["status"], "passed");

    // --sign needs a pushed digest.
    let r = pake(p.path(), &["--sign"], &[("PATH", &path)]);
    assert_eq!(r.code, 2);
    remove_images(&passed);
    assert!(leftovers(repo).is_empty());
}
