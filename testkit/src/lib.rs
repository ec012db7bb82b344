//! Test-only helpers that several crates' own integration tests share. Nothing here is
//! linked into a shipped binary: the crates take it as a dev-dependency only.

/// The check every binary's test runs on its `healthcheck` subcommand: exit 0 on an endpoint
/// that answers 200, then exit 1 with one line once nothing listens there. Panics on a
/// mismatch (it is for tests).
pub fn assert_healthcheck_answers(exe: &str, bin: &str) {
    use std::io::{Read, Write};
    use std::process::Command;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a local port");
    let addr = listener.local_addr().expect("its address");
    let server = std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        }
    });
    let url = format!("http://{addr}/healthz");
    let ok = Command::new(exe)
        .args(["healthcheck", "http", &url])
        .output()
        .expect("the binary runs");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let _ = server.join();
    // The listener is gone: nothing answers any more.
    let down = Command::new(exe)
        .args(["healthcheck", "http", &url, "--timeout", "2"])
        .output()
        .expect("the binary runs");
    assert_eq!(down.status.code(), Some(1));
    let err = String::from_utf8_lossy(&down.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.starts_with(&format!("{bin} healthcheck: GET")), "{err}");
}
