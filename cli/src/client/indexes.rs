//! `aerolith index create|list|drop`: a collection's secondary indexes.

use aerolith_client::Method;
use serde_json::{Value, json};

use super::Failure;
use super::api::Api;
use super::output::{Output, Printer, cell, emit, table};

fn indexes_path(collection: &str) -> String {
    format!("/v1/collections/{collection}/indexes")
}

/// The index name checked against API.md's rule (so it cannot change the request's path).
pub fn name_arg(name: &str) -> Result<&str, Failure> {
    aerolith_common::name::validate_index(name)
        .map(|()| name)
        .map_err(|e| Failure::usage(e.message))
}

/// `FIELD` or `FIELD:asc` / `FIELD:desc` as an index field.
fn field(spec: &str) -> Result<Value, Failure> {
    let (path, order) = match spec.rsplit_once(':') {
        Some((path, order @ ("asc" | "desc"))) => (path, order),
        Some((_, other)) => {
            return Err(Failure::usage(format!(
                "index field {spec:?}: the order after ':' must be asc or desc, not {other:?}"
            )));
        }
        None => (spec, "asc"),
    };
    Ok(json!({"path": path, "order": order}))
}

/// One line of the `list` table: name, fields, state (with progress while building).
fn row(index: &Value) -> Vec<String> {
    let fields: Vec<String> = index["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| format!("{}:{}", cell(&f["path"]), cell(&f["order"])))
        .collect();
    let state = match index["progress"].as_f64() {
        Some(p) => format!("{} {:.0}%", cell(&index["state"]), p * 100.0),
        None => cell(&index["state"]),
    };
    vec![cell(&index["name"]), fields.join(","), state]
}

/// `aerolith index create COLLECTION NAME FIELD[:asc|desc]...`.
pub async fn create(
    api: &Api,
    out: &Printer,
    collection: &str,
    name: &str,
    fields: &[String],
) -> Result<(), Failure> {
    let fields = fields
        .iter()
        .map(|f| field(f))
        .collect::<Result<Vec<_>, _>>()?;
    let body = serde_json::to_vec(&json!({ "fields": fields }))
        .map_err(|e| Failure::other(e.to_string()))?;
    let a = api
        .call(
            Method::PUT,
            &format!("{}/{name}", indexes_path(collection)),
            Some(("application/json", body)),
            &[],
        )
        .await?;
    match out.format(Output::Json) {
        Output::Json => out.pretty(&a.body),
        Output::Table => table(&["NAME", "FIELDS", "STATE"], &[row(&a.body)]),
    }
    Ok(())
}

/// `aerolith index list COLLECTION`.
pub async fn list(api: &Api, out: &Printer, collection: &str) -> Result<(), Failure> {
    let a = api
        .call(Method::GET, &indexes_path(collection), None, &[])
        .await?;
    match out.format(Output::Table) {
        Output::Json => out.pretty(&a.body),
        Output::Table => {
            let rows: Vec<Vec<String>> = a.body["indexes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(row)
                .collect();
            table(&["NAME", "FIELDS", "STATE"], &rows);
        }
    }
    Ok(())
}

/// `aerolith index drop COLLECTION NAME`.
pub async fn drop(api: &Api, collection: &str, name: &str) -> Result<(), Failure> {
    api.call(
        Method::DELETE,
        &format!("{}/{name}", indexes_path(collection)),
        None,
        &[],
    )
    .await?;
    emit(&format!("dropped index {collection}/{name}"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_specs() {
        assert_eq!(
            field("age").unwrap(),
            json!({"path": "age", "order": "asc"})
        );
        assert_eq!(
            field("a.b:desc").unwrap(),
            json!({"path": "a.b", "order": "desc"})
        );
        assert!(field("a:up").is_err());
        assert_eq!(
            row(
                &json!({"name": "i", "fields": [{"path": "a", "order": "asc"}], "state": "building", "progress": 0.5})
            ),
            vec![
                "i".to_string(),
                "a:asc".to_string(),
                "building 50%".to_string()
            ]
        );
    }
}
