//! TLS on the public ports (`--tls-cert`/`--tls-key`): REST, WebSocket and gRPC over TLS
//! with a certificate the client trusts; plain-text clients get no answer.

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use crate::support::start_with;
use aerolith_cli::dev::DevOptions;
use aerolith_common::rpc::DevCa;
use aerolith_gateway::tls::PublicTls;
use aerolith_proto::v1 as api;
use aerolith_proto::v1::documents_client::DocumentsClient;

/// A TLS connection to `addr` trusting only `ca_pem`.
async fn connect(addr: &str, ca_pem: &str, alpn: &[u8]) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake")
}

/// One HTTP/1.1 exchange over a fresh TLS connection: the whole answer as text.
async fn https(addr: &str, ca: &str, request: String) -> String {
    let mut tls = connect(addr, ca, b"http/1.1").await;
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.unwrap_or_default();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_websocket_and_grpc_speak_tls_when_configured() {
    let ca = DevCa::generate().unwrap();
    let issued = ca.issue_pem("public").unwrap();
    let ca_pem = ca.ca_pem();
    let tls = PublicTls::from_pem(issued.cert_pem.into(), issued.key_pem.into()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = start_with(DevOptions {
        nodes_per_dc: 1,
        public_tls: Some(tls),
        ..DevOptions::new(dir.path().to_path_buf())
    })
    .await;

    let body = r#"{"n":1}"#;
    let put = format!(
        "PUT /v1/collections/t/docs/a HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = https(&c.http_addr, &ca_pem, put).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let get =
        "GET /v1/collections/t/docs/a HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let answer = https(&c.http_addr, &ca_pem, get.to_string()).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains(r#""n":1"#),
        "{answer}"
    );

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = c.http.get(format!("{}/readyz", c.base)).send().await;
    assert!(plain.is_err(), "{plain:?}");

    // A WebSocket over TLS.
    let tls = connect(&c.http_addr, &ca_pem, b"http/1.1").await;
    let (mut ws, _) = tokio_tungstenite::client_async("wss://localhost/v1/ws", tls)
        .await
        .expect("WebSocket upgrade over TLS");
    ws.send(Message::text(r#"{"type":"ping"}"#)).await.unwrap();
    let pong = loop {
        match ws.next().await.unwrap().unwrap() {
            Message::Text(t) => break t.to_string(),
            _ => continue,
        }
    };
    assert!(pong.contains("pong"), "{pong}");

    // gRPC over TLS; a plain-text channel fails.
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca_pem))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://{}", c.grpc_addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("gRPC over TLS connects");
    let got = DocumentsClient::new(channel)
        .get_document(api::GetDocumentRequest {
            collection: "t".into(),
            id: "a".into(),
        })
        .await
        .expect("a read over TLS");
    assert!(got.into_inner().data_json.contains("\"n\":1"));
    let plain = Channel::from_shared(format!("http://{}", c.grpc_addr))
        .unwrap()
        .connect()
        .await;
    let refused = match plain {
        Err(_) => true,
        Ok(ch) => DocumentsClient::new(ch)
            .list_collections(api::ListCollectionsRequest::default())
            .await
            .is_err(),
    };
    assert!(refused, "plain-text gRPC on a TLS port");
    c.stop().await;
}

#[test]
fn mismatched_or_bad_pem_is_refused_at_start() {
    let ca = DevCa::generate().unwrap();
    let a = ca.issue_pem("a").unwrap();
    let b = ca.issue_pem("b").unwrap();
    let e = PublicTls::from_pem(a.cert_pem.clone().into(), b.key_pem.into()).unwrap_err();
    assert!(e.message.contains("do not fit"), "{}", e.message);
    let e = PublicTls::from_pem(b"not pem".to_vec(), a.key_pem.into()).unwrap_err();
    assert!(e.message.contains("no certificate"), "{}", e.message);
}
