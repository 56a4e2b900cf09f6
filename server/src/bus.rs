//! The shared event bus: Redis pub/sub on the channel `realtime`, as
//! Appwrite's realtime workers use it, so an event published at any server
//! process reaches every process once.
//!
//! Publishing goes through a short Lua script that numbers each event
//! (`realtime:seq`) and publishes it with that number as an extra field,
//! atomically; subscribers that see the numbers jump after an outage know
//! exactly how many events they missed. Documents without the number (from
//! Appwrite itself) are accepted as they are.
//!
//! This module publishes (`POST /v1/events` with `--bus`); the first reactor
//! of each process holds the subscription (`subscriber.rs`).

use std::time::Duration;

use redis::aio::MultiplexedConnection;

pub const CHANNEL: &str = "realtime";
const SEQ_KEY: &str = "realtime:seq";
/// Numbers the document and publishes it in one atomic step.
const PUBLISH_NUMBERED: &str = r#"
local seq = redis.call('INCR', KEYS[1])
local doc = ARGV[2]
local body = '{"rtbenchSeq":' .. seq .. ',' .. string.sub(doc, 2)
return redis.call('PUBLISH', ARGV[1], body)
"#;

pub struct Bus {
    client: redis::Client,
    /// The publishing connection and the SHA of the numbering script loaded
    /// on it. Cloned out for each publish: a multiplexed connection takes
    /// many requests in flight, so no lock is held across a round trip.
    publisher: std::sync::Mutex<Option<(MultiplexedConnection, String)>>,
}

impl Bus {
    pub fn new(url: &str) -> Result<Bus, String> {
        let client = redis::Client::open(url).map_err(|e| format!("--bus {url}: {e}"))?;
        Ok(Bus { client, publisher: std::sync::Mutex::new(None) })
    }

    fn cached(&self) -> Option<(MultiplexedConnection, String)> {
        self.publisher.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn forget(&self) {
        *self.publisher.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// A publishing connection with the script loaded (once per connection).
    async fn connection(&self) -> Result<(MultiplexedConnection, String), String> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let connect = async {
            let mut conn = self.client.get_multiplexed_async_connection().await?;
            let sha: String = redis::cmd("SCRIPT").arg("LOAD").arg(PUBLISH_NUMBERED).query_async(&mut conn).await?;
            Ok::<_, redis::RedisError>((conn, sha))
        };
        let c = tokio::time::timeout(Duration::from_secs(2), connect)
            .await
            .map_err(|_| "connecting to the bus timed out".to_string())?
            .map_err(|e| format!("cannot connect to the bus: {e}"))?;
        *self.publisher.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
        Ok(c)
    }

    /// Publishes a (validated) event document; returns how many server
    /// processes are subscribed.
    pub async fn publish(&self, doc: &[u8]) -> Result<u64, String> {
        let doc = std::str::from_utf8(doc).map_err(|_| "event document is not UTF-8".to_string())?.trim_start();
        let (mut conn, sha) = self.connection().await?;
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&sha).arg(1).arg(SEQ_KEY).arg(CHANNEL).arg(doc);
        match tokio::time::timeout(Duration::from_secs(2), cmd.query_async::<u64>(&mut conn)).await {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => {
                // Redis restarted (NOSCRIPT) or went away: reconnect next time.
                self.forget();
                Err(format!("publishing on the bus failed: {e}"))
            }
            Err(_) => {
                self.forget();
                Err("publishing on the bus timed out".into())
            }
        }
    }
}
