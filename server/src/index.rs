//! The subscription index: who may receive an event, found without scanning.
//!
//! Appwrite matches an event by scanning every subscription (110 ms per event at
//! 100,000 connections). Here each connection is filed under every
//! (project, channel, role) it holds, so matching an event is one lookup per
//! (event channel, event role) pair and then a walk over exactly the connections
//! filed there: the cost follows the receivers, not the population. Every
//! connection holds the role `any`, so an event readable by `any` looks at one
//! bucket per channel.

use std::collections::{HashMap, HashSet};

/// A connection's slot in the hub; `u32` keeps the buckets small.
pub type ConnId = u32;

#[derive(Default, Debug)]
pub struct Index {
    projects: HashMap<Box<str>, ByChannel>,
}

type ByChannel = HashMap<Box<str>, ByRole>;
type ByRole = HashMap<Box<str>, Members>;

/// The connections filed under one (project, channel, role). Most per-user
/// buckets hold one connection, so that case does not allocate a set.
#[derive(Debug)]
enum Members {
    One(ConnId),
    Many(HashSet<ConnId>),
}

impl Members {
    fn insert(&mut self, id: ConnId) {
        match self {
            Members::One(x) if *x == id => {}
            Members::One(x) => *self = Members::Many(HashSet::from([*x, id])),
            Members::Many(s) => {
                s.insert(id);
            }
        }
    }

    /// Removes `id`; true when the bucket is now empty. A set shrinks back to
    /// `One` at one member, so only `One` ever empties.
    fn remove(&mut self, id: ConnId) -> bool {
        match self {
            Members::One(x) => *x == id,
            Members::Many(s) => {
                s.remove(&id);
                if s.len() == 1 {
                    let last = *s.iter().next().expect("one member");
                    *self = Members::One(last);
                }
                false
            }
        }
    }

    fn extend_into(&self, out: &mut Vec<ConnId>) {
        match self {
            Members::One(x) => out.push(*x),
            Members::Many(s) => out.extend(s.iter().copied()),
        }
    }
}

impl Index {
    /// Files `id` under every (channel, role) pair.
    pub fn insert<S: AsRef<str>>(&mut self, id: ConnId, project: &str, channels: &[S], roles: &[S]) {
        let by_channel = self.projects.entry(project.into()).or_default();
        for c in channels {
            let by_role = by_channel.entry(c.as_ref().into()).or_default();
            for r in roles {
                match by_role.get_mut(r.as_ref()) {
                    Some(m) => m.insert(id),
                    None => {
                        by_role.insert(r.as_ref().into(), Members::One(id));
                    }
                }
            }
        }
    }

    /// Undoes `insert` with the same arguments; empty buckets are freed, so
    /// clients subscribing to ever new channel names cannot grow the index.
    pub fn remove<S: AsRef<str>>(&mut self, id: ConnId, project: &str, channels: &[S], roles: &[S]) {
        let Some(by_channel) = self.projects.get_mut(project) else {
            return;
        };
        for c in channels {
            let Some(by_role) = by_channel.get_mut(c.as_ref()) else {
                continue;
            };
            for r in roles {
                if by_role.get_mut(r.as_ref()).is_some_and(|m| m.remove(id)) {
                    by_role.remove(r.as_ref());
                }
            }
            if by_role.is_empty() {
                by_channel.remove(c.as_ref());
            }
        }
        if by_channel.is_empty() {
            self.projects.remove(project);
        }
    }

    /// Fills `out` with every connection that may receive an event published to
    /// `project` on `channels` for `roles`, each once.
    pub fn matches<S: AsRef<str>>(&self, project: &str, channels: &[S], roles: &[S], out: &mut Vec<ConnId>) {
        out.clear();
        let Some(by_channel) = self.projects.get(project) else {
            return;
        };
        // `any` covers every other role: one bucket per channel then.
        let any = roles.iter().any(|r| r.as_ref() == "any");
        let mut buckets = 0;
        for c in channels {
            let Some(by_role) = by_channel.get(c.as_ref()) else {
                continue;
            };
            let mut take = |role: &str| {
                if let Some(m) = by_role.get(role) {
                    m.extend_into(out);
                    buckets += 1;
                }
            };
            if any {
                take("any");
            } else {
                roles.iter().for_each(|r| take(r.as_ref()));
            }
        }
        // One bucket holds each connection once; several may overlap.
        if buckets > 1 {
            out.sort_unstable();
            out.dedup();
        }
    }

    /// True when nothing is filed (all connections removed).
    pub fn is_empty(&self) -> bool {
        self.projects.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(ix: &Index, project: &str, channels: &[&str], roles: &[&str]) -> Vec<ConnId> {
        let mut out = Vec::new();
        ix.matches(project, channels, roles, &mut out);
        out.sort_unstable();
        out
    }

    #[test]
    fn matches_by_project_channel_and_role_once() {
        let mut ix = Index::default();
        ix.insert(1, "p", &["files", "teams"], &["any", "guests"]);
        ix.insert(2, "p", &["files"], &["any", "users", "user:u2"]);
        ix.insert(3, "q", &["files"], &["any", "guests"]);
        assert_eq!(ids(&ix, "p", &["files", "teams"], &["any"]), vec![1, 2]);
        assert_eq!(ids(&ix, "p", &["files", "teams"], &["guests", "users"]), vec![1, 2]);
        assert_eq!(ids(&ix, "p", &["files"], &["user:u2"]), vec![2]);
        assert_eq!(ids(&ix, "p", &["teams"], &["users"]), Vec::<ConnId>::new());
        assert_eq!(ids(&ix, "nope", &["files"], &["any"]), Vec::<ConnId>::new());
        ix.remove(1, "p", &["files", "teams"], &["any", "guests"]);
        ix.remove(2, "p", &["files"], &["any", "users", "user:u2"]);
        ix.remove(3, "q", &["files"], &["any", "guests"]);
        assert!(ix.is_empty(), "{ix:?}");
    }

    // The brute-force model: a connection receives an event when project
    // matches, a channel is shared, and a role is shared (or roles hold `any`).
    proptest! {
        #[test]
        fn equals_brute_force(
            conns in prop::collection::vec(
                (0..2u8, prop::collection::vec(0..6u8, 0..4), prop::collection::vec(0..5u8, 0..3)),
                0..40),
            events in prop::collection::vec(
                (0..2u8, prop::collection::vec(0..6u8, 0..4), prop::collection::vec(0..6u8, 0..3)),
                1..20),
            removed in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let name = |k: &str, i: u8| format!("{k}{i}");
            let role = |i: u8| if i == 5 { "any".to_string() } else { name("r", i) };
            let mut ix = Index::default();
            type Filed = (String, Vec<String>, Vec<String>); // project, channels, roles
            let mut model: Vec<Option<Filed>> = Vec::new();
            for (id, (p, cs, rs)) in conns.iter().enumerate() {
                let cs: Vec<String> = cs.iter().map(|c| name("c", *c)).collect();
                let mut rs: Vec<String> = rs.iter().map(|r| role(*r)).collect();
                rs.push("any".into());
                rs.sort();
                rs.dedup();
                let mut cs = cs;
                cs.sort();
                cs.dedup();
                ix.insert(id as ConnId, &name("p", *p), &cs, &rs);
                model.push(Some((name("p", *p), cs, rs)));
            }
            if !model.is_empty() {
                for r in &removed {
                    let i = r.index(model.len());
                    if let Some((p, cs, rs)) = model[i].take() {
                        ix.remove(i as ConnId, &p, &cs, &rs);
                    }
                }
            }
            for (p, cs, rs) in &events {
                let p = name("p", *p);
                let cs: Vec<String> = cs.iter().map(|c| name("c", *c)).collect();
                let rs: Vec<String> = rs.iter().map(|r| role(*r)).collect();
                let mut got = Vec::new();
                ix.matches(&p, &cs, &rs, &mut got);
                let n = got.len();
                got.sort_unstable();
                got.dedup();
                prop_assert_eq!(n, got.len(), "a connection matched twice");
                let want: Vec<ConnId> = model.iter().enumerate().filter_map(|(id, m)| {
                    let (mp, mcs, mrs) = m.as_ref()?;
                    let ok = *mp == p
                        && mcs.iter().any(|c| cs.contains(c))
                        && (rs.iter().any(|r| r == "any") || mrs.iter().any(|r| rs.contains(r)));
                    ok.then_some(id as ConnId)
                }).collect();
                prop_assert_eq!(got, want);
            }
        }
    }
}
