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
    /// Only the arg max of the last new token's logits, lowest index on
    /// ties (a greedy row that needs nothing else of the distribution): the
    /// paged CUDA graph computes it on the device, so that only the token id
    /// crosses to the host when every row of a step is such a row. Read it
    /// with [`ForwardOutput::token`]; the row itself may be absent.
    Greedy,
}

impl Logits {
    /// Whether the last new token's logits are computed.
    pub fn wants_last(self) -> bool {
        !matches!(self, Logits::None)
    }
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
    /// The arg max of each [`Logits::Greedy`] entry, by entry.
    tokens: Vec<Option<u32>>,
}

impl ForwardOutput {
    /// Output assembled from `logits` (`vocab` values per row) and each
    /// entry's row range; for engines other than ONNX Runtime's (tests).
    pub fn new(logits: Vec<f32>, vocab: usize, rows: Vec<Range<usize>>) -> Self {
        ForwardOutput {
            tokens: vec![None; rows.len()],
            logits,
            vocab,
            rows,
        }
    }

    /// Sets the arg max of every [`Logits::Greedy`] entry of `batch`:
    /// `device` holds those computed on the device, in entry order, or is
    /// `None` when they are to be read off the entries' last logit rows.
    pub(crate) fn set_greedy(&mut self, batch: &[BatchEntry], device: Option<&[i64]>) {
        let mut next = device.into_iter().flatten();
        for (i, e) in batch.iter().enumerate() {
            if e.logits != Logits::Greedy {
                continue;
            }
            self.tokens[i] = match device {
                Some(_) => next.next().map(|&t| t as u32),
                None => self.last(i).map(crate::sampling::argmax),
            };
        }
    }

    /// The arg max of entry `i`'s last logits, if it asked for
    /// [`Logits::Greedy`] and the engine computed it.
    pub fn token(&self, i: usize) -> Option<u32> {
        self.tokens.get(i).copied().flatten()
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
