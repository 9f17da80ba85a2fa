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

    const MIN: &str =
        "app: backend\nimage: pake-backend\nenvironments:\n  dev:\n    namespace: pake-dev\n";

    fn parse(extra: &str) -> crate::error::Result<crate::config::ProjectConfig> {
        crate::config::parse(&format!("{MIN}{extra}"), std::path::Path::new("pake.yaml"))
    }

    #[test]
    fn external_secret_parses_and_renders_its_external_secret() {
        let c = parse("secrets:\n  - name: database-credentials\n    external:\n      store: { name: vault-backend, kind: ClusterSecretStore }\n      keys:\n        password: { key: pake/prod/database, property: password }\nenv:\n  - name: DB_PASSWORD\n    secretKeyRef: { name: database-credentials, key: password }\n").unwrap();
        let e = c.secrets[0].external.as_ref().unwrap();
        assert_eq!(e.store.kind, StoreKind::ClusterSecretStore);
        assert_eq!(e.refresh_interval, "1h");
        let p = crate::config::Project {
            path: "pake.yaml".into(),
            config: c,
        };
        let r = p.resolve(Some("dev")).unwrap();
        let m = crate::render::secret_skeletons(&r);
        let o = &m[0].object;
        assert_eq!(o["kind"], "ExternalSecret");
        assert_eq!(o["apiVersion"], "external-secrets.io/v1");
        assert_eq!(o["spec"]["secretStoreRef"]["kind"], "ClusterSecretStore");
        assert_eq!(o["spec"]["target"]["name"], "database-credentials");
        assert_eq!(o["spec"]["target"]["creationPolicy"], "Owner");
        assert_eq!(
            o["spec"]["data"][0]["remoteRef"],
            serde_json::json!({"key": "pake/prod/database", "property": "password"})
        );
    }

    #[test]
    fn exactly_one_of_keys_and_external() {
        let both = parse("secrets:\n  - name: db\n    keys:\n      password: { fromEnv: X }\n    external:\n      store: { name: v }\n      keys:\n        password: { key: k }\n").unwrap_err();
        assert!(
            both.message.contains("both keys: and external:"),
            "{}",
            both.message
        );
        assert_eq!(both.kind, crate::ExitCode::Usage);
        let none = parse("secrets:\n  - name: db\n").unwrap_err();
        assert!(none.message.contains("no keys"), "{}", none.message);
        let empty = parse(
            "secrets:\n  - name: db\n    external:\n      store: { name: v }\n      keys: {}\n",
        )
        .unwrap_err();
        assert!(empty.message.contains("has no keys"), "{}", empty.message);
        let refresh = parse("secrets:\n  - name: db\n    external:\n      store: { name: v }\n      refreshInterval: 1d\n      keys:\n        password: { key: k }\n").unwrap_err();
        assert!(
            refresh.message.contains("refreshInterval"),
            "{}",
            refresh.message
        );
        let remote = parse("secrets:\n  - name: db\n    external:\n      store: { name: v }\n      keys:\n        password: { key: \"\" }\n").unwrap_err();
        assert!(
            remote.message.contains("password.key"),
            "{}",
            remote.message
        );
        let kind = parse("secrets:\n  - name: db\n    external:\n      store: { name: v, kind: Vault }\n      keys:\n        password: { key: k }\n").unwrap_err();
        assert!(
            kind.message
                .contains("expected one of SecretStore, ClusterSecretStore"),
            "{}",
            kind.message
        );
        // env may read only a declared key of an external secret too.
        let env = parse("secrets:\n  - name: db\n    external:\n      store: { name: v }\n      keys:\n        password: { key: k }\nenv:\n  - name: X\n    secretKeyRef: { name: db, key: user }\n").unwrap_err();
        assert!(
            env.message.contains("declares only: password"),
            "{}",
            env.message
        );
    }

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
