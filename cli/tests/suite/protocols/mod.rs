//! Four clients of the same API, one per protocol, each reducing what it receives to the
//! same shape so that a scenario can compare them: documents with their data as JSON text,
//! pages, change events, and errors as API.md codes. Each client also checks that its own
//! protocol carried the code the way API.md says (HTTP status, gRPC status and details).

#![allow(dead_code)]

pub mod graphql;
pub mod grpc;
pub mod rest;
pub mod ws;

use std::time::Duration;

use serde_json::{Value, json};

/// What a client observed: a normalized value, or an error code.
pub type Outcome = Result<Value, String>;

/// A document reduced to what every protocol must agree on; `data` is its JSON text.
pub fn doc(
    collection: &str,
    id: &str,
    version: &str,
    updated_at: &str,
    origin: &str,
    data: String,
) -> Value {
    json!({"collection": collection, "id": id, "version": version, "updated_at": updated_at,
        "origin": origin, "data": data})
}

/// A document in the REST/WebSocket representation, reduced.
pub fn doc_from_json(d: &Value) -> Value {
    doc(
        d["collection"].as_str().unwrap_or("?"),
        d["id"].as_str().unwrap_or("?"),
        d["version"].as_str().unwrap_or("?"),
        d["updated_at"].as_str().unwrap_or("?"),
        d["origin"].as_str().unwrap_or("?"),
        serde_json::to_string(&d["data"]).unwrap(),
    )
}

/// A page in the REST/WebSocket representation, reduced.
pub fn page_from_json(p: &Value) -> Value {
    let docs: Vec<Value> = p["documents"]
        .as_array()
        .map(|d| d.iter().map(doc_from_json).collect())
        .unwrap_or_default();
    with_plan(
        json!({"documents": docs, "next_cursor": p["next_cursor"]}),
        &p["plan"],
    )
}

/// A page with `explain`'s plan added when there is one (`{"node","index","examined"}`
/// steps, as REST gives them).
pub fn with_plan(mut page: Value, plan: &Value) -> Value {
    if !plan.is_null() {
        page["plan"] = plan.clone();
    }
    page
}

/// A change event reduced; checkpoints are `{"op": "checkpoint", "token"}`.
pub fn event(op: &str, id: &str, version: &str, data: Option<String>, token: &str) -> Value {
    json!({"op": op, "id": id, "version": version, "data": data, "token": token})
}

/// A client of one protocol.
pub enum Client {
    Rest(rest::Rest),
    Graphql(graphql::Graphql),
    Ws(ws::Ws),
    Grpc(grpc::Grpc),
}

/// A running change feed of one protocol.
pub enum Feed {
    Rest(rest::RestFeed),
    Graphql(graphql::GraphqlFeed),
    Ws(ws::WsFeed),
    Grpc(grpc::GrpcFeed),
}

/// Dispatches a call to whichever client this is.
macro_rules! each {
    ($self:expr, $c:ident => $call:expr) => {
        match $self {
            Client::Rest($c) => $call,
            Client::Graphql($c) => $call,
            Client::Ws($c) => $call,
            Client::Grpc($c) => $call,
        }
    };
}

impl Client {
    /// One client of each protocol, against the gateway at `http` / `grpc`.
    pub async fn all(http: &str, grpc: &str) -> Vec<Client> {
        vec![
            Client::Rest(rest::Rest::new(http)),
            Client::Graphql(graphql::Graphql::new(http)),
            Client::Ws(ws::Ws::connect(http).await),
            Client::Grpc(grpc::Grpc::connect(grpc).await),
        ]
    }

    pub fn name(&self) -> &'static str {
        match self {
            Client::Rest(_) => "REST",
            Client::Graphql(_) => "GraphQL",
            Client::Ws(_) => "WebSocket",
            Client::Grpc(_) => "gRPC",
        }
    }

    /// Sends `session` (a session token) with document reads and writes from now on.
    pub fn set_session(&mut self, session: Option<&str>) {
        let s = session.map(str::to_string);
        each!(self, c => c.session = s)
    }

    /// Gives every later request a deadline of `ms` (WebSocket requests have none: no-op).
    pub fn set_deadline_ms(&mut self, ms: u64) {
        match self {
            Client::Rest(c) => c.deadline_ms = Some(ms),
            Client::Graphql(c) => c.deadline_ms = Some(ms),
            Client::Grpc(c) => c.deadline = Some(Duration::from_millis(ms)),
            Client::Ws(_) => {}
        }
    }

    /// Sends `key` as the idempotency key of document writes from now on.
    pub fn set_idempotency_key(&mut self, key: Option<&str>) {
        let k = key.map(str::to_string);
        each!(self, c => c.idempotency_key = k)
    }

    /// Creates a collection: `{"name", "conflict_strategy"}`.
    pub async fn create_collection(&mut self, name: &str, strategy: Option<&str>) -> Outcome {
        each!(self, c => c.create_collection(name, strategy).await)
    }

    /// Puts a document (`id` None: a generated one) with `data` as JSON text.
    pub async fn put(
        &mut self,
        coll: &str,
        id: Option<&str>,
        data: &str,
        if_match: Option<&str>,
        if_none_match: bool,
    ) -> Outcome {
        each!(self, c => c.put(coll, id, data, if_match, if_none_match).await)
    }

    pub async fn get(&mut self, coll: &str, id: &str) -> Outcome {
        each!(self, c => c.get(coll, id).await)
    }

    /// Merge-patches (an object) or JSON-Patches (an array) a document.
    pub async fn patch(
        &mut self,
        coll: &str,
        id: &str,
        patch: &str,
        if_match: Option<&str>,
    ) -> Outcome {
        each!(self, c => c.patch(coll, id, patch, if_match).await)
    }

    /// Deletes a document: `null` on success.
    pub async fn delete(&mut self, coll: &str, id: &str, if_match: Option<&str>) -> Outcome {
        each!(self, c => c.delete(coll, id, if_match).await)
    }

    /// Runs a query given as REST's body: `{"documents": [...], "next_cursor"}`.
    pub async fn query(&mut self, coll: &str, q: &Value) -> Outcome {
        each!(self, c => c.query(coll, q).await)
    }

    /// Counts the documents matching `filter`: `{"count": N}`.
    pub async fn count(&mut self, coll: &str, filter: &Value) -> Outcome {
        each!(self, c => c.count(coll, filter).await)
    }

    /// Opens a change feed; its first item is a checkpoint with the starting token.
    pub async fn watch(&mut self, coll: &str, since: Option<&str>) -> Result<Feed, String> {
        match self {
            Client::Rest(c) => c.watch(coll, since).await.map(Feed::Rest),
            Client::Graphql(c) => c.watch(coll, since).await.map(Feed::Graphql),
            Client::Ws(c) => c.watch(coll, since).await.map(Feed::Ws),
            Client::Grpc(c) => c.watch(coll, since).await.map(Feed::Grpc),
        }
    }
}

impl Feed {
    /// The next event or checkpoint (an error ends the feed).
    pub async fn next(&mut self) -> Outcome {
        let item = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            match self {
                Feed::Rest(f) => f.next().await,
                Feed::Graphql(f) => f.next().await,
                Feed::Ws(f) => f.next().await,
                Feed::Grpc(f) => f.next().await,
            }
        })
        .await;
        item.unwrap_or_else(|_| Err("<feed timed out>".to_string()))
    }

    /// The next change, skipping checkpoints.
    pub async fn next_change(&mut self) -> Outcome {
        loop {
            let item = self.next().await?;
            if item["op"] != "checkpoint" {
                return Ok(item);
            }
        }
    }
}
