//! The xtask's command line: every task and its flags, parsed by clap into
//! the task modules' own `Args`. It is in the library, not `main.rs`, so unit
//! tests can parse the command lines the README, the workflows and the
//! end-to-end tests use, and see a bad value refused with its flag named.

use clap::{Parser, Subcommand};

use crate::{abuse, bench, ci, engine, fuzz, memprobe, roofline, site, sweep, tuning, versus};

/// Project tasks, run as `cargo xtask <task>`.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
pub struct Cli {
    #[command(subcommand)]
    pub task: Option<Task>,
}

#[derive(Debug, Subcommand)]
pub enum Task {
    /// Build, preflight, run a suite (suites/*.toml), write its record under results/
    Bench(Box<bench::Args>),
    /// Show (or apply) a suite's OS tuning, current and wanted values; or put back what --tune changed
    Tune(tuning::Args),
    /// This machine's limits with plain TCP (pairs, fan-out, round trips), a record under results/roofline/
    Roofline(roofline::Args),
    /// KiB per idle connection, server and load generator
    Memprobe(memprobe::Args),
    /// Render every record under results/ into a static site
    Site(site::RenderArgs),
    /// Headline deltas of two runs
    Compare(site::CompareArgs),
    /// Judge a scenario's newest run against its history (site/regress.toml); fails on a regression
    Regress(site::RegressArgs),
    /// Capacity at a latency target: a suite at rising load until an objective fails, the knee found by bisection
    Sweep(Box<sweep::Args>),
    /// Hostile clients of every kind beside a normal load: what the normal clients saw, RSS, limits
    Abuse(abuse::Args),
    /// Fuzz every parser a client or publisher feeds; fails on a finding
    Fuzz(fuzz::Args),
    /// Set-up, fmt check, clippy (warnings denied), every test (a smoke bench among them)
    Ci,
    /// Started by `bench --on containers`: once its stdin ends, removes the run's containers
    #[command(hide = true)]
    ContainersReaper {
        /// The run's `rtbench.run` label.
        run: String,
    },
}

/// Runs one task.
pub fn run(task: Task) -> anyhow::Result<()> {
    match task {
        // `--versus` is a bench flag with a task of its own: versus depends
        // on bench, so bench, knowing nothing of versus, cannot dispatch it.
        Task::Bench(a) if a.versus.is_some() => versus::task(*a),
        Task::Bench(a) => bench::task(*a),
        Task::Tune(a) => tuning::task(a),
        Task::Roofline(a) => roofline::run(a),
        Task::Memprobe(a) => memprobe::run(a),
        Task::Site(a) => site::render(a),
        Task::Compare(a) => site::compare(a),
        Task::Regress(a) => site::regress(a),
        Task::Sweep(a) => sweep::run(*a),
        Task::Abuse(a) => abuse::run(a),
        Task::Fuzz(a) => fuzz::run(a),
        Task::Ci => ci::run(),
        Task::ContainersReaper { run } => engine::reaper(&run),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Task, clap::Error> {
        let words = std::iter::once("cargo xtask").chain(line.split_whitespace());
        Cli::try_parse_from(words).map(|c| c.task.expect("a task"))
    }

    fn bench(line: &str) -> bench::Args {
        match parse(line) {
            Ok(Task::Bench(a)) => *a,
            other => panic!("`{line}`: {other:?}"),
        }
    }

    /// The command lines the README, the workflows and `xtask/tests` use.
    #[test]
    fn documented_command_lines_parse() {
        let a = bench("bench smoke");
        assert_eq!(a.suite, "smoke");
        assert_eq!(a.overrides(), Default::default());
        assert_eq!(a.dashboard, "127.0.0.1:8091");
        assert_eq!(
            (a.pairs, a.runs_on(), a.tune),
            (2, bench::RunsOn::Local, false)
        );

        let a = bench("bench idle-1m --variant no-ping --connections 19000 --hold 10");
        assert_eq!(a.variant.as_deref(), Some("no-ping"));
        assert_eq!(a.overrides().connections, Some(19_000));
        assert_eq!(a.overrides().hold_s, Some(10.0));
        let a = bench("bench idle-1m --variant sdk-jwt --connections 19000 --hold 10");
        assert_eq!(a.variant.as_deref(), Some("sdk-jwt"));
        let a = bench("bench idle-1m --tune --variant sdk-jwt");
        assert!(a.tune && a.overrides() == Default::default());

        let a = bench(
            "bench idle-1m --connections 30000 --rate 6000 --hold 2 --processes 3 --out /tmp/r --dashboard 127.0.0.1:0",
        );
        let o = a.overrides();
        assert_eq!((o.rate, o.processes), (Some(6000.0), Some(3)));
        assert_eq!(a.out.as_deref(), Some(std::path::Path::new("/tmp/r")));
        assert_eq!(a.dashboard, "127.0.0.1:0");

        let a = bench("bench smoke --tune --scale 0.25 --hold 1");
        assert!(a.tune && !a.host_net);
        assert_eq!(a.overrides().scale, Some(0.25));

        let a = bench("bench smoke --versus main --pairs 3");
        assert_eq!((a.versus.as_deref(), a.pairs), (Some("main"), 3));

        let a = bench("bench smoke --on containers --limit server.cpus=2 --limit worker.memory=1g");
        assert_eq!(a.runs_on(), bench::RunsOn::Containers);
        assert_eq!(a.limits, ["server.cpus=2", "worker.memory=1g"]);

        let a = bench("bench smoke --hosts HOSTS.toml");
        assert_eq!(a.runs_on(), bench::RunsOn::Hosts("HOSTS.toml".into()));

        let a = bench("bench smoke --server url:ws://127.0.0.1:9000/ --protocol raw");
        assert_eq!(a.server.as_deref(), Some("url:ws://127.0.0.1:9000/"));
        assert_eq!(a.protocol, Some(rtbench_record::scenario::Protocol::Raw));
        // A command line with spaces, as a shell hands it over.
        let a = Cli::try_parse_from([
            "cargo xtask",
            "bench",
            "smoke",
            "--server",
            "command:my-server --port {port}",
        ])
        .unwrap();
        let Some(Task::Bench(a)) = a.task else {
            panic!()
        };
        assert_eq!(a.server.as_deref(), Some("command:my-server --port {port}"));

        assert!(bench("bench failover --tune --roofline --host-net").roofline);

        match parse("tune idle-1m").unwrap() {
            Task::Tune(t) => assert_eq!(
                (t.suite.as_deref(), t.apply, t.restore),
                (Some("idle-1m"), false, false)
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse("tune idle-1m --apply"), Ok(Task::Tune(t)) if t.apply));
        assert!(
            matches!(parse("tune --restore"), Ok(Task::Tune(t)) if t.restore && t.suite.is_none())
        );
        match parse("roofline").unwrap() {
            Task::Roofline(r) => {
                let d = roofline::Args::default();
                assert_eq!(
                    (r.pairs, r.repeat, r.seconds, r.out, r.host_net),
                    (d.pairs, d.repeat, d.seconds, d.out, d.host_net)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(parse("memprobe --connections 19000"), Ok(Task::Memprobe(m)) if (m.connections, m.rate, m.auth) == (19_000, 5_000, memprobe::Auth::Guest))
        );
        assert!(
            matches!(parse("memprobe --connections 19000 --auth jwt"), Ok(Task::Memprobe(m)) if m.auth == memprobe::Auth::Jwt)
        );
        assert!(matches!(parse("abuse --seconds 20"), Ok(Task::Abuse(a)) if a.seconds == 20.0));
        assert!(
            matches!(parse("fuzz --seconds 600"), Ok(Task::Fuzz(f)) if f.seconds == 600.0 && f.target.is_none())
        );
        assert!(matches!(parse("site --out target/site"), Ok(Task::Site(s)) if s.out.is_some()));
        assert!(
            matches!(parse("compare smoke/a smoke/b"), Ok(Task::Compare(c)) if c.run_b == "smoke/b")
        );
        assert!(matches!(parse("regress fanout"), Ok(Task::Regress(r)) if r.scenario == "fanout"));
        assert!(matches!(parse("ci"), Ok(Task::Ci)));
        assert!(Cli::try_parse_from(["cargo xtask"]).unwrap().task.is_none());
    }

    /// A bad value is an error that names the flag, never a number cast
    /// into another (`--connections -5` was once 0).
    #[test]
    fn bad_values_are_refused_naming_the_flag() {
        for (line, flag) in [
            ("bench smoke --connections -5", "--connections"),
            ("bench smoke --connections abc", "--connections"),
            ("bench smoke --connections 0", "--connections"),
            ("bench smoke --connections 1.5", "--connections"),
            ("bench smoke --scale -1", "--scale"),
            ("bench smoke --rate 0", "--rate"),
            ("bench smoke --hold -2", "--hold"),
            ("bench smoke --processes 0", "--processes"),
            ("bench smoke --pairs -1", "--pairs"),
            ("bench smoke --protocol http", "--protocol"),
            ("bench smoke --on cloud", "--on"),
            ("bench smoke --server nginx", "--server"),
            ("roofline --repeat 0", "--repeat"),
            ("roofline --seconds nan", "--seconds"),
            ("memprobe --rate -1", "--rate"),
            ("memprobe --auth oauth", "--auth"),
            ("abuse --seconds 2", "--seconds"),
            ("fuzz --seconds 0", "--seconds"),
        ] {
            let e = parse(line).expect_err(line).to_string();
            assert!(
                e.contains(flag),
                "`{line}` was refused without naming {flag}: {e:#}"
            );
            assert!(e.contains("invalid value"), "`{line}`: {e:#}");
        }
    }

    #[test]
    fn contradictions_and_unknowns_are_refused() {
        for line in [
            "bench smoke --scale 2 --connections 100",
            "bench smoke --on containers --hosts h.toml",
            "bench smoke --conections 100",
            "bench",
            "tune",
            "tune idle-1m --restore",
            "compare one",
            "nonsense",
        ] {
            assert!(parse(line).is_err(), "`{line}` was accepted");
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
