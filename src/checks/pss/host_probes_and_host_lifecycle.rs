//! `hostProbesAndHostLifecycle` (baseline, from v1.34): probes and lifecycle
//! handlers may not set `httpGet.host` or `tcpSocket.host`.
//! Upstream: `policy/check_hostProbesAndhostLifecycle.go`.

use std::collections::BTreeSet;

use super::model::Handler;
use super::{Check, Forbidden, Level, PodInput, VersionedCheck, join_quote, pluralize};

pub(super) static CHECK: Check = Check {
    id: "hostProbesAndHostLifecycle",
    level: Level::Baseline,
    versions: &[VersionedCheck {
        min_minor: 34,
        check: v1_34,
        overrides: &[],
    }],
};

fn hosts<'a>(h: Option<&'a Handler>, out: &mut Vec<&'a str>) {
    let Some(h) = h else { return };
    for f in [&h.http_get, &h.tcp_socket].into_iter().flatten() {
        if let Some(host) = f.host.as_deref()
            && !host.is_empty()
        {
            out.push(host);
        }
    }
}

fn v1_34(pod: &PodInput) -> Option<Forbidden> {
    let mut bad_containers: BTreeSet<&str> = BTreeSet::new();
    let mut forbidden: BTreeSet<&str> = BTreeSet::new();
    for c in pod.containers() {
        let c = c.c;
        let mut found = Vec::new();
        hosts(c.liveness_probe.as_ref(), &mut found);
        hosts(c.readiness_probe.as_ref(), &mut found);
        hosts(c.startup_probe.as_ref(), &mut found);
        if let Some(l) = &c.lifecycle {
            hosts(l.post_start.as_ref(), &mut found);
            hosts(l.pre_stop.as_ref(), &mut found);
        }
        if !found.is_empty() {
            bad_containers.insert(c.name());
            forbidden.extend(found);
        }
    }
    if bad_containers.is_empty() {
        return None;
    }
    Some(Forbidden {
        reason: "probe or lifecycle host",
        detail: format!(
            "{} {} {} {} {}",
            pluralize("container", "containers", bad_containers.len()),
            join_quote(&bad_containers),
            pluralize("uses", "use", bad_containers.len()),
            pluralize(
                "probe or lifecycle host",
                "probe or lifecycle hosts",
                forbidden.len()
            ),
            join_quote(&forbidden)
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
            34,
            json!({"spec": {"containers": [
                {"name": "a", "livenessProbe": {"httpGet": {"host": "localhost", "port": 80}},
                 "readinessProbe": {"tcpSocket": {"host": "127.0.0.1", "port": 80}},
                 "lifecycle": {"preStop": {"httpGet": {"host": "::1", "port": 80}}}}
            ]}}),
        )
        .unwrap();
        assert_eq!(f.reason, "probe or lifecycle host");
        assert_eq!(
            f.detail,
            r#"container "a" uses probe or lifecycle hosts "127.0.0.1", "::1", "localhost""#
        );
        let f = run(&CHECK, 34, json!({"spec": {"containers": [
            {"name": "invalid2", "startupProbe": {"httpGet": {"host": "b.com", "port": 80}}},
            {"name": "invalid1", "lifecycle": {"postStart": {"tcpSocket": {"host": "a.com", "port": 80}}}},
            {"name": "ok", "livenessProbe": {"httpGet": {"host": "", "port": 80}}}
        ]}}))
        .unwrap();
        assert_eq!(
            f.detail,
            r#"containers "invalid1", "invalid2" use probe or lifecycle hosts "a.com", "b.com""#
        );
    }
}
