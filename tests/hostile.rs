//! Hostile input, end to end with the real binary (issue 16): every reproducer
//! gets a clear error (exit 2) or a correct verdict, within a bounded time, and
//! no secret-looking value is ever quoted back. Offline: no cluster, no engine.
//! Fixtures: tests/fixtures/hostile/ (files that cannot live in git, such as
//! FIFOs and symlink loops, are made in a temporary directory).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile")
}

/// Run pake with a deadline: a hang is a test failure, not a stuck CI job.
fn pake_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pake"));
    c.current_dir(dir)
        .args(args)
        .env_remove("PAKE_ENV")
        .env_remove("PAKE_MAX_FILE_SIZE")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let child = c.spawn().unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(o) => o.unwrap(),
        Err(_) => {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("pake {args:?} did not finish within 60 s (hang)");
        }
    }
}

fn pake(dir: &Path, args: &[&str]) -> Output {
    pake_env(dir, args, &[])
}

fn all(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn usage_error(o: &Output, needle: &str) {
    assert_eq!(o.status.code(), Some(2), "{}", all(o));
    assert!(
        all(o).contains(needle),
        "expected {needle:?} in:\n{}",
        all(o)
    );
}

// ---- panics ----

#[test]
fn dockerfile_with_bom_and_multibyte_is_checked_with_right_lines() {
    let o = pake(&fixtures(), &["audit", "bom/Dockerfile", "-o", "json"]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", all(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = &r["results"][0]["findings"];
    // No USER: the finding points at FROM on line 2 (not 3).
    let user = f
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"].as_str().unwrap().contains("USER"))
        .unwrap_or_else(|| panic!("{f}"));
    assert_eq!(user["line"], 2, "{user}");
}

#[test]
fn deeply_nested_substitution_is_bounded() {
    let o = pake(&fixtures(), &["audit", "nested/Dockerfile"]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", all(&o));
}

#[test]
fn two_heredocs_in_one_run_parse() {
    let o = pake(&fixtures(), &["audit", "heredoc/Dockerfile", "-o", "json"]);
    assert!(!all(&o).contains("DOCKERFILE-PARSE"), "{}", all(&o));
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", all(&o));
}

// ---- hangs and runaway memory: only regular files, bounded ----

#[test]
fn devices_and_fifos_are_refused() {
    let d = tempfile::tempdir().unwrap();
    usage_error(
        &pake(d.path(), &["audit", "/dev/zero"]),
        "is a character device: pake reads only regular files",
    );
    std::os::unix::fs::symlink("/dev/zero", d.path().join("zero.yaml")).unwrap();
    usage_error(
        &pake(d.path(), &["audit", "."]),
        "zero.yaml is a character device",
    );
    usage_error(
        &pake(
            d.path(),
            &["render", "--env", "dev", "--config", "/dev/zero"],
        ),
        "config file /dev/zero is a character device",
    );
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("m.yaml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    usage_error(
        &pake(d.path(), &["audit", "m.yaml"]),
        "m.yaml is a FIFO (named pipe)",
    );
    usage_error(&pake(d.path(), &["audit", "."]), "is a FIFO (named pipe)");
    usage_error(
        &pake(d.path(), &["render", "--env", "dev", "--config", "m.yaml"]),
        "is a FIFO (named pipe)",
    );
}

#[test]
fn symlink_loops_are_detected_and_each_file_audited_once() {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("template-string.yaml"),
        d.path().join("a.yaml"),
    )
    .unwrap();
    std::fs::write(
        d.path().join("a.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(".", d.path().join("l1")).unwrap();
    std::os::unix::fs::symlink(".", d.path().join("l2")).unwrap();
    std::os::unix::fs::symlink("a.yaml", d.path().join("b.yaml")).unwrap();
    let t0 = Instant::now();
    let o = pake(d.path(), &["audit", ".", "-o", "json"]);
    assert!(t0.elapsed() < Duration::from_secs(20));
    let r: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", all(&o)));
    assert_eq!(r["summary"]["files"], 1, "{r}");
    assert_eq!(r["summary"]["objects"], 1, "{r}");
    let notes = r["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 2, "{r}");
    assert!(notes[0].as_str().unwrap().contains("symlink loop"));
    let o = pake(d.path(), &["audit", "."]);
    assert!(all(&o).contains("note: ./l1: symlink loop"), "{}", all(&o));
}

#[test]
fn oversized_and_binary_files_get_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("big.yaml"), vec![b'#'; 3000]).unwrap();
    let o = pake(d.path(), &["audit", "big.yaml", "--max-file-size", "1K"]);
    usage_error(
        &o,
        "manifest big.yaml is 3000 bytes, over the 1000 bytes limit for one file",
    );
    assert!(all(&o).contains("PAKE_MAX_FILE_SIZE=SIZE"), "{}", all(&o));
    let o = pake_env(
        d.path(),
        &["audit", "big.yaml"],
        &[("PAKE_MAX_FILE_SIZE", "2KiB")],
    );
    usage_error(&o, "over the 2 KiB limit");
    let o = pake_env(
        d.path(),
        &["audit", "big.yaml"],
        &[("PAKE_MAX_FILE_SIZE", "lots")],
    );
    usage_error(&o, "not a size");
    std::fs::write(d.path().join("bin.yaml"), b"\x7fELF\x02\x01\x00\x00binary").unwrap();
    usage_error(
        &pake(d.path(), &["audit", "bin.yaml"]),
        "is not a text file (binary content at byte 6)",
    );
}

#[test]
fn large_valid_configmap_parses() {
    // 300k keys: over serde-saphyr's default budget of 250k nodes.
    let d = tempfile::tempdir().unwrap();
    let mut s = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n");
    for i in 0..300_000 {
        s.push_str(&format!("  k{i}: v\n"));
    }
    std::fs::write(d.path().join("cm.yaml"), s).unwrap();
    let o = pake(d.path(), &["audit", "cm.yaml", "-o", "json"]);
    assert!(
        !all(&o).contains("budget"),
        "{}",
        &all(&o)[..500.min(all(&o).len())]
    );
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", all(&o));
}

#[test]
fn malformed_pod_template_is_an_error_not_allowed() {
    let o = pake(&fixtures(), &["audit", "template-string.yaml"]);
    usage_error(
        &o,
        "template-string.yaml: document 0, line 1: spec.template is not a mapping",
    );
}

#[test]
fn newline_in_a_file_name_cannot_forge_report_lines() {
    let d = tempfile::tempdir().unwrap();
    let name = "x\n✓ audit passed\n.yaml";
    std::fs::write(
        d.path().join(name),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    image: x\n",
    )
    .unwrap();
    let o = pake(d.path(), &["audit", "."]);
    assert_eq!(o.status.code(), Some(1), "{}", all(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !out.lines().any(|l| l.starts_with("✓ audit passed")),
        "{out}"
    );
    assert!(out.contains("x\\n✓ audit passed\\n.yaml"), "{out}");
    let o = pake(d.path(), &["audit", ".", "-o", "sarif"]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("%E2%9C%93%20audit%20passed"), "{s}");
}

// ---- templates: fuel, recursion, output cap, fix lines ----

fn project_with_template(name: &str, fixture: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures().join("pake.yaml"), d.path().join("pake.yaml")).unwrap();
    std::fs::create_dir_all(d.path().join("templates/k8s")).unwrap();
    std::fs::copy(
        fixtures().join(fixture),
        d.path().join("templates/k8s").join(name),
    )
    .unwrap();
    d
}

#[test]
fn template_limits() {
    let d = project_with_template("service.yaml", "nested-range.yaml");
    let t0 = Instant::now();
    usage_error(
        &pake(d.path(), &["render", "--env", "dev"]),
        "ran more than 5000000 instructions",
    );
    assert!(t0.elapsed() < Duration::from_secs(30));
    let d = project_with_template("service.yaml", "self-include.yaml");
    let o = pake(d.path(), &["render", "--env", "dev"]);
    usage_error(&o, "caused by: invalid operation: recursion limit exceeded");
    assert!(
        all(&o).contains("look for a template that includes itself"),
        "{}",
        all(&o)
    );
    let d = project_with_template("service.yaml", "huge-output.yaml");
    usage_error(
        &pake(d.path(), &["render", "--env", "dev"]),
        "larger than the 16 MiB limit for one template",
    );
    // Twenty doublings of a 1 MB string (1 TB) in a few instructions: the
    // memory budget of a render stops it, not the machine's memory.
    let d = project_with_template("service.yaml", "concat-doubling.yaml");
    let o = pake(d.path(), &["render", "--env", "dev"]);
    usage_error(&o, "needs more than 256 MiB of memory");
    assert!(all(&o).contains("rendering "), "{}", all(&o));
    let d = project_with_template("service.yaml", "syntax-error.yaml");
    let o = pake(d.path(), &["render", "--env", "dev"]);
    usage_error(&o, "syntax error");
    assert!(all(&o).contains("fix: fix the Jinja syntax"), "{}", all(&o));
}

#[test]
fn yaml_errors_name_the_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(fixtures().join("pake.yaml")).unwrap();
    std::fs::write(d.path().join("pake.yaml"), format!("{base}replicas: [\n")).unwrap();
    let o = pake(d.path(), &["render", "--env", "dev"]);
    usage_error(&o, "error: pake.yaml:8:");
    assert!(!all(&o).contains("<input>"), "{}", all(&o));
    std::fs::write(d.path().join("pake.yaml"), &base).unwrap();
    std::fs::create_dir_all(d.path().join("workflows")).unwrap();
    std::fs::write(
        d.path().join("workflows/deploy.yaml"),
        "steps:\n  - secrets\n  - {name: x\n",
    )
    .unwrap();
    let o = pake(d.path(), &["render", "--env", "dev"]);
    usage_error(&o, "workflows/deploy.yaml:3: invalid workflow");
    assert!(all(&o).contains("fix: `steps:` is a list"), "{}", all(&o));
}

// ---- validation up front ----

fn config_error(extra: &str, replace: Option<(&str, &str)>, needle: &str) {
    let d = tempfile::tempdir().unwrap();
    let mut t = std::fs::read_to_string(fixtures().join("pake.yaml")).unwrap();
    if let Some((a, b)) = replace {
        t = t.replace(a, b);
    }
    t.push_str(extra);
    std::fs::write(d.path().join("pake.yaml"), t).unwrap();
    usage_error(&pake(d.path(), &["render", "--env", "dev"]), needle);
}

#[test]
fn nonsense_is_refused_up_front() {
    config_error(
        "replicas: -5\n",
        None,
        "pake.yaml:8: replicas: -5: replicas must be 0 or more",
    );
    config_error(
        "port: 0\n",
        None,
        "pake.yaml:8: port: 0 is not a port: use 1-65535",
    );
    config_error(
        "version: \"V 1!\"\n",
        None,
        "version: \"V 1!\" is not a valid version label",
    );
    config_error(
        "network:\n  egress:\n    - cidr: not-a-cidr\n      port: 5432\n",
        None,
        "network.egress[0].cidr: \"not-a-cidr\" is not a CIDR",
    );
    config_error(
        "digest: not a digest\n",
        None,
        "digest: \"not a digest\" is not a digest",
    );
    config_error(
        "secrets:\n  - name: db\n    keys:\n      user name/../x:\n        fromEnv: X\n",
        None,
        "is not a valid Secret key",
    );
    config_error(
        "audit:\n  checks:\n    GUIDE-RESOURCES:\n      severity: urgent\n      reason: r\n",
        None,
        "\"urgent\" is not a severity",
    );
    config_error(
        "",
        Some(("app: web", "app: \"123\"")),
        "app: \"123\" is not a valid app name",
    );
    config_error(
        "",
        Some(("app: web", "app: \"true\"")),
        "would be read as a number, boolean or null",
    );
    config_error(
        "env:\n  - name: \"A\\nB\"\n",
        None,
        "pake.yaml:9: env.name: \"A\\\\nB\" is not a valid environment variable name",
    );
    config_error("app: again\n", None, "duplicate key `app`");
}

// ---- secrets never quoted back ----

const MARKER: &str = "zq918273645546372819";
const MARKER_INT: &str = "918273645546372819";

fn assert_no_marker(o: &Output, what: &str) {
    let s = all(o);
    assert!(
        !s.contains(MARKER) && !s.contains(MARKER_INT),
        "{what}: the marker leaked:\n{s}"
    );
}

fn run_marker_case(what: &str, files: &[(&str, String)], args: &[&str], env: &[(&str, &str)]) {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = d.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    for fmt in ["text", "json"] {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["-o", fmt]);
        let o = pake_env(d.path(), &a, env);
        assert_ne!(
            o.status.code(),
            Some(0),
            "{what}: expected a failure:\n{}",
            all(&o)
        );
        assert_ne!(o.status.code(), Some(101), "{what}: panic:\n{}", all(&o));
        assert_no_marker(&o, what);
    }
}

#[test]
fn errors_never_quote_a_secret() {
    let base = std::fs::read_to_string(fixtures().join("pake.yaml")).unwrap();
    let render = ["render", "--env", "dev"];
    // pake.yaml: a typo next to a literal value (the parser's snippet showed it).
    run_marker_case(
        "pake.yaml typo next to a literal",
        &[(
            "pake.yaml",
            format!(
                "{base}secrets:\n  - name: db\n    keys:\n      password:\n        value: {MARKER}\n        fromEnvv: X\n"
            ),
        )],
        &render,
        &[],
    );
    // The literal itself, refused.
    run_marker_case(
        "pake.yaml literal value",
        &[(
            "pake.yaml",
            format!(
                "{base}secrets:\n  - name: db\n    keys:\n      password:\n        value: {MARKER}\n"
            ),
        )],
        &render,
        &[],
    );
    // Wrong type on a secret-looking env value.
    run_marker_case(
        "pake.yaml env DB_PASSWORD integer",
        &[(
            "pake.yaml",
            format!("{base}env:\n  - name: DB_PASSWORD\n    value: {MARKER_INT}\n"),
        )],
        &render,
        &[],
    );
    run_marker_case(
        "pake.yaml env value string where a mapping goes",
        &[(
            "pake.yaml",
            format!("{base}env:\n  - name: DB_PASSWORD\n    value: [{MARKER}]\n"),
        )],
        &render,
        &[],
    );
    // A template's Secret stringData with a wrong type.
    let secret_tpl = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  password: {MARKER_INT}\n"
    );
    run_marker_case(
        "template stringData integer",
        &[
            ("pake.yaml", base.clone()),
            ("templates/k8s/service.yaml", secret_tpl),
        ],
        &render,
        &[],
    );
    // A template's env with a wrong type (integer where a string goes).
    let dep = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers:\n      - name: a\n        image: x\n        env:\n        - name: DB_PASSWORD\n          value: {MARKER_INT}\n"
    );
    run_marker_case(
        "template env integer",
        &[
            ("pake.yaml", base.clone()),
            ("templates/k8s/service.yaml", dep),
        ],
        &render,
        &[],
    );
    // Invalid rendered YAML next to stringData.
    let bad = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  password: \"{MARKER}\n  other: [\n"
    );
    run_marker_case(
        "invalid rendered YAML near stringData",
        &[
            ("pake.yaml", base.clone()),
            ("templates/k8s/service.yaml", bad.clone()),
        ],
        &render,
        &[],
    );
    // A template that does not compile, with a literal in it.
    run_marker_case(
        "template syntax error near a literal",
        &[
            ("pake.yaml", base.clone()),
            (
                "templates/k8s/service.yaml",
                format!("stringData:\n  password: {MARKER} {{{{ app }}\n"),
            ),
        ],
        &render,
        &[],
    );
    // Audit: invalid YAML at a secret line, and a pod spec with a wrong type at a secret line.
    run_marker_case(
        "audit invalid YAML at a secret",
        &[("m.yaml", bad)],
        &["audit", "m.yaml"],
        &[],
    );
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    image: x\n    securityContext:\n      password: 1\n      runAsUser: {{password: {MARKER}}}\n"
    );
    run_marker_case(
        "audit pod decode error",
        &[("p.yaml", pod)],
        &["audit", "p.yaml"],
        &[],
    );
    run_marker_case(
        "audit duplicate secret key",
        &[(
            "s.yaml",
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  token: {MARKER}\n  token: {MARKER}\n"
            ),
        )],
        &["audit", "s.yaml"],
        &[],
    );
    // Dockerfile that cannot be parsed, with a secret on the line.
    run_marker_case(
        "Dockerfile parse error",
        &[(
            "Dockerfile",
            format!("FROM alpine\nENV PASSWORD=\"{MARKER}\nRUN [\"unterminated\n"),
        )],
        &["audit", "Dockerfile"],
        &[],
    );
}

#[test]
fn secret_source_timeout_is_validated() {
    // fromCommand's timeout and output cap, and fromFile's size cap and
    // regular-file check, are unit-tested in src/secret.rs (they run at deploy).
    let d = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(fixtures().join("pake.yaml")).unwrap();
    let cfg = format!(
        "{base}secrets:\n  - name: db\n    keys:\n      password:\n        fromEnv: X\n        timeout: 5s\n"
    );
    std::fs::write(d.path().join("pake.yaml"), cfg).unwrap();
    usage_error(
        &pake(d.path(), &["render", "--env", "dev"]),
        "timeout: applies only to fromCommand",
    );
    let cfg = format!(
        "{base}secrets:\n  - name: db\n    keys:\n      password:\n        fromCommand: vault read x\n        timeout: soon\n"
    );
    std::fs::write(d.path().join("pake.yaml"), cfg).unwrap();
    usage_error(
        &pake(d.path(), &["render", "--env", "dev"]),
        "not a duration",
    );
}
