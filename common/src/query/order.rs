//! The total order on JSON values used for sorting, and the exact numeric comparison that
//! equality and range operators share with it.

use std::cmp::Ordering;

use serde_json::{Number, Value};

/// A value's place in the type order: missing < null < bool < number < string < array < object.
pub fn type_rank(v: Option<&Value>) -> u8 {
    match v {
        None => 0,
        Some(Value::Null) => 1,
        Some(Value::Bool(_)) => 2,
        Some(Value::Number(_)) => 3,
        Some(Value::String(_)) => 4,
        Some(Value::Array(_)) => 5,
        Some(Value::Object(_)) => 6,
    }
}

/// Compares two possibly missing values in the total type order.
///
/// Within a type: `false < true`; numbers by exact numeric value; strings bytewise; arrays
/// lexicographically element by element (a proper prefix first); objects by their
/// (key, value) pairs in key byte order, lexicographically.
pub fn compare_values(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => compare_present(a, b),
        _ => type_rank(a).cmp(&type_rank(b)),
    }
}

fn compare_present(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Array(x), Value::Array(y)) => {
            for (u, v) in x.iter().zip(y) {
                let o = compare_present(u, v);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            // Sorting here keeps the order right even if serde_json's `preserve_order`
            // feature gets switched on somewhere in the build; on sorted input it is linear.
            let mut xs: Vec<_> = x.iter().collect();
            let mut ys: Vec<_> = y.iter().collect();
            xs.sort_unstable_by(|p, q| p.0.as_bytes().cmp(q.0.as_bytes()));
            ys.sort_unstable_by(|p, q| p.0.as_bytes().cmp(q.0.as_bytes()));
            for ((ka, va), (kb, vb)) in xs.iter().zip(&ys) {
                let o = ka
                    .as_bytes()
                    .cmp(kb.as_bytes())
                    .then_with(|| compare_present(va, vb));
                if o != Ordering::Equal {
                    return o;
                }
            }
            xs.len().cmp(&ys.len())
        }
        _ => type_rank(Some(a)).cmp(&type_rank(Some(b))),
    }
}

/// True when two present values are equal in the order (so `1` equals `1.0`).
pub fn values_equal(a: &Value, b: &Value) -> bool {
    compare_present(a, b) == Ordering::Equal
}

/// Exponents are clamped to this magnitude; only numbers written with exponents of 30+
/// digits (far beyond anything f64 or i128 holds) can compare inexactly.
const EXP_CAP: i128 = 1_000_000_000_000_000_000_000_000_000_000;

/// A JSON number's text taken apart: sign, digits before and after the point, exponent.
pub(crate) struct Decimal<'a> {
    pub(crate) negative: bool,
    int: &'a [u8],
    frac: &'a [u8],
    exp: i128,
}

impl<'a> Decimal<'a> {
    pub(crate) fn parse(text: &'a str) -> Self {
        let mut s = text.as_bytes();
        let negative = s.first() == Some(&b'-');
        if matches!(s.first(), Some(b'-' | b'+')) {
            s = &s[1..];
        }
        let (mantissa, exp_text) = match s.iter().position(|c| matches!(c, b'e' | b'E')) {
            Some(i) => (&s[..i], &s[i + 1..]),
            None => (s, &s[s.len()..]),
        };
        let (int, frac) = match mantissa.iter().position(|&c| c == b'.') {
            Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
            None => (mantissa, &mantissa[mantissa.len()..]),
        };
        let (exp_negative, exp_digits) = match exp_text.first() {
            Some(b'-') => (true, &exp_text[1..]),
            Some(b'+') => (false, &exp_text[1..]),
            _ => (false, exp_text),
        };
        let mut exp: i128 = 0;
        for &c in exp_digits {
            exp = (exp * 10 + i128::from(c.wrapping_sub(b'0') % 10)).min(EXP_CAP);
        }
        Decimal {
            negative,
            int,
            frac,
            exp: if exp_negative { -exp } else { exp },
        }
    }

    fn digits(&self) -> impl Iterator<Item = u8> + '_ {
        self.int.iter().chain(self.frac).copied()
    }

    /// The significant digits `D` and exponent `E` with value `0.D × 10^E`, or None for zero.
    pub(crate) fn normalized(&self) -> Option<(impl Iterator<Item = u8> + '_, i128)> {
        let total = self.int.len() + self.frac.len();
        let lead = self.digits().take_while(|&c| c == b'0').count();
        if lead == total {
            return None;
        }
        let trail = self
            .frac
            .iter()
            .rev()
            .chain(self.int.iter().rev())
            .take_while(|&&c| c == b'0')
            .count();
        let significant = total - lead - trail;
        // Lengths are bounded by the text length, so these conversions never saturate.
        let int_len = i128::try_from(self.int.len()).unwrap_or(i128::MAX / 4);
        let lead_len = i128::try_from(lead).unwrap_or(i128::MAX / 4);
        let e = self.exp + int_len - lead_len;
        Some((self.digits().skip(lead).take(significant), e))
    }
}

/// Compares two JSON numbers exactly by value, whatever their spelling (`1`, `1.0`, `1e0`,
/// `10e-1` are all equal; 64-bit integers and longer decimals compare without rounding).
pub fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    compare_decimal_text(a.as_str(), b.as_str())
}

fn compare_decimal_text(a: &str, b: &str) -> Ordering {
    let (da, db) = (Decimal::parse(a), Decimal::parse(b));
    let sign = |d: &Decimal<'_>, zero: bool| -> i8 {
        if zero {
            0
        } else if d.negative {
            -1
        } else {
            1
        }
    };
    let (na, nb) = (da.normalized(), db.normalized());
    let (sa, sb) = (sign(&da, na.is_none()), sign(&db, nb.is_none()));
    if sa != sb {
        return sa.cmp(&sb);
    }
    let magnitude = match (na, nb) {
        (Some((xa, ea)), Some((xb, eb))) => ea.cmp(&eb).then_with(|| xa.cmp(xb)),
        // Both zero, since the signs matched.
        _ => Ordering::Equal,
    };
    if sa < 0 {
        magnitude.reverse()
    } else {
        magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn num(text: &str) -> Value {
        serde_json::from_str(text).expect("valid JSON number")
    }

    fn cmp(a: &str, b: &str) -> Ordering {
        compare_values(Some(&num(a)), Some(&num(b)))
    }

    #[test]
    fn numbers_compare_by_value_not_spelling() {
        assert_eq!(cmp("1", "1.0"), Ordering::Equal);
        assert_eq!(cmp("1", "1e0"), Ordering::Equal);
        assert_eq!(cmp("1.0", "1e0"), Ordering::Equal);
        assert_eq!(cmp("10e-1", "1"), Ordering::Equal);
        assert_eq!(cmp("0.1e1", "1"), Ordering::Equal);
        assert_eq!(cmp("100", "1E2"), Ordering::Equal);
        assert_eq!(cmp("100", "1e+2"), Ordering::Equal);
        assert_eq!(cmp("0", "-0"), Ordering::Equal);
        assert_eq!(cmp("0.000", "0e10"), Ordering::Equal);
        assert_eq!(cmp("10", "9"), Ordering::Greater);
        assert_eq!(cmp("-5", "2"), Ordering::Less);
        assert_eq!(cmp("-5", "-10"), Ordering::Greater);
        assert_eq!(cmp("-0.5", "0"), Ordering::Less);
        assert_eq!(cmp("0.5", "0"), Ordering::Greater);
        assert_eq!(cmp("1.5", "1.25"), Ordering::Greater);
        assert_eq!(cmp("0.001", "1e-3"), Ordering::Equal);
        assert_eq!(cmp("0.0011", "1e-3"), Ordering::Greater);
        assert_eq!(cmp("123.456", "1234.56e-1"), Ordering::Equal);
        assert_eq!(cmp("99.999", "100"), Ordering::Less);
        assert_eq!(cmp("1e400", "1e399"), Ordering::Greater);
        assert_eq!(cmp("-1e400", "-1e399"), Ordering::Less);
        assert_eq!(cmp("1e-400", "0"), Ordering::Greater);
    }

    #[test]
    fn big_integers_compare_exactly() {
        assert_eq!(
            cmp("18446744073709551615", "18446744073709551614"),
            Ordering::Greater
        );
        assert_eq!(
            cmp("18446744073709551614", "18446744073709551615"),
            Ordering::Less
        );
        assert_eq!(
            cmp("18446744073709551615", "18446744073709551615.0"),
            Ordering::Equal
        );
        assert_eq!(
            cmp("-9223372036854775808", "-9223372036854775807"),
            Ordering::Less
        );
        assert_eq!(
            cmp("-9223372036854775808", "18446744073709551615"),
            Ordering::Less
        );
        assert_eq!(
            cmp("9007199254740993", "9007199254740992"),
            Ordering::Greater
        );
        // Through f64 these two would be equal.
        assert_eq!(
            cmp("9007199254740993", "9007199254740992.0"),
            Ordering::Greater
        );
        assert_eq!(
            cmp("-9223372036854775808", "-9.223372036854775808e18"),
            Ordering::Equal
        );
    }

    #[test]
    fn type_order_is_missing_null_bool_number_string_array_object() {
        let ladder = [
            None,
            Some(json!(null)),
            Some(json!(false)),
            Some(json!(true)),
            Some(json!(-1)),
            Some(json!(1e300)),
            Some(json!("")),
            Some(json!("a")),
            Some(json!([])),
            Some(json!([null])),
            Some(json!({})),
        ];
        for (i, a) in ladder.iter().enumerate() {
            for (j, b) in ladder.iter().enumerate() {
                assert_eq!(
                    compare_values(a.as_ref(), b.as_ref()),
                    i.cmp(&j),
                    "{a:?} vs {b:?}"
                );
            }
        }
    }

    #[test]
    fn strings_compare_bytewise() {
        let c = |a: &str, b: &str| compare_values(Some(&json!(a)), Some(&json!(b)));
        assert_eq!(c("B", "a"), Ordering::Less);
        assert_eq!(c("a", "ab"), Ordering::Less);
        assert_eq!(c("é", "z"), Ordering::Greater);
        assert_eq!(c("x", "x"), Ordering::Equal);
    }

    #[test]
    fn arrays_compare_lexicographically() {
        let c = |a: Value, b: Value| compare_values(Some(&a), Some(&b));
        assert_eq!(c(json!([1, 2]), json!([1, 3])), Ordering::Less);
        assert_eq!(c(json!([1, 2]), json!([1, 2, 0])), Ordering::Less);
        assert_eq!(c(json!([2]), json!([1, 9, 9])), Ordering::Greater);
        assert_eq!(c(json!([1]), num_array("[1.0]")), Ordering::Equal);
        assert_eq!(c(json!([null]), json!([false])), Ordering::Less);
    }

    fn num_array(text: &str) -> Value {
        serde_json::from_str(text).expect("valid JSON")
    }

    #[test]
    fn objects_compare_by_sorted_pairs() {
        let c = |a: Value, b: Value| compare_values(Some(&a), Some(&b));
        assert_eq!(c(json!({"a": 1}), json!({"a": 2})), Ordering::Less);
        assert_eq!(c(json!({"a": 9}), json!({"b": 0})), Ordering::Less);
        assert_eq!(c(json!({"a": 1}), json!({"a": 1, "b": 0})), Ordering::Less);
        assert_eq!(
            c(json!({"b": 1, "a": 1}), json!({"a": 1, "b": 1})),
            Ordering::Equal
        );
        assert_eq!(
            c(json!({"a": {"x": 1}}), num_array(r#"{"a": {"x": 1.0}}"#)),
            Ordering::Equal
        );
    }

    #[test]
    fn values_equal_is_numeric() {
        assert!(values_equal(&json!(1), &num("1.0")));
        assert!(!values_equal(&json!(1), &json!("1")));
        assert!(!values_equal(&json!(null), &json!(false)));
    }
}
