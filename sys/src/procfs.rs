//! Reading /proc: a file with its path in the error, and the two layouts
//! most of its files use (`Name:  value kB` lines; whitespace-separated
//! fields), so each reader states only which value it wants.

use std::path::Path;

use crate::{Error, Result};

/// The whole file, or `Error::Read` naming it.
pub(crate) fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|error| Error::Read {
        path: path.to_path_buf(),
        error,
    })
}

/// The number after `name:` on its line (`MemTotal:  16318420 kB`,
/// `VmHWM:\t  5632 kB`), from `text` read at `path`.
pub(crate) fn named_value(path: &Path, text: &str, name: &str) -> Result<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .ok_or_else(|| Error::format(path, format!("no {name} line")))?
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::format(path, format!("{name} is not a number")))
}

/// Whitespace-separated field `index` (from 0) of `text` as a number.
pub(crate) fn field<T: std::str::FromStr>(
    path: &Path,
    text: &str,
    index: usize,
    what: &str,
) -> Result<T> {
    text.split_whitespace()
        .nth(index)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            Error::format(
                path,
                format!("field {} ({what}) is missing or not a number", index + 1),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_value_is_found_only_as_a_whole_name() {
        let p = Path::new("/proc/meminfo");
        let text = "MemTotal:       16318420 kB\nMemFree:  100 kB\nMemAvailable:    8000000 kB\n";
        assert_eq!(named_value(p, text, "MemTotal").unwrap(), 16_318_420);
        assert_eq!(named_value(p, text, "MemAvailable").unwrap(), 8_000_000);
        // `Mem` is a prefix of every line but the name of none.
        let e = named_value(p, text, "Mem").unwrap_err();
        assert_eq!(e.to_string(), "/proc/meminfo: no Mem line");
        let e = named_value(p, "Slab: lots kB\n", "Slab").unwrap_err();
        assert_eq!(e.to_string(), "/proc/meminfo: Slab is not a number");
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = read(Path::new("/proc/4194305/stat")).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        assert!(
            e.to_string()
                .starts_with("/proc/4194305/stat: No such file"),
            "{e}"
        );
    }
}
