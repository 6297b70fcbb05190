//! Hostile constraints fail fast with a clear error: no hang, no panic.

mod common;

use std::time::{Duration, Instant};

use arbor_constraint::{
    ConstraintError, Limits, SchemaOptions, TokenFsm, schema_str_to_regex, schema_to_regex,
};

fn compile(pattern: &str) -> Result<TokenFsm, ConstraintError> {
    TokenFsm::from_regex(pattern, common::synthetic_vocab(1, 100), &Limits::default())
}

/// Runs `f`, asserting it returns within `limit` (generous for a debug build
/// on 2 cores; a hang would exceed it by orders of magnitude).
fn timed<T>(limit: Duration, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    assert!(start.elapsed() < limit, "took {:?}", start.elapsed());
    out
}

#[test]
fn exponential_dfa_hits_the_size_limit() {
    for pattern in [r"(a|b)*a(a|b){40}", r"(\w|\W)*x(\w|\W){20}"] {
        let err = timed(Duration::from_secs(20), || compile(pattern)).unwrap_err();
        assert!(
            matches!(err, ConstraintError::TooBig(_)),
            "{pattern}: {err}"
        );
        assert!(err.to_string().contains("limit"), "{err}");
    }
}

#[test]
fn huge_counted_repetition_hits_the_nfa_limit() {
    let err = timed(Duration::from_secs(20), || compile(r"\w{50000}")).unwrap_err();
    assert!(matches!(err, ConstraintError::TooBig(_)), "{err}");
}

#[test]
fn megabyte_pattern_is_refused_by_length() {
    let pattern = "a".repeat(1 << 20);
    let err = timed(Duration::from_secs(1), || compile(&pattern)).unwrap_err();
    assert_eq!(
        err,
        ConstraintError::PatternTooLong {
            len: 1 << 20,
            max: 64 * 1024
        }
    );
    assert!(err.to_string().contains("1048576 bytes"));
}

#[test]
fn deep_nesting_is_refused_by_the_parser() {
    let pattern = format!("{}a{}", "(".repeat(5000), ")".repeat(5000));
    let err = compile(&pattern).unwrap_err();
    assert!(
        matches!(err, ConstraintError::InvalidRegex(ref m) if m.contains("nest")),
        "{err}"
    );
}

#[test]
fn empty_only_and_impossible_regexes_are_errors() {
    assert_eq!(compile("").unwrap_err(), ConstraintError::OnlyEmpty);
    assert_eq!(
        compile("(?:x{0})*").unwrap_err(),
        ConstraintError::OnlyEmpty
    );
    assert_eq!(
        compile(r"[^\x00-\x{10FFFF}]").unwrap_err(),
        ConstraintError::MatchesNothing
    );
    assert!(
        compile("")
            .unwrap_err()
            .to_string()
            .contains("only the empty string")
    );
}

#[test]
fn invalid_and_unsupported_regexes_are_errors() {
    assert!(matches!(
        compile("a(b"),
        Err(ConstraintError::InvalidRegex(_))
    ));
    assert!(matches!(
        compile("(?=a)"),
        Err(ConstraintError::InvalidRegex(_))
    ));
    assert!(matches!(
        compile(r"\bword\b"),
        Err(ConstraintError::UnsupportedRegex(_))
    ));
}

#[test]
fn self_referencing_schemas_terminate() {
    let opts = SchemaOptions::default();
    // Pure self-reference: no finite value at all.
    let err = timed(Duration::from_secs(5), || {
        schema_to_regex(&serde_json::json!({"$ref": "#"}), &opts)
    })
    .unwrap_err();
    assert!(
        matches!(err, ConstraintError::UnsatisfiableSchema(_)),
        "{err}"
    );
    // Mutual recursion with required fields: also no finite value.
    let mutual = r##"{"$defs": {"a": {"type": "object", "properties": {"b": {"$ref": "#/$defs/b"}}, "required": ["b"]},
                                "b": {"type": "array", "items": {"$ref": "#/$defs/a"}, "minItems": 1}},
                      "$ref": "#/$defs/a"}"##;
    let err = timed(Duration::from_secs(5), || {
        schema_str_to_regex(mutual, &opts)
    })
    .unwrap_err();
    assert!(err.to_string().contains("max_ref_depth"), "{err}");
    // A recursive schema with a base case compiles, cut at the depth cap.
    let list = r##"{"type": "object", "properties": {"next": {"$ref": "#"}}}"##;
    let regex = schema_str_to_regex(list, &opts).unwrap();
    let re = regex::Regex::new(&format!("^(?:{regex})$")).unwrap();
    assert!(re.is_match(r#"{"next":{"next":{}}}"#));
    assert!(!re.is_match(r#"{"next":{"next":{"next":{"next":{}}}}}"#));
}

#[test]
fn unsupported_schema_keywords_are_named() {
    let schema = r#"{"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": true, "contains": {"const": 1}}}}"#;
    let err = schema_str_to_regex(schema, &SchemaOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported JSON Schema keyword(s) at #/properties/tags: uniqueItems, contains"
    );
}

#[test]
fn schemas_whose_regex_explodes_are_refused() {
    // 60 optional properties: the regex grows quadratically.
    let props: Vec<String> = (0..60)
        .map(|i| format!(r#""p{i}": {{"type": "string", "format": "date-time"}}"#))
        .collect();
    let schema = format!(
        r#"{{"type": "object", "properties": {{{}}}}}"#,
        props.join(",")
    );
    let opts = SchemaOptions {
        max_regex_len: 64 * 1024,
        ..Default::default()
    };
    let err = timed(Duration::from_secs(5), || {
        schema_str_to_regex(&schema, &opts)
    })
    .unwrap_err();
    assert!(
        matches!(err, ConstraintError::TooBig(ref m) if m.contains("max_regex_len")),
        "{err}"
    );
}

#[test]
fn garbage_schemas_never_panic() {
    let opts = SchemaOptions::default();
    for text in [
        "null",
        "[]",
        r#"{"type": 3}"#,
        r#"{"properties": []}"#,
        r#"{"required": "a"}"#,
        r#"{"enum": 1}"#,
        r#"{"minLength": -1}"#,
        r#"{"items": 3}"#,
        r#"{"$ref": 3}"#,
        r##"{"$ref": "#/%zz"}"##,
        r#"{"anyOf": {}}"#,
        r#"{"type": "integer", "minimum": "0"}"#,
        r#"{"type": "integer", "minimum": 1e300, "maximum": -1e300}"#,
        r#"{"type": "string", "pattern": "\\"}"#,
        r#"{"type": "array", "minItems": 5, "maxItems": 2}"#,
        r#"{"type": "number", "minimum": 5, "maximum": 5, "exclusiveMaximum": 5}"#,
    ] {
        let result = schema_str_to_regex(text, &opts);
        assert!(result.is_err(), "{text} gave {result:?}");
    }
}
