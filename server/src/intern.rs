//! Names as small numbers: projects, channels and roles, interned per reactor.
//!
//! A million connections subscribed to `files` as guests would otherwise keep
//! a million copies of "console", "files", "any" and "guests". Each reactor
//! keeps one copy of each name and hands out `u32` ids, counted by holder, so
//! that a name nobody holds any more is forgotten (clients inventing channel
//! names cannot grow the table for ever). The index files connections by id.
//!
//! A name is stored once, in the table by id, and in place when it is short
//! (up to 30 bytes: a signed-in user's own role `user:<id>` with Appwrite's
//! 20-character ids, most channels); the lookup by name is a hash table of
//! ids that compares against that copy. A user's own role is a name only
//! its connections hold, so what one name costs is what a signed-in
//! connection costs beyond a guest: 36 bytes in the tables by id and about
//! 8 in the lookup, nothing on the heap.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use crate::fasthash::Build;
use crate::freeids::{FreeIds, shrink};

/// An interned name.
pub type Id = u32;

/// The role every connection holds.
pub const ANY: Id = 0;
/// The role of a connection without a session.
pub const GUESTS: Id = 1;

/// A name: in place up to `SHORT` bytes, else on the heap.
#[derive(Debug)]
enum Name {
    Short { len: u8, bytes: [u8; SHORT] },
    Long(Box<str>),
}

const SHORT: usize = 30;

impl Name {
    fn new(s: &str) -> Name {
        if s.len() <= SHORT {
            let mut bytes = [0u8; SHORT];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Name::Short {
                len: s.len() as u8,
                bytes,
            }
        } else {
            Name::Long(s.into())
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Name::Short { len, bytes } => std::str::from_utf8(&bytes[..*len as usize])
                .expect("copied from a str, cut at its end"),
            Name::Long(s) => s,
        }
    }

    const FREE: Name = Name::Short {
        len: 0,
        bytes: [0; SHORT],
    };
}

// 32 bytes in place: a short name needs no allocation of its own.
const _: () = assert!(std::mem::size_of::<Name>() == 32);

#[derive(Debug)]
pub struct Interner {
    /// Ids by name (each hashed as `hash` does).
    ids: HashTable<Id>,
    /// By id: the name (`Name::FREE` for a free id) ...
    names: Vec<Name>,
    /// ... and how many hold it (0: a free id).
    holders: Vec<u32>,
    free: FreeIds,
}

fn hash(name: &str) -> u64 {
    Build::default().hash_one(name)
}

impl Default for Interner {
    fn default() -> Interner {
        let mut i = Interner {
            ids: HashTable::new(),
            names: Vec::new(),
            holders: Vec::new(),
            free: FreeIds::default(),
        };
        // Held for ever: every connection has one of these.
        assert_eq!(i.acquire("any"), ANY);
        assert_eq!(i.acquire("guests"), GUESTS);
        i
    }
}

impl Interner {
    /// The id of `name`, if anyone holds it.
    pub fn get(&self, name: &str) -> Option<Id> {
        let (names, holders) = (&self.names, &self.holders);
        self.ids
            .find(hash(name), |&id| {
                holders[id as usize] > 0 && names[id as usize].as_str() == name
            })
            .copied()
    }

    /// The id of `name`, counting one more holder.
    pub fn acquire(&mut self, name: &str) -> Id {
        if let Some(id) = self.get(name) {
            if id != ANY && id != GUESTS {
                self.holders[id as usize] += 1;
            }
            return id;
        }
        let id = match self.free.take() {
            Some(id) => {
                self.names[id as usize] = Name::new(name);
                self.holders[id as usize] = 1;
                id
            }
            None => {
                self.names.push(Name::new(name));
                self.holders.push(1);
                (self.names.len() - 1) as Id
            }
        };
        let names = &self.names;
        self.ids
            .insert_unique(hash(name), id, |&i| hash(names[i as usize].as_str()));
        id
    }

    /// One holder fewer; the name is forgotten with its last holder, and
    /// the tables shrink as they empty.
    pub fn release(&mut self, id: Id) {
        if id == ANY || id == GUESTS {
            return; // held for ever, never counted
        }
        let Some(n) = self.holders.get_mut(id as usize).filter(|n| **n > 0) else {
            return;
        };
        *n -= 1;
        if *n > 0 {
            return;
        }
        let h = hash(self.names[id as usize].as_str());
        if let Ok(entry) = self.ids.find_entry(h, |&i| i == id) {
            entry.remove();
        }
        self.names[id as usize] = Name::FREE;
        self.free.give(id);
        self.free.trim(&mut self.holders);
        self.names.truncate(self.holders.len());
        shrink(&mut self.names);
        if self.ids.capacity() > 64 && self.ids.len() < self.ids.capacity() / 4 {
            let names = &self.names;
            self.ids
                .shrink_to(self.ids.len() * 2, |&i| hash(names[i as usize].as_str()));
        }
    }

    pub fn name(&self, id: Id) -> &str {
        match self.holders.get(id as usize) {
            Some(&n) if n > 0 => self.names[id as usize].as_str(),
            _ => "",
        }
    }

    /// Names currently held (the two permanent roles included).
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

    #[test]
    fn names_are_counted_and_forgotten_with_their_last_holder() {
        let mut i = Interner::default();
        let a = i.acquire("files");
        assert_eq!(i.acquire("files"), a);
        assert_eq!(i.name(a), "files");
        i.release(a);
        assert_eq!(i.get("files"), Some(a));
        i.release(a);
        assert_eq!(i.get("files"), None);
        assert_eq!(i.len(), 2, "only any and guests stay");
        // The freed id is reused.
        assert_eq!(i.acquire("chat"), a);
        i.release(ANY);
        assert_eq!(
            i.get("any"),
            Some(ANY),
            "permanent roles are never forgotten"
        );
    }

    #[test]
    fn a_peak_of_names_is_given_back() {
        let mut i = Interner::default();
        let ids: Vec<Id> = (0..10_000)
            .map(|n| i.acquire(&format!("user:u{n}")))
            .collect();
        for (n, &id) in ids.iter().enumerate() {
            assert_eq!(i.get(&format!("user:u{n}")), Some(id));
        }
        for id in ids {
            i.release(id);
        }
        assert_eq!(i.len(), 2);
        assert!(
            i.names.capacity() <= 128 && i.ids.capacity() <= 128,
            "{} {}",
            i.names.capacity(),
            i.ids.capacity()
        );
        assert_eq!(i.acquire("files"), 2, "ids start again from the lowest");
        // Short names in place, long ones on the heap, both found.
        let long = "databases.db1.collections.c1.documents.d1";
        let (a, b) = (i.acquire(long), i.acquire("user:0123456789abcdef0123"));
        assert_eq!((i.name(a), i.get(long)), (long, Some(a)));
        assert_eq!(i.name(b), "user:0123456789abcdef0123");
    }
}
