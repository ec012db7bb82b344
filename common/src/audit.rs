//! The audit trail: one structured log line (target `aerolith::audit`) and one count in
//! `aerolith_audit_events_total{action,outcome}` for every admin action and every refused
//! authentication or authorisation. A line names the token by its id
//! ([`crate::auth::token_id`]), never by its value.

use std::net::SocketAddr;

use crate::auth::Role;

/// The `tracing` target of audit lines, for filtering them into their own sink.
pub const TARGET: &str = "aerolith::audit";

/// How an audited request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The action was done.
    Done,
    /// The action was tried and failed (its error code is in the line).
    Failed,
    /// No token, or an unknown one.
    Unauthenticated,
    /// A known token without the role the request needs.
    Denied,
}

impl Outcome {
    /// The outcome's name in lines and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Failed => "failed",
            Outcome::Unauthenticated => "unauthenticated",
            Outcome::Denied => "denied",
        }
    }
}

/// One audited event.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// The process that saw it (`gateway`, `replicator`).
    pub process: &'static str,
    /// What was asked: `collection.create`, `failover`, `request` for a refused call...
    pub action: &'a str,
    /// What it was asked of: a collection, a DC, a node, a request path.
    pub target: &'a str,
    /// The caller token's role, when it presented a known one.
    pub role: Option<Role>,
    /// The caller token's id (`-` when none or authentication is off).
    pub token_id: &'a str,
    /// The caller's address, when known.
    pub peer: Option<SocketAddr>,
    /// How it ended.
    pub outcome: Outcome,
    /// The error code or reason, when it did not end `done`.
    pub reason: &'a str,
}

/// Longest object an audit line repeats (request paths are the client's to choose).
const MAX_OBJECT: usize = 256;

/// `object` cut to [`MAX_OBJECT`] bytes at a character boundary.
fn bounded(object: &str) -> &str {
    let mut end = object.len().min(MAX_OBJECT);
    while !object.is_char_boundary(end) {
        end -= 1;
    }
    &object[..end]
}

/// Logs `event` as one line (its object bounded to [`MAX_OBJECT`] bytes) and counts it.
pub fn record(event: &Event<'_>) {
    let role = event.role.map_or("-", Role::as_str);
    let peer = event
        .peer
        .map_or_else(|| "-".to_string(), |p| p.to_string());
    tracing::info!(
        target: TARGET,
        process = event.process,
        action = event.action,
        object = bounded(event.target),
        role,
        token_id = event.token_id,
        peer = %peer,
        outcome = event.outcome.as_str(),
        reason = event.reason,
        "audit"
    );
    metrics::counter!(
        "aerolith_audit_events_total",
        "action" => event.action.to_string(),
        "outcome" => event.outcome.as_str(),
    )
    .increment(1);
}

#[cfg(test)]
mod tests {
    use super::{MAX_OBJECT, bounded};
    use crate::auth::{Tokens, token_id};

    #[test]
    fn objects_are_bounded_at_a_character_boundary() {
        let long = "é".repeat(200);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_OBJECT && long.starts_with(cut));
        assert_eq!(bounded("GET /v1/collections"), "GET /v1/collections");
    }

    #[test]
    fn a_token_id_names_the_token_without_its_value() {
        let secret = "0123456789abcdef-secret-value";
        let id = token_id(secret);
        assert!(id.starts_with("tok-") && id.len() == 16, "{id}");
        assert!(!id.contains("secret") && !secret.contains(&id[4..]));
        assert_eq!(id, token_id(secret), "ids are stable");
        assert_ne!(id, token_id("0123456789abcdef-other-value"));
        let mut tokens = Tokens::default();
        tokens.add_list(&format!("admin:{secret}")).unwrap();
        let caller = tokens.lookup(secret).unwrap();
        assert_eq!(tokens.id_of(&caller), id);
    }
}
