//! Upstream's own PodSecurity fixtures (k8s.io/pod-security-admission v0.37.2,
//! `test/testdata`): for every level and version v1.0..v1.37, each `pass` pod
//! must be allowed and each `fail` pod denied by the check it was written for.
//! The pods are packed by `tests/fixtures/audit/pss-upstream/generate.py`.

use std::collections::BTreeMap;

use pake::checks::pss::{self, Level, Semantics, Version};

const PODS: &str = include_str!("fixtures/audit/pss-upstream/pods.yaml");
const INDEX: &str = include_str!("fixtures/audit/pss-upstream/index.tsv");

/// The check that reports a fixture's failure: its own, or the restricted check overriding it.
fn expected_check(fixture: &str, level: Level, version: Version) -> &'static str {
    let name = fixture.trim_end_matches(|c: char| c.is_ascii_digit());
    let ids = pss::check_ids(level, version);
    if let Some(id) = ids.iter().find(|id| id.to_ascii_lowercase() == name) {
        return id;
    }
    let over = match name {
        "capabilities_baseline" => "capabilities_restricted",
        "seccompprofile_baseline" => "seccompProfile_restricted",
        "hostpathvolumes" => "restrictedVolumes",
        "procmount" => "procMount_restricted",
        _ => panic!("fixture {fixture} names no check at {level}:{version}"),
    };
    assert!(ids.contains(&over), "{over} not run at {level}:{version}");
    over
}

#[test]
fn upstream_fixtures_pass_and_fail_as_upstream_says() {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(PODS).unwrap();
    assert_eq!(docs.len(), 363);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for line in INDEX.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let level = Level::parse(f[0]).unwrap();
        let version = Version::parse(f[1]).unwrap();
        let (outcome, fixture) = (f[2], f[3]);
        let doc = &docs[f[4].parse::<usize>().unwrap()];
        for semantics in [Semantics::Pod, Semantics::Template] {
            let pod =
                pss::PodInput::from_json(doc.get("metadata"), &doc["spec"], semantics).unwrap();
            let v = pss::evaluate(level, version, &pod);
            let ok = match outcome {
                "pass" => v.allowed,
                _ => {
                    let want = expected_check(fixture, level, version);
                    !v.allowed && v.violations.iter().any(|x| x.check == want)
                }
            };
            if !ok {
                failures.push(format!(
                    "{level}:{version} {outcome}/{fixture} ({semantics:?}): {}",
                    v.admission_message()
                ));
            }
        }
        *counts.entry(f[2]).or_default() += 1;
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(counts["pass"] > 1000 && counts["fail"] > 3000, "{counts:?}");
}

#[test]
fn fixture_index_covers_every_version() {
    for level in ["baseline", "restricted"] {
        for minor in 0..=pss::NEWEST_MINOR {
            let prefix = format!("{level}\tv1.{minor}\t");
            assert!(INDEX.lines().any(|l| l.starts_with(&prefix)), "{prefix}");
        }
    }
}
