//! The HTTP ceiling: an axum server on the gateway's HTTP stack that answers every request
//! with the same document, so a REST run against it measures HTTP and the client alone.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use aerolith_loadtest::ycsb::record::Shape;
use axum::serve::ListenerExt;

/// The fixed answer: a document as the REST API returns it, with a record of `shape`.
fn document(shape: Shape) -> Bytes {
    let data: serde_json::Map<String, serde_json::Value> = (0..shape.field_count)
        .map(|f| (format!("field{f}"), "x".repeat(shape.field_length).into()))
        .collect();
    let doc = serde_json::json!({
        "collection": "usertable",
        "id": "user1",
        "version": "dc1@1:1",
        "updated_at": "2026-11-28T00:00:00.000Z",
        "origin": "dc1",
        "data": data,
    });
    Bytes::from(doc.to_string())
}

/// Serves the fixed document on `listen` until the process is stopped.
pub async fn serve(listen: SocketAddr, shape: Shape) -> anyhow::Result<()> {
    let body = document(shape);
    let app = Router::new().fallback(move || {
        let body = body.clone();
        async move {
            let mut resp: Response = body.into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            h.insert(header::ETAG, HeaderValue::from_static("\"dc1@1:1\""));
            resp
        }
    });
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!(
        "HTTP ceiling listening on http://{}",
        listener.local_addr()?
    );
    // The same socket settings as the gateway's HTTP server.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(aerolith_common::signal::shutdown_signal())
        .await?;
    Ok(())
}
