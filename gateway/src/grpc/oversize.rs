//! Gives oversized messages API.md's code. tonic rejects a request over the decoding limit
//! itself, with a bare OUT_OF_RANGE (which clients would read as an expired resume token);
//! [`coded`], mapped over every answer, rewrites that to `payload_too_large`.

use axum::http::Response;

use aerolith_common::{Error, ErrorCode};

use super::MAX_REQUEST_BYTES;
use super::status::to_status;

/// Headers of a trailers-only gRPC answer that carry its status.
const STATUS_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// tonic's own OUT_OF_RANGE answers (ours always start with `resume_token_expired: `).
fn is_tonic_size_error<B>(resp: &Response<B>) -> bool {
    let header = |name| resp.headers().get(name).and_then(|v| v.to_str().ok());
    header("grpc-status") == Some("11")
        && !header("grpc-message").is_some_and(|m| m.starts_with("resume_token_expired:"))
}

/// An answer with tonic's size rejection turned into `payload_too_large`.
pub fn coded<B>(mut resp: Response<B>) -> Response<B> {
    if !is_tonic_size_error(&resp) {
        return resp;
    }
    let status = to_status(Error::new(
        ErrorCode::PayloadTooLarge,
        format!("a gRPC message may hold at most {MAX_REQUEST_BYTES} bytes"),
    ));
    let coded = status.into_http::<()>();
    for name in STATUS_HEADERS {
        match coded.headers().get(name) {
            Some(v) => {
                resp.headers_mut().insert(name, v.clone());
            }
            None => {
                resp.headers_mut().remove(name);
            }
        }
    }
    resp
}
