//! Idempotency keys (API.md "Idempotency"): a write that carries a key leaves a record of
//! what it answered, in the same batch as the write, in the document's shard; a later write
//! with the same key finds it and answers the same, writing nothing. The record travels
//! with the write's change-log entry, so the other DCs keep it too once the write arrives.
//! Records are forgotten after the retention window (`--idempotency-retention-seconds`).

use prost::Message;
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};

use aerolith_common::time::now_ms;
use aerolith_common::{Error, Result, pb};

use crate::engine::Cf;
use crate::engine::db_err;
use crate::group::Staged;
use crate::keys::{META_IDEM_EXPIRY_PREFIX, meta_idem, meta_idem_expiry};
use crate::store::{ShardState, Store};

/// Records a purge pass removes at most.
const PURGE_BATCH: usize = 10_000;

impl Store {
    /// The answer an earlier write with `idem`'s key gave, if one is remembered; a remembered
    /// key of another request is `invalid_argument`. Called under the shard's lock.
    pub(crate) fn replay(
        &self,
        shard: u16,
        collection: &str,
        idem: Option<&pb::Idempotency>,
    ) -> Result<Option<pb::DocResponse>> {
        let Some(idem) = idem else { return Ok(None) };
        let Some(rec) = self.idem_record(shard, collection, &idem.scope, &idem.key)? else {
            return Ok(None);
        };
        if rec.fingerprint != idem.fingerprint {
            return Err(Error::invalid(format!(
                "Idempotency-Key {:?} was already used with a different request",
                idem.key
            )));
        }
        metrics::counter!("aerolith_idempotent_replays_total").increment(1);
        Ok(Some(pb::DocResponse {
            record: rec.record,
            created: rec.created,
            mark: rec.mark,
            id: rec.id,
            replayed: true,
        }))
    }

    /// The unexpired record of a key, if any, staged writes included (called under the
    /// shard's lock).
    fn idem_record(
        &self,
        shard: u16,
        collection: &str,
        scope: &str,
        key: &str,
    ) -> Result<Option<pb::IdemRecord>> {
        let Some(bytes) = self.latest(Cf::Meta, &meta_idem(shard, collection, scope, key))? else {
            return Ok(None);
        };
        let rec = pb::IdemRecord::decode(&*bytes)
            .map_err(|e| Error::internal(format!("corrupt idempotency record: {e}")))?;
        Ok((rec.expires_ms > now_ms()).then_some(rec))
    }

    /// The record a write with `idem` leaves: what it answers, kept for the retention window.
    /// `st` is the shard's lock, under which the write commits next.
    pub(crate) fn idem_for(
        &self,
        st: &ShardState,
        shard: u16,
        id: &str,
        idem: Option<&pb::Idempotency>,
        record: &pb::DocRecord,
        created: bool,
    ) -> Option<pb::IdemRecord> {
        let idem = idem?;
        Some(pb::IdemRecord {
            key: idem.key.clone(),
            scope: idem.scope.clone(),
            fingerprint: idem.fingerprint.clone(),
            id: id.to_string(),
            record: Some(record.clone()),
            created,
            // The position the commit takes (commits under the lock are gap-free).
            mark: Some(pb::SessionMark {
                shard: u32::from(shard),
                dc: self.dc.clone(),
                epoch: st.log_epoch,
                seq: st.seq + 1,
            }),
            expires_ms: now_ms().saturating_add(self.retention().idempotency.as_millis() as u64),
        })
    }

    /// Adds `rec` (for `collection` in `shard`) and its expiry entry to `staged`, unless a
    /// record of the key is kept already (the first write's answer stands).
    pub(crate) fn idem_into(
        &self,
        staged: &mut Staged,
        shard: u16,
        collection: &str,
        rec: &pb::IdemRecord,
    ) -> Result<()> {
        if rec.expires_ms <= now_ms()
            || self
                .idem_record(shard, collection, &rec.scope, &rec.key)?
                .is_some()
        {
            return Ok(());
        }
        let meta = self.engine.cf(Cf::Meta)?;
        let key = meta_idem(shard, collection, &rec.scope, &rec.key);
        let bytes = rec.encode_to_vec();
        staged.track(Cf::Meta, &key, &bytes);
        staged.batch.put_cf(meta, key, bytes);
        staged.batch.put_cf(
            meta,
            meta_idem_expiry(rec.expires_ms, shard, collection, &rec.scope, &rec.key),
            [],
        );
        Ok(())
    }

    /// Forgets the keys whose window closed before `now_ms`; returns how many.
    pub fn purge_idempotency(&self, now_ms: u64) -> Result<u64> {
        let meta = self.engine.cf(Cf::Meta)?;
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(meta_idem_expiry(now_ms, 0, "", "", ""));
        let mut batch = WriteBatch::default();
        let mut purged = 0;
        for item in self
            .engine
            .db()
            .iterator_cf_opt(
                meta,
                ro,
                IteratorMode::From(META_IDEM_EXPIRY_PREFIX, Direction::Forward),
            )
            .take(PURGE_BATCH)
        {
            let (k, _) = item.map_err(db_err)?;
            let Some(rest) = k.strip_prefix(META_IDEM_EXPIRY_PREFIX) else {
                break;
            };
            // `expires u64 | shard u16 | collection 0 scope 0 key`: the record's key is
            // `idem/` with the rest after the expiry. A record written again for the key
            // since (after this one expired) has an expiry of its own and stays.
            if let (Some(expires), Some(record_key)) = (rest.get(..8), rest.get(8..)) {
                let mut full = crate::keys::META_IDEM_PREFIX.to_vec();
                full.extend_from_slice(record_key);
                let same = match self.engine.get(Cf::Meta, &full)? {
                    Some(b) => pb::IdemRecord::decode(&*b)
                        .map(|r| r.expires_ms.to_be_bytes() == expires)
                        .unwrap_or(true),
                    None => false,
                };
                if same {
                    batch.delete_cf(meta, full);
                }
            }
            batch.delete_cf(meta, &k);
            purged += 1;
        }
        if purged > 0 {
            self.engine.db().write(batch).map_err(db_err)?;
            metrics::counter!("aerolith_idempotency_keys_purged_total").increment(purged);
        }
        Ok(purged)
    }
}
