//! The token vocabulary as raw bytes.

use std::hash::{DefaultHasher, Hash, Hasher};

use crate::trie::TokenTrie;

/// Tokens longer than this never match a constraint. Real vocabularies stay
/// far below it; the cap keeps the trie's packed depth field in range.
pub(crate) const MAX_TOKEN_LEN: usize = 1 << 16;

/// A model's vocabulary as the constraint engine sees it: for each token id
/// the exact bytes it contributes to the output, plus which ids end the
/// sequence (EOS) and which are special (control tokens that never appear
/// under a constraint).
///
/// Byte-level BPE tokens must already be mapped back to raw bytes and
/// byte-fallback tokens such as `<0x41>` to their single byte; a token may
/// hold part of a UTF-8 character. Building a `Vocab` also builds its token
/// trie, so share it behind an `Arc` between all automata of one model.
pub struct Vocab {
    bytes: Vec<u8>,
    offsets: Vec<usize>,
    eos: Vec<u32>,
    eos_set: Vec<u64>,
    unusable: Vec<u64>,
    trie: TokenTrie,
    fingerprint: u64,
}

fn set_bit(bits: &mut [u64], i: usize) {
    bits[i / 64] |= 1 << (i % 64);
}

fn get_bit(bits: &[u64], i: usize) -> bool {
    bits.get(i / 64).is_some_and(|w| (w >> (i % 64)) & 1 == 1)
}

impl Vocab {
    /// Builds a vocabulary from the byte string of every token id (index =
    /// id), the EOS ids and the special ids.
    ///
    /// An EOS id is allowed exactly in accepting states, even if also listed
    /// as special. Special ids, empty tokens and EOS ids are never walked as
    /// bytes. Ids named in `eos`/`special` beyond `tokens.len()` extend the
    /// vocabulary with empty tokens so that masks cover them.
    pub fn new(tokens: Vec<Vec<u8>>, eos: Vec<u32>, special: Vec<u32>) -> Self {
        let n = eos
            .iter()
            .chain(&special)
            .map(|&t| t as usize + 1)
            .fold(tokens.len(), usize::max);
        let mut bytes = Vec::with_capacity(tokens.iter().map(Vec::len).sum());
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0);
        for i in 0..n {
            if let Some(t) = tokens.get(i) {
                bytes.extend_from_slice(t);
            }
            offsets.push(bytes.len());
        }
        let words = n.div_ceil(64);
        let mut eos_set = vec![0u64; words];
        let mut unusable = vec![0u64; words];
        let mut eos_ids = eos.clone();
        eos_ids.sort_unstable();
        eos_ids.dedup();
        for &t in &eos_ids {
            set_bit(&mut eos_set, t as usize);
            set_bit(&mut unusable, t as usize);
        }
        for &t in &special {
            set_bit(&mut unusable, t as usize);
        }
        for i in 0..n {
            let len = offsets[i + 1] - offsets[i];
            if len == 0 || len > MAX_TOKEN_LEN {
                set_bit(&mut unusable, i);
            }
        }

        let mut h = DefaultHasher::new();
        n.hash(&mut h);
        offsets.hash(&mut h);
        bytes.hash(&mut h);
        eos_set.hash(&mut h);
        unusable.hash(&mut h);
        let fingerprint = h.finish();

        let mut vocab = Self {
            bytes,
            offsets,
            eos: eos_ids,
            eos_set,
            unusable,
            trie: TokenTrie::default(),
            fingerprint,
        };
        vocab.trie = TokenTrie::build(&vocab);
        vocab
    }

    /// Number of token ids (the length of every [`crate::TokenMask`]).
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Whether the vocabulary has no tokens.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes of `token`; empty for unknown ids.
    pub fn token_bytes(&self, token: u32) -> &[u8] {
        let t = token as usize;
        if t >= self.len() {
            return &[];
        }
        &self.bytes[self.offsets[t]..self.offsets[t + 1]]
    }

    /// Whether `token` is an end-of-sequence id.
    pub fn is_eos(&self, token: u32) -> bool {
        get_bit(&self.eos_set, token as usize)
    }

    /// The EOS ids, sorted.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos
    }

    /// Whether `token` contributes bytes under a constraint: not special, not
    /// EOS, not empty.
    pub fn is_text(&self, token: u32) -> bool {
        (token as usize) < self.len() && !get_bit(&self.unusable, token as usize)
    }

    /// A hash of the whole vocabulary; automata compiled for one vocabulary
    /// are keyed by it in [`crate::ConstraintCache`].
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Number of nodes in the vocabulary's byte trie (distinct non-empty
    /// prefixes of text tokens): the most transitions one mask computation
    /// can take.
    pub fn trie_nodes(&self) -> usize {
        self.trie.len()
    }

    pub(crate) fn trie(&self) -> &TokenTrie {
        &self.trie
    }
}

impl std::fmt::Debug for Vocab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vocab")
            .field("len", &self.len())
            .field("eos", &self.eos)
            .field("fingerprint", &format_args!("{:016x}", self.fingerprint))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_named_past_the_token_list_extend_the_vocabulary() {
        let v = Vocab::new(vec![b"a".to_vec(), vec![]], vec![5], vec![3]);
        assert_eq!(v.len(), 6);
        assert!(v.is_text(0));
        assert!(!v.is_text(1), "empty token");
        assert!(!v.is_text(3), "special");
        assert!(!v.is_text(5), "eos");
        assert!(v.is_eos(5));
        assert!(!v.is_eos(0));
        assert_eq!(v.token_bytes(99), b"");
    }

    #[test]
    fn fingerprint_tells_vocabularies_apart() {
        let a = Vocab::new(vec![b"a".to_vec(), b"b".to_vec()], vec![], vec![]);
        let b = Vocab::new(vec![b"ab".to_vec()], vec![], vec![]);
        let c = Vocab::new(vec![b"a".to_vec(), b"b".to_vec()], vec![1], vec![]);
        let a2 = Vocab::new(vec![b"a".to_vec(), b"b".to_vec()], vec![], vec![]);
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_eq!(a.fingerprint(), a2.fingerprint());
    }
}
