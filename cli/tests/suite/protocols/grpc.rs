//! The gRPC client of the parity suite (`aerolith.v1.Documents`).

use serde_json::{Value, json};
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};
use tonic_types::StatusExt;

use aerolith_proto::v1 as api;
use api::documents_client::DocumentsClient;

use super::{Outcome, doc, event, with_plan};

/// API.md's gRPC status of each error code.
pub fn grpc_code(code: &str) -> Code {
    match code {
        "invalid_argument" => Code::InvalidArgument,
        "unauthenticated" => Code::Unauthenticated,
        "permission_denied" => Code::PermissionDenied,
        "not_found" => Code::NotFound,
        "already_exists" => Code::AlreadyExists,
        "precondition_failed" => Code::FailedPrecondition,
        "payload_too_large" | "rate_limited" => Code::ResourceExhausted,
        "resume_token_expired" => Code::OutOfRange,
        "unavailable" => Code::Unavailable,
        "deadline_exceeded" => Code::DeadlineExceeded,
        _ => Code::Internal,
    }
}

/// The API.md code a status carries, checked against its status code and message.
pub fn code_of(s: &Status) -> String {
    let reason = s
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_else(|| format!("<no ErrorInfo: {s:?}>"));
    assert_eq!(s.code(), grpc_code(&reason), "gRPC code of {reason}: {s:?}");
    assert!(
        s.message().starts_with(&format!("{reason}: ")),
        "message of {reason}: {:?}",
        s.message()
    );
    reason
}

pub fn doc_from_grpc(d: &api::Document) -> Value {
    doc(
        &d.collection,
        &d.id,
        &d.version,
        &d.updated_at,
        &d.origin,
        d.data_json.clone(),
    )
}

pub struct Grpc {
    client: DocumentsClient<Channel>,
    /// The gRPC deadline of each call, when set.
    pub deadline: Option<std::time::Duration>,
    /// Sent as `x-aerolith-session` metadata with documents' reads and writes when set.
    pub session: Option<String>,
    /// Sent as `idempotency-key` metadata with documents' writes when set.
    pub idempotency_key: Option<String>,
}

fn opt(s: Option<&str>) -> String {
    s.unwrap_or_default().to_string()
}

impl Grpc {
    pub async fn connect(addr: &str) -> Grpc {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .expect("gRPC connects");
        Grpc {
            client: DocumentsClient::new(channel),
            deadline: None,
            session: None,
            idempotency_key: None,
        }
    }

    /// `message` as a request with the deadline, session and (for a write) idempotency key
    /// in force.
    fn request<T>(&self, message: T, write: bool) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        if let Some(d) = self.deadline {
            req.set_timeout(d);
        }
        let meta = req.metadata_mut();
        if let Some(s) = &self.session {
            meta.insert("x-aerolith-session", s.parse().expect("ASCII session"));
        }
        if let (true, Some(k)) = (write, &self.idempotency_key) {
            meta.insert("idempotency-key", k.parse().expect("ASCII key"));
        }
        req
    }

    pub fn client(&self) -> DocumentsClient<Channel> {
        self.client.clone()
    }

    pub async fn create_collection(&mut self, name: &str, strategy: Option<&str>) -> Outcome {
        let r = self
            .client
            .create_collection(api::CreateCollectionRequest {
                name: name.into(),
                conflict_strategy: opt(strategy),
            })
            .await
            .map_err(|s| code_of(&s))?
            .into_inner();
        let c = r.collection.unwrap_or_default();
        Ok(json!({"name": c.name, "conflict_strategy": c.conflict_strategy}))
    }

    pub async fn put(
        &mut self,
        coll: &str,
        id: Option<&str>,
        data: &str,
        m: Option<&str>,
        none_match: bool,
    ) -> Outcome {
        let req = self.request(
            api::PutDocumentRequest {
                collection: coll.into(),
                id: opt(id),
                data_json: data.into(),
                if_match: opt(m),
                if_none_match: if none_match {
                    "*".into()
                } else {
                    String::new()
                },
            },
            true,
        );
        let r = self
            .client
            .put_document(req)
            .await
            .map_err(|s| code_of(&s))?
            .into_inner();
        Ok(doc_from_grpc(&r.document.unwrap_or_default()))
    }

    pub async fn get(&mut self, coll: &str, id: &str) -> Outcome {
        let req = self.request(
            api::GetDocumentRequest {
                collection: coll.into(),
                id: id.into(),
            },
            false,
        );
        let d = self
            .client
            .get_document(req)
            .await
            .map_err(|s| code_of(&s))?
            .into_inner();
        Ok(doc_from_grpc(&d))
    }

    pub async fn patch(&mut self, coll: &str, id: &str, patch: &str, m: Option<&str>) -> Outcome {
        let req = self.request(
            api::PatchDocumentRequest {
                collection: coll.into(),
                id: id.into(),
                patch_json: patch.into(),
                if_match: opt(m),
            },
            true,
        );
        let d = self
            .client
            .patch_document(req)
            .await
            .map_err(|s| code_of(&s))?
            .into_inner();
        Ok(doc_from_grpc(&d))
    }

    pub async fn delete(&mut self, coll: &str, id: &str, m: Option<&str>) -> Outcome {
        let req = self.request(
            api::DeleteDocumentRequest {
                collection: coll.into(),
                id: id.into(),
                if_match: opt(m),
            },
            true,
        );
        self.client
            .delete_document(req)
            .await
            .map_err(|s| code_of(&s))?;
        Ok(Value::Null)
    }

    pub async fn query(&mut self, coll: &str, q: &Value) -> Outcome {
        let text = |v: &Value| {
            if v.is_null() {
                String::new()
            } else {
                v.to_string()
            }
        };
        let sort = q["sort"]
            .as_array()
            .map(|keys| {
                keys.iter()
                    .map(|k| api::SortField {
                        field: k["field"].as_str().unwrap_or_default().into(),
                        order: k["order"].as_str().unwrap_or_default().into(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let projection = q["projection"]
            .as_array()
            .map(|p| {
                p.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let page = self
            .client
            .query(api::QueryRequest {
                collection: coll.into(),
                filter_json: text(&q["filter"]),
                sort,
                limit: q["limit"].as_u64().map(|n| n as u32),
                cursor: q["cursor"].as_str().unwrap_or_default().into(),
                projection,
                explain: q["explain"].as_bool().unwrap_or(false),
            })
            .await
            .map_err(|s| code_of(&s))?
            .into_inner();
        let docs: Vec<Value> = page.documents.iter().map(doc_from_grpc).collect();
        let plan: Vec<Value> = page
            .plan
            .iter()
            .map(|s| json!({"node": s.node, "index": s.index, "examined": s.examined}))
            .collect();
        let plan = if q["explain"] == json!(true) {
            json!(plan)
        } else {
            Value::Null
        };
        Ok(with_plan(
            json!({"documents": docs, "next_cursor": page.next_cursor}),
            &plan,
        ))
    }

    pub async fn count(&mut self, coll: &str, filter: &Value) -> Outcome {
        let r = self
            .client
            .count(api::CountRequest {
                collection: coll.into(),
                filter_json: if filter.is_null() {
                    String::new()
                } else {
                    filter.to_string()
                },
            })
            .await
            .map_err(|s| code_of(&s))?
            .into_inner();
        Ok(json!({"count": r.count}))
    }

    pub async fn watch(&mut self, coll: &str, since: Option<&str>) -> Result<GrpcFeed, String> {
        let stream = self
            .client
            .watch(api::WatchRequest {
                collection: coll.into(),
                filter_json: String::new(),
                since: opt(since),
            })
            .await
            .map_err(|s| code_of(&s))?
            .into_inner();
        Ok(GrpcFeed { stream })
    }
}

pub struct GrpcFeed {
    stream: Streaming<api::WatchResponse>,
}

impl GrpcFeed {
    pub async fn next(&mut self) -> Outcome {
        let msg = self.stream.message().await.map_err(|s| code_of(&s))?;
        match msg.and_then(|m| m.item) {
            Some(api::watch_response::Item::Checkpoint(t)) => {
                Ok(json!({"op": "checkpoint", "token": t}))
            }
            Some(api::watch_response::Item::Event(e)) => Ok(event(
                &e.op,
                &e.id,
                &e.version,
                e.data_json.clone(),
                &e.token,
            )),
            None => Err("<stream ended>".to_string()),
        }
    }
}
