//! The paged CUDA graph in f16 and bf16, checked against the float64
//! reference of the same (f32) checkpoint.
//!
//! Teacher-forced along the reference's greedy path of 32 tokens: at every
//! position the engine's logits stay within half-precision tolerance of the
//! reference's, and its top token is the reference's wherever the
//! reference's top-two margin exceeds twice that tolerance (below it a near
//! tie may go either way in half precision). Alone, in one ragged batch,
//! prefilled in chunks that cross a page, and through forks that share a
//! full page and copy a partly shared one.
//!
//! CUDA only (`PagedAttention` has no CPU kernel): without
//! `ARBOR_TEST_DEVICE=cuda:N` every test says so and passes.

use arbor_engine::engine::{BatchEntry, Engine, EngineOptions, Logits};
use arbor_engine::format::CUDA_BLOCK;
use arbor_engine::{Device, Preset, WeightDtype};
use arbor_export::{export_from, write_random_checkpoint};
use arbor_tests::{RefResult, reference, scratch_dir, test_device, test_options};
use std::path::PathBuf;
use std::sync::OnceLock;

/// Greedy tokens per prompt.
const STEPS: usize = 32;

/// Largest logit difference allowed against the f64 reference: weights
/// rounded to the dtype, activations computed in it.
fn tolerance(dtype: WeightDtype) -> f64 {
    match dtype {
        WeightDtype::F16 => 0.05,
        WeightDtype::Bf16 => 0.25,
        WeightDtype::F32 => 1e-3,
    }
}

struct Fixture {
    hf: PathBuf,
    prompts: Vec<Vec<u32>>,
    /// Reference of each prompt's teacher-forced sequence.
    refs: Vec<RefResult>,
    /// 300 tokens: one full page and 44 tokens of a second.
    prefix: Vec<u32>,
    suffixes: [Vec<u32>; 2],
    fork_refs: Vec<RefResult>,
}

fn on_cuda() -> bool {
    if matches!(test_device(), Device::Cuda(_)) {
        return true;
    }
    eprintln!("skipped: the paged graph runs on CUDA only (set ARBOR_TEST_DEVICE=cuda:N)");
    false
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = scratch_dir("half");
        let hf = dir.join("hf");
        write_random_checkpoint(Preset::Tiny, 11, WeightDtype::F32, &hf).expect("checkpoint");
        let vocab = Preset::Tiny.config().vocab_size as u64;
        let mut x = 0x9e3779b97f4a7c15u64;
        let mut ids = |n: usize| -> Vec<u32> {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % vocab) as u32
                })
                .collect()
        };
        // Lengths around page edges: 1, short, one token under and over a
        // page, and a long prompt over two pages.
        let prompts: Vec<Vec<u32>> = [1, 7, 40, CUDA_BLOCK - 1, CUDA_BLOCK + 1, 530]
            .iter()
            .map(|&n| ids(n))
            .collect();
        let prefix = ids(300);
        let suffixes = [ids(9), ids(23)];
        let mut all = prompts.clone();
        all.extend(suffixes.iter().map(|s| [prefix.as_slice(), s].concat()));
        let mut refs = reference(&hf, &all, STEPS).expect("reference forward pass");
        let fork_refs = refs.split_off(prompts.len());
        Fixture {
            hf,
            prompts,
            refs,
            prefix,
            suffixes,
            fork_refs,
        }
    })
}

/// The fixture's checkpoint exported in `dtype` and opened on the test device.
fn engine(dtype: WeightDtype) -> Engine {
    let f = fixture();
    let out = f.hf.parent().unwrap().join(format!("{dtype:?}"));
    if !out.join("arbor.json").exists() {
        export_from(&f.hf, &out, dtype).expect("export");
    }
    let opts = EngineOptions {
        kv_slots: 64 * CUDA_BLOCK,
        ..test_options()
    };
    let e = Engine::open(&out, &opts).expect("open");
    assert_eq!(e.page_size(), CUDA_BLOCK, "the paged graph is in use");
    e
}

/// Slots of positions `0..len` in `pages`.
fn slots(pages: &[u32], len: usize) -> Vec<u32> {
    let p = CUDA_BLOCK as u32;
    (0..len as u32)
        .map(|i| pages[(i / p) as usize] * p + i % p)
        .collect()
}

/// Slots for each prompt and `extra` tokens after it, in three pages of its
/// own.
fn prompt_slots(prompts: &[Vec<u32>], extra: usize) -> Vec<Vec<u32>> {
    let per = 3;
    (0..prompts.len())
        .map(|i| {
            let pages: Vec<u32> = (0..per).map(|j| (i * per + j) as u32).collect();
            slots(&pages, prompts[i].len() + extra)
        })
        .collect()
}

/// The teacher-forced tokens of a case: prompt, then the greedy path but
/// its last token.
fn forced(prompt: &[u32], r: &RefResult) -> Vec<u32> {
    [prompt, &r.greedy[..STEPS - 1]].concat()
}

/// Worst logit error so far and the check of one row.
#[derive(Default)]
struct Check {
    worst: f64,
    rows: usize,
    tokens_checked: usize,
}

impl Check {
    /// Row `got` predicts position `pos + 1` of a case whose reference rows
    /// are `want`.
    fn row(&mut self, got: &[f32], want: &[f64], tol: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: vocabulary size");
        let mut worst = 0f64;
        for (&g, &w) in got.iter().zip(want) {
            let d = (g as f64 - w).abs();
            worst = worst.max(if d.is_nan() { f64::INFINITY } else { d });
        }
        assert!(
            worst <= tol,
            "{what}: logits differ from the reference by {worst:.3e}, tolerance {tol:e}"
        );
        self.worst = self.worst.max(worst);
        self.rows += 1;
        let (mut best, mut second) = (0usize, usize::MAX);
        for i in 1..want.len() {
            if want[i] > want[best] {
                second = best;
                best = i;
            } else if second == usize::MAX || want[i] > want[second] {
                second = i;
            }
        }
        if want[best] - want[second] > 2.0 * tol {
            let top = (0..got.len()).fold(0, |b, i| if got[i] > got[b] { i } else { b });
            assert_eq!(
                top,
                best,
                "{what}: top token {top}, reference {best} (margin {:.3e})",
                want[best] - want[second]
            );
            self.tokens_checked += 1;
        }
    }
}

/// Runs `cases` (tokens, reference rows) batched, prefilled in chunks of
/// at most `chunk` tokens, every sequence in its own pages, and checks
/// every logit row.
fn run_cases(dtype: WeightDtype, cases: &[(Vec<u32>, &RefResult)], chunk: usize, what: &str) {
    let mut e = engine(dtype);
    let tol = tolerance(dtype);
    let per = cases
        .iter()
        .map(|(t, _)| t.len().div_ceil(CUDA_BLOCK))
        .max()
        .unwrap();
    let all: Vec<Vec<u32>> = (0..cases.len())
        .map(|i| {
            let pages: Vec<u32> = (0..per).map(|j| (i * per + j) as u32).collect();
            slots(&pages, cases[i].0.len())
        })
        .collect();
    let mut done = vec![0usize; cases.len()];
    let mut check = Check::default();
    while done.iter().zip(cases).any(|(&d, (t, _))| d < t.len()) {
        let live: Vec<usize> = (0..cases.len())
            .filter(|&i| done[i] < cases[i].0.len())
            .collect();
        let batch: Vec<BatchEntry> = live
            .iter()
            .map(|&i| {
                let end = (done[i] + chunk).min(cases[i].0.len());
                BatchEntry {
                    tokens: &cases[i].0[done[i]..end],
                    history: &all[i][..done[i]],
                    new_slots: &all[i][done[i]..end],
                    logits: Logits::All,
                }
            })
            .collect();
        let out = e
            .forward(&batch)
            .unwrap_or_else(|err| panic!("{what}: {err:#}"));
        for (bi, &i) in live.iter().enumerate() {
            for (k, row) in out.rows(bi).enumerate() {
                let pos = done[i] + k;
                check.row(
                    row,
                    &cases[i].1.logits[pos],
                    tol,
                    &format!("{what}, case {i}, position {pos}"),
                );
            }
            done[i] = (done[i] + chunk).min(cases[i].0.len());
        }
    }
    eprintln!(
        "{what} ({dtype:?}): {} rows, worst logit error {:.3e} (tolerance {tol:e}), {} top tokens checked",
        check.rows, check.worst, check.tokens_checked
    );
    assert!(
        check.tokens_checked > 0,
        "{what}: no position had a clear top token"
    );
}

fn cases() -> Vec<(Vec<u32>, &'static RefResult)> {
    let f = fixture();
    f.prompts
        .iter()
        .zip(&f.refs)
        .map(|(p, r)| (forced(p, r), r))
        .collect()
}

#[test]
fn each_prompt_alone() {
    if !on_cuda() {
        return;
    }
    for dtype in [WeightDtype::F16, WeightDtype::Bf16] {
        for (i, c) in cases().into_iter().enumerate() {
            run_cases(dtype, &[c], usize::MAX, &format!("prompt {i} alone"));
        }
    }
}

#[test]
fn all_prompts_in_one_ragged_batch() {
    if !on_cuda() {
        return;
    }
    for dtype in [WeightDtype::F16, WeightDtype::Bf16] {
        run_cases(dtype, &cases(), usize::MAX, "one ragged batch");
    }
}

#[test]
fn chunked_prefill_across_pages() {
    if !on_cuda() {
        return;
    }
    for dtype in [WeightDtype::F16, WeightDtype::Bf16] {
        run_cases(dtype, &cases(), 100, "chunks of 100");
    }
}

#[test]
fn forks_share_a_full_page_and_copy_a_partial_one() {
    if !on_cuda() {
        return;
    }
    let f = fixture();
    for dtype in [WeightDtype::F16, WeightDtype::Bf16] {
        let tol = tolerance(dtype);
        let mut e = engine(dtype);
        // The prefix in pages 0 and 1 (256 + 44 tokens).
        let prefix_slots = slots(&[0, 1], f.prefix.len());
        e.forward(&[BatchEntry {
            tokens: &f.prefix,
            history: &[],
            new_slots: &prefix_slots,
            logits: Logits::None,
        }])
        .unwrap();
        // Each child shares page 0 and copies page 1's 44 tokens into a page
        // of its own (2 and 3), as the KV manager's copy on write does.
        let partial = f.prefix.len() - CUDA_BLOCK;
        let mut copies = Vec::new();
        let mut child_slots = Vec::new();
        for c in 0..2u32 {
            let own = 2 + c;
            for k in 0..partial as u32 {
                copies.push((CUDA_BLOCK as u32 + k, own * CUDA_BLOCK as u32 + k));
            }
            child_slots.push(slots(
                &[0, own],
                f.prefix.len() + f.suffixes[c as usize].len() + STEPS,
            ));
        }
        e.copy_slots(&copies).unwrap();
        let tails: Vec<Vec<u32>> = (0..2)
            .map(|c| {
                [
                    f.suffixes[c].as_slice(),
                    &f.fork_refs[c].greedy[..STEPS - 1],
                ]
                .concat()
            })
            .collect();
        let n = f.prefix.len();
        let batch: Vec<BatchEntry> = (0..2)
            .map(|c| BatchEntry {
                tokens: &tails[c],
                history: &child_slots[c][..n],
                new_slots: &child_slots[c][n..n + tails[c].len()],
                logits: Logits::All,
            })
            .collect();
        let out = e.forward(&batch).unwrap();
        let mut check = Check::default();
        for c in 0..2 {
            for (k, row) in out.rows(c).enumerate() {
                check.row(
                    row,
                    &f.fork_refs[c].logits[n + k],
                    tol,
                    &format!("fork {c}, position {}", n + k),
                );
            }
        }
        eprintln!(
            "forks ({dtype:?}): {} rows, worst logit error {:.3e}, {} top tokens checked",
            check.rows, check.worst, check.tokens_checked
        );
        assert!(check.tokens_checked > 0);
    }
}

#[test]
fn greedy_rows_return_the_device_arg_max() {
    if !on_cuda() {
        return;
    }
    let f = fixture();
    for dtype in [WeightDtype::F16, WeightDtype::Bf16] {
        let tol = tolerance(dtype);
        let mut e = engine(dtype);
        let all = prompt_slots(&f.prompts, STEPS);
        let forced: Vec<Vec<u32>> = f
            .prompts
            .iter()
            .zip(&f.refs)
            .map(|(p, r)| forced(p, r))
            .collect();
        let mut checked = 0;
        // The prompts, then each greedy step teacher-forced, every row
        // asking for its arg max only: only ids come back.
        for step in 0..STEPS {
            let batch: Vec<BatchEntry> = (0..f.prompts.len())
                .map(|i| {
                    let (from, to) = match step {
                        0 => (0, f.prompts[i].len()),
                        _ => (f.prompts[i].len() + step - 1, f.prompts[i].len() + step),
                    };
                    BatchEntry {
                        tokens: &forced[i][from..to],
                        history: &all[i][..from],
                        new_slots: &all[i][from..to],
                        logits: Logits::Greedy,
                    }
                })
                .collect();
            let out = e.forward(&batch).unwrap();
            for (i, r) in f.refs.iter().enumerate() {
                assert_eq!(out.rows(i).len(), 0, "greedy rows bring no logits back");
                let got = out.token(i).expect("a greedy row has its token");
                if r.margins[step] > 2.0 * tol {
                    assert_eq!(got, r.greedy[step], "{dtype:?} prompt {i} step {step}");
                    checked += 1;
                }
            }
        }
        eprintln!("device arg max ({dtype:?}): {checked} tokens checked");
        assert!(checked > 0);
    }
}

#[test]
fn sampled_rows_return_device_candidates_and_fetch_their_rows() {
    if !on_cuda() {
        return;
    }
    let f = fixture();
    for dtype in [WeightDtype::F16, WeightDtype::Bf16] {
        let tol = tolerance(dtype);
        let mut e = engine(dtype);
        let all = prompt_slots(&f.prompts, 0);
        // Prompt 0 greedy; the others drawn at temperatures 0.7, 1.3, ...:
        // ids and candidates come back, the rows stay on the device.
        let temp = |i: usize| 0.7 + 0.6 * (i - 1) as f32;
        let batch: Vec<BatchEntry> = f
            .prompts
            .iter()
            .enumerate()
            .map(|(i, p)| BatchEntry {
                tokens: p,
                history: &[],
                new_slots: &all[i],
                logits: match i {
                    0 => Logits::Greedy,
                    _ => Logits::Sample(arbor_engine::Temperature::new(temp(i)).unwrap()),
                },
            })
            .collect();
        let out = e.forward(&batch).unwrap();
        let mut check = Check::default();
        for (i, r) in f.refs.iter().enumerate() {
            let what = format!("{dtype:?} prompt {i}");
            assert_eq!(out.rows(i).len(), 0, "{what}: no row came back");
            if i == 0 {
                assert!(out.candidates(0).is_none());
                if r.margins[0] > 2.0 * tol {
                    assert_eq!(out.token(0), Some(r.greedy[0]), "{what}");
                }
                continue;
            }
            let c = out.candidates(i).expect("a sampled row has candidates");
            let row = out.full_row(i).unwrap();
            check.row(&row, &r.logits[f.prompts[i].len() - 1], tol, &what);
            // The candidates are the row's largest logits, in order, and the
            // log-sum-exp is the row's at the row's temperature.
            assert_eq!(c.ids.len(), 64.min(row.len()), "{what}");
            for (j, (&id, &l)) in c.ids.iter().zip(c.logits).enumerate() {
                assert_eq!(row[id as usize], l, "{what}: candidate {j}");
                if j > 0 {
                    assert!(l <= c.logits[j - 1], "{what}: candidates out of order");
                }
            }
            let last = *c.logits.last().unwrap();
            let beyond = (0..row.len()).filter(|&v| row[v] > last && !c.ids.contains(&(v as i64)));
            assert_eq!(
                beyond.count(),
                0,
                "{what}: a larger logit is not a candidate"
            );
            let t = temp(i) as f64;
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64 / t;
            let lse = row
                .iter()
                .map(|&l| (l as f64 / t - max).exp())
                .sum::<f64>()
                .ln()
                + max;
            assert!(
                (c.lse as f64 - lse).abs() < 1e-3,
                "{what}: lse {} vs {lse}",
                c.lse
            );
        }
        eprintln!(
            "device candidates ({dtype:?}): {} rows fetched, worst {:.3e}",
            check.rows, check.worst
        );
        assert!(check.rows > 0);
    }
}

#[test]
fn host_rows_are_fetched_alone_beside_rows_that_stay_on_the_device() {
    if !on_cuda() {
        return;
    }
    let f = fixture();
    for dtype in [WeightDtype::F16, WeightDtype::Bf16] {
        let tol = tolerance(dtype);
        let mut e = engine(dtype);
        let all = prompt_slots(&f.prompts, 0);
        // Prompt 0 greedy, 1 its last row to the host (a constrained draw),
        // 2 every row to the host (logprobs), the rest drawn at a
        // temperature: only rows 1 and 2 cross to the host.
        let batch: Vec<BatchEntry> = f
            .prompts
            .iter()
            .enumerate()
            .map(|(i, p)| BatchEntry {
                tokens: p,
                history: &[],
                new_slots: &all[i],
                logits: match i {
                    0 => Logits::Greedy,
                    1 => Logits::Last,
                    2 => Logits::All,
                    _ => Logits::Sample(arbor_engine::Temperature::new(0.8).unwrap()),
                },
            })
            .collect();
        let before = e.stats().rows_fetched_alone;
        let out = e.forward(&batch).unwrap();
        let fetched = e.stats().rows_fetched_alone - before;
        assert_eq!(fetched, 1 + f.prompts[2].len() as u64, "{dtype:?}");
        let mut check = Check::default();
        let what = |i: usize| format!("{dtype:?} prompt {i}");
        let last = out.last(1).expect("prompt 1's row came back");
        check.row(
            last,
            &f.refs[1].logits[f.prompts[1].len() - 1],
            tol,
            &what(1),
        );
        assert_eq!(out.rows(2).len(), f.prompts[2].len(), "{}", what(2));
        for (k, row) in out.rows(2).enumerate() {
            check.row(row, &f.refs[2].logits[k], tol, &what(2));
        }
        if f.refs[0].margins[0] > 2.0 * tol {
            assert_eq!(out.token(0), Some(f.refs[0].greedy[0]), "{}", what(0));
        }
        for i in 3..f.prompts.len() {
            assert_eq!(out.rows(i).len(), 0, "{}: its row stayed", what(i));
            assert!(out.candidates(i).is_some(), "{}", what(i));
        }
        eprintln!(
            "rows fetched alone ({dtype:?}): {fetched}, worst {:.3e}",
            check.worst
        );
    }
}

#[test]
fn scored_rows_stay_on_the_device_and_return_log_probabilities() {
    if !on_cuda() {
        return;
    }
    let f = fixture();
    let log_softmax_at = |row: &[f64], t: u32| -> f64 {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        row[t as usize] - (row.iter().map(|&l| (l - max).exp()).sum::<f64>().ln() + max)
    };
    for dtype in [WeightDtype::F16, WeightDtype::Bf16] {
        let tol = tolerance(dtype);
        let mut e = engine(dtype);
        let all = prompt_slots(&f.prompts, 0);
        // Prompt 0 greedy, prompt 1 its last row scored (a `select`'s
        // prompt), the others every row (a `select` choice's rows): each
        // row scores the token that follows it, the last row the
        // reference's first greedy token.
        let batch = |logits: Logits, last: Logits| -> Vec<BatchEntry> {
            f.prompts
                .iter()
                .enumerate()
                .map(|(i, p)| BatchEntry {
                    tokens: p,
                    history: &[],
                    new_slots: &all[i],
                    logits: match i {
                        0 => Logits::Greedy,
                        1 => last,
                        _ => logits,
                    },
                })
                .collect()
        };
        // (entry, row of the entry, token) and the reference row it reads.
        let mut queries: Vec<(usize, usize, u32)> = vec![(1, 0, f.refs[1].greedy[0])];
        let mut ref_rows = vec![f.prompts[1].len() - 1];
        for (i, p) in f.prompts.iter().enumerate().skip(2) {
            for k in 0..p.len() {
                queries.push((i, k, p.get(k + 1).copied().unwrap_or(f.refs[i].greedy[0])));
                ref_rows.push(k);
            }
        }
        let before = e.stats().scored_rows;
        let out = e.forward(&batch(Logits::Score, Logits::ScoreLast)).unwrap();
        assert_eq!(
            e.stats().scored_rows - before,
            queries.len() as u64,
            "{dtype:?}"
        );
        for i in 1..f.prompts.len() {
            assert_eq!(
                out.rows(i).len(),
                0,
                "{dtype:?} prompt {i}: no row came back"
            );
        }
        let device = out.log_probs(&queries).unwrap();
        drop(out);
        // The same pass with the rows on the host, scored there.
        let host_out = e.forward(&batch(Logits::All, Logits::Last)).unwrap();
        let host = host_out.log_probs(&queries).unwrap();
        let mut worst = 0f64;
        for (q, &(i, k, t)) in queries.iter().enumerate() {
            let what = format!("{dtype:?} prompt {i} row {k} token {t}");
            assert!(
                (device[q] - host[q]).abs() < 1e-3,
                "{what}: device {} vs host {}",
                device[q],
                host[q]
            );
            let want = log_softmax_at(&f.refs[i].logits[ref_rows[q]], t);
            let d = (device[q] - want).abs();
            assert!(d <= 2.0 * tol, "{what}: {} vs reference {want}", device[q]);
            worst = worst.max(d);
        }
        eprintln!(
            "device scoring ({dtype:?}): {} tokens, worst {worst:.3e} from the reference",
            queries.len()
        );
    }
}

#[test]
fn a_pool_sized_from_free_device_memory_fits_or_is_refused_clearly() {
    if !on_cuda() {
        return;
    }
    let f = fixture();
    let dir = f.hf.parent().unwrap().join("F16");
    if !dir.join("arbor.json").exists() {
        export_from(&f.hf, &dir, WeightDtype::F16).expect("export");
    }
    let open = |fraction: f32| {
        Engine::open(
            &dir,
            &EngineOptions {
                kv_slots: 0,
                kv_fraction: fraction,
                ..test_options()
            },
        )
    };
    let e = open(0.05).expect("5% of an idle GPU holds a tiny model's pool");
    assert!(e.kv_slots() >= 4 * CUDA_BLOCK, "{} slots", e.kv_slots());
    assert_eq!(e.kv_slots() % CUDA_BLOCK, 0, "whole pages");
    drop(e);
    let err = open(1e-9)
        .err()
        .expect("a pool below one context")
        .to_string();
    assert!(err.contains("fewer than one sequence"), "{err}");
    let err = open(1.5).err().expect("a fraction above 1").to_string();
    assert!(err.contains("--kv-fraction"), "{err}");
}
