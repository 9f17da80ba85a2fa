//! `sysctls` (baseline, from v1.0): only the safe, namespaced sysctls. The
//! allowed set grows at v1.27, v1.29, v1.32 and v1.37.
//! Upstream: `policy/check_sysctls.go`.

use super::{Check, Forbidden, Level, PodInput, VersionedCheck};

pub(super) static CHECK: Check = Check {
    id: "sysctls",
    level: Level::Baseline,
    versions: &[
        VersionedCheck {
            min_minor: 0,
            check: v1_0,
            overrides: &[],
        },
        VersionedCheck {
            min_minor: 27,
            check: v1_27,
            overrides: &[],
        },
        VersionedCheck {
            min_minor: 29,
            check: v1_29,
            overrides: &[],
        },
        VersionedCheck {
            min_minor: 32,
            check: v1_32,
            overrides: &[],
        },
        VersionedCheck {
            min_minor: 37,
            check: v1_37,
            overrides: &[],
        },
    ],
};

/// Allowed sysctls with the minor version each became allowed in.
const ALLOWED: [(&str, u32); 14] = [
    ("kernel.shm_rmid_forced", 0),
    ("net.ipv4.ip_local_port_range", 0),
    ("net.ipv4.tcp_syncookies", 0),
    ("net.ipv4.ping_group_range", 0),
    ("net.ipv4.ip_unprivileged_port_start", 0),
    ("net.ipv4.ip_local_reserved_ports", 27),
    ("net.ipv4.tcp_keepalive_time", 29),
    ("net.ipv4.tcp_fin_timeout", 29),
    ("net.ipv4.tcp_keepalive_intvl", 29),
    ("net.ipv4.tcp_keepalive_probes", 29),
    ("net.ipv4.tcp_rmem", 32),
    ("net.ipv4.tcp_wmem", 32),
    ("net.ipv4.tcp_slow_start_after_idle", 37),
    ("net.ipv4.tcp_notsent_lowat", 37),
];

fn v1_0(pod: &PodInput) -> Option<Forbidden> {
    check(pod, 0)
}
fn v1_27(pod: &PodInput) -> Option<Forbidden> {
    check(pod, 27)
}
fn v1_29(pod: &PodInput) -> Option<Forbidden> {
    check(pod, 29)
}
fn v1_32(pod: &PodInput) -> Option<Forbidden> {
    check(pod, 32)
}
fn v1_37(pod: &PodInput) -> Option<Forbidden> {
    check(pod, 37)
}

fn check(pod: &PodInput, minor: u32) -> Option<Forbidden> {
    let forbidden: Vec<&str> = pod
        .spec
        .security_context
        .iter()
        .flat_map(|s| s.sysctls.iter().flatten())
        .map(|s| s.name.as_deref().unwrap_or(""))
        .filter(|n| !ALLOWED.iter().any(|(a, since)| a == n && *since <= minor))
        .collect();
    if forbidden.is_empty() {
        return None;
    }
    Some(Forbidden {
        reason: "forbidden sysctls",
        detail: forbidden.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::run;
    use super::*;
    use serde_json::json;

    fn with(names: &[&str]) -> serde_json::Value {
        let s: Vec<_> = names
            .iter()
            .map(|n| json!({"name": n, "value": "0"}))
            .collect();
        json!({"spec": {"securityContext": {"sysctls": s}}})
    }

    #[test]
    fn upstream_cases() {
        let f = run(&CHECK, 0, with(&["a", "b"])).unwrap();
        assert_eq!(f.reason, "forbidden sysctls");
        assert_eq!(f.detail, "a, b");
        assert_eq!(
            run(&CHECK, 26, with(&["net.ipv4.ip_local_reserved_ports"]))
                .unwrap()
                .detail,
            "net.ipv4.ip_local_reserved_ports"
        );
        assert!(run(&CHECK, 27, with(&["net.ipv4.ip_local_reserved_ports"])).is_none());
        assert!(run(&CHECK, 28, with(&["net.ipv4.tcp_fin_timeout"])).is_some());
        assert!(run(&CHECK, 29, with(&["net.ipv4.tcp_fin_timeout"])).is_none());
        assert!(run(&CHECK, 31, with(&["net.ipv4.tcp_rmem"])).is_some());
        assert!(run(&CHECK, 32, with(&["net.ipv4.tcp_wmem"])).is_none());
        assert!(run(&CHECK, 36, with(&["net.ipv4.tcp_notsent_lowat"])).is_some());
        assert!(run(&CHECK, 37, with(&["net.ipv4.tcp_slow_start_after_idle"])).is_none());
    }
}
