//! Edge splitting, so that matches and inserts end exactly at a node.

use std::collections::HashMap;

use super::RadixCache;
use super::walk::Pos;
use crate::arena::Idx;
use crate::mount::MountKey;
use crate::namespace::Namespace;
use crate::node::Node;

impl RadixCache {
    /// The node a handle for a match/insert ending at `pos` should name:
    /// the node ending at `pos`, made by splitting its edge if `pos` is
    /// mid-edge. The exception is a tenant ending inside a public edge: the
    /// edge is left whole (tenants never reshape the public tree) and the
    /// public node itself is returned; locking it protects a few extra
    /// tokens, which is harmless.
    pub(super) fn settle(&mut self, ns: Namespace, pos: Pos) -> Idx {
        let n = self.arena.get(pos.node);
        if pos.offset as usize == n.len() || (n.ns.is_public() && !ns.is_public()) {
            pos.node
        } else {
            self.split(pos.node, pos.offset)
        }
    }

    /// Splits `idx`'s edge after `at` tokens (`0 < at < len`). A new node
    /// takes the head; `idx` keeps the tail and its index, so existing
    /// handles (and locks) on it still name the same full prefix. Returns
    /// the head.
    fn split(&mut self, idx: Idx, at: u32) -> Idx {
        let at_usize = at as usize;
        let (head, parent, attach, ns, first) = {
            let n = self.arena.get_mut(idx);
            debug_assert!(at > 0 && at_usize < n.len());
            let tokens: Vec<u32> = n.tokens.drain(..at_usize).collect();
            let slots: Vec<u32> = n.slots.drain(..at_usize).collect();
            let first = tokens[0];
            let mut head = Node::new(n.parent, n.attach, n.ns, tokens, slots, n.last_access);
            // Every lock through `idx` also passes through the head.
            head.lock_ref = n.lock_ref;
            head.children.insert(n.tokens[0], idx);
            (
                head,
                n.parent.expect("the root has no edge to split"),
                n.attach,
                n.ns,
                first,
            )
        };
        let head_idx = self.arena.insert(head);

        // Re-point the parent's link (same key: the head starts with the same token).
        if self.arena.get(parent).ns == ns {
            self.arena.get_mut(parent).children.insert(first, head_idx);
        } else {
            let table = self
                .tenants
                .get_mut(&ns)
                .expect("mounted node without mount table");
            table.replace(
                MountKey {
                    node: parent,
                    offset: attach,
                    token: first,
                },
                head_idx,
            );
            let p = self.arena.get_mut(parent);
            p.mounted.remove(&idx);
            p.mounted.insert(head_idx);
        }
        {
            let n = self.arena.get_mut(idx);
            n.parent = Some(head_idx);
            n.attach = 0;
        }
        if ns.is_public() {
            self.rehome_mounts(idx, head_idx, at);
        }
        // The tail may have lost lock counts to the head's new mounts.
        self.refresh_lru(idx);
        head_idx
    }

    /// After splitting public node `idx` at `at`, moves tenant mounts that
    /// now fall inside the head to it and re-bases the others on the tail.
    fn rehome_mounts(&mut self, idx: Idx, head: Idx, at: u32) {
        let mounted: Vec<Idx> = self.arena.get_mut(idx).mounted.drain().collect();
        if mounted.is_empty() {
            return;
        }
        // Remove every old key before adding new ones: a re-based key can
        // equal another mount's old key.
        let mut moves: HashMap<Namespace, Vec<(MountKey, Idx)>> = HashMap::new();
        for &c in &mounted {
            let child = self.arena.get(c);
            let old = MountKey {
                node: idx,
                offset: child.attach,
                token: child.tokens[0],
            };
            let new = if child.attach <= at {
                MountKey { node: head, ..old }
            } else {
                MountKey {
                    offset: child.attach - at,
                    ..old
                }
            };
            let table = self.tenants.get_mut(&child.ns).expect("mount table");
            table.remove(old);
            moves.entry(child.ns).or_default().push((new, c));
        }
        let mut moved_locks = 0u32;
        for (ns, entries) in moves {
            for (key, c) in entries {
                self.tenants
                    .get_mut(&ns)
                    .expect("mount table")
                    .insert(key, c);
                let child = self.arena.get_mut(c);
                child.parent = Some(key.node);
                child.attach = key.offset;
                let lock = child.lock_ref;
                if key.node == head {
                    moved_locks += lock;
                }
                self.arena.get_mut(key.node).mounted.insert(c);
            }
        }
        if moved_locks > 0 {
            let n = self.arena.get_mut(idx);
            n.lock_ref -= moved_locks;
            if n.lock_ref == 0 {
                let len = n.len();
                self.sizes.unprotect(len);
            }
        }
    }
}
