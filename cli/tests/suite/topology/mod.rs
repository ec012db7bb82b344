//! A DC's shape over time (issue 25): its versioned shard map, learned by every caller
//! without a restart.

mod shard_map;
