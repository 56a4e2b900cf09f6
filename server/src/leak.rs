//! A leak planted on purpose, for tests only: the soak's leak check must be
//! seen to fire end to end (`xtask/tests/soak.rs`), and only a server that
//! really leaks can show that. `RTBENCH_LEAK_FDS_PER_CLOSE=N` (read once;
//! unset or 0, the default: nothing) makes every closed connection leave N
//! descriptors open (`/dev/null`, never closed).

use std::sync::OnceLock;

/// Descriptors to leak per closed connection (the environment's, read once).
fn per_close() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("RTBENCH_LEAK_FDS_PER_CLOSE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    })
}

/// A connection was closed: leak what the environment asks for.
pub fn on_close() {
    for _ in 0..per_close() {
        if let Ok(f) = std::fs::File::open("/dev/null") {
            std::mem::forget(f);
        }
    }
}
