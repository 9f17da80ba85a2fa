//! `runAsNonRoot` (restricted, from v1.0): the pod, or every container, must
//! set `runAsNonRoot: true`, and nothing may set it to `false`. From v1.35 a
//! pod in a user namespace (`hostUsers: false`) is exempt.
//! Upstream: `policy/check_runAsNonRoot.go`.

use super::{Check, Forbidden, Level, PodInput, VersionedCheck, join_quote, pluralize};

pub(super) static CHECK: Check = Check {
    id: "runAsNonRoot",
    level: Level::Restricted,
    versions: &[
        VersionedCheck {
            min_minor: 0,
            check: v1_0,
            overrides: &[],
        },
        VersionedCheck {
            min_minor: 35,
            check: v1_35,
            overrides: &[],
        },
    ],
};

fn v1_0(pod: &PodInput) -> Option<Forbidden> {
    let mut bad_setters: Vec<String> = Vec::new();
    let mut pod_non_root = false;
    if let Some(v) = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_non_root)
    {
        if v {
            pod_non_root = true;
        } else {
            bad_setters.push("pod".into());
        }
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in pod.containers() {
        match c
            .c
            .security_context
            .as_ref()
            .and_then(|s| s.run_as_non_root)
        {
            Some(false) => explicit.push(c.c.name()),
            Some(true) => {}
            None if !pod_non_root => implicit.push(c.c.name()),
            None => {}
        }
    }
    if !explicit.is_empty() {
        bad_setters.push(format!(
            "{} {}",
            pluralize("container", "containers", explicit.len()),
            join_quote(&explicit)
        ));
    }
    if !bad_setters.is_empty() {
        return Some(Forbidden {
            reason: "runAsNonRoot != true",
            detail: format!(
                "{} must not set securityContext.runAsNonRoot=false",
                bad_setters.join(" and ")
            ),
        });
    }
    if !implicit.is_empty() {
        return Some(Forbidden {
            reason: "runAsNonRoot != true",
            detail: format!(
                "pod or {} {} must set securityContext.runAsNonRoot=true",
                pluralize("container", "containers", implicit.len()),
                join_quote(&implicit)
            ),
        });
    }
    None
}

fn v1_35(pod: &PodInput) -> Option<Forbidden> {
    if pod.host_users_false() {
        return None;
    }
    v1_0(pod)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::run;
    use super::*;
    use serde_json::json;

    #[test]
    fn upstream_cases() {
        let f = run(&CHECK, 0, json!({"spec": {"securityContext": {"runAsNonRoot": false}, "containers": [{"name": "a"}]}})).unwrap();
        assert_eq!(f.reason, "runAsNonRoot != true");
        assert_eq!(
            f.detail,
            "pod must not set securityContext.runAsNonRoot=false"
        );
        let f = run(
            &CHECK,
            0,
            json!({"spec": {"containers": [
                {"name": "a"},
                {"name": "b", "securityContext": {}},
                {"name": "c", "securityContext": {"runAsNonRoot": true}}
            ]}}),
        )
        .unwrap();
        assert_eq!(
            f.detail,
            r#"pod or containers "a", "b" must set securityContext.runAsNonRoot=true"#
        );
        let f = run(
            &CHECK,
            0,
            json!({"spec": {"securityContext": {"runAsNonRoot": true}, "containers": [
                {"name": "a"},
                {"name": "c", "securityContext": {"runAsNonRoot": false}},
                {"name": "d", "securityContext": {"runAsNonRoot": false}}
            ]}}),
        )
        .unwrap();
        assert_eq!(
            f.detail,
            r#"containers "c", "d" must not set securityContext.runAsNonRoot=false"#
        );
        let userns = json!({"spec": {"hostUsers": false, "containers": [{"name": "a"}]}});
        assert!(run(&CHECK, 34, userns.clone()).is_some());
        assert!(run(&CHECK, 35, userns).is_none());
    }
}
