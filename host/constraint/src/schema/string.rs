//! Regexes for JSON strings: plain, length-bounded, `format`s and `pattern`s.

use regex_syntax::hir::{Class, ClassUnicode, ClassUnicodeRange, Hir, HirKind, Look, Repetition};

/// One character of a JSON string's content as written in JSON: an
/// unescaped character (anything but `"`, `\` and C0 controls), a short
/// escape, a `\u` escape of a non-surrogate, or a `\u` surrogate pair. Lone
/// surrogates are valid RFC 8259 grammar but rejected by strict parsers
/// (serde_json among them), so they are not generated. Each alternative
/// decodes to exactly one code point, which is what `minLength`/`maxLength`
/// count.
pub(crate) const CHAR: &str = concat!(
    r#"(?:[^"\\\x00-\x1F]"#,
    r#"|\\["\\/bfnrt]"#,
    r"|\\u(?:[0-9a-cA-Ce-fE-F][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2})",
    r"|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2})"
);

/// Any JSON string.
pub(crate) fn any_string() -> String {
    format!("\"{CHAR}*\"")
}

/// JSON strings whose decoded length is within `[min, max]`.
pub(crate) fn length_bounded(min: u64, max: Option<u64>) -> Option<String> {
    let clamp = |n: u64| n.min(u32::MAX as u64);
    match max {
        Some(max) if max < min => None,
        Some(max) => Some(format!("\"{CHAR}{{{},{}}}\"", clamp(min), clamp(max))),
        None => Some(format!("\"{CHAR}{{{},}}\"", clamp(min))),
    }
}

const DATE: &str = concat!(
    "(?:[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])",
    "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)",
    "|02-(?:0[1-9]|1[0-9]|2[0-8]))",
    // February 29th only in leap years.
    "|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29)"
);
const TIME: &str = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])";
const UUID: &str = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";
const EMAIL_ATOM: &str = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,20}";
// No leading, trailing or doubled hyphen: RFC 5891 reserves labels with
// hyphens in the 3rd and 4th places for A-labels (`xn--`), and validators
// reject such a label unless it is valid Punycode.
const LABEL: &str = "[A-Za-z0-9](?:-?[A-Za-z0-9]){0,19}";
const IPV4_OCTET: &str = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
const URI_PCHAR: &str = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})";

/// The regex of a string `format` (without quotes), if supported. The
/// regexes produce only characters that need no JSON escaping, and keep
/// lengths within what validators accept (e.g. 64-byte email local parts).
pub(crate) fn format_regex(format: &str) -> Option<String> {
    Some(match format {
        "date" => DATE.to_owned(),
        "time" => TIME.to_owned(),
        "date-time" => format!("{DATE}T{TIME}"),
        "uuid" => UUID.to_owned(),
        "email" => {
            format!(r"{EMAIL_ATOM}(?:\.{EMAIL_ATOM}){{0,2}}@(?:{LABEL}\.){{1,3}}[A-Za-z]{{2,10}}")
        }
        "hostname" => format!(r"{LABEL}(?:\.{LABEL}){{0,3}}"),
        "ipv4" => format!(r"{IPV4_OCTET}(?:\.{IPV4_OCTET}){{3}}"),
        "uri" => {
            // RFC 3986 absolute URI: scheme ":" hier-part [ "?" query ] [ "#" fragment ],
            // with a registered-name host (no IP literals).
            let p = URI_PCHAR;
            let segments = format!("(?:/{p}*)*");
            let host = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*";
            let userinfo = r"(?:(?:[A-Za-z0-9\-._~!$&'()*+,;=:]|%[0-9A-Fa-f]{2})*@)?";
            format!(
                "[A-Za-z][A-Za-z0-9+.-]{{0,15}}:(?://{userinfo}{host}(?::[0-9]{{0,5}})?{segments}|/(?:{p}+{segments})?|{p}+{segments})?(?:\\?(?:{p}|[/?])*)?(?:#(?:{p}|[/?])*)?"
            )
        }
        _ => return None,
    })
}

/// Why a `pattern` could not be turned into a string regex.
pub(crate) enum PatternError {
    Syntax(String),
    Unsupported(String),
}

/// JSON strings whose decoded content contains a match of `pattern` (an
/// ECMA-262 regex, unanchored unless it uses `^`/`$`).
///
/// The pattern is parsed and rewritten so that every character it matches
/// is emitted as valid JSON string content: characters that JSON must escape
/// (`"`, `\`, controls) become their escape sequences, everything else stays
/// raw. Sides not anchored by `^`/`$` are padded with arbitrary string
/// content. ECMA's ASCII `\d`, `\w` (and negations) replace the regex
/// crate's Unicode ones so that validators agree with what is generated.
pub(crate) fn pattern_string(pattern: &str, nest_limit: u32) -> Result<String, PatternError> {
    let ecma = ascii_perl_classes(pattern);
    let hir = regex_syntax::ParserBuilder::new()
        .nest_limit(nest_limit)
        .utf8(true)
        .unicode(true)
        .build()
        .parse(&ecma)
        .map_err(|e| PatternError::Syntax(e.to_string().lines().last().unwrap_or("").to_owned()))?;
    let branches = match hir.kind() {
        HirKind::Alternation(subs) => subs.clone(),
        _ => vec![hir],
    };
    let mut alts = Vec::new();
    for branch in branches {
        let mut items = match branch.kind() {
            HirKind::Concat(items) => items.clone(),
            _ => vec![branch],
        };
        let anchored_start = matches!(
            items.first().map(Hir::kind),
            Some(HirKind::Look(Look::Start))
        );
        if anchored_start {
            items.remove(0);
        }
        let anchored_end = matches!(items.last().map(Hir::kind), Some(HirKind::Look(Look::End)));
        if anchored_end {
            items.pop();
        }
        let body = json_escaped(Hir::concat(items))?;
        let pad = |anchored: bool| {
            if anchored {
                String::new()
            } else {
                format!("{CHAR}*")
            }
        };
        alts.push(format!(
            "{}(?:{}){}",
            pad(anchored_start),
            body,
            pad(anchored_end)
        ));
    }
    Ok(format!("\"(?:{})\"", alts.join("|")))
}

/// Replaces ECMA's ASCII-only `\d \D \w \W` by explicit classes (valid both
/// inside and outside brackets, since the regex crate nests classes).
fn ascii_perl_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str("[0-9]"),
            Some('D') => out.push_str("[^0-9]"),
            Some('w') => out.push_str("[0-9A-Za-z_]"),
            Some('W') => out.push_str("[^0-9A-Za-z_]"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// The JSON escape written for a character that must not appear raw.
fn escape_of(c: char) -> String {
    match c {
        '"' => "\\\"".to_owned(),
        '\\' => "\\\\".to_owned(),
        '\n' => "\\n".to_owned(),
        '\r' => "\\r".to_owned(),
        '\t' => "\\t".to_owned(),
        '\u{8}' => "\\b".to_owned(),
        '\u{c}' => "\\f".to_owned(),
        c => format!("\\u{:04x}", c as u32),
    }
}

fn needs_escape(c: char) -> bool {
    c == '"' || c == '\\' || (c as u32) < 0x20
}

/// Rewrites `hir` over decoded characters into a regex over their JSON
/// encoding.
fn json_escaped(hir: Hir) -> Result<String, PatternError> {
    Ok(rewrite(hir)?.to_string())
}

fn rewrite(hir: Hir) -> Result<Hir, PatternError> {
    Ok(match hir.into_kind() {
        HirKind::Empty => Hir::empty(),
        HirKind::Literal(lit) => {
            let text = String::from_utf8(lit.0.to_vec())
                .map_err(|_| PatternError::Unsupported("pattern matches non-UTF-8 bytes".into()))?;
            let mut encoded = String::new();
            for c in text.chars() {
                if needs_escape(c) {
                    encoded.push_str(&escape_of(c));
                } else {
                    encoded.push(c);
                }
            }
            Hir::literal(encoded.into_bytes())
        }
        HirKind::Class(class) => {
            let class = match class {
                Class::Unicode(u) => u,
                Class::Bytes(b) => b.to_unicode_class().ok_or_else(|| {
                    PatternError::Unsupported("pattern has a non-ASCII byte class".into())
                })?,
            };
            let unsafe_chars = ClassUnicode::new([
                ClassUnicodeRange::new('\0', '\u{1f}'),
                ClassUnicodeRange::new('"', '"'),
                ClassUnicodeRange::new('\\', '\\'),
            ]);
            let mut raw = class.clone();
            raw.difference(&unsafe_chars);
            let mut escaped = class;
            escaped.intersect(&unsafe_chars);
            let mut alts = Vec::new();
            if !raw.ranges().is_empty() {
                alts.push(Hir::class(Class::Unicode(raw)));
            }
            for range in escaped.ranges() {
                for c in range.start()..=range.end() {
                    alts.push(Hir::literal(escape_of(c).into_bytes()));
                }
            }
            Hir::alternation(alts)
        }
        HirKind::Look(look) => {
            return Err(PatternError::Unsupported(format!(
                "assertion {look:?} inside the pattern (only a leading ^ and trailing $ are supported)"
            )));
        }
        HirKind::Repetition(rep) => Hir::repetition(Repetition {
            sub: Box::new(rewrite(*rep.sub)?),
            ..rep
        }),
        HirKind::Capture(cap) => rewrite(*cap.sub)?,
        HirKind::Concat(items) => {
            Hir::concat(items.into_iter().map(rewrite).collect::<Result<_, _>>()?)
        }
        HirKind::Alternation(items) => {
            Hir::alternation(items.into_iter().map(rewrite).collect::<Result<_, _>>()?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(re: &str) -> regex::Regex {
        regex::Regex::new(&format!("^(?:{re})$")).unwrap()
    }

    #[test]
    fn string_regex_accepts_exactly_valid_json_strings() {
        let re = full(&any_string());
        for ok in [
            r#""""#,
            r#""abc""#,
            r#""\"\\\/\b\f\n\r\t""#,
            r#""\u00e9\uD83D\uDE00""#,
            "\"日本\u{7f}\"",
        ] {
            assert!(re.is_match(ok), "{ok}");
            serde_json::from_str::<String>(ok).unwrap();
        }
        for bad in [
            "\"a\nb\"",
            r#""\x""#,
            r#""\u12""#,
            r#""a"b""#,
            r#""\uD800""#,
            r#""\uDC00\uD800""#,
            r#""\""#,
        ] {
            assert!(!re.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn length_counts_code_points_not_bytes() {
        let re = full(&length_bounded(2, Some(3)).unwrap());
        assert!(re.is_match(r#""日本""#));
        assert!(re.is_match(r#""\n\uD83D\uDE00x""#));
        assert!(!re.is_match(r#""日""#));
        assert!(!re.is_match(r#""abcd""#));
        assert!(length_bounded(3, Some(2)).is_none());
    }

    #[test]
    fn patterns_match_decoded_content_and_escape_what_json_requires() {
        let Ok(p) = pattern_string(r#"^a"\d+$"#, 64) else {
            panic!()
        };
        let re = full(&p);
        assert!(re.is_match(r#""a\"12""#));
        assert!(!re.is_match(r#""a"12""#));
        assert!(!re.is_match("\"a\\\"١\""), "ECMA \\d is ASCII");
        let Ok(p) = pattern_string("b.c", 64) else {
            panic!()
        };
        let re = full(&p);
        assert!(re.is_match(r#""xxb\tcyy""#), "unanchored, tab escaped");
        assert!(!re.is_match(r#""bc""#));
        assert!(matches!(
            pattern_string(r"a\bb", 64),
            Err(PatternError::Unsupported(_))
        ));
        assert!(matches!(
            pattern_string(r"(a", 64),
            Err(PatternError::Syntax(_))
        ));
    }

    #[test]
    fn formats_produce_values_validators_accept() {
        for (format, ok, bad) in [
            ("date", "2024-02-29", "2023-02-29"),
            ("date", "1900-02-28", "1900-02-29"),
            (
                "date-time",
                "2000-02-29T23:59:59.5+05:30",
                "2000-13-01T00:00:00Z",
            ),
            ("time", "12:00:00Z", "24:00:00Z"),
            (
                "uuid",
                "123e4567-e89b-12d3-a456-426614174000",
                "123e4567e89b12d3a456426614174000",
            ),
            ("email", "a.b+c@example.com", "a..b@example.com"),
            ("email", "a@ex-am-ple.com", "a@00--ab.com"),
            ("hostname", "a-b.example", "ab--cd.example"),
            ("uri", "https://example.com/a?b=c#d", "no scheme"),
            ("ipv4", "192.168.0.255", "256.1.1.1"),
        ] {
            let re = full(&format_regex(format).unwrap());
            assert!(re.is_match(ok), "{format}: {ok}");
            assert!(!re.is_match(bad), "{format}: {bad}");
        }
        assert!(format_regex("color").is_none());
    }
}
