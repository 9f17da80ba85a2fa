//! `runAsUser` (restricted, from v1.23): nothing may set `runAsUser: 0`.
//! From v1.35 a pod in a user namespace (`hostUsers: false`) is exempt.
//! Upstream: `policy/check_runAsUser.go`.

use super::{Check, Forbidden, Level, PodInput, VersionedCheck, join_quote, pluralize};

pub(super) static CHECK: Check = Check {
    id: "runAsUser",
    level: Level::Restricted,
    versions: &[
        VersionedCheck {
            min_minor: 23,
            check: v1_23,
            overrides: &[],
        },
        VersionedCheck {
            min_minor: 35,
            check: v1_35,
            overrides: &[],
        },
    ],
};

fn v1_23(pod: &PodInput) -> Option<Forbidden> {
    let mut bad_setters: Vec<String> = Vec::new();
    if pod
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_user)
        == Some(0)
    {
        bad_setters.push("pod".into());
    }
    let bad: Vec<&str> = pod
        .containers()
        .filter(|c| c.c.security_context.as_ref().and_then(|s| s.run_as_user) == Some(0))
        .map(|c| c.c.name())
        .collect();
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
        reason: "runAsUser=0",
        detail: format!("{} must not set runAsUser=0", bad_setters.join(" and ")),
    })
}

fn v1_35(pod: &PodInput) -> Option<Forbidden> {
    if pod.host_users_false() {
        return None;
    }
    v1_23(pod)
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
            23,
            json!({"spec": {"securityContext": {"runAsUser": 0}, "containers": [{"name": "a"}]}}),
        )
        .unwrap();
        assert_eq!(f.reason, "runAsUser=0");
        assert_eq!(f.detail, "pod must not set runAsUser=0");
        let f = run(
            &CHECK,
            23,
            json!({"spec": {"securityContext": {"runAsUser": 1000}, "containers": [
                {"name": "a"},
                {"name": "b", "securityContext": {"runAsUser": 1}},
                {"name": "c", "securityContext": {"runAsUser": 0}},
                {"name": "d", "securityContext": {"runAsUser": 0}}
            ]}}),
        )
        .unwrap();
        assert_eq!(f.detail, r#"containers "c", "d" must not set runAsUser=0"#);
        let userns = json!({"spec": {"hostUsers": false, "securityContext": {"runAsUser": 0}}});
        assert!(run(&CHECK, 34, userns.clone()).is_some());
        assert!(run(&CHECK, 35, userns).is_none());
    }
}
