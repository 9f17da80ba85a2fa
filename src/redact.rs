//! Keeping secret values out of error messages.
//!
//! Parsers quote what they could not accept (`invalid type: integer
//! `918273645546372819`, expected a string`) and print the lines around an
//! error. pake never shows such text for a line that may hold a secret: a line
//! whose key (or the key of any enclosing mapping) looks like a secret name
//! (`password`, `token`, ...) or is `value`, `data`, `stringData` or
//! `binaryData`. Errors name the file, line and field and show `<redacted>`
//! in place of the value.

use crate::config::looks_secret_name;
use crate::secret::REDACTED;

/// Keys whose scalars are (or may be) secret values.
const VALUE_KEYS: &[&str] = &["value", "data", "stringdata", "binarydata"];

fn sensitive_key(k: &str) -> bool {
    let k = k.trim().trim_matches(['"', '\'']);
    VALUE_KEYS.contains(&k.to_ascii_lowercase().as_str()) || looks_secret_name(k)
}

/// The key of a YAML line (`  - name: x` -> `name`), if it has one, and its indentation.
fn key_of(line: &str) -> (usize, Option<&str>) {
    let mut rest = line.trim_start();
    let mut indent = line.len() - rest.len();
    while let Some(r) = rest.strip_prefix("- ").or_else(|| rest.strip_prefix("-\t")) {
        let t = r.trim_start();
        indent += rest.len() - t.len();
        rest = t;
    }
    if rest.starts_with('#') || rest.is_empty() {
        return (indent, None);
    }
    match rest
        .find(": ")
        .or_else(|| rest.strip_suffix(':').map(|s| s.len()))
    {
        Some(i) => (indent, Some(&rest[..i])),
        None => (indent, None),
    }
}

/// Whether line `line` (1-based) of `text` may hold a secret: its own key or an
/// enclosing key is sensitive, or (flow style, `{password: x}`) the line names one.
pub fn sensitive_line(text: &str, line: usize) -> bool {
    let lines: Vec<&str> = text.lines().collect();
    let Some(l) = line.checked_sub(1).and_then(|i| lines.get(i)) else {
        return true;
    };
    if line_mentions_sensitive(l) {
        return true;
    }
    let (indent, key) = key_of(l);
    if key.is_some_and(sensitive_key) {
        return true;
    }
    // Enclosing keys (and the owner of a block scalar's line) are the nearest
    // lines above with a smaller indentation.
    let mut cur = indent;
    for prev in lines[..line - 1].iter().rev() {
        if prev.trim().is_empty() || prev.trim_start().starts_with('#') {
            continue;
        }
        let (i, k) = key_of(prev);
        if i < cur {
            if k.is_some_and(sensitive_key) || line_mentions_sensitive(prev) {
                return true;
            }
            cur = i;
            if i == 0 {
                break;
            }
        }
    }
    false
}

fn line_mentions_sensitive(l: &str) -> bool {
    // Flow mappings: `{name: DB_PASSWORD, value: x}` or `stringData: {a: b}`.
    if !(l.contains('{') || l.contains('[')) {
        return false;
    }
    l.split(['{', '}', ',', '[', ']'])
        .filter_map(|part| part.split_once(':').map(|(k, _)| k))
        .any(sensitive_key)
}

/// The field (key) at a line, for messages: never the value.
pub fn field_at(text: &str, line: usize) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)?)?;
    key_of(l)
        .1
        .filter(|k| !k.contains(['{', '[', ',']))
        .map(|k| crate::input::escape_control(k.trim().trim_matches(['"', '\''])))
}

/// Replace the input quoted in a parser's message (`` `…` `` or `"…"` before
/// `expected …`, which only lists pake's own names) with `<redacted>`.
pub fn redact_quoted(msg: &str) -> String {
    let (head, tail) = match msg.find("expected") {
        Some(i) => msg.split_at(i),
        None => (msg, ""),
    };
    // `unknown field `x``: a key, which is pake's to name (the value is not shown).
    if let Some(rest) = head.strip_prefix("unknown field ") {
        return format!("unknown field {rest}{tail}");
    }
    let mut out = String::with_capacity(msg.len());
    let mut chars = head.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '`' || c == '"' || c == '\'' {
            // Only a closed quote is a quotation (an apostrophe in prose is not).
            let rest: String = chars.clone().collect();
            if let Some(end) = rest.find(c) {
                out.push(c);
                out.push_str(REDACTED);
                out.push(c);
                for _ in 0..rest[..end].chars().count() + 1 {
                    chars.next();
                }
                continue;
            }
        }
        out.push(c);
    }
    // Bare numbers and booleans in the head ("invalid type: integer 5") too.
    let out = redact_bare_scalars(&out);
    out + tail
}

fn redact_bare_scalars(s: &str) -> String {
    use std::sync::LazyLock;
    static RE: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(
            r"\b(integer|floating point|boolean|string|character|variant) ([^`\x22'<,\s][^,]*)",
        )
        .expect("valid regex")
    });
    RE.replace_all(s, format!("$1 {REDACTED}")).into_owned()
}

/// A parser message about line `line` of `text`: redacted when that line may hold a secret.
pub fn message_for_line(msg: &str, text: &str, line: Option<usize>) -> String {
    match line {
        Some(l) if !sensitive_line(text, l) => msg.to_string(),
        _ => redact_quoted(msg),
    }
}

/// YAML parse options for text pake reads: no source snippet in errors (it
/// could quote a secret), and size budgets scaled to the file-size limit so a
/// large but valid file parses.
pub fn yaml_options() -> serde_saphyr::Options {
    let max = crate::input::max_file_size().min(usize::MAX as u64) as usize;
    let mut budget = serde_saphyr::budget::Budget::default();
    // A scalar byte, node or event needs at least one input byte; the defaults
    // (64 MiB, 250k nodes, 1M events) are lower than what a 64 MiB file can hold.
    budget.max_total_scalar_bytes = budget.max_total_scalar_bytes.max(max);
    budget.max_nodes = budget.max_nodes.max(max / 2);
    budget.max_events = budget.max_events.max(max);
    let mut o = serde_saphyr::options! { with_snippet: false };
    o.budget = Some(budget);
    o
}

/// A YAML error as pake shows it: `(line in text, message)`. The message has
/// no location suffix and no snippet, says in plain words what a duplicate key
/// or a budget breach means, and is redacted when its line may hold a secret.
pub fn yaml_error(e: &serde_saphyr::Error, text: &str) -> (Option<usize>, String) {
    let line = e.location().map(|l| l.line() as usize).filter(|l| *l > 0);
    let raw = e.to_string();
    let mut msg = match raw.rfind(" at line ") {
        Some(i) => raw[..i].to_string(),
        None => raw.clone(),
    };
    if msg.contains("duplicate mapping key") {
        msg = match line.and_then(|l| field_at(text, l)) {
            Some(k) => format!("duplicate key `{k}` (a key may appear once per mapping)"),
            None => "duplicate key (a key may appear once per mapping)".into(),
        };
    } else if msg.starts_with("budget breached") {
        msg = format!(
            "the document is too large or too complex to parse within pake's limits ({}); they grow with the file-size limit",
            msg.trim_start_matches("budget breached: ")
        );
    }
    let msg = message_for_line(&msg, text, line);
    let msg = match line.and_then(|l| field_at(text, l)) {
        Some(f) if !msg.contains(&format!("`{f}`")) => format!("field `{f}`: {msg}"),
        _ => msg,
    };
    (line, crate::input::escape_control(&msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_quoted_input_but_not_expected_names() {
        assert_eq!(
            redact_quoted("invalid type: integer `918273645546372819`, expected a string"),
            "invalid type: integer `<redacted>`, expected a string"
        );
        assert_eq!(
            redact_quoted("invalid value: string \"hunter2\", expected one of `a`, `b`"),
            "invalid value: string \"<redacted>\", expected one of `a`, `b`"
        );
        assert_eq!(
            redact_quoted("invalid type: integer 918273645546372819, expected a string"),
            "invalid type: integer <redacted>, expected a string"
        );
        assert!(!redact_quoted("unknown variant `s3cr3t`").contains("s3cr3t"));
    }

    #[test]
    fn sensitive_lines_by_key_and_ancestor() {
        let t = "app: x\nsecrets:\n  - name: db\n    keys:\n      password:\n        value: hunter2\nenv:\n  - name: DB_PASSWORD\n    value: 918\n  - name: LOG\n    value: info\nstringData:\n  a: |\n    line one\nport: 80\nflow: {name: DB_TOKEN, value: x}\n";
        let s = |l| sensitive_line(t, l);
        assert!(!s(1));
        assert!(s(5), "password: key");
        assert!(s(6), "value under password");
        assert!(s(9));
        assert!(s(11), "every value: line is redacted");
        assert!(s(13) && s(14), "stringData and its block scalar");
        assert!(!s(15));
        assert!(s(16), "flow mapping with a secret-looking key");
        assert_eq!(field_at(t, 15).as_deref(), Some("port"));
        assert_eq!(field_at(t, 8).as_deref(), Some("name"));
    }
}

/// One line of a container's log, fit to print: every exact occurrence of a
/// `known` secret value (the Secrets the pod references), the value of any
/// `key=value` / `key: value` / `"key": "value"` whose key looks secret, and
/// any token that looks like a credential by its value are replaced with
/// `<redacted>`; the line is cut at 500 characters.
pub fn log_line(line: &str, known: &[crate::secret::SecretValue]) -> String {
    use std::sync::LazyLock;
    static KV: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r#"(?i)("?)([A-Za-z_][A-Za-z0-9_.\-]*)("?\s*[=:]\s*"?)([^\s",}&]+)"#)
            .expect("valid regex")
    });
    let mut text: String = line
        .chars()
        .filter(|c| !c.is_control() || *c == '\t')
        .collect();
    for v in known {
        if let Ok(s) = std::str::from_utf8(v.expose())
            && s.len() >= 4
        {
            text = text.replace(s, REDACTED);
        }
    }
    let text = KV.replace_all(&text, |c: &regex::Captures| {
        if looks_secret_name(&c[2]) && &c[4] != REDACTED {
            format!("{}{}{}{REDACTED}", &c[1], &c[2], &c[3])
        } else {
            c[0].to_string()
        }
    });
    let words: Vec<String> = text
        .split(' ')
        .map(|w| {
            let bare = w.trim_matches(|c: char| "\"'`,;()[]{}".contains(c));
            if bare.len() >= 16 && crate::checks::secrets::secret_value_kind(bare).is_some() {
                w.replace(bare, REDACTED)
            } else {
                w.to_string()
            }
        })
        .collect();
    let joined = words.join(" ");
    if joined.chars().count() > 500 {
        format!("{}…", joined.chars().take(500).collect::<String>())
    } else {
        joined
    }
}

#[cfg(test)]
mod log_line_tests {
    use super::*;
    use crate::secret::SecretValue;

    #[test]
    fn secret_values_never_reach_a_log_line() {
        let known = [SecretValue::from_bytes(b"hunter2-very-long".to_vec())];
        let l = log_line("connecting with hunter2-very-long to db", &known);
        assert_eq!(l, format!("connecting with {REDACTED} to db"));
        let l = log_line(
            "DB_PASSWORD=abc123 user=app token: xyz \"api_key\": \"k1\"",
            &[],
        );
        assert!(
            !l.contains("abc123") && !l.contains("xyz") && !l.contains("k1"),
            "{l}"
        );
        assert!(l.contains("user=app"), "{l}");
        let l = log_line("key AKIAIOSFODNN7EXAMPLE used", &[]);
        assert!(!l.contains("AKIAIOSFODNN7EXAMPLE"), "{l}");
        // Ordinary error lines stay readable.
        let l = log_line(
            "2026/11/29 fault write-app: mkdir /app/data: read-only file system",
            &[],
        );
        assert_eq!(
            l,
            "2026/11/29 fault write-app: mkdir /app/data: read-only file system"
        );
        assert!(log_line(&"x".repeat(2000), &[]).chars().count() <= 501);
        assert!(!log_line("a\u{1b}[31mred", &[]).contains('\u{1b}'));
    }
}
