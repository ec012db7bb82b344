//! The audit lines (`tracing` target `aerolith::audit`) of every in-process gateway of the
//! test binary, captured. The dev cluster logs through the process's `tracing` dispatcher, so
//! a test installs this capture once ([`capture`]) and finds its own lines among all the
//! tests' by something only its requests carry (the loopback address they come from).
//! Events of every other target are never enabled: they cost the other tests nothing.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};

use aerolith_common::audit::TARGET;

/// One captured line: its fields by name (the message under `message`).
pub type Line = BTreeMap<String, String>;

static LINES: Mutex<Vec<Line>> = Mutex::new(Vec::new());
static INSTALLED: OnceLock<bool> = OnceLock::new();

/// Installs the capture as the process's `tracing` dispatcher (once; later calls do
/// nothing). Panics if another dispatcher was installed first: no line would arrive.
pub fn capture() {
    let installed =
        *INSTALLED.get_or_init(|| tracing::subscriber::set_global_default(Capture).is_ok());
    assert!(installed, "another tracing subscriber is installed");
}

/// Every line captured so far that `keep` accepts.
pub fn lines(keep: impl Fn(&Line) -> bool) -> Vec<Line> {
    let lines = LINES.lock().unwrap_or_else(|p| p.into_inner());
    lines.iter().filter(|l| keep(l)).cloned().collect()
}

/// Every line captured so far as text, `name=value` pairs.
pub fn text() -> String {
    let lines = LINES.lock().unwrap_or_else(|p| p.into_inner());
    let mut out = String::new();
    for line in lines.iter() {
        for (k, v) in line {
            let _ = write!(out, "{k}={v} ");
        }
        out.push('\n');
    }
    out
}

/// A subscriber that keeps the fields of audit events and ignores everything else.
struct Capture;

/// Collects an event's fields as text.
struct Fields(Line);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

impl Subscriber for Capture {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.target() == TARGET {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        meta.target() == TARGET
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        // Audit lines are events; spans are never enabled, so this id is never used.
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(Line::new());
        event.record(&mut fields);
        LINES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(fields.0);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}
