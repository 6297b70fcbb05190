//! Handing computed prefixes to the cache, and giving sequences back.

use super::{KvManager, SeqKv};

impl KvManager {
    /// Caches `tokens[..seq.len()]` (all computed) in `seq`'s namespace
    /// and locks the inserted node for `seq`, so the prefix is shared from
    /// now on. Slots the tree takes stop being private. For tokens the
    /// cache already had: with `P == 1` the sequence adopts the cache's
    /// slot and its own is freed; with `P > 1` it keeps reading (and
    /// holding) its own, which keeps its pages consistent. Only the first
    /// `tokens.len()` positions are cached if `tokens` is shorter. Either
    /// way, and even with the cache off (when nothing is inserted), the
    /// prefix becomes final: `truncate` stops there and forks may share its
    /// pages.
    pub fn commit_prefix(&mut self, seq: &mut SeqKv, tokens: &[u32]) {
        self.check_owner(seq);
        self.unpin_if_done(seq);
        let n = seq.len().min(tokens.len());
        seq.floor = seq.floor.max(n);
        if !self.cache_enabled || n == 0 {
            return;
        }
        let out = match self.cache.insert(seq.ns, &tokens[..n], &seq.slots[..n]) {
            Ok(out) => out,
            Err(err) => {
                // The manager only ever offers slots the tree does not own.
                debug_assert!(false, "commit_prefix: {err}");
                tracing::error!(%err, "KV prefix not cached");
                return;
            }
        };
        // Positions read from a path other than the inserted one (the
        // prefix was cached twice meanwhile) still need their old lock.
        let mut needs_old_locks = seq.held[n..].iter().any(|&h| !h);
        for (i, &tree) in out.slots.iter().enumerate() {
            let own = seq.slots[i];
            if own == tree {
                // Taken by the tree now, or it already was (a fork's share
                // of a parent slot the parent cached): the lock protects it.
                if seq.held[i] && i < out.existing_len {
                    self.pages.drop_hold(own);
                }
                seq.held[i] = false;
            } else if self.page_size() == 1 {
                if seq.held[i] {
                    self.pages.drop_hold(own);
                }
                seq.slots[i] = tree;
                seq.held[i] = false;
            } else if !seq.held[i] {
                needs_old_locks = true;
            }
        }
        if !seq.locks.contains(&out.node) {
            // Bounded by the live sequences' lock count, far below u32::MAX.
            self.cache
                .lock(out.node)
                .expect("fresh node, lock count fits");
            if !needs_old_locks {
                for node in std::mem::take(&mut seq.locks) {
                    self.unlock(node);
                }
            }
            seq.locks.push(out.node);
        }
    }

    /// Gives back everything `seq` holds and unlocks its nodes. With
    /// `cache` set (a finished generation) its computed tokens
    /// `tokens[..seq.len()]` are cached first. Copies not yet taken are
    /// dropped.
    pub fn release(&mut self, mut seq: SeqKv, tokens: &[u32], cache: bool) {
        self.check_owner(&seq);
        if cache {
            self.commit_prefix(&mut seq, tokens);
        }
        seq.copies.clear();
        self.unpin_if_done(&mut seq);
        let held = seq.slots.iter().zip(&seq.held).filter(|&(_, &h)| h);
        let owned: Vec<u32> = held.map(|(&s, _)| s).chain(seq.tail()).collect();
        for s in owned {
            self.pages.drop_hold(s);
        }
        for node in std::mem::take(&mut seq.locks) {
            self.unlock(node);
        }
        seq.slots.clear();
        seq.held.clear();
        seq.released = true;
    }

    fn unlock(&mut self, node: crate::NodeId) {
        if let Err(err) = self.cache.unlock(node) {
            debug_assert!(false, "KvManager lost track of a lock: {err}");
            tracing::error!(%err, "KV cache unlock failed");
        }
    }
}
