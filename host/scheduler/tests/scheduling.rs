//! Scheduler behaviours: namespaces, progress under a small pool, forks,
//! select scoring, cancellation.

mod common;

use arbor_engine::sampling::log_prob;
use arbor_engine::{BatchEntry, Engine, EngineOptions, Logits};
use arbor_scheduler::{GenerateRequest, Namespace, RequestError, SchedulerConfig, ScoreRequest};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn prompt(seed: u32, len: usize) -> Vec<u32> {
    let mut p = vec![0];
    p.extend((0..len as u32 - 1).map(|i| 5 + (i * 37 + seed * 101) % 480));
    p
}

#[test]
fn no_namespace_hits_another_namespaces_prefix() {
    let s = common::scheduler(2048, SchedulerConfig::default());
    let p = prompt(1, 60);
    let a = Namespace::tenant(1);
    let b = Namespace::tenant(2);
    let go = |ns| {
        s.generate(GenerateRequest::new(ns, p.clone(), 2))
            .unwrap()
            .blocking_collect()
            .unwrap()
    };
    assert_eq!(go(a).usage.cached_tokens, 0);
    assert_eq!(
        go(b).usage.cached_tokens,
        0,
        "tenant 2 must not see tenant 1's prefix"
    );
    assert_eq!(
        go(a).usage.cached_tokens,
        59,
        "tenant 1 hits its own prefix"
    );
    assert_eq!(go(b).usage.cached_tokens, 59);
}

#[test]
fn a_pool_too_small_for_the_load_still_completes_every_request() {
    // 24 requests of 40 prompt + 24 output tokens offered at once to a pool
    // of 130 slots: at most two fit at a time.
    let s = common::scheduler(
        130,
        SchedulerConfig {
            check_invariants: true,
            ..Default::default()
        },
    );
    let rt = rt();
    rt.block_on(async {
        let streams: Vec<_> = (0..24)
            .map(|i| {
                let mut r =
                    GenerateRequest::new(Namespace::tenant(i % 3), prompt(i as u32, 40), 24);
                r.ignore_eos = true;
                s.generate(r).unwrap()
            })
            .collect();
        for st in streams {
            let g = tokio::time::timeout(std::time::Duration::from_secs(120), st.collect())
                .await
                .expect("no deadlock")
                .unwrap();
            assert_eq!(g.tokens.len(), 24);
        }
        let a = s.audit().await.unwrap();
        assert_eq!(a.invariants, Ok(()));
        assert_eq!(a.free_slots + a.cached_slots, a.pool_slots);
    });
}

#[test]
fn forked_branches_prefill_their_shared_prefix_once() {
    let s = common::scheduler(4096, SchedulerConfig::default());
    let base = prompt(7, 100);
    let rt = rt();
    rt.block_on(async {
        let streams: Vec<_> = (0..8u32)
            .map(|i| {
                let mut p = base.clone();
                p.push(10 + i);
                let mut r = GenerateRequest::new(Namespace::tenant(1), p, 8);
                r.ignore_eos = true;
                s.generate(r).unwrap()
            })
            .collect();
        for st in streams {
            st.collect().await.unwrap();
        }
    });
    let st = s.stats();
    // 100 shared tokens once, then one distinct token per branch.
    assert!(
        st.prefill_tokens <= 100 + 8 * 2,
        "prefilled {} tokens",
        st.prefill_tokens
    );
    // One branch alone takes 1 prefill step + 7 decode steps; eight branches
    // share steps: a deferred admission round adds at most a couple.
    assert!(st.steps <= 8 + 3, "took {} steps", st.steps);
}

#[test]
fn select_scores_equal_a_direct_computation() {
    let dir = common::tiny_model();
    let s = common::scheduler(1024, SchedulerConfig::default());
    let p = prompt(3, 20);
    let choices = vec![vec![40u32, 41, 42], vec![50], vec![60, 61]];
    let scores = s
        .blocking_score(ScoreRequest {
            namespace: Namespace::tenant(1),
            prompt: p.clone(),
            choices: choices.clone(),
        })
        .unwrap();
    // Direct: run prompt + choice in one pass and sum log-probs.
    let mut e = Engine::open(
        &dir,
        &EngineOptions {
            kv_slots: 256,
            threads: 1,
            ..Default::default()
        },
    )
    .unwrap();
    for (c, sc) in choices.iter().zip(&scores) {
        let mut toks = p.clone();
        toks.extend(c);
        let slots: Vec<u32> = (0..toks.len() as u32).collect();
        let out = e
            .forward(&[BatchEntry {
                tokens: &toks,
                history: &[],
                new_slots: &slots,
                logits: Logits::All,
            }])
            .unwrap();
        let rows: Vec<&[f32]> = out.rows(0).collect();
        let lp: f64 = (0..c.len())
            .map(|k| log_prob(rows[p.len() - 1 + k], c[k]))
            .sum();
        assert!((lp - sc.logprob).abs() < 1e-3, "{lp} vs {}", sc.logprob);
        assert!((sc.normalized() - lp / c.len() as f64).abs() < 1e-3);
    }
}

#[test]
fn cancelled_requests_free_everything_and_others_finish() {
    let s = common::scheduler(1024, SchedulerConfig::default());
    let rt = rt();
    rt.block_on(async {
        let mut r = GenerateRequest::new(Namespace::tenant(1), prompt(5, 30), 200);
        r.ignore_eos = true;
        let mut long = s.generate(r).unwrap();
        let mut r2 = GenerateRequest::new(Namespace::tenant(2), prompt(6, 30), 10);
        r2.ignore_eos = true;
        let other = s.generate(r2).unwrap();
        long.next().await.unwrap();
        drop(long);
        assert_eq!(other.collect().await.unwrap().tokens.len(), 10);
        let mut a = s.audit().await.unwrap();
        for _ in 0..100 {
            if a.private_slots == 0 && a.locked_slots == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            a = s.audit().await.unwrap();
        }
        assert_eq!((a.private_slots, a.locked_slots), (0, 0));
        assert!(s.stats().cancelled >= 1);
    });
}

#[test]
fn invalid_requests_get_clear_errors() {
    let s = common::scheduler(64, SchedulerConfig::default());
    let too_big = s
        .generate(GenerateRequest::new(
            Namespace::tenant(1),
            prompt(1, 100),
            4,
        ))
        .unwrap()
        .blocking_collect();
    assert!(
        matches!(too_big, Err(RequestError::TooLarge { .. })),
        "{too_big:?}"
    );
    assert!(matches!(
        s.generate(GenerateRequest::new(
            Namespace::tenant(1),
            vec![0, 99999],
            4
        )),
        Err(RequestError::Invalid(_))
    ));
    assert!(matches!(
        s.generate(GenerateRequest::new(Namespace::tenant(1), vec![], 4)),
        Err(RequestError::Invalid(_))
    ));
}

#[test]
fn token_logprobs_agree_with_scoring_the_same_tokens() {
    let s = common::scheduler(1024, SchedulerConfig::default());
    let p = prompt(9, 24);
    let mut r = GenerateRequest::new(Namespace::tenant(1), p.clone(), 12);
    r.ignore_eos = true;
    r.sampling.temperature = 1.0;
    r.sampling.seed = 5;
    r.logprobs = Some(4);
    let g = s.generate(r).unwrap().blocking_collect().unwrap();
    assert_eq!(g.logprobs.len(), g.tokens.len());
    for (lp, &tok) in g.logprobs.iter().zip(&g.tokens) {
        assert_eq!(lp.top.len(), 4);
        assert!(lp.top.windows(2).all(|w| w[0].1 >= w[1].1), "{:?}", lp.top);
        assert!(lp.logprob <= lp.top[0].1 + 1e-6);
        if let Some(&(_, l)) = lp.top.iter().find(|t| t.0 == tok) {
            assert_eq!(l, lp.logprob, "the chosen token's entry in the top list");
        }
    }
    // The scoring path (a prefill over prompt + tokens) is independent of
    // the decode path that produced the log-probabilities.
    let score = s
        .blocking_score(ScoreRequest {
            namespace: Namespace::tenant(2),
            prompt: p,
            choices: vec![g.tokens.clone()],
        })
        .unwrap()[0];
    let sum: f64 = g.logprobs.iter().map(|l| l.logprob as f64).sum();
    assert!(
        (sum - score.logprob).abs() < 1e-3,
        "{sum} vs {}",
        score.logprob
    );

    let mut bad = GenerateRequest::new(Namespace::tenant(1), prompt(1, 4), 2);
    bad.logprobs = Some(21);
    assert!(matches!(s.generate(bad), Err(RequestError::Invalid(_))));
}
