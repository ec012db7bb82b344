//! What a write carries when it fails over to another DC: the newest deletion of its
//! collection that this DC's nodes recorded (`PutRequest.after_delete_hlc`). Without it a
//! DC the deletion has not reached yet would take the write into the deleted incarnation,
//! and the deletion would remove it on arrival: a write acknowledged after the deletion,
//! lost (docs/CONSISTENCY.md "Collections end the same on every node").

use aerolith_common::pb;
use pb::request::Body;

/// The collection a write is for; `None` for anything else.
pub fn collection_of(body: &Body) -> Option<&str> {
    match body {
        Body::Put(r) => Some(&r.collection),
        Body::Patch(r) => Some(&r.collection),
        Body::Delete(r) => Some(&r.collection),
        Body::Bulk(b) => b.ops.iter().find_map(|op| match &op.op {
            Some(pb::bulk_op::Op::Put(r)) => Some(r.collection.as_str()),
            Some(pb::bulk_op::Op::Patch(r)) => Some(r.collection.as_str()),
            Some(pb::bulk_op::Op::Delete(r)) => Some(r.collection.as_str()),
            None => None,
        }),
        _ => None,
    }
}

/// Sets `floor` on every write `body` holds.
pub fn attach(body: &mut Body, floor: u64) {
    match body {
        Body::Put(r) => r.after_delete_hlc = floor,
        Body::Patch(r) => r.after_delete_hlc = floor,
        Body::Delete(r) => r.after_delete_hlc = floor,
        Body::Bulk(b) => attach_bulk(b, floor),
        _ => {}
    }
}

/// Sets `floor` on every op of a bulk request.
pub fn attach_bulk(bulk: &mut pb::BulkRequest, floor: u64) {
    for op in &mut bulk.ops {
        match &mut op.op {
            Some(pb::bulk_op::Op::Put(r)) => r.after_delete_hlc = floor,
            Some(pb::bulk_op::Op::Patch(r)) => r.after_delete_hlc = floor,
            Some(pb::bulk_op::Op::Delete(r)) => r.after_delete_hlc = floor,
            None => {}
        }
    }
}

/// The newest deletion one node's settings of a collection record: its deletion, or for a
/// live incarnation the deletion that preceded it.
pub fn of_meta(meta: &pb::CollectionMeta) -> u64 {
    if meta.deleted {
        meta.deleted_hlc
    } else {
        meta.incarnation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_reaches_every_write_of_a_bulk() {
        let put = pb::PutRequest {
            collection: "c".into(),
            ..Default::default()
        };
        let del = pb::DeleteRequest {
            collection: "c".into(),
            ..Default::default()
        };
        let mut body = Body::Bulk(pb::BulkRequest {
            ops: vec![
                pb::BulkOp {
                    op: Some(pb::bulk_op::Op::Put(put)),
                },
                pb::BulkOp {
                    op: Some(pb::bulk_op::Op::Delete(del)),
                },
            ],
        });
        assert_eq!(collection_of(&body), Some("c"));
        attach(&mut body, 42);
        let Body::Bulk(b) = body else { unreachable!() };
        for op in b.ops {
            match op.op {
                Some(pb::bulk_op::Op::Put(r)) => assert_eq!(r.after_delete_hlc, 42),
                Some(pb::bulk_op::Op::Delete(r)) => assert_eq!(r.after_delete_hlc, 42),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_live_incarnation_records_the_deletion_before_it() {
        let live = pb::CollectionMeta {
            incarnation: 7,
            ..Default::default()
        };
        let gone = pb::CollectionMeta {
            deleted: true,
            deleted_hlc: 9,
            incarnation: 7,
            ..Default::default()
        };
        assert_eq!((of_meta(&live), of_meta(&gone)), (7, 9));
    }
}
