//! Read-only longest-prefix search, shared by match, insert and peek.

use super::RadixCache;
use crate::arena::Idx;
use crate::mount::{MountKey, MountTable};
use crate::namespace::Namespace;
use crate::node::common_prefix_len;

/// A point in the tree: after the first `offset` edge tokens of `node`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Pos {
    pub node: Idx,
    pub offset: u32,
}

/// The end of a longest match and its length in tokens.
#[derive(Clone, Copy, Debug)]
pub(super) struct Found {
    pub pos: Pos,
    pub len: usize,
}

impl RadixCache {
    /// Longest prefix of `tokens` visible to `ns`: the public tree, plus,
    /// for a tenant, its private chains mounted on the public path.
    ///
    /// A private chain can only start at a public position the query
    /// passes through, so the candidates are the public path itself and one
    /// private walk per mount hit along it. On equal length the private
    /// chain wins, keeping the tenant's own entries warm.
    pub(super) fn find(&self, ns: Namespace, tokens: &[u32]) -> Found {
        let mounts = if ns.is_public() {
            None
        } else {
            self.tenants.get(&ns)
        };
        let mut best_private: Option<Found> = None;
        let public = self.descend(self.root, tokens, 0, |node, start, matched| {
            if let Some(table) = mounts {
                self.probe_mounts(table, node, start, matched, tokens, &mut best_private);
            }
        });
        match best_private {
            Some(p) if p.len >= public.len => p,
            _ => public,
        }
    }

    /// Tries the tenant's mounts on the `matched` tokens of `node`'s edge
    /// that the public walk consumed starting at query position `start`.
    fn probe_mounts(
        &self,
        table: &MountTable,
        node: Idx,
        start: usize,
        matched: usize,
        tokens: &[u32],
        best: &mut Option<Found>,
    ) {
        if !table.has_mounts_on(node) {
            return;
        }
        // The root (empty edge) takes mounts at offset 0; any other node at
        // 1..=len, offset 0 being its parent's end.
        let offsets = if node == self.root {
            0..=0
        } else {
            1..=matched
        };
        for offset in offsets {
            let at = start + offset;
            let Some(&token) = tokens.get(at) else { break };
            let key = MountKey {
                node,
                offset: offset as u32,
                token,
            };
            if let Some(child) = table.get(key) {
                let found = self.descend(child, tokens, at, |_, _, _| {});
                if best.is_none_or(|b| found.len > b.len) {
                    *best = Some(found);
                }
            }
        }
    }

    /// Follows same-namespace children from `start`, whose edge is compared
    /// against `tokens[consumed..]`. `visit(node, start, matched)` sees each
    /// edge compared: where in the query it started and how many tokens
    /// matched.
    pub(super) fn descend(
        &self,
        start: Idx,
        tokens: &[u32],
        mut consumed: usize,
        mut visit: impl FnMut(Idx, usize, usize),
    ) -> Found {
        let mut node = start;
        loop {
            let n = self.arena.get(node);
            let k = common_prefix_len(&n.tokens, &tokens[consumed..]);
            visit(node, consumed, k);
            consumed += k;
            let pos = Pos {
                node,
                offset: k as u32,
            };
            if k < n.len() {
                return Found { pos, len: consumed };
            }
            match tokens.get(consumed).and_then(|t| n.children.get(t)) {
                Some(&child) => node = child,
                None => return Found { pos, len: consumed },
            }
        }
    }

    /// Length of the longest cached prefix of `tokens` visible to `ns`,
    /// without touching LRU times, statistics or the tree's shape. Meant
    /// for schedulers ranking waiting requests by cache hit.
    pub fn peek_prefix_len(&self, ns: Namespace, tokens: &[u32]) -> usize {
        self.find(ns, tokens).len
    }
}
