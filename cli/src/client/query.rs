//! `aerolith query COLLECTION FILTER`: follows the query's pages.

use aerolith_client::Method;
use serde_json::{Map, Value, json};

use super::Failure;
use super::api::Api;
use super::failure::parse_json_arg;
use super::output::{Output, Printer, cell, table};

/// A query's body without its page fields.
#[derive(Debug, Clone)]
pub struct Query {
    body: Map<String, Value>,
}

impl Query {
    /// A query from the command line's filter, `--sort` keys and `--projection` paths.
    pub fn new(filter: &str, sort: &[String], projection: &[String]) -> Result<Query, Failure> {
        let filter = parse_json_arg(filter)?;
        if !filter.is_object() {
            return Err(Failure::usage("the filter must be a JSON object"));
        }
        let mut body = Map::new();
        body.insert("filter".into(), filter);
        if !sort.is_empty() {
            let keys = sort
                .iter()
                .map(|s| match s.rsplit_once(':') {
                    Some((field, order @ ("asc" | "desc"))) => {
                        json!({"field": field, "order": order})
                    }
                    _ => json!({"field": s, "order": "asc"}),
                })
                .collect();
            body.insert("sort".into(), Value::Array(keys));
        }
        if !projection.is_empty() {
            body.insert("projection".into(), json!(projection));
        }
        Ok(Query { body })
    }
}

/// Runs the query page by page, printing documents as they come.
pub async fn run(
    api: &Api,
    out: &Printer,
    collection: &str,
    query: Query,
    limit: Option<u64>,
) -> Result<(), Failure> {
    let format = out.format(Output::Json);
    let mut printed = 0u64;
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut body = query.body.clone();
        let want = limit.map_or(1000, |l| (l - printed).clamp(1, 1000));
        body.insert("limit".into(), json!(want));
        if let Some(c) = &cursor {
            body.insert("cursor".into(), json!(c));
        }
        let bytes = serde_json::to_vec(&body).map_err(|e| Failure::other(e.to_string()))?;
        let a = api
            .call(
                Method::POST,
                &format!("/v1/collections/{collection}/query"),
                Some(("application/json", bytes)),
                &[],
            )
            .await?;
        for doc in a.body["documents"].as_array().into_iter().flatten() {
            if limit.is_some_and(|l| printed >= l) {
                break;
            }
            printed += 1;
            match format {
                Output::Json => out.line(doc),
                Output::Table => rows.push(vec![
                    cell(&doc["id"]),
                    cell(&doc["version"]),
                    cell(&doc["data"]),
                ]),
            }
        }
        cursor = a.body["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() || limit.is_some_and(|l| printed >= l) {
            break;
        }
    }
    if format == Output::Table {
        table(&["ID", "VERSION", "DATA"], &rows);
    }
    Ok(())
}
