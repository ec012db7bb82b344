//! A gRPC call waits for a place in flight (`--max-in-flight`, shared with the HTTP port)
//! only within its own deadline, and then answers `deadline_exceeded` like any slow request.

use std::time::Duration;

use tonic::Code;
use tonic_types::StatusExt;

use super::wire::{Raw, eventually, grpc_client};
use crate::support::start_with_tokens;
use aerolith_gateway::admission::RequestLimits;
use aerolith_proto::v1 as api;

/// A `ListCollections` call with a deadline of `ms`.
fn list(ms: u64) -> tonic::Request<api::ListCollectionsRequest> {
    let mut req = tonic::Request::new(api::ListCollectionsRequest::default());
    req.set_timeout(Duration::from_millis(ms));
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_call_waits_for_a_place_only_within_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let one_place = RequestLimits {
        max_in_flight: 1,
        ..RequestLimits::default()
    };
    let mut c = start_with_tokens(dir.path(), "", one_place).await;

    // A REST write whose body never comes holds the only place (up to its 60 s deadline).
    let mut held = Raw::connect(&c.http_addr, None).await;
    held.write(
        b"PUT /v1/collections/f/docs/x HTTP/1.1\r\nHost: gateway\r\n\
          Content-Type: application/json\r\nContent-Length: 100\r\n\
          X-Aerolith-Timeout-Ms: 60000\r\n\r\n{",
    )
    .await;
    // Ready when a request that needs no storage node (an unknown route: 404 at once with a
    // place) runs out of its 100 ms waiting for one.
    eventually("the unsent body holds the only place", || {
        let addr = c.http_addr.clone();
        async move {
            let mut probe = Raw::connect(&addr, None).await;
            let quick = [("X-Aerolith-Timeout-Ms", "100")];
            (probe.request("GET", "/v1/nope", None, &quick).await.status == 504).then_some(())
        }
    })
    .await;

    // A gRPC call with a 1 s deadline ends by it with API.md's deadline_exceeded.
    let mut client = grpc_client(&c.grpc_addr, None).await;
    let status = client.list_collections(list(1000)).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().starts_with("deadline_exceeded: "),
        "{status:?}"
    );
    let reason = status.get_details_error_info().map(|i| i.reason);
    assert_eq!(reason.as_deref(), Some("deadline_exceeded"));

    // Once the place is free the same call goes through.
    drop(held);
    eventually("the place is given back", || {
        let mut client = client.clone();
        async move { client.list_collections(list(1000)).await.ok() }
    })
    .await;
    c.stop().await;
}
