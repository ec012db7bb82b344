//! The HTTP side of the client: requests to the gateway or the replicator admin API with
//! the token attached, and API.md's error bodies turned into [`Failure`]s.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{Failure, Global};

/// A server's successful answer: its JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    /// The body, parsed.
    pub body: Value,
}

/// A connection to one cluster's gateway and replicator admin API.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    endpoint: String,
    admin: String,
    token: Option<String>,
}

fn base(url: &str, what: &str) -> Result<String, Failure> {
    let trimmed = url.trim_end_matches('/');
    if trimmed.starts_with("https://") {
        return Err(Failure::usage(format!(
            "{what} {url:?}: this client speaks plain http:// only (no TLS yet)"
        )));
    }
    if !trimmed.starts_with("http://") {
        return Err(Failure::usage(format!(
            "{what} {url:?} is not an http:// URL"
        )));
    }
    Ok(trimmed.to_string())
}

impl Api {
    /// A client for `global`'s endpoints and token.
    pub fn new(global: &Global) -> Result<Api, Failure> {
        // Longer than the longest server deadline (60 s), so the server's answer wins.
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(75))
            .build()
            .map_err(|e| Failure::other(format!("HTTP client: {e}")))?;
        Ok(Api {
            http,
            endpoint: base(&global.endpoint, "--endpoint")?,
            admin: base(&global.admin_endpoint, "--admin-endpoint")?,
            token: global.token.clone(),
        })
    }

    /// The gateway's base URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The bearer token, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A request to the gateway (`path` from `/v1/...`).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, &str)],
    ) -> Result<Answer, Failure> {
        self.send(method, &format!("{}{path}", self.endpoint), body, headers)
            .await
    }

    /// A POST of a JSON body to the replicator admin API.
    pub async fn admin_post(&self, path: &str, json: Vec<u8>) -> Result<Answer, Failure> {
        let url = format!("{}{path}", self.admin);
        self.send(Method::POST, &url, Some(("application/json", json)), &[])
            .await
    }

    /// A GET of the replicator admin API.
    pub async fn admin_get(&self, path: &str) -> Result<Answer, Failure> {
        self.send(Method::GET, &format!("{}{path}", self.admin), None, &[])
            .await
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, &str)],
    ) -> Result<Answer, Failure> {
        let mut req = self.http.request(method, url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some((content_type, bytes)) = body {
            req = req.header("content-type", content_type).body(bytes);
        }
        let resp = req.send().await.map_err(|e| {
            let why = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| e.to_string());
            Failure::other(format!("cannot reach {url}: {why}"))
        })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Failure::other(format!("reading the answer of {url}: {e}")))?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(Answer { body });
        }
        let err = &body["error"];
        match (err["code"].as_str(), err["message"].as_str()) {
            (Some(code), Some(message)) => Err(Failure::from_error(code, message)),
            _ if status == StatusCode::NOT_FOUND => Err(Failure::from_error(
                "not_found",
                &format!("{url} not found"),
            )),
            _ => Err(Failure::other(format!("{url} answered {status}"))),
        }
    }
}
