//! Run-time values of the JsonLogic evaluator and JavaScript-like coercions.
//!
//! A [`Val`] borrows from the compiled rule and the evaluation context wherever it can; only
//! values computed by the rule itself (`cat`, `map`, `merge`, …) own their storage.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

/// A JsonLogic value during evaluation.
#[derive(Debug, Clone)]
pub enum Val<'a> {
    Null,
    Bool(bool),
    Num(f64),
    Str(Cow<'a, str>),
    /// A borrowed JSON array or object (from the context or a rule constant).
    Json(&'a Value),
    /// An array computed by the rule.
    Arr(Vec<Val<'a>>),
}

impl<'a> Val<'a> {
    /// Borrows a JSON value without copying it.
    pub fn from_json(v: &'a Value) -> Self {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => Val::Num(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => Val::Str(Cow::Borrowed(s)),
            Value::Array(_) | Value::Object(_) => Val::Json(v),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null | Val::Json(Value::Null))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The elements when this is an array (borrowed JSON or computed).
    pub fn array_items(&self) -> Option<Vec<Val<'a>>> {
        match self {
            Val::Json(Value::Array(a)) => Some(a.iter().map(Val::from_json).collect()),
            Val::Arr(a) => Some(a.clone()),
            _ => None,
        }
    }

    fn array_len(&self) -> Option<usize> {
        match self {
            Val::Json(Value::Array(a)) => Some(a.len()),
            Val::Arr(a) => Some(a.len()),
            _ => None,
        }
    }

    /// JsonLogic truthiness: `0`, `NaN`, `""`, `null`, `false` and `[]` are falsy.
    pub fn truthy(&self) -> bool {
        match self {
            Val::Null => false,
            Val::Bool(b) => *b,
            Val::Num(n) => *n != 0.0 && !n.is_nan(),
            Val::Str(s) => !s.is_empty(),
            Val::Json(Value::Array(a)) => !a.is_empty(),
            Val::Json(_) => true,
            Val::Arr(a) => !a.is_empty(),
        }
    }

    /// Converts to an owned JSON value (non-finite numbers become `null`).
    pub fn to_json(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Num(n) => num_to_json(*n),
            Val::Str(s) => Value::String(s.to_string()),
            Val::Json(v) => (*v).clone(),
            Val::Arr(a) => Value::Array(a.iter().map(Val::to_json).collect()),
        }
    }

    /// JavaScript `String(x)`.
    pub fn to_js_string(&self) -> Cow<'a, str> {
        match self {
            Val::Null => Cow::Borrowed("null"),
            Val::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Val::Num(n) => Cow::Owned(js_number_to_string(*n)),
            Val::Str(s) => s.clone(),
            Val::Json(Value::Array(_)) | Val::Arr(_) => {
                let items = self.array_items().unwrap_or_default();
                let parts: Vec<String> = items
                    .iter()
                    .map(|v| {
                        if v.is_null() {
                            String::new()
                        } else {
                            v.to_js_string().into_owned()
                        }
                    })
                    .collect();
                Cow::Owned(parts.join(","))
            }
            Val::Json(Value::Object(_)) => Cow::Borrowed("[object Object]"),
            Val::Json(v) => Val::from_json(v).to_js_string().into_owned().into(),
        }
    }

    /// JavaScript `Number(x)`.
    pub fn to_number(&self) -> f64 {
        match self {
            Val::Null => 0.0,
            Val::Bool(b) => f64::from(u8::from(*b)),
            Val::Num(n) => *n,
            Val::Str(s) => str_to_number(s),
            Val::Json(Value::Object(_)) => f64::NAN,
            Val::Json(_) | Val::Arr(_) => match self.array_len() {
                Some(0) => 0.0,
                Some(1) => str_to_number(&self.to_js_string()),
                _ => f64::NAN,
            },
        }
    }

    /// JavaScript `parseFloat(x)` (used by JsonLogic's `+` and `*`).
    pub fn parse_float(&self) -> f64 {
        match self {
            Val::Num(n) => *n,
            other => js_parse_float(&other.to_js_string()),
        }
    }

    /// Primitive conversion used by `==` and the comparisons (arrays and objects to strings).
    fn to_primitive(&self) -> Val<'a> {
        match self {
            Val::Json(Value::Array(_)) | Val::Json(Value::Object(_)) | Val::Arr(_) => {
                Val::Str(self.to_js_string())
            }
            Val::Json(v) => Val::from_json(v),
            other => other.clone(),
        }
    }

    fn is_compound(&self) -> bool {
        matches!(self, Val::Json(_) | Val::Arr(_))
    }
}

/// String equality that does not call `memcmp`: faster for the short attribute names, variant
/// names and enum-like values rules compare.
#[inline]
pub fn short_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    if a.len() > 32 {
        return a == b;
    }
    let mut i = 0;
    while i + 8 <= a.len() {
        let x = u64::from_le_bytes([
            a[i],
            a[i + 1],
            a[i + 2],
            a[i + 3],
            a[i + 4],
            a[i + 5],
            a[i + 6],
            a[i + 7],
        ]);
        let y = u64::from_le_bytes([
            b[i],
            b[i + 1],
            b[i + 2],
            b[i + 3],
            b[i + 4],
            b[i + 5],
            b[i + 6],
            b[i + 7],
        ]);
        if x != y {
            return false;
        }
        i += 8;
    }
    a[i..].iter().zip(&b[i..]).all(|(x, y)| x == y)
}

pub fn num_to_json(n: f64) -> Value {
    if n.is_finite() && n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

/// JavaScript `Number(string)`: trimmed decimal, hex/octal/binary literals, `Infinity`;
/// the empty string is 0 and anything else is NaN.
pub fn str_to_number(s: &str) -> f64 {
    let t = s.trim();
    if t.is_empty() {
        return 0.0;
    }
    for (prefix, radix) in [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ] {
        if let Some(digits) = t.strip_prefix(prefix) {
            return u64::from_str_radix(digits, radix).map_or(f64::NAN, |v| v as f64);
        }
    }
    match t {
        "Infinity" | "+Infinity" => return f64::INFINITY,
        "-Infinity" => return f64::NEG_INFINITY,
        _ => {}
    }
    let valid = t
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !valid {
        return f64::NAN;
    }
    t.parse::<f64>().unwrap_or(f64::NAN)
}

/// JavaScript `parseFloat`: the longest leading decimal literal after leading white space.
pub fn js_parse_float(s: &str) -> f64 {
    let t = s.trim_start();
    let bytes = t.as_bytes();
    let mut end = 0;
    let mut best = None;
    if end < bytes.len() && matches!(bytes[end], b'+' | b'-') {
        end += 1;
    }
    let rest = &t[end..];
    if rest.starts_with("Infinity") {
        return if t.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    let mut seen_dot = false;
    let mut seen_digit = false;
    while end < bytes.len() {
        match bytes[end] {
            b'0'..=b'9' => {
                seen_digit = true;
                end += 1;
                best = Some(end);
            }
            b'.' if !seen_dot => {
                seen_dot = true;
                end += 1;
            }
            b'e' | b'E' if seen_digit => {
                let mut e = end + 1;
                if e < bytes.len() && matches!(bytes[e], b'+' | b'-') {
                    e += 1;
                }
                let start = e;
                while e < bytes.len() && bytes[e].is_ascii_digit() {
                    e += 1;
                }
                if e > start {
                    best = Some(e);
                }
                break;
            }
            _ => break,
        }
    }
    match best {
        Some(e) => t[..e].parse::<f64>().unwrap_or(f64::NAN),
        None => f64::NAN,
    }
}

/// JavaScript number formatting for the common cases (integers print without a fraction).
pub fn js_number_to_string(n: f64) -> String {
    if n.is_nan() {
        "NaN".to_owned()
    } else if n.is_infinite() {
        if n > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
    } else if n.fract() == 0.0 && n.abs() < 1e21 {
        format!("{n:.0}")
    } else {
        format!("{n}")
    }
}

/// JavaScript `===` (arrays and objects are never strictly equal: they are distinct references).
pub fn strict_eq(a: &Val<'_>, b: &Val<'_>) -> bool {
    match (a.to_scalar(), b.to_scalar()) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Num(x), Val::Num(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        _ => false,
    }
}

impl<'a> Val<'a> {
    /// Unwraps borrowed JSON scalars into the scalar variants.
    fn to_scalar(&self) -> Val<'a> {
        match self {
            Val::Json(v @ (Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_))) => {
                Val::from_json(v)
            }
            other => other.clone(),
        }
    }
}

/// JavaScript `==` (abstract equality).
pub fn loose_eq(a: &Val<'_>, b: &Val<'_>) -> bool {
    let (a, b) = (a.to_scalar(), b.to_scalar());
    if a.is_compound() && b.is_compound() {
        return false;
    }
    if a.is_compound() || b.is_compound() {
        if a.is_null() || b.is_null() {
            return false;
        }
        return loose_eq(&a.to_primitive(), &b.to_primitive());
    }
    match (&a, &b) {
        (Val::Null, Val::Null) => true,
        (Val::Null, _) | (_, Val::Null) => false,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        _ => a.to_number() == b.to_number(),
    }
}

/// JavaScript relational comparison; `None` when incomparable (a NaN was involved).
pub fn js_compare(a: &Val<'_>, b: &Val<'_>) -> Option<Ordering> {
    let (a, b) = (a.to_primitive(), b.to_primitive());
    if let (Val::Str(x), Val::Str(y)) = (&a, &b) {
        return Some(x.as_ref().cmp(y.as_ref()));
    }
    a.to_number().partial_cmp(&b.to_number())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(x: &str) -> Val<'_> {
        Val::Str(Cow::Borrowed(x))
    }

    #[test]
    fn truthiness_matches_jsonlogic() {
        let arr = json!([]);
        let arr1 = json!([0]);
        let obj = json!({});
        assert!(!Val::Null.truthy());
        assert!(!Val::Num(0.0).truthy());
        assert!(!Val::Num(f64::NAN).truthy());
        assert!(!s("").truthy());
        assert!(!Val::Json(&arr).truthy());
        assert!(Val::Json(&arr1).truthy());
        assert!(Val::Json(&obj).truthy());
        assert!(s("0").truthy());
        assert!(Val::Num(-1.0).truthy());
    }

    #[test]
    fn loose_and_strict_equality() {
        assert!(loose_eq(&Val::Num(1.0), &s("1")));
        assert!(!strict_eq(&Val::Num(1.0), &s("1")));
        assert!(loose_eq(&Val::Bool(true), &Val::Num(1.0)));
        assert!(loose_eq(&s(""), &Val::Num(0.0)));
        assert!(!loose_eq(&Val::Null, &Val::Num(0.0)));
        assert!(loose_eq(&Val::Null, &Val::Null));
        let arr = json!([1, 2]);
        assert!(loose_eq(&Val::Json(&arr), &s("1,2")));
    }

    #[test]
    fn number_conversions() {
        assert_eq!(str_to_number(" 12 "), 12.0);
        assert_eq!(str_to_number("0x10"), 16.0);
        assert!(str_to_number("12abc").is_nan());
        assert_eq!(js_parse_float("12abc"), 12.0);
        assert_eq!(js_parse_float("  -1.5e3x"), -1500.0);
        assert!(js_parse_float("abc").is_nan());
        assert_eq!(js_number_to_string(3.0), "3");
        assert_eq!(js_number_to_string(-0.5), "-0.5");
    }

    #[test]
    fn short_eq_matches_str_eq() {
        let words = [
            "",
            "a",
            "ab",
            "country",
            "company",
            "targetingKey",
            "targetingKez",
            "x".repeat(40).leak(),
            "é",
            "e",
        ];
        for a in words {
            for b in words {
                assert_eq!(short_eq(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn comparisons() {
        assert_eq!(js_compare(&s("a"), &s("b")), Some(Ordering::Less));
        assert_eq!(
            js_compare(&s("10"), &Val::Num(9.0)),
            Some(Ordering::Greater)
        );
        assert_eq!(js_compare(&s("x"), &Val::Num(9.0)), None);
    }
}
