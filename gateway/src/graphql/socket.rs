//! GraphQL over a WebSocket (`GET /graphql/ws`: `graphql-transport-ws`, and the older
//! `graphql-ws`). The connection's caller comes from the upgrade's token or, without one,
//! from `connection_init`'s payload, where browser and Apollo-style clients put it. The
//! connection holds one of its token's WebSocket places while it is open, and each
//! operation is charged to the caller's rate.

use std::any::TypeId;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::futures_util::stream::BoxStream;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::{Data, Executor, Request, Response};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::Extension;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use futures::{SinkExt, StreamExt};
use serde_json::{Map, Value};

use aerolith_common::auth::{Role, bearer};
use aerolith_common::{Error, ErrorCode};

use super::{GraphqlExecutor, error_response, graphql_max_bytes};
use crate::admission::{Admission, Who};
use crate::caps::{Kind, Slot};
use crate::conn::Peer;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::upgrade::handshake;

/// How long a client has to send its first message (`connection_init`) after the upgrade
/// (graphql-ws's own default is 3 s); a socket that says nothing is dropped, so sockets
/// waiting for their token cannot pile up.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest close reason a WebSocket close frame carries (RFC 6455 section 5.5).
const MAX_CLOSE_REASON: usize = 123;

/// The connection's WebSocket place, kept in its data for as long as it is open.
struct Held(#[allow(dead_code)] Slot);

/// `GET /graphql/ws`: subscriptions (and queries and mutations) over a WebSocket.
pub async fn upgrade(
    State(s): State<AppState>,
    who: Option<Extension<Who>>,
    Peer(peer): Peer,
    headers: HeaderMap,
    protocol: Result<GraphQLProtocol, StatusCode>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> axum::response::Response {
    let ws = match handshake(ws, &headers) {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
    let Ok(protocol) = protocol else {
        return ApiError::from(Error::invalid(
            "Sec-WebSocket-Protocol must offer graphql-transport-ws or graphql-ws",
        ))
        .into_response();
    };
    let max = graphql_max_bytes(s.ops.limits());
    // A caller known at the upgrade (its token there, or authentication off) takes its place
    // now, so that a refusal is an HTTP 429; otherwise `connection_init` brings the token.
    let mut data = Data::default();
    let known = match who {
        Some(Extension(who)) => match who.take(Kind::WebSocket) {
            Ok(place) => {
                data.insert(who);
                data.insert(Held(place));
                true
            }
            Err(e) => return ApiError::from(e).into_response(),
        },
        None => false,
    };
    let admission = s.admission.clone();
    let on_init = move |payload: Value| async move {
        if known {
            return Ok(Data::default());
        }
        admit(&admission, &payload, peer)
            .map_err(|e| async_graphql::Error::new(format!("{}: {}", e.code, e.message)))
    };
    let executor = Charged(s.graphql.clone());
    ws.protocols(ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| {
            let (sink, stream) = socket.split();
            let sink = sink.with(|m| futures::future::ready(Ok::<_, axum::Error>(recode(m))));
            GraphQLWebSocket::new_with_pair(sink, first_within(stream), executor, protocol)
                .with_data(data)
                .on_connection_init(on_init)
                .serve()
        })
        .into_response()
}

/// The caller of a `connection_init` payload: authenticated (with an audit line when
/// refused), given a WebSocket place and charged one request, as an upgrade would be.
fn admit(
    admission: &Arc<Admission>,
    payload: &Value,
    peer: Option<std::net::SocketAddr>,
) -> aerolith_common::Result<Data> {
    let target = "GET /graphql/ws connection_init";
    let who = admission.identify(init_token(payload), Role::Read, peer, target)?;
    let place = who.take(Kind::WebSocket)?;
    who.charge()?;
    let mut data = Data::default();
    data.insert(who);
    data.insert(Held(place));
    Ok(data)
}

/// The value of a key of `map`, compared without case.
fn field<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// The token of a `connection_init` payload, in the forms GraphQL WebSocket clients send:
/// an `Authorization: Bearer <token>` entry at the top or under `headers` (any case), or a
/// bare `token`, `authToken` or `access_token`.
fn init_token(payload: &Value) -> Option<&str> {
    let obj = payload.as_object()?;
    let headers = field(obj, "headers").and_then(Value::as_object);
    let authorization = field(obj, "authorization").or_else(|| field(headers?, "authorization"));
    if let Some(value) = authorization {
        return value.as_str().and_then(bearer);
    }
    ["token", "authToken", "access_token"]
        .iter()
        .find_map(|k| obj.get(*k)?.as_str())
}

/// The client's messages, ending if the first one does not come within [`INIT_TIMEOUT`].
fn first_within<S>(stream: S) -> BoxStream<'static, Result<Message, axum::Error>>
where
    S: futures::Stream<Item = Result<Message, axum::Error>> + Send + Unpin + 'static,
{
    let by = tokio::time::Instant::now() + INIT_TIMEOUT;
    futures::stream::unfold((stream, Some(by)), |(mut stream, by)| async move {
        let item = match by {
            None => stream.next().await?,
            Some(by) => match tokio::time::timeout_at(by, stream.next()).await {
                Ok(item) => item?,
                // An error ends the input, and with it the connection.
                Err(_) => Err(axum::Error::new("no connection_init in time")),
            },
        };
        Some((item, (stream, None)))
    })
    .boxed()
}

/// A close frame as the client should see it: a refused `connection_init` (async-graphql
/// closes with 1002 and the error's message, which starts with the API code) gets
/// graphql-ws's 4403 Forbidden, or 4429 when over a cap; every reason fits a close frame.
fn recode(m: Message) -> Message {
    let Message::Close(Some(CloseFrame { code, reason })) = m else {
        return m;
    };
    let code = match code {
        1002 if reason.starts_with("rate_limited: ") => 4429,
        1002 if reason.starts_with("unauthenticated: ")
            || reason.starts_with("permission_denied: ") =>
        {
            4403
        }
        other => other,
    };
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.as_str()[..end].to_string().into(),
    }))
}

/// The schema as one WebSocket connection runs it: each operation (query, mutation or
/// subscription; over a WebSocket all run as streams) is charged to the connection's caller
/// like an HTTP request.
#[derive(Clone)]
struct Charged(GraphqlExecutor);

impl Executor for Charged {
    async fn execute(&self, request: Request) -> Response {
        // Never called over a WebSocket; with no connection data there is no caller, and
        // the stream refuses.
        self.execute_stream(request, None)
            .next()
            .await
            .unwrap_or_default()
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let who = session_data
            .as_deref()
            .and_then(|d| d.get(&TypeId::of::<Who>()))
            .and_then(|w| w.downcast_ref::<Who>());
        let charged = match who {
            Some(who) => who.charge(),
            None => Err(Error::new(ErrorCode::Unauthenticated, "no caller")),
        };
        match charged {
            Ok(()) => self.0.execute_stream(request, session_data),
            Err(e) => futures::stream::once(async move { error_response(e) }).boxed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn init_payloads_carry_the_token_in_the_usual_forms() {
        let t = "0123456789abcdef";
        for payload in [
            json!({"Authorization": format!("Bearer {t}")}),
            json!({"authorization": format!("bearer {t}")}),
            json!({"headers": {"Authorization": format!("Bearer {t}")}}),
            json!({"token": t}),
            json!({"authToken": t}),
            json!({"access_token": t}),
        ] {
            assert_eq!(init_token(&payload), Some(t), "{payload}");
        }
        for payload in [
            json!({"Authorization": format!("Basic {t}")}),
            json!({"Authorization": t, "token": t}),
            json!({"token": 5}),
            json!({}),
            json!(null),
            json!("Bearer x"),
        ] {
            assert_eq!(init_token(&payload), None, "{payload}");
        }
    }

    #[test]
    fn refused_inits_close_with_graphql_ws_codes() {
        let close = |code, reason: &str| {
            Message::Close(Some(CloseFrame {
                code,
                reason: reason.to_string().into(),
            }))
        };
        let code_of = |m: Message| match m {
            Message::Close(Some(f)) => (f.code, f.reason.len()),
            _ => (0, 0),
        };
        assert_eq!(code_of(recode(close(1002, "unauthenticated: x"))).0, 4403);
        assert_eq!(code_of(recode(close(1002, "permission_denied: x"))).0, 4403);
        assert_eq!(code_of(recode(close(1002, "rate_limited: x"))).0, 4429);
        assert_eq!(code_of(recode(close(1002, "bad json"))).0, 1002);
        assert_eq!(code_of(recode(close(1000, "rate_limited: x"))).0, 1000);
        let long = format!("rate_limited: {}", "é".repeat(100));
        let (code, len) = code_of(recode(close(1002, &long)));
        assert_eq!(code, 4429);
        assert!(len <= MAX_CLOSE_REASON, "{len}");
    }
}
