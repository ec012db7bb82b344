//! The REST calls the fault classes make, each answer sorted into what a client can know:
//! done, refused (nothing was written) or unknown (it may or may not have happened).

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

/// A request's deadline, as the gateway is told it.
const TIMEOUT: Duration = Duration::from_secs(3);

/// What a client knows after a request.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Answered with success: the status and body.
    Done(u16, Value, Option<String>),
    /// Answered with an error that means nothing was written (4xx).
    Refused(u16),
    /// No answer, or an answer (5xx) that does not say whether the write happened: its
    /// error code and message (empty when there was no answer).
    Unknown(String),
}

impl Outcome {
    /// The body of a successful answer.
    pub fn body(&self) -> Option<&Value> {
        match self {
            Outcome::Done(_, b, _) => Some(b),
            _ => None,
        }
    }

    /// Whether the gateway said outright that the write's outcome is unknown.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Outcome::Unknown(m) if m.contains("outcome of the write is unknown"))
    }
}

/// A REST client for one cluster.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
}

impl Default for Api {
    fn default() -> Self {
        Api {
            http: reqwest::Client::new(),
        }
    }
}

/// Extra request headers.
pub type Headers<'a> = &'a [(&'a str, String)];

impl Api {
    /// Sends a request; `deadline` overrides the default one given to the gateway.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<(&str, Value)>,
        headers: Headers<'_>,
    ) -> Outcome {
        // The gateway's deadline (the default, or the caller's), and a little more here.
        let deadline = headers
            .iter()
            .find(|(k, _)| *k == "x-aerolith-timeout-ms")
            .and_then(|(_, v)| v.parse().ok())
            .map_or(TIMEOUT, Duration::from_millis);
        let mut req = self
            .http
            .request(method, url)
            .timeout(deadline + Duration::from_secs(1));
        if !headers.iter().any(|(k, _)| *k == "x-aerolith-timeout-ms") {
            req = req.header("x-aerolith-timeout-ms", TIMEOUT.as_millis().to_string());
        }
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        if let Some((content_type, b)) = body {
            req = req.header("content-type", content_type).body(b.to_string());
        }
        match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let session = r
                    .headers()
                    .get("x-aerolith-session")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = r.json().await.unwrap_or(Value::Null);
                match status {
                    200..=299 => Outcome::Done(status, body, session),
                    400..=499 => Outcome::Refused(status),
                    _ => Outcome::Unknown(format!(
                        "{}: {}",
                        body["error"]["code"].as_str().unwrap_or("?"),
                        body["error"]["message"].as_str().unwrap_or("")
                    )),
                }
            }
            Err(_) => {
                // A gateway that is down: do not spin on it.
                tokio::time::sleep(Duration::from_millis(50)).await;
                Outcome::Unknown(String::new())
            }
        }
    }

    /// `PUT` of a JSON body.
    pub async fn put(&self, url: &str, body: Value, headers: Headers<'_>) -> Outcome {
        self.send(Method::PUT, url, Some(("application/json", body)), headers)
            .await
    }

    /// `PATCH` with a merge patch.
    pub async fn patch(&self, url: &str, patch: Value) -> Outcome {
        self.send(
            Method::PATCH,
            url,
            Some(("application/merge-patch+json", patch)),
            &[],
        )
        .await
    }

    /// `DELETE`.
    pub async fn delete(&self, url: &str, headers: Headers<'_>) -> Outcome {
        self.send(Method::DELETE, url, None, headers).await
    }

    /// `GET`: the status (0 when unanswered) and body.
    pub async fn get(&self, url: &str, headers: Headers<'_>) -> (u16, Value) {
        match self.send(Method::GET, url, None, headers).await {
            Outcome::Done(s, b, _) => (s, b),
            Outcome::Refused(s) => (s, Value::Null),
            Outcome::Unknown(_) => (0, Value::Null),
        }
    }

    /// `POST` without a body (admin actions).
    pub async fn post(&self, url: &str) -> Outcome {
        self.send(Method::POST, url, None, &[]).await
    }

    /// Every document id of a collection through one gateway, page by page; `None` when a
    /// page could not be read.
    pub async fn ids(&self, base: &str, collection: &str) -> Option<Vec<String>> {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{base}/v1/collections/{collection}/docs?limit=1000");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let (status, page) = self.get(&url, &[]).await;
            if status != 200 {
                return None;
            }
            for d in page["documents"].as_array()? {
                ids.push(d["id"].as_str()?.to_string());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return Some(ids),
            }
        }
    }
}
