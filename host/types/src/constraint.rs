//! Constraints on generated text, as callers state them (compiling them to
//! token automata is `arbor_constraint`'s job).

use serde::Serialize;

/// A constraint on generated text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Constraint {
    /// The whole output matches this regex (`regex` crate syntax).
    Regex(String),
    /// The output is JSON valid under this JSON Schema (the schema's text,
    /// whose property order is kept).
    JsonSchema(String),
    /// The output is exactly one of these strings.
    Choices(Vec<String>),
}
