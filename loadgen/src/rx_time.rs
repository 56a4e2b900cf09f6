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
use std::os::fd::AsRawFd;

/// Asks the kernel to stamp what `sock` receives with the time it arrived.
pub fn enable(sock: &impl AsRawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads `on` for the length given.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads into `buf` like `read`, and returns when the kernel received the
/// newest of those bytes (CLOCK_REALTIME ns), when it says.
pub fn read(sock: &TcpStream, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    // Room for one timespec control message, aligned as cmsghdr wants.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: recvmsg writes at most iov_len bytes into buf and at most
    // msg_controllen into control.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((n as usize, stamp(&msg)))
}

/// The `SCM_TIMESTAMPNS` message among the control messages of `msg`.
fn stamp(msg: &libc::msghdr) -> Option<u64> {
    // SAFETY: the CMSG macros walk the control buffer recvmsg filled, within
    // the length it reported.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                return Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
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
