//! The replicator admin HTTP API (API.md "Replicator admin"): status and lag per peer,
//! recent conflicts, pausing and resuming a peer, per-shard content digests, anti-entropy,
//! backups, health and metrics. Errors use the REST error body.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::{Value, json};

use aerolith_common::audit;
use aerolith_common::auth::{Role, Tokens, bearer};
use aerolith_common::https::{PublicTls, serve_https};
use aerolith_common::refusal::after_body;
use aerolith_common::rpc::RpcClient;
use aerolith_common::shard_map::ShardMaps;
use aerolith_common::topology::DcConfig;
use aerolith_common::{Error, ErrorCode, Result, pb};

use crate::failover::DcStates;
use crate::shipper::PeerLink;
use crate::stats::Stats;

/// What the admin handlers read.
#[derive(Clone)]
pub struct AdminState {
    /// The local DC.
    pub local: DcConfig,
    /// Shards of the cluster.
    pub shards: u16,
    /// Links to the peers this DC ships to.
    pub links: Vec<Arc<PeerLink>>,
    /// What was received from peers.
    pub stats: Arc<Stats>,
    /// RPC client for the local nodes.
    pub client: Arc<RpcClient>,
    /// Prometheus renderer.
    pub metrics: PrometheusHandle,
    /// Every DC of the cluster.
    pub dcs: Vec<String>,
    /// DCs marked out of service.
    pub states: Arc<DcStates>,
    /// Peer DCs and their replicators' RPC addresses.
    pub peers: Vec<(String, String)>,
    /// Tokens; with any configured, every `/admin` route needs the `admin` role.
    pub tokens: Arc<Tokens>,
    /// Every other DC, with its nodes (anti-entropy reads their stores).
    pub peer_dcs: Vec<DcConfig>,
    /// Records an anti-entropy pass may scan a second.
    pub resync_rate: u64,
    /// Every DC's shard map (the local one kept by this replicator).
    pub maps: Arc<ShardMaps>,
    /// The DC's shard moves.
    pub mover: Arc<crate::moves::Mover>,
    /// The web consoles whose pages may call this API (`--console-origin`).
    pub console_origins: crate::admin_cors::ConsoleOrigins,
}

/// An error as the REST error body.
pub(crate) struct AdminError(pub(crate) Error);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({"error": {"code": self.0.code.as_str(), "message": self.0.message}});
        (status, Json(body)).into_response()
    }
}

impl From<Error> for AdminError {
    fn from(e: Error) -> Self {
        AdminError(e)
    }
}

/// What an admin handler answers.
pub(crate) type Answer = std::result::Result<Json<Value>, AdminError>;

/// The admin router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/admin/status", get(status))
        .route("/admin/conflicts", get(conflicts))
        .route("/admin/digests", get(digests))
        .route(
            "/admin/nodes",
            get(crate::admin_nodes::nodes).post(crate::admin_nodes::add),
        )
        .route(
            "/admin/nodes/{id}/decommission",
            post(crate::admin_nodes::decommission),
        )
        .route("/admin/rebalance", post(crate::admin_nodes::rebalance))
        .route("/admin/moves", get(crate::admin_nodes::moves))
        .route("/admin/peers/{dc}/pause", post(pause))
        .route("/admin/peers/{dc}/resume", post(resume))
        .route("/admin/resync", post(resync))
        .route("/admin/backup", post(backup))
        .route("/admin/failover", post(failover))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .fallback(|| async { AdminError(Error::not_found("no such route")) })
        .method_not_allowed_fallback(|| async {
            let mut r =
                AdminError(Error::invalid("method not allowed on this route")).into_response();
            *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            r
        })
        .layer(axum::middleware::from_fn_with_state(
            state.tokens.clone(),
            authenticate,
        ))
        // Outermost: a foreign page is refused, and a console's preflight answered, before
        // authentication (a preflight carries no token).
        .layer(axum::middleware::from_fn_with_state(
            state.console_origins.clone(),
            crate::admin_cors::console_origins,
        ))
        .with_state(state)
}

/// Middleware: `/healthz` and `/metrics` are open; everything else needs an `admin` token
/// once tokens are configured (API.md "Authentication"). It also keeps the audit trail:
/// every refused request, and every admin action (a `POST`) with its outcome.
async fn authenticate(
    State(tokens): State<Arc<Tokens>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if matches!(req.uri().path(), "/healthz" | "/metrics") {
        return next.run(req).await;
    }
    let token = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(bearer);
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let path = req.uri().path().to_string();
    // The route's pattern names the action (bounded, for the metric's label).
    let action = format!(
        "{} {}",
        req.method(),
        req.extensions()
            .get::<axum::extract::MatchedPath>()
            .map_or("(no route)", |m| m.as_str())
    );
    let audit = |role, token_id: &str, outcome, reason: &str| {
        audit::record(&audit::Event {
            process: "replicator",
            action: &action,
            target: &path,
            role,
            token_id,
            peer,
            outcome,
            reason,
        })
    };
    let caller = match tokens.caller(token) {
        Ok(c) => c,
        Err(e) => {
            audit(None, "-", audit::Outcome::Unauthenticated, e.code.as_str());
            return after_body(req, refusal(e)).await;
        }
    };
    if let Err(e) = caller.require(Role::Admin) {
        let id = tokens.id_of(&caller);
        audit(
            Some(caller.role),
            id,
            audit::Outcome::Denied,
            e.code.as_str(),
        );
        return after_body(req, refusal(e)).await;
    }
    let mutates = req.method() == axum::http::Method::POST;
    let resp = next.run(req).await;
    if mutates {
        let status = resp.status();
        let outcome = if status.is_success() {
            audit::Outcome::Done
        } else {
            audit::Outcome::Failed
        };
        audit(
            Some(caller.role),
            tokens.id_of(&caller),
            outcome,
            status.as_str(),
        );
    }
    resp
}

/// The answer to a refused request: its error body, with `WWW-Authenticate: Bearer` when
/// credentials are missing or unknown (RFC 9110 section 11.6.1).
fn refusal(e: Error) -> Response {
    let unauthenticated = e.code == ErrorCode::Unauthenticated;
    let mut resp = AdminError(e).into_response();
    if unauthenticated {
        resp.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
    }
    resp
}

/// Serves the admin API on `listener` until the task is aborted, over TLS when `tls` is
/// given (the admin token then never crosses the network in clear).
pub async fn serve(listener: tokio::net::TcpListener, state: AdminState, tls: Option<PublicTls>) {
    let app = router(state);
    let served = match tls {
        Some(tls) => serve_https(listener, app, tls, |peer| peer, std::future::pending()).await,
        None => axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .map_err(Error::internal),
    };
    if let Err(e) = served {
        tracing::error!(error = %e, "admin server failed");
    }
}

/// Binds the admin port.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::unavailable(format!("cannot listen on {addr}: {e}")))
}

async fn metrics(State(s): State<AdminState>) -> String {
    s.metrics.render()
}

/// `?indexes=true` of `GET /admin/digests`.
#[derive(Debug, Deserialize)]
struct DigestParams {
    indexes: Option<bool>,
}

/// `GET /admin/digests`: every shard's content digest, read from its owner in this DC. Two
/// DCs with equal digests for a shard hold byte-identical records for it. With
/// `?indexes=true` each shard also says how many of its built secondary-index entries
/// disagree with its documents (`index_mismatches`, 0 when exact).
async fn digests(State(s): State<AdminState>, Query(q): Query<DigestParams>) -> Answer {
    let check_indexes = q.indexes.unwrap_or(false);
    let mut shards = Vec::new();
    for node in s.maps.nodes(&s.local.id) {
        let req = pb::DigestRequest {
            shards: node.shards.iter().map(|s| u32::from(*s)).collect(),
            ranges: 0,
            check_indexes,
        };
        let d = s
            .client
            .node()
            .digest(&node.rpc, req, Duration::from_secs(60))
            .await?;
        shards.extend(d.shards);
    }
    shards.sort_by_key(|d| d.shard);
    let shards: Vec<Value> = shards
        .iter()
        .map(|d| {
            let mut v = json!({"shard": d.shard, "records": d.records, "digest": hex(&d.digest)});
            if check_indexes {
                v["index_mismatches"] = json!(d.index_mismatches);
            }
            v
        })
        .collect();
    Ok(Json(json!({"dc": s.local.id, "shards": shards})))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `GET /admin/status`: every peer's state and lag.
async fn status(State(s): State<AdminState>) -> Answer {
    let peers = crate::lag::peer_status(&s).await?;
    Ok(Json(json!({"dc": s.local.id, "peers": peers})))
}

/// `?collection=&limit=` of `GET /admin/conflicts`.
#[derive(Debug, Deserialize)]
struct ConflictParams {
    collection: Option<String>,
    limit: Option<String>,
}

async fn conflicts(State(s): State<AdminState>, Query(q): Query<ConflictParams>) -> Answer {
    let limit = match q.limit.as_deref() {
        None => 100,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(Error::invalid(format!(
                    "limit must be an integer from 1 to 1000, got {l:?}"
                ))
                .into());
            }
        },
    };
    let list = s
        .stats
        .conflicts(q.collection.as_deref().filter(|c| !c.is_empty()), limit);
    Ok(Json(json!({"conflicts": list})))
}

fn link<'a>(s: &'a AdminState, dc: &str) -> std::result::Result<&'a Arc<PeerLink>, AdminError> {
    s.links
        .iter()
        .find(|l| l.peer.dc == dc)
        .ok_or_else(|| AdminError(Error::not_found(format!("no peer DC {dc}"))))
}

async fn pause(State(s): State<AdminState>, Path(dc): Path<String>) -> Answer {
    link(&s, &dc)?.paused.store(true, Ordering::Relaxed);
    Ok(Json(json!({"dc": dc, "state": "paused"})))
}

async fn resume(State(s): State<AdminState>, Path(dc): Path<String>) -> Answer {
    let l = link(&s, &dc)?;
    l.paused.store(false, Ordering::Relaxed);
    let state = if l.connected.load(Ordering::Relaxed) {
        "connected"
    } else {
        "disconnected"
    };
    Ok(Json(json!({"dc": dc, "state": state})))
}

/// `POST /admin/backup` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupBody {
    dir: String,
}

/// `POST /admin/backup {"dir"}`: see [`crate::backup`].
async fn backup(State(s): State<AdminState>, body: axum::body::Bytes) -> Answer {
    let body: BackupBody = serde_json::from_slice(&body)
        .map_err(|e| Error::invalid(format!("bad backup request: {e}")))?;
    let nodes = s.maps.nodes(&s.local.id);
    let done = crate::backup::backup(&s.client, &nodes, std::path::Path::new(&body.dir)).await?;
    let nodes: Vec<Value> = done
        .iter()
        .map(|(node, b)| {
            json!({
                "node": node,
                "dir": b.dir,
                "records_estimate": b.records,
                "heads": b.heads.iter().filter(|h| h.seq > 0).count(),
                "watermarks": b.watermarks.len(),
            })
        })
        .collect();
    Ok(Json(json!({"dc": s.local.id, "nodes": nodes})))
}

/// `POST /admin/resync` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResyncBody {
    peer: String,
    collection: Option<String>,
}

/// Compares this DC with a peer and repairs what differs (anti-entropy); answers the
/// pass's summary.
async fn resync(State(s): State<AdminState>, body: axum::body::Bytes) -> Answer {
    let body: ResyncBody = serde_json::from_slice(&body).map_err(|e| {
        Error::invalid(format!(
            "expected {{\"peer\": \"<dc>\", \"collection\"?: \"<name>\"}}: {e}"
        ))
    })?;
    if let Some(c) = &body.collection {
        aerolith_common::name::validate_collection(c)?;
    }
    if body.peer == s.local.id {
        return Err(Error::invalid("a DC is not resynced with itself").into());
    }
    let peer = s
        .peer_dcs
        .iter()
        .find(|d| d.id == body.peer)
        .ok_or_else(|| Error::not_found(format!("no DC {} in this cluster", body.peer)))?;
    let sum = crate::resync::resync(
        &s.client,
        &s.maps,
        &s.local,
        peer,
        s.shards,
        body.collection.as_deref(),
        s.resync_rate,
    )
    .await?;
    Ok(Json(serde_json::to_value(sum).map_err(Error::internal)?))
}

/// `POST /admin/failover` body.
#[derive(Deserialize)]
struct FailoverBody {
    dc: String,
    state: String,
}

/// Marks a DC out of (or back into) service: recorded here, then handed to this DC's
/// storage nodes and the peer replicators, from which every gateway learns it.
async fn failover(State(s): State<AdminState>, body: axum::body::Bytes) -> Answer {
    let body: FailoverBody = serde_json::from_slice(&body).map_err(|e| {
        Error::invalid(format!(
            "expected {{\"dc\": \"<dc>\", \"state\": \"down\"|\"up\"}}: {e}"
        ))
    })?;
    if !s.dcs.contains(&body.dc) {
        return Err(Error::not_found(format!("no DC {} in this cluster", body.dc)).into());
    }
    let down = match body.state.as_str() {
        "down" => true,
        "up" => false,
        other => {
            return Err(
                Error::invalid(format!("state must be \"down\" or \"up\", not {other:?}")).into(),
            );
        }
    };
    let decided = s.states.decide(&body.dc, down)?;
    let informed = s.states.spread(&s.client, &s.local, &s.peers).await;
    tracing::warn!(dc = %decided.dc, down, ?informed, "DC state set through the admin API");
    Ok(Json(json!({
        "dc": body.dc,
        "state": body.state,
        "informed": informed,
    })))
}
