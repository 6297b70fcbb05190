//! Property tests: random walks through token FSMs produce only outputs
//! that an independent engine accepts (the `regex` crate for regexes,
//! serde_json + the `jsonschema` crate for schemas), and trie-walk masks
//! agree with the per-token reference.

mod common;

use std::sync::{Arc, OnceLock};

use arbor_constraint::{Limits, SchemaOptions, TokenFsm, Vocab, Whitespace, schema_str_to_regex};
use proptest::prelude::*;

use common::{check_state, random_walk, synthetic_vocab};

fn vocab() -> Arc<Vocab> {
    static V: OnceLock<Arc<Vocab>> = OnceLock::new();
    V.get_or_init(|| synthetic_vocab(7, 1500)).clone()
}

const REGEXES: &[&str] = &[
    r"[a-z]+@[a-z]+\.(com|org)",
    r"(true|false|null)",
    r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?",
    r#"\{"name":"[^"\\]{0,10}","tags":\[("[a-z]{1,3}"(,"[a-z]{1,3}")*)?\]\}"#,
    r"(ab|abc|abcd)*x",
    r"[é日本]{1,4}z",
    r"a|ab|abc",
    r"(?i)hello( world)?",
    r"\d{3}-\d{4}",
    r".{0,5}!",
    r"(foo|bar)+(baz)?",
    r"(\\u00e9|\\n|[^\\])*;",
];

fn regex_fsms() -> &'static Vec<Arc<TokenFsm>> {
    static F: OnceLock<Vec<Arc<TokenFsm>>> = OnceLock::new();
    F.get_or_init(|| {
        REGEXES
            .iter()
            .map(|p| Arc::new(TokenFsm::from_regex(p, vocab(), &Limits::default()).unwrap()))
            .collect()
    })
}

const SCHEMAS: &[&str] = &[
    // Object with required and optional fields, nested object, formats.
    r#"{"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 8},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "email": {"type": "string", "format": "email"},
        "tags": {"type": "array", "items": {"enum": ["a", "b", "c\"d"]}, "maxItems": 3},
        "address": {"type": "object", "properties": {
            "street": {"type": "string", "minLength": 1},
            "zip": {"type": "string", "pattern": "^[0-9]{5}$"}
        }, "required": ["zip"]},
        "active": {"type": "boolean"}
    }, "required": ["name", "age"]}"#,
    // Formats, bounded numbers, tagged unions, nullable.
    r#"{"type": "object", "properties": {
        "id": {"type": "string", "format": "uuid"},
        "when": {"type": "string", "format": "date-time"},
        "day": {"type": "string", "format": "date"},
        "at": {"type": "string", "format": "time"},
        "url": {"type": "string", "format": "uri"},
        "price": {"type": "number", "minimum": 0, "exclusiveMaximum": 1000},
        "delta": {"type": "integer", "exclusiveMinimum": -20, "maximum": 7},
        "kind": {"oneOf": [
            {"type": "object", "properties": {"t": {"const": "a"}, "x": {"type": "integer"}}, "required": ["t", "x"]},
            {"type": "object", "properties": {"t": {"const": "b"}, "y": {"type": "string"}}, "required": ["t"]}
        ]},
        "note": {"type": ["string", "null"]}
    }, "required": ["id", "kind"]}"#,
    // Recursive tree through $defs, unrolled to the depth cap.
    r##"{"$defs": {"node": {"type": "object", "properties": {
            "value": {"type": "number"},
            "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}
        }, "required": ["value", "children"]}},
      "$ref": "#/$defs/node"}"##,
    // Tuples, anyOf, draft-7 definitions.
    r##"{"definitions": {"pt": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}], "items": false, "minItems": 2}},
      "type": "array", "items": {"anyOf": [{"$ref": "#/definitions/pt"}, {"type": "null"}, {"type": "string", "minLength": 2, "maxLength": 5}]},
      "minItems": 1, "maxItems": 4}"##,
    // Anything (depth-bounded).
    r#"{}"#,
    // Map of integers.
    r#"{"type": "object", "additionalProperties": {"type": "integer", "minimum": -5, "maximum": 5}}"#,
    // Escapes in strings and an enum of odd strings.
    r#"{"type": "array", "items": {"anyOf": [
        {"type": "string", "pattern": "^\\\\d\"[a-c]+\\n?$"},
        {"enum": ["tab\there", "quote\"", "back\\slash", "é日本"]}
    ]}}"#,
];

/// CI runs the small default; `PROPTEST_CASES=5000` runs a soak locally.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct SchemaCase {
    fsm: Arc<TokenFsm>,
    validator: jsonschema::Validator,
}

fn schema_cases() -> &'static Vec<SchemaCase> {
    static C: OnceLock<Vec<SchemaCase>> = OnceLock::new();
    C.get_or_init(|| {
        let mut cases = Vec::new();
        for (i, text) in SCHEMAS.iter().enumerate() {
            let schema: serde_json::Value = serde_json::from_str(text).unwrap();
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true)
                .build(&schema)
                .unwrap();
            // Alternate compact and flexible whitespace across schemas.
            let whitespace = if i.is_multiple_of(2) {
                Whitespace::Compact
            } else {
                Whitespace::Flexible { max: 2 }
            };
            let opts = SchemaOptions {
                whitespace,
                ..Default::default()
            };
            let regex =
                schema_str_to_regex(text, &opts).unwrap_or_else(|e| panic!("schema {i}: {e}"));
            let fsm = Arc::new(
                TokenFsm::from_regex(
                    &regex,
                    vocab(),
                    &Limits {
                        max_pattern_len: usize::MAX,
                        ..Default::default()
                    },
                )
                .unwrap_or_else(|e| panic!("schema {i}: {e}")),
            );
            cases.push(SchemaCase { fsm, validator });
        }
        cases
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(48), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn regex_walks_match_per_the_regex_crate(which in 0..REGEXES.len(), seed: u64) {
        let fsm = &regex_fsms()[which];
        let walk = random_walk(fsm, seed, 60);
        let text = std::str::from_utf8(&walk.output);
        prop_assert!(text.is_ok(), "not UTF-8: {:?}", walk.output);
        let reference = regex::Regex::new(&format!("^(?:{})$", REGEXES[which])).unwrap();
        prop_assert!(reference.is_match(text.unwrap()), "{:?} does not match {}", text, REGEXES[which]);
        // Spot-check masks and forced bytes along the way.
        for s in walk.states.iter().step_by(7) {
            check_state(fsm, *s);
        }
    }

    #[test]
    fn schema_walks_parse_and_validate(which in 0..SCHEMAS.len(), seed: u64) {
        let case = &schema_cases()[which];
        let walk = random_walk(&case.fsm, seed, 250);
        let value: Result<serde_json::Value, _> = serde_json::from_slice(&walk.output);
        prop_assert!(value.is_ok(), "does not parse: {}", String::from_utf8_lossy(&walk.output));
        let value = value.unwrap();
        let errors: Vec<String> = case.validator.iter_errors(&value).map(|e| e.to_string()).collect();
        prop_assert!(errors.is_empty(), "{} invalid: {:?}", String::from_utf8_lossy(&walk.output), errors);
        for s in walk.states.iter().step_by(23) {
            check_state(&case.fsm, *s);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(24), failure_persistence: None, ..ProptestConfig::default() })]

    /// Fresh random vocabularies (with duplicate and overlapping tokens):
    /// the trie-walk mask equals the per-token walk at every state of a walk.
    #[test]
    fn trie_masks_equal_per_token_masks(vocab_seed: u64, which in 0..REGEXES.len(), walk_seed: u64) {
        let v = synthetic_vocab(vocab_seed, 300);
        let fsm = TokenFsm::from_regex(REGEXES[which], v, &Limits::default()).unwrap();
        let walk = random_walk(&fsm, walk_seed, 20);
        for s in walk.states {
            prop_assert_eq!(fsm.compute_mask(s), fsm.compute_mask_per_token(s));
        }
    }
}

#[test]
fn some_walks_end_by_sampling_eos() {
    // Uniform sampling must reach EOS on its own for short languages; if it
    // never did, the EOS bit would be untested.
    let fsm = &regex_fsms()[1];
    let by_eos = (0..20)
        .filter(|&seed| random_walk(fsm, seed, 60).ended_by_eos)
        .count();
    assert!(by_eos > 0);
}

#[test]
fn validators_reject_what_the_walks_must_avoid() {
    // The schema check above is only as strict as the validator: make sure
    // formats and bounds are really asserted.
    let cases = schema_cases();
    let bad0 = serde_json::json!({"name": "x", "age": 1, "email": "not-an-email"});
    let bad0b = serde_json::json!({"name": "x", "age": 151});
    assert!(!cases[0].validator.is_valid(&bad0) && !cases[0].validator.is_valid(&bad0b));
    let bad1 = serde_json::json!({"id": "123e4567-e89b-12d3-a456-426614174000", "kind": {"t": "b"}, "day": "2023-02-29"});
    let ok1 = serde_json::json!({"id": "123e4567-e89b-12d3-a456-426614174000", "kind": {"t": "b"}, "day": "2024-02-29"});
    assert!(!cases[1].validator.is_valid(&bad1) && cases[1].validator.is_valid(&ok1));
}
