//! `aerolith` as a client for people at a terminal (and scripts): collections, documents,
//! queries, change feeds, bulk imports and replication status, over the gateway's REST and
//! WebSocket APIs and the replicator's admin API. Exit codes scripts can rely on: 0 ok,
//! 1 not found, 2 usage, 3 anything else; errors are one line on stderr.

mod admin;
mod api;
mod bulk;
mod documents;
mod failure;
mod indexes;
mod output;
mod query;
mod topology;
mod watch;

use std::path::PathBuf;

pub use failure::{EXIT_NOT_FOUND, EXIT_OTHER, EXIT_USAGE, Failure};
pub use output::Output;

/// Where the client connects and how it prints; every client command takes these.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// The gateway's HTTP address.
    #[arg(
        long,
        global = true,
        env = "AEROLITH_ENDPOINT",
        default_value = "http://127.0.0.1:8080"
    )]
    pub endpoint: String,
    /// The replicator admin API's address (`admin` commands).
    #[arg(
        long,
        global = true,
        env = "AEROLITH_ADMIN_ENDPOINT",
        default_value = "http://127.0.0.1:9090"
    )]
    pub admin_endpoint: String,
    /// A bearer token (API.md "Authentication"), sent with every request.
    #[arg(long, global = true, env = "AEROLITH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of the CA to trust for https:// endpoints (`aerolith certs --public-names`
    /// writes public-ca.pem); without it, https:// endpoints are refused, as this client
    /// trusts no CA by default.
    #[arg(long, global = true, env = "AEROLITH_CA", value_name = "PEM")]
    pub ca: Option<std::path::PathBuf>,
    /// `json` (machine-readable, the default for documents) or `table` (the default for
    /// lists and status).
    #[arg(long, global = true, value_enum)]
    pub output: Option<Output>,
}

/// The client commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ClientCommand {
    /// List collections and their conflict strategies.
    Collections,
    /// Print a document: `aerolith get COLLECTION ID`.
    Get {
        /// The collection.
        collection: String,
        /// The document's id.
        id: String,
    },
    /// Create or replace a document: `aerolith put COLLECTION ID [JSON]`; the JSON comes from
    /// the argument, `--file`, or stdin (when left out or `-`).
    Put {
        /// The collection.
        collection: String,
        /// The document's id.
        id: String,
        /// The document's data (a JSON object); `-` or nothing: read stdin.
        json: Option<String>,
        /// Read the data from this file.
        #[arg(long, conflicts_with = "json")]
        file: Option<PathBuf>,
        /// Only if the document's current version is this one.
        #[arg(long)]
        if_match: Option<String>,
    },
    /// Patch a document: `aerolith patch COLLECTION ID JSON`; an object is a merge patch
    /// (RFC 7396), an array a JSON Patch (RFC 6902).
    Patch {
        /// The collection.
        collection: String,
        /// The document's id.
        id: String,
        /// The patch.
        json: String,
        /// Only if the document's current version is this one.
        #[arg(long)]
        if_match: Option<String>,
    },
    /// Delete a document: `aerolith delete COLLECTION ID`.
    Delete {
        /// The collection.
        collection: String,
        /// The document's id.
        id: String,
        /// Only if the document's current version is this one.
        #[arg(long)]
        if_match: Option<String>,
    },
    /// Query a collection: `aerolith query COLLECTION FILTER` (a JSON filter, API.md
    /// "Query"); follows pages until `--limit` documents or the end.
    Query {
        /// The collection.
        collection: String,
        /// The filter, a JSON object (`{}` matches every document).
        #[arg(default_value = "{}")]
        filter: String,
        /// Sort by a field, `FIELD` or `FIELD:desc`; repeat for more keys.
        #[arg(long)]
        sort: Vec<String>,
        /// Print at most this many documents (default: all).
        #[arg(long)]
        limit: Option<u64>,
        /// Keep only these paths of each document's data (comma-separated).
        #[arg(long, value_delimiter = ',')]
        projection: Vec<String>,
    },
    /// Follow a collection's change feed (`aerolith watch COLLECTION`), one change a line;
    /// resumable with `--since` and the last token printed.
    Watch {
        /// The collection.
        collection: String,
        /// Resume after this token (from an earlier change or checkpoint).
        #[arg(long)]
        since: Option<String>,
        /// Only changes whose document matches this filter (deletes always pass).
        #[arg(long)]
        filter: Option<String>,
        /// Stop after this many changes (`0`: once subscribed, printing only the token of
        /// the feed's current position).
        #[arg(long)]
        count: Option<u64>,
    },
    /// Import newline-delimited JSON documents into a collection (the file, or stdin when
    /// left out or `-`), with a progress line and a final count.
    Bulk {
        /// The collection.
        collection: String,
        /// The file of documents, one JSON object a line.
        file: Option<PathBuf>,
        /// The field holding each document's id (kept in the data); documents without it
        /// get a generated id.
        #[arg(long, default_value = "id")]
        id_field: String,
        /// Documents per request (at most 1000).
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=1000))]
        batch: u64,
    },
    /// Write a consistent RocksDB checkpoint of every storage node of the admin endpoint's
    /// DC, each into DIR/<node id> (DIR is an absolute path on the nodes' own machines, and
    /// DIR/<node id> must not exist yet); restore one with `aerolith restore`.
    Backup {
        /// The backup directory, an absolute path.
        dir: PathBuf,
    },
    /// A collection's secondary indexes: `aerolith index create|list|drop`.
    Index {
        /// What to do.
        #[command(subcommand)]
        command: IndexCommand,
    },
    /// Replication administration (the replicator admin API).
    Admin {
        /// What to do.
        #[command(subcommand)]
        command: AdminCommand,
    },
}

/// The `index` commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum IndexCommand {
    /// Define an index, built in the background: `aerolith index create COLLECTION NAME
    /// FIELD[:asc|desc]...` (dotted paths; the same definition again changes nothing).
    Create {
        /// The collection.
        collection: String,
        /// The index's name.
        name: String,
        /// Its fields in key order, each `PATH`, `PATH:asc` or `PATH:desc`.
        #[arg(required = true)]
        fields: Vec<String>,
    },
    /// List a collection's indexes with their build state.
    List {
        /// The collection.
        collection: String,
    },
    /// Drop an index.
    Drop {
        /// The collection.
        collection: String,
        /// The index's name.
        name: String,
    },
}

/// The `admin` commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminCommand {
    /// Replication state per peer DC: link state, lag, traffic and conflicts.
    Status,
    /// The DC's storage nodes and the shards each owns, with the shard map's epoch; with a
    /// subcommand, add a node or decommission one.
    Nodes {
        /// What to do (none: list the nodes).
        #[command(subcommand)]
        command: Option<NodesCommand>,
    },
    /// Plan the shard moves that balance the DC's nodes (no node above ⌈shards/N⌉); they
    /// run in the background (see `admin moves`).
    Rebalance,
    /// The DC's shard moves, with state and progress.
    Moves,
}

/// The `admin nodes` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum NodesCommand {
    /// List a running storage node in the DC's shard map; it owns nothing until a rebalance.
    Add {
        /// The node's id (as its `--node` flag names it).
        id: String,
        /// The `host:port` of its internal RPC endpoint, as the DC's other processes reach it.
        rpc: String,
    },
    /// Move a node's shards away; once it owns none it leaves the map and may be stopped.
    Decommission {
        /// The node's id.
        id: String,
    },
}

/// Checks the command's collection name and document id against API.md's rules, so that
/// neither can change the request's path (`../other`, `x?y`).
fn check_names(command: &ClientCommand) -> Result<(), Failure> {
    use ClientCommand as C;
    let (collection, id) = match command {
        C::Get { collection, id }
        | C::Put { collection, id, .. }
        | C::Patch { collection, id, .. }
        | C::Delete { collection, id, .. } => (Some(collection), Some(id)),
        C::Query { collection, .. } | C::Watch { collection, .. } | C::Bulk { collection, .. } => {
            (Some(collection), None)
        }
        C::Index { command } => match command {
            IndexCommand::Create {
                collection, name, ..
            }
            | IndexCommand::Drop { collection, name } => {
                indexes::name_arg(name)?;
                (Some(collection), None)
            }
            IndexCommand::List { collection } => (Some(collection), None),
        },
        C::Collections | C::Admin { .. } | C::Backup { .. } => (None, None),
    };
    if let Some(c) = collection {
        failure::collection_arg(c)?;
    }
    if let Some(i) = id {
        failure::id_arg(i)?;
    }
    Ok(())
}

/// Runs one client command.
pub async fn run(command: ClientCommand, global: Global) -> Result<(), Failure> {
    check_names(&command)?;
    let api = api::Api::new(&global)?;
    let out = output::Printer::new(global.output);
    match command {
        ClientCommand::Collections => documents::collections(&api, &out).await,
        ClientCommand::Get { collection, id } => documents::get(&api, &out, &collection, &id).await,
        ClientCommand::Put {
            collection,
            id,
            json,
            file,
            if_match,
        } => {
            let data = documents::input(json.as_deref(), file.as_deref())?;
            documents::put(&api, &out, &collection, &id, &data, if_match.as_deref()).await
        }
        ClientCommand::Patch {
            collection,
            id,
            json,
            if_match,
        } => documents::patch(&api, &out, &collection, &id, &json, if_match.as_deref()).await,
        ClientCommand::Delete {
            collection,
            id,
            if_match,
        } => documents::delete(&api, &out, &collection, &id, if_match.as_deref()).await,
        ClientCommand::Query {
            collection,
            filter,
            sort,
            limit,
            projection,
        } => {
            let q = query::Query::new(&filter, &sort, &projection)?;
            query::run(&api, &out, &collection, q, limit).await
        }
        ClientCommand::Watch {
            collection,
            since,
            filter,
            count,
        } => {
            let filter = filter.as_deref().map(failure::parse_json_arg).transpose()?;
            watch::run(&api, &out, &collection, since, filter, count).await
        }
        ClientCommand::Bulk {
            collection,
            file,
            id_field,
            batch,
        } => {
            bulk::run(
                &api,
                &out,
                &collection,
                file.as_deref(),
                &id_field,
                batch as usize,
            )
            .await
        }
        ClientCommand::Admin {
            command: AdminCommand::Status,
        } => admin::status(&api, &out).await,
        ClientCommand::Admin {
            command: AdminCommand::Nodes { command },
        } => match command {
            None => admin::nodes(&api, &out).await,
            Some(NodesCommand::Add { id, rpc }) => topology::add(&api, &out, &id, &rpc).await,
            Some(NodesCommand::Decommission { id }) => {
                topology::decommission(&api, &out, &id).await
            }
        },
        ClientCommand::Admin {
            command: AdminCommand::Rebalance,
        } => topology::rebalance(&api, &out).await,
        ClientCommand::Admin {
            command: AdminCommand::Moves,
        } => topology::moves(&api, &out).await,
        ClientCommand::Backup { dir } => admin::backup(&api, &out, &dir).await,
        ClientCommand::Index { command } => match command {
            IndexCommand::Create {
                collection,
                name,
                fields,
            } => indexes::create(&api, &out, &collection, &name, &fields).await,
            IndexCommand::List { collection } => indexes::list(&api, &out, &collection).await,
            IndexCommand::Drop { collection, name } => {
                indexes::drop(&api, &collection, &name).await
            }
        },
    }
}
