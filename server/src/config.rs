//! The server's settings, from flags or `RTBENCH_*` environment variables.
//!
//! Defaults are a benchmark's: every project allowed, no rate limits, no cap
//! below what the open-files limit allows.

use std::net::SocketAddr;

use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(name = "rtbench-server", version, about = "Realtime WebSocket server speaking Appwrite's Realtime protocol")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "RTBENCH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Projects clients may connect to, comma-separated; `*` allows any.
    #[arg(long = "projects", env = "RTBENCH_PROJECTS", value_delimiter = ',', default_value = "*")]
    pub projects: Vec<String>,

    /// Secret that signs session tokens (HS256 JWT).
    #[arg(long, env = "RTBENCH_JWT_SECRET", default_value = "rtbench-dev-secret", hide_env_values = true)]
    pub jwt_secret: String,

    /// Key a publisher must send in `x-appwrite-key` to POST /v1/events.
    #[arg(long, env = "RTBENCH_ADMIN_KEY", default_value = "rtbench-dev-key", hide_env_values = true)]
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

    pub fn project_allowed(&self, project: &str) -> bool {
        !project.is_empty() && self.projects.iter().any(|p| p == "*" || p == project)
    }
}
