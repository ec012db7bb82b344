//! Admission on the gRPC port as a tower layer: the `authorization` metadata becomes a
//! [`Caller`](aerolith_common::auth::Caller) in the call's extensions, and a method that
//! needs more than the caller's role (Watch and server reflection included), or a caller
//! over its rate, is answered with UNAUTHENTICATED, PERMISSION_DENIED or
//! RESOURCE_EXHAUSTED before its service sees it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::{Request, Response};
use tower::{Layer, Service};

use aerolith_common::auth::bearer;

use crate::admission::Admission;

use super::methods::Method;
use super::status::to_status;

/// Wraps the gRPC server's services with [`GrpcAuth`].
#[derive(Debug, Clone)]
pub struct GrpcAuthLayer {
    admission: Arc<Admission>,
}

impl GrpcAuthLayer {
    /// Checks calls with `admission`.
    pub fn new(admission: Arc<Admission>) -> GrpcAuthLayer {
        GrpcAuthLayer { admission }
    }
}

impl<S> Layer<S> for GrpcAuthLayer {
    type Service = GrpcAuth<S>;

    fn layer(&self, inner: S) -> GrpcAuth<S> {
        GrpcAuth {
            inner,
            admission: self.admission.clone(),
        }
    }
}

/// Refuses calls whose token lacks their method's role or is over its rate.
#[derive(Debug, Clone)]
pub struct GrpcAuth<S> {
    inner: S,
    admission: Arc<Admission>,
}

impl<S, B, RB> Service<Request<B>> for GrpcAuth<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    // Always ready: the inner services (the in-flight limit among them) are made ready only
    // for calls that pass admission, so a refused call never holds a place in flight.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if let Some(needed) = Method::of(req.uri().path()).role() {
            let token = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(bearer);
            match self.admission.admit(token, needed) {
                Ok(caller) => {
                    req.extensions_mut().insert(caller);
                }
                Err(e) => {
                    let answer = to_status(e).into_http::<RB>();
                    return Box::pin(async move { Ok(answer) });
                }
            }
        }
        // The clone that was not polled stays; the one taken is made ready for this call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(tower::ServiceExt::oneshot(inner, req))
    }
}
