//! Keyword readers and per-type generators shared by the translator:
//! bounds, lengths, inferred types, `$ref` pointers.

use super::*;

/// Types implied by the keywords present when `type` is absent. A value of
/// another type would also validate; generating only these is a subset.
pub(super) fn inferred_types(schema: &Json) -> Vec<String> {
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

pub(super) fn u64_keyword(
    schema: &Json,
    key: &str,
    path: &str,
) -> Result<Option<u64>, ConstraintError> {
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
pub(super) type RawBound = Option<(f64, bool)>;

pub(super) fn bounds(schema: &Json, path: &str) -> Result<(RawBound, RawBound), ConstraintError> {
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
pub(super) fn clamp(v: f64) -> i128 {
    let limit = u64::MAX as i128;
    (v as i128).clamp(-limit, limit)
}

pub(super) fn integer(schema: &Json, path: &str) -> Gen {
    let (lower, upper) = bounds(schema, path)?;
    let lo = lower.map(|(v, inc)| clamp(if inc { v.ceil() } else { v.floor() + 1.0 }));
    let hi = upper.map(|(v, inc)| clamp(if inc { v.floor() } else { v.ceil() - 1.0 }));
    let cap = CAP as i128;
    // An absent side is capped so that values stay within i64.
    let lo_eff = lo.unwrap_or(-cap.max(hi.map_or(0, |h| -h)));
    let hi_eff = hi.unwrap_or(cap.max(lo.unwrap_or(0)));
    Ok(number::integer_range(lo_eff, hi_eff))
}

pub(super) fn number(schema: &Json, path: &str) -> Gen {
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

pub(super) fn string(schema: &Json, path: &str) -> Gen {
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
pub(super) fn resolve_pointer<'a>(root: &'a Json, fragment: &str) -> Option<&'a Json> {
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

pub(super) fn percent_decode(s: &str) -> Option<String> {
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
