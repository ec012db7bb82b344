//! Bulk writes: up to 1000 puts, patches and deletes in one request, with a result per op.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{Call, CallOptions};
use crate::collections::{Collection, decode};
use crate::documents::Patch;
use crate::error::{Error, ErrorCode, Result};

/// One op of a bulk request.
#[derive(Debug, Clone, PartialEq)]
pub enum BulkOp {
    /// Create or replace a document (no id: create under a generated id).
    Put {
        /// The id, if any.
        id: Option<String>,
        /// The data.
        data: Value,
        /// Only if the version is this one.
        if_match: Option<String>,
    },
    /// Patch a document.
    Patch {
        /// The id.
        id: String,
        /// The patch.
        patch: Patch,
        /// Only if the version is this one.
        if_match: Option<String>,
    },
    /// Delete a document.
    Delete {
        /// The id.
        id: String,
        /// Only if the version is this one.
        if_match: Option<String>,
    },
}

impl BulkOp {
    /// A put of `data` under `id`.
    pub fn put(id: impl Into<String>, data: Value) -> BulkOp {
        BulkOp::Put {
            id: Some(id.into()),
            data,
            if_match: None,
        }
    }

    /// A delete of `id`.
    pub fn delete(id: impl Into<String>) -> BulkOp {
        BulkOp::Delete {
            id: id.into(),
            if_match: None,
        }
    }

    fn to_json(&self) -> Value {
        let (mut v, if_match) = match self {
            BulkOp::Put { id, data, if_match } => {
                let mut v = json!({"op": "put", "data": data});
                if let Some(id) = id {
                    v["id"] = json!(id);
                }
                (v, if_match)
            }
            BulkOp::Patch {
                id,
                patch,
                if_match,
            } => {
                let p = match patch {
                    Patch::Merge(p) | Patch::Json(p) => p,
                };
                (json!({"op": "patch", "id": id, "patch": p}), if_match)
            }
            BulkOp::Delete { id, if_match } => (json!({"op": "delete", "id": id}), if_match),
        };
        if let Some(m) = if_match {
            v["if_match"] = json!(m);
        }
        v
    }
}

/// The result of one op, in op order.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct BulkResult {
    /// The document's id (generated for a put without one).
    #[serde(default)]
    pub id: Option<String>,
    /// The HTTP status the op alone would have answered.
    pub status: u16,
    /// The version written (puts and patches).
    #[serde(default)]
    pub version: Option<String>,
    /// The op's error, if it failed.
    #[serde(default)]
    pub error: Option<BulkError>,
}

/// An op's error.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct BulkError {
    /// Its code.
    pub code: String,
    /// Its message.
    pub message: String,
}

impl BulkResult {
    /// The op's error as an [`Error`], if it failed.
    pub fn error(&self) -> Option<Error> {
        self.error.as_ref().map(|e| Error::Api {
            code: ErrorCode::parse(&e.code),
            status: self.status,
            message: e.message.clone(),
        })
    }
}

impl<T> Collection<T> {
    /// Applies `ops` (at most 1000) in one request; each op's result in op order. One
    /// idempotency key covers the request (op *i* is `KEY#i` on the server).
    pub async fn bulk(&self, ops: &[BulkOp]) -> Result<Vec<BulkResult>> {
        self.bulk_with(ops, &CallOptions::default()).await
    }

    /// [`Collection::bulk`] with write concern, key or deadline.
    pub async fn bulk_with(&self, ops: &[BulkOp], opts: &CallOptions) -> Result<Vec<BulkResult>> {
        let body = json!({ "ops": ops.iter().map(BulkOp::to_json).collect::<Vec<_>>() });
        let call = Call::new(Method::POST, self.path("/bulk"))
            .json(&body)?
            .write(opts);
        let a = self.client.send(call).await?;
        decode(&a.url, &a.body["results"])
    }
}
