//! Checks of a built image's configuration (what `docker inspect` shows).
//!
//! The Dockerfile checks judge the recipe; these judge the result, which is
//! what Kubernetes will run: a base image's USER, an ENV inherited from a
//! base, or a build argument can change it. Pure: the adapter
//! (`docker::image::facts`) turns the engine's inspect answer into [`ImageFacts`].

use std::collections::BTreeMap;

use serde::Serialize;

use super::dockerfile::secret_value_kind;
use super::{Finding, Severity};
use crate::config::looks_secret_name;

/// The parts of an image's configuration the checks read.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageFacts {
    /// How the user named it (a tag), for messages.
    pub reference: String,
    pub id: String,
    /// `Config.User`: empty means root.
    pub user: String,
    /// `Config.Env`, `NAME=value`. Values are never reported.
    #[serde(skip)]
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub size_bytes: u64,
    /// `Config.Healthcheck.Test`, when the image defines one.
    pub healthcheck: Option<Vec<String>>,
}

/// Images larger than this get a note: slower pulls, more to scan.
pub const LARGE_IMAGE: u64 = 1 << 30;

/// Check an image's configuration.
pub fn check_image(img: &ImageFacts) -> Vec<Finding> {
    let obj = format!("image {}", img.reference);
    let mut out = Vec::new();
    let user = img.user.trim();
    let (uid, gid) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    if uid.is_empty() || uid == "0" || uid == "root" {
        out.push(Finding::new(
            "IMAGE-USER-ROOT",
            Severity::Critical,
            if uid.is_empty() {
                "the image runs as root: Config.User is empty".to_string()
            } else {
                format!("the image runs as root: Config.User is {user:?}")
            },
            "end the final stage of the Dockerfile with `USER 1000:1000` (check the base image's USER too)",
        ));
    } else if uid.parse::<u32>().is_err() {
        out.push(Finding::new(
            "IMAGE-USER-NOT-NUMERIC",
            Severity::High,
            format!("Config.User is the name {user:?}: runAsNonRoot cannot verify it, so Kubernetes refuses to start the pod"),
            "use numeric ids in the Dockerfile: `USER 1000:1000`",
        ));
    } else if let Some(g) = gid
        && (g == "0" || g == "root")
    {
        out.push(Finding::new(
            "IMAGE-USER-GROUP",
            Severity::Medium,
            format!("Config.User {user:?} runs with root's group"),
            "use `USER 1000:1000`",
        ));
    }

    for kv in &img.env {
        let (name, value) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        if value.is_empty() {
            continue;
        }
        if let Some(kind) = secret_value_kind(value) {
            out.push(Finding::new(
                "IMAGE-SECRET-ENV",
                Severity::Critical,
                format!("environment variable {name} holds what looks like {kind} (value not shown)"),
                "rebuild without it, rotate the secret, and pass it at run time (a Kubernetes Secret through secretKeyRef)",
            ));
        } else if looks_secret_name(name) {
            out.push(Finding::new(
                "IMAGE-SECRET-ENV",
                Severity::High,
                format!("environment variable {name} looks like a secret and has a value baked into the image (value not shown)"),
                "remove the ENV (check the base image too) and pass it at run time from a Kubernetes Secret",
            ));
        }
    }

    let mib = img.size_bytes as f64 / (1024.0 * 1024.0);
    out.push(if img.size_bytes > LARGE_IMAGE {
        Finding::new(
            "IMAGE-SIZE",
            Severity::Low,
            format!("image size {mib:.1} MiB: large images pull slowly and carry more to patch"),
            "use a slimmer final stage (distroless, scratch, -slim) and copy only artifacts",
        )
    } else {
        Finding::new(
            "IMAGE-SIZE",
            Severity::Info,
            format!("image size {mib:.1} MiB"),
            "none needed",
        )
    });

    let missing: Vec<&str> = [
        "org.opencontainers.image.created",
        "org.opencontainers.image.revision",
    ]
    .into_iter()
    .filter(|l| img.labels.get(*l).is_none_or(|v| v.is_empty()))
    .collect();
    if !missing.is_empty() {
        out.push(Finding::new(
            "IMAGE-LABELS",
            Severity::Low,
            format!("provenance labels missing or empty: {}", missing.join(", ")),
            "build with `pake build` (it passes them), or set them with LABEL from ARG BUILD_DATE / ARG GIT_COMMIT",
        ));
    }

    match &img.healthcheck {
        Some(t) if t.first().map(String::as_str) != Some("NONE") && !t.is_empty() => {}
        _ => out.push(Finding::new(
            "IMAGE-HEALTHCHECK-MISSING",
            Severity::Low,
            "the image defines no HEALTHCHECK",
            "add a HEALTHCHECK to the Dockerfile (Kubernetes uses probes, but docker and compose use this)",
        )),
    }
    out.into_iter().map(|f| f.on(obj.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> ImageFacts {
        ImageFacts {
            reference: "pake-backend:abc1234".into(),
            id: "sha256:1".into(),
            user: "1000:1000".into(),
            env: vec!["PATH=/bin".into()],
            labels: BTreeMap::from([
                (
                    "org.opencontainers.image.created".into(),
                    "2026-01-01T00:00:00Z".into(),
                ),
                ("org.opencontainers.image.revision".into(), "abc".into()),
            ]),
            size_bytes: 6 << 20,
            healthcheck: Some(vec![
                "CMD".into(),
                "/app/backend".into(),
                "-healthcheck".into(),
            ]),
        }
    }

    fn ids(f: &[Finding]) -> Vec<&str> {
        f.iter().map(|f| f.id.as_str()).collect()
    }

    #[test]
    fn good_image_has_only_the_size_note() {
        let f = check_image(&good());
        assert_eq!(ids(&f), vec!["IMAGE-SIZE"]);
        assert_eq!(f[0].severity, Severity::Info);
        assert!(f[0].message.contains("6.0 MiB"));
    }

    #[test]
    fn root_in_every_spelling() {
        for u in ["", "0", "root", "0:0", "root:root"] {
            let f = check_image(&ImageFacts {
                user: u.into(),
                ..good()
            });
            let r = f
                .iter()
                .find(|f| f.id == "IMAGE-USER-ROOT")
                .unwrap_or_else(|| panic!("{u:?}"));
            assert_eq!(r.severity, Severity::Critical);
        }
        let f = check_image(&ImageFacts {
            user: "app".into(),
            ..good()
        });
        assert!(ids(&f).contains(&"IMAGE-USER-NOT-NUMERIC"));
        let f = check_image(&ImageFacts {
            user: "1000:0".into(),
            ..good()
        });
        assert!(ids(&f).contains(&"IMAGE-USER-GROUP"));
    }

    #[test]
    fn secret_env_values_are_never_reported() {
        let f = check_image(&ImageFacts {
            env: vec![
                "DB_PASSWORD=hunter2".into(),
                "EMPTY_TOKEN=".into(),
                "X=AKIAABCDEFGHIJKLMNOP".into(),
            ],
            ..good()
        });
        assert_eq!(
            ids(&f).iter().filter(|i| **i == "IMAGE-SECRET-ENV").count(),
            2
        );
        let s = serde_json::to_string(&f).unwrap();
        assert!(!s.contains("hunter2") && !s.contains("AKIAABCD"));
    }

    #[test]
    fn labels_healthcheck_and_size() {
        let f = check_image(&ImageFacts {
            labels: BTreeMap::new(),
            healthcheck: Some(vec!["NONE".into()]),
            size_bytes: 2 << 30,
            ..good()
        });
        let i = ids(&f);
        assert!(i.contains(&"IMAGE-LABELS") && i.contains(&"IMAGE-HEALTHCHECK-MISSING"));
        assert_eq!(
            f.iter().find(|f| f.id == "IMAGE-SIZE").unwrap().severity,
            Severity::Low
        );
    }
}
