//! The open-model arrival schedule: when each connection is due.
//!
//! Every arrival has a scheduled time fixed before the run, whatever happens
//! to earlier connections (Tsung's arrival phases). Workers take every W-th
//! arrival of the one global schedule, so W workers together follow it
//! exactly and each keeps an even share of the rate.

use rtbench_record::scenario::{Phase, phase_arrivals};

/// Arrival `index` is due `offset_ns` after the run's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub index: u64,
    pub offset_ns: u64,
}

/// The arrivals of `phases` that worker `worker` of `workers` makes.
pub fn arrivals(phases: &[Phase], worker: u64, workers: u64) -> impl Iterator<Item = Arrival> + '_ {
    let mut start_s = 0.0;
    let mut first = 0u64;
    phases
        .iter()
        .flat_map(move |p| {
            let n = phase_arrivals(p);
            let (s, f) = (start_s, first);
            start_s += p.duration_s;
            first += n;
            (0..n).map(move |k| Arrival {
                index: f + k,
                offset_ns: ((s + k as f64 / p.rate) * 1e9) as u64,
            })
        })
        .filter(move |a| a.index % workers == worker)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(duration_s: f64, rate: f64, max_users: Option<u64>) -> Phase {
        Phase {
            duration_s,
            rate,
            max_users,
        }
    }

    #[test]
    fn phases_follow_each_other_at_their_rates() {
        let ph = [phase(1.0, 4.0, None), phase(2.0, 2.0, Some(3))];
        let all: Vec<Arrival> = arrivals(&ph, 0, 1).collect();
        let offsets: Vec<u64> = all.iter().map(|a| a.offset_ns / 1_000_000).collect();
        assert_eq!(offsets, vec![0, 250, 500, 750, 1000, 1500, 2000]);
        assert_eq!(all.last().unwrap().index, 6);
    }

    #[test]
    fn workers_split_the_schedule_exactly() {
        let ph = [phase(3.0, 1000.0, None)];
        let mut merged: Vec<Arrival> = (0..3)
            .flat_map(|w| arrivals(&ph, w, 3).collect::<Vec<_>>())
            .collect();
        merged.sort_by_key(|a| a.index);
        assert_eq!(merged, arrivals(&ph, 0, 1).collect::<Vec<_>>());
    }
}
