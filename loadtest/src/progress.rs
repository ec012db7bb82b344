//! The live progress line: elapsed time as a bar, current throughput and errors. On a
//! terminal it redraws one line every second; otherwise (CI logs) it prints a line every
//! 10 seconds.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counters the workers bump and the progress line reads.
#[derive(Debug, Default)]
pub struct Live {
    /// Operations finished (ok or not).
    pub done: AtomicU64,
    /// Operations failed.
    pub failed: AtomicU64,
}

impl Live {
    /// Counts one finished operation.
    pub fn count(&self, failed: bool) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Draws the progress of a phase of `total` length until [`finish`] stops it.
pub fn show(label: String, total: Duration, live: Arc<Live>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let tty = std::io::stderr().is_terminal();
        let every = if tty {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(10)
        };
        let start = Instant::now();
        let mut last = (start, 0u64);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tick.tick().await;
            let now = Instant::now();
            let done = live.done.load(Ordering::Relaxed);
            let rate = (done - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-9);
            last = (now, done);
            let elapsed = now - start;
            let frac = (elapsed.as_secs_f64() / total.as_secs_f64().max(1e-9)).min(1.0);
            let filled = (frac * 30.0) as usize;
            let line = format!(
                "{label} [{}{}] {:>4.0}/{:.0} s  {:>8.0} ops/s  {} errors",
                "=".repeat(filled),
                " ".repeat(30 - filled),
                elapsed.as_secs_f64(),
                total.as_secs_f64(),
                rate,
                live.failed.load(Ordering::Relaxed)
            );
            let mut err = std::io::stderr().lock();
            let _ = if tty {
                write!(err, "\r{line}")
            } else {
                writeln!(err, "{line}")
            };
            let _ = err.flush();
        }
    })
}

/// Stops a progress line (and ends a redrawn line).
pub fn finish(handle: tokio::task::JoinHandle<()>) {
    handle.abort();
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
}
