//! Bitset of allowed token ids.

/// The set of tokens allowed in one automaton state: bit `i` of the bitset
/// is token id `i`. One `u64` word covers 64 tokens, so a 128k vocabulary is
/// 16 KiB per mask.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenMask {
    words: Box<[u64]>,
    len: usize,
}

impl TokenMask {
    /// A mask over `len` tokens with none allowed.
    pub fn empty(len: usize) -> Self {
        Self {
            words: vec![0; len.div_ceil(64)].into_boxed_slice(),
            len,
        }
    }

    /// Number of token ids the mask covers (the vocabulary size).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mask covers no token ids at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `token` is allowed. Ids outside the vocabulary never are.
    #[inline]
    pub fn contains(&self, token: u32) -> bool {
        let t = token as usize;
        t < self.len && (self.words[t / 64] >> (t % 64)) & 1 == 1
    }

    #[inline]
    pub(crate) fn insert(&mut self, token: u32) {
        let t = token as usize;
        if t < self.len {
            self.words[t / 64] |= 1 << (t % 64);
        }
    }

    pub(crate) fn words_mut(&mut self) -> &mut [u64] {
        &mut self.words
    }

    /// The raw bitset, 64 tokens per word, least significant bit first; for
    /// engines that upload the mask to an accelerator as is.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Number of allowed tokens.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Allowed token ids in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let bit = w.trailing_zeros();
                w &= w - 1;
                Some((i * 64) as u32 + bit)
            })
        })
    }

    /// Sets the logit of every disallowed token to `-inf`.
    ///
    /// Logit rows are often padded past the tokenizer's vocabulary (embedding
    /// tables rounded up to a multiple of 64 or 128); those padding ids are
    /// never allowed, so they are masked too. Works a word at a time: fully
    /// allowed words are skipped and fully disallowed words filled, which is
    /// the common case for tight constraints and for free-text states alike.
    pub fn apply(&self, logits: &mut [f32]) {
        for (i, chunk) in logits.chunks_mut(64).enumerate() {
            let word = self.words.get(i).copied().unwrap_or(0);
            let valid = if chunk.len() == 64 {
                u64::MAX
            } else {
                (1u64 << chunk.len()) - 1
            };
            let mut banned = !word & valid;
            if banned == 0 {
                continue;
            }
            if banned == valid {
                chunk.fill(f32::NEG_INFINITY);
                continue;
            }
            while banned != 0 {
                chunk[banned.trailing_zeros() as usize] = f32::NEG_INFINITY;
                banned &= banned - 1;
            }
        }
    }
}

impl std::fmt::Debug for TokenMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenMask({} of {} allowed)", self.count(), self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_masks_exactly_the_disallowed_ids_including_padding() {
        let mut m = TokenMask::empty(130);
        for t in [0, 63, 64, 100, 129] {
            m.insert(t);
        }
        // 200 logits: ids 130..200 are padding past the vocabulary.
        let mut logits = vec![1.0f32; 200];
        m.apply(&mut logits);
        for (i, l) in logits.iter().enumerate() {
            assert_eq!(*l == 1.0, m.contains(i as u32), "id {i}");
        }
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![0, 63, 64, 100, 129]);
        assert_eq!(m.count(), 5);
        assert!(!m.contains(1000));
    }

    #[test]
    fn apply_on_shorter_logits_touches_only_their_range() {
        let mut m = TokenMask::empty(128);
        m.insert(3);
        let mut logits = vec![0.5f32; 10];
        m.apply(&mut logits);
        assert_eq!(logits.iter().filter(|l| l.is_finite()).count(), 1);
        assert!(logits[3].is_finite());
    }
}
