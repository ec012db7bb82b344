//! Queries on the node: filter and projection are evaluated here, next to the data, so only
//! matching documents (and only the projected fields) cross the network.
//!
//! In id order a query is a bounded scan that may stop early (the scan budget) and say how far
//! it got. Sorted by fields, the node has no index to follow, so it scans every record of its
//! shards within the filter's id range and keeps the first page in a bounded heap.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::time::Instant;

use rocksdb::{DB, ReadOptions, SnapshotWithThreadMode};
use serde_json::{Map, Value};

use aerolith_common::index_def::order;
use aerolith_common::json::{decode_stored, parse_value};
use aerolith_common::name::validate_collection;
use aerolith_common::query::index_key::encode_value;
use aerolith_common::query::{
    Filter, KeyBounds, Position, SortKey, normalize_sort, parse_projection, parse_sort, project,
};
use aerolith_common::{Error, Result, pb};

use crate::collections::visible;
use crate::index_entries::whole_entry;
use crate::index_scan::{OrderedEntries, entry_id};
use crate::keys::doc_key;
use crate::query_plan::Access;
use crate::scan::{MergedScan, Start};
use crate::store::Store;

/// Default for the most records an id-ordered listing or query examines before answering a
/// short page (tombstones and non-matching documents count).
pub const DEFAULT_SCAN_BUDGET: usize = 20_000;
/// Records examined between two deadline checks.
const DEADLINE_EVERY: usize = 512;
/// Nesting accepted in filters and sort (a 64-deep body plus operators around it).
const QUERY_DEPTH: usize = 80;

/// A query request, parsed and validated.
struct Plan {
    filter: Filter,
    keys: Rc<[SortKey]>,
    projection: Option<Vec<String>>,
    after: Option<Position>,
    limit: usize,
    max_bytes: u64,
    /// The filter's id range: where the scan starts and where it may stop.
    lower: Option<(String, bool)>,
    upper: Option<(String, bool)>,
}

impl Plan {
    fn parse(req: &pb::QueryRequest) -> Result<Plan> {
        validate_collection(&req.collection)?;
        let json = |b: &[u8]| parse_value(b, QUERY_DEPTH);
        let filter = if req.filter.is_empty() {
            Filter::match_all()
        } else {
            Filter::parse(&json(&req.filter)?)?
        };
        let keys: Vec<SortKey> = if req.sort.is_empty() {
            Vec::new()
        } else {
            normalize_sort(parse_sort(&json(&req.sort)?)?)
        };
        let projection = if req.projection.is_empty() {
            None
        } else {
            Some(parse_projection(&json(&req.projection)?)?)
        };
        let after = if req.after.is_empty() {
            None
        } else {
            Some(Position::from_bytes(&req.after, keys.len())?)
        };
        Ok(Plan {
            lower: filter.id_lower_bound(),
            upper: filter.id_upper_bound(),
            filter,
            keys: keys.into(),
            projection,
            after,
            limit: req.limit.clamp(1, 10_000) as usize,
            max_bytes: if req.max_bytes == 0 {
                u64::MAX
            } else {
                req.max_bytes
            },
        })
    }

    /// True when `id` lies beyond the filter's upper id bound.
    fn beyond_upper(&self, id: &[u8]) -> bool {
        self.upper.as_ref().is_some_and(|(u, inclusive)| {
            let o = id.cmp(u.as_bytes());
            o == Ordering::Greater || (o == Ordering::Equal && !inclusive)
        })
    }

    /// Where the scan starts: the filter's lower id bound, or (in id order) just after the
    /// cursor when that is further.
    fn start(&self) -> Start<'_> {
        let lower = self.lower.as_ref().map(|(s, inclusive)| {
            if *inclusive {
                Start::At(s)
            } else {
                Start::After(s)
            }
        });
        let after = match &self.after {
            Some(p) if self.keys.is_empty() => Some(p.id.as_str()),
            _ => None,
        };
        match (lower, after) {
            (Some(l), Some(a)) if a < lower_id(&l) => l,
            (_, Some(a)) => Start::After(a),
            (Some(l), None) => l,
            (None, None) => Start::First,
        }
    }

    /// Applies the projection to one body.
    fn shape(&self, body: &[u8]) -> Result<Vec<u8>> {
        match &self.projection {
            None => Ok(body.to_vec()),
            Some(paths) => encode(&project(paths, &decode_stored(body)?)),
        }
    }

    /// The record as a query returns it: projected bodies, no field stamps.
    fn hit(&self, id: String, rec: pb::DocRecord, pos: &Position) -> Result<pb::QueryHit> {
        let mut rec = pb::DocRecord {
            field_stamps: Vec::new(),
            existence: None,
            ..rec
        };
        if self.projection.is_some() {
            rec.body = self.shape(&rec.body)?;
            for s in &mut rec.siblings {
                s.body = self.shape(&s.body)?;
            }
        }
        Ok(pb::QueryHit {
            id,
            record: Some(rec),
            position: pos.to_bytes(),
        })
    }
}

fn lower_id<'a>(s: &Start<'a>) -> &'a str {
    match s {
        Start::At(id) | Start::After(id) => id,
        Start::First => "",
    }
}

fn encode(map: &Map<String, Value>) -> Result<Vec<u8>> {
    serde_json::to_vec(map).map_err(Error::internal)
}

/// A candidate for a sorted page, ordered by its position.
struct Ranked {
    pos: Position,
    keys: Rc<[SortKey]>,
    bytes: u64,
    hit: pb::QueryHit,
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.pos.compare(&other.pos, &self.keys)
    }
}

/// The first documents of a sorted page: a max-heap whose top is evicted while the page is
/// over `limit` or holds `max_bytes` without it.
struct TopPage {
    heap: BinaryHeap<Ranked>,
    bytes: u64,
    limit: usize,
    max_bytes: u64,
    /// Something was evicted or refused: the page is not the whole answer.
    truncated: bool,
}

impl TopPage {
    /// True when a candidate after the current last entry could not stay.
    fn full(&self) -> bool {
        self.heap.len() >= self.limit || self.bytes >= self.max_bytes
    }

    /// True when a document at `pos` would be kept.
    fn admits(&self, pos: &Position, keys: &[SortKey]) -> bool {
        match self.heap.peek() {
            Some(top) if self.full() => pos.compare(&top.pos, keys) == Ordering::Less,
            _ => true,
        }
    }

    fn push(&mut self, r: Ranked) {
        self.bytes += r.bytes;
        self.heap.push(r);
        while let Some(top) = self.heap.peek() {
            let over = self.heap.len() > self.limit
                || (self.heap.len() > 1 && self.bytes - top.bytes >= self.max_bytes);
            if !over {
                break;
            }
            self.bytes -= top.bytes;
            self.heap.pop();
            self.truncated = true;
        }
    }
}

/// A matching document: id, record and parsed body.
type Match = (String, pb::DocRecord, Map<String, Value>);

/// Where a query's records come from, in id order.
enum Source<'a> {
    /// Every record of the shards within the filter's id range.
    Scan(MergedScan<'a>),
    /// The records of the ids an index named (read through its snapshot; an id whose
    /// record is gone is skipped).
    Ids {
        store: &'a Store,
        collection: &'a str,
        read: ReadOptions,
        ids: std::iter::Peekable<std::vec::IntoIter<(String, u16)>>,
    },
}

impl Source<'_> {
    fn peek_id(&mut self) -> Option<&[u8]> {
        match self {
            Source::Scan(scan) => scan.peek_id(),
            Source::Ids { ids, .. } => ids.peek().map(|(id, _)| id.as_bytes()),
        }
    }

    fn next(&mut self) -> Result<Option<(String, Option<pb::DocRecord>)>> {
        match self {
            Source::Scan(scan) => Ok(scan.next()?.map(|(id, rec)| (id, Some(rec)))),
            Source::Ids {
                store,
                collection,
                read,
                ids,
            } => {
                let Some((id, shard)) = ids.next() else {
                    return Ok(None);
                };
                let key = doc_key(shard, collection, &id);
                let rec = store.get_record(&key, read)?;
                Ok(Some((id, rec)))
            }
        }
    }
}

/// The live, visible records of a source whose body matches the filter, in id order.
struct Matches<'a> {
    source: Source<'a>,
    meta: Option<&'a pb::CollectionMeta>,
    plan: &'a Plan,
    examined: usize,
    /// The last id examined.
    last: Option<String>,
    deadline: Instant,
    budget: usize,
}

impl Matches<'_> {
    /// True when no record within the filter's id range is left.
    fn exhausted(&mut self) -> bool {
        let plan = self.plan;
        self.source.peek_id().is_none_or(|id| plan.beyond_upper(id))
    }

    fn out_of_budget(&self) -> bool {
        self.examined >= self.budget
    }

    /// The next match, or `None` at the end of the range or of the budget.
    fn next(&mut self) -> Result<Option<Match>> {
        while !self.exhausted() && !self.out_of_budget() {
            self.examined += 1;
            check_deadline(self.examined, self.deadline)?;
            let Some((id, rec)) = self.source.next()? else {
                break;
            };
            self.last = Some(id.clone());
            let Some(rec) = rec else {
                continue;
            };
            if rec.tombstone || !visible(self.meta, &rec) {
                continue;
            }
            let data = decode_stored(&rec.body)?;
            if self.plan.filter.matches(&id, &data) {
                return Ok(Some((id, rec, data)));
            }
        }
        Ok(None)
    }
}

/// `deadline_exceeded` once the deadline has passed (looked at every so many records).
fn check_deadline(examined: usize, deadline: Instant) -> Result<()> {
    if examined.is_multiple_of(DEADLINE_EVERY) && Instant::now() >= deadline {
        return Err(Error::deadline("query ran out of time on a storage node"));
    }
    Ok(())
}

impl Store {
    /// Answers a query over the requested shards (see the proto's `QueryRequest`); an
    /// id-ordered query examines at most `budget` records. The answer carries the session
    /// marks of the shards its hits came from.
    pub fn query(
        &self,
        req: &pb::QueryRequest,
        deadline: Instant,
        budget: usize,
    ) -> Result<pb::QueryResponse> {
        let mut out = self.query_hits(req, deadline, budget)?;
        out.marks = self.marks_of(&req.collection, out.hits.iter().map(|h| h.id.as_str()));
        Ok(out)
    }

    fn query_hits(
        &self,
        req: &pb::QueryRequest,
        deadline: Instant,
        budget: usize,
    ) -> Result<pb::QueryResponse> {
        let plan = Plan::parse(req)?;
        let shards = req
            .shards
            .iter()
            .map(|s| self.check_shard(*s))
            .collect::<Result<Vec<u16>>>()?;
        let meta = self.collection_meta(&req.collection);
        let built = self.newly_built(meta.as_ref(), &shards, &req.usable)?;
        let access = self.choose_access(
            meta.as_ref(),
            &shards,
            &req.usable,
            &plan.filter,
            &plan.keys,
        )?;
        // Entries and documents are read as of one moment, so they agree.
        let snap = self.engine.db().snapshot();
        let source = match &access {
            Access::Ordered { def, range } => {
                let (mut out, examined) = self.ordered_page(
                    &plan,
                    (&req.collection, meta.as_ref()),
                    &shards,
                    &snap,
                    (def, range),
                    deadline,
                )?;
                if req.explain {
                    out.plan = Some(explained(&access, examined));
                }
                out.built = built;
                return Ok(out);
            }
            Access::Scan => Source::Scan(MergedScan::new(
                self,
                &req.shards,
                &req.collection,
                plan.start(),
            )?),
            Access::Lookup { def, bounds } => {
                let ids = self.index_lookup(&snap, &shards, &req.collection, def, bounds)?;
                let start = plan.start();
                let ids: Vec<_> = ids.into_iter().filter(|(id, _)| start.admits(id)).collect();
                let mut read = ReadOptions::default();
                read.set_snapshot(&snap);
                Source::Ids {
                    store: self,
                    collection: &req.collection,
                    read,
                    ids: ids.into_iter().peekable(),
                }
            }
        };
        let mut m = Matches {
            source,
            meta: meta.as_ref(),
            plan: &plan,
            examined: 0,
            last: None,
            deadline,
            // Sorted queries and counts must see every record, so only an id-ordered page
            // has a budget.
            budget: if plan.keys.is_empty() && !req.count_only {
                budget
            } else {
                usize::MAX
            },
        };
        let mut out = if req.count_only {
            let mut count = 0;
            while m.next()?.is_some() {
                count += 1;
            }
            pb::QueryResponse {
                done: true,
                count,
                ..Default::default()
            }
        } else if plan.keys.is_empty() {
            id_page(&plan, &mut m)?
        } else {
            sorted_page(&plan, &mut m)?
        };
        if req.explain {
            out.plan = Some(explained(&access, m.examined));
        }
        out.built = built;
        Ok(out)
    }

    /// One page in an index's order, which is the query's: entries are walked from the
    /// cursor, each document fetched and checked, until the page is full and one more
    /// match shows it is not the last (as a scan's page would say). Also returns how many
    /// entries were read.
    fn ordered_page(
        &self,
        plan: &Plan,
        (collection, meta): (&str, Option<&pb::CollectionMeta>),
        shards: &[u16],
        snap: &SnapshotWithThreadMode<'_, DB>,
        (def, range): (&pb::IndexDef, &Option<KeyBounds>),
        deadline: Instant,
    ) -> Result<(pb::QueryResponse, usize)> {
        let (lo, hi) = match range {
            Some(KeyBounds::Range { lo, hi }) => (lo.clone(), hi.clone()),
            _ => (Vec::new(), None),
        };
        // The cursor's own entry bytes: the walk starts strictly after them, or at the
        // range's start when that is further.
        let start = match &plan.after {
            Some(after) => {
                let mut key = Vec::new();
                for (f, v) in def.fields.iter().zip(&after.values) {
                    encode_value(&mut key, v.as_ref(), order(f));
                }
                key.extend_from_slice(after.id.as_bytes());
                if key >= lo { (key, true) } else { (lo, false) }
            }
            None => (lo, false),
        };
        let mut entries = OrderedEntries::new(
            self,
            snap,
            shards,
            collection,
            def,
            (&start.0, start.1),
            hi.as_deref(),
        )?;
        let mut read = ReadOptions::default();
        read.set_snapshot(snap);
        let mut out = pb::QueryResponse::default();
        let (mut bytes, mut examined) = (0u64, 0usize);
        let mut last: Option<Position> = None;
        let mut truncated = false;
        while let Some((shard, entry)) = entries.next()? {
            examined += 1;
            check_deadline(examined, deadline)?;
            let Some(id) = entry_id(def, &entry) else {
                continue;
            };
            let Some(rec) = self.get_record(&doc_key(shard, collection, id), &read)? else {
                continue;
            };
            if rec.tombstone || !visible(meta, &rec) {
                continue;
            }
            let data = decode_stored(&rec.body)?;
            // Only the document's own entry counts (one snapshot makes every entry so).
            if whole_entry(def, id, &data) != entry || !plan.filter.matches(id, &data) {
                continue;
            }
            if out.hits.len() >= plan.limit || bytes >= plan.max_bytes {
                truncated = true;
                break;
            }
            let pos = Position::of(&plan.keys, id, &data);
            let hit = plan.hit(id.to_owned(), rec, &pos)?;
            bytes += hit.record.as_ref().map_or(0, |r| r.body.len() as u64);
            out.hits.push(hit);
            last = Some(pos);
        }
        out.done = !truncated;
        if truncated {
            out.scanned_through = last.map(|p| p.to_bytes()).unwrap_or_default();
        }
        Ok((out, examined))
    }
}

/// What `explain` says of a node's plan.
fn explained(access: &Access, examined: usize) -> pb::QueryPlan {
    pb::QueryPlan {
        index: access.index().unwrap_or_default().to_owned(),
        examined: examined as u64,
    }
}

/// An id-ordered page: the matches in id order up to the limit, the byte budget or the
/// scan budget.
fn id_page(plan: &Plan, m: &mut Matches<'_>) -> Result<pb::QueryResponse> {
    let mut out = pb::QueryResponse::default();
    let mut bytes = 0u64;
    while let Some((id, rec, _)) = m.next()? {
        let pos = Position::of_id(&id);
        let hit = plan.hit(id, rec, &pos)?;
        bytes += hit.record.as_ref().map_or(0, |r| r.body.len() as u64);
        out.hits.push(hit);
        if out.hits.len() >= plan.limit || bytes >= plan.max_bytes || m.out_of_budget() {
            break;
        }
    }
    out.done = m.exhausted();
    if !out.done {
        out.scanned_through = m
            .last
            .as_ref()
            .map(|id| Position::of_id(id).to_bytes())
            .unwrap_or_default();
    }
    Ok(out)
}

/// A sorted page: every match is ranked, and the first ones after the cursor kept.
fn sorted_page(plan: &Plan, m: &mut Matches<'_>) -> Result<pb::QueryResponse> {
    let mut out = pb::QueryResponse::default();
    let mut page = TopPage {
        heap: BinaryHeap::new(),
        bytes: 0,
        limit: plan.limit,
        max_bytes: plan.max_bytes,
        truncated: false,
    };
    while let Some((id, rec, data)) = m.next()? {
        let pos = Position::of(&plan.keys, &id, &data);
        if plan
            .after
            .as_ref()
            .is_some_and(|a| pos.compare(a, &plan.keys) != Ordering::Greater)
        {
            continue;
        }
        if !page.admits(&pos, &plan.keys) {
            page.truncated = true;
            continue;
        }
        let hit = plan.hit(id, rec, &pos)?;
        page.push(Ranked {
            bytes: hit.record.as_ref().map_or(0, |r| r.body.len() as u64),
            pos,
            keys: plan.keys.clone(),
            hit,
        });
    }
    let truncated = page.truncated;
    let ranked = page.heap.into_sorted_vec();
    out.done = !truncated;
    if truncated {
        out.scanned_through = ranked.last().map(|r| r.pos.to_bytes()).unwrap_or_default();
    }
    out.hits = ranked.into_iter().map(|r| r.hit).collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SHARDS: u16 = 4;

    fn store(dir: &std::path::Path) -> Store {
        crate::store::test_store(dir, "dc1", SHARDS)
    }

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    /// Writes `n` documents `{"n": i % 7, "even": i % 2 == 0}` with ids `d000`...
    fn fill(s: &Store, n: usize) {
        for i in 0..n {
            let id = format!("d{i:03}");
            s.put(
                &pb::PutRequest {
                    after_delete_hlc: 0,
                    shard: (i % SHARDS as usize) as u32,
                    collection: "c".into(),
                    id,
                    body: serde_json::to_vec(&serde_json::json!({"n": i % 7, "even": i % 2 == 0}))
                        .expect("json"),
                    precondition: None,
                    session: Vec::new(),
                    idempotency: None,
                },
                deadline(),
            )
            .expect("put");
        }
    }

    fn request(
        filter: &str,
        sort: &str,
        after: Vec<u8>,
        limit: u32,
        max_bytes: u64,
    ) -> pb::QueryRequest {
        pb::QueryRequest {
            shards: (0..SHARDS as u32).collect(),
            collection: "c".into(),
            filter: filter.as_bytes().to_vec(),
            sort: sort.as_bytes().to_vec(),
            projection: Vec::new(),
            after,
            limit,
            max_bytes,
            ..Default::default()
        }
    }

    fn ids(r: &pb::QueryResponse) -> Vec<String> {
        r.hits.iter().map(|h| h.id.clone()).collect()
    }

    #[test]
    fn id_order_stops_at_the_budget_and_resumes_after_what_it_scanned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(dir.path());
        fill(&s, 60);
        // Only every 7th document matches; a budget of 10 records cannot reach the limit.
        let mut after = Vec::new();
        let mut got = Vec::new();
        let mut calls = 0;
        loop {
            let r = s
                .query(&request(r#"{"n": 3}"#, "", after, 100, 0), deadline(), 10)
                .expect("query");
            calls += 1;
            got.extend(ids(&r));
            if r.done {
                break;
            }
            assert!(!r.scanned_through.is_empty());
            after = r.scanned_through;
        }
        let want: Vec<String> = (0..60)
            .filter(|i| i % 7 == 3)
            .map(|i| format!("d{i:03}"))
            .collect();
        assert_eq!(got, want);
        assert!(
            calls >= 6,
            "60 records at 10 per call take at least 6 calls, took {calls}"
        );
    }

    #[test]
    fn sorted_pages_are_the_first_documents_after_the_cursor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(dir.path());
        fill(&s, 50);
        let sort = r#"[{"field": "n", "order": "desc"}]"#;
        let mut after = Vec::new();
        let mut got = Vec::new();
        loop {
            let r = s
                .query(
                    &request(r#"{"even": true}"#, sort, after, 4, 0),
                    deadline(),
                    DEFAULT_SCAN_BUDGET,
                )
                .expect("query");
            assert!(r.hits.len() <= 4);
            got.extend(ids(&r));
            if r.done {
                break;
            }
            after = r.scanned_through;
        }
        let mut want: Vec<usize> = (0..50).filter(|i| i % 2 == 0).collect();
        want.sort_by(|a, b| (b % 7).cmp(&(a % 7)).then(a.cmp(b)));
        let want: Vec<String> = want.iter().map(|i| format!("d{i:03}")).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn the_byte_budget_cuts_a_sorted_page_but_keeps_one_document() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(dir.path());
        fill(&s, 20);
        let sort = r#"[{"field": "n"}]"#;
        let r = s
            .query(
                &request("", sort, Vec::new(), 100, 1),
                deadline(),
                DEFAULT_SCAN_BUDGET,
            )
            .expect("query");
        assert_eq!(r.hits.len(), 1);
        assert!(!r.done);
        // The page stops at the first document that reaches the budget.
        let r = s
            .query(
                &request("", sort, Vec::new(), 100, 60),
                deadline(),
                DEFAULT_SCAN_BUDGET,
            )
            .expect("query");
        let lens: Vec<u64> = r
            .hits
            .iter()
            .map(|h| h.record.as_ref().map_or(0, |r| r.body.len() as u64))
            .collect();
        let (last, before) = lens.split_last().expect("a document");
        assert!(before.iter().sum::<u64>() < 60, "{lens:?}");
        assert!(before.iter().sum::<u64>() + last >= 60, "{lens:?}");
        assert!(!r.done);
    }

    #[test]
    fn bad_queries_are_invalid_argument() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(dir.path());
        for (f, sort) in [
            (r#"{"a": {"$bogus": 1}}"#, ""),
            ("", r#"[{"field": ""}]"#),
            ("[", ""),
        ] {
            let e = s
                .query(
                    &request(f, sort, Vec::new(), 10, 0),
                    deadline(),
                    DEFAULT_SCAN_BUDGET,
                )
                .expect_err(f);
            assert_eq!(e.code, aerolith_common::ErrorCode::InvalidArgument);
        }
    }
}
