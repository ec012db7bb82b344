//! Change-feed resume tokens: opaque, versioned, URL-safe. A token names the DC whose logs it
//! refers to and holds one `(epoch, seq)` position per shard (the last change consumed).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prost::Message;

use aerolith_common::{Error, Result, pb};

/// The token format this code writes and reads.
const VERSION: u32 = 1;
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
            positions: self
                .shards
                .iter()
                .enumerate()
                .map(|(s, &(epoch, seq))| pb::ShardPosition {
                    shard: s as u32,
                    epoch,
                    seq,
                })
                .collect(),
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
        if t.version != VERSION {
            return Err(bad("unknown version"));
        }
        if t.dc != dc {
            return Err(Error::invalid(format!(
                "this resume token belongs to DC {:?}; this gateway serves DC {dc:?}",
                t.dc
            )));
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
}
