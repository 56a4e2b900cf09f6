//! The listener, the reactors that accept from it, and an orderly shutdown.
//!
//! `Server::start` is what the binary runs and what the tests run: the same
//! code on a real socket, so tests exercise exactly what a benchmark measures.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Config;
use crate::reactor::Reactors;
use crate::shared::Shared;

pub struct Server {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    reactors: Arc<Reactors>,
}

impl Server {
    /// Binds the listener and starts the reactors, which accept; call
    /// inside a tokio runtime (plain HTTP requests and the bus run on it).
    pub async fn start(config: Config) -> io::Result<Server> {
        crate::metrics::count_panics();
        let listener = bind(config.listen, config.reuse_port)?;
        let local_addr = listener.local_addr()?;
        // Bound before the reactors start: a bad address leaves nothing running.
        let admin = match config.admin_listen {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
            None => None,
        };
        let shared = Arc::new(Shared::new(config)?);
        let (to_http, from_reactors) = tokio::sync::mpsc::unbounded_channel();
        let reactors = Arc::new(Reactors::new(shared.threads(), to_http)?);
        tokio::spawn(crate::http::serve_handed_over(
            from_reactors,
            shared.clone(),
            Arc::downgrade(&reactors),
        ));
        reactors.spawn(&shared, Arc::new(listener))?;
        if let Some(admin) = admin {
            tokio::spawn(serve_admin(
                admin,
                shared.clone(),
                Arc::downgrade(&reactors),
            ));
        }
        Ok(Server {
            local_addr,
            shared,
            reactors,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Open WebSocket connections.
    pub fn connections(&self) -> usize {
        self.shared.connections()
    }

    /// Stops accepting, closes every connection with 1001 and waits for them
    /// to end, at most the configured grace. Returns the connections left.
    pub async fn shutdown(self) -> usize {
        self.reactors.close_all();
        let live = &self.shared.live;
        let grace = Duration::from_millis(self.shared.config.shutdown_grace_ms);
        let _ = tokio::time::timeout(grace, async {
            while live.load(Relaxed) > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        live.load(Relaxed)
    }
}

/// The admin address: plain HTTP requests, under the same limit on HTTP
/// connections as the main listener's.
/// Ends with the reactors (it holds them weakly): a stopped server's admin
/// address accepts nothing more.
async fn serve_admin(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    reactors: std::sync::Weak<Reactors>,
) {
    use crate::metrics::Limit;
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Some(reactors) = reactors.upgrade() else {
            return;
        };
        let m = &shared.metrics;
        if m.http_connections.load(Relaxed) >= shared.config.max_http_connections as u64 {
            m.hit(Limit::HttpConnections);
            continue; // dropped: closed
        }
        m.http_connections.fetch_add(1, Relaxed);
        tokio::spawn(crate::http::serve(
            stream,
            peer,
            shared.clone(),
            reactors,
            Vec::new(),
        ));
    }
}

impl Drop for Server {
    /// The reactors end with the server (they hold the shared state).
    fn drop(&mut self) {
        self.reactors.stop();
    }
}

/// A listening socket with a deep backlog (connect storms are the workload)
/// and, when asked, SO_REUSEPORT so several processes share the port.
fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(65_535)?;
    Ok(socket.into())
}
