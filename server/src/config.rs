//! The server's settings, from flags or `RTBENCH_*` environment variables.
//!
//! Defaults are a benchmark's: every project allowed, no rate limits, no cap
//! below what the open-files limit allows. One default is a live server's:
//! a connection silent for 90 s is closed (`idle_timeout_s`), so clients
//! that never send need `--idle-timeout-s 0`.

use std::net::SocketAddr;

use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "rtbench-server",
    version,
    about = "Realtime WebSocket server speaking Appwrite's Realtime protocol"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "RTBENCH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Projects clients may connect to, comma-separated; `*` allows any.
    #[arg(
        long = "projects",
        env = "RTBENCH_PROJECTS",
        value_delimiter = ',',
        default_value = "*"
    )]
    pub projects: Vec<String>,

    /// Secret that signs session tokens (HS256 JWT).
    #[arg(
        long,
        env = "RTBENCH_JWT_SECRET",
        default_value = "rtbench-dev-secret",
        hide_env_values = true
    )]
    pub jwt_secret: String,

    /// Key a publisher must send in `x-appwrite-key` to POST /v1/events.
    #[arg(
        long,
        env = "RTBENCH_ADMIN_KEY",
        default_value = "rtbench-dev-key",
        hide_env_values = true
    )]
    pub admin_key: String,

    /// Most concurrent WebSocket connections; more are refused with 1013.
    #[arg(long, env = "RTBENCH_MAX_CONNECTIONS", default_value_t = 1_000_000)]
    pub max_connections: usize,

    /// Connection attempts allowed per source IP per minute (Appwrite: 128). Off when unset.
    #[arg(long, env = "RTBENCH_CONNECT_RATE")]
    pub connect_rate: Option<u32>,

    /// Messages allowed per connection per minute (Appwrite: 32). Off when unset.
    #[arg(long, env = "RTBENCH_MESSAGE_RATE")]
    pub message_rate: Option<u32>,

    /// Worker threads (default: one per core).
    #[arg(long, env = "RTBENCH_THREADS")]
    pub threads: Option<usize>,

    /// Set SO_REUSEPORT so several server processes can share one port.
    #[arg(long, env = "RTBENCH_REUSE_PORT")]
    pub reuse_port: bool,

    /// A second address of this process alone, answering plain HTTP only
    /// (`/metrics`, `/health`, `POST /v1/events`): processes sharing a port
    /// can each be asked for their own figures. Default: none.
    #[arg(long, env = "RTBENCH_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,

    /// Bytes a connection may have queued before it is closed as a slow consumer (1013).
    #[arg(long, env = "RTBENCH_MAX_OUTBOUND_BYTES", default_value_t = 1 << 20)]
    pub max_outbound_bytes: usize,

    /// Refuse a connection without channels (1008), as classic Appwrite does;
    /// `false` lets clients connect bare and `subscribe` later, as newer Appwrite does.
    #[arg(long, env = "RTBENCH_REQUIRE_CHANNELS", default_value_t = true, action = clap::ArgAction::Set)]
    pub require_channels: bool,

    /// Redis URL of the shared event bus (`redis://127.0.0.1:6379`): every
    /// process subscribes to `realtime`, and POST /v1/events publishes there.
    #[arg(long, env = "RTBENCH_BUS")]
    pub bus: Option<String>,

    /// Subscriptions one connection may hold (by id, `subscribe` messages).
    #[arg(long, env = "RTBENCH_MAX_SUBSCRIPTIONS", default_value_t = 100)]
    pub max_subscriptions: usize,

    /// Channels one connection may be subscribed to, across its subscriptions.
    #[arg(long, env = "RTBENCH_MAX_CHANNELS", default_value_t = 1_000)]
    pub max_channels: usize,

    /// Longest channel name, in bytes (Appwrite's longest are about 150).
    #[arg(long, env = "RTBENCH_MAX_CHANNEL_BYTES", default_value_t = 256)]
    pub max_channel_bytes: usize,

    /// Longest subscription id, in bytes.
    #[arg(long, env = "RTBENCH_MAX_SUBSCRIPTION_ID_BYTES", default_value_t = 128)]
    pub max_subscription_id_bytes: usize,

    /// Bytes of subscriptions (ids and channel names) one connection may hold.
    #[arg(long, env = "RTBENCH_MAX_SUBSCRIPTION_BYTES", default_value_t = 64 * 1024)]
    pub max_subscription_bytes: usize,

    /// Connections still in their HTTP handshake at once; more are answered
    /// 503 and closed.
    #[arg(long, env = "RTBENCH_MAX_HANDSHAKES", default_value_t = 10_000)]
    pub max_handshakes: usize,

    /// Plain HTTP connections (events, metrics, health) served at once; more
    /// are answered 503 and closed.
    #[arg(long, env = "RTBENCH_MAX_HTTP_CONNECTIONS", default_value_t = 1_024)]
    pub max_http_connections: usize,

    /// Milliseconds a client may take to send a whole request head, and a
    /// whole request body (counted from its head, not restarted by each read).
    #[arg(long, env = "RTBENCH_REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,

    /// Milliseconds a WebSocket frame (or fragmented message) may take to
    /// arrive whole once it has begun; slower ones are closed with 1008.
    #[arg(long, env = "RTBENCH_FRAME_TIMEOUT_MS", default_value_t = 10_000)]
    pub frame_timeout_ms: u64,

    /// Seconds a WebSocket connection may send nothing (no frame, no ping)
    /// before it is closed with 1001; 0: never. The SDKs ping every 20 s, so
    /// the default is four missed pings and a late fifth (a hidden browser
    /// tab's timers may run once a minute).
    #[arg(long, env = "RTBENCH_IDLE_TIMEOUT_S", default_value_t = 90)]
    pub idle_timeout_s: u64,

    /// Largest event document accepted by POST /v1/events, in bytes.
    #[arg(long, env = "RTBENCH_MAX_EVENT_BYTES", default_value_t = 1 << 20)]
    pub max_event_bytes: usize,

    /// Milliseconds to let connections flush their 1001 close on shutdown.
    #[arg(long, env = "RTBENCH_SHUTDOWN_GRACE_MS", default_value_t = 5000)]
    pub shutdown_grace_ms: u64,
}

impl Config {
    /// The settings with every default, listening on `listen` (for tests).
    pub fn for_listen(listen: SocketAddr) -> Config {
        let mut c = Config::parse_from(["rtbench-server"]);
        c.listen = listen;
        c
    }

    /// What one connection's subscriptions may hold.
    pub fn subscription_limits(&self) -> crate::subs::Limits {
        crate::subs::Limits {
            subscriptions: self.max_subscriptions,
            channels: self.max_channels,
            channel_bytes: self.max_channel_bytes,
            id_bytes: self.max_subscription_id_bytes,
            bytes: self.max_subscription_bytes,
        }
    }

    pub fn project_allowed(&self, project: &str) -> bool {
        !project.is_empty() && self.projects.iter().any(|p| p == "*" || p == project)
    }
}
