//! gRPC request metrics as a tower layer, with the same series as REST's
//! (`aerolith_requests_total`, `aerolith_request_duration_seconds`) under `protocol="grpc"`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http::{Request, Response};
use tower::{Layer, Service};

use aerolith_common::ErrorCode;

fn op_label(path: &str) -> &'static str {
    super::methods::Method::of(path).label()
}

/// The API code of an answer: errors are trailers-only responses whose `grpc-message`
/// starts with `<code>: `; anything else is `ok` (a stream's final status is not seen here).
fn code_label<B>(resp: &Response<B>) -> &'static str {
    let message = resp
        .headers()
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match message.split_once(':') {
        Some((code, _)) => ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == code)
            .map_or("other", ErrorCode::as_str),
        None if resp.headers().contains_key("grpc-status") => "other",
        None => "ok",
    }
}

/// Wraps the gRPC server's services with [`GrpcMetrics`].
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics { inner }
    }
}

/// Counts gRPC calls and records their latency by method and code.
#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for GrpcMetrics<S>
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
        let op = op_label(req.uri().path());
        let started = Instant::now();
        let answer = self.inner.call(req);
        Box::pin(async move {
            let resp = answer.await;
            let code = match &resp {
                Ok(r) => code_label(r),
                Err(_) => "internal",
            };
            let labels = [("protocol", "grpc"), ("op", op), ("code", code)];
            metrics::counter!("aerolith_requests_total", &labels).increment(1);
            metrics::histogram!("aerolith_request_duration_seconds", &labels)
                .record(started.elapsed().as_secs_f64());
            resp
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(
            op_label("/aerolith.v1.Documents/GetDocument"),
            "GetDocument"
        );
        assert_eq!(op_label("/aerolith.v1.Documents/Nope"), "unknown");
        assert_eq!(op_label("/x.y/Z"), "unknown");
        assert_eq!(op_label("/grpc.health.v1.Health/Check"), "health");
        let resp = Response::builder()
            .header("grpc-status", "5")
            .header("grpc-message", "not_found: document c/x not found")
            .body(())
            .unwrap();
        assert_eq!(code_label(&resp), "not_found");
        let ok = Response::builder().body(()).unwrap();
        assert_eq!(code_label(&ok), "ok");
    }
}
