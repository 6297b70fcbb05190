//! A tenant's mount table: where its private chains attach to the public
//! tree. Kept per tenant (not on the public nodes) so that one tenant's
//! lookups never read another tenant's data; see [`Namespace`](crate::Namespace)'s docs.

use std::collections::HashMap;

use crate::arena::Idx;

/// A public position plus the first token of the private edge hung there.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct MountKey {
    /// The public node.
    pub node: Idx,
    /// How many of that node's edge tokens precede the mount (0 only for
    /// the root, whose edge is empty).
    pub offset: u32,
    /// First token of the mounted private edge.
    pub token: u32,
}

#[derive(Debug, Default)]
pub(crate) struct MountTable {
    by_key: HashMap<MountKey, Idx>,
    /// Mount count per public node, so a walk through a public edge only
    /// probes each offset when this tenant has something mounted there.
    per_node: HashMap<Idx, u32>,
}

impl MountTable {
    pub(crate) fn get(&self, key: MountKey) -> Option<Idx> {
        self.by_key.get(&key).copied()
    }

    pub(crate) fn has_mounts_on(&self, node: Idx) -> bool {
        self.per_node.contains_key(&node)
    }

    pub(crate) fn insert(&mut self, key: MountKey, child: Idx) {
        let prev = self.by_key.insert(key, child);
        debug_assert!(prev.is_none(), "mount {key:?} already taken");
        *self.per_node.entry(key.node).or_default() += 1;
    }

    /// Points an existing mount at another child (after a split of the
    /// mounted node, which keeps the key).
    pub(crate) fn replace(&mut self, key: MountKey, child: Idx) {
        let slot = self
            .by_key
            .get_mut(&key)
            .expect("replacing a missing mount");
        *slot = child;
    }

    pub(crate) fn remove(&mut self, key: MountKey) -> Option<Idx> {
        let child = self.by_key.remove(&key)?;
        let count = self
            .per_node
            .get_mut(&key.node)
            .expect("per-node count out of sync");
        *count -= 1;
        if *count == 0 {
            self.per_node.remove(&key.node);
        }
        Some(child)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (MountKey, Idx)> + '_ {
        self.by_key.iter().map(|(k, v)| (*k, *v))
    }

    pub(crate) fn per_node_count(&self, node: Idx) -> u32 {
        self.per_node.get(&node).copied().unwrap_or(0)
    }

    pub(crate) fn per_node_total(&self) -> usize {
        self.per_node.values().map(|&c| c as usize).sum()
    }
}
