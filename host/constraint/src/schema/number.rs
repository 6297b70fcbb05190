//! Regexes for JSON integers and numbers, optionally within bounds.
//!
//! Without bounds, magnitudes are capped at 18 integer digits (every value
//! fits an i64 and parses exactly as f64's neighbourhood allows), fractions
//! at 17 digits (f64 precision) and exponents at 2 digits, so that every
//! generated number parses in ordinary JSON libraries (1e400 does not).

/// Largest magnitude generated when a side is unbounded: 18 nines.
pub(crate) const CAP: u64 = 999_999_999_999_999_999;

const FRACTION: &str = r"(?:\.[0-9]{1,17})?";
const ZERO_FRACTION: &str = r"(?:\.0{1,17})?";
const NONZERO_FRACTION: &str = r"\.0{0,16}[1-9][0-9]{0,16}";
const EXPONENT: &str = r"(?:[eE][+-]?[0-9]{1,2})?";

/// A bound on a number: the value and whether it is included.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bound {
    pub(crate) value: i128,
    pub(crate) inclusive: bool,
}

/// Regex for an unbounded JSON number.
pub(crate) fn any_number() -> String {
    format!("-?(?:0|[1-9][0-9]{{0,17}}){FRACTION}{EXPONENT}")
}

/// Regex for integers in `[lo, hi]`, `None` if the range is empty.
pub(crate) fn integer_range(lo: i128, hi: i128) -> Option<String> {
    if lo > hi {
        return None;
    }
    let mut alts = Vec::new();
    if lo < 0 {
        let mag_hi = lo.unsigned_abs();
        let mag_lo = if hi < 0 { hi.unsigned_abs() } else { 1 };
        alts.push(format!("-{}", uint_range(mag_lo, mag_hi)));
    }
    if hi >= 0 {
        alts.push(uint_range(lo.max(0) as u128, hi as u128));
    }
    Some(alternation(alts))
}

/// Regex for numbers (with optional fraction, no exponent) between integral
/// bounds; `None` if no number satisfies them. An absent side is capped at
/// [`CAP`].
pub(crate) fn number_range(lower: Option<Bound>, upper: Option<Bound>) -> Option<String> {
    let mut alts = Vec::new();
    // x >= 0, written without sign.
    let nonneg_lower = match lower {
        Some(l) if l.value >= 0 => l,
        _ => Bound {
            value: 0,
            inclusive: true,
        },
    };
    let nonneg_upper = upper.unwrap_or(Bound {
        value: CAP as i128,
        inclusive: true,
    });
    if let Some(r) = unsigned_decimal_range(nonneg_lower, nonneg_upper) {
        alts.push(r);
    }
    // x < 0, written as "-" then y = -x > 0.
    let neg_lower = match upper {
        Some(u) if u.value < 0 => Bound {
            value: -u.value,
            inclusive: u.inclusive,
        },
        _ => Bound {
            value: 0,
            inclusive: false,
        },
    };
    let neg_upper = match lower {
        Some(l) => Bound {
            value: -l.value,
            inclusive: l.inclusive,
        },
        None => Bound {
            value: CAP as i128,
            inclusive: true,
        },
    };
    if neg_upper.value > 0
        && let Some(r) = unsigned_decimal_range(neg_lower, neg_upper)
    {
        alts.push(format!("-{r}"));
    }
    (!alts.is_empty()).then(|| alternation(alts))
}

/// Unsigned decimals y with `lower <= y <= upper` (bounds' inclusiveness
/// respected), both bounds non-negative.
fn unsigned_decimal_range(lower: Bound, upper: Bound) -> Option<String> {
    let (c, d) = (lower.value, upper.value);
    if c < 0 || d < 0 || c > d {
        return None;
    }
    let (c, d) = (c as u128, d as u128);
    if c == d {
        return (lower.inclusive && upper.inclusive).then(|| format!("{c}{ZERO_FRACTION}"));
    }
    let mut alts = Vec::new();
    // Integer part c: [c, c+1) when c is included, (c, c+1) otherwise.
    alts.push(if lower.inclusive {
        format!("{c}{FRACTION}")
    } else {
        format!("{c}{NONZERO_FRACTION}")
    });
    if c + 1 < d {
        alts.push(format!("{}{FRACTION}", uint_range(c + 1, d - 1)));
    }
    if upper.inclusive {
        alts.push(format!("{d}{ZERO_FRACTION}"));
    }
    Some(alternation(alts))
}

fn alternation(mut alts: Vec<String>) -> String {
    if alts.len() == 1 {
        return alts.pop().expect("one element");
    }
    format!("(?:{})", alts.join("|"))
}

/// Decimal strings without leading zeros for integers in `[lo, hi]`.
fn uint_range(lo: u128, hi: u128) -> String {
    let mut alts = Vec::new();
    let (lo_digits, hi_digits) = (lo.to_string().len(), hi.to_string().len());
    for len in lo_digits..=hi_digits {
        let smallest = if len == 1 {
            0
        } else {
            10u128.pow(len as u32 - 1)
        };
        let largest = 10u128.pow(len as u32) - 1;
        let (a, b) = (lo.max(smallest), hi.min(largest));
        if a <= b {
            alts.push(same_length_range(
                a.to_string().as_bytes(),
                b.to_string().as_bytes(),
            ));
        }
    }
    alternation(alts)
}

/// Regex for the digit strings between `a` and `b`, which have equal length.
fn same_length_range(a: &[u8], b: &[u8]) -> String {
    if a.is_empty() {
        return String::new();
    }
    if a == b {
        return String::from_utf8(a.to_vec()).expect("digits");
    }
    let (a0, b0) = (a[0], b[0]);
    let rest = a.len() - 1;
    if a0 == b0 {
        return format!("{}{}", a0 as char, same_length_range(&a[1..], &b[1..]));
    }
    let a_rest_min = a[1..].iter().all(|&d| d == b'0');
    let b_rest_max = b[1..].iter().all(|&d| d == b'9');
    let mut alts = Vec::new();
    let mut mid_lo = a0;
    let mut mid_hi = b0;
    if !a_rest_min {
        let nines = vec![b'9'; rest];
        alts.push(format!(
            "{}{}",
            a0 as char,
            same_length_range(&a[1..], &nines)
        ));
        mid_lo = a0 + 1;
    }
    if !b_rest_max {
        mid_hi = b0 - 1;
    }
    if mid_lo <= mid_hi {
        let class = if mid_lo == mid_hi {
            (mid_lo as char).to_string()
        } else {
            format!("[{}-{}]", mid_lo as char, mid_hi as char)
        };
        alts.push(match rest {
            0 => class,
            1 => format!("{class}[0-9]"),
            n => format!("{class}[0-9]{{{n}}}"),
        });
    }
    if !b_rest_max {
        let zeros = vec![b'0'; rest];
        alts.push(format!(
            "{}{}",
            b0 as char,
            same_length_range(&zeros, &b[1..])
        ));
    }
    alternation(alts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn full(re: &str) -> regex::Regex {
        regex::Regex::new(&format!("^(?:{re})$")).unwrap()
    }

    proptest! {
        #[test]
        fn integer_range_matches_exactly_the_range(
            a in -100_000i64..100_000, b in -100_000i64..100_000, probes in prop::collection::vec(-200_000i64..200_000, 40)
        ) {
            let (lo, hi) = (a.min(b) as i128, a.max(b) as i128);
            let re = full(&integer_range(lo, hi).unwrap());
            for x in probes.into_iter().chain([a, b, a - 1, b + 1, 0]) {
                let x = x as i128;
                prop_assert_eq!(re.is_match(&x.to_string()), lo <= x && x <= hi, "{} in [{}, {}]", x, lo, hi);
            }
            prop_assert!(!re.is_match("-0"));
            prop_assert!(!re.is_match("007"));
        }

        #[test]
        fn number_range_matches_exactly_the_range(
            a in -300i64..300, b in -300i64..300, ia: bool, ib: bool, has_lo: bool, has_hi: bool,
            probes in prop::collection::vec((-400i64..400, 0u32..1000), 40)
        ) {
            let lower = has_lo.then_some(Bound { value: a.min(b) as i128, inclusive: ia });
            let upper = has_hi.then_some(Bound { value: a.max(b) as i128, inclusive: ib });
            let inside = |x: f64| {
                lower.is_none_or(|l| if l.inclusive { x >= l.value as f64 } else { x > l.value as f64 })
                    && upper.is_none_or(|u| if u.inclusive { x <= u.value as f64 } else { x < u.value as f64 })
            };
            let re = number_range(lower, upper).map(|r| full(&r));
            for (int, frac) in probes {
                for text in [format!("{int}"), format!("{int}.{frac:03}"), format!("{int}.0")] {
                    let x: f64 = text.parse().unwrap();
                    let matched = re.as_ref().is_some_and(|r| r.is_match(&text));
                    if x == 0.0 && text.starts_with('-') {
                        // Negative zero is never generated; it only must not escape the range.
                        prop_assert!(!matched || inside(x));
                    } else {
                        prop_assert_eq!(matched, inside(x), "{} vs {:?} {:?}", text, lower, upper);
                    }
                }
            }
        }
    }

    #[test]
    fn unbounded_numbers_parse_as_f64() {
        let re = full(&any_number());
        for ok in ["0", "-0", "12.5", "1e99", "-3.25E-7", "999999999999999999"] {
            assert!(re.is_match(ok), "{ok}");
        }
        for bad in ["01", "1.", ".5", "1e100", "+1", "1e", "9999999999999999999"] {
            assert!(!re.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn exclusive_zero_bounds() {
        let pos = full(
            &number_range(
                Some(Bound {
                    value: 0,
                    inclusive: false,
                }),
                None,
            )
            .unwrap(),
        );
        assert!(
            pos.is_match("0.5") && pos.is_match("3") && !pos.is_match("0") && !pos.is_match("0.0")
        );
        assert!(!pos.is_match("-1"));
        assert!(
            number_range(
                Some(Bound {
                    value: 2,
                    inclusive: false
                }),
                Some(Bound {
                    value: 2,
                    inclusive: true
                })
            )
            .is_none()
        );
        assert_eq!(integer_range(3, 2), None);
    }
}
