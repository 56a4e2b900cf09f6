//! A broadcast's figures: one event sent to every connection, timed on its
//! own (a scenario with `per_event`). Each event's burst (from its
//! publishing to its first and its last delivery, and deliveries per second
//! between them), their spread over the run's events, and the bursts read
//! against the machine's bare-TCP fan-out at one write per delivery: the
//! time as many single writes take there.

use serde::{Deserialize, Serialize};

use crate::load::Burst;
use crate::roofline::{Roofline, Spread};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Broadcast {
    /// Every event, in publishing order.
    pub events: Vec<Burst>,
    /// Over the events: time to first and to last delivery, deliveries/s.
    pub to_first_ms: Spread,
    pub to_last_ms: Spread,
    pub per_second: Spread,
    /// The bursts beside bare TCP, when the host has a roofline.
    pub bare_tcp: Option<BareTcp>,
}

/// The same number of deliveries as single writes on bare TCP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BareTcp {
    /// The roofline record read (its directory name).
    pub roofline: String,
    /// Its fan-out figure at one write per message, for the size nearest
    /// the events' payload.
    pub size: usize,
    pub one_write_per_s: f64,
    /// Deliveries of the median event, and the time as many single writes
    /// take at that rate.
    pub deliveries: u64,
    pub writes_ms: f64,
    /// The median time to last delivery over `writes_ms`: 1 is bare TCP's
    /// pace, from the publisher's stamp to the last byte in a socket.
    pub to_last_ratio: f64,
}

impl Broadcast {
    /// The figures of `bursts` (none: not a broadcast), read against
    /// `roofline` (its name and record) at `bytes` per message.
    pub fn of(
        bursts: &[Burst],
        roofline: Option<(&str, &Roofline)>,
        bytes: usize,
    ) -> Option<Broadcast> {
        if bursts.is_empty() {
            return None;
        }
        let spread = |f: fn(&Burst) -> f64| Spread::of(bursts.iter().map(f).collect());
        let to_last_ms = spread(|b| b.to_last_ms);
        let deliveries = Spread::of(bursts.iter().map(|b| b.received as f64).collect()).median;
        let bare_tcp = roofline.and_then(|(name, r)| {
            // Each event goes to every connection: as many as deliveries.
            let f = r.measured.fanout_for(bytes, 1, deliveries.round() as u64)?;
            let one = f.deliveries_per_s.median;
            let writes_ms = 1000.0 * deliveries / one;
            (one > 0.0).then(|| BareTcp {
                roofline: name.to_string(),
                size: f.size,
                one_write_per_s: one,
                deliveries: deliveries.round() as u64,
                writes_ms,
                to_last_ratio: to_last_ms.median / writes_ms,
            })
        });
        Some(Broadcast {
            events: bursts.to_vec(),
            to_first_ms: spread(|b| b.to_first_ms),
            per_second: spread(|b| b.per_second),
            to_last_ms,
            bare_tcp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roofline::{Fanout, Measured};

    fn burst(seq: u64, to_last_ms: f64) -> Burst {
        Burst {
            seq,
            received: 100_000,
            to_first_ms: 0.5,
            to_last_ms,
            per_second: 100_000.0 / (to_last_ms / 1000.0),
        }
    }

    #[test]
    fn bursts_read_against_as_many_single_writes() {
        let roofline = Roofline {
            format_version: 1,
            host: "vm".into(),
            measured_at: String::new(),
            kernel: String::new(),
            cores: 2,
            mem_total_kib: 0,
            ehash_buckets: None,
            measured: Measured {
                fanout: [
                    (200, 1, 150_000.0),
                    (400, 1, 125_000.0),
                    (400, 4, 500_000.0),
                ]
                .map(|(size, per_write, rate)| Fanout {
                    size,
                    per_write,
                    connections: 9000,
                    deliveries_per_s: Spread::of(vec![rate]),
                })
                .to_vec(),
                ..Measured::default()
            },
        };
        let bursts = [burst(0, 900.0), burst(1, 1000.0), burst(2, 2000.0)];
        let b = Broadcast::of(&bursts, Some(("r", &roofline)), 380).unwrap();
        assert_eq!(b.to_last_ms.median, 1000.0);
        assert_eq!(b.to_last_ms.max, 2000.0);
        let bare = b.bare_tcp.unwrap();
        assert_eq!((bare.size, bare.one_write_per_s), (400, 125_000.0));
        // 100,000 single writes at 125,000/s: 800 ms; the median event took 1000.
        assert_eq!(bare.writes_ms, 800.0);
        assert_eq!(bare.to_last_ratio, 1.25);
        assert!(Broadcast::of(&[], Some(("r", &roofline)), 380).is_none());
        assert!(
            Broadcast::of(&bursts, None, 380)
                .unwrap()
                .bare_tcp
                .is_none()
        );
    }
}
