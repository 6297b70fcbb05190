//! Scenario tests for the KV manager; random workloads are in `proptests`.

use super::{KvConfigError, KvError, KvManager, SeqKv, SlotCopy};
use crate::Namespace;

const A: Namespace = Namespace::tenant(1);
const B: Namespace = Namespace::tenant(2);

fn ok(kv: &KvManager, seqs: &[&SeqKv]) {
    let a = kv.audit(seqs.iter().copied());
    assert_eq!(a.invariants, Ok(()), "{a:?}");
}

fn toks(range: std::ops::Range<u32>) -> Vec<u32> {
    range.collect()
}

/// Admits, prefills and commits `prompt`; returns the live sequence.
fn prefill(kv: &mut KvManager, ns: Namespace, prompt: &[u32]) -> SeqKv {
    let mut seq = kv.admit(ns, prompt, 0).expect("room");
    let n = prompt.len() - seq.len();
    kv.allocate(&mut seq, n).expect("room");
    kv.commit_prefix(&mut seq, prompt);
    seq
}

#[test]
fn bad_configs_are_errors() {
    assert_eq!(
        KvManager::new(16, 0, true).unwrap_err(),
        KvConfigError::ZeroPageSize
    );
    assert_eq!(
        KvManager::new(0, 4, true).unwrap_err(),
        KvConfigError::EmptyPool
    );
    assert_eq!(
        KvManager::new(20, 16, true).unwrap_err(),
        KvConfigError::NotPageMultiple {
            pool_slots: 20,
            page_size: 16
        }
    );
    assert!(
        KvManager::new(20, 16, true)
            .unwrap_err()
            .to_string()
            .contains("multiple")
    );
    let kv = KvManager::new(32, 16, false).unwrap();
    assert_eq!(
        (kv.pool_slots(), kv.page_size(), kv.cache_enabled()),
        (32, 16, false)
    );
}

fn lifecycle(p: u32) {
    let pool = 8 * p;
    let mut kv = KvManager::new(pool, p, true).unwrap();
    let prompt = toks(0..2 * p + 3);
    let len = prompt.len();
    let mut seq = kv.admit(A, &prompt, 2).unwrap();
    assert_eq!((seq.len(), seq.cached_len()), (0, 0));
    ok(&kv, &[&seq]);
    let slots = kv.allocate(&mut seq, len).unwrap();
    assert_eq!(seq.slots(), &slots[..]);
    assert!(seq.take_copies().is_empty());
    let pages = len.div_ceil(p as usize);
    assert_eq!(kv.free_slots(), pool as usize - pages * p as usize);
    assert_eq!(seq.private_slots(), pages * p as usize);
    ok(&kv, &[&seq]);
    kv.commit_prefix(&mut seq, &prompt);
    assert_eq!(kv.cache_stats().cached_tokens, len);
    // Only the tail of the last page is still private.
    assert_eq!(seq.private_slots(), pages * p as usize - len);
    ok(&kv, &[&seq]);
    let mut history = prompt.clone();
    history.push(99);
    let decode = kv.allocate(&mut seq, 1).unwrap();
    assert_eq!(decode[0] as usize % p as usize, len % p as usize);
    ok(&kv, &[&seq]);
    kv.release(seq, &history, true);
    let a = kv.audit([]);
    assert_eq!(a.invariants, Ok(()));
    assert_eq!(
        (a.private_slots, a.locked_slots, a.cached_slots),
        (0, 0, len + 1)
    );

    // The prompt again: all but its last token matched, whole pages shared.
    let mut again = kv.admit(A, &prompt, 0).unwrap();
    assert_eq!((again.len(), again.cached_len()), (len - 1, len - 1));
    assert_eq!(kv.peek(A, &prompt), len - 1);
    let copies = again.take_copies();
    let partial = (len - 1) % p as usize;
    assert_eq!(copies.len(), partial);
    let shared = len - 1 - partial;
    assert_eq!(&again.slots()[..shared], &slots[..shared]);
    for (c, i) in copies.iter().zip(shared..) {
        assert_eq!(c.src, slots[i]);
        assert_eq!(c.dst, again.slots()[i]);
    }
    ok(&kv, &[&again]);
    kv.allocate(&mut again, 1).unwrap();
    ok(&kv, &[&again]);
    kv.release(again, &prompt, false);
    assert_eq!(kv.audit([]).private_slots, 0);
}

#[test]
fn lifecycle_page_1() {
    lifecycle(1);
}

#[test]
fn lifecycle_page_16() {
    lifecycle(16);
}

#[test]
fn lifecycle_page_256() {
    lifecycle(256);
}

#[test]
fn partial_page_is_copied_on_write() {
    let mut kv = KvManager::new(64, 4, true).unwrap();
    let first = toks(10..20);
    let seq = prefill(&mut kv, A, &first);
    let cached = seq.slots().to_vec();
    kv.release(seq, &first, true);

    let mut second = first[..7].to_vec();
    second.extend([50, 51]);
    let mut seq = kv.admit(A, &second, 0).unwrap();
    assert_eq!(seq.len(), 7);
    assert_eq!(&seq.slots()[..4], &cached[..4], "the full page is shared");
    let dst = seq.slots()[4];
    assert_eq!(dst % 4, 0, "copies go to the start of a fresh page");
    assert_eq!(&seq.slots()[4..7], &[dst, dst + 1, dst + 2]);
    let copies = seq.take_copies();
    let want: Vec<SlotCopy> = (4..7)
        .map(|i| SlotCopy {
            src: cached[i],
            dst: seq.slots()[i],
        })
        .collect();
    assert_eq!(
        copies, want,
        "exactly the matched tokens of the partial page"
    );
    assert_eq!(kv.allocate(&mut seq, 2).unwrap(), vec![dst + 3, dst + 4]);
    ok(&kv, &[&seq]);
    kv.release(seq, &second, true);
    ok(&kv, &[]);
}

#[test]
fn page_held_in_two_physical_pages_is_copied() {
    let mut kv = KvManager::new(64, 4, true).unwrap();
    let long = toks(1..10);
    // Caches positions 0..6; positions 4, 5 land in this sequence's page.
    let a = prefill(&mut kv, A, &long[..6]);
    // Matches 6, copies 4, 5 into its own page, computes 6..9: the tree
    // gets 6, 7 from this page.
    let b = prefill(&mut kv, A, &long);
    assert_eq!(b.cached_len(), 6);
    let (a_slots, b_slots) = (a.slots().to_vec(), b.slots().to_vec());
    kv.release(a, &long[..6], false);
    kv.release(b, &long, false);
    ok(&kv, &[]);

    let m = kv.admit(A, &long, 0).unwrap();
    assert_eq!(m.len(), 8);
    assert_eq!(&m.slots()[..4], &a_slots[..4], "page 0 is shared");
    let srcs: Vec<u32> = m.copies.iter().map(|c| c.src).collect();
    assert_eq!(srcs, vec![a_slots[4], a_slots[5], b_slots[6], b_slots[7]]);
    assert_ne!(
        a_slots[4] / 4,
        b_slots[6] / 4,
        "the page is split in the tree"
    );
    ok(&kv, &[&m]);
    kv.release(m, &[], false);
}

#[test]
fn eviction_under_pressure_frees_whole_pages() {
    let mut kv = KvManager::new(32, 4, true).unwrap(); // 8 pages
    for k in 0..3u32 {
        let prompt: Vec<u32> = (0..6).map(|t| 100 * k + t).collect();
        let seq = prefill(&mut kv, A, &prompt);
        kv.release(seq, &prompt, true);
    }
    assert_eq!(kv.free_slots(), 8);
    assert_eq!(kv.evictable_tokens(), 18);
    let fresh = toks(1000..1020);
    let mut seq = kv.admit(B, &fresh, 0).expect("eviction makes room");
    kv.allocate(&mut seq, 20).unwrap();
    ok(&kv, &[&seq]);
    let stats = kv.cache_stats();
    assert!(stats.evictions >= 2 && stats.evicted_tokens >= 12);
    assert_eq!(kv.free_slots() % 4, 0);
    // Whatever is still cached still fits beside the 5 pages in use.
    assert!(stats.cached_tokens <= 12);
    kv.release(seq, &fresh, false);
    ok(&kv, &[]);
}

#[test]
fn allocate_is_all_or_nothing() {
    let mut kv = KvManager::new(32, 4, true).unwrap();
    let cached = toks(0..6);
    let seq = prefill(&mut kv, A, &cached);
    kv.release(seq, &cached, true);
    let mut seq = kv.admit(B, &[7, 8, 9], 0).unwrap();
    kv.allocate(&mut seq, 3).unwrap();
    let before = (seq.slots().to_vec(), kv.free_slots(), kv.cache_stats());
    // 1 tail slot + 5 free pages + 2 evictable pages hold 29 < 30.
    let err = kv.allocate(&mut seq, 30).unwrap_err();
    assert_eq!(
        err,
        KvError::OutOfSlots {
            needed: 32,
            available: 28
        }
    );
    assert_eq!(
        (seq.slots().to_vec(), kv.free_slots(), kv.cache_stats()),
        before
    );
    ok(&kv, &[&seq]);
    // Exactly what is obtainable succeeds, evicting the cache.
    kv.allocate(&mut seq, 29).unwrap();
    assert_eq!((kv.free_slots(), kv.cache_stats().cached_tokens), (0, 0));
    ok(&kv, &[&seq]);
    kv.release(seq, &[], false);
}

#[test]
fn namespaces_stay_isolated() {
    let mut kv = KvManager::new(64, 4, true).unwrap();
    let prompt = toks(0..9);
    let seq = prefill(&mut kv, A, &prompt);
    kv.release(seq, &prompt, true);
    assert_eq!(kv.peek(A, &prompt), 8);
    assert_eq!(kv.peek(B, &prompt), 0);
    assert_eq!(kv.peek(Namespace::PUBLIC, &prompt), 0);
    let b = kv.admit(B, &prompt, 0).unwrap();
    assert_eq!(b.len(), 0);
    kv.release(b, &[], false);

    let public = toks(50..60);
    let seq = prefill(&mut kv, Namespace::PUBLIC, &public);
    kv.release(seq, &public, true);
    assert_eq!((kv.peek(A, &public), kv.peek(B, &public)), (9, 9));
    ok(&kv, &[]);
}

#[test]
fn page_1_adopts_cache_slots_and_frees_duplicates() {
    let mut kv = KvManager::new(32, 1, true).unwrap();
    let prompt = toks(0..5);
    let mut a = kv.admit(A, &prompt, 0).unwrap();
    let mut b = kv.admit(A, &prompt, 0).unwrap();
    kv.allocate(&mut a, 5).unwrap();
    let b_own = kv.allocate(&mut b, 5).unwrap();
    assert_eq!(kv.free_slots(), 22);
    kv.commit_prefix(&mut a, &prompt);
    kv.commit_prefix(&mut b, &prompt);
    assert_eq!(b.slots(), a.slots(), "b reads the cache's slots");
    assert_eq!(b.private_slots(), 0);
    assert_eq!(kv.free_slots(), 27, "b's duplicates are freed");
    assert_eq!(kv.cache_stats().duplicate_tokens, 5);
    assert!(b_own.iter().all(|s| !a.slots().contains(s)));
    ok(&kv, &[&a, &b]);
    kv.release(a, &prompt, true);
    kv.release(b, &prompt, true);
    let audit = kv.audit([]);
    assert_eq!(
        (audit.cached_slots, audit.free_slots, audit.private_slots),
        (5, 27, 0)
    );
}

#[test]
fn page_16_keeps_its_own_duplicates() {
    let mut kv = KvManager::new(64, 16, true).unwrap();
    let prompt = toks(0..5);
    let mut a = kv.admit(A, &prompt, 0).unwrap();
    let mut b = kv.admit(A, &prompt, 0).unwrap();
    kv.allocate(&mut a, 5).unwrap();
    let own = kv.allocate(&mut b, 5).unwrap();
    kv.commit_prefix(&mut a, &prompt);
    kv.commit_prefix(&mut b, &prompt);
    assert_eq!(b.slots(), &own[..], "b keeps its page");
    assert_eq!(b.private_slots(), 16);
    ok(&kv, &[&a, &b]);
    kv.release(b, &prompt, true);
    kv.release(a, &prompt, true);
    assert_eq!(kv.free_slots(), 48);
    ok(&kv, &[]);
}

#[test]
fn fork_shares_stable_pages_and_copies_the_partial_one() {
    let mut kv = KvManager::new(64, 4, true).unwrap();
    let prompt = toks(0..6);
    let parent = prefill(&mut kv, A, &prompt);
    let mut child = kv.fork(&parent, 6).unwrap();
    assert_eq!(&child.slots()[..4], &parent.slots()[..4]);
    let copies = child.take_copies();
    assert_eq!(
        copies.iter().map(|c| c.src).collect::<Vec<_>>(),
        parent.slots()[4..6]
    );
    assert_eq!(
        kv.fork(&parent, 7).unwrap_err(),
        KvError::ForkTooLong {
            len: 7,
            parent_len: 6
        }
    );
    ok(&kv, &[&parent, &child]);
    kv.allocate(&mut child, 3).unwrap();
    // The fork may outlive its parent.
    kv.release(parent, &prompt, false);
    ok(&kv, &[&child]);
    kv.release(child, &[], false);
    assert_eq!(kv.audit([]).private_slots, 0);
}

#[test]
fn fork_of_an_uncached_parent_holds_its_pages() {
    let mut kv = KvManager::new(64, 4, false).unwrap();
    let prompt = toks(0..6);
    let mut parent = kv.admit(A, &prompt, 0).unwrap();
    kv.allocate(&mut parent, 6).unwrap();
    // Nothing is stable before a commit: everything is copied.
    let early = kv.fork(&parent, 6).unwrap();
    assert_eq!(early.copies.len(), 6);
    kv.release(early, &[], false);
    // commit_prefix is a no-op without a cache, but fixes the prompt.
    kv.commit_prefix(&mut parent, &prompt);
    let child = kv.fork(&parent, 6).unwrap();
    assert_eq!(child.copies.len(), 2);
    ok(&kv, &[&parent, &child]);
    kv.release(parent, &prompt, true);
    ok(&kv, &[&child]);
    assert_eq!(kv.cache_stats().cached_tokens, 0);
    kv.release(child, &[], false);
    assert_eq!(kv.free_slots(), 64);
}

#[test]
fn a_fork_whose_copies_have_not_run_cannot_be_forked() {
    let mut kv = KvManager::new(64, 4, false).unwrap();
    let prompt = toks(0..6);
    let mut parent = kv.admit(A, &prompt, 0).unwrap();
    kv.allocate(&mut parent, 6).unwrap();
    let mut child = kv.fork(&parent, 6).unwrap();
    let free = kv.free_slots();
    // The child's slots are not written until its copies run.
    assert!(matches!(
        kv.fork(&child, 3),
        Err(KvError::ParentCopiesPending)
    ));
    assert_eq!(kv.free_slots(), free, "a refused fork changes nothing");
    let _ = child.take_copies();
    let grandchild = kv.fork(&child, 3).unwrap();
    ok(&kv, &[&parent, &child, &grandchild]);
    for s in [grandchild, child, parent] {
        kv.release(s, &[], false);
    }
    assert_eq!(kv.free_slots(), 64);
}

#[test]
fn truncate_frees_computed_positions_only() {
    let mut kv = KvManager::new(64, 4, true).unwrap();
    let prompt = toks(0..6);
    let seq0 = prefill(&mut kv, A, &prompt);
    kv.release(seq0, &prompt, true);
    let mut seq = kv.admit(A, &prompt, 0).unwrap();
    assert_eq!(seq.len(), 5);
    kv.allocate(&mut seq, 7).unwrap(); // positions 5..12: pages 1 and 2
    let free = kv.free_slots();
    kv.truncate(&mut seq, 9);
    assert_eq!((seq.len(), kv.free_slots()), (9, free));
    kv.truncate(&mut seq, 8);
    assert_eq!((seq.len(), kv.free_slots()), (8, free + 4));
    kv.truncate(&mut seq, 0);
    assert_eq!(seq.len(), 5, "clamped to the cached prefix");
    ok(&kv, &[&seq]);
    assert_eq!(kv.allocate(&mut seq, 1).unwrap(), vec![seq.slots()[4] + 1]);
    ok(&kv, &[&seq]);
    kv.release(seq, &[], false);
}

/// The engine as far as slots go: `content[s]` is the token prefix whose
/// last K/V slot `s` holds.
struct Engine {
    content: Vec<Option<Vec<u32>>>,
}

impl Engine {
    fn new(kv: &KvManager) -> Self {
        Engine {
            content: vec![None; kv.pool_slots()],
        }
    }

    /// One forward pass of `seq` over `new` tokens, whose history is
    /// `tokens[..seq.len()]`: the pass's copies first, then its writes.
    fn pass(&mut self, kv: &mut KvManager, seq: &mut SeqKv, tokens: &mut Vec<u32>, new: &[u32]) {
        tokens.truncate(seq.len());
        let slots = kv.allocate(seq, new.len()).expect("room");
        for c in seq.take_copies() {
            self.content[c.dst as usize] = self.content[c.src as usize].clone();
        }
        let start = tokens.len();
        tokens.extend_from_slice(new);
        for (k, &s) in slots.iter().enumerate() {
            self.content[s as usize] = Some(tokens[..=start + k].to_vec());
        }
    }

    /// Every slot `seq` reads holds its token at that position.
    fn assert_reads(&self, seq: &SeqKv, tokens: &[u32]) {
        for (i, &s) in seq.slots().iter().enumerate() {
            assert_eq!(
                self.content[s as usize].as_deref(),
                Some(&tokens[..=i]),
                "position {i} reads slot {s}"
            );
        }
    }
}

/// `proptests::matching_is_token_granular`'s third regression, op for op
/// (pages of 16). A fork copies its parent's unstable page on its next
/// pass, and pins the parent's slots until then; the pin kept them
/// allocated but not unwritten. The parent truncated below the fork point,
/// the dropped positions of the page it kept came back as its tail, and
/// its next pass wrote them before the fork's copy read them.
#[test]
fn truncate_keeps_what_a_pending_fork_copy_reads() {
    let p = 16;
    let mut kv = KvManager::new(8 * p, p, true).unwrap();
    let mut engine = Engine::new(&kv);
    let prompt = vec![0; 14];
    let mut a = kv.admit(Namespace::PUBLIC, &prompt, 0).unwrap();
    let mut a_tokens = prompt.clone();
    let b = kv.fork(&a, 0).unwrap();
    for n in [4, 7, 7] {
        engine.pass(&mut kv, &mut a, &mut a_tokens, &vec![0; n]);
    }
    assert_eq!(a.len(), 18);
    // Nothing of `a` is stable: the fork copies positions 0..6 of page 0.
    let mut c = kv.fork(&a, 6).unwrap();
    let mut c_tokens = a_tokens[..6].to_vec();
    assert_eq!(c.copies.len(), 6);
    kv.release(b, &[], false);
    let d = kv.admit(Namespace::PUBLIC, &prompt, 0).unwrap();
    ok(&kv, &[&a, &c, &d]);
    kv.truncate(&mut a, 3);
    assert_eq!(a.len(), 6, "positions 3..6 wait for the fork's copy");
    ok(&kv, &[&a, &c, &d]);
    let e = kv.fork(&d, 0).unwrap();
    engine.pass(&mut kv, &mut a, &mut a_tokens, &[0, 0, 1].repeat(5));
    let f_prompt = [prompt.as_slice(), &[1, 0, 2]].concat();
    let f = kv.admit(A, &f_prompt, 3).unwrap();
    engine.pass(&mut kv, &mut c, &mut c_tokens, &[1, 2, 1, 2, 1]);
    engine.assert_reads(&a, &a_tokens);
    engine.assert_reads(&c, &c_tokens);
    ok(&kv, &[&a, &c, &d, &e, &f]);
    // The copy has run: from the fork's next call on, `a` may drop them.
    engine.pass(&mut kv, &mut c, &mut c_tokens, &[2]);
    kv.truncate(&mut a, 3);
    assert_eq!(a.len(), 3);
    engine.pass(&mut kv, &mut a, &mut a_tokens, &[1, 1, 1]);
    engine.assert_reads(&a, &a_tokens);
    engine.assert_reads(&c, &c_tokens);
    ok(&kv, &[&a, &c, &d, &e, &f]);
    for seq in [a, c, d, e, f] {
        kv.release(seq, &[], false);
    }
    assert_eq!(kv.free_slots(), kv.pool_slots());
}

#[test]
fn disabled_cache_matches_and_keeps_nothing() {
    let mut kv = KvManager::new(32, 4, false).unwrap();
    let prompt = toks(0..6);
    for _ in 0..2 {
        let seq = prefill(&mut kv, A, &prompt);
        assert_eq!(seq.cached_len(), 0);
        assert_eq!(seq.private_slots(), 8);
        kv.release(seq, &prompt, true);
    }
    assert_eq!(
        (kv.peek(A, &prompt), kv.cache_stats().cached_tokens),
        (0, 0)
    );
    assert_eq!(kv.free_slots(), 32);
    assert!(kv.admit(A, &[], 0).is_none());
    assert!(
        kv.admit(A, &toks(0..33), 0).is_none(),
        "too long for the pool"
    );
    ok(&kv, &[]);
}

#[test]
fn audit_catches_a_missing_sequence() {
    let mut kv = KvManager::new(32, 4, true).unwrap();
    let seq = prefill(&mut kv, A, &toks(0..6));
    assert!(kv.audit([]).invariants.is_err());
    assert!(kv.audit([&seq, &seq]).invariants.is_err());
    ok(&kv, &[&seq]);
    kv.release(seq, &[], false);
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "without KvManager::release")]
fn dropping_a_sequence_asserts() {
    let mut kv = KvManager::new(32, 4, true).unwrap();
    let _ = kv.admit(A, &[1, 2], 0);
}
