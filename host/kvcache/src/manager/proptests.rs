//! Random workloads against the manager, checked against a model of the
//! engine: every slot's "content" is the token prefix whose last K/V it
//! holds. The test writes a slot's content when it allocates it for a
//! position, runs copies when it takes them, and after every operation
//! checks that every slot a sequence reads holds exactly that sequence's
//! prefix, and that the audit's invariants hold. That is what proves
//! sharing, copy on write, pinning and eviction correct.

use proptest::prelude::*;

use super::{KvManager, SeqKv};
use crate::Namespace;

const NAMESPACES: [Namespace; 3] = [
    Namespace::PUBLIC,
    Namespace::tenant(1),
    Namespace::tenant(2),
];
const MAX_LIVE: usize = 6;

#[derive(Debug, Clone)]
enum Op {
    Admit {
        ns: usize,
        base: usize,
        suffix: Vec<u32>,
        reserve: usize,
    },
    Allocate {
        seq: usize,
        n: usize,
        extra: Vec<u32>,
    },
    Flush {
        seq: usize,
    },
    Commit {
        seq: usize,
    },
    Truncate {
        seq: usize,
        back: usize,
    },
    Fork {
        seq: usize,
        cut: usize,
    },
    Release {
        seq: usize,
        cache: bool,
    },
    Evict {
        n: usize,
    },
}

fn tokens(max_len: usize) -> impl Strategy<Value = Vec<u32>> {
    // A 3-letter alphabet makes distinct prompts share prefixes often.
    prop::collection::vec(0u32..3, 0..max_len)
}

/// Four prompt bases cut from one common prefix, like system prompts, in
/// runs of `scale` equal tokens so they span several pages of any size.
fn bases(scale: usize) -> impl Strategy<Value = Vec<Vec<u32>>> {
    let common = tokens(8);
    let parts = prop::collection::vec((0..8usize, tokens(4)), 4);
    (common, parts).prop_map(move |(common, parts)| {
        let expand = |t: &[u32]| -> Vec<u32> {
            t.iter()
                .flat_map(|&x| std::iter::repeat_n(x, scale))
                .collect()
        };
        parts
            .into_iter()
            .map(|(cut, tail)| {
                let mut b = expand(&common[..cut.min(common.len())]);
                b.extend(expand(&tail));
                b
            })
            .collect()
    })
}

fn ops(page: usize) -> impl Strategy<Value = Vec<Op>> {
    let big = 2 * page + 3;
    let op = prop_oneof![
        4 => (0..3usize, 0..4usize, tokens(6), 0..big)
            .prop_map(|(ns, base, suffix, reserve)| Op::Admit { ns, base, suffix, reserve }),
        4 => (any::<usize>(), 1..big, tokens(6))
            .prop_map(|(seq, n, extra)| Op::Allocate { seq, n, extra }),
        1 => any::<usize>().prop_map(|seq| Op::Flush { seq }),
        2 => any::<usize>().prop_map(|seq| Op::Commit { seq }),
        1 => (any::<usize>(), 0..big).prop_map(|(seq, back)| Op::Truncate { seq, back }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(seq, cut)| Op::Fork { seq, cut }),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(seq, cache)| Op::Release { seq, cache }),
        1 => (0..big).prop_map(|n| Op::Evict { n }),
    ];
    prop::collection::vec(op, 1..60)
}

struct Live {
    kv: SeqKv,
    /// Known tokens; `tokens[..kv.len()]` is what the sequence has computed.
    tokens: Vec<u32>,
}

struct World {
    kv: KvManager,
    live: Vec<Live>,
    /// `content[slot]`: the prefix whose last token's K/V the slot holds.
    content: Vec<Option<Vec<u32>>>,
    /// `cached_len` of every successful admission, in order.
    hits: Vec<usize>,
}

impl World {
    fn new(pool: u32, page: u32) -> Self {
        World {
            kv: KvManager::new(pool, page, true).unwrap(),
            live: Vec::new(),
            content: vec![None; pool as usize],
            hits: Vec::new(),
        }
    }

    /// What the engine does with a pass's copies.
    fn flush(&mut self, i: usize) {
        for c in self.live[i].kv.take_copies() {
            let src = self.content[c.src as usize].clone();
            assert!(src.is_some(), "copy from a slot never written");
            self.content[c.dst as usize] = src;
        }
    }

    fn pick(&self, seq: usize) -> Option<usize> {
        (!self.live.is_empty()).then(|| seq % self.live.len())
    }

    fn apply(&mut self, op: &Op, bases: &[Vec<u32>]) {
        match op {
            Op::Admit {
                ns,
                base,
                suffix,
                reserve,
            } => {
                if self.live.len() >= MAX_LIVE {
                    return;
                }
                let mut prompt = bases[*base].clone();
                prompt.extend(suffix);
                if let Some(kv) = self.kv.admit(NAMESPACES[*ns], &prompt, *reserve) {
                    assert!(kv.len() < prompt.len().max(1));
                    self.hits.push(kv.cached_len());
                    self.live.push(Live { kv, tokens: prompt });
                }
            }
            Op::Allocate { seq, n, extra } => {
                let Some(i) = self.pick(*seq) else { return };
                let Ok(slots) = self.kv.allocate(&mut self.live[i].kv, *n) else {
                    return;
                };
                self.flush(i);
                let l = &mut self.live[i];
                let start = l.kv.len() - n;
                let mut extra = extra.iter().copied().cycle().chain(std::iter::repeat(0));
                while l.tokens.len() < l.kv.len() {
                    l.tokens.push(extra.next().unwrap_or(0));
                }
                for (k, &s) in slots.iter().enumerate() {
                    self.content[s as usize] = Some(l.tokens[..=start + k].to_vec());
                }
            }
            Op::Flush { seq } => {
                if let Some(i) = self.pick(*seq) {
                    self.flush(i);
                }
            }
            Op::Commit { seq } => {
                let Some(i) = self.pick(*seq) else { return };
                self.flush(i);
                let l = &mut self.live[i];
                self.kv.commit_prefix(&mut l.kv, &l.tokens);
            }
            Op::Truncate { seq, back } => {
                let Some(i) = self.pick(*seq) else { return };
                let l = &mut self.live[i];
                let len = l.kv.len();
                self.kv.truncate(&mut l.kv, len.saturating_sub(*back));
                assert!(l.kv.len() >= l.kv.cached_len() && l.kv.len() <= len);
                // The sequence may compute other tokens there now.
                l.tokens.truncate(l.kv.len());
            }
            Op::Fork { seq, cut } => {
                let Some(i) = self.pick(*seq) else { return };
                if self.live.len() >= MAX_LIVE {
                    return;
                }
                self.flush(i);
                let len = cut % (self.live[i].kv.len() + 1);
                if let Ok(kv) = self.kv.fork(&self.live[i].kv, len) {
                    let tokens = self.live[i].tokens[..len].to_vec();
                    self.live.push(Live { kv, tokens });
                }
            }
            Op::Release { seq, cache } => {
                let Some(i) = self.pick(*seq) else { return };
                if *cache {
                    self.flush(i);
                }
                let l = self.live.swap_remove(i);
                self.kv.release(l.kv, &l.tokens, *cache);
            }
            Op::Evict { n } => {
                let evictable = self.kv.evictable_tokens();
                let freed = self.kv.evict(*n);
                assert!(freed >= (*n).min(evictable) && freed <= evictable);
            }
        }
    }

    fn check(&self) {
        let audit = self.kv.audit(self.live.iter().map(|l| &l.kv));
        assert_eq!(audit.invariants, Ok(()), "{audit:?}");
        for (k, l) in self.live.iter().enumerate() {
            let pending: Vec<u32> = l.kv.copies.iter().map(|c| c.dst).collect();
            for (i, &s) in l.kv.slots().iter().enumerate() {
                if pending.contains(&s) {
                    continue;
                }
                assert_eq!(
                    self.content[s as usize].as_deref(),
                    Some(&l.tokens[..=i]),
                    "sequence {k} position {i} reads slot {s}"
                );
            }
        }
    }

    fn finish(mut self) -> Vec<usize> {
        for l in std::mem::take(&mut self.live) {
            self.kv.release(l.kv, &l.tokens, false);
        }
        let audit = self.kv.audit([]);
        assert_eq!(audit.invariants, Ok(()));
        assert_eq!((audit.private_slots, audit.locked_slots), (0, 0));
        self.hits
    }
}

fn run(pool: u32, page: u32, bases: &[Vec<u32>], ops: &[Op]) -> Vec<usize> {
    let mut w = World::new(pool, page);
    for op in ops {
        w.apply(op, bases);
        w.check();
    }
    w.finish()
}

/// Runs of this many equal tokens make bases a few pages long.
fn scale(page: usize) -> usize {
    page * 3 / 8 + 1
}

fn workload(page: usize) -> impl Strategy<Value = (Vec<Vec<u32>>, Vec<Op>)> {
    (bases(scale(page)), ops(page))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn page_1_small_pool((bases, ops) in workload(1)) {
        run(24, 1, &bases, &ops);
    }

    #[test]
    fn page_16_small_pool((bases, ops) in workload(16)) {
        run(6 * 16, 16, &bases, &ops);
    }

    #[test]
    fn matching_is_token_granular((bases, ops) in workload(16)) {
        // Pools large enough never to evict: only matching decides hits.
        let flat = run(1 << 14, 1, &bases, &ops);
        let paged = run(1 << 14, 16, &bases, &ops);
        prop_assert_eq!(flat, paged);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn page_256_small_pool((bases, ops) in workload(256)) {
        run(6 * 256, 256, &bases, &ops);
    }
}
