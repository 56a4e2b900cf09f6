//! Who a process of a run is (`Role`) and what a machine of a run is for
//! (`HostRole`), as the record names them. A role is written as the words
//! the console says (`server 3`, `redis`, `worker 12 on 10.0.0.4`) and read
//! back through `FromStr`, so a record, a fault plan and the console cannot
//! spell one differently, and nothing parses a role apart by hand.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A process a run started.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Server process `i` (from 0).
    Server(u64),
    Redis,
    /// Load generator worker `index`, on `host` when not this machine.
    Worker {
        index: u64,
        host: Option<String>,
    },
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Server(i) => write!(f, "server {i}"),
            Role::Redis => f.write_str("redis"),
            Role::Worker { index, host: None } => write!(f, "worker {index}"),
            Role::Worker {
                index,
                host: Some(h),
            } => write!(f, "worker {index} on {h}"),
        }
    }
}

/// A role that does not read as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRole(pub String);

impl fmt::Display for BadRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "role `{}`: expected `server N`, `redis`, `worker N` or `worker N on HOST`",
            self.0
        )
    }
}

impl std::error::Error for BadRole {}

impl FromStr for Role {
    type Err = BadRole;

    fn from_str(s: &str) -> Result<Role, BadRole> {
        let bad = || BadRole(s.to_string());
        if s == "redis" {
            return Ok(Role::Redis);
        }
        if let Some(i) = s.strip_prefix("server ") {
            return i.parse().map(Role::Server).map_err(|_| bad());
        }
        let rest = s.strip_prefix("worker ").ok_or_else(bad)?;
        let (index, host) = match rest.split_once(" on ") {
            Some((i, h)) if !h.is_empty() => (i, Some(h.to_string())),
            Some(_) => return Err(bad()),
            None => (rest, None),
        };
        Ok(Role::Worker {
            index: index.parse().map_err(|_| bad())?,
            host,
        })
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Role, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What a machine of a run is for (a deployment's `hosts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostRole {
    Server,
    Redis,
    /// Load generator workers.
    Client,
}

impl fmt::Display for HostRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostRole::Server => "server",
            HostRole::Redis => "redis",
            HostRole::Client => "client",
        })
    }
}

impl Role {
    /// The kind of machine a process of this role runs on.
    pub fn host_role(&self) -> HostRole {
        match self {
            Role::Server(_) => HostRole::Server,
            Role::Redis => HostRole::Redis,
            Role::Worker { .. } => HostRole::Client,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_read_back_as_written() {
        for r in [
            Role::Server(3),
            Role::Redis,
            Role::Worker {
                index: 12,
                host: None,
            },
            Role::Worker {
                index: 1,
                host: Some("10.0.0.4".into()),
            },
        ] {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{r}\""));
            assert_eq!(serde_json::from_str::<Role>(&json).unwrap(), r);
        }
        assert_eq!(Role::Server(0).to_string(), "server 0");
    }

    #[test]
    fn a_bad_role_is_named() {
        for bad in ["server", "server x", "worker 1 on ", "client", ""] {
            let e = bad.parse::<Role>().unwrap_err();
            assert_eq!(e, BadRole(bad.into()));
        }
        let e = serde_json::from_str::<Role>("\"mystery\"").unwrap_err();
        assert!(e.to_string().contains("role `mystery`"), "{e}");
    }
}
