//! Property tests over random workloads: greedy outputs are the same with
//! the cache on and off; eviction, preemption, forks and cancellations leave
//! every pool slot accounted for.

mod common;

use arbor_scheduler::{Event, GenerateRequest, Namespace, SchedulerConfig};
use proptest::prelude::*;
use std::collections::HashMap;

#[derive(Clone, Debug)]
struct Req {
    ns: u64,
    prompt: Vec<u32>,
    max_tokens: usize,
    /// Drop the stream after this many tokens.
    cancel_after: Option<usize>,
}

fn workload() -> impl Strategy<Value = Vec<Req>> {
    // A few shared prefixes; each request takes one, adds a suffix, and some
    // requests repeat (forks of the same state).
    let prefixes = prop::collection::vec(prop::collection::vec(5u32..500, 4..40), 1..4);
    (
        prefixes,
        prop::collection::vec(
            (
                0usize..4,
                prop::collection::vec(5u32..500, 1..12),
                1usize..10,
                0u64..2,
                prop::option::weighted(0.15, 0usize..4),
                0usize..3,
            ),
            4..14,
        ),
    )
        .prop_map(|(prefixes, reqs)| {
            let mut out = Vec::new();
            for (p, suffix, max_tokens, ns, cancel_after, copies) in reqs {
                let mut prompt = vec![0];
                prompt.extend(&prefixes[p % prefixes.len()]);
                prompt.extend(suffix);
                for _ in 0..=copies {
                    out.push(Req {
                        ns,
                        prompt: prompt.clone(),
                        max_tokens,
                        cancel_after,
                    });
                }
            }
            out
        })
}

fn run(
    reqs: &[Req],
    kv_slots: usize,
    cache: bool,
) -> (HashMap<usize, Vec<u32>>, arbor_scheduler::PoolAudit, u64) {
    let s = common::scheduler(
        kv_slots,
        SchedulerConfig {
            cache_enabled: cache,
            check_invariants: true,
            max_batch_tokens: 48,
            ..Default::default()
        },
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            let mut g =
                GenerateRequest::new(Namespace::tenant(r.ns), r.prompt.clone(), r.max_tokens);
            g.ignore_eos = true;
            let mut stream = s.generate(g).expect("valid request");
            let cancel = r.cancel_after;
            tasks.push(tokio::spawn(async move {
                let mut n = 0;
                while let Some(ev) = stream.next().await {
                    match ev {
                        Event::Token { .. } => {
                            n += 1;
                            if cancel == Some(n) {
                                return None;
                            }
                        }
                        Event::Done { tokens, .. } => return Some((i, tokens)),
                        Event::Error(e) => panic!("request {i} failed: {e}"),
                    }
                }
                panic!("stream {i} ended without Done")
            }));
        }
        let mut outs = HashMap::new();
        for t in tasks {
            // A leak or deadlock shows as a timeout, not a hung test.
            let r = tokio::time::timeout(std::time::Duration::from_secs(60), t)
                .await
                .expect("no request may hang");
            if let Some((i, toks)) = r.unwrap() {
                outs.insert(i, toks);
            }
        }
        // Let the scheduler see the cancellations.
        let mut audit = s.audit().await.unwrap();
        for _ in 0..50 {
            if audit.private_slots == 0 && audit.locked_slots == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            audit = s.audit().await.unwrap();
        }
        (outs, audit, s.stats().preemptions)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, max_shrink_iters: 20, .. ProptestConfig::default() })]

    #[test]
    fn cache_on_and_off_agree_and_every_slot_is_accounted_for(reqs in workload()) {
        // A pool just big enough for the largest request forces eviction and preemption.
        let biggest = reqs.iter().map(|r| r.prompt.len() + r.max_tokens).max().unwrap();
        let small = biggest + 24;
        let (on, audit, _) = run(&reqs, small, true);
        let (off, audit_off, _) = run(&reqs, 4096, false);
        for (i, toks) in &on {
            if let Some(other) = off.get(i) {
                prop_assert_eq!(toks, other, "request {} differs with the cache on", i);
            }
        }
        for (i, r) in reqs.iter().enumerate() {
            if r.cancel_after.is_none() {
                prop_assert!(on.contains_key(&i) && off.contains_key(&i), "request {} did not finish", i);
                prop_assert_eq!(on[&i].len(), r.max_tokens);
            }
        }
        prop_assert_eq!(audit.invariants.clone(), Ok(()));
        prop_assert_eq!(audit.private_slots, 0);
        prop_assert_eq!(audit.locked_slots, 0, "nothing may stay locked after all requests end");
        prop_assert_eq!(audit.free_slots + audit.cached_slots, audit.pool_slots, "{:?}", audit);
        prop_assert_eq!(audit_off.free_slots, audit_off.pool_slots, "cache off keeps nothing");
    }
}
