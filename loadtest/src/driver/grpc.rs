//! The gRPC driver: `GetDocument`/`PutDocument`, `Query` for scans, `BulkWrite` for loading.

use futures::future::BoxFuture;
use tonic::transport::{Channel, Endpoint};

use aerolith_proto::v1 as api;
use api::documents_client::DocumentsClient;

use super::{Connector, Driver, OpError, OpResult, scan_filter};

/// Makes gRPC drivers for one gateway.
pub struct GrpcConnector {
    /// `http://host:port` of the gateway's gRPC port.
    pub target: String,
    /// The collection holding the records.
    pub collection: String,
}

impl GrpcConnector {
    async fn client(&self) -> anyhow::Result<DocumentsClient<Channel>> {
        let channel = Endpoint::from_shared(self.target.clone())?
            .tcp_nodelay(true)
            .timeout(super::REQUEST_TIMEOUT)
            .connect()
            .await?;
        Ok(DocumentsClient::new(channel))
    }
}

impl Connector for GrpcConnector {
    fn prepare(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            self.client()
                .await?
                .create_collection(api::CreateCollectionRequest {
                    name: self.collection.clone(),
                    ..Default::default()
                })
                .await?;
            Ok(())
        })
    }

    fn connect(&self) -> BoxFuture<'_, anyhow::Result<Box<dyn Driver>>> {
        Box::pin(async move {
            Ok(Box::new(Grpc {
                client: self.client().await?,
                collection: self.collection.clone(),
            }) as Box<dyn Driver>)
        })
    }

    fn max_batch(&self) -> usize {
        500
    }
}

/// One gRPC channel (one HTTP/2 connection).
struct Grpc {
    client: DocumentsClient<Channel>,
    collection: String,
}

/// A gRPC status as an error with API.md's code: the gateway starts its messages with
/// `<code>: `; a status from the transport gets its gRPC code's name (`Unavailable` →
/// `unavailable`).
fn status_error(s: tonic::Status) -> OpError {
    if let Some((code, _)) = s.message().split_once(": ")
        && !code.is_empty()
        && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    {
        return OpError::new(code, s.message());
    }
    OpError::new(code_name(s.code()), s.message())
}

/// A gRPC code's name in snake case (`DeadlineExceeded` → `deadline_exceeded`).
pub(crate) fn code_name(code: tonic::Code) -> String {
    let mut name = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_lowercase());
    }
    name
}

impl Driver for Grpc {
    fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            self.client
                .clone()
                .get_document(api::GetDocumentRequest {
                    collection: self.collection.clone(),
                    id: key.to_string(),
                })
                .await
                .map_err(status_error)?;
            Ok(())
        })
    }

    fn update<'a>(&'a self, key: &'a str, record: &'a str) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            self.client
                .clone()
                .put_document(api::PutDocumentRequest {
                    collection: self.collection.clone(),
                    id: key.to_string(),
                    data_json: record.to_string(),
                    ..Default::default()
                })
                .await
                .map_err(status_error)?;
            Ok(())
        })
    }

    fn scan<'a>(&'a self, start: &'a str, count: usize) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            self.client
                .clone()
                .query(api::QueryRequest {
                    collection: self.collection.clone(),
                    filter_json: scan_filter(start).to_string(),
                    limit: Some(count as u32),
                    ..Default::default()
                })
                .await
                .map_err(status_error)?;
            Ok(())
        })
    }

    fn insert_batch<'a>(&'a self, records: &'a [(String, String)]) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            let ops = records
                .iter()
                .map(|(key, record)| api::BulkOp {
                    op: "put".into(),
                    id: key.clone(),
                    data_json: record.clone(),
                    ..Default::default()
                })
                .collect();
            let answer = self
                .client
                .clone()
                .bulk_write(api::BulkWriteRequest {
                    collection: self.collection.clone(),
                    ops,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            match answer
                .results
                .iter()
                .find(|r| !(200..300).contains(&r.status))
            {
                None => Ok(()),
                Some(r) => Err(OpError::new(
                    r.error
                        .as_ref()
                        .map(|e| e.code.clone())
                        .unwrap_or_else(|| format!("http_{}", r.status)),
                    "bulk op failed",
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::status_error;
    use tonic::{Code, Status};

    #[test]
    fn codes_come_from_the_message_prefix_or_the_status() {
        let e = status_error(Status::new(
            Code::FailedPrecondition,
            "precondition_failed: version is not current",
        ));
        assert_eq!(e.code, "precondition_failed");
        let e = status_error(Status::new(Code::Unavailable, "connection refused"));
        assert_eq!(e.code, "unavailable");
        let e = status_error(Status::new(Code::DeadlineExceeded, "Timeout expired: x"));
        assert_eq!(e.code, "deadline_exceeded");
    }
}
