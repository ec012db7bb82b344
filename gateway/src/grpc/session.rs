//! Session tokens over gRPC as a tower layer: every call gets an empty slot in its
//! extensions, the method's context fills it with the session it parsed from
//! `x-aerolith-session`, and the answer's metadata carries the token the call ended with
//! (error answers too: they are trailers-only responses, whose headers are the metadata).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::http::{HeaderValue, Request, Response};
use tower::{Layer, Service};

use crate::ops::Session;

/// The metadata key of session tokens, both ways.
pub const SESSION_KEY: &str = "x-aerolith-session";

/// Where a call's method leaves its session for the layer to answer with.
#[derive(Debug, Clone, Default)]
pub struct SessionSlot(Arc<Mutex<Option<Arc<Session>>>>);

impl SessionSlot {
    /// Records the call's session.
    pub fn fill(&self, session: Arc<Session>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(session);
    }

    fn token(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|s| s.token())
    }
}

/// Wraps the gRPC server's services with [`GrpcSession`].
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcSessionLayer;

impl<S> Layer<S> for GrpcSessionLayer {
    type Service = GrpcSession<S>;

    fn layer(&self, inner: S) -> GrpcSession<S> {
        GrpcSession { inner }
    }
}

/// Hands each call's session token back in its response metadata.
#[derive(Debug, Clone)]
pub struct GrpcSession<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for GrpcSession<S>
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

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let slot = SessionSlot::default();
        req.extensions_mut().insert(slot.clone());
        let answer = self.inner.call(req);
        Box::pin(async move {
            let mut resp = answer.await?;
            if let Some(v) = slot.token().and_then(|t| HeaderValue::from_str(&t).ok()) {
                resp.headers_mut().insert(SESSION_KEY, v);
            }
            Ok(resp)
        })
    }
}
