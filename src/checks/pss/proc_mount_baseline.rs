//! `procMount` (baseline, from v1.0): `securityContext.procMount` must be unset
//! or `Default`. From v1.35 any value is allowed in a user namespace
//! (`hostUsers: false`); the restricted level keeps the strict form through
//! `procMount_restricted`. Upstream: `policy/check_procMount_baseline.go`.

use std::collections::BTreeSet;

use super::{Check, Forbidden, Level, PodInput, VersionedCheck, join_quote, pluralize};

pub(super) const ID: &str = "procMount";

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
            min_minor: 35,
            check: v1_35,
            overrides: &[],
        },
    ],
};

/// Blocks any non-default procMount unconditionally (also used by `procMount_restricted`).
pub(super) fn v1_0(pod: &PodInput) -> Option<Forbidden> {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for c in pod.containers() {
        let Some(pm) =
            c.c.security_context
                .as_ref()
                .and_then(|s| s.proc_mount.as_deref())
        else {
            continue;
        };
        if pm != "Default" {
            bad.push(c.c.name());
            types.insert(pm);
        }
    }
    if bad.is_empty() {
        return None;
    }
    Some(Forbidden {
        reason: "procMount",
        detail: format!(
            "{} {} must not set securityContext.procMount to {}",
            pluralize("container", "containers", bad.len()),
            join_quote(&bad),
            join_quote(&types)
        ),
    })
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
        let p = json!({"spec": {"containers": [
            {"name": "a"},
            {"name": "b", "securityContext": {}},
            {"name": "c", "securityContext": {"procMount": "Default"}},
            {"name": "d", "securityContext": {"procMount": "Unmasked"}},
            {"name": "e", "securityContext": {"procMount": "other"}}
        ]}});
        let f = run(&CHECK, 0, p.clone()).unwrap();
        assert_eq!(f.reason, "procMount");
        assert_eq!(
            f.detail,
            r#"containers "d", "e" must not set securityContext.procMount to "Unmasked", "other""#
        );
        let mut userns = p;
        userns["spec"]["hostUsers"] = json!(false);
        assert!(run(&CHECK, 34, userns.clone()).is_some());
        assert!(run(&CHECK, 35, userns).is_none());
    }
}
