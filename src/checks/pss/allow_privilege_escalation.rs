//! `allowPrivilegeEscalation` (restricted, from v1.8): containers must set
//! `securityContext.allowPrivilegeEscalation=false`. From v1.25 Windows pods
//! (`spec.os.name: windows`) are exempt, since the field is invalid for them.
//! Upstream: `policy/check_allowPrivilegeEscalation.go`.

use super::{Check, Forbidden, Level, PodInput, VersionedCheck, join_quote, pluralize};

pub(super) static CHECK: Check = Check {
    id: "allowPrivilegeEscalation",
    level: Level::Restricted,
    versions: &[
        VersionedCheck {
            min_minor: 8,
            check: v1_8,
            overrides: &[],
        },
        VersionedCheck {
            min_minor: 25,
            check: v1_25,
            overrides: &[],
        },
    ],
};

fn v1_8(pod: &PodInput) -> Option<Forbidden> {
    let bad: Vec<&str> = pod
        .containers()
        .filter(|c| {
            c.c.security_context
                .as_ref()
                .and_then(|s| s.allow_privilege_escalation)
                .unwrap_or(true)
        })
        .map(|c| c.c.name())
        .collect();
    if bad.is_empty() {
        return None;
    }
    Some(Forbidden {
        reason: "allowPrivilegeEscalation != false",
        detail: format!(
            "{} {} must set securityContext.allowPrivilegeEscalation=false",
            pluralize("container", "containers", bad.len()),
            join_quote(&bad)
        ),
    })
}

fn v1_25(pod: &PodInput) -> Option<Forbidden> {
    if pod.is_windows() {
        return None;
    }
    v1_8(pod)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::run;
    use super::*;
    use serde_json::json;

    #[test]
    fn upstream_cases() {
        let p = json!({"spec": {"containers": [
            {"name": "a"},
            {"name": "b", "securityContext": {}},
            {"name": "c", "securityContext": {"allowPrivilegeEscalation": true}},
            {"name": "d", "securityContext": {"allowPrivilegeEscalation": false}}
        ]}});
        let f = run(&CHECK, 8, p).unwrap();
        assert_eq!(f.reason, "allowPrivilegeEscalation != false");
        assert_eq!(
            f.detail,
            r#"containers "a", "b", "c" must set securityContext.allowPrivilegeEscalation=false"#
        );
        let win = json!({"spec": {"os": {"name": "windows"}, "containers": [{"name": "a"}]}});
        assert!(run(&CHECK, 25, win.clone()).is_none());
        assert!(run(&CHECK, 24, win).is_some());
        let linux = json!({"spec": {"os": {"name": "linux"}, "containers": [{"name": "a"}]}});
        assert_eq!(
            run(&CHECK, 25, linux).unwrap().detail,
            r#"container "a" must set securityContext.allowPrivilegeEscalation=false"#
        );
    }
}
