//! `pake.yaml`: the project's configuration, and the environment selected from it.
//!
//! The file carries no secret values, only references to where they come
//! from (an environment variable, a file, a command). A literal `value:` is
//! refused with the guide's "Never Hardcode Secrets" explanation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub mod current;
pub mod domain;
pub mod external;
pub mod fleet;
pub use current::EnvSource;
pub use external::{ExternalSource, RemoteRef, StoreKind, StoreRef};

pub const FILE_NAME: &str = "pake.yaml";

/// The guide's "Never Hardcode Secrets" explanation, shown whenever a literal secret is found.
pub const NEVER_HARDCODE: &str = "Never Hardcode Secrets: a secret value written into pake.yaml or a template ends up in git history, CI logs and every copy of the repository. Reference it instead: `fromEnv: VAR` (e.g. a CI secret), `fromFile: PATH`, `fromCommand: \"vault kv get -field=password ...\"`, or `generate: {bytes: 32}`; pods read it through `valueFrom.secretKeyRef`.";

/// The whole of pake.yaml.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectConfig {
    /// Application name: the `app` label and the base of object names.
    pub app: String,
    /// Image repository, e.g. `registry.example.com/pake-backend`.
    pub image: String,
    /// Default image tag (overridden per environment or by `pake build`'s record).
    #[serde(default)]
    pub tag: Option<String>,
    /// Deploy by digest instead of tag: `sha256:...`.
    #[serde(default)]
    pub digest: Option<String>,
    /// Container port the app listens on (the guide's backend: 8000).
    #[serde(default = "default_port")]
    pub port: u16,
    /// Default namespace (the guide's `pake-system`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Version label of the workload (blue-green uses v1, v2, ...).
    #[serde(default = "default_version")]
    pub version: String,
    #[serde(default = "default_replicas")]
    pub replicas: i32,
    #[serde(default)]
    pub resources: Resources,
    /// Health endpoint used by probes and the smoke run.
    #[serde(default = "default_health_path")]
    pub health_path: String,
    #[serde(default)]
    pub build: BuildConfig,
    #[serde(default)]
    pub secrets: Vec<SecretSpec>,
    #[serde(default)]
    pub network: NetworkConfig,
    #[serde(default)]
    pub ingress: Option<IngressConfig>,
    /// Environment variables for the container: plain values for non-secrets,
    /// `secretKeyRef` for secrets.
    #[serde(default)]
    pub env: Vec<EnvVar>,
    #[serde(default)]
    pub environments: BTreeMap<String, EnvironmentOverride>,
    /// The environment commands act on without `--env`/`PAKE_ENV` (after the
    /// checkout's own choice, `pake env use`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_environment: Option<String>,
    /// Pod nodeSelector (e.g. `pake.dev/node: real` for the local cluster's real node).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Pod tolerations, as in the Pod spec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default)]
    pub audit: AuditConfig,
    /// Directory of templates, relative to pake.yaml (default `templates`).
    #[serde(default)]
    pub templates: Option<PathBuf>,
    /// Directory of workflow files, relative to pake.yaml (default `workflows`).
    #[serde(default)]
    pub workflows: Option<PathBuf>,
    /// Revisions kept in history (default 10; 0 keeps all); `--history-max` overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_max: Option<usize>,
}

fn default_port() -> u16 {
    8000
}
fn default_namespace() -> String {
    "pake-system".into()
}
fn default_version() -> String {
    "v1".into()
}
fn default_replicas() -> i32 {
    2
}
fn default_health_path() -> String {
    "/health".into()
}

/// Requests and limits (the guide's defaults).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    #[serde(default)]
    pub requests: ResourceList,
    #[serde(default = "ResourceList::guide_limits")]
    pub limits: ResourceList,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            requests: ResourceList::default(),
            limits: ResourceList::guide_limits(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ResourceList {
    pub cpu: String,
    pub memory: String,
    pub ephemeral_storage: String,
}

impl Default for ResourceList {
    /// The guide's requests.
    fn default() -> Self {
        ResourceList {
            cpu: "250m".into(),
            memory: "512Mi".into(),
            ephemeral_storage: "1Gi".into(),
        }
    }
}

impl ResourceList {
    /// The guide's limits.
    pub fn guide_limits() -> Self {
        ResourceList {
            cpu: "1000m".into(),
            memory: "2Gi".into(),
            ephemeral_storage: "2Gi".into(),
        }
    }
}

/// How `pake build` builds the image.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildConfig {
    #[serde(default = "default_dockerfile")]
    pub dockerfile: PathBuf,
    #[serde(default = "default_context")]
    pub context: PathBuf,
    /// `org.opencontainers.image.source`.
    #[serde(default)]
    pub source: Option<String>,
    /// Extra build arguments (non-secret).
    #[serde(default)]
    pub args: BTreeMap<String, String>,
}

impl Default for BuildConfig {
    fn default() -> Self {
        BuildConfig {
            dockerfile: default_dockerfile(),
            context: default_context(),
            source: None,
            args: BTreeMap::new(),
        }
    }
}

fn default_dockerfile() -> PathBuf {
    "Dockerfile.production".into()
}
fn default_context() -> PathBuf {
    ".".into()
}

/// A Kubernetes Secret pake creates from external sources (`keys:`), or one
/// the External Secrets Operator syncs from a store (`external:`). Exactly one.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretSpec {
    pub name: String,
    /// key -> where its value comes from.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, SecretSource>,
    /// Synced by the External Secrets Operator from a SecretStore: pake applies
    /// an ExternalSecret and verifies the sync, and never sees the values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalSource>,
}

impl SecretSpec {
    /// The Secret's key names, from `keys:` or `external.keys`.
    pub fn key_names(&self) -> Vec<String> {
        match &self.external {
            Some(e) => e.keys.keys().cloned().collect(),
            None => self.keys.keys().cloned().collect(),
        }
    }
}

/// Where a secret value comes from. Exactly one field is set.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_command: Option<String>,
    /// How long `fromCommand` may run (`30s`, `2m`; default 30 s or `PAKE_COMMAND_TIMEOUT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Generate random bytes (base64) the first time; keep the existing value afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<Generate>,
    /// Refused: present only so we can explain why (absent from the schema,
    /// so editors flag it too).
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub value: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Generate {
    #[serde(default = "default_bytes")]
    pub bytes: usize,
}

fn default_bytes() -> usize {
    32
}

/// A container environment variable: a plain value (not for secrets) or a reference.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `secret/key`, rendered as `valueFrom.secretKeyRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

/// NetworkPolicy allows on top of the default deny.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkConfig {
    /// Apps allowed to reach this one on its port (the guide: frontend -> backend:8000).
    #[serde(default = "default_allow_from")]
    pub allow_from: Vec<String>,
    /// Allow DNS egress to kube-dns (UDP/TCP 53).
    #[serde(default = "yes")]
    pub allow_dns: bool,
    /// Extra egress: to apps in the namespace on a port.
    #[serde(default)]
    pub egress: Vec<EgressRule>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            allow_from: default_allow_from(),
            allow_dns: true,
            egress: Vec::new(),
        }
    }
}

fn default_allow_from() -> Vec<String> {
    vec!["frontend".into()]
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressRule {
    /// `app` label of the destination pods in the same namespace.
    #[serde(default)]
    pub app: Option<String>,
    /// Destination CIDR (for databases outside the cluster).
    #[serde(default)]
    pub cidr: Option<String>,
    pub port: u16,
    #[serde(default = "tcp")]
    pub protocol: String,
}

fn tcp() -> String {
    "TCP".into()
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressConfig {
    pub host: String,
    #[serde(default = "default_tls_secret")]
    pub tls_secret: String,
    #[serde(default = "default_issuer")]
    pub cluster_issuer: String,
    #[serde(default = "default_ingress_class")]
    pub class_name: String,
}

fn default_tls_secret() -> String {
    "pake-tls".into()
}
fn default_issuer() -> String {
    "letsencrypt-prod".into()
}
fn default_ingress_class() -> String {
    "nginx".into()
}

/// What an environment may override.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentOverride {
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub replicas: Option<i32>,
    #[serde(default)]
    pub resources: Option<Resources>,
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub digest: Option<String>,
    #[serde(default)]
    pub ingress: Option<IngressConfig>,
    /// Protected environments need `--yes` (or an interactive confirmation).
    #[serde(default)]
    pub protected: bool,
    /// Replaces the project's nodeSelector for this environment.
    #[serde(default)]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Replaces the project's tolerations for this environment.
    #[serde(default)]
    pub tolerations: Option<Vec<Toleration>>,
    /// Several clusters: one rollout across them, wave by wave (omitted: the
    /// current or `--context` context, as a single cluster). See docs/fleet.md.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<fleet::ClusterSpec>,
    /// How a rollout across `clusters` proceeds: `maxParallel`, `onFailure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<fleet::Rollout>,
}

/// A pod toleration, with the Pod spec's field names; rendered into the pod template as is.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Toleration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `Equal` (the default) or `Exists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`; empty matches all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

/// Per-project changes to checks: turn off or change severity, with a reason.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditConfig {
    #[serde(default)]
    pub checks: BTreeMap<String, CheckOverride>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckOverride {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub severity: Option<String>,
    /// Why: shown in every report that the override affects. Required.
    pub reason: String,
}

/// The configuration with one environment applied: what render and deploy use.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Resolved {
    pub env: String,
    pub app: String,
    pub image: String,
    /// The image reference to deploy: `repo:tag` or `repo@sha256:...`.
    pub image_ref: String,
    pub port: u16,
    pub namespace: String,
    pub version: String,
    pub replicas: i32,
    pub resources: Resources,
    pub health_path: String,
    pub secrets: Vec<SecretSpec>,
    pub network: NetworkConfig,
    pub ingress: Option<IngressConfig>,
    pub env_vars: Vec<EnvVar>,
    pub protected: bool,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    /// Directory holding pake.yaml.
    pub root: PathBuf,
    pub templates_dir: PathBuf,
    pub workflows_dir: PathBuf,
}

impl Resolved {
    /// Check, before anything changes, that every `fromEnv` variable is set
    /// and every `fromFile` is a readable regular file. Values are not read
    /// here (a `fromCommand` runs once, in the secrets step); this only makes
    /// the common mistakes a clean exit 2 with nothing changed.
    pub fn check_secret_sources(&self) -> Result<()> {
        for spec in &self.secrets {
            for (key, src) in &spec.keys {
                let at = format!("secret {}/{key}", spec.name);
                if let Some(var) = &src.from_env
                    && std::env::var_os(var).is_none_or(|v| v.is_empty())
                {
                    return Err(Error::usage(format!(
                        "{at}: environment variable {var} is not set (or empty); nothing was changed"
                    ))
                    .fix(format!(
                        "export {var} from your secret store (e.g. a CI secret) before running pake"
                    )));
                }
                if let Some(path) = &src.from_file {
                    let full = self.root.join(path);
                    match std::fs::metadata(&full) {
                        Ok(m) if m.is_file() => {}
                        Ok(_) => {
                            return Err(Error::usage(format!(
                                "{at}: {} is not a regular file; nothing was changed",
                                full.display()
                            ))
                            .fix("point fromFile at the file that holds the value"));
                        }
                        Err(e) => {
                            return Err(Error::usage(format!(
                                "{at}: cannot read {}: {e}; nothing was changed",
                                full.display()
                            ))
                            .fix("check the fromFile path in pake.yaml (relative to pake.yaml) and its permissions"));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// A loaded pake.yaml and where it came from.
#[derive(Debug, Clone)]
pub struct Project {
    pub path: PathBuf,
    pub config: ProjectConfig,
}

impl Project {
    /// Load pake.yaml: the given path (`--config`/`PAKE_CONFIG`), else the one
    /// in the current directory or its nearest parent (`current::discover`).
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => current::discover(Path::new("."))?,
        };
        if let Err(e) = std::fs::metadata(&path) {
            return Err(Error::usage(format!("cannot read {}: {e}", path.display()))
                .fix("run pake in the directory that holds pake.yaml, pass --config PATH, or create one with `pake init`"));
        }
        let text = crate::input::read_text(&path, "config file")?;
        let config = parse(&text, &path)?;
        Ok(Project { path, config })
    }

    pub fn root(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// Apply the environment named by `--env` or `PAKE_ENV`, else the
    /// default one (`select_env`: `pake env use`, `defaultEnvironment`, the only one).
    pub fn resolve(&self, env: Option<&str>) -> Result<Resolved> {
        let c = &self.config;
        let known: Vec<&str> = c.environments.keys().map(String::as_str).collect();
        let (env, _) = self.select_env(env)?;
        let o = c.environments.get(&env).ok_or_else(|| {
            Error::usage(format!(
                "unknown environment {env:?} in {}",
                self.path.display()
            ))
            .fix(format!("use one of: {}", known.join(", ")))
        })?;
        let tag = o
            .tag
            .clone()
            .or_else(|| c.tag.clone())
            .unwrap_or_else(|| "latest".into());
        let digest = o.digest.clone().or_else(|| c.digest.clone());
        let image_ref = match digest {
            Some(d) => format!("{}@{}", c.image, d),
            None => format!("{}:{}", c.image, tag),
        };
        let root = self.root();
        Ok(Resolved {
            env: env.clone(),
            app: c.app.clone(),
            image: c.image.clone(),
            image_ref,
            port: c.port,
            namespace: o.namespace.clone().unwrap_or_else(|| c.namespace.clone()),
            version: c.version.clone(),
            replicas: o.replicas.unwrap_or(c.replicas),
            resources: o.resources.clone().unwrap_or_else(|| c.resources.clone()),
            health_path: c.health_path.clone(),
            secrets: c.secrets.clone(),
            network: c.network.clone(),
            ingress: o.ingress.clone().or_else(|| c.ingress.clone()),
            env_vars: c.env.clone(),
            protected: o.protected,
            node_selector: o
                .node_selector
                .clone()
                .unwrap_or_else(|| c.node_selector.clone()),
            tolerations: o
                .tolerations
                .clone()
                .unwrap_or_else(|| c.tolerations.clone()),
            templates_dir: root.join(c.templates.clone().unwrap_or_else(|| "templates".into())),
            workflows_dir: root.join(c.workflows.clone().unwrap_or_else(|| "workflows".into())),
            root,
        })
    }
}

/// Parse and validate pake.yaml text. `path` is used in messages only.
pub fn parse(text: &str, path: &Path) -> Result<ProjectConfig> {
    let config: ProjectConfig =
        serde_saphyr::from_str_with_options(text, crate::redact::yaml_options()).map_err(|e| {
            let (line, msg) = crate::redact::yaml_error(&e, text);
            let at = match line {
                Some(l) => format!("{}:{l}", crate::input::show_path(path)),
                None => crate::input::show_path(path),
            };
            Error::usage(format!("{at}: {msg}"))
                .fix("fix the field named above (`pake help config` lists every field)")
        })?;
    validate(&config, text, path)?;
    current::check_default(&config, text, path)?;
    Ok(config)
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or(0)
}

fn validate(c: &ProjectConfig, text: &str, path: &Path) -> Result<()> {
    domain::check(c, text, path)?;
    let at = |needle: &str| match line_of(text, needle) {
        0 => crate::input::show_path(path),
        l => format!("{}:{l}", crate::input::show_path(path)),
    };
    if !is_dns_label(&c.app) {
        return Err(Error::usage(format!(
            "{}: app {:?} is not a valid DNS label",
            at("app:"),
            c.app
        ))
        .fix("use lower-case letters, digits and '-', at most 63 characters"));
    }
    for (name, o) in std::iter::once(("(top level)", &c.namespace)).chain(
        c.environments
            .iter()
            .filter_map(|(n, e)| e.namespace.as_ref().map(|ns| (n.as_str(), ns))),
    ) {
        if !is_dns_label(o) {
            return Err(Error::usage(format!(
                "{}: namespace {o:?} of {name} is not a valid DNS label",
                at(o)
            )));
        }
    }
    if c.environments.is_empty() {
        return Err(
            Error::usage(format!("{}: no environments defined", path.display())).fix(
                "add `environments:` with at least one entry, e.g. `dev: {namespace: pake-dev}`",
            ),
        );
    }
    for s in &c.secrets {
        if !is_dns_subdomain(&s.name) {
            return Err(Error::usage(format!(
                "{}: secret name {:?} is not valid",
                at(&s.name),
                s.name
            )));
        }
        for (key, src) in &s.keys {
            if src.value.is_some() {
                return Err(Error::usage(format!(
                    "{}: secret {}/{key} has a literal value",
                    at(key),
                    s.name
                ))
                .fix(NEVER_HARDCODE));
            }
            let n = [
                src.from_env.is_some(),
                src.from_file.is_some(),
                src.from_command.is_some(),
                src.generate.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if n != 1 {
                return Err(Error::usage(format!(
                    "{}: secret {}/{key} must have exactly one of fromEnv, fromFile, fromCommand, generate",
                    at(key),
                    s.name
                )));
            }
            if let Some(g) = &src.generate
                && !(16..=4096).contains(&g.bytes)
            {
                return Err(Error::usage(format!(
                    "{}: secret {}/{key}: generate.bytes must be between 16 and 4096",
                    at(key),
                    s.name
                )));
            }
        }
    }
    let mut literal = Vec::new();
    for e in &c.env {
        if e.value.is_some() && e.secret_key_ref.is_some() {
            return Err(Error::usage(format!(
                "{}: env {} has both value and secretKeyRef",
                at(&e.name),
                e.name
            )));
        }
        if let Some(v) = &e.value
            && !v.is_empty()
        {
            // By name, or by value (a private key, a token, a URL with a password); never the value.
            if let Some(kind) = crate::checks::secrets::secret_value_kind(v) {
                literal.push(format!(
                    "{}: env {} holds what looks like {kind}",
                    at(&e.name),
                    e.name
                ));
            } else if looks_secret_name(&e.name) {
                literal.push(format!(
                    "{}: env {} looks like a secret but has a literal value",
                    at(&e.name),
                    e.name
                ));
            }
        }
    }
    if !literal.is_empty() {
        return Err(Error::usage(literal.join("; ")).fix(NEVER_HARDCODE));
    }
    for (name, o) in &c.checks_overrides() {
        if o.reason.trim().is_empty() {
            return Err(Error::usage(format!(
                "{}: audit override of {name} needs a reason",
                at(name)
            )));
        }
    }
    Ok(())
}

impl ProjectConfig {
    fn checks_overrides(&self) -> Vec<(String, CheckOverride)> {
        self.audit
            .checks
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Names that suggest a secret (password, token, key, ...): used to refuse literals.
///
/// The name is split into words (`_`, `-`, `.`, camelCase). It looks secret when
/// it contains a secret word (`password`, `secret`, `token`, `credential`,
/// `apikey`, `privatekey`, `accesskey`, ...), or ends in `_KEY`, `_KEY_CONTENT`,
/// `_PASS`, `_PWD`, `_DSN`. Names of paths and settings about a secret are not
/// secrets: `*_PATH`, `*_FILE`, `*_DIR`, `*_NAME`, `*_REF`, `*_URL`, `*_TTL`, ...
/// (`DB_PASSWORD_FILE` is the pattern the guide recommends), nor are public
/// keys and keys of caches and indexes (`PUBLIC_KEY`, `CACHE_KEY`), nor the
/// shell's `PWD`.
pub fn looks_secret_name(name: &str) -> bool {
    let words = name_words(name);
    let Some(last) = words.last().map(String::as_str) else {
        return false;
    };
    const NOT_A_VALUE: &[&str] = &[
        "path",
        "paths",
        "file",
        "files",
        "filename",
        "filepath",
        "dir",
        "directory",
        "mount",
        "location",
        "name",
        "names",
        "ref",
        "url",
        "uri",
        "endpoint",
        "host",
        "header",
        "ttl",
        "length",
        "len",
        "size",
        "timeout",
        "expiry",
        "expiration",
        "type",
        "format",
        "prefix",
        "suffix",
        "enabled",
        "required",
        "policy",
        "rotation",
        "version",
        "count",
        "algorithm",
        "id",
        "arn",
        "provider",
        "store",
        "env",
        "var",
    ];
    if NOT_A_VALUE.contains(&last) && !(last == "id" && words.iter().any(|w| w == "access")) {
        return false;
    }
    let joined: String = words.concat();
    const SECRET_WORDS: &[&str] = &[
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "credential",
        "apikey",
        "privatekey",
        "accesskey",
        "secretkey",
        "signingkey",
        "encryptionkey",
        "masterkey",
    ];
    if SECRET_WORDS.iter().any(|w| joined.contains(w)) {
        return !matches!(joined.as_str(), "publickey" | "tokenizer");
    }
    let before_last = words.len().checked_sub(2).map(|i| words[i].as_str());
    match last {
        "pass" | "pwd" | "pw" | "dsn" => words.len() > 1 || last == "dsn",
        "key" => {
            words.len() > 1
                && !matches!(
                    before_last,
                    Some(
                        "public"
                            | "pub"
                            | "cache"
                            | "sort"
                            | "partition"
                            | "primary"
                            | "foreign"
                            | "routing"
                            | "idempotency"
                            | "hot"
                            | "group"
                            | "lookup"
                            | "hash"
                            | "map"
                            | "shard"
                            | "index"
                            | "dedup"
                            | "row"
                            | "object"
                            | "s3"
                    )
                )
        }
        "content" | "contents" | "data" | "pem" => before_last == Some("key"),
        _ => false,
    }
}

/// `DB_PASSWORD_FILE` -> `[db, password, file]`; `dbPassword` -> `[db, password]`.
fn name_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "app: backend\nimage: pake-backend\nenvironments:\n  dev:\n    namespace: pake-dev\n  prod:\n    namespace: pake-prod\n    protected: true\n    replicas: 3\n";

    #[test]
    fn secret_names_and_look_alikes() {
        for n in [
            "DB_PASSWORD",
            "dbPassword",
            "db.password",
            "API_TOKEN",
            "AZURE_BATCH_KEY",
            "OCI_CLI_KEY_CONTENT",
            "DB_PASS",
            "MYSQL_PWD",
            "SENTRY_DSN",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID",
            "STRIPE_API_KEY",
            "client-secret",
            "JWT_SIGNING_KEY",
            "private.key",
            "GITHUB_TOKEN",
            "credentials",
        ] {
            assert!(looks_secret_name(n), "{n} should look secret");
        }
        for n in [
            "APP_SECRET_KEY_PATH",
            "GITHUB_TOKEN_PATH",
            "DB_PASSWORD_FILE",
            "TLS_KEY_FILE",
            "SECRET_NAME",
            "TOKEN_URL",
            "TOKEN_TTL",
            "PASSWORD_MIN_LENGTH",
            "PUBLIC_KEY",
            "JWT_PUBLIC_KEY",
            "CACHE_KEY",
            "PARTITION_KEY",
            "PWD",
            "OLDPWD",
            "KEY",
            "LOG_LEVEL",
            "BYPASS_CACHE",
            "KEYCLOAK_URL",
            "MONKEY",
            "TOKENIZER",
        ] {
            assert!(!looks_secret_name(n), "{n} should not look secret");
        }
    }

    #[test]
    fn resolves_environment() {
        let p = Project {
            path: "pake.yaml".into(),
            config: parse(MIN, Path::new("pake.yaml")).unwrap(),
        };
        let r = p.resolve(Some("prod")).unwrap();
        assert_eq!(r.namespace, "pake-prod");
        assert_eq!(r.replicas, 3);
        assert!(r.protected);
        assert_eq!(r.image_ref, "pake-backend:latest");
        let e = p.resolve(Some("qa")).unwrap_err();
        assert_eq!(e.kind, crate::ExitCode::Usage);
        assert!(e.fix.unwrap().contains("dev, prod"));
    }

    #[test]
    fn literal_secret_refused_with_explanation() {
        let t = format!(
            "{MIN}secrets:\n  - name: database-credentials\n    keys:\n      password:\n        value: mypassword123\n"
        );
        let e = parse(&t, Path::new("pake.yaml")).unwrap_err();
        assert!(e.message.contains("pake.yaml:13"), "{}", e.message);
        assert!(e.fix.unwrap().contains("Never Hardcode Secrets"));
        assert!(!e.message.contains("mypassword123"));
    }

    #[test]
    fn secret_looking_env_literal_refused() {
        let t = format!("{MIN}env:\n  - name: DB_PASSWORD\n    value: hunter2\n");
        assert!(parse(&t, Path::new("pake.yaml")).is_err());
        // Every offending variable is named, by name or by value; no value is shown.
        let t = format!(
            "{MIN}env:\n  - name: AZURE_BATCH_KEY\n    value: k3y-value\n  - name: LOG_LEVEL\n    value: info\n  - name: DATABASE_URL\n    value: postgres://app:pw-value@db/app\n  - name: DB_PASSWORD_FILE\n    value: /run/secrets/db\n"
        );
        let e = parse(&t, Path::new("pake.yaml")).unwrap_err();
        assert!(
            e.message
                .contains("env AZURE_BATCH_KEY looks like a secret"),
            "{}",
            e.message
        );
        assert!(
            e.message
                .contains("env DATABASE_URL holds what looks like a password in a URL")
        );
        assert!(!e.message.contains("DB_PASSWORD_FILE") && !e.message.contains("LOG_LEVEL"));
        assert!(!e.message.contains("k3y-value") && !e.message.contains("pw-value"));
    }

    #[test]
    fn unknown_field_is_an_error() {
        let t = format!("{MIN}replicaz: 3\n");
        let e = parse(&t, Path::new("pake.yaml")).unwrap_err();
        assert!(e.message.contains("replicaz"), "{}", e.message);
    }
}
