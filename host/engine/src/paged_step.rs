//! One step's inputs for the paged CUDA graph, from a ragged batch.
//!
//! Invariant: the block table names, for every sequence, the blocks that
//! hold its positions in order, and every slot the caller gave (history
//! and new) is exactly where the table puts that position:
//! `slots[i] == table[i / CUDA_BLOCK] * CUDA_BLOCK + i % CUDA_BLOCK`. The
//! operator computes each new token's slot from the table itself, so a
//! batch that breaks this is refused here rather than written to the wrong
//! place.

use crate::batch::{BatchEntry, Logits};
use crate::format::CUDA_BLOCK;
use anyhow::{Result, bail};
use std::ops::Range;

/// Host-side inputs of one paged step, in the graph's input order.
#[derive(Debug, PartialEq, Eq)]
pub struct PagedStep {
    pub input_ids: Vec<i64>,
    /// `[B + 1]` cumulative new-token counts.
    pub cu_seqlens: Vec<i32>,
    /// `[B]` tokens already in each sequence's blocks.
    pub past_seqlens: Vec<i32>,
    /// `[B, max_blocks]`, row-major; unused entries are 0 (never read: the
    /// operator reads `past + new` positions of each row).
    pub block_table: Vec<i32>,
    pub max_blocks: usize,
    /// Longest query and longest key length of the step.
    pub metadata: [i32; 2],
    /// Rows of the new tokens whose logits are wanted.
    pub logit_index: Vec<i64>,
    /// Each entry's rows of the logits.
    pub rows: Vec<Range<usize>>,
}

/// Lays a batch out for the paged graph, checking every slot against the
/// block table it implies.
pub fn paged_step(batch: &[BatchEntry]) -> Result<PagedStep> {
    let max_blocks = batch
        .iter()
        .map(|e| (e.history.len() + e.tokens.len()).div_ceil(CUDA_BLOCK))
        .max()
        .unwrap_or(0)
        .max(1);
    let b = batch.len();
    let t: usize = batch.iter().map(|e| e.tokens.len()).sum();
    let mut s = PagedStep {
        input_ids: Vec::with_capacity(t),
        cu_seqlens: Vec::with_capacity(b + 1),
        past_seqlens: Vec::with_capacity(b),
        block_table: vec![0; b * max_blocks],
        max_blocks,
        metadata: [0, 0],
        logit_index: Vec::new(),
        rows: Vec::with_capacity(b),
    };
    s.cu_seqlens.push(0);
    let mut toff = 0usize;
    for (bi, e) in batch.iter().enumerate() {
        let (hl, n) = (e.history.len(), e.tokens.len());
        let row = &mut s.block_table[bi * max_blocks..(bi + 1) * max_blocks];
        for (i, &slot) in e.history.iter().chain(e.new_slots).enumerate() {
            let (block, offset) = (slot as usize / CUDA_BLOCK, slot as usize % CUDA_BLOCK);
            if i % CUDA_BLOCK == 0 {
                row[i / CUDA_BLOCK] = block as i32;
            }
            if offset != i % CUDA_BLOCK || row[i / CUDA_BLOCK] != block as i32 {
                bail!(
                    "batch entry {bi}: position {i} is in slot {slot}, not where its page \
                     (block {}) puts it; the paged graph needs page-consistent slots of \
                     {CUDA_BLOCK}-token pages",
                    row[i / CUDA_BLOCK]
                );
            }
        }
        s.input_ids.extend(e.tokens.iter().map(|&x| x as i64));
        s.past_seqlens.push(hl as i32);
        s.cu_seqlens.push((toff + n) as i32);
        s.metadata[0] = s.metadata[0].max(n as i32);
        s.metadata[1] = s.metadata[1].max((hl + n) as i32);
        let start = s.logit_index.len();
        match e.logits {
            Logits::None => {}
            Logits::Last | Logits::Greedy | Logits::Sample(_) | Logits::ScoreLast => {
                s.logit_index.push((toff + n - 1) as i64)
            }
            Logits::All | Logits::Score => s.logit_index.extend((toff..toff + n).map(|x| x as i64)),
        }
        s.rows.push(start..s.logit_index.len());
        toff += n;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(pages: &[u32], len: usize) -> Vec<u32> {
        (0..len)
            .map(|i| pages[i / CUDA_BLOCK] * CUDA_BLOCK as u32 + (i % CUDA_BLOCK) as u32)
            .collect()
    }

    #[test]
    fn a_ragged_batch_gets_its_block_table_and_offsets() {
        let bs = CUDA_BLOCK;
        // Sequence 0: 300 cached + 2 new over pages 5, 2; sequence 1: a
        // 3-token prefill in page 7; sequence 2 shares page 5 with sequence
        // 0 and decodes one token in its own page 9.
        let s0 = slots(&[5, 2], 302);
        let s1 = slots(&[7], 3);
        let s2 = slots(&[5, 9], bs + 1);
        let (t0, t1, t2) = ([1u32, 2], [3u32, 4, 5], [6u32]);
        let batch = [
            BatchEntry {
                tokens: &t0,
                history: &s0[..300],
                new_slots: &s0[300..],
                logits: Logits::Last,
            },
            BatchEntry {
                tokens: &t1,
                history: &[],
                new_slots: &s1,
                logits: Logits::All,
            },
            BatchEntry {
                tokens: &t2,
                history: &s2[..bs],
                new_slots: &s2[bs..],
                logits: Logits::None,
            },
        ];
        let s = paged_step(&batch).unwrap();
        assert_eq!(s.input_ids, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(s.cu_seqlens, vec![0, 2, 5, 6]);
        assert_eq!(s.past_seqlens, vec![300, 0, bs as i32]);
        assert_eq!(s.max_blocks, 2);
        assert_eq!(s.block_table, vec![5, 2, 7, 0, 5, 9]);
        assert_eq!(s.metadata, [3, 302]);
        assert_eq!(s.logit_index, vec![1, 2, 3, 4]);
        assert_eq!(s.rows, vec![0..1, 1..4, 4..4]);
    }

    #[test]
    fn slots_that_break_the_page_layout_are_refused() {
        let mut s = slots(&[3], 4);
        s.swap(1, 2);
        let t = [1u32, 2, 3, 4];
        let e = BatchEntry {
            tokens: &t,
            history: &[],
            new_slots: &s,
            logits: Logits::Last,
        };
        let err = paged_step(&[e]).unwrap_err().to_string();
        assert!(err.contains("position 1 is in slot"), "{err}");
        // A page that changes mid-block is refused too.
        let mut s = slots(&[3], 4);
        s[3] = 4 * CUDA_BLOCK as u32 + 3;
        let e = BatchEntry {
            tokens: &t,
            history: &[],
            new_slots: &s,
            logits: Logits::Last,
        };
        assert!(paged_step(&[e]).is_err());
    }
}
