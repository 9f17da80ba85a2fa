//! Offline tests of rendering: snapshots of the manifests the example app
//! deploys, and the refusals that must happen before any cluster is touched.

use std::path::PathBuf;
use std::process::Command;

fn pake() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pake"))
}

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/backend")
}

fn render(dir: &std::path::Path, env: &str) -> std::process::Output {
    pake()
        .current_dir(dir)
        .args(["render", "--env", env])
        .env_remove("PAKE_ENV")
        .output()
        .unwrap()
}

#[test]
fn snapshot_example_dev() {
    let out = render(&example(), "dev");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    insta::assert_snapshot!("example_dev", String::from_utf8(out.stdout).unwrap());
}

#[test]
fn snapshot_example_prod() {
    let out = render(&example(), "prod");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    insta::assert_snapshot!("example_prod", String::from_utf8(out.stdout).unwrap());
}

#[test]
fn unknown_environment_lists_known_ones() {
    let out = render(&example(), "qa");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown environment \"qa\""), "{err}");
    assert!(err.contains("dev, prod, staging"), "{err}");
}

fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (p, t) in files {
        let path = d.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, t).unwrap();
    }
    d
}

const MIN: &str = "app: web\nimage: web\nenvironments:\n  dev:\n    namespace: web-dev\n";

#[test]
fn workflow_with_workloads_before_policies_is_refused() {
    let wf = "steps:\n  - namespace\n  - deploy\n  - policies\n  - verify\n";
    let d = project(&[("pake.yaml", MIN), ("workflows/deploy.yaml", wf)]);
    let out = render(d.path(), "dev");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("before any default-deny network policy"),
        "{err}"
    );
    assert!(
        err.contains("Apply network policies (before deployments!)"),
        "{err}"
    );
}

#[test]
fn workflow_without_policies_is_refused() {
    let wf = "steps:\n  - namespace\n  - deploy\n";
    let d = project(&[("pake.yaml", MIN), ("workflows/deploy.yaml", wf)]);
    assert_eq!(render(d.path(), "dev").status.code(), Some(2));
}

#[test]
fn custom_workflow_may_drop_and_add_steps() {
    let wf = "steps:\n  - namespace\n  - policies\n  - name: config\n    templates: [extra.yaml]\n  - deploy\n";
    let extra = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ app }}-config\ndata:\n  LOG_LEVEL: info\n";
    let d = project(&[
        ("pake.yaml", MIN),
        ("workflows/deploy.yaml", wf),
        ("templates/k8s/extra.yaml", extra),
    ]);
    let out = render(d.path(), "dev");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("name: web-config") && text.contains("namespace: web-dev"),
        "{text}"
    );
}

#[test]
fn hardcoded_secret_in_template_is_refused() {
    let wf = "steps:\n  - namespace\n  - name: extra\n    templates: [s.yaml]\n";
    let s = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: mypassword123\n";
    let d = project(&[
        ("pake.yaml", MIN),
        ("workflows/deploy.yaml", wf),
        ("templates/k8s/s.yaml", s),
    ]);
    let out = render(d.path(), "dev");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Never Hardcode Secrets"), "{err}");
    assert!(!err.contains("mypassword123"), "{err}");
}

#[test]
fn literal_secret_env_in_template_is_refused() {
    let tpl = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates/k8s/deployment.yaml"),
    )
    .unwrap()
    .replace(
        "          env:\n",
        "          env:\n            - name: DB_PASSWORD\n              value: mypassword123\n",
    );
    let d = project(&[("pake.yaml", MIN), ("templates/k8s/deployment.yaml", &tpl)]);
    let out = render(d.path(), "dev");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("DB_PASSWORD"));
}

#[test]
fn type_errors_are_caught_offline() {
    let tpl = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates/k8s/service.yaml"),
    )
    .unwrap()
    .replace("type: ClusterIP", "type: [ClusterIP]");
    let d = project(&[("pake.yaml", MIN), ("templates/k8s/service.yaml", &tpl)]);
    let out = render(d.path(), "dev");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid Service"));
}

#[test]
fn init_scaffolds_a_project_that_renders() {
    let d = tempfile::tempdir().unwrap();
    let out = pake()
        .args(["init", "--app", "shop"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "pake.yaml",
        "workflows/deploy.yaml",
        "templates/k8s/deployment.yaml",
        ".github/workflows/pake.yml",
    ] {
        assert!(d.path().join(f).exists(), "{f}");
    }
    let out = render(d.path(), "prod");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The scaffolded Dockerfile passes pake's own Dockerfile checks.
    let audit = pake()
        .current_dir(d.path())
        .args(["audit", "Dockerfile.production"])
        .output()
        .unwrap();
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );
    // A second init refuses to overwrite.
    let again = pake().args(["init"]).arg(d.path()).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn policies_before_workloads_within_one_step_is_accepted() {
    let wf = "steps:\n  - namespace\n  - name: all\n    templates: [network-policies.yaml, deployment.yaml]\n";
    let d = project(&[("pake.yaml", MIN), ("workflows/deploy.yaml", wf)]);
    let out = render(d.path(), "dev");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wf = "steps:\n  - namespace\n  - name: all\n    templates: [deployment.yaml, network-policies.yaml]\n";
    let d = project(&[("pake.yaml", MIN), ("workflows/deploy.yaml", wf)]);
    assert_eq!(render(d.path(), "dev").status.code(), Some(2));
}
