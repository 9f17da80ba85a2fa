//! `pake audit` end to end: the real binary on fixture files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audit")
}

fn pake(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pake"))
        .current_dir(dir)
        .args(args)
        .env_remove("PAKE_ENV")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn hardened_manifests_and_dockerfile_pass() {
    let o = pake(&fixtures(), &["audit", "good", "-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r = json(&o);
    assert_eq!(r["summary"]["passed"], true);
    let results = r["results"].as_array().unwrap();
    let deploy = results.iter().find(|x| x["kind"] == "Deployment").unwrap();
    assert_eq!(deploy["pss"]["allowed"], true);
    assert_eq!(deploy["pss"]["level"], "restricted");
    assert_eq!(deploy["pss"]["version"], "latest");
    assert_eq!(deploy["source"], "good/app.yaml");
    assert_eq!(deploy["document"], 8);
    // Objects without a pod spec have no pss key.
    let svc = results.iter().find(|x| x["kind"] == "Service").unwrap();
    assert!(svc.get("pss").is_none());
    assert!(
        results
            .iter()
            .any(|x| x["kind"] == "Dockerfile" && x["source"] == "good/Dockerfile.production")
    );
}

#[test]
fn broken_manifests_fail_with_violations_and_findings() {
    let o = pake(&fixtures(), &["audit", "bad/manifests.yaml", "-o", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let r = json(&o);
    let res = r["results"].as_array().unwrap();
    assert_eq!(res.len(), 5);
    let pod = &res[0];
    assert_eq!(
        (
            pod["kind"].as_str(),
            pod["name"].as_str(),
            pod["document"].as_i64()
        ),
        (Some("Pod"), Some("debug"), Some(0))
    );
    let checks: Vec<&str> = pod["pss"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        [
            "hostNamespaces",
            "hostPorts",
            "privileged",
            "allowPrivilegeEscalation",
            "capabilities_restricted",
            "runAsNonRoot",
            "seccompProfile_restricted"
        ]
    );
    assert_eq!(pod["pss"]["violations"][0]["reason"], "host namespaces");
    assert!(pod["pss"]["message"].as_str().unwrap().starts_with(
        "violates PodSecurity \"restricted:latest\": host namespaces (hostNetwork=true), hostPort ("
    ));
    let ids = |x: &Value| -> Vec<String> {
        x["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(ids(&res[1]).contains(&"GUIDE-SECRET-IN-MANIFEST".to_string()));
    assert!(ids(&res[1]).contains(&"GUIDE-PDB".to_string()));
    assert!(res[2].get("pss").is_none() && ids(&res[2]).is_empty());
    assert!(ids(&res[3]).contains(&"GUIDE-RBAC-WILDCARD".to_string()));
    assert!(ids(&res[4]).contains(&"GUIDE-INGRESS-TLS".to_string()));
    let f = &res[1]["findings"][0];
    for k in ["id", "severity", "message", "fix"] {
        assert!(f[k].is_string(), "finding lacks {k}: {f}");
    }
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("mypassword123"),
        "secret value printed"
    );
    assert_eq!(r["summary"]["podsDenied"], 2);
    assert_eq!(r["summary"]["passed"], false);
}

#[test]
fn baseline_and_old_versions_change_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    // runAsUser: 0 is checked by restricted from v1.23 only; baseline never.
    std::fs::write(
        dir.path().join("pod.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  securityContext: {runAsNonRoot: true, runAsUser: 0, seccompProfile: {type: RuntimeDefault}}\n  containers:\n  - name: c\n    image: x\n    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}\n",
    )
    .unwrap();
    let checks = |args: &[&str]| -> (i32, Vec<String>) {
        let mut a = vec!["audit", "pod.yaml", "-o", "json", "--fail-on", "critical"];
        a.extend_from_slice(args);
        let o = pake(dir.path(), &a);
        let r = json(&o);
        let v = r["results"][0]["pss"]["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["check"].as_str().unwrap().to_string())
            .collect();
        (o.status.code().unwrap(), v)
    };
    assert_eq!(checks(&[]), (1, vec!["runAsUser".to_string()]));
    assert_eq!(checks(&["--pss-version", "v1.22"]), (0, vec![]));
    assert_eq!(checks(&["--pss", "baseline"]), (0, vec![]));
    let o = pake(dir.path(), &["audit", "pod.yaml", "--pss", "privileged"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = pake(dir.path(), &["audit", "pod.yaml", "--pss-version", "1.25"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn invalid_input_is_exit_2_naming_file_document_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: [unclosed\n").unwrap();
    let o = pake(dir.path(), &["audit", "a.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("a.yaml: document 1, line "), "{err}");

    std::fs::write(dir.path().join("b.yaml"), "apiVersion: v1\nkind: Pod\nmetadata: {name: b}\nspec:\n  hostNetwork: maybe\n  containers: [{name: c, image: x}]\n").unwrap();
    let o = pake(dir.path(), &["audit", "b.yaml", "-o", "json"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("b.yaml: document 0, line 5: spec is not a valid pod spec"),
        "{err}"
    );
    assert!(json(&o)["error"]["message"].is_string());

    let o = pake(dir.path(), &["audit", "missing.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("missing.yaml"));
}

#[test]
fn overrides_in_pake_yaml_are_applied_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("bad/manifests.yaml"),
        dir.path().join("m.yaml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("pake.yaml"),
        "app: shop\nimage: shop/web\nenvironments:\n  dev: {namespace: shop}\naudit:\n  checks:\n    GUIDE-PDB:\n      enabled: false\n      reason: single replica in dev, drains are fine\n    GUIDE-PROBES:\n      severity: high\n      reason: probes are mandatory here\n",
    )
    .unwrap();
    let o = pake(dir.path(), &["audit", "m.yaml", "-o", "json"]);
    let r = json(&o);
    let sup = r["suppressed"].as_array().unwrap();
    assert!(
        sup.iter()
            .any(|s| s["id"] == "GUIDE-PDB"
                && s["reason"] == "single replica in dev, drains are fine")
    );
    let all: Vec<&Value> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|x| x["findings"].as_array().unwrap())
        .collect();
    assert!(!all.iter().any(|f| f["id"] == "GUIDE-PDB"));
    let probes = all.iter().find(|f| f["id"] == "GUIDE-PROBES").unwrap();
    assert_eq!(probes["severity"], "high");
    assert_eq!(probes["overridden"]["from"], "medium");
    let o = pake(dir.path(), &["audit", "m.yaml"]);
    let t = text(&o);
    assert!(
        t.contains("suppressed GUIDE-PDB on Deployment shop/web"),
        "{t}"
    );
    assert!(t.contains("single replica in dev, drains are fine"), "{t}");
    assert!(t.contains("probes are mandatory here"), "{t}");
}

#[test]
fn sarif_output_for_code_scanning() {
    let o = pake(&fixtures(), &["audit", "bad", "-o", "sarif"]);
    assert_eq!(o.status.code(), Some(1));
    let s = json(&o);
    assert_eq!(s["version"], "2.1.0");
    let run = &s["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "pake");
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"pss/privileged") && rules.contains(&"GUIDE-RBAC-WILDCARD"));
    for r in run["results"].as_array().unwrap() {
        let idx = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[idx], r["ruleId"].as_str().unwrap());
        let loc = &r["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], "bad/manifests.yaml");
        assert!(loc["region"]["startLine"].as_u64().unwrap() >= 2);
    }
}

#[test]
fn text_report_snapshot() {
    let o = pake(
        &fixtures(),
        &["audit", "bad/manifests.yaml", "--no-progress"],
    );
    insta::assert_snapshot!(String::from_utf8_lossy(&o.stdout));
}

#[test]
fn dockerfiles_are_audited_by_the_build_checks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM python:3.12\nENV API_TOKEN=abc123\nRUN pip install flask\nCMD [\"python\", \"app.py\"]\n").unwrap();
    let o = pake(dir.path(), &["audit", ".", "-o", "json"]);
    let r = json(&o);
    let d = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == "Dockerfile")
        .unwrap();
    let ids: Vec<&str> = d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"DOCKERFILE-SECRET-ENV") && ids.iter().all(|i| i.starts_with("DOCKER")),
        "{ids:?}"
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("abc123"));
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn nothing_to_audit_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = pake(dir.path(), &["audit"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn what_cannot_be_evaluated_fails_and_secrets_are_found_by_value_without_printing_them() {
    let dir = fixtures();
    let o = pake(
        &dir,
        &["audit", "depth", "-o", "json", "--fail-on", "critical"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let r = json(&o);
    assert_eq!(r["summary"]["notEvaluated"], 1);
    assert_eq!(r["summary"]["passed"], false);
    let results = r["results"].as_array().unwrap();
    let find = |kind: &str| results.iter().find(|x| x["kind"] == kind).unwrap();
    let misfiled = find("Deployment");
    assert!(
        misfiled.get("pss").is_none(),
        "not evaluated, so no verdict"
    );
    let f = &misfiled["findings"][0];
    assert_eq!(f["id"], "AUDIT-NOT-EVALUATED");
    assert_eq!(
        (f["line"].as_u64(), f["field"].as_str()),
        (Some(2), Some("apiVersion"))
    );
    // The ConfigMap: the private key by value, at its key's line; the public key and the path pass.
    let cm: Vec<&Value> = find("ConfigMap")["findings"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(cm.len(), 1, "{cm:?}");
    assert_eq!(
        (cm[0]["line"].as_u64(), cm[0]["field"].as_str()),
        (Some(28), Some("data[\"bundle.pem\"]"))
    );
    // The Job: the URL credentials in args; the $(DB_PASSWORD) argument and ${API_TOKEN} pass.
    let job: Vec<&Value> = find("Job")["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "GUIDE-SECRET-IN-MANIFEST")
        .collect();
    assert_eq!(job.len(), 1, "{job:?}");
    assert_eq!(job[0]["line"], 45);
    assert!(job[0]["message"].as_str().unwrap().contains("args[1]"));
    let docker = find("Dockerfile")["findings"].as_array().unwrap();
    assert!(
        docker
            .iter()
            .any(|f| f["id"] == "DOCKERFILE-SECRET-VALUE" && f["line"] == 2)
    );

    for format in ["text", "json", "sarif"] {
        let o = pake(&dir, &["audit", "depth", "-o", format]);
        let all = text(&o);
        for marker in [
            "MARKER-PRIVATE-KEY-BODY",
            "MARKER-URL-PASSWORD",
            "MARKER-CURL-PASSWORD",
        ] {
            assert!(
                !all.contains(marker),
                "{format} output printed a secret value"
            );
        }
        if format == "text" {
            assert!(
                all.contains("not evaluated: apiVersion \"v1\" does not serve kind Deployment")
            );
            assert!(!all.contains("audit passed"));
        }
        if format == "sarif" {
            let s = json(&o);
            let res = s["runs"][0]["results"].as_array().unwrap();
            let ne = res
                .iter()
                .find(|x| x["ruleId"] == "AUDIT-NOT-EVALUATED")
                .unwrap();
            assert_eq!(
                ne["locations"][0]["physicalLocation"]["region"]["startLine"],
                2
            );
        }
    }
}

/// A few hundred objects over several files, with the cross-object checks'
/// context (NetworkPolicies, PDBs, ServiceAccounts) at the end.
fn many_manifests(dir: &Path) {
    for f in 0..4 {
        let mut t = String::new();
        for i in 0..150 {
            let n = f * 150 + i;
            t.push_str(&format!(
                "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d{n}\n  namespace: ns{}\nspec:\n  replicas: {}\n  selector: {{matchLabels: {{app: d{n}}}}}\n  template:\n    metadata: {{labels: {{app: d{n}}}}}\n    spec:\n      containers:\n      - name: a\n        image: nginx\n        env: [{{name: DB_PASSWORD, value: p{n}}}]\n",
                n % 3,
                1 + n % 2
            ));
        }
        if f == 3 {
            t.push_str("---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: ns1}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: pdb, namespace: ns2}\nspec: {minAvailable: 1, selector: {matchLabels: {app: d2}}}\n");
        }
        std::fs::write(dir.join(format!("m{f}.yaml")), t).unwrap();
    }
}

#[test]
fn streamed_output_is_the_whole_report() {
    use pake::checks::audit::{AuditOptions, audit_paths};
    let d = tempfile::tempdir().unwrap();
    many_manifests(d.path());
    let dir = d.path().to_str().unwrap();
    let report = audit_paths(&[d.path().to_path_buf()], &AuditOptions::default());
    let report = report.unwrap();
    assert_eq!(report.results.len(), 602);
    let o = pake(d.path(), &["audit", dir, "-o", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let want = serde_json::to_string_pretty(&pake::output::with_header("AuditReport", &report))
        .unwrap()
        + "\n";
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        want,
        "-o json, byte for byte"
    );
    let o = pake(d.path(), &["audit", dir, "-o", "yaml"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let yaml: Value = serde_saphyr::from_str(&String::from_utf8_lossy(&o.stdout)).unwrap();
    assert_eq!(
        yaml,
        pake::output::with_header("AuditReport", &report),
        "-o yaml"
    );
    let o = pake(d.path(), &["audit", dir]);
    let ui = pake::output::Ui::plain(pake::output::Format::Text);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        pake::report::audit::text(&report, &ui),
        "text"
    );
    let o = pake(d.path(), &["audit", dir, "-o", "sarif"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(json(&o), pake::report::sarif::audit(&report), "-o sarif");
    // Nothing at all: still one whole document.
    let e = tempfile::tempdir().unwrap();
    std::fs::write(e.path().join("values.yaml"), "a: 1\n").unwrap();
    let o = pake(e.path(), &["audit", ".", "-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(json(&o)["results"], serde_json::json!([]));
    let o = pake(e.path(), &["audit", ".", "-o", "yaml"]);
    let yaml: Value = serde_saphyr::from_str(&String::from_utf8_lossy(&o.stdout)).unwrap();
    assert_eq!(yaml["results"], serde_json::json!([]));
    assert_eq!(yaml["summary"]["skippedDocuments"], 1);
    let o = pake(e.path(), &["audit", ".", "-o", "sarif"]);
    assert_eq!(json(&o)["runs"][0]["results"], serde_json::json!([]));
}

#[test]
fn bad_input_late_in_a_stream_fails_before_any_output() {
    // Two hundred good objects, then a broken document and a pod that does not decode:
    // every file is parsed and every pod decoded before the first result is written.
    let d = tempfile::tempdir().unwrap();
    many_manifests(d.path());
    let dir = d.path().to_str().unwrap();
    std::fs::write(
        d.path().join("z-bad.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: [\n",
    )
    .unwrap();
    for fmt in ["text", "json"] {
        let o = pake(d.path(), &["audit", dir, "-o", fmt]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            !out.contains("Deployment"),
            "no result before the error ({fmt}): {out}"
        );
        assert!(
            text(&o).contains("z-bad.yaml: document 0, line"),
            "{}",
            text(&o)
        );
    }
    std::fs::write(
        d.path().join("z-bad.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    securityContext: {privileged: \"yes\"}\n",
    )
    .unwrap();
    let o = pake(d.path(), &["audit", dir]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(text(&o).contains("is not a valid pod spec"), "{}", text(&o));
}
