//! Document reads and local writes: preconditions, version vectors, per-field stamps, and
//! listing in id order across shards.

use std::collections::HashMap;
use std::time::Instant;

use prost::Message;
use serde_json::{Map, Value};

use aerolith_common::document::version_of;
use aerolith_common::json::{
    check_canonical, decode_stored, encode_object, parse_object, parse_value,
};
use aerolith_common::name::{validate_collection, validate_doc_id};
use aerolith_common::patch::{self, PatchKind};
use aerolith_common::version::VersionVector;
use aerolith_common::{Error, ErrorCode, Result, pb};

use crate::collections::visible;
use crate::engine::Cf;
use crate::keys::doc_key;
use crate::scan::{MergedScan, Start};
use crate::store::{RECORD_FORMAT, ShardState, Staging, Store};

/// Which fields a local write stamps (for `field_merge` collections).
enum Stamping<'a> {
    /// PUT: every field of the new body; dropped fields become field tombstones.
    Put(&'a Map<String, Value>),
    /// PATCH: only fields whose value changed, appeared or disappeared.
    Patch(&'a Map<String, Value>, &'a Map<String, Value>),
    /// DELETE: one document stamp (`deleted_at`) that every older field stamp loses to.
    Delete,
}

/// Whether writes to a collection with `meta` stamp each field (field-level merge).
fn stamps_fields(meta: &pb::CollectionMeta) -> bool {
    meta.strategy == pb::ConflictStrategy::FieldMerge as i32
}

fn keys(collection: &str, id: &str) -> Result<()> {
    validate_collection(collection)?;
    validate_doc_id(id)
}

/// The live record, or `not_found` (PATCH and DELETE check existence before `If-Match`).
fn live_or_not_found<'a>(
    current: Option<&'a pb::DocRecord>,
    collection: &str,
    id: &str,
) -> Result<&'a pb::DocRecord> {
    current
        .filter(|r| !r.tombstone)
        .ok_or_else(|| Error::not_found(format!("document {collection}/{id} not found")))
}

/// The newest HLC a record carries anywhere: its own, its siblings', its field stamps'.
fn newest_stamp(rec: &pb::DocRecord) -> u64 {
    let stamps = rec
        .field_stamps
        .iter()
        .chain(&rec.existence)
        .chain(&rec.deleted_at)
        .map(|s| s.hlc);
    let siblings = rec.siblings.iter().map(|s| s.hlc);
    stamps.chain(siblings).fold(rec.hlc, u64::max)
}

fn precondition_failed(message: String) -> Error {
    Error::new(ErrorCode::PreconditionFailed, message)
}

/// Checks `If-Match` / `If-None-Match` against the live record (`None` when absent or deleted).
fn check_precondition(live: Option<&pb::DocRecord>, pre: Option<&pb::Precondition>) -> Result<()> {
    let Some(pre) = pre else { return Ok(()) };
    if pre.if_none_match_any && live.is_some() {
        return Err(Error::new(
            ErrorCode::AlreadyExists,
            "the document already exists",
        ));
    }
    if pre.if_match_any && live.is_none() {
        return Err(precondition_failed(
            "If-Match: the document does not exist".into(),
        ));
    }
    if !pre.if_match.is_empty() {
        let Some(rec) = live else {
            return Err(precondition_failed(
                "If-Match: the document does not exist".into(),
            ));
        };
        let current = version_of(rec);
        if pre.if_match != current {
            return Err(precondition_failed(format!(
                "If-Match: version {} is not current (current is {current})",
                pre.if_match
            )));
        }
    }
    Ok(())
}

impl Store {
    /// Reads a durable record of the collection's current incarnation (tombstones
    /// included).
    pub(crate) fn read_record(
        &self,
        shard: u16,
        collection: &str,
        id: &str,
    ) -> Result<Option<pb::DocRecord>> {
        let bytes = self.engine.get(Cf::Docs, &doc_key(shard, collection, id))?;
        self.visible_record(bytes, collection, id)
    }

    /// [`Store::read_record`] for a writer under the shard's lock: the newest record,
    /// staged writes included.
    pub(crate) fn latest_record(
        &self,
        shard: u16,
        collection: &str,
        id: &str,
    ) -> Result<Option<pb::DocRecord>> {
        let bytes = self.latest(Cf::Docs, &doc_key(shard, collection, id))?;
        self.visible_record(bytes, collection, id)
    }

    fn visible_record(
        &self,
        bytes: Option<Vec<u8>>,
        collection: &str,
        id: &str,
    ) -> Result<Option<pb::DocRecord>> {
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let rec = pb::DocRecord::decode(&*bytes)
            .map_err(|e| Error::internal(format!("corrupt record {collection}/{id}: {e}")))?;
        Ok(visible(self.collection_meta(collection).as_ref(), &rec).then_some(rec))
    }

    /// Builds the record of a local write on top of `current`. Its vector entry for this
    /// actor passes both the current record's and the shard's `counter_floor` (the highest
    /// of this actor's counters on a collected tombstone), and its HLC passes every stamp
    /// the current record carries: a new write dominates, and outranks, everything this
    /// actor wrote to the document before, even after the document's tombstone was
    /// collected or the clock stepped back.
    fn local_version(
        &self,
        current: Option<&pb::DocRecord>,
        counter_floor: u64,
        meta: &pb::CollectionMeta,
        body: Option<Vec<u8>>,
        stamping: Stamping<'_>,
    ) -> pb::DocRecord {
        let mut vv = VersionVector::from_proto(current.and_then(|c| c.vv.as_ref()));
        vv.increment_past(&self.actor(), counter_floor);
        if let Some(c) = current {
            self.hlc.observe(newest_stamp(c));
        }
        let hlc = self.hlc.now();
        let field_merge = stamps_fields(meta);
        let stamp = |deleted: bool| pb::FieldStamp {
            field: String::new(),
            hlc,
            dc: self.dc.clone(),
            deleted,
        };
        let existence = field_merge.then(|| stamp(body.is_none()));
        let deleted_at = match (field_merge, body.is_none()) {
            (false, _) => None,
            (true, true) => Some(stamp(true)),
            (true, false) => current.and_then(|c| c.deleted_at.clone()),
        };
        let field_stamps = if field_merge {
            self.stamp_fields(
                current
                    .map(|c| c.field_stamps.as_slice())
                    .unwrap_or_default(),
                hlc,
                stamping,
            )
        } else {
            Vec::new()
        };
        pb::DocRecord {
            format: RECORD_FORMAT,
            incarnation: meta.incarnation,
            vv: Some(vv.to_proto()),
            hlc,
            origin: self.dc.clone(),
            tombstone: body.is_none(),
            body: body.unwrap_or_default(),
            siblings: Vec::new(),
            field_stamps,
            existence,
            deleted_at,
        }
    }

    fn stamp_fields(
        &self,
        old: &[pb::FieldStamp],
        hlc: u64,
        stamping: Stamping<'_>,
    ) -> Vec<pb::FieldStamp> {
        let stamp = |field: &str, deleted: bool| pb::FieldStamp {
            field: field.to_string(),
            hlc,
            dc: self.dc.clone(),
            deleted,
        };
        let mut out: Vec<pb::FieldStamp> = Vec::new();
        match stamping {
            Stamping::Put(body) => {
                out.extend(body.keys().map(|k| stamp(k, false)));
                out.extend(
                    old.iter()
                        .filter(|s| !body.contains_key(&s.field))
                        .map(|s| stamp(&s.field, true)),
                );
            }
            Stamping::Patch(before, after) => {
                for s in old {
                    if !after.contains_key(&s.field) && !before.contains_key(&s.field) {
                        out.push(s.clone());
                    }
                }
                let previous: HashMap<&str, &pb::FieldStamp> =
                    old.iter().map(|s| (s.field.as_str(), s)).collect();
                for (k, v) in after {
                    match previous.get(k.as_str()) {
                        Some(s) if before.get(k) == Some(v) => out.push((*s).clone()),
                        _ => out.push(stamp(k, false)),
                    }
                }
                out.extend(
                    before
                        .keys()
                        .filter(|k| !after.contains_key(*k))
                        .map(|k| stamp(k, true)),
                );
            }
            Stamping::Delete => {}
        }
        out.sort_by(|a, b| a.field.cmp(&b.field));
        out
    }

    /// Reads one document's record.
    pub fn get(&self, req: &pb::GetRequest) -> Result<pb::DocResponse> {
        keys(&req.collection, &req.id)?;
        let shard = self.check_shard(req.shard)?;
        let record = self.read_record(shard, &req.collection, &req.id)?;
        Ok(self.got(shard, record))
    }

    /// [`Store::get`] from memory only (memtables and block cache), which takes no lock
    /// a writer holds and does no I/O, so it may run on an async worker: `None` when the
    /// record is on disk only.
    pub fn get_cached(&self, req: &pb::GetRequest) -> Result<Option<pb::DocResponse>> {
        keys(&req.collection, &req.id)?;
        let shard = self.check_shard(req.shard)?;
        let key = doc_key(shard, &req.collection, &req.id);
        let Some(bytes) = self.engine.get_cached(Cf::Docs, &key)? else {
            return Ok(None);
        };
        let record = self.visible_record(bytes, &req.collection, &req.id)?;
        Ok(Some(self.got(shard, record)))
    }

    /// The answer to a read of `record` in `shard`, with the mark a session carries on.
    fn got(&self, shard: u16, record: Option<pb::DocRecord>) -> pb::DocResponse {
        pb::DocResponse {
            record,
            created: false,
            mark: Some(self.head_mark(shard)),
            ..Default::default()
        }
    }

    /// The common end of a local write under the shard's lock `st`: the new record on top of
    /// `current`, the idempotency record if the client sent a key, one commit, the answer.
    #[allow(clippy::too_many_arguments)]
    fn write_local(
        &self,
        st: &mut ShardState,
        shard: u16,
        (collection, id): (&str, &str),
        current: Option<&pb::DocRecord>,
        meta: &pb::CollectionMeta,
        body: Option<Vec<u8>>,
        stamping: Stamping<'_>,
        created: bool,
        idem: Option<&pb::Idempotency>,
    ) -> Result<pb::DocResponse> {
        let record = self.local_version(current, st.counter_floor, meta, body, stamping);
        let idem = self.idem_for(st, shard, id, idem, &record, created);
        // Staged: the caller's `with_shard` waits for it once the shard is released.
        self.commit(st, shard, collection, id, &record, idem)?;
        Ok(pb::DocResponse {
            record: Some(record),
            created,
            mark: Some(self.written_mark(shard, st)),
            id: id.to_string(),
            replayed: false,
        })
    }

    /// The checks every local write makes first: names, shard, clock; the shard.
    fn admit(&self, collection: &str, id: &str, shard: u32) -> Result<u16> {
        keys(collection, id)?;
        let shard = self.check_shard(shard)?;
        self.check_clock()?;
        Ok(shard)
    }

    /// Stages a local write to `collection` in `shard`: takes a deletion the write names,
    /// then, under the shard's lock, answers a remembered idempotency key or runs `write`.
    fn stage_local(
        &self,
        (collection, shard, idem): (&str, u16, Option<&pb::Idempotency>),
        after_delete_hlc: u64,
        deadline: Instant,
        write: impl FnOnce(&mut ShardState) -> Result<pb::DocResponse>,
    ) -> Result<Staging<pb::DocResponse>> {
        // Before the shard's lock: taking a deletion takes every shard's.
        self.take_deletion(collection, after_delete_hlc)?;
        Ok(self.in_shard(shard, deadline, |st| {
            if let Some(first) = self.replay(shard, collection, idem)? {
                return Ok(first);
            }
            write(st)
        }))
    }

    /// Creates or replaces a document.
    pub fn put(&self, req: &pb::PutRequest, deadline: Instant) -> Result<pb::DocResponse> {
        self.finish(self.stage_put(req, deadline)?)
    }

    /// [`Store::put`] staged, not yet durable (see [`Store::in_shard`]).
    pub(crate) fn stage_put(
        &self,
        req: &pb::PutRequest,
        deadline: Instant,
    ) -> Result<Staging<pb::DocResponse>> {
        let shard = self.admit(&req.collection, &req.id, req.shard)?;
        // The gateway sent the canonical encoding it made under the same limits: stored as
        // sent, parsed only where field-level merge stamps the fields.
        check_canonical(&req.body, self.limits)?;
        let to = (req.collection.as_str(), shard, req.idempotency.as_ref());
        self.stage_local(to, req.after_delete_hlc, deadline, |st| {
            let meta = self.collection_for_write(&req.collection)?;
            // Only field stamps read the fields; other collections never look at `body`.
            let body = if stamps_fields(&meta) {
                parse_object(&req.body, self.limits)?
            } else {
                Map::new()
            };
            let current = self.latest_record(shard, &req.collection, &req.id)?;
            let live = current.as_ref().filter(|r| !r.tombstone);
            check_precondition(live, req.precondition.as_ref())?;
            let created = live.is_none();
            self.write_local(
                st,
                shard,
                (&req.collection, &req.id),
                current.as_ref(),
                &meta,
                Some(req.body.clone()),
                Stamping::Put(&body),
                created,
                req.idempotency.as_ref(),
            )
        })
    }

    /// Applies a merge patch or JSON Patch to an existing document.
    pub fn patch(&self, req: &pb::PatchRequest, deadline: Instant) -> Result<pb::DocResponse> {
        self.finish(self.stage_patch(req, deadline)?)
    }

    /// [`Store::patch`] staged, not yet durable (see [`Store::in_shard`]).
    pub(crate) fn stage_patch(
        &self,
        req: &pb::PatchRequest,
        deadline: Instant,
    ) -> Result<Staging<pb::DocResponse>> {
        let shard = self.admit(&req.collection, &req.id, req.shard)?;
        let kind = match pb::PatchKind::try_from(req.kind) {
            Ok(pb::PatchKind::Merge) => PatchKind::Merge,
            Ok(pb::PatchKind::JsonPatch) => PatchKind::JsonPatch,
            _ => return Err(Error::invalid("unknown patch kind")),
        };
        let patch_doc = parse_value(&req.patch, self.limits.max_depth + 2)?;
        let to = (req.collection.as_str(), shard, req.idempotency.as_ref());
        self.stage_local(to, req.after_delete_hlc, deadline, |st| {
            let current = self.latest_record(shard, &req.collection, &req.id)?;
            let live = live_or_not_found(current.as_ref(), &req.collection, &req.id)?;
            check_precondition(Some(live), req.precondition.as_ref())?;
            let before = decode_stored(&live.body)?;
            let after = patch::apply(kind, &before, &patch_doc, self.limits.max_bytes)?;
            let bytes = encode_object(&after, self.limits)?;
            let meta = self.collection_for_write(&req.collection)?;
            self.write_local(
                st,
                shard,
                (&req.collection, &req.id),
                current.as_ref(),
                &meta,
                Some(bytes),
                Stamping::Patch(&before, &after),
                false,
                req.idempotency.as_ref(),
            )
        })
    }

    /// Deletes a document, leaving a tombstone.
    pub fn delete(&self, req: &pb::DeleteRequest, deadline: Instant) -> Result<pb::DocResponse> {
        self.finish(self.stage_delete(req, deadline)?)
    }

    /// [`Store::delete`] staged, not yet durable (see [`Store::in_shard`]).
    pub(crate) fn stage_delete(
        &self,
        req: &pb::DeleteRequest,
        deadline: Instant,
    ) -> Result<Staging<pb::DocResponse>> {
        let shard = self.admit(&req.collection, &req.id, req.shard)?;
        let to = (req.collection.as_str(), shard, req.idempotency.as_ref());
        self.stage_local(to, req.after_delete_hlc, deadline, |st| {
            let current = self.latest_record(shard, &req.collection, &req.id)?;
            let live = live_or_not_found(current.as_ref(), &req.collection, &req.id)?;
            check_precondition(Some(live), req.precondition.as_ref())?;
            let meta = self.collection_for_write(&req.collection)?;
            self.write_local(
                st,
                shard,
                (&req.collection, &req.id),
                current.as_ref(),
                &meta,
                None,
                Stamping::Delete,
                false,
                req.idempotency.as_ref(),
            )
        })
    }

    /// Lists live documents in id order over the requested shards, stopping at `limit`,
    /// `max_bytes` or after examining `budget` records (tombstones included).
    pub fn list(&self, req: &pb::ListRequest, budget: usize) -> Result<pb::ListResponse> {
        validate_collection(&req.collection)?;
        if !req.after.is_empty() {
            validate_doc_id(&req.after)?;
        }
        let limit = req.limit.clamp(1, 10_000) as usize;
        let meta = self.collection_meta(&req.collection);
        let start = if req.after.is_empty() {
            Start::First
        } else {
            Start::After(&req.after)
        };
        let mut scan = MergedScan::new(self, &req.shards, &req.collection, start)?;
        let mut out = pb::ListResponse::default();
        let mut bytes = 0u64;
        let mut scanned = 0usize;
        let mut last = String::new();
        while let Some((id, rec)) = scan.next()? {
            scanned += 1;
            if !rec.tombstone && visible(meta.as_ref(), &rec) {
                // Readers never need the per-field stamps; leaving them out keeps pages within
                // the byte budget the body sizes suggest.
                let rec = pb::DocRecord {
                    field_stamps: Vec::new(),
                    existence: None,
                    ..rec
                };
                bytes += rec.encoded_len() as u64;
                out.docs.push(pb::StoredDoc {
                    collection: req.collection.clone(),
                    id: id.clone(),
                    record: Some(rec),
                });
            }
            last = id;
            let full = out.docs.len() >= limit || (req.max_bytes > 0 && bytes >= req.max_bytes);
            if full || scanned >= budget {
                break;
            }
        }
        out.done = scan.peek_id().is_none();
        if !out.done {
            out.scanned_through = last;
        }
        out.marks = self.marks_of(&req.collection, out.docs.iter().map(|d| d.id.as_str()));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(vv: &str) -> pb::DocRecord {
        pb::DocRecord {
            vv: Some(VersionVector::parse(vv).unwrap().to_proto()),
            ..Default::default()
        }
    }

    #[test]
    fn a_read_from_memory_answers_as_a_read_from_disk_does() {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::store::test_store(dir.path(), "dc1", 4);
        let far = Instant::now() + std::time::Duration::from_secs(10);
        for i in 0..20 {
            let put = pb::PutRequest {
                shard: u32::from(aerolith_common::shard::shard_of("c", &format!("d{i}"), 4)),
                collection: "c".into(),
                id: format!("d{i}"),
                body: format!("{{\"i\":{i}}}").into_bytes(),
                ..Default::default()
            };
            s.put(&put, far).unwrap();
        }
        for id in ["d0", "d7", "d19", "missing"] {
            let get = pb::GetRequest {
                shard: u32::from(aerolith_common::shard::shard_of("c", id, 4)),
                collection: "c".into(),
                id: id.into(),
                session: Vec::new(),
            };
            // Just written, so in a memtable: memory answers, and as the disk path does.
            let cached = s.get_cached(&get).unwrap().expect("in memory");
            assert_eq!(cached, s.get(&get).unwrap(), "{id}");
            assert_eq!(cached.record.is_some(), id != "missing", "{id}");
        }
    }

    #[test]
    fn preconditions() {
        let live = rec("dc1@1:2");
        let pre = |m: &str, any: bool, none: bool| pb::Precondition {
            if_match: m.into(),
            if_match_any: any,
            if_none_match_any: none,
        };
        assert!(check_precondition(Some(&live), None).is_ok());
        assert!(check_precondition(Some(&live), Some(&pre("dc1@1:2", false, false))).is_ok());
        let code = |r: Result<()>| r.unwrap_err().code;
        assert_eq!(
            code(check_precondition(
                Some(&live),
                Some(&pre("dc1@1:1", false, false))
            )),
            ErrorCode::PreconditionFailed
        );
        assert_eq!(
            code(check_precondition(
                Some(&live),
                Some(&pre("garbage", false, false))
            )),
            ErrorCode::PreconditionFailed
        );
        assert_eq!(
            code(check_precondition(
                None,
                Some(&pre("dc1@1:2", false, false))
            )),
            ErrorCode::PreconditionFailed
        );
        assert_eq!(
            code(check_precondition(None, Some(&pre("", true, false)))),
            ErrorCode::PreconditionFailed
        );
        assert!(check_precondition(Some(&live), Some(&pre("", true, false))).is_ok());
        assert_eq!(
            code(check_precondition(Some(&live), Some(&pre("", false, true)))),
            ErrorCode::AlreadyExists
        );
        assert!(check_precondition(None, Some(&pre("", false, true))).is_ok());
    }
}
