//! Wall-clock time as Appwrite writes it, without a date library.

/// `2026-11-28T00:00:00.000+00:00` for `unix_ns` nanoseconds since the epoch:
/// the format of an event's `timestamp`.
pub fn appwrite_timestamp(unix_ns: u64) -> String {
    let (date, time) = civil(unix_ns / 1_000_000_000);
    format!("{date}T{time}.{:03}+00:00", unix_ns / 1_000_000 % 1000)
}

/// `2026-11-28T000000Z`: compact UTC, for names of files and directories.
pub fn compact_utc(unix_ns: u64) -> String {
    let (date, time) = civil(unix_ns / 1_000_000_000);
    format!("{date}T{}Z", time.replace(':', ""))
}

/// Wall-clock nanoseconds since the Unix epoch.
///
/// `RTBENCH_CLOCK_SKEW_NS` (read once) moves this process's clock by that
/// many nanoseconds: it plays a machine whose clock is off, so a test can
/// check that remote workers' clock offsets are estimated and applied with
/// the right sign.
pub fn now_ns() -> u64 {
    static SKEW: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let skew = *SKEW.get_or_init(|| {
        std::env::var("RTBENCH_CLOCK_SKEW_NS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    });
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (ns as i64 + skew) as u64
}

/// (`YYYY-MM-DD`, `hh:mm:ss`) from seconds since the epoch (Howard Hinnant's
/// civil-from-days algorithm).
fn civil(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem / 60 % 60, rem % 60),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(appwrite_timestamp(0), "1970-01-01T00:00:00.000+00:00");
        assert_eq!(
            appwrite_timestamp(1_795_824_000_007_000_000),
            "2026-11-28T00:00:00.007+00:00"
        );
        assert_eq!(
            appwrite_timestamp((951_782_400 + 3661) * 1_000_000_000 + 999_000_000),
            "2000-02-29T01:01:01.999+00:00"
        );
        assert_eq!(
            compact_utc(1_795_824_000_000_000_000 + 3_723_000_000_000),
            "2026-11-28T010203Z"
        );
    }
}
