//! When the kernel received what a read returns.
//!
//! A client that timed a delivery when it got round to reading it would
//! measure its own scheduling as well as the server: on a machine the server
//! keeps busy, a worker waits for a core, and every frame it then reads
//! looks late by that wait. With `SO_TIMESTAMPNS` on a socket, each read
//! also says when the kernel received the newest bytes it returns (on
//! loopback: the moment the server's write reached this socket, in the
//! writer's own softirq). Deliveries and pongs are timed by it, so the
//! worker may read in batches (`worker/reactor.rs`) without moving the
//! figures, and how long bytes waited for the worker to read them is
//! measured on its own (`read_wait`, the self-check's figure).
//!
//! The kernel turns stamping on a moment after the first socket asks for it
//! (deferred work): a read of bytes that arrived before has no stamp, and
//! is timed when read.
//!
//! When several frames arrive before a read, the kernel keeps the newest
//! arrival's time for the bytes it merged: every frame of that read is timed
//! by it, which can only overstate the earlier frames' latency.

use std::io;
use std::net::TcpStream;
use std::os::fd::AsFd;

/// Asks the kernel to stamp what `sock` receives with the time it arrived.
pub fn enable(sock: &impl AsFd) -> io::Result<()> {
    Ok(rtbench_sys::socket::receive_timestamps(sock)?)
}

/// Reads into `buf` like `read`, and returns when the kernel received the
/// newest of those bytes (CLOCK_REALTIME ns), when it says.
pub fn read(sock: &TcpStream, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    rtbench_sys::socket::recv_stamped(sock, buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_read_says_when_its_bytes_arrived() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut tx = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (rx, _) = l.accept().unwrap();
        enable(&rx).unwrap();
        // The kernel turns stamping on in deferred work when the first
        // socket asks: give it that moment.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let before = crate::sys::now_ns();
        tx.write_all(b"hello").unwrap();
        // Read well after the bytes arrived: the stamp is the arrival, not the read.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let before_read = crate::sys::now_ns();
        let mut buf = [0u8; 16];
        let (n, at) = read(&rx, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        let at = at.expect("the kernel stamps a socket that asked");
        assert!(at >= before, "stamped {at}, written after {before}");
        assert!(
            before_read - at >= 40_000_000,
            "the stamp is the arrival, 50 ms before the read: {} ns before",
            before_read - at
        );
    }

    #[test]
    fn a_socket_that_did_not_ask_gets_no_stamp() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut tx = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (rx, _) = l.accept().unwrap();
        tx.write_all(b"x").unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(read(&rx, &mut buf).unwrap(), (1, None));
    }
}
