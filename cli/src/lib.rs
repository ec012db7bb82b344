//! The `aerolith` command: `aerolith dev` runs a whole cluster in one process; and the
//! ceilings (`aerolith-ceiling`) the load-test comparison measures against.

pub mod ceiling;
pub mod dev;
