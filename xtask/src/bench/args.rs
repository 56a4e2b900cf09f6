//! `cargo xtask bench`'s command line, parsed by clap (`cli.rs` puts it
//! under `bench`). A run reads its options from `Args` as parsed; what the
//! record keeps of them is `Args::overrides`.

use std::path::PathBuf;

use crate::flags;
use crate::subject::Subject;
use crate::suite::Overrides;

/// `cargo xtask bench`'s command line; a run reads its options from it.
#[derive(Debug, Clone, clap::Args)]
// `-5` reaches the value's parser, which says what is wrong with it.
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// A suite under suites/ (smoke, idle-1m, fanout, ...) or a suite file
    #[arg(value_name = "SUITE")]
    pub suite: String,
    #[command(flatten)]
    pub size: Size,
    /// Run only this variant [default: every variant in turn]
    #[arg(long, value_name = "NAME")]
    pub variant: Option<String>,
    /// The record's directory [default: results/<suite>/<time>-<host>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Apply the suite's sysctls, run in a sized namespace [default: off]
    #[arg(long)]
    pub tune: bool,
    /// With --tune, stay on the host's network stack [default: off]
    #[arg(long)]
    pub host_net: bool,
    /// Measure this machine's roofline first [default: off]
    #[arg(long)]
    pub roofline: bool,
    /// rtbench, command:LINE or url:ws://... [default: the suite's]
    #[arg(long, value_name = "SPEC", value_parser = server_spec)]
    pub server: Option<String>,
    /// The clients' protocol [default: the suite's]
    #[arg(long, value_name = "PROTOCOL", value_parser = protocol_flag())]
    pub protocol: Option<rtbench_record::scenario::Protocol>,
    /// Where the live page is served
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8091")]
    pub dashboard: String,
    /// This checkout's server against GIT_REF's, A B A B ... [default: off]
    #[arg(long, value_name = "GIT_REF")]
    pub versus: Option<String>,
    /// A B pairs a --versus run makes
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = flags::whole_number_from_1::<usize>)]
    pub pairs: usize,
    /// Where the parts run (ssh hosts: --hosts)
    #[arg(long, value_name = "WHERE", value_enum, default_value_t = OnFlag::Local, conflicts_with = "hosts")]
    pub on: OnFlag,
    /// Machines over ssh, listed as xtask/src/hosts.rs says [default: none]
    #[arg(long, value_name = "HOSTS.toml")]
    pub hosts: Option<PathBuf>,
    /// A container resource, repeatable [default: the suite's]
    #[arg(long = "limit", value_name = "ROLE.KEY=VALUE")]
    pub limits: Vec<String>,
    /// --on swarm: the registry every node pulls the images from
    /// [default: the manager's, port 5000]
    #[arg(long, value_name = "HOST:PORT")]
    pub registry: Option<String>,
    /// An objective the run must meet, e.g. 'delivery.p99<=50ms' or
    /// 'failed==0', repeatable, added to the suite's [slo]; a failed one
    /// makes bench exit 2 [default: the suite's]
    #[arg(long = "slo", value_name = "METRIC OP VALUE")]
    pub slo: Vec<rtbench_record::slo::Threshold>,
}

/// How big the run is, over the suite's own figures; recorded with the run
/// (`Overrides`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Size {
    /// The suite's arrivals times F, rates kept [default: 1]
    #[arg(long, value_name = "F", value_parser = flags::positive_number, conflicts_with = "connections")]
    pub scale: Option<f64>,
    /// Arrivals in all, exactly N [default: the suite's]
    #[arg(long, value_name = "N", value_parser = flags::whole_number_from_1::<u64>)]
    pub connections: Option<u64>,
    /// Arrivals per second, every phase [default: the suite's]
    #[arg(long, value_name = "R", value_parser = flags::positive_number)]
    pub rate: Option<f64>,
    /// Seconds the connections are held [default: the suite's]
    #[arg(long, value_name = "S", value_parser = flags::number_from_0)]
    pub hold: Option<f64>,
    /// Server processes [default: as many as open-files limits need]
    #[arg(long, value_name = "P", value_parser = flags::whole_number_from_1::<u64>)]
    pub processes: Option<u64>,
    /// Events per second from all publishers, their rates scaled to it [default: the suite's]
    #[arg(long, value_name = "R", value_parser = flags::positive_number)]
    pub publish_rate: Option<f64>,
    /// Seconds between a client's pings [default: the suite's or variant's]
    #[arg(long = "ping-interval", value_name = "S", value_parser = flags::positive_number)]
    pub ping_interval: Option<f64>,
}

impl Args {
    /// The run's size as recorded.
    pub fn overrides(&self) -> Overrides {
        let s = &self.size;
        Overrides {
            scale: s.scale,
            connections: s.connections,
            rate: s.rate,
            hold_s: s.hold,
            processes: s.processes,
            publish_rate: s.publish_rate,
            ping_interval_s: s.ping_interval,
        }
    }

    /// Where the parts run: `--hosts` or `--on`.
    pub fn runs_on(&self) -> RunsOn {
        match (&self.hosts, self.on) {
            (Some(file), _) => RunsOn::Hosts(file.clone()),
            (None, OnFlag::Local) => RunsOn::Local,
            (None, OnFlag::Containers) => RunsOn::Containers,
            (None, OnFlag::Swarm) => RunsOn::Swarm,
        }
    }
}

/// `--on`'s values. Remote hosts need a file, so they are `--hosts FILE`.
/// (Not `--target`: in this project a target is what the load is aimed at,
/// the scenario's `[load.target]`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnFlag {
    Local,
    Containers,
    /// Docker Swarm services, placed by the nodes' `rtbench.role` label
    Swarm,
}

/// `--server`'s value, refused while parsing when `Subject` would refuse it.
/// (a clap value parser: its error is a string).
fn server_spec(spec: &str) -> Result<String, String> {
    Subject::parse(spec)
        .map(|_| spec.to_string())
        .map_err(|e| format!("{e:#}"))
}

/// `--protocol`'s value; the help lists every one the load generator speaks.
pub fn protocol_flag()
-> impl clap::builder::TypedValueParser<Value = rtbench_record::scenario::Protocol> {
    use clap::builder::TypedValueParser;
    use rtbench_record::scenario::Protocol;
    clap::builder::PossibleValuesParser::new(Protocol::ALL.map(Protocol::name))
        .map(|p| Protocol::from_name(&p).expect("one of the possible values"))
}

/// Where a bench's processes run.
#[derive(Debug, Clone, PartialEq)]
pub enum RunsOn {
    Local,
    Containers,
    Swarm,
    Hosts(PathBuf),
}
