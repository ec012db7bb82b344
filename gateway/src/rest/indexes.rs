//! REST handlers for `/v1/collections/{c}/indexes`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use aerolith_common::json::parse_value;
use aerolith_common::{Error, pb};

use super::extract::{JsonBody, PathParams};
use crate::http::AppState;
use crate::http::context::RequestCtx;
use crate::http::error::ApiError;

/// Reads `{"fields": [{"path": "age", "order": "asc"|"desc"}, …]}` strictly.
fn fields_from_body(body: &[u8]) -> Result<Vec<pb::IndexField>, Error> {
    let Value::Object(map) = parse_value(body, 8)? else {
        return Err(Error::invalid("an index definition must be a JSON object"));
    };
    let mut fields = None;
    for (k, v) in map {
        match (k.as_str(), v) {
            ("fields", Value::Array(items)) => {
                fields = Some(
                    items
                        .into_iter()
                        .map(field)
                        .collect::<Result<Vec<_>, _>>()?,
                )
            }
            ("fields", _) => return Err(Error::invalid("fields must be an array")),
            (other, _) => {
                return Err(Error::invalid(format!(
                    "unknown index definition key {other:?}"
                )));
            }
        }
    }
    fields.ok_or_else(|| Error::invalid("an index definition needs fields"))
}

fn field(v: Value) -> Result<pb::IndexField, Error> {
    let Value::Object(map) = v else {
        return Err(Error::invalid(
            "each index field must be an object {\"path\", \"order\"?}",
        ));
    };
    let (mut path, mut order) = (None, None);
    for (k, v) in map {
        match (k.as_str(), v) {
            ("path", Value::String(p)) => path = Some(p),
            ("order", Value::String(o)) => order = Some(o),
            ("path", _) => return Err(Error::invalid("an index field's path must be a string")),
            ("order", _) => {
                return Err(Error::invalid(
                    "an index field's order must be \"asc\" or \"desc\"",
                ));
            }
            (other, _) => return Err(Error::invalid(format!("unknown index field key {other:?}"))),
        }
    }
    let path = path.ok_or_else(|| Error::invalid("an index field needs a path"))?;
    crate::ops::index_field(path, order.as_deref())
}

/// `PUT /v1/collections/{c}/indexes/{name}`: 202 building, 200 unchanged.
pub async fn put(
    State(s): State<AppState>,
    RequestCtx(ctx): RequestCtx,
    PathParams((c, name)): PathParams<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let fields = fields_from_body(&body)?;
    let (info, created) = s.ops.put_index(ctx, &c, &name, fields).await?;
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(info)).into_response())
}

/// `GET /v1/collections/{c}/indexes`.
pub async fn list(
    State(s): State<AppState>,
    RequestCtx(ctx): RequestCtx,
    PathParams(c): PathParams<String>,
) -> Result<Response, ApiError> {
    let indexes = s.ops.list_indexes(ctx, &c).await?;
    Ok(Json(json!({ "indexes": indexes })).into_response())
}

/// `DELETE /v1/collections/{c}/indexes/{name}`: 204.
pub async fn delete(
    State(s): State<AppState>,
    RequestCtx(ctx): RequestCtx,
    PathParams((c, name)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    s.ops.drop_index(ctx, &c, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_parse_strictly() {
        let f = fields_from_body(br#"{"fields":[{"path":"age"},{"path":"a.b","order":"desc"}]}"#)
            .unwrap();
        assert_eq!(
            f,
            vec![
                pb::IndexField {
                    path: "age".into(),
                    desc: false
                },
                pb::IndexField {
                    path: "a.b".into(),
                    desc: true
                }
            ]
        );
        for bad in [
            &br#"[]"#[..],
            br#"{}"#,
            br#"{"fields":{}}"#,
            br#"{"fields":[{"path":"a","order":"up"}]}"#,
            br#"{"fields":[{"path":1}]}"#,
            br#"{"fields":[{"order":"asc"}]}"#,
            br#"{"fields":[{"path":"a","x":1}]}"#,
            br#"{"fields":[],"unique":true}"#,
        ] {
            assert!(
                fields_from_body(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
