//! Socket options std and socket2 do not set.

use std::os::fd::{AsFd, AsRawFd};

use crate::Result;

/// IP_BIND_ADDRESS_NO_PORT: a `bind` to a source address takes the address
/// now and the port at connect time, so one source port serves every
/// destination. Without it each bind reserves a port of its own, and a
/// source address runs out at one port range of connections in all, not
/// per server address.
pub fn bind_address_no_port(socket: &impl AsFd) -> Result<()> {
    turn_on(
        socket,
        "setsockopt(IP_BIND_ADDRESS_NO_PORT)",
        libc::IPPROTO_IP,
        libc::IP_BIND_ADDRESS_NO_PORT,
    )
}

/// SO_TIMESTAMPNS: the kernel stamps what `socket` receives with the time
/// it arrived (CLOCK_REALTIME), which [`recv_stamped`] returns. The kernel
/// turns stamping on a moment after the first socket asks (deferred work).
pub fn receive_timestamps(socket: &impl AsFd) -> Result<()> {
    turn_on(
        socket,
        "setsockopt(SO_TIMESTAMPNS)",
        libc::SOL_SOCKET,
        libc::SO_TIMESTAMPNS,
    )
}

/// Sets the integer socket option `level`/`name` to 1; `call` names it in
/// the error.
fn turn_on(
    socket: &impl AsFd,
    call: &'static str,
    level: libc::c_int,
    name: libc::c_int,
) -> Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: the fd is open (borrowed for the call); the value is a c_int
    // and its size is passed with it.
    syscall!(
        call,
        setsockopt(
            socket.as_fd().as_raw_fd(),
            level,
            name,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    )?;
    Ok(())
}

/// The OS's own error of a hot path's call (no allocation for EAGAIN).
fn os_error(e: crate::Error) -> std::io::Error {
    match e {
        crate::Error::Call { error, .. } => error,
        other => other.into(),
    }
}

/// Reads into `buf` like `read`, and returns when the kernel received the
/// newest of those bytes (CLOCK_REALTIME ns) when the socket asked for
/// stamps ([`receive_timestamps`]) and the bytes carry one.
pub fn recv_stamped(socket: &impl AsFd, buf: &mut [u8]) -> std::io::Result<(usize, Option<u64>)> {
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
    // msg_controllen into control, both owned here.
    let n = syscall!(recvmsg(socket.as_fd().as_raw_fd(), &mut msg, 0)).map_err(os_error)?;
    Ok((n as usize, stamp(&msg)))
}

/// The `SCM_TIMESTAMPNS` message among the control messages of `msg`.
fn stamp(msg: &libc::msghdr) -> Option<u64> {
    // SAFETY: the CMSG macros walk the control buffer recvmsg filled, within
    // the length it reported; the data of a SCM_TIMESTAMPNS is a timespec.
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

/// `send` of one buffer without waiting and without SIGPIPE: a socket's own
/// call, which skips the file layer a `write` or `writev` goes through.
pub fn send_nowait(socket: &impl AsFd, buf: &[u8]) -> std::io::Result<usize> {
    // SAFETY: send reads at most `buf.len()` bytes from `buf`.
    let n = syscall!(send(
        socket.as_fd().as_raw_fd(),
        buf.as_ptr().cast(),
        buf.len(),
        libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
    ))
    .map_err(os_error)?;
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Socket, Type};

    fn option(s: &Socket) -> libc::c_int {
        let mut value: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: an open fd, a c_int to write and its size.
        let ret = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(ret, 0);
        value
    }

    #[test]
    fn the_option_is_set_and_a_socket_without_it_is_refused() {
        let tcp = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        assert_eq!(option(&tcp), 0);
        bind_address_no_port(&tcp).unwrap();
        assert_eq!(option(&tcp), 1);
        // A Unix socket has no IP options: the failure reaches the caller.
        let unix = std::os::unix::net::UnixDatagram::unbound().unwrap();
        let e = bind_address_no_port(&unix).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("setsockopt(IP_BIND_ADDRESS_NO_PORT): Operation not supported"),
            "{e}"
        );
        // Callers speaking io::Result keep its kind and its words.
        let io = std::io::Error::from(e);
        assert_eq!(io.kind(), std::io::ErrorKind::Unsupported);
        assert!(
            io.to_string()
                .starts_with("setsockopt(IP_BIND_ADDRESS_NO_PORT)")
        );
    }
}
