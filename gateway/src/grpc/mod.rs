//! The gRPC adapter (API.md "gRPC"): `aerolith.v1.Documents` over the operation layer, with
//! server reflection (v1 and v1alpha) and `grpc.health.v1` beside it on the gRPC port.
//! Metrics, authentication and the oversize rule are tower layers around every service.

mod auth;
mod coalesce;
mod convert;
mod in_flight;
mod methods;
mod metrics;
mod oversize;
mod service;
mod session;
pub mod status;

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::server::HealthReporter;

use aerolith_common::{Error, Result};
use aerolith_proto::v1::FILE_DESCRIPTOR_SET;
use aerolith_proto::v1::documents_server::DocumentsServer;

use crate::ops::{Ctx, Ops};
pub use service::DocumentsService;

/// Largest request message: a bulk request of 16 MiB, with room for its framing.
const MAX_REQUEST_BYTES: usize = 20 * 1024 * 1024;
/// Largest response message: a 16 MiB page, with room for its framing.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Concurrent calls (streams) one HTTP/2 connection may have open.
const MAX_STREAMS_PER_CONNECTION: u32 = 256;
/// HTTP/2 pings find dead clients: one every interval, answered within the timeout.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often `grpc.health.v1` re-checks readiness (every shard's owner answers).
const HEALTH_EVERY: Duration = Duration::from_secs(5);

/// Sets the health service's answer to readiness (`/readyz`): every shard's owner answers.
async fn check_health(ops: &Ops, health: &HealthReporter) {
    use tonic_health::ServingStatus::{NotServing, Serving};
    let status = match ops.ready(Ctx::new(Duration::from_secs(2))).await {
        Ok(()) => Serving,
        Err(_) => NotServing,
    };
    health
        .set_service_status("aerolith.v1.Documents", status)
        .await;
    health.set_service_status("", status).await;
}

/// Keeps the health service's answer equal to readiness until the server stops. Until the
/// first check completes the answer is NOT_SERVING; serving itself never waits for it.
async fn track_health(ops: Ops, health: HealthReporter) {
    use tonic_health::ServingStatus::NotServing;
    health
        .set_service_status("aerolith.v1.Documents", NotServing)
        .await;
    health.set_service_status("", NotServing).await;
    loop {
        check_health(&ops, &health).await;
        tokio::time::sleep(HEALTH_EVERY).await;
    }
}

/// Serves the gRPC API on `listener` until `stop` resolves.
pub async fn serve(
    listener: TcpListener,
    ops: Ops,
    admission: std::sync::Arc<crate::admission::Admission>,
    in_flight: std::sync::Arc<tokio::sync::Semaphore>,
    tls: Option<tonic::transport::ServerTlsConfig>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(Error::internal)?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(Error::internal)?;
    let (health, health_service) = tonic_health::server::health_reporter();
    let health_task = tokio::spawn(track_health(ops.clone(), health));
    let documents = DocumentsServer::new(DocumentsService::new(ops))
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(MAX_RESPONSE_BYTES);
    let mut builder = Server::builder();
    let plain = tls.is_none();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .map_err(|e| Error::invalid(format!("gRPC TLS setup: {e}")))?;
    }
    let served = builder
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .tcp_keepalive(Some(KEEPALIVE_INTERVAL))
        .layer(metrics::GrpcMetricsLayer)
        // Admission, then a place in flight (shared with the HTTP port) within the call's
        // deadline.
        .layer(auth::GrpcAuthLayer::new(admission, in_flight))
        .layer(session::GrpcSessionLayer)
        .layer(tower::util::MapResponseLayer::new(
            oversize::coded::<tonic::body::Body>,
        ))
        .add_service(documents)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        // Without TCP_NODELAY a small response waits for the client's delayed ACK (about
        // 40 ms on Linux): unary calls on one connection crawl. The builder's TCP settings
        // only apply to sockets tonic binds itself, so they are set on the stream here.
        // Each connection is `Coalesced`: an answer leaves in one write, not two (over TLS,
        // whatever is written between two flushes).
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener)
                .with_nodelay(Some(true))
                .with_keepalive(Some(KEEPALIVE_INTERVAL))
                .map(move |conn| conn.map(|c| coalesce::Coalesced::new(c, plain))),
            stop,
        )
        .await;
    health_task.abort();
    served.map_err(|e| Error::unavailable(format!("gRPC server failed: {e}")))
}

/// Binds the gRPC port.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Error::unavailable(format!("cannot listen on {addr}: {e}")))
}
