//! Service-level objectives: thresholds a run must meet (`delivery.p99 <=
//! 50ms`, `failed == 0`), as a suite's `[slo]`, a load scenario's `[slo]` or
//! `--slo` give them, and each one's outcome in the records.
//!
//! Why here: the load generator evaluates them on the histograms every
//! worker and host sent, merged exactly (any quantile, not an average of
//! averages), the bench turns a failed one into its exit status, and the
//! site shows pass or fail; all three read these types. A threshold is
//! written and read as the text a user types, so a record says it the same
//! way the suite did.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A latency the load generator measures (a histogram of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latency {
    /// From each arrival's scheduled time to connected.
    Connect,
    /// From the attempt itself to connected.
    ConnectAttempt,
    /// From the publisher's stamp to receipt.
    Delivery,
    /// A ping answered by its pong, or a raw echo.
    RoundTrip,
    /// From a connection's loss to its being open again.
    Reconnect,
}

impl Latency {
    const NAMES: [(&'static str, Latency); 5] = [
        ("connect", Latency::Connect),
        ("connect_attempt", Latency::ConnectAttempt),
        ("delivery", Latency::Delivery),
        ("roundtrip", Latency::RoundTrip),
        ("reconnect", Latency::Reconnect),
    ];

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, l)| *l == self)
            .map_or("", |n| n.0)
    }
}

/// Which figure of a latency's distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Statistic {
    /// A quantile in (0, 1]: `p99` is 0.99, `p99.9` and `p999` are 0.999.
    Quantile(f64),
    Max,
    Mean,
}

/// A count the load generator's summary states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Connection attempts that failed.
    Failed,
    /// Connections open at the end of the hold.
    Held,
    Duplicates,
    Misdelivered,
    /// Events the servers delivered that no client received.
    Lost,
}

impl Count {
    const NAMES: [(&'static str, Count); 5] = [
        ("failed", Count::Failed),
        ("held", Count::Held),
        ("duplicates", Count::Duplicates),
        ("misdelivered", Count::Misdelivered),
        ("lost", Count::Lost),
    ];

    fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, c)| *c == self)
            .map_or("", |n| n.0)
    }
}

/// What a threshold is about.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    Latency(Latency, Statistic),
    Count(Count),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Le,
    Lt,
    Ge,
    Gt,
    Eq,
}

impl Op {
    const SPELLINGS: [(&'static str, Op); 5] = [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];

    fn symbol(self) -> &'static str {
        Self::SPELLINGS
            .iter()
            .find(|(_, o)| *o == self)
            .map_or("", |s| s.0)
    }
}

/// One objective: `metric op value`, latencies in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub metric: Metric,
    pub op: Op,
    /// Milliseconds for a latency, a plain number for a count.
    pub value: f64,
}

impl Threshold {
    /// Whether `measured` meets the threshold.
    pub fn holds(&self, measured: f64) -> bool {
        match self.op {
            Op::Le => measured <= self.value,
            Op::Lt => measured < self.value,
            Op::Ge => measured >= self.value,
            Op::Gt => measured > self.value,
            Op::Eq => measured == self.value,
        }
    }
}

/// A threshold that does not read as one: what was given and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadThreshold {
    pub given: String,
    pub why: String,
}

impl fmt::Display for BadThreshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SLO `{}`: {} (expected METRIC OP VALUE, e.g. `delivery.p99 <= 50ms`, `failed == 0`; latencies: {}, each .pNN, .pNN.N, .max or .mean; counts: {})",
            self.given,
            self.why,
            Latency::NAMES.map(|n| n.0).join(", "),
            Count::NAMES.map(|n| n.0).join(", ")
        )
    }
}

impl std::error::Error for BadThreshold {}

fn statistic(s: &str) -> Option<Statistic> {
    match s {
        "max" => return Some(Statistic::Max),
        "mean" => return Some(Statistic::Mean),
        _ => {}
    }
    let digits = s.strip_prefix('p')?;
    // `p999`, `p9999`: the nines convention the records use for p99.9.
    let percent: f64 = if digits.len() >= 3 && !digits.contains('.') && digits.starts_with("99") {
        100.0 - 10f64.powi(2 - digits.len() as i32)
    } else {
        digits.parse().ok()?
    };
    (percent > 0.0 && percent <= 100.0).then_some(Statistic::Quantile(percent / 100.0))
}

fn metric(s: &str) -> Option<Metric> {
    if let Some((_, c)) = Count::NAMES.iter().find(|(n, _)| *n == s) {
        return Some(Metric::Count(*c));
    }
    let (name, stat) = s.split_once('.')?;
    let (_, latency) = Latency::NAMES.iter().find(|(n, _)| *n == name)?;
    Some(Metric::Latency(*latency, statistic(stat)?))
}

/// A latency value with its unit (`50ms`, `1.5s`, `800us`, `50`: ms).
fn milliseconds(s: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e3)
    } else {
        (s, 1.0)
    };
    let v: f64 = number.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v * scale)
}

impl FromStr for Threshold {
    type Err = BadThreshold;

    fn from_str(s: &str) -> Result<Threshold, BadThreshold> {
        let bad = |why: &str| BadThreshold {
            given: s.to_string(),
            why: why.to_string(),
        };
        let (at, op) = Op::SPELLINGS
            .iter()
            .filter_map(|(sym, op)| s.find(sym).map(|i| (i, (*sym, *op))))
            .min_by_key(|(i, (sym, _))| (*i, std::cmp::Reverse(sym.len())))
            .ok_or_else(|| bad("no comparison (<=, <, >=, >, ==)"))?;
        let (sym, op) = op;
        let lhs = s[..at].trim();
        let rhs = s[at + sym.len()..].trim();
        let metric = metric(lhs).ok_or_else(|| bad(&format!("`{lhs}` is not a metric")))?;
        let value = match metric {
            Metric::Latency(..) => milliseconds(rhs),
            Metric::Count(_) => rhs.parse::<f64>().ok().filter(|v| v.is_finite()),
        }
        .ok_or_else(|| bad(&format!("`{rhs}` is not a value for {lhs}")))?;
        Ok(Threshold { metric, op, value })
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.metric {
            Metric::Count(c) => write!(f, "{} {} {}", c.name(), self.op.symbol(), self.value),
            Metric::Latency(l, stat) => {
                let stat = match stat {
                    Statistic::Max => "max".to_string(),
                    Statistic::Mean => "mean".to_string(),
                    Statistic::Quantile(q) => {
                        // Enough digits to read back the same quantile.
                        let p = format!("{:.4}", q * 100.0);
                        format!("p{}", p.trim_end_matches('0').trim_end_matches('.'))
                    }
                };
                write!(
                    f,
                    "{}.{stat} {} {}ms",
                    l.name(),
                    self.op.symbol(),
                    self.value
                )
            }
        }
    }
}

impl Serialize for Threshold {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Threshold, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A suite's or a scenario's `[slo]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    #[serde(default)]
    pub thresholds: Vec<Threshold>,
}

impl Slo {
    pub fn is_empty(&self) -> bool {
        self.thresholds.is_empty()
    }
}

/// A threshold as a run met it or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub threshold: Threshold,
    /// What the run measured (ms for a latency); None when it measured
    /// nothing of the kind (no deliveries for `delivery.p99`), which fails.
    pub measured: Option<f64>,
    pub pass: bool,
}

impl Outcome {
    pub fn of(threshold: Threshold, measured: Option<f64>) -> Outcome {
        Outcome {
            threshold,
            measured,
            pass: measured.is_some_and(|m| threshold.holds(m)),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.pass { "pass" } else { "FAIL" };
        match self.measured {
            Some(m) => write!(f, "{verdict}: {} (measured {m:.3})", self.threshold),
            None => write!(f, "{verdict}: {} (nothing measured)", self.threshold),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Threshold {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn thresholds_read_as_users_write_them() {
        assert_eq!(
            t("delivery.p99<=50ms"),
            Threshold {
                metric: Metric::Latency(Latency::Delivery, Statistic::Quantile(0.99)),
                op: Op::Le,
                value: 50.0
            }
        );
        assert_eq!(t("connect.p99 < 1.5s").value, 1500.0);
        assert_eq!(t("roundtrip.p50 <= 800us").value, 0.8);
        assert_eq!(
            t("roundtrip.p99.9 <= 100").metric,
            t("roundtrip.p999 <= 100").metric
        );
        assert_eq!(t("failed == 0").metric, Metric::Count(Count::Failed));
        assert_eq!(t("held >= 19000").op, Op::Ge);
        assert_eq!(t("delivery.max > 1").op, Op::Gt);
    }

    #[test]
    fn a_threshold_reads_back_as_written() {
        for s in [
            "delivery.p99 <= 50ms",
            "delivery.p99.9 < 2.5ms",
            "connect.max >= 1000ms",
            "reconnect.mean <= 3000ms",
            "failed == 0",
        ] {
            assert_eq!(t(s).to_string(), s);
            let json = serde_json::to_string(&t(s)).unwrap();
            assert_eq!(serde_json::from_str::<Threshold>(&json).unwrap(), t(s));
        }
    }

    #[test]
    fn bad_thresholds_name_what_is_wrong() {
        for (s, why) in [
            ("delivery.p99 50", "no comparison"),
            ("latency.p99 <= 5", "`latency.p99` is not a metric"),
            ("delivery.p101 <= 5", "`delivery.p101` is not a metric"),
            ("delivery.p99 <= fast", "`fast` is not a value"),
            ("failed == none", "`none` is not a value"),
        ] {
            let e = s.parse::<Threshold>().unwrap_err();
            assert!(e.why.contains(why), "{s}: {e}");
            assert_eq!(e.given, s);
        }
    }

    #[test]
    fn outcomes_compare_exactly_and_fail_without_data() {
        let th = t("delivery.p99 <= 50ms");
        assert!(Outcome::of(th, Some(50.0)).pass);
        assert!(!Outcome::of(th, Some(50.001)).pass);
        assert!(!Outcome::of(th, None).pass);
        assert!(Outcome::of(t("failed == 0"), Some(0.0)).pass);
    }
}
