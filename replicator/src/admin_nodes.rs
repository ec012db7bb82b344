//! The admin API's storage nodes and shard moves (issue 25; API.md "Replicator admin"):
//! the DC's nodes and shard map, adding a node, decommissioning one, rebalancing, and the
//! moves with their progress. The work is `moves.rs`'s; these handlers parse and render.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use aerolith_common::Error;

use crate::admin::{AdminError, AdminState, Answer};
use crate::moves::{Move, MoveState};

/// An answer with a status other than 200.
type Created = std::result::Result<(StatusCode, Json<Value>), AdminError>;

/// `GET /admin/nodes`: the DC's storage nodes in its shard map, each with the shards it
/// owns and whether it is leaving, the shards being moved, and the map's epoch.
pub(crate) async fn nodes(State(s): State<AdminState>) -> Answer {
    let map = s.maps.get(&s.local.id)?;
    let addrs = map.addresses(&s.local)?;
    let nodes: Vec<Value> = map
        .nodes()
        .iter()
        .zip(addrs)
        .map(|(n, rpc)| {
            json!({
                "id": n.id,
                "rpc": rpc,
                "state": if n.leaving { "leaving" } else { "active" },
                "shards": map.shards_of(&n.id),
            })
        })
        .collect();
    Ok(Json(json!({
        "dc": s.local.id,
        "epoch": map.epoch,
        "shards": s.shards,
        "moving": map.moving(),
        "nodes": nodes,
    })))
}

/// `POST /admin/nodes` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    id: String,
    rpc: String,
}

/// `POST /admin/nodes {"id","rpc"}`: lists a running storage node in the DC's map (201;
/// 200 if it is listed already at that address). It owns nothing until a rebalance.
pub(crate) async fn add(State(s): State<AdminState>, body: axum::body::Bytes) -> Created {
    let body: AddBody = serde_json::from_slice(&body)
        .map_err(|e| Error::invalid(format!("bad node: {e} (expected {{\"id\", \"rpc\"}})")))?;
    let added = s.mover.add_node(&body.id, &body.rpc).await?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let map = s.maps.get(&s.local.id)?;
    Ok((
        status,
        Json(json!({"id": body.id, "rpc": body.rpc, "shards": map.shards_of(&body.id)})),
    ))
}

/// `POST /admin/nodes/{id}/decommission`: the node gets no more shards and its shards are
/// moved away (202, with the moves planned); once it owns none it leaves the map and may be
/// stopped.
pub(crate) async fn decommission(State(s): State<AdminState>, Path(id): Path<String>) -> Created {
    let planned = s.mover.decommission(&id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"node": id, "moves": render(&planned)})),
    ))
}

/// `POST /admin/rebalance`: plans the moves after which no node owns more than
/// ⌈shards/N⌉ (202, with the moves planned now; none when balanced).
pub(crate) async fn rebalance(State(s): State<AdminState>) -> Created {
    let planned = s.mover.rebalance()?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"moves": render(&planned)})),
    ))
}

/// `GET /admin/moves`: every move (the last 1000 finished ones, and those queued or
/// running), oldest first, with state and progress.
pub(crate) async fn moves(State(s): State<AdminState>) -> Answer {
    let all = s.mover.moves();
    let count = |st: MoveState| all.iter().filter(|m| m.state == st).count();
    Ok(Json(json!({
        "queued": count(MoveState::Queued),
        "running": count(MoveState::Running),
        "done": count(MoveState::Done),
        "failed": count(MoveState::Failed),
        "moves": render(&all),
    })))
}

fn render(moves: &[Move]) -> Value {
    serde_json::to_value(moves).unwrap_or(Value::Null)
}
