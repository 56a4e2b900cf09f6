//! The one way this crate calls libc: `syscall!(name(args))` makes the call
//! and turns its -1 into an `Error::Call` naming it, with errno as the OS
//! gave it, so no return value goes unread. Each use carries its own SAFETY
//! comment: the macro checks the result, not the arguments.

/// `syscall!(getrusage(who, &mut usage))`: calls `libc::getrusage`, returns
/// `Ok(ret)` or `Err(Error::Call { call: "getrusage", .. })`;
/// `syscall!("setsockopt(IP_BIND_ADDRESS_NO_PORT)", setsockopt(..))` names
/// the call more precisely.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {
        syscall!(stringify!($fn), $fn($($arg),*))
    };
    ($call:expr, $fn:ident ( $($arg:expr),* $(,)? )) => {{
        #[allow(unused_unsafe)]
        let ret = unsafe { libc::$fn($($arg),*) };
        if ret == -1 {
            Err($crate::Error::Call {
                call: $call,
                error: std::io::Error::last_os_error(),
            })
        } else {
            Ok(ret)
        }
    }};
}
