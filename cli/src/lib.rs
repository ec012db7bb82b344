//! The `aerolith` command: `aerolith dev` runs a whole cluster in one process; `certs` and
//! `healthcheck` serve clusters run from cluster.toml; and the ceilings
//! (`aerolith-ceiling`) the load-test comparison measures against.

pub mod ceiling;
pub mod certs;
pub mod dev;
