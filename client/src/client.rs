//! The client: configuration, and one call's journey through the gateways (failover,
//! retries with the idempotency key, deadlines, the session header).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::endpoints::Endpoints;
use crate::error::{Error, ErrorCode, Result};
use crate::session::Session;

/// The default deadline of a call (the server's REST default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest deadline the server accepts (`X-Aerolith-Timeout-Ms` at most 60000).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// When a write counts as acknowledged (API.md "Write concern").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteConcern {
    /// Durable on the storage node that took it (the server's default).
    #[default]
    Local,
    /// Applied by every DC not marked down.
    All,
}

impl WriteConcern {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteConcern::Local => "local",
            WriteConcern::All => "all",
        }
    }
}

/// Per-call settings; every field is optional and falls back to the client's defaults.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// The call's deadline (client side and `X-Aerolith-Timeout-Ms`).
    pub timeout: Option<Duration>,
    /// The write concern of a write.
    pub write_concern: Option<WriteConcern>,
    /// The idempotency key of a write (default: a new UUIDv7 per logical write).
    pub idempotency_key: Option<String>,
    /// Only if the document's version is this one (`*`: any existing document).
    pub if_match: Option<String>,
    /// Only if the document does not exist (`If-None-Match: *`).
    pub if_none_match: bool,
}

impl CallOptions {
    /// Options with this deadline.
    pub fn timeout(mut self, t: Duration) -> CallOptions {
        self.timeout = Some(t);
        self
    }

    /// Options with this write concern.
    pub fn write_concern(mut self, wc: WriteConcern) -> CallOptions {
        self.write_concern = Some(wc);
        self
    }

    /// Options with this idempotency key.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> CallOptions {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Options with an `If-Match` version.
    pub fn if_match(mut self, version: impl Into<String>) -> CallOptions {
        self.if_match = Some(version.into());
        self
    }

    /// Options that create only (`If-None-Match: *`).
    pub fn if_none_match(mut self) -> CallOptions {
        self.if_none_match = true;
        self
    }
}

/// Builds a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    endpoints: Vec<String>,
    token: Option<String>,
    ca_pem: Option<Vec<u8>>,
    timeout: Duration,
    write_concern: Option<WriteConcern>,
    session: Option<Session>,
    feed_poll: Duration,
    retry: bool,
}

impl ClientBuilder {
    /// Adds a gateway base URL (`http://host:port`); calls fail over between them in order.
    pub fn endpoint(mut self, url: impl Into<String>) -> ClientBuilder {
        self.endpoints.push(url.into());
        self
    }

    /// Sends `Authorization: Bearer <token>` with every call.
    pub fn token(mut self, token: impl Into<String>) -> ClientBuilder {
        self.token = Some(token.into());
        self
    }

    /// Trusts only the CA certificates of this PEM for https:// (no system roots).
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> ClientBuilder {
        self.ca_pem = Some(pem.into());
        self
    }

    /// The default deadline of every call (at most 60 s).
    pub fn timeout(mut self, t: Duration) -> ClientBuilder {
        self.timeout = t;
        self
    }

    /// The default write concern of every write.
    pub fn write_concern(mut self, wc: WriteConcern) -> ClientBuilder {
        self.write_concern = Some(wc);
        self
    }

    /// Carries this session's token across every call (read-your-writes anywhere).
    pub fn session(mut self, session: Session) -> ClientBuilder {
        self.session = Some(session);
        self
    }

    /// How long a change feed waits before polling again after an empty page.
    pub fn feed_poll_interval(mut self, t: Duration) -> ClientBuilder {
        self.feed_poll = t;
        self
    }

    /// Whether a call that failed at every gateway goes round again until its deadline
    /// (the default), or fails after one pass (a command-line tool's quick answer).
    pub fn retry_until_deadline(mut self, retry: bool) -> ClientBuilder {
        self.retry = retry;
        self
    }

    /// The client, or a configuration error (no endpoint, a bad URL, a bad CA).
    pub fn build(self) -> Result<Client> {
        let endpoints = Endpoints::new(self.endpoints)?;
        let http = http_client(self.ca_pem.as_deref())?;
        let ws_tls = self
            .ca_pem
            .as_deref()
            .map(crate::ws::tls_config)
            .transpose()?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                endpoints,
                token: self.token,
                timeout: self.timeout.min(MAX_TIMEOUT),
                write_concern: self.write_concern,
                session: self.session,
                feed_poll: self.feed_poll,
                retry: self.retry,
                ws_tls,
            }),
        })
    }
}

/// The HTTP client, trusting only `ca` (no system roots) when given.
pub(crate) fn http_client(ca: Option<&[u8]>) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder();
    if let Some(pem) = ca {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| Error::Config(format!("not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(Error::Config("the CA PEM holds no certificate".into()));
        }
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| Error::Config(format!("HTTP client: {e}")))
}

/// A client of one cluster's gateways. Cheap to clone; clones share connections,
/// endpoint preference and session.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    endpoints: Endpoints,
    token: Option<String>,
    timeout: Duration,
    write_concern: Option<WriteConcern>,
    session: Option<Session>,
    feed_poll: Duration,
    retry: bool,
    /// `wss://` settings (the CA given), built once.
    ws_tls: Option<Arc<rustls::ClientConfig>>,
}

/// One HTTP call as the modules describe it.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub method: Method,
    pub path: String,
    pub body: Option<(String, Vec<u8>)>,
    /// A write: gets an idempotency key and a write concern; retried only with its key.
    pub write: bool,
    pub opts: CallOptions,
    /// Send it only to this gateway (change feeds: tokens name one DC).
    pub pin: Option<usize>,
}

impl Call {
    /// A call without a body.
    pub fn new(method: Method, path: String) -> Call {
        Call {
            method,
            path,
            body: None,
            write: false,
            opts: CallOptions::default(),
            pin: None,
        }
    }

    /// The same call with a JSON body.
    pub fn json(mut self, body: &impl serde::Serialize) -> Result<Call> {
        let bytes = serde_json::to_vec(body).map_err(|e| Error::Config(format!("body: {e}")))?;
        self.body = Some(("application/json".to_string(), bytes));
        Ok(self)
    }

    /// The same call as a write with these options.
    pub fn write(mut self, opts: &CallOptions) -> Call {
        self.write = true;
        self.opts = opts.clone();
        self
    }

    /// The same call with these options (a read).
    pub fn opts(mut self, opts: &CallOptions) -> Call {
        self.opts = opts.clone();
        self
    }
}

/// A successful answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Value,
    /// The gateway that answered.
    pub endpoint: usize,
    pub url: String,
}

/// How one attempt failed, and what that allows.
enum Attempt {
    /// Nothing was done: another gateway may be tried.
    Skip(Error),
    /// Maybe done: retry at the same gateway with the key (writes), or elsewhere (reads).
    Unknown(Error),
    /// Final.
    Fail(Error),
}

impl Client {
    /// A builder with no endpoint yet (add at least one).
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            endpoints: Vec::new(),
            token: None,
            ca_pem: None,
            timeout: DEFAULT_TIMEOUT,
            write_concern: None,
            session: None,
            feed_poll: Duration::from_millis(250),
            retry: true,
        }
    }

    /// A client of one gateway with the defaults.
    pub fn new(endpoint: impl Into<String>) -> Result<Client> {
        Client::builder().endpoint(endpoint).build()
    }

    /// The gateways.
    pub fn endpoints(&self) -> &Endpoints {
        &self.inner.endpoints
    }

    /// The bearer token, if any.
    pub fn token(&self) -> Option<&str> {
        self.inner.token.as_deref()
    }

    /// The session carried across calls, if any.
    pub fn session(&self) -> Option<&Session> {
        self.inner.session.as_ref()
    }

    /// A client sharing this one's connections and endpoints, carrying `session`.
    pub fn with_session(&self, session: Session) -> Client {
        let i = &self.inner;
        Client {
            inner: Arc::new(Inner {
                http: i.http.clone(),
                endpoints: i.endpoints.clone(),
                token: i.token.clone(),
                timeout: i.timeout,
                write_concern: i.write_concern,
                session: Some(session),
                feed_poll: i.feed_poll,
                retry: i.retry,
                ws_tls: i.ws_tls.clone(),
            }),
        }
    }

    /// The default deadline of a call (also bounds a WebSocket's handshake).
    pub(crate) fn default_timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The TLS settings of `wss://`, when a CA was given.
    pub(crate) fn ws_tls(&self) -> Option<&Arc<rustls::ClientConfig>> {
        self.inner.ws_tls.as_ref()
    }

    pub(crate) fn feed_poll(&self) -> Duration {
        self.inner.feed_poll
    }

    /// A raw call to the gateway: `method` on `path` (from `/v1/...`) with an optional JSON
    /// body; the answer's JSON (`Null` when empty). Reads fail over; set `write` for calls
    /// that change data (they get an idempotency key and are retried only with it).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        write: bool,
        opts: &CallOptions,
    ) -> Result<Value> {
        let mut call = Call::new(method, path.to_string()).opts(opts);
        call.body = body.map(|(t, b)| (t.to_string(), b));
        call.write = write;
        Ok(self.send(call).await?.body)
    }

    /// Sends `call` within its deadline: gateways that refuse connections or answer
    /// `unavailable` (having done nothing) are skipped; an answer of unknown outcome is
    /// retried at the same gateway with the same idempotency key (reads: at the next one).
    pub(crate) async fn send(&self, mut call: Call) -> Result<Answer> {
        let timeout = call
            .opts
            .timeout
            .unwrap_or(self.inner.timeout)
            .min(MAX_TIMEOUT);
        let deadline = Instant::now() + timeout;
        if call.write && call.opts.idempotency_key.is_none() {
            call.opts.idempotency_key = Some(uuid::Uuid::now_v7().to_string());
        }
        let order = match call.pin {
            Some(i) => vec![i],
            None => self.inner.endpoints.order(),
        };
        let mut last: Option<Error> = None;
        let mut pinned: Option<usize> = None;
        let mut pause = Duration::from_millis(50);
        loop {
            let candidates: Vec<usize> = match pinned {
                Some(i) => vec![i],
                None => order.clone(),
            };
            for i in candidates {
                if Instant::now() >= deadline {
                    return Err(last.unwrap_or(Error::Timeout(timeout)));
                }
                match self.attempt(&call, i, deadline).await {
                    Ok(answer) => {
                        if call.pin.is_none() {
                            self.inner.endpoints.answered(i);
                        }
                        return Ok(answer);
                    }
                    Err(Attempt::Fail(e)) => return Err(e),
                    Err(Attempt::Skip(e)) => last = Some(e),
                    Err(Attempt::Unknown(e)) => {
                        last = Some(e);
                        if call.write {
                            // Only this gateway may know the key's fate (API-DECISIONS
                            // "Failover"): the retry goes there, with the same key.
                            pinned = Some(i);
                            break;
                        }
                    }
                }
            }
            // Every gateway failed this round: wait a little, then go again until the
            // deadline (a restarting gateway, a node coming back).
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.inner.retry {
                return Err(last.unwrap_or(Error::Timeout(timeout)));
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// One attempt of `call` at gateway `i`.
    async fn attempt(&self, call: &Call, i: usize, deadline: Instant) -> Result<Answer, Attempt> {
        let url = format!("{}{}", self.inner.endpoints.url(i), call.path);
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = left.as_millis().clamp(1, 60_000) as u64;
        // The client waits a little longer than the server, so the server's own
        // `deadline_exceeded` (a clearer answer) wins.
        let mut req = self
            .inner
            .http
            .request(call.method.clone(), &url)
            .timeout(left + Duration::from_millis(500))
            .header("x-aerolith-timeout-ms", ms.to_string());
        if let Some(t) = &self.inner.token {
            req = req.bearer_auth(t);
        }
        if let Some(token) = self.inner.session.as_ref().and_then(Session::token) {
            req = req.header("x-aerolith-session", token);
        }
        let o = &call.opts;
        if call.write {
            if let Some(key) = &o.idempotency_key {
                req = req.header("idempotency-key", key);
            }
            if let Some(wc) = o.write_concern.or(self.inner.write_concern) {
                req = req.header("x-aerolith-write-concern", wc.as_str());
            }
        }
        if let Some(v) = &o.if_match {
            req = req.header("if-match", v);
        }
        if o.if_none_match {
            req = req.header("if-none-match", "*");
        }
        if let Some((content_type, bytes)) = &call.body {
            req = req
                .header("content-type", content_type.as_str())
                .body(bytes.clone());
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let message = transport_message(&e);
                return Err(if e.is_connect() {
                    Attempt::Skip(Error::Connect { url, message })
                } else {
                    Attempt::Unknown(Error::Transport { url, message })
                });
            }
        };
        let status = resp.status();
        if let (Some(session), Some(token)) = (
            &self.inner.session,
            resp.headers()
                .get("x-aerolith-session")
                .and_then(|v| v.to_str().ok()),
        ) {
            session.update(token);
        }
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                let message = transport_message(&e);
                return Err(Attempt::Unknown(Error::Transport { url, message }));
            }
        };
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(_) if !status.is_success() => Value::Null,
                Err(e) => {
                    return Err(Attempt::Fail(Error::Decode {
                        url,
                        message: e.to_string(),
                    }));
                }
            }
        };
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            return Ok(Answer {
                status: status.as_u16(),
                body,
                endpoint: i,
                url,
            });
        }
        let error = Error::from_body(url, status.as_u16(), &body);
        Err(match &error {
            Error::Api {
                code: ErrorCode::Unavailable,
                ..
            } if error.outcome_unknown() => Attempt::Unknown(error),
            Error::Api {
                code: ErrorCode::Unavailable,
                ..
            } => Attempt::Skip(error),
            // A proxy or a gateway shutting down without API.md's body.
            Error::Status {
                status: 502..=503, ..
            } => Attempt::Skip(error),
            _ => Attempt::Fail(error),
        })
    }
}

/// The innermost cause of a transport error (the most telling part), as text.
pub(crate) fn transport_message(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut text = e.to_string();
    // One level down, as the CLI always said it ("Connection refused (os error 111)").
    if let Some(s) = source.take() {
        text = s.to_string();
    }
    text
}
