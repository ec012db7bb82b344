//! Change-feed resume tokens: opaque, versioned, URL-safe. A token names the DC whose logs it
//! refers to and holds one `(epoch, seq)` position per shard (the last change consumed).
//!
//! Version 2 (written since shard counts reach 4096) packs the positions: each shard's epoch
//! and sequence as zigzag varint deltas from the previous shard's, and runs of shards equal
//! to the one before as one count. Epochs are mostly equal and sequences of similar size
//! (documents hash evenly), so an active feed's token costs about two bytes a shard and a
//! fresh one a few bytes in all. Version 1 tokens (a position message per shard) are still
//! read, so tokens held across an upgrade keep working.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prost::Message;

use aerolith_common::{Error, Result, pb};

/// The token format this code writes.
const VERSION: u32 = 2;
/// The older format this code still reads.
const VERSION_LISTED: u32 = 1;
/// Prefix that makes tokens recognisable (and versions them once more, cheaply).
const PREFIX: &str = "t1.";

/// Per-shard positions of a feed, indexed by shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Positions {
    /// `(epoch, seq)` per shard; epoch 0 means "from the oldest retained change".
    pub shards: Vec<(u64, u64)>,
}

impl Positions {
    /// Every shard at the oldest retained change.
    pub fn oldest(shards: u16) -> Positions {
        Positions {
            shards: vec![(0, 0); shards as usize],
        }
    }

    /// The wire positions of `shards`.
    pub fn of(&self, shards: &[u16]) -> Vec<pb::ShardPosition> {
        shards
            .iter()
            .map(|&s| {
                let (epoch, seq) = self.shards.get(s as usize).copied().unwrap_or((0, 0));
                pb::ShardPosition {
                    shard: u32::from(s),
                    epoch,
                    seq,
                }
            })
            .collect()
    }

    /// Records a shard's new position.
    pub fn set(&mut self, p: &pb::ShardPosition) {
        if let Some(slot) = self.shards.get_mut(p.shard as usize) {
            *slot = (p.epoch, p.seq);
        }
    }

    /// Encodes a token for DC `dc`.
    pub fn encode(&self, dc: &str) -> String {
        let token = pb::FeedToken {
            version: VERSION,
            dc: dc.to_string(),
            positions: Vec::new(),
            packed: pack(&self.shards),
        };
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(token.encode_to_vec()))
    }

    /// Decodes a client's token for DC `dc` of a cluster with `shards` shards.
    pub fn decode(token: &str, dc: &str, shards: u16) -> Result<Positions> {
        let bad = |why: &str| Error::invalid(format!("malformed resume token: {why}"));
        let body = token
            .trim()
            .strip_prefix(PREFIX)
            .ok_or_else(|| bad("unknown format"))?;
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| bad("not base64url"))?;
        let t = pb::FeedToken::decode(raw.as_slice()).map_err(|_| bad("undecodable"))?;
        if t.version != VERSION && t.version != VERSION_LISTED {
            return Err(bad("unknown version"));
        }
        if t.dc != dc {
            return Err(Error::invalid(format!(
                "this resume token belongs to DC {:?}; this gateway serves DC {dc:?}",
                t.dc
            )));
        }
        if t.version == VERSION {
            let shards = unpack(&t.packed, usize::from(shards))
                .ok_or_else(|| bad("shards do not match this cluster"))?;
            return Ok(Positions { shards });
        }
        let mut out = Positions {
            shards: vec![(u64::MAX, 0); shards as usize],
        };
        for p in &t.positions {
            match out.shards.get_mut(p.shard as usize) {
                Some(slot) if slot.0 == u64::MAX => *slot = (p.epoch, p.seq),
                _ => return Err(bad("shards do not match this cluster")),
            }
        }
        if out.shards.iter().any(|s| s.0 == u64::MAX) {
            return Err(bad("shards do not match this cluster"));
        }
        Ok(out)
    }
}

/// Header of an entry whose epoch equals the predicted one: the sequence delta follows.
const SAME_EPOCH: u64 = 0;
/// Header of an entry with both deltas following.
const BOTH: u64 = 1;
/// Headers from here on are runs: `header - RUN + 1` shards equal to their predictions.
const RUN: u64 = 2;
/// The longest period the packer tries.
const MAX_PERIOD: usize = 16;

fn zigzag(d: u64) -> u64 {
    let d = d as i64;
    ((d << 1) ^ (d >> 63)) as u64
}

fn unzigzag(z: u64) -> u64 {
    ((z >> 1) as i64 ^ -((z & 1) as i64)) as u64
}

/// The prediction of shard `s`'s position: shard `s - period`'s (nothing before shard 0).
fn predicted(out: &[(u64, u64)], period: usize) -> (u64, u64) {
    out.len().checked_sub(period).map_or((0, 0), |i| out[i])
}

/// Packs positions (version 2's `packed`): the period `p` that packs smallest, then each
/// shard as deltas from shard `s - p`'s position. Shards are dealt over a DC's nodes in
/// turn and a node's logs share an epoch, so with `p` the node count most epochs repeat
/// exactly and sequences differ by little.
fn pack(shards: &[(u64, u64)]) -> Vec<u8> {
    (1..=MAX_PERIOD.min(shards.len().max(1)))
        .map(|p| pack_with(shards, p))
        .min_by_key(Vec::len)
        .unwrap_or_default()
}

fn pack_with(shards: &[(u64, u64)], period: usize) -> Vec<u8> {
    use prost::encoding::encode_varint;
    let mut out = Vec::with_capacity(8 + shards.len() * 2);
    encode_varint(period as u64, &mut out);
    let mut run = 0u64;
    for (i, &(epoch, seq)) in shards.iter().enumerate() {
        let guess = predicted(&shards[..i], period);
        if (epoch, seq) == guess {
            run += 1;
            continue;
        }
        if run > 0 {
            encode_varint(RUN + run - 1, &mut out);
            run = 0;
        }
        let (de, ds) = (epoch.wrapping_sub(guess.0), seq.wrapping_sub(guess.1));
        if de == 0 {
            encode_varint(SAME_EPOCH, &mut out);
        } else {
            encode_varint(BOTH, &mut out);
            encode_varint(zigzag(de), &mut out);
        }
        encode_varint(zigzag(ds), &mut out);
    }
    if run > 0 {
        encode_varint(RUN + run - 1, &mut out);
    }
    out
}

/// Unpacks exactly `count` positions; `None` if the bytes hold another number or are broken.
fn unpack(mut bytes: &[u8], count: usize) -> Option<Vec<(u64, u64)>> {
    use prost::encoding::decode_varint;
    let period = usize::try_from(decode_varint(&mut bytes).ok()?).ok()?;
    if !(1..=MAX_PERIOD).contains(&period) {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    while !bytes.is_empty() {
        let header = decode_varint(&mut bytes).ok()?;
        if header >= RUN {
            let run = usize::try_from(header - RUN + 1).ok()?;
            if run > count - out.len() {
                return None;
            }
            for _ in 0..run {
                out.push(predicted(&out, period));
            }
            continue;
        }
        let de = match header {
            BOTH => unzigzag(decode_varint(&mut bytes).ok()?),
            _ => 0,
        };
        let ds = unzigzag(decode_varint(&mut bytes).ok()?);
        if out.len() == count {
            return None;
        }
        let guess = predicted(&out, period);
        out.push((guess.0.wrapping_add(de), guess.1.wrapping_add(ds)));
    }
    (out.len() == count).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_foreign_or_broken_tokens() {
        let mut p = Positions::oldest(4);
        p.set(&pb::ShardPosition {
            shard: 2,
            epoch: 77,
            seq: 9,
        });
        let t = p.encode("dc1");
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "{t}"
        );
        assert_eq!(Positions::decode(&t, "dc1", 4).unwrap(), p);
        let e = Positions::decode(&t, "dc2", 4).unwrap_err();
        assert!(e.message.contains("dc1"), "{}", e.message);
        assert!(Positions::decode(&t, "dc1", 5).is_err());
        assert!(Positions::decode(&t, "dc1", 3).is_err());
        for bad in ["", "t1.", "t1.@@", "x1.AAAA", &t[..t.len() - 3]] {
            assert!(Positions::decode(bad, "dc1", 4).is_err(), "{bad}");
        }
    }

    #[test]
    fn version_1_tokens_still_resume() {
        let listed = pb::FeedToken {
            version: VERSION_LISTED,
            dc: "dc1".into(),
            positions: (0..4u32)
                .map(|s| pb::ShardPosition {
                    shard: s,
                    epoch: 5,
                    seq: u64::from(s) * 10,
                })
                .collect(),
            packed: Vec::new(),
        };
        let t = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(listed.encode_to_vec()));
        let p = Positions::decode(&t, "dc1", 4).unwrap();
        assert_eq!(p.shards, vec![(5, 0), (5, 10), (5, 20), (5, 30)]);
    }

    #[test]
    fn packing_round_trips_any_positions_and_stays_small() {
        use proptest::prelude::*;
        let position = prop_oneof![
            Just((0u64, 0u64)),
            (1_700_000_000_000u64..1_700_000_000_010, 0u64..2_000),
            (any::<u64>(), any::<u64>()),
        ];
        proptest!(|(shards in proptest::collection::vec(position, 1..300))| {
            let packed = pack(&shards);
            prop_assert_eq!(unpack(&packed, shards.len()), Some(shards.clone()));
            prop_assert_eq!(unpack(&packed, shards.len() + 1), None);
            prop_assert_eq!(unpack(&packed, shards.len() - 1), None);
        });
        // At 4096 shards over three nodes, each node's logs under an epoch of their own: a
        // feed that has seen nothing yet, and one with even sequences around 250 (a
        // million changes over the shards).
        let epoch = |s: u64| 1_765_000_000_000 + (s % 3) * 7;
        let fresh = Positions::oldest(4096).encode("dc1");
        assert!(fresh.len() < 40, "{}", fresh.len());
        let idle = Positions {
            shards: (0..4096u64).map(|s| (epoch(s), 0)).collect(),
        };
        let t = idle.encode("dc1");
        assert!(t.len() < 100, "{}", t.len());
        assert_eq!(Positions::decode(&t, "dc1", 4096).unwrap(), idle);
        let active = Positions {
            shards: (0..4096u64)
                .map(|s| (epoch(s), 230 + (s * 7919) % 40))
                .collect(),
        };
        let t = active.encode("dc1");
        println!(
            "a token at 4096 shards: {} bytes idle, {} active",
            idle.encode("dc1").len(),
            t.len()
        );
        assert!(t.len() < 4 * 4096, "{}", t.len());
        assert_eq!(Positions::decode(&t, "dc1", 4096).unwrap(), active);
    }
}
