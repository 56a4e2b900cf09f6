//! Parsers for the values of the xtask's flags, shared by every task's
//! command line. They exist so a bad value is refused with what was wanted
//! (clap names the flag and the value around the message) instead of being
//! cast into something else: `--connections -5` once silently became 0.

/// A whole number of 1 or more: counts of connections, processes, pairs.
pub fn whole_number_from_1<N: std::str::FromStr + PartialOrd + From<u8>>(
    v: &str,
) -> Result<N, String> {
    v.parse::<N>()
        .ok()
        .filter(|n| *n >= N::from(1))
        .ok_or_else(|| "not a whole number of 1 or more".to_string())
}

/// A whole number, 0 included: a seed.
pub fn whole_number(v: &str) -> Result<u64, String> {
    v.parse::<u64>()
        .map_err(|_| "not a whole number of 0 or more".to_string())
}

/// A finite number above 0: a rate, a scale, seconds of a measurement.
pub fn positive_number(v: &str) -> Result<f64, String> {
    v.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x > 0.0)
        .ok_or_else(|| "not a number above 0".to_string())
}

/// A finite number of 0 or more: seconds of a hold, which may be none.
pub fn number_from_0(v: &str) -> Result<f64, String> {
    v.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x >= 0.0)
        .ok_or_else(|| "not a number of 0 or more".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_refuse_what_is_not_a_count() {
        assert_eq!(whole_number_from_1::<u64>("19000"), Ok(19_000));
        for bad in ["-5", "0", "abc", "1.5", "", "1e6"] {
            assert!(whole_number_from_1::<u64>(bad).is_err(), "{bad}");
        }
        assert!(whole_number_from_1::<u32>("4294967296").is_err());
        assert_eq!(whole_number("0"), Ok(0));
        assert!(whole_number("-1").is_err());
    }

    #[test]
    fn numbers_refuse_what_is_not_finite_or_in_range() {
        assert_eq!(positive_number("0.25"), Ok(0.25));
        for bad in ["0", "-1", "nan", "inf", "x"] {
            assert!(positive_number(bad).is_err(), "{bad}");
        }
        assert_eq!(number_from_0("0"), Ok(0.0));
        assert!(number_from_0("-0.5").is_err());
    }
}
