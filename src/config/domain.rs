//! Up-front validation of every pake.yaml field that has a domain: each error
//! names the file, line and field and states the rule, before anything renders
//! or reaches a cluster. Values are quoted only for fields that cannot hold a
//! secret (names, ports, paths); an env var's `value` is never shown.

use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;

use super::{EgressRule, EnvironmentOverride, IngressConfig, ProjectConfig, Resources};
use crate::error::{Error, Result};
use crate::input::{escape_control, show_path};

/// Check every field with a domain. `text` is pake.yaml's text, used to find lines.
pub fn check(c: &ProjectConfig, text: &str, path: &Path) -> Result<()> {
    let v = V { text, path };
    v.check_all(c)
}

struct V<'a> {
    text: &'a str,
    path: &'a Path,
}

fn re(s: &str) -> Regex {
    Regex::new(s).expect("valid regex")
}

static DNS_1035: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-z]([-a-z0-9]*[a-z0-9])?$"));
static LABEL_VALUE: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"));
static TAG: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"));
static DIGEST: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$"));
static SECRET_KEY: LazyLock<Regex> = LazyLock::new(|| re(r"^[-._a-zA-Z0-9]+$"));
static ENV_NAME: LazyLock<Regex> = LazyLock::new(|| re(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"));
static VAR_NAME: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z_][A-Za-z0-9_]*$"));
static QUANTITY: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[mkMGTPE]|n|u)?$"));
/// A repository reference without tag or digest: `[host[:port]/]path`.
static IMAGE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^([A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]+)?/)?[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*$",
    )
});

/// Plain scalars YAML reads as something other than a string (`123`, `true`,
/// `1e3`, `null`): a name like that renders unquoted into templates and changes type.
pub fn yaml_reads_as_non_string(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    matches!(
        l.as_str(),
        "" | "~" | "null" | "true" | "false" | "yes" | "no" | "y" | "n" | "on" | "off"
    ) || l.parse::<f64>().is_ok()
        || l.strip_prefix("0x")
            .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
        || l.strip_prefix("0o")
            .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_digit(8)))
}

impl V<'_> {
    fn err(&self, field: &[&str], rule: String) -> Error {
        let at = match locate(self.text, field) {
            Some(l) => format!("{}:{l}", show_path(self.path)),
            None => show_path(self.path),
        };
        Error::usage(format!("{at}: {}: {rule}", field.join(".")))
    }

    fn dns_label(&self, field: &[&str], s: &str, what: &str) -> Result<()> {
        if crate::config::is_dns_label(s) {
            return self.not_yaml_literal(field, s);
        }
        Err(self.err(field, format!(
            "{:?} is not a valid {what}: use lower-case letters, digits and '-', start and end with a letter or digit, at most 63 characters",
            escape_control(s)
        )))
    }

    fn dns_subdomain(&self, field: &[&str], s: &str) -> Result<()> {
        if crate::config::is_dns_subdomain(s) {
            return self.not_yaml_literal(field, s);
        }
        Err(self.err(field, format!(
            "{:?} is not a valid name: use lower-case DNS labels separated by '.', at most 253 characters",
            escape_control(s)
        )))
    }

    fn not_yaml_literal(&self, field: &[&str], s: &str) -> Result<()> {
        if yaml_reads_as_non_string(s) {
            return Err(self.err(field, format!(
                "{:?} would be read as a number, boolean or null where templates place it; start it with a letter (e.g. \"app-{s}\")",
                escape_control(s)
            )));
        }
        Ok(())
    }

    fn port(&self, field: &[&str], p: u16) -> Result<()> {
        if p == 0 {
            return Err(self.err(field, "0 is not a port: use 1-65535".into()));
        }
        Ok(())
    }

    fn replicas(&self, field: &[&str], n: i32) -> Result<()> {
        if n < 0 {
            return Err(self.err(field, format!("{n}: replicas must be 0 or more")));
        }
        Ok(())
    }

    fn matches(&self, field: &[&str], s: &str, r: &Regex, rule: &str) -> Result<()> {
        if r.is_match(s) {
            return Ok(());
        }
        Err(self.err(field, format!("{:?} {rule}", escape_control(s))))
    }

    fn digest(&self, field: &[&str], d: &str) -> Result<()> {
        if d == "record" {
            return Ok(());
        }
        self.matches(
            field,
            d,
            &DIGEST,
            "is not a digest: use sha256: and 64 lower-case hex digits (or `record` for the digest `pake build --push` recorded)",
        )
    }

    fn resources(&self, field: &[&str], r: &Resources) -> Result<()> {
        for (part, list) in [("requests", &r.requests), ("limits", &r.limits)] {
            for (name, q) in [
                ("cpu", &list.cpu),
                ("memory", &list.memory),
                ("ephemeral-storage", &list.ephemeral_storage),
            ] {
                let mut f = field.to_vec();
                f.extend([part, name]);
                self.matches(
                    &f,
                    q,
                    &QUANTITY,
                    "is not a Kubernetes quantity (e.g. 250m, 1, 512Mi, 2Gi)",
                )?;
            }
        }
        Ok(())
    }

    fn ingress(&self, field: &[&str], i: &IngressConfig) -> Result<()> {
        let host = i.host.strip_prefix("*.").unwrap_or(&i.host);
        let mut hf = field.to_vec();
        hf.push("host");
        self.not_yaml_literal(&hf, &i.host)?;
        if !crate::config::is_dns_subdomain(host) {
            let mut f = field.to_vec();
            f.push("host");
            return Err(self.err(&f, format!(
                "{:?} is not a host name: lower-case DNS labels separated by '.', optionally starting with `*.`",
                escape_control(&i.host)
            )));
        }
        for (name, v) in [
            ("tlsSecret", &i.tls_secret),
            ("clusterIssuer", &i.cluster_issuer),
            ("className", &i.class_name),
        ] {
            let mut f = field.to_vec();
            f.push(name);
            self.dns_subdomain(&f, v)?;
        }
        Ok(())
    }

    fn egress(&self, i: usize, e: &EgressRule) -> Result<()> {
        let idx = format!("egress[{i}]");
        let f = |k: &'static str| -> [&str; 3] { ["network", idx.as_str(), k] };
        self.port(&f("port"), e.port)?;
        match (&e.app, &e.cidr) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(self.err(
                    &f("app")[..2],
                    "needs exactly one of app (pods in the namespace) or cidr (an address range)"
                        .into(),
                ));
            }
            (Some(a), None) => {
                self.not_yaml_literal(&f("app"), a)?;
                if !LABEL_VALUE.is_match(a) || a.len() > 63 {
                    return Err(self.err(&f("app"), format!(
                        "{:?} is not a valid app label value (letters, digits, '-', '_', '.', at most 63)",
                        escape_control(a)
                    )));
                }
            }
            (None, Some(c)) => {
                if let Err(why) = parse_cidr(c) {
                    return Err(self.err(
                        &f("cidr"),
                        format!(
                            "{:?} is not a CIDR: {why} (e.g. 10.0.0.0/16 or fd00::/64)",
                            escape_control(c)
                        ),
                    ));
                }
            }
        }
        if !matches!(e.protocol.as_str(), "TCP" | "UDP" | "SCTP") {
            return Err(self.err(
                &f("protocol"),
                format!(
                    "{:?} is not a protocol: use TCP, UDP or SCTP",
                    escape_control(&e.protocol)
                ),
            ));
        }
        Ok(())
    }

    fn environment(&self, name: &str, o: &EnvironmentOverride) -> Result<()> {
        let f = |k: &'static str| vec!["environments", name, k];
        self.dns_label(&["environments", name], name, "environment name")?;
        if let Some(ns) = &o.namespace {
            self.dns_label(&f("namespace"), ns, "namespace")?;
        }
        if let Some(n) = o.replicas {
            self.replicas(&f("replicas"), n)?;
        }
        if let Some(t) = &o.tag {
            self.matches(&f("tag"), t, &TAG, "is not an image tag: letters, digits, '_', '.', '-', at most 128, not starting with '.' or '-'")?;
        }
        if let Some(d) = &o.digest {
            self.digest(&f("digest"), d)?;
        }
        if let Some(r) = &o.resources {
            self.resources(&f("resources"), r)?;
        }
        if let Some(i) = &o.ingress {
            self.ingress(&f("ingress"), i)?;
        }
        super::fleet::check(name, o, &|field, rule| self.err(field, rule))?;
        for c in &o.clusters {
            let f = |k: &'static str| vec!["environments", name, "clusters", k];
            if let Some(r) = &c.resources {
                self.resources(&f("resources"), r)?;
            }
            if let Some(i) = &c.ingress {
                self.ingress(&f("ingress"), i)?;
            }
        }
        Ok(())
    }

    fn check_all(&self, c: &ProjectConfig) -> Result<()> {
        self.app(&c.app)?;
        if !IMAGE.is_match(&c.image) {
            return Err(self.err(&["image"], format!(
                "{:?} is not an image repository: [registry[:port]/]path in lower case, without a tag or digest (set those with tag: and digest:)",
                escape_control(&c.image)
            )));
        }
        if let Some(t) = &c.tag {
            self.matches(&["tag"], t, &TAG, "is not an image tag: letters, digits, '_', '.', '-', at most 128, not starting with '.' or '-'")?;
        }
        if let Some(d) = &c.digest {
            self.digest(&["digest"], d)?;
        }
        self.port(&["port"], c.port)?;
        self.dns_label(&["namespace"], &c.namespace, "namespace")?;
        self.dns_label(&["version"], &c.version, "version label")?;
        self.not_yaml_literal(&["version"], &c.version)?;
        if c.app.len() + 1 + c.version.len() > 63 {
            return Err(self.err(
                &["version"],
                format!(
                    "the workload name {}-{} is longer than 63 characters: shorten app or version",
                    c.app, c.version
                ),
            ));
        }
        self.replicas(&["replicas"], c.replicas)?;
        self.resources(&["resources"], &c.resources)?;
        if !c.health_path.starts_with('/')
            || c.health_path
                .chars()
                .any(|ch| ch.is_whitespace() || ch.is_control())
        {
            return Err(self.err(
                &["healthPath"],
                format!(
                    "{:?} is not an HTTP path: start with '/', no spaces",
                    escape_control(&c.health_path)
                ),
            ));
        }
        for k in c.build.args.keys() {
            self.matches(
                &["build", "args", k],
                k,
                &VAR_NAME,
                "is not a build argument name: letters, digits and '_', not starting with a digit",
            )?;
        }
        self.secrets(c)?;
        self.env(c)?;
        for a in &c.network.allow_from {
            self.not_yaml_literal(&["network", "allowFrom"], a)?;
            if !LABEL_VALUE.is_match(a) || a.len() > 63 {
                return Err(self.err(&["network", "allowFrom"], format!(
                    "{:?} is not a valid app label value (letters, digits, '-', '_', '.', at most 63)",
                    escape_control(a)
                )));
            }
        }
        for (i, e) in c.network.egress.iter().enumerate() {
            self.egress(i, e)?;
        }
        if let Some(i) = &c.ingress {
            self.ingress(&["ingress"], i)?;
        }
        for (name, o) in &c.environments {
            self.environment(name, o)?;
        }
        for (id, o) in &c.audit.checks {
            if let Some(s) = &o.severity
                && crate::checks::Severity::parse(s).is_none()
            {
                return Err(self.err(
                    &["audit", "checks", id, "severity"],
                    format!(
                        "{:?} is not a severity: use info, low, medium, high or critical",
                        escape_control(s)
                    ),
                ));
            }
        }
        Ok(())
    }

    fn app(&self, app: &str) -> Result<()> {
        if !DNS_1035.is_match(app) || app.len() > 55 {
            return Err(self.err(&["app"], format!(
                "{:?} is not a valid app name: lower-case letters, digits and '-', starting with a letter, at most 55 characters (it names the Service and `<app>-preview`)",
                escape_control(app)
            )));
        }
        self.not_yaml_literal(&["app"], app)
    }

    fn secrets(&self, c: &ProjectConfig) -> Result<()> {
        let mut names = std::collections::BTreeSet::new();
        for s in &c.secrets {
            self.dns_subdomain(&["secrets", "name"], &s.name)?;
            if !names.insert(s.name.as_str()) {
                return Err(self.err(
                    &["secrets", "name"],
                    format!("secret {:?} is declared twice", s.name),
                ));
            }
            match (&s.external, s.keys.is_empty()) {
                (Some(_), false) => {
                    return Err(self.err(
                        &["secrets", "external"],
                        format!(
                            "secret {:?} has both keys: and external:; give exactly one (`keys:` with fromEnv/fromFile/fromCommand/generate, or `external:` for the External Secrets Operator)",
                            s.name
                        ),
                    ));
                }
                (Some(e), true) => self.external(&s.name, e)?,
                (None, true) => {
                    return Err(self.err(
                        &["secrets", "keys"],
                        format!(
                            "secret {:?} has no keys (give `keys:` or `external:`)",
                            s.name
                        ),
                    ));
                }
                (None, false) => {}
            }
            for (key, src) in &s.keys {
                let f = ["secrets", "keys", key.as_str()];
                if !SECRET_KEY.is_match(key) || key == "." || key == ".." || key.len() > 253 {
                    return Err(self.err(&f, format!(
                        "{:?} is not a valid Secret key: letters, digits, '-', '_' and '.', not `.` or `..`, at most 253 characters",
                        escape_control(key)
                    )));
                }
                if let Some(v) = &src.from_env
                    && !VAR_NAME.is_match(v)
                {
                    return Err(self.err(&["secrets", "keys", key, "fromEnv"], format!(
                        "{:?} is not an environment variable name: letters, digits and '_', not starting with a digit",
                        escape_control(v)
                    )));
                }
                if src
                    .from_file
                    .as_ref()
                    .is_some_and(|p| p.as_os_str().is_empty())
                {
                    return Err(self.err(
                        &["secrets", "keys", key, "fromFile"],
                        "is empty: give a path relative to pake.yaml".into(),
                    ));
                }
                if src
                    .from_command
                    .as_ref()
                    .is_some_and(|c| c.trim().is_empty())
                {
                    return Err(self.err(
                        &["secrets", "keys", key, "fromCommand"],
                        "is empty: give the command that prints the value".into(),
                    ));
                }
                if let Some(t) = &src.timeout {
                    if src.from_command.is_none() {
                        return Err(self.err(
                            &["secrets", "keys", key, "timeout"],
                            "applies only to fromCommand".into(),
                        ));
                    }
                    if let Err(why) = crate::secret::parse_duration(t) {
                        return Err(self.err(
                            &["secrets", "keys", key, "timeout"],
                            format!("{:?}: {why}", escape_control(t)),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// `external:` of a secret: the store's name, the refresh interval and
    /// every key with a non-empty remote key.
    fn external(&self, secret: &str, e: &crate::config::ExternalSource) -> Result<()> {
        self.dns_subdomain(&["secrets", "external", "store", "name"], &e.store.name)?;
        if let Some(why) = crate::config::external::refresh_interval_error(&e.refresh_interval) {
            return Err(self.err(
                &["secrets", "external", "refreshInterval"],
                format!("{:?}: {why}", escape_control(&e.refresh_interval)),
            ));
        }
        if e.keys.is_empty() {
            return Err(self.err(
                &["secrets", "external", "keys"],
                format!("secret {secret:?} has no keys: map each Secret key to a remote key, e.g. `password: {{key: pake/prod/database, property: password}}`"),
            ));
        }
        for (key, r) in &e.keys {
            if !SECRET_KEY.is_match(key) || key == "." || key == ".." || key.len() > 253 {
                return Err(self.err(&["secrets", "external", "keys", key.as_str()], format!(
                    "{:?} is not a valid Secret key: letters, digits, '-', '_' and '.', not `.` or `..`, at most 253 characters",
                    escape_control(key)
                )));
            }
            if r.key.trim().is_empty() || r.key.len() > 1024 || r.key.chars().any(char::is_control)
            {
                return Err(self.err(
                    &["secrets", "external", "keys", key.as_str(), "key"],
                    "is empty or not printable: give the key of the value in the store, e.g. pake/prod/database".into(),
                ));
            }
            for (f, v) in [("property", &r.property), ("version", &r.version)] {
                if v.as_ref().is_some_and(|v| {
                    v.trim().is_empty() || v.len() > 1024 || v.chars().any(char::is_control)
                }) {
                    return Err(self.err(
                        &["secrets", "external", "keys", key.as_str(), f],
                        "is empty or not printable".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    fn env(&self, c: &ProjectConfig) -> Result<()> {
        for e in &c.env {
            self.not_yaml_literal(&["env", "name"], &e.name)?;
            if !ENV_NAME.is_match(&e.name) {
                return Err(self.err(&["env", "name"], format!(
                    "{:?} is not a valid environment variable name: letters, digits, '-', '_' and '.', not starting with a digit",
                    escape_control(&e.name)
                )));
            }
            if let Some(r) = &e.secret_key_ref {
                self.dns_subdomain(&["env", "secretKeyRef", "name"], &r.name)?;
                self.not_yaml_literal(&["env", "secretKeyRef", "key"], &r.key)?;
                if !SECRET_KEY.is_match(&r.key) {
                    return Err(self.err(
                        &["env", "secretKeyRef", "key"],
                        format!(
                            "{:?} is not a valid Secret key: letters, digits, '-', '_' and '.'",
                            escape_control(&r.key)
                        ),
                    ));
                }
                if let Some(s) = c.secrets.iter().find(|s| s.name == r.name)
                    && !s.key_names().contains(&r.key)
                {
                    return Err(self.err(
                        &["env", "secretKeyRef", "key"],
                        format!(
                            "env {} reads key {:?} of secret {}, which declares only: {}",
                            e.name,
                            r.key,
                            r.name,
                            s.key_names().join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `10.0.0.0/16`, `fd00::/64`, or a bare address.
pub fn parse_cidr(s: &str) -> std::result::Result<(), String> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: std::net::IpAddr = addr.parse().map_err(|_| "not an IP address".to_string())?;
    if let Some(p) = prefix {
        let p: u8 = p
            .parse()
            .map_err(|_| "the prefix length is not a number".to_string())?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if p > max {
            return Err(format!("the prefix length is more than {max}"));
        }
    }
    Ok(())
}

/// The 1-based line of a field given as its key path (list indices skipped;
/// `egress[0]` matches `egress`). Finds the first line that matches the whole path.
pub fn locate(text: &str, path: &[&str]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    fn key(l: &str) -> Option<(usize, &str)> {
        let mut rest = l.trim_start();
        let mut indent = l.len() - rest.len();
        while let Some(r) = rest.strip_prefix("- ") {
            let t = r.trim_start();
            indent += rest.len() - t.len();
            rest = t;
        }
        if rest.starts_with('#') {
            return None;
        }
        let k = match rest.find(": ") {
            Some(i) => &rest[..i],
            None => rest.strip_suffix(':')?,
        };
        Some((indent, k.trim().trim_matches(['"', '\''])))
    }
    fn find(
        lines: &[&str],
        from: usize,
        min_indent: Option<usize>,
        path: &[&str],
    ) -> Option<usize> {
        let want = path.first()?;
        let want = want.split('[').next().unwrap_or(want);
        for (i, l) in lines.iter().enumerate().skip(from) {
            let Some((ind, k)) = key(l) else { continue };
            if let Some(m) = min_indent
                && ind <= m
            {
                return None;
            }
            if k == want {
                if path.len() == 1 {
                    return Some(i + 1);
                }
                if let Some(found) = find(lines, i + 1, Some(ind), &path[1..]) {
                    return Some(found);
                }
            }
        }
        None
    }
    find(&lines, 0, None, path).or_else(|| {
        // Fall back to the deepest prefix that is found.
        (1..path.len())
            .rev()
            .find_map(|n| find(&lines, 0, None, &path[..n]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str =
        "app: backend\nimage: pake-backend\nenvironments:\n  dev:\n    namespace: pake-dev\n";

    fn err(extra: &str) -> String {
        let t = format!("{MIN}{extra}");
        crate::config::parse(&t, Path::new("pake.yaml"))
            .unwrap_err()
            .message
    }

    #[test]
    fn every_domain_is_checked_with_field_and_line() {
        assert!(
            err("replicas: -5\n")
                .starts_with("pake.yaml:6: replicas: -5: replicas must be 0 or more")
        );
        assert!(err("port: 0\n").contains("pake.yaml:6: port: 0 is not a port"));
        assert!(
            err("version: \"V 1!\"\n").contains("version: \"V 1!\" is not a valid version label")
        );
        assert!(err("version: \"1\"\n").contains("would be read as a number"));
        assert!(err("digest: not a digest\n").contains("digest: \"not a digest\" is not a digest"));
        assert!(
            err("network:\n  egress:\n    - cidr: not-a-cidr\n      port: 5432\n")
                .contains("pake.yaml:8: network.egress[0].cidr: \"not-a-cidr\" is not a CIDR")
        );
        assert!(err("secrets:\n  - name: db\n    keys:\n      user name/../x:\n        fromEnv: X\n").contains("pake.yaml:9: secrets.keys.user name/../x: \"user name/../x\" is not a valid Secret key"));
        assert!(
            err(
                "audit:\n  checks:\n    GUIDE-RESOURCES:\n      severity: urgent\n      reason: r\n"
            )
            .contains(
                "pake.yaml:9: audit.checks.GUIDE-RESOURCES.severity: \"urgent\" is not a severity"
            )
        );
        assert!(err("env:\n  - name: \"A\\nB\"\n").contains(
            "pake.yaml:7: env.name: \"A\\\\nB\" is not a valid environment variable name"
        ));
        assert!(err("tag: \"bad tag\"\n").contains("tag: \"bad tag\" is not an image tag"));
        assert!(err("healthPath: health\n").contains("healthPath"));
        assert!(err("resources:\n  limits:\n    cpu: lots\n    memory: 1Gi\n    ephemeral-storage: 1Gi\n").contains("resources.limits.cpu"));
        let e = crate::config::parse(
            &MIN.replace("app: backend", "app: \"123\""),
            Path::new("pake.yaml"),
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("pake.yaml:1: app: \"123\" is not a valid app name"),
            "{}",
            e.message
        );
        let e = crate::config::parse(
            &MIN.replace("app: backend", "app: \"true\""),
            Path::new("pake.yaml"),
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("would be read as a number, boolean or null"),
            "{}",
            e.message
        );
        let e = crate::config::parse(&MIN.replace("  dev:", "  Dev_1:"), Path::new("pake.yaml"))
            .unwrap_err();
        assert!(
            e.message.contains("pake.yaml:4: environments.Dev_1"),
            "{}",
            e.message
        );
    }

    #[test]
    fn yaml_literals() {
        for s in [
            "123", "true", "no", "1e3", "0x1f", "0o17", "null", "~", ".5",
        ] {
            assert!(yaml_reads_as_non_string(s), "{s}");
        }
        for s in ["v1", "backend", "e1", "x123"] {
            assert!(!yaml_reads_as_non_string(s), "{s}");
        }
    }
}
