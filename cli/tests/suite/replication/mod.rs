//! Replication between DCs: shipping, three DCs, convergence under the faults that once broke it, tombstones, resync and rebuilds.

mod consistency;
mod index_defs;
mod killed_replicators;
mod rebuild;
mod relay;
mod replication_three_dcs;
mod resync;
mod tombstones;
mod two_dcs;
