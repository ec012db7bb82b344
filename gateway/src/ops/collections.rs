//! Collection operations. Every node of the DC holds the settings of the collections it has
//! seen; the gateway asks them all and resolves: explicit over implicit, then by (HLC, DC).

use std::collections::BTreeMap;

use futures::future::join_all;
use serde::Serialize;

use aerolith_common::name::validate_collection;
use aerolith_common::strategy::{parse_strategy, strategy_name};
use aerolith_common::time::rfc3339_ms;
use aerolith_common::{Error, Result, pb};

use super::audit::audited;
use super::{Ctx, Ops};
use aerolith_common::rpc::{Call, Node};

/// A collection as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CollectionInfo {
    /// Name.
    pub name: String,
    /// `lww`, `siblings` or `field_merge`.
    pub conflict_strategy: String,
    /// RFC 3339 creation time.
    pub created_at: String,
}

/// Resolves one collection's settings as reported by several nodes.
fn resolve(metas: &[pb::CollectionMeta]) -> Option<CollectionInfo> {
    let last_delete = newest_deletion(metas);
    let live: Vec<&pb::CollectionMeta> = metas
        .iter()
        .filter(|m| !m.deleted && (last_delete == 0 || m.incarnation >= last_delete))
        .collect();
    let winner = live.iter().max_by(|a, b| {
        (a.explicit, a.settings_hlc, &a.settings_dc).cmp(&(
            b.explicit,
            b.settings_hlc,
            &b.settings_dc,
        ))
    })?;
    let created = live
        .iter()
        .map(|m| m.created_at_ms)
        .min()
        .unwrap_or(winner.created_at_ms);
    Some(CollectionInfo {
        name: winner.name.clone(),
        conflict_strategy: strategy_name(winner.strategy).to_string(),
        created_at: rfc3339_ms(created),
    })
}

impl Ops {
    async fn collection_metas(
        &self,
        ctx: Ctx,
    ) -> Result<BTreeMap<String, Vec<pb::CollectionMeta>>> {
        let results = self
            .router
            .call_all(|_| pb::ListCollectionsRequest {}, ctx.remaining()?)
            .await;
        let mut by_name: BTreeMap<String, Vec<pb::CollectionMeta>> = BTreeMap::new();
        for r in results {
            for m in r?.collections {
                by_name.entry(m.name.clone()).or_default().push(m);
            }
        }
        Ok(by_name)
    }

    /// Every live collection, by name.
    pub async fn list_collections(&self, ctx: Ctx) -> Result<Vec<CollectionInfo>> {
        Ok(self
            .collection_metas(ctx)
            .await?
            .values()
            .filter_map(|m| resolve(m))
            .collect())
    }

    /// One collection; `not_found` if it does not exist.
    pub async fn get_collection(&self, ctx: Ctx, name: &str) -> Result<CollectionInfo> {
        validate_collection(name)?;
        resolve(&self.metas_of(ctx, name).await?)
            .ok_or_else(|| Error::not_found(format!("collection {name} not found")))
    }

    /// What every node of the DC holds for one collection (tombstones included).
    pub(super) async fn metas_of(&self, ctx: Ctx, name: &str) -> Result<Vec<pb::CollectionMeta>> {
        let results = self
            .router
            .call_all(
                |_| pb::GetCollectionRequest {
                    name: name.to_string(),
                },
                ctx.remaining()?,
            )
            .await;
        let mut metas = Vec::new();
        for r in results {
            match r {
                Ok(m) => metas.push(m),
                Err(e) if e.code == aerolith_common::ErrorCode::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(metas)
    }

    /// Creates a collection (true) or confirms an existing one (false). Without a strategy,
    /// an existing collection is left as it is and a new one gets the defaults. Audited.
    pub async fn put_collection(
        &self,
        ctx: Ctx,
        name: &str,
        strategy: Option<&str>,
    ) -> Result<(CollectionInfo, bool)> {
        let who = ctx.who.clone();
        let run = self.create_collection(ctx, name, strategy);
        audited(who, "collection.create", name, run).await
    }

    async fn create_collection(
        &self,
        ctx: Ctx,
        name: &str,
        strategy: Option<&str>,
    ) -> Result<(CollectionInfo, bool)> {
        validate_collection(name)?;
        let requested = strategy.map(parse_strategy).transpose()?;
        let metas = self.metas_of(ctx.clone(), name).await?;
        let existing = resolve(&metas);
        let strategy = match (&existing, requested) {
            (Some(cur), Some(want)) if cur.conflict_strategy != strategy_name(want as i32) => {
                return Err(Error::invalid(format!(
                    "collection {name} already exists with conflict_strategy {}; the strategy is fixed at creation",
                    cur.conflict_strategy
                )));
            }
            (Some(cur), None) => parse_strategy(&cur.conflict_strategy)?,
            (_, want) => want.unwrap_or(pb::ConflictStrategy::Lww),
        };
        // A node still holding an incarnation older than a deletion another node recorded (a
        // deletion that failed half-way) drops it before the collection is created afresh.
        let after_delete_hlc = newest_deletion(&metas);
        // The first node picks the settings' HLC; the others record the same one.
        let request = |hlc| pb::PutCollectionRequest {
            name: name.to_string(),
            strategy: strategy as i32,
            explicit: true,
            settings_hlc: hlc,
            after_delete_hlc,
        };
        self.first_then_rest(ctx.clone(), request, |r| {
            r.meta.map(|m| m.settings_hlc).unwrap_or(0)
        })
        .await?;
        let info = self.get_collection(ctx, name).await?;
        Ok((info, existing.is_none()))
    }

    /// Deletes a collection and all its documents in this DC; `not_found` if no node holds it.
    /// Retrying after a partial failure finishes the job: any node still holding a live
    /// incarnation counts as the collection existing. Audited.
    pub async fn delete_collection(&self, ctx: Ctx, name: &str) -> Result<()> {
        let who = ctx.who.clone();
        let run = self.drop_collection(ctx, name);
        audited(who, "collection.delete", name, run).await
    }

    async fn drop_collection(&self, ctx: Ctx, name: &str) -> Result<()> {
        validate_collection(name)?;
        let metas = self.metas_of(ctx.clone(), name).await?;
        if !metas.iter().any(|m| !m.deleted) {
            return Err(Error::not_found(format!("collection {name} not found")));
        }
        let request = |hlc| pb::DeleteCollectionRequest {
            name: name.to_string(),
            hlc,
        };
        self.first_then_rest(ctx, request, |m| m.deleted_hlc)
            .await?;
        Ok(())
    }

    /// Sends a request to the DC's first node, which picks an HLC (`request(0)`), then the
    /// same request with that HLC to every other node at once, so all record one timestamp.
    /// Once the first node has taken it, the others get it even if the caller's deadline
    /// ends meanwhile (the caller then gets `deadline_exceeded`, the rest still goes on):
    /// a change only the first node knows would be lost with it, and a deletion only it
    /// knows cannot be handed to a write that fails over while it is down.
    pub(super) async fn first_then_rest<C>(
        &self,
        ctx: Ctx,
        request: impl Fn(u64) -> C,
        hlc_of: impl Fn(C::Answer) -> u64,
    ) -> Result<()>
    where
        C: Call<Node> + Send + 'static,
        C::Answer: Send + 'static,
    {
        let nodes = self.router.nodes();
        let Some((first, rest)) = nodes.split_first() else {
            return Err(Error::unavailable("no storage nodes"));
        };
        let hlc = hlc_of(
            self.router
                .call_node(&first.addr, request(0), ctx.remaining()?)
                .await?,
        );
        let router = self.router.clone();
        let calls: Vec<(String, C)> = rest
            .iter()
            .map(|n| (n.addr.clone(), request(hlc)))
            .collect();
        let completing = tokio::spawn(async move {
            join_all(calls.into_iter().map(|(addr, req)| {
                let router = router.clone();
                async move { router.call_node(&addr, req, COMPLETE_WITHIN).await }
            }))
            .await
        });
        let results = tokio::time::timeout(ctx.remaining()?, completing)
            .await
            .map_err(|_| Error::deadline("the request's deadline passed while the DC's other nodes took the change; they still take it"))?
            .map_err(|e| Error::internal(format!("collection change task failed: {e}")))?;
        for r in results {
            r?;
        }
        Ok(())
    }
}

/// How long the DC's other nodes get to take a collection change the first node took,
/// whatever the caller's deadline.
const COMPLETE_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// The HLC of the newest deletion of a collection any node recorded (0 if none).
pub(super) fn newest_deletion(metas: &[pb::CollectionMeta]) -> u64 {
    metas
        .iter()
        .filter(|m| m.deleted)
        .map(|m| m.deleted_hlc)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(explicit: bool, strategy: pb::ConflictStrategy, hlc: u64) -> pb::CollectionMeta {
        pb::CollectionMeta {
            name: "c".into(),
            strategy: strategy as i32,
            explicit,
            settings_hlc: hlc,
            settings_dc: "dc1".into(),
            created_at_ms: hlc,
            ..Default::default()
        }
    }

    #[test]
    fn explicit_wins_then_latest() {
        let r = resolve(&[
            meta(false, pb::ConflictStrategy::Lww, 9),
            meta(true, pb::ConflictStrategy::Siblings, 5),
        ])
        .unwrap();
        assert_eq!(r.conflict_strategy, "siblings");
        let r = resolve(&[
            meta(true, pb::ConflictStrategy::FieldMerge, 7),
            meta(true, pb::ConflictStrategy::Siblings, 5),
        ])
        .unwrap();
        assert_eq!(r.conflict_strategy, "field_merge");
        assert_eq!(r.created_at, rfc3339_ms(5));
    }

    #[test]
    fn deleted_collections_vanish_until_recreated() {
        let mut dead = meta(false, pb::ConflictStrategy::Lww, 1);
        dead.deleted = true;
        dead.deleted_hlc = 10;
        assert!(resolve(&[dead.clone(), meta(false, pb::ConflictStrategy::Lww, 1)]).is_none());
        let mut reborn = meta(false, pb::ConflictStrategy::Lww, 11);
        reborn.incarnation = 10;
        assert!(resolve(&[dead, reborn]).is_some());
    }
}
