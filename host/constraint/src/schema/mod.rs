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
mod number;
mod string;

use json::{Json, quote};
use number::{Bound, CAP};

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

fn translate(root: &Json, options: &SchemaOptions) -> Result<String, ConstraintError> {
    let mut t = Translator {
        root,
        opts: options,
        ws: match options.whitespace {
            Whitespace::Compact => String::new(),
            Whitespace::Flexible { max: 0 } => String::new(),
            Whitespace::Flexible { max } => format!("[ \\t\\n\\r]{{0,{max}}}"),
        },
        ref_stack: Vec::new(),
        expansions: 0,
        depth: 0,
        cut_recursion: false,
        any_cache: Vec::new(),
    };
    match t.value(root, "#")? {
        Some(regex) => Ok(regex),
        None if t.cut_recursion => Err(ConstraintError::UnsatisfiableSchema(format!(
            "every value needs recursive $refs nested deeper than max_ref_depth = {}",
            options.max_ref_depth
        ))),
        None => Err(ConstraintError::UnsatisfiableSchema(
            "no JSON value satisfies it".into(),
        )),
    }
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

struct Translator<'a> {
    root: &'a Json,
    opts: &'a SchemaOptions,
    ws: String,
    ref_stack: Vec<String>,
    expansions: usize,
    depth: usize,
    cut_recursion: bool,
    any_cache: Vec<String>,
}

/// `(?:a|b|...)` of the satisfiable alternatives, `None` if there are none.
fn alternation(alts: Vec<Option<String>>) -> Option<String> {
    let mut alts: Vec<String> = alts.into_iter().flatten().collect();
    alts.dedup();
    match alts.len() {
        0 => None,
        1 => alts.pop(),
        _ => Some(format!("(?:{})", alts.join("|"))),
    }
}

impl Translator<'_> {
    fn value(&mut self, schema: &Json, path: &str) -> Gen {
        self.expansions += 1;
        if self.expansions > self.opts.max_expansions {
            return Err(ConstraintError::TooBig(format!(
                "schema expands to more than max_expansions = {} subschemas",
                self.opts.max_expansions
            )));
        }
        // Recursion here follows the schema's nesting (bounded by its parse
        // depth) and $ref unrolling (bounded by max_ref_depth per ref);
        // this guard covers their combination.
        if self.depth >= 200 {
            return Err(invalid(path, "schema nests more than 200 subschemas deep"));
        }
        self.depth += 1;
        let result = self.value_inner(schema, path);
        self.depth -= 1;
        if let Ok(Some(r)) = &result
            && r.len() > self.opts.max_regex_len
        {
            return Err(ConstraintError::TooBig(format!(
                "regex for the schema at {path} exceeds max_regex_len = {} bytes",
                self.opts.max_regex_len
            )));
        }
        result
    }

    fn value_inner(&mut self, schema: &Json, path: &str) -> Gen {
        let entries = match schema {
            Json::Bool(true) => return Ok(Some(self.any(self.opts.any_value_depth))),
            Json::Bool(false) => return Ok(None),
            Json::Object(entries) => entries,
            _ => return Err(invalid(path, "a schema must be an object or a boolean")),
        };
        let refused: Vec<String> = entries
            .iter()
            .filter(|(k, v)| {
                UNSUPPORTED.contains(&k.as_str()) || (k == "uniqueItems" && *v == Json::Bool(true))
            })
            .map(|(k, _)| k.clone())
            .collect();
        if !refused.is_empty() {
            return Err(ConstraintError::UnsupportedKeyword {
                path: path.to_owned(),
                keywords: refused,
            });
        }
        let constraints: Vec<&str> = entries
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| SUPPORTED.contains(k))
            .collect();
        let alone = |keyword: &str| -> Result<(), ConstraintError> {
            let others: Vec<&str> = constraints
                .iter()
                .copied()
                .filter(|k| *k != keyword)
                .collect();
            if others.is_empty() {
                Ok(())
            } else {
                Err(unsupported(
                    path,
                    format!(
                        "{keyword} combined with sibling keywords {}",
                        others.join(", ")
                    ),
                ))
            }
        };

        if let Some(target) = schema.get("$ref") {
            alone("$ref")?;
            return self.reference(target, path);
        }
        if let Some(all) = schema.get("allOf") {
            alone("allOf")?;
            return match all {
                Json::Array(subs) if subs.len() == 1 => {
                    self.value(&subs[0], &format!("{path}/allOf/0"))
                }
                Json::Array(subs) => Err(unsupported(
                    path,
                    format!(
                        "allOf with {} subschemas (only a single one is supported)",
                        subs.len()
                    ),
                )),
                _ => Err(invalid(path, "allOf must be an array")),
            };
        }
        for keyword in ["anyOf", "oneOf"] {
            let Some(subs) = schema.get(keyword) else {
                continue;
            };
            // oneOf is generated like anyOf: branches are expected to be
            // disjoint, as they are in schemas produced from tagged types.
            alone(keyword)?;
            let Json::Array(subs) = subs else {
                return Err(invalid(path, &format!("{keyword} must be an array")));
            };
            let mut alts = Vec::new();
            for (i, sub) in subs.iter().enumerate() {
                alts.push(self.value(sub, &format!("{path}/{keyword}/{i}"))?);
            }
            return Ok(alternation(alts));
        }

        let types: Vec<String> = match schema.get("type") {
            Some(Json::String(t)) => vec![t.clone()],
            Some(Json::Array(ts)) => ts
                .iter()
                .map(|t| match t {
                    Json::String(t) => Ok(t.clone()),
                    _ => Err(invalid(
                        path,
                        "type must be a string or an array of strings",
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(invalid(
                    path,
                    "type must be a string or an array of strings",
                ));
            }
            None => Vec::new(),
        };
        for t in &types {
            if ![
                "null", "boolean", "integer", "number", "string", "array", "object",
            ]
            .contains(&t.as_str())
            {
                return Err(invalid(path, &format!("unknown type {t:?}")));
            }
        }

        if schema.get("enum").is_some() || schema.get("const").is_some() {
            let values: Vec<&Json> = match (schema.get("enum"), schema.get("const")) {
                (Some(_), Some(_)) => {
                    return Err(unsupported(path, "enum together with const".into()));
                }
                (Some(Json::Array(vs)), None) => vs.iter().collect(),
                (Some(_), None) => return Err(invalid(path, "enum must be an array")),
                (None, Some(c)) => vec![c],
                (None, None) => unreachable!("checked above"),
            };
            let alts = values
                .into_iter()
                .filter(|v| types.is_empty() || types.iter().any(|t| v.type_matches(t)))
                .map(|v| Some(regex_syntax::escape(&v.to_compact())))
                .collect();
            return Ok(alternation(alts));
        }

        let types = if types.is_empty() {
            inferred_types(schema)
        } else {
            types
        };
        if types.is_empty() {
            return Ok(Some(self.any(self.opts.any_value_depth)));
        }
        let mut alts = Vec::new();
        for t in &types {
            alts.push(match t.as_str() {
                "null" => Some("null".to_owned()),
                "boolean" => Some("(?:true|false)".to_owned()),
                "integer" => integer(schema, path)?,
                "number" => number(schema, path)?,
                "string" => string(schema, path)?,
                "array" => self.array(schema, path)?,
                "object" => self.object(schema, path)?,
                _ => unreachable!("types were validated"),
            });
        }
        Ok(alternation(alts))
    }

    fn reference(&mut self, target: &Json, path: &str) -> Gen {
        let Json::String(r) = target else {
            return Err(invalid(path, "$ref must be a string"));
        };
        let Some(fragment) = r.strip_prefix('#') else {
            return Err(unsupported(
                path,
                format!("$ref {r:?}: only local references (#/...) are supported"),
            ));
        };
        let resolved = resolve_pointer(self.root, fragment)
            .ok_or_else(|| invalid(path, &format!("$ref {r:?} points to nothing")))?;
        let active = self.ref_stack.iter().filter(|x| *x == r).count();
        if active >= self.opts.max_ref_depth {
            self.cut_recursion = true;
            return Ok(None);
        }
        self.ref_stack.push(r.clone());
        let result = self.value(resolved, r);
        self.ref_stack.pop();
        result
    }

    fn comma(&self) -> String {
        format!("{0},{0}", self.ws)
    }

    /// Any JSON value with arrays/objects nested at most `depth` deep.
    fn any(&mut self, depth: usize) -> String {
        if let Some(r) = self.any_cache.get(depth) {
            return r.clone();
        }
        let scalar = format!(
            "(?:null|true|false|{}|{})",
            number::any_number(),
            string::any_string()
        );
        while self.any_cache.len() <= depth {
            let regex = match self.any_cache.last() {
                None => scalar.clone(),
                Some(inner) => {
                    let (ws, c) = (&self.ws, self.comma());
                    let key = string::any_string();
                    let member = format!("{key}{ws}:{ws}{inner}");
                    format!(
                        r"(?:{scalar}|\[{ws}(?:{inner}(?:{c}{inner})*)?{ws}\]|\{{{ws}(?:{member}(?:{c}{member})*)?{ws}\}})"
                    )
                }
            };
            self.any_cache.push(regex);
        }
        self.any_cache[depth].clone()
    }

    fn array(&mut self, schema: &Json, path: &str) -> Gen {
        let min = u64_keyword(schema, "minItems", path)?.unwrap_or(0);
        let mut max = u64_keyword(schema, "maxItems", path)?;
        // 2020-12: prefixItems + items; drafts 4-7: items array + additionalItems.
        let (prefix_schemas, rest_schema, rest_key): (&[Json], Option<&Json>, &str) =
            match (schema.get("prefixItems"), schema.get("items")) {
                (Some(Json::Array(p)), rest) => (p, rest, "items"),
                (Some(_), _) => return Err(invalid(path, "prefixItems must be an array")),
                (None, Some(Json::Array(p))) => {
                    (p, schema.get("additionalItems"), "additionalItems")
                }
                (None, rest) => (&[], rest, "items"),
            };
        let mut prefix = Vec::new();
        for (i, s) in prefix_schemas.iter().enumerate() {
            match self.value(s, &format!("{path}/prefixItems/{i}"))? {
                Some(r) => prefix.push(r),
                None => {
                    // No value for position i: arrays stop before it.
                    max = Some(max.map_or(i as u64, |m| m.min(i as u64)));
                    break;
                }
            }
        }
        let rest = if max.is_some_and(|m| m <= prefix.len() as u64) {
            None
        } else {
            match rest_schema {
                None => Some(self.any(self.opts.any_value_depth)),
                Some(s) => self.value(s, &format!("{path}/{rest_key}"))?,
            }
        };
        if rest.is_none() {
            max = Some(max.map_or(prefix.len() as u64, |m| m.min(prefix.len() as u64)));
        }
        if max.is_some_and(|m| m < min) {
            return Ok(None);
        }
        let c = self.comma();
        let ws = &self.ws;
        let repeat = |n: u64| n.min(u32::MAX as u64);
        // tail = elements from position i on, each after a comma.
        let m = prefix.len() as u64;
        let mut tail = match (&rest, max) {
            (_, Some(max)) if max <= m => String::new(),
            (None, _) => String::new(),
            (Some(r), max) => {
                let lo = repeat(min.saturating_sub(m));
                match max {
                    Some(max) => format!("(?:{c}{r}){{{lo},{}}}", repeat(max - m)),
                    None => format!("(?:{c}{r}){{{lo},}}"),
                }
            }
        };
        for i in (1..prefix.len()).rev() {
            if max.is_some_and(|max| max <= i as u64) {
                tail.clear();
                continue;
            }
            let inner = format!("{c}{}{tail}", prefix[i]);
            tail = if (i as u64) >= min {
                format!("(?:{inner})?")
            } else {
                inner
            };
        }
        let content = if max == Some(0) {
            String::new()
        } else {
            let first = match prefix.first() {
                Some(p) => format!("{p}{tail}"),
                None => {
                    let r = rest
                        .as_ref()
                        .expect("max > 0 with no prefix implies a rest schema");
                    let lo = repeat(min.saturating_sub(1));
                    match max {
                        Some(max) => format!("{r}(?:{c}{r}){{{lo},{}}}", repeat(max - 1)),
                        None => format!("{r}(?:{c}{r}){{{lo},}}"),
                    }
                }
            };
            if min == 0 {
                format!("(?:{first})?")
            } else {
                first
            }
        };
        Ok(Some(format!(r"\[{ws}{content}{ws}\]")))
    }

    fn object(&mut self, schema: &Json, path: &str) -> Gen {
        let props: &[(String, Json)] = match schema.get("properties") {
            None => &[],
            Some(Json::Object(p)) => p,
            Some(_) => return Err(invalid(path, "properties must be an object")),
        };
        let required: Vec<&str> = match schema.get("required") {
            None => Vec::new(),
            Some(Json::Array(r)) => r
                .iter()
                .map(|x| match x {
                    Json::String(s) => Ok(s.as_str()),
                    _ => Err(invalid(path, "required must be an array of strings")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(invalid(path, "required must be an array of strings")),
        };
        let additional = schema.get("additionalProperties");
        let (ws, c) = (self.ws.clone(), self.comma());

        // (member regex, required) in generation order.
        let mut members: Vec<(String, bool)> = Vec::new();
        for (name, sub) in props {
            let is_required = required.contains(&name.as_str());
            match self.value(sub, &format!("{path}/properties/{name}"))? {
                Some(v) => members.push((
                    format!("{}{ws}:{ws}{v}", regex_syntax::escape(&quote(name))),
                    is_required,
                )),
                None if is_required => return Ok(None),
                None => {}
            }
        }
        for name in required
            .iter()
            .filter(|r| !props.iter().any(|(n, _)| n == *r))
        {
            // Required but not declared: its value follows additionalProperties.
            let value = match additional {
                None | Some(Json::Bool(true)) => Some(self.any(self.opts.any_value_depth)),
                Some(s) => self.value(s, &format!("{path}/additionalProperties"))?,
            };
            match value {
                Some(v) => members.push((
                    format!("{}{ws}:{ws}{v}", regex_syntax::escape(&quote(name))),
                    true,
                )),
                None => return Ok(None),
            }
        }

        if members.is_empty() {
            // A map with arbitrary keys, when additional properties are
            // explicitly allowed and nothing is declared.
            let value = match additional {
                Some(Json::Bool(true)) => Some(self.any(self.opts.any_value_depth)),
                Some(s @ Json::Object(_)) => {
                    self.value(s, &format!("{path}/additionalProperties"))?
                }
                _ => None,
            };
            let content = match value {
                Some(v) => {
                    let member = format!("{}{ws}:{ws}{v}", string::any_string());
                    format!("(?:{member}(?:{c}{member})*)?")
                }
                None => String::new(),
            };
            return Ok(Some(format!(r"\{{{ws}{content}{ws}\}}")));
        }

        // rests[i]: members i.. each preceded by a comma, optional ones optional.
        let mut rests = vec![String::new(); members.len() + 1];
        for i in (0..members.len()).rev() {
            let (m, req) = &members[i];
            rests[i] = if *req {
                format!("{c}{m}{}", rests[i + 1])
            } else {
                format!("(?:{c}{m})?{}", rests[i + 1])
            };
        }
        // Split on the first member present: it takes no comma. Only members
        // up to the first required one can come first.
        let first_required = members.iter().position(|(_, r)| *r);
        let last_first = first_required.unwrap_or(members.len() - 1);
        let alts: Vec<String> = (0..=last_first)
            .map(|f| format!("{}{}", members[f].0, rests[f + 1]))
            .collect();
        let mut content = if alts.len() == 1 {
            alts[0].clone()
        } else {
            format!("(?:{})", alts.join("|"))
        };
        if first_required.is_none() {
            content = format!("(?:{content})?");
        }
        Ok(Some(format!(r"\{{{ws}{content}{ws}\}}")))
    }
}

/// Types implied by the keywords present when `type` is absent. A value of
/// another type would also validate; generating only these is a subset.
fn inferred_types(schema: &Json) -> Vec<String> {
    let has = |ks: &[&str]| ks.iter().any(|k| schema.get(k).is_some());
    let mut types = Vec::new();
    if has(&["properties", "required", "additionalProperties"]) {
        types.push("object".to_owned());
    }
    if has(&[
        "items",
        "prefixItems",
        "additionalItems",
        "minItems",
        "maxItems",
    ]) {
        types.push("array".to_owned());
    }
    if has(&["minLength", "maxLength", "pattern", "format"]) {
        types.push("string".to_owned());
    }
    if has(&["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]) {
        types.push("number".to_owned());
    }
    types
}

fn u64_keyword(schema: &Json, key: &str, path: &str) -> Result<Option<u64>, ConstraintError> {
    match schema.get(key) {
        None => Ok(None),
        Some(Json::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or_else(|| invalid(path, &format!("{key} must be a non-negative integer"))),
        Some(_) => Err(invalid(
            path,
            &format!("{key} must be a non-negative integer"),
        )),
    }
}

/// Lower and upper bounds from minimum/maximum and their exclusive forms
/// (a number in draft 6+, a boolean modifier in draft 4). When both forms
/// bound one side, the tighter wins.
/// A bound as read from the schema: value and whether it is inclusive.
type RawBound = Option<(f64, bool)>;

fn bounds(schema: &Json, path: &str) -> Result<(RawBound, RawBound), ConstraintError> {
    let num = |key: &str| -> Result<Option<f64>, ConstraintError> {
        match schema.get(key) {
            None | Some(Json::Bool(_)) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| invalid(path, &format!("{key} must be a number"))),
        }
    };
    let flag = |key: &str| schema.get(key) == Some(&Json::Bool(true));
    let pick = |inclusive: Option<f64>, exclusive: Option<f64>, draft4_flag: bool, lower: bool| {
        let a = inclusive.map(|v| (v, !draft4_flag));
        let b = exclusive.map(|v| (v, false));
        match (a, b) {
            (Some(a), Some(b)) => {
                let tighter_b = if lower { b.0 >= a.0 } else { b.0 <= a.0 };
                Some(if tighter_b { b } else { a })
            }
            (a, b) => a.or(b),
        }
    };
    let lower = pick(
        num("minimum")?,
        num("exclusiveMinimum")?,
        flag("exclusiveMinimum"),
        true,
    );
    let upper = pick(
        num("maximum")?,
        num("exclusiveMaximum")?,
        flag("exclusiveMaximum"),
        false,
    );
    Ok((lower, upper))
}

/// Clamps to the range [`number::integer_range`] can print.
fn clamp(v: f64) -> i128 {
    let limit = u64::MAX as i128;
    (v as i128).clamp(-limit, limit)
}

fn integer(schema: &Json, path: &str) -> Gen {
    let (lower, upper) = bounds(schema, path)?;
    let lo = lower.map(|(v, inc)| clamp(if inc { v.ceil() } else { v.floor() + 1.0 }));
    let hi = upper.map(|(v, inc)| clamp(if inc { v.floor() } else { v.ceil() - 1.0 }));
    let cap = CAP as i128;
    // An absent side is capped so that values stay within i64.
    let lo_eff = lo.unwrap_or(-cap.max(hi.map_or(0, |h| -h)));
    let hi_eff = hi.unwrap_or(cap.max(lo.unwrap_or(0)));
    Ok(number::integer_range(lo_eff, hi_eff))
}

fn number(schema: &Json, path: &str) -> Gen {
    let (lower, upper) = bounds(schema, path)?;
    if lower.is_none() && upper.is_none() {
        return Ok(Some(number::any_number()));
    }
    let to_bound = |b: RawBound| -> Result<Option<Bound>, ConstraintError> {
        match b {
            None => Ok(None),
            Some((v, inclusive)) if v.is_finite() && v.fract() == 0.0 => Ok(Some(Bound {
                value: clamp(v),
                inclusive,
            })),
            Some((v, _)) => Err(unsupported(
                path,
                format!(
                    "number bound {v} is not an integer (only integral bounds are supported for type number)"
                ),
            )),
        }
    };
    Ok(number::number_range(to_bound(lower)?, to_bound(upper)?))
}

fn string(schema: &Json, path: &str) -> Gen {
    let min = u64_keyword(schema, "minLength", path)?;
    let max = u64_keyword(schema, "maxLength", path)?;
    let pattern = match schema.get("pattern") {
        None => None,
        Some(Json::String(p)) => Some(p.as_str()),
        Some(_) => return Err(invalid(path, "pattern must be a string")),
    };
    let format = match schema.get("format") {
        None => None,
        Some(Json::String(f)) => Some(f.as_str()),
        Some(_) => return Err(invalid(path, "format must be a string")),
    };
    let lengths = min.is_some() || max.is_some();
    match (pattern, format) {
        (Some(_), Some(_)) => Err(unsupported(path, "pattern together with format".into())),
        (Some(_), None) | (None, Some(_)) if lengths => Err(unsupported(
            path,
            "minLength/maxLength together with pattern or format".into(),
        )),
        (Some(p), None) => match string::pattern_string(p, 128) {
            Ok(r) => Ok(Some(r)),
            Err(string::PatternError::Syntax(e)) => {
                Err(invalid(path, &format!("pattern {p:?}: {e}")))
            }
            Err(string::PatternError::Unsupported(e)) => {
                Err(unsupported(path, format!("pattern {p:?}: {e}")))
            }
        },
        (None, Some(f)) => match string::format_regex(f) {
            Some(r) => Ok(Some(format!("\"{r}\""))),
            None => Err(unsupported(
                path,
                format!(
                    "format {f:?} (supported: date-time, date, time, email, uuid, uri, hostname, ipv4)"
                ),
            )),
        },
        (None, None) if lengths => Ok(string::length_bounded(min.unwrap_or(0), max)),
        (None, None) => Ok(Some(string::any_string())),
    }
}

/// Follows a JSON pointer given as a URI fragment (`/$defs/a~1b`).
fn resolve_pointer<'a>(root: &'a Json, fragment: &str) -> Option<&'a Json> {
    let decoded = percent_decode(fragment)?;
    if decoded.is_empty() {
        return Some(root);
    }
    let mut node = root;
    for token in decoded.strip_prefix('/')?.split('/') {
        let token = token.replace("~1", "/").replace("~0", "~");
        node = match node {
            Json::Object(_) => node.get(&token)?,
            Json::Array(items) => items.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests;
