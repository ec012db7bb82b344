//! Queries (API.md "Query"): validated here, evaluated by every storage node on its own
//! shards, and merged in query order. Each node answers at most one page, so the gateway
//! holds about one page per node.

use std::cmp::Ordering;

use serde_json::Value;

use aerolith_common::document::Document;
use aerolith_common::json::{parse_value, type_name};
use aerolith_common::name::validate_collection;
use aerolith_common::query::{
    Filter, Position, SortKey, normalize_sort, parse_projection, parse_sort, sort_json,
};
use aerolith_common::{Error, Result, pb};

use super::documents::{Page, PlanStep};
use super::{Ctx, DEFAULT_LIMIT, MAX_LIMIT, Ops, PAGE_BYTES, check_limit, cursor, integral};

/// A query as every adapter hands it over: sort keys and projection paths already read,
/// the limit checked ([`super::check_limit`]); the filter stays JSON (nodes evaluate it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryInput {
    /// The filter object; `None` matches everything.
    pub filter: Option<Value>,
    /// The sort keys; empty orders by id.
    pub sort: Vec<SortKey>,
    /// Page size (1 to 1000).
    pub limit: u32,
    /// A `next_cursor` of an earlier page of the same query.
    pub cursor: Option<String>,
    /// Paths to keep in `data`; `None` keeps whole bodies.
    pub projection: Option<Vec<String>>,
    /// Whether the page says how each node reached its documents.
    pub explain: bool,
}

/// Nesting accepted in a query body (a 64-deep value under a filter operator).
const QUERY_DEPTH: usize = 80;

/// The fields a query body may have.
const FIELDS: [&str; 6] = ["filter", "sort", "limit", "cursor", "projection", "explain"];

impl QueryInput {
    /// Parses a query body; an empty body is the empty query (everything, in id order).
    pub fn from_body(body: &[u8]) -> Result<QueryInput> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(QueryInput {
                limit: DEFAULT_LIMIT,
                ..QueryInput::default()
            });
        }
        QueryInput::from_value(parse_value(body, QUERY_DEPTH)?)
    }

    /// Reads a query from a parsed JSON value (the REST body, or a WebSocket `query` frame).
    pub fn from_value(v: Value) -> Result<QueryInput> {
        let Value::Object(mut obj) = v else {
            return Err(Error::invalid("a query body must be a JSON object"));
        };
        if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(Error::invalid(format!(
                "unknown query field \"{k}\" (expected one of {})",
                FIELDS.join(", ")
            )));
        }
        // `null` means absent, as with MongoDB drivers.
        let mut take = |k: &str| obj.remove(k).filter(|v| !v.is_null());
        let limit = match take("limit") {
            None => DEFAULT_LIMIT,
            Some(v) => check_limit(integral(&v), &v)?,
        };
        let cursor = match take("cursor") {
            None => None,
            Some(Value::String(c)) => Some(c),
            Some(other) => {
                return Err(Error::invalid(format!(
                    "cursor must be a string or null, not {}",
                    type_name(&other)
                )));
            }
        };
        let sort = take("sort").as_ref().map(parse_sort).transpose()?;
        let projection = take("projection")
            .as_ref()
            .map(parse_projection)
            .transpose()?;
        let explain = match take("explain") {
            None => false,
            Some(Value::Bool(b)) => b,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "explain must be a boolean, not {}",
                    type_name(&other)
                )));
            }
        };
        Ok(QueryInput {
            filter: take("filter"),
            sort: sort.unwrap_or_default(),
            limit,
            cursor,
            projection,
            explain,
        })
    }
}

/// Reads a count body, `{"filter": {…}}` (empty: every document), into its filter.
pub fn count_filter(body: &[u8]) -> Result<Option<Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let Value::Object(mut obj) = parse_value(body, QUERY_DEPTH)? else {
        return Err(Error::invalid("a count body must be a JSON object"));
    };
    if let Some(k) = obj.keys().find(|k| *k != "filter") {
        return Err(Error::invalid(format!(
            "unknown count field \"{k}\" (expected filter)"
        )));
    }
    Ok(obj.remove("filter").filter(|v| !v.is_null()))
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
        let keys = normalize_sort(input.sort.clone());
        let limit = input.limit.clamp(1, MAX_LIMIT);
        let after = input
            .cursor
            .as_deref()
            .map(|c| cursor::decode_position(c, keys.len()))
            .transpose()?;
        let sort = (!input.sort.is_empty()).then(|| sort_json(&input.sort));
        let projection = input
            .projection
            .as_ref()
            .map(|p| Value::Array(p.iter().cloned().map(Value::String).collect()));
        let template = pb::QueryRequest {
            collection: collection.to_string(),
            filter: to_bytes(&input.filter)?,
            sort: to_bytes(&sort)?,
            projection: to_bytes(&projection)?,
            after: after.map(|p| p.to_bytes()).unwrap_or_default(),
            limit,
            max_bytes: PAGE_BYTES,
            explain: input.explain,
            usable: self.built.usable(collection),
            ..Default::default()
        };
        let results = self.ask_nodes(&ctx, &template).await?;

        // A node that did not finish has returned everything up to its `scanned_through`; the
        // page may not go past the smallest of those, or it could skip a document.
        let mut bound: Option<Position> = None;
        let mut answers = Vec::with_capacity(results.len());
        let mut plan = Vec::new();
        for (node, q) in results {
            if !q.done {
                let through = Position::from_bytes(&q.scanned_through, keys.len())?;
                if bound
                    .as_ref()
                    .is_none_or(|b| through.compare(b, &keys) == Ordering::Less)
                {
                    bound = Some(through);
                }
            }
            if let Some(p) = q.plan {
                plan.push(PlanStep {
                    node,
                    index: (!p.index.is_empty()).then_some(p.index),
                    examined: p.examined,
                });
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
        let mut page = merge(collection, &keys, answers, bound, limit)?;
        if input.explain {
            plan.sort_by(|a, b| a.node.cmp(&b.node));
            page.plan = Some(plan);
        }
        Ok(page)
    }

    /// How many documents of a collection match `filter` (`None`: all of them).
    pub async fn count(&self, ctx: Ctx, collection: &str, filter: Option<&Value>) -> Result<u64> {
        validate_collection(collection)?;
        if let Some(f) = filter {
            Filter::parse(f)?;
        }
        let template = pb::QueryRequest {
            collection: collection.to_string(),
            filter: to_bytes(&filter.cloned())?,
            limit: 1,
            count_only: true,
            usable: self.built.usable(collection),
            ..Default::default()
        };
        let results = self.ask_nodes(&ctx, &template).await?;
        Ok(results.iter().map(|(_, q)| q.count).sum())
    }

    /// Sends `template` to the nodes serving every shard, each with its own shards and
    /// session marks, and takes in their answers' marks: every node's answer, or the
    /// first error.
    async fn ask_nodes(
        &self,
        ctx: &Ctx,
        template: &pb::QueryRequest,
    ) -> Result<Vec<(String, pb::QueryResponse)>> {
        let results = self
            .router
            .scatter(
                |n| pb::QueryRequest {
                    shards: n.shards.iter().map(|s| *s as u32).collect(),
                    session: ctx.session.marks(|s| n.shards.contains(&s)),
                    ..template.clone()
                },
                ctx.remaining()?,
            )
            .await;
        let mut out = Vec::with_capacity(results.len());
        for (node, r) in results {
            let q = r?;
            ctx.session.observe_all(&q.marks);
            out.push((node, q));
        }
        self.built.learn(
            &template.collection,
            out.iter().map(|(_, q)| q.built.as_slice()),
        );
        Ok(out)
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
        plan: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: &str) -> Result<QueryInput> {
        QueryInput::from_body(v.as_bytes())
    }

    #[test]
    fn fields_defaults_and_nulls() {
        let q = parse(r#"{"filter": {"a": 1}, "sort": [{"field": "a"}], "limit": 5, "cursor": "x", "projection": ["a"]}"#)
            .expect("valid");
        assert_eq!(q.filter, Some(json!({"a": 1})));
        assert_eq!(q.limit, 5);
        assert_eq!(q.cursor.as_deref(), Some("x"));
        let q = parse(r#"{"filter": null, "limit": null, "cursor": null}"#).expect("valid");
        assert_eq!(q.filter, None);
        assert_eq!(q.limit, DEFAULT_LIMIT);
        assert_eq!(parse("").expect("valid").limit, DEFAULT_LIMIT);
        // JSON Schema's integers, as /openapi.json states the limit: 999.0 is one.
        assert_eq!(parse(r#"{"limit": 999.0}"#).expect("integral").limit, 999);
        for bad in ["999.5", "1e400", "0.0", "1001.0", "\"5\""] {
            assert!(parse(&format!(r#"{{"limit": {bad}}}"#)).is_err(), "{bad}");
        }
    }

    #[test]
    fn count_bodies() {
        assert_eq!(count_filter(b"").expect("empty"), None);
        assert_eq!(count_filter(b"{}").expect("no filter"), None);
        assert_eq!(count_filter(br#"{"filter": null}"#).expect("null"), None);
        assert_eq!(
            count_filter(br#"{"filter": {"a": 1}}"#).expect("a filter"),
            Some(json!({"a": 1}))
        );
        for bad in [r#"{"filter": {}, "limit": 5}"#, "[]", "{"] {
            let e = count_filter(bad.as_bytes()).expect_err(bad);
            assert_eq!(e.code, aerolith_common::ErrorCode::InvalidArgument, "{bad}");
        }
        let q = parse(r#"{"explain": true}"#).expect("explain");
        assert!(q.explain);
        assert!(parse(r#"{"explain": "yes"}"#).is_err());
    }

    #[test]
    fn rejects_bad_bodies() {
        for bad in [
            "[]",
            r#"{"filtre": {}}"#,
            r#"{"limit": 0}"#,
            r#"{"limit": 1001}"#,
            r#"{"limit": 2.5}"#,
            r#"{"limit": "10"}"#,
            r#"{"cursor": 5}"#,
            r#"{"a": 1, "a": 2}"#,
            "{",
        ] {
            let e = parse(bad).expect_err(bad);
            assert_eq!(e.code, aerolith_common::ErrorCode::InvalidArgument, "{bad}");
        }
    }
}
