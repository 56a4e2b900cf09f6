//! Images reach a swarm's nodes through a registry: the xtask's engine
//! pushes what it built, and every node pulls it by digest, so each runs
//! the same bytes whatever a tag says later.
//!
//! The default is this machine's registry (Debian's `docker-registry`
//! serves on port 5000). An engine pulls over plain HTTP only from
//! registries it lists as insecure, which are 127.0.0.0/8 unless its
//! daemon.json adds more; so this machine's node names the registry
//! `127.0.0.1:PORT`, and the other nodes by this node's swarm address
//! (theirs list it as insecure: README, Many machines). A registry named
//! with `--registry HOST:PORT` elsewhere is named so by every node.

use anyhow::Context as _;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use testcontainers::bollard;

use crate::engine::Engine;

/// Where the registry is and how each node names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Registry {
    /// What this engine pushes to.
    pub push: String,
    /// What the other nodes pull from; None when it is `push`.
    pub others: Option<String>,
}

/// The default registry's port (Debian's `docker-registry`).
pub const DEFAULT_PORT: u16 = 5000;

impl Registry {
    /// `--registry` (None: this machine's, port 5000). A loopback host
    /// (or none, `:PORT`) is this machine's registry, which the other
    /// nodes reach at `this_node` (this node's swarm address).
    pub fn resolve(flag: Option<&str>, this_node: IpAddr) -> anyhow::Result<Registry> {
        let given = flag.unwrap_or("");
        let (host, port) = match given.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>().map_err(|_| {
                    anyhow::anyhow!("--registry {given}: `{p}` is not a port (HOST:PORT, or :PORT for this machine's)")
                })?,
            ),
            None if given.is_empty() => ("", DEFAULT_PORT),
            None => (given, DEFAULT_PORT),
        };
        let here = host.is_empty()
            || host == "localhost"
            || host.parse::<IpAddr>().is_ok_and(|a| a.is_loopback());
        Ok(if here {
            Registry {
                push: format!("127.0.0.1:{port}"),
                others: Some(SocketAddr::new(this_node, port).to_string()),
            }
        } else {
            Registry {
                push: format!("{host}:{port}"),
                others: None,
            }
        })
    }

    /// The registry as a node names it.
    pub fn for_node(&self, this_engine: bool) -> &str {
        match &self.others {
            Some(o) if !this_engine => o,
            _ => &self.push,
        }
    }

    /// Whether it answers the registry API (`GET /v2/`) at all, within 5 s;
    /// a refusal says how to get one.
    pub fn check(&self) -> anyhow::Result<()> {
        let fix = "apt-get install -y docker-registry on the manager (it serves on :5000), or name one with --registry HOST:PORT";
        let answer = ask_v2(&self.push).map_err(|e| {
            anyhow::anyhow!(
                "--on swarm: no registry answers at {} ({e:#}): {fix}",
                self.push
            )
        })?;
        if answer.starts_with("HTTP/1.1 200") {
            Ok(())
        } else if answer.starts_with("HTTP/1.1 401") {
            Err(anyhow::anyhow!(
                "--on swarm: the registry at {} asks for a login: remove the `auth:` section of its config (Debian's: /etc/docker/registry/config.yml) and restart it, or name another with --registry HOST:PORT",
                self.push
            ))
        } else {
            Err(anyhow::anyhow!(
                "--on swarm: {} is not a registry (GET /v2/ answered `{}`): {fix}",
                self.push,
                answer.lines().next().unwrap_or("")
            ))
        }
    }
}

fn ask_v2(addr: &str) -> anyhow::Result<String> {
    use std::net::ToSocketAddrs;
    let to = addr
        .to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .context("no address")?;
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5))
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .with_context(|| format!("a read timeout on the connection to {addr}"))?;
    write!(
        s,
        "GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .with_context(|| format!("asking {addr} for /v2/"))?;
    let mut head = [0u8; 64];
    let n = s
        .read(&mut head)
        .with_context(|| format!("reading {addr}'s answer"))?;
    Ok(String::from_utf8_lossy(&head[..n]).into_owned())
}

/// An image in the registry: its repository there and the digest of what
/// was pushed.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// `rtbench/bench`.
    pub repository: String,
    /// `sha256:...`.
    pub digest: String,
}

impl Pushed {
    /// `registry/repository@digest`, as a node with `registry` pulls it.
    pub fn reference(&self, registry: &str) -> String {
        format!("{registry}/{}@{}", self.repository, self.digest)
    }
}

/// Tags the local image `name:latest` into the registry, pushes it, and
/// returns its digest there.
pub fn push(engine: &Engine, registry: &Registry, name: &str) -> anyhow::Result<Pushed> {
    use bollard::query_parameters::{PushImageOptions, TagImageOptions};
    use futures_util::StreamExt;
    let repo = format!("{}/{name}", registry.push);
    let failed =
        |e: String| anyhow::anyhow!("--on swarm: pushing {name} to {}: {e:#}", registry.push);
    engine.rt.block_on(async {
        engine
            .api
            .tag_image(
                &format!("{name}:latest"),
                Some(TagImageOptions {
                    repo: Some(repo.clone()),
                    tag: Some("latest".into()),
                }),
            )
            .await
            .map_err(|e| failed(e.to_string()))?;
        let mut stream = engine.api.push_image(
            &repo,
            Some(PushImageOptions {
                tag: Some("latest".into()),
                ..Default::default()
            }),
            None,
        );
        while let Some(step) = stream.next().await {
            step.map_err(|e| failed(e.to_string()))?;
        }
        let image = engine
            .api
            .inspect_image(&repo)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let digest = image
            .repo_digests
            .unwrap_or_default()
            .iter()
            .find_map(|d| d.strip_prefix(&format!("{repo}@")).map(String::from))
            .ok_or_else(|| failed("the engine names no digest for it".into()))?;
        Ok(Pushed {
            repository: name.to_string(),
            digest,
        })
    })
}

/// Removes what `push` left on this engine: the registry's tag and the
/// digest reference (the image itself stays, under its own name).
pub fn untag(engine: &Engine, registry: &Registry, pushed: &Pushed) {
    use bollard::query_parameters::RemoveImageOptions;
    let repo = format!("{}/{}", registry.push, pushed.repository);
    for reference in [
        format!("{repo}:latest"),
        format!("{repo}@{}", pushed.digest),
    ] {
        let _ = engine.rt.block_on(engine.api.remove_image(
            &reference,
            Some(RemoveImageOptions {
                noprune: true,
                ..Default::default()
            }),
            None,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machines_registry_is_loopback_here_and_the_swarm_address_elsewhere() {
        let me: IpAddr = "10.9.8.7".parse().unwrap();
        let r = Registry::resolve(None, me).unwrap();
        assert_eq!(
            (r.for_node(true), r.for_node(false)),
            ("127.0.0.1:5000", "10.9.8.7:5000")
        );
        let r = Registry::resolve(Some(":40123"), me).unwrap();
        assert_eq!(
            (r.for_node(true), r.for_node(false)),
            ("127.0.0.1:40123", "10.9.8.7:40123")
        );
        let r = Registry::resolve(Some("registry.lan:443"), me).unwrap();
        assert_eq!(
            (r.for_node(true), r.for_node(false)),
            ("registry.lan:443", "registry.lan:443")
        );
        let e = Registry::resolve(Some("host:x"), me).unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.starts_with("--registry host:x: `x` is not a port"),
            "{e:#}"
        );
    }

    #[test]
    fn a_closed_port_is_one_line_naming_the_fix() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r = Registry::resolve(Some(&format!(":{port}")), "10.0.0.1".parse().unwrap()).unwrap();
        let e = r.check().unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.starts_with(&format!("--on swarm: no registry answers at 127.0.0.1:{port}"))
                && e.ends_with("apt-get install -y docker-registry on the manager (it serves on :5000), or name one with --registry HOST:PORT")
                && !e.contains('\n'),
            "{e:#}"
        );
    }
}
