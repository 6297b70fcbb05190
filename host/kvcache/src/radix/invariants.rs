//! Exhaustive consistency check, for tests and debugging.

use std::collections::HashSet;

use super::RadixCache;
use crate::arena::Idx;
use crate::mount::MountKey;

/// A broken internal invariant, described in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("radix cache invariant violated: {0}")]
pub struct InvariantViolation(pub String);

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(InvariantViolation(format!($($fmt)*)));
        }
    };
}

impl RadixCache {
    /// Checks every structural invariant in O(nodes + slots + pool_size).
    /// Public so other crates' tests can call it after driving the cache.
    ///
    /// - the nodes form one tree under the root, parent and child links
    ///   agree, and every non-root edge is non-empty with one slot per token;
    /// - namespaces: a node's children share its namespace, except tenant
    ///   nodes mounted on public nodes, which are listed in exactly their
    ///   tenant's mount table at a valid offset;
    /// - every slot is `< pool_size` and owned by at most one node, and the
    ///   ownership bitmap agrees;
    /// - `lock_ref == direct_locks + Σ children's lock_ref` (so a parent's
    ///   count is at least the sum of its children's and none is negative);
    /// - the LRU index holds exactly the unlocked non-root leaves, under
    ///   their current access time;
    /// - evictable + protected == total, each matching a recount.
    pub fn check_invariants(&self, pool_size: u32) -> Result<(), InvariantViolation> {
        ensure!(
            pool_size == self.pool_size,
            "pool size {pool_size} != {}",
            self.pool_size
        );
        let root = self.arena.get(self.root);
        ensure!(
            root.parent.is_none()
                && root.tokens.is_empty()
                && root.slots.is_empty()
                && root.ns.is_public(),
            "malformed root"
        );

        let mut slot_seen = vec![false; pool_size as usize];
        let (mut total, mut evictable, mut protected) = (0usize, 0usize, 0usize);
        let (mut in_lru, mut mounts) = (0usize, 0usize);
        for (idx, n) in self.arena.iter() {
            ensure!(
                n.tokens.len() == n.slots.len(),
                "node {idx}: {} tokens, {} slots",
                n.len(),
                n.slots.len()
            );
            for &s in &n.slots {
                ensure!(s < pool_size, "node {idx}: slot {s} out of pool");
                ensure!(!slot_seen[s as usize], "slot {s} owned by two nodes");
                slot_seen[s as usize] = true;
                ensure!(
                    self.owned[s as usize],
                    "slot {s} owned by node {idx} but not marked"
                );
            }
            if idx != self.root {
                self.check_parent_link(idx)?;
            }

            let mut children_locks = 0u64;
            for (&tok, &c) in &n.children {
                let child = self.arena.get(c);
                ensure!(
                    child.parent == Some(idx),
                    "child {c} of {idx} has parent {:?}",
                    child.parent
                );
                ensure!(
                    child.tokens.first() == Some(&tok),
                    "child {c} keyed by wrong token"
                );
                ensure!(child.ns == n.ns, "child {c} of {idx} in another namespace");
                children_locks += u64::from(child.lock_ref);
            }
            ensure!(
                n.mounted.is_empty() || n.ns.is_public(),
                "private node {idx} has mounts"
            );
            for &c in &n.mounted {
                children_locks += u64::from(self.arena.get(c).lock_ref);
            }
            mounts += n.mounted.len();
            ensure!(
                u64::from(n.lock_ref) == u64::from(n.direct_locks) + children_locks,
                "node {idx}: lock_ref {} != direct {} + children {children_locks}",
                n.lock_ref,
                n.direct_locks
            );

            let should_lru = idx != self.root && n.is_leaf() && n.lock_ref == 0;
            ensure!(
                n.in_lru == should_lru,
                "node {idx}: in_lru {} but evictable leaf {should_lru}",
                n.in_lru
            );
            if n.in_lru {
                ensure!(
                    self.lru.contains(n.last_access, idx),
                    "node {idx} missing from LRU index"
                );
                in_lru += 1;
            }

            total += n.len();
            if n.lock_ref == 0 {
                evictable += n.len();
            } else {
                protected += n.len();
            }
        }
        ensure!(
            self.lru.len() == in_lru,
            "LRU index has {} entries, {in_lru} nodes flagged",
            self.lru.len()
        );
        for (s, &owned) in self.owned.iter().enumerate() {
            ensure!(owned == slot_seen[s], "ownership bitmap wrong for slot {s}");
        }

        let table_entries: usize = self.tenants.values().map(|t| t.len()).sum();
        ensure!(
            table_entries == mounts,
            "{table_entries} mount entries, {mounts} mounted nodes"
        );
        for (ns, table) in &self.tenants {
            ensure!(!table.is_empty(), "empty mount table for {ns}");
            ensure!(
                table.per_node_total() == table.len(),
                "{ns}: per-node mount counts out of sync"
            );
            for (key, c) in table.iter() {
                let child = self.arena.get(c);
                ensure!(
                    child.ns == *ns,
                    "{ns}'s mount {key:?} names a node of {}",
                    child.ns
                );
                ensure!(
                    table.per_node_count(key.node) > 0,
                    "{ns}: no per-node count for {}",
                    key.node
                );
            }
        }

        self.check_reachable()?;

        ensure!(
            self.sizes.total == total
                && self.sizes.evictable == evictable
                && self.sizes.protected == protected,
            "sizes {:?} != recount total {total} evictable {evictable} protected {protected}",
            self.sizes
        );
        ensure!(
            evictable + protected == total,
            "evictable + protected != total"
        );
        Ok(())
    }

    /// The parent lists `idx` under the right key, in the right namespace.
    fn check_parent_link(&self, idx: Idx) -> Result<(), InvariantViolation> {
        let n = self.arena.get(idx);
        let Some(p) = n.parent else {
            return Err(InvariantViolation(format!(
                "non-root node {idx} without parent"
            )));
        };
        ensure!(!n.tokens.is_empty(), "non-root node {idx} with empty edge");
        let parent = self.arena.get(p);
        if parent.ns == n.ns {
            ensure!(
                n.attach == 0,
                "same-namespace child {idx} with attach {}",
                n.attach
            );
            ensure!(
                parent.children.get(&n.tokens[0]) == Some(&idx),
                "node {idx} not in parent's children"
            );
        } else {
            ensure!(
                parent.ns.is_public() && !n.ns.is_public(),
                "node {idx} of {} under {}",
                n.ns,
                parent.ns
            );
            let valid = if p == self.root {
                n.attach == 0
            } else {
                (1..=parent.len()).contains(&(n.attach as usize))
            };
            ensure!(
                valid,
                "node {idx}: mount offset {} invalid on {p}",
                n.attach
            );
            ensure!(
                parent.mounted.contains(&idx),
                "node {idx} not in parent's mounted set"
            );
            let key = MountKey {
                node: p,
                offset: n.attach,
                token: n.tokens[0],
            };
            let listed = self.tenants.get(&n.ns).and_then(|t| t.get(key));
            ensure!(
                listed == Some(idx),
                "node {idx} not in {}'s mount table",
                n.ns
            );
        }
        Ok(())
    }

    /// Every node is reachable from the root exactly once.
    fn check_reachable(&self) -> Result<(), InvariantViolation> {
        let mut seen = HashSet::new();
        let mut stack = vec![self.root];
        while let Some(i) = stack.pop() {
            ensure!(seen.insert(i), "node {i} reachable twice");
            let n = self.arena.get(i);
            stack.extend(n.children.values().copied());
            stack.extend(n.mounted.iter().copied());
        }
        ensure!(
            seen.len() == self.arena.len(),
            "{} nodes reachable of {}",
            seen.len(),
            self.arena.len()
        );
        Ok(())
    }
}
