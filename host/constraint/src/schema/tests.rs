use serde_json::json;

use super::*;

fn regex_for(schema: serde_json::Value) -> regex::Regex {
    let r = schema_to_regex(&schema, &SchemaOptions::default()).unwrap();
    regex::Regex::new(&format!("^(?:{r})$")).unwrap()
}

#[test]
fn optional_properties_keep_commas_right() {
    let re = regex_for(json!({
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "boolean"}, "c": {"type": "null"}},
        "required": ["b"]
    }));
    for ok in [
        r#"{"b":true}"#,
        r#"{"a":1,"b":false}"#,
        r#"{"b":true,"c":null}"#,
        r#"{"a":-2,"b":true,"c":null}"#,
    ] {
        assert!(re.is_match(ok), "{ok}");
    }
    for bad in [
        r#"{}"#,
        r#"{"a":1}"#,
        r#"{,"b":true}"#,
        r#"{"b":true,}"#,
        r#"{"a":1"b":true}"#,
        r#"{"b":true,"a":1}"#,
    ] {
        assert!(!re.is_match(bad), "{bad}");
    }
}

#[test]
fn all_optional_properties_allow_the_empty_object() {
    let re = regex_for(json!({"properties": {"x": {"const": 1}, "y": {"const": 2}}}));
    for ok in ["{}", r#"{"x":1}"#, r#"{"y":2}"#, r#"{"x":1,"y":2}"#] {
        assert!(re.is_match(ok), "{ok}");
    }
    assert!(!re.is_match(r#"{"y":2,"x":1}"#));
}

#[test]
fn declared_order_comes_from_schema_text() {
    let text = r#"{"type":"object","properties":{"zeta":{"type":"null"},"alpha":{"type":"null"}},"required":["zeta","alpha"]}"#;
    let r = schema_str_to_regex(text, &SchemaOptions::default()).unwrap();
    let re = regex::Regex::new(&format!("^(?:{r})$")).unwrap();
    assert!(re.is_match(r#"{"zeta":null,"alpha":null}"#));
}

#[test]
fn arrays_respect_item_counts_and_tuples() {
    let re = regex_for(
        json!({"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3}),
    );
    assert!(re.is_match("[1,2]") && re.is_match("[1,2,3]"));
    assert!(!re.is_match("[1]") && !re.is_match("[1,2,3,4]") && !re.is_match("[]"));
    let re = regex_for(
        json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": false}),
    );
    for ok in ["[]", r#"["a"]"#, r#"["a",1]"#] {
        assert!(re.is_match(ok), "{ok}");
    }
    assert!(!re.is_match(r#"["a",1,2]"#) && !re.is_match("[1]"));
    let re = regex_for(
        json!({"type": "array", "prefixItems": [{"const": "k"}], "items": {"type": "null"}, "minItems": 2}),
    );
    assert!(re.is_match(r#"["k",null]"#) && re.is_match(r#"["k",null,null]"#));
    assert!(!re.is_match(r#"["k"]"#));
}

#[test]
fn flexible_whitespace_is_bounded() {
    let opts = SchemaOptions {
        whitespace: Whitespace::Flexible { max: 2 },
        ..Default::default()
    };
    let r = schema_to_regex(&json!({"type": "array", "items": {"type": "null"}}), &opts).unwrap();
    let re = regex::Regex::new(&format!("^(?:{r})$")).unwrap();
    assert!(re.is_match("[ null ,\n null\t]"));
    assert!(re.is_match("[]"));
    assert!(!re.is_match("[   null]"));
}

#[test]
fn enums_consts_and_type_unions() {
    let re = regex_for(json!({"enum": ["a\"b", 1, null, {"k": [true]}]}));
    for ok in [r#""a\"b""#, "1", "null", r#"{"k":[true]}"#] {
        assert!(re.is_match(ok), "{ok}");
    }
    let re = regex_for(json!({"type": ["string", "null"], "enum": ["x", null, 3]}));
    assert!(re.is_match(r#""x""#) && re.is_match("null") && !re.is_match("3"));
    let re = regex_for(
        json!({"anyOf": [{"type": "boolean"}, {"type": "integer", "minimum": 5, "maximum": 7}]}),
    );
    assert!(re.is_match("true") && re.is_match("6") && !re.is_match("8"));
}

#[test]
fn refs_resolve_locally_and_recursion_is_unrolled_to_the_cap() {
    let schema = r##"{
        "$defs": {"node": {"type": "object", "properties": {
            "v": {"type": "integer"},
            "next": {"$ref": "#/$defs/node"}
        }, "required": ["v"]}},
        "$ref": "#/$defs/node"
    }"##;
    let opts = SchemaOptions {
        max_ref_depth: 2,
        ..Default::default()
    };
    let r = schema_str_to_regex(schema, &opts).unwrap();
    let re = regex::Regex::new(&format!("^(?:{r})$")).unwrap();
    assert!(re.is_match(r#"{"v":1,"next":{"v":2}}"#));
    assert!(
        !re.is_match(r#"{"v":1,"next":{"v":2,"next":{"v":3}}}"#),
        "deeper than the cap"
    );
    // definitions (draft 7) and escaped pointer tokens.
    let re = regex_for(json!({"definitions": {"a/b": {"const": 1}}, "$ref": "#/definitions/a~1b"}));
    assert!(re.is_match("1"));
}

#[test]
fn hostile_and_unsupported_schemas_get_clear_errors() {
    let opts = SchemaOptions::default();
    let err = schema_to_regex(&json!({"$ref": "#"}), &opts).unwrap_err();
    assert!(
        matches!(err, ConstraintError::UnsatisfiableSchema(ref m) if m.contains("max_ref_depth")),
        "{err}"
    );
    let err = schema_str_to_regex(
        r#"{"type": "object", "properties": {"a": {"not": {}, "multipleOf": 2}}}"#,
        &opts,
    )
    .unwrap_err();
    assert_eq!(
        err,
        ConstraintError::UnsupportedKeyword {
            path: "#/properties/a".into(),
            keywords: vec!["not".into(), "multipleOf".into()]
        }
    );
    assert!(err.to_string().contains("not, multipleOf"), "{err}");
    for (schema, needle) in [
        (json!({"$ref": "https://example.com/s.json"}), "only local"),
        (json!({"$ref": "#/$defs/missing"}), "points to nothing"),
        (
            json!({"type": "string", "format": "color"}),
            "format \"color\"",
        ),
        (json!({"type": "number", "minimum": 0.5}), "not an integer"),
        (
            json!({"allOf": [{"type": "string"}, {"minLength": 1}]}),
            "allOf with 2",
        ),
        (json!({"type": "strin"}), "unknown type"),
        (json!({"type": "string", "pattern": "(?=a)"}), "pattern"),
        (json!({"type": "string", "pattern": "a^b"}), "assertion"),
        (json!(3), "object or a boolean"),
    ] {
        let err = schema_to_regex(&schema, &opts).unwrap_err().to_string();
        assert!(err.contains(needle), "{schema}: {err}");
    }
    assert!(matches!(
        schema_to_regex(&json!(false), &opts),
        Err(ConstraintError::UnsatisfiableSchema(_))
    ));
    // Doubling references: a chain of 40 definitions, each using the next twice.
    let mut defs = serde_json::Map::new();
    for i in 0..40 {
        defs.insert(format!("d{i}"), json!({"type": "array", "prefixItems": [{"$ref": format!("#/$defs/d{}", i + 1)}, {"$ref": format!("#/$defs/d{}", i + 1)}]}));
    }
    defs.insert("d40".into(), json!({"type": "null"}));
    let err = schema_to_regex(&json!({"$defs": defs, "$ref": "#/$defs/d0"}), &opts).unwrap_err();
    assert!(matches!(err, ConstraintError::TooBig(_)), "{err}");
}

#[test]
fn any_value_is_depth_bounded_json() {
    let re = regex_for(json!({}));
    for ok in ["1", r#""s""#, "[[1],{}]", r#"{"a":[1,2],"b":{}}"#] {
        assert!(re.is_match(ok), "{ok}");
    }
    assert!(!re.is_match("[[[1]]]"), "depth 3 > any_value_depth 2");
    assert!(
        !re.is_match(r#"{"a":[1,{"b":null}]}"#),
        "depth 3 > any_value_depth 2"
    );
    let re = regex_for(json!({"type": "object", "additionalProperties": {"type": "integer"}}));
    assert!(re.is_match(r#"{"x":1,"y":2}"#) && re.is_match("{}") && !re.is_match(r#"{"x":"1"}"#));
}
