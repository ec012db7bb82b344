//! The command-line tools: the client, cluster tools, `aerolith dev` as a process, the load-test harness and the comparison.

mod client_cli;
mod cluster_tools;
mod compare;
mod dev_process;
mod loadtest;
mod shard_counts;
