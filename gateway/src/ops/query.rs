//! Queries (API.md "Query"): validated here, evaluated by every storage node on its own
//! shards, and merged in query order. Each node answers at most one page, so the gateway
//! holds about one page per node.

use std::cmp::Ordering;

use serde_json::Value;

use aerolith_common::document::Document;
use aerolith_common::name::validate_collection;
use aerolith_common::query::{
    Filter, Position, SortKey, normalize_sort, parse_projection, parse_sort,
};
use aerolith_common::{Error, Result, pb};

use super::documents::Page;
use super::{Ctx, MAX_LIMIT, Ops, PAGE_BYTES, cursor};

/// A query as a client sends it, before validation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryInput {
    /// The filter object; `None` matches everything.
    pub filter: Option<Value>,
    /// The sort array; `None` orders by id.
    pub sort: Option<Value>,
    /// Page size (1 to 1000).
    pub limit: u32,
    /// A `next_cursor` of an earlier page of the same query.
    pub cursor: Option<String>,
    /// Paths to keep in `data`; `None` keeps whole bodies.
    pub projection: Option<Value>,
}

/// One node's answer, positions decoded.
struct NodeAnswer {
    hits: std::iter::Peekable<std::vec::IntoIter<(Position, pb::QueryHit)>>,
}

fn to_bytes(v: &Option<Value>) -> Result<Vec<u8>> {
    v.as_ref()
        .map(|v| serde_json::to_vec(v).map_err(Error::internal))
        .transpose()
        .map(Option::unwrap_or_default)
}

impl Ops {
    /// Runs one page of a query.
    pub async fn query(&self, ctx: Ctx, collection: &str, input: &QueryInput) -> Result<Page> {
        validate_collection(collection)?;
        if let Some(f) = &input.filter {
            Filter::parse(f)?;
        }
        let keys: Vec<SortKey> = match &input.sort {
            Some(s) => normalize_sort(parse_sort(s)?),
            None => Vec::new(),
        };
        if let Some(p) = &input.projection {
            parse_projection(p)?;
        }
        let limit = input.limit.clamp(1, MAX_LIMIT);
        let after = input
            .cursor
            .as_deref()
            .map(|c| cursor::decode_position(c, keys.len()))
            .transpose()?;
        let (filter, sort, projection) = (
            to_bytes(&input.filter)?,
            to_bytes(&input.sort)?,
            to_bytes(&input.projection)?,
        );
        let after = after.map(|p| p.to_bytes()).unwrap_or_default();
        let results = self
            .router
            .scatter(
                |n| pb::QueryRequest {
                    shards: n.shards.iter().map(|s| *s as u32).collect(),
                    collection: collection.to_string(),
                    filter: filter.clone(),
                    sort: sort.clone(),
                    projection: projection.clone(),
                    after: after.clone(),
                    limit,
                    max_bytes: PAGE_BYTES,
                    session: ctx.session.marks(|s| n.shards.contains(&s)),
                },
                ctx.remaining()?,
            )
            .await;

        // A node that did not finish has returned everything up to its `scanned_through`; the
        // page may not go past the smallest of those, or it could skip a document.
        let mut bound: Option<Position> = None;
        let mut answers = Vec::with_capacity(results.len());
        for r in results {
            let q = r?;
            ctx.session.observe_all(&q.marks);
            if !q.done {
                let through = Position::from_bytes(&q.scanned_through, keys.len())?;
                if bound
                    .as_ref()
                    .is_none_or(|b| through.compare(b, &keys) == Ordering::Less)
                {
                    bound = Some(through);
                }
            }
            let hits = q
                .hits
                .into_iter()
                .map(|h| Ok((Position::from_bytes(&h.position, keys.len())?, h)))
                .collect::<Result<Vec<_>>>()?;
            answers.push(NodeAnswer {
                hits: hits.into_iter().peekable(),
            });
        }
        merge(collection, &keys, answers, bound, limit)
    }
}

/// Merges the nodes' sorted answers (a k-way merge) into one page: up to `limit` documents
/// and about [`PAGE_BYTES`], never past `bound`.
fn merge(
    collection: &str,
    keys: &[SortKey],
    mut answers: Vec<NodeAnswer>,
    bound: Option<Position>,
    limit: u32,
) -> Result<Page> {
    let mut documents = Vec::new();
    let mut bytes = 0u64;
    let mut last: Option<Position> = None;
    let mut cut = false;
    loop {
        let next = answers
            .iter_mut()
            .enumerate()
            .filter_map(|(i, a)| a.hits.peek().map(|(p, _)| (i, p)))
            .min_by(|x, y| x.1.compare(y.1, keys))
            .map(|(i, _)| i);
        let Some((pos, hit)) = next.and_then(|i| answers[i].hits.next()) else {
            break;
        };
        if bound
            .as_ref()
            .is_some_and(|b| pos.compare(b, keys) == Ordering::Greater)
        {
            break;
        }
        if documents.len() as u32 >= limit || (bytes >= PAGE_BYTES && !documents.is_empty()) {
            cut = true;
            break;
        }
        let Some(rec) = hit.record.as_ref() else {
            continue;
        };
        bytes += rec.body.len() as u64;
        if let Some(doc) = Document::from_record(collection, &hit.id, rec)? {
            documents.push(doc);
        }
        last = Some(pos);
    }
    let next = if cut { last } else { bound };
    Ok(Page {
        documents,
        next_cursor: next.as_ref().map(cursor::encode_position),
    })
}
