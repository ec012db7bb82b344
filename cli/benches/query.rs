//! Query benchmark: a selective filtered query over 100k documents on a three-node dev cluster
//! (durable writes, real QUIC and HTTP on loopback), with baselines measured in the same run:
//! the queries by scan, then an online index build (with writes going on), the same queries
//! with the indexes, and bulk-load throughput with and without two indexes (issue 24).
//!
//! Run: `cargo bench -p aerolith-cli --bench query` (options after `--`: `--docs N`,
//! `--rounds N`, `--write-docs N` per write round). Prints Markdown tables of medians for
//! `docs/BENCHMARKS.md`.

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
    write_docs: usize,
}

fn options() -> Options {
    let mut o = Options {
        docs: 100_000,
        rounds: 30,
        write_docs: 20_000,
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        let value = pair[1].parse().ok();
        match (pair[0].as_str(), value) {
            ("--docs", Some(n)) => o.docs = n,
            ("--rounds", Some(n)) => o.rounds = n,
            ("--write-docs", Some(n)) => o.write_docs = n,
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
    async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> Value {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("request sent");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.expect("JSON answer")
    }

    async fn post(&self, path: &str, body: &Value) -> Value {
        self.send(reqwest::Method::POST, path, body).await
    }

    async fn put(&self, path: &str, body: &Value) -> Value {
        self.send(reqwest::Method::PUT, path, body).await
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

async fn load(c: &Client, collection: &str, range: std::ops::Range<usize>) -> Duration {
    let start = Instant::now();
    let batches: Vec<(usize, usize)> = range
        .clone()
        .step_by(BULK)
        .map(|s| (s, (s + BULK).min(range.end)))
        .collect();
    let path = format!("/v1/collections/{collection}/bulk");
    for group in batches.chunks(LOADERS) {
        join_all(group.iter().map(|&(from, to)| {
            let path = &path;
            async move {
                let ops: Vec<Value> = (from..to)
                    .map(|i| json!({"op": "put", "id": format!("d{i:07}"), "data": doc(i)}))
                    .collect();
                let r = c.post(path, &json!({ "ops": ops })).await;
                let results = r["results"].as_array().map_or(0, Vec::len);
                assert_eq!(results, to - from);
            }
        }))
        .await;
    }
    start.elapsed()
}

/// The benchmark's queries, each run to its end `rounds` times: (name, median ms, p90 ms,
/// what it returned).
async fn queries(c: &Client, docs: usize, rounds: usize) -> Vec<(String, f64, f64, String)> {
    let mid = format!("d{:07}", docs / 2);
    let cases = [
        (
            "selective filter `{category: c42}` (0.1%), id order, all pages",
            json!({"filter": {"category": "c42"}, "limit": 100, "explain": true}),
            false,
        ),
        (
            "same filter, sorted by age desc, all pages",
            json!({"filter": {"category": "c42"}, "sort": [{"field": "age", "order": "desc"}],
                "limit": 100, "explain": true}),
            false,
        ),
        (
            "`$in` + range + dotted path + projection, all pages",
            json!({"filter": {"category": {"$in": ["c1", "c2"]}, "age": {"$gte": 30},
                "address.city": "Lima"}, "limit": 100, "projection": ["name", "age"],
                "explain": true}),
            false,
        ),
        (
            "everything sorted by age desc, first page of 100",
            json!({"sort": [{"field": "age", "order": "desc"}], "limit": 100, "explain": true}),
            true,
        ),
        (
            "`_id` range query (`$gte` the middle id), every page of 100",
            json!({"filter": {"_id": {"$gte": mid}}, "limit": 100, "explain": true}),
            false,
        ),
    ];
    let mut rows = Vec::new();
    for (name, mut body, first_page_only) in cases {
        // The first page says which plan the nodes chose; the measured runs do not ask.
        let page = c.post("/v1/collections/bench/query", &body).await;
        let plan = page["plan"].as_array().cloned().unwrap_or_default();
        let index = plan.first().map(|s| s["index"].clone()).unwrap_or_default();
        let examined: u64 = plan.iter().filter_map(|s| s["examined"].as_u64()).sum();
        println!("{name}: index {index}, {examined} records examined for the first page");
        body["explain"] = json!(false);
        let (m, p, what) = if first_page_only {
            let (m, p, page) =
                measure(rounds, || c.post("/v1/collections/bench/query", &body)).await;
            let n = page["documents"].as_array().map_or(0, Vec::len);
            (m, p, format!("{n} docs, first page"))
        } else {
            let (m, p, (d, pages)) = measure(rounds, || c.query_all(&body)).await;
            (m, p, format!("{d} docs, {pages} page(s)"))
        };
        rows.push((name.to_owned(), m, p, what));
    }
    rows
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

    let took = load(&c, "bench", 0..o.docs).await;
    println!(
        "loaded {} documents in {:.1} s ({:.0} docs/s, bulk {BULK} x {LOADERS} in flight, durable)",
        o.docs,
        took.as_secs_f64(),
        o.docs as f64 / took.as_secs_f64()
    );

    let rounds = o.rounds;
    let point = format!("/v1/collections/bench/docs/d{:07}", o.docs / 2);
    let (point_ms, point_p90, _) = measure(rounds, || c.get(&point)).await;
    let (list_ms, list_p90, _) =
        measure(rounds, || c.get("/v1/collections/bench/docs?limit=100")).await;
    let scans = queries(&c, o.docs, rounds).await;

    // Two indexes built online while a writer rewrites documents, timed until every node
    // of the DC has built them.
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let (http, base, writing) = (c.http.clone(), c.base.clone(), writing.clone());
        let docs = o.docs;
        tokio::spawn(async move {
            let w = Client { http, base };
            let mut i = 0usize;
            let mut written = 0usize;
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                let from = (i * 97) % docs.saturating_sub(100).max(1);
                load(&w, "bench", from..from + 100).await;
                written += 100;
                i += 1;
            }
            written
        })
    };
    let built = Instant::now();
    for (name, field, order) in [
        ("by_category", "category", "asc"),
        ("by_age", "age", "desc"),
    ] {
        c.put(
            &format!("/v1/collections/bench/indexes/{name}"),
            &json!({"fields": [{"path": field, "order": order}]}),
        )
        .await;
    }
    loop {
        let list = c.get("/v1/collections/bench/indexes").await;
        let ready = list["indexes"]
            .as_array()
            .is_some_and(|l| l.len() == 2 && l.iter().all(|i| i["state"] == "ready"));
        if ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let build = built.elapsed();
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.unwrap_or(0);
    let indexed = queries(&c, o.docs, rounds).await;

    println!(
        "\n{} documents, 3 storage nodes, {rounds} rounds each; point read {point_ms:.1} ms (p90 {point_p90:.1}), list first page {list_ms:.1} ms (p90 {list_p90:.1})\n",
        o.docs
    );
    println!(
        "| query | scan median ms | scan p90 | index median ms | index p90 | scan / index | result |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|");
    for ((name, m, p, what), (_, im, ip, iwhat)) in scans.iter().zip(&indexed) {
        // Pages may differ (an index has no scan budget to cut them short); documents not.
        let docs = |w: &str| w.split(',').next().unwrap_or_default().to_owned();
        assert_eq!(
            docs(what),
            docs(iwhat),
            "{name}: the index changed the answer"
        );
        println!(
            "| {name} | {m:.1} | {p:.1} | {im:.1} | {ip:.1} | {:.1}x | {what} |",
            m / im
        );
    }
    println!(
        "\nbuilt `by_category` and `by_age` on {} documents in {:.2} s with {written} documents rewritten meanwhile",
        o.docs,
        build.as_secs_f64()
    );

    // Write throughput with and without two indexes: fresh collections, three interleaved
    // rounds of the same bulk load.
    let mut plain = Vec::new();
    let mut with = Vec::new();
    for round in 0..3 {
        let bare = format!("w{round}_plain");
        let idx = format!("w{round}_indexed");
        c.put(&format!("/v1/collections/{bare}"), &json!({})).await;
        for (name, field) in [("by_category", "category"), ("by_age", "age")] {
            c.put(
                &format!("/v1/collections/{idx}/indexes/{name}"),
                &json!({"fields": [{"path": field}]}),
            )
            .await;
        }
        let rate = |d: Duration| o.write_docs as f64 / d.as_secs_f64();
        plain.push(rate(load(&c, &bare, 0..o.write_docs).await));
        with.push(rate(load(&c, &idx, 0..o.write_docs).await));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (p, w) = (median(&mut plain), median(&mut with));
    println!(
        "\nbulk load of {} documents (bulk {BULK} x {LOADERS} in flight, durable), medians of 3 interleaved rounds: without indexes {p:.0} docs/s, with two {w:.0} docs/s = {:.0} %",
        o.write_docs,
        100.0 * w / p
    );
    if let Err(e) = cluster.shutdown().await {
        eprintln!("shutdown: {e:#}");
    }
}
