//! Shard counts chosen at creation (issue 25, item 4): a dev cluster created with the
//! fewest (16) and the most (4096) shards serves writes, reads, queries, counts and change
//! feeds like the default one, and its data directory refuses a restart with another count.

use serde_json::json;

use crate::support::start_with;
use aerolith_cli::dev::{DevCluster, DevOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_of_16_and_4096_shards_serve_and_keep_their_count() {
    for shards in [16u16, 4096] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = start_with(DevOptions {
            shards,
            ..DevOptions::new(dir.path().to_path_buf())
        })
        .await;
        c.bulk_puts("s", 200).await;
        let one = c.get("/v1/collections/s/docs/k7").await;
        assert_eq!(one.status, 200, "{shards}: {:?}", one.body);
        assert_eq!(one.body["data"], json!({"i": 7}));
        let page = c
            .post_json(
                "/v1/collections/s/query",
                &json!({"filter": {"i": {"$gte": 150}}, "sort": [{"field": "i", "order": "desc"}], "limit": 100}),
            )
            .await;
        let ids: Vec<&str> = page.body["documents"]
            .as_array()
            .expect("documents")
            .iter()
            .filter_map(|d| d["id"].as_str())
            .collect();
        assert_eq!(ids.len(), 50, "{shards}: {:?}", page.body);
        assert_eq!(ids[0], "k199");
        let count = c
            .post_json(
                "/v1/collections/s/count",
                &json!({"filter": {"i": {"$lt": 10}}}),
            )
            .await;
        assert_eq!(count.body, json!({"count": 10}), "{shards}");
        // The feed from the oldest change: every write once, and a token that resumes.
        let mut seen = 0;
        let mut since = String::new();
        loop {
            let r = c
                .get(&format!("/v1/collections/s/changes?limit=1000{since}"))
                .await;
            assert_eq!(r.status, 200, "{shards}: {:?}", r.body);
            let n = r.body["changes"].as_array().map_or(0, Vec::len);
            seen += n;
            let next = r.body["next"].as_str().expect("a token").to_owned();
            println!("{shards} shards: a feed token of {} bytes", next.len());
            // Short enough for a polling URL at any shard count (packed positions).
            assert!(next.len() < 16 * 1024, "{shards}: {} bytes", next.len());
            since = format!("&since={next}");
            if n == 0 {
                break;
            }
        }
        assert_eq!(seen, 200, "{shards}");
        c.stop().await;

        // The data directory keeps its count.
        let other = if shards == 16 { 64 } else { 16 };
        let refused = DevCluster::start(DevOptions {
            shards: other,
            ..DevOptions::new(dir.path().to_path_buf())
        })
        .await;
        let e = refused.err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(e.contains(&format!("--shards {shards}")), "{e}");
    }
    // Counts that are not powers of two from 16 to 4096 are refused up front.
    for bad in [8u16, 48, 3000, 8192] {
        let dir = tempfile::tempdir().unwrap();
        let e = DevCluster::start(DevOptions {
            shards: bad,
            ..DevOptions::new(dir.path().to_path_buf())
        })
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
        assert!(e.contains("power of two"), "{bad}: {e}");
    }
}
