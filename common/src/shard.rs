//! The stable mapping of a document key to a virtual shard.

/// The default number of virtual shards, fixed when a cluster is created.
pub const DEFAULT_SHARDS: u16 = 64;

/// A stable 64-bit hash: FNV-1a over the bytes, then MurmurHash3's finaliser so that the
/// low bits (used by `mod shards`) are well mixed. Never change it: it places data on disk.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The shard of document `collection/id` among `shards` shards.
pub fn shard_of(collection: &str, id: &str, shards: u16) -> u16 {
    let mut key = Vec::with_capacity(collection.len() + 1 + id.len());
    key.extend_from_slice(collection.as_bytes());
    key.push(b'/');
    key.extend_from_slice(id.as_bytes());
    (stable_hash(&key) % shards.max(1) as u64) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_vectors() {
        // These values are on disk in every deployment: they must never change.
        assert_eq!(stable_hash(b""), 17280346270528514342);
        let got: Vec<u16> = [
            ("users", "u1"),
            ("users", "u2"),
            ("orders", "2026-11-28:0001"),
        ]
        .iter()
        .map(|(c, id)| shard_of(c, id, 64))
        .collect();
        assert_eq!(got, vec![57, 13, 15]);
        assert_eq!(shard_of("users", "u1", 1), 0);
    }

    #[test]
    fn spreads_over_all_shards() {
        let mut seen = [0u32; 64];
        for i in 0..6400 {
            seen[shard_of("c", &format!("doc{i}"), 64) as usize] += 1;
        }
        assert!(seen.iter().all(|n| (50..=150).contains(n)), "{seen:?}");
    }
}
