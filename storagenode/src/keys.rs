//! Key layouts of the RocksDB column families (DESIGN.md "Storage node").

/// `shard u16 BE | collection | 0x00`: the prefix of a collection's documents in one shard.
pub fn doc_prefix(shard: u16, collection: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + collection.len());
    k.extend_from_slice(&shard.to_be_bytes());
    k.extend_from_slice(collection.as_bytes());
    k.push(0);
    k
}

/// The first key past every document of `collection` in `shard`.
pub fn doc_prefix_end(shard: u16, collection: &str) -> Vec<u8> {
    let mut k = doc_prefix(shard, collection);
    if let Some(last) = k.last_mut() {
        *last = 1;
    }
    k
}

/// `shard | collection | 0x00 | id`: one document's record.
pub fn doc_key(shard: u16, collection: &str, id: &str) -> Vec<u8> {
    let mut k = doc_prefix(shard, collection);
    k.extend_from_slice(id.as_bytes());
    k
}

/// The `(collection, id)` of a [`doc_key`], if it is well formed.
pub fn split_doc_key(key: &[u8]) -> Option<(&str, &str)> {
    let rest = key.get(2..)?;
    let at = rest.iter().position(|b| *b == 0)?;
    Some((
        std::str::from_utf8(&rest[..at]).ok()?,
        std::str::from_utf8(&rest[at + 1..]).ok()?,
    ))
}

/// `shard u16 BE`: the first key of a shard (in `docs` and `changes`).
pub fn shard_start(shard: u16) -> Vec<u8> {
    shard.to_be_bytes().to_vec()
}

/// The first key past a shard (in `docs` and `changes`).
pub fn shard_end(shard: u16) -> Vec<u8> {
    match shard.checked_add(1) {
        Some(next) => next.to_be_bytes().to_vec(),
        None => vec![0xff, 0xff, 0xff],
    }
}

/// `shard | seq u64 BE`: one change-log entry.
pub fn change_key(shard: u16, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(10);
    k.extend_from_slice(&shard.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The sequence number of a [`change_key`].
pub fn change_seq(key: &[u8]) -> Option<u64> {
    key.get(2..10)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
}

/// Meta key of a shard's last change-log sequence number.
pub fn meta_seq(shard: u16) -> Vec<u8> {
    let mut k = b"seq/".to_vec();
    k.extend_from_slice(&shard.to_be_bytes());
    k
}

/// Meta key of a shard's change-log epoch.
pub fn meta_log_epoch(shard: u16) -> Vec<u8> {
    let mut k = b"logepoch/".to_vec();
    k.extend_from_slice(&shard.to_be_bytes());
    k
}

/// Meta key of a shard's oldest retained change-log sequence number.
pub fn meta_log_first(shard: u16) -> Vec<u8> {
    let mut k = b"logfirst/".to_vec();
    k.extend_from_slice(&shard.to_be_bytes());
    k
}

/// Meta key prefix of collection settings.
pub const META_COLLECTION_PREFIX: &[u8] = b"coll/";

/// Meta key of one collection's settings.
pub fn meta_collection(name: &str) -> Vec<u8> {
    let mut k = META_COLLECTION_PREFIX.to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

/// Meta key of the node's identity (`dc/node`), checked at every open.
pub const META_IDENTITY: &[u8] = b"identity";
/// Meta key of the node's actor epoch.
pub const META_EPOCH: &[u8] = b"epoch";
/// Meta key of the cluster's shard count, fixed when the store is created.
pub const META_SHARDS: &[u8] = b"shards";
/// Meta key of the QUIC stateless-reset key.
pub const META_RESET_KEY: &[u8] = b"reset_key";
/// Meta key present while a store runs with relaxed durability and was not closed cleanly.
pub const META_DIRTY: &[u8] = b"dirty";

/// Meta key of the HLC's high-water mark (the newest stamp issued or observed).
pub const META_HLC: &[u8] = b"hlc";
/// Meta key present while a new store waits for its replicator to decide whether it must be
/// seeded (`--new-store auto`).
pub const META_UNDECIDED: &[u8] = b"undecided";

/// Meta key prefix of idempotency records.
pub const META_IDEM_PREFIX: &[u8] = b"idem/";
/// Meta key prefix of idempotency records' expiry entries (in expiry order).
pub const META_IDEM_EXPIRY_PREFIX: &[u8] = b"idemx/";

fn idem_suffix(k: &mut Vec<u8>, shard: u16, collection: &str, scope: &str, key: &str) {
    k.extend_from_slice(&shard.to_be_bytes());
    k.extend_from_slice(collection.as_bytes());
    k.push(0);
    k.extend_from_slice(scope.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
}

/// Meta key of the idempotency record of `key` scoped to `scope` (a document id, or empty
/// for a create under a generated id) in `collection` of `shard`:
/// `idem/ | shard u16 BE | collection | 0 | scope | 0 | key`.
pub fn meta_idem(shard: u16, collection: &str, scope: &str, key: &str) -> Vec<u8> {
    let mut k = META_IDEM_PREFIX.to_vec();
    idem_suffix(&mut k, shard, collection, scope, key);
    k
}

/// Meta key of an idempotency record's expiry entry: `idemx/ | expires_ms u64 BE | ` and the
/// record key's part after `idem/`, so purging walks records in expiry order.
pub fn meta_idem_expiry(
    expires_ms: u64,
    shard: u16,
    collection: &str,
    scope: &str,
    key: &str,
) -> Vec<u8> {
    let mut k = META_IDEM_EXPIRY_PREFIX.to_vec();
    k.extend_from_slice(&expires_ms.to_be_bytes());
    idem_suffix(&mut k, shard, collection, scope, key);
    k
}

/// Meta key of a shard's counter floor (see `ShardState::counter_floor`).
pub fn meta_counter_floor(shard: u16) -> Vec<u8> {
    let mut k = b"ctrfloor/".to_vec();
    k.extend_from_slice(&shard.to_be_bytes());
    k
}

/// Meta key prefix of the shards still waiting to be seeded from a peer DC.
pub const META_UNSEEDED_PREFIX: &[u8] = b"unseeded/";

/// Meta key marking `shard` as waiting to be seeded.
pub fn meta_unseeded(shard: u16) -> Vec<u8> {
    let mut k = META_UNSEEDED_PREFIX.to_vec();
    k.extend_from_slice(&shard.to_be_bytes());
    k
}

/// Meta key prefix of the tombstone index of `shard` (`tomb/ | shard u16 BE`).
pub fn meta_tomb_prefix(shard: u16) -> Vec<u8> {
    let mut k = b"tomb/".to_vec();
    k.extend_from_slice(&shard.to_be_bytes());
    k
}

/// Meta key of the tombstone of `collection/id` logged at `seq` of `shard`'s log (copied
/// tombstones of a seeded shard all sit at the log's base): its value names the document
/// and the tombstone's HLC, so the collector finds tombstones in log order.
pub fn meta_tomb(shard: u16, seq: u64, collection: &str, id: &str) -> Vec<u8> {
    let mut k = meta_tomb_before(shard, seq);
    k.extend_from_slice(collection.as_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

/// The first tombstone index key of `shard` at `seq` (every entry at `seq` or later sorts
/// at or after it).
pub fn meta_tomb_before(shard: u16, seq: u64) -> Vec<u8> {
    let mut k = meta_tomb_prefix(shard);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Meta key of the DC's shard map as this node last adopted it (`pb::ShardMap`).
pub const META_SHARD_MAP: &[u8] = b"shard_map";

/// Meta key of what the peers acknowledged of this node's logs (the last `PeerAcks`).
pub const META_PEER_ACKS: &[u8] = b"peer_acks";

/// Meta key of the applied watermark of `origin_dc`'s change log of `shard`:
/// `wm/ | shard u16 BE | dc`.
pub fn meta_watermark(shard: u16, origin_dc: &str) -> Vec<u8> {
    let mut k = meta_watermark_prefix();
    k.extend_from_slice(&shard.to_be_bytes());
    k.extend_from_slice(origin_dc.as_bytes());
    k
}

/// The prefix of every [`meta_watermark`] key.
pub fn meta_watermark_prefix() -> Vec<u8> {
    b"wm/".to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_keys_sort_by_id_within_a_collection() {
        let a = doc_key(3, "users", "a");
        let b = doc_key(3, "users", "b");
        assert!(a < b);
        assert!(doc_prefix(3, "users") < a);
        assert!(b < doc_prefix_end(3, "users"));
        // A collection whose name extends another's does not interleave with it.
        assert!(doc_key(3, "users2", "a") > doc_prefix_end(3, "users"));
        assert!(change_key(1, 2) < change_key(1, 256));
    }
}
