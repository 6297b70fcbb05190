//! Scheduler unit tests over the fake engine: policy, preemption, chunked
//! prefill, `select` scoring, jump-forward, stop strings, cancellation and
//! paging, with the KV invariants checked after every step.

mod fake;

use crate::{
    Constraint, Event, Finish, GenerateRequest, Generated, Namespace, Scheduler, SchedulerConfig,
    ScoreRequest,
};
use arbor_engine::sampling::log_prob;
use fake::{FakeEngine, Favourite};
use std::sync::Arc;

fn checked() -> SchedulerConfig {
    SchedulerConfig {
        check_invariants: true,
        ..Default::default()
    }
}

/// A prompt of `len` tokens, the first `shared` of them common to a group.
fn prompt(group: u32, i: u32, shared: usize, len: usize) -> Vec<u32> {
    (0..len as u32)
        .map(|k| {
            if (k as usize) < shared {
                3 + (k * 31 + group * 7) % 250
            } else {
                3 + (k * 17 + i * 101 + group) % 250
            }
        })
        .collect()
}

/// Runs every request at once and returns each one's tokens, plus stats.
fn run_all(
    engine: FakeEngine,
    cfg: SchedulerConfig,
    reqs: Vec<GenerateRequest>,
) -> (Vec<Generated>, crate::SchedulerStats) {
    let s = Scheduler::start(engine, cfg);
    let streams: Vec<_> = reqs.into_iter().map(|r| s.generate(r).unwrap()).collect();
    let out: Vec<Generated> = streams
        .into_iter()
        .map(|st| st.blocking_collect().unwrap())
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let audit = rt.block_on(s.audit()).unwrap();
    assert_eq!(audit.invariants, Ok(()));
    assert_eq!(audit.private_slots, 0, "nothing private once all finished");
    assert_eq!(audit.locked_slots, 0, "nothing locked once all finished");
    (out, s.stats())
}

fn few_shot(n: u32, max_tokens: usize) -> Vec<GenerateRequest> {
    (0..n)
        .map(|i| {
            let g = i % 3;
            GenerateRequest {
                ignore_eos: true,
                ..GenerateRequest::new(
                    Namespace::tenant(g as u64 % 2),
                    prompt(g, i, 70, 90),
                    max_tokens,
                )
            }
        })
        .collect()
}

fn tokens(out: &[Generated]) -> Vec<Vec<u32>> {
    out.iter().map(|g| g.tokens.clone()).collect()
}

#[test]
fn cache_and_page_size_change_nothing_but_speed() {
    let reqs = few_shot(18, 12);
    let (base, off) = run_all(
        FakeEngine::random(4096, 1),
        SchedulerConfig {
            cache_enabled: false,
            ..checked()
        },
        reqs.clone(),
    );
    assert_eq!(off.cache.hit_tokens, 0);
    let mut hits = Vec::new();
    for page in [1, 16, 256] {
        let (out, st) = run_all(FakeEngine::random(4096, page), checked(), reqs.clone());
        assert_eq!(tokens(&out), tokens(&base), "page size {page}");
        assert!(
            st.prefill_tokens < off.prefill_tokens,
            "page size {page}: the cache saves prefill"
        );
        hits.push(out.iter().map(|g| g.usage.cached_tokens).sum::<usize>());
    }
    // Matching is token-granular: bigger pages copy, they do not lose hits.
    assert!(hits[0] > 0);
    assert_eq!(hits[1], hits[0]);
    assert_eq!(hits[2], hits[0]);
}

#[test]
fn a_pool_too_small_for_the_load_preempts_and_completes_everything() {
    let reqs: Vec<GenerateRequest> = (0..16)
        .map(|i| GenerateRequest {
            ignore_eos: true,
            ..GenerateRequest::new(Namespace::tenant(i % 2), prompt(9, i as u32, 0, 40), 24)
        })
        .collect();
    let (want, _) = run_all(FakeEngine::random(4096, 1), checked(), reqs.clone());
    for page in [1, 16] {
        let cfg = SchedulerConfig {
            decode_reserve: 0,
            ..checked()
        };
        let (out, st) = run_all(FakeEngine::random(160, page), cfg, reqs.clone());
        assert_eq!(tokens(&out), tokens(&want), "page size {page}");
        assert!(
            st.preemptions > 0,
            "page size {page}: the pool forces preemptions"
        );
    }
}

#[test]
fn long_prompts_are_prefilled_in_chunks_within_the_budget() {
    let reqs = vec![
        GenerateRequest::new(Namespace::PUBLIC, prompt(1, 1, 0, 300), 8),
        GenerateRequest::new(Namespace::PUBLIC, prompt(2, 2, 0, 20), 30),
    ];
    let (want, _) = run_all(FakeEngine::random(4096, 1), checked(), reqs.clone());
    let engine = FakeEngine::random(4096, 16);
    let record = engine.record.clone();
    let cfg = SchedulerConfig {
        max_batch_tokens: 64,
        ..checked()
    };
    let (out, _) = run_all(engine, cfg, reqs);
    assert_eq!(tokens(&out), tokens(&want));
    let r = record.lock().unwrap();
    assert!(r.max_step_tokens <= 64, "{:?}", r.step_tokens);
    assert!(r.steps >= 300 / 64, "{:?}", r.step_tokens);
}

#[test]
fn select_scores_every_choice_as_the_model_does_in_chunks_within_the_budget() {
    let favourite: Favourite = Arc::new(|seq: &[u32]| Some(seq.len() as u32 % 200 + 3));
    let p = prompt(4, 0, 0, 50);
    let choices = vec![vec![7], vec![9, 10, 11], prompt(5, 5, 0, 70), vec![53, 54]];
    // Rows on the host, and kept "on the device" as the paged CUDA graph
    // keeps them, scored through `ForwardOutput::log_probs`.
    for (page, device) in [(1, false), (16, false), (1, true), (16, true)] {
        let mut engine = FakeEngine::new(4096, page, favourite.clone());
        engine.device_scores = device;
        let vocab = engine.vocab();
        let record = engine.record.clone();
        let s = Scheduler::start(
            engine,
            SchedulerConfig {
                max_batch_tokens: 32,
                ..checked()
            },
        );
        let scores = s
            .blocking_score(ScoreRequest {
                namespace: Namespace::tenant(1),
                prompt: p.clone(),
                choices: choices.clone(),
            })
            .unwrap();
        for (c, got) in choices.iter().zip(&scores) {
            let mut seq = p.clone();
            let mut want = 0.0;
            for &t in c {
                want += log_prob(&FakeEngine::logits_after(vocab, &favourite, &seq), t);
                seq.push(t);
            }
            assert!(
                (got.logprob - want).abs() < 1e-3,
                "page {page}, device {device}: {} vs {want}",
                got.logprob
            );
            assert_eq!(got.tokens as usize, c.len());
        }
        assert!(record.lock().unwrap().max_step_tokens <= 32);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let a = rt.block_on(s.audit()).unwrap();
        assert_eq!((a.private_slots, a.locked_slots), (0, 0));
    }
}

/// A model that continues any prompt of `prompt_len` tokens with `script`.
fn scripted(prompt_len: usize, script: Vec<u32>) -> Favourite {
    Arc::new(move |seq: &[u32]| script.get(seq.len().checked_sub(prompt_len)?).copied())
}

/// Runs one request and returns its deltas and the Done event's text, tail
/// and finish.
fn stream(engine: FakeEngine, req: GenerateRequest) -> (Vec<String>, String, String, Finish) {
    let s = Scheduler::start(engine, checked());
    let mut st = s.generate(req).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut deltas = Vec::new();
    loop {
        match rt.block_on(st.next()).expect("an ending event") {
            Event::Token { text, .. } => deltas.push(text),
            Event::Done {
                text, tail, finish, ..
            } => return (deltas, text, tail, finish),
            Event::Error(e) => panic!("{e}"),
        }
    }
}

#[test]
fn stop_strings_are_found_across_token_boundaries_and_never_streamed() {
    let tok = fake::tokenizer();
    let script = tok.encode("alpha beta STOP gamma delta").unwrap();
    assert!(script.len() > 4, "the script spans several tokens");
    let p = prompt(6, 0, 0, 12);
    let go = |stops: &[&str]| {
        let engine = FakeEngine::new(1024, 1, scripted(p.len(), script.clone()));
        let req = GenerateRequest {
            stop_strings: stops.iter().map(|s| s.to_string()).collect(),
            ..GenerateRequest::new(Namespace::PUBLIC, p.clone(), script.len())
        };
        stream(engine, req)
    };
    for stop in ["a ST", "P g", "STOP", "delta"] {
        let (deltas, text, tail, finish) = go(&[stop, "unrelated"]);
        let want =
            &"alpha beta STOP gamma delta"[.."alpha beta STOP gamma delta".find(stop).unwrap()];
        assert_eq!(text, want, "stop {stop:?}");
        let typed = Finish::StopString {
            index: 0,
            offset: want.len(),
        };
        assert_eq!(finish, typed);
        assert_eq!(
            deltas.concat() + &tail,
            text,
            "deltas are final: stop {stop:?}"
        );
    }
    // A stop string's prefix at the end is held back, then flushed as the tail.
    let (deltas, text, tail, finish) = go(&["delta!"]);
    assert_eq!(text, "alpha beta STOP gamma delta");
    assert_eq!(finish, Finish::Length);
    assert!(tail.ends_with("delta"), "{tail:?}");
    assert_eq!(deltas.concat() + &tail, text);
}

#[test]
fn jump_forward_appends_forced_text_without_steps_of_its_own() {
    let regex = r#"\{"name": "[a-z]{1,6}", "age": [1-9][0-9]?, "city": "[a-z]{1,6}"\}"#;
    let run = |jump_forward: bool| {
        let engine = FakeEngine::random(2048, 1);
        let record = engine.record.clone();
        let s = Scheduler::start(
            engine,
            SchedulerConfig {
                jump_forward,
                ..checked()
            },
        );
        let req = GenerateRequest {
            constraint: Some(Constraint::Regex(regex.into())),
            ..GenerateRequest::new(Namespace::PUBLIC, prompt(7, 0, 0, 10), 200)
        };
        let g = s.generate(req).unwrap().blocking_collect().unwrap();
        let steps = record.lock().unwrap().steps;
        (g, steps, s.stats().jump_forward_tokens)
    };
    let (on, steps_on, jumped) = run(true);
    let (off, steps_off, none) = run(false);
    let re = regex::Regex::new(&format!("^{regex}$")).unwrap();
    for g in [&on, &off] {
        assert!(re.is_match(&g.text), "{:?}", g.text);
        assert_eq!(g.finish, Finish::ConstraintComplete);
    }
    assert!(jumped > 0 && none == 0);
    assert!(steps_on < steps_off, "{steps_on} vs {steps_off}");
}

#[test]
fn penalties_see_the_tokens_jump_forward_forces() {
    // After a sampled "q" the constraint forces "xyz"; then the model's
    // favourite is whatever token came last (a forced one). A presence
    // penalty must keep the sampler off it: the forced tokens were observed.
    let tok = fake::tokenizer();
    let q = tok.encode("q").unwrap()[0];
    let p = prompt(8, 0, 0, 10);
    let plen = p.len();
    let favourite: Favourite = Arc::new(move |seq: &[u32]| {
        if seq.len() == plen {
            Some(q)
        } else {
            seq.last().copied()
        }
    });
    let run = |presence_penalty: f32| {
        let s = Scheduler::start(FakeEngine::new(1024, 1, favourite.clone()), checked());
        let mut req = GenerateRequest {
            constraint: Some(Constraint::Regex("qxyz[a-z]{1,3}".into())),
            ..GenerateRequest::new(Namespace::PUBLIC, p.clone(), 10)
        };
        req.sampling.presence_penalty = presence_penalty;
        let g = s.generate(req).unwrap().blocking_collect().unwrap();
        assert!(s.stats().jump_forward_tokens > 0 || g.tokens.len() > 1);
        g
    };
    for (penalty, repeats) in [(0.0, true), (100.0, false)] {
        let g = run(penalty);
        assert!(g.text.starts_with("qxyz"), "{:?}", g.text);
        // The first token after "qxyz".
        let k = (1..=g.tokens.len())
            .find(|&k| tok.decode(&g.tokens[..k]) == "qxyz")
            .expect("\"qxyz\" ends on a token boundary");
        assert!(k < g.tokens.len(), "{:?}", g.text);
        assert_eq!(
            g.tokens[k] == g.tokens[k - 1],
            repeats,
            "penalty {penalty}: {:?}",
            g.text
        );
    }
}

#[test]
fn a_cancelled_request_frees_everything() {
    let s = Scheduler::start(FakeEngine::random(1024, 16), checked());
    let req = GenerateRequest {
        ignore_eos: true,
        ..GenerateRequest::new(Namespace::tenant(3), prompt(1, 2, 0, 40), 500)
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut st = s.generate(req).unwrap();
    for _ in 0..3 {
        assert!(matches!(rt.block_on(st.next()), Some(Event::Token { .. })));
    }
    drop(st);
    // The scheduler notices at its next step; ask until it has.
    for _ in 0..200 {
        let a = rt.block_on(s.audit()).unwrap();
        assert_eq!(a.invariants, Ok(()));
        if a.private_slots == 0 && a.locked_slots == 0 {
            assert_eq!(s.stats().cancelled, 1);
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("the cancelled request still holds KV");
}

#[test]
fn requests_that_cannot_fit_are_refused_with_their_size() {
    let s = Scheduler::start(FakeEngine::random(64, 16), checked());
    let r = s
        .generate(GenerateRequest::new(
            Namespace::PUBLIC,
            prompt(1, 1, 0, 80),
            4,
        ))
        .unwrap()
        .blocking_collect();
    assert!(
        matches!(
            r,
            Err(crate::RequestError::TooLarge {
                needed: 81,
                pool: 64
            })
        ),
        "{r:?}"
    );
}

#[test]
fn a_request_that_fails_the_engine_fails_alone() {
    let good: Vec<GenerateRequest> = (0..6)
        .map(|i| GenerateRequest {
            ignore_eos: true,
            ..GenerateRequest::new(Namespace::tenant(i % 2), prompt(3, i as u32, 20, 30), 6)
        })
        .collect();
    let (want, _) = run_all(FakeEngine::random(2048, 1), checked(), good.clone());
    let mut engine = FakeEngine::random(2048, 1);
    engine.poison = Some(2);
    let s = Scheduler::start(engine, checked());
    // The bad request is in the middle of the same steps as the good ones.
    let mut streams: Vec<_> = good[..3]
        .iter()
        .map(|r| s.generate(r.clone()).unwrap())
        .collect();
    let bad = s
        .generate(GenerateRequest::new(Namespace::tenant(9), vec![2, 4, 5], 4))
        .unwrap();
    streams.extend(good[3..].iter().map(|r| s.generate(r.clone()).unwrap()));
    let got: Vec<Generated> = streams
        .into_iter()
        .map(|st| st.blocking_collect().unwrap())
        .collect();
    assert_eq!(tokens(&got), tokens(&want));
    let bad = bad.blocking_collect();
    assert!(
        matches!(bad, Err(crate::RequestError::Engine(_))),
        "{bad:?}"
    );
    assert_eq!(s.stats().engine_failures, 1);
}

#[test]
fn draws_from_device_candidates_equal_draws_from_whole_rows() {
    // The same seeded requests, once with rows on the host and once served
    // as the paged CUDA graph serves them (16 candidates, whole rows fetched
    // only for draws that land beyond them): the same tokens, and both ways
    // out of the candidates taken.
    let sampled = |top_k: usize, top_p: f32| -> Vec<GenerateRequest> {
        few_shot(9, 10)
            .into_iter()
            .enumerate()
            .map(|(i, mut r)| {
                r.sampling = arbor_engine::SamplingParams {
                    temperature: 0.9,
                    top_k,
                    top_p,
                    seed: i as u64,
                    ..Default::default()
                };
                r
            })
            .collect()
    };
    for (top_k, top_p) in [(0, 1.0), (8, 1.0), (0, 0.1)] {
        let (rows, _) = run_all(
            FakeEngine::random(4096, 1),
            checked(),
            sampled(top_k, top_p),
        );
        let mut device = FakeEngine::random(4096, 1);
        device.candidates = Some(16);
        let (cands, stats) = run_all(device, checked(), sampled(top_k, top_p));
        assert_eq!(
            tokens(&rows),
            tokens(&cands),
            "top_k {top_k}, top_p {top_p}"
        );
        assert_eq!(stats.device_draws, 90, "every token drawn from candidates");
        if top_k == 0 && top_p == 1.0 {
            // The fake's rows are nearly flat over 512 tokens.
            assert!(stats.tail_rows_fetched > 45, "{stats:?}");
        } else {
            assert_eq!(stats.tail_rows_fetched, 0, "{stats:?}");
        }
    }
}
