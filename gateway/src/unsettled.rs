//! Keyed writes whose outcome is unknown (API.md "Idempotency"): a write with an
//! `Idempotency-Key` that reached a storage node which then failed to answer may or may not
//! have been applied there, and only that node (or its DC, once the write was shipped) knows
//! the key. A retry must therefore go to that node, not to another DC, where it could be
//! applied a second time: the router remembers, per key, the node an attempt is sent to
//! (before sending it, so that a request its deadline drops mid-call leaves the key too;
//! an answer, or a failure that surely reached nothing, forgets it again), and answers a
//! retry `unavailable` while that node is down.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use aerolith_common::pb;

/// Keys remembered at most (the oldest go first).
const KEPT: usize = 100_000;

/// A write's idempotency keys, as the node scopes them: (collection, scope, key).
pub type Key = (String, String, String);

/// The keys of a write request (a bulk request's every op's), if it carries any.
pub fn keys_of(body: &pb::request::Body) -> Vec<Key> {
    use pb::request::Body as B;
    match body {
        B::Put(r) => key(&r.collection, &r.idempotency).into_iter().collect(),
        B::Patch(r) => key(&r.collection, &r.idempotency).into_iter().collect(),
        B::Delete(r) => key(&r.collection, &r.idempotency).into_iter().collect(),
        B::Bulk(b) => bulk_keys(b),
        _ => Vec::new(),
    }
}

/// The idempotency keys of a bulk request's writes.
pub fn bulk_keys(bulk: &pb::BulkRequest) -> Vec<Key> {
    use pb::bulk_op::Op;
    bulk.ops
        .iter()
        .filter_map(|op| match &op.op {
            Some(Op::Put(r)) => key(&r.collection, &r.idempotency),
            Some(Op::Patch(r)) => key(&r.collection, &r.idempotency),
            Some(Op::Delete(r)) => key(&r.collection, &r.idempotency),
            None => None,
        })
        .collect()
}

/// The key of one write to `collection` carrying `idem`, if it carries one.
pub(crate) fn key(collection: &str, idem: &Option<pb::Idempotency>) -> Option<Key> {
    idem.as_ref()
        .map(|i| (collection.to_string(), i.scope.clone(), i.key.clone()))
}

/// The unsettled keys and the node each reached.
#[derive(Debug, Default)]
pub struct Unsettled {
    inner: Mutex<(HashMap<Key, String>, VecDeque<Key>)>,
}

impl Unsettled {
    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<Key, String>, VecDeque<Key>)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers that an attempt of `keys` reached `addr` and its outcome is unknown.
    pub fn remember(&self, keys: &[Key], addr: &str) {
        let mut guard = self.lock();
        let (map, order) = &mut *guard;
        for k in keys {
            if map.insert(k.clone(), addr.to_string()).is_none() {
                order.push_back(k.clone());
            }
        }
        while order.len() > KEPT {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    /// The node an unsettled attempt of one of `keys` reached, if any.
    pub fn node_of(&self, keys: &[Key]) -> Option<String> {
        if keys.is_empty() {
            return None;
        }
        let guard = self.lock();
        keys.iter().find_map(|k| guard.0.get(k).cloned())
    }

    /// Forgets `keys`: a later attempt got an answer.
    pub fn settle(&self, keys: &[Key]) {
        if keys.is_empty() {
            return;
        }
        let mut guard = self.lock();
        for k in keys {
            guard.0.remove(k);
        }
    }
}
