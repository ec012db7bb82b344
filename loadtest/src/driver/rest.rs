//! The REST driver: `GET`/`PUT` of documents, a query for scans, bulk writes for loading.

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::http::{http_client, send};
use super::{Connector, Driver, OpError, OpResult, scan_filter};

/// Makes REST drivers for one gateway.
pub struct RestConnector {
    /// Base URL of the gateway.
    pub target: String,
    /// The collection holding the records.
    pub collection: String,
}

impl Connector for RestConnector {
    fn prepare(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let url = format!("{}/v1/collections/{}", self.target, self.collection);
            let resp = http_client()?.put(&url).json(&json!({})).send().await?;
            anyhow::ensure!(
                resp.status().is_success(),
                "creating collection {}: {}",
                self.collection,
                resp.status()
            );
            Ok(())
        })
    }

    fn connect(&self) -> BoxFuture<'_, anyhow::Result<Box<dyn Driver>>> {
        Box::pin(async move {
            Ok(Box::new(Rest {
                http: http_client()?,
                docs: format!("{}/v1/collections/{}/docs", self.target, self.collection),
                query: format!("{}/v1/collections/{}/query", self.target, self.collection),
                bulk: format!("{}/v1/collections/{}/bulk", self.target, self.collection),
            }) as Box<dyn Driver>)
        })
    }

    fn max_batch(&self) -> usize {
        500
    }
}

/// One REST connection.
struct Rest {
    http: reqwest::Client,
    docs: String,
    query: String,
    bulk: String,
}

impl Driver for Rest {
    fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            send(self.http.get(format!("{}/{key}", self.docs))).await?;
            Ok(())
        })
    }

    fn update<'a>(&'a self, key: &'a str, record: &'a str) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            let req = self
                .http
                .put(format!("{}/{key}", self.docs))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(record.to_string());
            send(req).await?;
            Ok(())
        })
    }

    fn scan<'a>(&'a self, start: &'a str, count: usize) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            let body = json!({"filter": scan_filter(start), "limit": count});
            send(self.http.post(&self.query).json(&body)).await?;
            Ok(())
        })
    }

    fn insert_batch<'a>(&'a self, records: &'a [(String, String)]) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            let mut ops = String::from("{\"ops\":[");
            for (i, (key, record)) in records.iter().enumerate() {
                if i > 0 {
                    ops.push(',');
                }
                ops.push_str(&format!(
                    "{{\"op\":\"put\",\"id\":\"{key}\",\"data\":{record}}}"
                ));
            }
            ops.push_str("]}");
            let req = self
                .http
                .post(&self.bulk)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(ops);
            let body = send(req).await?;
            bulk_errors(&body)
        })
    }
}

/// The first failed op of a bulk answer, if any.
fn bulk_errors(body: &[u8]) -> OpResult {
    let v: Value = serde_json::from_slice(body).map_err(OpError::transport)?;
    let results = v
        .get("results")
        .and_then(Value::as_array)
        .ok_or_else(|| OpError::new("bad_answer", "bulk answer without results"))?;
    for r in results {
        let status = r.get("status").and_then(Value::as_u64).unwrap_or(0);
        if !(200..300).contains(&status) {
            let code = r
                .pointer("/error/code")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("http_{status}"));
            return Err(OpError::new(code, "bulk op failed"));
        }
    }
    Ok(())
}
