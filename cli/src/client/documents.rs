//! `collections`, `get`, `put`, `patch` and `delete`.

use std::io::Read;
use std::path::Path;

use aerolith_client::Method;
use serde_json::{Value, json};

use super::Failure;
use super::api::Api;
use super::failure::parse_json_arg;
use super::output::{Output, Printer, cell, table};

/// The document's path.
fn doc_path(collection: &str, id: &str) -> String {
    format!("/v1/collections/{collection}/docs/{id}")
}

/// `If-Match` for a version given on the command line (quoted as an entity tag).
fn if_match(version: Option<&str>) -> Vec<(&'static str, String)> {
    version
        .map(|v| {
            let v = v.trim_matches('"');
            (
                "if-match",
                if v == "*" {
                    v.to_string()
                } else {
                    format!("\"{v}\"")
                },
            )
        })
        .into_iter()
        .collect()
}

fn header_refs<'a>(h: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    h.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A document as a two-column table of its fields.
fn print_doc(out: &Printer, doc: &Value) {
    match out.format(Output::Json) {
        Output::Json => out.pretty(doc),
        Output::Table => {
            let rows = [
                "collection",
                "id",
                "version",
                "updated_at",
                "origin",
                "data",
            ]
            .iter()
            .map(|f| vec![f.to_string(), cell(&doc[*f])])
            .chain(
                doc["conflicts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| vec!["conflict".to_string(), c.to_string()]),
            )
            .collect::<Vec<_>>();
            table(&["FIELD", "VALUE"], &rows);
        }
    }
}

/// `aerolith collections`.
pub async fn collections(api: &Api, out: &Printer) -> Result<(), Failure> {
    let a = api.call(Method::GET, "/v1/collections", None, &[]).await?;
    match out.format(Output::Table) {
        Output::Json => out.pretty(&a.body),
        Output::Table => {
            let rows: Vec<Vec<String>> = a.body["collections"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| vec![cell(&c["name"]), cell(&c["conflict_strategy"])])
                .collect();
            table(&["NAME", "CONFLICT_STRATEGY"], &rows);
        }
    }
    Ok(())
}

/// `aerolith get COLLECTION ID`.
pub async fn get(api: &Api, out: &Printer, collection: &str, id: &str) -> Result<(), Failure> {
    let a = api
        .call(Method::GET, &doc_path(collection, id), None, &[])
        .await?;
    print_doc(out, &a.body);
    Ok(())
}

/// The data of `put`: the argument, the file, or stdin (argument left out or `-`).
pub fn input(arg: Option<&str>, file: Option<&Path>) -> Result<Vec<u8>, Failure> {
    if let Some(f) = file {
        return std::fs::read(f)
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", f.display())));
    }
    match arg {
        Some(text) if text != "-" => Ok(text.as_bytes().to_vec()),
        _ => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| Failure::usage(format!("cannot read stdin: {e}")))?;
            Ok(bytes)
        }
    }
}

/// `aerolith put COLLECTION ID [JSON]`.
pub async fn put(
    api: &Api,
    out: &Printer,
    collection: &str,
    id: &str,
    data: &[u8],
    version: Option<&str>,
) -> Result<(), Failure> {
    let text = std::str::from_utf8(data).map_err(|_| Failure::usage("the data is not UTF-8"))?;
    if !parse_json_arg(text.trim())?.is_object() {
        return Err(Failure::usage("the data must be a JSON object"));
    }
    let headers = if_match(version);
    let a = api
        .call(
            Method::PUT,
            &doc_path(collection, id),
            Some(("application/json", data.to_vec())),
            &header_refs(&headers),
        )
        .await?;
    print_doc(out, &a.body);
    Ok(())
}

/// `aerolith patch COLLECTION ID JSON`.
pub async fn patch(
    api: &Api,
    out: &Printer,
    collection: &str,
    id: &str,
    patch: &str,
    version: Option<&str>,
) -> Result<(), Failure> {
    let content_type = match parse_json_arg(patch)? {
        Value::Object(_) => "application/merge-patch+json",
        Value::Array(_) => "application/json-patch+json",
        _ => {
            return Err(Failure::usage(
                "a patch is a JSON object (merge patch) or array (JSON Patch)",
            ));
        }
    };
    let headers = if_match(version);
    let a = api
        .call(
            Method::PATCH,
            &doc_path(collection, id),
            Some((content_type, patch.as_bytes().to_vec())),
            &header_refs(&headers),
        )
        .await?;
    print_doc(out, &a.body);
    Ok(())
}

/// `aerolith delete COLLECTION ID`.
pub async fn delete(
    api: &Api,
    out: &Printer,
    collection: &str,
    id: &str,
    version: Option<&str>,
) -> Result<(), Failure> {
    let headers = if_match(version);
    api.call(
        Method::DELETE,
        &doc_path(collection, id),
        None,
        &header_refs(&headers),
    )
    .await?;
    match out.format(Output::Table) {
        Output::Json => out.line(&json!({"collection": collection, "id": id, "deleted": true})),
        Output::Table => super::output::emit(&format!("deleted {collection}/{id}")),
    }
    Ok(())
}
