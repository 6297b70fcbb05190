//! Constrained decoding: regex and JSON Schema compiled to token automata with jump-forward.
//!
//! Pipeline, independent of any engine:
//! 1. a constraint — a regex ([`TokenFsm::from_regex`]), a JSON Schema
//!    ([`schema_to_regex`], [`TokenFsm::from_schema`]) or a list of choices
//!    ([`choices_to_regex`]) — is compiled under [`Limits`] into a byte DFA
//!    holding only states that can still complete a match;
//! 2. the DFA is lifted to a [`Vocab`]ulary: [`TokenFsm::allowed`] gives the
//!    [`TokenMask`] of a state (one walk over the vocabulary's byte trie,
//!    cached per state), [`TokenFsm::advance`] moves over a sampled token;
//! 3. jump-forward: [`TokenFsm::forced_bytes`] returns the text the constraint
//!    forces next; the engine tokenizes it and re-syncs with
//!    [`TokenFsm::advance_bytes`] / [`TokenFsm::advance_tokens`] from the
//!    cheap `Copy` [`FsmState`] it kept before the re-tokenized tokens.
//!
//! [`ConstraintCache`] shares compiled automata between requests. All types
//! are `Send + Sync`; compilation is blocking CPU work.
//!
//! # Known limits of the JSON Schema translation
//! Generated output always validates, but some valid documents are never
//! generated, and some keywords are refused:
//! - `oneOf` is generated as `anyOf` (branches are assumed disjoint);
//! - objects hold only declared properties, in declared order
//!   (`additionalProperties` only matters when nothing is declared);
//! - `allOf` with more than one subschema, `not`, `if`/`then`/`else`,
//!   `patternProperties`, `propertyNames`, `min/maxProperties`, `contains`,
//!   `uniqueItems: true`, `multipleOf` and `unevaluated*` are refused, as are
//!   fractional bounds on `number` and `pattern`/`format` combined with
//!   `minLength`/`maxLength`;
//! - numbers are at most 18 integer and 17 fraction digits with a 2-digit
//!   exponent (so they parse as f64/i64); unconstrained values (`{}`) nest at
//!   most [`SchemaOptions::any_value_depth`] deep; recursive `$ref`s unroll
//!   [`SchemaOptions::max_ref_depth`] times.

mod cache;
mod choices;
mod error;
mod fsm;
mod limits;
mod mask;
mod regex_dfa;
mod schema;
mod tokenizer;
mod trie;
mod vocab;

pub use cache::ConstraintCache;
pub use choices::choices_to_regex;
pub use error::ConstraintError;
pub use fsm::{FsmState, TokenFsm};
pub use limits::Limits;
pub use mask::TokenMask;
pub use schema::{SchemaOptions, Whitespace, schema_str_to_regex, schema_to_regex};
pub use vocab::Vocab;

#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn shared_types_are_send_and_sync() {
        assert_send_sync::<super::TokenFsm>();
        assert_send_sync::<super::Vocab>();
        assert_send_sync::<super::ConstraintCache>();
        assert_send_sync::<super::TokenMask>();
        assert_send_sync::<super::ConstraintError>();
    }
}
