//! The GraphQL request body: JSON within a limit that leaves room for the query beside a
//! document of the largest size and a patch of it.

use axum::extract::{FromRequest, Request};
use bytes::Bytes;

use aerolith_common::json::Limits;

use crate::http::AppState;
use crate::http::body::json_body;
use crate::http::error::ApiError;

/// A GraphQL request body: JSON like [`JsonBody`], with room for the query beside a
/// document of the largest size.
pub struct GraphqlBody(pub Bytes);

/// Bytes a GraphQL body may hold beyond the document size limit.
const GRAPHQL_EXTRA_BYTES: usize = 64 * 1024;

/// The largest GraphQL request (a body or a WebSocket message): room for a document's
/// data and a patch of it, plus the query text.
pub fn graphql_max_bytes(limits: Limits) -> usize {
    limits.max_bytes * 2 + GRAPHQL_EXTRA_BYTES
}

impl FromRequest<AppState> for GraphqlBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = graphql_max_bytes(state.ops.limits());
        Ok(GraphqlBody(json_body(req, limit).await?))
    }
}
