//! `pake version`: client version, git commit and build date, and the API
//! server's version when a cluster answers (like `kubectl version`).
//! `pake --version` stays the short `pake X.Y.Z`.

use std::time::Duration;

use clap::Args;

use super::{Global, only_formats};
use crate::error::{ExitCode, Result};
use crate::output::Format;

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Only the client version; do not contact a cluster.
    #[arg(long)]
    pub client: bool,
}

/// What this binary was built from. `scripts/release` stamps the commit and
/// date (PAKE_GIT_COMMIT, PAKE_BUILD_DATE at compile time).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientVersion {
    pub version: &'static str,
    pub git_commit: &'static str,
    pub build_date: &'static str,
    pub platform: String,
}

pub fn client_version() -> ClientVersion {
    ClientVersion {
        version: env!("CARGO_PKG_VERSION"),
        git_commit: option_env!("PAKE_GIT_COMMIT").unwrap_or("unknown"),
        build_date: option_env!("PAKE_BUILD_DATE").unwrap_or("unknown"),
        platform: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    }
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ServerVersion {
    git_version: String,
    platform: String,
    context: String,
}

pub async fn run(g: &Global, a: VersionArgs) -> Result<ExitCode> {
    only_formats(g, &[Format::Text, Format::Json], "version")?;
    let ui = g.ui();
    let client = client_version();
    // A cluster is optional: no kubeconfig or no answer is not an error here
    // (CI jobs print the version before any kubeconfig exists).
    let (server, why) = if a.client {
        (None, None)
    } else {
        match server_version(g).await {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e)),
        }
    };
    if ui.is_text() {
        ui.line(format!(
            "Client Version: {} (commit {}, built {}, {})",
            client.version, client.git_commit, client.build_date, client.platform
        ));
        match (&server, &why) {
            (Some(s), _) => ui.line(format!(
                "Server Version: {} ({}, context {})",
                s.git_version, s.platform, s.context
            )),
            (None, Some(why)) => {
                crate::output::err_line(format!("Server Version: unavailable ({why})"))
            }
            (None, None) => {}
        }
    } else {
        ui.document(
            "Version",
            &serde_json::json!({"clientVersion": client, "serverVersion": server, "serverError": why}),
        );
    }
    Ok(ExitCode::Ok)
}

async fn server_version(g: &Global) -> std::result::Result<ServerVersion, String> {
    let cluster = g.target().connect().await.map_err(|e| e.message)?;
    let info = tokio::time::timeout(Duration::from_secs(5), cluster.version())
        .await
        .map_err(|_| format!("no answer within 5s on context {}", cluster.context))?
        .map_err(|e| e.message)?;
    Ok(ServerVersion {
        git_version: info.git_version,
        platform: info.platform,
        context: cluster.context,
    })
}
