//! Resource caps applied while compiling untrusted patterns.

/// Caps for compiling a regex into a DFA. Every stage of compilation is
/// bounded by one of these, so a hostile pattern fails with
/// [`crate::ConstraintError::PatternTooLong`] or
/// [`crate::ConstraintError::TooBig`] in bounded time instead of exhausting
/// memory; compile time grows linearly with the DFA limits. With the
/// defaults a ten-field JSON schema (about 3k DFA states, 2 MiB) compiles in
/// tens of milliseconds and the classic exponential DFA `(a|b)*a(a|b){40}` is
/// refused in under a second.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Longest user regex accepted, in bytes. Regexes generated from JSON
    /// schemas are capped by [`crate::SchemaOptions::max_regex_len`] instead.
    pub max_pattern_len: usize,
    /// Deepest nesting of groups/repetitions the parser accepts; keeps the
    /// recursive parser's stack bounded.
    pub nest_limit: u32,
    /// Heap bytes the Thompson NFA may use; bounds counted repetitions like
    /// `x{100000}`.
    pub nfa_size_limit: usize,
    /// Heap bytes determinization may use (state sets, work lists).
    pub determinize_size_limit: usize,
    /// Heap bytes of the resulting DFA transition table.
    pub dfa_size_limit: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pattern_len: 64 * 1024,
            nest_limit: 128,
            nfa_size_limit: 16 << 20,
            determinize_size_limit: 16 << 20,
            dfa_size_limit: 16 << 20,
        }
    }
}
