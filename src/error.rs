//! The error type used inside pake.
//!
//! Every error says what failed, on which object, and what to do next, in the
//! style of the guide's troubleshooting section. The kind decides the process
//! exit code, which is part of pake's documented interface.

use std::fmt;

/// Process exit codes (documented in README.md and docs/).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ExitCode {
    /// Everything passed.
    Ok = 0,
    /// A step or check failed (after any rollback).
    Failed = 1,
    /// Bad usage or configuration; nothing was changed.
    Usage = 2,
    /// The cluster (or engine) is unreachable or the identity lacks permission.
    Cluster = 3,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// An error with the object it concerns and a fix the user can apply.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    pub kind: ExitCode,
    pub message: String,
    pub object: Option<String>,
    pub fix: Option<String>,
    /// The HTTP status the API server answered with, when it answered
    /// (404, 409, 422, ...): match on this, never on the message.
    pub status: Option<u16>,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn new(kind: ExitCode, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            object: None,
            fix: None,
            status: None,
            source: None,
        }
    }
    /// A step or check failed.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(ExitCode::Failed, message)
    }
    /// Bad input: usage or configuration. Nothing was changed.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ExitCode::Usage, message)
    }
    /// Cluster or engine unreachable, or permission denied.
    pub fn cluster(message: impl Into<String>) -> Self {
        Self::new(ExitCode::Cluster, message)
    }
    /// The object the error concerns, e.g. `Deployment pake-dev/backend`.
    pub fn on(mut self, object: impl Into<String>) -> Self {
        self.object = Some(object.into());
        self
    }
    /// What the user should do next.
    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
    /// The HTTP status the API server answered with.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }
    /// The API server answered 404 Not Found.
    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }
    pub fn with_source(mut self, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(e));
        self
    }

    /// Classify a kube-rs error: connection problems and 401/403 are exit 3.
    pub fn from_kube(context: impl Into<String>, e: ::kube::Error) -> Self {
        let status = match &e {
            ::kube::Error::Api(s) => Some(s.code),
            _ => None,
        };
        Error {
            status,
            ..Self::classify_kube(context.into(), e)
        }
    }

    fn classify_kube(context: String, e: ::kube::Error) -> Self {
        match &e {
            ::kube::Error::Api(s) if s.code == 403 && s.message.contains("because it is being terminated") => {
                Error::failed(format!("{context}: the namespace is being deleted: {}", s.message))
                    .fix("wait until the namespace is gone (`kubectl get namespace`), then run again; pake will create it")
            }
            ::kube::Error::Api(s) if s.code == 401 || s.code == 403 => {
                Error::cluster(format!("{context}: permission denied: {}", s.message))
                    .fix("run `pake doctor` to see which permissions the current identity lacks; `pake help rbac` shows the deployer roles (`pake init` writes them to templates/rbac/)")
            }
            ::kube::Error::Api(s) => Error::failed(format!("{context}: {} ({})", s.message, s.code)),
            ::kube::Error::HyperError(_)
            | ::kube::Error::Service(_)
            | ::kube::Error::HttpError(_) => Error::cluster(format!("{context}: cannot reach the API server{}: {}", endpoint(), root_cause(&e)))
                .fix("check that the cluster is up and that KUBECONFIG, --kubeconfig and --context point at it (`pake help cluster`)"),
            _ => Error::failed(format!("{context}: {e}")),
        }
    }
}

/// The API server and kubeconfig context of this process's cluster client,
/// named in connection errors (set once by `kube::Target::connect`).
static ENDPOINT: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();

pub fn set_endpoint(server: &str, context: &str) {
    let _ = ENDPOINT.set((server.to_string(), context.to_string()));
}

tokio::task_local! {
    /// The API server of the cluster a future works on, when a run talks to
    /// several (a fleet): set per cluster with [`with_endpoint`].
    static SCOPED_ENDPOINT: (String, String);
}

/// Run `f` with errors naming `server` (context `context`) instead of the
/// process-wide endpoint: one cluster of a fleet.
pub async fn with_endpoint<F: std::future::Future>(
    server: String,
    context: String,
    f: F,
) -> F::Output {
    SCOPED_ENDPOINT.scope((server, context), f).await
}

fn endpoint() -> String {
    if let Ok(s) = SCOPED_ENDPOINT.try_with(|(s, c)| format!(" {s} (context {c})")) {
        return s;
    }
    ENDPOINT
        .get()
        .map(|(s, c)| format!(" {s} (context {c})"))
        .unwrap_or_default()
}

/// The innermost cause, e.g. `Connection refused (os error 111)`, instead of
/// the whole chain of client, service and transport wrappers.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(o) = &self.object {
            write!(f, "\n  object: {o}")?;
        }
        if let Some(src) = &self.source {
            write!(f, "\n  cause: {src}")?;
        }
        if let Some(fix) = &self.fix {
            write!(f, "\n  fix: {fix}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, message: &str) -> ::kube::Error {
        ::kube::Error::Api(Box::new(
            ::kube::core::Status::failure(message, "x").with_code(code),
        ))
    }

    #[test]
    fn the_http_status_is_a_field_not_part_of_the_message() {
        let e = Error::from_kube("GET Role ns/r", api(404, "roles \"r\" not found"));
        assert_eq!(e.status, Some(404));
        assert!(e.is_not_found());
        assert_eq!(e.kind, ExitCode::Failed);
        let e = Error::from_kube("apply", api(403, "forbidden"));
        assert_eq!((e.status, e.kind), (Some(403), ExitCode::Cluster));
        let e = Error::from_kube("apply", api(422, "invalid"));
        assert_eq!(e.status, Some(422));
        assert!(!e.is_not_found());
        assert_eq!(Error::failed("x").status, None);
    }
}
