//! The gRPC adapter (API.md "gRPC"): `aerolith.v1.Documents` over the operation layer, with
//! server reflection (v1 and v1alpha) and `grpc.health.v1` beside it on the gRPC port.

mod convert;
mod service;
pub mod status;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;

use aerolith_common::{Error, Result};
use aerolith_proto::v1::FILE_DESCRIPTOR_SET;
use aerolith_proto::v1::documents_server::DocumentsServer;

use crate::ops::Ops;
pub use service::DocumentsService;

/// Largest request message: a bulk request of 16 MiB, with room for its framing.
const MAX_REQUEST_BYTES: usize = 20 * 1024 * 1024;
/// Largest response message: a 16 MiB page, with room for its framing.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Serves the gRPC API on `listener` until `stop` resolves.
pub async fn serve(
    listener: TcpListener,
    ops: Ops,
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
    health
        .set_serving::<DocumentsServer<DocumentsService>>()
        .await;
    let documents = DocumentsServer::new(DocumentsService::new(ops))
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(MAX_RESPONSE_BYTES);
    Server::builder()
        .add_service(documents)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stop)
        .await
        .map_err(|e| Error::unavailable(format!("gRPC server failed: {e}")))
}

/// Binds the gRPC port.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Error::unavailable(format!("cannot listen on {addr}: {e}")))
}
