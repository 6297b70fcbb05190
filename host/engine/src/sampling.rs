//! Token sampling: greedy, temperature, top-k, top-p, min-p, repetition /
//! frequency / presence penalties; seeded and reproducible.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

mod candidates;
pub use candidates::{Candidates, Pick};

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
        let mut idx: Vec<u32> = (0..logits.len() as u32)
            .filter(|&i| logits[i as usize] > f32::NEG_INFINITY)
            .collect();
        if idx.is_empty() {
            return argmax(logits);
        }
        let u = pending.unwrap_or_else(|| self.rng.random());
        // Descending logit, lowest id first on ties: a total order, so a
        // partial selection picks exactly the set a full sort would.
        let order = |a: &u32, b: &u32| {
            logits[*b as usize]
                .total_cmp(&logits[*a as usize])
                .then(a.cmp(b))
        };
        if p.top_k > 0 && idx.len() > p.top_k {
            // Select the top-k set in O(V), then sort only it.
            idx.select_nth_unstable_by(p.top_k - 1, order);
            idx.truncate(p.top_k);
        }
        if p.top_k > 0 || p.top_p < 1.0 || idx.len() <= SORTED_HEAD {
            // Top-p needs the sorted prefix that reaches its mass; small sets
            // are sorted whole.
            idx.sort_unstable_by(order);
            let sorted: Vec<f32> = idx.iter().map(|&i| logits[i as usize]).collect();
            return idx[draw_sorted(&sorted, p, u)];
        }
        draw_head_then_rest(logits, idx, p, u, order)
    }

    /// Whether penalties change the logits before sampling.
    pub fn has_penalties(&self) -> bool {
        let p = &self.params;
        p.repetition_penalty != 1.0 || p.frequency_penalty != 0.0 || p.presence_penalty != 0.0
    }
}

/// Tokens [`Sampler::sample`] walks in descending order before the rest of
/// the row (in id order) when nothing needs the whole order (no top-k, no
/// top-p): at least the device's candidates, so that a draw the
/// candidates decide and the same draw over the whole row pick the same
/// token.
const SORTED_HEAD: usize = crate::device_sampling::CANDIDATES;

/// A draw over `idx` (more than [`SORTED_HEAD`] tokens, min-p the only cut)
/// without sorting the row: its largest [`SORTED_HEAD`] logits in
/// descending order, then every other kept token in id order. The same
/// distribution as walking the whole sorted row, in O(V) instead of
/// O(V log V) (a 128k vocabulary took ~10 ms a draw sorted).
fn draw_head_then_rest(
    logits: &[f32],
    mut idx: Vec<u32>,
    p: &SamplingParams,
    u: f64,
    order: impl Fn(&u32, &u32) -> std::cmp::Ordering,
) -> u32 {
    idx.select_nth_unstable_by(SORTED_HEAD - 1, &order);
    idx[..SORTED_HEAD].sort_unstable_by(&order);
    let max = logits[idx[0] as usize];
    // Each weight once (an exp per token), normalised; 0 for the tokens
    // min-p drops (at least min_p times as likely as the top one is kept)
    // and for masked ones.
    let floor = if p.min_p > 0.0 { p.min_p as f64 } else { 0.0 };
    let mut w = vec![0f64; logits.len()];
    for &i in &idx {
        w[i as usize] = (((logits[i as usize] - max) / p.temperature) as f64).exp();
    }
    let sum: f64 = w.iter().sum();
    for x in &mut w {
        *x = if *x >= floor { *x / sum } else { 0.0 };
    }
    let head = &idx[..SORTED_HEAD];
    let mut in_head = vec![false; logits.len()];
    for &i in head {
        in_head[i as usize] = true;
    }
    let walk_order = || {
        head.iter()
            .copied()
            .chain((0..logits.len() as u32).filter(|&i| !in_head[i as usize]))
            .filter(|&i| w[i as usize] > 0.0)
    };
    let total: f64 = walk_order().map(|i| w[i as usize]).sum();
    let mut r = u * total;
    let mut last = head[0];
    for i in walk_order() {
        r -= w[i as usize];
        last = i;
        if r < 0.0 {
            return i;
        }
    }
    last
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
    fn draws_over_a_row_larger_than_the_sorted_head_follow_the_softmax() {
        // 300 tokens: the largest 64 are walked sorted, the rest in id
        // order; the histogram must still be the softmax (restricted to
        // min-p's set when it cuts), and nothing min-p drops is drawn.
        let row: Vec<f32> = (0..300)
            .map(|i| 3.0 - i as f32 * 0.01 + (i as f32 * 0.7).sin())
            .collect();
        for min_p in [0.0f32, 0.1] {
            let p = SamplingParams {
                temperature: 0.9,
                min_p,
                seed: 5,
                ..Default::default()
            };
            let mut s = Sampler::new(p.clone());
            let n = 150_000;
            let mut seen = vec![0f64; row.len()];
            for _ in 0..n {
                seen[s.sample(&mut row.clone()) as usize] += 1.0;
            }
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let w: Vec<f64> = row
                .iter()
                .map(|&l| ((l as f64 - max) / 0.9).exp())
                .collect();
            let kept: Vec<bool> = w.iter().map(|&x| x >= min_p as f64).collect();
            let z: f64 = w
                .iter()
                .zip(&kept)
                .filter(|(_, k)| **k)
                .map(|(x, _)| x)
                .sum();
            let (mut chi2, mut dof) = (0.0, -1.0);
            for i in 0..row.len() {
                if !kept[i] {
                    assert_eq!(seen[i], 0.0, "min_p {min_p}: token {i} is below the cut");
                    continue;
                }
                let e = n as f64 * w[i] / z;
                chi2 += (seen[i] - e).powi(2) / e;
                dof += 1.0;
            }
            assert!(
                dof > 70.0,
                "min_p {min_p}: {dof} degrees of freedom, the rest unwalked"
            );
            // Mean dof, sd sqrt(2 dof): 6 sd above is far beyond chance.
            let bound = dof + 6.0 * (2.0f64 * dof).sqrt();
            assert!(
                chi2 < bound,
                "min_p {min_p}: chi-square {chi2:.1} over {dof} dof"
            );
        }
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
