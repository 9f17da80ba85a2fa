//! `privileged` (baseline, from v1.0): no `securityContext.privileged=true`.
//! Upstream: `policy/check_privileged.go`.

use super::{Check, Forbidden, Level, PodInput, VersionedCheck, join_quote, pluralize};

pub(super) static CHECK: Check = Check {
    id: "privileged",
    level: Level::Baseline,
    versions: &[VersionedCheck {
        min_minor: 0,
        check: v1_0,
        overrides: &[],
    }],
};

fn v1_0(pod: &PodInput) -> Option<Forbidden> {
    let bad: Vec<&str> = pod
        .containers()
        .filter(|c| {
            c.c.security_context
                .as_ref()
                .and_then(|s| s.privileged)
                .unwrap_or(false)
        })
        .map(|c| c.c.name())
        .collect();
    if bad.is_empty() {
        return None;
    }
    Some(Forbidden {
        reason: "privileged",
        detail: format!(
            "{} {} must not set securityContext.privileged=true",
            pluralize("container", "containers", bad.len()),
            join_quote(&bad)
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
                {"name": "a"},
                {"name": "b", "securityContext": {}},
                {"name": "c", "securityContext": {"privileged": false}},
                {"name": "d", "securityContext": {"privileged": true}},
                {"name": "e", "securityContext": {"privileged": true}}
            ]}}),
        )
        .unwrap();
        assert_eq!(f.reason, "privileged");
        assert_eq!(
            f.detail,
            r#"containers "d", "e" must not set securityContext.privileged=true"#
        );
    }
}
