//! `aerolith admin status` (the replicator's view of each peer DC), `aerolith admin nodes`
//! (the DC's storage nodes and shard map) and `aerolith backup`.

use super::Failure;
use super::api::Api;
use super::output::{Output, Printer, cell, table};

/// Prints replication state per peer.
pub async fn status(api: &Api, out: &Printer) -> Result<(), Failure> {
    let a = api.admin_get("/admin/status").await?;
    match out.format(Output::Table) {
        Output::Json => out.pretty(&a.body),
        Output::Table => {
            super::output::emit(&format!("dc {}", cell(&a.body["dc"])));
            let fields = [
                "dc",
                "state",
                "lag_changes",
                "lag_ms",
                "last_applied_at",
                "sent",
                "applied",
                "conflicts",
                "needs_rebuild",
            ];
            let rows: Vec<Vec<String>> = a.body["peers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| fields.iter().map(|f| cell(&p[*f])).collect())
                .collect();
            table(
                &[
                    "PEER",
                    "STATE",
                    "LAG_CHANGES",
                    "LAG_MS",
                    "LAST_APPLIED_AT",
                    "SENT",
                    "APPLIED",
                    "CONFLICTS",
                    "NEEDS_REBUILD",
                ],
                &rows,
            );
        }
    }
    Ok(())
}

/// Prints the DC's storage nodes and the shards each owns.
pub async fn nodes(api: &Api, out: &Printer) -> Result<(), Failure> {
    let a = api.admin_get("/admin/nodes").await?;
    match out.format(Output::Table) {
        Output::Json => out.pretty(&a.body),
        Output::Table => {
            super::output::emit(&format!(
                "dc {} shards {} map epoch {}",
                cell(&a.body["dc"]),
                cell(&a.body["shards"]),
                cell(&a.body["epoch"])
            ));
            let rows: Vec<Vec<String>> = a.body["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| {
                    let owned = n["shards"].as_array().map_or(0, Vec::len);
                    vec![
                        cell(&n["id"]),
                        cell(&n["rpc"]),
                        cell(&n["state"]),
                        owned.to_string(),
                    ]
                })
                .collect();
            table(&["NODE", "RPC", "STATE", "SHARDS"], &rows);
        }
    }
    Ok(())
}

/// Checkpoints every storage node of the admin endpoint's DC into `dir/<node id>`, below
/// each node's backup directory (`dir` relative to it, or an absolute path inside it).
pub async fn backup(api: &Api, out: &Printer, dir: &std::path::Path) -> Result<(), Failure> {
    let Some(dir_str) = dir.to_str().filter(|s| !s.is_empty()) else {
        return Err(Failure::usage(format!(
            "the backup directory must be a UTF-8 path below the storage nodes' --backup-dir, got {}",
            dir.display()
        )));
    };
    let body = serde_json::to_vec(&serde_json::json!({ "dir": dir_str }))
        .map_err(|e| Failure::other(e.to_string()))?;
    let a = api.admin_post("/admin/backup", body).await?;
    match out.format(Output::Table) {
        Output::Json => out.pretty(&a.body),
        Output::Table => {
            let rows: Vec<Vec<String>> = a.body["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| {
                    ["node", "dir", "records_estimate"]
                        .iter()
                        .map(|f| cell(&n[*f]))
                        .collect()
                })
                .collect();
            table(&["NODE", "DIR", "RECORDS(EST)"], &rows);
        }
    }
    Ok(())
}
