//! `.dockerignore` patterns, matched the way Docker matches them.
//!
//! No maintained crate implements Docker's semantics, and they differ from
//! `.gitignore` (the `ignore` crate): a pattern is anchored at the context
//! root (`foo` excludes `./foo`, not `a/foo`), `*` never crosses `/`, `**`
//! crosses any number of directories, a pattern that matches a directory
//! excludes everything below it, and the last matching line wins so a later
//! `!pattern` re-includes. This is a port of moby's `patternmatcher`
//! (`MatchesOrParentMatches`) and of the file reader in buildkit's
//! `dockerignore` package, translating each pattern to a regular expression
//! exactly as moby does. Pure: no I/O except [`IgnoreFile::for_build`].

use std::path::{Path, PathBuf};

use regex::Regex;

/// One line of a `.dockerignore` file.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The cleaned pattern, without the leading `!`.
    pub text: String,
    /// `!pattern`: re-include what earlier lines excluded.
    pub exception: bool,
    /// 1-based line in the file.
    pub line: usize,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// No wildcard: the path equals the pattern.
    Exact,
    /// `prefix**`: the path starts with the prefix.
    Prefix,
    /// `**suffix` with no other wildcard: the path ends with the suffix.
    Suffix,
    Regex(Regex),
}

/// A parsed `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct Patterns {
    pub patterns: Vec<Pattern>,
}

/// An invalid pattern (Docker refuses these too).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: invalid pattern {pattern:?}: {reason}")]
pub struct PatternError {
    pub line: usize,
    pub pattern: String,
    pub reason: String,
}

impl Patterns {
    /// Parse the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let mut patterns = Vec::new();
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            // A comment is a line whose first character is `#` (before trimming, as Docker does).
            if raw.starts_with('#') {
                continue;
            }
            let mut p = raw.trim();
            if p.is_empty() {
                continue;
            }
            let exception = p.starts_with('!');
            if exception {
                p = p[1..].trim();
                if p.is_empty() {
                    return Err(PatternError {
                        line,
                        pattern: raw.to_string(),
                        reason: "`!` without a pattern".into(),
                    });
                }
            }
            let mut cleaned = clean(p);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let kind = compile(&cleaned).map_err(|reason| PatternError {
                line,
                pattern: raw.to_string(),
                reason,
            })?;
            patterns.push(Pattern {
                text: cleaned,
                exception,
                line,
                kind,
            });
        }
        Ok(Patterns { patterns })
    }

    /// Whether any line is an exception (`!pattern`). When there is none, an
    /// excluded directory can be skipped without looking inside it.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }

    /// Whether `path` (relative to the context root, `/`-separated) is excluded.
    pub fn excludes(&self, path: &str) -> bool {
        self.matching_line(path).is_some()
    }

    /// The line of the pattern that excludes `path`, if it is excluded.
    pub fn matching_line(&self, path: &str) -> Option<usize> {
        let path = clean(path);
        let parent = match path.rfind('/') {
            Some(i) => &path[..i],
            None => ".",
        };
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched: Option<usize> = None;
        for p in &self.patterns {
            // An exception only matters once something matched; an exclusion only until then.
            if p.exception != matched.is_some() {
                continue;
            }
            let mut m = p.matches(&path);
            if !m && parent != "." {
                for i in 0..parent_dirs.len() {
                    if p.matches(&parent_dirs[..=i].join("/")) {
                        m = true;
                        break;
                    }
                }
            }
            if m {
                matched = if p.exception { None } else { Some(p.line) };
            }
        }
        matched
    }
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix => path.starts_with(&self.text[..self.text.len() - 2]),
            Kind::Suffix => {
                let suffix = &self.text[2..];
                path.ends_with(suffix) || (suffix.starts_with('/') && path == &suffix[1..])
            }
            Kind::Regex(r) => r.is_match(path),
        }
    }
}

/// moby's pattern compiler: the optimised kinds where possible, else a regex.
fn compile(pattern: &str) -> Result<Kind, String> {
    #[derive(PartialEq)]
    enum T {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let mut t = T::Exact;
    let mut re = String::from("^");
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        if ch == '*' {
            if chars.get(i) == Some(&'*') {
                i += 1;
                // `**/` is `**`: eat the slash.
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    // `**` at the end: everything.
                    if t == T::Exact {
                        t = T::Prefix;
                    } else {
                        re.push_str(".*");
                        t = T::Regex;
                    }
                } else {
                    // Any number of directories, even none.
                    re.push_str("(.*/)?");
                    t = T::Regex;
                }
                if first {
                    t = T::Suffix;
                }
            } else {
                re.push_str("[^/]*");
                t = T::Regex;
            }
        } else if ch == '?' {
            re.push_str("[^/]");
            t = T::Regex;
        } else if ".+()|{}$".contains(ch) {
            re.push('\\');
            re.push(ch);
        } else if ch == '\\' {
            if i < chars.len() {
                re.push('\\');
                re.push(chars[i]);
                i += 1;
                t = T::Regex;
            } else {
                re.push_str("\\\\");
            }
        } else if ch == '[' || ch == ']' {
            re.push(ch);
            t = T::Regex;
        } else {
            re.push(ch);
        }
        first = false;
    }
    match t {
        T::Exact => Ok(Kind::Exact),
        T::Prefix => Ok(Kind::Prefix),
        T::Suffix => Ok(Kind::Suffix),
        _ => {
            re.push('$');
            Regex::new(&re).map(Kind::Regex).map_err(|e| e.to_string())
        }
    }
}

/// Go's `filepath.Clean` for `/`-separated paths: collapse `//`, drop `.`,
/// resolve `..` lexically, no trailing slash; the empty path is `.`.
pub fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            p => out.push(p),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// The ignore file that applies to a build, and its parsed patterns.
#[derive(Debug, Clone)]
pub struct IgnoreFile {
    /// `None` when the build has no ignore file.
    pub path: Option<PathBuf>,
    pub patterns: Patterns,
}

impl IgnoreFile {
    /// BuildKit's rule, which the CLI also follows: `<Dockerfile>.dockerignore`
    /// next to the Dockerfile wins, else `<context>/.dockerignore`.
    pub fn for_build(dockerfile: &Path, context: &Path) -> Result<Self, IgnoreError> {
        let mut candidates = Vec::new();
        if let Some(name) = dockerfile.file_name() {
            let mut n = name.to_os_string();
            n.push(".dockerignore");
            candidates.push(dockerfile.with_file_name(n));
        }
        candidates.push(context.join(".dockerignore"));
        for c in candidates {
            match std::fs::metadata(&c) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(IgnoreError::Read { path: c, source: e }),
                Ok(_) => {}
            }
            // Bounded, regular files only (a FIFO named .dockerignore must not hang a build).
            match crate::input::read_text(&c, ".dockerignore")
                .map_err(|e| std::io::Error::other(e.message))
            {
                Ok(text) => {
                    let patterns = Patterns::parse(&text).map_err(|e| IgnoreError::Pattern {
                        path: c.clone(),
                        source: e,
                    })?;
                    return Ok(IgnoreFile {
                        path: Some(c),
                        patterns,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(IgnoreError::Read { path: c, source: e }),
            }
        }
        Ok(IgnoreFile {
            path: None,
            patterns: Patterns::default(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Pattern { path: PathBuf, source: PatternError },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Patterns {
        Patterns::parse(text).unwrap()
    }

    #[test]
    fn anchored_at_root_unlike_gitignore() {
        let ps = p("foo\n");
        assert!(ps.excludes("foo"));
        assert!(
            ps.excludes("foo/bar/baz"),
            "a matched directory excludes its contents"
        );
        assert!(
            !ps.excludes("a/foo"),
            "dockerignore patterns are anchored at the root"
        );
        assert!(p("**/foo").excludes("a/b/foo"));
        assert!(p("**/foo").excludes("foo"));
    }

    #[test]
    fn star_does_not_cross_slash() {
        let ps = p("*.pem\n");
        assert!(ps.excludes("tls.pem"));
        assert!(!ps.excludes("certs/tls.pem"));
        assert!(p("**/*.pem").excludes("certs/deep/tls.pem"));
        assert!(p("*/x").excludes("a/x"));
        assert!(!p("*/x").excludes("a/b/x"));
    }

    #[test]
    fn env_star_and_exceptions_last_match_wins() {
        let ps = p("# secrets\n.env*\n!.env.example\n");
        assert!(ps.excludes(".env"));
        assert!(ps.excludes(".env.production"));
        assert!(!ps.excludes(".env.example"));
        assert!(ps.has_exceptions());
        let ps = p("!keep\n*\n");
        assert!(
            ps.excludes("keep"),
            "an earlier exception is overridden by a later exclusion"
        );
    }

    #[test]
    fn cleaning_and_leading_slash() {
        let ps = p("/build/\n./dist\n  target  \n");
        assert!(ps.excludes("build/x"));
        assert!(ps.excludes("dist"));
        assert!(ps.excludes("target/debug/pake"));
        assert_eq!(clean("a//b/./c/../d/"), "a/b/d");
        assert_eq!(clean(""), ".");
        assert_eq!(clean("/.."), "/");
    }

    #[test]
    fn double_star_forms() {
        assert!(p("secrets/**").excludes("secrets/a/b"));
        assert!(p("a/**/b").excludes("a/b"));
        assert!(p("a/**/b").excludes("a/x/y/b"));
        assert!(!p("a/**/b").excludes("c/a/b"));
        assert!(p("**").excludes("anything/at/all"));
        assert!(p("a**").excludes("abc"));
    }

    #[test]
    fn character_classes_and_escapes() {
        assert!(p("file[0-9]").excludes("file7"));
        assert!(!p("file[0-9]").excludes("filex"));
        assert!(p("file[^0-9]").excludes("filex"));
        assert!(p("a\\*b").excludes("a*b"));
        assert!(!p("a\\*b").excludes("axb"));
        assert!(p("a.b").excludes("a.b"));
        assert!(!p("a.b").excludes("axb"), "dots are literal");
        assert!(p("?.txt").excludes("a.txt"));
    }

    #[test]
    fn comment_only_at_line_start_and_bare_bang_refused() {
        let ps = p("#x\n #y\n");
        // " #y" is not a comment in Docker: it is the pattern "#y".
        assert!(ps.excludes("#y"));
        assert!(!ps.excludes("x"));
        let e = Patterns::parse("ok\n!\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(Patterns::parse("[").is_err());
    }

    #[test]
    fn matching_line_reports_the_deciding_pattern() {
        let ps = p("a\nb/\n");
        assert_eq!(ps.matching_line("b/c"), Some(2));
        assert_eq!(ps.matching_line("c"), None);
    }

    #[test]
    fn ignore_file_next_to_dockerfile_wins() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(".dockerignore"), "a\n").unwrap();
        std::fs::write(d.path().join("Dockerfile.production.dockerignore"), "b\n").unwrap();
        let f = IgnoreFile::for_build(&d.path().join("Dockerfile.production"), d.path()).unwrap();
        assert!(f.patterns.excludes("b"));
        assert!(!f.patterns.excludes("a"));
        let f = IgnoreFile::for_build(&d.path().join("Dockerfile"), d.path()).unwrap();
        assert!(f.patterns.excludes("a"));
        let none =
            IgnoreFile::for_build(&d.path().join("x/Dockerfile"), &d.path().join("x")).unwrap();
        assert!(none.path.is_none());
    }
}
