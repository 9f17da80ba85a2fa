//! `capabilities_baseline` (baseline, from v1.0): containers may only add
//! capabilities from the container runtime's default set.
//! Upstream: `policy/check_capabilities_baseline.go`.

use std::collections::BTreeSet;

use super::{Check, Forbidden, Level, PodInput, VersionedCheck, join_quote, pluralize};

pub(super) const ID: &str = "capabilities_baseline";

pub(super) static CHECK: Check = Check {
    id: ID,
    level: Level::Baseline,
    versions: &[VersionedCheck {
        min_minor: 0,
        check: v1_0,
        overrides: &[],
    }],
};

const ALLOWED: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn v1_0(pod: &PodInput) -> Option<Forbidden> {
    let mut bad_containers = Vec::new();
    let mut caps = BTreeSet::new();
    for c in pod.containers() {
        let Some(cap) =
            c.c.security_context
                .as_ref()
                .and_then(|s| s.capabilities.as_ref())
        else {
            continue;
        };
        let mut valid = true;
        for a in cap.added() {
            if !ALLOWED.contains(&a) {
                valid = false;
                caps.insert(a);
            }
        }
        if !valid {
            bad_containers.push(c.c.name());
        }
    }
    if bad_containers.is_empty() {
        return None;
    }
    Some(Forbidden {
        reason: "non-default capabilities",
        detail: format!(
            "{} {} must not include {} in securityContext.capabilities.add",
            pluralize("container", "containers", bad_containers.len()),
            join_quote(&bad_containers),
            join_quote(&caps)
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
            json!({"spec": {"containers": [
                {"name": "a", "securityContext": {"capabilities": {"add": ["FOO", "BAR"]}}},
                {"name": "b", "securityContext": {"capabilities": {"add": ["BAR", "BAZ"]}}},
                {"name": "c", "securityContext": {"capabilities": {"add": ["CHOWN"]}}}
            ]}}),
        )
        .unwrap();
        assert_eq!(f.reason, "non-default capabilities");
        assert_eq!(
            f.detail,
            r#"containers "a", "b" must not include "BAR", "BAZ", "FOO" in securityContext.capabilities.add"#
        );
    }
}
