//! Secrets recognised by their value: private keys, well-known token shapes,
//! credentials in URLs and `--password=`-style arguments.
//!
//! Shared by the manifest checks (env values, ConfigMap data, command/args),
//! the Dockerfile checks (ENV/ARG/RUN/LABEL) and the image checks. Each
//! function returns what kind of secret it saw, never the value.
//!
//! False positives are kept low on purpose: public keys and certificates,
//! placeholders (`${DB_PASSWORD}`, `$(DB_PASSWORD)`, `{{ .password }}`,
//! `<password>`), paths (`--password-file=/run/secrets/db`) and booleans
//! (`--use-token=true`) are not secrets.

use std::sync::LazyLock;

use regex::Regex;

static SECRET_VALUES: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    [
        (
            "a private key",
            r"-----BEGIN ((RSA|EC|DSA|OPENSSH|ENCRYPTED|PGP) )?PRIVATE KEY( BLOCK)?-----",
        ),
        ("an AWS access key id", r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
        (
            "a GitHub token",
            r"\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b",
        ),
        ("a GitLab token", r"\bglpat-[A-Za-z0-9_-]{20,}\b"),
        ("a Slack token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"),
        (
            "a Slack webhook URL",
            r"https://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+",
        ),
        ("a Stripe secret key", r"\b[sr]k_live_[A-Za-z0-9]{20,}\b"),
        ("a Google API key", r"\bAIza[0-9A-Za-z_-]{35}\b"),
        ("an npm token", r"\bnpm_[A-Za-z0-9]{36}\b"),
        ("a PyPI token", r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}"),
        ("a Docker Hub token", r"\bdckr_pat_[A-Za-z0-9_-]{20,}"),
        ("a HashiCorp Vault token", r"\bhv[sb]\.[A-Za-z0-9_-]{24,}"),
        (
            "a SendGrid API key",
            r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b",
        ),
        (
            "an OpenAI/Anthropic API key",
            r"\bsk-(proj-|ant-(api|admin)\d\d-)?[A-Za-z0-9_-]{32,}",
        ),
        (
            "an Azure storage account key",
            r"AccountKey=[A-Za-z0-9+/]{40,}={0,2}",
        ),
        (
            "a JSON web token",
            r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}",
        ),
    ]
    .into_iter()
    .map(|(k, r)| (k, Regex::new(r).expect("secret pattern compiles")))
    .collect()
});

/// `scheme://user:password@host`; the password group is checked for placeholders.
static URL_CREDENTIALS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@'\x22]+:([^/\s@'\x22]{3,})@")
        .expect("url pattern compiles")
});

/// `--password=x`, `--db-password x`, `--token=x`, `--api-key x`, `--client-secret=x`.
static SECRET_FLAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)(?:^|[\s'"])--?[a-z0-9-]*(?:password|passwd|passphrase|token|api-?key|client-secret|secret-key|access-key|private-key)(?:=|\s+)['"]?([^\s'"]+)"#,
    )
    .expect("flag pattern compiles")
});

/// `curl -u user:pass`, `curl --user user:pass`, `wget --password x` is a flag above.
static CURL_USER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"\bcurl\b[^\n;&|]*?\s(?:-u|--user)(?:=|\s*)['"]?[^\s:'"]+:([^\s'"]+)"#)
        .expect("curl pattern compiles")
});

/// `mysql -pSECRET`, `sshpass -p SECRET`.
static TOOL_PASSWORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"\b(?:mysql|mysqladmin|mysqldump|mariadb)\b[^\n;&|]*?\s-p([^\s'"]+)|\bsshpass\s+-p\s*['"]?([^\s'"]+)"#,
    )
    .expect("tool pattern compiles")
});

/// A value that stands for a secret instead of being one.
fn is_placeholder(v: &str) -> bool {
    let v = v.trim_matches(|c| c == '\'' || c == '"');
    v.len() < 3
        || v.contains('$')
        || v.contains("{{")
        || v.contains("{%")
        || (v.starts_with('<') && v.ends_with('>'))
        || v.starts_with('/')
        || v.starts_with("./")
        || v.starts_with('@')
        || v.chars()
            .all(|c| c == '*' || c == 'x' || c == 'X' || c == '.')
        || matches!(
            v.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "none" | "null" | "empty" | "stdin" | "-"
        )
}

/// What kind of secret `value` looks like (private keys, well-known token
/// formats, credentials in URLs, password arguments), or `None`. Never
/// returns the value itself.
pub fn secret_value_kind(value: &str) -> Option<&'static str> {
    if let Some((k, _)) = SECRET_VALUES.iter().find(|(_, r)| r.is_match(value)) {
        return Some(k);
    }
    let hit = |re: &Regex| {
        re.captures_iter(value).any(|c| {
            c.iter()
                .skip(1)
                .flatten()
                .any(|m| !is_placeholder(m.as_str()))
        })
    };
    if hit(&URL_CREDENTIALS) {
        return Some("a password in a URL");
    }
    if hit(&CURL_USER) {
        return Some("credentials in a `curl -u user:password` argument");
    }
    if hit(&SECRET_FLAG) {
        return Some("a password or token passed as a command-line argument");
    }
    if hit(&TOOL_PASSWORD) {
        return Some("a password passed as a command-line argument");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_by_value_fire() {
        for (v, kind) in [
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIE...\n-----END RSA PRIVATE KEY-----",
                "a private key",
            ),
            ("-----BEGIN OPENSSH PRIVATE KEY-----", "a private key"),
            ("-----BEGIN PRIVATE KEY-----", "a private key"),
            ("AKIAIOSFODNN7EXAMPLE", "an AWS access key id"),
            ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "a GitHub token"),
            ("glpat-abcdefghij0123456789", "a GitLab token"),
            ("xoxb-1234567890-abcdefghij", "a Slack token"),
            (
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
                "a JSON web token",
            ),
            ("postgres://app:s3cr3t@db:5432/app", "a password in a URL"),
            (
                "--password=hunter22",
                "a password or token passed as a command-line argument",
            ),
            (
                "server --db-password hunter22 --port 80",
                "a password or token passed as a command-line argument",
            ),
            (
                "curl -fsSL -u admin:hunter22 https://example.com/x",
                "credentials in a `curl -u user:password` argument",
            ),
            (
                "mysql -uroot -phunter22 db",
                "a password passed as a command-line argument",
            ),
            (
                "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/ab==",
                "an Azure storage account key",
            ),
        ] {
            assert_eq!(secret_value_kind(v), Some(kind), "{v}");
        }
    }

    #[test]
    fn look_alikes_pass() {
        for v in [
            "-----BEGIN PUBLIC KEY-----\nMIIB...\n-----END PUBLIC KEY-----",
            "-----BEGIN CERTIFICATE-----",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG user@host",
            "postgres://app:${DB_PASSWORD}@db:5432/app",
            "postgres://app@db:5432/app",
            "https://example.com/a:b@c",
            "--password=$(DB_PASSWORD)",
            "--password-file=/run/secrets/db",
            "--token-file /var/run/secrets/token",
            "--use-token=true",
            "--password ${DB_PASSWORD}",
            "--api-key={{ .Values.key }}",
            "curl -u \"$USER:$PASS\" https://x",
            "curl -fsSL https://example.com/install.sh | sh",
            "RUN --mount=type=secret,id=npm npm ci",
            "docker buildx build --secret id=npm,src=.npmrc .",
            "mysql -p db",
            "http://localhost:8080/health",
            "info",
            "sk-short",
        ] {
            assert_eq!(secret_value_kind(v), None, "{v}");
        }
    }
}
