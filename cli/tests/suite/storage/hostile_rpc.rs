//! Hostile input on the internal RPC, over real QUIC: a client without a certificate,
//! truncated, oversized and garbled frames. Each gets its documented answer (or no
//! connection at all), and afterwards the node still answers and still holds what was
//! written before.

use std::sync::Arc;

use aerolith_common::pb;
use aerolith_common::rpc::frame::{DEFAULT_MAX_FRAME, read_frame};
use aerolith_common::rpc::{DevCa, PeerRole, RpcClient};
use aerolith_common::shard::shard_of;
use pb::request::Body as Req;
use pb::response::Body as Resp;

const SHARDS: u16 = 8;

use super::WAIT;

/// The node answers a ping and still holds the sentinel document.
async fn still_serving(client: &RpcClient, addr: &str) {
    client
        .node()
        .ping(addr, pb::PingRequest {}, WAIT)
        .await
        .expect("the node answers a ping");
    let req = pb::GetRequest {
        shard: u32::from(shard_of("c", "keep", SHARDS)),
        collection: "c".into(),
        id: "keep".into(),
        session: vec![],
    };
    let doc = client
        .node()
        .get(addr, req, WAIT)
        .await
        .expect("the sentinel reads");
    let body = doc.record.expect("the sentinel is there").body;
    assert_eq!(body, br#"{"v":1}"#.to_vec());
}

/// Sends `bytes` on a fresh stream of a connection with a valid certificate, and reads the
/// answer frame.
async fn exchange(ca: &DevCa, addr: std::net::SocketAddr, bytes: &[u8]) -> Option<pb::Response> {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(
        ca.issue("probe", PeerRole::Gateway)
            .unwrap()
            .client_config()
            .unwrap(),
    );
    let conn = endpoint
        .connect(addr, aerolith_common::rpc::tls::CLUSTER_SERVER_NAME)
        .unwrap()
        .await
        .expect("a certified client connects");
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    let _ = send.finish();
    let answer = tokio::time::timeout(
        WAIT,
        read_frame::<pb::Response>(&mut recv, DEFAULT_MAX_FRAME),
    )
    .await
    .expect("an answer, not a hang");
    conn.close(0u32.into(), b"done");
    answer.ok().flatten()
}

fn error_code(resp: Option<pb::Response>) -> String {
    match resp.and_then(|r| r.body) {
        Some(Resp::Error(e)) => e.code,
        other => panic!("expected an error answer, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_and_uncertified_clients_leave_the_node_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (node, client, ca) = super::node_with_collection(dir.path(), SHARDS).await;
    let addr = node.addr();
    let a = addr.to_string();
    let sentinel = pb::PutRequest {
        after_delete_hlc: 0,
        shard: u32::from(shard_of("c", "keep", SHARDS)),
        collection: "c".into(),
        id: "keep".into(),
        body: br#"{"v":1}"#.to_vec(),
        precondition: None,
        session: Vec::new(),
        idempotency: None,
    };
    client
        .node()
        .put(&a, sentinel, WAIT)
        .await
        .expect("sentinel written");
    still_serving(&client, &a).await;

    // A truncated frame: 100 bytes announced, 10 sent.
    let mut truncated = 100u32.to_be_bytes().to_vec();
    truncated.extend([7u8; 10]);
    assert_eq!(
        error_code(exchange(&ca, addr, &truncated).await),
        "invalid_argument"
    );
    still_serving(&client, &a).await;

    // Half a length prefix.
    assert_eq!(
        error_code(exchange(&ca, addr, &[0, 0]).await),
        "invalid_argument"
    );
    still_serving(&client, &a).await;

    // An oversized frame announced: refused before anything is read or allocated.
    let mut huge = u32::MAX.to_be_bytes().to_vec();
    huge.extend([0u8; 64]);
    assert_eq!(
        error_code(exchange(&ca, addr, &huge).await),
        "payload_too_large"
    );
    still_serving(&client, &a).await;

    // A whole frame that is not a request.
    let garbage = [0, 0, 0, 6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    assert_eq!(
        error_code(exchange(&ca, addr, &garbage).await),
        "invalid_argument"
    );
    still_serving(&client, &a).await;

    // A well-formed request without a body, and one with an empty stream.
    let empty = aerolith_common::rpc::frame::encode(&pb::Request::default());
    assert_eq!(
        error_code(exchange(&ca, addr, &empty).await),
        "invalid_argument"
    );
    assert!(
        exchange(&ca, addr, &[]).await.is_none(),
        "nothing asked, nothing answered"
    );
    still_serving(&client, &a).await;

    // A client without a certificate gets no connection (or none that carries a request).
    let ca_pem = ca.ca_pem();
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![aerolith_common::rpc::tls::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let ping = aerolith_common::rpc::frame::encode(&pb::Request {
        timeout_ms: 1000,
        body: Some(Req::Ping(pb::PingRequest {})),
    });
    let attempt = async {
        let conn = endpoint
            .connect(addr, aerolith_common::rpc::tls::CLUSTER_SERVER_NAME)
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        send.write_all(&ping).await.map_err(|e| e.to_string())?;
        let _ = send.finish();
        read_frame::<pb::Response>(&mut recv, DEFAULT_MAX_FRAME)
            .await
            .map_err(|e| e.to_string())
    };
    let outcome = tokio::time::timeout(WAIT, attempt)
        .await
        .expect("refused, not hung");
    assert!(
        !matches!(outcome, Ok(Some(_))),
        "a client without a certificate got an answer: {outcome:?}"
    );
    still_serving(&client, &a).await;

    client.close();
    node.shutdown().await.unwrap();
}
