//! One radix-tree node: an edge of tokens plus the pool slots that hold
//! their K/V.

use std::collections::{HashMap, HashSet};

use crate::arena::Idx;
use crate::namespace::Namespace;

#[derive(Debug)]
pub(crate) struct Node {
    /// `None` only for the root.
    pub parent: Option<Idx>,
    /// For a tenant node mounted on a public node: how many of the parent's
    /// edge tokens precede this edge (tenants mount inside public edges
    /// rather than split them; see `Namespace`'s docs). Always 0 for a
    /// same-namespace child, which follows its parent's whole edge: storing
    /// the length there would go stale on every split of the parent.
    pub attach: u32,
    pub ns: Namespace,
    /// Edge tokens; empty only for the root.
    pub tokens: Vec<u32>,
    /// `slots[i]` holds the K/V of `tokens[i]`; this node owns them.
    pub slots: Vec<u32>,
    /// Same-namespace children, keyed by their first token.
    pub children: HashMap<u32, Idx>,
    /// Public nodes only: tenant nodes mounted on this node (any tenant, any
    /// offset). Lookups never read it; it exists so that splitting or
    /// evicting this node can find the mounts it must fix up.
    pub mounted: HashSet<Idx>,
    /// Locks held on this node or any descendant: `direct_locks` plus the
    /// `lock_ref` of every child (mounted ones included). A node is
    /// protected from eviction while this is non-zero.
    pub lock_ref: u32,
    /// Locks taken on exactly this node; `unlock` requires one, which is
    /// what keeps `lock_ref` from going below what descendants account for.
    pub direct_locks: u32,
    /// Logical time of the last match/insert that went through this node.
    pub last_access: u64,
    /// Whether the node is currently in the LRU index of evictable leaves.
    pub in_lru: bool,
}

impl Node {
    pub(crate) fn new(
        parent: Option<Idx>,
        attach: u32,
        ns: Namespace,
        tokens: Vec<u32>,
        slots: Vec<u32>,
        last_access: u64,
    ) -> Self {
        debug_assert_eq!(tokens.len(), slots.len());
        Node {
            parent,
            attach,
            ns,
            tokens,
            slots,
            children: HashMap::new(),
            mounted: HashSet::new(),
            lock_ref: 0,
            direct_locks: 0,
            last_access,
            in_lru: false,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.tokens.len()
    }

    pub(crate) fn is_leaf(&self) -> bool {
        self.children.is_empty() && self.mounted.is_empty()
    }
}

/// Length of the common prefix of two token slices.
pub(crate) fn common_prefix_len(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
