//! Fuzz targets: one function per input pake parses, taking arbitrary bytes.
//!
//! Each must return (with `Ok` or a clear `Err`) for every input: never panic,
//! hang or allocate without bound. They are driven two ways:
//! - coverage-guided with libFuzzer (`scripts/fuzz TARGET`, nightly only), from
//!   the crate in `fuzz/`;
//! - on stable in `cargo test --test fuzz`, which replays every corpus and
//!   regression file in `fuzz/corpus/TARGET/` and then mutates them for a bounded
//!   time (`PAKE_FUZZ_SECS`), so a regression fails CI.
//!
//! Not part of pake's interface (hidden from the docs).

use std::path::Path;

use crate::checks::audit::{self, AuditOptions};

/// One fuzz target: must return for any bytes.
pub type Target = fn(&[u8]);

/// The fuzz targets by name (the `fuzz/corpus/` directory names).
pub const TARGETS: &[(&str, Target)] = &[
    ("pake_yaml", pake_yaml),
    ("template", template),
    ("audit_yaml", audit_yaml),
    ("dockerfile", dockerfile),
    ("dockerignore", dockerignore),
];

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// pake.yaml: parse and validate; when it is valid, resolve every environment
/// and render the built-in templates with it (a valid config must render).
pub fn pake_yaml(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let Ok(config) = crate::config::parse(t, Path::new("pake.yaml")) else {
        return;
    };
    let project = crate::config::Project {
        path: "/nonexistent/pake.yaml".into(),
        config,
    };
    let envs: Vec<String> = project.config.environments.keys().cloned().collect();
    for env in envs {
        let r = project
            .resolve(Some(&env))
            .expect("a valid config resolves");
        let names: Vec<String> = crate::render::builtin::K8S
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        if let Err(e) = crate::render::render_templates(&r, &names) {
            panic!("a valid pake.yaml does not render: {e}");
        }
    }
}

/// A template from `templates/k8s/`, rendered with the example's context.
pub fn template(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let ctx = serde_json::json!({
        "app": "backend", "env": "dev", "namespace": "pake-dev", "image": "r/backend:1",
        "port": 8000, "version": "v1", "workload": "backend-v1", "replicas": 2,
        "health_path": "/health", "secrets": [{"name": "db", "keys": ["password"]}],
        "env_vars": [{"name": "LOG", "value": "info"}], "network": {"allowFrom": ["frontend"]},
        "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "1"}},
    });
    let _ = crate::render::render_template("fuzz.yaml", "fuzz.yaml", t, &ctx, "pake-dev");
}

/// A multi-document manifest file, split and audited.
pub fn audit_yaml(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let _ = audit::audit_text("fuzz.yaml", t, &AuditOptions::default());
}

/// A Dockerfile, parsed and checked (no build context).
pub fn dockerfile(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let _ = crate::checks::dockerfile::check_dockerfile(Path::new("Dockerfile"), t, None);
}

/// A `.dockerignore` (the first line is the path to match, the rest the file).
pub fn dockerignore(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let (path, rules) = t.split_once('\n').unwrap_or((t, ""));
    if let Ok(p) = crate::docker::dockerignore::Patterns::parse(rules) {
        let _ = p.matching_line(path);
        let _ = p.excludes(&crate::docker::dockerignore::clean(path));
    }
}
