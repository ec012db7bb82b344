//! GraphQL over a WebSocket takes its token from `connection_init`'s payload too (where
//! browser and Apollo-style clients put it), in the forms those clients send; a wrong or
//! missing token there closes the socket with 4403 and the code in the reason.

use futures::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::wire::{Open, Socket, frame, frame_of, next_message, websocket};
use crate::support::{TestCluster, start_with_tokens};

const READ: &str = "graphql-init-suite-read-token";
const WRITE: &str = "graphql-init-suite-write-token";

/// Opens `/graphql/ws` with no token on the upgrade, speaking `protocol`, and sends
/// `connection_init` with `payload`.
async fn init(c: &TestCluster, protocol: &str, payload: Value) -> Socket {
    let open = Open {
        protocol: Some(protocol),
        ..Open::default()
    };
    let mut gws = websocket(&c.http_addr, "/graphql/ws", open)
        .await
        .expect("the upgrade waits for connection_init's token");
    let init = json!({"type": "connection_init", "payload": payload});
    gws.send(Message::text(init.to_string())).await.unwrap();
    gws
}

/// Runs `query` as operation `id` (graphql-transport-ws); the first answer frame.
async fn run(gws: &mut Socket, id: &str, query: &str) -> Value {
    let op = json!({"type": "subscribe", "id": id, "payload": {"query": query}});
    gws.send(Message::text(op.to_string())).await.unwrap();
    frame_of(gws, id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_sockets_take_the_token_from_connection_init() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = format!("read:{READ},write:{WRITE}");
    let mut c = start_with_tokens(dir.path(), &tokens, Default::default()).await;
    let proto = "graphql-transport-ws";
    let put = r#"mutation { putDocument(collection: "gi", id: "x", data: {n: 1}) { id } }"#;
    let list = "{ collections { name } }";

    // Every usual form of the token in the payload opens the connection with its role.
    let forms = [
        json!({"Authorization": format!("Bearer {READ}")}),
        json!({"authorization": format!("bearer {READ}")}),
        json!({"headers": {"Authorization": format!("Bearer {READ}")}}),
        json!({"token": READ}),
        json!({"authToken": READ}),
        json!({"access_token": READ}),
    ];
    for payload in forms {
        let mut gws = init(&c, proto, payload.clone()).await;
        assert_eq!(frame(&mut gws).await["type"], "connection_ack", "{payload}");
        let f = run(&mut gws, "q", list).await;
        assert!(f["payload"]["data"]["collections"].is_array(), "{f}");
        let f = run(&mut gws, "m", put).await;
        assert_eq!(
            f["payload"]["errors"][0]["extensions"]["code"], "permission_denied",
            "the payload's token has the read role: {f}"
        );
    }
    let mut gws = init(&c, proto, json!({"token": WRITE})).await;
    assert_eq!(frame(&mut gws).await["type"], "connection_ack");
    let f = run(&mut gws, "m", put).await;
    assert_eq!(f["payload"]["data"]["putDocument"]["id"], "x", "{f}");

    // A wrong token, a malformed one or none: closed with 4403, the code in the reason.
    let refused = [
        json!({"token": "not-a-known-token-at-all"}),
        json!({"Authorization": format!("Basic {READ}")}),
        json!({}),
        Value::Null,
    ];
    for payload in refused {
        let mut gws = init(&c, proto, payload.clone()).await;
        let close = next_message(&mut gws).await.expect_err("closed");
        let (code, reason) = close.expect("a close frame");
        assert_eq!(code, 4403, "{payload}: {reason}");
        assert!(reason.starts_with("unauthenticated: "), "{reason}");
    }

    // The older graphql-ws protocol: connection_ack, or connection_error with the code.
    let mut gws = init(&c, "graphql-ws", json!({"authToken": READ})).await;
    assert_eq!(frame(&mut gws).await["type"], "connection_ack");
    let mut gws = init(
        &c,
        "graphql-ws",
        json!({"authToken": "wrong-wrong-wrong-wrong"}),
    )
    .await;
    let f = frame(&mut gws).await;
    assert_eq!(f["type"], "connection_error", "{f}");
    let message = f["payload"]["message"].as_str().unwrap_or("");
    assert!(message.starts_with("unauthenticated: "), "{f}");

    // A token on the upgrade still holds, and a wrong one there is refused at once.
    let open = Open {
        query: Some("not-a-known-token-at-all"),
        protocol: Some(proto),
        ..Open::default()
    };
    assert_eq!(
        websocket(&c.http_addr, "/graphql/ws", open).await.err(),
        Some(401)
    );
    c.stop().await;
}
