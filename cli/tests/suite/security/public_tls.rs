//! TLS on the public ports (`--tls-cert`/`--tls-key`): REST, WebSocket and gRPC over TLS
//! with a certificate the client trusts, and the replicator admin API over TLS with the
//! CLI; plain-text clients get no answer.

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
use aerolith_common::auth::Tokens;
use aerolith_common::https::PublicTls;
use aerolith_common::rpc::DevCa;
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
    let issued = ca.issue_server_pem(&["localhost".into()]).unwrap();
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

    // The client crate over https:// and its change stream over wss://, trusting the CA.
    let port = c.http_addr.rsplit(':').next().unwrap();
    let client = aerolith_client::Client::builder()
        .endpoint(format!("https://localhost:{port}"))
        .ca_pem(ca_pem.as_bytes().to_vec())
        .build()
        .unwrap();
    let docs = client.collection::<serde_json::Value>("t");
    let mut stream = docs.changes();
    stream.start().await.expect("a change stream over wss://");
    docs.put("b", &serde_json::json!({"n": 2})).await.unwrap();
    let change = tokio::time::timeout(std::time::Duration::from_secs(30), stream.next())
        .await
        .expect("the stream delivers")
        .unwrap();
    assert_eq!(
        (change.id.as_str(), change.data),
        ("b", Some(serde_json::json!({"n": 2})))
    );

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
    let a = ca.issue_server_pem(&["a.example".into()]).unwrap();
    let b = ca.issue_server_pem(&["b.example".into()]).unwrap();
    let e = PublicTls::from_pem(a.cert_pem.clone().into(), b.key_pem.into()).unwrap_err();
    assert!(e.message.contains("do not fit"), "{}", e.message);
    let e = PublicTls::from_pem(b"not pem".to_vec(), a.key_pem.into()).unwrap_err();
    assert!(e.message.contains("no certificate"), "{}", e.message);
    // A certificate without its key is an error, never a silent fall back to plain TCP.
    let half = aerolith_common::https::TlsArgs {
        tls_cert: Some("/nonexistent/public.pem".into()),
        tls_key: None,
    };
    if std::env::var_os("AEROLITH_TLS_KEY").is_none() {
        let e = half.load().unwrap_err();
        assert!(e.message.contains("needs --tls-key"), "{}", e.message);
    }
}

/// Runs the `aerolith` CLI; its exit code and its output.
fn cli(args: &[&str]) -> (Option<i32>, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_aerolith"))
        .args(args)
        .env_remove("AEROLITH_TOKEN")
        .env_remove("AEROLITH_CA")
        .output()
        .expect("aerolith runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_speaks_tls_to_the_cli_with_the_generated_ca() {
    // The files a deployment gets: `aerolith certs` with a public certificate and tokens.
    let certs = tempfile::tempdir().unwrap();
    let out = certs.path().to_str().unwrap();
    let (code, text) = cli(&[
        "certs",
        "--out",
        out,
        "--tokens",
        "--public-names",
        "localhost,127.0.0.1",
    ]);
    assert_eq!(code, Some(0), "{text}");
    let file = |f: &str| certs.path().join(f);
    let tls = PublicTls::from_files(&file("public.pem"), &file("public.key")).unwrap();
    let mut tokens = Tokens::default();
    tokens.add_file(&file("tokens")).unwrap();
    let tokens_text = std::fs::read_to_string(file("tokens")).unwrap();
    let admin_token = tokens_text
        .lines()
        .find_map(|l| l.strip_prefix("admin "))
        .expect("an admin token")
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut c = start_with(DevOptions {
        nodes_per_dc: 1,
        public_tls: Some(tls),
        tokens,
        ..DevOptions::new(dir.path().to_path_buf())
    })
    .await;
    let endpoints = c.cluster.as_ref().unwrap().endpoints().dcs.clone();
    let admin = format!("https://{}", endpoints[0].admin);
    let gateway = format!("https://{}", endpoints[0].http);
    let ca = file("public-ca.pem");
    let ca = ca.to_str().unwrap();

    // The CLI's admin commands over TLS, trusting the generated public CA; documents
    // through the gateway over TLS with the same options.
    let over_tls = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend([
            "--admin-endpoint",
            &admin,
            "--endpoint",
            &gateway,
            "--ca",
            ca,
            "--token",
            &admin_token,
        ]);
        let (code, text) = cli(&all);
        assert_eq!(code, Some(0), "{args:?}: {text}");
        text
    };
    assert!(over_tls(&["admin", "status"]).contains("dc1"));
    over_tls(&["admin", "moves"]);
    over_tls(&["put", "t", "a", r#"{"n":1}"#]);
    let text = over_tls(&["get", "t", "a"]);
    assert!(
        text.contains(r#""n":1"#) || text.contains(r#""n": 1"#),
        "{text}"
    );
    // The container healthcheck probes the admin API over TLS too.
    let health = format!("{admin}/healthz");
    let (code, text) = cli(&["healthcheck", "http", &health, "--ca", ca]);
    assert_eq!(code, Some(0), "{text}");

    // Without a CA the CLI says what it needs; a CA that did not sign the certificate (the
    // cluster's internal one) fails the handshake; plain HTTP gets no answer.
    let (code, text) = cli(&[
        "admin",
        "status",
        "--admin-endpoint",
        &admin,
        "--token",
        &admin_token,
    ]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("--ca"), "{text}");
    let other = file("ca.pem");
    let (code, text) = cli(&[
        "admin",
        "status",
        "--admin-endpoint",
        &admin,
        "--ca",
        other.to_str().unwrap(),
        "--token",
        &admin_token,
    ]);
    assert_ne!(code, Some(0), "{text}");
    let plain = c
        .http
        .get(format!("http://{}/healthz", endpoints[0].admin))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
    assert!(
        !text.contains(&admin_token),
        "the token is never printed: {text}"
    );
    c.stop().await;
}

/// A refusal over HTTP/2 reaches the client as the refusal: the gateway and the replicator
/// admin API read the refused request's body first. Before, the answer went out with the body unread, the stream was
/// reset after it, and curl reported that reset (exit 92) about one time in three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_over_http2_arrive_whole() {
    let ca = DevCa::generate().unwrap();
    let issued = ca.issue_server_pem(&["localhost".into()]).unwrap();
    let tls = PublicTls::from_pem(issued.cert_pem.into(), issued.key_pem.into()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.ca_pem()).unwrap();
    let mut tokens = Tokens::default();
    tokens.add_list("read:read-token-0123456789").unwrap();
    let mut c = start_with(DevOptions {
        nodes_per_dc: 1,
        public_tls: Some(tls),
        tokens,
        ..DevOptions::new(dir.path().join("data"))
    })
    .await;
    let port = c.http_addr.rsplit(':').next().unwrap().to_string();
    let put = format!("https://localhost:{port}/v1/collections/t/docs/nope");
    h2_refusals(&ca_file, &port, "PUT", &put, "{}").await;
    // The replicator admin API too: a read token's POST with a body.
    let admin = c.cluster.as_ref().unwrap().endpoints().dcs[0].admin.clone();
    let admin_port = admin.rsplit(':').next().unwrap().to_string();
    let backup = format!("https://localhost:{admin_port}/admin/backup");
    h2_refusals(&ca_file, &admin_port, "POST", &backup, r#"{"name":"b1"}"#).await;
    c.stop().await;
}

/// 30 requests with a body and the read token, over HTTP/2: each must arrive as a whole
/// `403` (curl exit 0), not as a stream reset after it.
async fn h2_refusals(ca_file: &std::path::Path, port: &str, method: &str, url: &str, body: &str) {
    for _ in 0..30 {
        let (ca_file, u, port) = (ca_file.to_path_buf(), url.to_string(), port.to_string());
        let (m, body) = (method.to_string(), body.to_string());
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args([
                    "-s",
                    "--http2",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code} %{http_version}",
                ])
                .arg("--cacert")
                .arg(&ca_file)
                .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
                .args([
                    "-X",
                    &m,
                    "-H",
                    "authorization: Bearer read-token-0123456789",
                ])
                .args(["-H", "content-type: application/json", "-d", &body, &u])
                .output()
        })
        .await
        .unwrap()
        .expect("curl runs");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && said == "403 2",
            "{method} {url}: curl exit {:?}, said {said:?}",
            out.status.code()
        );
    }
}
