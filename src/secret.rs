//! A secret value that cannot be printed.
//!
//! `SecretValue` is the only type pake uses for secret bytes. Its `Debug` and
//! `Display` print a redaction, it does not implement `Serialize`, and the bytes
//! are zeroed on drop. The bytes leave the process only inside an API request
//! body (see `steps::secrets`). Values come from the OS CSPRNG or from an
//! external source: an environment variable, a file, or a command's output.
//! There is deliberately no constructor from a command-line literal.

use std::fmt;

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

pub const REDACTED: &str = "<redacted>";

/// Secret bytes. Never printed, never serialized, zeroed on drop (`zeroize`,
/// whose writes the optimizer cannot remove; the whole capacity is cleared).
#[derive(Clone)]
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    /// `n` random bytes from the OS CSPRNG, base64 encoded (what the guide's
    /// `openssl rand -base64 N` produces).
    pub fn random_base64(n: usize) -> Result<Self> {
        let mut raw = vec![0u8; n];
        getrandom::fill(&mut raw)
            .map_err(|e| Error::failed(format!("OS random number generator failed: {e}")))?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(&raw);
        raw.zeroize();
        Ok(SecretValue(Zeroizing::new(encoded.into_bytes())))
    }

    /// The value of an environment variable. The variable's name is safe to show; its value is not.
    pub fn from_env(var: &str) -> Result<Self> {
        match std::env::var_os(var) {
            Some(v) if !v.is_empty() => Ok(SecretValue(Zeroizing::new(v.into_encoded_bytes()))),
            Some(_) => Err(
                Error::usage(format!("environment variable {var} is empty")).fix(format!(
                    "export {var} from your secret store (e.g. a CI secret) before running pake"
                )),
            ),
            None => Err(
                Error::usage(format!("environment variable {var} is not set")).fix(format!(
                    "export {var} from your secret store (e.g. a CI secret) before running pake"
                )),
            ),
        }
    }

    /// The contents of a file (a trailing newline is kept, as kubectl's --from-file does).
    /// Only a regular file of at most [`MAX_SECRET_SIZE`] bytes is read.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let what = "secret file";
        if let Err(e) = std::fs::metadata(path) {
            return Err(Error::usage(format!(
                "cannot read {what} {}: {e}",
                crate::input::show_path(path)
            ))
            .fix("check the path in pake.yaml or on the command line, and its permissions"));
        }
        crate::input::read_bytes_limited(
            path,
            what,
            MAX_SECRET_SIZE,
            "a Kubernetes Secret holds at most 1 MiB: store a smaller value (or a reference to the data) in it",
        )
        .map(SecretValue::from_bytes)
    }

    /// The standard output of a command run through `sh -c` (e.g. `vault kv get -field=password ...`),
    /// with one trailing newline removed. The command's stderr is passed through; its stdout never is.
    /// It is stopped (with everything it started) after `timeout`, or when it prints
    /// more than [`MAX_SECRET_SIZE`] bytes.
    pub fn from_command(cmd: &str) -> Result<Self> {
        Self::from_command_with_timeout(cmd, command_timeout()?)
    }

    /// [`SecretValue::from_command`] with an explicit timeout.
    pub fn from_command_with_timeout(cmd: &str, timeout: std::time::Duration) -> Result<Self> {
        let out = run_bounded(cmd, timeout)?;
        let (status, mut v) = match out {
            Bounded::Exited(status, v) => (status, Zeroizing::new(v)),
            Bounded::TimedOut => {
                return Err(Error::failed(format!(
                    "secret command `{cmd}` did not finish within {}s and was stopped",
                    timeout.as_secs_f64()
                ))
                .fix(format!(
                    "check that the command does not wait for input (stdin is closed) or a slow service; raise the limit with `timeout:` next to fromCommand in pake.yaml or {COMMAND_TIMEOUT_ENV}=DURATION (e.g. 2m)"
                )));
            }
            Bounded::TooLong => {
                return Err(Error::failed(format!(
                    "secret command `{cmd}` printed more than 1 MiB and was stopped"
                ))
                .fix("a Kubernetes Secret holds at most 1 MiB: make the command print only the secret value"));
            }
        };
        if !status.success() {
            return Err(
                Error::failed(format!("secret command `{cmd}` failed with {status}"))
                    .fix("run the command by hand and check that it prints only the secret value"),
            );
        }
        if v.last() == Some(&b'\n') {
            v.pop();
        }
        if v.is_empty() {
            return Err(Error::failed(format!(
                "secret command `{cmd}` printed nothing"
            )));
        }
        Ok(SecretValue(v))
    }

    /// Wrap bytes that are already secret (e.g. read back from the cluster).
    pub fn from_bytes(v: Vec<u8>) -> Self {
        SecretValue(Zeroizing::new(v))
    }

    /// The bytes, for building an API request body. Do not log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// SHA-256 of the value, hex. Only for values with full entropy (random
    /// keys): a plain hash of a guessable value can be brute-forced, so
    /// anything stored or shown uses [`SecretValue::fingerprint`] instead.
    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(&self.0))
    }

    /// HMAC-SHA256 of the value under `key` (the namespace's fingerprint key,
    /// which only pake's identity can read): safe to store in history and pod
    /// annotations, since without the key it reveals nothing about the value.
    pub fn fingerprint(&self, key: &SecretValue) -> String {
        use hmac::{Hmac, Mac};
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(key.expose()).expect("HMAC takes any key length");
        mac.update(&self.0);
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }
}

/// Largest secret value read from a file or a command: 1 MiB, what a Kubernetes Secret holds.
pub const MAX_SECRET_SIZE: u64 = crate::input::MAX_SECRET_FILE_SIZE;
/// Default time a `fromCommand` may take.
pub const DEFAULT_COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Environment variable that changes the default `fromCommand` timeout (e.g. `2m`).
pub const COMMAND_TIMEOUT_ENV: &str = "PAKE_COMMAND_TIMEOUT";

/// The `fromCommand` timeout: `PAKE_COMMAND_TIMEOUT`, else 30 s.
pub fn command_timeout() -> Result<std::time::Duration> {
    match std::env::var(COMMAND_TIMEOUT_ENV) {
        Ok(s) => parse_duration(&s).map_err(|e| {
            Error::usage(format!("{COMMAND_TIMEOUT_ENV}={s:?}: {e}"))
                .fix("use a duration such as 30s, 2m or 1m30s")
        }),
        Err(_) => Ok(DEFAULT_COMMAND_TIMEOUT),
    }
}

/// `30s`, `2m`, `1m30s`, `1h` or a number of seconds; more than 0.
pub fn parse_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    let t = s.trim();
    let d = if let Ok(n) = t.parse::<u64>() {
        std::time::Duration::from_secs(n)
    } else {
        let d: jiff::SignedDuration = t
            .parse()
            .map_err(|_| "not a duration (expected e.g. 30s, 2m, 1m30s)".to_string())?;
        std::time::Duration::try_from(d).map_err(|_| "must not be negative".to_string())?
    };
    if d.is_zero() {
        return Err("must be greater than 0".into());
    }
    Ok(d)
}

/// Run a command that changes a value elsewhere (e.g. writes it into the
/// vault an External Secrets Operator store reads), bounded like `fromCommand`.
/// Its standard output may echo the value, so it is discarded unread (zeroized);
/// only the exit status counts.
pub fn run_store_command(cmd: &str, timeout: std::time::Duration) -> Result<()> {
    match run_bounded(cmd, timeout)? {
        Bounded::Exited(status, mut out) => {
            out.zeroize();
            if status.success() {
                Ok(())
            } else {
                Err(Error::failed(format!("command `{cmd}` failed with {status}; nothing was changed by pake"))
                    .fix("run the command by hand and check that it writes the new value into the store"))
            }
        }
        Bounded::TimedOut => Err(Error::failed(format!(
            "command `{cmd}` did not finish within {}s and was stopped; nothing was changed by pake",
            timeout.as_secs_f64()
        ))
        .fix(format!("check that the command does not wait for input; raise the limit with {COMMAND_TIMEOUT_ENV}=DURATION"))),
        Bounded::TooLong => Err(Error::failed(format!(
            "command `{cmd}` printed more than 1 MiB and was stopped"
        ))
        .fix("make the command quiet (its output is discarded anyway)")),
    }
}

enum Bounded {
    Exited(std::process::ExitStatus, Vec<u8>),
    TimedOut,
    TooLong,
}

/// Run `sh -c cmd` in its own process group with stdin closed, reading at most
/// [`MAX_SECRET_SIZE`] bytes of stdout; the whole group is killed on timeout or overflow.
fn run_bounded(cmd: &str, timeout: std::time::Duration) -> Result<Bounded> {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .process_group(0)
        .spawn()
        .map_err(|e| Error::usage(format!("cannot run secret command `{cmd}`: {e}")))?;
    let pgid = child.id() as i32;
    let kill_group = || unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    };
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let r = (&mut stdout)
            .take(MAX_SECRET_SIZE + 1)
            .read_to_end(&mut buf);
        (r, buf)
    });
    let deadline = std::time::Instant::now() + timeout;
    let mut reader = Some(reader);
    let mut output = None;
    let status = loop {
        if reader.as_ref().is_some_and(|r| r.is_finished()) {
            let (r, mut buf) = reader
                .take()
                .and_then(|r| r.join().ok())
                .unwrap_or((Ok(0), Vec::new()));
            if buf.len() as u64 > MAX_SECRET_SIZE {
                buf.zeroize();
                kill_group();
                let _ = child.wait();
                return Ok(Bounded::TooLong);
            }
            output = Some((r, buf));
        }
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if std::time::Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(5)),
            Err(e) => {
                kill_group();
                return Err(Error::failed(format!("secret command `{cmd}`: {e}")));
            }
        }
    };
    if status.is_some() && output.is_none() {
        // The shell exited; give what it left running a moment to finish writing.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while reader.as_ref().is_some_and(|r| !r.is_finished()) && std::time::Instant::now() < until
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    // Nothing the command started outlives it (and a pipe held open cannot block us).
    kill_group();
    let (r, mut buf) = match output {
        Some(o) => o,
        None => reader
            .take()
            .and_then(|r| r.join().ok())
            .unwrap_or((Ok(0), Vec::new())),
    };
    let Some(status) = status else {
        let _ = child.wait();
        buf.zeroize();
        return Ok(Bounded::TimedOut);
    };
    if buf.len() as u64 > MAX_SECRET_SIZE {
        buf.zeroize();
        return Ok(Bounded::TooLong);
    }
    if let Err(e) = r {
        buf.zeroize();
        return Err(Error::failed(format!(
            "cannot read the output of secret command `{cmd}`: {e}"
        )));
    }
    Ok(Bounded::Exited(status, buf))
}

impl PartialEq for SecretValue {
    /// Constant time in the contents (`subtle`); lengths are not secret.
    fn eq(&self, other: &Self) -> bool {
        self.0.as_slice().ct_eq(other.0.as_slice()).into()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_is_32_bytes_of_base64_and_differs() {
        let a = SecretValue::random_base64(32).unwrap();
        let b = SecretValue::random_base64(32).unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.expose())
            .unwrap();
        assert_eq!(raw.len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn fingerprint_depends_on_key_and_value() {
        let k1 = SecretValue::random_base64(32).unwrap();
        let k2 = SecretValue::random_base64(32).unwrap();
        let v = SecretValue::from_bytes(b"demo".to_vec());
        assert_eq!(v.fingerprint(&k1), v.clone().fingerprint(&k1));
        assert_ne!(v.fingerprint(&k1), v.fingerprint(&k2));
        assert_ne!(
            v.fingerprint(&k1),
            SecretValue::from_bytes(b"demo2".to_vec()).fingerprint(&k1)
        );
        assert!(!v.fingerprint(&k1).contains(&v.sha256()));
    }

    #[test]
    fn equality_compares_contents() {
        let a = SecretValue::from_bytes(b"same".to_vec());
        assert_eq!(a, SecretValue::from_bytes(b"same".to_vec()));
        assert_ne!(a, SecretValue::from_bytes(b"samf".to_vec()));
        assert_ne!(a, SecretValue::from_bytes(b"same!".to_vec()));
    }

    #[test]
    fn never_printed() {
        let a = SecretValue::from_bytes(b"hunter2".to_vec());
        assert_eq!(format!("{a}"), REDACTED);
        assert_eq!(format!("{a:?}"), REDACTED);
        assert!(!format!("{:?}", Some(&a)).contains("hunter2"));
    }

    #[test]
    fn command_stopped_after_timeout_and_output_cap() {
        let t0 = std::time::Instant::now();
        let e = SecretValue::from_command_with_timeout(
            "sleep 30 & sleep 30; echo late",
            std::time::Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(
            e.message.contains("did not finish within 0.3s"),
            "{}",
            e.message
        );
        assert!(t0.elapsed() < std::time::Duration::from_secs(5));
        let e = SecretValue::from_command("head -c 5000000 /dev/zero").unwrap_err();
        assert!(e.message.contains("more than 1 MiB"), "{}", e.message);
        let e = SecretValue::from_command("yes").unwrap_err();
        assert!(e.message.contains("more than 1 MiB"), "{}", e.message);
        // A background child holding stdout open does not block a finished command.
        let v = SecretValue::from_command("(sleep 20 &) ; printf ok").unwrap();
        assert_eq!(v.expose(), b"ok");
        assert!(t0.elapsed() < std::time::Duration::from_secs(10));
        assert_eq!(
            parse_duration("1m30s"),
            Ok(std::time::Duration::from_secs(90))
        );
        assert_eq!(parse_duration("45"), Ok(std::time::Duration::from_secs(45)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn secret_file_must_be_regular_and_small() {
        let e = SecretValue::from_file(std::path::Path::new("/dev/zero")).unwrap_err();
        assert!(e.message.contains("character device"), "{}", e.message);
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("big");
        std::fs::write(&f, vec![b'x'; 2 << 20]).unwrap();
        let e = SecretValue::from_file(&f).unwrap_err();
        assert!(e.message.contains("over the 1 MiB limit"), "{}", e.message);
    }

    #[test]
    fn command_output_trailing_newline_trimmed() {
        let v = SecretValue::from_command("printf 'abc\\n'").unwrap();
        assert_eq!(v.expose(), b"abc");
        assert!(SecretValue::from_command("exit 3").is_err());
    }
}
