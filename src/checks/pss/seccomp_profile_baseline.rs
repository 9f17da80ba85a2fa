//! `seccompProfile_baseline` (baseline): seccomp may not be turned off.
//! v1.0-v1.18 read the alpha annotations (`seccomp.security.alpha.kubernetes.io/pod`,
//! `container.seccomp.security.alpha.kubernetes.io/<name>`: `runtime/default`,
//! `docker/default` or `localhost/*`); from v1.19 the `seccompProfile.type`
//! fields (`RuntimeDefault` or `Localhost` when set). Overridden at the
//! restricted level from v1.19 by `seccompProfile_restricted`.
//! Upstream: `policy/check_seccompProfile_baseline.go`.

use std::collections::BTreeSet;

use super::{Check, Forbidden, Level, PodInput, VersionedCheck, go_quote, join_quote, pluralize};

pub(super) const ID: &str = "seccompProfile_baseline";

pub(super) static CHECK: Check = Check {
    id: ID,
    level: Level::Baseline,
    versions: &[
        VersionedCheck {
            min_minor: 0,
            check: v1_0,
            overrides: &[],
        },
        VersionedCheck {
            min_minor: 19,
            check: v1_19,
            overrides: &[],
        },
    ],
};

const ANNOTATION_POD: &str = "seccomp.security.alpha.kubernetes.io/pod";
const ANNOTATION_CONTAINER_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

pub(super) fn valid_type(t: &str) -> bool {
    t == "Localhost" || t == "RuntimeDefault"
}

fn valid_annotation(v: &str) -> bool {
    v == "runtime/default" || v == "docker/default" || v.starts_with("localhost/")
}

fn v1_0(pod: &PodInput) -> Option<Forbidden> {
    let mut forbidden: BTreeSet<String> = BTreeSet::new();
    if let Some(v) = pod.meta.annotation(ANNOTATION_POD)
        && !valid_annotation(v)
    {
        forbidden.insert(format!("{ANNOTATION_POD}={}", go_quote(v)));
    }
    for c in pod.containers() {
        let key = format!("{ANNOTATION_CONTAINER_PREFIX}{}", c.c.name());
        if let Some(v) = pod.meta.annotation(&key)
            && !valid_annotation(v)
        {
            forbidden.insert(format!("{key}={}", go_quote(v)));
        }
    }
    if forbidden.is_empty() {
        return None;
    }
    Some(Forbidden {
        reason: "seccompProfile",
        detail: format!(
            "forbidden {} {}",
            pluralize("annotation", "annotations", forbidden.len()),
            forbidden.into_iter().collect::<Vec<_>>().join(", ")
        ),
    })
}

fn v1_19(pod: &PodInput) -> Option<Forbidden> {
    let mut bad_setters: Vec<String> = Vec::new();
    let mut bad_values: BTreeSet<&str> = BTreeSet::new();
    if let Some(p) = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref())
        && !valid_type(p.type_str())
    {
        bad_setters.push("pod".into());
        bad_values.insert(p.type_str());
    }
    let mut bad = Vec::new();
    for c in pod.containers() {
        if let Some(p) =
            c.c.security_context
                .as_ref()
                .and_then(|s| s.seccomp_profile.as_ref())
            && !valid_type(p.type_str())
        {
            bad.push(c.c.name());
            bad_values.insert(p.type_str());
        }
    }
    if !bad.is_empty() {
        bad_setters.push(format!(
            "{} {}",
            pluralize("container", "containers", bad.len()),
            join_quote(&bad)
        ));
    }
    if bad_setters.is_empty() {
        return None;
    }
    Some(Forbidden {
        reason: "seccompProfile",
        detail: format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            bad_setters.join(" and "),
            join_quote(&bad_values)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::run;
    use super::*;
    use serde_json::json;

    #[test]
    fn upstream_cases() {
        let f = run(
            &CHECK,
            0,
            json!({"metadata": {"annotations": {
            "seccomp.security.alpha.kubernetes.io/pod": "unconfined",
            "container.seccomp.security.alpha.kubernetes.io/a": "unconfined",
            "container.seccomp.security.alpha.kubernetes.io/b": "unknown",
            "container.seccomp.security.alpha.kubernetes.io/c": "runtime/default",
            "container.seccomp.security.alpha.kubernetes.io/x": "unconfined"
        }}, "spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}}),
        )
        .unwrap();
        assert_eq!(f.reason, "seccompProfile");
        assert_eq!(
            f.detail,
            r#"forbidden annotations container.seccomp.security.alpha.kubernetes.io/a="unconfined", container.seccomp.security.alpha.kubernetes.io/b="unknown", seccomp.security.alpha.kubernetes.io/pod="unconfined""#
        );
        let f = run(&CHECK, 19, json!({"spec": {"securityContext": {"seccompProfile": {"type": "Unconfined"}}, "containers": [
            {"name": "a"},
            {"name": "b", "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}},
            {"name": "c", "securityContext": {"seccompProfile": {"type": "Unconfined"}}},
            {"name": "d", "securityContext": {"seccompProfile": {"type": "Unconfined"}}}
        ]}}))
        .unwrap();
        assert_eq!(
            f.detail,
            r#"pod and containers "c", "d" must not set securityContext.seccompProfile.type to "Unconfined""#
        );
    }
}
