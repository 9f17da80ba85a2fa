//! Step 4 of the guide: the workloads. Waits for each rollout (watch-based,
//! fail-fast), then checks that each Deployment has a PodDisruptionBudget and
//! that each Service has ready endpoints.

use std::time::Duration;

use serde_json::Value;

use crate::error::Result;
use crate::kube::list::list_json_selected;
use crate::render::Manifest;
use crate::workflow::executor::{CheckResult, Ctx};
use crate::workflow::wait;

pub async fn verify(
    ctx: &Ctx<'_>,
    applied: &[(Manifest, Value)],
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Vec<CheckResult>> {
    let ns = &ctx.resolved.namespace;
    let mut out = Vec::new();
    for (m, live) in applied {
        let wl = match m.kind() {
            "Deployment" => wait::Workload::Deployment,
            "StatefulSet" => wait::Workload::StatefulSet,
            "DaemonSet" => wait::Workload::DaemonSet,
            _ => continue,
        };
        progress(&format!("waiting for {} to roll out", m.describe()));
        wait::rollout_from(
            &ctx.cluster.client,
            wl,
            ns,
            m.name(),
            Some(live),
            ctx.opts.timeout,
            progress,
        )
        .await?;
        out.push(CheckResult::pass(
            "rollout",
            m.describe(),
            "rolled out: all replicas updated and available, old pods gone",
        ));
    }
    let pdbs =
        crate::kube::list::list_json(ctx.cluster, "policy/v1", "PodDisruptionBudget", ns).await?;
    for (m, live) in applied.iter().filter(|(m, _)| m.kind() == "Deployment") {
        out.push(check_pdb(&m.describe(), live, &pdbs));
    }
    for (m, live) in applied.iter().filter(|(m, _)| m.kind() == "Service") {
        progress(&format!("waiting for endpoints of {}", m.describe()));
        // A Service selecting one version of a Deployment applied here gets the
        // blue-green proof (watch-based: exactly the Ready pods of that version);
        // any other Service the generic one.
        let selector = &live["spec"]["selector"];
        let version_deployment = selector["version"].as_str().and_then(|v| {
            applied.iter().find(|(d, dl)| {
                d.kind() == "Deployment"
                    && dl["spec"]["template"]["metadata"]["labels"]["version"].as_str() == Some(v)
                    && dl["spec"]["template"]["metadata"]["labels"]["app"] == selector["app"]
            })
        });
        match (
            version_deployment,
            selector["app"].as_str(),
            selector["version"].as_str(),
        ) {
            (Some((_, d)), Some(app), Some(version)) => {
                let target = crate::steps::bluegreen::EndpointTarget {
                    namespace: ns,
                    service: m.name(),
                    app,
                    version,
                    desired: d["spec"]["replicas"].as_i64().unwrap_or(1) as i32,
                    service_has_ports: crate::steps::bluegreen::service_has_ports(live),
                };
                let t = Duration::from_secs(30).min(ctx.opts.timeout);
                out.push(match crate::steps::bluegreen::await_endpoints(&ctx.cluster.client, &target, t, progress).await {
                    Ok(v) => CheckResult::pass("endpoints", m.describe(), v.message),
                    Err(e) => CheckResult::fail(
                        "endpoints",
                        m.describe(),
                        e.message,
                        "check that the Service selector matches the pod labels and the targetPort names a container port",
                    ),
                });
            }
            _ => out.push(await_endpoints(ctx, m, live).await?),
        }
    }
    Ok(out)
}

/// Some PDB selects the Deployment's pods (its selector is a subset of the pod labels).
pub fn check_pdb(who: &str, deployment: &Value, pdbs: &[Value]) -> CheckResult {
    let labels = deployment["spec"]["template"]["metadata"]["labels"].as_object();
    let covers = |pdb: &Value| {
        let sel = pdb["spec"]["selector"]["matchLabels"].as_object();
        match (sel, labels) {
            (Some(sel), Some(labels)) => {
                !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
            }
            _ => false,
        }
    };
    match pdbs.iter().find(|p| covers(p)) {
        Some(p) => CheckResult::pass(
            "pdb",
            who,
            format!(
                "covered by PodDisruptionBudget {}",
                p["metadata"]["name"].as_str().unwrap_or("")
            ),
        ),
        None => CheckResult::fail(
            "pdb",
            who,
            "no PodDisruptionBudget selects its pods",
            "add the pdb.yaml template to the deploy step",
        ),
    }
}

/// Count ready endpoints of a Service across its EndpointSlices.
pub fn ready_endpoints(slices: &[Value]) -> (usize, usize) {
    let mut ready = 0;
    let mut total = 0;
    for s in slices {
        for e in s["endpoints"].as_array().into_iter().flatten() {
            total += 1;
            if e["conditions"]["ready"] != Value::Bool(false) {
                ready += 1;
            }
        }
    }
    (ready, total)
}

/// The EndpointSlice controller runs asynchronously: give it a bounded time.
async fn await_endpoints(ctx: &Ctx<'_>, m: &Manifest, service: &Value) -> Result<CheckResult> {
    let ns = &ctx.resolved.namespace;
    let selector = format!("kubernetes.io/service-name={}", m.name());
    let pod_selector: Vec<String> = service["spec"]["selector"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30).min(ctx.opts.timeout);
    let mut delay = Duration::from_millis(20);
    loop {
        let pods =
            list_json_selected(ctx.cluster, "v1", "Pod", ns, Some(&pod_selector.join(","))).await?;
        let want = pods
            .iter()
            .filter(|p| is_ready(p) && p["metadata"]["deletionTimestamp"].is_null())
            .count();
        let slices = list_json_selected(
            ctx.cluster,
            "discovery.k8s.io/v1",
            "EndpointSlice",
            ns,
            Some(&selector),
        )
        .await?;
        let (ready, _) = ready_endpoints(&slices);
        if want > 0 && ready == want {
            return Ok(CheckResult::pass(
                "endpoints",
                m.describe(),
                format!("{ready} ready endpoint(s), one per ready pod"),
            ));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(CheckResult::fail(
                "endpoints",
                m.describe(),
                format!(
                    "{ready} ready endpoint(s) for {want} ready pod(s) selected by {}",
                    pod_selector.join(",")
                ),
                "check that the Service selector matches the pod labels and the targetPort names a container port",
            ));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

pub fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}
