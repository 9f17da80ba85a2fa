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
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        std::fs::read(path)
            .map(SecretValue::from_bytes)
            .map_err(|e| {
                Error::usage(format!("cannot read secret file {}: {e}", path.display()))
                    .fix("check the path in pake.yaml or on the command line, and its permissions")
            })
    }

    /// The standard output of a command run through `sh -c` (e.g. `vault kv get -field=password ...`),
    /// with one trailing newline removed. The command's stderr is passed through; its stdout never is.
    pub fn from_command(cmd: &str) -> Result<Self> {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| Error::usage(format!("cannot run secret command `{cmd}`: {e}")))?;
        if !out.status.success() {
            let mut o = out.stdout;
            o.zeroize();
            return Err(Error::failed(format!(
                "secret command `{cmd}` failed with {}",
                out.status
            ))
            .fix("run the command by hand and check that it prints only the secret value"));
        }
        let mut v = Zeroizing::new(out.stdout);
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
    fn command_output_trailing_newline_trimmed() {
        let v = SecretValue::from_command("printf 'abc\\n'").unwrap();
        assert_eq!(v.expose(), b"abc");
        assert!(SecretValue::from_command("exit 3").is_err());
    }
}
