//! Growing and shrinking a sequence at its end.

use super::{KvError, KvManager, SeqKv};

impl KvManager {
    /// Slots for the next `n` positions of `seq` (`seq.len()..seq.len() +
    /// n`), page-consistent: first the unused tail of its last page, then
    /// fresh pages, evicting least recently used cache entries while free
    /// pages are short. All or nothing: on `Err` nothing changed (nothing
    /// was evicted either). On `Ok` the slots are appended to `seq` and
    /// returned, for the engine to write.
    pub fn allocate(&mut self, seq: &mut SeqKv, n: usize) -> Result<Vec<u32>, KvError> {
        self.check_owner(seq);
        self.unpin_if_done(seq);
        let p = self.page_size();
        let tail = seq.tail();
        let from_tail = tail.len().min(n);
        let pages = (n - from_tail).div_ceil(p);
        self.ensure_free_pages(pages)?;
        let mut out: Vec<u32> = tail.take(from_tail).collect();
        for _ in 0..pages {
            let page = self.pages.alloc().expect("free pages ensured");
            let base = page * p as u32;
            // Slots of the last page past `n` become the new tail.
            out.extend((base..base + p as u32).take(n - out.len()));
        }
        seq.slots.extend_from_slice(&out);
        seq.held.resize(seq.slots.len(), true);
        Ok(out)
    }

    /// Drops positions `new_len..` again (a forward pass that failed or was
    /// not run) and frees what the sequence held for them; the rest of a
    /// page the sequence still uses stays reserved as its tail. Never
    /// panics: `new_len` is clamped to the positions this sequence computed
    /// itself since it was admitted, forked or last committed (so to at
    /// least `cached_len()`), because the cache or a fork may read the
    /// others; and it is clamped past every position a fork's copy on write
    /// has still to read, until that copy has run.
    pub fn truncate(&mut self, seq: &mut SeqKv, new_len: usize) {
        self.check_owner(seq);
        self.unpin_if_done(seq);
        let new_len = new_len.clamp(self.droppable_from(seq), seq.len());
        if new_len == seq.len() {
            return;
        }
        let p = self.page_size();
        let keep = (!new_len.is_multiple_of(p)).then(|| self.pages.page_of(seq.slots[new_len - 1]));
        let dropped = seq.slots[new_len..].iter().copied().chain(seq.tail());
        let freed: Vec<u32> = dropped
            .filter(|&s| Some(self.pages.page_of(s)) != keep)
            .collect();
        debug_assert!(seq.held[new_len..].iter().all(|&h| h));
        for s in freed {
            self.pages.drop_hold(s);
        }
        seq.slots.truncate(new_len);
        seq.held.truncate(new_len);
    }

    /// The first position `truncate` may drop: past the floor, and past the
    /// last position whose slot has an owner besides `seq`. Above the floor
    /// that owner can only be a fork's pin on a copy source (forks share
    /// only pages below their parent's floor, the tree only slots below
    /// it), i.e. a copy not known to have run (pins go at the fork's next
    /// manager call after its copies were taken). Dropping such a position
    /// would keep the slot alive for the copy but, when it lies in the page
    /// `seq` keeps, hand it back to `seq` as tail: the next `allocate`
    /// would give it out for a new position and the engine would overwrite
    /// the source before the fork had copied it.
    fn droppable_from(&self, seq: &SeqKv) -> usize {
        (seq.floor..seq.len())
            .rev()
            .find(|&i| self.pages.holders(seq.slots[i]) > 1)
            .map_or(seq.floor, |i| i + 1)
    }
}
