//! The free places of a table indexed by small numbers (the reactor's slab,
//! the interned names, the role sets), handed out lowest first.
//!
//! A table whose ids live elsewhere (in epoll tokens, in the index, in
//! connection slots) cannot move its entries, so after a peak it can only
//! give memory back at its end. Reusing the lowest free place keeps the
//! entries in use packed at the start; whatever is free at the end is cut
//! off (`trim`), and the table's allocation shrinks with it.

use std::collections::BTreeSet;

#[derive(Debug, Default)]
pub(crate) struct FreeIds(BTreeSet<u32>);

/// Below this many entries a table is never shrunk: not worth a reallocation.
const KEEP: usize = 64;

impl FreeIds {
    /// The lowest free id, now taken.
    pub(crate) fn take(&mut self) -> Option<u32> {
        self.0.pop_first()
    }

    /// `id` is free again.
    pub(crate) fn give(&mut self, id: u32) {
        self.0.insert(id);
    }

    /// Cuts `table` back past every free place at its end (those ids leave
    /// the free list); its allocation shrinks once a quarter of it or less
    /// is used. The caller chooses when: an id cut off must not be used
    /// again until it is handed out anew.
    pub(crate) fn trim<T>(&mut self, table: &mut Vec<T>) {
        while let Some(&last) = self.0.last()
            && last as usize + 1 == table.len()
        {
            self.0.pop_last();
            table.pop();
        }
        shrink(table);
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// Gives back most of `table`'s allocation once a quarter of it or less
/// is used (for a table cut back beside one `FreeIds::trim` cut).
pub(crate) fn shrink<T>(table: &mut Vec<T>) {
    if table.capacity() > KEEP && table.len() < table.capacity() / 4 {
        table.shrink_to((table.len() * 2).max(KEEP));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_first_and_the_free_end_is_cut_off() {
        let mut table: Vec<u32> = (0..1000).collect();
        let mut free = FreeIds::default();
        for id in [3, 5, 999, 997] {
            free.give(id);
        }
        assert_eq!(table.len(), 1000, "cut only when asked");
        free.trim(&mut table);
        assert_eq!(table.len(), 999, "999 was at the end; 997 is not yet");
        assert_eq!(free.take(), Some(3));
        assert_eq!(free.take(), Some(5));
        for id in (0..997).rev() {
            if ![3, 5].contains(&id) {
                free.give(id);
            }
        }
        free.trim(&mut table);
        assert_eq!(table.len(), 999, "998 still used");
        free.give(998);
        free.trim(&mut table);
        // 3 and 5 were taken and are still in use: the table ends at 5.
        assert_eq!((table.len(), free.len()), (6, 4), "{:?}", free);
        assert!(
            table.capacity() <= 2 * KEEP,
            "capacity {}",
            table.capacity()
        );
    }
}
