//! The client check: `wrk`, a lean C load generator, against the HTTP ceiling with the same
//! connections, duration and request as the harness's REST reads. The harness's throughput
//! over wrk's says how much of the ceiling the client itself costs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

/// `wrk` as given: a path, or a name looked up in `PATH`; none when it is not there.
pub fn find(wrk: &Path) -> Option<PathBuf> {
    if wrk.components().count() > 1 {
        return wrk.is_file().then(|| wrk.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(wrk))
        .find(|p| p.is_file())
}

/// Runs `wrk -t threads -c threads -d duration url` and returns its requests per second.
pub async fn run(wrk: &Path, url: &str, threads: usize, duration: Duration) -> anyhow::Result<f64> {
    let threads = threads.max(1).to_string();
    // wrk takes whole seconds.
    let seconds = format!("{}s", duration.as_secs().max(1));
    let mut command = Command::new(wrk);
    command.args(["-t", &threads, "-c", &threads, "-d", &seconds, url]);
    let out = tokio::task::spawn_blocking(move || command.output())
        .await?
        .with_context(|| format!("running {}", wrk.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "wrk failed ({}): {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    requests_per_second(&text).with_context(|| format!("no Requests/sec in wrk's output: {text}"))
}

/// The figure of wrk's `Requests/sec:` line.
fn requests_per_second(output: &str) -> Option<f64> {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrks_summary() {
        let out = "Running 3s test @ http://127.0.0.1:1/x\n  2 threads and 2 connections\n\
                   12000 requests in 3.00s, 13.1MB read\nRequests/sec:   4000.12\n\
                   Transfer/sec:      4.37MB\n";
        assert_eq!(requests_per_second(out), Some(4000.12));
        assert_eq!(requests_per_second("nothing"), None);
    }

    #[test]
    fn a_missing_wrk_is_not_found() {
        assert_eq!(find(Path::new("/nonexistent/wrk")), None);
        assert_eq!(find(Path::new("no-such-program-here")), None);
    }
}
