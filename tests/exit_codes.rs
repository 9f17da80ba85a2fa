//! docs/exit-codes.md, case by case: every documented situation is produced
//! for real and its exit code compared with the page. The offline cases run
//! everywhere; the mid-deploy ones need the shared cluster (the `deployer`
//! identity, app names of their own in `pake-test`).

mod k8s;

use std::path::Path;

const NS: &str = "pake-test";

/// The documented exit codes per command (the "By command" table).
fn documented() -> String {
    std::fs::read_to_string(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/exit-codes.md"),
    )
    .unwrap()
}

fn code(out: &std::process::Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_pake"));
    c.current_dir(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .env_remove("PAKE_ENV")
        .env_remove("PAKE_CONFIG")
        .env_remove("GITHUB_ACTIONS");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn offline_cases_match_the_page() {
    let doc = documented();
    let p = k8s::project(&k8s::pake_yaml("exit-offline", NS, ""), &[]);
    let dead = p.path().join("dead.kubeconfig");
    std::fs::write(
        &dead,
        "apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters:\n- name: x\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: x\n  context:\n    cluster: x\n    user: x\nusers:\n- name: x\n  user:\n    token: t\n",
    )
    .unwrap();
    let dead = dead.to_str().unwrap();
    // (what the page says, command, expected code)
    let cases: &[(&str, &[&str], i32)] = &[
        ("| 2 | usage |", &["--env", "qa", "render"], 2),
        (
            "config, template, validation or ordering error",
            &["--env", "qa", "render"],
            2,
        ),
        ("`--help` and `--version` exit 0", &["--version"], 0),
        (
            "an unknown flag, a bad `--timeout` value",
            &["--env", "test", "deploy", "--timeout", "5x"],
            2,
        ),
        ("an unknown flag, a bad `--timeout` value", &["--nope"], 2),
        (
            "every command documented here refuses it with exit 2",
            &["--env", "test", "render", "-o", "sarif"],
            2,
        ),
        (
            "| 3 | cluster |",
            &["--kubeconfig", dead, "--env", "test", "deploy"],
            3,
        ),
        (
            "cannot connect, permission denied",
            &["--kubeconfig", dead, "--env", "test", "verify"],
            3,
        ),
        (
            "**any** check failed",
            &["--kubeconfig", dead, "doctor", "--no-docker"],
            3,
        ),
        (
            "`deploy --dry-run=client`",
            &["--env", "test", "deploy", "--dry-run=client"],
            0,
        ),
        ("no help topic", &["help", "no-such-topic"], 2),
        ("`version` | printed", &["--kubeconfig", dead, "version"], 0),
    ];
    let mut wrong = Vec::new();
    for (quote, args, want) in cases {
        assert!(
            doc.contains(quote),
            "docs/exit-codes.md no longer says {quote:?}"
        );
        let out = run(p.path(), args, &[]);
        if code(&out) != *want {
            wrong.push(format!(
                "{args:?}: want {want}, got {}\n{}",
                code(&out),
                k8s::text(&out)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// "a 403 ... discovered in a later step: undone, exit 3" and "an unset
/// `fromEnv` variable discovered in the `secrets` step: undone, exit 2".
#[tokio::test]
async fn mid_deploy_failures_are_undone_and_keep_their_class() {
    let Some(kc) = k8s::kubeconfig("mid_deploy_failures_are_undone_and_keep_their_class") else {
        return;
    };
    let doc = documented();
    assert!(
        doc.contains("permission denied (401/403) or unreachable in the middle of a run: **3**")
    );
    assert!(
        doc.contains(
            "a secret source that cannot be read (a `fromCommand` that fails, ...): **2**"
        )
    );
    let admin = k8s::client(&kc, k8s::ADMIN).await;

    // 403: the deployer may not create CronJobs (no batch permissions); a step after namespace/secrets/policies.
    let app = format!("exit-403-{}", k8s::suffix());
    let wf = "steps:\n  - namespace\n  - secrets\n  - policies\n  - name: cron\n    templates: [cron.yaml]\n  - deploy\n  - verify\n";
    let quota = "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: {{ app }}-cron\n  labels:\n    app: {{ app }}\nspec:\n  schedule: \"0 0 * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          automountServiceAccountToken: false\n          securityContext:\n            runAsNonRoot: true\n            runAsUser: 1000\n            seccompProfile:\n              type: RuntimeDefault\n          containers:\n            - name: c\n              image: example.invalid/x:1\n              securityContext:\n                allowPrivilegeEscalation: false\n                readOnlyRootFilesystem: true\n                capabilities:\n                  drop: [ALL]\n";
    let p = k8s::project(
        &k8s::pake_yaml(&app, NS, ""),
        &[
            ("workflows/deploy.yaml", wf),
            ("templates/k8s/cron.yaml", quota),
        ],
    );
    let out = k8s::pake(
        &kc,
        p.path(),
        &[
            "--context",
            k8s::DEPLOYER,
            "--env",
            "test",
            "deploy",
            "-o",
            "json",
        ],
        &[],
    );
    let r: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", k8s::text(&out)));
    let policies_applied = r["steps"][2]["objects"]
        .as_array()
        .is_some_and(|o| !o.is_empty());
    let np =
        kube::Api::<k8s_openapi::api::networking::v1::NetworkPolicy>::namespaced(admin.clone(), NS)
            .get_opt(&format!("{app}-allow"))
            .await
            .unwrap();
    k8s::cleanup_app(&admin, NS, &app).await;
    assert_eq!(code(&out), 3, "{}", k8s::text(&out));
    assert_eq!(r["rolledBack"], true, "{r}");
    assert!(
        policies_applied,
        "the run changed something before the 403: {r}"
    );
    assert!(
        np.is_none(),
        "the policy created before the 403 was not undone"
    );

    // Unset fromEnv: refused before the first change.
    let app = format!("exit-env-{}", k8s::suffix());
    let extra = "secrets:\n  - name: exit-env-creds\n    keys:\n      password:\n        fromEnv: PAKE_TEST_SURELY_UNSET_VAR\n";
    let p = k8s::project(&k8s::pake_yaml(&app, NS, extra), &[]);
    let out = k8s::pake(
        &kc,
        p.path(),
        &[
            "--context",
            k8s::DEPLOYER,
            "--env",
            "test",
            "deploy",
            "-o",
            "json",
        ],
        &[],
    );
    let r: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", k8s::text(&out)));
    let sa = kube::Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(admin.clone(), NS)
        .get_opt(&format!("{app}-sa"))
        .await
        .unwrap();
    k8s::cleanup_app(&admin, NS, &app).await;
    assert_eq!(code(&out), 2, "{}", k8s::text(&out));
    // Checked before the first change: an error document, nothing to undo.
    assert_eq!(r["kind"], "Error", "{r}");
    assert!(
        r["error"]["message"].as_str().is_some_and(
            |m| m.contains("PAKE_TEST_SURELY_UNSET_VAR") && m.contains("nothing was changed")
        ),
        "{r}"
    );
    assert!(
        sa.is_none(),
        "the ServiceAccount was created although the run stopped before any change"
    );
}
