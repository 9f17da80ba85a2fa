//! SECRET-IN-PROCESS for Secrets a container sees as files (a `secret` volume, whole or
//! `items`, or one key through `subPath`): the runtime-posture probe reads each file through
//! the process's own root (`/proc/1/root/<path>`, i.e. exactly what the process would open) and
//! prints a keyed fingerprint of its bytes; pake compares it with the same fingerprint of the
//! Secret's current value. No value is ever read out, printed or stored.

use serde_json::Value;

use super::{FingerprintKey, SECRET_IN_PROCESS};
use crate::error::Result;
use crate::workflow::executor::CheckResult;

/// One Secret key as a file in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFile {
    /// Absolute path inside the container.
    pub path: String,
    pub secret: String,
    pub key: String,
    /// Mounted with `subPath`: the kubelet never updates it, only a new pod does.
    pub sub_path: bool,
}

/// The volume mounts of `ctr` whose pod volume is a `secret` volume: (mount, volume).
fn secret_mounts<'a>(pod: &'a Value, ctr: &'a Value) -> Vec<(&'a Value, &'a Value)> {
    let volumes: Vec<&Value> = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    ctr["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let v = volumes
                .iter()
                .find(|v| v["name"] == m["name"] && v["secret"]["secretName"].is_string())?;
            Some((m, *v))
        })
        .collect()
}

/// The container mounts at least one Secret volume.
pub fn mounts_secret(pod: &Value, ctr: &Value) -> bool {
    !secret_mounts(pod, ctr).is_empty()
}

/// A path the probe's shell script can carry in single quotes.
fn safe_path(p: &str) -> bool {
    p.starts_with('/') && !p.contains(['\'', '\n', '\0']) && !p.split('/').any(|s| s == "..")
}

/// Pure: every file a Secret volume puts into `ctr`. `keys_of(secret)` lists a Secret's keys
/// (a volume without `items` projects all of them). Paths the probe cannot quote are skipped.
pub fn secret_files(
    pod: &Value,
    ctr: &Value,
    keys_of: &dyn Fn(&str) -> Vec<String>,
) -> Vec<SecretFile> {
    let mut out = Vec::new();
    for (m, v) in secret_mounts(pod, ctr) {
        let secret = v["secret"]["secretName"].as_str().unwrap_or_default();
        let mount = m["mountPath"]
            .as_str()
            .unwrap_or_default()
            .trim_end_matches('/');
        // (file name inside the volume, key)
        let files: Vec<(String, String)> = match v["secret"]["items"].as_array() {
            Some(items) => items
                .iter()
                .filter_map(|i| {
                    Some((
                        i["path"].as_str()?.to_string(),
                        i["key"].as_str()?.to_string(),
                    ))
                })
                .collect(),
            None => keys_of(secret)
                .into_iter()
                .map(|k| (k.clone(), k))
                .collect(),
        };
        let sub = m["subPath"].as_str().filter(|s| !s.is_empty());
        for (file, key) in files {
            let (path, sub_path) = match sub {
                Some(s) if s == file => (mount.to_string(), true),
                Some(_) => continue,
                None => (format!("{mount}/{file}"), false),
            };
            if safe_path(&path) {
                out.push(SecretFile {
                    path,
                    secret: secret.to_string(),
                    key,
                    sub_path,
                });
            }
        }
    }
    out
}

/// The Secret's keys (empty when it does not exist: then nothing to compare).
pub async fn keys_of_secrets(
    c: &crate::kube::Cluster,
    ns: &str,
    pod: &Value,
    ctr: &Value,
) -> Result<std::collections::BTreeMap<String, Vec<String>>> {
    let mut keys = std::collections::BTreeMap::new();
    for (_, v) in secret_mounts(pod, ctr) {
        let name = v["secret"]["secretName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if keys.contains_key(&name) || v["secret"]["items"].is_array() {
            continue;
        }
        let live = crate::kube::apply::get(
            c,
            &serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}}),
        )
        .await?;
        let ks = live
            .as_ref()
            .and_then(|s| s["data"].as_object())
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default();
        keys.insert(name, ks);
    }
    Ok(keys)
}

/// Shell for the probe: one line `F<i> <fingerprint>` (or `F<i> unreadable`) per file.
pub fn probe_script(files: &[SecretFile]) -> String {
    files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            format!(
                "; if [ -r '/proc/1/root{p}' ]; then printf 'F{i} '; {{ printf '%s' \"$PAKE_PROBE_KEY\"; cat '/proc/1/root{p}'; }} | sha256sum; else echo 'F{i} unreadable'; fi",
                p = f.path
            )
        })
        .collect()
}

/// What the probe printed for file `i`: Some(fingerprint), Some("unreadable") or None.
fn probe_line(probe_out: &str, i: usize) -> Option<String> {
    let tag = format!("F{i}");
    probe_out.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        (f.next() == Some(tag.as_str()))
            .then(|| f.next().map(str::to_string))
            .flatten()
    })
}

/// Compare file `i` as the process sees it with the Secret's current value.
pub async fn check(
    c: &crate::kube::Cluster,
    ns: &str,
    who: &str,
    i: usize,
    f: &SecretFile,
    probe_out: &str,
    fp: &FingerprintKey,
) -> Result<CheckResult> {
    let live = crate::kube::apply::get(
        c,
        &serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f.secret, "namespace": ns}}),
    )
    .await?;
    let value = live
        .as_ref()
        .and_then(|s| s["data"][&f.key].as_str())
        .and_then(|b| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b).ok())
        .map(crate::secret::SecretValue::from_bytes);
    Ok(verdict(
        who,
        f,
        probe_line(probe_out, i),
        value.as_ref().map(|v| fp.fingerprint(v.expose())),
    ))
}

/// Pure: the check's result from what the probe saw and the Secret's fingerprint now.
fn verdict(who: &str, f: &SecretFile, seen: Option<String>, now: Option<String>) -> CheckResult {
    let object = format!("{who} file {}", f.path);
    let what = format!("Secret {}/{}", f.secret, f.key);
    match (seen.as_deref(), now) {
        (_, None) => CheckResult::fail(
            SECRET_IN_PROCESS,
            object,
            format!("{what} does not exist (Secret or key missing)"),
            "deploy again (the secrets step creates it), or fix the volume",
        ),
        (None, _) => CheckResult::not_provable(
            SECRET_IN_PROCESS,
            object,
            "the probe printed no fingerprint",
        ),
        (Some("unreadable"), _) => CheckResult::not_provable(
            SECRET_IN_PROCESS,
            object,
            "the file is not readable by uid 1000 through the process's root (defaultMode/fsGroup)",
        ),
        (Some(h), Some(n)) if h == n => CheckResult::pass(
            SECRET_IN_PROCESS,
            object,
            format!(
                "the file the process reads holds the current value of {what} (keyed fingerprints match; the value is never read out)"
            ),
        ),
        (Some(_), Some(_)) => CheckResult::fail(
            SECRET_IN_PROCESS,
            object,
            format!(
                "the file the process reads holds a different value than {what} has now (keyed fingerprints differ){}",
                if f.sub_path {
                    "; it is mounted with subPath, which the kubelet never updates"
                } else {
                    ""
                }
            ),
            format!(
                "`pake rotate-secret {}` restarts what references it (a subPath mount changes only in a new pod; a whole-volume mount follows within the kubelet's sync period, about a minute)",
                f.secret
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        serde_json::json!({"spec": {"volumes": [
            {"name": "db", "secret": {"secretName": "database-credentials"}},
            {"name": "one", "secret": {"secretName": "api", "items": [{"key": "token", "path": "t/token"}]}},
            {"name": "tmp", "emptyDir": {}},
        ]}})
    }

    #[test]
    fn whole_volume_items_and_sub_path() {
        let ctr = serde_json::json!({"volumeMounts": [
            {"name": "db", "mountPath": "/run/secrets/db/"},
            {"name": "one", "mountPath": "/etc/api"},
            {"name": "db", "mountPath": "/etc/pw", "subPath": "password"},
            {"name": "tmp", "mountPath": "/tmp"},
        ]});
        let keys = |s: &str| match s {
            "database-credentials" => vec!["password".to_string(), "user".to_string()],
            _ => vec![],
        };
        let f = secret_files(&pod(), &ctr, &keys);
        let got: Vec<(&str, &str, &str, bool)> = f
            .iter()
            .map(|f| {
                (
                    f.path.as_str(),
                    f.secret.as_str(),
                    f.key.as_str(),
                    f.sub_path,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "/run/secrets/db/password",
                    "database-credentials",
                    "password",
                    false
                ),
                (
                    "/run/secrets/db/user",
                    "database-credentials",
                    "user",
                    false
                ),
                ("/etc/api/t/token", "api", "token", false),
                ("/etc/pw", "database-credentials", "password", true),
            ]
        );
        assert!(mounts_secret(&pod(), &ctr));
        assert!(!mounts_secret(
            &pod(),
            &serde_json::json!({"volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]})
        ));
    }

    #[test]
    fn paths_the_script_cannot_quote_are_skipped() {
        let ctr = serde_json::json!({"volumeMounts": [{"name": "one", "mountPath": "/etc/it's"}]});
        assert!(secret_files(&pod(), &ctr, &|_| vec![]).is_empty());
        assert!(!safe_path("/a/../etc/shadow") && !safe_path("relative") && safe_path("/run/x"));
    }

    #[test]
    fn probe_lines_and_verdicts() {
        let f = SecretFile {
            path: "/etc/pw".into(),
            secret: "s".into(),
            key: "k".into(),
            sub_path: true,
        };
        let script = probe_script(std::slice::from_ref(&f));
        assert!(
            script.contains("'/proc/1/root/etc/pw'") && script.contains("$PAKE_PROBE_KEY"),
            "{script}"
        );
        let out = "F0 abc -\nF1 unreadable\n";
        assert_eq!(probe_line(out, 0).as_deref(), Some("abc"));
        assert_eq!(probe_line(out, 1).as_deref(), Some("unreadable"));
        assert_eq!(probe_line(out, 2), None);
        let pass = verdict("Pod p", &f, Some("abc".into()), Some("abc".into()));
        assert!(pass.ok && !pass.not_provable, "{pass:?}");
        let fail = verdict("Pod p", &f, Some("abc".into()), Some("def".into()));
        assert!(!fail.ok && fail.message.contains("subPath"), "{fail:?}");
        let np = verdict("Pod p", &f, Some("unreadable".into()), Some("def".into()));
        assert!(np.ok && np.not_provable, "{np:?}");
        let gone = verdict("Pod p", &f, None, None);
        assert!(!gone.ok, "{gone:?}");
    }
}
