//! Render: templates -> typed, validated Kubernetes objects.
//!
//! Pure (no cluster), so `pake render`, `pake audit --env` and the snapshot
//! tests see exactly what `pake deploy` would send. Templates are minijinja;
//! each rendered document is parsed as YAML, then deserialized into its
//! k8s-openapi type to catch type errors before anything reaches a cluster.

pub mod builtin;
pub mod external;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::config::{NEVER_HARDCODE, Resolved, looks_secret_name};
use crate::error::{Error, Result};

/// PodSecurity policy version pinned in namespace labels (`*-version`).
pub const PSS_VERSION: &str = "latest";

/// One rendered object and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Manifest {
    /// Template file name, e.g. `deployment.yaml`.
    pub template: String,
    /// Index of the YAML document within the rendered template.
    pub doc: usize,
    pub object: Value,
}

impl Manifest {
    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or("")
    }
    pub fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or("")
    }
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or("")
    }
    pub fn namespace(&self) -> Option<&str> {
        self.object["metadata"]["namespace"].as_str()
    }
    /// `Kind namespace/name` (or `Kind name` when cluster-scoped), as used in messages.
    pub fn describe(&self) -> String {
        describe(self.kind(), self.namespace(), self.name())
    }
}

pub fn describe(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Kinds pake knows how to validate and apply, with their API version.
pub const KINDS: &[(&str, &str, bool)] = &[
    // (kind, apiVersion, namespaced)
    ("Namespace", "v1", false),
    ("ServiceAccount", "v1", true),
    ("ConfigMap", "v1", true),
    ("Secret", "v1", true),
    ("Service", "v1", true),
    ("Role", "rbac.authorization.k8s.io/v1", true),
    ("RoleBinding", "rbac.authorization.k8s.io/v1", true),
    ("NetworkPolicy", "networking.k8s.io/v1", true),
    ("Ingress", "networking.k8s.io/v1", true),
    ("PodDisruptionBudget", "policy/v1", true),
    ("Deployment", "apps/v1", true),
    ("StatefulSet", "apps/v1", true),
    ("DaemonSet", "apps/v1", true),
    ("Job", "batch/v1", true),
    ("CronJob", "batch/v1", true),
];

/// Kinds that run pods: the guide wants network policies in place before any of them.
pub fn is_workload(kind: &str) -> bool {
    matches!(
        kind,
        "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "CronJob" | "Pod" | "ReplicaSet"
    )
}

/// The variables templates see.
pub fn context(r: &Resolved) -> Value {
    serde_json::json!({
        "app": r.app,
        "env": r.env,
        "namespace": r.namespace,
        "image": r.image_ref,
        "port": r.port,
        "version": r.version,
        "workload": workload_name(&r.app, &r.version),
        "service_version": r.version,
        "replicas": r.replicas,
        "resources": r.resources,
        "health_path": r.health_path,
        "network": r.network,
        "ingress": r.ingress,
        "env_vars": r.env_vars,
        "secrets": r.secrets.iter().map(|s| serde_json::json!({"name": s.name, "keys": s.keys.keys().collect::<Vec<_>>()})).collect::<Vec<_>>(),
        "pss_version": PSS_VERSION,
        "progress_deadline_seconds": 600,
        "node_selector": r.node_selector,
        "tolerations": r.tolerations,
    })
}

/// `backend` + `v1` -> `backend-v1`: every version is its own Deployment.
pub fn workload_name(app: &str, version: &str) -> String {
    format!("{app}-{version}")
}

/// Where templates come from: the project's `templates/k8s/` if it has the
/// file, else the copy built into pake (the same files `pake init` writes).
pub fn load_template(templates_dir: &Path, name: &str) -> Result<(String, String)> {
    let path = templates_dir.join("k8s").join(name);
    if path.exists() {
        let text = crate::input::read_text(&path, "template")?;
        return Ok((path.display().to_string(), text));
    }
    match builtin::k8s(name) {
        Some(text) => Ok((format!("builtin:{name}"), text.to_string())),
        None => Err(Error::usage(format!("template {name} not found in {}", templates_dir.join("k8s").display()))
            .fix("check the template names in workflows/deploy.yaml, or run `pake init` to scaffold the default templates")),
    }
}

/// Limits of one template render (docs/render.md, "Limits"): a hostile or
/// buggy template stops with a clear error instead of hanging or filling memory.
pub mod limits {
    /// Instructions one render may execute (minijinja fuel). The built-in
    /// templates use a few thousand.
    pub const FUEL: u64 = 5_000_000;
    /// Nesting of blocks, loops, macros and includes (an include counts 10).
    pub const RECURSION: usize = 100;
    /// Largest output of one template.
    pub const OUTPUT_BYTES: usize = 16 << 20;
    /// Memory one render may hold (strings built by `~`, `+`, `*` that never
    /// reach the output): past it, pake exits 2 (`crate::membudget`).
    pub const MEMORY_BYTES: usize = 256 << 20;
}

/// A writer that refuses more than `cap` bytes.
struct CappedWriter {
    buf: Vec<u8>,
    cap: usize,
    overflow: bool,
}

impl std::io::Write for CappedWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + b.len() > self.cap {
            self.overflow = true;
            return Err(std::io::Error::other("template output limit reached"));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A minijinja error with its whole chain of causes (an include's own error
/// is the source of the include's), on one line each.
fn template_error_text(e: &minijinja::Error) -> String {
    let mut s = e.to_string();
    let mut last = s.clone();
    let mut repeated = 0;
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(c) = cur {
        let m = c.to_string();
        if m == last {
            repeated += 1;
        } else {
            if repeated > 0 {
                s.push_str(&format!(" (x{})", repeated + 1));
                repeated = 0;
            }
            s.push_str(&format!("\n  caused by: {m}"));
            last = m;
        }
        cur = c.source();
    }
    if repeated > 0 {
        s.push_str(&format!(" (x{})", repeated + 1));
    }
    s
}

/// The deepest minijinja error in the chain: what actually went wrong.
fn root_cause(e: &minijinja::Error) -> &minijinja::Error {
    let mut root = e;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cur {
        if let Some(m) = c.downcast_ref::<minijinja::Error>() {
            root = m;
        }
        cur = c.source();
    }
    root
}

/// The fix line for a template that does not compile or render.
fn template_fix(e: &minijinja::Error) -> String {
    use minijinja::ErrorKind as K;
    let e = root_cause(e);
    match e.kind() {
        K::SyntaxError => "fix the Jinja syntax at that line: every `{{` needs `}}`, every `{%` needs `%}`, every `{% for %}`/`{% if %}` its `{% endfor %}`/`{% endif %}`; literal braces go in `{{ '{{' }}`".into(),
        K::UndefinedError => "check the variable name: templates see app, env, namespace, image, port, version, workload, service_version, replicas, resources, health_path, network, ingress, env_vars, secrets, pss_version, progress_deadline_seconds; `{{ x | default('') }}` for optional ones".into(),
        K::OutOfFuel => format!("the template ran more than {} instructions: look for loops over large ranges, or split the template", limits::FUEL),
        K::InvalidOperation if e.to_string().contains("recursion") => format!("templates may nest blocks, macros and includes at most {} levels (an include counts 10): look for a template that includes itself", limits::RECURSION),
        K::TemplateNotFound => "a template can include only itself by name here: inline the other template, or list it as its own step in workflows/deploy.yaml".into(),
        _ => "fix the template at that line (Jinja syntax as minijinja implements it)".into(),
    }
}

/// Render one template with `ctx` into manifests, validated.
pub fn render_template(
    name: &str,
    source: &str,
    text: &str,
    ctx: &Value,
    namespace: &str,
) -> Result<Vec<Manifest>> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::SemiStrict);
    // YAML templates: values are placed as written; use `| tojson` to quote.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_fuel(Some(limits::FUEL));
    env.set_recursion_limit(limits::RECURSION);
    // Error messages name the line, never quote the template's text (it may hold a literal secret).
    env.set_debug(false);
    env.add_template(name, text).map_err(|e| {
        Error::usage(format!(
            "{source}: template error: {}",
            template_error_text(&e)
        ))
        .fix(template_fix(&e))
    })?;
    let mut w = CappedWriter {
        buf: Vec::new(),
        cap: limits::OUTPUT_BYTES,
        overflow: false,
    };
    let rendered =
        crate::membudget::limit(limits::MEMORY_BYTES, &format!("rendering {source}"), || {
            env.get_template(name)
                .and_then(|t| t.render_captured_to(ctx, &mut w).map(drop))
        });
    if w.overflow {
        return Err(Error::usage(format!(
            "{source}: rendered output is larger than the {} limit for one template",
            crate::input::human_size(limits::OUTPUT_BYTES as u64)
        ))
        .fix("look for a loop that repeats without bound, or split the template"));
    }
    rendered.map_err(|e| {
        Error::usage(format!(
            "{source}: cannot render: {}",
            template_error_text(&e)
        ))
        .fix(template_fix(&e))
    })?;
    let out = String::from_utf8(w.buf)
        .map_err(|_| Error::usage(format!("{source}: rendered output is not UTF-8")))?;
    parse_documents(name, source, &out, namespace)
}

/// Parse multi-document YAML into validated manifests.
pub fn parse_documents(
    name: &str,
    source: &str,
    text: &str,
    namespace: &str,
) -> Result<Vec<Manifest>> {
    // Manifests are read the way the API server's clients read them (YAML
    // 1.1): `defaultMode: 0440` is octal 288, as `kubectl apply` sends it.
    let mut opts = crate::redact::yaml_options();
    opts.legacy_octal_numbers = true;
    let docs: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, opts).map_err(
            |e| {
                let (line, msg) = crate::redact::yaml_error(&e, text);
                let at = line
                    .map(|l| format!(" at line {l} of the rendered output"))
                    .unwrap_or_default();
                Error::usage(format!("{source}: rendered YAML is invalid{at}: {msg}")).fix(
                    "see the rendered text with `pake render`; values that may hold YAML syntax need `| tojson`",
                )
            },
        )?;
    let mut out = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        if doc.is_null() {
            continue;
        }
        let mut m = Manifest {
            template: name.to_string(),
            doc: i,
            object: doc,
        };
        validate(&mut m, source, namespace)?;
        out.push(m);
    }
    Ok(out)
}

/// Type-check one object and enforce pake's rules on it.
fn validate(m: &mut Manifest, source: &str, namespace: &str) -> Result<()> {
    let at = format!("{source} document {}", m.doc);
    let kind = m.kind().to_string();
    let Some((_, api, namespaced)) = KINDS.iter().find(|(k, _, _)| *k == kind) else {
        return Err(
            Error::usage(format!("{at}: kind {kind:?} is not supported by pake")).fix(format!(
                "supported kinds: {}",
                KINDS.iter().map(|k| k.0).collect::<Vec<_>>().join(", ")
            )),
        );
    };
    if m.api_version() != *api {
        return Err(Error::usage(format!(
            "{at}: {kind} must use apiVersion {api}, not {:?}",
            m.api_version()
        )));
    }
    if m.name().is_empty() {
        return Err(Error::usage(format!("{at}: {kind} has no metadata.name")));
    }
    if *namespaced {
        match m.namespace() {
            None => {
                m.object["metadata"]["namespace"] = Value::String(namespace.to_string());
            }
            Some(ns) if ns != namespace => {
                return Err(Error::usage(format!(
                    "{at}: {} is in namespace {ns}, but this environment deploys to {namespace}",
                    m.describe()
                ))
                .fix("remove metadata.namespace from the template or use {{ namespace }}"));
            }
            _ => {}
        }
    }
    typecheck(&kind, &m.object).map_err(|e| {
        let (field, msg) = typecheck_message(&m.object, &e.to_string());
        Error::usage(format!(
            "{at}: {} is not a valid {kind}: {field}{msg}",
            m.describe()
        ))
        .fix("fix the field's type in the template (the API server would reject it too)")
    })?;
    if kind == "Secret" && (m.object.get("data").is_some() || m.object.get("stringData").is_some())
    {
        return Err(Error::usage(format!(
            "{at}: {} carries secret data in a template",
            m.describe()
        ))
        .fix(NEVER_HARDCODE));
    }
    if let Some(name) = literal_secret_env(&m.object) {
        return Err(Error::usage(format!(
            "{at}: {} sets env {name} to a literal value",
            m.describe()
        ))
        .fix(NEVER_HARDCODE));
    }
    Ok(())
}

/// A typecheck error without the offending value: `(field, message)`. The
/// value serde quotes is looked up in the object to name its field; the
/// message shows `<redacted>` in its place (it may be a secret).
fn typecheck_message(obj: &Value, msg: &str) -> (String, String) {
    let redacted = crate::redact::redact_quoted(msg);
    let quoted = msg
        .split_once(['`', '"'])
        .and_then(|(_, rest)| rest.split_once(['`', '"']).map(|(v, _)| v.to_string()))
        .or_else(|| {
            // `invalid type: integer 5, expected ...`
            msg.split_once("invalid type: ")
                .and_then(|(_, r)| r.split_once(','))
                .and_then(|(t, _)| t.split_once(' ').map(|(_, v)| v.to_string()))
        });
    let field = quoted
        .and_then(|q| find_scalar(obj, &q, &mut String::new()))
        .map(|p| format!("field {p}: "))
        .unwrap_or_default();
    (field, redacted)
}

/// The path (`spec.template.spec.containers[0].env[1].value`) of the first scalar that prints as `want`.
fn find_scalar(v: &Value, want: &str, path: &mut String) -> Option<String> {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                if let Some(p) = find_scalar(x, want, path) {
                    return Some(p);
                }
                path.truncate(len);
            }
            None
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                if let Some(p) = find_scalar(x, want, path) {
                    return Some(p);
                }
                path.truncate(len);
            }
            None
        }
        Value::String(s) if s == want => Some(path.clone()),
        Value::Number(n) if n.to_string() == want => Some(path.clone()),
        Value::Bool(b) if b.to_string() == want => Some(path.clone()),
        _ => None,
    }
}

fn typecheck(kind: &str, v: &Value) -> std::result::Result<(), serde_json::Error> {
    use k8s_openapi::api::{
        apps::v1 as apps, batch::v1 as batch, core::v1 as core, networking::v1 as net,
        policy::v1 as policy, rbac::v1 as rbac,
    };
    let v = v.clone();
    match kind {
        "Namespace" => serde_json::from_value::<core::Namespace>(v).map(drop),
        "ServiceAccount" => serde_json::from_value::<core::ServiceAccount>(v).map(drop),
        "ConfigMap" => serde_json::from_value::<core::ConfigMap>(v).map(drop),
        "Secret" => serde_json::from_value::<core::Secret>(v).map(drop),
        "Service" => serde_json::from_value::<core::Service>(v).map(drop),
        "Role" => serde_json::from_value::<rbac::Role>(v).map(drop),
        "RoleBinding" => serde_json::from_value::<rbac::RoleBinding>(v).map(drop),
        "NetworkPolicy" => serde_json::from_value::<net::NetworkPolicy>(v).map(drop),
        "Ingress" => serde_json::from_value::<net::Ingress>(v).map(drop),
        "PodDisruptionBudget" => serde_json::from_value::<policy::PodDisruptionBudget>(v).map(drop),
        "Deployment" => serde_json::from_value::<apps::Deployment>(v).map(drop),
        "StatefulSet" => serde_json::from_value::<apps::StatefulSet>(v).map(drop),
        "DaemonSet" => serde_json::from_value::<apps::DaemonSet>(v).map(drop),
        "Job" => serde_json::from_value::<batch::Job>(v).map(drop),
        "CronJob" => serde_json::from_value::<batch::CronJob>(v).map(drop),
        _ => Ok(()),
    }
}

/// The pod spec inside a workload object, if any.
pub fn pod_spec(v: &Value) -> Option<&Value> {
    match v["kind"].as_str()? {
        "Pod" => v.get("spec"),
        "CronJob" => v.pointer("/spec/jobTemplate/spec/template/spec"),
        _ => v.pointer("/spec/template/spec"),
    }
}

/// An env var with a secret-looking name and a literal value.
fn literal_secret_env(v: &Value) -> Option<String> {
    let spec = pod_spec(v)?;
    for list in ["containers", "initContainers"] {
        for c in spec[list].as_array().into_iter().flatten() {
            for e in c["env"].as_array().into_iter().flatten() {
                let name = e["name"].as_str().unwrap_or("");
                if e.get("value")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
                    && looks_secret_name(name)
                {
                    return Some(name.to_string());
                }
            }
        }
    }
    None
}

/// Render a list of templates for an environment.
pub fn render_templates(r: &Resolved, names: &[String]) -> Result<Vec<Manifest>> {
    let ctx = context(r);
    let mut out = Vec::new();
    for name in names {
        let (source, text) = load_template(&r.templates_dir, name)?;
        out.extend(render_template(name, &source, &text, &ctx, &r.namespace)?);
    }
    let mut seen = BTreeMap::new();
    for m in &out {
        if let Some(prev) = seen.insert(m.describe(), m.template.clone()) {
            return Err(Error::usage(format!(
                "{} is rendered twice (by {prev} and {})",
                m.describe(),
                m.template
            )));
        }
    }
    Ok(out)
}

/// The Secret objects of pake.yaml, without data: what `render` shows and
/// history stores. The secrets step adds the data at apply time. A secret
/// with `external:` is its ExternalSecret instead (complete: it holds no values).
pub fn secret_skeletons(r: &Resolved) -> Vec<Manifest> {
    r.secrets
        .iter()
        .map(|s| match &s.external {
            Some(e) => Manifest {
                template: "pake.yaml#secrets".into(),
                doc: 0,
                object: external::external_secret(r, &s.name, e),
            },
            None => Manifest {
            template: "pake.yaml#secrets".into(),
            doc: 0,
            object: serde_json::json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": s.name,
                    "namespace": r.namespace,
                    "labels": {"app": r.app, "app.kubernetes.io/managed-by": "pake"},
                },
                "type": "Opaque",
                "data": s.keys.keys().map(|k| (k.clone(), Value::String(crate::secret::REDACTED.into()))).collect::<serde_json::Map<_, _>>(),
            }),
        }})
        .collect()
}

/// YAML text of manifests, `---` separated (for `pake render`).
pub fn to_yaml(ms: &[Manifest]) -> String {
    let mut s = String::new();
    for m in ms {
        s.push_str("---\n");
        s.push_str(&format!("# Source: {}\n", m.template));
        s.push_str(&serde_saphyr::to_string(&m.object).expect("json value serializes as yaml"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `defaultMode: 0440` in a template means what it means to kubectl
    /// (YAML 1.1 octal, 288), not a parse error.
    #[test]
    fn octal_file_modes_read_as_kubectl_reads_them() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  selector:\n    matchLabels: {app: d}\n  template:\n    metadata:\n      labels: {app: d}\n    spec:\n      containers:\n      - name: c\n        image: i\n      volumes:\n      - name: s\n        secret:\n          secretName: s\n          defaultMode: 0440\n";
        let m = parse_documents("t.yaml", "t.yaml", text, "ns").unwrap();
        assert_eq!(
            m[0].object["spec"]["template"]["spec"]["volumes"][0]["secret"]["defaultMode"],
            288
        );
    }
}
