//! Failover and retries: nodes killed or stopped, writes in flight, idempotent retries.

mod kill_node;
mod safe_retries;
mod stop_node;
mod unreachable;
