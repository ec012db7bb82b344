//! Admission on the gRPC port as a tower layer: the `authorization` metadata becomes a
//! [`Who`](crate::admission::Who) in the call's extensions, and a method that needs more
//! than the caller's role (Watch and server reflection included), or a caller over its cap
//! of connections or its rate, is answered with UNAUTHENTICATED, PERMISSION_DENIED or
//! RESOURCE_EXHAUSTED before its service sees it. An admitted call then waits for a place in
//! flight within its deadline (`super::in_flight`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::{Request, Response};
use tokio::sync::Semaphore;
use tower::{Layer, Service};

use aerolith_common::auth::bearer;

use crate::admission::{Admission, Who};
use crate::conn::ClientConn;

use super::in_flight;
use super::methods::Method;
use super::status::{CallDeadline, to_status};

/// Wraps the gRPC server's services with [`GrpcAuth`].
#[derive(Debug, Clone)]
pub struct GrpcAuthLayer {
    admission: Arc<Admission>,
    places: Arc<Semaphore>,
}

impl GrpcAuthLayer {
    /// Checks calls with `admission`; admitted ones take their places from `places`.
    pub fn new(admission: Arc<Admission>, places: Arc<Semaphore>) -> GrpcAuthLayer {
        GrpcAuthLayer { admission, places }
    }
}

impl<S> Layer<S> for GrpcAuthLayer {
    type Service = GrpcAuth<S>;

    fn layer(&self, inner: S) -> GrpcAuth<S> {
        GrpcAuth {
            inner,
            admission: self.admission.clone(),
            places: self.places.clone(),
        }
    }
}

/// Refuses calls whose token lacks their method's role or is over its cap of connections
/// or its rate, and runs the others holding a place in flight.
#[derive(Debug, Clone)]
pub struct GrpcAuth<S> {
    inner: S,
    admission: Arc<Admission>,
    places: Arc<Semaphore>,
}

impl<S> GrpcAuth<S> {
    /// The caller of `req` presenting `token`, admitted to a method needing `needed`: its
    /// role checked, its connection held for its token, one request charged.
    fn admit<B>(
        &self,
        req: &Request<B>,
        token: Option<&str>,
        needed: aerolith_common::auth::Role,
    ) -> aerolith_common::Result<Who> {
        let conn = ClientConn::of(req.extensions());
        let peer = conn.and_then(ClientConn::peer);
        let who = self
            .admission
            .identify(token, needed, peer, req.uri().path())?;
        if let Some(conn) = conn {
            conn.hold(&who)?;
        }
        who.charge()?;
        Ok(who)
    }
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

    // Always ready: the inner services are made ready only for calls that pass admission
    // and hold a place in flight.
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
            match self.admit(&req, token, needed) {
                Ok(who) => {
                    req.extensions_mut().insert(who);
                }
                Err(e) => {
                    let answer = to_status(e).into_http::<RB>();
                    return Box::pin(async move { Ok(answer) });
                }
            }
        }
        let by = in_flight::deadline(req.headers());
        // The operation's deadline counts from here, the wait for a place included.
        req.extensions_mut().insert(CallDeadline(by));
        let places = self.places.clone();
        // The clone that was not polled stays; the one taken is made ready for this call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let _place = match in_flight::place(places, by).await {
                Ok(place) => place,
                Err(late) => return Ok(late.into_http::<RB>()),
            };
            tower::ServiceExt::oneshot(inner, req).await
        })
    }
}
