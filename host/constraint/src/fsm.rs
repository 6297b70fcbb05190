//! The token-level automaton: a byte DFA lifted to a vocabulary.

use std::sync::{Arc, OnceLock};

use crate::error::ConstraintError;
use crate::limits::Limits;
use crate::mask::TokenMask;
use crate::regex_dfa::{self, ByteDfa, DEAD};
use crate::vocab::Vocab;

/// A position in a [`TokenFsm`]: a plain index, so engines can keep one per
/// generated token and roll back for jump-forward re-tokenization for free.
///
/// A state is only meaningful for the automaton that produced it; passed to
/// another one it behaves as a dead state (nothing allowed) rather than
/// panicking.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub struct FsmState(u32);

impl FsmState {
    /// The state's index within its automaton.
    pub fn index(self) -> u32 {
        self.0
    }
}

/// A compiled constraint over one vocabulary: which tokens may follow each
/// state, and where each token leads. Masks are computed on first use of a
/// state (one walk of the vocabulary trie) and cached; all methods take
/// `&self`, and the type is `Send + Sync`, meant to be shared as
/// `Arc<TokenFsm>` between requests.
///
/// Invariant: a token is in [`TokenFsm::allowed`]`(s)` exactly when
/// [`TokenFsm::advance`]`(s, token)` is `Some`. EOS never consumes bytes: it is
/// allowed, and `advance` returns the same state, exactly where the output
/// so far matches the whole pattern.
pub struct TokenFsm {
    pattern: String,
    dfa: ByteDfa,
    vocab: Arc<Vocab>,
    masks: Box<[OnceLock<TokenMask>]>,
    empty: TokenMask,
}

impl TokenFsm {
    /// Compiles a regex that the whole output must match (it is implicitly
    /// anchored at both ends). Patterns use the syntax of the `regex` crate
    /// and must describe UTF-8 text.
    ///
    /// # Errors
    /// [`ConstraintError::PatternTooLong`], [`ConstraintError::InvalidRegex`],
    /// [`ConstraintError::UnsupportedRegex`], [`ConstraintError::TooBig`],
    /// [`ConstraintError::OnlyEmpty`], [`ConstraintError::MatchesNothing`].
    pub fn from_regex(
        pattern: &str,
        vocab: Arc<Vocab>,
        limits: &Limits,
    ) -> Result<Self, ConstraintError> {
        if pattern.len() > limits.max_pattern_len {
            return Err(ConstraintError::PatternTooLong {
                len: pattern.len(),
                max: limits.max_pattern_len,
            });
        }
        Self::from_trusted_length_regex(pattern.to_owned(), vocab, limits)
    }

    /// Compiles a regex whose length was already bounded by its producer
    /// (the schema translator enforces its own cap).
    pub(crate) fn from_trusted_length_regex(
        pattern: String,
        vocab: Arc<Vocab>,
        limits: &Limits,
    ) -> Result<Self, ConstraintError> {
        let hir = regex_dfa::parse(&pattern, limits)?;
        let dfa = ByteDfa::compile(&hir, limits)?;
        let masks = (0..dfa.num_states()).map(|_| OnceLock::new()).collect();
        Ok(Self {
            pattern,
            empty: TokenMask::empty(vocab.len()),
            dfa,
            vocab,
            masks,
        })
    }

    /// Compiles a JSON Schema: [`crate::schema_to_regex`] then
    /// [`TokenFsm::from_regex`] (the generated regex is capped by
    /// [`crate::SchemaOptions::max_regex_len`] rather than
    /// [`Limits::max_pattern_len`]).
    pub fn from_schema(
        schema: &serde_json::Value,
        vocab: Arc<Vocab>,
        options: &crate::SchemaOptions,
        limits: &Limits,
    ) -> Result<Self, ConstraintError> {
        let regex = crate::schema_to_regex(schema, options)?;
        Self::from_trusted_length_regex(regex, vocab, limits)
    }

    /// [`TokenFsm::from_schema`] for schema text, keeping properties in the
    /// order they are written (see [`crate::schema_str_to_regex`]).
    pub fn from_schema_str(
        schema: &str,
        vocab: Arc<Vocab>,
        options: &crate::SchemaOptions,
        limits: &Limits,
    ) -> Result<Self, ConstraintError> {
        let regex = crate::schema_str_to_regex(schema, options)?;
        Self::from_trusted_length_regex(regex, vocab, limits)
    }

    /// The regex this automaton was compiled from.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The vocabulary the masks are over.
    pub fn vocab(&self) -> &Arc<Vocab> {
        &self.vocab
    }

    /// Number of automaton states (each may cache one mask).
    pub fn num_states(&self) -> usize {
        self.dfa.num_states()
    }

    /// Number of states whose mask has been computed so far.
    pub fn cached_masks(&self) -> usize {
        self.masks.iter().filter(|m| m.get().is_some()).count()
    }

    /// The state before any output.
    pub fn start(&self) -> FsmState {
        FsmState(self.dfa.start())
    }

    fn valid(&self, s: FsmState) -> bool {
        (s.0 as usize) < self.dfa.num_states()
    }

    /// The tokens allowed in state `s`: text tokens whose every byte keeps the
    /// output completable, plus EOS if `s` is accepting. Computed on first
    /// request for `s`, then served from the cache.
    pub fn allowed(&self, s: FsmState) -> &TokenMask {
        match self.masks.get(s.0 as usize) {
            Some(slot) => slot.get_or_init(|| self.compute_mask(s)),
            None => &self.empty,
        }
    }

    /// Computes the mask of `s` without touching the cache (one trie walk);
    /// what [`TokenFsm::allowed`] does on a cache miss.
    pub fn compute_mask(&self, s: FsmState) -> TokenMask {
        let mut mask = TokenMask::empty(self.vocab.len());
        if !self.valid(s) {
            return mask;
        }
        let dfa = &self.dfa;
        self.vocab
            .trie()
            .fill_mask(s.0, DEAD, |q, b| dfa.next(q, b), &mut mask);
        if self.dfa.is_accepting(s.0) {
            for &eos in self.vocab.eos_ids() {
                mask.insert(eos);
            }
        }
        mask
    }

    /// Reference implementation of [`TokenFsm::allowed`] that walks every
    /// token separately; slow, for verification and benchmarks.
    pub fn compute_mask_per_token(&self, s: FsmState) -> TokenMask {
        let mut mask = TokenMask::empty(self.vocab.len());
        for t in 0..self.vocab.len() as u32 {
            if self.advance(s, t).is_some() {
                mask.insert(t);
            }
        }
        mask
    }

    /// The state after emitting `token` in state `s`, or `None` if the token
    /// is not allowed there. EOS leaves the state unchanged (and is allowed
    /// only in accepting states); special and empty tokens are never allowed.
    pub fn advance(&self, s: FsmState, token: u32) -> Option<FsmState> {
        if !self.valid(s) {
            return None;
        }
        if self.vocab.is_eos(token) {
            return self.dfa.is_accepting(s.0).then_some(s);
        }
        if !self.vocab.is_text(token) {
            return None;
        }
        self.advance_bytes(s, self.vocab.token_bytes(token))
    }

    /// [`TokenFsm::advance`] over several tokens in order.
    pub fn advance_tokens(&self, s: FsmState, tokens: &[u32]) -> Option<FsmState> {
        tokens.iter().try_fold(s, |s, &t| self.advance(s, t))
    }

    /// The state after the raw bytes `bytes`, or `None` if they lead out of
    /// the language. Used after jump-forward: the engine rolls back to the
    /// state before the last token(s), re-tokenizes their bytes plus the
    /// forced bytes, and walks forward again.
    pub fn advance_bytes(&self, s: FsmState, bytes: &[u8]) -> Option<FsmState> {
        if !self.valid(s) {
            return None;
        }
        let mut q = s.0;
        for &b in bytes {
            q = self.dfa.next(q, b);
            if q == DEAD {
                return None;
            }
        }
        Some(FsmState(q))
    }

    /// Whether the output so far matches the whole pattern (EOS allowed).
    pub fn is_accepting(&self, s: FsmState) -> bool {
        self.valid(s) && self.dfa.is_accepting(s.0)
    }

    /// Whether the output is complete and nothing may follow: accepting with
    /// no continuation, so the engine can stop without sampling EOS.
    pub fn is_finished(&self, s: FsmState) -> bool {
        self.is_accepting(s) && !self.dfa.has_continuation(s.0)
    }

    /// The bytes the automaton forces from `s`: the longest string such that
    /// every step has exactly one allowed byte and passes through no accepting
    /// state (an accepting state offers the choice to stop). Jump-forward
    /// emits these without sampling; turning them into tokens is the engine's
    /// job, since it owns the tokenizer.
    pub fn forced_bytes(&self, s: FsmState) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.valid(s) {
            return out;
        }
        let mut q = s.0;
        // A forced cycle would have no path to acceptance, and such states
        // are pruned, so this loop ends; the bound is a second guard.
        for _ in 0..self.dfa.num_states() {
            if self.dfa.is_accepting(q) {
                break;
            }
            match self.dfa.forced_byte(q) {
                Some((b, next)) => {
                    out.push(b);
                    q = next;
                }
                None => break,
            }
        }
        out
    }

    /// A shortest byte string leading from `s` to an accepting state (empty
    /// if `s` accepts). Lets an engine close a constrained output, e.g. a
    /// JSON object, when the token budget runs out.
    pub fn shortest_completion(&self, s: FsmState) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.valid(s) {
            return out;
        }
        let mut q = s.0;
        while let Some((b, next)) = self.dfa.step_towards_accept(q) {
            out.push(b);
            q = next;
        }
        out
    }
}

impl std::fmt::Debug for TokenFsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFsm")
            .field("states", &self.num_states())
            .field("cached_masks", &self.cached_masks())
            .field("pattern_len", &self.pattern.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every single byte as its own token (id = byte), a few multi-byte
    /// tokens, a special token and EOS.
    fn vocab() -> Arc<Vocab> {
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        for t in ["ab", "abc", "{\"", "\":", "true", "tr", "ue}", "é", "日本"] {
            tokens.push(t.as_bytes().to_vec());
        }
        tokens.push(b"<|special|>".to_vec());
        let special = tokens.len() as u32 - 1;
        tokens.push(Vec::new());
        let eos = tokens.len() as u32 - 1;
        Arc::new(Vocab::new(tokens, vec![eos], vec![special]))
    }

    fn id(v: &Vocab, s: &str) -> u32 {
        (0..v.len() as u32)
            .find(|&t| v.is_text(t) && v.token_bytes(t) == s.as_bytes())
            .unwrap()
    }

    #[test]
    fn masks_allow_exactly_the_completable_tokens() {
        let v = vocab();
        let fsm = TokenFsm::from_regex("abc|abd", v.clone(), &Limits::default()).unwrap();
        let s = fsm.start();
        let allowed: Vec<u32> = fsm.allowed(s).iter().collect();
        assert_eq!(allowed, vec![b'a' as u32, id(&v, "ab"), id(&v, "abc")]);
        assert_eq!(*fsm.allowed(s), fsm.compute_mask_per_token(s));
        let s = fsm.advance(s, id(&v, "ab")).unwrap();
        assert_eq!(
            fsm.allowed(s).iter().collect::<Vec<_>>(),
            vec![b'c' as u32, b'd' as u32]
        );
        let end = fsm.advance(s, b'c' as u32).unwrap();
        assert!(fsm.is_accepting(end) && fsm.is_finished(end));
        let eos = v.eos_ids()[0];
        assert_eq!(fsm.allowed(end).iter().collect::<Vec<_>>(), vec![eos]);
        assert_eq!(fsm.advance(end, eos), Some(end));
        assert_eq!(fsm.advance(s, eos), None);
        assert_eq!(fsm.cached_masks(), 3);
    }

    #[test]
    fn special_tokens_are_never_allowed() {
        let v = vocab();
        let fsm = TokenFsm::from_regex(r"<\|special\|>", v.clone(), &Limits::default()).unwrap();
        let special = (0..v.len() as u32)
            .find(|&t| v.token_bytes(t) == b"<|special|>")
            .unwrap();
        assert!(!fsm.allowed(fsm.start()).contains(special));
        assert_eq!(fsm.advance(fsm.start(), special), None);
        // The same bytes spelled with ordinary tokens are fine.
        assert!(fsm.advance_bytes(fsm.start(), b"<|special|>").is_some());
    }

    #[test]
    fn partial_utf8_tokens_are_allowed_mid_character() {
        let v = vocab();
        let fsm = TokenFsm::from_regex("é+", v.clone(), &Limits::default()).unwrap();
        let mask = fsm.allowed(fsm.start());
        assert!(mask.contains(0xC3), "first byte of é");
        assert!(mask.contains(id(&v, "é")));
        assert!(!mask.contains(0xA9), "continuation byte first");
        let mid = fsm.advance(fsm.start(), 0xC3).unwrap();
        assert!(!fsm.is_accepting(mid));
        assert_eq!(fsm.allowed(mid).iter().collect::<Vec<_>>(), vec![0xA9]);
    }

    #[test]
    fn forced_bytes_stop_at_choices_and_accepting_states() {
        let v = vocab();
        let fsm = TokenFsm::from_regex(
            r#"\{"name":"[a-z]+"(,"age":[0-9])?\}"#,
            v,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(fsm.forced_bytes(fsm.start()), br#"{"name":""#);
        let s = fsm.advance_bytes(fsm.start(), br#"{"name":"x""#).unwrap();
        assert_eq!(fsm.forced_bytes(s), b"", "choice between , and }}");
        let s = fsm.advance_bytes(s, b",").unwrap();
        assert_eq!(fsm.forced_bytes(s), br#""age":"#);
        let fsm = TokenFsm::from_regex("ab|abcd", vocab(), &Limits::default()).unwrap();
        assert_eq!(
            fsm.forced_bytes(fsm.start()),
            b"ab",
            "stops at the accepting state"
        );
    }

    #[test]
    fn rollback_and_retokenize_reaches_the_same_state() {
        let v = vocab();
        let fsm = TokenFsm::from_regex("(true|false)}", v.clone(), &Limits::default()).unwrap();
        let before = fsm.start();
        let s1 = fsm
            .advance_tokens(before, &[id(&v, "tr"), b'u' as u32])
            .unwrap();
        let forced = fsm.forced_bytes(s1);
        assert_eq!(forced, b"e}");
        // The engine re-tokenizes "tru" + "e}" as "tr" + "ue}".
        let retok = fsm
            .advance_tokens(before, &[id(&v, "tr"), id(&v, "ue}")])
            .unwrap();
        assert_eq!(Some(retok), fsm.advance_bytes(s1, &forced));
        assert!(fsm.is_finished(retok));
    }

    #[test]
    fn foreign_states_are_dead_not_panics() {
        let fsm = TokenFsm::from_regex("a", vocab(), &Limits::default()).unwrap();
        let bogus = FsmState(1_000_000);
        assert_eq!(fsm.allowed(bogus).count(), 0);
        assert_eq!(fsm.advance(bogus, 0), None);
        assert!(!fsm.is_accepting(bogus));
        assert!(fsm.forced_bytes(bogus).is_empty());
        assert!(fsm.shortest_completion(bogus).is_empty());
    }

    #[test]
    fn shortest_completion_is_accepted() {
        let fsm =
            TokenFsm::from_regex(r#"\[(1|22)(,(1|22))*\]"#, vocab(), &Limits::default()).unwrap();
        let s = fsm.advance_bytes(fsm.start(), b"[22,2").unwrap();
        let tail = fsm.shortest_completion(s);
        assert_eq!(tail, b"2]");
        assert!(fsm.is_accepting(fsm.advance_bytes(s, &tail).unwrap()));
    }

    #[test]
    fn too_long_patterns_are_refused_before_parsing() {
        let limits = Limits::default();
        let p = "a".repeat(limits.max_pattern_len + 1);
        assert_eq!(
            TokenFsm::from_regex(&p, vocab(), &limits).err(),
            Some(ConstraintError::PatternTooLong {
                len: limits.max_pattern_len + 1,
                max: limits.max_pattern_len
            })
        );
    }
}
