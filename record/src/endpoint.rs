//! Where connections go and where they come from, and whether that is enough.
//!
//! One TCP connection is one (source IP, source port) tuple towards a server
//! address, so one source address reaches one server port at most once per
//! local port: ~28,000 connections with Linux's default port range. Binding
//! several loopback sources (127.0.0.2, 127.0.0.3, ...) with
//! IP_BIND_ADDRESS_NO_PORT multiplies that; the budget is checked before a run
//! starts, so a scenario that cannot reach its target is refused up front.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

/// What the clients speak once connected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Appwrite's Realtime: `connected` frame, channels, tokens, events.
    #[default]
    Appwrite,
    /// Any WebSocket server: connect, hold, optionally echo.
    Raw,
}

/// A parsed `ws://` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// The `Host` header.
    pub host: String,
    /// Path (and query, for raw targets) to request.
    pub path: String,
}

impl Endpoint {
    pub fn parse(url: &str, protocol: Protocol) -> Result<Endpoint, String> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| format!("`{url}`: only ws:// URLs are supported"))?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let path = match (path, protocol) {
            ("" | "/", Protocol::Appwrite) => "/v1/realtime".to_string(),
            ("", Protocol::Raw) => "/".to_string(),
            (p, _) => p.to_string(),
        };
        let with_port = if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("`{url}`: cannot resolve `{host}`: {e}"))?
            .next()
            .ok_or_else(|| format!("`{url}`: `{host}` has no address"))?;
        Ok(Endpoint {
            addr,
            host: host.to_string(),
            path,
        })
    }
}

/// Expands IPs and IPv4 CIDR blocks (`127.0.0.2/28`: 16 addresses) into a list.
pub fn expand_sources(specs: &[String]) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for s in specs {
        match s.split_once('/') {
            None => out.push(
                s.parse::<IpAddr>()
                    .map_err(|_| format!("`{s}` is not an IP address"))?,
            ),
            Some((ip, bits)) => {
                let ip: Ipv4Addr = ip
                    .parse()
                    .map_err(|_| format!("`{s}`: `{ip}` is not an IPv4 address"))?;
                let bits: u32 = bits
                    .parse()
                    .ok()
                    .filter(|b| (16..=32).contains(b))
                    .ok_or_else(|| {
                        format!("`{s}`: prefix length must be 16..=32 (at most 65,536 addresses)")
                    })?;
                let start = u32::from(ip);
                for i in 0..(1u32 << (32 - bits)) {
                    out.push(IpAddr::V4(Ipv4Addr::from(start.wrapping_add(i))));
                }
            }
        }
    }
    Ok(out)
}

/// Refuses a run that needs more connections to one server address than the
/// source addresses times the port range allow.
pub fn check_budget(
    connections: u64,
    targets: &[Endpoint],
    sources: usize,
    ports: (u16, u16),
) -> Result<(), String> {
    let per_source = u64::from(ports.1.saturating_sub(ports.0)) + 1;
    let budget = per_source * sources.max(1) as u64;
    let per_target = connections.div_ceil(targets.len().max(1) as u64);
    // Targets sharing one address share the budget.
    let mut distinct: Vec<SocketAddr> = targets.iter().map(|t| t.addr).collect();
    distinct.sort();
    distinct.dedup();
    let worst = per_target * (targets.len() / distinct.len().max(1)) as u64;
    if worst > budget {
        return Err(format!(
            "the scenario needs {worst} connections to one server address, but {} source address(es) x {per_source} ports \
             (net.ipv4.ip_local_port_range {} {}) allow {budget}: add source addresses (target.sources = [\"127.0.0.2/28\"] \
             gives 16) or widen the range (sysctl -w net.ipv4.ip_local_port_range=\"1024 65535\")",
            sources.max(1),
            ports.0,
            ports.1
        ));
    }
    Ok(())
}

/// Past half the port range per source and server address, connect() slows
/// sharply: Linux searches ports of one parity first, then scans the rest
/// (measured here: 28,232 ports, a stall of ~0.5 s at 14,200 connections).
/// Returns the warning when a run goes there.
pub fn port_search_warning(
    connections: u64,
    targets: usize,
    sources: usize,
    ports: (u16, u16),
) -> Option<String> {
    let range = u64::from(ports.1.saturating_sub(ports.0)) + 1;
    let half = range / 2;
    let per = connections.div_ceil((targets.max(1) * sources.max(1)) as u64);
    (per > half).then(|| {
        format!(
            "{per} connections per source address and server address pass half the port range ({half}): \
             connect() slows sharply there; add source addresses (target.sources)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_protocol_defaults() {
        let e = Endpoint::parse("ws://127.0.0.1:9000", Protocol::Appwrite).unwrap();
        assert_eq!(
            (e.addr.port(), e.path.as_str(), e.host.as_str()),
            (9000, "/v1/realtime", "127.0.0.1:9000")
        );
        let e = Endpoint::parse("ws://127.0.0.1:9000/echo?x=1", Protocol::Raw).unwrap();
        assert_eq!(e.path, "/echo?x=1");
        assert!(Endpoint::parse("wss://x", Protocol::Raw).is_err());
    }

    #[test]
    fn cidr_blocks_expand() {
        let v = expand_sources(&["127.0.0.2/28".into(), "127.0.1.1".into()]).unwrap();
        assert_eq!(v.len(), 17);
        assert_eq!(v[0].to_string(), "127.0.0.2");
        assert_eq!(v[15].to_string(), "127.0.0.17");
        assert!(expand_sources(&["127.0.0.1/8".into()]).is_err());
        assert!(expand_sources(&["nope".into()]).is_err());
    }

    #[test]
    fn budget_counts_sources_times_ports() {
        let t = vec![Endpoint::parse("ws://127.0.0.1:1", Protocol::Raw).unwrap()];
        assert!(check_budget(1000, &t, 1, (60000, 60999)).is_ok());
        let e = check_budget(1001, &t, 1, (60000, 60999)).unwrap_err();
        assert!(
            e.contains("needs 1001 connections") && e.contains("allow 1000"),
            "{e}"
        );
        assert!(check_budget(2000, &t, 2, (60000, 60999)).is_ok());
        assert!(port_search_warning(500, 1, 1, (60000, 60999)).is_none());
        assert!(
            port_search_warning(501, 1, 1, (60000, 60999))
                .unwrap()
                .contains("half the port range (500)")
        );
        assert!(port_search_warning(1000, 1, 2, (60000, 60999)).is_none());
    }
}
