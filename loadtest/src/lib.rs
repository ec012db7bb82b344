//! AerolithDB's load and fault harnesses, which drive real servers over the wire.
//!
//! - `ycsb`, `driver`, `load`, `run`, `stats`, `report`, `plot`, `progress`: the YCSB core
//!   workloads over every protocol (and etcd's and PostgreSQL's), closed or open loop,
//!   with HDR histograms.
//! - `compare`: AerolithDB against this machine's ceilings, etcd and PostgreSQL, in rounds.
//! - `faults`: a workload under injected faults (process kills, a partitioned replicator
//!   link, a skewed clock), checked against what every DC holds afterwards.

pub mod compare;
pub mod driver;
pub mod duration;
pub mod faults;
pub mod load;
pub mod plot;
pub mod progress;
pub mod report;
pub mod run;
pub mod stats;
pub mod ycsb;
