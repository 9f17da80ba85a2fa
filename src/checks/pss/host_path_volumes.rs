//! `hostPathVolumes` (baseline, from v1.0): no `hostPath` volumes. Overridden
//! at the restricted level by `restrictedVolumes`.
//! Upstream: `policy/check_hostPathVolumes.go`.

use super::{Check, Forbidden, Level, PodInput, VersionedCheck, join_quote, pluralize};

pub(super) const ID: &str = "hostPathVolumes";

pub(super) static CHECK: Check = Check {
    id: ID,
    level: Level::Baseline,
    versions: &[VersionedCheck {
        min_minor: 0,
        check: v1_0,
        overrides: &[],
    }],
};

fn v1_0(pod: &PodInput) -> Option<Forbidden> {
    let bad: Vec<&str> = pod
        .spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.host_path.is_some())
        .map(|v| v.name())
        .collect();
    if bad.is_empty() {
        return None;
    }
    Some(Forbidden {
        reason: "hostPath volumes",
        detail: format!(
            "{} {}",
            pluralize("volume", "volumes", bad.len()),
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
            json!({"spec": {"volumes": [
                {"name": "a", "hostPath": {"path": "/a"}},
                {"name": "b", "hostPath": {}},
                {"name": "c", "emptyDir": {}},
                {"name": "d", "hostPath": null}
            ]}}),
        )
        .unwrap();
        assert_eq!(f.reason, "hostPath volumes");
        assert_eq!(f.detail, r#"volumes "a", "b""#);
    }
}
