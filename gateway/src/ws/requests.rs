//! Request frames (`get`, `put`, `patch`, `delete`, `query`, `create_collection`): each runs
//! through the same operations as REST and answers one `result` frame.

use serde_json::{Map, Value, json};

use aerolith_common::json::object_of;
use aerolith_common::patch::PatchKind;
use aerolith_common::{Error, Result};

use super::frame::RequestKind;
use std::sync::Arc;

use crate::admission::Who;
use crate::ops::{Ctx, DEFAULT_TIMEOUT, Ops, Precondition, QueryInput, Session, WriteConcern};

fn text<'a>(fields: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::invalid(format!("\"{key}\" must be a string"))),
    }
}

fn need<'a>(fields: &'a Map<String, Value>, key: &str) -> Result<&'a str> {
    text(fields, key)?.ok_or_else(|| Error::invalid(format!("this request needs \"{key}\"")))
}

/// `if_match` / `if_none_match` of a write frame, read like the HTTP headers.
fn precondition(fields: &Map<String, Value>) -> Result<Precondition> {
    Precondition::from_tags(text(fields, "if_match")?, text(fields, "if_none_match")?)
}

fn body_of(fields: &Map<String, Value>, key: &str) -> Result<Value> {
    match fields.get(key) {
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(v @ Value::Array(_)) if key == "patch" => Ok(v.clone()),
        _ => Err(Error::invalid(format!(
            "this request needs \"{key}\" (a JSON object{})",
            if key == "patch" {
                " or a JSON Patch array"
            } else {
                ""
            }
        ))),
    }
}

/// Runs one request of `who`; the `result` frame's fields beyond `type` and `req`, with
/// the request's `session` token merged with what it read or wrote.
pub async fn run(
    ops: &Ops,
    who: Who,
    kind: RequestKind,
    fields: &Map<String, Value>,
) -> Result<Value> {
    let session = Arc::new(Session::parse(text(fields, "session")?)?);
    let concern = WriteConcern::parse(text(fields, "write_concern")?)?;
    let ctx = Ctx::new(DEFAULT_TIMEOUT)
        .with(session.clone(), concern)
        .with_idempotency_key(text(fields, "idempotency_key")?)?
        .by(Some(who));
    let mut result = execute(ops, ctx, kind, fields).await?;
    result["session"] = Value::String(session.token());
    Ok(result)
}

async fn execute(
    ops: &Ops,
    ctx: Ctx,
    kind: RequestKind,
    fields: &Map<String, Value>,
) -> Result<Value> {
    let collection = need(fields, "collection")?;
    Ok(match kind {
        RequestKind::Get => {
            let doc = ops
                .get_document(ctx, collection, need(fields, "id")?)
                .await?;
            json!({"status": 200, "document": doc})
        }
        RequestKind::Put => {
            let data = object_of(body_of(fields, "data")?)?;
            let id = text(fields, "id")?;
            let (doc, created) = ops
                .put_or_create(ctx, collection, id, &data, &precondition(fields)?)
                .await?;
            json!({"status": if created { 201 } else { 200 }, "document": doc})
        }
        RequestKind::Patch => {
            let kind = fields.get("patch").map_or(PatchKind::Merge, PatchKind::of);
            let doc = ops
                .patch_document(
                    ctx,
                    collection,
                    need(fields, "id")?,
                    kind,
                    &body_of(fields, "patch")?,
                    &precondition(fields)?,
                )
                .await?;
            json!({"status": 200, "document": doc})
        }
        RequestKind::Delete => {
            ops.delete_document(ctx, collection, need(fields, "id")?, &precondition(fields)?)
                .await?;
            json!({"status": 204})
        }
        RequestKind::Query => {
            let mut q: Map<String, Value> = fields.clone();
            for k in ["type", "req", "collection", "session", "write_concern"] {
                q.remove(k);
            }
            let input = QueryInput::from_value(Value::Object(q))?;
            let page = ops.query(ctx, collection, &input).await?;
            json!({"status": 200, "page": page})
        }
        RequestKind::Count => {
            let filter = fields.get("filter").filter(|f| !f.is_null());
            let count = ops.count(ctx, collection, filter).await?;
            json!({"status": 200, "count": count})
        }
        RequestKind::CreateCollection => {
            let strategy = text(fields, "conflict_strategy")?;
            let (info, created) = ops.put_collection(ctx, collection, strategy).await?;
            json!({"status": if created { 201 } else { 200 }, "collection": info})
        }
    })
}
