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
//! of each process holds the subscription (`subscriber.rs`). A publish that
//! does not reach a subscriber is never reported as done: Redis unreachable,
//! hung or failing, or no server process subscribed (Redis just restarted,
//! the processes not yet back on it), each is a `BusError` the publisher
//! gets as a 503 naming it.

use std::time::Duration;

use redis::aio::MultiplexedConnection;

pub(crate) const CHANNEL: &str = "realtime";
const SEQ_KEY: &str = "realtime:seq";
/// Numbers the document and publishes it in one atomic step.
const PUBLISH_NUMBERED: &str = r#"
local seq = redis.call('INCR', KEYS[1])
local doc = ARGV[2]
local body = '{"rtbenchSeq":' .. seq .. ',' .. string.sub(doc, 2)
return redis.call('PUBLISH', ARGV[1], body)
"#;

/// Why an event was not published; the publisher gets a 503 with `reason`
/// and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BusError {
    /// No connection to Redis could be made (or it broke).
    Unreachable { url: String, why: String },
    /// Redis took longer than `TIMEOUT` to answer: stopped, or overloaded.
    /// What was sent may still be taken when it resumes: the outcome is
    /// unknown, and the message says so.
    TimedOut { url: String },
    /// Redis answered with an error.
    Failed { url: String, why: String },
    /// Redis took the event, but no server process is subscribed to the
    /// channel: nobody would receive it.
    NoSubscribers { url: String },
    /// The document cannot go on the bus (not UTF-8).
    Document,
}

impl BusError {
    /// The reason, for machines: the 503's `reason` field.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            BusError::Unreachable { .. } => "bus_unreachable",
            BusError::TimedOut { .. } => "bus_timeout",
            BusError::Failed { .. } => "bus_error",
            BusError::NoSubscribers { .. } => "no_subscribers",
            BusError::Document => "event_not_utf8",
        }
    }
}

impl std::fmt::Display for BusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BusError::Unreachable { url, why } => {
                write!(f, "the event bus (Redis at {url}) is unreachable: {why}")
            }
            BusError::TimedOut { url } => write!(
                f,
                "the event bus (Redis at {url}) did not answer within {} s: not published, unless Redis takes it when it resumes",
                TIMEOUT.as_secs()
            ),
            BusError::Failed { url, why } => {
                write!(f, "the event bus (Redis at {url}) refused the event: {why}")
            }
            BusError::NoSubscribers { url } => write!(
                f,
                "no server process is subscribed to `{CHANNEL}` on the event bus (Redis at {url}): the event would reach nobody; retry once they are back"
            ),
            BusError::Document => f.write_str("the event document is not UTF-8"),
        }
    }
}

/// The longest a connection to Redis, or an answer from it, is waited for.
const TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) struct Bus {
    client: redis::Client,
    /// Where Redis is, as the errors name it (no password).
    url: String,
    /// The publishing connection and the SHA of the numbering script loaded
    /// on it. Cloned out for each publish: a multiplexed connection takes
    /// many requests in flight, so no lock is held across a round trip.
    publisher: std::sync::Mutex<Option<(MultiplexedConnection, String)>>,
}

impl Bus {
    pub(crate) fn new(url: &str) -> Result<Bus, String> {
        let client = redis::Client::open(url).map_err(|e| format!("--bus {url}: {e}"))?;
        let info = client.get_connection_info();
        let url = info.addr().to_string();
        Ok(Bus {
            client,
            url,
            publisher: std::sync::Mutex::new(None),
        })
    }

    fn cached(&self) -> Option<(MultiplexedConnection, String)> {
        self.publisher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn forget(&self) {
        *self.publisher.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// A publishing connection with the script loaded (once per connection).
    async fn connection(&self) -> Result<(MultiplexedConnection, String), BusError> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let connect = async {
            let mut conn = self.client.get_multiplexed_async_connection().await?;
            let sha: String = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(PUBLISH_NUMBERED)
                .query_async(&mut conn)
                .await?;
            Ok::<_, redis::RedisError>((conn, sha))
        };
        let c = tokio::time::timeout(TIMEOUT, connect)
            .await
            .map_err(|_| BusError::TimedOut {
                url: self.url.clone(),
            })?
            .map_err(|e| self.error(e))?;
        *self.publisher.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
        Ok(c)
    }

    /// What a Redis error means for the publisher.
    fn error(&self, e: redis::RedisError) -> BusError {
        let url = self.url.clone();
        if e.is_timeout() {
            BusError::TimedOut { url }
        } else if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_unrecoverable_error()
        {
            BusError::Unreachable {
                url,
                why: e.to_string(),
            }
        } else {
            BusError::Failed {
                url,
                why: e.to_string(),
            }
        }
    }

    /// Publishes a (validated) event document; returns how many server
    /// processes are subscribed (at least one, or it is an error).
    pub(crate) async fn publish(&self, doc: &[u8]) -> Result<u64, BusError> {
        let doc = std::str::from_utf8(doc)
            .map_err(|_| BusError::Document)?
            .trim_start();
        let (mut conn, sha) = self.connection().await?;
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&sha).arg(1).arg(SEQ_KEY).arg(CHANNEL).arg(doc);
        match tokio::time::timeout(TIMEOUT, cmd.query_async::<u64>(&mut conn)).await {
            Ok(Ok(0)) => Err(BusError::NoSubscribers {
                url: self.url.clone(),
            }),
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => {
                // Redis restarted (NOSCRIPT) or went away: reconnect next time.
                self.forget();
                Err(self.error(e))
            }
            Err(_) => {
                self.forget();
                Err(BusError::TimedOut {
                    url: self.url.clone(),
                })
            }
        }
    }
}
