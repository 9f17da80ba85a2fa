//! `restrictedVolumes` (restricted, from v1.0): only configMap, csi,
//! downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, projected
//! and secret volumes. Overrides `hostPathVolumes`.
//! Upstream: `policy/check_restrictedVolumes.go`.
//!
//! A volume with no source at all is defaulted to `emptyDir` by the API
//! server before admission, so it is allowed here too.

use std::collections::BTreeSet;

use super::model::Volume;
use super::{Check, Forbidden, Level, PodInput, VersionedCheck, join_quote, pluralize};

pub(super) static CHECK: Check = Check {
    id: "restrictedVolumes",
    level: Level::Restricted,
    versions: &[VersionedCheck {
        min_minor: 0,
        check: v1_0,
        overrides: &[super::host_path_volumes::ID],
    }],
};

fn allowed(v: &Volume) -> bool {
    v.config_map.is_some()
        || v.csi.is_some()
        || v.downward_api.is_some()
        || v.empty_dir.is_some()
        || v.ephemeral.is_some()
        || v.image.is_some()
        || v.persistent_volume_claim.is_some()
        || v.projected.is_some()
        || v.secret.is_some()
        || v.has_no_source()
}

/// The first restricted source, in upstream's order.
fn restricted_type(v: &Volume) -> &'static str {
    let order: [(&Option<serde::de::IgnoredAny>, &str); 21] = [
        (&v.host_path, "hostPath"),
        (&v.gce_persistent_disk, "gcePersistentDisk"),
        (&v.aws_elastic_block_store, "awsElasticBlockStore"),
        (&v.git_repo, "gitRepo"),
        (&v.nfs, "nfs"),
        (&v.iscsi, "iscsi"),
        (&v.glusterfs, "glusterfs"),
        (&v.rbd, "rbd"),
        (&v.flex_volume, "flexVolume"),
        (&v.cinder, "cinder"),
        (&v.cephfs, "cephfs"),
        (&v.flocker, "flocker"),
        (&v.fc, "fc"),
        (&v.azure_file, "azureFile"),
        (&v.vsphere_volume, "vsphereVolume"),
        (&v.quobyte, "quobyte"),
        (&v.azure_disk, "azureDisk"),
        (&v.photon_persistent_disk, "photonPersistentDisk"),
        (&v.portworx_volume, "portworxVolume"),
        (&v.scale_io, "scaleIO"),
        (&v.storageos, "storageos"),
    ];
    order
        .iter()
        .find(|(f, _)| f.is_some())
        .map(|(_, n)| *n)
        .unwrap_or("unknown")
}

fn v1_0(pod: &PodInput) -> Option<Forbidden> {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for v in pod.spec.volumes.iter().flatten() {
        if allowed(v) {
            continue;
        }
        bad.push(v.name());
        types.insert(restricted_type(v));
    }
    if bad.is_empty() {
        return None;
    }
    Some(Forbidden {
        reason: "restricted volume types",
        detail: format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(&types)
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
            0,
            json!({"spec": {"volumes": [
                {"name": "a", "emptyDir": {}},
                {"name": "b", "hostPath": {"path": "/"}},
                {"name": "c", "nfs": {}},
                {"name": "d", "hostPath": {}},
                {"name": "e", "secret": {}, "gitRepo": {}},
                {"name": "f"}
            ]}}),
        )
        .unwrap();
        assert_eq!(f.reason, "restricted volume types");
        assert_eq!(
            f.detail,
            r#"volumes "b", "c", "d" use restricted volume types "hostPath", "nfs""#
        );
        let f = run(
            &CHECK,
            0,
            json!({"spec": {"volumes": [{"name": "x", "scaleIO": {}}]}}),
        )
        .unwrap();
        assert_eq!(
            f.detail,
            r#"volume "x" uses restricted volume type "scaleIO""#
        );
    }
}
