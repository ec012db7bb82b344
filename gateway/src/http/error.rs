//! Rendering errors as API.md's REST error body: `{"error": {"code", "message"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use aerolith_common::{Error, ErrorCode};

/// An error on its way to a REST client.
#[derive(Debug)]
pub struct ApiError {
    /// The error.
    pub error: Error,
    /// A status other than the code's own (only 405 for wrong methods).
    pub status: Option<StatusCode>,
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError {
            error,
            status: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status.unwrap_or_else(|| {
            StatusCode::from_u16(self.error.code.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        });
        let body =
            json!({"error": {"code": self.error.code.as_str(), "message": self.error.message}});
        let mut resp = (status, axum::Json(body)).into_response();
        // Read by the metrics layer to label the request.
        resp.extensions_mut().insert(self.error.code);
        resp
    }
}

/// Unknown routes: 404 `not_found`.
pub async fn not_found() -> ApiError {
    Error::not_found("no such route").into()
}

/// Known routes with a wrong method: 405 `invalid_argument`.
pub async fn method_not_allowed() -> ApiError {
    ApiError {
        error: Error::new(
            ErrorCode::InvalidArgument,
            "method not allowed on this route",
        ),
        status: Some(StatusCode::METHOD_NOT_ALLOWED),
    }
}
