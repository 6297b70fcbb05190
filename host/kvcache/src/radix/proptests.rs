//! Random workloads against the tree, checked against a simple model.
//!
//! The model maps (owning namespace, token prefix) to the slot holding the
//! prefix's last token. A request is simulated the way the scheduler drives
//! the cache: match + lock, allocate the rest (evicting on a full pool),
//! decode, then insert + free duplicates + unlock, or fork by caching the
//! history and locking its node for two branches.

use std::collections::HashMap;

use proptest::prelude::*;

use crate::{CacheError, Namespace, NodeId, PrefixMatch, RadixCache, SlotAllocator};

/// Small so that eviction happens constantly.
const POOL: u32 = 40;
const NAMESPACES: [Namespace; 3] = [
    Namespace::PUBLIC,
    Namespace::tenant(1),
    Namespace::tenant(2),
];

#[derive(Debug, Clone)]
enum Op {
    Start {
        ns: usize,
        base: usize,
        suffix: Vec<u32>,
    },
    Extend {
        req: usize,
        extra: Vec<u32>,
    },
    Finish {
        req: usize,
    },
    Fork {
        req: usize,
    },
    Publish {
        base: usize,
        suffix: Vec<u32>,
    },
    Probe {
        ns: usize,
        base: usize,
        suffix: Vec<u32>,
    },
    Evict {
        n: usize,
    },
}

fn tokens(max_len: usize) -> impl Strategy<Value = Vec<u32>> {
    // A 3-letter alphabet makes distinct sequences share prefixes often.
    prop::collection::vec(0u32..3, 0..max_len)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 0..4usize, tokens(6))
            .prop_map(|(ns, base, suffix)| Op::Start { ns, base, suffix }),
        2 => (any::<usize>(), tokens(4)).prop_map(|(req, extra)| Op::Extend { req, extra }),
        3 => any::<usize>().prop_map(|req| Op::Finish { req }),
        1 => any::<usize>().prop_map(|req| Op::Fork { req }),
        1 => (0..4usize, tokens(4)).prop_map(|(base, suffix)| Op::Publish { base, suffix }),
        2 => (0..3usize, 0..4usize, tokens(6))
            .prop_map(|(ns, base, suffix)| Op::Probe { ns, base, suffix }),
        1 => (0..12usize).prop_map(|n| Op::Evict { n }),
    ]
}

/// Four prompt bases cut from one common prefix, like system prompts.
fn bases() -> impl Strategy<Value = Vec<Vec<u32>>> {
    (tokens(8), prop::collection::vec((0..8usize, tokens(4)), 4)).prop_map(|(common, parts)| {
        parts
            .into_iter()
            .map(|(cut, tail)| {
                common[..cut.min(common.len())]
                    .iter()
                    .chain(&tail)
                    .copied()
                    .collect()
            })
            .collect()
    })
}

#[derive(Debug, Clone)]
struct Req {
    ns: Namespace,
    tokens: Vec<u32>,
    /// One per token: `slots[..own_from]` belong to the cache (kept by the
    /// lock on `node`), the rest were allocated by this request.
    slots: Vec<u32>,
    own_from: usize,
    node: NodeId,
}

struct World {
    cache: RadixCache,
    alloc: SlotAllocator,
    reqs: Vec<Req>,
    model: HashMap<(Namespace, Vec<u32>), u32>,
    slot_key: HashMap<u32, (Namespace, Vec<u32>)>,
    last_probe: Option<NodeId>,
}

impl World {
    fn new() -> Self {
        World {
            cache: RadixCache::new(POOL),
            alloc: SlotAllocator::new(POOL),
            reqs: Vec::new(),
            model: HashMap::new(),
            slot_key: HashMap::new(),
            last_probe: None,
        }
    }

    /// Slots the model says `ns` can see for exactly this prefix.
    fn visible(&self, ns: Namespace, prefix: &[u32]) -> Vec<u32> {
        let mut owners = vec![Namespace::PUBLIC];
        if !ns.is_public() {
            owners.push(ns);
        }
        owners
            .into_iter()
            .filter_map(|o| self.model.get(&(o, prefix.to_vec())).copied())
            .collect()
    }

    fn check_match(&self, ns: Namespace, query: &[u32], m: &PrefixMatch) {
        assert_eq!(m.slots.len(), m.matched_len);
        for (i, &slot) in m.slots.iter().enumerate() {
            let expected = self.visible(ns, &query[..=i]);
            assert!(
                expected.contains(&slot),
                "{ns} {query:?}[..={i}] -> {slot}, model {expected:?}"
            );
        }
        for j in m.matched_len..query.len() {
            assert!(
                self.visible(ns, &query[..=j]).is_empty(),
                "{ns}: match of {query:?} too short"
            );
        }
    }

    fn evict(&mut self, n: usize) {
        let evictable = self.cache.evictable_size();
        let freed = self.cache.evict(n);
        assert!(freed.len() <= evictable);
        if freed.len() < n {
            assert_eq!(
                freed.len(),
                evictable,
                "stopped while something was evictable"
            );
            assert_eq!(self.cache.evictable_size(), 0);
        }
        for r in &self.reqs {
            for s in &r.slots[..r.own_from] {
                assert!(!freed.contains(s), "evicted slot {s} of a locked request");
            }
        }
        for s in &freed {
            let key = self.slot_key.remove(s).expect("evicted slot not in model");
            self.model.remove(&key);
        }
        self.alloc
            .try_free(&freed)
            .expect("evict returned a free or unknown slot");
    }

    fn alloc(&mut self, n: usize) -> Option<Vec<u32>> {
        if self.alloc.num_free() < n {
            self.evict(n - self.alloc.num_free());
        }
        self.alloc.alloc(n)
    }

    /// Inserts a request's sequence, checks the outcome against the model,
    /// and frees the duplicates. Returns the cache's slots and node.
    fn insert(
        &mut self,
        ns: Namespace,
        tokens: &[u32],
        slots: &[u32],
        own_from: usize,
    ) -> (Vec<u32>, NodeId) {
        let out = self.cache.insert(ns, tokens, slots).expect("valid insert");
        let existing = out.existing_len;
        assert!(existing >= own_from, "a locked prefix disappeared");
        assert_eq!(
            out.duplicates,
            slots[own_from..existing],
            "duplicates are exactly our own slots for cached tokens"
        );
        assert_eq!(out.slots.len(), tokens.len());
        for i in 0..existing {
            assert!(self.visible(ns, &tokens[..=i]).contains(&out.slots[i]));
        }
        assert_eq!(out.slots[existing..], slots[existing..]);
        for i in existing..tokens.len() {
            assert!(
                self.visible(ns, &tokens[..=i]).is_empty(),
                "insert missed a cached prefix"
            );
            let key = (ns, tokens[..=i].to_vec());
            self.model.insert(key.clone(), slots[i]);
            self.slot_key.insert(slots[i], key);
        }
        self.alloc
            .try_free(&out.duplicates)
            .expect("duplicate was not ours");
        (out.slots, out.node)
    }

    fn apply(&mut self, op: Op, bases: &[Vec<u32>]) {
        let pick = |len: usize, i: usize| (len > 0).then(|| i % len);
        match op {
            Op::Start { ns, base, suffix } => {
                let ns = NAMESPACES[ns];
                let query: Vec<u32> = bases[base].iter().chain(&suffix).copied().collect();
                let m = self.cache.match_prefix(ns, &query);
                self.check_match(ns, &query, &m);
                self.cache.lock(m.node).unwrap();
                match self.alloc(query.len() - m.matched_len) {
                    Some(own) => {
                        let slots = m.slots.iter().chain(&own).copied().collect();
                        self.reqs.push(Req {
                            ns,
                            tokens: query,
                            slots,
                            own_from: m.matched_len,
                            node: m.node,
                        });
                    }
                    None => self.cache.unlock(m.node).unwrap(),
                }
            }
            Op::Extend { req, extra } => {
                let Some(i) = pick(self.reqs.len(), req) else {
                    return;
                };
                if let Some(own) = self.alloc(extra.len()) {
                    let r = &mut self.reqs[i];
                    r.tokens.extend(&extra);
                    r.slots.extend(own);
                }
            }
            Op::Finish { req } => {
                let Some(i) = pick(self.reqs.len(), req) else {
                    return;
                };
                let r = self.reqs.swap_remove(i);
                self.insert(r.ns, &r.tokens, &r.slots, r.own_from);
                self.cache.unlock(r.node).unwrap();
            }
            Op::Fork { req } => {
                let Some(i) = pick(self.reqs.len(), req) else {
                    return;
                };
                let r = self.reqs[i].clone();
                let (slots, node) = self.insert(r.ns, &r.tokens, &r.slots, r.own_from);
                self.cache.lock(node).unwrap();
                self.cache.lock(node).unwrap();
                self.cache.unlock(r.node).unwrap();
                let branch = Req {
                    own_from: slots.len(),
                    slots,
                    node,
                    ..r
                };
                self.reqs[i] = branch.clone();
                self.reqs.push(branch);
            }
            Op::Publish { base, suffix } => {
                let tokens: Vec<u32> = bases[base].iter().chain(&suffix).copied().collect();
                if let Some(slots) = self.alloc(tokens.len()) {
                    self.insert(Namespace::PUBLIC, &tokens, &slots, 0);
                }
            }
            Op::Probe { ns, base, suffix } => {
                let ns = NAMESPACES[ns];
                let query: Vec<u32> = bases[base].iter().chain(&suffix).copied().collect();
                let peek = self.cache.peek_prefix_len(ns, &query);
                let m = self.cache.match_prefix(ns, &query);
                assert_eq!(peek, m.matched_len);
                self.check_match(ns, &query, &m);
                if self.cache.lock_count(m.node) == Ok(0) {
                    assert_eq!(
                        self.cache.unlock(m.node),
                        Err(CacheError::NotLocked(m.node))
                    );
                }
                // A handle from earlier may have been evicted since.
                if let Some(old) = self.last_probe.replace(m.node) {
                    match self.cache.lock(old) {
                        Ok(()) => self.cache.unlock(old).unwrap(),
                        Err(e) => assert_eq!(e, CacheError::StaleNode(old)),
                    }
                }
            }
            Op::Evict { n } => self.evict(n),
        }
    }

    fn check(&self) {
        self.cache.check_invariants(POOL).unwrap();
        let mut holders = vec![0u32; POOL as usize];
        for r in &self.reqs {
            assert!(
                self.cache.lock_count(r.node).unwrap() >= 1,
                "running request lost its lock"
            );
            for &s in &r.slots[..r.own_from] {
                assert!(self.cache.is_slot_owned(s), "locked slot {s} not cached");
            }
            for &s in &r.slots[r.own_from..] {
                holders[s as usize] += 1;
            }
        }
        for s in 0..POOL {
            let places = u32::from(self.alloc.is_free(s))
                + u32::from(self.cache.is_slot_owned(s))
                + holders[s as usize];
            assert_eq!(places, 1, "slot {s} is in {places} places");
        }
        assert_eq!(self.model.len(), self.cache.total_size());
        for s in self.model.values() {
            assert!(self.cache.is_slot_owned(*s));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_workloads_keep_invariants(bases in bases(), ops in prop::collection::vec(op(), 1..60)) {
        let mut world = World::new();
        for op in ops {
            world.apply(op, &bases);
            world.check();
        }
        // Draining every request must make everything evictable again.
        while let Some(r) = world.reqs.pop() {
            world.insert(r.ns, &r.tokens, &r.slots, r.own_from);
            world.cache.unlock(r.node).unwrap();
            world.check();
        }
        prop_assert_eq!(world.cache.protected_size(), 0);
        world.evict(usize::MAX);
        world.check();
        prop_assert_eq!(world.cache.total_size(), 0);
        prop_assert_eq!(world.alloc.num_free(), POOL as usize);
    }
}
