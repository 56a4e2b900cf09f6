//! What a run counts and the latency histograms it keeps.
//!
//! Latencies are recorded in microseconds into HDR histograms (3 significant
//! digits, 1 µs to 1 hour), which merge exactly: a worker ships its histograms
//! as V2+deflate base64 and the controller adds them, so the merged percentiles
//! are those of all samples, not an average of averages.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

pub type Hist = Histogram<u64>;

pub fn new_hist() -> Hist {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

/// Records a latency in nanoseconds (clamped to the histogram's range).
pub fn record_ns(h: &mut Hist, ns: u64) {
    h.saturating_record((ns / 1000).max(1));
}

pub fn encode(h: &Hist) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .expect("in-memory serialization");
    STANDARD.encode(bytes)
}

pub fn decode(s: &str) -> Result<Hist, String> {
    let bytes = STANDARD
        .decode(s)
        .map_err(|e| format!("histogram is not base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| format!("histogram does not decode: {e:?}"))
}

/// Adds `from` into `into`.
pub fn merge(into: &mut Hist, from: &Hist) {
    into.add(from).expect("histograms share their bounds");
}

/// Percentiles in milliseconds, for summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

pub fn percentiles_ms(h: &Hist) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Percentiles {
        count: h.len(),
        p50: ms(h.value_at_quantile(0.5)),
        p90: ms(h.value_at_quantile(0.9)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
        mean: h.mean() / 1000.0,
    }
}

/// HdrHistogram's classic percentile distribution text, in milliseconds.
pub fn percentile_table(h: &Hist) -> String {
    let mut s = format!(
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value(ms)", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        for v in h.iter_quantiles(1) {
            let q = v.quantile_iterated_to();
            let inv = if q < 1.0 {
                format!("{:.2}", 1.0 / (1.0 - q))
            } else {
                "inf".into()
            };
            s.push_str(&format!(
                "{:>12.3} {:>14.12} {:>10} {:>14}\n",
                v.value_iterated_to() as f64 / 1000.0,
                q,
                v.count_since_last_iteration(),
                inv
            ));
        }
    }
    let p = percentiles_ms(h);
    s.push_str(&format!(
        "#[Mean = {:.3}, Max = {:.3}, Total count = {}]\n",
        p.mean, p.max, p.count
    ));
    s
}

/// Counters a worker keeps; the controller adds them up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub attempted: u64,
    pub connected: u64,
    /// Connections open now (a gauge).
    pub open: u64,
    /// Failed connection attempts by reason (`refused`, `timeout`, `http_503`,
    /// `error_frame_1008`, `closed_1013`, `ports_exhausted`, ...).
    pub failed: BTreeMap<String, u64>,
    /// Connections the server closed while they were held, by close code.
    pub closed_by_server: BTreeMap<String, u64>,
    /// `error` frames received, by code.
    pub error_frames: BTreeMap<String, u64>,
    pub reconnects: u64,
    pub frames_in: u64,
    pub bytes_in: u64,
    pub frames_out: u64,
    pub bytes_out: u64,
    pub pings: u64,
    /// Pings not sent because the socket would block (the client fell behind).
    pub pings_skipped: u64,
    pub pongs: u64,
    pub deliveries: u64,
    pub duplicates: u64,
    /// Events a connection received that its channels and roles should have
    /// kept from it. Must stay 0.
    pub misdelivered: u64,
    /// Raw protocol: echo messages sent, and received back (`echoes`).
    #[serde(default)]
    pub echoes_sent: u64,
    pub echoes: u64,
    /// Syscalls on held connections and the hold reactor's wake-ups, so a
    /// record shows what each delivery and ping cost the client.
    #[serde(default)]
    pub reads: u64,
    #[serde(default)]
    pub writes: u64,
    #[serde(default)]
    pub wakeups: u64,
}

impl Counters {
    pub fn add(&mut self, o: &Counters) {
        self.attempted += o.attempted;
        self.connected += o.connected;
        self.open += o.open;
        for (into, from) in [
            (&mut self.failed, &o.failed),
            (&mut self.closed_by_server, &o.closed_by_server),
            (&mut self.error_frames, &o.error_frames),
        ] {
            for (k, v) in from {
                *into.entry(k.clone()).or_default() += v;
            }
        }
        self.reconnects += o.reconnects;
        self.frames_in += o.frames_in;
        self.bytes_in += o.bytes_in;
        self.frames_out += o.frames_out;
        self.bytes_out += o.bytes_out;
        self.pings += o.pings;
        self.pings_skipped += o.pings_skipped;
        self.pongs += o.pongs;
        self.deliveries += o.deliveries;
        self.duplicates += o.duplicates;
        self.misdelivered += o.misdelivered;
        self.echoes += o.echoes;
        self.echoes_sent += o.echoes_sent;
        self.reads += o.reads;
        self.writes += o.writes;
        self.wakeups += o.wakeups;
    }

    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    pub fn fail(&mut self, reason: impl Into<String>) {
        *self.failed.entry(reason.into()).or_default() += 1;
    }
}

/// The histograms a run keeps, by name.
pub struct Hists {
    /// Connect latency from each arrival's scheduled time (coordinated omission corrected).
    pub connect: Hist,
    /// Connect latency from the actual attempt.
    pub connect_attempt: Hist,
    /// Publisher stamp to receipt.
    pub delivery: Hist,
    /// Raw protocol: echo round trip.
    pub echo: Hist,
}

impl Default for Hists {
    fn default() -> Hists {
        Hists {
            connect: new_hist(),
            connect_attempt: new_hist(),
            delivery: new_hist(),
            echo: new_hist(),
        }
    }
}

impl Hists {
    pub const NAMES: [&'static str; 4] = ["connect", "connect_attempt", "delivery", "echo"];

    pub fn get(&self, name: &str) -> &Hist {
        match name {
            "connect" => &self.connect,
            "connect_attempt" => &self.connect_attempt,
            "delivery" => &self.delivery,
            _ => &self.echo,
        }
    }

    pub fn get_mut(&mut self, name: &str) -> &mut Hist {
        match name {
            "connect" => &mut self.connect,
            "connect_attempt" => &mut self.connect_attempt,
            "delivery" => &mut self.delivery,
            _ => &mut self.echo,
        }
    }

    pub fn encode(&self) -> BTreeMap<String, String> {
        Self::NAMES
            .iter()
            .map(|n| (n.to_string(), encode(self.get(n))))
            .collect()
    }

    /// Adds encoded histograms (as workers send them) into these.
    pub fn add_encoded(&mut self, encoded: &BTreeMap<String, String>) -> Result<(), String> {
        for (name, b64) in encoded {
            if !Self::NAMES.contains(&name.as_str()) {
                return Err(format!("unknown histogram `{name}`"));
            }
            merge(self.get_mut(name), &decode(b64)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_merged_from_two_workers_equal_the_combined_one() {
        let (mut a, mut b, mut all) = (new_hist(), new_hist(), new_hist());
        for i in 0..10_000u64 {
            let ns = crate::users::mix(i) % 5_000_000_000;
            record_ns(if i % 3 == 0 { &mut a } else { &mut b }, ns);
            record_ns(&mut all, ns);
        }
        let mut merged = decode(&encode(&a)).unwrap();
        merge(&mut merged, &decode(&encode(&b)).unwrap());
        assert_eq!(merged, all);
        assert_eq!(percentiles_ms(&merged), percentiles_ms(&all));
        assert!(percentile_table(&merged).contains("Total count = 10000"));
    }

    #[test]
    fn counters_add_up() {
        let mut a = Counters {
            attempted: 2,
            ..Counters::default()
        };
        a.fail("refused");
        let mut b = Counters {
            attempted: 3,
            ..Counters::default()
        };
        b.fail("refused");
        b.fail("timeout");
        a.add(&b);
        assert_eq!(a.attempted, 5);
        assert_eq!(a.failed_total(), 3);
        assert_eq!(a.failed["refused"], 2);
    }
}
