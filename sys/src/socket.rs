//! Socket options std and socket2 do not set.

use std::os::fd::{AsFd, AsRawFd};

use crate::Result;

/// IP_BIND_ADDRESS_NO_PORT: a `bind` to a source address takes the address
/// now and the port at connect time, so one source port serves every
/// destination. Without it each bind reserves a port of its own, and a
/// source address runs out at one port range of connections in all, not
/// per server address.
pub fn bind_address_no_port(socket: &impl AsFd) -> Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: the fd is open (borrowed for the call); the value is a c_int
    // and its size is passed with it.
    syscall!(
        "setsockopt(IP_BIND_ADDRESS_NO_PORT)",
        setsockopt(
            socket.as_fd().as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    )?;
    Ok(())
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
