//! Terminal output: human text with progress on a TTY, plain lines otherwise,
//! and one JSON document with `-o json`.
//!
//! Nothing here decides *what* to print; commands build reports and hand them
//! over. Progress bars and prompts appear only when both stdin and stdout are
//! terminals and `--no-progress` was not given, so CI logs stay plain.
//!
//! Every machine document (`-o json` / `-o yaml`) starts with
//! `apiVersion: pake.dev/v1` and a `kind`, so a consumer can tell what it reads.
//! Colour follows `--color auto|always|never` and `NO_COLOR`; `auto` colours
//! only a terminal, so no ANSI escape reaches a pipe or a file.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Set once a write to stdout failed (the reader went away: `pake ... | head`).
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Write to stdout. SIGPIPE is ignored (see main.rs), so a closed stdout is
/// an EPIPE error here: remembered, and later output is dropped quietly — the
/// run goes on to finish (or roll back) its work instead of dying half way.
pub fn out(s: impl AsRef<str>) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut o = std::io::stdout().lock();
    if o.write_all(s.as_ref().as_bytes())
        .and_then(|_| o.flush())
        .is_err()
    {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// A line to stdout (see [`out`]).
pub fn out_line(s: impl AsRef<str>) {
    out(format!("{}\n", s.as_ref()));
}

/// A line to stderr; a closed stderr is ignored (never a panic).
pub fn err_line(s: impl AsRef<str>) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{}", s.as_ref());
}

/// True once stdout was found closed.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// `-o` values. Not every command supports every format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Text,
    Json,
    Yaml,
    Sarif,
    /// Graphviz dot (`pake netpol`).
    Dot,
    /// Markdown with a mermaid diagram (`pake netpol`).
    Md,
    /// Comma-separated values (`pake netpol`).
    Csv,
}

/// The `apiVersion` of every document pake prints or writes.
pub const API_VERSION: &str = "pake.dev/v1";

/// `--color`: like ls/git/cargo. `NO_COLOR` (any non-empty value) turns `auto` off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour a stream that is (or is not) a terminal.
    pub fn enabled(self, tty: bool, no_color: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => tty && !no_color,
        }
    }

    /// Apply the choice process-wide (console's styles, used by indicatif too).
    pub fn apply(self) -> bool {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let out = self.enabled(std::io::stdout().is_terminal(), no_color);
        let err = self.enabled(std::io::stderr().is_terminal(), no_color);
        console::set_colors_enabled(out);
        console::set_colors_enabled_stderr(err);
        out
    }
}

/// Add the `apiVersion`/`kind` header in front of a serialized report.
pub fn with_header(kind: &str, v: &impl serde::Serialize) -> serde_json::Value {
    let body = serde_json::to_value(v).expect("report serializes");
    let mut doc = serde_json::Map::new();
    doc.insert("apiVersion".into(), API_VERSION.into());
    doc.insert("kind".into(), kind.into());
    match body {
        serde_json::Value::Object(m) => {
            debug_assert!(
                !m.contains_key("apiVersion") && !m.contains_key("kind"),
                "a {kind} field collides with the document header"
            );
            for (k, v) in m {
                if k != "apiVersion" && k != "kind" {
                    doc.insert(k, v);
                }
            }
        }
        other => {
            doc.insert("items".into(), other);
        }
    }
    serde_json::Value::Object(doc)
}

/// Print a document in a machine format (`json`, else `yaml`).
pub fn print_machine(format: Format, v: &serde_json::Value) {
    if format == Format::Yaml {
        out(to_yaml(v));
    } else {
        out_line(serde_json::to_string_pretty(v).expect("report serializes"));
    }
}

/// YAML text of a JSON value (a document start line included).
pub fn to_yaml(v: &serde_json::Value) -> String {
    let body = serde_saphyr::to_string(v).expect("report serializes as YAML");
    format!("---\n{body}")
}

#[derive(Debug, Clone)]
pub struct Ui {
    pub format: Format,
    /// stdout is a terminal and progress was not disabled.
    pub progress: bool,
    /// stdin and stdout are terminals: prompts are allowed.
    pub interactive: bool,
    pub color: bool,
    /// Put before every human line (`[eu] ` for one cluster of a fleet).
    pub prefix: String,
}

impl Ui {
    pub fn new(format: Format, no_progress: bool, color: ColorChoice) -> Self {
        let tty = std::io::stdout().is_terminal();
        let interactive = tty && std::io::stdin().is_terminal();
        Ui {
            format,
            progress: tty && !no_progress && format == Format::Text,
            interactive,
            color: color.apply(),
            prefix: String::new(),
        }
    }

    /// A UI that never prints progress or prompts (tests, library use).
    pub fn plain(format: Format) -> Self {
        Ui {
            format,
            progress: false,
            interactive: false,
            color: false,
            prefix: String::new(),
        }
    }

    pub fn is_text(&self) -> bool {
        self.format == Format::Text
    }

    /// A line of human output; suppressed in machine formats.
    pub fn line(&self, s: impl AsRef<str>) {
        if self.is_text() {
            out_line(format!("{}{}", self.prefix, s.as_ref()));
        }
    }

    /// The UI of one cluster of a fleet: every line starts with `[name] `,
    /// no spinners (several clusters run at once), no prompts.
    pub fn for_cluster(&self, name: &str) -> Ui {
        Ui {
            progress: false,
            interactive: false,
            prefix: format!("{}[{name}] ", self.prefix),
            ..self.clone()
        }
    }

    /// A pass/fail mark.
    pub fn mark(&self, ok: bool) -> String {
        let m = if ok { "✓" } else { "✗" };
        if self.color {
            let style = if ok {
                console::Style::new().green()
            } else {
                console::Style::new().red()
            };
            style.apply_to(m).to_string()
        } else {
            m.to_string()
        }
    }

    /// Start a step: a spinner on a TTY, a plain line otherwise.
    pub fn step(&self, name: &str) -> StepProgress {
        if self.progress {
            let pb = ProgressBar::new_spinner();
            pb.set_style(ProgressStyle::with_template("{spinner} {msg} {elapsed:.dim}").unwrap());
            pb.set_message(name.to_string());
            pb.enable_steady_tick(Duration::from_millis(120));
            StepProgress {
                pb: Some(pb),
                name: name.to_string(),
                ui: self.clone(),
            }
        } else {
            if self.is_text() {
                err_line(format!("{}→ {name}", self.prefix));
            }
            StepProgress {
                pb: None,
                name: name.to_string(),
                ui: self.clone(),
            }
        }
    }

    /// Print a JSON document to stdout (for `-o json`).
    pub fn json(&self, v: &impl serde::Serialize) {
        out_line(serde_json::to_string_pretty(v).expect("report serializes"));
    }

    /// Print a report in the machine format (`-o json` or `-o yaml`) with
    /// its `apiVersion: pake.dev/v1` and `kind` header.
    pub fn document(&self, kind: &str, v: &impl serde::Serialize) {
        print_machine(self.format, &with_header(kind, v));
    }

    /// Print a document as it is (no header): SARIF, a Kubernetes List.
    pub fn raw(&self, v: &impl serde::Serialize) {
        print_machine(
            self.format,
            &serde_json::to_value(v).expect("report serializes"),
        );
    }
}

/// Byte progress (build context, push): an indicatif bar on a terminal,
/// a plain line at each quarter otherwise (CI logs). Cheap to clone, Send.
#[derive(Clone)]
pub struct ByteProgress {
    pb: Option<ProgressBar>,
    name: String,
    total: u64,
    quarter: std::sync::Arc<std::sync::atomic::AtomicU8>,
    text: bool,
}

impl Ui {
    pub fn bytes(&self, name: &str, total: u64) -> ByteProgress {
        let pb = self.progress.then(|| {
            let pb = ProgressBar::new(total);
            pb.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                )
                .unwrap()
                .progress_chars("=> "),
            );
            pb.set_message(name.to_string());
            pb
        });
        ByteProgress {
            pb,
            name: name.to_string(),
            total,
            quarter: Default::default(),
            text: self.is_text(),
        }
    }
}

impl ByteProgress {
    /// `done` bytes of `total` so far.
    pub fn set(&self, done: u64) {
        if let Some(pb) = &self.pb {
            pb.set_position(done);
            return;
        }
        if !self.text || self.total == 0 {
            return;
        }
        let q = ((done.min(self.total) * 4) / self.total) as u8;
        let prev = self
            .quarter
            .fetch_max(q, std::sync::atomic::Ordering::Relaxed);
        if q > prev && q > 0 {
            eprintln!(
                "  {}: {}% ({} of {})",
                self.name,
                q * 25,
                human_bytes(done),
                human_bytes(self.total)
            );
        }
    }
    pub fn finish(&self) {
        if let Some(pb) = &self.pb {
            pb.finish_and_clear();
        }
    }
}

/// `1.5 GiB`, `12.0 MiB`, `512 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// Progress of one step. Finish it with `done` or `fail`.
pub struct StepProgress {
    pb: Option<ProgressBar>,
    name: String,
    ui: Ui,
}

impl StepProgress {
    pub fn message(&self, msg: &str) {
        if let Some(pb) = &self.pb {
            pb.set_message(format!("{}: {msg}", self.name));
        } else if self.ui.is_text() {
            err_line(format!("{}  {msg}", self.ui.prefix));
        }
    }
    pub fn done(self, summary: &str) {
        self.finish(true, summary)
    }
    pub fn fail(self, summary: &str) {
        self.finish(false, summary)
    }
    fn finish(self, ok: bool, summary: &str) {
        let line = if summary.is_empty() {
            format!("{} {}", self.ui.mark(ok), self.name)
        } else {
            format!("{} {}: {summary}", self.ui.mark(ok), self.name)
        };
        if let Some(pb) = &self.pb {
            pb.finish_and_clear();
        }
        if self.ui.is_text() {
            out_line(format!("{}{line}", self.ui.prefix));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_comes_first() {
        let v = with_header("DeployReport", &serde_json::json!({"ok": true}));
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["apiVersion", "kind", "ok"]);
        assert_eq!(v["kind"], "DeployReport");
        assert_eq!(v["apiVersion"], API_VERSION);
        let list = with_header("RevisionList", &serde_json::json!([1, 2]));
        assert_eq!(list["items"], serde_json::json!([1, 2]));
    }

    #[test]
    fn yaml_output_parses_back() {
        let v = with_header("Thing", &serde_json::json!({"a": [1, "b: c"], "n": null}));
        let back: serde_json::Value = serde_saphyr::from_str(&to_yaml(&v)).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn color_choice() {
        use ColorChoice::*;
        assert!(!Auto.enabled(false, false), "never colour a pipe or file");
        assert!(Auto.enabled(true, false));
        assert!(!Auto.enabled(true, true), "NO_COLOR");
        assert!(Always.enabled(false, true));
        assert!(!Never.enabled(true, false));
    }
}
