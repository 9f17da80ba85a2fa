//! `hostPorts` (baseline, from v1.0): containers may not use host ports.
//! Upstream: `policy/check_hostPorts.go`.
//!
//! For `Pod` objects with `hostNetwork: true` the API server defaults each
//! container's and init container's `hostPort` to its `containerPort`
//! (`SetDefaults_Pod`) before admission, so those count as host ports too.

use std::collections::BTreeSet;

use super::{Check, Forbidden, Level, PodInput, Semantics, VersionedCheck, join_quote, pluralize};

pub(super) static CHECK: Check = Check {
    id: "hostPorts",
    level: Level::Baseline,
    versions: &[VersionedCheck {
        min_minor: 0,
        check: v1_0,
        overrides: &[],
    }],
};

fn v1_0(pod: &PodInput) -> Option<Forbidden> {
    let default_to_container_port =
        pod.semantics == Semantics::Pod && pod.spec.host_network == Some(true);
    let mut bad = Vec::new();
    // Go sorts the ports as strings (sets.String.List), so do we.
    let mut ports: BTreeSet<String> = BTreeSet::new();
    for c in pod.containers() {
        let mut valid = true;
        for p in c.c.ports.iter().flatten() {
            let mut host = p.host_port.unwrap_or(0);
            if host == 0 && default_to_container_port && !c.ephemeral {
                host = p.container_port.unwrap_or(0);
            }
            if host != 0 {
                valid = false;
                ports.insert(host.to_string());
            }
        }
        if !valid {
            bad.push(c.c.name());
        }
    }
    if bad.is_empty() {
        return None;
    }
    let ports: Vec<String> = ports.into_iter().collect();
    Some(Forbidden {
        reason: "hostPort",
        detail: format!(
            "{} {} {} {} {}",
            pluralize("container", "containers", bad.len()),
            join_quote(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
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
        let f = run(&CHECK, 0, json!({"spec": {"containers": [
            {"name": "a", "ports": [{"containerPort": 1}]},
            {"name": "b", "ports": [{"containerPort": 2, "hostPort": 0}, {"containerPort": 3, "hostPort": 20}]},
            {"name": "c", "ports": [{"hostPort": 10}, {"hostPort": 30}]}
        ]}}))
        .unwrap();
        assert_eq!(f.reason, "hostPort");
        assert_eq!(f.detail, r#"containers "b", "c" use hostPorts 10, 20, 30"#);
    }

    #[test]
    fn host_network_pods_default_host_ports() {
        let v = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"hostNetwork": true,
            "containers": [{"name": "a", "ports": [{"containerPort": 8080}]}]}});
        let p = crate::checks::pss::pod_of(&v).unwrap().unwrap();
        assert_eq!(
            v1_0(&p).unwrap().detail,
            r#"container "a" uses hostPort 8080"#
        );
        let mut d = v.clone();
        d["kind"] = json!("Deployment");
        d["apiVersion"] = json!("apps/v1");
        d["spec"] = json!({"template": {"spec": v["spec"].clone()}});
        let p = crate::checks::pss::pod_of(&d).unwrap().unwrap();
        assert!(v1_0(&p).is_none());
    }
}
