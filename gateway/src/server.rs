//! A running gateway: the HTTP server (REST, GraphQL, WebSocket) and the gRPC server in
//! front of one operation layer.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use aerolith_common::json::Limits;
use aerolith_common::rpc::{RpcClient, TlsMaterial};
use aerolith_common::topology::ClusterConfig;
use aerolith_common::{Error, Result};

use crate::conn::{ClientConn, HttpListener};
use crate::grpc;
use crate::http::Shared;
use crate::ops::Ops;
use crate::router::Router;

/// How long in-flight requests get to finish at shutdown.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Everything a gateway needs to start.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// The deployment.
    pub cluster: ClusterConfig,
    /// The DC this gateway serves.
    pub dc: String,
    /// TCP address of the HTTP server: REST, GraphQL and WebSocket (port 0 picks one).
    pub http_listen: SocketAddr,
    /// TCP address of the gRPC server (port 0 picks one).
    pub grpc_listen: SocketAddr,
    /// Certificate material for the internal RPC.
    pub tls: TlsMaterial,
    /// Frames a WebSocket connection may have queued before its client is a slow consumer.
    pub ws_queue_frames: usize,
    /// How often WebSocket connections are pinged; a client silent for three intervals is
    /// considered dead.
    pub ws_heartbeat: std::time::Duration,
    /// Document body limits.
    pub limits: Limits,
    /// The tokens clients present (API.md "Authentication"); empty: authentication off.
    pub tokens: aerolith_common::auth::Tokens,
    /// Request rate and concurrency limits.
    pub requests: crate::admission::RequestLimits,
    /// TLS on the HTTP and gRPC ports; `None`: plain TCP.
    pub public_tls: Option<aerolith_common::https::PublicTls>,
    /// The replicator admin API (its origin) the web console may call from the browser;
    /// `None`: the console shows no admin view.
    pub console_admin: Option<aerolith_common::origin::Origin>,
}

/// A started gateway.
pub struct Gateway {
    http_addr: SocketAddr,
    grpc_addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    grpc_stop: oneshot::Sender<()>,
    grpc_task: JoinHandle<()>,
    router: Arc<Router>,
}

impl Gateway {
    /// Binds the HTTP and gRPC ports and starts serving.
    pub async fn start(opts: GatewayOptions) -> Result<Gateway> {
        let client = RpcClient::new(&opts.tls)?;
        let router = Arc::new(Router::new(opts.cluster, &opts.dc, client)?);
        // Every DC's map as its nodes hold it, in the background: until it arrives requests
        // go by a guess, and a node the guess sends a shard it does not own refuses it (in a
        // multi-DC cluster a node added since the first map serves nothing before it is in
        // the map: a new store waits for its replicator, which decides only for the map's
        // nodes; `aerolith dev` adds its new nodes before its gateways start).
        let learning = router.clone();
        tokio::spawn(async move { learning.learn_maps().await });
        tokio::spawn(crate::health::probe(router.clone()));
        let ops = Ops::new(router.clone(), opts.limits);
        let admission = Arc::new(crate::admission::Admission::new(opts.tokens, opts.requests));
        let in_flight = Arc::new(tokio::sync::Semaphore::new(
            opts.requests.max_in_flight.max(1),
        ));
        let state = Shared {
            graphql: crate::graphql::schema(ops.clone()),
            ops: ops.clone(),
            metrics: aerolith_common::telemetry::prometheus(),
            ws_queue_frames: opts.ws_queue_frames.max(1),
            ws_heartbeat: opts.ws_heartbeat.max(std::time::Duration::from_millis(100)),
            admission: admission.clone(),
            in_flight: in_flight.clone(),
            openapi: bytes::Bytes::new(),
            console_admin: opts.console_admin.clone(),
        };
        let listener = TcpListener::bind(opts.http_listen).await.map_err(|e| {
            Error::unavailable(format!("cannot listen on {}: {e}", opts.http_listen))
        })?;
        let http_addr = listener.local_addr().map_err(Error::internal)?;
        let grpc_listener = grpc::bind(opts.grpc_listen).await?;
        let grpc_addr = grpc_listener.local_addr().map_err(Error::internal)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = crate::app::router(state);
        let https = opts.public_tls.clone();
        let task = tokio::spawn(async move {
            if let Some(tls) = https {
                let stop = async {
                    let _ = stopped.await;
                };
                // Each connection is a `ClientConn`, as on the plain port below.
                let conn = |peer| ClientConn::new(Some(peer));
                if let Err(e) =
                    aerolith_common::https::serve_https(listener, app, tls, conn, stop).await
                {
                    tracing::error!(error = %e.message, "HTTPS server failed");
                }
                return;
            }
            // Each connection is a `ClientConn` (its peer, the token places it holds), which
            // every request on it finds in its extensions.
            let app = app.into_make_service_with_connect_info::<ClientConn>();
            let serve = axum::serve(HttpListener(listener), app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
        let (grpc_stop, grpc_stopped) = oneshot::channel::<()>();
        let grpc_tls = opts.public_tls.as_ref().map(grpc_tls);
        let grpc_task = tokio::spawn(async move {
            let stop = async {
                let _ = grpc_stopped.await;
            };
            if let Err(e) =
                grpc::serve(grpc_listener, ops, admission, in_flight, grpc_tls, stop).await
            {
                tracing::error!(error = %e.message, "gRPC server failed");
            }
        });
        tracing::info!(dc = %opts.dc, %http_addr, %grpc_addr, "gateway serving");
        Ok(Gateway {
            http_addr,
            grpc_addr,
            stop,
            task,
            grpc_stop,
            grpc_task,
            router,
        })
    }

    /// Readiness: every shard's owner in the DC answers.
    pub async fn ready(&self) -> Result<()> {
        let ops = Ops::new(self.router.clone(), Limits::default());
        ops.ready(crate::ops::Ctx::new(std::time::Duration::from_secs(2)))
            .await
    }

    /// The HTTP address (REST, GraphQL, WebSocket).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Stops accepting, lets in-flight requests finish, and closes RPC connections.
    pub async fn shutdown(self) {
        // Live feeds (WebSocket, gRPC Watch, GraphQL subscriptions) end first, with
        // `unavailable`, so that graceful shutdown does not wait on them.
        self.router.begin_close();
        let _ = self.stop.send(());
        let _ = self.grpc_stop.send(());
        // A client holding a request open must not keep the process from exiting.
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        let (mut http, mut grpc) = (self.task, self.grpc_task);
        let (h, g) = tokio::join!(
            tokio::time::timeout_at(deadline, &mut http),
            tokio::time::timeout_at(deadline, &mut grpc)
        );
        if h.is_err() {
            http.abort();
        }
        if g.is_err() {
            grpc.abort();
        }
        self.router.close();
    }
}

/// tonic's TLS settings for the gRPC port, from the public ports' certificate and key.
fn grpc_tls(tls: &aerolith_common::https::PublicTls) -> tonic::transport::ServerTlsConfig {
    let identity = tonic::transport::Identity::from_pem(tls.cert_pem(), tls.key_pem());
    tonic::transport::ServerTlsConfig::new()
        .identity(identity)
        .timeout(aerolith_common::https::HANDSHAKE_TIMEOUT)
}
