//! GitHub Actions: a markdown step summary (`$GITHUB_STEP_SUMMARY`) for every
//! command that changes or verifies something, and `::error`/`::warning`
//! workflow commands (annotations) for findings and failures when
//! `GITHUB_ACTIONS=true`. Annotations go to stderr, which the runner reads
//! like stdout, so `-o json > file` stays a clean document.

use std::io::Write;

/// One row of a summary table.
pub struct Row {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl Row {
    pub fn new(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Self {
        Row {
            name: name.into(),
            ok,
            detail: detail.into(),
        }
    }
}

/// Annotation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Notice,
}

/// Where an annotation points (file relative to the workspace, line).
#[derive(Debug, Clone, Default)]
pub struct Location {
    pub file: Option<String>,
    pub line: Option<usize>,
}

pub fn in_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// `%`, CR and LF are escaped in messages; properties also escape `:` and `,`.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// The workflow command line for one annotation (pure).
pub fn annotation(level: Level, title: &str, at: &Location, message: &str) -> String {
    let cmd = match level {
        Level::Error => "error",
        Level::Warning => "warning",
        Level::Notice => "notice",
    };
    let mut props = Vec::new();
    if let Some(f) = &at.file {
        props.push(format!("file={}", escape_property(f)));
        if let Some(l) = at.line {
            props.push(format!("line={l}"));
        }
    }
    if !title.is_empty() {
        props.push(format!("title={}", escape_property(title)));
    }
    let props = if props.is_empty() {
        String::new()
    } else {
        format!(" {}", props.join(","))
    };
    format!("::{cmd}{props}::{}", escape_data(message))
}

/// Emit an annotation when running in GitHub Actions.
pub fn annotate(level: Level, title: &str, at: &Location, message: &str) {
    if in_actions() {
        crate::output::err_line(annotation(level, title, at, message));
    }
}

/// The markdown block for a step summary (pure).
pub fn summary_markdown(title: &str, ok: bool, rows: &[Row], footer: &[String]) -> String {
    let mut s = format!("### {title} {}\n\n", if ok { "✅" } else { "❌" });
    if !rows.is_empty() {
        s.push_str("| | check | detail |\n|---|---|---|\n");
        for r in rows {
            s.push_str(&format!(
                "| {} | {} | {} |\n",
                if r.ok { "✅" } else { "❌" },
                cell(&r.name),
                cell(&r.detail)
            ));
        }
    }
    for f in footer {
        s.push_str(&format!("\n{f}\n"));
    }
    s.push('\n');
    s
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', "<br>")
}

/// Append to `$GITHUB_STEP_SUMMARY` when set (best effort, like the runner's own tools).
pub fn append_summary(markdown: &str) {
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY")
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
    {
        let _ = f.write_all(markdown.as_bytes());
    }
}

/// Summary + annotations for a command's outcome in one call: the error, or
/// else each failed row.
pub fn finish(title: &str, ok: bool, rows: &[Row], error: Option<(&str, Option<&str>)>) {
    summarize(title, ok, rows, error, true)
}

/// Like `finish`, without annotating rows (the caller annotated each finding).
pub fn summarize(
    title: &str,
    ok: bool,
    rows: &[Row],
    error: Option<(&str, Option<&str>)>,
    annotate_rows: bool,
) {
    let mut footer = Vec::new();
    if let Some((message, fix)) = error {
        footer.push(format!("**Error:** {}", cell(message)));
        if let Some(f) = fix {
            footer.push(format!("**Fix:** {}", cell(f)));
        }
        let text = match fix {
            Some(f) => format!("{message}\nfix: {f}"),
            None => message.to_string(),
        };
        annotate(Level::Error, title, &Location::default(), &text);
    }
    for r in rows.iter().filter(|r| !r.ok) {
        if error.is_none() && annotate_rows {
            annotate(
                Level::Error,
                title,
                &Location::default(),
                &format!("{}: {}", r.name, r.detail),
            );
        }
    }
    append_summary(&summary_markdown(title, ok, rows, &footer));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_escape_like_the_runner_expects() {
        let at = Location {
            file: Some("k8s/deploy,ment.yaml".into()),
            line: Some(12),
        };
        assert_eq!(
            annotation(Level::Error, "pake: audit", &at, "100% bad\nnext"),
            "::error file=k8s/deploy%2Cment.yaml,line=12,title=pake%3A audit::100%25 bad%0Anext"
        );
        assert_eq!(
            annotation(Level::Warning, "", &Location::default(), "w"),
            "::warning::w"
        );
    }

    #[test]
    fn summary_table_escapes_cells() {
        let md = summary_markdown(
            "pake verify: backend → dev",
            false,
            &[Row::new("a|b", false, "x\ny")],
            &["**Error:** e".into()],
        );
        assert!(
            md.starts_with("### pake verify: backend → dev ❌\n"),
            "{md}"
        );
        assert!(md.contains("| ❌ | a\\|b | x<br>y |"), "{md}");
        assert!(md.contains("\n**Error:** e\n"), "{md}");
    }
}
