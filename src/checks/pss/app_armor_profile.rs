//! `appArmorProfile` (baseline, from v1.0): AppArmor may not be turned off.
//! Fields `appArmorProfile.type` (pod and containers) must be `RuntimeDefault`
//! or `Localhost`; deprecated annotations
//! `container.apparmor.security.beta.kubernetes.io/*` must be empty,
//! `runtime/default` or `localhost/*`.
//! Upstream: `policy/check_appArmorProfile.go`.
//!
//! For `Pod` objects the API server first copies a container's annotation into
//! the container's field when the field is unset (pod strategy
//! `applyAppArmorVersionSkew`), so an `unconfined` annotation is reported both
//! as the annotation and as the container's `Unconfined` field, as the API
//! server reports it.

use std::collections::BTreeSet;

use super::model::AppArmorProfile;
use super::{
    Check, Forbidden, Level, PodInput, Semantics, VersionedCheck, go_quote, join_quote, pluralize,
};

pub(super) static CHECK: Check = Check {
    id: "appArmorProfile",
    level: Level::Baseline,
    versions: &[VersionedCheck {
        min_minor: 0,
        check: v1_0,
        overrides: &[],
    }],
};

const ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

fn allowed_annotation_value(v: &str) -> bool {
    v.is_empty() || v == "runtime/default" || v.starts_with("localhost/")
}

fn allowed_type(t: &str) -> bool {
    t == "RuntimeDefault" || t == "Localhost"
}

/// The field the pod strategy derives from an annotation (`ApparmorFieldForAnnotation`
/// plus field validation): `None` when nothing valid would be copied.
fn field_for_annotation(v: &str) -> Option<AppArmorProfile> {
    let t = |t: &str| AppArmorProfile {
        type_: Some(t.to_string()),
        localhost_profile: None,
    };
    match v {
        "unconfined" => Some(t("Unconfined")),
        "runtime/default" => Some(t("RuntimeDefault")),
        _ => {
            let p = v.strip_prefix("localhost/")?;
            if p.is_empty() || p.trim() != p || p.len() > 4095 {
                return None;
            }
            Some(AppArmorProfile {
                type_: Some("Localhost".into()),
                localhost_profile: Some(p.to_string()),
            })
        }
    }
}

fn v1_0(pod: &PodInput) -> Option<Forbidden> {
    let mut bad_setters: Vec<String> = Vec::new();
    let mut bad_values: BTreeSet<String> = BTreeSet::new();
    let pod_profile = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.app_armor_profile.as_ref());
    if let Some(p) = pod_profile
        && !allowed_type(p.type_str())
    {
        bad_setters.push("pod".into());
        bad_values.insert(p.type_str().to_string());
    }
    let sync = pod.semantics == Semantics::Pod && !pod.is_windows();
    let mut bad_containers: Vec<&str> = Vec::new();
    for c in pod.containers() {
        let field =
            c.c.security_context
                .as_ref()
                .and_then(|s| s.app_armor_profile.clone());
        let field = match field {
            Some(f) => Some(f),
            None if sync => pod
                .meta
                .annotation(&format!("{ANNOTATION_PREFIX}{}", c.c.name()))
                .and_then(field_for_annotation)
                .filter(|f| pod_profile != Some(f)),
            None => None,
        };
        if let Some(f) = field
            && !allowed_type(f.type_str())
        {
            bad_containers.push(c.c.name());
            bad_values.insert(f.type_str().to_string());
        }
    }
    if !bad_containers.is_empty() {
        bad_setters.push(format!(
            "{} {}",
            pluralize("container", "containers", bad_containers.len()),
            join_quote(&bad_containers)
        ));
    }
    let mut forbidden_annotations: Vec<String> = pod
        .meta
        .annotations()
        .filter(|(k, v)| k.starts_with(ANNOTATION_PREFIX) && !allowed_annotation_value(v))
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect();
    let mut bad_value_list: Vec<String> = bad_values.into_iter().collect();
    if !forbidden_annotations.is_empty() {
        forbidden_annotations.sort();
        bad_setters
            .push(pluralize("annotation", "annotations", forbidden_annotations.len()).to_string());
        bad_value_list.extend(forbidden_annotations);
    }
    if bad_setters.is_empty() {
        return None;
    }
    Some(Forbidden {
        reason: pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            bad_value_list.len(),
        ),
        detail: format!(
            "{} must not set AppArmor profile type to {}",
            bad_setters.join(" and "),
            join_quote(&bad_value_list)
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
        assert!(run(&CHECK, 0, json!({"metadata": {"annotations": {"container.apparmor.security.beta.kubernetes.io/test": "runtime/default", "env": "prod"}}, "spec": {}})).is_none());
        assert!(run(&CHECK, 0, json!({"metadata": {"annotations": {"container.apparmor.security.beta.kubernetes.io/test": "localhost/sec-profile01"}}, "spec": {}})).is_none());
        let f = run(
            &CHECK,
            0,
            json!({"spec": {"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}}),
        )
        .unwrap();
        assert_eq!(f.reason, "forbidden AppArmor profile");
        assert_eq!(
            f.detail,
            r#"pod must not set AppArmor profile type to "Unconfined""#
        );
        let f = run(&CHECK, 0, json!({"spec": {"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "foo", "securityContext": {"appArmorProfile": {"type": "Unconfined"}}}]}})).unwrap();
        assert_eq!(
            f.detail,
            r#"container "foo" must not set AppArmor profile type to "Unconfined""#
        );
        let f = run(
            &CHECK,
            0,
            json!({"metadata": {"annotations": {
            "container.apparmor.security.beta.kubernetes.io/a": "unconfined",
            "container.apparmor.security.beta.kubernetes.io/b": "bad"}}, "spec": {}}),
        )
        .unwrap();
        assert_eq!(f.reason, "forbidden AppArmor profiles");
        assert_eq!(
            f.detail,
            r#"annotations must not set AppArmor profile type to "container.apparmor.security.beta.kubernetes.io/a="unconfined"", "container.apparmor.security.beta.kubernetes.io/b="bad"""#
        );
    }

    #[test]
    fn pod_objects_sync_annotation_to_field() {
        let v = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"annotations": {
            "container.apparmor.security.beta.kubernetes.io/app": "unconfined"}},
            "spec": {"containers": [{"name": "app"}]}});
        let p = crate::checks::pss::pod_of(&v).unwrap().unwrap();
        let f = v1_0(&p).unwrap();
        assert_eq!(f.reason, "forbidden AppArmor profiles");
        assert_eq!(
            f.detail,
            r#"container "app" and annotation must not set AppArmor profile type to "Unconfined", "container.apparmor.security.beta.kubernetes.io/app="unconfined"""#
        );
    }
}
