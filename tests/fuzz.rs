//! The fuzz targets of `src/fuzzing.rs` on stable Rust, for CI:
//!
//! 1. every file in `fuzz/corpus/TARGET/` and `fuzz/regressions/TARGET/` (the
//!    reproducers of bugs found so far) is run and must return within 10 s
//!    without a panic;
//! 2. then the corpus is mutated (byte flips, inserts, splices of format tokens,
//!    crossovers) for `PAKE_FUZZ_SECS` seconds per target (default 2; 0 skips),
//!    seeded by `PAKE_FUZZ_SEED` (printed, so a failure can be replayed).
//!
//! A failing input is written to `target/fuzz-failures/`; add it to
//! `fuzz/regressions/TARGET/` with the fix. Coverage-guided runs: `scripts/fuzz`.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PER_INPUT: Duration = Duration::from_secs(10);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let d = root().join("fuzz").join(dir).join(target);
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files {
            if f.is_file() {
                out.push((f.clone(), std::fs::read(&f).unwrap()));
            }
        }
    }
    out
}

/// Run one input on a worker thread: `Err` on a panic or when it takes longer than `limit`.
fn run_one(f: fn(&[u8]), data: Vec<u8>, limit: Duration) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || {
            let r = std::panic::catch_unwind(|| f(&data));
            let _ = tx.send(r.is_ok());
        })
        .unwrap();
    match rx.recv_timeout(limit) {
        Ok(true) => Ok(()),
        Ok(false) => Err("panicked".into()),
        Err(_) => Err(format!("did not return within {}s", limit.as_secs())),
    }
}

fn save_failure(target: &str, data: &[u8]) -> PathBuf {
    let dir = root().join("target").join("fuzz-failures");
    std::fs::create_dir_all(&dir).unwrap();
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h = (h ^ *b as u64).wrapping_mul(0x100000001b3);
    }
    let p = dir.join(format!("{target}-{h:016x}"));
    std::fs::write(&p, data).unwrap();
    p
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Tokens of the formats under test, spliced in by the mutator.
const TOKENS: &[&str] = &[
    "\n",
    "---\n",
    "...\n",
    ": ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    "&a ",
    "*a",
    "!!str ",
    "|\n",
    ">-\n",
    "\"",
    "'",
    "#",
    "\t",
    "  ",
    "\u{feff}",
    "€",
    "\r\n",
    "kind: Deployment\n",
    "apiVersion: apps/v1\n",
    "spec:\n  template:\n    spec:\n",
    "containers:\n- name: a\n",
    "{{ app }}",
    "{% for i in range(100) %}",
    "{% endfor %}",
    "{% include 'fuzz.yaml' %}",
    "{{ ",
    " }}",
    "{%",
    "%}",
    "| tojson",
    "~",
    "${A:-",
    "${",
    "}",
    "$A",
    "\\\n",
    "<<EOF\n",
    "EOF\n",
    "FROM alpine AS b\n",
    "USER ",
    "ARG ",
    "ENV ",
    "RUN ",
    "COPY --from=",
    "# escape=`\n",
    "**",
    "*",
    "?",
    "!",
    "/",
    "../",
    "[a-",
    "\\",
    "value: ",
    "password: ",
    "stringData:\n",
    "replicas: ",
    "port: ",
    "environments:\n  dev: {}\n",
    "-1",
    "65536",
    "0x",
    "1e9",
    "true",
];

fn mutate(rng: &mut Rng, corpus: &[(PathBuf, Vec<u8>)], cur: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = cur.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                cur[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(len + 1);
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                cur.splice(i..i, t.iter().copied());
            }
            2 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                cur.drain(a..b);
            }
            3 if len > 0 => {
                // Duplicate a chunk (grows nesting and repetition).
                let a = rng.below(len);
                let b = (a + 1 + rng.below(256)).min(len);
                let chunk: Vec<u8> = cur[a..b].to_vec();
                let i = rng.below(len + 1);
                cur.splice(i..i, chunk);
            }
            4 if !corpus.is_empty() => {
                // Crossover with another corpus entry.
                let other = &corpus[rng.below(corpus.len())].1;
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let b = (a + 1 + rng.below(512)).min(other.len());
                    let i = rng.below(len + 1);
                    cur.splice(i..i, other[a..b].iter().copied());
                }
            }
            5 if len > 0 => {
                let i = rng.below(len);
                const BYTES: &[u8] = b"\n :-{}[]#'\"\\$%|>*&!\t0a";
                cur[i] = BYTES[rng.below(BYTES.len())];
            }
            _ => {
                let i = rng.below(len + 1);
                cur.insert(i, rng.next() as u8);
            }
        }
    }
    cur.truncate(64 << 10);
}

fn fuzz_target(name: &str) {
    let f = pake::fuzzing::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap()
        .1;
    let corpus = inputs(name);
    assert!(!corpus.is_empty(), "fuzz/corpus/{name}/ is empty");
    let mut failures = Vec::new();
    for (path, data) in &corpus {
        if let Err(why) = run_one(f, data.clone(), PER_INPUT) {
            failures.push(format!("{}: {why}", path.display()));
        }
    }
    assert!(failures.is_empty(), "{name}: {}", failures.join("\n"));

    let secs: u64 = std::env::var("PAKE_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let seed: u64 = std::env::var("PAKE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let mut rng = Rng(seed);
    let end = Instant::now() + Duration::from_secs(secs);
    let mut execs = 0u64;
    while Instant::now() < end {
        let mut cur = corpus[rng.below(corpus.len())].1.clone();
        for _ in 0..8 {
            mutate(&mut rng, &corpus, &mut cur);
            execs += 1;
            if let Err(why) = run_one(f, cur.clone(), PER_INPUT) {
                let p = save_failure(name, &cur);
                panic!(
                    "{name}: input {} {why} (PAKE_FUZZ_SEED={seed}); add it to fuzz/regressions/{name}/ with the fix",
                    p.display()
                );
            }
        }
    }
    eprintln!(
        "fuzz {name}: {} corpus inputs, {execs} mutated inputs in {secs}s, seed {seed}",
        corpus.len()
    );
}

#[test]
fn fuzz_pake_yaml() {
    fuzz_target("pake_yaml");
}

#[test]
fn fuzz_template() {
    fuzz_target("template");
}

#[test]
fn fuzz_audit_yaml() {
    fuzz_target("audit_yaml");
}

#[test]
fn fuzz_dockerfile() {
    fuzz_target("dockerfile");
}

#[test]
fn fuzz_dockerignore() {
    fuzz_target("dockerignore");
}
