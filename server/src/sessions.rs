//! A connection's session as two numbers: its user, and the roles it shares
//! with others.
//!
//! A signed-in connection used to keep its token's claims and a list of its
//! roles, a few hundred bytes of small allocations each. All a connection
//! needs once admitted is what it is filed under (its roles) and its user id
//! (for `account` and later subscriptions). Both are interned: the user's
//! own role `user:<id>` is a name (`intern.rs`), the rest of its roles
//! (`any`, `users`, its teams and labels) are a role set that every
//! connection with the same roles shares, counted by holder. A `Session` is
//! then 8 bytes in the slot, whatever the token said; a guest is `GUEST`.
//!
//! Every session here is verified (the token is the session; there is no
//! unverified state), so a session holds `users/verified` exactly when it
//! holds `users`, and `user:<id>/verified` exactly when `user:<id>`: only
//! the shorter of each pair is filed, and `auth::filed_as` maps an event's
//! role to it.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rtbench_protocol::jwt::Claims;

use crate::fasthash::Build;
use crate::freeids::FreeIds;
use crate::intern::{ANY, GUESTS, Id, Interner};

/// A role set: the shared roles of a session, interned.
pub type SetId = u32;

/// What a connection's session is filed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// The interned `user:<id>` role; `NO_USER` for a guest.
    user: Id,
    roles: SetId,
}

const NO_USER: Id = Id::MAX;
/// The guests' role set, `[any, guests]`: always there.
const GUEST_SET: SetId = 0;

/// A connection without a session.
pub const GUEST: Session = Session {
    user: NO_USER,
    roles: GUEST_SET,
};

impl Session {
    pub fn is_guest(self) -> bool {
        self.user == NO_USER
    }
}

/// A role set's roles (sorted) and how many sessions hold it; `None`: free.
type Entry = Option<(Box<[Id]>, u32)>;

/// The role sets of a reactor's sessions.
#[derive(Debug)]
pub struct Sessions {
    /// Set ids by their roles.
    ids: HashTable<SetId>,
    /// By set id: its roles (sorted) and how many sessions hold it.
    sets: Vec<Entry>,
    free: FreeIds,
}

fn hash(roles: &[Id]) -> u64 {
    Build::default().hash_one(roles)
}

impl Default for Sessions {
    fn default() -> Sessions {
        let mut s = Sessions {
            ids: HashTable::new(),
            sets: Vec::new(),
            free: FreeIds::default(),
        };
        let guests: Box<[Id]> = Box::new([ANY, GUESTS]);
        s.ids
            .insert_unique(hash(&guests), GUEST_SET, |_| hash(&[ANY, GUESTS]));
        s.sets.push(Some((guests, 1)));
        s
    }
}

impl Sessions {
    /// The session `claims` grant (a guest's for `None`), its names and
    /// role set taken in `names`.
    pub fn acquire(&mut self, names: &mut Interner, claims: Option<&Claims>) -> Session {
        let Some(claims) = claims else { return GUEST };
        let user = names.acquire(&crate::auth::user_role(&claims.sub));
        // Distinct names, so distinct ids; sorted, one set per combination.
        let mut roles: Vec<Id> = crate::auth::shared_roles(claims)
            .iter()
            .map(|r| names.acquire(r))
            .collect();
        roles.sort_unstable();
        let sets = &self.sets;
        let found = self
            .ids
            .find(hash(&roles), |&s| Self::members_in(sets, s) == &roles[..])
            .copied();
        let set = match found {
            Some(set) => {
                // The set holds its names already.
                for &r in &roles {
                    names.release(r);
                }
                if let Some((_, n)) = &mut self.sets[set as usize] {
                    *n += 1;
                }
                set
            }
            None => self.insert(roles.into_boxed_slice()),
        };
        Session { user, roles: set }
    }

    fn insert(&mut self, roles: Box<[Id]>) -> SetId {
        let h = hash(&roles);
        let entry = Some((roles, 1));
        let set = match self.free.take() {
            Some(set) => {
                self.sets[set as usize] = entry;
                set
            }
            None => {
                self.sets.push(entry);
                (self.sets.len() - 1) as SetId
            }
        };
        let sets = &self.sets;
        self.ids
            .insert_unique(h, set, |&s| hash(Self::members_in(sets, s)));
        set
    }

    fn members_in(sets: &[Entry], set: SetId) -> &[Id] {
        sets.get(set as usize)
            .and_then(Option::as_ref)
            .map_or(&[], |(r, _)| r)
    }

    /// Gives back what `acquire` took.
    pub fn release(&mut self, names: &mut Interner, s: Session) {
        if s.is_guest() {
            return;
        }
        names.release(s.user);
        let Some(Some((roles, n))) = self.sets.get_mut(s.roles as usize) else {
            return;
        };
        *n -= 1;
        if *n > 0 {
            return;
        }
        let h = hash(roles);
        for &r in roles.iter() {
            names.release(r);
        }
        if let Ok(entry) = self.ids.find_entry(h, |&set| set == s.roles) {
            entry.remove();
        }
        self.sets[s.roles as usize] = None;
        self.free.give(s.roles);
        self.free.trim(&mut self.sets);
        if self.ids.capacity() > 64 && self.ids.len() < self.ids.capacity() / 4 {
            let sets = &self.sets;
            self.ids
                .shrink_to(self.ids.len() * 2, |&set| hash(Self::members_in(sets, set)));
        }
    }

    /// Appends the roles `s` is filed under.
    pub fn roles(&self, s: Session, out: &mut Vec<Id>) {
        out.extend_from_slice(Self::members_in(&self.sets, s.roles));
        if !s.is_guest() {
            out.push(s.user);
        }
    }

    /// The roles `s` is filed under.
    pub fn roles_of(&self, s: Session) -> Vec<Id> {
        let mut out = Vec::new();
        self.roles(s, &mut out);
        out
    }

    /// The signed-in user's id (`None` for a guest).
    pub fn user<'a>(&self, names: &'a Interner, s: Session) -> Option<&'a str> {
        (!s.is_guest()).then(|| crate::auth::user_of_role(names.name(s.user)))
    }

    /// Role sets held (the guests' included).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtbench_protocol::jwt::Team;

    fn claims(sub: &str, team: &str) -> Claims {
        Claims {
            sub: sub.into(),
            exp: 0,
            teams: vec![Team {
                id: team.into(),
                roles: vec!["owner".into()],
            }],
            labels: vec!["vip".into(), "vip".into()],
        }
    }

    fn names_of(names: &Interner, ids: &[Id]) -> Vec<String> {
        let mut v: Vec<String> = ids.iter().map(|&i| names.name(i).to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn users_with_the_same_roles_share_one_set_and_everything_is_given_back() {
        let mut names = Interner::default();
        let mut sessions = Sessions::default();
        let a = sessions.acquire(&mut names, Some(&claims("u1", "t1")));
        let b = sessions.acquire(&mut names, Some(&claims("u2", "t1")));
        let c = sessions.acquire(&mut names, Some(&claims("u3", "t2")));
        assert_eq!(a.roles, b.roles);
        assert_ne!(a.roles, c.roles);
        assert_eq!(
            names_of(&names, &sessions.roles_of(a)),
            [
                "any",
                "label:vip",
                "team:t1",
                "team:t1/owner",
                "user:u1",
                "users"
            ]
        );
        assert_eq!(sessions.user(&names, a), Some("u1"));
        assert_eq!(sessions.user(&names, GUEST), None);
        assert_eq!(
            names_of(&names, &sessions.roles_of(GUEST)),
            ["any", "guests"]
        );
        for s in [a, b, c] {
            sessions.release(&mut names, s);
        }
        assert_eq!(
            (names.len(), sessions.len()),
            (2, 1),
            "only any, guests and the guests' set stay"
        );
    }
}
