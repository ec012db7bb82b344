//! Logging and metrics set-up shared by every binary.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Installs a `tracing` subscriber writing to stderr, filtered by `RUST_LOG` (default
/// `info`), with colours only on a terminal (a log file gets plain lines). The audit trail
/// (`aerolith::audit`) stays at `info` whatever `RUST_LOG` says, unless it names that target
/// itself: turning the logs down must not turn the audit off.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(std::env::var("RUST_LOG").ok().as_deref()))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// The log filter of `RUST_LOG`'s value, with the audit target kept at `info`.
fn filter(rust_log: Option<&str>) -> tracing_subscriber::EnvFilter {
    let audit = format!("{}=info", crate::audit::TARGET);
    let directives = match rust_log {
        Some(d) if d.contains(crate::audit::TARGET) => d.to_string(),
        Some(d) if !d.trim().is_empty() => format!("{d},{audit}"),
        _ => format!("info,{audit}"),
    };
    tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("info,{audit}")))
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus handle, installing the recorder on first use (the gateways and
/// replicators of one process, as in `aerolith dev`, share it).
pub fn prometheus() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; metrics then go there.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
