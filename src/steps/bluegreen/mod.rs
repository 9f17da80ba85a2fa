//! Blue-green releases, the guide's way but checked at every point.
//!
//! The model is the guide's: the Service `<app>` selects `app=<app>,
//! version=<active>`; every version is its own hardened Deployment
//! `<app>-<version>` (with its PDB) rendered from the same templates as
//! `pake deploy`, so policies, Pod Security and `pake verify` cover it too.
//! The Service `<app>-preview` selects the candidate.
//!
//! - `deploy` runs through the executor (lock, journal, rollback, history):
//!   policies, the candidate's version-labelled objects plus the preview
//!   Service, then the verify checklist.
//! - `switch` cannot be an executor plan: its proof is not "the objects are as
//!   applied" but "the active Service's EndpointSlices list exactly the Ready
//!   pods of the new version", and its undo is a second switch with the same
//!   proof. So it takes the same Lease lock itself, refuses unless the target
//!   is healthy, applies the Service (SSA, field manager `pake`), watches
//!   EndpointSlices and pods until they agree, and switches back otherwise.
//! - The active version is whatever the live Service selects; history
//!   records every switch (from, to, time, who), which is where "the previous
//!   version" for `rollback` and `cleanup` comes from.

use crate::config::is_dns_label;
use crate::error::{Error, Result};

mod cleanup;
mod deploy;
mod model;
mod status;
mod switch;

pub use cleanup::*;
pub use deploy::*;
pub use model::*;
pub use status::*;
pub use switch::*;

/// The template of the preview Service (project override or built in).
pub const PREVIEW_TEMPLATE: &str = "service-preview.yaml";
/// History action of a switch (and of a blue-green rollback, which is a switch).
pub const ACTION_SWITCH: &str = "switch";
/// History status of a switch that was verified.
pub const STATUS_SWITCHED: &str = "switch";
pub const ACTION_DEPLOY: &str = "bluegreen-deploy";
pub const ACTION_CLEANUP: &str = "cleanup";

pub fn preview_name(app: &str) -> String {
    format!("{app}-preview")
}

pub(super) fn check_version(v: &str) -> Result<()> {
    if is_dns_label(v) {
        Ok(())
    } else {
        Err(
            Error::usage(format!("version {v:?} is not a valid label value"))
                .fix("use lowercase letters, digits and '-', e.g. v2"),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::Duration;

    use serde_json::Value;

    use super::*;
    use crate::workflow::executor::CheckResult;
    use crate::workflow::history::Revision;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::api::core::v1::{ObjectReference, PodCondition, PodStatus};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, version: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    [
                        ("app".to_string(), "web".to_string()),
                        ("version".to_string(), version.to_string()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn ep(pod: &str, ready: Option<bool>) -> Endpoint {
        Endpoint {
            addresses: vec!["10.0.0.1".into()],
            conditions: Some(EndpointConditions {
                ready,
                ..Default::default()
            }),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                name: Some(pod.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn slice(eps: Vec<Endpoint>, ports: bool) -> EndpointSlice {
        EndpointSlice {
            address_type: "IPv4".into(),
            endpoints: Some(eps),
            ports: ports.then(|| {
                vec![EndpointPort {
                    name: Some("http".into()),
                    port: Some(8000),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }
    }

    #[test]
    fn converged_only_when_all_endpoints_are_ready_pods_of_the_version() {
        let pods = vec![pod("b-1", "v2", true), pod("b-2", "v2", true)];
        let ok = endpoint_verdict(
            &[slice(vec![ep("b-1", Some(true)), ep("b-2", None)], true)],
            &pods,
            "v2",
            2,
            true,
        );
        assert!(ok.converged, "{ok:?}");
        assert_eq!(ok.ready, 2);

        // An old pod still listed.
        let v = endpoint_verdict(
            &[slice(
                vec![
                    ep("b-1", Some(true)),
                    ep("b-2", Some(true)),
                    ep("a-1", Some(true)),
                ],
                true,
            )],
            &pods,
            "v2",
            2,
            true,
        );
        assert!(!v.converged);
        assert!(
            v.message.contains("not of v2") && v.message.contains("a-1"),
            "{v:?}"
        );

        // One of two only.
        let v = endpoint_verdict(
            &[slice(vec![ep("b-1", Some(true))], true)],
            &pods,
            "v2",
            2,
            true,
        );
        assert!(!v.converged);
        assert!(v.message.contains("1 of 2"), "{v:?}");

        // A not-ready endpoint.
        let v = endpoint_verdict(
            &[slice(
                vec![ep("b-1", Some(true)), ep("b-2", Some(false))],
                true,
            )],
            &pods,
            "v2",
            2,
            true,
        );
        assert!(!v.converged);
        assert!(
            v.message.contains("not ready") && v.message.contains("b-2"),
            "{v:?}"
        );

        // Endpoints without ports: the targetPort matches nothing.
        let v = endpoint_verdict(
            &[slice(
                vec![ep("b-1", Some(true)), ep("b-2", Some(true))],
                false,
            )],
            &pods,
            "v2",
            2,
            true,
        );
        assert!(!v.converged);
        assert!(v.message.contains("no port"), "{v:?}");
    }

    #[test]
    fn unready_pod_that_is_not_an_endpoint_blocks_convergence() {
        // 2 desired, both endpoints ready, but the pod store says b-2 is not
        // Ready (the slice is behind): not yet.
        let pods = vec![pod("b-1", "v2", true), pod("b-2", "v2", false)];
        let v = endpoint_verdict(
            &[slice(
                vec![ep("b-1", Some(true)), ep("b-2", Some(true))],
                true,
            )],
            &pods,
            "v2",
            2,
            true,
        );
        assert!(!v.converged, "{v:?}");
        // Empty slices and no pods: zero desired converges (a scaled-down version).
        let v = endpoint_verdict(&[], &[], "v1", 0, true);
        assert!(v.converged);
    }

    fn rev(n: u32, action: &str, status: &str, details: Value) -> Revision {
        Revision {
            revision: n,
            status: status.into(),
            action: action.into(),
            time: format!("2025-01-01T00:00:{n:02}Z"),
            user: "u@h".into(),
            image: String::new(),
            message: String::new(),
            manifests: Vec::new(),
            hashes: BTreeMap::new(),
            secret_hashes: BTreeMap::new(),
            details,
        }
    }

    #[test]
    fn rollback_target_is_where_the_active_version_came_from() {
        let revs = vec![
            rev(1, "deploy", "superseded", Value::Null),
            rev(
                2,
                ACTION_DEPLOY,
                "deployed",
                serde_json::json!({"version": "v2"}),
            ),
            rev(
                3,
                ACTION_SWITCH,
                STATUS_SWITCHED,
                serde_json::json!({"from": "v1", "to": "v2"}),
            ),
            // A failed switch does not count.
            rev(
                4,
                ACTION_SWITCH,
                "failed",
                serde_json::json!({"from": "v2", "to": "v3"}),
            ),
        ];
        assert_eq!(rollback_target(&revs, "v2").as_deref(), Some("v1"));
        assert_eq!(rollback_target(&revs, "v1"), None);
        assert_eq!(rollback_target(&revs[..2], "v1"), None);
        let mut more = revs.clone();
        more.push(rev(
            5,
            ACTION_SWITCH,
            STATUS_SWITCHED,
            serde_json::json!({"from": "v2", "to": "v1", "kind": "rollback"}),
        ));
        assert_eq!(rollback_target(&more, "v1").as_deref(), Some("v2"));
        assert_eq!(switches(&more).len(), 2);
        assert_eq!(switches(&more)[1].kind, SwitchKind::Rollback);
    }

    fn opts() -> CleanupOptions {
        CleanupOptions {
            keep: 0,
            after: None,
            delete: false,
            include_rollback_target: false,
            include_preview: false,
            dry_run: false,
            wait_lock: false,
            yes: false,
        }
    }

    fn cand(v: &str, replicas: i32, secs: i64) -> Candidate {
        Candidate {
            version: v.into(),
            deployment: format!("web-{v}"),
            replicas,
            inactive_since: jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap(),
        }
    }

    fn actions(d: &[CleanupDecision]) -> Vec<(String, String)> {
        d.iter()
            .map(|d| (d.version.clone(), d.action.clone()))
            .collect()
    }

    #[test]
    fn cleanup_never_touches_the_active_version() {
        let now = jiff::Timestamp::from_second(1_700_010_000).unwrap();
        let c = vec![
            cand("v1", 2, 0),
            cand("v2", 2, 100),
            cand("v3", 2, 200),
            cand("v4", 2, 300),
        ];
        for include in [false, true] {
            for delete in [false, true] {
                let o = CleanupOptions {
                    include_rollback_target: include,
                    include_preview: include,
                    delete,
                    ..opts()
                };
                let d = plan_cleanup(&c, "v3", Some("v2"), Some("v4"), &o, now);
                let v3 = d.iter().find(|d| d.version == "v3").unwrap();
                assert_eq!(v3.action, "keep", "{d:?}");
            }
        }
        let d = plan_cleanup(&c, "v3", Some("v2"), Some("v4"), &opts(), now);
        assert_eq!(
            actions(&d),
            [
                ("v1".into(), "scale-down".into()),
                ("v2".into(), "keep".into()),
                ("v3".into(), "keep".into()),
                ("v4".into(), "keep".into())
            ]
        );
        let o = CleanupOptions {
            include_rollback_target: true,
            delete: true,
            ..opts()
        };
        let d = plan_cleanup(&c, "v3", Some("v2"), Some("v4"), &o, now);
        assert_eq!(actions(&d)[0].1, "delete");
        assert_eq!(actions(&d)[1].1, "delete");
    }

    #[test]
    fn human_durations() {
        let h = |s| human(Duration::from_secs(s));
        assert_eq!(
            [h(0), h(45), h(192), h(7500), h(273_600)],
            ["0s", "45s", "3m12s", "2h5m", "3d4h"]
        );
    }

    #[test]
    fn cleanup_keep_and_after() {
        let now = jiff::Timestamp::from_second(1_700_000_400).unwrap();
        let c = vec![
            cand("v1", 2, 0),
            cand("v2", 0, 100),
            cand("v3", 2, 350),
            cand("v9", 2, 400),
        ];
        // --keep 1 spares the most recently inactive one (v3).
        let o = CleanupOptions { keep: 1, ..opts() };
        let d = plan_cleanup(&c, "v9", None, None, &o, now);
        assert_eq!(
            actions(&d),
            [
                ("v1".into(), "scale-down".into()),
                ("v2".into(), "keep".into()), // already at 0
                ("v3".into(), "keep".into()),
                ("v9".into(), "keep".into())
            ]
        );
        // --after 5m: only v1 (400s idle) qualifies; v3 (50s) is spared.
        let o = CleanupOptions {
            after: Some(Duration::from_secs(300)),
            ..opts()
        };
        let d = plan_cleanup(&c, "v9", None, None, &o, now);
        assert_eq!(actions(&d)[0].1, "scale-down");
        assert_eq!(actions(&d)[2].1, "keep");
        assert!(d[2].reason.contains("--after"), "{:?}", d[2]);
    }

    #[test]
    fn verify_checks_of_other_versions_are_ignored() {
        let checks = vec![
            CheckResult::pass("pss-labels", "Namespace ns", "ok"),
            CheckResult::fail("non-root", "Pod ns/web-v1-abc", "root", "fix"),
            CheckResult::pass("non-root", "Pod ns/web-v2-xyz", "ok"),
            CheckResult::fail("pdb", "Deployment ns/web-v1", "none", "fix"),
            CheckResult::pass("pdb", "Deployment ns/web-v2", "ok"),
        ];
        let pods: BTreeSet<String> = ["web-v2-xyz".to_string()].into();
        let kept = relevant_checks(checks, "ns", "web-v2", &pods);
        let objs: Vec<&str> = kept.iter().map(|c| c.object.as_str()).collect();
        assert_eq!(
            objs,
            ["Namespace ns", "Pod ns/web-v2-xyz", "Deployment ns/web-v2"]
        );
    }

    #[test]
    fn endpoint_counts_per_version() {
        let slices = vec![
            serde_json::json!({"endpoints": [
                {"targetRef": {"name": "a"}, "conditions": {"ready": true}},
                {"targetRef": {"name": "b"}, "conditions": {"ready": false}},
                {"targetRef": {"name": "c"}},
            ]}),
            serde_json::json!({"endpoints": [
                {"targetRef": {"name": "a"}, "conditions": {"ready": true}},
            ]}),
        ];
        let pv: BTreeMap<String, String> = [
            ("a".into(), "v1".into()),
            ("b".into(), "v1".into()),
            ("c".into(), "v2".into()),
        ]
        .into();
        let (ready, total, by) = endpoint_counts(&slices, &pv);
        assert_eq!((ready, total), (2, 3));
        assert_eq!(by, [("v1".to_string(), 1), ("v2".to_string(), 1)].into());
    }
}
