//! `aerolith admin nodes add|decommission`, `aerolith admin rebalance` and `aerolith admin
//! moves`: growing and shrinking the admin endpoint's DC (issue 25).

use serde_json::{Value, json};

use super::Failure;
use super::api::Api;
use super::output::{Output, Printer, cell, emit, table};

/// Lists a running storage node in the DC's shard map.
pub async fn add(api: &Api, out: &Printer, id: &str, rpc: &str) -> Result<(), Failure> {
    aerolith_common::name::validate_node(id).map_err(|e| Failure::usage(e.message))?;
    let body = json!({"id": id, "rpc": rpc}).to_string().into_bytes();
    let a = api.admin_post("/admin/nodes", body).await?;
    match out.format(Output::Table) {
        Output::Json => out.pretty(&a.body),
        Output::Table => emit(&format!(
            "node {id} at {rpc} is in the shard map; `aerolith admin rebalance` gives it shards"
        )),
    }
    Ok(())
}

/// Moves a node's shards away.
pub async fn decommission(api: &Api, out: &Printer, id: &str) -> Result<(), Failure> {
    aerolith_common::name::validate_node(id).map_err(|e| Failure::usage(e.message))?;
    let a = api
        .admin_post(&format!("/admin/nodes/{id}/decommission"), b"{}".to_vec())
        .await?;
    planned(out, &a.body, |n| {
        format!(
            "node {id} is leaving: {n} shard moves planned; it leaves the map once it owns none (`aerolith admin nodes`), then it may be stopped"
        )
    });
    Ok(())
}

/// Plans the moves that balance the DC.
pub async fn rebalance(api: &Api, out: &Printer) -> Result<(), Failure> {
    let a = api.admin_post("/admin/rebalance", b"{}".to_vec()).await?;
    planned(out, &a.body, |n| {
        format!("{n} shard moves planned (`aerolith admin moves` follows them)")
    });
    Ok(())
}

/// Prints an answer that planned moves: as JSON, or a headline (given their number) and
/// the moves.
fn planned(out: &Printer, body: &Value, headline: impl FnOnce(usize) -> String) {
    match out.format(Output::Table) {
        Output::Json => out.pretty(body),
        Output::Table => {
            emit(&headline(body["moves"].as_array().map_or(0, Vec::len)));
            move_table(&body["moves"]);
        }
    }
}

/// Prints the DC's moves.
pub async fn moves(api: &Api, out: &Printer) -> Result<(), Failure> {
    let a = api.admin_get("/admin/moves").await?;
    match out.format(Output::Table) {
        Output::Json => out.pretty(&a.body),
        Output::Table => {
            emit(&format!(
                "queued {} running {} done {} failed {}",
                cell(&a.body["queued"]),
                cell(&a.body["running"]),
                cell(&a.body["done"]),
                cell(&a.body["failed"])
            ));
            move_table(&a.body["moves"]);
        }
    }
    Ok(())
}

fn move_table(moves: &Value) {
    let rows: Vec<Vec<String>> = moves
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let progress = match (m["copied"].as_u64(), m["total"].as_u64()) {
                (Some(c), Some(t)) if t > 0 => format!("{c}/{t}"),
                _ => "-".into(),
            };
            vec![
                cell(&m["id"]),
                cell(&m["shard"]),
                cell(&m["from"]),
                cell(&m["to"]),
                cell(&m["state"]),
                progress,
                cell(&m["pause_ms"]),
            ]
        })
        .collect();
    table(
        &["MOVE", "SHARD", "FROM", "TO", "STATE", "COPIED", "PAUSE_MS"],
        &rows,
    );
}
