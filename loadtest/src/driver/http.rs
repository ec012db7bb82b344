//! What the HTTP drivers (REST, GraphQL) share: one client per worker, and how a
//! request and its answer become an operation's outcome.

use super::{OpError, REQUEST_TIMEOUT};

/// A reqwest client for one worker: one connection, a generous per-request timeout (a
/// slow answer is measured, a lost one becomes a `timeout` error).
pub(crate) fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .timeout(REQUEST_TIMEOUT)
        .build()?)
}

/// The error of a failed HTTP request.
pub(crate) fn request_error(e: reqwest::Error) -> OpError {
    if e.is_timeout() {
        OpError::new("timeout", e.to_string())
    } else {
        OpError::transport(e)
    }
}

/// Sends a request and reads the whole answer, whatever its status.
pub(crate) async fn exchange(
    req: reqwest::RequestBuilder,
) -> Result<(reqwest::StatusCode, bytes::Bytes), OpError> {
    let resp = req.send().await.map_err(request_error)?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(request_error)?;
    Ok((status, body))
}

/// Sends a request and reads the whole answer; a status other than success is an error.
pub(crate) async fn send(req: reqwest::RequestBuilder) -> Result<bytes::Bytes, OpError> {
    let (status, body) = exchange(req).await?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(status_error(status, &body))
    }
}

/// The error of an HTTP answer that is not a success: API.md's `error.code` when the body
/// has one, else `http_<status>`.
pub(crate) fn status_error(status: reqwest::StatusCode, body: &[u8]) -> OpError {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let code = error
        .and_then(|e| e.get("code"))
        .and_then(|c| c.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| format!("http_{}", status.as_u16()));
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(|m| m.as_str())
        .unwrap_or_default()
        .to_string();
    OpError::new(code, message)
}
