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
//! Losing Redis never takes the server down: connections stay, the
//! subscriber reconnects with back-off, and `/metrics` and the log say so.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;

use crate::event;
use crate::shared::Shared;

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
    url: String,
    /// The publishing connection and the SHA of the numbering script loaded
    /// on it. Cloned out for each publish: a multiplexed connection takes
    /// many requests in flight, so no lock is held across a round trip.
    publisher: std::sync::Mutex<Option<(MultiplexedConnection, String)>>,
}

impl Bus {
    pub fn new(url: &str) -> Result<Bus, String> {
        let client = redis::Client::open(url).map_err(|e| format!("--bus {url}: {e}"))?;
        Ok(Bus { client, url: url.to_string(), publisher: std::sync::Mutex::new(None) })
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

/// Subscribes to `realtime` and fans every event out locally, for ever:
/// reconnecting with back-off (0.1 s doubling to 5 s) whenever Redis goes away.
pub async fn subscribe(shared: Arc<Shared>) {
    let Some(bus) = shared.bus.as_ref() else { return };
    let m = &shared.metrics;
    let mut backoff = Duration::from_millis(100);
    let mut last_seq: Option<u64> = None;
    let mut down_since: Option<std::time::Instant> = None;
    loop {
        let connected = async {
            let mut ps = bus.client.get_async_pubsub().await?;
            ps.subscribe(CHANNEL).await?;
            Ok::<_, redis::RedisError>(ps)
        };
        match tokio::time::timeout(Duration::from_secs(5), connected).await {
            Ok(Ok(mut pubsub)) => {
                m.bus_up.store(1, Relaxed);
                backoff = Duration::from_millis(100);
                match down_since.take() {
                    Some(t) => {
                        eprintln!("rtbench-server: bus: back on {} after {:.1} s", bus.url, t.elapsed().as_secs_f64())
                    }
                    None => eprintln!("rtbench-server: bus: subscribed to `{CHANNEL}` on {}", bus.url),
                }
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    match event::parse(msg.get_payload_bytes()) {
                        Ok(ev) => {
                            if let (Some(seq), Some(last)) = (ev.seq, last_seq)
                                && seq > last + 1
                            {
                                m.bus_events_missed.fetch_add(seq - last - 1, Relaxed);
                            }
                            if ev.seq.is_some() {
                                last_seq = ev.seq.max(last_seq);
                            }
                            // Counted once queued on every reactor: a reader of
                            // the count knows the event precedes what comes next.
                            shared.reactors.publish(Arc::new(ev));
                            m.bus_events_in.fetch_add(1, Relaxed);
                            m.events_in.fetch_add(1, Relaxed);
                        }
                        Err(e) => {
                            if m.events_invalid.fetch_add(1, Relaxed).is_power_of_two() {
                                eprintln!("rtbench-server: bus: ignoring a message: {e}");
                            }
                        }
                    }
                }
            }
            Ok(Err(e)) if down_since.is_none() => {
                eprintln!("rtbench-server: bus: cannot subscribe on {}: {e}", bus.url)
            }
            Err(_) if down_since.is_none() => eprintln!("rtbench-server: bus: subscribing on {} timed out", bus.url),
            _ => {}
        }
        if down_since.is_none() {
            if m.bus_up.swap(0, Relaxed) == 1 {
                eprintln!("rtbench-server: bus: lost {}; connections stay, reconnecting", bus.url);
            }
            m.bus_outages.fetch_add(1, Relaxed);
            down_since = Some(std::time::Instant::now());
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
