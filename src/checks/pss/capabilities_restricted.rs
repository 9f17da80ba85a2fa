//! `capabilities_restricted` (restricted, from v1.22): containers must drop
//! `ALL` and may add only `NET_BIND_SERVICE`. Overrides
//! `capabilities_baseline`. From v1.25 Windows pods are exempt.
//! Upstream: `policy/check_capabilities_restricted.go`.

use std::collections::BTreeSet;

use super::{Check, Forbidden, Level, PodInput, VersionedCheck, join_quote, pluralize};

pub(super) static CHECK: Check = Check {
    id: "capabilities_restricted",
    level: Level::Restricted,
    versions: &[
        VersionedCheck {
            min_minor: 22,
            check: v1_22,
            overrides: &[super::capabilities_baseline::ID],
        },
        VersionedCheck {
            min_minor: 25,
            check: v1_25,
            overrides: &[super::capabilities_baseline::ID],
        },
    ],
};

fn v1_22(pod: &PodInput) -> Option<Forbidden> {
    let mut missing_drop_all = Vec::new();
    let mut adding_forbidden = Vec::new();
    let mut forbidden_caps = BTreeSet::new();
    for c in pod.containers() {
        let Some(cap) =
            c.c.security_context
                .as_ref()
                .and_then(|s| s.capabilities.as_ref())
        else {
            missing_drop_all.push(c.c.name());
            continue;
        };
        if !cap.dropped().any(|d| d == "ALL") {
            missing_drop_all.push(c.c.name());
        }
        let mut added_forbidden = false;
        for a in cap.added() {
            if a != "NET_BIND_SERVICE" {
                added_forbidden = true;
                forbidden_caps.insert(a);
            }
        }
        if added_forbidden {
            adding_forbidden.push(c.c.name());
        }
    }
    let mut details = Vec::new();
    if !missing_drop_all.is_empty() {
        details.push(format!(
            r#"{} {} must set securityContext.capabilities.drop=["ALL"]"#,
            pluralize("container", "containers", missing_drop_all.len()),
            join_quote(&missing_drop_all)
        ));
    }
    if !adding_forbidden.is_empty() {
        details.push(format!(
            "{} {} must not include {} in securityContext.capabilities.add",
            pluralize("container", "containers", adding_forbidden.len()),
            join_quote(&adding_forbidden),
            join_quote(&forbidden_caps)
        ));
    }
    if details.is_empty() {
        return None;
    }
    Some(Forbidden {
        reason: "unrestricted capabilities",
        detail: details.join("; "),
    })
}

fn v1_25(pod: &PodInput) -> Option<Forbidden> {
    if pod.is_windows() {
        return None;
    }
    v1_22(pod)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::run;
    use super::*;
    use serde_json::json;

    #[test]
    fn upstream_cases() {
        let p = json!({"spec": {"containers": [
            {"name": "a", "securityContext": {"capabilities": {"add": ["FOO", "BAR"]}}},
            {"name": "b", "securityContext": {"capabilities": {"add": ["BAR", "BAZ"]}}},
            {"name": "c", "securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN"], "drop": ["ALL", "FOO"]}}}
        ]}});
        for minor in [22, 25] {
            let f = run(&CHECK, minor, p.clone()).unwrap();
            assert_eq!(f.reason, "unrestricted capabilities");
            assert_eq!(
                f.detail,
                r#"containers "a", "b" must set securityContext.capabilities.drop=["ALL"]; containers "a", "b", "c" must not include "BAR", "BAZ", "CHOWN", "FOO" in securityContext.capabilities.add"#
            );
        }
        assert!(
            run(
                &CHECK,
                25,
                json!({"spec": {"os": {"name": "windows"}, "containers": [{"name": "a"}]}})
            )
            .is_none()
        );
        assert_eq!(
            run(
                &CHECK,
                25,
                json!({"spec": {"os": {"name": "linux"}, "containers": [{"name": "a"}]}})
            )
            .unwrap()
            .detail,
            r#"container "a" must set securityContext.capabilities.drop=["ALL"]"#
        );
    }
}
