//! Session consistency: the `X-Aerolith-Session` token a client carries across calls, and
//! the merge of two tokens (API-DECISIONS "Session token": `s1.` + base64url of a protobuf
//! list of marks, the later point per shard and DC kept).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A session: the newest `X-Aerolith-Session` token seen, sent with every call made through
/// it, so reads see the session's own writes through any gateway (API.md "Session
/// consistency"). Clones share the token.
#[derive(Debug, Clone, Default)]
pub struct Session {
    token: Arc<Mutex<Option<String>>>,
}

impl Session {
    /// A new session with no token yet.
    pub fn new() -> Session {
        Session::default()
    }

    /// A session resuming from a token saved earlier.
    pub fn from_token(token: impl Into<String>) -> Session {
        Session {
            token: Arc::new(Mutex::new(Some(token.into()))),
        }
    }

    /// The current token, if any call has answered one yet.
    pub fn token(&self) -> Option<String> {
        self.token.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Merges `token` (what an answer carried: what its call sent plus what it did) into
    /// the session's, so concurrent calls' marks are all kept.
    pub(crate) fn update(&self, token: &str) {
        if token.is_empty() {
            return;
        }
        let mut held = self.token.lock().unwrap_or_else(|p| p.into_inner());
        let merged = match held.as_deref() {
            Some(current) => merge(current, token),
            None => token.to_string(),
        };
        *held = Some(merged);
    }
}

/// Marks of a session token: (shard, DC) to the newest (epoch, seq) seen.
type Marks = BTreeMap<(u64, String), (u64, u64)>;

/// The later point per (shard, DC) of two tokens; `b` (the newer) when either is not a
/// token of the format this client knows.
pub(crate) fn merge(a: &str, b: &str) -> String {
    if a == b {
        return b.to_string();
    }
    let (Some(mut merged), Some(other)) = (marks(a), marks(b)) else {
        return b.to_string();
    };
    for (key, point) in other {
        let slot = merged.entry(key).or_insert(point);
        *slot = (*slot).max(point);
    }
    encode(&merged)
}

/// The marks of an `s1.` token, or `None` for anything else.
fn marks(token: &str) -> Option<Marks> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token.strip_prefix("s1.")?.trim_end_matches('='))
        .ok()?;
    let mut out = Marks::new();
    for (num, field) in fields(&bytes)? {
        match (num, field) {
            (1, Field::Varint(v)) if v != 1 => return None,
            (2, Field::Bytes(mark)) => {
                let (mut shard, mut dc, mut epoch, mut seq) = (0, String::new(), 0, 0);
                for (n, f) in fields(mark)? {
                    match (n, f) {
                        (1, Field::Varint(v)) => shard = v,
                        (2, Field::Bytes(b)) => dc = String::from_utf8(b.to_vec()).ok()?,
                        (3, Field::Varint(v)) => epoch = v,
                        (4, Field::Varint(v)) => seq = v,
                        _ => {}
                    }
                }
                let slot = out.entry((shard, dc)).or_insert((epoch, seq));
                *slot = (*slot).max((epoch, seq));
            }
            _ => {}
        }
    }
    Some(out)
}

/// `marks` as a token (version 1; zero fields left out, as protobuf does).
fn encode(marks: &Marks) -> String {
    let mut out = Vec::new();
    varint_field(&mut out, 1, 1);
    for ((shard, dc), (epoch, seq)) in marks {
        let mut mark = Vec::new();
        varint_field(&mut mark, 1, *shard);
        bytes_field(&mut mark, 2, dc.as_bytes());
        varint_field(&mut mark, 3, *epoch);
        varint_field(&mut mark, 4, *seq);
        bytes_field(&mut out, 2, &mark);
    }
    format!("s1.{}", URL_SAFE_NO_PAD.encode(out))
}

/// A protobuf field's value: the two wire types a session token uses.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// The (number, value) fields of a protobuf message, or `None` if it is malformed.
fn fields(mut data: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let tag = read_varint(&mut data)?;
        let field = match tag & 7 {
            0 => Field::Varint(read_varint(&mut data)?),
            2 => {
                let n = usize::try_from(read_varint(&mut data)?).ok()?;
                if n > data.len() {
                    return None;
                }
                let (value, rest) = data.split_at(n);
                data = rest;
                Field::Bytes(value)
            }
            _ => return None,
        };
        out.push((tag >> 3, field));
    }
    Some(out)
}

fn read_varint(data: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = data.split_first()?;
        *data = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn varint_field(out: &mut Vec<u8>, num: u64, v: u64) {
    if v != 0 {
        varint(out, num << 3);
        varint(out, v);
    }
}

fn bytes_field(out: &mut Vec<u8>, num: u64, v: &[u8]) {
    varint(out, (num << 3) | 2);
    varint(out, v.len() as u64);
    out.extend_from_slice(v);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(marks: &[(u64, &str, u64, u64)]) -> String {
        encode(
            &marks
                .iter()
                .map(|&(s, d, e, q)| ((s, d.to_string()), (e, q)))
                .collect(),
        )
    }

    #[test]
    fn merging_keeps_the_later_point_of_every_shard_and_dc() {
        let a = token(&[(1, "dc1", 5, 10), (2, "dc1", 5, 3)]);
        let b = token(&[(1, "dc1", 5, 7), (3, "dc2", 9, 1)]);
        let m = merge(&a, &b);
        assert_eq!(
            m,
            token(&[(1, "dc1", 5, 10), (2, "dc1", 5, 3), (3, "dc2", 9, 1)])
        );
        // A later epoch wins over a higher seq.
        let c = token(&[(1, "dc1", 6, 1)]);
        assert_eq!(marks(&merge(&m, &c)).unwrap()[&(1, "dc1".into())], (6, 1));
        assert_eq!(merge(&a, &a), a);
    }

    #[test]
    fn a_token_of_another_format_replaces_the_held_one() {
        let a = token(&[(1, "dc1", 5, 10)]);
        assert_eq!(merge(&a, "s2.xyz"), "s2.xyz");
        assert_eq!(merge("garbage", &a), a);
        assert!(marks("s1.!!!").is_none());
        assert!(marks("s1.CgE").is_none()); // a truncated field
    }

    #[test]
    fn concurrent_answers_are_merged_into_the_session() {
        let s = Session::new();
        s.update(&token(&[(1, "dc1", 5, 10)]));
        s.update(&token(&[(2, "dc1", 5, 4)]));
        let held = s.token().unwrap();
        assert_eq!(held, token(&[(1, "dc1", 5, 10), (2, "dc1", 5, 4)]));
    }
}
