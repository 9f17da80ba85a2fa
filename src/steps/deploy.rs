//! Step 4 of the guide: the workloads. Waits for each rollout (watch-based,
//! fail-fast), then checks that each Deployment has a PodDisruptionBudget and
//! that each Service has ready endpoints.

use std::time::Duration;

use serde_json::Value;

use crate::error::Result;
use crate::render::Manifest;
use crate::workflow::executor::{CheckResult, Ctx};
use crate::workflow::wait::{self, endpoints};

pub async fn verify(
    ctx: &Ctx<'_>,
    applied: &[(Manifest, Value)],
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Vec<CheckResult>> {
    let ns = &ctx.resolved.namespace;
    let mut out = Vec::new();
    // Each rollout's pod watch, handed to the endpoint proof of a Service
    // selecting the same pods (one watch for both waits).
    let mut feeds = Vec::new();
    for (m, live) in applied {
        let wl = match m.kind() {
            "Deployment" => wait::Workload::Deployment,
            "StatefulSet" => wait::Workload::StatefulSet,
            "DaemonSet" => wait::Workload::DaemonSet,
            _ => continue,
        };
        progress(&format!("waiting for {} to roll out", m.describe()));
        let feed = wait::rollout_from(
            &ctx.cluster.client,
            wl,
            ns,
            m.name(),
            Some(live),
            ctx.opts.timeout,
            progress,
        )
        .await?;
        // Keep the watch open only for a Service that selects these pods.
        if applied.iter().any(|(s, sl)| {
            s.kind() == "Service" && endpoints::same_selector(&pod_selector(sl), &feed.selector)
        }) {
            feeds.push(feed);
        }
        out.push(CheckResult::pass(
            "rollout",
            m.describe(),
            "rolled out: all replicas updated and available, old pods gone",
        ));
    }
    let pdbs =
        crate::kube::list::list_json_kept(ctx.cluster, "policy/v1", "PodDisruptionBudget", ns)
            .await?;
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
                let target = endpoints::EndpointTarget {
                    namespace: ns,
                    service: m.name(),
                    app,
                    version,
                    desired: d["spec"]["replicas"].as_i64().unwrap_or(1) as i32,
                    service_has_ports: endpoints::service_has_ports(live),
                };
                let t = Duration::from_secs(30).min(ctx.opts.timeout);
                let feed = endpoints::take_feed(&mut feeds, &endpoints::target_pod_labels(&target));
                out.push(match endpoints::await_endpoints_fed(&ctx.cluster.client, &target, t, progress, feed).await {
                    Ok(v) => CheckResult::pass("endpoints", m.describe(), v.message),
                    Err(e) => CheckResult::fail(
                        "endpoints",
                        m.describe(),
                        e.message,
                        "check that the Service selector matches the pod labels and the targetPort names a container port",
                    ),
                });
            }
            _ => {
                let feed = endpoints::take_feed(&mut feeds, &pod_selector(live));
                out.push(await_endpoints(ctx, m, live, feed).await?)
            }
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

/// The Service's pods, as a label selector (`k=v,...`).
fn pod_selector(service: &Value) -> String {
    service["spec"]["selector"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect::<Vec<_>>()
        .join(",")
}

/// The EndpointSlice controller runs asynchronously: give it a bounded time,
/// watching the Service's slices and pods (`wait::endpoints`).
async fn await_endpoints(
    ctx: &Ctx<'_>,
    m: &Manifest,
    service: &Value,
    feed: Option<wait::PodFeed>,
) -> Result<CheckResult> {
    let timeout = Duration::from_secs(30).min(ctx.opts.timeout);
    let res = endpoints::await_selected(
        &ctx.cluster.client,
        &ctx.resolved.namespace,
        m.name(),
        &pod_selector(service),
        timeout,
        &|_| {},
        feed,
    )
    .await;
    match res {
        Ok(v) => Ok(CheckResult::pass("endpoints", m.describe(), v.message)),
        // Unreachable or permission denied: not a failed check.
        Err(e) if e.kind == crate::error::ExitCode::Cluster => Err(e),
        Err(e) => Ok(CheckResult::fail(
            "endpoints",
            m.describe(),
            e.message,
            "check that the Service selector matches the pod labels and the targetPort names a container port",
        )),
    }
}
