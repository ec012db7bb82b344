//! The ceilings of this machine, for `aerolith-loadtest compare`: what the same client gets
//! from an HTTP server that does no work, and what the storage engine does with no server
//! in front of it.

pub mod http;
pub mod storage;
