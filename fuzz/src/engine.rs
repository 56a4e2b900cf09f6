//! The fuzzing engine: seeds, mutations, a budget, and findings.
//!
//! Coverage-guided fuzzers (libFuzzer, AFL++) need a nightly compiler or a
//! toolchain of their own; this one needs neither. It mutates each target's
//! seed inputs (valid examples of what the target reads) with the mutations
//! that find parser bugs — bit flips, boundary bytes, length fields set to
//! their edges, insertions, deletions, splices of two seeds — runs the target
//! on each, and reports every panic and every broken invariant with the
//! input that caused it. Runs are reproducible from their RNG seed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

/// splitmix64: small, fast, and the same sequence for the same seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// Bytes that sit on boundaries of what parsers read.
const INTERESTING: [u8; 12] = [
    0, 1, 0x7e, 0x7f, 0x80, 0x81, 0xfe, 0xff, b'\r', b'\n', b'"', b'\\',
];
/// Lengths on the edges of the WebSocket and HTTP length forms.
const LENGTHS: [u64; 8] = [0, 125, 126, 127, 65_535, 65_536, 64_001, u64::MAX];

/// One to four mutations of `seed` (possibly spliced with one of `seeds`).
pub fn mutate(rng: &mut Rng, seed: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                v.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(32));
                v.drain(at..at + n);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                let chunk = v[at..at + n].to_vec();
                let to = rng.below(len + 1);
                v.splice(to..to, chunk);
            }
            5 if !seeds.is_empty() => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            6 if len > 2 => {
                // A length field: 2 or 8 bytes big-endian at a random place.
                let at = rng.below(len - 1);
                let n = LENGTHS[rng.below(LENGTHS.len())];
                if rng.below(2) == 0 || at + 8 > len {
                    v[at..at + 2].copy_from_slice(&(n.min(0xFFFF) as u16).to_be_bytes());
                } else {
                    v[at..at + 8].copy_from_slice(&n.to_be_bytes());
                }
            }
            _ => v.truncate(rng.below(len + 1)),
        }
    }
    v
}

/// A fuzz target: its seeds and what must hold for any input.
pub struct Target {
    pub name: &'static str,
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Runs one input; `Err` names a broken invariant.
    pub check: fn(&[u8]) -> Result<(), String>,
}

/// How long to fuzz a target.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    Cases(u64),
    For(Duration),
}

/// An input that panicked the target or broke its invariant.
#[derive(Debug)]
pub struct Finding {
    pub what: String,
    pub input: Vec<u8>,
}

#[derive(Debug)]
pub struct Outcome {
    pub target: &'static str,
    pub cases: u64,
    pub elapsed: Duration,
    pub findings: Vec<Finding>,
}

/// Findings kept per target (the first few are what a person reads).
const MAX_FINDINGS: usize = 5;

/// Fuzzes `t` within `budget`: the seeds as they are first, then mutants.
pub fn run(t: &Target, budget: Budget, seed: u64) -> Outcome {
    let seeds = (t.seeds)();
    let mut rng = Rng::new(seed);
    let t0 = Instant::now();
    let mut out = Outcome {
        target: t.name,
        cases: 0,
        elapsed: Duration::ZERO,
        findings: Vec::new(),
    };
    let more = |cases: u64| match budget {
        Budget::Cases(n) => cases < n,
        Budget::For(d) => t0.elapsed() < d,
    };
    while more(out.cases) && out.findings.len() < MAX_FINDINGS {
        let input = match seeds.get(out.cases as usize) {
            Some(s) => s.clone(),
            None => {
                let pick = rng.below(seeds.len());
                mutate(&mut rng, &seeds[pick], &seeds)
            }
        };
        let result = catch_unwind(AssertUnwindSafe(|| (t.check)(&input)));
        out.cases += 1;
        let what = match result {
            Ok(Ok(())) => continue,
            Ok(Err(broken)) => broken,
            Err(panic) => format!(
                "panicked: {}",
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            ),
        };
        out.findings.push(Finding { what, input });
    }
    out.elapsed = t0.elapsed();
    out
}

/// An input as people read it: printable bytes as they are, others escaped.
pub fn show(input: &[u8]) -> String {
    input.escape_ascii().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_invariant_and_a_panic_are_findings_with_their_input() {
        let t = Target {
            name: "toy",
            seeds: || vec![b"ok".to_vec()],
            check: |b| match b {
                b"ok" => Ok(()),
                [b'p', ..] => panic!("p first"),
                _ if b.len() > 3 => Err(format!("{} bytes", b.len())),
                _ => Ok(()),
            },
        };
        let out = run(&t, Budget::Cases(20_000), 7);
        assert!(!out.findings.is_empty(), "{out:?}");
        assert!(
            out.findings
                .iter()
                .all(|f| f.what.contains("bytes") || f.what.contains("p first"))
        );
        let quiet = Target {
            name: "quiet",
            seeds: || vec![b"ok".to_vec()],
            check: |_| Ok(()),
        };
        let out = run(&quiet, Budget::Cases(1_000), 7);
        assert_eq!((out.cases, out.findings.len()), (1_000, 0));
    }
}
