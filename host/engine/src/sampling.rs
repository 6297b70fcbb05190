//! Token sampling: greedy, temperature, top-k, top-p, min-p, repetition /
//! frequency / presence penalties; seeded and reproducible.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// How to pick the next token. The defaults are greedy decoding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingParams {
    /// 0 is greedy.
    pub temperature: f32,
    /// 0 disables.
    pub top_k: usize,
    /// 1 disables.
    pub top_p: f32,
    /// 0 disables: drops tokens below `min_p` times the top probability.
    pub min_p: f32,
    /// 1 disables: divides positive logits (multiplies negative ones) of seen tokens.
    pub repetition_penalty: f32,
    /// Subtracted once per occurrence of a token in the output so far.
    pub frequency_penalty: f32,
    /// Subtracted once if a token occurs in the output so far.
    pub presence_penalty: f32,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: 0,
        }
    }
}

impl SamplingParams {
    /// Rejects values that would make sampling meaningless.
    pub fn validate(&self) -> Result<(), String> {
        let finite = [
            self.temperature,
            self.top_p,
            self.min_p,
            self.repetition_penalty,
            self.frequency_penalty,
            self.presence_penalty,
        ]
        .iter()
        .all(|v| v.is_finite());
        if !finite {
            return Err("sampling parameters must be finite numbers".into());
        }
        if self.temperature < 0.0 {
            return Err(format!(
                "temperature must be >= 0, got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(format!("min_p must be in [0, 1], got {}", self.min_p));
        }
        if self.repetition_penalty <= 0.0 {
            return Err(format!(
                "repetition_penalty must be > 0, got {}",
                self.repetition_penalty
            ));
        }
        Ok(())
    }
}

/// Samples tokens for one sequence; owns its random stream so that a
/// sequence's output depends only on its seed, not on batch composition.
pub struct Sampler {
    params: SamplingParams,
    rng: ChaCha8Rng,
    counts: HashMap<u32, u32>,
    /// The random number of a draw that [`Sampler::sample_candidates`]
    /// could not finish, for the [`Sampler::sample`] call that does.
    pending_draw: Option<f64>,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(params.seed);
        Sampler {
            params,
            rng,
            counts: HashMap::new(),
            pending_draw: None,
        }
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Records a token that is now part of the output (for penalties).
    pub fn observe(&mut self, token: u32) {
        *self.counts.entry(token).or_insert(0) += 1;
    }

    /// Picks the next token from `logits`, which it may modify. Logits of
    /// `-inf` (masked by a constraint) are never chosen unless all are.
    pub fn sample(&mut self, logits: &mut [f32]) -> u32 {
        let p = &self.params;
        if self.has_penalties() {
            for (&tok, &n) in &self.counts {
                if let Some(l) = logits.get_mut(tok as usize) {
                    if p.repetition_penalty != 1.0 {
                        *l = if *l > 0.0 {
                            *l / p.repetition_penalty
                        } else {
                            *l * p.repetition_penalty
                        };
                    }
                    *l -= p.frequency_penalty * n as f32 + p.presence_penalty;
                }
            }
        }
        if p.temperature == 0.0 {
            return argmax(logits);
        }
        let pending = self.pending_draw.take();
        // Candidates sorted by logit, descending; top-k cuts the list first.
        let mut idx: Vec<u32> = (0..logits.len() as u32)
            .filter(|&i| logits[i as usize] > f32::NEG_INFINITY)
            .collect();
        if idx.is_empty() {
            return argmax(logits);
        }
        idx.sort_unstable_by(|&a, &b| {
            logits[b as usize]
                .total_cmp(&logits[a as usize])
                .then(a.cmp(&b))
        });
        if p.top_k > 0 && idx.len() > p.top_k {
            idx.truncate(p.top_k);
        }
        let sorted: Vec<f32> = idx.iter().map(|&i| logits[i as usize]).collect();
        let u = pending.unwrap_or_else(|| self.rng.random());
        idx[draw_sorted(&sorted, p, u)]
    }

    /// Samples from a row's [`Candidates`] (its largest logits and its
    /// log-sum-exp, computed on the device) where they determine the draw
    /// exactly; else returns [`Pick::NeedsRow`], and the next
    /// [`Sampler::sample`] call, given the full row, finishes the same draw
    /// with the same random number. Either way the token has exactly the
    /// distribution [`Sampler::sample`] draws from (up to the rounding of the
    /// device's log-sum-exp) and the random stream advances once per token.
    ///
    /// The candidates decide the draw when top-k keeps no more tokens than
    /// there are candidates, when min-p or top-p cut the list inside them,
    /// or, with neither cut, when the draw lands inside them. Rows with
    /// penalties must not come here: penalties reorder the row.
    pub fn sample_candidates(&mut self, c: &Candidates<'_>) -> Pick {
        let p = &self.params;
        debug_assert!(p.temperature > 0.0 && !self.has_penalties());
        let u: f64 = self.rng.random();
        let k = c.ids.len();
        let in_set = if p.top_k > 0 {
            p.top_k.min(c.vocab)
        } else {
            c.vocab
        };
        if k == 0 {
            self.pending_draw = Some(u);
            return Pick::NeedsRow;
        }
        if in_set <= k {
            // The whole top-k set is here: the host's own computation.
            return Pick::Token(c.ids[draw_sorted(&c.logits[..in_set], p, u)] as u32);
        }
        if p.top_k > 0 {
            // The top-k set's normalizer needs logits beyond the candidates.
            self.pending_draw = Some(u);
            return Pick::NeedsRow;
        }
        let t = p.temperature as f64;
        let mut probs: Vec<f64> = c
            .logits
            .iter()
            .map(|&l| (l as f64 / t - c.lse as f64).exp())
            .collect();
        let mut cut = false;
        if p.min_p > 0.0 {
            let floor = probs[0] * p.min_p as f64;
            if probs[k - 1] < floor {
                probs.truncate(probs.iter().take_while(|&&x| x >= floor).count().max(1));
                cut = true;
            }
        }
        if p.top_p < 1.0
            && let Some(keep) = top_p_keep(&probs, p.top_p)
        {
            probs.truncate(keep);
            cut = true;
        }
        // Uncut, the kept set is the whole vocabulary, whose mass is 1.
        let total = if cut {
            probs.iter().sum()
        } else if p.min_p == 0.0 && p.top_p >= 1.0 {
            1.0
        } else {
            self.pending_draw = Some(u);
            return Pick::NeedsRow;
        };
        match walk(&probs, u * total) {
            Some(i) => Pick::Token(c.ids[i] as u32),
            None if cut => Pick::Token(c.ids[probs.len() - 1] as u32),
            None => {
                self.pending_draw = Some(u);
                Pick::NeedsRow
            }
        }
    }

    /// Whether penalties change the logits before sampling.
    pub fn has_penalties(&self) -> bool {
        let p = &self.params;
        p.repetition_penalty != 1.0 || p.frequency_penalty != 0.0 || p.presence_penalty != 0.0
    }
}

/// A row's largest logits, most likely first (lowest id first on ties), and
/// the log-sum-exp of the whole row divided by the sampling temperature.
#[derive(Clone, Copy, Debug)]
pub struct Candidates<'a> {
    pub ids: &'a [i64],
    pub logits: &'a [f32],
    /// `ln Σ_v exp(logit_v / temperature)` over the whole vocabulary.
    pub lse: f32,
    /// The row's length.
    pub vocab: usize,
}

/// What [`Sampler::sample_candidates`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    Token(u32),
    /// The draw needs the full row: pass it to [`Sampler::sample`].
    NeedsRow,
}

/// Index into `sorted` (logits of the candidate set, descending) of the
/// token that the random number `u` in [0, 1) picks after temperature,
/// min-p and top-p.
fn draw_sorted(sorted: &[f32], p: &SamplingParams, u: f64) -> usize {
    let max = sorted[0];
    let mut probs: Vec<f64> = sorted
        .iter()
        .map(|&l| (((l - max) / p.temperature) as f64).exp())
        .collect();
    let sum: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|x| *x /= sum);
    if p.min_p > 0.0 {
        let cut = probs[0] * p.min_p as f64;
        let keep = probs.iter().take_while(|&&x| x >= cut).count().max(1);
        probs.truncate(keep);
    }
    if p.top_p < 1.0
        && let Some(keep) = top_p_keep(&probs, p.top_p)
    {
        probs.truncate(keep);
    }
    let total: f64 = probs.iter().sum();
    walk(&probs, u * total).unwrap_or(probs.len() - 1)
}

/// How many of `probs` (descending) top-p keeps, if they reach `top_p`.
fn top_p_keep(probs: &[f64], top_p: f32) -> Option<usize> {
    let mut acc = 0.0;
    for (i, &x) in probs.iter().enumerate() {
        acc += x;
        if acc >= top_p as f64 {
            return Some(i + 1);
        }
    }
    None
}

/// The first index where the running sum of `probs` exceeds `r`.
fn walk(probs: &[f64], mut r: f64) -> Option<usize> {
    for (i, &x) in probs.iter().enumerate() {
        r -= x;
        if r < 0.0 {
            return Some(i);
        }
    }
    None
}

/// Index of the largest logit; the lowest index wins ties, so greedy
/// decoding is deterministic.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Log-softmax of one logit row at `token`, in f64.
pub fn log_prob(logits: &[f32], token: u32) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = logits
        .iter()
        .map(|&l| (l as f64 - max).exp())
        .sum::<f64>()
        .ln()
        + max;
    logits[token as usize] as f64 - lse
}

/// The log-probability of `chosen` and the `k` most likely tokens with
/// theirs (most likely first, lowest id first on ties), all under the
/// softmax of `logits`. One pass for the normalizer and one for the top
/// `k`: O(V·k), and `k` is small (APIs cap it at 20).
pub fn top_logprobs(logits: &[f32], chosen: u32, k: usize) -> (f32, Vec<(u32, f32)>) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = logits
        .iter()
        .map(|&l| (l as f64 - max).exp())
        .sum::<f64>()
        .ln()
        + max;
    let lp = |l: f32| (l as f64 - lse) as f32;
    let mut top: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    if k > 0 {
        for (i, &l) in logits.iter().enumerate() {
            if top.len() == k && l <= top[k - 1].1 {
                continue;
            }
            // Strictly greater moves ahead, so equal logits keep id order.
            let at = top.partition_point(|&(_, t)| t >= l);
            top.insert(at, (i as u32, l));
            top.truncate(k);
        }
    }
    let chosen_lp = logits
        .get(chosen as usize)
        .map_or(f32::NEG_INFINITY, |&l| lp(l));
    (
        chosen_lp,
        top.into_iter().map(|(i, l)| (i, lp(l))).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_logprobs_agree_with_log_prob_and_order_ties_by_id() {
        let logits = [0.5f32, 2.0, -1.0, 2.0, 1.0];
        let (lp, top) = top_logprobs(&logits, 4, 3);
        assert!((lp as f64 - log_prob(&logits, 4)).abs() < 1e-6);
        let ids: Vec<u32> = top.iter().map(|t| t.0).collect();
        assert_eq!(ids, vec![1, 3, 4]);
        for (id, l) in top {
            assert!((l as f64 - log_prob(&logits, id)).abs() < 1e-6);
        }
        let total: f64 = (0..5).map(|i| log_prob(&logits, i).exp()).sum();
        assert!((total - 1.0).abs() < 1e-9);
        assert!(top_logprobs(&logits, 0, 0).1.is_empty());
        assert_eq!(top_logprobs(&logits, 0, 99).1.len(), 5);
    }

    fn sample_many(params: SamplingParams, logits: &[f32], n: usize) -> Vec<u32> {
        let mut s = Sampler::new(params);
        (0..n).map(|_| s.sample(&mut logits.to_vec())).collect()
    }

    /// The `k` largest logits of `row` as the device gives them, and the
    /// log-sum-exp of `row / t` in f32.
    fn device_candidates(row: &[f32], k: usize, t: f32) -> (Vec<i64>, Vec<f32>, f32) {
        let mut idx: Vec<usize> = (0..row.len()).collect();
        idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        idx.truncate(k);
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) / t;
        let lse = row.iter().map(|&l| (l / t - max).exp()).sum::<f32>().ln() + max;
        let ids = idx.iter().map(|&i| i as i64).collect();
        (ids, idx.iter().map(|&i| row[i]).collect(), lse)
    }

    /// Draws `n` tokens from one sampler through the candidates (falling
    /// back to the full row when asked) and from another through the full
    /// row; returns both streams and how many draws needed the row.
    fn both_paths(
        p: &SamplingParams,
        row: &[f32],
        k: usize,
        n: usize,
    ) -> (Vec<u32>, Vec<u32>, usize) {
        let (ids, logits, lse) = device_candidates(row, k, p.temperature);
        let c = Candidates {
            ids: &ids,
            logits: &logits,
            lse,
            vocab: row.len(),
        };
        let (mut a, mut b) = (Sampler::new(p.clone()), Sampler::new(p.clone()));
        let mut rows = 0;
        let via = (0..n)
            .map(|_| match a.sample_candidates(&c) {
                Pick::Token(t) => t,
                Pick::NeedsRow => {
                    rows += 1;
                    a.sample(&mut row.to_vec())
                }
            })
            .collect();
        let host = (0..n).map(|_| b.sample(&mut row.to_vec())).collect();
        (via, host, rows)
    }

    fn peaked(v: usize) -> Vec<f32> {
        (0..v)
            .map(|i| 12.0 / (1.0 + i as f32 * 0.37) + (i as f32 * 1.7).sin())
            .collect()
    }

    fn flat(v: usize) -> Vec<f32> {
        (0..v).map(|i| (i as f32 * 0.61).sin() * 0.8).collect()
    }

    #[test]
    fn candidate_draws_are_the_host_samplers_draws() {
        let base = SamplingParams {
            temperature: 0.8,
            seed: 11,
            ..Default::default()
        };
        let cases = [
            // (params, row, whether the candidates alone must decide every draw)
            (base.clone(), peaked(500), false),
            (base.clone(), flat(500), false),
            (
                SamplingParams {
                    top_k: 8,
                    ..base.clone()
                },
                flat(500),
                true,
            ),
            (
                SamplingParams {
                    top_k: 40,
                    ..base.clone()
                },
                peaked(500),
                false,
            ),
            (
                SamplingParams {
                    top_p: 0.9,
                    ..base.clone()
                },
                peaked(500),
                true,
            ),
            (
                SamplingParams {
                    top_p: 0.9,
                    ..base.clone()
                },
                flat(500),
                false,
            ),
            (
                SamplingParams {
                    min_p: 0.2,
                    ..base.clone()
                },
                peaked(500),
                true,
            ),
            (
                SamplingParams {
                    min_p: 0.05,
                    temperature: 1.5,
                    ..base.clone()
                },
                flat(500),
                false,
            ),
            (
                SamplingParams {
                    temperature: 2.0,
                    ..base.clone()
                },
                flat(12),
                true,
            ),
        ];
        for (i, (p, row, decided)) in cases.iter().enumerate() {
            let (via, host, rows) = both_paths(p, row, 16, 3000);
            let same = via.iter().zip(&host).filter(|(a, b)| a == b).count();
            // Equal random numbers pick equal tokens; only a draw that falls
            // within rounding of a boundary may differ.
            assert!(same >= 2995, "case {i}: {same} of 3000 draws agree");
            if *decided {
                assert_eq!(rows, 0, "case {i}: the candidates decide every draw");
            }
        }
        // Both ways out are exercised: mostly from the candidates on a peaked
        // row, mostly from the full row on a flat one.
        let (_, _, rows) = both_paths(&base, &peaked(500), 16, 3000);
        assert!(rows < 600, "{rows} of 3000 peaked draws needed the row");
        let (_, _, rows) = both_paths(&base, &flat(500), 16, 3000);
        assert!(rows > 2000, "{rows} of 3000 flat draws needed the row");
    }

    #[test]
    fn candidate_draws_follow_the_softmax() {
        // 40 tokens, 8 candidates, temperature 1: about half the mass is in
        // the tail, so both paths of the draw shape the histogram.
        let row: Vec<f32> = (0..40)
            .map(|i| 2.0 - i as f32 * 0.06 + (i as f32).cos() * 0.3)
            .collect();
        let p = SamplingParams {
            temperature: 1.0,
            seed: 3,
            ..Default::default()
        };
        let n = 40_000;
        let (via, _, rows) = both_paths(&p, &row, 8, n);
        assert!(rows > n / 5 && rows < n * 4 / 5, "{rows} tail draws");
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let z: f64 = row.iter().map(|&l| (l as f64 - max).exp()).sum();
        let mut seen = vec![0f64; row.len()];
        via.iter().for_each(|&t| seen[t as usize] += 1.0);
        let chi2: f64 = row
            .iter()
            .zip(&seen)
            .map(|(&l, &o)| {
                let e = n as f64 * (l as f64 - max).exp() / z;
                (o - e).powi(2) / e
            })
            .sum();
        // 39 degrees of freedom: P(chi2 > 80) is below 1e-4.
        assert!(
            chi2 < 80.0,
            "chi-square {chi2:.1} over 39 degrees of freedom"
        );
    }

    #[test]
    fn greedy_takes_the_argmax_and_lowest_index_on_ties() {
        assert_eq!(
            sample_many(SamplingParams::default(), &[0.1, 3.0, 3.0, -1.0], 3),
            vec![1, 1, 1]
        );
    }

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let p = SamplingParams {
            temperature: 1.0,
            seed: 7,
            ..Default::default()
        };
        let a = sample_many(p.clone(), &logits, 64);
        assert_eq!(a, sample_many(p.clone(), &logits, 64));
        assert_ne!(a, sample_many(SamplingParams { seed: 8, ..p }, &logits, 64));
    }

    #[test]
    fn top_k_and_top_p_and_min_p_restrict_the_support() {
        let logits = [5.0, 4.0, 3.0, 0.0, -1.0];
        let k = sample_many(
            SamplingParams {
                temperature: 1.0,
                top_k: 2,
                ..Default::default()
            },
            &logits,
            300,
        );
        assert!(k.iter().all(|&t| t < 2) && k.contains(&1));
        let p = sample_many(
            SamplingParams {
                temperature: 1.0,
                top_p: 0.5,
                ..Default::default()
            },
            &logits,
            300,
        );
        assert!(p.iter().all(|&t| t == 0), "top token alone holds > 50%");
        let m = sample_many(
            SamplingParams {
                temperature: 1.0,
                min_p: 0.3,
                ..Default::default()
            },
            &logits,
            300,
        );
        assert!(
            m.iter().all(|&t| t < 2),
            "e^-1 ≈ 0.37 ≥ 0.3 keeps token 1 only"
        );
    }

    #[test]
    fn penalties_discourage_seen_tokens() {
        let mut s = Sampler::new(SamplingParams {
            presence_penalty: 2.0,
            ..Default::default()
        });
        s.observe(0);
        assert_eq!(s.sample(&mut [1.0, 0.5]), 1);
        let mut s = Sampler::new(SamplingParams {
            repetition_penalty: 4.0,
            ..Default::default()
        });
        s.observe(0);
        assert_eq!(s.sample(&mut [1.0, 0.5]), 1);
    }

    #[test]
    fn masked_tokens_are_never_sampled() {
        let logits = [f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY, 0.0];
        let out = sample_many(
            SamplingParams {
                temperature: 2.0,
                ..Default::default()
            },
            &logits,
            200,
        );
        assert!(out.iter().all(|&t| t == 1 || t == 3));
    }

    #[test]
    fn invalid_params_are_rejected() {
        assert!(
            SamplingParams {
                temperature: -1.0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            SamplingParams {
                top_p: 0.0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            SamplingParams {
                temperature: f32::NAN,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }
}
