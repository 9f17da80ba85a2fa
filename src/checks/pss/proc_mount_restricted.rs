//! `procMount_restricted` (restricted, from v1.35): the unconditional
//! `procMount` check, kept at the restricted level when the baseline one
//! relaxed for user-namespace pods. Overrides `procMount`.
//! Upstream: `policy/check_procMount_restricted.go`.

use super::{Check, Level, VersionedCheck};

pub(super) static CHECK: Check = Check {
    id: "procMount_restricted",
    level: Level::Restricted,
    versions: &[VersionedCheck {
        min_minor: 35,
        check: super::proc_mount_baseline::v1_0,
        overrides: &[super::proc_mount_baseline::ID],
    }],
};

#[cfg(test)]
mod tests {
    use super::super::{Level, Version, evaluate, testutil::pod};
    use serde_json::json;

    #[test]
    fn restricted_still_blocks_unmasked_in_user_namespace() {
        let p = pod(json!({"spec": {"hostUsers": false, "containers": [
            {"name": "a", "securityContext": {"procMount": "Unmasked"}}]}}));
        let b = evaluate(Level::Baseline, Version::V1(35), &p);
        assert!(b.allowed);
        let r = evaluate(Level::Restricted, Version::V1(35), &p);
        assert!(
            r.violations
                .iter()
                .any(|v| v.check == "procMount_restricted" && v.reason == "procMount")
        );
        assert!(!r.violations.iter().any(|v| v.check == "procMount"));
    }
}
