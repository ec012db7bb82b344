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

/// A base URL: `http://`, or `https://` when a CA to trust was given.
fn base(url: &str, what: &str, tls: bool) -> Result<String, Failure> {
    let trimmed = url.trim_end_matches('/');
    if trimmed.starts_with("https://") && !tls {
        return Err(Failure::usage(format!(
            "{what} {url:?} is https://: pass --ca PEM (the CA that signed its certificate; \
             `aerolith certs --public-names` writes public-ca.pem)"
        )));
    }
    if !trimmed.starts_with("http://") && !trimmed.starts_with("https://") {
        return Err(Failure::usage(format!(
            "{what} {url:?} is not an http:// or https:// URL"
        )));
    }
    Ok(trimmed.to_string())
}

/// The HTTP client: trusting only `ca` (and no system roots) for https:// when given.
fn http_client(ca: Option<&std::path::Path>) -> Result<reqwest::Client, Failure> {
    // Longer than the longest server deadline (60 s), so the server's answer wins.
    let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(75));
    if let Some(path) = ca {
        let pem = std::fs::read(path)
            .map_err(|e| Failure::usage(format!("cannot read --ca {}: {e}", path.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            Failure::usage(format!(
                "--ca {}: not PEM certificates: {e}",
                path.display()
            ))
        })?;
        if certs.is_empty() {
            return Err(Failure::usage(format!(
                "--ca {} holds no certificate",
                path.display()
            )));
        }
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| Failure::other(format!("HTTP client: {e}")))
}

impl Api {
    /// A client for `global`'s endpoints, token and CA.
    pub fn new(global: &Global) -> Result<Api, Failure> {
        let tls = global.ca.is_some();
        Ok(Api {
            http: http_client(global.ca.as_deref())?,
            endpoint: base(&global.endpoint, "--endpoint", tls)?,
            admin: base(&global.admin_endpoint, "--admin-endpoint", tls)?,
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
