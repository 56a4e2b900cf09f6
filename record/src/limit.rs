//! What limited a run (`BenchSummary::limit`), as data: each cause with its
//! figures, most telling first, and `Display` for the sentence the console
//! and the site print. Records before format 2 stored the sentence alone;
//! they read back as `Causes::Stated`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One cause of what limited a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum Limit {
    /// The kernel dropped connection attempts at the servers' full accept
    /// queues (`TcpExt.ListenOverflows`), each retried after a SYN timeout.
    AcceptQueues { dropped: u64 },
    /// The machine's CPU was saturated while connections arrived.
    ConnectingCpu { busy_pct: f64, arrivals_per_s: f64 },
    /// The load generator's self-check fired. `machine_busy_pct`: the
    /// machine's CPU over the hold, when it was saturated: the load
    /// generator shares it with the servers, so the two together are the
    /// limit, not the load generator's own cost alone.
    LoadGenerator {
        reasons: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        machine_busy_pct: Option<f64>,
    },
    /// The machine's CPU was saturated over the hold while the load
    /// generator kept its schedule: the server's figures are its limit here.
    MachineCpu { busy_pct: f64, server_cores: f64 },
    /// Nothing: the machine had CPU to spare over the hold.
    Nothing { busy_pct: f64, server_cores: f64 },
}

impl Limit {
    /// What limited the run, in a few words; None for `Nothing`.
    pub fn what(&self) -> Option<&'static str> {
        Some(match self {
            Limit::AcceptQueues { .. } => "the servers' accept queues",
            Limit::ConnectingCpu { .. } => "the machine's CPU while connections arrived",
            Limit::LoadGenerator { .. } => "the load generator",
            Limit::MachineCpu { .. } => "the machine's CPU",
            Limit::Nothing { .. } => return None,
        })
    }

    /// What joins this cause to the next one in the sentence.
    fn joiner(&self) -> &'static str {
        match self {
            Limit::ConnectingCpu { .. } => "; over the hold, ",
            _ => "; ",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::AcceptQueues { dropped } => write!(
                f,
                "the servers' accept queues: the kernel dropped {dropped} connection attempts at a full queue (ListenOverflows), each retried after a SYN timeout"
            ),
            Limit::ConnectingCpu {
                busy_pct,
                arrivals_per_s,
            } => write!(
                f,
                "the machine's CPU while connections arrived: {busy_pct:.0}% busy at {arrivals_per_s:.0} arrivals/s (the servers' and the clients' kernel share it); connect latency is the saturated machine's"
            ),
            Limit::LoadGenerator {
                reasons,
                machine_busy_pct,
            } => {
                write!(f, "the load generator: {}", reasons.join("; "))?;
                match machine_busy_pct {
                    Some(busy) => write!(
                        f,
                        ", on a machine {busy:.0}% busy over the hold that it shares with the servers (the two together are the limit; a load generator on machines of its own would keep its schedule longer)"
                    ),
                    None => Ok(()),
                }
            }
            Limit::MachineCpu {
                busy_pct,
                server_cores,
            } => write!(
                f,
                "the machine's CPU: {busy_pct:.0}% busy over the hold (the servers {server_cores:.2} cores) while the load generator kept its schedule; the server's figures are its limit on this machine"
            ),
            Limit::Nothing {
                busy_pct,
                server_cores,
            } => write!(
                f,
                "none: the machine's CPU was {busy_pct:.0}% busy over the hold (the servers {server_cores:.2} cores); more load would find more"
            ),
        }
    }
}

/// Every cause found, most telling first; or, in a record before format 2,
/// the sentence it stated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Causes {
    Found(Vec<Limit>),
    Stated(String),
}

impl Causes {
    /// Puts `cause` before the causes found so far.
    pub fn lead(limits: &mut Option<Causes>, cause: Limit) {
        *limits = Some(match limits.take() {
            Some(Causes::Found(mut causes)) => {
                causes.insert(0, cause);
                Causes::Found(causes)
            }
            None => Causes::Found(vec![cause]),
            Some(Causes::Stated(s)) => Causes::Stated(format!("{cause}{}{s}", cause.joiner())),
        });
    }

    /// What limited the run over the hold, in a few words (the last cause:
    /// those before it are about connecting); None when nothing did.
    pub fn over_the_hold(&self) -> Option<String> {
        match self {
            Causes::Found(c) => c.last()?.what().map(String::from),
            Causes::Stated(s) => {
                let last = s.rsplit("over the hold, ").next().unwrap_or(s);
                let what = last.split(':').next().unwrap_or(last).trim();
                (what != "none").then(|| what.to_string())
            }
        }
    }

    /// The causes, none for an old record's sentence.
    pub fn causes(&self) -> &[Limit] {
        match self {
            Causes::Found(c) => c,
            Causes::Stated(_) => &[],
        }
    }
}

impl fmt::Display for Causes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Causes::Stated(s) => f.write_str(s),
            Causes::Found(causes) => {
                for (i, c) in causes.iter().enumerate() {
                    if i > 0 {
                        f.write_str(causes[i - 1].joiner())?;
                    }
                    write!(f, "{c}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sentence_is_the_one_records_stated() {
        let mut l = Some(Causes::Found(vec![Limit::Nothing {
            busy_pct: 9.4,
            server_cores: 0.05,
        }]));
        Causes::lead(
            &mut l,
            Limit::ConnectingCpu {
                busy_pct: 97.0,
                arrivals_per_s: 5000.0,
            },
        );
        Causes::lead(&mut l, Limit::AcceptQueues { dropped: 12 });
        let l = l.unwrap();
        assert_eq!(
            l.to_string(),
            "the servers' accept queues: the kernel dropped 12 connection attempts at a full queue (ListenOverflows), each retried after a SYN timeout; \
             the machine's CPU while connections arrived: 97% busy at 5000 arrivals/s (the servers' and the clients' kernel share it); connect latency is the saturated machine's; \
             over the hold, none: the machine's CPU was 9% busy over the hold (the servers 0.05 cores); more load would find more"
        );
        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(serde_json::from_str::<Causes>(&json).unwrap(), l);
    }

    #[test]
    fn over_the_hold_is_the_last_cause_and_none_is_not_a_limit() {
        let found = Causes::Found(vec![
            Limit::AcceptQueues { dropped: 1 },
            Limit::MachineCpu {
                busy_pct: 99.0,
                server_cores: 1.0,
            },
        ]);
        assert_eq!(found.over_the_hold().as_deref(), Some("the machine's CPU"));
        let spare = Causes::Found(vec![Limit::Nothing {
            busy_pct: 9.0,
            server_cores: 0.1,
        }]);
        assert_eq!(spare.over_the_hold(), None);
        let old = Causes::Stated(
            "the machine's CPU while connections arrived: 100% busy; over the hold, the machine's CPU: 96% busy".into(),
        );
        assert_eq!(old.over_the_hold().as_deref(), Some("the machine's CPU"));
        let old = Causes::Stated("none: the machine's CPU was 1% busy".into());
        assert_eq!(old.over_the_hold(), None);
    }

    #[test]
    fn a_load_generator_behind_on_a_saturated_machine_says_it_shares_it() {
        let alone = Limit::LoadGenerator {
            reasons: vec!["arrivals started up to 357 ms behind schedule (limit 100 ms)".into()],
            machine_busy_pct: None,
        };
        assert_eq!(
            alone.to_string(),
            "the load generator: arrivals started up to 357 ms behind schedule (limit 100 ms)"
        );
        let shared = Limit::LoadGenerator {
            reasons: vec!["arrivals started up to 357 ms behind schedule (limit 100 ms)".into()],
            machine_busy_pct: Some(99.6),
        };
        assert_eq!(
            shared.to_string(),
            "the load generator: arrivals started up to 357 ms behind schedule (limit 100 ms), on a machine 100% busy over the hold that it shares with the servers (the two together are the limit; a load generator on machines of its own would keep its schedule longer)"
        );
        assert_eq!(shared.what(), Some("the load generator"));
        // A record written before the field reads back without it.
        let old: Limit =
            serde_json::from_str(r#"{"cause":"load_generator","reasons":["x"]}"#).unwrap();
        assert_eq!(
            old,
            Limit::LoadGenerator {
                reasons: vec!["x".into()],
                machine_busy_pct: None
            }
        );
        let json = serde_json::to_string(&shared).unwrap();
        assert_eq!(serde_json::from_str::<Limit>(&json).unwrap(), shared);
    }

    #[test]
    fn an_old_records_sentence_reads_back() {
        let l: Causes = serde_json::from_str("\"none: the machine's CPU was 1% busy\"").unwrap();
        assert_eq!(
            l,
            Causes::Stated("none: the machine's CPU was 1% busy".into())
        );
        assert!(l.causes().is_empty());
    }
}
