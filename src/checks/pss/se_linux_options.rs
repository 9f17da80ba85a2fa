//! `seLinuxOptions` (baseline, from v1.0): SELinux `type` limited to the
//! container types (`container_engine_t` allowed from v1.31); `user` and
//! `role` may not be set. Upstream: `policy/check_seLinuxOptions.go`.

use std::collections::BTreeSet;

use super::model::SeLinuxOptions;
use super::{Check, Forbidden, Level, PodInput, VersionedCheck, join_quote, pluralize};

pub(super) static CHECK: Check = Check {
    id: "seLinuxOptions",
    level: Level::Baseline,
    versions: &[
        VersionedCheck {
            min_minor: 0,
            check: v1_0,
            overrides: &[],
        },
        VersionedCheck {
            min_minor: 31,
            check: v1_31,
            overrides: &[],
        },
    ],
};

const TYPES_1_0: &[&str] = &["", "container_t", "container_init_t", "container_kvm_t"];
const TYPES_1_31: &[&str] = &[
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

fn v1_0(pod: &PodInput) -> Option<Forbidden> {
    check(pod, TYPES_1_0)
}

fn v1_31(pod: &PodInput) -> Option<Forbidden> {
    check(pod, TYPES_1_31)
}

/// Upstream's `validSELinuxOptions` closure: records bad types and whether user/role were set.
struct Seen<'a> {
    bad_types: BTreeSet<&'a str>,
    set_user: bool,
    set_role: bool,
}

impl<'a> Seen<'a> {
    fn valid(&mut self, o: &'a SeLinuxOptions, allowed: &[&str]) -> bool {
        let mut ok = true;
        let t = o.type_.as_deref().unwrap_or("");
        if !allowed.contains(&t) {
            ok = false;
            self.bad_types.insert(t);
        }
        if !o.user.as_deref().unwrap_or("").is_empty() {
            ok = false;
            self.set_user = true;
        }
        if !o.role.as_deref().unwrap_or("").is_empty() {
            ok = false;
            self.set_role = true;
        }
        ok
    }
}

fn check(pod: &PodInput, allowed: &[&str]) -> Option<Forbidden> {
    let mut bad_setters: Vec<String> = Vec::new();
    let mut seen = Seen {
        bad_types: BTreeSet::new(),
        set_user: false,
        set_role: false,
    };
    if let Some(o) = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.se_linux_options.as_ref())
        && !seen.valid(o, allowed)
    {
        bad_setters.push("pod".into());
    }
    let mut bad_containers = Vec::new();
    for c in pod.containers() {
        if let Some(o) =
            c.c.security_context
                .as_ref()
                .and_then(|s| s.se_linux_options.as_ref())
            && !seen.valid(o, allowed)
        {
            bad_containers.push(c.c.name());
        }
    }
    if !bad_containers.is_empty() {
        bad_setters.push(format!(
            "{} {}",
            pluralize("container", "containers", bad_containers.len()),
            join_quote(&bad_containers)
        ));
    }
    if bad_setters.is_empty() {
        return None;
    }
    let mut bad_data = Vec::new();
    let Seen {
        bad_types,
        set_user,
        set_role,
    } = seen;
    if !bad_types.is_empty() {
        bad_data.push(format!(
            "{} {}",
            pluralize("type", "types", bad_types.len()),
            join_quote(&bad_types)
        ));
    }
    if set_user {
        bad_data.push("user may not be set".to_string());
    }
    if set_role {
        bad_data.push("role may not be set".to_string());
    }
    Some(Forbidden {
        reason: "seLinuxOptions",
        detail: format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            bad_setters.join(" and "),
            bad_data.join("; ")
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
        let f = run(&CHECK, 0, json!({"spec": {"securityContext": {"seLinuxOptions": {"type": "foo", "user": "bar", "role": "baz"}}}})).unwrap();
        assert_eq!(f.reason, "seLinuxOptions");
        assert_eq!(
            f.detail,
            r#"pod set forbidden securityContext.seLinuxOptions: type "foo"; user may not be set; role may not be set"#
        );
        let f = run(
            &CHECK,
            0,
            json!({"spec": {"securityContext": {"seLinuxOptions": {"type": "foo"}}, "containers": [
                {"name": "a", "securityContext": {"seLinuxOptions": {"type": "container_t"}}},
                {"name": "e", "securityContext": {"seLinuxOptions": {"type": "bar"}}},
                {"name": "f", "securityContext": {"seLinuxOptions": {"user": "x"}}},
                {"name": "g", "securityContext": {"seLinuxOptions": {"role": "x"}}}
            ]}}),
        )
        .unwrap();
        assert_eq!(
            f.detail,
            r#"pod and containers "e", "f", "g" set forbidden securityContext.seLinuxOptions: types "bar", "foo"; user may not be set; role may not be set"#
        );
        let engine = json!({"spec": {"securityContext": {"seLinuxOptions": {"type": "container_engine_t"}}}});
        assert!(run(&CHECK, 30, engine.clone()).is_some());
        assert!(run(&CHECK, 31, engine).is_none());
    }
}
