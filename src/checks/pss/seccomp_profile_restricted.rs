//! `seccompProfile_restricted` (restricted, from v1.19): the pod or every
//! container must set `seccompProfile.type` to `RuntimeDefault` or
//! `Localhost`. Overrides `seccompProfile_baseline`. From v1.25 Windows pods
//! are exempt. Upstream: `policy/check_seccompProfile_restricted.go`.

use std::collections::BTreeSet;

use super::seccomp_profile_baseline::valid_type;
use super::{Check, Forbidden, Level, PodInput, VersionedCheck, join_quote, pluralize};

pub(super) static CHECK: Check = Check {
    id: "seccompProfile_restricted",
    level: Level::Restricted,
    versions: &[
        VersionedCheck {
            min_minor: 19,
            check: v1_19,
            overrides: &[super::seccomp_profile_baseline::ID],
        },
        VersionedCheck {
            min_minor: 25,
            check: v1_25,
            overrides: &[super::seccomp_profile_baseline::ID],
        },
    ],
};

fn v1_19(pod: &PodInput) -> Option<Forbidden> {
    let mut bad_setters: Vec<String> = Vec::new();
    let mut bad_values: BTreeSet<&str> = BTreeSet::new();
    let mut pod_set = false;
    if let Some(p) = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref())
    {
        if valid_type(p.type_str()) {
            pod_set = true;
        } else {
            bad_setters.push("pod".into());
            bad_values.insert(p.type_str());
        }
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in pod.containers() {
        match c
            .c
            .security_context
            .as_ref()
            .and_then(|s| s.seccomp_profile.as_ref())
        {
            Some(p) if !valid_type(p.type_str()) => {
                explicit.push(c.c.name());
                bad_values.insert(p.type_str());
            }
            Some(_) => {}
            None if !pod_set => implicit.push(c.c.name()),
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
            reason: "seccompProfile",
            detail: format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                bad_setters.join(" and "),
                join_quote(&bad_values)
            ),
        });
    }
    if !implicit.is_empty() {
        return Some(Forbidden {
            reason: "seccompProfile",
            detail: format!(
                r#"pod or {} {} must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost""#,
                pluralize("container", "containers", implicit.len()),
                join_quote(&implicit)
            ),
        });
    }
    None
}

fn v1_25(pod: &PodInput) -> Option<Forbidden> {
    if pod.is_windows() {
        return None;
    }
    v1_19(pod)
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
            19,
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "securityContext": {}}]}}),
        )
        .unwrap();
        assert_eq!(f.reason, "seccompProfile");
        assert_eq!(
            f.detail,
            r#"pod or containers "a", "b" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost""#
        );
        let f = run(&CHECK, 19, json!({"spec": {"securityContext": {"seccompProfile": {"type": "Unconfined"}}, "containers": [{"name": "a"}]}})).unwrap();
        assert_eq!(
            f.detail,
            r#"pod must not set securityContext.seccompProfile.type to "Unconfined""#
        );
        let f = run(&CHECK, 19, json!({"spec": {"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}, "containers": [
            {"name": "a"},
            {"name": "c", "securityContext": {"seccompProfile": {"type": "Unconfined"}}},
            {"name": "d", "securityContext": {"seccompProfile": {"type": "Unconfined"}}}
        ]}}))
        .unwrap();
        assert_eq!(
            f.detail,
            r#"containers "c", "d" must not set securityContext.seccompProfile.type to "Unconfined""#
        );
        let win = json!({"spec": {"os": {"name": "windows"}, "containers": [{"name": "a"}]}});
        assert!(run(&CHECK, 24, win.clone()).is_some());
        assert!(run(&CHECK, 25, win).is_none());
        // Go decodes `seccompProfile: {}` as type "", which is not allowed.
        let f = run(&CHECK, 25, json!({"spec": {"securityContext": {"seccompProfile": {}}, "containers": [{"name": "a"}]}})).unwrap();
        assert_eq!(
            f.detail,
            r#"pod must not set securityContext.seccompProfile.type to """#
        );
    }
}
