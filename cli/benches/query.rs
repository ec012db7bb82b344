//! Query benchmark: a selective filtered query over 100k documents on a three-node dev cluster
//! (durable writes, real QUIC and HTTP on loopback), with baselines measured in the same run.
//!
//! Run: `cargo bench -p aerolith-cli --bench query` (options after `--`: `--docs N`,
//! `--rounds N`). Prints a Markdown table of medians for `docs/BENCHMARKS.md`.

use std::time::{Duration, Instant};

use aerolith_cli::dev::{DevCluster, DevOptions};
use aerolith_storagenode::Durability;
use futures::future::join_all;
use serde_json::{Value, json};

/// Documents per bulk request.
const BULK: usize = 1000;
/// Bulk requests in flight while loading.
const LOADERS: usize = 4;
/// Distinct categories: `{"category": "c42"}` selects one document in this many.
const CATEGORIES: usize = 1000;

struct Options {
    docs: usize,
    rounds: usize,
}

fn options() -> Options {
    let mut o = Options {
        docs: 100_000,
        rounds: 30,
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        let value = pair[1].parse().ok();
        match (pair[0].as_str(), value) {
            ("--docs", Some(n)) => o.docs = n,
            ("--rounds", Some(n)) => o.rounds = n,
            _ => {}
        }
    }
    o
}

fn doc(i: usize) -> Value {
    let city = ["Oslo", "Lima", "Rome", "Pune"][i % 4];
    let tags: Vec<&str> = ["a", "b", "c"].into_iter().take(i % 4).collect();
    json!({
        "name": format!("user{i}"),
        "category": format!("c{}", i % CATEGORIES),
        "age": (i * 7) % 90,
        "active": !i.is_multiple_of(3),
        "address": {"city": city, "zip": format!("{:05}", i % 99_991)},
        "tags": tags,
        "bio": "x".repeat(64),
    })
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn post(&self, path: &str, body: &Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("request sent");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.expect("JSON answer")
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request sent");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.expect("JSON answer")
    }

    /// Runs a query to its end (following cursors); returns (documents, pages).
    async fn query_all(&self, body: &Value) -> (usize, usize) {
        let (mut docs, mut pages) = (0, 0);
        let mut body = body.clone();
        loop {
            let page = self.post("/v1/collections/bench/query", &body).await;
            pages += 1;
            docs += page["documents"].as_array().map_or(0, Vec::len);
            if page["next_cursor"].is_null() {
                return (docs, pages);
            }
            body["cursor"] = page["next_cursor"].clone();
        }
    }
}

async fn load(c: &Client, docs: usize) -> Duration {
    let start = Instant::now();
    let batches: Vec<(usize, usize)> = (0..docs)
        .step_by(BULK)
        .map(|s| (s, (s + BULK).min(docs)))
        .collect();
    for group in batches.chunks(LOADERS) {
        join_all(group.iter().map(|&(from, to)| async move {
            let ops: Vec<Value> = (from..to)
                .map(|i| json!({"op": "put", "id": format!("d{i:07}"), "data": doc(i)}))
                .collect();
            let r = c
                .post("/v1/collections/bench/bulk", &json!({ "ops": ops }))
                .await;
            let results = r["results"].as_array().map_or(0, Vec::len);
            assert_eq!(results, to - from);
        }))
        .await;
    }
    start.elapsed()
}

/// Median and 90th percentile of `rounds` runs of `f`, in milliseconds.
async fn measure<F, Fut, T>(rounds: usize, mut f: F) -> (f64, f64, T)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut times = Vec::with_capacity(rounds);
    let mut last = None;
    for _ in 0..rounds.max(1) {
        let t = Instant::now();
        last = Some(f().await);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let p90 = times[(times.len() * 9 / 10).min(times.len() - 1)];
    (median, p90, last.expect("at least one round"))
}

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
    let c = Client {
        http: reqwest::Client::new(),
        base: format!("http://{}", cluster.endpoints().dcs[0].http),
    };

    let took = load(&c, o.docs).await;
    println!(
        "loaded {} documents in {:.1} s ({:.0} docs/s, bulk {BULK} x {LOADERS} in flight, durable)",
        o.docs,
        took.as_secs_f64(),
        o.docs as f64 / took.as_secs_f64()
    );

    let mid = format!("d{:07}", o.docs / 2);
    let selective = json!({"filter": {"category": "c42"}, "limit": 100});
    let selective_sorted = json!({
        "filter": {"category": "c42"},
        "sort": [{"field": "age", "order": "desc"}], "limit": 100
    });
    let compound = json!({
        "filter": {"category": {"$in": ["c1", "c2"]}, "age": {"$gte": 30}, "address.city": "Lima"},
        "limit": 100, "projection": ["name", "age"]
    });
    let id_range = json!({"filter": {"_id": {"$gte": mid}}, "limit": 100});

    let rounds = o.rounds;
    let mut rows: Vec<(String, f64, f64, String)> = Vec::new();
    let point = format!("/v1/collections/bench/docs/{mid}");
    let (m, p, _) = measure(rounds, || c.get(&point)).await;
    rows.push((
        "point read (GET one document), baseline".into(),
        m,
        p,
        "1 doc".into(),
    ));
    let (m, p, _) = measure(rounds, || c.get("/v1/collections/bench/docs?limit=100")).await;
    rows.push(("list first page, limit 100".into(), m, p, "100 docs".into()));
    let (m, p, (d, pages)) = measure(rounds, || c.query_all(&id_range)).await;
    rows.push((
        "`_id` range query (`$gte` the middle id), every page of 100".into(),
        m,
        p,
        format!("{d} docs, {pages} page(s)"),
    ));
    let (m, p, (d, pages)) = measure(rounds, || c.query_all(&selective)).await;
    rows.push((
        "selective filter `{category: c42}` (0.1%), id order, all pages".into(),
        m,
        p,
        format!("{d} docs, {pages} page(s)"),
    ));
    let (m, p, (d, pages)) = measure(rounds, || c.query_all(&selective_sorted)).await;
    rows.push((
        "same filter, sorted by age desc, all pages".into(),
        m,
        p,
        format!("{d} docs, {pages} page(s)"),
    ));
    let (m, p, (d, pages)) = measure(rounds, || c.query_all(&compound)).await;
    rows.push((
        "`$in` + range + dotted path + projection, all pages".into(),
        m,
        p,
        format!("{d} docs, {pages} page(s)"),
    ));

    let base = rows[0].1;
    println!(
        "\n{} documents, 3 storage nodes, {rounds} rounds each\n",
        o.docs
    );
    println!("| operation | median ms | p90 ms | × point read | result |");
    println!("|---|---:|---:|---:|---|");
    for (name, m, p, what) in &rows {
        println!("| {name} | {m:.1} | {p:.1} | {:.1} | {what} |", m / base);
    }
    if let Err(e) = cluster.shutdown().await {
        eprintln!("shutdown: {e:#}");
    }
}
