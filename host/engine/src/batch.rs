//! What one forward pass takes and gives back: a ragged batch of entries
//! (new tokens, the pool slots of their history, where their K/V go) and
//! the logit rows each entry asked for, in batch order.

use std::ops::Range;

/// Which logits a batch entry wants back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// None (a prefill chunk that is not the last).
    None,
    /// The last new token's (next-token prediction).
    Last,
    /// Every new token's (scoring a continuation, as `select` does).
    All,
}

/// One sequence's part of a forward pass.
#[derive(Clone, Copy, Debug)]
pub struct BatchEntry<'a> {
    /// The new tokens.
    pub tokens: &'a [u32],
    /// Pool slots of the tokens before them (positions `0..history.len()`).
    pub history: &'a [u32],
    /// Pool slots that receive the new tokens' K/V, one per token.
    pub new_slots: &'a [u32],
    pub logits: Logits,
}

/// Logits of one forward pass.
pub struct ForwardOutput {
    logits: Vec<f32>,
    vocab: usize,
    rows: Vec<Range<usize>>,
}

impl ForwardOutput {
    /// Output assembled from `logits` (`vocab` values per row) and each
    /// entry's row range; for engines other than ONNX Runtime's (tests).
    pub fn new(logits: Vec<f32>, vocab: usize, rows: Vec<Range<usize>>) -> Self {
        ForwardOutput {
            logits,
            vocab,
            rows,
        }
    }

    /// The logit rows of batch entry `i` (empty for [`Logits::None`]).
    pub fn rows(&self, i: usize) -> impl ExactSizeIterator<Item = &[f32]> {
        let r = self.rows[i].clone();
        r.map(move |row| &self.logits[row * self.vocab..(row + 1) * self.vocab])
    }

    /// The last logit row of batch entry `i`, if it asked for any.
    pub fn last(&self, i: usize) -> Option<&[f32]> {
        self.rows(i).last()
    }
}
