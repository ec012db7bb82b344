//! The etcd driver, for the comparison: etcd's HTTP/JSON v3 API (`/v3/kv/range`,
//! `/v3/kv/put`, `/v3/kv/txn` for loading), keys and values base64-encoded as the gateway
//! wants. Records are stored as the same JSON text the document drivers send.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::http::{http_client, send};
use super::{Connector, Driver, OpError, OpResult};

/// Makes etcd drivers for one etcd server.
pub struct EtcdConnector {
    /// etcd's client URL (`http://127.0.0.1:2379`).
    pub target: String,
}

impl Connector for EtcdConnector {
    fn connect(&self) -> BoxFuture<'_, anyhow::Result<Box<dyn Driver>>> {
        Box::pin(async move {
            Ok(Box::new(Etcd {
                http: http_client()?,
                base: self.target.clone(),
            }) as Box<dyn Driver>)
        })
    }

    fn max_batch(&self) -> usize {
        // etcd's default --max-txn-ops is 128.
        100
    }
}

/// One connection to etcd.
struct Etcd {
    http: reqwest::Client,
    base: String,
}

/// The first key after every key starting with `prefix`: the end of a prefix range.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl Etcd {
    async fn post(&self, path: &str, body: Value) -> Result<Value, OpError> {
        let bytes = send(self.http.post(format!("{}{path}", self.base)).json(&body)).await?;
        serde_json::from_slice(&bytes).map_err(OpError::transport)
    }
}

impl Driver for Etcd {
    fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            let v = self
                .post("/v3/kv/range", json!({"key": B64.encode(key)}))
                .await?;
            match v.get("kvs").and_then(Value::as_array) {
                Some(kvs) if !kvs.is_empty() => Ok(()),
                _ => Err(OpError::new("not_found", key)),
            }
        })
    }

    fn update<'a>(&'a self, key: &'a str, record: &'a str) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            self.post(
                "/v3/kv/put",
                json!({"key": B64.encode(key), "value": B64.encode(record)}),
            )
            .await?;
            Ok(())
        })
    }

    fn scan<'a>(&'a self, start: &'a str, count: usize) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            self.post(
                "/v3/kv/range",
                json!({
                    "key": B64.encode(start),
                    "range_end": B64.encode(prefix_end("user")),
                    "limit": count,
                }),
            )
            .await?;
            Ok(())
        })
    }

    fn insert_batch<'a>(&'a self, records: &'a [(String, String)]) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            let success: Vec<Value> = records
                .iter()
                .map(|(k, r)| json!({"requestPut": {"key": B64.encode(k), "value": B64.encode(r)}}))
                .collect();
            self.post("/v3/kv/txn", json!({"success": success})).await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_is_the_next_prefix() {
        assert_eq!(prefix_end("user"), b"uses".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }
}
