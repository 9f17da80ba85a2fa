//! `hostNamespaces` (baseline, from v1.0): no `hostNetwork`, `hostPID` or `hostIPC`.
//! Upstream: `policy/check_hostNamespaces.go`.

use super::{Check, Forbidden, Level, PodInput, VersionedCheck};

pub(super) static CHECK: Check = Check {
    id: "hostNamespaces",
    level: Level::Baseline,
    versions: &[VersionedCheck {
        min_minor: 0,
        check: v1_0,
        overrides: &[],
    }],
};

fn v1_0(pod: &PodInput) -> Option<Forbidden> {
    let s = &pod.spec;
    let mut host = Vec::new();
    if s.host_network == Some(true) {
        host.push("hostNetwork=true");
    }
    if s.host_pid == Some(true) {
        host.push("hostPID=true");
    }
    if s.host_ipc == Some(true) {
        host.push("hostIPC=true");
    }
    if host.is_empty() {
        return None;
    }
    Some(Forbidden {
        reason: "host namespaces",
        detail: host.join(", "),
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
            json!({"spec": {"hostNetwork": true, "hostPID": true, "hostIPC": true}}),
        )
        .unwrap();
        assert_eq!(f.reason, "host namespaces");
        assert_eq!(f.detail, "hostNetwork=true, hostPID=true, hostIPC=true");
        assert!(
            run(
                &CHECK,
                0,
                json!({"spec": {"hostNetwork": false, "hostPID": null}})
            )
            .is_none()
        );
    }
}
