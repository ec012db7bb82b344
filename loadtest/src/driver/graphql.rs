//! The GraphQL driver: the `document` query, the `putDocument` mutation and `documents` with
//! a filter for scans, each a `POST /graphql`.

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::http::{exchange, http_client};
use super::{Connector, Driver, OpError, OpResult, scan_filter};

const READ: &str = "query($c:String!,$id:ID!){document(collection:$c,id:$id){version data}}";
const PUT: &str =
    "mutation($c:String!,$id:ID,$d:JSON!){putDocument(collection:$c,id:$id,data:$d){version}}";
const SCAN: &str = "query($c:String!,$f:JSON,$n:Int){documents(collection:$c,filter:$f,limit:$n){documents{id version data}}}";
const CREATE: &str = "mutation($c:String!){createCollection(name:$c){name}}";

/// Makes GraphQL drivers for one gateway.
pub struct GraphqlConnector {
    /// Base URL of the gateway.
    pub target: String,
    /// The collection holding the records.
    pub collection: String,
}

impl Connector for GraphqlConnector {
    fn prepare(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let g = self.open()?;
            g.call(json!({"query": CREATE, "variables": {"c": self.collection}}))
                .await
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("creating collection: {}: {}", e.code, e.message))
        })
    }

    fn connect(&self) -> BoxFuture<'_, anyhow::Result<Box<dyn Driver>>> {
        Box::pin(async move { Ok(Box::new(self.open()?) as Box<dyn Driver>) })
    }
}

impl GraphqlConnector {
    fn open(&self) -> anyhow::Result<Graphql> {
        Ok(Graphql {
            http: http_client()?,
            url: format!("{}/graphql", self.target),
            collection: self.collection.clone(),
        })
    }
}

/// One GraphQL-over-HTTP connection.
struct Graphql {
    http: reqwest::Client,
    url: String,
    collection: String,
}

impl Graphql {
    /// Posts one operation; the first GraphQL error (by its `extensions.code`) fails it.
    async fn call(&self, body: Value) -> Result<Value, OpError> {
        let (status, bytes) = exchange(self.http.post(&self.url).json(&body)).await?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|_| OpError::new(format!("http_{}", status.as_u16()), "not JSON"))?;
        if let Some(e) = v.pointer("/errors/0") {
            return Err(OpError::new(
                e.pointer("/extensions/code")
                    .and_then(Value::as_str)
                    .unwrap_or("graphql_error"),
                e.get("message").and_then(Value::as_str).unwrap_or_default(),
            ));
        }
        if !status.is_success() {
            return Err(OpError::new(format!("http_{}", status.as_u16()), ""));
        }
        Ok(v)
    }
}

impl Driver for Graphql {
    fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            let v = self
                .call(json!({"query": READ, "variables": {"c": self.collection, "id": key}}))
                .await?;
            match v.pointer("/data/document") {
                Some(Value::Object(_)) => Ok(()),
                _ => Err(OpError::new("not_found", key)),
            }
        })
    }

    fn update<'a>(&'a self, key: &'a str, record: &'a str) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            let data: Value = serde_json::from_str(record).map_err(OpError::transport)?;
            self.call(
                json!({"query": PUT, "variables": {"c": self.collection, "id": key, "d": data}}),
            )
            .await?;
            Ok(())
        })
    }

    fn scan<'a>(&'a self, start: &'a str, count: usize) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            self.call(json!({"query": SCAN, "variables": {"c": self.collection, "f": scan_filter(start), "n": count}}))
                .await?;
            Ok(())
        })
    }
}
