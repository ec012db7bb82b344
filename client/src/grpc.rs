//! The gRPC transport (cargo feature `grpc`): documents over `aerolith.v1.Documents`, with
//! the same error codes, idempotency keys, write concern, session and deadlines as REST.

use std::time::{Duration, Instant};

use aerolith_proto::v1 as pb;
use pb::documents_client::DocumentsClient;
use serde_json::Value;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;

use crate::client::{CallOptions, DEFAULT_TIMEOUT, MAX_TIMEOUT};
use crate::documents::{ConflictVersion, Document, Patch, Written};
use crate::error::{Error, ErrorCode, Result};
use crate::session::Session;

/// A client of one gateway's gRPC port (documents and collections' JSON as `Value`).
#[derive(Debug, Clone)]
pub struct GrpcClient {
    inner: DocumentsClient<Channel>,
    url: String,
    token: Option<String>,
    session: Option<Session>,
    timeout: Duration,
}

/// The error code of a gRPC status: the `<code>: ` its message starts with, else its status.
fn status_error(url: &str, s: &tonic::Status) -> Error {
    let message = s.message();
    if let Some((code, rest)) = message.split_once(": ")
        && !matches!(ErrorCode::parse(code), ErrorCode::Other(_))
    {
        return Error::Api {
            code: ErrorCode::parse(code),
            status: s.code() as u16,
            message: rest.to_string(),
        };
    }
    Error::Transport {
        url: url.to_string(),
        message: format!("{:?}: {message}", s.code()),
    }
}

impl GrpcClient {
    /// Connects to the gRPC endpoint at `url` (`http://host:port`).
    pub async fn connect(url: &str) -> Result<GrpcClient> {
        let inner = DocumentsClient::connect(url.to_string())
            .await
            .map_err(|e| Error::Connect {
                url: url.to_string(),
                message: e.to_string(),
            })?;
        Ok(GrpcClient {
            inner,
            url: url.to_string(),
            token: None,
            session: None,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The same client sending this bearer token.
    pub fn with_token(mut self, token: impl Into<String>) -> GrpcClient {
        self.token = Some(token.into());
        self
    }

    /// The same client carrying this session (`x-aerolith-session` both ways).
    pub fn with_session(mut self, session: Session) -> GrpcClient {
        self.session = Some(session);
        self
    }

    /// Runs `call` with metadata for `opts` until it succeeds, fails for good, or the
    /// deadline passes; a write keeps one idempotency key across its retries.
    async fn run<Req: Clone, Resp, F, Fut>(
        &self,
        req: Req,
        opts: &CallOptions,
        write: bool,
        call: F,
    ) -> Result<Resp>
    where
        F: Fn(DocumentsClient<Channel>, tonic::Request<Req>) -> Fut,
        Fut:
            std::future::Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let timeout = opts.timeout.unwrap_or(self.timeout).min(MAX_TIMEOUT);
        let deadline = Instant::now() + timeout;
        let key = write.then(|| {
            opts.idempotency_key
                .clone()
                .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
        });
        let mut pause = Duration::from_millis(50);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut r = tonic::Request::new(req.clone());
            r.set_timeout(left.max(Duration::from_millis(1)));
            let md = r.metadata_mut();
            let mut set = |k: &'static str, v: &str| {
                if let Ok(v) = v.parse() {
                    md.insert(k, v);
                }
            };
            if let Some(t) = &self.token {
                set("authorization", &format!("Bearer {t}"));
            }
            if let Some(t) = self.session.as_ref().and_then(Session::token) {
                set("x-aerolith-session", &t);
            }
            if let Some(k) = &key {
                set("idempotency-key", k);
            }
            if let (true, Some(wc)) = (write, opts.write_concern) {
                set("x-aerolith-write-concern", wc.as_str());
            }
            let answer = call(self.inner.clone(), r).await;
            let md = match &answer {
                Ok(resp) => resp.metadata(),
                Err(s) => s.metadata(),
            };
            self.keep_session(md);
            let status = match answer {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(s) => s,
            };
            let error = status_error(&self.url, &status);
            let retry = matches!(
                &error,
                Error::Api {
                    code: ErrorCode::Unavailable,
                    ..
                } | Error::Transport { .. }
            );
            if !retry || Instant::now() + pause >= deadline {
                return Err(error);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    fn keep_session(&self, md: &MetadataMap) {
        if let (Some(s), Some(t)) = (
            &self.session,
            md.get("x-aerolith-session").and_then(|v| v.to_str().ok()),
        ) {
            s.update(t);
        }
    }

    /// Document `id` of `collection`.
    pub async fn get(&self, collection: &str, id: &str) -> Result<Document> {
        let req = pb::GetDocumentRequest {
            collection: collection.into(),
            id: id.into(),
        };
        let opts = CallOptions::default();
        let d = self
            .run(req, &opts, false, |mut c, r| async move {
                c.get_document(r).await
            })
            .await?;
        self.document(d)
    }

    /// Creates or replaces document `id` (empty: a generated id) with `data`.
    pub async fn put(
        &self,
        collection: &str,
        id: &str,
        data: &Value,
        opts: &CallOptions,
    ) -> Result<Written> {
        let req = pb::PutDocumentRequest {
            collection: collection.into(),
            id: id.into(),
            data_json: data.to_string(),
            if_match: opts.if_match.clone().unwrap_or_default(),
            if_none_match: if opts.if_none_match {
                "*".into()
            } else {
                String::new()
            },
        };
        let a = self
            .run(req, opts, true, |mut c, r| async move {
                c.put_document(r).await
            })
            .await?;
        let Some(d) = a.document else {
            return Err(self.decode("PutDocument answered no document"));
        };
        Ok(Written {
            created: a.created,
            document: self.document(d)?,
        })
    }

    /// Patches document `id`.
    pub async fn patch(
        &self,
        collection: &str,
        id: &str,
        patch: &Patch,
        opts: &CallOptions,
    ) -> Result<Document> {
        let (Patch::Merge(p) | Patch::Json(p)) = patch;
        let req = pb::PatchDocumentRequest {
            collection: collection.into(),
            id: id.into(),
            patch_json: p.to_string(),
            if_match: opts.if_match.clone().unwrap_or_default(),
        };
        let d = self
            .run(req, opts, true, |mut c, r| async move {
                c.patch_document(r).await
            })
            .await?;
        self.document(d)
    }

    /// Deletes document `id`.
    pub async fn delete(&self, collection: &str, id: &str, opts: &CallOptions) -> Result<()> {
        let req = pb::DeleteDocumentRequest {
            collection: collection.into(),
            id: id.into(),
            if_match: opts.if_match.clone().unwrap_or_default(),
        };
        self.run(req, opts, true, |mut c, r| async move {
            c.delete_document(r).await
        })
        .await?;
        Ok(())
    }

    fn decode(&self, message: &str) -> Error {
        Error::Decode {
            url: self.url.clone(),
            message: message.to_string(),
        }
    }

    fn json(&self, text: &str) -> Result<Value> {
        serde_json::from_str(text).map_err(|e| self.decode(&e.to_string()))
    }

    fn document(&self, d: pb::Document) -> Result<Document> {
        let conflicts = d
            .conflicts
            .into_iter()
            .map(|c| {
                Ok(ConflictVersion {
                    data: self.json(&c.data_json)?,
                    version: c.version,
                    updated_at: c.updated_at,
                    origin: c.origin,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Document {
            data: self.json(&d.data_json)?,
            collection: d.collection,
            id: d.id,
            version: d.version,
            updated_at: d.updated_at,
            origin: d.origin,
            conflicts,
        })
    }
}
