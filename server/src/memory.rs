//! Memory that comes back: what the server does so that its RSS returns
//! most of the way to its base once a peak of connections has closed.
//!
//! Two parts, chosen by measuring (`ARCHITECTURE.md`, "Memory after a
//! peak"). The tables a peak grows (the slab, the index, the names, the
//! role sets) shrink as they empty, each in its own module. What they free
//! goes back to glibc's malloc, which keeps it: small chunks freed in the
//! middle of an arena are never returned by themselves, and a freed large
//! block raises the threshold under which later large blocks come from the
//! arenas instead of their own mappings. So:
//! - `configure` fixes malloc's mmap threshold (which also stops it from
//!   moving): every table of 128 KiB or more has a mapping of its own,
//!   resized in place (`mremap`) as it grows and shrinks, and unmapped
//!   when freed; and an arena's free top goes back past 32 KiB, no pad kept;
//! - `Peak` notices when a reactor's connections have fallen to half of
//!   what they were, and `give_back` then asks malloc to return the free
//!   pages of every arena (`malloc_trim`), on a thread of its own so no
//!   reactor waits on it.

use std::sync::atomic::{AtomicBool, Ordering};

/// Allocations from this size up get a mapping of their own.
const MMAP_THRESHOLD: i32 = 128 * 1024;
/// Free memory at the top of an arena beyond this goes back at once (with
/// no pad kept above it): a peak's last pages are not kept for the next.
const TRIM_THRESHOLD: i32 = 32 * 1024;

/// Sets malloc up for memory that comes back (glibc only; elsewhere the
/// allocator's own behaviour stands). Called once, first thing in `main`.
pub fn configure() {
    if let Err(e) = rtbench_sys::malloc::set_thresholds(MMAP_THRESHOLD, TRIM_THRESHOLD) {
        eprintln!("rtbench-server: memory after a peak may not come back: {e}");
    }
}

/// A trim is under way: one at a time.
static TRIMMING: AtomicBool = AtomicBool::new(false);

/// Returns the free pages of every malloc arena to the kernel, on a thread
/// of its own (it locks each arena in turn while it walks it).
pub fn give_back() {
    if TRIMMING.swap(true, Ordering::AcqRel) {
        return;
    }
    let started = std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(|| {
            rtbench_sys::malloc::trim();
            TRIMMING.store(false, Ordering::Release);
        });
    if started.is_err() {
        TRIMMING.store(false, Ordering::Release);
    }
}

/// A reactor's load since its last trim (its connections and their pending
/// deadlines): the most it had, and whether it has fallen far enough for a
/// trim to be worth it.
#[derive(Debug, Default)]
pub struct Peak {
    most: usize,
    /// A trim was made on the way down: one more is due at none.
    falling: bool,
}

/// A peak below this load is not worth a trim.
const WORTH: usize = 1024;

impl Peak {
    /// Notes the load now (`held`); true when it is time to give memory
    /// back: it has fallen to half a peak of `WORTH` or more, or to none
    /// after such a fall.
    pub fn fallen(&mut self, held: usize) -> bool {
        self.most = self.most.max(held);
        let halved = self.most >= WORTH && held <= self.most / 2;
        let emptied = self.falling && held == 0;
        if halved || emptied {
            self.most = held;
            self.falling = held > 0;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_is_due_at_each_halving_of_a_large_enough_peak_and_at_none() {
        let mut p = Peak::default();
        assert!(!p.fallen(1000));
        assert!(!p.fallen(0), "a peak of 1,000 is not worth it");
        assert!(!p.fallen(10_000));
        assert!(!p.fallen(5_001));
        assert!(p.fallen(5_000));
        assert!(!p.fallen(4_000), "from 5,000 now");
        assert!(p.fallen(2_500));
        assert!(p.fallen(1_000));
        assert!(!p.fallen(600), "from 1,000: below the peak worth a trim");
        assert!(p.fallen(0), "the last of a fall");
        assert!(!p.fallen(0));
        assert!(!p.fallen(1));
        assert!(
            !p.fallen(0),
            "one connection coming and going is not a fall"
        );
    }
}
