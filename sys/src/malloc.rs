//! glibc malloc's knobs, for a process that wants its memory back after a
//! peak (the server: `server/src/memory.rs` says why these values). On a
//! target without glibc each call does nothing and says so.

use crate::{Error, Result};

/// Sets malloc's mmap threshold (allocations from this size get a mapping
/// of their own; fixing it also stops it from moving), its trim threshold
/// (free memory at the top of an arena beyond this goes back at once) and
/// a top pad of 0. Call before other threads exist.
pub fn set_thresholds(mmap_bytes: i32, trim_bytes: i32) -> Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (name, param, value) in [
        (
            "mallopt(M_MMAP_THRESHOLD)",
            libc::M_MMAP_THRESHOLD,
            mmap_bytes,
        ),
        (
            "mallopt(M_TRIM_THRESHOLD)",
            libc::M_TRIM_THRESHOLD,
            trim_bytes,
        ),
        ("mallopt(M_TOP_PAD)", libc::M_TOP_PAD, 0),
    ] {
        // SAFETY: mallopt only changes malloc's parameters; it returns 1 on
        // success and 0 on a refused value (it sets no errno).
        if unsafe { libc::mallopt(param, value) } != 1 {
            return Err(Error::Call {
                call: name,
                error: std::io::Error::from(std::io::ErrorKind::InvalidInput),
            });
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = (mmap_bytes, trim_bytes);
    Ok(())
}

/// Returns the free pages of every malloc arena to the kernel
/// (`malloc_trim(0)`); true when some memory went back. It locks each arena
/// in turn while it walks it: call it off the hot path.
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe and takes no pointers.
    return unsafe { libc::malloc_trim(0) } == 1;
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn thresholds_are_accepted_and_a_trim_runs() {
        super::set_thresholds(128 * 1024, 32 * 1024).unwrap();
        let big: Vec<Vec<u8>> = (0..64).map(|_| vec![1u8; 4096]).collect();
        drop(big);
        let _ = super::trim();
    }
}
