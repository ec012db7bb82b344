//! Change feeds (API.md "Change feeds and resume tokens"): every node reads its shards' logs
//! from the token's positions; the gateway merges the shards' events and advances the token
//! one event at a time, so any event's token resumes right after it.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use aerolith_common::body::Body;
use aerolith_common::document::version_of;
use aerolith_common::name::validate_collection;
use aerolith_common::query::Filter;
use aerolith_common::time::rfc3339_ms;
use aerolith_common::{Error, ErrorCode, Result, hlc, pb};

use super::token::Positions;
use super::{Ctx, MAX_LIMIT, Ops};
use crate::caps::{Kind, Slot};
use crate::router::NodeShards;

/// Bytes of changes one node read returns at most (one change more at worst), well within
/// the internal RPC's frame limit.
const FEED_BYTES: u64 = 8 * 1024 * 1024;

/// One change as every protocol presents it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeView {
    /// `put` (creates, replaces, patches) or `delete`.
    pub op: &'static str,
    /// The collection.
    pub collection: String,
    /// The document id.
    pub id: String,
    /// The document's version after the change.
    pub version: String,
    /// RFC 3339 time of the change.
    pub updated_at: String,
    /// DC that made the change.
    pub origin: String,
    /// The new body; `None` for a delete.
    pub data: Option<Body>,
    /// Resumes the feed right after this change.
    pub token: String,
}

/// A page of a polled feed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangePage {
    /// Changes in per-document order.
    pub changes: Vec<ChangeView>,
    /// Token to poll with next.
    pub next: String,
}

/// What the nodes answered for one read of a feed.
pub struct Fetched {
    events: Vec<pb::ChangeRecord>,
    start: Vec<pb::ShardPosition>,
    through: Vec<pb::ShardPosition>,
    /// The collection's incarnation on the node, when it exists there.
    pub incarnation: Option<u64>,
}

impl ChangeView {
    /// Renders one change-log entry.
    pub fn render(event: &pb::ChangeEvent, token: String) -> Result<ChangeView> {
        let rec = event
            .record
            .as_ref()
            .ok_or_else(|| Error::internal("change-log entry without a record"))?;
        Ok(ChangeView {
            op: if rec.tombstone { "delete" } else { "put" },
            collection: event.collection.clone(),
            id: event.id.clone(),
            version: version_of(rec),
            updated_at: rfc3339_ms(hlc::wall_ms(rec.hlc)),
            origin: rec.origin.clone(),
            data: if rec.tombstone {
                None
            } else {
                Some(Body::from_stored(&rec.body)?)
            },
            token,
        })
    }
}

/// Where a live subscription starts, validated.
pub struct FeedStart {
    /// Puts must match it (deletes always pass).
    pub filter: Option<Filter>,
    /// The starting positions.
    pub positions: Positions,
    /// Their token, for the client.
    pub token: String,
    /// The caller's subscription place, held by the feed while it runs.
    pub slot: Slot,
}

impl From<pb::ReadChangesResponse> for Fetched {
    fn from(c: pb::ReadChangesResponse) -> Fetched {
        Fetched {
            incarnation: c.live.then_some(c.incarnation),
            events: c.events,
            start: c.start,
            through: c.through,
        }
    }
}

impl Ops {
    /// Validates a subscription: its collection, its filter, and where it starts (after
    /// `since`, or at the current head without one); first of all it takes one of the
    /// caller's subscription places (`rate_limited` when they hold all of theirs).
    pub async fn open_feed(
        &self,
        ctx: Ctx,
        collection: &str,
        filter: Option<&Value>,
        since: Option<&str>,
    ) -> Result<FeedStart> {
        let slot = match &ctx.who {
            Some(who) => who.take(Kind::Subscription)?,
            None => Slot::unheld(),
        };
        validate_collection(collection)?;
        let filter = filter.map(Filter::parse).transpose()?;
        let positions = match since.filter(|t| !t.is_empty()) {
            Some(t) => self.feed_positions(Some(t))?,
            None => self.feed_heads(ctx).await?,
        };
        Ok(FeedStart {
            filter,
            token: positions.encode(self.router.dc()),
            positions,
            slot,
        })
    }

    /// The positions a client's `since` names, or every shard's oldest retained change.
    pub fn feed_positions(&self, since: Option<&str>) -> Result<Positions> {
        let shards = self.router.cluster().shards;
        match since {
            Some(t) => Positions::decode(t, self.router.dc(), shards),
            None => Ok(Positions::oldest(shards)),
        }
    }

    /// The current head of every shard: a token that sees only later changes.
    pub async fn feed_heads(&self, ctx: Ctx) -> Result<Positions> {
        let results = self
            .router
            .call_all(
                |n| pb::ChangeHeadsRequest {
                    shards: n.shards.iter().map(|s| u32::from(*s)).collect(),
                },
                ctx.remaining()?,
            )
            .await;
        let mut positions = Positions::oldest(self.router.cluster().shards);
        for r in results {
            r?.heads.iter().for_each(|p| positions.set(p));
        }
        Ok(positions)
    }

    /// One page of a polled feed (`GET /v1/collections/{c}/changes`).
    pub async fn changes(
        &self,
        ctx: Ctx,
        collection: &str,
        since: Option<&str>,
        limit: u32,
    ) -> Result<ChangePage> {
        validate_collection(collection)?;
        let mut positions = self.feed_positions(since)?;
        let changes = self
            .read_feed(ctx, collection, &mut positions, limit, Duration::ZERO)
            .await?;
        Ok(ChangePage {
            changes,
            next: positions.encode(self.router.dc()),
        })
    }

    /// Reads up to `limit` changes after `positions` and advances them. With `wait`, nodes
    /// that have nothing yet hold the read open that long for the next change. Shards of an
    /// unreachable node pause (their positions stay) unless no node answers at all.
    pub async fn read_feed(
        &self,
        ctx: Ctx,
        collection: &str,
        positions: &mut Positions,
        limit: u32,
        wait: Duration,
    ) -> Result<Vec<ChangeView>> {
        let limit = limit.clamp(1, MAX_LIMIT);
        let fetched = self.fetch(ctx, collection, positions, limit, wait).await?;
        assemble(self.router.dc(), positions, fetched, limit)
    }

    /// Reads one node's shards of a feed (a live subscription tails each node on its own,
    /// so one node's quiet wait never delays another's changes).
    /// With `incarnation`, a deleted or re-created collection answers `not_found`.
    #[allow(clippy::too_many_arguments)]
    pub async fn fetch_node(
        &self,
        ctx: Ctx,
        node: &NodeShards,
        collection: &str,
        positions: &Positions,
        limit: u32,
        wait: Duration,
        incarnation: Option<u64>,
    ) -> Result<Fetched> {
        let mut req = read_request(collection, positions.of(&node.shards), limit, wait);
        if let Some(i) = incarnation {
            req.incarnation = i;
            req.follow = true;
        }
        let c = self
            .router
            .call_node(&node.addr, req, ctx.remaining()?)
            .await?;
        Ok(c.into())
    }

    async fn fetch(
        &self,
        ctx: Ctx,
        collection: &str,
        positions: &Positions,
        limit: u32,
        wait: Duration,
    ) -> Result<Fetched> {
        let results = self
            .router
            .call_all(
                |n| read_request(collection, positions.of(&n.shards), limit, wait),
                ctx.remaining()?,
            )
            .await;
        let mut out = Fetched {
            events: Vec::new(),
            start: Vec::new(),
            through: Vec::new(),
            incarnation: None,
        };
        let mut failure = None;
        let mut answered = false;
        for r in results {
            match r {
                Ok(c) => {
                    answered = true;
                    out.events.extend(c.events);
                    out.start.extend(c.start);
                    out.through.extend(c.through);
                }
                Err(e)
                    if matches!(
                        e.code,
                        ErrorCode::ResumeTokenExpired | ErrorCode::InvalidArgument
                    ) =>
                {
                    return Err(e);
                }
                Err(e) => {
                    tracing::debug!(error = %e.message, "a node's changes are paused");
                    failure.get_or_insert(e);
                }
            }
        }
        match failure {
            Some(e) if !answered => Err(e),
            _ => Ok(out),
        }
    }
}

fn read_request(
    collection: &str,
    from: Vec<pb::ShardPosition>,
    limit: u32,
    wait: Duration,
) -> pb::ReadChangesRequest {
    pb::ReadChangesRequest {
        collection: collection.to_string(),
        from: rotated(from),
        limit,
        wait_ms: wait.as_millis().min(u128::from(u32::MAX)) as u32,
        max_bytes: FEED_BYTES,
        incarnation: 0,
        follow: false,
        relay: false,
    }
}

/// Starts each read at a different shard: a node fills `limit` from the shards in the order
/// given, so a fixed order would let a busy shard starve the ones after it.
fn rotated(mut from: Vec<pb::ShardPosition>) -> Vec<pb::ShardPosition> {
    if !from.is_empty() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as usize);
        let len = from.len();
        from.rotate_left(nanos % len);
    }
    from
}

/// Merges the shards' events (each shard in log order; across shards by write time), keeps
/// the first `limit`, and advances `positions` past what is returned.
pub fn assemble(
    dc: &str,
    positions: &mut Positions,
    fetched: Fetched,
    limit: u32,
) -> Result<Vec<ChangeView>> {
    fetched.start.iter().for_each(|p| positions.set(p));
    let shards = positions.shards.len();
    let mut queues: Vec<VecDeque<pb::ChangeRecord>> = vec![VecDeque::new(); shards];
    for e in fetched.events {
        if let Some(q) = queues.get_mut(e.shard as usize) {
            q.push_back(e);
        }
    }
    let hlc_of = |r: &pb::ChangeRecord| {
        r.event
            .as_ref()
            .and_then(|e| e.record.as_ref())
            .map_or(0, |r| r.hlc)
    };
    let mut out = Vec::new();
    while out.len() < limit as usize {
        let next = queues
            .iter()
            .enumerate()
            .filter_map(|(i, q)| q.front().map(|r| (hlc_of(r), i)))
            .min();
        let Some(rec) = next.and_then(|(_, i)| queues[i].pop_front()) else {
            break;
        };
        let epoch = positions.shards.get(rec.shard as usize).map_or(0, |p| p.0);
        positions.set(&pb::ShardPosition {
            shard: rec.shard,
            epoch,
            seq: rec.seq,
        });
        let Some(event) = rec.event.as_ref() else {
            continue;
        };
        out.push(ChangeView::render(event, positions.encode(dc))?);
    }
    // A shard whose events were all returned moves on to where its node read through.
    for p in &fetched.through {
        if queues.get(p.shard as usize).is_some_and(VecDeque::is_empty) {
            positions.set(p);
        }
    }
    Ok(out)
}
