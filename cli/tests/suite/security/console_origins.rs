//! Which web pages may use the replicator admin API: the gateways' consoles, with CORS
//! (preflights answered without a token), and no other page, not even with a simple `POST`
//! that a browser sends across origins without asking first.

use crate::support::procs::peer_status;
use crate::support::start_with;
use aerolith_cli::dev::DevOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_answers_the_consoles_and_refuses_other_pages() {
    let dir = tempfile::tempdir().unwrap();
    let c = start_with(DevOptions {
        dcs: 2,
        nodes_per_dc: 1,
        ..DevOptions::new(dir.path().to_path_buf())
    })
    .await;
    let endpoints = c.cluster.as_ref().unwrap().endpoints().clone();
    let admin = format!("http://{}", endpoints.dcs[0].admin);
    let http = reqwest::Client::new();
    let paused = || async { peer_status(&admin).await["state"] == "paused" };

    // Another site's page: its simple POST is refused before it runs, and audited.
    let r = http
        .post(format!("{admin}/admin/peers/dc2/pause"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "permission_denied");
    assert!(!paused().await, "a foreign page paused shipping");
    let r = http
        .request(reqwest::Method::OPTIONS, format!("{admin}/admin/status"))
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Either gateway's console (as 127.0.0.1 or localhost): preflight answered, answers
    // readable, the action done.
    for gateway in &endpoints.dcs {
        let port = gateway.http.rsplit(':').next().unwrap();
        for origin in [
            format!("http://{}", gateway.http),
            format!("http://localhost:{port}"),
        ] {
            let r = http
                .request(reqwest::Method::OPTIONS, format!("{admin}/admin/status"))
                .header("origin", &origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization,content-type",
                )
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 204, "{origin}");
            let h = r.headers();
            assert_eq!(h["access-control-allow-origin"], origin.as_str());
            assert!(
                h["access-control-allow-methods"]
                    .to_str()
                    .unwrap()
                    .contains("POST")
            );
            assert!(
                h["access-control-allow-headers"]
                    .to_str()
                    .unwrap()
                    .contains("authorization")
            );
        }
    }
    let console = format!("http://{}", endpoints.dcs[0].http);
    let r = http
        .post(format!("{admin}/admin/peers/dc2/pause"))
        .header("origin", &console)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], console.as_str());
    assert!(paused().await);

    // The CLI and curl send no Origin: unaffected.
    let r = http
        .post(format!("{admin}/admin/peers/dc2/resume"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!paused().await);

    // The console learns its DC's admin API, and may connect only there besides itself.
    let r = http
        .get(format!("{console}/console/config.json"))
        .send()
        .await
        .unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains(&format!("connect-src 'self' {admin};")),
        "{csp}"
    );
    let config: serde_json::Value = r.json().await.unwrap();
    assert_eq!(config["admin"], admin.as_str());
}
