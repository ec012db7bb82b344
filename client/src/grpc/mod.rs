//! The gRPC transport (cargo feature `grpc`): the public `aerolith.v1.Documents` service
//! with the same error codes, idempotency keys, write concern, session, deadlines and
//! failover between gateways as REST.

mod convert;
mod watch;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aerolith_proto::v1 as pb;
use futures::Stream;
use pb::documents_client::DocumentsClient;
use serde_json::Value;
use tonic::metadata::MetadataMap;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::bulk::{BulkOp, BulkResult};
use crate::client::{CallOptions, DEFAULT_TIMEOUT, MAX_TIMEOUT};
use crate::collections::{CollectionInfo, ConflictStrategy};
use crate::documents::{Document, Patch, Written};
use crate::error::{Error, ErrorCode, Result, says_outcome_unknown};
use crate::query::{Page, Query};
use crate::session::Session;

pub use watch::GrpcChangeStream;

/// One gateway's gRPC port.
#[derive(Debug)]
struct Gateway {
    url: String,
    client: DocumentsClient<Channel>,
}

/// A client of the gateways' gRPC ports (documents' data as `serde_json::Value`). Cheap to
/// clone; clones share channels and the preferred gateway.
#[derive(Debug, Clone)]
pub struct GrpcClient {
    gateways: Arc<Vec<Gateway>>,
    /// The gateway that answered last: calls start there.
    preferred: Arc<AtomicUsize>,
    token: Option<String>,
    session: Option<Session>,
    timeout: Duration,
}

/// The error code of a gRPC status: the `<code>: ` its message starts with, else a
/// transport failure.
fn status_error(url: &str, s: &tonic::Status) -> Error {
    let message = s.message();
    if let Some((code, rest)) = message.split_once(": ")
        && !matches!(ErrorCode::parse(code), ErrorCode::Other(_))
    {
        let code = ErrorCode::parse(code);
        return Error::Api {
            status: code.http_status(),
            code,
            message: rest.to_string(),
        };
    }
    Error::Transport {
        url: url.to_string(),
        message: format!("{:?}: {message}", s.code()),
    }
}

/// Whether a status failed before the request reached the gateway (nothing was done): the
/// connection was refused or could not be made.
fn not_connected(s: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(s);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            )
        {
            return true;
        }
        let text = e.to_string();
        if text.contains("tcp connect error") || text.contains("dns error") {
            return true;
        }
        source = e.source();
    }
    false
}

/// How one attempt failed, and what that allows.
enum Attempt {
    /// Nothing was done: another gateway may be tried.
    Skip(Error),
    /// Maybe done: a write is retried at the same gateway with its key; a read elsewhere.
    Unknown(Error),
    /// Final.
    Fail(Error),
}

impl GrpcClient {
    /// Connects to one gateway's gRPC endpoint (`http://host:port`), failing at once if it
    /// cannot be reached.
    pub async fn connect(url: &str) -> Result<GrpcClient> {
        let client = DocumentsClient::connect(url.to_string())
            .await
            .map_err(|e| Error::Connect {
                url: url.to_string(),
                message: e.to_string(),
            })?;
        Ok(GrpcClient::of(vec![Gateway {
            url: url.to_string(),
            client,
        }]))
    }

    /// A client of several gateways' gRPC endpoints (`http://` or, trusting only `ca_pem`,
    /// `https://`), tried in order; each connects on first use.
    pub fn new<I, S>(urls: I, ca_pem: Option<&[u8]>) -> Result<GrpcClient>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut gateways = Vec::new();
        for url in urls {
            let url = url.into().trim_end_matches('/').to_string();
            let mut endpoint = Endpoint::from_shared(url.clone())
                .map_err(|e| Error::Config(format!("{url:?}: {e}")))?;
            if url.starts_with("https://") {
                let Some(pem) = ca_pem else {
                    return Err(Error::Config(format!("{url}: https:// needs the CA PEM")));
                };
                endpoint = endpoint
                    .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
                    .map_err(|e| Error::Config(format!("{url}: {e}")))?;
            } else if !url.starts_with("http://") {
                return Err(Error::Config(format!(
                    "{url:?} is not an http:// or https:// URL"
                )));
            }
            gateways.push(Gateway {
                url,
                client: DocumentsClient::new(endpoint.connect_lazy()),
            });
        }
        if gateways.is_empty() {
            return Err(Error::Config("no endpoint given".into()));
        }
        Ok(GrpcClient::of(gateways))
    }

    fn of(gateways: Vec<Gateway>) -> GrpcClient {
        GrpcClient {
            gateways: Arc::new(gateways),
            preferred: Arc::new(AtomicUsize::new(0)),
            token: None,
            session: None,
            timeout: DEFAULT_TIMEOUT,
        }
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

    /// The same client with this default deadline (at most 60 s).
    pub fn with_timeout(mut self, t: Duration) -> GrpcClient {
        self.timeout = t.min(MAX_TIMEOUT);
        self
    }

    /// The index of the gateway calls try first (the one that answered last).
    pub fn preferred(&self) -> usize {
        self.preferred.load(Ordering::Relaxed) % self.gateways.len()
    }

    /// Gateway indexes in the order to try them: the preferred first.
    fn order(&self) -> Vec<usize> {
        let n = self.gateways.len();
        let first = self.preferred();
        (0..n).map(|i| (first + i) % n).collect()
    }

    /// A request carrying `req`, the deadline left, and the metadata of the call.
    fn request<Req>(
        &self,
        req: Req,
        left: Duration,
        key: Option<&str>,
        opts: &CallOptions,
    ) -> tonic::Request<Req> {
        let mut r = tonic::Request::new(req);
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
        if let Some(k) = key {
            set("idempotency-key", k);
            if let Some(wc) = opts.write_concern {
                set("x-aerolith-write-concern", wc.as_str());
            }
        }
        r
    }

    /// Runs `call` within the deadline: gateways that cannot be reached or answer
    /// `unavailable` having done nothing are skipped; an outcome-unknown write is retried
    /// at the same gateway with its idempotency key; a read goes on to the next.
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
        let mut pinned: Option<usize> = None;
        let mut last: Option<Error> = None;
        let mut pause = Duration::from_millis(50);
        loop {
            let candidates = match pinned {
                Some(i) => vec![i],
                None => self.order(),
            };
            for i in candidates {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(last.unwrap_or(Error::Timeout(timeout)));
                }
                let g = &self.gateways[i];
                let r = self.request(req.clone(), left, key.as_deref(), opts);
                let answer = call(g.client.clone(), r).await;
                match answer {
                    Ok(resp) => {
                        self.keep_session(resp.metadata());
                        self.preferred.store(i, Ordering::Relaxed);
                        return Ok(resp.into_inner());
                    }
                    Err(s) => {
                        self.keep_session(s.metadata());
                        match classify(&g.url, &s) {
                            Attempt::Fail(e) => return Err(e),
                            Attempt::Skip(e) => last = Some(e),
                            Attempt::Unknown(e) => {
                                last = Some(e);
                                if write {
                                    pinned = Some(i);
                                    break;
                                }
                            }
                        }
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(last.unwrap_or(Error::Timeout(timeout)));
            }
            tokio::time::sleep(pause.min(left)).await;
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

    /// Every collection.
    pub async fn list_collections(&self) -> Result<Vec<CollectionInfo>> {
        let a = self
            .run(
                pb::ListCollectionsRequest {},
                &CallOptions::default(),
                false,
                |mut c, r| async move { c.list_collections(r).await },
            )
            .await?;
        a.collections
            .into_iter()
            .map(|c| self.collection_info(c))
            .collect()
    }

    /// Creates collection `name` (`strategy`: the server's default when `None`); whether
    /// it was created (false: it existed with that strategy).
    pub async fn create_collection(
        &self,
        name: &str,
        strategy: Option<ConflictStrategy>,
    ) -> Result<bool> {
        let req = pb::CreateCollectionRequest {
            name: name.into(),
            conflict_strategy: strategy.map(convert::strategy_name).unwrap_or_default(),
        };
        let a = self
            .run(req, &CallOptions::default(), true, |mut c, r| async move {
                c.create_collection(r).await
            })
            .await?;
        Ok(a.created)
    }

    /// Collection `name`.
    pub async fn get_collection(&self, name: &str) -> Result<CollectionInfo> {
        let req = pb::GetCollectionRequest { name: name.into() };
        let c = self
            .run(req, &CallOptions::default(), false, |mut c, r| async move {
                c.get_collection(r).await
            })
            .await?;
        self.collection_info(c)
    }

    /// Deletes collection `name` and its documents (admin role).
    pub async fn delete_collection(&self, name: &str) -> Result<()> {
        let req = pb::DeleteCollectionRequest { name: name.into() };
        self.run(req, &CallOptions::default(), true, |mut c, r| async move {
            c.delete_collection(r).await
        })
        .await?;
        Ok(())
    }

    /// Document `id` of `collection`.
    pub async fn get(&self, collection: &str, id: &str) -> Result<Document> {
        let req = pb::GetDocumentRequest {
            collection: collection.into(),
            id: id.into(),
        };
        let d = self
            .run(req, &CallOptions::default(), false, |mut c, r| async move {
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

    /// One page of `query` on `collection`, from `cursor` (`None`: the first page).
    pub async fn query_page(
        &self,
        collection: &str,
        query: &Query,
        cursor: Option<&str>,
    ) -> Result<Page> {
        let req = convert::query_request(collection, query, cursor);
        let p = self
            .run(req, &CallOptions::default(), false, |mut c, r| async move {
                c.query(r).await
            })
            .await?;
        Ok(Page {
            documents: p
                .documents
                .into_iter()
                .map(|d| self.document(d))
                .collect::<Result<_>>()?,
            next_cursor: p.next_cursor,
        })
    }

    /// Every document of `collection` matching `query`, following cursors page by page.
    pub fn query(
        &self,
        collection: &str,
        query: Query,
    ) -> impl Stream<Item = Result<Document>> + Send + use<> {
        let me = self.clone();
        let collection = collection.to_string();
        crate::query::pages(move |cursor| {
            let (me, collection, query) = (me.clone(), collection.clone(), query.clone());
            async move { me.query_page(&collection, &query, cursor.as_deref()).await }
        })
    }

    /// How many documents of `collection` match `filter`.
    pub async fn count(&self, collection: &str, filter: Value) -> Result<u64> {
        let req = pb::CountRequest {
            collection: collection.into(),
            filter_json: filter.to_string(),
        };
        let a = self
            .run(req, &CallOptions::default(), false, |mut c, r| async move {
                c.count(r).await
            })
            .await?;
        Ok(a.count)
    }

    /// Applies `ops` (at most 1000) to `collection` in one request; each op's result in
    /// op order. One idempotency key covers the request.
    pub async fn bulk(
        &self,
        collection: &str,
        ops: &[BulkOp],
        opts: &CallOptions,
    ) -> Result<Vec<BulkResult>> {
        let req = pb::BulkWriteRequest {
            collection: collection.into(),
            ops: ops.iter().map(convert::bulk_op).collect(),
        };
        let a = self
            .run(
                req,
                opts,
                true,
                |mut c, r| async move { c.bulk_write(r).await },
            )
            .await?;
        Ok(a.results.into_iter().map(convert::bulk_result).collect())
    }

    /// `collection`'s change stream (the `Watch` call), from now on; it resumes from its
    /// last token after a broken stream, as [`crate::ChangeStream`] does over WebSocket.
    pub fn changes(&self, collection: &str) -> GrpcChangeStream {
        GrpcChangeStream::new(self.clone(), collection)
    }

    fn decode(&self, message: &str) -> Error {
        Error::Decode {
            url: self.gateways[self.preferred()].url.clone(),
            message: message.to_string(),
        }
    }

    fn json(&self, text: &str) -> Result<Value> {
        serde_json::from_str(text).map_err(|e| self.decode(&e.to_string()))
    }

    fn document(&self, d: pb::Document) -> Result<Document> {
        convert::document(d, |text| self.json(text))
    }

    fn collection_info(&self, c: pb::Collection) -> Result<CollectionInfo> {
        convert::collection_info(c).ok_or_else(|| self.decode("an unknown conflict strategy"))
    }
}

/// What a failed attempt at gateway `url` allows.
fn classify(url: &str, s: &tonic::Status) -> Attempt {
    if not_connected(s) {
        return Attempt::Skip(Error::Connect {
            url: url.to_string(),
            message: s.message().to_string(),
        });
    }
    let error = status_error(url, s);
    match &error {
        Error::Api {
            code: ErrorCode::Unavailable,
            message,
            ..
        } if says_outcome_unknown(message) => Attempt::Unknown(error),
        Error::Api {
            code: ErrorCode::Unavailable,
            ..
        } => Attempt::Skip(error),
        Error::Transport { .. } => Attempt::Unknown(error),
        _ => Attempt::Fail(error),
    }
}
