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
pub use rtbench_record::load::{Counters, Percentiles};

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
    /// From a connection's loss (or failed attempt) to its reconnection
    /// being open: backoff and connect, as a client waits through it.
    pub reconnect: Hist,
    /// From a frame's arrival in the client's socket to the worker's read
    /// of it: the load generator's own delay, outside every latency above
    /// that the kernel's receive time stamps (`rx_time.rs`).
    pub read_wait: Hist,
    /// How late each arrival started against its schedule: the self-check
    /// judges the client by its p99 (`selfcheck::arrival_lag_reason`).
    pub arrival_lag: Hist,
}

impl Default for Hists {
    fn default() -> Hists {
        Hists {
            connect: new_hist(),
            connect_attempt: new_hist(),
            delivery: new_hist(),
            echo: new_hist(),
            reconnect: new_hist(),
            read_wait: new_hist(),
            arrival_lag: new_hist(),
        }
    }
}

impl Hists {
    pub const NAMES: [&'static str; 7] = [
        "connect",
        "connect_attempt",
        "delivery",
        "echo",
        "reconnect",
        "read_wait",
        "arrival_lag",
    ];

    pub fn get(&self, name: &str) -> &Hist {
        match name {
            "connect" => &self.connect,
            "connect_attempt" => &self.connect_attempt,
            "delivery" => &self.delivery,
            "reconnect" => &self.reconnect,
            "read_wait" => &self.read_wait,
            "arrival_lag" => &self.arrival_lag,
            _ => &self.echo,
        }
    }

    pub fn get_mut(&mut self, name: &str) -> &mut Hist {
        match name {
            "connect" => &mut self.connect,
            "connect_attempt" => &mut self.connect_attempt,
            "delivery" => &mut self.delivery,
            "reconnect" => &mut self.reconnect,
            "read_wait" => &mut self.read_wait,
            "arrival_lag" => &mut self.arrival_lag,
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

/// Writes the histograms: V2+deflate binary (`.hdr`) and percentile text (`.txt`).
pub fn write_histograms(dir: &std::path::Path, hists: &Hists) -> std::io::Result<()> {
    let hdir = dir.join("histograms");
    std::fs::create_dir_all(&hdir)?;
    for name in Hists::NAMES {
        let h = hists.get(name);
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(h, &mut bytes)
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        std::fs::write(hdir.join(format!("{name}.hdr")), bytes)?;
        std::fs::write(hdir.join(format!("{name}.txt")), percentile_table(h))?;
    }
    Ok(())
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
