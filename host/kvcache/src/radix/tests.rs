//! Scenario tests for the radix cache; random workloads are in `proptests`.

use crate::{CacheError, Namespace, RadixCache, SlotAllocator};

const POOL: u32 = 64;
const A: Namespace = Namespace::tenant(1);
const B: Namespace = Namespace::tenant(2);

fn setup() -> (RadixCache, SlotAllocator) {
    (RadixCache::new(POOL), SlotAllocator::new(POOL))
}

/// Allocates slots for `tokens` and inserts them; returns the slots.
fn put(c: &mut RadixCache, a: &mut SlotAllocator, ns: Namespace, tokens: &[u32]) -> Vec<u32> {
    let slots = a.alloc(tokens.len()).unwrap();
    let out = c.insert(ns, tokens, &slots).unwrap();
    a.free(&out.duplicates);
    c.check_invariants(POOL).unwrap();
    out.slots
}

#[test]
fn match_splits_mid_edge_and_returns_inserted_slots() {
    let (mut c, mut a) = setup();
    let slots = put(&mut c, &mut a, A, &[1, 2, 3, 4]);
    assert_eq!(c.node_count(), 1);
    let m = c.match_prefix(A, &[1, 2, 3, 9]);
    assert_eq!(m.matched_len, 3);
    assert_eq!(m.slots, slots[..3]);
    assert_eq!(c.node_count(), 2, "the edge was split at the match end");
    c.check_invariants(POOL).unwrap();
    // The head node ends exactly at the match: matching it again is a full hit.
    assert_eq!(c.match_prefix(A, &[1, 2, 3]).node, m.node);
    let none = c.match_prefix(A, &[7]);
    assert_eq!((none.matched_len, none.slots.len()), (0, 0));
    let s = c.stats();
    assert_eq!((s.matches, s.queried_tokens, s.hit_tokens), (3, 8, 6));
}

#[test]
fn insert_returns_duplicates_but_never_cache_owned_slots() {
    let (mut c, mut a) = setup();
    let first = put(&mut c, &mut a, A, &[1, 2, 3]);

    // Fresh slots for an already cached prefix come back as duplicates.
    let fresh = a.alloc(5).unwrap();
    let out = c.insert(A, &[1, 2, 3, 4, 5], &fresh).unwrap();
    assert_eq!(out.existing_len, 3);
    assert_eq!(out.duplicates, fresh[..3]);
    assert_eq!(out.slots[..3], first[..]);
    assert_eq!(out.slots[3..], fresh[3..]);
    a.try_free(&out.duplicates).unwrap();

    // A request that got its prefix from the cache passes those slots back:
    // nothing to free, only the new tail is taken.
    let m = c.match_prefix(A, &[1, 2, 3, 4, 5, 6]);
    assert_eq!(m.matched_len, 5);
    let mut history = m.slots.clone();
    history.extend(a.alloc(1).unwrap());
    let out = c.insert(A, &[1, 2, 3, 4, 5, 6], &history).unwrap();
    assert!(out.duplicates.is_empty());
    assert_eq!(out.slots, history);
    assert_eq!(c.total_size(), 6);
    assert_eq!(c.stats().duplicate_tokens, 3);
    c.check_invariants(POOL).unwrap();
}

#[test]
fn invalid_inserts_fail_without_changing_anything() {
    let (mut c, mut a) = setup();
    let owned = put(&mut c, &mut a, A, &[1, 2]);
    let before = c.stats();
    assert_eq!(
        c.insert(A, &[1, 2, 3], &[0, 1]),
        Err(CacheError::LengthMismatch {
            tokens: 3,
            slots: 2
        })
    );
    assert_eq!(
        c.insert(A, &[5], &[POOL]),
        Err(CacheError::SlotOutOfRange {
            slot: POOL,
            pool_size: POOL
        })
    );
    assert_eq!(
        c.insert(A, &[5, 6], &[40, 40]),
        Err(CacheError::DuplicateSlot(40))
    );
    // A new token backed by a slot the cache already owns elsewhere.
    assert_eq!(
        c.insert(B, &[5], &[owned[0]]),
        Err(CacheError::SlotOwned(owned[0]))
    );
    assert_eq!(c.stats(), before);
    c.check_invariants(POOL).unwrap();
}

#[test]
fn locked_paths_survive_eviction_and_unlock_is_checked() {
    let (mut c, mut a) = setup();
    put(&mut c, &mut a, A, &[1, 2, 3, 4]);
    put(&mut c, &mut a, A, &[1, 2, 5, 6]);
    let m = c.match_prefix(A, &[1, 2, 3, 4]);
    c.lock(m.node).unwrap();
    assert_eq!((c.protected_size(), c.evictable_size()), (4, 2));

    let freed = c.evict(POOL as usize);
    assert_eq!(freed.len(), 2, "only the unlocked branch goes");
    a.try_free(&freed).unwrap();
    assert_eq!(c.match_prefix(A, &[1, 2, 3, 4]).slots, m.slots);
    c.check_invariants(POOL).unwrap();

    // The ancestor holds counts only on behalf of the descendant: not unlockable.
    let ancestor = c.match_prefix(A, &[1, 2]).node;
    assert_eq!(c.unlock(ancestor), Err(CacheError::NotLocked(ancestor)));
    c.unlock(m.node).unwrap();
    assert_eq!(c.unlock(m.node), Err(CacheError::NotLocked(m.node)));
    assert_eq!(c.protected_size(), 0);
    c.check_invariants(POOL).unwrap();

    a.try_free(&c.evict(POOL as usize)).unwrap();
    assert_eq!(c.total_size(), 0);
    assert_eq!(a.num_free(), POOL as usize);
    assert_eq!(c.lock(m.node), Err(CacheError::StaleNode(m.node)));
    let live = put(&mut c, &mut a, A, &[1]);
    let handle = c.match_prefix(A, &[1]).node;
    let mut other = RadixCache::new(POOL);
    assert!(other.insert(A, &[1], &live).unwrap().duplicates.is_empty());
    assert_eq!(
        other.lock(handle),
        Err(CacheError::StaleNode(handle)),
        "foreign handle"
    );
    a.try_free(&c.evict(1)).unwrap();
    assert_eq!(c.unlock(m.node), Err(CacheError::StaleNode(m.node)));
    c.check_invariants(POOL).unwrap();
}

#[test]
fn fork_branches_share_one_node() {
    let (mut c, mut a) = setup();
    let out = {
        let slots = a.alloc(3).unwrap();
        c.insert(A, &[1, 2, 3], &slots).unwrap()
    };
    for _ in 0..3 {
        c.lock(out.node).unwrap();
    }
    assert_eq!(c.lock_count(out.node), Ok(3));
    for left in (0..3).rev() {
        assert!(c.evict(1).is_empty(), "locked by {} branches", left + 1);
        c.unlock(out.node).unwrap();
        c.check_invariants(POOL).unwrap();
    }
    assert_eq!(c.evict(1).len(), 3);
}

#[test]
fn split_keeps_locks_on_the_deeper_node() {
    let (mut c, mut a) = setup();
    let out = {
        let slots = a.alloc(4).unwrap();
        c.insert(A, &[1, 2, 3, 4], &slots).unwrap()
    };
    c.lock(out.node).unwrap();
    let head = c.match_prefix(A, &[1, 2]).node;
    assert_ne!(head, out.node);
    c.check_invariants(POOL).unwrap();
    assert_eq!(c.lock_count(out.node), Ok(1));
    assert_eq!(c.lock_count(head), Ok(0));
    assert!(c.evict(POOL as usize).is_empty());
    c.unlock(out.node).unwrap();
    assert_eq!(c.evict(POOL as usize).len(), 4);
    c.check_invariants(POOL).unwrap();
}

#[test]
fn eviction_is_lru_and_cascades_to_parents() {
    let (mut c, mut a) = setup();
    let old = put(&mut c, &mut a, A, &[1, 2]);
    let mid = put(&mut c, &mut a, A, &[3, 4]);
    let new = put(&mut c, &mut a, A, &[5, 6]);
    c.match_prefix(A, &[1, 2]); // refresh the oldest
    assert_eq!(c.evict(1), mid);
    assert_eq!(c.evict(2), new);
    assert_eq!(c.evict(1), old);
    c.check_invariants(POOL).unwrap();

    // A chain: children go first, then the parent left childless.
    let (mut c, mut a) = setup();
    let chain = put(&mut c, &mut a, A, &[1, 2, 3]);
    put(&mut c, &mut a, A, &[1, 2, 3, 4]);
    let branch = put(&mut c, &mut a, A, &[1, 2, 3, 5]);
    let all = c.evict(POOL as usize);
    assert_eq!(all.len(), 5);
    assert_eq!(all[2..], chain[..], "the shared parent is evicted last");
    assert!(all[..2].contains(&branch[3]));
    let s = c.stats();
    assert_eq!((s.evictions, s.evicted_tokens, s.cached_tokens), (3, 5, 0));
    c.check_invariants(POOL).unwrap();
}

#[test]
fn namespaces_are_isolated_and_public_is_shared() {
    let (mut c, mut a) = setup();
    let secret = put(&mut c, &mut a, A, &[1, 2, 3, 4]);
    assert_eq!(c.match_prefix(B, &[1, 2, 3, 4]).matched_len, 0);
    assert_eq!(
        c.match_prefix(Namespace::PUBLIC, &[1, 2, 3, 4]).matched_len,
        0
    );
    assert_eq!(c.match_prefix(A, &[1, 2, 3, 4]).slots, secret);

    // B caching the same tokens gets its own copy, not A's slots.
    let b_slots = put(&mut c, &mut a, B, &[1, 2, 3, 4]);
    assert!(b_slots.iter().all(|s| !secret.contains(s)));

    let system = put(&mut c, &mut a, Namespace::PUBLIC, &[7, 8, 9]);
    for ns in [A, B, Namespace::PUBLIC, Namespace::tenant(99)] {
        let m = c.match_prefix(ns, &[7, 8, 9, 10]);
        assert_eq!(m.slots, system, "{ns} sees the public prefix");
    }
    c.check_invariants(POOL).unwrap();
}

#[test]
fn tenant_continuations_of_public_prefixes_stay_private() {
    let (mut c, mut a) = setup();
    let system = put(&mut c, &mut a, Namespace::PUBLIC, &[1, 2, 3, 4, 5, 6]);
    let public_node = c.match_prefix(B, &[1, 2, 3, 4, 5, 6]).node;
    let nodes = c.node_count();

    // A diverges inside the public edge: mounted there, the edge not split.
    let m = c.match_prefix(A, &[1, 2, 3, 9, 9]);
    assert_eq!((m.node, m.matched_len), (public_node, 3));
    let mut history = m.slots.clone();
    history.extend(a.alloc(2).unwrap());
    let out = c.insert(A, &[1, 2, 3, 9, 9], &history).unwrap();
    assert!(out.duplicates.is_empty());
    assert_eq!(c.node_count(), nodes + 1, "only A's node was added");
    c.check_invariants(POOL).unwrap();

    let mine = c.match_prefix(A, &[1, 2, 3, 9, 9, 0]);
    assert_eq!((mine.matched_len, mine.slots.clone()), (5, history.clone()));
    let theirs = c.match_prefix(B, &[1, 2, 3, 9, 9]);
    assert_eq!((theirs.matched_len, theirs.node), (3, public_node));
    assert_eq!(c.match_prefix(B, &[1, 2, 3, 4, 5, 6]).node, public_node);
    assert_eq!(c.peek_prefix_len(Namespace::PUBLIC, &[1, 2, 3, 9, 9]), 3);

    // Locking A's node pins the public prefix it hangs from.
    c.lock(out.node).unwrap();
    assert_eq!(c.protected_size(), 6 + 2);
    assert!(c.evict(POOL as usize).is_empty());
    c.unlock(out.node).unwrap();
    let freed = c.evict(POOL as usize);
    assert_eq!(freed.len(), 8);
    assert!(system.iter().all(|s| freed.contains(s)));
    c.check_invariants(POOL).unwrap();
}

#[test]
fn public_split_rehomes_tenant_mounts() {
    let (mut c, mut a) = setup();
    let system = put(&mut c, &mut a, Namespace::PUBLIC, &[1, 2, 3, 4, 5, 6, 7, 8]);
    let extend = |c: &mut RadixCache, a: &mut SlotAllocator, ns, tokens: &[u32]| {
        let m = c.match_prefix(ns, tokens);
        let mut h = m.slots;
        h.extend(a.alloc(tokens.len() - m.matched_len).unwrap());
        let out = c.insert(ns, tokens, &h).unwrap();
        assert!(out.duplicates.is_empty());
        (out.node, h)
    };
    let (early, early_slots) = extend(&mut c, &mut a, A, &[1, 2, 9]);
    let (late, late_slots) = extend(&mut c, &mut a, A, &[1, 2, 3, 4, 5, 6, 9]);
    let (_, b_slots) = extend(&mut c, &mut a, B, &[1, 2, 3, 4, 9]);
    c.lock(early).unwrap();
    c.lock(late).unwrap();
    c.check_invariants(POOL).unwrap();

    // A public match ending mid-edge splits it (public operations may).
    let m = c.match_prefix(Namespace::PUBLIC, &[1, 2, 3, 4]);
    assert_eq!(m.slots, system[..4]);
    c.check_invariants(POOL).unwrap();
    let m = c.match_prefix(Namespace::PUBLIC, &[1, 2]);
    assert_eq!(m.slots, system[..2]);
    c.check_invariants(POOL).unwrap();

    assert_eq!(c.match_prefix(A, &[1, 2, 9]).slots, early_slots);
    assert_eq!(c.match_prefix(A, &[1, 2, 3, 4, 5, 6, 9]).slots, late_slots);
    assert_eq!(c.match_prefix(B, &[1, 2, 3, 4, 9]).slots, b_slots);
    assert_eq!(c.match_prefix(B, &[1, 2, 9]).matched_len, 2);

    // Only B's unlocked branch can go; A's mount inside the public tail
    // pins that whole (unsplit) edge, and its own mount the head.
    assert_eq!(c.evict(POOL as usize), b_slots[4..]);
    assert_eq!(c.protected_size(), 8 + 1 + 1);
    c.unlock(early).unwrap();
    c.unlock(late).unwrap();
    c.evict(POOL as usize);
    assert_eq!(c.total_size(), 0);
    c.check_invariants(POOL).unwrap();
}

#[test]
fn tenant_prefers_longer_of_private_and_public() {
    let (mut c, mut a) = setup();
    let private = put(&mut c, &mut a, A, &[1, 2, 3]);
    let public = put(&mut c, &mut a, Namespace::PUBLIC, &[1, 2, 3, 4]);
    assert_eq!(c.match_prefix(A, &[1, 2, 3, 4]).slots, public);
    assert_eq!(
        c.match_prefix(A, &[1, 2, 3]).slots,
        private,
        "ties go to the tenant"
    );
    // Fresh slots for A's longer sequence dedup against the public copy.
    let fresh = a.alloc(5).unwrap();
    let out = c.insert(A, &[1, 2, 3, 4, 5], &fresh).unwrap();
    assert_eq!(out.existing_len, 4);
    assert_eq!(out.duplicates, fresh[..4]);
    c.check_invariants(POOL).unwrap();
}

#[test]
fn peek_is_side_effect_free_and_stats_serialize() {
    let (mut c, mut a) = setup();
    put(&mut c, &mut a, A, &[1, 2, 3]);
    let before = c.stats();
    let nodes = c.node_count();
    assert_eq!(c.peek_prefix_len(A, &[1, 2, 5]), 2);
    assert_eq!(c.peek_prefix_len(B, &[1, 2, 5]), 0);
    assert_eq!((c.stats(), c.node_count()), (before, nodes));

    c.match_prefix(A, &[1, 2, 3, 4]);
    let json = serde_json::to_value(c.stats()).unwrap();
    assert_eq!(json["hit_tokens"], 3);
    assert_eq!(json["queried_tokens"], 4);
    assert_eq!(json["cached_tokens"], 3);
    assert!((c.stats().hit_rate() - 0.75).abs() < 1e-12);
}
