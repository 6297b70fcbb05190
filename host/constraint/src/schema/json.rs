//! A JSON value that keeps object keys in document order.
//!
//! Property order decides the order of generated fields, and
//! `serde_json::Value` sorts keys unless the `preserve_order` feature is on;
//! turning that feature on here would change map order for every crate in
//! the workspace, so the translator parses schemas into this type instead.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A parsed JSON value with ordered objects.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// Deeper documents are refused when converting a `serde_json::Value`, so
/// the recursive conversion and translation cannot exhaust the stack
/// (`serde_json::from_str` already stops at 128).
const MAX_DEPTH: usize = 256;

impl Json {
    pub(crate) fn from_value(v: &serde_json::Value) -> Option<Self> {
        Self::from_value_at(v, 0)
    }

    fn from_value_at(v: &serde_json::Value, depth: usize) -> Option<Self> {
        if depth > MAX_DEPTH {
            return None;
        }
        Some(match v {
            serde_json::Value::Null => Json::Null,
            serde_json::Value::Bool(b) => Json::Bool(*b),
            serde_json::Value::Number(n) => Json::Number(n.clone()),
            serde_json::Value::String(s) => Json::String(s.clone()),
            serde_json::Value::Array(a) => Json::Array(
                a.iter()
                    .map(|x| Self::from_value_at(x, depth + 1))
                    .collect::<Option<_>>()?,
            ),
            serde_json::Value::Object(o) => Json::Object(
                o.iter()
                    .map(|(k, x)| Some((k.clone(), Self::from_value_at(x, depth + 1)?)))
                    .collect::<Option<_>>()?,
            ),
        })
    }

    /// The value of `key` if this is an object holding it.
    pub(crate) fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    /// The JSON Schema type name this value belongs to (`integer` for
    /// numbers with no fractional part, as validators count them).
    pub(crate) fn type_matches(&self, ty: &str) -> bool {
        match (self, ty) {
            (Json::Null, "null") => true,
            (Json::Bool(_), "boolean") => true,
            (Json::Number(_), "number") => true,
            (Json::Number(n), "integer") => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            (Json::String(_), "string") => true,
            (Json::Array(_), "array") => true,
            (Json::Object(_), "object") => true,
            _ => false,
        }
    }

    /// Compact JSON text of the value.
    pub(crate) fn to_compact(&self) -> String {
        let mut out = String::new();
        self.write_compact(&mut out);
        out
    }

    fn write_compact(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(&n.to_string()),
            Json::String(s) => out.push_str(&quote(s)),
            Json::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    x.write_compact(out);
                }
                out.push(']');
            }
            Json::Object(o) => {
                out.push('{');
                for (i, (k, x)) in o.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&quote(k));
                    out.push(':');
                    x.write_compact(out);
                }
                out.push('}');
            }
        }
    }
}

/// `s` as a JSON string literal.
pub(crate) fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("serializing a str cannot fail")
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
        Ok(Json::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(n)
            .map(Json::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }
    fn visit_str<E>(self, s: &str) -> Result<Json, E> {
        Ok(Json::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Json, E> {
        Ok(Json::String(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(x) = seq.next_element()? {
            items.push(x);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries: Vec<(String, Json)> = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Json>()? {
            // Duplicate keys: the last value wins, as in serde_json::Value.
            match entries.iter_mut().find(|(key, _)| *key == k) {
                Some(slot) => slot.1 = v,
                None => entries.push((k, v)),
            }
        }
        Ok(Json::Object(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_keeps_key_order_and_compact_output_round_trips() {
        let text = r#"{"z": 1, "a": [true, null, 2.5, "q\"\n"], "m": {"y": -3, "b": {}}}"#;
        let j: Json = serde_json::from_str(text).unwrap();
        let Json::Object(entries) = &j else { panic!() };
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["z", "a", "m"]);
        let compact = j.to_compact();
        assert_eq!(
            compact,
            r#"{"z":1,"a":[true,null,2.5,"q\"\n"],"m":{"y":-3,"b":{}}}"#
        );
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&compact).unwrap(),
            v
        );
    }

    #[test]
    fn overly_deep_values_are_refused() {
        let mut v = serde_json::Value::Null;
        for _ in 0..300 {
            v = serde_json::Value::Array(vec![v]);
        }
        assert!(Json::from_value(&v).is_none());
        let j = Json::from_value(&serde_json::json!({"a": 1.0}));
        assert!(j.unwrap().get("a").unwrap().type_matches("integer"));
    }
}
