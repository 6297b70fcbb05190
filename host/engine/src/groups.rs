//! Attention groups: how one step's ragged batch is split into session runs
//! whose attention is padded together.
//!
//! Invariant: every entry is in exactly one group, and a group of more than
//! one entry pads at most [`PADDING_FACTOR`] times its useful attention
//! cells (or fewer than [`SPLIT_ABOVE_CELLS`] in all).

use crate::batch::BatchEntry;

/// Padded attention cells a group may spend per useful cell before an entry
/// goes to a group of its own.
const PADDING_FACTOR: usize = 2;

/// Below this many padded cells a group is never split: another session run
/// (reading every weight again) costs more than that much attention.
const SPLIT_ABOVE_CELLS: usize = 1 << 16;

/// Splits a batch into groups whose attention is padded together, so that
/// no entry is padded to another's shape beyond [`PADDING_FACTOR`] times the
/// work it does: a step mixing one 512-token prefill chunk with 300 decode
/// rows would otherwise pad every decode row to 512 queries (300 x 512 x
/// Lmax mask and score cells), which is what made memory and step time grow
/// with concurrency. Entries are taken longest query first; each joins the
/// current group while the group's padded cells `B x Qmax x Lmax` stay
/// within the bound, else starts a new group. Returns indices into `batch`.
pub(crate) fn attention_groups(batch: &[BatchEntry]) -> Vec<Vec<usize>> {
    let q = |i: usize| batch[i].tokens.len();
    let l = |i: usize| batch[i].history.len() + batch[i].tokens.len();
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(q(i)), std::cmp::Reverse(l(i))));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let (mut qmax, mut lmax, mut useful) = (0usize, 0usize, 0usize);
    for i in order {
        let (qi, li) = (q(i), l(i));
        if let Some(g) = groups.last_mut() {
            let (nq, nl, nu) = (qmax.max(qi), lmax.max(li), useful + qi * li);
            let padded = (g.len() + 1) * nq * nl;
            if padded <= SPLIT_ABOVE_CELLS || padded <= PADDING_FACTOR * nu {
                g.push(i);
                (qmax, lmax, useful) = (nq, nl, nu);
                continue;
            }
        }
        groups.push(vec![i]);
        (qmax, lmax, useful) = (qi, li, qi * li);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchEntry, Logits};

    /// Entries with `q` new tokens after `h` history tokens.
    fn entries(shapes: &[(usize, usize)]) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
        let tokens = shapes.iter().map(|&(q, _)| vec![0; q]).collect();
        let history = shapes.iter().map(|&(_, h)| vec![0; h]).collect();
        (tokens, history)
    }

    fn groups(shapes: &[(usize, usize)]) -> Vec<Vec<usize>> {
        let (tokens, history) = entries(shapes);
        let batch: Vec<BatchEntry> = tokens
            .iter()
            .zip(&history)
            .map(|(t, h)| BatchEntry {
                tokens: t,
                history: h,
                new_slots: t,
                logits: Logits::Last,
            })
            .collect();
        attention_groups(&batch)
    }

    #[test]
    fn decode_rows_are_not_padded_to_a_prefill_chunk() {
        let mut shapes = vec![(512, 488)];
        shapes.extend(std::iter::repeat_n((1, 900), 300));
        let g = groups(&shapes);
        assert_eq!(g.len(), 2, "{g:?}");
        // The chunk's group may take a decode row or two within the bound.
        assert!(g[0][0] == 0 && g[0].len() <= 2, "{g:?}");
        assert!(g[1].len() >= 299, "{g:?}");
    }

    #[test]
    fn small_or_uniform_batches_stay_one_run() {
        assert_eq!(groups(&[(7, 3), (1, 40), (1, 2), (12, 0)]).len(), 1);
        assert_eq!(groups(&[(1, 4000); 256]).len(), 1);
        assert_eq!(groups(&[(256, 256); 8]).len(), 1);
    }

    #[test]
    fn every_entry_is_in_one_group_within_the_padding_bound() {
        // A deterministic spread of shapes, from decode rows to long chunks.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % m) as usize
        };
        for _ in 0..200 {
            let n = 1 + next(40);
            let shapes: Vec<(usize, usize)> = (0..n)
                .map(|_| match next(3) {
                    0 => (1, next(3000)),
                    1 => (1 + next(64), next(500)),
                    _ => (1 + next(1024), next(2000)),
                })
                .collect();
            let g = groups(&shapes);
            let mut seen: Vec<usize> = g.concat();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>());
            for grp in &g {
                let q = grp.iter().map(|&i| shapes[i].0).max().unwrap();
                let l = grp
                    .iter()
                    .map(|&i| shapes[i].0 + shapes[i].1)
                    .max()
                    .unwrap();
                let useful: usize = grp
                    .iter()
                    .map(|&i| shapes[i].0 * (shapes[i].0 + shapes[i].1))
                    .sum();
                let padded = grp.len() * q * l;
                assert!(
                    grp.len() == 1
                        || padded <= SPLIT_ABOVE_CELLS
                        || padded <= PADDING_FACTOR * useful,
                    "{grp:?} of {shapes:?}"
                );
            }
        }
    }
}
