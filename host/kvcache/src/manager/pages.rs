//! Whole-page allocation with slot-level liveness.
//!
//! Invariant: `holders[s]` is the number of owners of slot `s` (the tree
//! counts once for a slot it owns, each sequence once for a slot it holds);
//! `live[p]` is the number of slots of page `p` with a holder; a page is on
//! the free list, exactly once, iff `live[p] == 0`, and then none of its
//! slots has a holder. A page is handed out whole, every slot held once by
//! the taker, so a slot can only gain a holder while it already has one.

/// The engine's KV pool as pages of `page_size` slots.
#[derive(Debug)]
pub(super) struct PagePool {
    page_size: u32,
    /// Free page ids; reversed at creation so low ids go out first.
    free: Vec<u32>,
    live: Vec<u32>,
    holders: Vec<u32>,
}

impl PagePool {
    /// All `pool_slots / page_size` pages free; the caller checked that
    /// `page_size` divides `pool_slots`.
    pub(super) fn new(pool_slots: u32, page_size: u32) -> Self {
        let pages = pool_slots / page_size;
        PagePool {
            page_size,
            free: (0..pages).rev().collect(),
            live: vec![0; pages as usize],
            holders: vec![0; pool_slots as usize],
        }
    }

    pub(super) fn page_size(&self) -> u32 {
        self.page_size
    }

    pub(super) fn num_pages(&self) -> usize {
        self.live.len()
    }

    pub(super) fn num_slots(&self) -> usize {
        self.holders.len()
    }

    pub(super) fn free_pages(&self) -> usize {
        self.free.len()
    }

    pub(super) fn page_of(&self, slot: u32) -> u32 {
        slot / self.page_size
    }

    pub(super) fn holders(&self, slot: u32) -> u32 {
        self.holders[slot as usize]
    }

    pub(super) fn live(&self, page: u32) -> u32 {
        self.live[page as usize]
    }

    /// Takes a free page, every slot held once by the caller; returns the
    /// page id.
    pub(super) fn alloc(&mut self) -> Option<u32> {
        let page = self.free.pop()?;
        let p = self.page_size;
        for s in page * p..page * p + p {
            debug_assert_eq!(self.holders[s as usize], 0);
            self.holders[s as usize] = 1;
        }
        self.live[page as usize] = p;
        Some(page)
    }

    /// One more owner for a slot that already has one (sharing a page or
    /// pinning a copy source).
    pub(super) fn hold(&mut self, slot: u32) {
        let h = &mut self.holders[slot as usize];
        debug_assert!(*h > 0, "hold on dead slot {slot}");
        *h += 1;
    }

    /// One owner gives `slot` up; its page goes back to the free list when
    /// its last live slot dies.
    pub(super) fn drop_hold(&mut self, slot: u32) {
        let h = &mut self.holders[slot as usize];
        debug_assert!(*h > 0, "slot {slot} released more often than held");
        if *h == 0 {
            tracing::error!(slot, "ignored release of a slot nobody holds");
            return;
        }
        *h -= 1;
        if *h == 0 {
            let page = self.page_of(slot);
            let live = &mut self.live[page as usize];
            *live -= 1;
            if *live == 0 {
                self.free.push(page);
            }
        }
    }

    /// Checks the module invariant against a recount.
    pub(super) fn check(&self) -> Result<(), String> {
        let p = self.page_size as usize;
        let mut on_list = vec![false; self.num_pages()];
        for &page in &self.free {
            let seen = on_list
                .get_mut(page as usize)
                .ok_or_else(|| format!("free list names unknown page {page}"))?;
            if *seen {
                return Err(format!("page {page} twice on the free list"));
            }
            *seen = true;
        }
        for (page, chunk) in self.holders.chunks(p).enumerate() {
            let live = chunk.iter().filter(|&&h| h > 0).count();
            if live != self.live[page] as usize {
                return Err(format!(
                    "page {page}: live count {} but {live} slots held",
                    self.live[page]
                ));
            }
            if on_list[page] != (live == 0) {
                return Err(format!(
                    "page {page}: {live} live slots, on free list: {}",
                    on_list[page]
                ));
            }
        }
        Ok(())
    }
}
