//! Reading the user's files safely: regular files only, bounded in size, text only.
//!
//! Every file pake reads on the user's behalf (pake.yaml, templates, workflow
//! files, manifests and Dockerfiles to audit, `fromFile` secrets) goes through
//! here, so a FIFO never blocks, `/dev/zero` never fills memory and a 10 GB file
//! is refused with a message that names the limit and how to raise it.
//!
//! The limit is `PAKE_MAX_FILE_SIZE` (e.g. `256MiB`; default 64 MiB), or
//! `pake audit --max-file-size`. Secret files have their own, smaller limit
//! ([`MAX_SECRET_FILE_SIZE`]).

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Default largest file pake reads: 64 MiB.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 64 << 20;
/// The environment variable that raises (or lowers) the limit.
pub const MAX_FILE_SIZE_ENV: &str = "PAKE_MAX_FILE_SIZE";
/// Largest secret value read from a file (`fromFile`) or a command (`fromCommand`): 1 MiB,
/// the most a Kubernetes Secret holds.
pub const MAX_SECRET_FILE_SIZE: u64 = 1 << 20;

/// 0: not set by a flag; use the environment or the default.
static MAX_FILE_SIZE: AtomicU64 = AtomicU64::new(0);

/// Set the limit from a command-line flag (wins over `PAKE_MAX_FILE_SIZE`).
pub fn set_max_file_size(bytes: u64) {
    MAX_FILE_SIZE.store(bytes, Ordering::Relaxed);
}

/// The largest file pake reads: the flag, else `PAKE_MAX_FILE_SIZE`, else 64 MiB.
/// An unparsable `PAKE_MAX_FILE_SIZE` is an error at start-up ([`check_env`]).
pub fn max_file_size() -> u64 {
    match MAX_FILE_SIZE.load(Ordering::Relaxed) {
        0 => std::env::var(MAX_FILE_SIZE_ENV)
            .ok()
            .and_then(|s| parse_size(&s).ok())
            .unwrap_or(DEFAULT_MAX_FILE_SIZE),
        n => n,
    }
}

/// Refuse an unparsable `PAKE_MAX_FILE_SIZE` (exit 2) instead of silently using the default.
pub fn check_env() -> Result<()> {
    match std::env::var(MAX_FILE_SIZE_ENV) {
        Ok(s) => parse_size(&s).map(drop).map_err(|e| {
            Error::usage(format!("{MAX_FILE_SIZE_ENV}={s:?}: {e}"))
                .fix("use a size such as 64MiB, 500M, 1GiB or a number of bytes")
        }),
        Err(_) => Ok(()),
    }
}

/// A size: bytes, or a number with K/M/G (powers of 1000) or Ki/Mi/Gi (1024), `B` optional.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| "not a size (expected e.g. 64MiB)".to_string())?;
    let unit = unit.trim();
    let mult: u64 = match unit.strip_suffix('B').unwrap_or(unit) {
        "" => 1,
        "K" | "k" => 1000,
        "M" => 1000 * 1000,
        "G" => 1000 * 1000 * 1000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return Err(format!("unknown unit {unit:?} (use K, M, G, Ki, Mi or Gi)")),
    };
    let v = n.checked_mul(mult).ok_or_else(|| "too large".to_string())?;
    if v == 0 {
        return Err("must be greater than 0".into());
    }
    Ok(v)
}

/// `67108864` -> `64 MiB`.
pub fn human_size(n: u64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{} {unit}", n >> shift);
        }
    }
    if n >= 1 << 20 {
        return format!("{:.1} MiB", n as f64 / (1 << 20) as f64);
    }
    format!("{n} bytes")
}

/// What a path is, when it is not a regular file (for messages).
pub fn file_type_name(m: &std::fs::Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// Refuse anything but a regular file (after following symlinks).
pub fn require_regular(path: &Path, what: &str, m: &std::fs::Metadata) -> Result<()> {
    if m.is_file() {
        return Ok(());
    }
    Err(Error::usage(format!(
        "{what} {} is {}: pake reads only regular files",
        show_path(path),
        file_type_name(m)
    ))
    .fix("pass a regular file (save a stream or a pipe's output to a file first)"))
}

/// Read a regular file of at most `limit` bytes. `what` names it in messages
/// ("manifest", "pake.yaml", "secret file"); `limit_hint` says how to raise the limit.
pub fn read_bytes_limited(
    path: &Path,
    what: &str,
    limit: u64,
    limit_hint: &str,
) -> Result<Vec<u8>> {
    let cannot = |e: std::io::Error| {
        Error::usage(format!("cannot read {what} {}: {e}", show_path(path)))
            .fix("check the path and its permissions")
    };
    // stat before open: opening a FIFO for reading would block until a writer comes.
    let meta = std::fs::metadata(path).map_err(cannot)?;
    require_regular(path, what, &meta)?;
    let too_big = |size: String| {
        Error::usage(format!(
            "{what} {} is {size}, over the {} limit for one file",
            show_path(path),
            human_size(limit)
        ))
        .fix(limit_hint.to_string())
    };
    if meta.len() > limit {
        return Err(too_big(format!("{} bytes", meta.len())));
    }
    let file = open_nonblocking(path).map_err(cannot)?;
    // The path may have been swapped between stat and open: check the opened file.
    let meta = file.metadata().map_err(cannot)?;
    require_regular(path, what, &meta)?;
    let mut buf = Vec::with_capacity(meta.len().min(limit) as usize);
    file.take(limit + 1).read_to_end(&mut buf).map_err(cannot)?;
    if buf.len() as u64 > limit {
        return Err(too_big(format!("more than {} bytes", limit)));
    }
    Ok(buf)
}

fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    o.open(path)
}

/// The hint for the general limit.
pub fn general_limit_hint() -> String {
    format!(
        "raise the limit with {MAX_FILE_SIZE_ENV}=SIZE (e.g. {MAX_FILE_SIZE_ENV}=256MiB; `pake audit` also takes --max-file-size SIZE)"
    )
}

/// Read a text file (UTF-8, optional byte-order mark removed) within [`max_file_size`].
pub fn read_text(path: &Path, what: &str) -> Result<String> {
    let bytes = read_bytes_limited(path, what, max_file_size(), &general_limit_hint())?;
    into_text(path, what, bytes)
}

/// Bytes -> text: refuse binary content (a NUL byte or invalid UTF-8) with a
/// message that says so, and drop a UTF-8 byte-order mark.
pub fn into_text(path: &Path, what: &str, bytes: Vec<u8>) -> Result<String> {
    let binary = |at: usize| {
        Error::usage(format!(
            "{what} {} is not a text file (binary content at byte {at})",
            show_path(path)
        ))
        .fix("pass UTF-8 text: YAML manifests, pake.yaml, templates or Dockerfiles")
    };
    if let Some(at) = bytes.iter().position(|b| *b == 0) {
        return Err(binary(at));
    }
    let mut s = String::from_utf8(bytes).map_err(|e| binary(e.utf8_error().valid_up_to()))?;
    if s.starts_with('\u{feff}') {
        s.drain(..'\u{feff}'.len_utf8());
    }
    Ok(s)
}

/// A path for messages and text reports: control characters (a newline in a
/// file name could forge a report line) are escaped.
pub fn show_path(p: &Path) -> String {
    escape_control(&p.display().to_string())
}

/// Escape control characters (`\n`, `\u{1b}`, ...) so a name cannot forge output lines.
pub fn escape_control(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("500M"), Ok(500_000_000));
        assert_eq!(parse_size("1Gi"), Ok(1 << 30));
        assert_eq!(parse_size("123"), Ok(123));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
        assert_eq!(human_size(64 << 20), "64 MiB");
        assert_eq!(human_size(1000), "1000 bytes");
    }

    #[test]
    fn refuses_fifo_device_binary_and_big() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("pipe.yaml");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_text(&fifo, "manifest").unwrap_err();
        assert!(e.message.contains("FIFO"), "{}", e.message);
        let e = read_text(Path::new("/dev/zero"), "manifest").unwrap_err();
        assert!(e.message.contains("character device"), "{}", e.message);
        let bin = d.path().join("b.yaml");
        std::fs::write(&bin, b"a: 1\n\0\x01").unwrap();
        let e = read_text(&bin, "manifest").unwrap_err();
        assert!(e.message.contains("not a text file"), "{}", e.message);
        let big = d.path().join("big.yaml");
        std::fs::write(&big, vec![b'a'; 2000]).unwrap();
        let e = read_bytes_limited(&big, "manifest", 1000, "raise it").unwrap_err();
        assert!(
            e.message.contains("over the 1000 bytes limit"),
            "{}",
            e.message
        );
        assert_eq!(e.fix.as_deref(), Some("raise it"));
    }

    #[test]
    fn bom_removed_and_names_escaped() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a");
        std::fs::write(&f, "\u{feff}x").unwrap();
        assert_eq!(read_text(&f, "file").unwrap(), "x");
        assert_eq!(escape_control("a\n✓ b"), "a\\n✓ b");
    }
}
