//! API request accounting: how many requests this process sent, by verb and
//! resource (printed with `PAKE_API_STATS=1`, used by scripts/bench.d/deploy),
//! and a per-request trace with `PAKE_API_STATS=trace` (time since start,
//! verb, path) to see where a run's time goes.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// API requests sent by this process (all clients, every attempt).
pub static API_REQUESTS: AtomicU64 = AtomicU64::new(0);

static BY_KIND: Mutex<BTreeMap<(String, String), u64>> = Mutex::new(BTreeMap::new());
static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Mark the process start (the trace's zero).
pub fn start() {
    let _ = START.get_or_init(Instant::now);
}

/// Count one request (called by the client's request layer).
pub fn record(method: &http::Method, uri: &http::Uri) {
    API_REQUESTS.fetch_add(1, Ordering::Relaxed);
    let (verb, resource) = classify(method.as_str(), uri.path(), uri.query().unwrap_or(""));
    if std::env::var("PAKE_API_STATS").is_ok_and(|v| v == "trace") {
        let ms = START.get_or_init(Instant::now).elapsed().as_millis();
        crate::output::err_line(format!(
            "pake: api +{ms}ms {verb} {}{}",
            uri.path(),
            uri.query().map(|q| format!("?{q}")).unwrap_or_default()
        ));
    }
    if let Ok(mut m) = BY_KIND.lock() {
        *m.entry((verb.to_string(), resource)).or_default() += 1;
    }
}

/// Counts by (verb, resource), sorted.
pub fn by_kind() -> Vec<(String, String, u64)> {
    BY_KIND
        .lock()
        .map(|m| {
            m.iter()
                .map(|((v, r), n)| (v.clone(), r.clone(), *n))
                .collect()
        })
        .unwrap_or_default()
}

/// The kubectl-style verb and the resource (with its subresource) of a request.
pub fn classify(method: &str, path: &str, query: &str) -> (&'static str, String) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /api/v1/... or /apis/group/version/...
    let rest: &[&str] = match parts.first() {
        Some(&"api") if parts.len() >= 2 => &parts[2..],
        Some(&"apis") if parts.len() >= 3 => &parts[3..],
        _ => {
            return (verb(method, true, query), path.to_string());
        }
    };
    // namespaces/{ns}/{resource}/{name}/{sub} or {resource}/{name}/{sub}
    let rest = if rest.len() >= 3 && rest[0] == "namespaces" {
        &rest[2..]
    } else {
        rest
    };
    let resource = match rest {
        [] => String::from("(discovery)"),
        [r] => r.to_string(),
        [r, _name] => r.to_string(),
        [r, _name, sub, ..] => format!("{r}/{sub}"),
    };
    let named = rest.len() >= 2;
    (verb(method, named, query), resource)
}

fn verb(method: &str, named: bool, query: &str) -> &'static str {
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    match method {
        "GET" if watch => "WATCH",
        "GET" if named => "GET",
        "GET" => "LIST",
        "POST" => "CREATE",
        "PATCH" => "PATCH",
        "PUT" => "UPDATE",
        "DELETE" => "DELETE",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::classify;

    #[test]
    fn verbs_and_resources() {
        assert_eq!(
            classify("GET", "/api/v1/namespaces/x", ""),
            ("GET", "namespaces".into())
        );
        assert_eq!(
            classify("GET", "/api/v1/namespaces/x/pods", "labelSelector=a"),
            ("LIST", "pods".into())
        );
        assert_eq!(
            classify(
                "GET",
                "/api/v1/namespaces/x/pods",
                "watch=true&labelSelector=a"
            ),
            ("WATCH", "pods".into())
        );
        assert_eq!(
            classify(
                "PATCH",
                "/apis/apps/v1/namespaces/x/deployments/web",
                "fieldManager=pake"
            ),
            ("PATCH", "deployments".into())
        );
        assert_eq!(
            classify(
                "POST",
                "/apis/coordination.k8s.io/v1/namespaces/x/leases",
                ""
            ),
            ("CREATE", "leases".into())
        );
        assert_eq!(
            classify(
                "POST",
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                ""
            ),
            ("CREATE", "selfsubjectaccessreviews".into())
        );
        assert_eq!(
            classify(
                "GET",
                "/apis/apps/v1/namespaces/x/deployments/web/scale",
                ""
            ),
            ("GET", "deployments/scale".into())
        );
        assert_eq!(classify("GET", "/version", ""), ("GET", "/version".into()));
    }
}
