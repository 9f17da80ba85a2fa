//! `windowsHostProcess` (baseline, from v1.0): no
//! `securityContext.windowsOptions.hostProcess=true` on the pod or containers.
//! Upstream: `policy/check_windowsHostProcess.go`.

use super::{Check, Forbidden, Level, PodInput, VersionedCheck, join_quote, pluralize};

pub(super) static CHECK: Check = Check {
    id: "windowsHostProcess",
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
                .and_then(|s| s.windows_options.as_ref())
                .and_then(|w| w.host_process)
                == Some(true)
        })
        .map(|c| c.c.name())
        .collect();
    let pod_forbidden = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.windows_options.as_ref())
        .and_then(|w| w.host_process)
        == Some(true);
    let mut setters = Vec::new();
    if pod_forbidden {
        setters.push("pod".to_string());
    }
    if !bad.is_empty() {
        setters.push(format!(
            "{} {}",
            pluralize("container", "containers", bad.len()),
            join_quote(&bad)
        ));
    }
    if setters.is_empty() {
        return None;
    }
    Some(Forbidden {
        reason: "hostProcess",
        detail: format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            setters.join(" and ")
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
        let f = run(&CHECK, 0, json!({"spec": {"securityContext": {"windowsOptions": {"hostProcess": true}}, "containers": [
            {"name": "a"},
            {"name": "d", "securityContext": {"windowsOptions": {"hostProcess": false}}},
            {"name": "e", "securityContext": {"windowsOptions": {"hostProcess": true}}},
            {"name": "f", "securityContext": {"windowsOptions": {"hostProcess": true}}}
        ]}}))
        .unwrap();
        assert_eq!(f.reason, "hostProcess");
        assert_eq!(
            f.detail,
            r#"pod and containers "e", "f" must not set securityContext.windowsOptions.hostProcess=true"#
        );
    }
}
