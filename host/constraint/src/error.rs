//! The one error type of the crate.
//!
//! Errors are `Clone` so the [`crate::ConstraintCache`] can remember a failed
//! compilation and answer the next request for the same hostile pattern
//! without redoing the work.

use thiserror::Error;

/// Why a constraint could not be compiled or a vocabulary could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConstraintError {
    /// The regex pattern is longer than [`crate::Limits::max_pattern_len`].
    #[error("regex pattern is {len} bytes long, over the limit of {max} bytes")]
    PatternTooLong {
        /// Length of the rejected pattern in bytes.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The pattern is not a valid regex (the message shows where).
    #[error("invalid regex syntax: {0}")]
    InvalidRegex(String),
    /// The regex uses a feature a byte DFA cannot express (e.g. Unicode `\b`,
    /// look-around).
    #[error("regex feature not supported for constrained decoding: {0}")]
    UnsupportedRegex(String),
    /// The automaton would exceed a size limit of [`crate::Limits`].
    #[error("constraint too big to compile: {0}")]
    TooBig(String),
    /// The regex accepts only the empty string, so no token could ever be
    /// generated under it.
    #[error("regex matches only the empty string, so nothing could ever be generated")]
    OnlyEmpty,
    /// The regex accepts no string at all.
    #[error("regex matches no string at all")]
    MatchesNothing,
    /// The JSON Schema is malformed (wrong type for a keyword, dangling `$ref`...).
    #[error("invalid JSON schema at {path}: {msg}")]
    InvalidSchema {
        /// JSON pointer to the offending subschema.
        path: String,
        /// What is wrong with it.
        msg: String,
    },
    /// The schema uses keywords that this crate cannot enforce.
    #[error("unsupported JSON Schema keyword(s) at {path}: {}", keywords.join(", "))]
    UnsupportedKeyword {
        /// JSON pointer to the subschema holding the keywords.
        path: String,
        /// The keywords, in schema order.
        keywords: Vec<String>,
    },
    /// A supported keyword used with a value or combination this crate cannot
    /// enforce (unknown `format`, remote `$ref`, fractional number bounds...).
    #[error("unsupported JSON schema construct at {path}: {msg}")]
    UnsupportedSchema {
        /// JSON pointer to the subschema.
        path: String,
        /// What is not supported.
        msg: String,
    },
    /// No JSON value satisfies the schema (possibly only because recursive
    /// `$ref`s were cut at [`crate::SchemaOptions::max_ref_depth`]).
    #[error("JSON schema admits no value: {0}")]
    UnsatisfiableSchema(String),
    /// A `tokenizer.json` could not be turned into a [`crate::Vocab`].
    #[error("invalid tokenizer.json: {0}")]
    InvalidTokenizer(String),
}
