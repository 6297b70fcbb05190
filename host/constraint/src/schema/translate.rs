//! The translator: one JSON Schema value at a time to a regex, with `$ref`
//! expansion bounded by depth and count.

use super::*;

pub(super) fn translate(root: &Json, options: &SchemaOptions) -> Result<String, ConstraintError> {
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

pub(super) struct Translator<'a> {
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
pub(super) fn alternation(alts: Vec<Option<String>>) -> Option<String> {
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
