//! The engine on the tiny random model, checked token for token against the
//! float64 NumPy reference: alone, batched, chunked, with forked prefixes,
//! with every logit row, and through hand-assigned pool slots.

use arbor_engine::engine::{BatchEntry, Engine, Logits};
use arbor_engine::{Preset, WeightDtype};
use arbor_export::export_random;
use arbor_tests::sequence::Sequences;
use arbor_tests::{
    Case, RefResult, Rows, argmax, check_steps, compare_greedy, compare_logits, compare_token,
    greedy_generate, reference, run_checked, scratch_dir, test_options,
};
use std::path::PathBuf;
use std::sync::OnceLock;

/// Greedy tokens checked per prompt.
const STEPS: usize = 32;

struct Fixture {
    dir: PathBuf,
    prompts: Vec<Vec<u32>>,
    refs: Vec<RefResult>,
    /// A shared prefix and two suffixes; `fork_refs[i]` is the reference of
    /// `prefix + suffixes[i]`.
    prefix: Vec<u32>,
    suffixes: [Vec<u32>; 2],
    fork_refs: Vec<RefResult>,
    /// A prompt long enough that its prefill is run apart from short rows
    /// (the engine's attention groups), and its reference.
    very_long: Vec<u32>,
    very_long_ref: RefResult,
}

impl Fixture {
    fn cases(&self) -> Vec<Case<'_>> {
        self.prompts
            .iter()
            .zip(&self.refs)
            .map(|(p, r)| Case {
                prompt: p,
                reference: r,
            })
            .collect()
    }

    fn engine(&self) -> Engine {
        Engine::open(&self.dir, &test_options()).expect("open the tiny model")
    }
}

/// Exported and run through the reference once per test binary.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = scratch_dir("tiny");
        export_random(Preset::Tiny, 7, &dir, WeightDtype::F32).expect("export the tiny model");
        let engine = Engine::open(&dir, &test_options()).expect("open the tiny model");
        let tok = engine.tokenizer();
        let vocab = engine.config().vocab_size as u64;
        let enc = |text: &str| -> Vec<u32> {
            let mut ids: Vec<u32> = tok.bos_id().into_iter().collect();
            ids.extend(tok.encode(text).expect("encode"));
            ids
        };
        let long = enc("Once upon a time, in a village at the edge of a great forest, there lived an old clockmaker \
             who repaired every clock in the valley and never asked for payment.");
        assert!(long.len() >= 40, "the long prompt has only {} tokens", long.len());
        // Ids the tokenizer may never produce still have embedding rows.
        let mut x = 0x2545f4914f6cdd1du64;
        let scattered: Vec<u32> = (0..23)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % vocab) as u32
            })
            .collect();
        let prompts = vec![
            tok.bos_id().map(|b| vec![b]).unwrap_or_else(|| vec![2]),
            enc("Once upon a time"),
            enc("Question: What is the capital of France? Answer:"),
            long.clone(),
            scattered,
            enc("{\"name\": \""),
        ];
        let suffixes = [tok.encode(" Then the fox ran away.").unwrap(), tok.encode(" The end.").unwrap()];
        assert_ne!(suffixes[0].len(), suffixes[1].len(), "suffixes of different lengths make the batch ragged");
        let very_long: Vec<u32> = long.iter().cycle().take(320).copied().collect();
        let mut all = prompts.clone();
        all.extend(suffixes.iter().map(|s| [long.as_slice(), s].concat()));
        all.push(very_long.clone());
        let mut refs = reference(&dir.join("hf"), &all, STEPS).expect("reference forward pass");
        let very_long_ref = refs.pop().expect("the very long prompt's reference");
        let fork_refs = refs.split_off(prompts.len());
        Fixture { dir, prompts, refs, prefix: long, suffixes, fork_refs, very_long, very_long_ref }
    })
}

#[test]
fn each_prompt_alone() {
    let f = fixture();
    let mut engine = f.engine();
    for (i, case) in f.cases().into_iter().enumerate() {
        run_checked(&mut engine, &[case], usize::MAX, Rows::Last, STEPS)
            .unwrap_or_else(|e| panic!("prompt {i}: {e}"));
        let got = greedy_generate(&mut engine, &[case.prompt], STEPS, 512).unwrap();
        compare_greedy(&got, &[case], &format!("generate, prompt {i}")).unwrap();
    }
}

#[test]
fn all_prompts_in_one_ragged_batch() {
    let f = fixture();
    let mut engine = f.engine();
    let cases = f.cases();
    let before = engine.stats().forward_passes;
    run_checked(&mut engine, &cases, usize::MAX, Rows::Last, STEPS).unwrap();
    // One pass per step for the whole batch, else it was not batched.
    assert_eq!(engine.stats().forward_passes - before, STEPS as u64);
    let prompts: Vec<&[u32]> = f.prompts.iter().map(|p| p.as_slice()).collect();
    let got = greedy_generate(&mut engine, &prompts, STEPS, 512).unwrap();
    compare_greedy(&got, &cases, "generate, batched").unwrap();
}

#[test]
fn a_long_prefill_runs_apart_from_short_rows_and_stays_exact() {
    // Padded together, every short row would be padded to the long
    // prompt's 320 queries; the engine runs them as separate attention
    // groups within the step and merges their logits back in batch order.
    let f = fixture();
    let mut engine = f.engine();
    let mut cases = f.cases();
    cases.insert(
        2,
        Case {
            prompt: &f.very_long,
            reference: &f.very_long_ref,
        },
    );
    let before = engine.stats().forward_passes;
    run_checked(&mut engine, &cases, usize::MAX, Rows::Last, STEPS).unwrap();
    let passes = engine.stats().forward_passes - before;
    assert!(
        passes > STEPS as u64,
        "the prefill step was not split: {passes} passes for {STEPS} steps"
    );
}

#[test]
fn a_step_of_more_tokens_than_the_model_has_positions() {
    // Eight 320-token prefills are 2,560 new tokens in one pass, past the
    // tiny model's 2,048 positions: the rotary operator sees them as rows
    // of one token each, so the step's size is bounded by the token budget,
    // not by the rotary table.
    let f = fixture();
    let mut engine = f.engine();
    let case = Case {
        prompt: &f.very_long,
        reference: &f.very_long_ref,
    };
    let cases = vec![case; 8];
    let total: usize = cases.iter().map(|c| c.prompt.len()).sum();
    assert!(total > engine.max_context(), "{total} tokens");
    run_checked(&mut engine, &cases, usize::MAX, Rows::Last, STEPS).unwrap();
}

#[test]
fn chunked_prefill() {
    let f = fixture();
    let mut engine = f.engine();
    let cases = f.cases();
    for chunk in [3, 7] {
        // Batched, so short prompts decode in the same passes as long ones prefill.
        run_checked(&mut engine, &cases, chunk, Rows::Last, STEPS)
            .unwrap_or_else(|e| panic!("chunk {chunk}: {e}"));
        let long = cases[3];
        run_checked(&mut engine, &[long], chunk, Rows::Last, STEPS)
            .unwrap_or_else(|e| panic!("long prompt alone, chunk {chunk}: {e}"));
    }
    let prompts: Vec<&[u32]> = f.prompts.iter().map(|p| p.as_slice()).collect();
    let got = greedy_generate(&mut engine, &prompts, STEPS, 3).unwrap();
    compare_greedy(&got, &cases, "generate, chunk 3").unwrap();
}

#[test]
fn all_logit_rows() {
    let f = fixture();
    let mut engine = f.engine();
    let cases = f.cases();
    run_checked(&mut engine, &cases, usize::MAX, Rows::All, STEPS).unwrap();
    run_checked(&mut engine, &cases, 7, Rows::All, STEPS)
        .unwrap_or_else(|e| panic!("chunk 7: {e}"));
}

#[test]
fn forked_sequences_share_the_prefix() {
    let f = fixture();
    let mut engine = f.engine();
    let slots = engine.kv_slots();
    let mut seqs = Sequences::new(slots);
    let p = f.prefix.len();
    let (sa, sb) = (&f.suffixes[0], &f.suffixes[1]);

    let root = seqs.create(&f.prefix);
    let prefix_case = Case {
        prompt: &f.prefix,
        reference: &f.fork_refs[0],
    };
    let out = seqs
        .step(
            &mut engine,
            &[arbor_tests::sequence::StepItem {
                seq: root,
                max_tokens: usize::MAX,
                logits: Logits::Last,
            }],
        )
        .unwrap();
    // The prefix is a prefix of both references, so row p-1 is its last logits.
    compare_logits(
        out.last(0).unwrap(),
        &prefix_case.reference.logits[p - 1],
        "prefix",
    )
    .unwrap();
    assert_eq!(seqs.free_slots(), slots - p);

    let fork = seqs.fork(root).unwrap();
    assert_eq!(
        seqs.free_slots(),
        slots - p,
        "a fork must share the prefix's slots, not copy them"
    );
    seqs.extend(root, sa).unwrap();
    seqs.extend(fork, sb).unwrap();

    let passes = engine.stats();
    let pa = [f.prefix.as_slice(), sa].concat();
    let pb = [f.prefix.as_slice(), sb].concat();
    let cases = [
        Case {
            prompt: &pa,
            reference: &f.fork_refs[0],
        },
        Case {
            prompt: &pb,
            reference: &f.fork_refs[1],
        },
    ];
    let mut done = [p, p];
    let mut generated = [Vec::new(), Vec::new()];
    check_steps(
        &mut engine,
        &mut seqs,
        &[root, fork],
        &cases,
        &mut done,
        &mut generated,
        usize::MAX,
        Rows::All,
        STEPS,
    )
    .unwrap();

    // Nothing of the prefix was computed again.
    let processed = engine.stats().tokens_processed - passes.tokens_processed;
    assert_eq!(processed as usize, sa.len() + sb.len() + 2 * (STEPS - 1));
    let own_a = sa.len() + STEPS - 1;
    let own_b = sb.len() + STEPS - 1;
    assert_eq!(seqs.free_slots(), slots - p - own_a - own_b);
    seqs.free(root).unwrap();
    assert_eq!(
        seqs.free_slots(),
        slots - p - own_b,
        "the fork still holds the prefix"
    );
    seqs.free(fork).unwrap();
    assert_eq!(seqs.free_slots(), slots);
}

#[test]
fn shared_prefix_through_hand_assigned_slots() {
    let f = fixture();
    let mut engine = f.engine();
    let slots = engine.kv_slots() as u32;
    let p = f.prefix.len();
    // Scattered, non-contiguous slots: 37 is coprime with the pool size, so
    // these are distinct.
    let prefix_slots: Vec<u32> = (0..p as u32).map(|i| (i * 37 + 11) % slots).collect();
    assert!(slots.is_power_of_two());
    let out = engine
        .forward(&[BatchEntry {
            tokens: &f.prefix,
            history: &[],
            new_slots: &prefix_slots,
            logits: Logits::Last,
        }])
        .unwrap();
    compare_logits(
        out.last(0).unwrap(),
        &f.fork_refs[0].logits[p - 1],
        "prefix",
    )
    .unwrap();

    // Both continuations read the same prefix slots; a third, unrelated
    // prompt without history rides in the same batch.
    let taken: std::collections::HashSet<u32> = prefix_slots.iter().copied().collect();
    let mut free = (0..slots).rev().filter(|s| !taken.contains(s));
    let mut own: Vec<Vec<u32>> = f
        .suffixes
        .iter()
        .map(|s| free.by_ref().take(s.len()).collect())
        .collect();
    let other = &f.prompts[2];
    let other_slots: Vec<u32> = free.by_ref().take(other.len()).collect();
    let hist: Vec<Vec<u32>> = own.iter().map(|_| prefix_slots.clone()).collect();
    let out = engine
        .forward(&[
            BatchEntry {
                tokens: &f.suffixes[0],
                history: &hist[0],
                new_slots: &own[0],
                logits: Logits::All,
            },
            BatchEntry {
                tokens: other,
                history: &[],
                new_slots: &other_slots,
                logits: Logits::Last,
            },
            BatchEntry {
                tokens: &f.suffixes[1],
                history: &hist[1],
                new_slots: &own[1],
                logits: Logits::All,
            },
        ])
        .unwrap();
    compare_logits(
        out.last(1).unwrap(),
        &f.refs[2].logits[other.len() - 1],
        "unrelated prompt",
    )
    .unwrap();
    let mut next = [0u32; 2];
    for (k, entry) in [0, 2].into_iter().enumerate() {
        let rows: Vec<&[f32]> = out.rows(entry).collect();
        assert_eq!(rows.len(), f.suffixes[k].len());
        for (j, row) in rows.iter().enumerate() {
            compare_logits(
                row,
                &f.fork_refs[k].logits[p + j],
                &format!("suffix {k}, row {j}"),
            )
            .unwrap();
        }
        next[k] = argmax(rows.last().unwrap());
        compare_token(next[k], &f.fork_refs[k], 0, &format!("suffix {k}")).unwrap();
    }

    for step in 1..STEPS {
        let hists: Vec<Vec<u32>> = own
            .iter()
            .map(|o| [prefix_slots.as_slice(), o].concat())
            .collect();
        let new: Vec<[u32; 1]> = (0..2).map(|_| [free.next().unwrap()]).collect();
        let toks = [[next[0]], [next[1]]];
        let out = engine
            .forward(&[
                BatchEntry {
                    tokens: &toks[0],
                    history: &hists[0],
                    new_slots: &new[0],
                    logits: Logits::Last,
                },
                BatchEntry {
                    tokens: &toks[1],
                    history: &hists[1],
                    new_slots: &new[1],
                    logits: Logits::Last,
                },
            ])
            .unwrap();
        for k in 0..2 {
            let row = out.last(k).unwrap();
            let pos = p + f.suffixes[k].len() + step - 1;
            compare_logits(
                row,
                &f.fork_refs[k].logits[pos],
                &format!("suffix {k}, decode step {step}"),
            )
            .unwrap();
            next[k] = argmax(row);
            compare_token(next[k], &f.fork_refs[k], step, &format!("suffix {k}")).unwrap();
            own[k].push(new[k][0]);
        }
    }
}

/// The comparisons above must be able to fail: the engine checked against
/// the reference of a different prompt, or of the same prompt with one token
/// changed, is rejected.
#[test]
fn checks_reject_a_wrong_reference() {
    let f = fixture();
    let mut engine = f.engine();
    let swapped = Case {
        prompt: &f.prompts[1],
        reference: &f.refs[2],
    };
    assert!(run_checked(&mut engine, &[swapped], usize::MAX, Rows::Last, STEPS).is_err());

    let mut changed = f.prompts[3].clone();
    let at = changed.len() / 2;
    changed[at] = (changed[at] + 1) % engine.config().vocab_size as u32;
    let case = Case {
        prompt: &changed,
        reference: &f.refs[3],
    };
    let e = run_checked(&mut engine, &[case], usize::MAX, Rows::All, STEPS).unwrap_err();
    // Rows before the change still agree; the first one after it must not.
    assert!(e.contains(&format!("position {at}")), "{e}");
    let got = greedy_generate(&mut engine, &[&f.prompts[2]], STEPS, 512).unwrap();
    assert!(
        compare_greedy(
            &got,
            &[Case {
                prompt: &f.prompts[2],
                reference: &f.refs[5]
            }],
            "swapped"
        )
        .is_err()
    );
}
