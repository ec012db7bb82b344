//! A write whose answer is lost on the way back is retried by the client with the same
//! idempotency key and applied once: a proxy in front of the gateway drops the first
//! answer, and the generated-id create that it carried exists once afterwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aerolith_client::Client;
use futures::TryStreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy to `upstream` whose first `drop_answers` connections forward the request
/// but close the client's side as soon as the answer starts coming back. Its address and
/// the count of answers dropped.
async fn lossy_proxy(upstream: String, drop_answers: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let dropped = Arc::new(AtomicUsize::new(0));
    let counter = dropped.clone();
    tokio::spawn(async move {
        let mut conns = 0usize;
        while let Ok((client, _)) = listener.accept().await {
            conns += 1;
            let Ok(server) = TcpStream::connect(&upstream).await else {
                continue;
            };
            if conns > drop_answers {
                tokio::spawn(async move {
                    let (mut c, mut s) = (client, server);
                    let _ = tokio::io::copy_bidirectional(&mut c, &mut s).await;
                });
                continue;
            }
            let counter = counter.clone();
            tokio::spawn(async move {
                let (mut cr, cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                });
                let mut buf = [0u8; 1];
                // The first byte of the answer: the write was applied. Drop it all.
                if sr.read(&mut buf).await.unwrap_or(0) > 0 {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                up.abort();
                let mut cw = cw;
                let _ = cw.shutdown().await;
                drop(cw);
            });
        }
    });
    (addr, dropped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_answer_is_lost_is_retried_and_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = crate::support::start(dir.path(), 1).await;
    let (proxy, dropped) = lossy_proxy(c.http_addr.clone(), 1).await;
    let client = Client::new(format!("http://{proxy}")).unwrap();
    let docs = client.collection::<Value>("once");

    let made = docs.insert(&json!({"n": 1})).await.unwrap();
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the first answer was dropped"
    );

    let direct = Client::new(&c.base).unwrap();
    let all: Vec<String> = direct
        .collection::<Value>("once")
        .list()
        .map_ok(|d| d.id)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all, vec![made.id.clone()], "created exactly once");
    c.stop().await;
}
