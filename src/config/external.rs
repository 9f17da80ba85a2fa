//! `external:` on a secret in pake.yaml: the Secret is synced by the External
//! Secrets Operator (ESO) from an external store, through an `ExternalSecret`
//! pake renders and applies. pake never sees the values.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A Secret synced by the External Secrets Operator instead of pake reading
/// the values: the ExternalSecret names a store and a remote key per key.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalSource {
    /// The `SecretStore` (in the namespace) or `ClusterSecretStore` ESO reads from.
    pub store: StoreRef,
    /// How often ESO re-reads the store (`1h`, `15m`, `30s`; `0` syncs once). Default 1h.
    #[serde(default = "default_refresh")]
    pub refresh_interval: String,
    /// Secret key -> where ESO finds its value in the store.
    pub keys: BTreeMap<String, RemoteRef>,
}

fn default_refresh() -> String {
    "1h".into()
}

/// The store an ExternalSecret reads from.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreRef {
    pub name: String,
    #[serde(default)]
    pub kind: StoreKind,
}

/// `SecretStore` (namespaced, the default) or `ClusterSecretStore`.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    Deserialize,
    Serialize,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    schemars::JsonSchema,
)]
pub enum StoreKind {
    #[default]
    SecretStore,
    ClusterSecretStore,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::SecretStore => "SecretStore",
            StoreKind::ClusterSecretStore => "ClusterSecretStore",
        }
    }
    /// The API resource (plural) of the kind.
    pub fn plural(self) -> &'static str {
        match self {
            StoreKind::SecretStore => "secretstores",
            StoreKind::ClusterSecretStore => "clustersecretstores",
        }
    }
}

/// One remote value: ESO's `remoteRef`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteRef {
    /// The key (path, name) of the value in the store, e.g. `pake/prod/database`.
    pub key: String,
    /// A field of a structured (JSON) value, e.g. `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    /// A version of the value, where the store has versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Why a `refreshInterval` is not one ESO accepts (Go's `time.ParseDuration`
/// units that make sense here: h, m, s), or None.
pub fn refresh_interval_error(s: &str) -> Option<String> {
    if s == "0" {
        return None;
    }
    let mut rest = s;
    if rest.is_empty() {
        return Some("is empty".into());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return Some("use a duration such as 1h, 15m, 30s or 1h30m (0 syncs once)".into());
        }
        rest = &rest[digits..];
        let unit = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        match &rest[..unit] {
            "h" | "m" | "s" => rest = &rest[unit..],
            _ => {
                return Some("use a duration such as 1h, 15m, 30s or 1h30m (0 syncs once)".into());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_intervals() {
        for ok in ["1h", "15m", "30s", "1h30m", "0"] {
            assert_eq!(refresh_interval_error(ok), None, "{ok}");
        }
        for bad in ["", "1d", "h", "1.5h", "-1h", "1h 30m", "10"] {
            assert!(refresh_interval_error(bad).is_some(), "{bad}");
        }
    }
}
