//! What a panic in a reactor leaves, and why the process keeps serving.
//!
//! A panic is a bug (the hook in `metrics.rs` counts it in
//! `rtbench_panics_total`), but one client's input must not take the other
//! connections of its reactor down with it. So each connection's handling
//! runs under `guarded`, and a panic there ends that connection and nothing
//! else. The handling was cut short mid-update, so what the slot says it is
//! filed under may be stale (a re-filing takes the new channels and session
//! into the slot before it moves the index). After a panic:
//! - the slot is freed and its socket closed, and the open count drops
//!   (`unfile` counts the close as soon as it takes `Filed`);
//! - no index entry names the slot: the whole index is searched for it
//!   (`Index::forget`), so the slot's next holder never receives what the
//!   panicked connection was filed for;
//! - interned names and role sets the handling took may stay counted: a few
//!   bytes per panic, never a name forgotten while held, because a slot
//!   gives up its ids (`take`, `replace`) before it releases them.
//!
//! A panic outside one connection's handling (the inbox, fan-out, accept,
//! deadlines, the bus) leaves tables nobody can vouch for, and a reactor
//! thread that died would hold its connections unanswered and its inbox
//! growing: the process aborts instead, for its supervisor to restart.

use super::Reactor;
use crate::index::ConnId;

impl Reactor {
    /// Runs one connection's handling; a panic in it ends that connection,
    /// not the reactor and its others (see above).
    pub(super) fn guarded(&mut self, id: ConnId, f: impl FnOnce(&mut Reactor)) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self)));
        if outcome.is_err() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.release(id);
                self.index.forget(id);
            }));
        }
    }
}

/// Runs a reactor thread's loop; a panic that escapes it aborts the process.
pub(super) fn or_abort(name: &str, run: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).is_err() {
        eprintln!("rtbench-server: {name} panicked outside a connection's handling: aborting");
        std::process::abort();
    }
}

#[cfg(test)]
thread_local! {
    /// Where the test below makes the handling panic (once).
    static PLANTED: std::cell::Cell<Option<&'static str>> = const { std::cell::Cell::new(None) };
}

/// Panics once at `at` when a test planted a panic there; nothing otherwise.
#[cfg(test)]
pub(super) fn planted(at: &'static str) {
    if PLANTED.with(|p| p.get() == Some(at)) {
        PLANTED.with(|p| p.set(None));
        panic!("a panic planted in {at}");
    }
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::Ordering::Relaxed;

    use rtbench_protocol::frame;
    use rtbench_protocol::jwt::{self, Claims};

    use super::*;
    use crate::config::Config;
    use crate::reactor::Reactors;
    use crate::request::Incoming;
    use crate::shared::Shared;

    /// Upgrades a real loopback connection on `r`: its slot and the client's end.
    fn connect(r: &mut Reactor, listener: &TcpListener, channel: &str) -> (ConnId, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, peer) = listener.accept().unwrap();
        let head = format!(
            "GET /v1/realtime?project=p1&channels[]={channel} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        let generation = r.generations;
        r.take(Incoming {
            stream,
            peer,
            bytes: head.into_bytes(),
        });
        let id = r
            .conns
            .iter()
            .position(|c| c.sock.is_some() && c.generation == generation)
            .unwrap();
        assert!(
            r.conns[id].flags.has(crate::conn::Flag::Filed),
            "{channel}: upgraded and filed"
        );
        (id as ConnId, client)
    }

    fn receivers(r: &Reactor, channel: &str) -> Vec<ConnId> {
        let mut out = Vec::new();
        r.index.matches_names(
            &r.names,
            "p1",
            &[channel],
            &["any", "guests", "users", "user:u1"],
            &mut out,
        );
        out
    }

    #[test]
    fn a_panic_in_one_connections_handling_ends_it_and_leaves_its_slot_in_no_index_entry() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _entered = runtime.enter();
        let mut config = Config::for_listen("127.0.0.1:0".parse().unwrap());
        config.jwt_secret = "test-secret".into();
        let shared = Arc::new(Shared::new(config).unwrap());
        let (to_http, _) = tokio::sync::mpsc::unbounded_channel();
        let mut r =
            Reactor::standalone(shared, Arc::new(Reactors::new(1, to_http).unwrap())).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();

        let (b, _client_b) = connect(&mut r, &listener, "other");
        let entries_of_b = r.index.entries();
        let (a, _client_a) = connect(&mut r, &listener, "files");
        assert_eq!(r.shared.open.load(Relaxed), 2);
        assert_eq!(receivers(&r, "files"), [a]);

        // A signs in; its re-filing panics after the slot took the new
        // session, before the index moved.
        let claims = Claims {
            sub: "u1".into(),
            exp: jwt::now_secs() + 60,
            teams: vec![],
            labels: vec![],
        };
        let message = serde_json::json!({"type": "authentication", "data": {"session": jwt::mint(&claims, b"test-secret")}});
        let mut wire =
            frame::encode_masked(frame::OP_TEXT, message.to_string().as_bytes(), [1, 2, 3, 4]);
        PLANTED.with(|p| p.set(Some("refile")));
        r.guarded(a, |r| r.ingest(a, &mut wire));
        assert_eq!(PLANTED.with(|p| p.get()), None, "the planted panic fired");

        assert!(
            r.conns[a as usize].sock.is_none(),
            "the panicked connection is closed"
        );
        assert_eq!(r.shared.open.load(Relaxed), 1);
        assert_eq!(r.index.entries(), entries_of_b, "only B is filed");
        assert_eq!(receivers(&r, "files"), [] as [ConnId; 0]);
        assert_eq!(receivers(&r, "other"), [b], "B is still served");

        // The freed slot's next holder gets nothing A was filed for.
        let (c, _client_c) = connect(&mut r, &listener, "other");
        assert_eq!(c, a, "the slot is reused");
        assert_eq!(receivers(&r, "files"), [] as [ConnId; 0]);
        assert_eq!(receivers(&r, "other").len(), 2);
    }
}
