//! Every fuzz target for a bounded number of cases, in CI: no panic, no
//! broken invariant. `cargo xtask fuzz --seconds N` runs them for longer.

use rtbench_fuzz::engine::{self, Budget};
use rtbench_fuzz::targets::TARGETS;

#[test]
fn every_target_survives_its_bounded_run() {
    let mut report = Vec::new();
    for t in TARGETS {
        // The session target opens a socket pair per case: fewer of those.
        let cases = if t.name == "session" { 1_500 } else { 20_000 };
        let out = engine::run(t, Budget::Cases(cases), 42);
        println!(
            "{}: {} cases in {:.1} s",
            out.target,
            out.cases,
            out.elapsed.as_secs_f64()
        );
        assert_eq!(out.cases, cases);
        for f in out.findings {
            report.push(format!(
                "{}: {}\n  input: {}",
                t.name,
                f.what,
                engine::show(&f.input)
            ));
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}
