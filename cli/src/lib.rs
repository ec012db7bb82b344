//! The `aerolith` command: `aerolith dev` runs a whole cluster in one process.

pub mod dev;
