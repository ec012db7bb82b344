//! Clients of the security tests: each protocol carrying a token the way API.md says, and
//! connecting from a chosen loopback address where a test must find its own lines in the
//! process-wide audit log (every address of 127.0.0.0/8 reaches the gateway's 127.0.0.1).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use aerolith_proto::v1::documents_client::DocumentsClient;

/// A WebSocket to the gateway.
pub type Socket = tokio_tungstenite::WebSocketStream<MaybeTlsStream<TcpStream>>;

/// `Bearer <token>`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A TCP connection to `addr` from `source` (any loopback address), or from the default.
async fn tcp(addr: &str, source: Option<IpAddr>) -> TcpStream {
    let addr: SocketAddr = addr.parse().expect("a socket address");
    let socket = TcpSocket::new_v4().expect("a socket");
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .expect("bind the source");
    }
    let stream = socket.connect(addr).await.expect("connects");
    let _ = stream.set_nodelay(true);
    stream
}

/// How a WebSocket is opened: its token in the upgrade's header or query, its subprotocol,
/// and where it connects from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Open<'a> {
    /// `Authorization: Bearer` on the upgrade.
    pub header: Option<&'a str>,
    /// `?access_token=` on the upgrade.
    pub query: Option<&'a str>,
    /// `Sec-WebSocket-Protocol`.
    pub protocol: Option<&'a str>,
    /// The loopback address to connect from.
    pub source: Option<IpAddr>,
}

/// Connects a WebSocket to `path` (`/v1/ws` or `/graphql/ws`) of the gateway at `http_addr`:
/// the socket, or the refused upgrade's status.
pub async fn websocket(http_addr: &str, path: &str, open: Open<'_>) -> Result<Socket, u16> {
    let mut url = format!("ws://{http_addr}{path}");
    if let Some(t) = open.query {
        url.push_str(&format!("?access_token={t}"));
    }
    let mut req = url.into_client_request().unwrap();
    if let Some(t) = open.header {
        req.headers_mut()
            .insert("authorization", bearer(t).parse().unwrap());
    }
    if let Some(p) = open.protocol {
        req.headers_mut()
            .insert("sec-websocket-protocol", p.parse().unwrap());
    }
    let stream = MaybeTlsStream::Plain(tcp(http_addr, open.source).await);
    match tokio_tungstenite::client_async(req, stream).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("connecting to {path}: {e}"),
    }
}

/// What a socket yields next, within 10 s: a JSON text frame, or the close frame's code and
/// reason (`None` when the connection ended without one).
pub async fn next_message<S>(ws: &mut S) -> Result<Value, Option<(u16, String)>>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s");
        match msg {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(t.as_str()).unwrap()),
            Some(Ok(Message::Close(frame))) => {
                return Err(frame.map(|f| (u16::from(f.code), f.reason.to_string())));
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(None),
        }
    }
}

/// The next JSON text frame.
pub async fn frame<S>(ws: &mut S) -> Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    match next_message(ws).await {
        Ok(v) => v,
        Err(close) => panic!("the socket closed: {close:?}"),
    }
}

/// The next frame of a GraphQL socket about operation `id`.
pub async fn frame_of(ws: &mut Socket, id: &str) -> Value {
    loop {
        let f = frame(ws).await;
        if f["id"] == id {
            return f;
        }
    }
}

/// A gRPC client of the gateway at `addr`, connecting from `source`.
pub async fn grpc_client(addr: &str, source: Option<IpAddr>) -> DocumentsClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .local_address(source)
        .connect()
        .await
        .unwrap();
    DocumentsClient::new(channel)
}

/// A gRPC request carrying `token` as `authorization` metadata.
pub fn with_token<T>(msg: T, token: Option<&str>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Some(t) = token {
        let v: MetadataValue<_> = bearer(t).parse().unwrap();
        req.metadata_mut().insert("authorization", v);
    }
    req
}

/// An HTTP/1.1 answer read off a raw connection.
#[derive(Debug)]
pub struct RawReply {
    /// The status code.
    pub status: u16,
    /// The headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body as JSON (`null` when it is not).
    pub body: Value,
}

impl RawReply {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 connection held open by the test: a client whose connections are exactly
/// the ones it asks for (a pooled client would open and reuse them as it likes).
pub struct Raw {
    stream: TcpStream,
    read: Vec<u8>,
}

impl Raw {
    /// Connects to `addr` from `source`.
    pub async fn connect(addr: &str, source: Option<IpAddr>) -> Raw {
        Raw {
            stream: tcp(addr, source).await,
            read: Vec::new(),
        }
    }

    /// Writes raw bytes (a request, or part of one).
    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("written");
    }

    /// Sends `method path` with `token` and `headers` and no body, and reads the answer.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> RawReply {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: gateway\r\n");
        if let Some(t) = token {
            head.push_str(&format!("Authorization: {}\r\n", bearer(t)));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        self.write(head.as_bytes()).await;
        self.answer().await
    }

    /// A GET with `token`.
    pub async fn get(&mut self, path: &str, token: &str) -> RawReply {
        self.request("GET", path, Some(token), &[]).await
    }

    /// Reads one answer (its body delimited by Content-Length).
    pub async fn answer(&mut self) -> RawReply {
        let end = loop {
            if let Some(i) = self.read.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await;
        };
        let head = String::from_utf8_lossy(&self.read[..end]).to_string();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while self.read.len() < end + length {
            self.fill().await;
        }
        let body = serde_json::from_slice(&self.read[end..end + length]).unwrap_or(Value::Null);
        self.read.drain(..end + length);
        RawReply {
            status,
            headers,
            body,
        }
    }

    async fn fill(&mut self) {
        let mut buf = [0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .expect("read");
        assert!(n > 0, "the connection closed mid-answer");
        self.read.extend_from_slice(&buf[..n]);
    }

    /// Whether the server has closed the connection (waits up to 10 s for it).
    pub async fn closed_by_server(&mut self) -> bool {
        let mut buf = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    }
}

/// Retries `attempt` until it gives `Some`, for up to 20 s (closing a connection frees its
/// places asynchronously: the server sees the close when it next reads).
pub async fn eventually<T, F, Fut>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = attempt().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
