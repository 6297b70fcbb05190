//! JSON Schema → regex over the schema's JSON text.
//!
//! The regex describes serialized JSON with properties in declared order.
//! Every string it matches parses as JSON and validates against the schema
//! (property tests check this with the `jsonschema` crate); the converse does
//! not hold: whitespace, number lengths and key order are restricted, and
//! `additionalProperties` is treated as `false` for objects that declare
//! `properties`. Keywords that cannot be enforced this way are refused with
//! an error naming them rather than silently ignored; unknown keywords
//! (vendor extensions) and annotations are ignored, as validators do.

mod json;
mod keywords;
mod number;
mod string;
mod translate;

use json::{Json, quote};
use keywords::*;
use number::{Bound, CAP};
use translate::*;

use crate::error::ConstraintError;

/// Whitespace allowed between JSON tokens in generated output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Whitespace {
    /// No whitespace at all: `{"a":1,"b":[2,3]}`.
    Compact,
    /// Up to `max` characters of `[ \t\n\r]` around every `{ } [ ] , :`.
    /// Bounded, because an unbounded run lets a model loop on newlines.
    Flexible {
        /// Longest whitespace run between two JSON tokens.
        max: u32,
    },
}

/// How a JSON Schema is turned into a regex.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SchemaOptions {
    /// Whitespace between tokens.
    pub whitespace: Whitespace,
    /// How many times one `$ref` may be expanded inside itself. A recursive
    /// schema is unrolled this deep and the branch that would recurse further
    /// is cut (an optional property is omitted, an array stays empty); if no
    /// value fits, compilation fails with
    /// [`ConstraintError::UnsatisfiableSchema`].
    pub max_ref_depth: usize,
    /// Nesting depth of arrays/objects generated for an unconstrained value
    /// (`{}` or `true`), which a regex can only describe to a fixed depth.
    pub any_value_depth: usize,
    /// Longest regex the translation may produce, in bytes. Schemas can grow
    /// their regex quadratically (optional properties) or exponentially
    /// (references used repeatedly), so this is the cap on that growth.
    pub max_regex_len: usize,
    /// Most subschema expansions for one translation; bounds the work a
    /// hostile schema (e.g. chains of `$ref`s each used twice) can cause.
    pub max_expansions: usize,
}

impl Default for SchemaOptions {
    fn default() -> Self {
        Self {
            whitespace: Whitespace::Compact,
            max_ref_depth: 3,
            any_value_depth: 2,
            max_regex_len: 1 << 20,
            max_expansions: 20_000,
        }
    }
}

/// Translates a JSON Schema into a regex matching its JSON text; compile it
/// with [`crate::TokenFsm::from_regex`] or use
/// [`crate::TokenFsm::from_schema`].
///
/// Properties are generated in the map's iteration order, which for
/// `serde_json::Value` is declaration order only when serde_json's
/// `preserve_order` feature is enabled; [`schema_str_to_regex`] always keeps
/// the order of the text.
///
/// # Errors
/// [`ConstraintError::InvalidSchema`], [`ConstraintError::UnsupportedKeyword`],
/// [`ConstraintError::UnsupportedSchema`], [`ConstraintError::UnsatisfiableSchema`],
/// [`ConstraintError::TooBig`].
pub fn schema_to_regex(
    schema: &serde_json::Value,
    options: &SchemaOptions,
) -> Result<String, ConstraintError> {
    let json = Json::from_value(schema).ok_or_else(|| invalid("#", "nested too deeply"))?;
    translate(&json, options)
}

/// [`schema_to_regex`] for schema text, keeping properties in the order
/// they are written.
pub fn schema_str_to_regex(
    schema: &str,
    options: &SchemaOptions,
) -> Result<String, ConstraintError> {
    let json: Json =
        serde_json::from_str(schema).map_err(|e| invalid("#", &format!("not JSON: {e}")))?;
    translate(&json, options)
}

fn invalid(path: &str, msg: &str) -> ConstraintError {
    ConstraintError::InvalidSchema {
        path: path.to_owned(),
        msg: msg.to_owned(),
    }
}

fn unsupported(path: &str, msg: String) -> ConstraintError {
    ConstraintError::UnsupportedSchema {
        path: path.to_owned(),
        msg,
    }
}

/// Keywords this translator enforces.
const SUPPORTED: &[&str] = &[
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "prefixItems",
    "additionalItems",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "anyOf",
    "oneOf",
    "allOf",
    "$ref",
];

/// Assertion keywords that constrain values in ways a regex over the JSON
/// text cannot express here; ignoring them could generate invalid output.
const UNSUPPORTED: &[&str] = &[
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "patternProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "unevaluatedProperties",
    "unevaluatedItems",
    "contains",
    "minContains",
    "maxContains",
    "multipleOf",
    "$dynamicRef",
    "$recursiveRef",
];

/// Result of translating a subschema: `None` when no value satisfies it
/// (e.g. `false`, an empty `enum`, or recursion cut at the depth cap).
type Gen = Result<Option<String>, ConstraintError>;

#[cfg(test)]
mod tests;
