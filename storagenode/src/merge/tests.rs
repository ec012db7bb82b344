//! The merge's laws, checked on random concurrent histories of every strategy, and its
//! rules on small hand-made cases.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;
use aerolith_common::version::Actor;

const DCS: [&str; 3] = ["dc1", "dc2", "dc3"];

/// A local write, built as a storage node builds it (`documents.rs`): the vector increments
/// the writer's entry over the current record, siblings are superseded, and `field_merge`
/// stamps every written field and tombstones every dropped one (a delete is one document
/// stamp instead).
fn write(
    current: Option<&pb::DocRecord>,
    dc: &str,
    hlc: u64,
    body: Option<Map<String, Value>>,
    strategy: pb::ConflictStrategy,
) -> pb::DocRecord {
    let deleted = body.is_none();
    let mut v = current.map(vv).unwrap_or_default();
    v.increment(&Actor {
        dc: dc.to_string(),
        epoch: 1,
    });
    let mut field_stamps = Vec::new();
    if strategy == pb::ConflictStrategy::FieldMerge {
        let stamp = |field: &str, deleted: bool| pb::FieldStamp {
            field: field.to_string(),
            hlc,
            dc: dc.to_string(),
            deleted,
        };
        let old = current.map(|c| c.field_stamps.clone()).unwrap_or_default();
        if let Some(b) = &body {
            field_stamps.extend(b.keys().map(|k| stamp(k, false)));
            field_stamps.extend(
                old.iter()
                    .filter(|s| !b.contains_key(&s.field))
                    .map(|s| stamp(&s.field, true)),
            );
        }
        field_stamps.sort_by(|a, b| a.field.cmp(&b.field));
    }
    let deleted_at = match (strategy, deleted) {
        (pb::ConflictStrategy::FieldMerge, true) => Some(pb::FieldStamp {
            field: String::new(),
            hlc,
            dc: dc.to_string(),
            deleted: true,
        }),
        (pb::ConflictStrategy::FieldMerge, false) => current.and_then(|c| c.deleted_at.clone()),
        _ => None,
    };
    pb::DocRecord {
        format: 1,
        incarnation: 1,
        vv: Some(v.to_proto()),
        hlc,
        origin: dc.to_string(),
        tombstone: body.is_none(),
        body: body
            .map(|b| serde_json::to_vec(&b).unwrap())
            .unwrap_or_default(),
        existence: (strategy == pb::ConflictStrategy::FieldMerge).then(|| pb::FieldStamp {
            field: String::new(),
            hlc,
            dc: dc.to_string(),
            deleted,
        }),
        siblings: Vec::new(),
        field_stamps,
        deleted_at,
    }
}

fn apply(
    local: Option<&pb::DocRecord>,
    remote: &pb::DocRecord,
    s: pb::ConflictStrategy,
) -> pb::DocRecord {
    merge(local, remote, s).unwrap().record
}

fn bytes(r: &pb::DocRecord) -> Vec<u8> {
    prost::Message::encode_to_vec(r)
}

/// One step of a history.
#[derive(Debug, Clone)]
enum Step {
    /// A DC writes: a PUT of some fields, or a delete.
    Write {
        dc: usize,
        fields: Vec<(u8, u8)>,
        delete: bool,
    },
    /// A DC applies another DC's current record.
    Ship { from: usize, to: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (
            0..3usize,
            prop::collection::vec((0..4u8, 0..3u8), 0..4),
            prop::bool::weighted(0.2)
        )
            .prop_map(|(dc, fields, delete)| Step::Write { dc, fields, delete }),
        (0..3usize, 0..3usize).prop_map(|(from, to)| Step::Ship { from, to }),
    ]
}

fn strategy() -> impl Strategy<Value = pb::ConflictStrategy> {
    prop_oneof![
        Just(pb::ConflictStrategy::Lww),
        Just(pb::ConflictStrategy::Siblings),
        Just(pb::ConflictStrategy::FieldMerge),
    ]
}

/// Runs a history; returns every write made and every DC's final record.
fn run(
    steps: &[Step],
    s: pb::ConflictStrategy,
) -> (Vec<pb::DocRecord>, Vec<Option<pb::DocRecord>>) {
    let mut replicas: Vec<Option<pb::DocRecord>> = vec![None; DCS.len()];
    let mut writes = Vec::new();
    // One clock for everybody: a write's HLC is above everything it could have seen.
    let mut clock = 1_000u64;
    for st in steps {
        match st {
            Step::Write { dc, fields, delete } => {
                clock += 1;
                let body = (!delete).then(|| {
                    fields
                        .iter()
                        .map(|(k, v)| (format!("f{k}"), json!(v)))
                        .collect::<Map<String, Value>>()
                });
                let w = write(replicas[*dc].as_ref(), DCS[*dc], clock, body, s);
                writes.push(w.clone());
                replicas[*dc] = Some(w);
            }
            Step::Ship { from, to } => {
                if let Some(r) = replicas[*from].clone() {
                    replicas[*to] = Some(apply(replicas[*to].as_ref(), &r, s));
                }
            }
        }
    }
    (writes, replicas)
}

fn fold(records: &[pb::DocRecord], s: pb::ConflictStrategy) -> Option<pb::DocRecord> {
    records
        .iter()
        .fold(None, |acc, r| Some(apply(acc.as_ref(), r, s)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Every order of applying the same versions gives byte-identical records, and so does
    /// merging the DCs' own (partially merged) records.
    #[test]
    fn any_order_converges(
        s in strategy(),
        steps in prop::collection::vec(step(), 1..24),
        seed in any::<u64>(),
    ) {
        let (writes, replicas) = run(&steps, s);
        prop_assume!(!writes.is_empty());
        let reference = fold(&writes, s).map(|r| bytes(&r));
        let mut shuffled = writes.clone();
        // A deterministic shuffle from the seed (proptest shrinks the seed too).
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(fold(&shuffled, s).map(|r| bytes(&r)), reference.clone());
        let mut states: Vec<pb::DocRecord> = replicas.into_iter().flatten().collect();
        states.extend(writes.iter().cloned());
        states.reverse();
        prop_assert_eq!(fold(&states, s).map(|r| bytes(&r)), reference);
    }

    /// Commutative, associative and idempotent on any records a history produces.
    #[test]
    fn merge_is_a_semilattice(
        s in strategy(),
        steps in prop::collection::vec(step(), 1..24),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 3),
    ) {
        let (writes, replicas) = run(&steps, s);
        let mut pool: Vec<pb::DocRecord> = replicas.into_iter().flatten().collect();
        pool.extend(writes);
        prop_assume!(!pool.is_empty());
        let [a, b, c] = [0, 1, 2].map(|i| pool[picks[i].index(pool.len())].clone());
        let ab = apply(Some(&a), &b, s);
        prop_assert_eq!(bytes(&ab), bytes(&apply(Some(&b), &a, s)));
        prop_assert_eq!(bytes(&apply(Some(&ab), &b, s)), bytes(&ab));
        prop_assert!(!merge(Some(&ab), &ab, s).unwrap().changed);
        let left = apply(Some(&ab), &c, s);
        let right = apply(Some(&a), &apply(Some(&b), &c, s), s);
        prop_assert_eq!(bytes(&left), bytes(&right));
    }
}

fn body(v: Value) -> Option<Map<String, Value>> {
    v.as_object().cloned()
}

#[test]
fn lww_keeps_the_later_write_and_joins_the_vectors() {
    let s = pb::ConflictStrategy::Lww;
    let a = write(None, "dc1", 10, body(json!({"x": 1})), s);
    let b = write(None, "dc2", 20, body(json!({"x": 2})), s);
    let m = merge(Some(&a), &b, s).unwrap();
    assert!(m.changed);
    assert_eq!(m.record.body, br#"{"x":2}"#);
    assert_eq!(vv(&m.record).to_string(), "dc1@1:1.dc2@1:1");
    let c = m.conflict.unwrap();
    assert_eq!(
        (c.winner.origin.as_str(), c.loser.origin.as_str()),
        ("dc2", "dc1")
    );
    // A later write that saw both dominates: it replaces, with no conflict.
    let d = write(Some(&m.record), "dc1", 30, body(json!({"x": 3})), s);
    let m2 = merge(Some(&m.record), &d, s).unwrap();
    assert_eq!((m2.record.clone(), m2.conflict), (d.clone(), None));
    // The dominated record changes nothing.
    assert!(!merge(Some(&d), &a, s).unwrap().changed);
}

#[test]
fn siblings_keep_both_and_deletes_lose_to_updates() {
    let s = pb::ConflictStrategy::Siblings;
    let a = write(None, "dc1", 10, body(json!({"x": 1})), s);
    let b = write(None, "dc2", 20, body(json!({"x": 2})), s);
    let m = apply(Some(&a), &b, s);
    assert_eq!(m.siblings.len(), 2);
    assert_eq!(m.body, br#"{"x":2}"#, "data is the LWW pick");
    assert_eq!(vv(&m).to_string(), "dc1@1:1.dc2@1:1", "version is the join");
    // A delete concurrent with an update keeps the update.
    let del = write(Some(&a), "dc1", 30, None, s);
    let m = apply(Some(&del), &b, s);
    assert!(!m.tombstone);
    assert_eq!(m.body, br#"{"x":2}"#);
    // A write that saw every sibling supersedes them.
    let resolved = write(Some(&m), "dc2", 40, body(json!({"x": 9})), s);
    let m2 = apply(Some(&m), &resolved, s);
    assert!(m2.siblings.is_empty());
    assert_eq!(m2.body, br#"{"x":9}"#);
}

#[test]
fn field_merge_keeps_the_newest_write_of_each_field() {
    let s = pb::ConflictStrategy::FieldMerge;
    let base = write(None, "dc1", 10, body(json!({"a": 1, "b": 1})), s);
    let left = write(Some(&base), "dc1", 20, body(json!({"a": 2, "b": 1})), s);
    let mut right = write(Some(&base), "dc2", 30, body(json!({"a": 1})), s);
    // dc2's PUT re-stamped "a" and dropped "b"; make it touch only "b" like a PATCH would.
    right.field_stamps.retain(|st| st.field == "b");
    right.field_stamps.push(base.field_stamps[0].clone());
    right.field_stamps.sort_by(|x, y| x.field.cmp(&y.field));
    let m = apply(Some(&left), &right, s);
    assert_eq!(m.body, br#"{"a":2}"#, "a from dc1, b deleted by dc2");
    assert!(!m.tombstone);
    // A delete tombstones every field; a field written after it survives.
    let del = write(Some(&m), "dc1", 40, None, s);
    let later = write(Some(&m), "dc2", 50, body(json!({"a": 2, "c": 7})), s);
    let m2 = apply(Some(&del), &later, s);
    assert_eq!(m2.body, br#"{"a":2,"c":7}"#);
    let m3 = apply(Some(&del), &m, s);
    assert!(m3.tombstone && m3.body.is_empty(), "{m3:?}");
}

#[test]
fn a_field_merge_delete_removes_fields_its_dc_had_not_seen() {
    let s = pb::ConflictStrategy::FieldMerge;
    let base = write(None, "dc1", 10, body(json!({"a": 1})), s);
    // dc2 adds z (a PATCH: only z is stamped anew); dc1, not knowing z, deletes later.
    let mut added = write(Some(&base), "dc2", 20, body(json!({"a": 1, "z": 1})), s);
    added.field_stamps.retain(|st| st.field == "z");
    added.field_stamps.push(base.field_stamps[0].clone());
    added.field_stamps.sort_by(|x, y| x.field.cmp(&y.field));
    let del = write(Some(&base), "dc1", 30, None, s);
    for m in [apply(Some(&del), &added, s), apply(Some(&added), &del, s)] {
        assert!(
            m.tombstone && m.body.is_empty(),
            "z outlived the delete: {m:?}"
        );
        assert!(m.field_stamps.is_empty(), "dead stamps are dropped: {m:?}");
    }
    // z written after the delete brings the document back with z alone.
    let late = write(Some(&added), "dc2", 40, body(json!({"a": 1, "z": 2})), s);
    let mut late_z = late.clone();
    late_z.field_stamps.retain(|st| st.field == "z");
    let m = apply(Some(&del), &late_z, s);
    assert_eq!(m.body, br#"{"z":2}"#, "{m:?}");
    assert!(!m.tombstone);
}

#[test]
fn a_newer_incarnation_replaces_and_an_older_one_is_ignored() {
    let s = pb::ConflictStrategy::Lww;
    let old = write(None, "dc1", 50, body(json!({"x": 1})), s);
    let mut new = write(None, "dc2", 10, body(json!({"x": 2})), s);
    new.incarnation = 2;
    assert_eq!(apply(Some(&old), &new, s), new);
    assert!(!merge(Some(&new), &old, s).unwrap().changed);
}
