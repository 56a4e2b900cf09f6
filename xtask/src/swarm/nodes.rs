//! The swarm's nodes as a run sees them: which may take its parts (ready,
//! active, and labelled `rtbench.role=server` or `rtbench.role=load`; on a
//! swarm of one node, that node takes every part unlabelled), what each one
//! is (the record's `NodeFacts`), and where each part goes. Decided from
//! the engine's node list alone, so the refusals are one line each and
//! tested without an engine.

use anyhow::Context as _;

use std::net::IpAddr;

use rtbench_record::NodeFacts;
use testcontainers::bollard::models::{Node as EngineNode, NodeSpecAvailabilityEnum, NodeState};

/// The node label that places a run's parts.
pub const ROLE_LABEL: &str = "rtbench.role";

/// What a node takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// The servers and Redis.
    Server,
    /// The load generator's workers.
    Load,
    /// Both: the one node of a swarm of one.
    Both,
}

impl NodeRole {
    pub fn takes_servers(self) -> bool {
        matches!(self, NodeRole::Server | NodeRole::Both)
    }

    pub fn takes_load(self) -> bool {
        matches!(self, NodeRole::Load | NodeRole::Both)
    }

    /// As the record's host role says it.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Server => "server",
            NodeRole::Load => "client",
            NodeRole::Both => "server+client",
        }
    }
}

/// A node that takes part in the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub facts: NodeFacts,
    /// Where the others (and the controller, here) reach it.
    pub addr: IpAddr,
    pub role: NodeRole,
    /// It is the node of the engine the xtask talks to.
    pub this_engine: bool,
}

impl Node {
    pub fn hostname(&self) -> &str {
        &self.facts.hostname
    }
}

/// The nodes that take the run's parts, servers' first. `this_node`: the
/// id of the node whose engine answers here.
pub fn usable(all: &[EngineNode], this_node: &str) -> anyhow::Result<Vec<Node>> {
    let ready: Vec<&EngineNode> = all.iter().filter(|n| is_ready(n)).collect();
    if ready.is_empty() {
        return Err(anyhow::Error::msg(
            "--on swarm: no node of the swarm is ready and active: docker node ls",
        ));
    }
    if let [only] = ready[..] {
        // A swarm of one: that node is the whole run, label or not.
        return Ok(vec![node(only, NodeRole::Both, this_node)?]);
    }
    let labelled = |want: &str| -> Vec<&EngineNode> {
        ready
            .iter()
            .copied()
            .filter(|n| label(n).as_deref() == Some(want))
            .collect()
    };
    let (servers, load) = (labelled("server"), labelled("load"));
    for (role, nodes) in [("server", &servers), ("load", &load)] {
        if nodes.is_empty() {
            return Err(anyhow::anyhow!(
                "--on swarm: no ready node of the {} carries {ROLE_LABEL}={role}: docker node update --label-add {ROLE_LABEL}={role} NODE (README: Many machines)",
                ready.len()
            ));
        }
    }
    let mut out = Vec::new();
    for n in servers {
        out.push(node(n, NodeRole::Server, this_node)?);
    }
    for n in load {
        out.push(node(n, NodeRole::Load, this_node)?);
    }
    Ok(out)
}

fn is_ready(n: &EngineNode) -> bool {
    let state = n.status.as_ref().and_then(|s| s.state);
    let availability = n.spec.as_ref().and_then(|s| s.availability);
    state == Some(NodeState::READY) && availability == Some(NodeSpecAvailabilityEnum::ACTIVE)
}

fn label(n: &EngineNode) -> Option<String> {
    n.spec.as_ref()?.labels.as_ref()?.get(ROLE_LABEL).cloned()
}

/// The engine's description of `n` as a run's node.
fn node(n: &EngineNode, role: NodeRole, this_node: &str) -> anyhow::Result<Node> {
    let id = n.id.clone().unwrap_or_default();
    let d = n.description.clone().unwrap_or_default();
    let hostname = d.hostname.unwrap_or_else(|| id.clone());
    let resources = d.resources.unwrap_or_default();
    let facts = NodeFacts {
        id: id.clone(),
        hostname: hostname.clone(),
        engine_version: d.engine.and_then(|e| e.engine_version).unwrap_or_default(),
        cpus: resources.nano_cpus.unwrap_or(0) as f64 / 1e9,
        memory_bytes: resources.memory_bytes.unwrap_or(0).max(0) as u64,
    };
    Ok(Node {
        addr: address(n).with_context(|| {
            format!("--on swarm: node {hostname} has no address: docker node inspect {id}")
        })?,
        facts,
        role,
        this_engine: id == this_node,
    })
}

/// A node's address: its status's, or for a manager that reports 0.0.0.0
/// there, the one it is reached at as a manager.
fn address(n: &EngineNode) -> Option<IpAddr> {
    let status: Option<IpAddr> = n.status.as_ref()?.addr.as_deref()?.parse().ok();
    if let Some(a) = status.filter(|a| !a.is_unspecified()) {
        return Some(a);
    }
    let manager = n.manager_status.as_ref()?.addr.as_deref()?;
    let host = manager.rsplit_once(':').map_or(manager, |(h, _)| h);
    host.trim_matches(['[', ']']).parse().ok()
}

/// Each of `parts` given, in turn, the next of `nodes` (round robin): the
/// indexes into `nodes`.
pub fn spread(parts: u64, nodes: &[usize]) -> Vec<usize> {
    (0..parts as usize)
        .map(|i| nodes[i % nodes.len()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use testcontainers::bollard::models::{
        ManagerStatus, NodeDescription, NodeSpec, NodeStatus, ResourceObject,
    };

    fn engine_node(id: &str, addr: &str, role: Option<&str>, state: NodeState) -> EngineNode {
        EngineNode {
            id: Some(id.into()),
            spec: Some(NodeSpec {
                labels: role.map(|r| HashMap::from([(ROLE_LABEL.to_string(), r.to_string())])),
                availability: Some(NodeSpecAvailabilityEnum::ACTIVE),
                ..Default::default()
            }),
            description: Some(NodeDescription {
                hostname: Some(format!("host-{id}")),
                resources: Some(ResourceObject {
                    nano_cpus: Some(2_000_000_000),
                    memory_bytes: Some(1 << 30),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                state: Some(state),
                addr: Some(addr.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_swarm_of_one_takes_every_part_unlabelled() {
        let n = usable(&[engine_node("a", "10.0.0.1", None, NodeState::READY)], "a").unwrap();
        assert_eq!(n.len(), 1);
        assert_eq!(
            (
                n[0].role,
                n[0].this_engine,
                n[0].facts.cpus,
                n[0].hostname()
            ),
            (NodeRole::Both, true, 2.0, "host-a")
        );
    }

    #[test]
    fn several_nodes_need_both_labels_and_the_refusal_names_the_fix() {
        let nodes = [
            engine_node("a", "10.0.0.1", Some("server"), NodeState::READY),
            engine_node("b", "10.0.0.2", None, NodeState::READY),
        ];
        let e = usable(&nodes, "a").unwrap_err();
        let e = format!("{e:#}");
        assert_eq!(
            e,
            "--on swarm: no ready node of the 2 carries rtbench.role=load: docker node update --label-add rtbench.role=load NODE (README: Many machines)"
        );
        // A node that is down does not count.
        let nodes = [
            engine_node("a", "10.0.0.1", Some("server"), NodeState::READY),
            engine_node("b", "10.0.0.2", Some("load"), NodeState::DOWN),
            engine_node("c", "10.0.0.3", Some("load"), NodeState::READY),
        ];
        let n = usable(&nodes, "a").unwrap();
        let got: Vec<(&str, NodeRole)> = n.iter().map(|n| (n.facts.id.as_str(), n.role)).collect();
        assert_eq!(got, [("a", NodeRole::Server), ("c", NodeRole::Load)]);
    }

    #[test]
    fn a_manager_that_reports_no_address_is_reached_at_its_manager_address() {
        let mut n = engine_node("a", "0.0.0.0", None, NodeState::READY);
        n.manager_status = Some(ManagerStatus {
            addr: Some("10.1.2.3:2377".into()),
            ..Default::default()
        });
        assert_eq!(address(&n), Some("10.1.2.3".parse().unwrap()));
    }

    #[test]
    fn parts_go_round_robin() {
        assert_eq!(spread(5, &[1, 2]), [1, 2, 1, 2, 1]);
    }
}
