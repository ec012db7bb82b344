//! The REST client of the parity suite.

use std::collections::VecDeque;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Outcome, doc_from_json, event, page_from_json};

/// API.md's HTTP status of each error code.
pub fn http_status(code: &str) -> u16 {
    match code {
        "invalid_argument" => 400,
        "unauthenticated" => 401,
        "permission_denied" => 403,
        "not_found" => 404,
        "already_exists" | "precondition_failed" => 412,
        "payload_too_large" => 413,
        "rate_limited" => 429,
        "resume_token_expired" => 410,
        "unavailable" => 503,
        "deadline_exceeded" => 504,
        _ => 500,
    }
}

pub struct Rest {
    base: String,
    http: reqwest::Client,
    /// Sent as `X-Aerolith-Timeout-Ms` when set.
    pub deadline_ms: Option<u64>,
    /// Sent as `X-Aerolith-Session` with documents' reads and writes when set.
    pub session: Option<String>,
    /// Sent as `Idempotency-Key` with documents' writes when set.
    pub idempotency_key: Option<String>,
}

async fn send(
    http: &reqwest::Client,
    method: Method,
    url: String,
    body: Option<(&str, String)>,
    headers: &[(&str, String)],
) -> Result<(StatusCode, Value), String> {
    let mut req = http.request(method, url);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    if let Some((ct, b)) = body {
        req = req.header("content-type", ct).body(b);
    }
    let resp = req.send().await.expect("REST request sent");
    let status = resp.status();
    let raw = resp.bytes().await.expect("REST body read");
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        return Ok((status, body));
    }
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or("<no code>")
        .to_string();
    assert_eq!(
        status.as_u16(),
        http_status(&code),
        "REST status of {code}: {body}"
    );
    Err(code)
}

fn if_match(m: Option<&str>) -> Vec<(&'static str, String)> {
    m.map(|m| vec![("if-match", format!("\"{m}\""))])
        .unwrap_or_default()
}

impl Rest {
    pub fn new(base: &str) -> Rest {
        Rest {
            base: format!("http://{base}"),
            http: reqwest::Client::new(),
            deadline_ms: None,
            session: None,
            idempotency_key: None,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The deadline, session and (for a write) idempotency key headers in force.
    fn extra(&self, write: bool) -> Vec<(&'static str, String)> {
        let mut h = Vec::new();
        if let Some(ms) = self.deadline_ms {
            h.push(("x-aerolith-timeout-ms", ms.to_string()));
        }
        if let Some(s) = &self.session {
            h.push(("x-aerolith-session", s.clone()));
        }
        if let (true, Some(k)) = (write, &self.idempotency_key) {
            h.push(("idempotency-key", k.clone()));
        }
        h
    }

    pub async fn create_collection(&mut self, name: &str, strategy: Option<&str>) -> Outcome {
        let body = strategy.map(|s| json!({"conflict_strategy": s}).to_string());
        let (_, b) = send(
            &self.http,
            Method::PUT,
            self.url(&format!("/v1/collections/{name}")),
            body.map(|b| ("application/json", b)),
            &[],
        )
        .await?;
        Ok(json!({"name": b["name"], "conflict_strategy": b["conflict_strategy"]}))
    }

    pub async fn put(
        &mut self,
        coll: &str,
        id: Option<&str>,
        data: &str,
        m: Option<&str>,
        none_match: bool,
    ) -> Outcome {
        let mut headers = if_match(m);
        headers.extend(self.extra(true));
        if none_match {
            headers.push(("if-none-match", "*".to_string()));
        }
        let (method, path) = match id {
            Some(id) => (Method::PUT, format!("/v1/collections/{coll}/docs/{id}")),
            None => (Method::POST, format!("/v1/collections/{coll}/docs")),
        };
        let (status, b) = send(
            &self.http,
            method,
            self.url(&path),
            Some(("application/json", data.to_string())),
            &headers,
        )
        .await?;
        assert!(status == 200 || status == 201, "{status}");
        Ok(doc_from_json(&b))
    }

    pub async fn get(&mut self, coll: &str, id: &str) -> Outcome {
        let path = format!("/v1/collections/{coll}/docs/{id}");
        let headers = self.extra(false);
        let (_, b) = send(&self.http, Method::GET, self.url(&path), None, &headers).await?;
        Ok(doc_from_json(&b))
    }

    pub async fn patch(&mut self, coll: &str, id: &str, patch: &str, m: Option<&str>) -> Outcome {
        let ct = if patch.trim_start().starts_with('[') {
            "application/json-patch+json"
        } else {
            "application/merge-patch+json"
        };
        let path = format!("/v1/collections/{coll}/docs/{id}");
        let (_, b) = send(
            &self.http,
            Method::PATCH,
            self.url(&path),
            Some((ct, patch.to_string())),
            &[if_match(m), self.extra(true)].concat(),
        )
        .await?;
        Ok(doc_from_json(&b))
    }

    pub async fn delete(&mut self, coll: &str, id: &str, m: Option<&str>) -> Outcome {
        let path = format!("/v1/collections/{coll}/docs/{id}");
        let (status, _) = send(
            &self.http,
            Method::DELETE,
            self.url(&path),
            None,
            &[if_match(m), self.extra(true)].concat(),
        )
        .await?;
        assert_eq!(status, 204);
        Ok(Value::Null)
    }

    pub async fn query(&mut self, coll: &str, q: &Value) -> Outcome {
        let path = format!("/v1/collections/{coll}/query");
        let (_, b) = send(
            &self.http,
            Method::POST,
            self.url(&path),
            Some(("application/json", q.to_string())),
            &[],
        )
        .await?;
        Ok(page_from_json(&b))
    }

    pub async fn count(&mut self, coll: &str, filter: &Value) -> Outcome {
        let path = format!("/v1/collections/{coll}/count");
        let body = json!({ "filter": filter });
        let (_, b) = send(
            &self.http,
            Method::POST,
            self.url(&path),
            Some(("application/json", body.to_string())),
            &[],
        )
        .await?;
        Ok(json!({"count": b["count"]}))
    }

    /// The polling feed, from `since` or (like a subscription) from the current head.
    pub async fn watch(&mut self, coll: &str, since: Option<&str>) -> Result<RestFeed, String> {
        let mut feed = RestFeed {
            http: self.http.clone(),
            url: self.url(&format!("/v1/collections/{coll}/changes")),
            token: since.map(str::to_string),
            queue: VecDeque::new(),
        };
        if since.is_none() {
            // Without `since` a poll starts at the oldest change: skip to the head.
            loop {
                if feed.poll().await? == 0 {
                    feed.queue.clear();
                    break;
                }
                feed.queue.clear();
            }
        } else {
            // A malformed token fails at once, as a subscription does.
            feed.poll().await?;
        }
        let token = feed.token.clone().unwrap_or_default();
        feed.queue
            .push_front(json!({"op": "checkpoint", "token": token}));
        Ok(feed)
    }
}

pub struct RestFeed {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    queue: VecDeque<Value>,
}

impl RestFeed {
    /// Polls once; the number of changes queued.
    async fn poll(&mut self) -> Result<usize, String> {
        let mut url = format!("{}?limit=100", self.url);
        if let Some(t) = &self.token {
            url.push_str(&format!("&since={t}"));
        }
        let (_, b) = send(&self.http, Method::GET, url, None, &[]).await?;
        let changes = b["changes"].as_array().cloned().unwrap_or_default();
        for c in &changes {
            let data = (!c["data"].is_null()).then(|| serde_json::to_string(&c["data"]).unwrap());
            self.queue.push_back(event(
                c["op"].as_str().unwrap_or("?"),
                c["id"].as_str().unwrap_or("?"),
                c["version"].as_str().unwrap_or("?"),
                data,
                c["token"].as_str().unwrap_or("?"),
            ));
        }
        self.token = b["next"].as_str().map(str::to_string);
        Ok(changes.len())
    }

    pub async fn next(&mut self) -> Outcome {
        loop {
            if let Some(v) = self.queue.pop_front() {
                return Ok(v);
            }
            if self.poll().await? == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
