//! Change-feed latency: from a REST write's response to the matching WebSocket `change` frame,
//! under a steady write load, on a three-node dev cluster (durable writes, loopback).
//!
//! Run: `cargo bench -p aerolith-cli --bench feed_latency` (options after `--`: `--rate N`
//! writes per second, `--seconds N`, `--writers N`). Prints the median and p99 for
//! `docs/BENCHMARKS.md`, with the REST write latency of the same run as the baseline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aerolith_cli::dev::{DevCluster, DevOptions};
use aerolith_storagenode::Durability;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

struct Options {
    rate: u64,
    seconds: u64,
    writers: u64,
}

fn options() -> Options {
    let mut o = Options {
        rate: 200,
        seconds: 20,
        writers: 4,
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        let value = pair[1].parse().ok();
        match (pair[0].as_str(), value) {
            ("--rate", Some(n)) => o.rate = n,
            ("--seconds", Some(n)) => o.seconds = n,
            ("--writers", Some(n)) => o.writers = n,
            _ => {}
        }
    }
    o
}

/// The `q`-quantile of sorted samples.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

type Stamps = Arc<Mutex<HashMap<String, Instant>>>;

#[tokio::main]
async fn main() {
    let o = options();
    let dir = tempfile::tempdir().expect("temporary directory");
    let cluster = DevCluster::start(DevOptions {
        nodes_per_dc: 3,
        durability: Durability::Durable,
        ..DevOptions::new(dir.path().to_path_buf())
    })
    .await
    .expect("cluster starts");
    let http_addr = cluster.endpoints().dcs[0].http.clone();
    let base = format!("http://{http_addr}");

    // The subscriber stamps each (id, version) when its change frame arrives.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{http_addr}/v1/ws"))
        .await
        .expect("websocket connects");
    ws.send(Message::Text(
        json!({"type": "subscribe", "sub": "s", "collection": "lat"})
            .to_string()
            .into(),
    ))
    .await
    .expect("subscribe sent");
    let arrived: Stamps = Arc::new(Mutex::new(HashMap::new()));
    let seen = arrived.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(m)) = ws.next().await {
            let Message::Text(t) = m else { continue };
            let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
                continue;
            };
            if v["type"] == "change" {
                let key = format!("{} {}", v["id"], v["version"]);
                seen.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(key)
                    .or_insert_with(Instant::now);
            }
        }
    });

    // Writers: a steady rate overall, each write's response stamped.
    let responded: Stamps = Arc::new(Mutex::new(HashMap::new()));
    let write_ms: Arc<Mutex<Vec<f64>>> = Arc::new(Mutex::new(Vec::new()));
    let per_writer = Duration::from_secs_f64(o.writers as f64 / o.rate.max(1) as f64);
    let total = o.rate * o.seconds / o.writers.max(1);
    let mut writers = Vec::new();
    for w in 0..o.writers {
        let (base, responded, write_ms) = (base.clone(), responded.clone(), write_ms.clone());
        writers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut tick = tokio::time::interval(per_writer);
            for i in 0..total {
                tick.tick().await;
                let id = format!("w{w}-{}", i % 50);
                let sent = Instant::now();
                let r = http
                    .put(format!("{base}/v1/collections/lat/docs/{id}"))
                    .json(&json!({"writer": w, "i": i}))
                    .send()
                    .await
                    .expect("write sent");
                let done = Instant::now();
                assert!(r.status().is_success(), "{}", r.status());
                let doc: Value = r.json().await.expect("document");
                let key = format!("\"{id}\" {}", doc["version"]);
                responded
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, done);
                write_ms
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((done - sent).as_secs_f64() * 1000.0);
            }
        }));
    }
    for w in writers {
        w.await.expect("writer finished");
    }
    // Wait (bounded) for the last events.
    let expected = responded.lock().unwrap_or_else(|p| p.into_inner()).len();
    let deadline = Instant::now() + Duration::from_secs(30);
    while arrived.lock().unwrap_or_else(|p| p.into_inner()).len() < expected
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    reader.abort();

    let responded = responded.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let arrived = arrived.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut lat: Vec<f64> = responded
        .iter()
        .filter_map(|(k, done)| {
            arrived.get(k).map(|at| {
                if at >= done {
                    (*at - *done).as_secs_f64() * 1000.0
                } else {
                    -((*done - *at).as_secs_f64() * 1000.0)
                }
            })
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    let mut writes = write_ms.lock().unwrap_or_else(|p| p.into_inner()).clone();
    writes.sort_by(f64::total_cmp);
    println!(
        "{} writes at {} writes/s by {} writers over {} s; {} events matched ({} missing)\n",
        expected,
        o.rate,
        o.writers,
        o.seconds,
        lat.len(),
        expected - lat.len()
    );
    println!("| measure | median ms | p99 ms |");
    println!("|---|---:|---:|");
    println!(
        "| REST PUT latency (baseline) | {:.2} | {:.2} |",
        quantile(&writes, 0.5),
        quantile(&writes, 0.99)
    );
    println!(
        "| write response → WebSocket change event | {:.2} | {:.2} |",
        quantile(&lat, 0.5),
        quantile(&lat, 0.99)
    );
    if let Err(e) = cluster.shutdown().await {
        eprintln!("shutdown: {e:#}");
    }
}
