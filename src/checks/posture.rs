//! Runtime posture of a running container, proven from its own process: the
//! `/proc/1/status` and `/proc/1/mountinfo` that a probe in the container's PID
//! namespace read (`pake verify` on a real node). Pure: text in, verdicts out.

/// Check ID of the runtime posture checks.
pub const RUNTIME_POSTURE: &str = "RUNTIME-POSTURE";

/// The marker the probe prints between the two files.
pub const SEPARATOR: &str = "--pake-mountinfo--";

/// One property of the process and whether it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub name: &'static str,
    pub ok: bool,
    /// What the process has, e.g. `uid 1000` or `CapEff 00000000a80425fb`.
    pub seen: String,
}

/// The guide's posture: uid and gid `want_id` (real, effective, saved, fs), an
/// empty effective capability set, no_new_privs, seccomp in filter mode, and a
/// read-only root filesystem. `probe_output` is status, SEPARATOR, mountinfo.
pub fn evaluate(probe_output: &str, want_id: u32) -> Vec<Property> {
    let (status, mountinfo) = probe_output
        .split_once(SEPARATOR)
        .unwrap_or((probe_output, ""));
    let field = |name: &str| -> Option<&str> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let ids_ok = |v: Option<&str>| {
        v.is_some_and(|v| {
            let ids: Vec<&str> = v.split_whitespace().collect();
            ids.len() == 4 && ids.iter().all(|i| i.parse::<u32>() == Ok(want_id))
        })
    };
    let show = |v: Option<&str>| {
        v.unwrap_or("missing")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let uid = field("Uid");
    let gid = field("Gid");
    let cap = field("CapEff");
    let nnp = field("NoNewPrivs");
    let seccomp = field("Seccomp");
    let root = root_mount_options(mountinfo);
    vec![
        Property {
            name: "uid",
            ok: ids_ok(uid),
            seen: format!("Uid {}", show(uid)),
        },
        Property {
            name: "gid",
            ok: ids_ok(gid),
            seen: format!("Gid {}", show(gid)),
        },
        Property {
            name: "capabilities",
            ok: cap.is_some_and(|c| u64::from_str_radix(c, 16) == Ok(0)),
            seen: format!("CapEff {}", show(cap)),
        },
        Property {
            name: "no_new_privs",
            ok: nnp == Some("1"),
            seen: format!("NoNewPrivs {}", show(nnp)),
        },
        Property {
            name: "seccomp",
            // 2 = SECCOMP_MODE_FILTER
            ok: seccomp == Some("2"),
            seen: format!("Seccomp {}", show(seccomp)),
        },
        Property {
            name: "read-only root",
            ok: root
                .as_deref()
                .is_some_and(|o| o.split(',').any(|x| x == "ro")),
            seen: format!("/ mounted {}", root.as_deref().unwrap_or("(not found)")),
        },
    ]
}

/// Mount options of the last mount on `/` (the one the process sees).
fn root_mount_options(mountinfo: &str) -> Option<String> {
    mountinfo.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 5 && f[4] == "/").then(|| f[5].to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HARDENED: &str = "Name:\tbackend\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n--pake-mountinfo--\n1203 1100 0:120 / / ro,relatime master:1 - overlay overlay rw,lowerdir=a\n1204 1203 0:122 / /proc rw,nosuid - proc proc rw\n";

    #[test]
    fn hardened_process_passes_every_property() {
        let p = evaluate(HARDENED, 1000);
        assert_eq!(p.len(), 6);
        assert!(p.iter().all(|p| p.ok), "{p:?}");
    }

    #[test]
    fn each_weakness_is_named() {
        let weak = HARDENED
            .replace("Uid:\t1000\t1000\t1000\t1000", "Uid:\t0\t0\t0\t0")
            .replace("CapEff:\t0000000000000000", "CapEff:\t00000000a80425fb")
            .replace("NoNewPrivs:\t1", "NoNewPrivs:\t0")
            .replace("Seccomp:\t2", "Seccomp:\t0")
            .replace("/ / ro,relatime", "/ / rw,relatime");
        let p = evaluate(&weak, 1000);
        let failed: Vec<&str> = p.iter().filter(|p| !p.ok).map(|p| p.name).collect();
        assert_eq!(
            failed,
            [
                "uid",
                "capabilities",
                "no_new_privs",
                "seccomp",
                "read-only root"
            ]
        );
        assert_eq!(p[0].seen, "Uid 0 0 0 0");
    }

    #[test]
    fn garbage_never_passes() {
        for text in [
            "",
            "Uid: x",
            "--pake-mountinfo--",
            "Seccomp: 2\nNoNewPrivs: 1",
        ] {
            assert!(evaluate(text, 1000).iter().any(|p| !p.ok), "{text:?}");
        }
        // A saved uid of 0 is not uid 1000.
        let p = evaluate(
            &HARDENED.replace("Uid:\t1000\t1000\t1000\t1000", "Uid:\t1000\t1000\t0\t1000"),
            1000,
        );
        assert!(!p[0].ok);
    }
}
