//! Order-preserving, prefix-free byte encoding of JSON values for secondary-index keys.
//!
//! For any two (possibly missing) values `a` and `b`, the ascending encodings compare
//! bytewise exactly as [`compare_values`](super::compare_values) orders `a` and `b`, and
//! values it calls equal (`1`, `1.0`, `1e0`) encode to identical bytes. No encoding is a
//! proper prefix of another, so concatenated fields compare as the tuple does, and the
//! descending encoding can simply be the byte complement of the ascending one: between two
//! prefix-free strings the first differing byte decides, and complementing reverses it.
//!
//! Ascending layout (every value starts with a type tag whose order is the type order):
//! - missing `0x05`; `null` `0x10`; `false` `0x20`; `true` `0x21`.
//! - numbers: zero is `0x31` alone. Otherwise the value is `±0.D × 10^E` with `D` the
//!   significant digits (no leading or trailing zeros), exactly as `compare_numbers`
//!   normalizes it. Positive: `0x32`, the exponent `E` as an order-preserving
//!   self-delimiting integer, `D` two digits per byte (`pair + 1`, so `1..=100`, an odd tail
//!   padded with a 0 digit) and a `0x00` terminator. Negative: `0x30` followed by the
//!   complement of that same tail, since a larger magnitude must sort lower.
//! - strings: `0x40`, the UTF-8 bytes with each `0x00` written `0x00 0xFF`, then
//!   `0x00 0x01`; a terminator sorts below any continuation, so a proper prefix sorts first.
//! - arrays: `0x50`, each element's encoding, then `0x00`, below every element's tag.
//! - objects: `0x60`, for each entry in key byte order the key encoded as a string (tag
//!   included, so the `0x00` end marker sorts below every entry) and then the value, and
//!   then `0x00`.

use serde_json::{Number, Value};

use super::order::Decimal;

/// The direction of one index field: ascending or descending in the value order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Order {
    /// Ascending: the bytes sort as `compare_values` does.
    Asc,
    /// Descending: the bytes sort in the reverse of `compare_values`.
    Desc,
}

/// Ends an array or an object; below every type tag that can start an element or entry.
const END: u8 = 0x00;
/// A missing field; below `null`, only ever at the top level of a field.
const MISSING: u8 = 0x05;
const NULL: u8 = 0x10;
const FALSE: u8 = 0x20;
const TRUE: u8 = 0x21;
const NUMBER_NEGATIVE: u8 = 0x30;
const NUMBER_ZERO: u8 = 0x31;
const NUMBER_POSITIVE: u8 = 0x32;
const STRING: u8 = 0x40;
const ARRAY: u8 = 0x50;
const OBJECT: u8 = 0x60;

/// Follows a `0x00` string byte; above the terminator's second byte.
const STRING_ESCAPED_NUL: u8 = 0xFF;
/// The second byte of the string terminator `0x00 0x01`.
const STRING_TERMINATOR: u8 = 0x01;
/// Ends a number's digit pairs, which are all `1..=100`.
const DIGITS_END: u8 = 0x00;

/// Exponents in `-SMALL_EXP..=SMALL_EXP` take one byte, `0x80 + E`.
const SMALL_EXP: i128 = 100;
const SMALL_EXP_BASE: i128 = 0x80;
/// Header of a large positive exponent with `n` payload bytes is `LARGE_POSITIVE + n`.
const LARGE_POSITIVE: u8 = 0x80 + 100;
/// Header of a large negative exponent with `n` payload bytes is `LARGE_NEGATIVE - n`.
const LARGE_NEGATIVE: u8 = 0x80 - 100 - 1;

/// Appends the index-key encoding of `v` (None for a missing field) in direction `order`.
pub fn encode_value(out: &mut Vec<u8>, v: Option<&Value>, order: Order) {
    let start = out.len();
    match v {
        None => out.push(MISSING),
        Some(v) => encode_present(out, v),
    }
    if order == Order::Desc {
        complement(&mut out[start..]);
    }
}

/// The half-open byte range `[lo, hi)` holding exactly the encodings of the strings that start
/// with `prefix`, in direction `order`.
///
/// Both bounds are "starts with" bounds: `lo` is the encoded prefix without its terminator and
/// `hi` the smallest byte string above everything that starts with `lo`. So the range also
/// holds exactly the keys whose first field is such a string, whatever fields follow. For
/// `Desc` the bounds are those of the descending encodings (each is the complement of the
/// `Asc` encoding): still `lo < hi`, and a forward scan from `lo` meets the matching strings
/// from the largest down to `prefix` itself.
pub fn string_prefix_range(prefix: &str, order: Order) -> (Vec<u8>, Vec<u8>) {
    let mut lo = vec![STRING];
    escape_string(&mut lo, prefix.as_bytes());
    if order == Order::Desc {
        complement(&mut lo);
    }
    // Never `None`: `lo` starts with a string tag (0x40 or its complement 0xBF).
    let hi = successor(&lo).unwrap_or_default();
    (lo, hi)
}

/// The length of the one encoded value `bytes` starts with (in direction `order`), so a key
/// of several fields and an id can be split; `None` when `bytes` does not start with one.
pub fn encoded_len(bytes: &[u8], order: Order) -> Option<usize> {
    let mut r = Reader {
        bytes,
        at: 0,
        flip: if order == Order::Desc { 0xFF } else { 0 },
    };
    r.skip_value(0)?;
    Some(r.at)
}

/// Walks an encoding in its ascending view (`flip` undoes a descending complement).
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    flip: u8,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = self.bytes.get(self.at)? ^ self.flip;
        self.at += 1;
        Some(b)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).map(|b| b ^ self.flip)
    }

    /// Skips one value; `depth` bounds the recursion on hostile input.
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        if depth > 256 {
            return None;
        }
        match self.byte()? {
            MISSING | NULL | FALSE | TRUE | NUMBER_ZERO => Some(()),
            NUMBER_POSITIVE => self.skip_number(0),
            NUMBER_NEGATIVE => self.skip_number(0xFF),
            STRING => self.skip_string(),
            ARRAY => loop {
                if self.peek()? == END {
                    self.at += 1;
                    return Some(());
                }
                self.skip_value(depth + 1)?;
            },
            OBJECT => loop {
                if self.peek()? == END {
                    self.at += 1;
                    return Some(());
                }
                if self.byte()? != STRING {
                    return None;
                }
                self.skip_string()?;
                self.skip_value(depth + 1)?;
            },
            _ => None,
        }
    }

    /// Skips a number's exponent and digits; `neg` is `0xFF` when they are complemented.
    fn skip_number(&mut self, neg: u8) -> Option<()> {
        let header = self.byte()? ^ neg;
        // Small exponents lie between the two headers and carry no payload.
        let payload = if header > LARGE_POSITIVE {
            header - LARGE_POSITIVE
        } else {
            LARGE_NEGATIVE.saturating_sub(header)
        };
        self.at += usize::from(payload);
        while self.byte()? ^ neg != DIGITS_END {}
        Some(())
    }

    fn skip_string(&mut self) -> Option<()> {
        loop {
            if self.byte()? == 0x00 {
                match self.byte()? {
                    STRING_TERMINATOR => return Some(()),
                    STRING_ESCAPED_NUL => {}
                    _ => return None,
                }
            }
        }
    }
}

/// The smallest byte string greater than every string that starts with `bytes` (`None`
/// when there is none: `bytes` is empty or all `0xFF`), the end of a "starts with" range.
pub fn successor(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut hi = bytes.to_vec();
    while let Some(last) = hi.pop() {
        if last != 0xFF {
            hi.push(last + 1);
            return Some(hi);
        }
    }
    None
}

fn complement(bytes: &mut [u8]) {
    for b in bytes {
        *b = !*b;
    }
}

fn encode_present(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Number(n) => encode_number(out, n),
        Value::String(s) => encode_string(out, s),
        Value::Array(items) => {
            out.push(ARRAY);
            for item in items {
                encode_present(out, item);
            }
            out.push(END);
        }
        Value::Object(map) => {
            out.push(OBJECT);
            // Sorted here, as in `compare_values`, so the encoding stays right even if
            // serde_json's `preserve_order` gets switched on; on sorted input it is linear.
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|p, q| p.0.as_bytes().cmp(q.0.as_bytes()));
            for (key, value) in entries {
                encode_string(out, key);
                encode_present(out, value);
            }
            out.push(END);
        }
    }
}

fn encode_string(out: &mut Vec<u8>, s: &str) {
    out.push(STRING);
    escape_string(out, s.as_bytes());
    out.extend_from_slice(&[0x00, STRING_TERMINATOR]);
}

/// Appends `bytes` with every `0x00` written `0x00 0xFF`, so no unescaped `0x00 0x01` occurs.
fn escape_string(out: &mut Vec<u8>, bytes: &[u8]) {
    for (i, chunk) in bytes.split(|&b| b == 0).enumerate() {
        if i > 0 {
            out.extend_from_slice(&[0x00, STRING_ESCAPED_NUL]);
        }
        out.extend_from_slice(chunk);
    }
}

fn encode_number(out: &mut Vec<u8>, n: &Number) {
    // The same parse and normalization `compare_numbers` uses, so the encoding agrees with it
    // exactly, including its clamping of absurdly large exponents.
    let decimal = Decimal::parse(n.as_str());
    let Some((digits, exp)) = decimal.normalized() else {
        out.push(NUMBER_ZERO);
        return;
    };
    out.push(if decimal.negative {
        NUMBER_NEGATIVE
    } else {
        NUMBER_POSITIVE
    });
    let start = out.len();
    // Same sign: a larger exponent means a larger magnitude, since `D` has no leading zero;
    // with equal exponents the digit strings compare lexicographically, a prefix first.
    encode_exponent(out, exp);
    let mut digits = digits.map(|c| c.wrapping_sub(b'0') % 10);
    while let Some(high) = digits.next() {
        // Padding an odd tail with 0 is unambiguous because `D` has no trailing zeros.
        let low = digits.next().unwrap_or(0);
        out.push(high * 10 + low + 1);
    }
    out.push(DIGITS_END);
    if decimal.negative {
        complement(&mut out[start..]);
    }
}

/// Appends `e` as an order-preserving, self-delimiting integer: the header byte fixes the
/// length, so whatever follows never takes part in comparing two exponents.
fn encode_exponent(out: &mut Vec<u8>, e: i128) {
    if (-SMALL_EXP..=SMALL_EXP).contains(&e) {
        // In 0x1C..=0xE4 because of the range check.
        out.push(u8::try_from(SMALL_EXP_BASE + e).unwrap_or(0x80));
    } else if e > 0 {
        // More payload bytes means a larger value, so the header grows with the length.
        let payload = e.unsigned_abs() - (SMALL_EXP as u128 + 1);
        let bytes = minimal_be_bytes(payload);
        out.push(LARGE_POSITIVE + byte_len(bytes));
        out.extend_from_slice(bytes_slice(&payload.to_be_bytes(), bytes));
    } else {
        // The magnitude grows as `e` falls, so both the header and the payload are reversed.
        let payload = e.unsigned_abs() - (SMALL_EXP as u128 + 1);
        let bytes = minimal_be_bytes(payload);
        out.push(LARGE_NEGATIVE - byte_len(bytes));
        out.extend(
            bytes_slice(&payload.to_be_bytes(), bytes)
                .iter()
                .map(|b| !b),
        );
    }
}

/// How many big-endian bytes `v` needs (at least one), so equal lengths compare bytewise.
fn minimal_be_bytes(v: u128) -> usize {
    let bits = 128 - v.leading_zeros() as usize;
    bits.div_ceil(8).max(1)
}

fn byte_len(n: usize) -> u8 {
    // At most 16 for a u128.
    u8::try_from(n).unwrap_or(16)
}

/// The last `n` bytes of a big-endian `u128`.
fn bytes_slice(be: &[u8; 16], n: usize) -> &[u8] {
    &be[16 - n.min(16)..]
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::{Map, Value, json};

    use super::*;
    use crate::query::{compare_numbers, compare_values};

    fn enc(v: Option<&Value>, order: Order) -> Vec<u8> {
        let mut out = Vec::new();
        encode_value(&mut out, v, order);
        out
    }

    fn asc(v: &Value) -> Vec<u8> {
        enc(Some(v), Order::Asc)
    }

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).expect("valid JSON")
    }

    /// Checks the encoding against `compare_values` for one pair, in both directions, and
    /// that distinct encodings are not prefixes of each other.
    fn check_pair(a: Option<&Value>, b: Option<&Value>) {
        let expected = compare_values(a, b);
        let (ea, eb) = (enc(a, Order::Asc), enc(b, Order::Asc));
        assert_eq!(
            ea.cmp(&eb),
            expected,
            "asc {a:?} vs {b:?}: {ea:x?} vs {eb:x?}"
        );
        let (da, db) = (enc(a, Order::Desc), enc(b, Order::Desc));
        assert_eq!(
            da.cmp(&db),
            expected.reverse(),
            "desc {a:?} vs {b:?}: {da:x?} vs {db:x?}"
        );
        if ea != eb {
            assert!(
                !ea.starts_with(&eb) && !eb.starts_with(&ea),
                "prefix: {a:?} vs {b:?}: {ea:x?} vs {eb:x?}"
            );
        }
    }

    /// Asserts every entry is strictly below the next in both `compare_values` and bytes.
    fn check_ladder(ladder: &[Option<Value>]) {
        for (i, a) in ladder.iter().enumerate() {
            for (j, b) in ladder.iter().enumerate() {
                assert_eq!(
                    compare_values(a.as_ref(), b.as_ref()),
                    i.cmp(&j),
                    "ladder itself: {a:?} vs {b:?}"
                );
                check_pair(a.as_ref(), b.as_ref());
            }
        }
    }

    fn nums(texts: &[&str]) -> Vec<Option<Value>> {
        texts.iter().map(|t| Some(parse(t))).collect()
    }

    #[test]
    fn equal_numbers_encode_identically() {
        for group in [
            &["1", "1.0", "1e0", "10e-1", "0.1e1", "1.000E+0", "100e-2"][..],
            &["0", "-0", "0.0", "-0.0e5", "0e-7", "0.000"],
            &["-12.5", "-125e-1", "-0.125E2", "-1250.0e-2"],
            &[
                "9007199254740992",
                "9007199254740992.0",
                "9.007199254740992e15",
            ],
            &["0.000001", "1e-6", "10E-7", "0.0000010"],
            &["-9223372036854775808", "-9.223372036854775808e18"],
        ] {
            let first = asc(&parse(group[0]));
            for t in group {
                assert_eq!(asc(&parse(t)), first, "{t} vs {}", group[0]);
            }
        }
        assert_eq!(asc(&json!(1)), asc(&json!(1.0)));
        assert_eq!(asc(&json!(-0.0)), asc(&json!(0)));
    }

    #[test]
    fn numbers_order_exactly() {
        check_ladder(&nums(&[
            "-1e400",
            "-1e399",
            "-1e101",
            "-1e100",
            "-1e99",
            "-18446744073709551615",
            "-9223372036854775808",
            "-9223372036854775807",
            "-100",
            "-99.999",
            "-10",
            "-9",
            "-1.5",
            "-1.25",
            "-1",
            "-0.5",
            "-0.000001",
            "-1e-100",
            "-1e-101",
            "-1e-102",
            "-1e-400",
            "0",
            "1e-400",
            "1e-102",
            "1e-101",
            "1e-100",
            "0.0000001",
            "0.000001",
            "0.0000011",
            "0.00001",
            "0.5",
            "1",
            "1.0000000000000000000000001",
            "1.25",
            "1.5",
            "9",
            "10",
            "99.999",
            "100",
            "9007199254740992",
            "9007199254740993",
            "9223372036854775807",
            "18446744073709551615",
            "18446744073709551616",
            "1e99",
            "1e100",
            "1e101",
            "1.5e101",
            "1e300",
            "1e399",
            "1e400",
        ]));
    }

    #[test]
    fn huge_exponents_follow_compare_numbers() {
        // Beyond order.rs's EXP_CAP exponents are clamped; the encoding must agree with
        // whatever compare_numbers says, equal or not.
        let texts = [
            "1e999999999999999999999999999999",
            "1e1000000000000000000000000000000",
            "1e1000000000000000000000000000001",
            "1e99999999999999999999999999999999999999999",
            "10e1000000000000000000000000000000",
            "-1e1000000000000000000000000000000",
            "-1e1000000000000000000000000000001",
            "1e-1000000000000000000000000000000",
            "1e-1000000000000000000000000000001",
            "123.456e-99999999999999999999999999999999999999999",
            "-5e-1000000000000000000000000000000",
            "1e170141183460469231731687303715884105727",
        ];
        for a in texts {
            for b in texts {
                let (va, vb) = (parse(a), parse(b));
                let (Value::Number(na), Value::Number(nb)) = (&va, &vb) else {
                    panic!("numbers");
                };
                assert_eq!(
                    asc(&va).cmp(&asc(&vb)),
                    compare_numbers(na, nb),
                    "{a} vs {b}"
                );
                check_pair(Some(&va), Some(&vb));
            }
        }
    }

    #[test]
    fn strings_order_bytewise_and_escape_nul() {
        let ladder: Vec<Option<Value>> = [
            "",
            "\0",
            "\0\0",
            "\0\u{1}",
            "\0a",
            "\u{1}",
            "a",
            "a\0",
            "a\0\0",
            "a\0b",
            "a\u{1}",
            "ab",
            "b",
            "\u{7f}",
            "é",
            "\u{ff}",
            "\u{ff}\0",
            "\u{10ffff}",
        ]
        .iter()
        .map(|s| Some(json!(s)))
        .collect();
        check_ladder(&ladder);
    }

    #[test]
    fn type_order_and_nesting() {
        check_ladder(&[
            None,
            Some(json!(null)),
            Some(json!(false)),
            Some(json!(true)),
            Some(parse("-1e400")),
            Some(json!(0)),
            Some(parse("1e400")),
            Some(json!("")),
            Some(json!("\u{ff}")),
            Some(json!([])),
            Some(json!([null])),
            Some(json!([null, null])),
            Some(json!([false])),
            Some(json!([0])),
            Some(json!([0, []])),
            Some(json!([""])),
            Some(json!(["", ""])),
            Some(json!(["\0"])),
            Some(json!([[]])),
            Some(json!([[], null])),
            Some(json!([[null]])),
            Some(json!([[[]]])),
            Some(json!([{}])),
            Some(json!([{"": null}])),
            Some(json!({})),
            Some(json!({"": null})),
            Some(json!({"": []})),
            Some(json!({"\0": null})),
            Some(json!({"a": 1})),
            Some(json!({"a": 1, "b": 0})),
            Some(json!({"a": 2})),
            Some(json!({"a": "x"})),
            Some(json!({"a": {}})),
            Some(json!({"b": 0})),
        ]);
        assert_eq!(asc(&json!([1])), asc(&parse("[1.0]")));
        assert_eq!(
            asc(&parse(r#"{"b": 1, "a": {"x": 1e0}}"#)),
            asc(&json!({"a": {"x": 1}, "b": 1}))
        );
    }

    #[test]
    fn desc_is_the_complement_and_reverses() {
        for v in [
            json!(null),
            json!("a\0"),
            json!([1, {"k": []}]),
            parse("-1e-9"),
        ] {
            let a = enc(Some(&v), Order::Asc);
            let d = enc(Some(&v), Order::Desc);
            assert_eq!(d, a.iter().map(|b| !b).collect::<Vec<_>>());
        }
        // Prefix pairs in value terms that would break a non-prefix-free complement.
        let pairs = [
            (json!("a"), json!("a\0")),
            (json!("a"), json!("ab")),
            (json!([]), json!([null])),
            (json!({}), json!({"": null})),
            (json!(1), json!(1.5)),
            (json!(-1.5), json!(-1)),
        ];
        for (small, big) in &pairs {
            let (s, b) = (enc(Some(small), Order::Desc), enc(Some(big), Order::Desc));
            assert!(s > b, "{small} vs {big}");
        }
        assert!(enc(None, Order::Desc) > enc(Some(&json!(null)), Order::Desc));
    }

    /// Encodes a tuple of (value, direction) fields by concatenation.
    fn tuple(fields: &[(Option<&Value>, Order)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(v, order) in fields {
            encode_value(&mut out, v, order);
        }
        out
    }

    fn tuple_expected(a: &[(Option<&Value>, Order)], b: &[(Option<&Value>, Order)]) -> Ordering {
        a.iter()
            .zip(b)
            .map(|(&(x, order), &(y, _))| match order {
                Order::Asc => compare_values(x, y),
                Order::Desc => compare_values(x, y).reverse(),
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }

    #[test]
    fn tuples_compare_field_by_field_with_mixed_orders() {
        let cases = [
            (json!("a"), json!("z"), json!("a\0"), json!("a")),
            (json!("a"), json!(1), json!("ab"), json!(0)),
            (json!([]), json!(9), json!([null]), json!(null)),
            (json!({}), json!("z"), json!({"": null}), json!("a")),
            (json!(1), json!([5]), json!(1.5), json!([])),
            (json!(-1), json!({}), json!(-1.5), json!(null)),
            (json!(1), json!("b"), parse("1.0"), json!("a")),
            (json!(""), json!(true), json!("\0"), json!(false)),
        ];
        let orders = [
            (Order::Asc, Order::Asc),
            (Order::Asc, Order::Desc),
            (Order::Desc, Order::Asc),
            (Order::Desc, Order::Desc),
        ];
        for (a1, a2, b1, b2) in &cases {
            for (o1, o2) in orders {
                let a = [(Some(a1), o1), (Some(a2), o2)];
                let b = [(Some(b1), o1), (Some(b2), o2)];
                assert_eq!(
                    tuple(&a).cmp(&tuple(&b)),
                    tuple_expected(&a, &b),
                    "({a1}, {a2}) vs ({b1}, {b2}) {o1:?} {o2:?}"
                );
            }
        }
        // A missing first field still lets the second one decide.
        let (x, y) = (json!(1), json!(2));
        let a = [(None, Order::Desc), (Some(&x), Order::Asc)];
        let b = [(None, Order::Desc), (Some(&y), Order::Asc)];
        assert_eq!(tuple(&a).cmp(&tuple(&b)), Ordering::Less);
    }

    fn in_range(key: &[u8], (lo, hi): &(Vec<u8>, Vec<u8>)) -> bool {
        key >= lo.as_slice() && key < hi.as_slice()
    }

    #[test]
    fn prefix_range_examples() {
        let strings = [
            "",
            "\0",
            "\0a",
            "a",
            "a\0",
            "a\0b",
            "ab",
            "abc",
            "b",
            "é",
            "\u{ff}",
            "\u{10ffff}",
        ];
        for prefix in ["", "\0", "a", "a\0", "ab", "é", "\u{10ffff}", "zz"] {
            for order in [Order::Asc, Order::Desc] {
                let range = string_prefix_range(prefix, order);
                assert!(range.0 < range.1);
                for s in strings {
                    let key = enc(Some(&json!(s)), order);
                    assert_eq!(
                        in_range(&key, &range),
                        s.starts_with(prefix),
                        "{s:?} / {prefix:?} {order:?}"
                    );
                }
                for other in [None, Some(json!(null)), Some(json!(1)), Some(json!([]))] {
                    assert!(!in_range(&enc(other.as_ref(), order), &range));
                }
            }
        }
    }

    // ---- randomized property tests ----

    const STRING_PIECES: &[&str] = &[
        "",
        "\0",
        "\u{1}",
        "a",
        "b",
        "\u{7f}",
        "é",
        "\u{ff}",
        "\u{10ffff}",
    ];

    fn random_string(rng: &mut StdRng, max_pieces: usize) -> String {
        let n = rng.random_range(0..=max_pieces);
        (0..n)
            .map(|_| STRING_PIECES[rng.random_range(0..STRING_PIECES.len())])
            .collect()
    }

    fn random_digits(rng: &mut StdRng, len: usize) -> String {
        (0..len)
            .map(|i| {
                let low = if i == 0 { 1 } else { 0 };
                char::from(b'0' + rng.random_range(low..=9u8))
            })
            .collect()
    }

    /// Spells `m × 10^e` in one of many equivalent JSON forms.
    fn spell(rng: &mut StdRng, m: i64, e: i64) -> String {
        let sign = if m < 0 || (m == 0 && rng.random_bool(0.3)) {
            "-"
        } else {
            ""
        };
        // Append k zeros to the digits and compensate in the exponent.
        let k = if m == 0 {
            0
        } else {
            rng.random_range(0..3usize)
        };
        let digits = format!("{}{}", m.unsigned_abs(), "0".repeat(k));
        let mut exp = e - k as i64;
        let body = if m != 0 && rng.random_bool(0.3) {
            // 0.000ddd form.
            let z = rng.random_range(0..3usize);
            exp += (z + digits.len()) as i64;
            format!("0.{}{digits}", "0".repeat(z))
        } else {
            // Put the point after p digits (p == len: no fraction, or ".0" appended).
            let p = rng.random_range(1..=digits.len());
            let (int, frac) = digits.split_at(p);
            exp += frac.len() as i64;
            if frac.is_empty() {
                if rng.random_bool(0.5) {
                    int.to_owned()
                } else {
                    format!("{int}.{}", "0".repeat(rng.random_range(1..3)))
                }
            } else {
                format!("{int}.{frac}")
            }
        };
        let marker = if rng.random_bool(0.5) { "e" } else { "E" };
        let exp_text = if exp == 0 && rng.random_bool(0.5) {
            String::new()
        } else if exp >= 0 && rng.random_bool(0.3) {
            format!("{marker}+{exp}")
        } else if rng.random_bool(0.2) {
            let exp_sign = if exp < 0 { "-" } else { "" };
            format!("{marker}{exp_sign}00{}", exp.unsigned_abs())
        } else {
            format!("{marker}{exp}")
        };
        format!("{sign}{body}{exp_text}")
    }

    fn random_number(rng: &mut StdRng) -> Value {
        let text = match rng.random_range(0..9) {
            0 => rng.random_range(-20..=20i64).to_string(),
            1 => rng.random::<i64>().to_string(),
            2 => rng.random::<u64>().to_string(),
            3 => {
                let sign = if rng.random_bool(0.5) { "-" } else { "" };
                let len = rng.random_range(17..40);
                format!("{sign}{}", random_digits(rng, len))
            }
            4 | 5 => {
                let m = rng.random_range(-30..=30i64);
                let e = rng.random_range(-4..=4i64);
                spell(rng, m, e)
            }
            6 => {
                let m = rng.random_range(-1_000_000..=1_000_000i64);
                let e = rng.random_range(-120..=120i64);
                spell(rng, m, e)
            }
            7 => {
                let m = rng.random_range(-99..=99i64);
                let e = rng.random_range(-500..=500i64);
                spell(rng, m, e)
            }
            _ => {
                // Exponents around and beyond order.rs's clamp at 10^30.
                let sign = if rng.random_bool(0.5) { "-" } else { "" };
                let exp_sign = if rng.random_bool(0.5) { "-" } else { "" };
                let len = rng.random_range(29..33);
                let mant = rng.random_range(1..=12u32);
                format!("{sign}{mant}e{exp_sign}{}", random_digits(rng, len))
            }
        };
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn random_value(rng: &mut StdRng, depth: u32) -> Value {
        let kinds = if depth == 0 { 4 } else { 6 };
        match rng.random_range(0..kinds) {
            0 => {
                if rng.random_bool(0.5) {
                    Value::Null
                } else {
                    Value::Bool(rng.random())
                }
            }
            1 | 2 => random_number(rng),
            3 => Value::String(random_string(rng, 3)),
            4 => {
                let n = rng.random_range(0..4);
                Value::Array((0..n).map(|_| random_value(rng, depth - 1)).collect())
            }
            _ => {
                let n = rng.random_range(0..3);
                let mut m = Map::new();
                for _ in 0..n {
                    m.insert(random_string(rng, 2), random_value(rng, depth - 1));
                }
                Value::Object(m)
            }
        }
    }

    fn random_values(rng: &mut StdRng, n: usize) -> Vec<Option<Value>> {
        let mut values: Vec<Option<Value>> = vec![None, None];
        for _ in 0..n {
            let depth = rng.random_range(0..4);
            values.push(Some(random_value(rng, depth)));
        }
        values
    }

    #[test]
    fn random_values_encode_in_compare_values_order() {
        let mut rng = StdRng::seed_from_u64(0x1ADE_C0DE);
        let values = random_values(&mut rng, 4000);
        let asc_keys: Vec<Vec<u8>> = values.iter().map(|v| enc(v.as_ref(), Order::Asc)).collect();

        // Sorted by compare_values, neighbours must agree; with a total preorder that implies
        // agreement for every pair.
        let mut idx: Vec<usize> = (0..values.len()).collect();
        idx.sort_by(|&i, &j| compare_values(values[i].as_ref(), values[j].as_ref()));
        let mut equal_neighbours = 0;
        for w in idx.windows(2) {
            let (i, j) = (w[0], w[1]);
            let expected = compare_values(values[i].as_ref(), values[j].as_ref());
            if expected == Ordering::Equal {
                equal_neighbours += 1;
            }
            check_pair(values[i].as_ref(), values[j].as_ref());
            assert_eq!(asc_keys[i].cmp(&asc_keys[j]), expected);
        }
        // The generator must produce equal values spelled differently for this to mean much.
        assert!(
            equal_neighbours > 200,
            "only {equal_neighbours} equal neighbours"
        );

        // And a direct check on random pairs, independent of the transitivity argument.
        for _ in 0..100_000 {
            let i = rng.random_range(0..values.len());
            let j = rng.random_range(0..values.len());
            check_pair(values[i].as_ref(), values[j].as_ref());
        }
    }

    #[test]
    fn encoded_len_splits_concatenated_values() {
        let mut rng = StdRng::seed_from_u64(0x0005_B117);
        let values = random_values(&mut rng, 3000);
        for w in values.windows(2) {
            for order in [Order::Asc, Order::Desc] {
                let first = enc(w[0].as_ref(), order);
                let mut key = first.clone();
                encode_value(&mut key, w[1].as_ref(), order);
                key.extend_from_slice(b"doc-id");
                assert_eq!(
                    encoded_len(&key, order),
                    Some(first.len()),
                    "{:?} then {:?} {order:?}",
                    w[0],
                    w[1]
                );
                let rest = &key[first.len()..];
                let second = encoded_len(rest, order).expect("the second value");
                assert_eq!(&rest[second..], b"doc-id");
            }
        }
        for big in ["1e400", "-1e-400", "-123456789e-300", "5e99999"] {
            let mut key = asc(&parse(big));
            let len = key.len();
            key.push(0x00);
            assert_eq!(encoded_len(&key, Order::Asc), Some(len), "{big}");
        }
        assert_eq!(encoded_len(&[], Order::Asc), None);
        assert_eq!(encoded_len(&[STRING, b'a'], Order::Asc), None);
        assert_eq!(encoded_len(&[0x99], Order::Asc), None);
    }

    #[test]
    fn random_tuples_with_mixed_orders_compare_as_tuples() {
        let mut rng = StdRng::seed_from_u64(0x7E57_7AB1);
        let values = random_values(&mut rng, 2000);
        let mut sorted = values.clone();
        sorted.sort_by(|a, b| compare_values(a.as_ref(), b.as_ref()));
        let order = |rng: &mut StdRng| {
            if rng.random_bool(0.5) {
                Order::Asc
            } else {
                Order::Desc
            }
        };
        let mut decided_by_second = 0;
        for _ in 0..50_000 {
            let (o1, o2) = (order(&mut rng), order(&mut rng));
            let i = rng.random_range(0..sorted.len());
            let a1 = &sorted[i];
            // Often make the first fields equal (or neighbours) so the second field matters.
            let b1 = match rng.random_range(0..3) {
                0 => a1,
                1 => &sorted[(i + 1).min(sorted.len() - 1)],
                _ => &sorted[rng.random_range(0..sorted.len())],
            };
            let a2 = &values[rng.random_range(0..values.len())];
            let b2 = &values[rng.random_range(0..values.len())];
            let a = [(a1.as_ref(), o1), (a2.as_ref(), o2)];
            let b = [(b1.as_ref(), o1), (b2.as_ref(), o2)];
            let expected = tuple_expected(&a, &b);
            if compare_values(a1.as_ref(), b1.as_ref()).is_eq() && expected.is_ne() {
                decided_by_second += 1;
            }
            assert_eq!(
                tuple(&a).cmp(&tuple(&b)),
                expected,
                "({a1:?}, {a2:?}) vs ({b1:?}, {b2:?}) {o1:?} {o2:?}"
            );
        }
        assert!(decided_by_second > 10_000, "{decided_by_second}");
    }

    #[test]
    fn random_prefix_ranges_hold_exactly_the_matching_strings() {
        let mut rng = StdRng::seed_from_u64(0x9E_F1C5);
        let others = random_values(&mut rng, 300);
        for _ in 0..20_000 {
            let prefix = random_string(&mut rng, 3);
            let order = if rng.random_bool(0.5) {
                Order::Asc
            } else {
                Order::Desc
            };
            let range = string_prefix_range(&prefix, order);
            assert!(range.0 < range.1);
            // Bias towards strings that extend the prefix so both outcomes are common.
            let s = if rng.random_bool(0.5) {
                format!("{prefix}{}", random_string(&mut rng, 2))
            } else {
                random_string(&mut rng, 4)
            };
            let key = enc(Some(&json!(s)), order);
            assert_eq!(
                in_range(&key, &range),
                s.starts_with(&prefix),
                "{s:?} / {prefix:?} {order:?}"
            );
            // With a further field appended the answer is the same.
            let other = &others[rng.random_range(0..others.len())];
            let mut composite = key.clone();
            encode_value(&mut composite, other.as_ref(), order);
            assert_eq!(in_range(&composite, &range), s.starts_with(&prefix));
            // A non-string value is never in range; a string one only if it matches.
            let other_key = enc(other.as_ref(), order);
            let matches = matches!(other, Some(Value::String(t)) if t.starts_with(&prefix));
            assert_eq!(in_range(&other_key, &range), matches);
        }
    }
}
