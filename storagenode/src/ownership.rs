//! The DC's shard map as this node holds it (common `shard_map.rs`): kept durably, replaced
//! only by a later epoch, and the reason a call for a shard the node does not own is
//! refused with `not_owner` (the caller refreshes its map and goes to the owner). A node
//! that has no map yet (a store from before maps, until its replicator hands one over)
//! refuses nothing, as before.
//!
//! A shard the map marks as moving is fenced on its owner: reads go on, writes (local ones
//! and peer DCs' applies) are refused with `not_owner` until the map that ends the move
//! arrives, so the copy the new owner takes misses nothing. The check is made again under
//! the shard's lock (`Store::lock_shard_by`), and adopting a map that fences a shard waits
//! for the writes already holding its lock to be durable before it answers.

use std::sync::{Arc, RwLock};

use prost::Message;
use rocksdb::{WriteBatch, WriteOptions};

use aerolith_common::shard_map::ShardMap;
use aerolith_common::{Error, ErrorCode, Result, pb};
use pb::request::Body as Req;

use crate::engine::{Cf, Engine, db_err};
use crate::keys::META_SHARD_MAP;
use crate::store::Store;

/// This node's id and the map it holds.
pub(crate) struct Ownership {
    node: String,
    map: RwLock<Option<Arc<ShardMap>>>,
}

impl Ownership {
    /// The map stored in `engine`, if any, for node `node` of a cluster of `shards` shards.
    pub(crate) fn load(engine: &Engine, node: &str, shards: u16) -> Result<Ownership> {
        let map = match engine.get(Cf::Meta, META_SHARD_MAP)? {
            Some(bytes) => {
                let m = pb::ShardMap::decode(bytes.as_slice())
                    .map_err(|e| Error::internal(format!("stored shard map: {e}")))?;
                Some(Arc::new(ShardMap::from_pb(&m, shards)?))
            }
            None => None,
        };
        Ok(Ownership {
            node: node.to_string(),
            map: RwLock::new(map),
        })
    }

    fn held(&self) -> Option<Arc<ShardMap>> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Store {
    /// Whether this node owns `shard` in the map it holds (false with no map).
    pub(crate) fn owns(&self, shard: u16) -> bool {
        self.ownership
            .held()
            .is_some_and(|m| m.owner(shard) == self.ownership.node)
    }

    /// Whether this node owns `shard` and the map marks it as moving: no writes of it.
    pub(crate) fn fenced(&self, shard: u16) -> bool {
        self.ownership
            .held()
            .is_some_and(|m| m.is_moving(shard) && m.owner(shard) == self.ownership.node)
    }

    /// `not_owner` for a write of a fenced shard.
    pub(crate) fn refuse_fenced(&self, shard: u16) -> Result<()> {
        if self.fenced(shard) {
            return Err(self.moving_error(u32::from(shard)));
        }
        Ok(())
    }

    /// The epoch of the map this node holds (0: none yet).
    pub fn map_epoch(&self) -> u64 {
        self.ownership.held().map_or(0, |m| m.epoch)
    }

    /// The map this node holds (epoch 0 and no owners: none yet).
    pub fn shard_map(&self) -> pb::ShardMap {
        self.ownership
            .held()
            .map(|m| m.to_pb())
            .unwrap_or_else(|| pb::ShardMap {
                dc: self.dc.clone(),
                ..Default::default()
            })
    }

    /// Keeps `req`'s map, durably, if it is a later one of this node's DC; answers the map
    /// held afterwards.
    pub fn set_shard_map(&self, req: &pb::SetShardMapRequest) -> Result<pb::ShardMap> {
        let m = req
            .map
            .as_ref()
            .ok_or_else(|| Error::invalid("a shard map is required"))?;
        if m.dc != self.dc {
            return Err(Error::invalid(format!(
                "a shard map of DC {} was handed to a node of DC {}",
                m.dc, self.dc
            )));
        }
        let map = ShardMap::from_pb(m, self.shard_count())?;
        let mut held = self
            .ownership
            .map
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let mut newly_fenced = Vec::new();
        if held.as_ref().is_none_or(|h| h.epoch < map.epoch) {
            let mut batch = WriteBatch::default();
            batch.put_cf(self.engine.cf(Cf::Meta)?, META_SHARD_MAP, m.encode_to_vec());
            let mut wo = WriteOptions::default();
            wo.set_sync(true);
            self.engine.db().write_opt(batch, &wo).map_err(db_err)?;
            let me = &self.ownership.node;
            newly_fenced = map
                .moving()
                .iter()
                .copied()
                .filter(|s| map.owner(*s) == me)
                .filter(|s| {
                    held.as_ref()
                        .is_none_or(|h| !h.is_moving(*s) || h.owner(*s) != me)
                })
                .collect();
            tracing::info!(dc = %self.dc, node = %me, epoch = map.epoch, shards = map.shards_of(me).len(), moving = ?map.moving(), "shard map adopted");
            *held = Some(Arc::new(map));
        }
        let answer = held.as_ref().map(|m| m.to_pb()).unwrap_or_default();
        drop(held);
        // A write that holds a newly fenced shard's lock committed before the fence: once
        // it is durable, the shard holds everything it will until the move ends.
        for shard in newly_fenced {
            let st = self.lock_shard(shard);
            self.settle(&st)?;
        }
        Ok(answer)
    }

    /// `not_owner` if the map this node holds gives one of `shards` to another node.
    pub(crate) fn check_owner(&self, shards: impl IntoIterator<Item = u32>) -> Result<()> {
        let Some(map) = self.ownership.held() else {
            return Ok(());
        };
        shards
            .into_iter()
            .try_for_each(|s| self.owned_in(&map, s, false))
    }

    /// [`Store::check_owner`] for the shards a call reads or writes, for the calls that
    /// serve documents, feeds and replication applies; a write of a shard being moved is
    /// refused too. One read of the map, whatever the call's size.
    pub(crate) fn check_owned(&self, body: &Req) -> Result<()> {
        use pb::bulk_op::Op;
        let Some(map) = self.ownership.held() else {
            return Ok(());
        };
        let check = |s: u32, write: bool| self.owned_in(&map, s, write);
        let op_shard = |op: &pb::BulkOp| match &op.op {
            Some(Op::Put(r)) => Some(r.shard),
            Some(Op::Patch(r)) => Some(r.shard),
            Some(Op::Delete(r)) => Some(r.shard),
            None => None,
        };
        match body {
            Req::Get(r) => check(r.shard, false),
            Req::Put(r) => check(r.shard, true),
            Req::Patch(r) => check(r.shard, true),
            Req::Delete(r) => check(r.shard, true),
            Req::Apply(r) => check(r.shard, true),
            Req::List(r) => r.shards.iter().try_for_each(|s| check(*s, false)),
            Req::Query(r) => r.shards.iter().try_for_each(|s| check(*s, false)),
            Req::ReadChanges(r) => r.from.iter().try_for_each(|p| check(p.shard, false)),
            Req::ChangeHeads(r) => r.shards.iter().try_for_each(|s| check(*s, false)),
            Req::ApplyBatch(b) => b.applies.iter().try_for_each(|a| check(a.shard, true)),
            Req::Bulk(b) => b
                .ops
                .iter()
                .filter_map(op_shard)
                .try_for_each(|s| check(s, true)),
            _ => Ok(()),
        }
    }

    /// `not_owner` unless `map` gives `shard` to this node (and, for a `write`, the shard
    /// is not being moved).
    fn owned_in(&self, map: &ShardMap, shard: u32, write: bool) -> Result<()> {
        let owner = u16::try_from(shard).map_or("", |s| map.owner(s));
        if owner != self.ownership.node {
            return Err(Error::new(
                ErrorCode::NotOwner,
                format!(
                    "storage node {}/{} does not own shard {shard} in shard map epoch {} (node {owner:?} does); refresh the map",
                    self.dc, self.ownership.node, map.epoch
                ),
            ));
        }
        if write && u16::try_from(shard).is_ok_and(|s| map.is_moving(s)) {
            return Err(self.moving_error(shard));
        }
        Ok(())
    }

    /// The refusal of a write of a shard being moved away from this node.
    fn moving_error(&self, shard: u32) -> Error {
        Error::new(
            ErrorCode::NotOwner,
            format!(
                "shard {shard} is being moved from storage node {}/{}; its writes wait for the move to end",
                self.dc, self.ownership.node
            ),
        )
    }
}
