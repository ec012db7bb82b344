//! A tower layer that gives oversized messages API.md's code. tonic rejects a request over
//! the decoding limit itself, with a bare OUT_OF_RANGE (which clients would read as an
//! expired resume token); this rewrites that answer to `payload_too_large`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::{Request, Response};
use tower::{Layer, Service};

use aerolith_common::{Error, ErrorCode};

use super::status::to_status;

/// Headers of a trailers-only gRPC answer that carry its status.
const STATUS_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// tonic's own OUT_OF_RANGE answers (ours always start with `resume_token_expired: `).
fn is_tonic_size_error<B>(resp: &Response<B>) -> bool {
    let header = |name| resp.headers().get(name).and_then(|v| v.to_str().ok());
    header("grpc-status") == Some("11")
        && !header("grpc-message").is_some_and(|m| m.starts_with("resume_token_expired:"))
}

fn rewrite<B>(resp: &mut Response<B>, limit: usize) {
    let status = to_status(Error::new(
        ErrorCode::PayloadTooLarge,
        format!("a gRPC message may hold at most {limit} bytes"),
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
}

/// Wraps the gRPC services with [`Oversize`].
#[derive(Debug, Clone, Copy)]
pub struct OversizeLayer {
    /// The decoding limit tonic enforces, for the message.
    pub limit: usize,
}

impl<S> Layer<S> for OversizeLayer {
    type Service = Oversize<S>;

    fn layer(&self, inner: S) -> Oversize<S> {
        Oversize {
            inner,
            limit: self.limit,
        }
    }
}

/// Answers tonic's size rejections with `payload_too_large`.
#[derive(Debug, Clone)]
pub struct Oversize<S> {
    inner: S,
    limit: usize,
}

impl<S, B, RB> Service<Request<B>> for Oversize<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let limit = self.limit;
        let answer = self.inner.call(req);
        Box::pin(async move {
            let mut resp = answer.await?;
            if is_tonic_size_error(&resp) {
                rewrite(&mut resp, limit);
            }
            Ok(resp)
        })
    }
}
