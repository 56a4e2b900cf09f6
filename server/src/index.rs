//! The subscription index: who may receive an event, found without scanning.
//!
//! Appwrite matches an event by scanning every subscription (110 ms per event at
//! 100,000 connections). Here each connection is filed under every
//! (project, channel, role) it holds, by interned id, so matching an event is
//! one lookup per (event channel, event role) pair and then a walk over exactly
//! the connections filed there: the cost follows the receivers, not the
//! population. Every connection holds the role `any`, so an event readable by
//! `any` looks at one bucket per channel. Each reactor has its own index over
//! its own connections: no lock on the per-event path.

use crate::fasthash::{FastMap, FastSet};
use crate::intern::{ANY, Id, Interner};

/// A connection's slot in its reactor; `u32` keeps the buckets small.
pub type ConnId = u32;

#[derive(Default, Debug)]
pub struct Index {
    buckets: FastMap<(Id, Id, Id), Members>,
}

/// The connections filed under one (project, channel, role). Most per-user
/// buckets hold one connection, so that case does not allocate a set.
#[derive(Debug)]
enum Members {
    One(ConnId),
    Many(FastSet<ConnId>),
}

impl Members {
    fn insert(&mut self, id: ConnId) {
        match self {
            Members::One(x) if *x == id => {}
            Members::One(x) => *self = Members::Many([*x, id].into_iter().collect()),
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
                } else if s.len() < s.capacity() / 4 {
                    s.shrink_to_fit();
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
    /// Files `id` under every (channel, role) pair of `project`.
    pub fn insert(&mut self, id: ConnId, project: Id, channels: &[Id], roles: &[Id]) {
        for &c in channels {
            for &r in roles {
                match self.buckets.get_mut(&(project, c, r)) {
                    Some(m) => m.insert(id),
                    None => {
                        self.buckets.insert((project, c, r), Members::One(id));
                    }
                }
            }
        }
    }

    /// Undoes `insert` with the same arguments; empty buckets are freed, so
    /// clients subscribing to ever new channel names cannot grow the index.
    pub fn remove(&mut self, id: ConnId, project: Id, channels: &[Id], roles: &[Id]) {
        for &c in channels {
            for &r in roles {
                let key = (project, c, r);
                if self.buckets.get_mut(&key).is_some_and(|m| m.remove(id)) {
                    self.buckets.remove(&key);
                }
            }
        }
    }

    /// Appends every connection that may receive an event published to
    /// `project` on `channels` for `roles` (ids of names someone holds), each
    /// once; `any` among the roles means every connection on the channels.
    pub fn matches(&self, project: Id, channels: &[Id], roles: &[Id], out: &mut Vec<ConnId>) {
        let start = out.len();
        let any = roles.contains(&ANY);
        let mut buckets = 0;
        for &c in channels {
            let mut take = |r: Id| {
                if let Some(m) = self.buckets.get(&(project, c, r)) {
                    m.extend_into(out);
                    buckets += 1;
                }
            };
            if any {
                take(ANY);
            } else {
                roles.iter().for_each(|&r| take(r));
            }
        }
        // One bucket holds each connection once; several may overlap.
        if buckets > 1 {
            out[start..].sort_unstable();
            let mut keep = start;
            for i in start..out.len() {
                if i == start || out[i] != out[keep - 1] {
                    out[keep] = out[i];
                    keep += 1;
                }
            }
            out.truncate(keep);
        }
    }

    /// `matches` for an event as it arrives, by name: names no connection
    /// holds match nothing. This is the per-event work of a reactor.
    pub fn matches_names<S: AsRef<str>>(
        &self,
        names: &Interner,
        project: &str,
        channels: &[S],
        roles: &[S],
        out: &mut Vec<ConnId>,
    ) {
        let Some(project) = names.get(project) else { return };
        let ids = |xs: &[S]| -> Vec<Id> { xs.iter().filter_map(|x| names.get(x.as_ref())).collect() };
        let (channels, roles) = (ids(channels), ids(roles));
        if !channels.is_empty() && !roles.is_empty() {
            self.matches(project, &channels, &roles, out);
        }
    }

    /// True when nothing is filed (all connections removed).
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(ix: &Index, project: Id, channels: &[Id], roles: &[Id]) -> Vec<ConnId> {
        let mut out = Vec::new();
        ix.matches(project, channels, roles, &mut out);
        out.sort_unstable();
        out
    }

    const GUESTS: Id = crate::intern::GUESTS;
    const USERS: Id = 10;
    const U2: Id = 11;
    const P: Id = 20;
    const Q: Id = 21;
    const FILES: Id = 30;
    const TEAMS: Id = 31;

    #[test]
    fn matches_by_project_channel_and_role_once() {
        let mut ix = Index::default();
        ix.insert(1, P, &[FILES, TEAMS], &[ANY, GUESTS]);
        ix.insert(2, P, &[FILES], &[ANY, USERS, U2]);
        ix.insert(3, Q, &[FILES], &[ANY, GUESTS]);
        assert_eq!(ids(&ix, P, &[FILES, TEAMS], &[ANY]), vec![1, 2]);
        assert_eq!(ids(&ix, P, &[FILES, TEAMS], &[GUESTS, USERS]), vec![1, 2]);
        assert_eq!(ids(&ix, P, &[FILES], &[U2]), vec![2]);
        assert_eq!(ids(&ix, P, &[TEAMS], &[USERS]), Vec::<ConnId>::new());
        assert_eq!(ids(&ix, 99, &[FILES], &[ANY]), Vec::<ConnId>::new());
        // Appends after what `out` holds, deduplicating only its own part.
        let mut out = vec![2];
        ix.matches(P, &[FILES, TEAMS], &[GUESTS, USERS], &mut out);
        assert_eq!(out, vec![2, 1, 2]);
        ix.remove(1, P, &[FILES, TEAMS], &[ANY, GUESTS]);
        ix.remove(2, P, &[FILES], &[ANY, USERS, U2]);
        ix.remove(3, Q, &[FILES], &[ANY, GUESTS]);
        assert!(ix.is_empty(), "{ix:?}");
    }

    // The brute-force model: a connection receives an event when project
    // matches, a channel is shared, and a role is shared (or roles hold `any`).
    proptest! {
        #[test]
        fn equals_brute_force(
            conns in prop::collection::vec(
                (0..2u32, prop::collection::vec(0..6u32, 0..4), prop::collection::vec(1..6u32, 0..3)),
                0..40),
            events in prop::collection::vec(
                (0..2u32, prop::collection::vec(0..6u32, 0..4), prop::collection::vec(0..6u32, 0..3)),
                1..20),
            removed in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            // Role 0 is `any`; channels and projects are offset to other ids.
            let mut ix = Index::default();
            type Filed = (Id, Vec<Id>, Vec<Id>); // project, channels, roles
            let mut model: Vec<Option<Filed>> = Vec::new();
            for (id, (p, cs, rs)) in conns.iter().enumerate() {
                let mut cs: Vec<Id> = cs.iter().map(|c| c + 100).collect();
                let mut rs = rs.clone();
                rs.push(ANY);
                rs.sort();
                rs.dedup();
                cs.sort();
                cs.dedup();
                ix.insert(id as ConnId, p + 200, &cs, &rs);
                model.push(Some((p + 200, cs, rs)));
            }
            if !model.is_empty() {
                for r in &removed {
                    let i = r.index(model.len());
                    if let Some((p, cs, rs)) = model[i].take() {
                        ix.remove(i as ConnId, p, &cs, &rs);
                    }
                }
            }
            for (p, cs, rs) in &events {
                let p = p + 200;
                let cs: Vec<Id> = cs.iter().map(|c| c + 100).collect();
                let mut got = Vec::new();
                ix.matches(p, &cs, rs, &mut got);
                let n = got.len();
                got.sort_unstable();
                got.dedup();
                prop_assert_eq!(n, got.len(), "a connection matched twice");
                let want: Vec<ConnId> = model.iter().enumerate().filter_map(|(id, m)| {
                    let (mp, mcs, mrs) = m.as_ref()?;
                    let ok = *mp == p
                        && mcs.iter().any(|c| cs.contains(c))
                        && (rs.contains(&ANY) || mrs.iter().any(|r| rs.contains(r)));
                    ok.then_some(id as ConnId)
                }).collect();
                prop_assert_eq!(got, want);
            }
        }
    }
}
