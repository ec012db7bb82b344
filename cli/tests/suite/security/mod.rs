//! Authentication, roles and TLS on the public ports.

mod auth;
mod public_tls;
mod replicator_audit;
