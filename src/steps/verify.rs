//! Step 5 and 6 of the guide ("Verify deployment", "Check security context"),
//! as live checks: `pake verify` and the last step of `pake deploy`.
//!
//! Checks run on what the cluster actually has — the Namespace, the running
//! Pods, their ServiceAccounts and Roles, NetworkPolicies and PDBs — not on
//! the templates, so drift and admission mutations are caught too.

use serde_json::Value;

use super::namespace::check_pss_labels;
use crate::error::{Error, Result};
use crate::kube::list::{list_json, list_json_reused, list_json_selected};
use crate::workflow::executor::{CheckResult, Ctx};

mod secret_files;

pub async fn run(ctx: &Ctx<'_>) -> Result<Vec<CheckResult>> {
    let r = ctx.resolved;
    let ns = &r.namespace;
    let c = ctx.cluster;
    // In a deploy, the Namespace as the namespace step applied or read it.
    let kept =
        crate::kube::list::take_kept(c, "v1", "Namespace", ns).and_then(|v| v.into_iter().next());
    let nsobj = match kept {
        Some(n) => Some(n),
        None => crate::kube::apply::get(
            c,
            &serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await?,
    }
    .ok_or_else(|| {
        Error::failed(format!("namespace {ns} does not exist"))
            .fix(format!("run `pake deploy --env {}` first", r.env))
    })?;
    let app = format!("app={}", r.app);
    // Independent reads: one round trip instead of seven. In a deploy, the
    // NetworkPolicy and PDB lists its steps made after their last write of
    // those kinds are reused (`list_json_kept`).
    let (pods, policies, deployments, pdbs, sas, roles, bindings) = tokio::try_join!(
        list_json_selected(c, "v1", "Pod", ns, Some(&app)),
        list_json_reused(c, "networking.k8s.io/v1", "NetworkPolicy", ns),
        list_json_selected(c, "apps/v1", "Deployment", ns, Some(&app)),
        list_json_reused(c, "policy/v1", "PodDisruptionBudget", ns),
        list_json(c, "v1", "ServiceAccount", ns),
        list_json(c, "rbac.authorization.k8s.io/v1", "Role", ns),
        list_json(c, "rbac.authorization.k8s.io/v1", "RoleBinding", ns),
    )?;
    let mut out = evaluate(
        ns,
        &nsobj,
        &pods,
        &policies,
        &deployments,
        &pdbs,
        &sas,
        &roles,
        &bindings,
    );
    out.extend(zero_trust(r, &nsobj, &policies, &deployments));
    Ok(out)
}

/// The zero-trust check on the live policies: each of the app's Deployments
/// is isolated both ways and allows exactly what pake.yaml declares.
pub fn zero_trust(
    r: &crate::config::Resolved,
    nsobj: &Value,
    policies: &[Value],
    deployments: &[Value],
) -> Vec<CheckResult> {
    use crate::checks::netpol::zero_trust::{self, Declared};
    let mut objects = vec![with_kind(nsobj, "v1", "Namespace")];
    objects.extend(policies.iter().cloned());
    objects.extend(deployments.iter().cloned());
    let findings = match zero_trust::check(&objects, &Declared::from_resolved(r)) {
        Ok(f) => f,
        Err(e) => {
            return vec![CheckResult::fail(
                "NETPOL-ZERO-TRUST",
                e.object,
                e.message,
                "fix the object: the evaluator reads it as the API server does",
            )];
        }
    };
    let mut out = Vec::new();
    for (i, d) in deployments.iter().enumerate() {
        let who = crate::checks::guide::object_ref(d);
        let mine: Vec<_> = findings
            .iter()
            .filter(|(j, _)| *j == i + 1 + policies.len())
            .collect();
        if mine.is_empty() {
            out.push(CheckResult::pass("NETPOL-ZERO-TRUST", &who, "isolated for ingress and egress; the policies allow exactly what pake.yaml declares"));
        }
        for (_, f) in mine {
            out.push(CheckResult::fail(
                &f.id,
                &who,
                format!("{} ({})", f.message, f.severity),
                f.fix.clone(),
            ));
        }
    }
    out
}

/// Where the probe image comes from: `PAKE_PROBE_IMAGE`, else the one the local
/// cluster's real node has (scripts/cluster imports it). It needs `/busybox` with
/// `sh` and `cat`; it runs as uid 1000 with nothing else.
pub fn probe_image() -> String {
    std::env::var("PAKE_PROBE_IMAGE")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "pake.local/probe:1".to_string())
}

/// The guide's "Check security context" proven from inside each running
/// container on a real node: an ephemeral container in the container's PID
/// namespace reads the process's `/proc/1/status` and `/proc/1/mountinfo`
/// (uid/gid 1000, no effective capabilities, no_new_privs, seccomp filter,
/// read-only root). Pods on simulated (kwok) nodes run nothing: "not provable".
pub async fn runtime_posture(ctx: &Ctx<'_>) -> Result<Vec<CheckResult>> {
    let r = ctx.resolved;
    let c = ctx.cluster;
    let pods = list_json_selected(
        c,
        "v1",
        "Pod",
        &r.namespace,
        Some(&format!("app={}", r.app)),
    )
    .await?;
    let image = probe_image();
    let running: Vec<&Value> = pods
        .iter()
        .filter(|p| {
            p["metadata"]["deletionTimestamp"].is_null() && p["status"]["phase"] == "Running"
        })
        .collect();
    // Secret env references are compared in the process with a keyed fingerprint; the key
    // reaches the probe through a short-lived Secret, so it is in no pod spec or log.
    let needs_key = running.iter().any(|p| {
        p["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| !secret_env_refs(c).is_empty() || secret_files::mounts_secret(p, c))
    });
    let key_secret = if needs_key {
        Some(FingerprintKey::create(c, &r.namespace, &r.app).await?)
    } else {
        None
    };
    let result = posture_of_pods(c, &r.namespace, &running, &image, key_secret.as_ref()).await;
    if let Some(k) = &key_secret {
        k.delete(c, &r.namespace).await;
    }
    result
}

/// A random key in a Secret of its own, deleted after the probes.
struct FingerprintKey {
    name: String,
    key: crate::secret::SecretValue,
}

impl FingerprintKey {
    async fn create(c: &crate::kube::Cluster, ns: &str, app: &str) -> Result<Self> {
        let key = crate::secret::SecretValue::random_base64(32)?;
        let mut rnd = [0u8; 4];
        getrandom::fill(&mut rnd).map_err(|e| Error::failed(format!("random name: {e}")))?;
        let name = format!("pake-probe-key-{}", hex::encode(rnd));
        let secret = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": app, "pake.dev/purpose": "probe-key"}},
            "type": "Opaque",
            "data": {"key": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key.expose())},
        });
        crate::kube::apply::apply(c, &secret, false, true).await?;
        Ok(FingerprintKey { name, key })
    }

    async fn delete(&self, c: &crate::kube::Cluster, ns: &str) {
        let obj = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": self.name, "namespace": ns}});
        let _ = crate::kube::apply::delete(c, &obj).await;
    }

    /// Prefix-keyed SHA-256 of `value`, as the probe's `sha256sum` computes it.
    fn fingerprint(&self, value: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.key.expose());
        h.update(value);
        hex::encode(h.finalize())
    }
}

/// (env var, Secret, key) for every `valueFrom.secretKeyRef` of a container whose
/// name is a plain identifier (it goes into the probe's shell script).
fn secret_env_refs(ctr: &Value) -> Vec<(String, String, String)> {
    ctr["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let name = e["name"].as_str()?;
            let r = &e["valueFrom"]["secretKeyRef"];
            let ok = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            ok.then(|| {
                Some((
                    name.to_string(),
                    r["name"].as_str()?.to_string(),
                    r["key"].as_str()?.to_string(),
                ))
            })?
        })
        .collect()
}

const ENV_SECTION: &str = "--pake-env--";

async fn posture_of_pods(
    c: &crate::kube::Cluster,
    ns: &str,
    running: &[&Value],
    image: &str,
    key: Option<&FingerprintKey>,
) -> Result<Vec<CheckResult>> {
    use crate::checks::posture::{self, RUNTIME_POSTURE};
    use crate::kube::debug::{ProbeError, run_in_pod};
    let mut out = Vec::new();
    for pod in running {
        let name = pod["metadata"]["name"].as_str().unwrap_or("");
        let node = pod["spec"]["nodeName"].as_str().unwrap_or("");
        let simulated = simulated_node(c, node).await?;
        for ctr in pod["spec"]["containers"].as_array().into_iter().flatten() {
            let cname = ctr["name"].as_str().unwrap_or("");
            let who = format!("Pod {ns}/{name} container {cname}");
            let refs = if key.is_some() {
                secret_env_refs(ctr)
            } else {
                Vec::new()
            };
            let files = if key.is_some() {
                let keys = secret_files::keys_of_secrets(c, ns, pod, ctr).await?;
                secret_files::secret_files(pod, ctr, &|s| keys.get(s).cloned().unwrap_or_default())
            } else {
                Vec::new()
            };
            if simulated {
                out.push(CheckResult::not_provable(
                    RUNTIME_POSTURE,
                    &who,
                    format!("simulated node {node} (kwok): no process runs there"),
                ));
                for (env, secret, k) in &refs {
                    out.push(CheckResult::not_provable(
                        SECRET_IN_PROCESS,
                        format!("{who} env {env}"),
                        format!(
                            "simulated node {node} (kwok): no process holds Secret {secret}/{k}"
                        ),
                    ));
                }
                for f in &files {
                    out.push(CheckResult::not_provable(
                        SECRET_IN_PROCESS,
                        format!("{who} file {}", f.path),
                        format!(
                            "simulated node {node} (kwok): no process sees Secret {}/{}",
                            f.secret, f.key
                        ),
                    ));
                }
                continue;
            }
            let mut script = format!(
                "cat /proc/1/status; echo {}; cat /proc/1/mountinfo; echo {ENV_SECTION}",
                posture::SEPARATOR
            );
            for (env, _, _) in &refs {
                script.push_str(&format!(
                    "; printf '%s ' {env}; {{ printf '%s' \"$PAKE_PROBE_KEY\"; tr '\\0' '\\n' </proc/1/environ | sed -n 's/^{env}=//p' | head -n 1 | tr -d '\\n'; }} | sha256sum"
                ));
            }
            script.push_str(&secret_files::probe_script(&files));
            let env: Vec<Value> = key
                .filter(|_| !refs.is_empty() || !files.is_empty())
                .map(|k| vec![serde_json::json!({"name": "PAKE_PROBE_KEY", "valueFrom": {"secretKeyRef": {"name": k.name, "key": "key"}}})])
                .unwrap_or_default();
            let probe = run_in_pod(
                c,
                ns,
                name,
                cname,
                image,
                &["/busybox", "sh", "-c", &script],
                &env,
                1000,
                std::time::Duration::from_secs(60),
            )
            .await;
            match probe {
                Ok(text) => {
                    let (text, env_part) = text.split_once(ENV_SECTION).unwrap_or((text.as_str(), ""));
                    if let Some(k) = key {
                        for (env, secret, skey) in &refs {
                            out.push(secret_in_process(c, ns, &who, env, secret, skey, env_part, k).await?);
                        }
                        for (i, f) in files.iter().enumerate() {
                            out.push(secret_files::check(c, ns, &who, i, f, env_part, k).await?);
                        }
                    }
                    let props = posture::evaluate(text, 1000);
                    let seen: Vec<String> = props.iter().map(|p| p.seen.clone()).collect();
                    let bad: Vec<&str> = props.iter().filter(|p| !p.ok).map(|p| p.name).collect();
                    out.push(if bad.is_empty() {
                        CheckResult::pass(
                            RUNTIME_POSTURE,
                            &who,
                            format!("from inside the running process: {}", seen.join(", ")),
                        )
                    } else {
                        CheckResult::fail(
                            RUNTIME_POSTURE,
                            &who,
                            format!("the running process violates {}: {}", bad.join(", "), seen.join(", ")),
                            "apply the guide's securityContext (runAsUser/runAsGroup 1000, drop ALL, allowPrivilegeEscalation false, seccomp RuntimeDefault, readOnlyRootFilesystem) and check what mutates it (admission webhooks, the image's USER)",
                        )
                    });
                }
                Err(ProbeError::Unavailable(why)) => out.push(CheckResult::not_provable(
                    RUNTIME_POSTURE,
                    &who,
                    format!("the probe image {image} could not run ({why}); set PAKE_PROBE_IMAGE to an image with /busybox that this cluster can pull"),
                )),
                Err(ProbeError::Failed(e)) => return Err(e),
            }
        }
    }
    Ok(out)
}

/// Check ID: the process holds the current value of each Secret it references.
pub const SECRET_IN_PROCESS: &str = "SECRET-IN-PROCESS";

/// Compare the keyed fingerprint the probe computed of env var `env` in the process
/// with the same fingerprint of the Secret's current value. Neither value is shown.
#[allow(clippy::too_many_arguments)]
async fn secret_in_process(
    c: &crate::kube::Cluster,
    ns: &str,
    who: &str,
    env: &str,
    secret: &str,
    key: &str,
    probe_env: &str,
    fp: &FingerprintKey,
) -> Result<CheckResult> {
    let object = format!("{who} env {env}");
    let seen = probe_env.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        (f.next() == Some(env))
            .then(|| f.next().map(str::to_string))
            .flatten()
    });
    let live = crate::kube::apply::get(
        c,
        &serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret, "namespace": ns}}),
    )
    .await?;
    let value = live
        .as_ref()
        .and_then(|s| s["data"][key].as_str())
        .and_then(|b| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b).ok())
        .map(crate::secret::SecretValue::from_bytes);
    Ok(match (seen, value) {
        (_, None) => CheckResult::fail(
            SECRET_IN_PROCESS,
            object,
            format!("Secret {ns}/{secret} has no key {key}"),
            "deploy again (the secrets step creates it), or fix the reference",
        ),
        (_, Some(v)) if v.expose().contains(&b'\n') || v.expose().contains(&0) => {
            CheckResult::not_provable(
                SECRET_IN_PROCESS,
                object,
                "the value has a newline or NUL byte, which the probe cannot compare exactly",
            )
        }
        (None, _) => CheckResult::not_provable(
            SECRET_IN_PROCESS,
            object,
            "the probe printed no fingerprint",
        ),
        (Some(h), Some(v)) if h == fp.fingerprint(v.expose()) => CheckResult::pass(
            SECRET_IN_PROCESS,
            object,
            format!(
                "the process holds the current value of Secret {secret}/{key} (keyed fingerprints match; the value is never read out)"
            ),
        ),
        (Some(_), Some(_)) => CheckResult::fail(
            SECRET_IN_PROCESS,
            object,
            format!(
                "the process holds a different value than Secret {secret}/{key} has now (keyed fingerprints differ)"
            ),
            format!(
                "the pod started before the Secret changed: `pake rotate-secret {secret}` restarts what references it, or `kubectl rollout restart` the workload"
            ),
        ),
    })
}

/// A kwok node (annotation `kwok.x-k8s.io/node: fake`) runs no containers.
async fn simulated_node(c: &crate::kube::Cluster, node: &str) -> Result<bool> {
    if node.is_empty() {
        return Ok(false);
    }
    let n = crate::kube::apply::get(
        c,
        &serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}),
    )
    .await?;
    Ok(n.is_some_and(|n| n["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"))
}

/// Pure: every check of the guide's Kubernetes checklist over live objects.
///
/// Reuses the two check engines `pake audit` uses — the exact PodSecurity
/// engine (restricted, latest) on each running Pod, and the guide's checklist
/// (`checks::guide`) on the live objects — and adds what only a live cluster
/// shows: the namespace's PSS labels and each Pod's readiness.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    ns: &str,
    nsobj: &Value,
    pods: &[Value],
    policies: &[Value],
    deployments: &[Value],
    pdbs: &[Value],
    sas: &[Value],
    roles: &[Value],
    bindings: &[Value],
) -> Vec<CheckResult> {
    use crate::checks::guide;
    use crate::checks::pss::{self, Level, Version};

    let mut out = check_pss_labels(nsobj);
    let running: Vec<&Value> = pods
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect();
    if running.is_empty() {
        out.push(CheckResult::fail(
            "pods",
            format!("Namespace {ns}"),
            "no pods of the app are running",
            "deploy first, or check the Deployment's events",
        ));
    }

    // The app's identity: its ServiceAccounts and the Roles bound to them.
    let app_sas: std::collections::BTreeSet<&str> = running
        .iter()
        .map(|p| {
            p["spec"]["serviceAccountName"]
                .as_str()
                .unwrap_or("default")
        })
        .collect();
    let mut objects: Vec<Value> = Vec::new();
    objects.extend(running.iter().map(|p| with_kind(p, "v1", "Pod")));
    objects.extend(deployments.iter().cloned());
    objects.extend(policies.iter().cloned());
    objects.extend(pdbs.iter().cloned());
    for sa_name in &app_sas {
        match sas
            .iter()
            .find(|s| s["metadata"]["name"].as_str() == Some(sa_name))
        {
            Some(sa) => objects.push(sa.clone()),
            None => out.push(CheckResult::fail(
                guide::SA_AUTOMOUNT,
                format!("ServiceAccount {ns}/{sa_name}"),
                "ServiceAccount not found",
                "apply the rbac.yaml template",
            )),
        }
        for b in bindings {
            let binds_sa = b["subjects"].as_array().into_iter().flatten().any(|s| {
                s["kind"] == "ServiceAccount"
                    && s["name"].as_str() == Some(sa_name)
                    && s["namespace"].as_str().is_none_or(|n| n == ns)
            });
            if binds_sa
                && b["roleRef"]["kind"] == "Role"
                && let Some(role) = roles
                    .iter()
                    .find(|r| r["metadata"]["name"] == b["roleRef"]["name"])
            {
                objects.push(role.clone());
            }
        }
    }

    let findings = guide::check_objects(&objects);
    for (i, obj) in objects.iter().enumerate() {
        let who = guide::object_ref(obj);
        let kind = obj["kind"].as_str().unwrap_or("");
        if kind == "Pod" {
            if !crate::workflow::wait::pod_ready_json(obj) {
                out.push(CheckResult::fail("pod-ready", &who, "pod is not Ready", "see `kubectl describe` of the pod; the guide's troubleshooting section lists the usual causes"));
            }
            match pss::pod_of(obj) {
                Some(Ok(pod)) => {
                    let v = pss::evaluate(Level::Restricted, Version::Latest, &pod);
                    out.push(if v.allowed {
                        CheckResult::pass("pss-restricted", &who, "meets the Restricted Pod Security Standard (non-root, no privilege escalation, capabilities dropped, seccomp)")
                    } else {
                        CheckResult::fail("pss-restricted", &who, v.admission_message(), "apply the guide's securityContext (templates/k8s/deployment.yaml); `pake audit` shows each violation")
                    });
                }
                Some(Err(e)) => out.push(CheckResult::fail(
                    "pss-restricted",
                    &who,
                    format!("cannot read the pod spec: {e}"),
                    "report this as a pake bug",
                )),
                None => {}
            }
        }
        let expected: &[&str] = match kind {
            "Pod" => &[
                guide::READONLY_ROOTFS,
                guide::UID_1000,
                guide::RESOURCES,
                guide::PROBES,
                guide::SA_AUTOMOUNT,
                guide::SECRET_IN_MANIFEST,
                guide::NETPOL_DEFAULT_DENY,
            ],
            "Deployment" => &[guide::PDB],
            "ServiceAccount" => &[guide::SA_AUTOMOUNT],
            "Role" => &[guide::RBAC_WILDCARD, guide::RBAC_SECRETS],
            _ => &[],
        };
        let mine: Vec<&crate::checks::Finding> = findings
            .iter()
            .filter(|(j, _)| *j == i)
            .map(|(_, f)| f)
            .collect();
        for id in expected {
            if !mine.iter().any(|f| f.id == *id) {
                out.push(CheckResult::pass(id, &who, pass_message(id)));
            }
        }
        for f in mine {
            out.push(CheckResult::fail(
                &f.id,
                &who,
                format!("{} ({})", f.message, f.severity),
                f.fix.clone(),
            ));
        }
    }
    out
}

/// What a passing guide check proves, in the guide's words.
fn pass_message(id: &str) -> &'static str {
    use crate::checks::guide::*;
    match id {
        READONLY_ROOTFS => "read-only root filesystem",
        UID_1000 => "runs as uid 1000, gid 1000, fsGroup 1000",
        RESOURCES => "requests and limits for cpu, memory and ephemeral-storage",
        PROBES => "liveness and readiness probes",
        SA_AUTOMOUNT => "no API token mounted",
        SECRET_IN_MANIFEST => "no literal secret values",
        NETPOL_DEFAULT_DENY => "selected by a default-deny policy for ingress and egress",
        PDB => "covered by a PodDisruptionBudget",
        RBAC_WILDCARD => "no wildcard rules",
        RBAC_SECRETS => "no access to secrets",
        _ => "passes",
    }
}

fn with_kind(v: &Value, api_version: &str, kind: &str) -> Value {
    let mut v = v.clone();
    v["apiVersion"] = Value::String(api_version.into());
    v["kind"] = Value::String(kind.into());
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ns() -> Value {
        json!({"metadata": {"name": "app", "labels": {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/audit": "restricted",
            "pod-security.kubernetes.io/warn": "restricted"}}})
    }

    fn rendered(kind: &str) -> Vec<Value> {
        let cfg = crate::config::parse(
            "app: web\nimage: web\nenvironments:\n  dev:\n    namespace: app\n",
            std::path::Path::new("pake.yaml"),
        )
        .unwrap();
        let p = crate::config::Project {
            path: "pake.yaml".into(),
            config: cfg,
        };
        let r = p.resolve(Some("dev")).unwrap();
        let names: Vec<String> = [
            "rbac.yaml",
            "network-policies.yaml",
            "deployment.yaml",
            "pdb.yaml",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        crate::render::render_templates(&r, &names)
            .unwrap()
            .into_iter()
            .map(|m| m.object)
            .filter(|o| o["kind"] == kind)
            .collect()
    }

    /// A live Pod as the cluster would show it, made from the rendered template.
    fn pod(mutate: impl Fn(&mut Value)) -> Value {
        let d = &rendered("Deployment")[0];
        let mut p = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "app", "labels": d["spec"]["template"]["metadata"]["labels"]},
            "spec": d["spec"]["template"]["spec"],
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        mutate(&mut p);
        p
    }

    fn run(p: Value) -> Vec<CheckResult> {
        let all = |k| rendered(k);
        evaluate(
            "app",
            &ns(),
            &[p],
            &all("NetworkPolicy"),
            &all("Deployment"),
            &all("PodDisruptionBudget"),
            &all("ServiceAccount"),
            &all("Role"),
            &all("RoleBinding"),
        )
    }

    #[test]
    fn hardened_pod_passes_everything() {
        let r = run(pod(|_| {}));
        assert!(
            r.iter().all(|c| c.ok),
            "{:#?}",
            r.iter().filter(|c| !c.ok).collect::<Vec<_>>()
        );
        for id in [
            "pss-restricted",
            "GUIDE-READONLY-ROOTFS",
            "GUIDE-PDB",
            "GUIDE-RBAC-SECRETS",
            "GUIDE-SA-AUTOMOUNT",
        ] {
            assert!(r.iter().any(|c| c.check == id), "{id} missing");
        }
    }

    #[test]
    fn drift_on_the_live_pod_is_caught() {
        let r = run(pod(|p| {
            p["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = json!(false);
            p["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = json!(true);
        }));
        let failed: Vec<&str> = r
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.check.as_str())
            .collect();
        assert!(failed.contains(&"GUIDE-READONLY-ROOTFS"), "{failed:?}");
        assert!(failed.contains(&"pss-restricted"), "{failed:?}");
    }

    #[test]
    fn unlabelled_namespace_and_unready_pod_fail() {
        let r = evaluate(
            "app",
            &json!({"metadata": {"name": "app"}}),
            &[pod(|p| p["status"] = json!({}))],
            &[],
            &[],
            &[],
            &[],
            &[],
            &[],
        );
        let failed: Vec<&str> = r
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.check.as_str())
            .collect();
        assert!(
            failed.contains(&"pss-labels")
                && failed.contains(&"pod-ready")
                && failed.contains(&"GUIDE-NETPOL-DEFAULT-DENY"),
            "{failed:?}"
        );
    }
}
