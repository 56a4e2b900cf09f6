//! Scenario files: the schema, and errors that point at the line to fix.
//!
//! A scenario is everything a run needs and nothing about where it runs: the
//! target, Tsung-style arrival phases, the hold, what each synthetic user does,
//! and who publishes. The schema is documented in `loadgen/README.md`; every
//! struct here rejects unknown fields, and value checks run while parsing so
//! the error carries the value's position.

use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What the scenario reproduces or measures.
    #[serde(default)]
    pub description: String,
    pub target: Target,
    pub phases: Vec<Phase>,
    #[serde(default)]
    pub hold: Hold,
    #[serde(default)]
    pub session: Session,
    #[serde(default)]
    pub publishers: Vec<Publisher>,
    /// Time each event on its own: its first and last delivery over every
    /// receiver (a broadcast's burst), in the summary's `bursts`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub per_event: bool,
    /// Objectives the run must meet, evaluated at its end.
    #[serde(default, skip_serializing_if = "crate::slo::Slo::is_empty")]
    pub slo: crate::slo::Slo,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// `ws://host:port[/path]`, spread round-robin. Appwrite's path defaults to
    /// `/v1/realtime`. May be left out where a runner supplies it (`--target`,
    /// `cargo xtask bench`).
    #[serde(default)]
    pub urls: Vec<String>,
    #[serde(default)]
    pub protocol: Protocol,
    /// Appwrite project id sent with every connection.
    #[serde(default = "default_project")]
    pub project: String,
    /// Admin key for publishing through `POST /v1/events`.
    #[serde(default = "default_admin_key")]
    pub admin_key: String,
    /// Secret that signs the synthetic users' tokens (the server's `--jwt-secret`).
    #[serde(default = "default_jwt_secret")]
    pub jwt_secret: String,
    /// Source addresses to bind, round-robin: IPs and CIDR blocks (`127.0.0.2/28`).
    /// Empty: the kernel picks. Each address adds a port range of connections per target.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Seconds a connection may take from its attempt to being connected.
    #[serde(default = "default_connect_timeout", deserialize_with = "positive")]
    pub connect_timeout_s: f64,
    /// The servers' Redis event bus (`redis://HOST:PORT`), for publishers
    /// with `via = "bus"`; `cargo xtask bench` fills it in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
}

/// What the clients speak: defined with the endpoints they reach.
pub use crate::endpoint::Protocol;

/// An arrival phase, as Tsung's: `rate` new connections per second for
/// `duration_s`, at most `max_users` of them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    #[serde(deserialize_with = "positive")]
    pub duration_s: f64,
    #[serde(deserialize_with = "positive")]
    pub rate: f64,
    #[serde(default)]
    pub max_users: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Hold {
    /// Seconds to hold every connection after the last phase ends.
    #[serde(default, deserialize_with = "non_negative")]
    pub duration_s: f64,
    /// Seconds to wait for the server's close after the client closes.
    #[serde(default = "default_close_timeout", deserialize_with = "positive")]
    pub close_timeout_s: f64,
}

impl Default for Hold {
    fn default() -> Hold {
        Hold {
            duration_s: 0.0,
            close_timeout_s: default_close_timeout(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// Channels every user subscribes to.
    #[serde(default)]
    pub channels: Vec<String>,
    /// A pattern spreading users over `channel_count` channels, `{}` standing
    /// for the channel number, `channels_per_user` channels each.
    #[serde(default)]
    pub channel_pattern: Option<String>,
    #[serde(default = "one", deserialize_with = "at_least_one")]
    pub channel_count: u64,
    #[serde(default = "one", deserialize_with = "at_least_one")]
    pub channels_per_user: u64,
    #[serde(default)]
    pub auth: Auth,
    /// Distinct user ids (`u0`..); arrival i is user i mod users. 0: one per arrival.
    #[serde(default)]
    pub users: u64,
    /// Teams (`t0`..) and how many each user belongs to, with these roles.
    #[serde(default)]
    pub teams: u64,
    #[serde(default)]
    pub teams_per_user: u64,
    #[serde(default = "default_team_roles")]
    pub team_roles: Vec<String>,
    /// Labels, each given to a user with `label_probability`.
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default, deserialize_with = "probability")]
    pub label_probability: f64,
    /// Seconds between `{"type":"ping"}` messages (the SDKs: 20); 0: none.
    #[serde(default, deserialize_with = "non_negative")]
    pub ping_interval_s: f64,
    /// Raw protocol: seconds between echo messages; 0: none.
    #[serde(default, deserialize_with = "non_negative")]
    pub echo_interval_s: f64,
    #[serde(default)]
    pub reconnect: Reconnect,
    /// Churn: a connection's mean lifetime in seconds, each drawn uniformly
    /// from half to one and a half times it (bounded, so the population
    /// settles after 1.5 lifetimes at rate x lifetime and every connection
    /// lives long enough to receive events); then it leaves, and arrivals
    /// go on through the hold at the last phase's rate (open model).
    /// 0 (the default): connections stay until the hold ends.
    #[serde(default, deserialize_with = "non_negative")]
    pub lifetime_s: f64,
    /// Churn: the share of leaves that are silent drops (the client stops
    /// reading and writing and keeps its socket `drop_hold_s`, so the
    /// server's own timeout must reap it), the rest close with a close
    /// frame. Default 0.
    #[serde(default, deserialize_with = "probability")]
    pub drop_fraction: f64,
    /// Seconds a dropped client keeps its silent socket before closing it:
    /// longer than the server's idle timeout (the rtbench server's
    /// `--idle-timeout`), so the server reaps it first. Default 0.
    #[serde(default, deserialize_with = "non_negative")]
    pub drop_hold_s: f64,
}

impl Session {
    /// Connections leave and are replaced (`lifetime_s` > 0).
    pub fn churns(&self) -> bool {
        self.lifetime_s > 0.0
    }

    /// How long arrival `arrival` stays connected under churn: uniform in
    /// [0.5, 1.5) x `lifetime_s`, drawn from the arrival's index (the same
    /// run to run), and whether it leaves by a silent drop.
    pub fn leave_of(&self, arrival: u64) -> (f64, bool) {
        let life = self.lifetime_s * (0.5 + unit_draw(arrival, 1));
        (life, unit_draw(arrival, 2) < self.drop_fraction)
    }
}

/// A reproducible draw in [0, 1) from (`key`, `stream`): splitmix64's finalizer.
pub fn unit_draw(key: u64, stream: u64) -> f64 {
    let mut z =
        key.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as f64 / (u64::MAX as f64 + 1.0)
}

impl Default for Session {
    fn default() -> Session {
        toml::from_str("").expect("every session field has a default")
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    #[default]
    Guest,
    /// A token minted per user with `target.jwt_secret`.
    Jwt,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reconnect {
    /// A connection the server closes stays closed (and is counted).
    #[default]
    None,
    /// As Appwrite's SDKs: after 1 s (5 tries), 5 s (to 15), 10 s (to 100),
    /// then 60 s; never after an error frame with code 1008.
    Sdk,
    /// The SDKs' schedule with full jitter: each wait drawn uniformly from
    /// 0 to twice the SDK's (the same mean), so a storm spreads out.
    #[serde(rename = "sdk-jitter")]
    SdkJitter,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Publisher {
    /// Events per second, in all, or per channel when `per_channel`.
    #[serde(deserialize_with = "positive")]
    pub rate: f64,
    #[serde(default)]
    pub per_channel: bool,
    /// Payload size in bytes (the stamp included).
    #[serde(default = "default_payload")]
    pub payload_bytes: usize,
    /// Who may read each event, drawn by weight.
    #[serde(default = "default_roles")]
    pub roles: Vec<RoleWeight>,
    /// Seconds after the run starts; default: when the last phase ends.
    #[serde(default)]
    pub start_s: Option<f64>,
    /// Seconds after the run starts when publishing stops; default: when
    /// the hold ends. Earlier leaves the last events time to arrive before
    /// the clients close, so every subscriber can have every event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_s: Option<f64>,
    /// Where events go: for Appwrite `http` (POST /v1/events, the default)
    /// or `bus` (PUBLISH on the servers' Redis channel `realtime`); for a
    /// broker `broker`, its own publish (the default). `Publisher::route`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<Via>,
    /// HTTP: most requests in flight at once (each on its own keep-alive
    /// connection). An event due while all are busy waits, and is late.
    #[serde(
        default = "default_max_in_flight",
        alias = "connections",
        deserialize_with = "at_least_one"
    )]
    pub max_in_flight: u64,
}

/// How a publisher reaches the servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// `POST /v1/events` to the targets, spread over them.
    Http,
    /// `PUBLISH realtime` on `target.bus`, pipelined.
    Bus,
    /// The protocol's own publish on one WebSocket connection to the first
    /// target: NATS `PUB`, MQTT `PUBLISH`, STOMP `SEND`, a Socket.IO emit
    /// the server relays to the channel's room.
    Broker,
}

impl Publisher {
    /// How this publisher reaches the servers under `protocol`: its `via`,
    /// or the protocol's own way (Appwrite: HTTP; a broker: itself).
    pub fn route(&self, protocol: Protocol) -> Via {
        self.via.unwrap_or(match protocol {
            Protocol::Appwrite => Via::Http,
            _ => Via::Broker,
        })
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoleWeight {
    pub role: ReadRole,
    #[serde(default = "default_weight", deserialize_with = "positive")]
    pub weight: f64,
}

/// Who may read an event: everyone, guests, signed-in users, one team of the
/// session's, or one user of the session's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadRole {
    Any,
    Guests,
    Users,
    Team,
    User,
}

fn default_project() -> String {
    "console".into()
}
fn default_admin_key() -> String {
    "rtbench-dev-key".into()
}
fn default_jwt_secret() -> String {
    "rtbench-dev-secret".into()
}
fn default_connect_timeout() -> f64 {
    10.0
}
fn default_close_timeout() -> f64 {
    5.0
}
fn one() -> u64 {
    1
}
fn default_team_roles() -> Vec<String> {
    vec!["member".into()]
}
fn default_payload() -> usize {
    128
}
fn default_roles() -> Vec<RoleWeight> {
    vec![RoleWeight {
        role: ReadRole::Any,
        weight: 1.0,
    }]
}
fn default_weight() -> f64 {
    1.0
}
fn default_max_in_flight() -> u64 {
    64
}

fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(serde::de::Error::custom(format!(
            "must be a number > 0, got {v}"
        )))
    }
}

fn non_negative<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(serde::de::Error::custom(format!(
            "must be a number >= 0, got {v}"
        )))
    }
}

fn probability<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(serde::de::Error::custom(format!(
            "must be within 0..=1, got {v}"
        )))
    }
}

fn at_least_one<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = u64::deserialize(d)?;
    if v >= 1 {
        Ok(v)
    } else {
        Err(serde::de::Error::custom("must be at least 1"))
    }
}

/// A scenario that cannot run, with where to look: `Display` names the
/// file, and the line and field where there is one.
#[derive(Debug)]
pub enum ScenarioError {
    /// The file could not be read.
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// Not TOML, or not a scenario's fields and values (toml's message,
    /// with the line's text).
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
        text: String,
    },
    /// Fields that parse but do not fit together (`Scenario::validate`).
    Invalid {
        file: String,
        line: usize,
        field: &'static str,
        problem: String,
    },
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScenarioError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            ScenarioError::Syntax {
                file,
                line,
                column,
                message,
                text,
            } => write!(f, "{file}:{line}:{column}: {message} (in `{text}`)"),
            ScenarioError::Invalid {
                file,
                line,
                field,
                problem,
            } => write!(f, "{file}:{line}: `{field}`: {problem}"),
        }
    }
}

impl std::error::Error for ScenarioError {}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let src = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Scenario::parse(&src, &path.display().to_string())
    }

    /// Parses and checks a scenario; `file` names it in errors.
    pub fn parse(src: &str, file: &str) -> Result<Scenario, ScenarioError> {
        let sc: Scenario = toml::from_str(src).map_err(|e| {
            let (line, column) = e.span().map_or((0, 0), |s| line_col(src, s.start));
            let text = src.lines().nth(line.saturating_sub(1)).unwrap_or("").trim();
            ScenarioError::Syntax {
                file: file.to_string(),
                line,
                column,
                message: e.message().trim().to_string(),
                text: text.to_string(),
            }
        })?;
        sc.validate().map_err(|(field, problem)| {
            let line = src
                .lines()
                .position(|l| l.trim_start().starts_with(field))
                .map_or(0, |i| i + 1);
            ScenarioError::Invalid {
                file: file.to_string(),
                line,
                field,
                problem,
            }
        })?;
        Ok(sc)
    }

    /// Checks that span fields (parsing checks single values); returns the
    /// key to point at and the problem. For a scenario built in code.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.target.urls.is_empty() {
            return Err(("urls", "at least one target URL is needed".into()));
        }
        for u in &self.target.urls {
            crate::endpoint::Endpoint::parse(u, self.target.protocol).map_err(|e| ("urls", e))?;
        }
        for s in &self.target.sources {
            crate::endpoint::expand_sources(std::slice::from_ref(s)).map_err(|e| ("sources", e))?;
        }
        if self.phases.is_empty() {
            return Err(("[[phases]]", "at least one arrival phase is needed".into()));
        }
        let s = &self.session;
        if self.target.protocol.subscribes() && s.channels.is_empty() && s.channel_pattern.is_none()
        {
            return Err((
                "channels",
                format!(
                    "a {} session needs `channels` or `channel_pattern`",
                    self.target.protocol.name()
                ),
            ));
        }
        if let Some(p) = &s.channel_pattern {
            if p.matches("{}").count() != 1 {
                return Err((
                    "channel_pattern",
                    format!("needs exactly one `{{}}`, got `{p}`"),
                ));
            }
            if s.channels_per_user > s.channel_count {
                return Err((
                    "channels_per_user",
                    format!(
                        "{} exceeds channel_count {}",
                        s.channels_per_user, s.channel_count
                    ),
                ));
            }
        }
        if s.teams_per_user > s.teams {
            return Err((
                "teams_per_user",
                format!("{} exceeds teams {}", s.teams_per_user, s.teams),
            ));
        }
        for p in &self.publishers {
            self.validate_publisher(p)?;
        }
        Ok(())
    }

    /// Every subscriber is sent every event: one channel for everyone and
    /// every event readable by anyone. Only then is a gap in the sequence
    /// numbers a connection received a missed event (elsewhere each gets
    /// its share, and the gaps are the others' events).
    pub fn every_event_reaches_every_subscriber(&self) -> bool {
        let s = &self.session;
        let one_channel = match s.channel_pattern {
            Some(_) => s.channel_count == 1,
            None => s.channels.len() == 1,
        };
        one_channel
            && !self.publishers.is_empty()
            && self
                .publishers
                .iter()
                .all(|p| p.roles.iter().all(|r| r.role == ReadRole::Any))
    }

    /// A publisher's checks against the session and the target.
    fn validate_publisher(&self, p: &Publisher) -> Result<(), (&'static str, String)> {
        let s = &self.session;
        if p.payload_bytes > 60_000 {
            return Err((
                "payload_bytes",
                format!("{} exceeds the 60000 a frame may carry", p.payload_bytes),
            ));
        }
        for r in &p.roles {
            let needs_jwt = matches!(r.role, ReadRole::Team | ReadRole::User | ReadRole::Users);
            if needs_jwt && s.auth != Auth::Jwt {
                return Err((
                    "role",
                    format!("{:?} events need `auth = \"jwt\"` users", r.role),
                ));
            }
            if r.role == ReadRole::Team && s.teams == 0 {
                return Err(("role", "team events need `teams` > 0".into()));
            }
        }
        if !self.target.protocol.subscribes() {
            return Err((
                "[[publishers]]",
                "publishing needs a protocol whose clients subscribe (not raw)".into(),
            ));
        }
        if let (Some(start), Some(stop)) = (p.start_s, p.stop_s)
            && stop <= start
        {
            return Err(("stop_s", format!("{stop} is not after start_s {start}")));
        }
        let route = p.route(self.target.protocol);
        if (route == Via::Broker) != (self.target.protocol != Protocol::Appwrite) {
            return Err((
                "via",
                format!(
                    "protocol {} publishes via {}",
                    self.target.protocol.name(),
                    if route == Via::Broker {
                        "\"http\" or \"bus\""
                    } else {
                        "\"broker\" (its own publish; leave `via` out)"
                    }
                ),
            ));
        }
        if route == Via::Bus
            && !self
                .target
                .bus
                .as_deref()
                .is_some_and(|b| b.starts_with("redis://"))
        {
            return Err((
                "via",
                "publishing via the bus needs target.bus = \"redis://HOST:PORT\"".into(),
            ));
        }
        Ok(())
    }

    /// How many connections the phases start in all.
    pub fn total_arrivals(&self) -> u64 {
        self.phases.iter().map(phase_arrivals).sum()
    }

    /// The phases arrivals follow: the scenario's, and under churn one more
    /// through the hold at the last phase's rate (leavers are replaced).
    pub fn arrival_phases(&self) -> Vec<Phase> {
        let mut phases = self.phases.clone();
        if self.session.churns()
            && self.hold.duration_s > 0.0
            && let Some(last) = self.phases.last()
        {
            phases.push(Phase {
                duration_s: self.hold.duration_s,
                rate: last.rate,
                max_users: None,
            });
        }
        phases
    }

    /// Every arrival of the run: `total_arrivals`, and under churn the
    /// replacements through the hold.
    pub fn all_arrivals(&self) -> u64 {
        self.arrival_phases().iter().map(phase_arrivals).sum()
    }

    /// The most connections open at once: every arrival, or under churn
    /// what the fastest phase keeps: rate x (lifetime + the drops' share of
    /// the drop hold), with a tenth more for the population's swings.
    pub fn peak_connections(&self) -> u64 {
        let all = self.all_arrivals();
        if !self.session.churns() {
            return all;
        }
        let rate = self.phases.iter().map(|p| p.rate).fold(0.0, f64::max);
        let s = &self.session;
        let held_s = s.lifetime_s + s.drop_fraction * s.drop_hold_s;
        all.min((1.1 * rate * held_s).ceil() as u64 + 100)
    }

    /// Seconds from the run's start to the end of the last phase.
    pub fn arrivals_end_s(&self) -> f64 {
        self.phases.iter().map(|p| p.duration_s).sum()
    }

    /// Seconds from the run's start to the end of the hold.
    pub fn hold_end_s(&self) -> f64 {
        self.arrivals_end_s() + self.hold.duration_s
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a scenario serializes")
    }
}

pub fn phase_arrivals(p: &Phase) -> u64 {
    let n = (p.duration_s * p.rate).floor() as u64;
    p.max_users.map_or(n, |m| n.min(m))
}

fn line_col(src: &str, at: usize) -> (usize, usize) {
    let before = &src[..at.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = at - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn churn_lifetimes_are_bounded_around_the_mean_and_drops_take_their_share() {
        let s: Session = toml::from_str("lifetime_s = 100\ndrop_fraction = 0.1").unwrap();
        let n = 100_000;
        let draws: Vec<(f64, bool)> = (0..n).map(|a| s.leave_of(a)).collect();
        assert!(draws.iter().all(|d| (50.0..150.0).contains(&d.0)));
        let mean = draws.iter().map(|d| d.0).sum::<f64>() / n as f64;
        assert!((mean - 100.0).abs() < 0.5, "{mean}");
        let drops = draws.iter().filter(|d| d.1).count() as f64 / n as f64;
        assert!((drops - 0.1).abs() < 0.005, "{drops}");
        assert_eq!(s.leave_of(7), s.leave_of(7), "the same run to run");
    }

    const OK: &str = r#"
description = "t"
[target]
urls = ["ws://127.0.0.1:8080"]
[[phases]]
duration_s = 2
rate = 100
[session]
channels = ["files"]
"#;

    #[test]
    fn a_minimal_scenario_parses_with_defaults() {
        let sc = Scenario::parse(OK, "ok.toml").unwrap();
        assert_eq!(sc.total_arrivals(), 200);
        assert_eq!(sc.target.project, "console");
        assert_eq!(sc.session.channel_count, 1);
        // What it writes back parses to the same.
        let again = Scenario::parse(&sc.to_toml(), "again.toml").unwrap();
        assert_eq!(again.to_toml(), sc.to_toml());
    }

    #[test]
    fn unknown_fields_name_file_line_and_field() {
        let bad = OK.replace("rate = 100", "rate = 100\nrat = 3");
        let e = Scenario::parse(&bad, "s.toml").unwrap_err().to_string();
        assert!(e.starts_with("s.toml:8:"), "{e}");
        assert!(e.contains("unknown field `rat`"), "{e}");
    }

    #[test]
    fn bad_values_name_file_line_and_field() {
        let e = Scenario::parse(&OK.replace("rate = 100", "rate = -5"), "s.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("s.toml:7:")
                && e.contains("must be a number > 0")
                && e.contains("rate = -5"),
            "{e}"
        );
        let e = Scenario::parse(&OK.replace("rate = 100", "rate = \"fast\""), "s.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.toml:7:") && e.contains("rate"), "{e}");
        let e = Scenario::parse(&OK.replace("ws://127.0.0.1:8080", "http://x"), "s.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.toml:4: `urls`"), "{e}");
        let e = Scenario::parse(&format!("{OK}channel_pattern = \"c\"\n"), "s.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`channel_pattern`: needs exactly one `{}`"),
            "{e}"
        );
    }

    #[test]
    fn publishers_take_their_protocols_own_route_and_no_other() {
        let with = |protocol: &str, via: &str| {
            let src = OK.replace(
                "[target]\n",
                &format!("[target]\nprotocol = \"{protocol}\"\n"),
            );
            Scenario::parse(&format!("{src}[[publishers]]\nrate = 1\n{via}"), "s.toml")
        };
        let sc = with("nats", "").unwrap();
        assert_eq!(sc.publishers[0].route(Protocol::Nats), Via::Broker);
        let sc = with("appwrite", "").unwrap();
        assert_eq!(sc.publishers[0].route(Protocol::Appwrite), Via::Http);
        let e = with("mqtt", "via = \"http\"\n").unwrap_err().to_string();
        assert!(
            e.contains("`via`: protocol mqtt publishes via \"broker\""),
            "{e}"
        );
        let e = with("appwrite", "via = \"broker\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("protocol appwrite publishes via \"http\" or \"bus\""),
            "{e}"
        );
        let e = with("raw", "").unwrap_err().to_string();
        assert!(e.contains("not raw"), "{e}");
        let e = Scenario::parse(
            &OK.replace("[target]\n", "[target]\nprotocol = \"stomp\"\n")
                .replace("channels = [\"files\"]", ""),
            "s.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("a stomp session needs `channels`"), "{e}");
    }
}
