//! Generational arena for tree nodes.
//!
//! Nodes refer to each other by plain `u32` indices (cheap, no `Rc` cycles);
//! callers hold a [`NodeId`], which adds a generation so that a handle kept
//! across an eviction is detected as stale instead of silently naming
//! whatever node reused the index.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::node::Node;

/// Distinguishes arenas, so a handle from one cache is rejected by another
/// instead of naming an unrelated node there.
static NEXT_ARENA_ID: AtomicU32 = AtomicU32::new(0);

/// Index of a live node inside the arena.
pub(crate) type Idx = u32;

/// A caller's handle to a tree node, as returned by
/// [`RadixCache::match_prefix`](crate::RadixCache::match_prefix) and
/// [`RadixCache::insert`](crate::RadixCache::insert).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct NodeId {
    arena: u32,
    index: u32,
    generation: u32,
}

#[derive(Debug)]
struct Entry {
    generation: u32,
    node: Option<Node>,
}

#[derive(Debug)]
pub(crate) struct Arena {
    id: u32,
    entries: Vec<Entry>,
    free: Vec<Idx>,
    live: usize,
}

impl Arena {
    pub(crate) fn new() -> Self {
        Arena {
            id: NEXT_ARENA_ID.fetch_add(1, Ordering::Relaxed),
            entries: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }

    pub(crate) fn insert(&mut self, node: Node) -> Idx {
        self.live += 1;
        if let Some(idx) = self.free.pop() {
            let entry = &mut self.entries[idx as usize];
            debug_assert!(entry.node.is_none());
            entry.node = Some(node);
            idx
        } else {
            let idx = Idx::try_from(self.entries.len()).expect("more than u32::MAX tree nodes");
            self.entries.push(Entry {
                generation: 0,
                node: Some(node),
            });
            idx
        }
    }

    /// Removes a live node; its handles become stale.
    pub(crate) fn remove(&mut self, idx: Idx) -> Node {
        let entry = &mut self.entries[idx as usize];
        let node = entry.node.take().expect("removing a dead node");
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(idx);
        self.live -= 1;
        node
    }

    pub(crate) fn get(&self, idx: Idx) -> &Node {
        self.entries[idx as usize]
            .node
            .as_ref()
            .expect("dead node index")
    }

    pub(crate) fn get_mut(&mut self, idx: Idx) -> &mut Node {
        self.entries[idx as usize]
            .node
            .as_mut()
            .expect("dead node index")
    }

    pub(crate) fn id(&self, idx: Idx) -> NodeId {
        NodeId {
            arena: self.id,
            index: idx,
            generation: self.entries[idx as usize].generation,
        }
    }

    /// The live index a handle names, or `None` if the handle is stale or
    /// was never issued by this arena.
    pub(crate) fn resolve(&self, id: NodeId) -> Option<Idx> {
        if id.arena != self.id {
            return None;
        }
        let entry = self.entries.get(id.index as usize)?;
        (entry.generation == id.generation && entry.node.is_some()).then_some(id.index)
    }

    pub(crate) fn len(&self) -> usize {
        self.live
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (Idx, &Node)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.node.as_ref().map(|n| (i as Idx, n)))
    }
}
