//! Drawing from a row's candidates (its largest logits and its log-sum-exp,
//! computed where the logits are) instead of from the whole row.
//!
//! Invariant: a draw made here has exactly the distribution
//! [`Sampler::sample`] draws from the whole row (up to the rounding of the
//! log-sum-exp), and the sampler's random stream advances once per token
//! whichever path finishes the draw.

use super::{Sampler, draw_sorted, top_p_keep, walk};
use rand::Rng;

impl Sampler {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::SamplingParams;

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
}
