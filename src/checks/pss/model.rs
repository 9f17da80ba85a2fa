//! The parts of a pod that Pod Security admission reads, decoded with Go's
//! leniency.
//!
//! Upstream evaluates `corev1.PodSpec` as decoded by the API server: a missing
//! or `null` field is its zero value, unknown fields are ignored. We mirror
//! only the fields the checks read (so decoding is cheap) and keep every
//! scalar optional, so `seccompProfile: {}` decodes (type `""`) exactly as Go
//! decodes it instead of failing the way a strict `k8s-openapi` type would.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

/// `metadata` of a pod or pod template: only annotations matter to the checks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMeta {
    #[serde(default)]
    pub name: Option<String>,
    /// Values are `Option` because Go decodes a `null` map value as `""`.
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, Option<String>>>,
}

impl PodMeta {
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations
            .as_ref()?
            .get(key)
            .map(|v| v.as_deref().unwrap_or(""))
    }
    pub fn annotations(&self) -> impl Iterator<Item = (&str, &str)> {
        self.annotations
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_deref().unwrap_or("")))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default)]
    pub host_network: Option<bool>,
    #[serde(default, rename = "hostPID")]
    pub host_pid: Option<bool>,
    #[serde(default, rename = "hostIPC")]
    pub host_ipc: Option<bool>,
    #[serde(default)]
    pub host_users: Option<bool>,
    #[serde(default)]
    pub os: Option<PodOs>,
    #[serde(default)]
    pub security_context: Option<PodSecurityContext>,
    #[serde(default)]
    pub volumes: Option<Vec<Volume>>,
    #[serde(default)]
    pub init_containers: Option<Vec<Container>>,
    #[serde(default)]
    pub containers: Option<Vec<Container>>,
    /// Ephemeral containers share the fields the checks read with containers.
    #[serde(default)]
    pub ephemeral_containers: Option<Vec<Container>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PodOs {
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSecurityContext {
    #[serde(default)]
    pub app_armor_profile: Option<AppArmorProfile>,
    #[serde(default)]
    pub run_as_non_root: Option<bool>,
    #[serde(default)]
    pub run_as_user: Option<i64>,
    #[serde(default, rename = "seLinuxOptions")]
    pub se_linux_options: Option<SeLinuxOptions>,
    #[serde(default)]
    pub seccomp_profile: Option<SeccompProfile>,
    #[serde(default)]
    pub sysctls: Option<Vec<Sysctl>>,
    #[serde(default)]
    pub windows_options: Option<WindowsOptions>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContext {
    #[serde(default)]
    pub allow_privilege_escalation: Option<bool>,
    #[serde(default)]
    pub app_armor_profile: Option<AppArmorProfile>,
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
    #[serde(default)]
    pub privileged: Option<bool>,
    #[serde(default)]
    pub proc_mount: Option<String>,
    #[serde(default)]
    pub run_as_non_root: Option<bool>,
    #[serde(default)]
    pub run_as_user: Option<i64>,
    #[serde(default, rename = "seLinuxOptions")]
    pub se_linux_options: Option<SeLinuxOptions>,
    #[serde(default)]
    pub seccomp_profile: Option<SeccompProfile>,
    #[serde(default)]
    pub windows_options: Option<WindowsOptions>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AppArmorProfile {
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    #[serde(default)]
    pub localhost_profile: Option<String>,
}

impl AppArmorProfile {
    pub fn type_str(&self) -> &str {
        self.type_.as_deref().unwrap_or("")
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Capabilities {
    #[serde(default)]
    pub add: Option<Vec<Option<String>>>,
    #[serde(default)]
    pub drop: Option<Vec<Option<String>>>,
}

impl Capabilities {
    pub fn added(&self) -> impl Iterator<Item = &str> {
        self.add
            .iter()
            .flatten()
            .map(|c| c.as_deref().unwrap_or(""))
    }
    pub fn dropped(&self) -> impl Iterator<Item = &str> {
        self.drop
            .iter()
            .flatten()
            .map(|c| c.as_deref().unwrap_or(""))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SeLinuxOptions {
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SeccompProfile {
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
}

impl SeccompProfile {
    pub fn type_str(&self) -> &str {
        self.type_.as_deref().unwrap_or("")
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Sysctl {
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowsOptions {
    #[serde(default)]
    pub host_process: Option<bool>,
}

/// A volume: which source is set is all that matters (`null` counts as unset, as in Go).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub host_path: Option<IgnoredAny>,
    #[serde(default)]
    pub empty_dir: Option<IgnoredAny>,
    #[serde(default)]
    pub gce_persistent_disk: Option<IgnoredAny>,
    #[serde(default)]
    pub aws_elastic_block_store: Option<IgnoredAny>,
    #[serde(default)]
    pub git_repo: Option<IgnoredAny>,
    #[serde(default)]
    pub secret: Option<IgnoredAny>,
    #[serde(default)]
    pub nfs: Option<IgnoredAny>,
    #[serde(default)]
    pub iscsi: Option<IgnoredAny>,
    #[serde(default)]
    pub glusterfs: Option<IgnoredAny>,
    #[serde(default)]
    pub persistent_volume_claim: Option<IgnoredAny>,
    #[serde(default)]
    pub rbd: Option<IgnoredAny>,
    #[serde(default)]
    pub flex_volume: Option<IgnoredAny>,
    #[serde(default)]
    pub cinder: Option<IgnoredAny>,
    #[serde(default)]
    pub cephfs: Option<IgnoredAny>,
    #[serde(default)]
    pub flocker: Option<IgnoredAny>,
    #[serde(default, rename = "downwardAPI")]
    pub downward_api: Option<IgnoredAny>,
    #[serde(default)]
    pub fc: Option<IgnoredAny>,
    #[serde(default)]
    pub azure_file: Option<IgnoredAny>,
    #[serde(default)]
    pub config_map: Option<IgnoredAny>,
    #[serde(default)]
    pub vsphere_volume: Option<IgnoredAny>,
    #[serde(default)]
    pub quobyte: Option<IgnoredAny>,
    #[serde(default)]
    pub azure_disk: Option<IgnoredAny>,
    #[serde(default)]
    pub photon_persistent_disk: Option<IgnoredAny>,
    #[serde(default)]
    pub projected: Option<IgnoredAny>,
    #[serde(default)]
    pub portworx_volume: Option<IgnoredAny>,
    #[serde(default, rename = "scaleIO")]
    pub scale_io: Option<IgnoredAny>,
    #[serde(default)]
    pub storageos: Option<IgnoredAny>,
    #[serde(default)]
    pub csi: Option<IgnoredAny>,
    #[serde(default)]
    pub ephemeral: Option<IgnoredAny>,
    #[serde(default)]
    pub image: Option<IgnoredAny>,
}

impl Volume {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }
    /// No source at all: the API server defaults such a volume to `emptyDir: {}`
    /// (`SetDefaults_Volume`) before admission sees it.
    pub fn has_no_source(&self) -> bool {
        [
            &self.host_path,
            &self.empty_dir,
            &self.gce_persistent_disk,
            &self.aws_elastic_block_store,
            &self.git_repo,
            &self.secret,
            &self.nfs,
            &self.iscsi,
            &self.glusterfs,
            &self.persistent_volume_claim,
            &self.rbd,
            &self.flex_volume,
            &self.cinder,
            &self.cephfs,
            &self.flocker,
            &self.downward_api,
            &self.fc,
            &self.azure_file,
            &self.config_map,
            &self.vsphere_volume,
            &self.quobyte,
            &self.azure_disk,
            &self.photon_persistent_disk,
            &self.projected,
            &self.portworx_volume,
            &self.scale_io,
            &self.storageos,
            &self.csi,
            &self.ephemeral,
            &self.image,
        ]
        .iter()
        .all(|s| s.is_none())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub ports: Option<Vec<ContainerPort>>,
    #[serde(default)]
    pub security_context: Option<SecurityContext>,
    #[serde(default)]
    pub liveness_probe: Option<Handler>,
    #[serde(default)]
    pub readiness_probe: Option<Handler>,
    #[serde(default)]
    pub startup_probe: Option<Handler>,
    #[serde(default)]
    pub lifecycle: Option<Lifecycle>,
}

impl Container {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    #[serde(default)]
    pub container_port: Option<i32>,
    #[serde(default)]
    pub host_port: Option<i32>,
}

/// A probe or lifecycle handler: only the `host` of `httpGet` and `tcpSocket` matters.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handler {
    #[serde(default)]
    pub http_get: Option<HostField>,
    #[serde(default)]
    pub tcp_socket: Option<HostField>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct HostField {
    #[serde(default)]
    pub host: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    #[serde(default)]
    pub post_start: Option<Handler>,
    #[serde(default)]
    pub pre_stop: Option<Handler>,
}
