//! The checker: after healing, waits for the DCs to converge and compares what every DC holds
//! with what the workload was told.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use super::version::Version;
use super::workload::{COLLECTION, Fate, History};

/// Concurrent reads while checking.
const PARALLEL_READS: usize = 16;

/// Waits until every replicator reports the same per-shard digests of its DC; false if
/// they still differ after `timeout`.
pub async fn converge(http: &reqwest::Client, admins: &[String], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let mut digests = Vec::new();
        for admin in admins {
            let d = match http.get(format!("{admin}/admin/digests")).send().await {
                Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
                _ => None,
            };
            digests.push(d.map(|d| d["shards"].clone()));
        }
        if digests.iter().all(Option::is_some) && digests.windows(2).all(|w| w[0] == w[1]) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The secondary indexes the fault run defines on its collection while the workload runs.
const INDEXES: [(&str, &str); 2] = [
    ("by_n", r#"{"fields":[{"path":"n"}]}"#),
    (
        "by_w_n",
        r#"{"fields":[{"path":"w"},{"path":"n","order":"desc"}]}"#,
    ),
];

/// Defines [`INDEXES`] through `gateway` at `at` (retrying through faults); false if no
/// attempt succeeded within a minute of it.
pub async fn define_indexes(http: reqwest::Client, gateway: String, at: Instant) -> bool {
    tokio::time::sleep_until(at.into()).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    for (name, def) in INDEXES {
        loop {
            let done = http
                .put(format!(
                    "{gateway}/v1/collections/{COLLECTION}/indexes/{name}"
                ))
                .header("content-type", "application/json")
                .body(def)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if done {
                break;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    true
}

/// Waits until every gateway lists [`INDEXES`] as ready, then sums the index entries that
/// disagree with their documents over every DC's shards; `None` if the builds did not
/// finish within `timeout`.
pub async fn indexes_exact(
    http: &reqwest::Client,
    gateways: &[String],
    admins: &[String],
    timeout: Duration,
) -> Option<u64> {
    let deadline = Instant::now() + timeout;
    for gw in gateways {
        loop {
            let ready = match http
                .get(format!("{gw}/v1/collections/{COLLECTION}/indexes"))
                .send()
                .await
            {
                Ok(r) => r.json::<Value>().await.ok().is_some_and(|v| {
                    v["indexes"].as_array().is_some_and(|l| {
                        l.len() == INDEXES.len() && l.iter().all(|i| i["state"] == "ready")
                    })
                }),
                Err(_) => false,
            };
            if ready {
                break;
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let mut mismatches = 0;
    for admin in admins {
        let d: Value = http
            .get(format!("{admin}/admin/digests?indexes=true"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        mismatches += d["shards"]
            .as_array()?
            .iter()
            .map(|s| s["index_mismatches"].as_u64().unwrap_or(u64::MAX / 1024))
            .sum::<u64>();
    }
    Some(mismatches)
}

/// What the final reads found.
#[derive(Debug, Default)]
pub struct Found {
    /// Acknowledged writes missing (or older) in some DC.
    pub lost: u64,
    /// Acknowledged deletes undone in some DC.
    pub resurrected: u64,
    /// Descriptions of the first of them.
    pub problems: Vec<String>,
}

/// What one document must look like in every DC.
enum Expect {
    /// Exactly this body (a worker's own document: nobody else writes it).
    Body(Value),
    /// Gone.
    Deleted,
    /// A version that covers this acknowledged write (a hot document).
    Covers(Version),
}

/// Reads every document the histories name through every gateway (no session: the DCs
/// have converged) and compares.
pub async fn final_states(
    http: &reqwest::Client,
    gateways: &[String],
    histories: &[History],
) -> Found {
    let mut checks: Vec<(String, Expect)> = Vec::new();
    for h in histories {
        for (id, fate) in &h.own {
            match fate {
                Fate::Written(body, _) => checks.push((id.clone(), Expect::Body(body.clone()))),
                Fate::Deleted => checks.push((id.clone(), Expect::Deleted)),
                Fate::Unknown => {}
            }
        }
        for (id, v) in &h.hot_writes {
            checks.push((id.clone(), Expect::Covers(v.clone())));
        }
    }
    let reads = checks.iter().flat_map(|(id, expect)| {
        gateways.iter().map(move |gw| async move {
            let url = format!("{gw}/v1/collections/{COLLECTION}/docs/{id}");
            let answer = match http.get(&url).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    (status, r.json::<Value>().await.unwrap_or(Value::Null))
                }
                Err(e) => (0, Value::String(e.to_string())),
            };
            (id, gw, expect, answer)
        })
    });
    let mut found = Found::default();
    let mut results = futures::stream::iter(reads).buffer_unordered(PARALLEL_READS);
    while let Some((id, gw, expect, (status, body))) = results.next().await {
        let (ok, resurrected) = match expect {
            Expect::Body(want) => (status == 200 && body["data"] == *want, false),
            Expect::Deleted => (status == 404, status == 200),
            Expect::Covers(want) => (
                status == 200
                    && body["version"]
                        .as_str()
                        .and_then(Version::parse)
                        .is_some_and(|v| v.covers(want)),
                false,
            ),
        };
        if ok {
            continue;
        }
        if resurrected {
            found.resurrected += 1;
        } else {
            found.lost += 1;
        }
        if found.problems.len() < 20 {
            found
                .problems
                .push(format!("{id} via {gw}: status {status}, body {body}"));
        }
    }
    found
}
