//! Starting a sequence: `admit` (from a cached prefix) and `fork` (from a
//! live sequence). Both build the new sequence's first positions page by
//! page from a source: a page is shared when the source's page may be read
//! as is, otherwise it is copied into a fresh private page.

use super::{KvError, KvManager, SeqKv, SlotCopy};
use crate::namespace::Namespace;

/// Where the first positions of a new sequence come from.
struct Source<'a> {
    /// Source slot of each position.
    slots: &'a [u32],
    /// Whether the source's owner is a sequence (a sharer must hold the
    /// slot too) rather than the tree (a sharer reads it under its lock).
    held: &'a [bool],
    /// Whether page `k` may be shared.
    shareable: &'a dyn Fn(usize) -> bool,
}

impl Source<'_> {
    fn pages(&self, p: usize) -> usize {
        self.slots.len().div_ceil(p)
    }

    fn shared_pages(&self, p: usize) -> usize {
        (0..self.pages(p)).filter(|&k| (self.shareable)(k)).count()
    }
}

impl KvManager {
    /// Matches and locks the longest cached prefix of `tokens` visible to
    /// `ns` (at most `tokens.len() - 1` tokens: the last prompt token is
    /// always computed, its logits are needed), and prepares copy on write
    /// for matched pages that cannot be shared. Admission needs room for
    /// positions up to `tokens.len() + reserve` in free pages plus pages
    /// eviction could free; the pages for copies are taken now.
    ///
    /// Returns `None`, holding nothing, when there is no room or `tokens`
    /// is empty. Otherwise `len() == cached_len()` == the matched length.
    pub fn admit(&mut self, ns: Namespace, tokens: &[u32], reserve: usize) -> Option<SeqKv> {
        let (_, head) = tokens.split_last()?;
        let p = self.page_size();
        let mut seq = SeqKv::new(self.id, ns, p as u32);
        let matched = if self.cache_enabled {
            let m = self.cache.match_prefix(ns, head);
            // Locked before anything can evict: the lock protects both the
            // shared pages and the copy sources.
            if self.cache.lock(m.node).is_err() {
                seq.released = true;
                return None;
            }
            seq.locks.push(m.node);
            m.slots
        } else {
            Vec::new()
        };
        let held = vec![false; matched.len()];
        let shareable = |k: usize| full_and_consistent(&matched, k, p);
        let src = Source {
            slots: &matched,
            held: &held,
            shareable: &shareable,
        };
        let need = (tokens.len() + reserve).div_ceil(p) - src.shared_pages(p);
        let copy_pages = src.pages(p) - src.shared_pages(p);
        let room = self.pages.free_pages() >= need || self.obtainable_pages() >= need;
        if !room || self.ensure_free_pages(copy_pages).is_err() {
            self.release(seq, &[], false);
            return None;
        }
        self.fill(&mut seq, &src);
        seq.cached_len = matched.len();
        Some(seq)
    }

    /// A new sequence whose first `len` positions are `parent`'s (a branch
    /// of the same history, e.g. one choice of a `select`). Full pages the
    /// parent will never rewrite (those below its committed or cached
    /// length) are shared; the rest, in the common case just the partial
    /// last page, is copied into a fresh page. The fork locks what the
    /// parent has locked, so it may outlive the parent.
    ///
    /// Fails, changing nothing, when `len > parent.len()`, when the
    /// parent's own copies have not been taken yet (the fork would share or
    /// copy slots not yet written: run them first, in an earlier or the
    /// same step), or no page for the copies can be found.
    pub fn fork(&mut self, parent: &SeqKv, len: usize) -> Result<SeqKv, KvError> {
        self.check_owner(parent);
        if parent.has_pending_copies() {
            return Err(KvError::ParentCopiesPending);
        }
        if len > parent.len() {
            return Err(KvError::ForkTooLong {
                len,
                parent_len: parent.len(),
            });
        }
        let p = self.page_size();
        let stable_pages = parent.floor / p;
        let shareable = |k: usize| k < stable_pages && (k + 1) * p <= len;
        let src = Source {
            slots: &parent.slots[..len],
            held: &parent.held[..len],
            shareable: &shareable,
        };
        self.ensure_free_pages(src.pages(p) - src.shared_pages(p))?;
        let mut seq = SeqKv::new(self.id, parent.ns, p as u32);
        for &node in &parent.locks {
            if self.cache.lock(node).is_err() {
                self.release(seq, &[], false);
                return Err(KvError::TooManyLocks);
            }
            seq.locks.push(node);
        }
        self.fill(&mut seq, &src);
        seq.cached_len = len;
        Ok(seq)
    }

    /// Gives the empty `seq` the positions of `src`. The free pages for
    /// the copies must be there already.
    fn fill(&mut self, seq: &mut SeqKv, src: &Source<'_>) {
        let p = self.page_size();
        for (k, chunk) in src.slots.chunks(p).enumerate() {
            let held = &src.held[k * p..k * p + chunk.len()];
            if (src.shareable)(k) {
                for (&s, &h) in chunk.iter().zip(held) {
                    if h {
                        self.pages.hold(s);
                    }
                    seq.slots.push(s);
                    seq.held.push(h);
                }
                continue;
            }
            let page = self.pages.alloc().expect("pages for copies ensured");
            for (j, &s) in chunk.iter().enumerate() {
                let dst = page * p as u32 + j as u32;
                // The source may lose its owner before the engine copies.
                self.pages.hold(s);
                seq.pins.push(s);
                seq.copies.push(SlotCopy { src: s, dst });
                seq.slots.push(dst);
                seq.held.push(true);
            }
        }
        seq.floor = seq.slots.len();
    }
}

/// Whether page `k` of `slots` is full and lies in one physical page in
/// position order, so a sequence may read it as its own page `k`.
fn full_and_consistent(slots: &[u32], k: usize, p: usize) -> bool {
    let Some(page) = slots.get(k * p..(k + 1) * p) else {
        return false;
    };
    page[0] % p as u32 == 0
        && page
            .iter()
            .enumerate()
            .all(|(j, &s)| s == page[0] + j as u32)
}
