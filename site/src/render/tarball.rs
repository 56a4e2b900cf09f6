//! A run's raw files as one download: an uncompressed POSIX (ustar) tar,
//! written here in a few lines rather than with a crate, and the same bytes
//! for the same files (no times, owners or modes from this machine), so a
//! re-rendered site does not change a run's download.

use anyhow::{Result, anyhow};
/// The archive of `files` (path inside the archive, contents).
pub fn tar(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for (path, data) in files {
        out.extend_from_slice(&header(path, data.len())?);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    // The end: two empty blocks.
    out.resize(out.len() + 1024, 0);
    Ok(out)
}

fn header(path: &str, size: usize) -> Result<[u8; 512]> {
    let (prefix, name) = split_name(path).ok_or_else(|| anyhow!("{path}: too long for a tar"))?;
    let mut h = [0u8; 512];
    let mut put = |at: usize, bytes: &[u8]| h[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, name.as_bytes());
    put(100, b"0000644\0");
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{size:011o}\0").as_bytes());
    put(136, b"00000000000\0");
    // The checksum is summed with its own field as spaces.
    put(148, b"        ");
    put(156, b"0");
    put(257, b"ustar\0");
    put(263, b"00");
    put(345, prefix.as_bytes());
    let sum: u32 = h.iter().map(|b| *b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    Ok(h)
}

/// ustar's name (100 bytes) and prefix (155), split at a `/`.
fn split_name(path: &str) -> Option<(&str, &str)> {
    if path.len() <= 100 {
        return Some(("", path));
    }
    path.char_indices()
        .filter(|(_, c)| *c == '/')
        .map(|(i, _)| (&path[..i], &path[i + 1..]))
        .find(|(p, n)| p.len() <= 155 && n.len() <= 100 && !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read back with the system's `tar`, which checks every checksum.
    #[test]
    fn system_tar_reads_it_back() {
        let long = format!("{}/file.txt", "d".repeat(120));
        let files = vec![
            ("run/summary.json".to_string(), b"{}\n".to_vec()),
            (long.clone(), vec![b'x'; 700]),
        ];
        let bytes = tar(&files).unwrap();
        assert_eq!(bytes.len(), 512 + 512 + 512 + 1024 + 1024);
        let dir = std::env::temp_dir().join(format!("rtbench-tar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.tar"), &bytes).unwrap();
        let out = std::process::Command::new("tar")
            .arg("-tvf")
            .arg(dir.join("a.tar"))
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&out.stdout);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            listing.contains("run/summary.json") && listing.contains(&long),
            "{listing}"
        );
        assert!(listing.contains(" 700 "), "{listing}");
        assert!(split_name(&"x".repeat(101)).is_none());
    }
}
