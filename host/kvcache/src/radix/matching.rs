//! `match_prefix`: the lookup a request does before prefill.

use super::RadixCache;
use crate::arena::NodeId;
use crate::namespace::Namespace;

/// The longest cached prefix of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixMatch {
    /// Lock this to keep `slots` cached while the request runs. It is the
    /// node the match ends at (the root when nothing matched), except when a
    /// tenant's match ends inside a public edge: then it is that public node,
    /// whose edge tenants never split (see [`Namespace`]).
    pub node: NodeId,
    /// Number of leading query tokens found; `slots.len() == matched_len`.
    pub matched_len: usize,
    /// Pool slots of those tokens, in order. Owned by the cache: the caller
    /// reads them but must never free them.
    pub slots: Vec<u32>,
}

impl RadixCache {
    /// Finds the longest prefix of `tokens` cached in `ns` or in the public
    /// namespace (the longer wins), marks it recently used, and splits an
    /// edge if the match ends inside it.
    ///
    /// The returned slots are only guaranteed to stay cached once `node` is
    /// locked; lock it before any eviction can run.
    pub fn match_prefix(&mut self, ns: Namespace, tokens: &[u32]) -> PrefixMatch {
        let found = self.find(ns, tokens);
        let slots = self.path_slots(found.pos);
        let node = self.settle(ns, found.pos);
        let now = self.tick();
        self.touch_path(node, now);
        self.stats.matches += 1;
        self.stats.queried_tokens += tokens.len() as u64;
        self.stats.hit_tokens += found.len as u64;
        PrefixMatch {
            node: self.arena.id(node),
            matched_len: found.len,
            slots,
        }
    }
}
