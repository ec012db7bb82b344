//! A running gateway: the HTTP server in front of the operation layer.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use aerolith_common::json::Limits;
use aerolith_common::rpc::{RpcClient, TlsMaterial};
use aerolith_common::topology::ClusterConfig;
use aerolith_common::{Error, Result};

use crate::metrics::prometheus;
use crate::ops::Ops;
use crate::rest::{self, AppState};
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
    /// TCP address of the REST server (port 0 picks one).
    pub http_listen: SocketAddr,
    /// Certificate material for the internal RPC.
    pub tls: TlsMaterial,
    /// Frames a WebSocket connection may have queued before its client is a slow consumer.
    pub ws_queue_frames: usize,
    /// How often WebSocket connections are pinged; a client silent for three intervals is
    /// considered dead.
    pub ws_heartbeat: std::time::Duration,
    /// Document body limits.
    pub limits: Limits,
}

/// A started gateway.
pub struct Gateway {
    http_addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    router: Arc<Router>,
}

impl Gateway {
    /// Binds the HTTP port and starts serving.
    pub async fn start(opts: GatewayOptions) -> Result<Gateway> {
        let client = RpcClient::new(&opts.tls)?;
        let router = Arc::new(Router::new(opts.cluster, &opts.dc, client)?);
        let state = AppState {
            ops: Ops::new(router.clone(), opts.limits),
            metrics: prometheus(),
            ws_queue_frames: opts.ws_queue_frames.max(1),
            ws_heartbeat: opts.ws_heartbeat.max(std::time::Duration::from_millis(100)),
        };
        let listener = TcpListener::bind(opts.http_listen).await.map_err(|e| {
            Error::unavailable(format!("cannot listen on {}: {e}", opts.http_listen))
        })?;
        let http_addr = listener.local_addr().map_err(Error::internal)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = rest::router(state);
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
        tracing::info!(dc = %opts.dc, %http_addr, "gateway serving REST");
        Ok(Gateway {
            http_addr,
            stop,
            task,
            router,
        })
    }

    /// Readiness: every shard's owner in the DC answers.
    pub async fn ready(&self) -> Result<()> {
        let ops = Ops::new(self.router.clone(), Limits::default());
        ops.ready(crate::ops::Ctx::new(std::time::Duration::from_secs(2)))
            .await
    }

    /// The REST address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Stops accepting, lets in-flight requests finish, and closes RPC connections.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        // A client holding a request open must not keep the process from exiting.
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
        self.router.close();
    }
}
