//! Authentication, roles and TLS on the public ports.

mod audit;
mod auth;
mod caps;
mod console_origins;
mod graphql_init;
mod in_flight;
mod public_tls;
mod replicator_audit;
mod wire;
