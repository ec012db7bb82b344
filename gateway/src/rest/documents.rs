//! REST handlers for documents: `/v1/collections/{c}/docs[/{id}]`.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header::{ETAG, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use aerolith_common::Error;
use aerolith_common::document::Document;

use super::extract::{BulkBody, DataBody, PatchBody, PathParams, not_modified, write_precondition};
use crate::http::AppState;
use crate::http::context::RequestCtx;
use crate::http::error::ApiError;
use crate::ops::parse_limit;

fn etag(version: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(&format!("\"{version}\"")).map_err(Error::internal)
}

fn with_doc(status: StatusCode, doc: Document) -> Result<Response, ApiError> {
    let tag = etag(&doc.version)?;
    let mut resp = (status, Json(doc)).into_response();
    resp.headers_mut().insert(ETAG, tag);
    Ok(resp)
}

/// `GET /v1/collections/{c}/docs/{id}` (304 when `If-None-Match` matches).
pub async fn get(
    State(s): State<AppState>,
    RequestCtx(ctx): RequestCtx,
    PathParams((c, id)): PathParams<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let doc = s.ops.get_document(ctx, &c, &id).await?;
    if not_modified(&headers, &doc.version)? {
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        resp.headers_mut().insert(ETAG, etag(&doc.version)?);
        return Ok(resp);
    }
    with_doc(StatusCode::OK, doc)
}

/// `PUT /v1/collections/{c}/docs/{id}`: 201 created, 200 replaced.
pub async fn put(
    State(s): State<AppState>,
    RequestCtx(ctx): RequestCtx,
    PathParams((c, id)): PathParams<(String, String)>,
    headers: HeaderMap,
    DataBody(data): DataBody,
) -> Result<Response, ApiError> {
    let pre = write_precondition(&headers)?;
    let (doc, created) = s.ops.put_document(ctx, &c, &id, &data, &pre).await?;
    with_doc(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        doc,
    )
}

/// `POST /v1/collections/{c}/docs`: 201 with a generated id and `Location`.
pub async fn create(
    State(s): State<AppState>,
    RequestCtx(ctx): RequestCtx,
    PathParams(c): PathParams<String>,
    DataBody(data): DataBody,
) -> Result<Response, ApiError> {
    let doc = s.ops.create_document(ctx, &c, &data).await?;
    let location = HeaderValue::from_str(&format!(
        "/v1/collections/{}/docs/{}",
        doc.collection, doc.id
    ))
    .map_err(Error::internal)?;
    let mut resp = with_doc(StatusCode::CREATED, doc)?;
    resp.headers_mut().insert(LOCATION, location);
    Ok(resp)
}

/// `PATCH /v1/collections/{c}/docs/{id}`.
pub async fn patch(
    State(s): State<AppState>,
    RequestCtx(ctx): RequestCtx,
    PathParams((c, id)): PathParams<(String, String)>,
    headers: HeaderMap,
    PatchBody(kind, patch): PatchBody,
) -> Result<Response, ApiError> {
    let pre = write_precondition(&headers)?;
    let doc = s
        .ops
        .patch_document(ctx, &c, &id, kind, &patch, &pre)
        .await?;
    with_doc(StatusCode::OK, doc)
}

/// `DELETE /v1/collections/{c}/docs/{id}`: 204.
pub async fn delete(
    State(s): State<AppState>,
    RequestCtx(ctx): RequestCtx,
    PathParams((c, id)): PathParams<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let pre = write_precondition(&headers)?;
    s.ops.delete_document(ctx, &c, &id, &pre).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Query string of a listing.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /v1/collections/{c}/docs?limit=&cursor=`.
pub async fn list(
    State(s): State<AppState>,
    RequestCtx(ctx): RequestCtx,
    PathParams(c): PathParams<String>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| Error::invalid(e.body_text()))?;
    let limit = parse_limit(params.limit.as_deref())?;
    let page = s
        .ops
        .list_documents(ctx, &c, limit, params.cursor.as_deref())
        .await?;
    Ok(Json(page).into_response())
}

/// `POST /v1/collections/{c}/bulk`: per-op results in op order.
pub async fn bulk(
    State(s): State<AppState>,
    RequestCtx(ctx): RequestCtx,
    PathParams(c): PathParams<String>,
    BulkBody(body): BulkBody,
) -> Result<Response, ApiError> {
    let ops = super::bulk::parse(&body, s.ops.limits())?;
    let results = s.ops.bulk(ctx, &c, ops).await?;
    Ok(Json(serde_json::json!({ "results": results })).into_response())
}
