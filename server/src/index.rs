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

/// Every (project, channel, role) held, and who holds it. A bucket is 16
/// bytes: most (a signed-in user's own role on each of its channels) hold
/// one connection, named in place; the others name a set in `sets`.
#[derive(Default, Debug)]
pub struct Index {
    buckets: FastMap<(Id, Id, Id), Members>,
    /// The members of buckets holding more than one connection.
    sets: Vec<FastSet<ConnId>>,
    /// Places in `sets` no bucket uses.
    free_sets: Vec<u32>,
}

/// One connection, or (with `MANY` set) the number of a set of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Members(u32);

const MANY: u32 = 1 << 31;

/// Below this many buckets the table is never shrunk.
const KEEP: usize = 64;

impl Index {
    /// Files `id` under every (channel, role) pair of `project`.
    pub fn insert(&mut self, id: ConnId, project: Id, channels: &[Id], roles: &[Id]) {
        debug_assert!(id < MANY, "slot numbers stay below 2^31");
        for &c in channels {
            for &r in roles {
                let key = (project, c, r);
                match self.buckets.get(&key).copied() {
                    None => {
                        self.buckets.insert(key, Members(id));
                    }
                    Some(Members(x)) if x == id => {}
                    Some(Members(x)) if x & MANY != 0 => {
                        self.sets[(x & !MANY) as usize].insert(id);
                    }
                    Some(Members(x)) => {
                        let set = self.new_set([x, id]);
                        self.buckets.insert(key, Members(set | MANY));
                    }
                }
            }
        }
    }

    fn new_set(&mut self, members: [ConnId; 2]) -> u32 {
        let set: FastSet<ConnId> = members.into_iter().collect();
        match self.free_sets.pop() {
            Some(i) => {
                self.sets[i as usize] = set;
                i
            }
            None => {
                self.sets.push(set);
                (self.sets.len() - 1) as u32
            }
        }
    }

    /// Undoes `insert` with the same arguments; empty buckets are freed, so
    /// clients subscribing to ever new channel names cannot grow the index,
    /// and the tables shrink as they empty (memory a peak took comes back).
    pub fn remove(&mut self, id: ConnId, project: Id, channels: &[Id], roles: &[Id]) {
        for &c in channels {
            for &r in roles {
                let key = (project, c, r);
                match self.buckets.get(&key).copied() {
                    Some(Members(x)) if x == id => {
                        self.buckets.remove(&key);
                    }
                    Some(Members(x)) if x & MANY != 0 => {
                        if let Some(last) = self.leave_set(x & !MANY, id) {
                            self.buckets.insert(key, Members(last));
                        }
                    }
                    _ => {}
                }
            }
        }
        if self.buckets.capacity() > KEEP && self.buckets.len() < self.buckets.capacity() / 4 {
            self.buckets.shrink_to(self.buckets.len() * 2);
        }
    }

    /// Takes `id` out of every bucket that names it, whatever it was filed
    /// under: after a panic cut a re-filing short, what its slot says no
    /// longer does (`reactor/panics.rs`). A walk over the whole index, for
    /// that path alone.
    pub fn forget(&mut self, id: ConnId) {
        let keys: Vec<(Id, Id, Id)> = self
            .buckets
            .iter()
            .filter(|(_, m)| {
                m.0 == id || (m.0 & MANY != 0 && self.sets[(m.0 & !MANY) as usize].contains(&id))
            })
            .map(|(k, _)| *k)
            .collect();
        for (project, channel, role) in keys {
            self.remove(id, project, &[channel], &[role]);
        }
    }

    /// Takes `id` out of set `i`; a set left with one member is given up
    /// and that member returned, so only a one-member bucket ever empties.
    fn leave_set(&mut self, i: u32, id: ConnId) -> Option<ConnId> {
        let s = &mut self.sets[i as usize];
        s.remove(&id);
        if s.len() > 1 {
            if s.len() < s.capacity() / 4 {
                s.shrink_to_fit();
            }
            return None;
        }
        let last = *s.iter().next().expect("one member");
        self.sets[i as usize] = FastSet::default();
        self.free_sets.push(i);
        if self.free_sets.len() == self.sets.len() {
            self.sets = Vec::new();
            self.free_sets = Vec::new();
        }
        Some(last)
    }

    fn extend_into(&self, m: Members, out: &mut Vec<ConnId>) {
        if m.0 & MANY != 0 {
            out.extend(self.sets[(m.0 & !MANY) as usize].iter().copied());
        } else {
            out.push(m.0);
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
                if let Some(&m) = self.buckets.get(&(project, c, r)) {
                    self.extend_into(m, out);
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
    /// holds match nothing, and a role is also matched by the filed role
    /// that grants it (`auth::filed_as`). This is the per-event work of a
    /// reactor.
    pub fn matches_names<S: AsRef<str>>(
        &self,
        names: &Interner,
        project: &str,
        channels: &[S],
        roles: &[S],
        out: &mut Vec<ConnId>,
    ) {
        let Some(project) = names.get(project) else {
            return;
        };
        let channels: Vec<Id> = channels
            .iter()
            .filter_map(|x| names.get(x.as_ref()))
            .collect();
        let mut role_ids: Vec<Id> = Vec::with_capacity(roles.len());
        for r in roles {
            let r = r.as_ref();
            role_ids.extend(names.get(r));
            role_ids.extend(crate::auth::filed_as(r).and_then(|f| names.get(f)));
        }
        if !channels.is_empty() && !role_ids.is_empty() {
            self.matches(project, &channels, &role_ids, out);
        }
    }

    /// True when nothing is filed (all connections removed).
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// (project, channel, role) entries filed: the `rtbench_index_entries` gauge.
    pub fn entries(&self) -> usize {
        self.buckets.len()
    }

    /// Buckets filed and the table's capacity (tests of memory given back).
    pub fn footprint(&self) -> (usize, usize, usize) {
        (self.buckets.len(), self.buckets.capacity(), self.sets.len())
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

    #[test]
    fn a_peak_is_given_back() {
        let mut ix = Index::default();
        for id in 0..20_000 {
            ix.insert(id, P, &[FILES, TEAMS], &[ANY, USERS, 1000 + id]);
        }
        assert_eq!(ix.footprint().0, 2 * 2 + 2 * 20_000);
        for id in 0..20_000 {
            ix.remove(id, P, &[FILES, TEAMS], &[ANY, USERS, 1000 + id]);
        }
        assert!(ix.is_empty());
        let (_, capacity, sets) = ix.footprint();
        assert!(
            capacity <= 2 * KEEP && sets == 0,
            "capacity {capacity}, sets {sets}"
        );
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
