//! The `aerolith` command: `aerolith dev` runs a whole cluster in one process; `certs` and
//! `healthcheck` serve clusters run from cluster.toml; the client commands (`get`, `put`,
//! `query`, `watch`, `bulk`, `admin`, ...) talk to a cluster; and the ceilings
//! (`aerolith-ceiling`) the load-test comparison measures against.

pub mod ceiling;
pub mod certs;
pub mod client;
pub mod dev;
pub mod restore;
