//! What blue-green and rotation read back from history survives pruning
//! (`history::to_prune`): tests across `workflow::history` and the steps.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::workflow::history::{ROTATION_ACTION, Revision, SWITCH_ACTION, to_prune};

fn rev(n: u32, action: &str, status: &str) -> Revision {
    Revision {
        revision: n,
        status: status.into(),
        action: action.into(),
        time: String::new(),
        user: String::new(),
        image: String::new(),
        message: String::new(),
        manifests: Vec::new(),
        hashes: BTreeMap::new(),
        secret_hashes: BTreeMap::new(),
        details: Value::Null,
    }
}

fn deploys(n: u32) -> Vec<Revision> {
    (1..=n)
        .map(|i| rev(i, "deploy", if i == n { "deployed" } else { "superseded" }))
        .collect()
}

#[test]
fn blue_green_switches_are_kept_and_still_read_back() {
    let mut revs = deploys(12);
    revs[1] = rev(2, SWITCH_ACTION, "switch");
    revs[1].details = serde_json::json!({"from": "v1", "to": "v2"});
    let doomed = to_prune(&revs, 3);
    assert!(!doomed.contains(&2), "{doomed:?}");
    let kept: Vec<Revision> = revs
        .into_iter()
        .filter(|r| !doomed.contains(&r.revision))
        .collect();
    // What blue-green reads: the switch to the active version and where it came from.
    let sw = super::bluegreen::switches(&kept);
    assert_eq!(sw.len(), 1);
    assert_eq!(
        super::bluegreen::rollback_target(&kept, "v2").as_deref(),
        Some("v1")
    );
}

#[test]
fn rotations_and_the_values_before_them_are_kept() {
    let mut revs = deploys(12);
    // Revision 2 deployed the value from before the rotation in revision 3.
    revs[1]
        .secret_hashes
        .insert("db/password".into(), "old".into());
    revs[2] = rev(3, ROTATION_ACTION, ROTATION_ACTION);
    revs[2]
        .secret_hashes
        .insert("db/password".into(), "new".into());
    revs[4] = rev(5, "deploy", crate::workflow::recovery::INTERRUPTED);
    let doomed = to_prune(&revs, 3);
    for kept in [2, 3, 5] {
        assert!(!doomed.contains(&kept), "{kept} pruned: {doomed:?}");
    }
    assert!(doomed.contains(&1) && doomed.contains(&4), "{doomed:?}");
    let kept: Vec<Revision> = revs
        .into_iter()
        .filter(|r| !doomed.contains(&r.revision))
        .collect();
    // The deploy after the rotation still keeps the rotated value.
    assert_eq!(
        super::secrets::keep_rotated(&kept, "db/password", "new", "old"),
        Some(3)
    );
}
