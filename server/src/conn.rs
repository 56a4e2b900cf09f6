//! One WebSocket connection as its reactor keeps it: a slot of a few words.
//!
//! Memory is the point of this module. An idle connection is its socket, the
//! interned ids it is filed under and a few bits; everything else (an
//! incomplete frame, a fragmented message, frames the kernel would not take,
//! subscriptions beyond the connect URL's) lives in an `Extra` that exists
//! only while it is needed. `ARCHITECTURE.md` lists what an idle connection
//! costs, item by item; a compile-time assertion below keeps the slot small.
//!
//! Writing: frames go straight to the socket, several in one `writev`, and
//! only what the kernel would not take is queued, bounded in bytes (a client
//! that stops reading is closed with 1013 instead of growing memory).

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use bytes::{Buf, Bytes};
use std::net::TcpStream;

use crate::intern::Id;
use crate::limits::Window;
use crate::sessions::{GUEST, Session};

/// A connection slot. Free when `sock` is `None`.
pub(crate) struct Conn {
    pub(crate) sock: Option<TcpStream>,
    /// Bumped each time the slot is reused: stale epoll events and timer
    /// entries for an earlier connection in this slot are recognised by it.
    pub(crate) generation: u32,
    pub(crate) flags: Flags,
    /// The project, interned.
    pub(crate) project: Id,
    /// The tick of the pending deadline (0: none), see `wheel.rs`.
    pub(crate) deadline: u32,
    pub(crate) rate: Window,
    /// The reactor second it last sent bytes in (`reactor/idle.rs`): one
    /// silent for `--idle-timeout-s` is closed.
    pub(crate) heard: u32,
    /// Channels the connection is filed under, interned.
    pub(crate) channels: Ids,
    /// Its user and roles, interned (`sessions.rs`): a signed-in
    /// connection holds nothing more than a guest.
    pub(crate) session: Session,
    pub(crate) extra: Option<Box<Extra>>,
}

// An idle connection pays for its slot a million times: keep it at 64 bytes.
const _: () = assert!(std::mem::size_of::<Conn>() == 64);

/// Where a connection stands, in one byte of its slot: set and read only
/// through the methods below, each named for the step it records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flags(u8);

/// One bit of `Flags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Flag {
    /// The connection's close frame is queued: nothing else is sent.
    Closing = 1,
    /// Everything, the close frame included, is written and the write side shut.
    FinSent = 2,
    /// Filed in the index (and holding its names): from registration to the
    /// start of its close.
    Filed = 4,
    /// Still an HTTP request: its head is being read (`reactor/handshake.rs`).
    Handshake = 8,
    /// The connect URL named `account`: its subscription is rebuilt from the
    /// filed channels with it (`subs::url_channels`), with no `Subs` kept.
    UrlAccount = 16,
}

impl Flags {
    /// A connection whose request head is being read.
    pub(crate) const HANDSHAKE: Flags = Flags(Flag::Handshake as u8);

    pub(crate) fn has(self, f: Flag) -> bool {
        self.0 & f as u8 != 0
    }

    pub(crate) fn set(&mut self, f: Flag) {
        self.0 |= f as u8;
    }

    /// Clears `f`; true when it was set.
    pub(crate) fn take(&mut self, f: Flag) -> bool {
        let was = self.has(f);
        self.0 &= !(f as u8);
        was
    }

    pub(crate) fn is_closing(self) -> bool {
        self.has(Flag::Closing)
    }

    pub(crate) fn fin_sent(self) -> bool {
        self.has(Flag::FinSent)
    }

    pub(crate) fn in_handshake(self) -> bool {
        self.has(Flag::Handshake)
    }

    pub(crate) fn url_account(self) -> bool {
        self.has(Flag::UrlAccount)
    }
}

/// What a connection holds only while it needs it.
#[derive(Default)]
pub(crate) struct Extra {
    /// Bytes of a frame that has not fully arrived.
    pub(crate) partial: Vec<u8>,
    /// A fragmented message being assembled, and its opcode (0: none).
    pub(crate) message: Vec<u8>,
    pub(crate) message_opcode: u8,
    /// Frames the kernel would not take yet, and their size in bytes.
    pub(crate) out: VecDeque<Bytes>,
    pub(crate) out_bytes: usize,
    /// The front frame was partly written: it must be finished, whatever else
    /// is dropped, or the byte stream would be corrupt.
    pub(crate) front_started: bool,
    /// The subscriptions, once a message changed them (or when the URL's
    /// cannot be rebuilt from what is filed, see `Flag::UrlAccount`).
    pub(crate) subs: Option<crate::subs::Subs>,
    /// When the frame (or fragmented message) now arriving began: it must
    /// be whole by `--frame-timeout-ms` (a wheel tick, see `wheel.rs`).
    pub(crate) frame_due: u32,
    /// The client's address, during the handshake (admission reads it).
    pub(crate) peer: Option<std::net::SocketAddr>,
}

impl Extra {
    fn is_empty(&self) -> bool {
        self.partial.is_empty()
            && self.message_opcode == 0
            && self.out.is_empty()
            && self.subs.is_none()
    }
}

/// Interned ids, up to two without an allocation (`NONE` marks an unused
/// inline place: that keeps the enum at 16 bytes, the size of the pointer).
#[derive(Debug, Clone)]
pub(crate) enum Ids {
    Inline([Id; 2]),
    Heap(Box<[Id]>),
}

const NONE: Id = Id::MAX;

impl Default for Ids {
    fn default() -> Ids {
        Ids::Inline([NONE; 2])
    }
}

impl Ids {
    pub(crate) fn from_slice(ids: &[Id]) -> Ids {
        match ids {
            [] => Ids::default(),
            [a] => Ids::Inline([*a, NONE]),
            [a, b] => Ids::Inline([*a, *b]),
            _ => Ids::Heap(ids.into()),
        }
    }

    pub(crate) fn as_slice(&self) -> &[Id] {
        match self {
            Ids::Inline(a) => {
                let n = a.iter().take_while(|&&x| x != NONE).count();
                &a[..n]
            }
            Ids::Heap(b) => b,
        }
    }
}

/// What happened to frames handed to `send`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Written to the socket or queued behind earlier frames.
    Accepted,
    /// The connection is closing; the frames were dropped.
    Dropped,
    /// The queue limit was exceeded: the caller closes with 1013.
    Overflow,
}

/// Where the outbound side stands after a flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flush {
    /// Everything queued is written.
    Done,
    /// The kernel would not take more: wait until the socket is writable.
    Pending,
}

/// Most frames gathered into one `writev`.
const MAX_IOV: usize = 64;

/// Writes one frame with `send`, not `writev`: a socket's own call skips
/// the file layer's (the iovec import, the file position lock and checks)
/// that `vfs_writev` spent 3.6-6% of the server's CPU in when most fan-out
/// writes carry a single frame (`perf record -e cpu-clock -g`, fanout and
/// broadcast at 100,000 connections).
fn send_one(sock: &TcpStream, frame: &[u8]) -> io::Result<usize> {
    rtbench_sys::socket::send_nowait(sock, frame)
}

impl Conn {
    /// A free slot (its generation is set when it is taken).
    pub(crate) fn free() -> Conn {
        Conn {
            sock: None,
            generation: 0,
            flags: Flags::default(),
            project: 0,
            deadline: 0,
            rate: Window::default(),
            heard: 0,
            channels: Ids::default(),
            session: GUEST,
            extra: None,
        }
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.flags.is_closing()
    }

    pub(crate) fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// Gives the extra state back once nothing is left in it.
    pub(crate) fn trim(&mut self) {
        if self.extra.as_ref().is_some_and(|e| e.is_empty()) {
            self.extra = None;
        }
    }

    fn queued(&self) -> bool {
        self.extra.as_ref().is_some_and(|e| !e.out.is_empty())
    }

    /// Bytes waiting for the kernel.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.extra.as_ref().map_or(0, |e| e.out_bytes)
    }

    /// Sends `frames` in order: written straight away when nothing is queued
    /// ahead of them, the rest queued up to `limit` bytes. `writes` counts
    /// the write syscalls made.
    pub(crate) fn send(&mut self, frames: &[&Bytes], limit: usize, writes: &mut u64) -> Sent {
        if self.is_closing() {
            return Sent::Dropped;
        }
        let mut done = 0; // frames wholly written
        let mut partial = 0; // bytes of frames[done] written
        if !self.queued() {
            let Some(sock) = &self.sock else {
                return Sent::Dropped;
            };
            while done < frames.len() {
                let end = (done + MAX_IOV).min(frames.len());
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                for (slot, f) in iov.iter_mut().zip(&frames[done..end]) {
                    *slot = IoSlice::new(f);
                }
                let want: usize = frames[done..end].iter().map(|f| f.len()).sum();
                *writes += 1;
                let written = match &iov[..end - done] {
                    [one] => send_one(sock, one),
                    several => (&*sock).write_vectored(several),
                };
                let n = match written {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                    Err(_) => return Sent::Dropped, // the peer is gone; the read side sees it
                };
                let mut left = n;
                while done < end && left >= frames[done].len() {
                    left -= frames[done].len();
                    done += 1;
                }
                partial = left;
                if n < want {
                    break;
                }
            }
            if done == frames.len() {
                return Sent::Accepted;
            }
        }
        let rest: usize = frames[done..].iter().map(|f| f.len()).sum::<usize>() - partial;
        let e = self.extra();
        // The first frame queued is always taken; past that, the limit holds.
        if !e.out.is_empty() && e.out_bytes + rest > limit {
            return Sent::Overflow;
        }
        for (i, f) in frames[done..].iter().enumerate() {
            let mut f = (*f).clone();
            if i == 0 && partial > 0 {
                f.advance(partial);
                e.front_started = true;
            }
            e.out_bytes += f.len();
            e.out.push_back(f);
        }
        Sent::Accepted
    }

    /// Writes queued frames until done or the kernel pushes back.
    pub(crate) fn flush(&mut self, writes: &mut u64) -> io::Result<Flush> {
        let (Some(sock), Some(e)) = (&self.sock, &mut self.extra) else {
            return Ok(Flush::Done);
        };
        while !e.out.is_empty() {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let mut k = 0;
            for (slot, f) in iov.iter_mut().zip(&e.out) {
                *slot = IoSlice::new(f);
                k += 1;
            }
            *writes += 1;
            let mut n = match (&*sock).write_vectored(&iov[..k]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flush::Pending),
                Err(e) => return Err(e),
            };
            e.out_bytes -= n;
            while n > 0 {
                let front = e.out.front_mut().expect("written bytes were queued");
                if n >= front.len() {
                    n -= front.len();
                    e.out.pop_front();
                    e.front_started = false;
                } else {
                    front.advance(n);
                    e.front_started = true;
                    n = 0;
                }
            }
        }
        // Give back the queue's memory once it drains: idle connections hold none.
        e.out = VecDeque::new();
        self.trim();
        Ok(Flush::Done)
    }

    /// Starts closing: drops what is queued (bar a partly written frame) and
    /// queues `close`. False when already closing.
    pub(crate) fn begin_close(&mut self, close: Bytes) -> bool {
        if self.is_closing() {
            return false;
        }
        self.flags.set(Flag::Closing);
        let e = self.extra();
        let keep = if e.front_started {
            e.out.pop_front()
        } else {
            None
        };
        e.out.clear();
        e.out_bytes = 0;
        e.front_started = keep.is_some();
        for f in keep.into_iter().chain([close]) {
            e.out_bytes += f.len();
            e.out.push_back(f);
        }
        // Nothing more will be read into these.
        e.partial = Vec::new();
        e.message = Vec::new();
        e.message_opcode = 0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_inline_up_to_two() {
        assert_eq!(std::mem::size_of::<Ids>(), 16);
        assert!(matches!(Ids::from_slice(&[1, 2]), Ids::Inline(_)));
        assert_eq!(Ids::from_slice(&[1, 2]).as_slice(), &[1, 2]);
        assert_eq!(Ids::from_slice(&[7]).as_slice(), &[7]);
        assert_eq!(Ids::from_slice(&[1, 2, 3]).as_slice(), &[1, 2, 3]);
        assert_eq!(Ids::from_slice(&[]).as_slice(), &[] as &[Id]);
    }

    #[test]
    fn flags_are_one_byte_each_flag_its_own_bit() {
        assert_eq!(std::mem::size_of::<Flags>(), 1);
        let all = [
            Flag::Closing,
            Flag::FinSent,
            Flag::Filed,
            Flag::Handshake,
            Flag::UrlAccount,
        ];
        for (i, &f) in all.iter().enumerate() {
            let mut flags = Flags::default();
            flags.set(f);
            for (j, &g) in all.iter().enumerate() {
                assert_eq!(flags.has(g), i == j, "{f:?} set, {g:?} read");
            }
            assert!(flags.take(f));
            assert!(!flags.take(f));
            assert_eq!(flags, Flags::default());
        }
        assert!(Flags::HANDSHAKE.in_handshake());
        assert!(!Flags::HANDSHAKE.is_closing());
    }
}
