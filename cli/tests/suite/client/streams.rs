//! Change streams of the client crate over the WebSocket API against a dev cluster: they
//! start now (or after a token), filter, and step past a change whose data does not fit the
//! type asked for (the polled REST feed too) instead of failing from then on.

use std::time::Duration;

use aerolith_client::{Change, ChangeOp, Client, Error};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Serialize, Deserialize)]
struct User {
    name: String,
    age: u32,
}

/// The next change within 30 s.
async fn next<T: serde::de::DeserializeOwned>(
    s: &mut aerolith_client::ChangeStream<T>,
) -> Result<Change<T>, Error> {
    tokio::time::timeout(Duration::from_secs(30), s.next())
        .await
        .expect("the stream delivers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_streams_start_now_filter_and_step_past_data_that_does_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = crate::support::start(dir.path(), 2).await;
    let client = Client::new(&c.base).unwrap();
    let raw = client.collection::<Value>("st");
    raw.put("before", &json!({"name": "Old", "age": 50}))
        .await
        .unwrap();
    let from_start = raw.poll_changes(None).next().await.unwrap().token;

    let mut adults = client
        .collection::<User>("st")
        .changes()
        .filter(json!({"age": {"$gte": 18}}));
    adults.start().await.unwrap();
    let started_at = adults.token().expect("a start token").to_string();
    raw.put("kid", &json!({"name": "Kid", "age": 5}))
        .await
        .unwrap();
    raw.put("ada", &json!({"name": "Ada", "age": 36}))
        .await
        .unwrap();
    raw.put("odd", &json!({"name": 7, "age": 40}))
        .await
        .unwrap();
    raw.put("grace", &json!({"name": "Grace", "age": 45}))
        .await
        .unwrap();
    raw.delete("kid").await.unwrap();

    // Not "before" (it came before the start), not kid's put (filtered out); "odd" matches
    // the filter but is not a User: reported as such, and the stream goes on. Changes of
    // different documents may come in any order (they live in different shards).
    let mut got = Vec::new();
    let mut decode_errors = 0;
    while got.len() + decode_errors < 4 {
        match next(&mut adults).await {
            Ok(change) => {
                if change.id == "ada" {
                    let user = change.data.as_ref().unwrap();
                    assert_eq!((user.name.as_str(), user.age), ("Ada", 36));
                }
                assert_eq!(adults.token(), Some(change.token.as_str()));
                got.push((change.id, change.op));
            }
            Err(Error::Decode { .. }) => {
                decode_errors += 1;
                assert_eq!(
                    decode_errors, 1,
                    "it does not step past the change that does not fit"
                );
            }
            Err(e) => panic!("the stream failed: {e}"),
        }
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("ada".to_string(), ChangeOp::Put),
            ("grace".to_string(), ChangeOp::Put),
            ("kid".to_string(), ChangeOp::Delete) // deletes pass every filter
        ]
    );
    assert_eq!(decode_errors, 1);
    adults.close().await;

    // Resuming from the start token, unfiltered, as Value: "odd" is there, and kid's put
    // comes before its delete.
    let mut resumed = raw.changes().since(&started_at);
    let mut all = Vec::new();
    while all.len() < 5 {
        let c = next(&mut resumed).await.unwrap();
        if c.id == "odd" {
            assert_eq!(c.data, Some(json!({"name": 7, "age": 40})));
        }
        all.push((c.id, c.op));
    }
    let kid: Vec<ChangeOp> = all
        .iter()
        .filter(|(id, _)| id == "kid")
        .map(|(_, op)| *op)
        .collect();
    assert_eq!(kid, [ChangeOp::Put, ChangeOp::Delete]);
    assert!(all.iter().any(|(id, _)| id == "odd"), "{all:?}");

    // The polled feed steps past "odd" the same way.
    let mut feed = client
        .collection::<User>("st")
        .poll_changes(Some(from_start));
    let mut ids = Vec::new();
    let mut decode_errors = 0;
    while ids.len() < 4 {
        match tokio::time::timeout(Duration::from_secs(30), feed.next())
            .await
            .expect("the feed delivers")
        {
            Ok(change) => ids.push(change.id),
            Err(Error::Decode { .. }) => {
                decode_errors += 1;
                assert_eq!(
                    decode_errors, 1,
                    "it does not step past the change that does not fit"
                );
            }
            Err(e) => panic!("the feed failed: {e}"),
        }
    }
    ids.sort();
    assert_eq!(ids, ["ada", "grace", "kid", "kid"]);
    assert_eq!(decode_errors, 1);

    // A deleted collection ends a stream with not_found; a bad filter is invalid_argument.
    let mut bad = raw.changes().filter(json!({"age": {"$near": 1}}));
    let err = bad.start().await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(&aerolith_client::ErrorCode::InvalidArgument),
        "{err}"
    );
    let mut ending = raw.changes();
    ending.start().await.unwrap();
    client.delete_collection("st").await.unwrap();
    let err = next(&mut ending).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    c.stop().await;
}

/// How many subscriptions the gateway at `base` refused for the subscription cap.
async fn cap_refusals(base: &str) -> u64 {
    crate::support::metrics(&reqwest::Client::new(), base)
        .await
        .lines()
        .find_map(|l| l.strip_prefix("aerolith_cap_refusals_total{cap=\"subscriptions\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_subscription_is_retried_after_a_pause_and_reported_after_the_timeout() {
    const TOKEN: &str = "stream-suite-token-with-one-subscription";
    let dir = tempfile::tempdir().unwrap();
    let requests = aerolith_gateway::admission::RequestLimits {
        caps: aerolith_gateway::caps::CapLimits {
            subscriptions: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut c =
        crate::support::start_with_tokens(dir.path(), &format!("admin:{TOKEN}"), requests).await;
    let client = Client::builder()
        .endpoint(&c.base)
        .token(TOKEN)
        .build()
        .unwrap();
    let docs = client.collection::<Value>("capped");
    let mut holder = docs.changes();
    holder.start().await.unwrap();

    // The token's only subscription is taken: the gateway accepts the connection and
    // refuses the subscription. The stream tries again after growing pauses (not in a
    // tight loop), and reports the refusal once its reconnect timeout passed.
    let before = cap_refusals(&c.base).await;
    let mut refused = docs.changes().reconnect_timeout(Duration::from_secs(2));
    let err = tokio::time::timeout(Duration::from_secs(60), refused.start())
        .await
        .expect("the stream gives up after its reconnect timeout")
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&aerolith_client::ErrorCode::Unavailable),
        "{err}"
    );
    assert!(
        err.to_string().contains("--max-subscriptions-per-token"),
        "{err}"
    );
    let attempts = cap_refusals(&c.base).await - before;
    assert!(
        (1..=20).contains(&attempts),
        "{attempts} subscriptions refused in ~2 s: the stream should pause between tries"
    );

    // Once the place is free, a stream waiting for it gets it.
    let mut waiting = docs.changes();
    let waiter = tokio::spawn(async move { waiting.start().await.map(|()| waiting) });
    holder.close().await;
    let mut waiting = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("the waiting stream subscribes once the place is free")
        .unwrap()
        .unwrap();
    docs.put("a", &json!({"n": 1})).await.unwrap();
    assert_eq!(next(&mut waiting).await.unwrap().id, "a");
    c.stop().await;
}
