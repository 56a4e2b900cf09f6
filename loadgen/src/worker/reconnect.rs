//! When a lost client tries again: the Appwrite SDKs' back-off, or the same
//! spread by a reproducible jitter. Pure arithmetic, kept apart from the
//! attempts it times so the schedule can be read and tested on its own.

use std::time::Duration;

use rtbench_record::scenario::Reconnect;

/// The SDKs' reconnect schedule: 1 s (5 tries), 5 s (to 15), 10 s (to 100), then 60 s.
fn sdk_backoff(attempt: u32) -> Duration {
    Duration::from_secs(match attempt {
        0..=5 => 1,
        6..=15 => 5,
        16..=100 => 10,
        _ => 60,
    })
}

/// A draw in [0, 1) from (arrival, try): reproducible run to run.
fn unit(arrival: u64, tries: u32) -> f64 {
    // splitmix64's finalizer.
    let mut z = arrival.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(tries);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as f64 / (u64::MAX as f64 + 1.0)
}

/// How long a client waits before its next try, after `tries` failed or
/// lost ones; `None` when the scenario does not reconnect.
pub(super) fn wait(policy: Reconnect, arrival: u64, tries: u32) -> Option<Duration> {
    match policy {
        Reconnect::None => None,
        Reconnect::Sdk => Some(sdk_backoff(tries + 1)),
        Reconnect::SdkJitter => Some(sdk_backoff(tries + 1).mul_f64(2.0 * unit(arrival, tries))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_schedule_steps_at_its_tries_and_jitter_stays_within_twice_it() {
        assert_eq!(wait(Reconnect::None, 7, 0), None);
        let secs = |tries| wait(Reconnect::Sdk, 7, tries).unwrap().as_secs();
        assert_eq!(
            [secs(0), secs(5), secs(14), secs(15), secs(99), secs(100)],
            [1, 5, 5, 10, 10, 60]
        );
        for tries in [0, 5, 15, 100] {
            let jittered = wait(Reconnect::SdkJitter, 7, tries).unwrap();
            assert!(jittered < 2 * wait(Reconnect::Sdk, 7, tries).unwrap());
            assert_eq!(
                Some(jittered),
                wait(Reconnect::SdkJitter, 7, tries),
                "reproducible"
            );
        }
    }
}
