//! Names as small numbers: projects, channels and roles, interned per reactor.
//!
//! A million connections subscribed to `files` as guests would otherwise keep
//! a million copies of "console", "files", "any" and "guests". Each reactor
//! keeps one copy of each name and hands out `u32` ids, counted by holder, so
//! that a name nobody holds any more is forgotten (clients inventing channel
//! names cannot grow the table for ever). The index files connections by id.

use std::collections::HashMap;

use crate::fasthash::FastMap;

/// An interned name.
pub type Id = u32;

/// The role every connection holds.
pub const ANY: Id = 0;
/// The role of a connection without a session.
pub const GUESTS: Id = 1;

#[derive(Debug)]
pub struct Interner {
    ids: HashMap<Box<str>, Id, crate::fasthash::Build>,
    /// By id: the name and how many holders it has (`None`: a free id).
    names: Vec<Option<(Box<str>, u32)>>,
    free: Vec<Id>,
}

impl Default for Interner {
    fn default() -> Interner {
        let mut i = Interner { ids: FastMap::default(), names: Vec::new(), free: Vec::new() };
        // Held for ever: every connection has one of these.
        assert_eq!(i.acquire("any"), ANY);
        assert_eq!(i.acquire("guests"), GUESTS);
        i
    }
}

impl Interner {
    /// The id of `name`, if anyone holds it.
    pub fn get(&self, name: &str) -> Option<Id> {
        self.ids.get(name).copied()
    }

    /// The id of `name`, counting one more holder.
    pub fn acquire(&mut self, name: &str) -> Id {
        if let Some(&id) = self.ids.get(name) {
            if let Some((_, n)) = &mut self.names[id as usize] {
                *n += 1;
            }
            return id;
        }
        let entry = Some((Box::<str>::from(name), 1));
        let id = match self.free.pop() {
            Some(id) => {
                self.names[id as usize] = entry;
                id
            }
            None => {
                self.names.push(entry);
                (self.names.len() - 1) as Id
            }
        };
        self.ids.insert(name.into(), id);
        id
    }

    /// One holder fewer; the name is forgotten with its last holder.
    pub fn release(&mut self, id: Id) {
        let Some(Some((name, n))) = self.names.get_mut(id as usize) else {
            return;
        };
        *n -= 1;
        if *n == 0 && id != ANY && id != GUESTS {
            self.ids.remove(&**name);
            self.names[id as usize] = None;
            self.free.push(id);
        }
    }

    pub fn name(&self, id: Id) -> &str {
        self.names.get(id as usize).and_then(Option::as_ref).map_or("", |(n, _)| n)
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
        assert_eq!(i.get("any"), Some(ANY), "permanent roles are never forgotten");
    }
}
