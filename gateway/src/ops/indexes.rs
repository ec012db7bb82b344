//! Secondary index operations (issue 24). Definitions go to every node of the DC the way
//! collection settings do (the first node stamps them, the others record the same stamp)
//! and replicate to the other DCs with the settings; each node builds the entries of its
//! own shards and reports how far it got, which the gateway adds up.

use serde::Serialize;

use aerolith_common::index_def::{MAX_INDEXES, join, live, validate_fields};
use aerolith_common::name::{validate_collection, validate_index};
use aerolith_common::{Error, Result, pb};

use super::audit::audited;
use super::collections::newest_deletion;
use super::{Ctx, Ops};

/// An index field as every adapter reads it: a path and an order, `asc` (also when
/// absent) or `desc`; the path is checked with the rest of the definition.
pub fn index_field(path: String, order: Option<&str>) -> Result<pb::IndexField> {
    let desc = match order {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(Error::invalid(format!(
                "an index field's order must be \"asc\" or \"desc\", not {other:?}"
            )));
        }
    };
    Ok(pb::IndexField { path, desc })
}

/// One field of an index as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexFieldInfo {
    /// Dotted path.
    pub path: String,
    /// `asc` or `desc`.
    pub order: &'static str,
}

/// An index as clients see it: its definition and how far this DC has built it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexInfo {
    /// Name.
    pub name: String,
    /// Fields, in key order.
    pub fields: Vec<IndexFieldInfo>,
    /// `building` or `ready` (`failed` is reserved for a build that cannot finish).
    pub state: &'static str,
    /// While building: the share of the DC's shards built, 0 to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    /// Why a build failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn fields_info(fields: &[pb::IndexField]) -> Vec<IndexFieldInfo> {
    fields
        .iter()
        .map(|f| IndexFieldInfo {
            path: f.path.clone(),
            order: if f.desc { "desc" } else { "asc" },
        })
        .collect()
}

/// The live definitions of a collection as the DC's nodes hold them: joined over the
/// nodes that hold its newest incarnation (a node behind on a deletion does not count).
fn dc_definitions(metas: &[pb::CollectionMeta]) -> Vec<pb::IndexDef> {
    let last_delete = newest_deletion(metas);
    let defs = metas
        .iter()
        .filter(|m| !m.deleted && m.incarnation >= last_delete)
        .fold(Vec::new(), |acc, m| join(&acc, &m.indexes));
    defs.into_iter().filter(|d| !d.dropped).collect()
}

impl Ops {
    /// Defines an index: `(info, true)` when this call added it, `(info, false)` when the
    /// same definition was there. A missing collection is created with the defaults, as a
    /// first write would. Audited.
    pub async fn put_index(
        &self,
        ctx: Ctx,
        collection: &str,
        name: &str,
        fields: Vec<pb::IndexField>,
    ) -> Result<(IndexInfo, bool)> {
        let who = ctx.who.clone();
        let target = format!("{collection}/{name}");
        let run = self.define_index(ctx, collection, name, fields);
        audited(who, "index.create", &target, run).await
    }

    async fn define_index(
        &self,
        ctx: Ctx,
        collection: &str,
        name: &str,
        fields: Vec<pb::IndexField>,
    ) -> Result<(IndexInfo, bool)> {
        validate_collection(collection)?;
        validate_index(name)?;
        validate_fields(&fields)?;
        let metas = self.metas_of(ctx.clone(), collection).await?;
        let defs = dc_definitions(&metas);
        let held = defs.iter().find(|d| d.name == name);
        if let Some(held) = held {
            if held.fields != fields {
                return Err(Error::invalid(format!(
                    "index {name} of collection {collection} already exists with other fields; drop it first"
                )));
            }
        } else if defs.len() >= MAX_INDEXES {
            return Err(Error::invalid(format!(
                "collection {collection} already has {MAX_INDEXES} indexes, the most it may have"
            )));
        }
        let after_delete_hlc = newest_deletion(&metas);
        let request = |hlc| pb::PutIndexRequest {
            collection: collection.to_string(),
            name: name.to_string(),
            fields: fields.clone(),
            hlc,
            after_delete_hlc,
        };
        let created = held.is_none();
        self.first_then_rest(ctx.clone(), request, |r: pb::PutCollectionResponse| {
            r.meta
                .and_then(|m| live(&m).find(|d| d.name == name).map(|d| d.hlc))
                .unwrap_or(0)
        })
        .await?;
        let info = self
            .list_indexes(ctx, collection)
            .await?
            .into_iter()
            .find(|i| i.name == name)
            .ok_or_else(|| {
                Error::unavailable(format!(
                    "index {name} was defined but no node lists it yet; retry"
                ))
            })?;
        Ok((info, created))
    }

    /// A collection's live indexes with the DC's build state of each; `not_found` when the
    /// collection does not exist.
    pub async fn list_indexes(&self, ctx: Ctx, collection: &str) -> Result<Vec<IndexInfo>> {
        self.get_collection(ctx.clone(), collection).await?;
        let answers = self
            .router
            .call_all(
                |_| pb::IndexStatesRequest {
                    collection: collection.to_string(),
                },
                ctx.remaining()?,
            )
            .await;
        let nodes = answers.len();
        // Per definition (name and stamp): nodes that report it, shards done, shards.
        let mut seen: Vec<(pb::IndexDef, usize, u64, u64)> = Vec::new();
        for answer in answers {
            for state in answer?.states {
                let Some(def) = state.def else { continue };
                match seen.iter_mut().find(|(d, ..)| *d == def) {
                    Some((_, n, done, of)) => {
                        *n += 1;
                        *done += u64::from(state.shards_done);
                        *of += u64::from(state.shards);
                    }
                    None => seen.push((
                        def,
                        1,
                        u64::from(state.shards_done),
                        u64::from(state.shards),
                    )),
                }
            }
        }
        // Where nodes disagree on a name (a change on its way), the later stamp is the one.
        let defs = join(
            &[],
            &seen.iter().map(|(d, ..)| d.clone()).collect::<Vec<_>>(),
        );
        Ok(defs
            .into_iter()
            .filter_map(|def| {
                let (_, n, done, of) = seen.iter().find(|(d, ..)| *d == def)?;
                let ready = *n == nodes && done == of;
                if ready {
                    self.built.mark(
                        collection,
                        &pb::IndexStamp {
                            hlc: def.hlc,
                            dc: def.dc.clone(),
                        },
                    );
                }
                Some(IndexInfo {
                    name: def.name.clone(),
                    fields: fields_info(&def.fields),
                    state: if ready { "ready" } else { "building" },
                    // Nodes that do not list it yet count as not started.
                    progress: (!ready).then(|| {
                        let of = (*of as f64) * (nodes as f64) / (*n as f64);
                        if of > 0.0 { *done as f64 / of } else { 0.0 }
                    }),
                    reason: None,
                })
            })
            .collect())
    }

    /// Drops an index; `not_found` when the collection or the index does not exist. Audited.
    pub async fn drop_index(&self, ctx: Ctx, collection: &str, name: &str) -> Result<()> {
        let who = ctx.who.clone();
        let target = format!("{collection}/{name}");
        let run = self.undefine_index(ctx, collection, name);
        audited(who, "index.delete", &target, run).await
    }

    async fn undefine_index(&self, ctx: Ctx, collection: &str, name: &str) -> Result<()> {
        validate_collection(collection)?;
        validate_index(name)?;
        let metas = self.metas_of(ctx.clone(), collection).await?;
        if !metas.iter().any(|m| !m.deleted) {
            return Err(Error::not_found(format!(
                "collection {collection} not found"
            )));
        }
        if !dc_definitions(&metas).iter().any(|d| d.name == name) {
            return Err(Error::not_found(format!(
                "index {name} of collection {collection} not found"
            )));
        }
        let request = |hlc| pb::DropIndexRequest {
            collection: collection.to_string(),
            name: name.to_string(),
            hlc,
        };
        self.first_then_rest(ctx, request, move |m: pb::CollectionMeta| {
            m.indexes
                .iter()
                .find(|d| d.name == name && d.dropped)
                .map(|d| d.hlc)
                .unwrap_or(0)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str, hlc: u64, dropped: bool) -> pb::IndexDef {
        pb::IndexDef {
            name: name.into(),
            fields: vec![pb::IndexField {
                path: "a".into(),
                desc: true,
            }],
            hlc,
            dc: "dc1".into(),
            dropped,
        }
    }

    #[test]
    fn the_dc_view_joins_live_nodes_of_the_newest_incarnation() {
        let live_meta = |indexes| pb::CollectionMeta {
            name: "c".into(),
            incarnation: 5,
            indexes,
            ..Default::default()
        };
        let behind = pb::CollectionMeta {
            incarnation: 0,
            indexes: vec![def("old", 1, false)],
            ..live_meta(vec![])
        };
        let gone = pb::CollectionMeta {
            deleted: true,
            deleted_hlc: 5,
            ..live_meta(vec![])
        };
        let metas = [
            live_meta(vec![def("a", 6, false), def("b", 7, false)]),
            live_meta(vec![def("b", 8, true)]),
            behind,
            gone,
        ];
        assert_eq!(dc_definitions(&metas), vec![def("a", 6, false)]);
        assert_eq!(
            fields_info(&def("a", 6, false).fields),
            vec![IndexFieldInfo {
                path: "a".into(),
                order: "desc"
            }]
        );
    }
}
