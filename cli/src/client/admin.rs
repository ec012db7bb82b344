//! `aerolith admin status`: the replicator's view of each peer DC.

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
                ],
                &rows,
            );
        }
    }
    Ok(())
}
