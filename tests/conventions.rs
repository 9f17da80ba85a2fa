//! The commands pake is known by work as written, in the example's folder,
//! with no extra flags (issue 14): the default environment, `pake env`,
//! config discovery, and the first line naming environment, context and
//! namespace. The cluster test runs as the `deployer` identity, selected the
//! kubectl way (the kubeconfig's current context), never with --context.

mod k8s;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A copy of examples/backend in a fresh directory (a git-less project), with
/// the app renamed so no other test (or the demo) shares its objects.
fn example_copy(app: &str) -> tempfile::TempDir {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/backend");
    let d = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), d.path().join(e.file_name())).unwrap();
        }
    }
    let p = d.path().join("pake.yaml");
    let yaml = std::fs::read_to_string(&p).unwrap();
    assert!(yaml.contains("\napp: backend\n"));
    assert!(yaml.contains("\ndefaultEnvironment: dev\n"), "{yaml}");
    std::fs::write(
        &p,
        yaml.replace("\napp: backend\n", &format!("\napp: {app}\n")),
    )
    .unwrap();
    d
}

/// Run pake exactly as a user types it: `args` and nothing else. No
/// --kubeconfig/--context: KUBECONFIG (when given) picks the cluster.
fn pake_as_typed(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pake"));
    c.current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .env_remove("PAKE_ENV")
        .env_remove("PAKE_CONFIG")
        .env_remove("KUBECONFIG")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn first_line(s: &[u8]) -> String {
    String::from_utf8_lossy(s)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// The test kubeconfig with the deployer as its current context, as a CI
/// job's kubeconfig would be.
fn deployer_kubeconfig(kc: &Path, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(kc).unwrap();
    let mut found = false;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("current-context:") {
                found = true;
                format!("current-context: {}", k8s::DEPLOYER)
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(found, "no current-context in {}", kc.display());
    let path = dir.join("deployer.kubeconfig");
    std::fs::write(&path, out.join("\n") + "\n").unwrap();
    path
}

#[test]
fn example_renders_its_default_environment_and_says_so_first() {
    let p = example_copy("conv-render");
    let out = pake_as_typed(p.path(), &["render"], &[]);
    assert!(out.status.success(), "{}", k8s::text(&out));
    assert_eq!(
        first_line(&out.stderr),
        "environment dev (defaultEnvironment in pake.yaml) · context none (offline) · namespace pake-dev"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("namespace: pake-dev"));
    // --env and PAKE_ENV still win.
    let out = pake_as_typed(p.path(), &["render"], &[("PAKE_ENV", "staging")]);
    assert!(
        first_line(&out.stderr).starts_with("environment staging (--env/PAKE_ENV)"),
        "{}",
        k8s::text(&out)
    );
}

#[test]
fn env_use_is_kept_per_checkout_and_listed_like_get_contexts() {
    let p = example_copy("conv-envuse");
    let out = pake_as_typed(p.path(), &["env"], &[]);
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", k8s::text(&out));
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].starts_with("CURRENT  NAME"), "{t}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("*") && l.contains(" dev ")),
        "{t}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with('*')).count(),
        1,
        "{t}"
    );

    let out = pake_as_typed(p.path(), &["env", "use", "staging"], &[]);
    assert!(out.status.success(), "{}", k8s::text(&out));
    assert_eq!(
        std::fs::read_to_string(p.path().join(".pake/env")).unwrap(),
        "staging\n"
    );
    let out = pake_as_typed(p.path(), &["env", "current"], &[]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "staging");
    let out = pake_as_typed(p.path(), &["render"], &[]);
    assert!(
        first_line(&out.stderr).starts_with("environment staging (`pake env use`)"),
        "{}",
        k8s::text(&out)
    );
    // -o json / -o yaml carry the header.
    let out = pake_as_typed(p.path(), &["env", "-o", "json"], &[]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["apiVersion"], "pake.dev/v1");
    assert_eq!(v["kind"], "EnvironmentList");
    assert_eq!(v["current"], "staging");
    assert_eq!(v["source"], "checkout");
    let out = pake_as_typed(p.path(), &["env", "-o", "yaml"], &[]);
    let y: serde_json::Value =
        serde_saphyr::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(y, v);

    // An unknown name changes nothing.
    let out = pake_as_typed(p.path(), &["env", "use", "qa"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", k8s::text(&out));
    assert_eq!(
        std::fs::read_to_string(p.path().join(".pake/env")).unwrap(),
        "staging\n"
    );
    let out = pake_as_typed(p.path(), &["env", "use", "--unset"], &[]);
    assert!(out.status.success(), "{}", k8s::text(&out));
    let out = pake_as_typed(p.path(), &["env", "current"], &[]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "dev");
}

#[test]
fn pake_yaml_is_found_in_a_parent_directory_and_through_pake_config() {
    let p = example_copy("conv-discover");
    let sub = p.path().join("cmd/server");
    std::fs::create_dir_all(&sub).unwrap();
    let out = pake_as_typed(&sub, &["render"], &[]);
    assert!(out.status.success(), "{}", k8s::text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("name: conv-discover-v1"));

    // Not above a repository root.
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(other.path().join(".git")).unwrap();
    let out = pake_as_typed(other.path(), &["render"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", k8s::text(&out));
    assert!(
        k8s::text(&out).contains("no pake.yaml in"),
        "{}",
        k8s::text(&out)
    );

    // PAKE_CONFIG is the environment twin of --config.
    let cfg = p.path().join("pake.yaml");
    let out = pake_as_typed(
        other.path(),
        &["render"],
        &[("PAKE_CONFIG", cfg.to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", k8s::text(&out));
}

/// The user's list, verbatim, against the shared cluster: `pake deploy --env
/// prod --yes` (`--yes` because a test is not interactive), then in the
/// default environment `pake deploy`, `pake bluegreen deploy v2`,
/// `pake bluegreen switch v2` and `pake rotate-secret database-credentials`.
#[tokio::test]
async fn the_commands_pake_is_known_by_work_as_written() {
    let Some(kc) = k8s::kubeconfig("the_commands_pake_is_known_by_work_as_written") else {
        return;
    };
    let app = format!("conv-{}", k8s::suffix());
    let p = example_copy(&app);
    // The Secret keeps its name (`database-credentials` is part of the
    // command under test), so the environments move to namespaces the demo
    // (backend in pake-dev) and the other tests (pake-test) do not use.
    let cfg = p.path().join("pake.yaml");
    let yaml = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("namespace: pake-staging", "namespace: pake-test")
        .replace("namespace: pake-prod", "namespace: pake-staging")
        .replace("namespace: pake-dev", "namespace: pake-system");
    // This test is about the command line, not about containers running: keep
    // dev off the real node (whose kubelet would pull an image nobody pushed).
    let yaml = without_real_node(&yaml);
    std::fs::write(&cfg, yaml).unwrap();
    let kcfg = deployer_kubeconfig(&kc, p.path());
    let env = [
        ("KUBECONFIG", kcfg.to_str().unwrap()),
        ("PAKE_DEMO_DB_USER", "demo-app"),
    ];
    let admin = k8s::client(&kc, k8s::ADMIN).await;
    let run = |args: &[&str]| {
        let out = pake_as_typed(p.path(), args, &env);
        (
            out.status.success(),
            k8s::text(&out),
            first_line(&out.stderr),
        )
    };

    let steps: Vec<(&[&str], &str)> = vec![
        (
            &["deploy", "--env", "prod", "--yes"],
            "environment prod (--env/PAKE_ENV, protected) · context pake-local-deployer · namespace pake-staging",
        ),
        (
            &["deploy"],
            "environment dev (defaultEnvironment in pake.yaml) · context pake-local-deployer · namespace pake-system",
        ),
        (
            &["bluegreen", "deploy", "v2"],
            "environment dev (defaultEnvironment in pake.yaml) · context pake-local-deployer · namespace pake-system",
        ),
        (
            &["bluegreen", "switch", "v2", "--dry-run"],
            "environment dev (defaultEnvironment in pake.yaml) · context pake-local-deployer · namespace pake-system",
        ),
        (
            &["bluegreen", "switch", "v2"],
            "environment dev (defaultEnvironment in pake.yaml) · context pake-local-deployer · namespace pake-system",
        ),
        (
            &["rotate-secret", "database-credentials"],
            "environment dev (defaultEnvironment in pake.yaml) · context pake-local-deployer · namespace pake-system",
        ),
    ];
    let mut failure = None;
    let selected = |admin: kube::Client, app: String| async move {
        kube::Api::<k8s_openapi::api::core::v1::Service>::namespaced(admin, "pake-system")
            .get(&app)
            .await
            .ok()
            .and_then(|s| s.spec?.selector?.get("version").cloned())
    };
    for (args, header) in &steps {
        let (ok, text, first) = run(args);
        if !ok || first != *header {
            failure = Some(format!(
                "pake {}:\nfirst line: {first}\n{text}",
                args.join(" ")
            ));
            break;
        }
        // A dry run moves no traffic.
        if args.contains(&"--dry-run") {
            let now = selected(admin.clone(), app.clone()).await;
            if now.as_deref() != Some("v1") || !text.contains("would go ahead") {
                failure = Some(format!("dry run switched to {now:?}:\n{text}"));
                break;
            }
        }
    }
    // A protected environment chosen for the checkout is never reached
    // without confirmation: not interactive and no --yes, refused (exit 2).
    if failure.is_none() {
        let (ok, _, _) = run(&["env", "use", "prod"]);
        assert!(ok);
        for args in [
            &["deploy"][..],
            &["rotate-secret", "database-credentials"][..],
        ] {
            let out = pake_as_typed(p.path(), args, &env);
            let t = k8s::text(&out);
            if out.status.code() != Some(2)
                || !t.contains("protected")
                || !first_line(&out.stderr)
                    .starts_with("environment prod (`pake env use`, protected)")
            {
                failure = Some(format!(
                    "pake {} on a protected default:
{t}",
                    args.join(" ")
                ));
            }
        }
    }
    // Machine documents of a live release: header and camelCase keys.
    if failure.is_none() {
        for (args, kind) in [
            (
                &["--env", "dev", "status", "-o", "json"][..],
                "ReleaseStatus",
            ),
            (&["--env", "dev", "history", "-o", "json"][..], "History"),
            (
                &["--env", "dev", "verify", "-o", "json"][..],
                "VerifyReport",
            ),
            (
                &["--env", "dev", "bluegreen", "status", "-o", "json"][..],
                "BlueGreenStatus",
            ),
            (
                &["--env", "dev", "deploy", "--dry-run", "-o", "json"][..],
                "DeployReport",
            ),
        ] {
            let out = pake_as_typed(p.path(), args, &env);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", k8s::text(&out)));
            assert_eq!(v["kind"], kind, "{args:?}");
            assert_camel_case(&v, kind);
            conforms_to_schema(p.path(), &v);
        }
    }
    // The Service of the default environment now serves v2.
    let active = if failure.is_none() {
        kube::Api::<k8s_openapi::api::core::v1::Service>::namespaced(admin.clone(), "pake-system")
            .get(&app)
            .await
            .ok()
            .and_then(|s| s.spec?.selector?.get("version").cloned())
    } else {
        None
    };
    k8s::cleanup_app(&admin, "pake-system", &app).await;
    k8s::cleanup_app(&admin, "pake-staging", &app).await;
    if let Some(f) = failure {
        panic!("{f}");
    }
    assert_eq!(active.as_deref(), Some("v2"));
}

/// A kubeconfig with one context `name` whose server refuses connections.
fn dead_kubeconfig(dir: &Path, file: &str, name: &str, current: bool, port: u16) -> PathBuf {
    let p = dir.join(file);
    let current = if current {
        format!("current-context: {name}\n")
    } else {
        String::new()
    };
    std::fs::write(
        &p,
        format!(
            "apiVersion: v1\nkind: Config\n{current}clusters:\n- name: {name}\n  cluster:\n    server: https://127.0.0.1:{port}\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\n    namespace: from-{name}\nusers:\n- name: {name}\n  user:\n    token: t\n"
        ),
    )
    .unwrap();
    p
}

#[test]
fn kubeconfig_lists_merge_and_connection_errors_are_one_line() {
    let p = example_copy("conv-kcfg");
    let a = dead_kubeconfig(p.path(), "a", "one", true, 1);
    let b = dead_kubeconfig(p.path(), "b", "two", true, 2);
    let list = std::env::join_paths([a.as_path(), p.path().join("missing").as_path(), b.as_path()])
        .unwrap();
    let list = list.to_str().unwrap();
    // First file's current-context wins; the second file's context is there too.
    for (args, context) in [
        (&["doctor", "--no-docker", "-o", "json"][..], "one"),
        (
            &["--context", "two", "doctor", "--no-docker", "-o", "json"][..],
            "two",
        ),
    ] {
        let out = pake_as_typed(p.path(), args, &[("KUBECONFIG", list)]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", k8s::text(&out)));
        assert_eq!(v["kind"], "DoctorReport");
        assert_eq!(v["checks"][0]["ok"], true, "{v}");
        assert_eq!(v["context"], context, "{v}");
        assert_eq!(out.status.code(), Some(3), "the API server is down: {v}");
    }
    // Unreachable: one line naming the server and the context, exit 3.
    let out = pake_as_typed(p.path(), &["deploy", "-v"], &[("KUBECONFIG", list)]);
    assert_eq!(out.status.code(), Some(3), "{}", k8s::text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("127.0.0.1:1")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("cannot reach the API server https://127.0.0.1:1/ (context one)"),
        "{err}"
    );
    assert!(!err.contains("ERROR"), "{err}");
    // --kubeconfig stays one file.
    let out = pake_as_typed(
        p.path(),
        &["--kubeconfig", list, "doctor", "--no-docker"],
        &[],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        k8s::text(&out).contains("no kubeconfig found"),
        "{}",
        k8s::text(&out)
    );
}

#[test]
fn no_ansi_in_pipes_and_color_on_request() {
    let p = example_copy("conv-color");
    let bad = [("KUBECONFIG", "/nonexistent")];
    for args in [
        &["render", "-v"][..],
        &["deploy", "--dry-run=client"][..],
        &["env"][..],
        &["status"][..],
    ] {
        let out = pake_as_typed(p.path(), args, &bad);
        let t = k8s::text(&out);
        assert!(
            !t.contains('\x1b'),
            "{args:?} wrote ANSI into a pipe: {t:?}"
        );
    }
    let out = pake_as_typed(
        p.path(),
        &["--color", "always", "deploy", "--dry-run=client"],
        &bad,
    );
    assert!(k8s::text(&out).contains('\x1b'), "{}", k8s::text(&out));
    let out = pake_as_typed(
        p.path(),
        &["--color", "auto", "deploy", "--dry-run=client"],
        &[("NO_COLOR", "1")],
    );
    assert!(!k8s::text(&out).contains('\x1b'));
}

#[test]
fn kubectl_flag_spellings() {
    let p = example_copy("conv-flags");
    let bad = [("KUBECONFIG", "/nonexistent")];
    // --dry-run=client: rendered and checked offline, no cluster (none is configured).
    let out = pake_as_typed(p.path(), &["deploy", "--dry-run=client"], &bad);
    let t = k8s::text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("nothing was sent"), "{t}");
    let out = pake_as_typed(
        p.path(),
        &["deploy", "--dry-run=client", "-o", "yaml"],
        &bad,
    );
    let y: serde_json::Value =
        serde_saphyr::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(y["apiVersion"], "pake.dev/v1");
    assert_eq!(y["kind"], "AuditReport");
    // Bare --dry-run is the server's: it needs the cluster (exit 3 here).
    for args in [
        &["deploy", "--dry-run"][..],
        &["deploy", "--dry-run=server"][..],
    ] {
        let out = pake_as_typed(p.path(), args, &bad);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", k8s::text(&out));
    }
    let out = pake_as_typed(p.path(), &["deploy", "--dry-run=maybe"], &bad);
    assert_eq!(out.status.code(), Some(2));
    // kubectl durations.
    for ok in ["90s", "1m30s", "2h"] {
        let out = pake_as_typed(
            p.path(),
            &["deploy", "--dry-run=client", "--timeout", ok],
            &bad,
        );
        assert!(out.status.success(), "{ok}: {}", k8s::text(&out));
    }
    let out = pake_as_typed(p.path(), &["deploy", "--timeout", "1m30"], &bad);
    assert_eq!(out.status.code(), Some(2), "{}", k8s::text(&out));
    for args in [
        &["rollback", "--dry-run=client"][..],
        &["bluegreen", "switch", "v2", "--dry-run"][..],
    ] {
        let out = pake_as_typed(p.path(), args, &bad);
        // Parsed (not exit 2); they need the cluster's history / Service (exit 3 here).
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", k8s::text(&out));
    }
}

#[test]
fn version_help_topics_and_errors_as_documents() {
    let p = example_copy("conv-version");
    let out = pake_as_typed(
        p.path(),
        &["version", "-o", "json"],
        &[("KUBECONFIG", "/nonexistent")],
    );
    assert!(out.status.success(), "{}", k8s::text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "Version");
    assert_eq!(v["clientVersion"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["serverVersion"].is_null());
    let out = pake_as_typed(p.path(), &["--version"], &[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("pake {}", env!("CARGO_PKG_VERSION"))
    );
    let out = pake_as_typed(p.path(), &["help", "cluster"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("KUBECONFIG"));
    let out = pake_as_typed(p.path(), &["help", "bluegreen", "switch"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("--dry-run"));
    let out = pake_as_typed(p.path(), &["help", "nope"], &[]);
    assert_eq!(out.status.code(), Some(2));
    // An error under -o json is a document too.
    let out = pake_as_typed(p.path(), &["--env", "qa", "render", "-o", "json"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "Error");
    assert_eq!(v["error"]["exitCode"], 2);
}

/// No fix line sends a user to a path that exists only in pake's repository.
#[test]
fn fix_lines_point_at_pake_help_not_repository_paths() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut bad = Vec::new();
    for e in walkdir::WalkDir::new(&src) {
        let e = e.unwrap();
        if e.path().extension().is_none_or(|x| x != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).unwrap();
        for (i, _) in text.match_indices(".fix(") {
            let call = fix_call(&text[i..]);
            for repo_only in ["docs/", "scripts/", "ARCHITECTURE", "examples/"] {
                if call.contains(repo_only) {
                    bad.push(format!("{}: {call}", e.path().display()));
                }
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// pake.yaml without the `nodeSelector`/`tolerations` that send the example's
/// `dev` to the local cluster's real node.
fn without_real_node(yaml: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in yaml.lines() {
        let t = line.trim_start();
        let indent = line.len() - t.len();
        if indent == 4 && (t.starts_with("nodeSelector:") || t.starts_with("tolerations:")) {
            skipping = true;
            continue;
        }
        if skipping && (indent > 4 || t.is_empty()) {
            continue;
        }
        skipping = false;
        if t.starts_with("# The local cluster's real node") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The text of one `.fix(...)` call: up to its closing parenthesis, strings and
/// nested calls included, so a comment after the call is not read as part of it.
fn fix_call(text: &str) -> &str {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for (i, c) in text.char_indices() {
        if in_str {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[..=i];
                }
            }
            _ => {}
        }
    }
    text
}

/// Every key of a pake document is camelCase (maps keyed by user data aside).
fn assert_camel_case(v: &serde_json::Value, path: &str) {
    const USER_KEYED: &[&str] = &[
        "hashes",
        "secretHashes",
        "labels",
        "annotations",
        "manifests",
        "items",
        "object",
        "findings",
        "byVersion",
        "args",
        "details",
    ];
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                assert!(
                    !k.contains('_')
                        && !k.contains('-')
                        && !k.starts_with(|c: char| c.is_ascii_uppercase()),
                    "{path}.{k} is not camelCase"
                );
                if !USER_KEYED.contains(&k.as_str()) {
                    assert_camel_case(v, &format!("{path}.{k}"));
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| assert_camel_case(v, path)),
        _ => {}
    }
}

#[test]
fn every_document_has_the_header_and_camel_case_keys() {
    let p = example_copy("conv-json");
    let bad = [("KUBECONFIG", "/nonexistent")];
    for (args, kind) in [
        (&["audit", "-o", "json"][..], "AuditReport"),
        (
            &["deploy", "--dry-run=client", "-o", "json"][..],
            "AuditReport",
        ),
        (&["env", "-o", "json"][..], "EnvironmentList"),
        (&["env", "current", "-o", "json"][..], "CurrentEnvironment"),
        (&["version", "-o", "json"][..], "Version"),
        (&["doctor", "--no-docker", "-o", "json"][..], "DoctorReport"),
        (&["--env", "qa", "deploy", "-o", "json"][..], "Error"),
    ] {
        let out = pake_as_typed(p.path(), args, &bad);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", k8s::text(&out)));
        assert_eq!(v["apiVersion"], "pake.dev/v1", "{args:?}");
        assert_eq!(v["kind"], kind, "{args:?}");
        assert_camel_case(&v, kind);
        conforms_to_schema(p.path(), &v);
    }
}

#[test]
fn completions_man_pages_and_kubectl_plugin_mode() {
    let d = tempfile::tempdir().unwrap();
    let out = pake_as_typed(d.path(), &["completion", "bash"], &[]);
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && t.contains("_pake()") && t.contains("rotate-secret"),
        "{t}"
    );
    for shell in ["zsh", "fish", "powershell"] {
        let out = pake_as_typed(d.path(), &["completion", shell], &[]);
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
    let man = d.path().join("man/man1");
    let out = pake_as_typed(d.path(), &["man", "--dir", man.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", k8s::text(&out));
    for page in [
        "pake.1",
        "pake-deploy.1",
        "pake-env.1",
        "pake-bluegreen-switch.1",
    ] {
        let text =
            std::fs::read_to_string(man.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page}");
    }
    // A `kubectl-pake` link on PATH is a kubectl plugin; its usage says so.
    let link = d.path().join("kubectl-pake");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_pake"), &link).unwrap();
    let out = Command::new(&link)
        .arg("deploy")
        .arg("--help")
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(t.contains("Usage: kubectl pake deploy"), "{t}");
}

/// The keys of `v` that `schema` does not allow (a small walker over the
/// properties/`$ref`/`anyOf` that schemars emits; enough to catch a field the
/// schema does not know, or one it refuses).
fn unknown_keys(
    root: &serde_json::Value,
    schema: &serde_json::Value,
    v: &serde_json::Value,
    path: &str,
    out: &mut Vec<String>,
) {
    let schema = match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.trim_start_matches("#/$defs/");
            &root["$defs"][name]
        }
        None => schema,
    };
    if let Some(alts) = schema["anyOf"].as_array().or(schema["oneOf"].as_array()) {
        for a in alts {
            if a["type"] != "null" {
                unknown_keys(root, a, v, path, out);
            }
        }
        return;
    }
    match v {
        serde_json::Value::Object(m) => {
            let props = schema["properties"].as_object();
            for (k, val) in m {
                match props.and_then(|p| p.get(k)) {
                    Some(s) => unknown_keys(root, s, val, &format!("{path}.{k}"), out),
                    None => match &schema["additionalProperties"] {
                        serde_json::Value::Bool(false) => out.push(format!("{path}.{k}")),
                        serde_json::Value::Object(_) => unknown_keys(
                            root,
                            &schema["additionalProperties"],
                            val,
                            &format!("{path}.{k}"),
                            out,
                        ),
                        _ => {}
                    },
                }
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                unknown_keys(root, &schema["items"], x, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn schemas_are_generated_published_and_used_by_init() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let d = tempfile::tempdir().unwrap();
    let out = pake_as_typed(d.path(), &["schema", "config"], &[]);
    assert!(out.status.success(), "{}", k8s::text(&out));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The published copy is what the binary generates (regenerate with
    // `pake schema config > schemas/pake.schema.json`).
    let published: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("schemas/pake.schema.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(schema, published, "schemas/pake.schema.json is stale");
    assert_eq!(schema["additionalProperties"], false);
    // Every pake.yaml pake ships passes; a literal secret value does not.
    for f in ["examples/backend/pake.yaml", "templates/pake.yaml"] {
        let text = std::fs::read_to_string(root.join(f)).unwrap();
        let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        let mut bad = Vec::new();
        unknown_keys(&schema, &schema, &v, "", &mut bad);
        assert!(bad.is_empty(), "{f}: {bad:?}");
    }
    let v: serde_json::Value = serde_saphyr::from_str(
        "app: a\nimage: i\nsecrets:\n  - name: s\n    keys:\n      password:\n        value: hunter2\nreplicaz: 3\nenvironments:\n  dev: {namespace: d}\n",
    )
    .unwrap();
    let mut bad = Vec::new();
    unknown_keys(&schema, &schema, &v, "", &mut bad);
    assert_eq!(bad, [".secrets[0].keys.password.value", ".replicaz"]);
    // init writes the yaml-language-server line.
    let out = pake_as_typed(d.path(), &["init", "--app", "demo"], &[]);
    assert!(out.status.success(), "{}", k8s::text(&out));
    let written = std::fs::read_to_string(d.path().join("pake.yaml")).unwrap();
    assert!(
        written.starts_with("# yaml-language-server: $schema=https://"),
        "{written}"
    );
    for name in [
        "deploy-report",
        "audit-report",
        "build-report",
        "release-status",
        "fleet-report",
    ] {
        let out = pake_as_typed(d.path(), &["schema", name], &[]);
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            s["properties"]["apiVersion"]["const"], "pake.dev/v1",
            "{name}"
        );
        assert_eq!(s["required"][1], "kind", "{name}");
    }
}

/// A document whose kind has a schema (`pake schema`) uses only keys it declares.
fn conforms_to_schema(dir: &Path, v: &serde_json::Value) {
    let name = match v["kind"].as_str() {
        Some("DeployReport") => "deploy-report",
        Some("AuditReport") => "audit-report",
        Some("BuildReport") => "build-report",
        Some("ReleaseStatus") => "release-status",
        _ => return,
    };
    let out = pake_as_typed(dir, &["schema", name], &[]);
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut bad = Vec::new();
    unknown_keys(&schema, &schema, v, "", &mut bad);
    assert!(bad.is_empty(), "{name}: keys outside the schema: {bad:?}");
    for req in schema["required"].as_array().unwrap() {
        assert!(
            v.get(req.as_str().unwrap()).is_some(),
            "{name}: {req} missing"
        );
    }
}

/// docs/init.md lists exactly what `pake init` writes.
#[test]
fn docs_init_lists_exactly_what_init_writes() {
    let doc =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/init.md"))
            .unwrap();
    let table = &doc[doc.find("## What it writes").unwrap()..doc.find("## Output").unwrap()];
    let mut documented: Vec<String> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect();
    documented.sort();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("My_App");
    std::fs::create_dir(&dir).unwrap();
    let out = pake_as_typed(&dir, &["init"], &[]);
    assert!(out.status.success(), "{}", k8s::text(&out));
    let mut written: Vec<String> = walkdir::WalkDir::new(&dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            e.path()
                .strip_prefix(&dir)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    written.sort();
    assert_eq!(documented, written);
    let count = written.len() - 1; // .gitignore is only appended to
    assert!(
        table.contains("Seventeen files") && count == 17,
        "{count} files"
    );
    // The folder name became a DNS label.
    let cfg = std::fs::read_to_string(dir.join("pake.yaml")).unwrap();
    assert!(cfg.contains("\napp: my-app\n"), "{cfg}");
    // The deployer roles are the ones pake ships.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for f in [
        "deployer-cluster.yaml",
        "deployer-role.yaml",
        "deployer-rolebinding.yaml",
    ] {
        assert_eq!(
            std::fs::read_to_string(dir.join("templates/rbac").join(f)).unwrap(),
            std::fs::read_to_string(root.join("templates/rbac").join(f)).unwrap()
        );
    }
}

#[test]
fn github_actions_annotations_and_step_summary() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("pod.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: evil\nspec:\n  containers:\n    - name: c\n      image: x:1\n      securityContext:\n        privileged: true\n",
    )
    .unwrap();
    let summary = d.path().join("summary.md");
    let out = pake_as_typed(
        d.path(),
        &["audit", "pod.yaml", "-o", "json"],
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", k8s::text(&out));
    // stdout stays one JSON document; annotations go to stderr.
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "AuditReport");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines()
            .any(|l| l.starts_with("::error file=pod.yaml,line=")
                && l.contains("title=pake audit%3A")),
        "{err}"
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.starts_with("### pake audit: 1 objects in 1 files ❌"),
        "{md}"
    );
    // Outside GitHub Actions: no workflow commands.
    let out = pake_as_typed(d.path(), &["audit", "pod.yaml"], &[]);
    assert!(!k8s::text(&out).contains("::error"), "{}", k8s::text(&out));
}
