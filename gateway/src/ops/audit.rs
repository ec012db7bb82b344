//! The audit line of every admin action the gateway performs (collection and index
//! creation and deletion, on whichever protocol asked): one helper, called by the
//! operations themselves, so no adapter can skip it.

use std::future::Future;

use aerolith_common::Result;
use aerolith_common::audit::{self, Outcome};

use crate::admission::Who;

/// Runs `action` on `target` for `who` (the request context's caller) and writes its audit
/// line: `done`, or `failed` with the error's code.
pub(super) async fn audited<T>(
    who: Option<Who>,
    action: &'static str,
    target: &str,
    run: impl Future<Output = Result<T>>,
) -> Result<T> {
    let result = run.await;
    let who = who.as_ref();
    let (outcome, reason) = match &result {
        Ok(_) => (Outcome::Done, ""),
        Err(e) => (Outcome::Failed, e.code.as_str()),
    };
    audit::record(&audit::Event {
        process: "gateway",
        action,
        target,
        role: who.map(|w| w.caller.role),
        token_id: who.map_or("-", |w| w.token_id()),
        peer: who.and_then(|w| w.peer),
        outcome,
        reason,
    });
    result
}
