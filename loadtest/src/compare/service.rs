//! The servers a comparison starts: `aerolith dev`, the HTTP ceiling, etcd and PostgreSQL,
//! each a child process with its output in a log file, stopped when dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a server may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a server stopped by its signal may take to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// A running server process.
pub struct Service {
    name: String,
    child: Child,
    log: PathBuf,
    /// The signal that shuts the server down cleanly (`INT` for PostgreSQL's fast
    /// shutdown); none: SIGKILL.
    stop_signal: Option<&'static str>,
}

impl Service {
    /// Starts `program` with `args`, logging to `<dir>/<name>.log`.
    pub fn spawn(name: &str, program: &Path, args: &[String], dir: &Path) -> anyhow::Result<Self> {
        Service::spawn_in(name, program, args, dir, None)
    }

    /// [`Service::spawn`], the process working in `cwd` instead of this one's directory.
    pub fn spawn_in(
        name: &str,
        program: &Path,
        args: &[String],
        dir: &Path,
        cwd: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log)?;
        let mut command = Command::new(program);
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        let child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {name} ({})", program.display()))?;
        Ok(Service {
            name: name.to_string(),
            child,
            log,
            stop_signal: None,
        })
    }

    /// Stops the server with `signal` (a name `kill -s` takes) when dropped, waiting a while
    /// for it to exit before killing it.
    pub fn stop_with(mut self, signal: &'static str) -> Self {
        self.stop_signal = Some(signal);
        self
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `ready` holds, failing early if the process exits (with the end of its
    /// log in the error).
    pub async fn wait_ready<F, Fut>(&mut self, mut ready: F) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited ({status}): {}", self.name, self.log_tail());
            }
            if ready().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not ready after {READY_TIMEOUT:?}: {}",
                    self.name,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for the process to exit by itself; an error unless it exits with success.
    pub async fn wait_exit(mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if status.success() {
                    return Ok(());
                }
                bail!("{} failed ({status}): {}", self.name, self.log_tail());
            }
            if Instant::now() > deadline {
                bail!("{} still running after {timeout:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The last lines of the log, for errors.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(signal) = self.stop_signal
            && matches!(self.child.try_wait(), Ok(None))
        {
            let sent = Command::new("kill")
                .args(["-s", signal, &self.child.id().to_string()])
                .status();
            if matches!(sent, Ok(s) if s.success()) {
                let deadline = Instant::now() + STOP_TIMEOUT;
                while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether an HTTP GET of `url` answers with a success status within a second (a server
/// that accepts but never answers is not ready, and must not stall the wait).
pub async fn http_ok(http: &reqwest::Client, url: &str) -> bool {
    let probe = http.get(url).timeout(Duration::from_secs(1)).send();
    matches!(probe.await, Ok(r) if r.status().is_success())
}
