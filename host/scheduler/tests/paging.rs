//! The KV manager's pages against the real CPU engine: copy on write of
//! partly shared pages runs through ONNX Runtime's forward pass, so wrong
//! copies or a wrong slot layout would change the greedy tokens.

mod common;

use arbor_engine::{Engine, EngineOptions};
use arbor_scheduler::{GenerateRequest, Namespace, Scheduler, SchedulerConfig, ScoreRequest};

fn start(page_size: usize, cache: bool) -> Scheduler {
    let engine = Engine::open(
        &common::tiny_model(),
        &EngineOptions {
            kv_slots: 4096,
            threads: 1,
            ..Default::default()
        },
    )
    .expect("open engine")
    .with_page_size(page_size)
    .expect("page size divides the pool");
    Scheduler::start(
        engine,
        SchedulerConfig {
            cache_enabled: cache,
            check_invariants: true,
            ..Default::default()
        },
    )
}

/// Prompts sharing prefixes that end inside pages of 16 and 256 tokens.
fn prompts() -> Vec<Vec<u32>> {
    let base: Vec<u32> = (0..300u32).map(|i| 5 + (i * 37) % 480).collect();
    [21, 37, 270, 299, 300]
        .iter()
        .enumerate()
        .map(|(k, &shared)| {
            let mut p = base[..shared].to_vec();
            p.extend((0..9u32).map(|i| 7 + (i * 13 + k as u32 * 29) % 470));
            p
        })
        .collect()
}

fn run(s: &Scheduler) -> (Vec<Vec<u32>>, usize, Vec<f64>) {
    // One at a time, so each finds the ones before it in the cache.
    let mut out = Vec::new();
    let mut cached = 0;
    for p in prompts() {
        let g = s
            .generate(GenerateRequest::new(Namespace::tenant(1), p, 12))
            .unwrap()
            .blocking_collect()
            .unwrap();
        cached += g.usage.cached_tokens;
        out.push(g.tokens);
    }
    let scores = s
        .blocking_score(ScoreRequest {
            namespace: Namespace::tenant(1),
            prompt: prompts()[2].clone(),
            choices: vec![vec![9], vec![10, 11, 12], (20..60).collect()],
        })
        .unwrap()
        .iter()
        .map(|c| c.logprob)
        .collect();
    (out, cached, scores)
}

#[test]
fn pages_of_16_and_256_give_the_tokens_and_hits_of_single_slots() {
    let (want, _, want_scores) = run(&start(1, false));
    let (one, hits, one_scores) = run(&start(1, true));
    assert_eq!(one, want);
    assert!(hits > 0);
    for page in [16, 256] {
        let (got, got_hits, scores) = run(&start(page, true));
        assert_eq!(got, want, "page size {page}");
        assert_eq!(
            got_hits, hits,
            "page size {page}: matching is token-granular"
        );
        for (a, b) in scores.iter().zip(&one_scores) {
            assert!((a - b).abs() < 1e-3, "page size {page}: {a} vs {b}");
        }
    }
    for (a, b) in one_scores.iter().zip(&want_scores) {
        assert!((a - b).abs() < 1e-3, "{a} vs {b}");
    }
}
