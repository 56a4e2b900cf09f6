//! The worker's side of the ready barrier: before it says `ready`, it shows
//! that it can reach every target, so a worker that cannot reach the server
//! refuses the run by name instead of failing every arrival once it starts.

use std::time::Duration;

use rtbench_record::endpoint::Endpoint;
use rtbench_record::scenario::Scenario;

use crate::sys;

/// How long a worker tries to reach a target before it refuses to start.
pub(super) const REACH_TIMEOUT: Duration = Duration::from_secs(5);

/// The ready barrier's check: a TCP connection to every target address
/// (closed at once), so a worker that cannot reach the server says so
/// before the schedule starts rather than failing every arrival.
pub(super) fn reach_targets(sc: &Scenario) -> Result<(), String> {
    let mut addrs: Vec<std::net::SocketAddr> = sc
        .target
        .urls
        .iter()
        .map(|u| Endpoint::parse(u, sc.target.protocol).map(|e| e.addr))
        .collect::<Result<_, _>>()?;
    addrs.sort();
    addrs.dedup();
    for a in addrs {
        std::net::TcpStream::connect_timeout(&a, REACH_TIMEOUT)
            .map_err(|e| format!("cannot reach the target {a} from {}: {e}", sys::hostname()))?;
    }
    Ok(())
}
