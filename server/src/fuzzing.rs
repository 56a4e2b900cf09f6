//! Entry points for the fuzz targets (`fuzz/`): one connection's whole
//! input path driven in-process, without threads, through the same code a
//! real socket goes through (handshake, frames, fragments, messages).
//! Not part of the server's interface.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use crate::config::Config;
use crate::index::ConnId;
use crate::reactor::{Reactor, Reactors};
use crate::request::Incoming;
use crate::shared::Shared;

/// A reactor holding one connection whose bytes the caller supplies.
pub struct SessionHarness {
    reactor: Reactor,
    id: ConnId,
    generation: u32,
    /// The client's end: what the server sends arrives here.
    client: TcpStream,
    _runtime: tokio::runtime::Runtime,
}

/// The upgrade a harness connection starts with.
pub const UPGRADE: &[u8] = b"GET /v1/realtime?project=p1&channels[]=files&channels[]=account HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

impl SessionHarness {
    /// A connection of `config`'s server, upgraded (with `first` sent along
    /// with the request) and ready for input.
    pub fn new(config: Config, first: &[u8]) -> std::io::Result<SessionHarness> {
        let runtime = tokio::runtime::Builder::new_current_thread().build()?;
        let _entered = runtime.enter();
        let shared = Arc::new(Shared::new(config)?);
        // No HTTP side: a plain request's connection is dropped.
        let (to_http, _) = tokio::sync::mpsc::unbounded_channel();
        let reactors = Arc::new(Reactors::new(1, to_http)?);
        let mut reactor = Reactor::standalone(shared, reactors)?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let client = TcpStream::connect(listener.local_addr()?)?;
        client.set_nonblocking(true)?;
        let (server_end, peer) = listener.accept()?;
        let mut bytes = UPGRADE.to_vec();
        bytes.extend_from_slice(first);
        reactor.take(Incoming {
            stream: server_end,
            peer,
            bytes,
        });
        let id = (reactor.conns.len() - 1) as ConnId;
        let generation = reactor.conns[id as usize].generation;
        drop(_entered);
        Ok(SessionHarness {
            reactor,
            id,
            generation,
            client,
            _runtime: runtime,
        })
    }

    /// Hands `bytes` to the connection as if they had just been read.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.is_open() {
            let mut b = bytes.to_vec();
            self.reactor.ingest(self.id, &mut b);
        }
        // Keep the client's receive buffer from filling.
        let mut sink = [0u8; 65536];
        while matches!((&self.client).read(&mut sink), Ok(n) if n > 0) {}
    }

    /// Whether the connection is still the one the harness opened.
    pub fn is_open(&self) -> bool {
        let c = self.reactor.conns.get(self.id as usize);
        c.is_some_and(|c| c.generation == self.generation && c.sock.is_some())
    }

    /// Bytes the connection holds beyond its slot: a partial frame, a
    /// fragmented message, frames queued for the kernel.
    pub fn held_bytes(&self) -> usize {
        let c = self.reactor.conns.get(self.id as usize);
        c.and_then(|c| c.extra.as_ref()).map_or(0, |e| {
            e.partial.capacity() + e.message.capacity() + e.out_bytes
        })
    }

    /// The subscriptions' held size (ids and channel names).
    pub fn channels(&self) -> usize {
        self.reactor
            .conns
            .get(self.id as usize)
            .map_or(0, |c| c.channels.as_slice().len())
    }
}
