//! Registries: image references, credentials, push, and resolving a digest.
//!
//! Credentials come from the environment (`PAKE_REGISTRY_USER` and
//! `PAKE_REGISTRY_PASSWORD`, e.g. CI secrets) or from the Docker config
//! (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`: `auths`, and
//! `credHelpers`/`credsStore` through `docker-credential-<helper> get`), never
//! from the command line. The password is held as a [`SecretValue`] and only
//! copied into the request header bollard sends; it is never printed.

use std::path::PathBuf;

use base64::Engine as _;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::PushImageOptions;
use futures::StreamExt;

use super::{Engine, engine_error};
use crate::error::{Error, Result};
use crate::secret::SecretValue;

pub const ENV_USER: &str = "PAKE_REGISTRY_USER";
pub const ENV_PASSWORD: &str = "PAKE_REGISTRY_PASSWORD";

/// A parsed image reference: `[registry/]path[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `host[:port]` when the reference names one; `None` means Docker Hub.
    pub registry: Option<String>,
    /// Everything before the tag/digest, registry included.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::usage(format!("invalid image reference {s:?}: {why}"))
                .fix("use `[registry[:port]/]name[:tag]`, e.g. 127.0.0.1:5000/pake-backend")
        };
        if s.is_empty() || s.chars().any(char::is_whitespace) {
            return Err(bad("empty or contains whitespace"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if !d.starts_with("sha256:") || d.len() != 71 {
                    return Err(bad("the digest must be sha256: and 64 hex digits"));
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        let slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (repository, tag) = match rest[slash..].rfind(':') {
            Some(c) => (&rest[..slash + c], Some(rest[slash + c + 1..].to_string())),
            None => (rest, None),
        };
        if repository.is_empty() || repository.ends_with('/') {
            return Err(bad("no repository name"));
        }
        if tag.as_deref() == Some("") {
            return Err(bad("empty tag"));
        }
        let first = repository.split('/').next().unwrap_or("");
        let registry = (repository.contains('/')
            && (first.contains('.') || first.contains(':') || first == "localhost"))
            .then(|| first.to_string());
        Ok(ImageRef {
            registry,
            repository: repository.to_string(),
            tag,
            digest,
        })
    }
}

/// Whether `tag` is a valid Docker tag.
pub fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Registry credentials. `Debug` shows the user and where they came from, never the secret.
pub struct Credentials {
    pub username: String,
    secret: SecretValue,
    /// `password` or `identitytoken` (OAuth refresh token from `docker login`).
    kind: SecretKind,
    pub source: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SecretKind {
    Password,
    IdentityToken,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("secret", &self.secret)
            .field("source", &self.source)
            .finish()
    }
}

impl Credentials {
    fn to_docker(&self, registry: &str) -> Result<DockerCredentials> {
        let secret = String::from_utf8(self.secret.expose().to_vec())
            .map_err(|_| Error::usage("the registry password is not UTF-8"))?;
        Ok(match self.kind {
            SecretKind::Password => DockerCredentials {
                username: Some(self.username.clone()),
                password: Some(secret),
                serveraddress: Some(registry.to_string()),
                ..Default::default()
            },
            SecretKind::IdentityToken => DockerCredentials {
                identitytoken: Some(secret),
                serveraddress: Some(registry.to_string()),
                ..Default::default()
            },
        })
    }
}

/// Credentials for `registry` (`host[:port]`), or `None` to push anonymously.
pub fn credentials_for(registry: &str) -> Result<Option<Credentials>> {
    let user = std::env::var(ENV_USER).ok().filter(|v| !v.is_empty());
    let has_password = std::env::var_os(ENV_PASSWORD).is_some_and(|v| !v.is_empty());
    match (user, has_password) {
        (Some(username), true) => {
            return Ok(Some(Credentials {
                username,
                secret: SecretValue::from_env(ENV_PASSWORD)?,
                kind: SecretKind::Password,
                source: format!("environment ({ENV_USER}/{ENV_PASSWORD})"),
            }));
        }
        (Some(_), false) | (None, true) => {
            return Err(
                Error::usage(format!("only one of {ENV_USER} and {ENV_PASSWORD} is set")).fix(
                    "set both (from your CI's secret store), or neither to use the Docker config",
                ),
            );
        }
        (None, false) => {}
    }
    let path = docker_config_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(_) => return Ok(None),
    };
    from_docker_config(&text, registry, &path.display().to_string())
}

fn docker_config_path() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(d) => PathBuf::from(d).join("config.json"),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".docker/config.json"),
    }
}

/// `https://host/v1/` and `host` both name `host`.
fn normalize_host(s: &str) -> &str {
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    s.split('/').next().unwrap_or(s)
}

fn from_docker_config(text: &str, registry: &str, path: &str) -> Result<Option<Credentials>> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        Error::usage(format!("cannot parse {path}: {e}"))
            .fix("fix the JSON, or use PAKE_REGISTRY_USER/PAKE_REGISTRY_PASSWORD")
    })?;
    let helper = v["credHelpers"]
        .as_object()
        .and_then(|m| m.iter().find(|(k, _)| normalize_host(k) == registry))
        .and_then(|(_, h)| h.as_str())
        .or_else(|| v["credsStore"].as_str());
    if let Some(h) = helper
        && let Some(c) = from_helper(h, registry)?
    {
        return Ok(Some(c));
    }
    let Some(entry) = v["auths"]
        .as_object()
        .and_then(|m| m.iter().find(|(k, _)| normalize_host(k) == registry))
        .map(|(_, e)| e)
    else {
        return Ok(None);
    };
    let source = format!("{path} (auths)");
    if let Some(tok) = entry["identitytoken"].as_str().filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials {
            username: String::new(),
            secret: SecretValue::from_bytes(tok.as_bytes().to_vec()),
            kind: SecretKind::IdentityToken,
            source,
        }));
    }
    if let Some(auth) = entry["auth"].as_str().filter(|a| !a.is_empty()) {
        let mut raw = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .map_err(|_| {
                Error::usage(format!(
                    "{path}: the auth entry for {registry} is not base64"
                ))
            })?;
        let colon = raw.iter().position(|b| *b == b':').ok_or_else(|| {
            Error::usage(format!(
                "{path}: the auth entry for {registry} is not user:password"
            ))
        })?;
        let username = String::from_utf8_lossy(&raw[..colon]).into_owned();
        let secret = SecretValue::from_bytes(raw[colon + 1..].to_vec());
        raw.iter_mut().for_each(|b| *b = 0);
        return Ok(Some(Credentials {
            username,
            secret,
            kind: SecretKind::Password,
            source,
        }));
    }
    match (entry["username"].as_str(), entry["password"].as_str()) {
        (Some(u), Some(p)) if !p.is_empty() => Ok(Some(Credentials {
            username: u.to_string(),
            secret: SecretValue::from_bytes(p.as_bytes().to_vec()),
            kind: SecretKind::Password,
            source,
        })),
        _ => Ok(None),
    }
}

/// `docker-credential-<helper> get`, with the registry on stdin.
fn from_helper(helper: &str, registry: &str) -> Result<Option<Credentials>> {
    use std::io::Write;
    let bin = format!("docker-credential-{helper}");
    let mut child =
        match std::process::Command::new(&bin)
            .arg("get")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                return Err(Error::usage(format!(
                "the Docker config names credential helper {helper:?}, but {bin} cannot run: {e}"
            ))
            .fix(format!("install {bin}, or use PAKE_REGISTRY_USER/PAKE_REGISTRY_PASSWORD")));
            }
        };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(registry.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::failed(format!("{bin} get: {e}")))?;
    let mut stdout = out.stdout;
    if !out.status.success() {
        stdout.iter_mut().for_each(|b| *b = 0);
        // "credentials not found in native keychain": push anonymously.
        return Ok(None);
    }
    let parsed: std::result::Result<serde_json::Value, _> = serde_json::from_slice(&stdout);
    stdout.iter_mut().for_each(|b| *b = 0);
    let v = parsed
        .map_err(|_| Error::failed(format!("{bin} get printed something that is not JSON")))?;
    let username = v["Username"].as_str().unwrap_or_default().to_string();
    let Some(secret) = v["Secret"].as_str().filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    Ok(Some(Credentials {
        kind: if username == "<token>" {
            SecretKind::IdentityToken
        } else {
            SecretKind::Password
        },
        username,
        secret: SecretValue::from_bytes(secret.as_bytes().to_vec()),
        source: format!("credential helper {bin}"),
    }))
}

impl Engine {
    /// Push `repository:tag` and return the digest the registry stored (`sha256:...`).
    pub async fn push(
        &self,
        image: &ImageRef,
        tag: &str,
        credentials: Option<&Credentials>,
        mut on_status: impl FnMut(&str),
    ) -> Result<String> {
        let registry = image.registry.clone().unwrap_or_else(|| "docker.io".into());
        let creds = credentials.map(|c| c.to_docker(&registry)).transpose()?;
        let mut s = self.docker.push_image(
            &image.repository,
            Some(PushImageOptions {
                tag: Some(tag.to_string()),
                ..Default::default()
            }),
            creds,
        );
        let mut digest = None;
        while let Some(item) = s.next().await {
            match item {
                Ok(info) => {
                    if let Some(st) = info.status {
                        // "<tag>: digest: sha256:... size: 528"
                        if let Some(i) = st.find("digest: sha256:") {
                            let d = &st[i + "digest: ".len()..];
                            digest = Some(d.split_whitespace().next().unwrap_or(d).to_string());
                        }
                        on_status(&st);
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    let lower = error.to_ascii_lowercase();
                    let fix = if lower.contains("unauthorized") || lower.contains("denied") {
                        format!(
                            "log in to {registry} (`docker login {registry}`) or set {ENV_USER}/{ENV_PASSWORD}"
                        )
                    } else if lower.contains("connection refused") || lower.contains("no such host")
                    {
                        format!(
                            "check that the registry {registry} is up and reachable from here (`pake help build`)"
                        )
                    } else {
                        "see the registry's answer above".into()
                    };
                    return Err(Error::failed(format!("push refused: {}", error.trim()))
                        .on(format!("{}:{tag}", image.repository))
                        .fix(fix));
                }
                Err(e) => return Err(engine_error(&format!("push {}:{tag}", image.repository), e)),
            }
        }
        match digest {
            Some(d) => Ok(d),
            None => {
                // Older engines may not say it in the stream: the push recorded it.
                let prefix = format!("{}@", image.repository);
                self.repo_digests(&format!("{}:{tag}", image.repository))
                    .await?
                    .into_iter()
                    .find_map(|d| d.strip_prefix(&prefix).map(str::to_string))
                    .ok_or_else(|| {
                        Error::failed("the push finished but reported no digest")
                            .on(format!("{}:{tag}", image.repository))
                    })
            }
        }
    }

    /// Ask the registry (through the engine) what `repository@digest` is:
    /// proves the pushed digest resolves, which is what deploying by digest needs.
    pub async fn resolve_digest(
        &self,
        image: &ImageRef,
        digest: &str,
        credentials: Option<&Credentials>,
    ) -> Result<String> {
        let registry = image.registry.clone().unwrap_or_else(|| "docker.io".into());
        let creds = credentials.map(|c| c.to_docker(&registry)).transpose()?;
        let reference = format!("{}@{digest}", image.repository);
        let d = self
            .docker
            .inspect_registry_image(&reference, creds)
            .await
            .map_err(|e| engine_error(&format!("resolve {reference} in the registry"), e))?;
        Ok(d.descriptor.digest.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = ImageRef::parse("127.0.0.1:5000/team/app:1.2").unwrap();
        assert_eq!(r.registry.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(r.repository, "127.0.0.1:5000/team/app");
        assert_eq!(r.tag.as_deref(), Some("1.2"));
        let r = ImageRef::parse("localhost:5000/app").unwrap();
        assert_eq!(r.registry.as_deref(), Some("localhost:5000"));
        assert_eq!(r.tag, None);
        let r = ImageRef::parse("pake-example/backend").unwrap();
        assert_eq!(
            r.registry, None,
            "a first component without . or : is a Hub namespace"
        );
        let d = format!("app@sha256:{}", "a".repeat(64));
        assert_eq!(ImageRef::parse(&d).unwrap().digest.unwrap().len(), 71);
        assert!(ImageRef::parse("app@sha256:12").is_err());
        assert!(ImageRef::parse("app:").is_err());
        assert!(valid_tag("abc1234-dirty") && !valid_tag("-x") && !valid_tag("a/b"));
    }

    #[test]
    fn docker_config_auths_and_no_secret_in_debug() {
        let auth = base64::engine::general_purpose::STANDARD.encode("ci:s3cr3t-pw");
        let cfg = format!(r#"{{"auths": {{"https://127.0.0.1:5000/v1/": {{"auth": "{auth}"}}}}}}"#);
        let c = from_docker_config(&cfg, "127.0.0.1:5000", "config.json")
            .unwrap()
            .unwrap();
        assert_eq!(c.username, "ci");
        assert_eq!(c.secret.expose(), b"s3cr3t-pw");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let d = c.to_docker("127.0.0.1:5000").unwrap();
        assert_eq!(d.password.as_deref(), Some("s3cr3t-pw"));
        assert!(
            from_docker_config(&cfg, "other:5000", "config.json")
                .unwrap()
                .is_none()
        );
        let tok = r#"{"auths": {"r.example": {"identitytoken": "tok"}}}"#;
        let c = from_docker_config(tok, "r.example", "c").unwrap().unwrap();
        assert_eq!(
            c.to_docker("r.example").unwrap().identitytoken.as_deref(),
            Some("tok")
        );
    }

    #[test]
    fn missing_helper_is_a_usage_error() {
        let cfg = r#"{"credsStore": "pake-test-no-such-helper"}"#;
        let e = from_docker_config(cfg, "r.example", "c").unwrap_err();
        assert_eq!(e.kind, crate::ExitCode::Usage);
    }
}
