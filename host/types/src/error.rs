//! Why a request failed: one typed error from the scheduler to the guest's
//! `lm::error` and the HTTP body.
//!
//! Errors are `Clone` so a compiled-constraint cache can remember a failed
//! compilation and answer the next request for the same hostile pattern
//! without redoing the work, and so one failure can be sent to every
//! waiter.

use thiserror::Error;

/// Why a constraint could not be compiled, loaded or followed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConstraintError {
    /// The regex pattern is longer than the compile limits' `max_pattern_len`.
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
    /// The automaton would exceed a size limit of the compile limits.
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
    /// `$ref`s were cut at the schema options' `max_ref_depth`).
    #[error("JSON schema admits no value: {0}")]
    UnsatisfiableSchema(String),
    /// A `tokenizer.json` could not be turned into a vocabulary.
    #[error("invalid tokenizer.json: {0}")]
    InvalidTokenizer(String),
    /// A `select`-style list of choices was empty.
    #[error("choices must not be empty")]
    NoChoices,
    /// The automaton reached a state from which no token of the vocabulary
    /// continues a match (the vocabulary cannot spell what the constraint
    /// requires next).
    #[error("the constraint admits no continuation in this model's vocabulary")]
    NoContinuation,
}

impl ConstraintError {
    /// A stable snake_case name of the kind of failure, for machine-readable
    /// error codes (HTTP bodies); the message is for people.
    pub fn code(&self) -> &'static str {
        match self {
            ConstraintError::PatternTooLong { .. } => "pattern_too_long",
            ConstraintError::InvalidRegex(_) => "invalid_regex",
            ConstraintError::UnsupportedRegex(_) => "unsupported_regex",
            ConstraintError::TooBig(_) => "constraint_too_big",
            ConstraintError::OnlyEmpty => "regex_only_empty",
            ConstraintError::MatchesNothing => "regex_matches_nothing",
            ConstraintError::InvalidSchema { .. } => "invalid_schema",
            ConstraintError::UnsupportedKeyword { .. } => "unsupported_schema_keyword",
            ConstraintError::UnsupportedSchema { .. } => "unsupported_schema",
            ConstraintError::UnsatisfiableSchema(_) => "unsatisfiable_schema",
            ConstraintError::InvalidTokenizer(_) => "constraints_unavailable",
            ConstraintError::NoChoices => "no_choices",
            ConstraintError::NoContinuation => "constraint_dead_end",
        }
    }
}

/// Why a generation or scoring request could not be served.
///
/// Each variant says whose fault it is: [`RequestError::Invalid`],
/// [`RequestError::Constraint`] and [`RequestError::TooLarge`] are the
/// caller's (HTTP 400, the guest's `invalid-argument` / `bad-constraint`),
/// [`RequestError::Cancelled`] is nobody's, [`RequestError::Engine`] is ours.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RequestError {
    /// The request is malformed (empty prompt, prompt longer than the
    /// context, token out of the vocabulary, bad sampling parameters...).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The regex, JSON Schema or choices cannot be compiled, or admit no
    /// continuation where the model stands.
    #[error("bad constraint: {0}")]
    Constraint(#[from] ConstraintError),
    /// The request cannot fit the KV pool even when it runs alone.
    #[error("request needs {needed} KV slots but the pool has {pool}")]
    TooLarge {
        /// Slots the request needs at once.
        needed: usize,
        /// Slots the pool has.
        pool: usize,
    },
    /// The request was cancelled: the scheduler shut down, or the caller
    /// went away.
    #[error("cancelled: the scheduler has shut down")]
    Cancelled,
    /// The engine failed while running this request.
    #[error("engine failure: {0}")]
    Engine(String),
}

impl RequestError {
    /// A stable snake_case name of the kind of failure, for machine-readable
    /// error codes.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::Invalid(_) => "invalid_request",
            RequestError::Constraint(e) => e.code(),
            RequestError::TooLarge { .. } => "request_too_large",
            RequestError::Cancelled => "cancelled",
            RequestError::Engine(_) => "engine_failure",
        }
    }

    /// Whether the caller can fix the failure by changing the request.
    pub fn is_callers_fault(&self) -> bool {
        matches!(
            self,
            RequestError::Invalid(_) | RequestError::Constraint(_) | RequestError::TooLarge { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_failures_keep_their_kind_through_request_errors() {
        let e: RequestError = ConstraintError::InvalidRegex("unclosed group".into()).into();
        assert_eq!(e.code(), "invalid_regex");
        assert!(e.is_callers_fault());
        assert_eq!(
            e.to_string(),
            "bad constraint: invalid regex syntax: unclosed group"
        );
        assert!(!RequestError::Engine("x".into()).is_callers_fault());
        assert!(!RequestError::Cancelled.is_callers_fault());
    }
}
