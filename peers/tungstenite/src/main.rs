//! `rtbench-peer-tungstenite --port N [--small]`: a WebSocket echo server
//! written the way tokio-tungstenite's own example is (one task per
//! connection, `accept_async`), as a user who picks that crate would.
//!
//! Why it is here: the `peers` suite benchmarks rtbench-server beside the
//! servers a user would otherwise choose. Two configurations are peers:
//! the crate's defaults (a 128 KiB read buffer and a 128 KiB write buffer
//! target per connection) and `--small`, tuned for many idle connections
//! (4 KiB read buffer, writes flushed as they are made).

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

fn main() {
    let mut port = None;
    let mut small = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => port = args.next().and_then(|p| p.parse::<u16>().ok()),
            "--small" => small = true,
            other => {
                eprintln!(
                    "rtbench-peer-tungstenite: unknown argument `{other}`\nusage: rtbench-peer-tungstenite --port N [--small]"
                );
                std::process::exit(2);
            }
        }
    }
    let Some(port) = port else {
        eprintln!("usage: rtbench-peer-tungstenite --port N [--small]");
        std::process::exit(2);
    };
    let config = small.then(|| {
        WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0)
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async move {
        let listener = match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("rtbench-peer-tungstenite: 127.0.0.1:{port}: {e}");
                std::process::exit(1);
            }
        };
        eprintln!("listening on 127.0.0.1:{port}");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of descriptors, say: wait, do not spin.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, config).await
                else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}
