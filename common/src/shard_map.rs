//! Shard maps (issue 25): which storage node of a DC owns each shard, at an epoch.
//!
//! Ownership is data, not a position in `cluster.toml`: the DC's replicator holds the map
//! durably and is its one writer; it hands it to the DC's storage nodes, which keep it and
//! refuse calls for shards they do not own; gateways and peer replicators fetch it from the
//! nodes. A later epoch replaces an earlier one. `cluster.toml` lists the nodes that exist
//! (their addresses); a DC's first map (epoch [`FIRST_EPOCH`]) deals shard *s* to the node
//! listed at position *s* mod N, as every release before maps did, so upgrading moves
//! nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::error::{Error, Result};
use crate::pb;
use crate::topology::{ClusterConfig, DcConfig, NodeConfig};

/// The epoch of a DC's first map (the one `cluster.toml` implies).
pub const FIRST_EPOCH: u64 = 1;

/// One DC's shard map, checked for shape: an owner per shard, each a listed node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    /// The DC it maps.
    pub dc: String,
    /// Its epoch: a map replaces any of a lower epoch.
    pub epoch: u64,
    /// Node ids; `owners` holds positions in this list.
    nodes: Vec<String>,
    /// Per shard, the position in `nodes` of its owner.
    owners: Vec<u16>,
}

impl ShardMap {
    /// The first map of `dc`: shard *s* to the node at position *s* mod N.
    pub fn initial(dc: &DcConfig, shards: u16) -> ShardMap {
        let n = dc.nodes.len().max(1);
        ShardMap {
            dc: dc.id.clone(),
            epoch: FIRST_EPOCH,
            nodes: dc.nodes.iter().map(|n| n.id.clone()).collect(),
            owners: (0..shards).map(|s| (usize::from(s) % n) as u16).collect(),
        }
    }

    /// A map received on the wire, for a cluster of `shards` shards.
    pub fn from_pb(m: &pb::ShardMap, shards: u16) -> Result<ShardMap> {
        let bad = |why: String| Error::invalid(format!("shard map of DC {}: {why}", m.dc));
        if m.epoch == 0 {
            return Err(bad("epoch 0".into()));
        }
        if m.owners.len() != usize::from(shards) {
            return Err(bad(format!(
                "{} owners for a cluster of {shards} shards",
                m.owners.len()
            )));
        }
        let owners = m
            .owners
            .iter()
            .map(|&o| {
                u16::try_from(o)
                    .ok()
                    .filter(|o| usize::from(*o) < m.nodes.len())
                    .ok_or_else(|| bad(format!("owner {o} is not one of its nodes")))
            })
            .collect::<Result<Vec<u16>>>()?;
        Ok(ShardMap {
            dc: m.dc.clone(),
            epoch: m.epoch,
            nodes: m.nodes.clone(),
            owners,
        })
    }

    /// The map on the wire.
    pub fn to_pb(&self) -> pb::ShardMap {
        pb::ShardMap {
            dc: self.dc.clone(),
            epoch: self.epoch,
            nodes: self.nodes.clone(),
            owners: self.owners.iter().map(|o| u32::from(*o)).collect(),
        }
    }

    /// The number of shards it maps.
    pub fn shards(&self) -> u16 {
        self.owners.len() as u16
    }

    /// The id of the node that owns `shard` (empty past the last shard).
    pub fn owner(&self, shard: u16) -> &str {
        self.owners
            .get(usize::from(shard))
            .and_then(|o| self.nodes.get(usize::from(*o)))
            .map_or("", String::as_str)
    }

    /// The shards node `id` owns, ascending.
    pub fn shards_of(&self, id: &str) -> Vec<u16> {
        (0..self.shards())
            .filter(|s| self.owner(*s) == id)
            .collect()
    }

    /// A copy in which `shard` belongs to node `id` (listed if new), at the next epoch.
    pub fn with_owner(&self, shard: u16, id: &str) -> ShardMap {
        let mut next = self.clone();
        let pos = match next.nodes.iter().position(|n| n == id) {
            Some(p) => p,
            None => {
                next.nodes.push(id.to_string());
                next.nodes.len() - 1
            }
        };
        if let Some(o) = next.owners.get_mut(usize::from(shard)) {
            *o = pos as u16;
        }
        next.epoch += 1;
        next
    }

    /// Checks that every owner is a node `cluster.toml` lists for the DC.
    pub fn check_against(&self, dc: &DcConfig) -> Result<()> {
        if dc.id != self.dc {
            return Err(Error::invalid(format!(
                "a shard map of DC {} is not one of DC {}",
                self.dc, dc.id
            )));
        }
        for s in 0..self.shards() {
            let id = self.owner(s);
            if dc.nodes.iter().all(|n| n.id != id) {
                return Err(Error::invalid(format!(
                    "the shard map of DC {} (epoch {}) gives shard {s} to node {id}, which cluster.toml does not list; add the node to cluster.toml first",
                    self.dc, self.epoch
                )));
            }
        }
        Ok(())
    }
}

/// A DC's map with its owners resolved to positions in `cluster.toml`'s node list, so a
/// router finds an owner's address without a lookup by id.
#[derive(Debug)]
struct Resolved {
    map: Arc<ShardMap>,
    /// Per shard, the owner's position in the DC's `cluster.toml` nodes.
    positions: Vec<u16>,
}

impl Resolved {
    fn new(map: ShardMap, dc: &DcConfig) -> Result<Resolved> {
        map.check_against(dc)?;
        let positions = (0..map.shards())
            .map(|s| {
                let id = map.owner(s);
                dc.nodes.iter().position(|n| n.id == id).unwrap_or(0) as u16
            })
            .collect();
        Ok(Resolved {
            map: Arc::new(map),
            positions,
        })
    }
}

/// Every DC's newest known shard map, as one process routes by them.
#[derive(Debug)]
pub struct ShardMaps {
    cluster: ClusterConfig,
    /// Indexed like `cluster.dcs`.
    maps: RwLock<Vec<Resolved>>,
    /// Bumped whenever a map is replaced.
    generation: AtomicU64,
}

impl ShardMaps {
    /// Every DC at its first map.
    pub fn new(cluster: &ClusterConfig) -> ShardMaps {
        let maps = cluster
            .dcs
            .iter()
            .map(|dc| Resolved {
                map: Arc::new(ShardMap::initial(dc, cluster.shards)),
                positions: (0..cluster.shards)
                    .map(|s| (usize::from(s) % dc.nodes.len().max(1)) as u16)
                    .collect(),
            })
            .collect();
        ShardMaps {
            cluster: cluster.clone(),
            maps: RwLock::new(maps),
            generation: AtomicU64::new(0),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Resolved>> {
        self.maps.read().unwrap_or_else(|p| p.into_inner())
    }

    fn index(&self, dc: &str) -> Result<usize> {
        self.cluster
            .dcs
            .iter()
            .position(|d| d.id == dc)
            .ok_or_else(|| Error::invalid(format!("DC {dc} is not in cluster.toml")))
    }

    /// DC `dc`'s newest known map.
    pub fn get(&self, dc: &str) -> Result<Arc<ShardMap>> {
        let i = self.index(dc)?;
        Ok(self.read()[i].map.clone())
    }

    /// The epoch of DC `dc`'s newest known map (0 for a DC not in `cluster.toml`).
    pub fn epoch(&self, dc: &str) -> u64 {
        self.index(dc).map_or(0, |i| self.read()[i].map.epoch)
    }

    /// The position in `cluster.toml`'s node list of DC number `dc_index`'s owner of
    /// `shard`.
    pub fn owner_position(&self, dc_index: usize, shard: u16) -> usize {
        self.read()
            .get(dc_index)
            .and_then(|r| r.positions.get(usize::from(shard)))
            .map_or(0, |p| usize::from(*p))
    }

    /// A number that changes whenever a map is replaced: a caller that saw it unchanged
    /// across a refresh knows the refresh brought nothing new.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// DC `dc`'s owner of `shard` in the newest map known, as `cluster.toml` lists it.
    pub fn owner_of<'a>(&self, dc: &'a DcConfig, shard: u16) -> &'a NodeConfig {
        let i = self.index(&dc.id).unwrap_or(0);
        let pos = self.owner_position(i, shard);
        &dc.nodes[pos.min(dc.nodes.len().saturating_sub(1))]
    }

    /// The shards the node at position `node_index` of DC `dc` owns, ascending.
    pub fn shards_of(&self, dc: &DcConfig, node_index: usize) -> Vec<u16> {
        let i = self.index(&dc.id).unwrap_or(0);
        let maps = self.read();
        let Some(r) = maps.get(i) else {
            return Vec::new();
        };
        (0..self.cluster.shards)
            .filter(|s| usize::from(r.positions[usize::from(*s)]) == node_index)
            .collect()
    }

    /// Keeps `m` if it is a later map of its DC than the one held; says whether it did.
    pub fn learn(&self, m: &pb::ShardMap) -> Result<bool> {
        let i = self.index(&m.dc)?;
        if m.epoch <= self.read()[i].map.epoch {
            return Ok(false);
        }
        let resolved = Resolved::new(
            ShardMap::from_pb(m, self.cluster.shards)?,
            &self.cluster.dcs[i],
        )?;
        let mut maps = self.maps.write().unwrap_or_else(|p| p.into_inner());
        if m.epoch <= maps[i].map.epoch {
            return Ok(false);
        }
        tracing::info!(dc = %m.dc, epoch = m.epoch, "learned a new shard map");
        maps[i] = resolved;
        self.generation.fetch_add(1, Ordering::Release);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> ClusterConfig {
        ClusterConfig::parse(
            r#"
shards = 16
[[dcs]]
id = "dc1"
nodes = [ { id = "n1", rpc = "a:1" }, { id = "n2", rpc = "a:2" }, { id = "n3", rpc = "a:3" } ]
[[dcs]]
id = "dc2"
nodes = [ { id = "m1", rpc = "b:1" }, { id = "m2", rpc = "b:2" } ]
"#,
        )
        .unwrap()
    }

    #[test]
    fn the_first_map_is_the_round_robin_of_cluster_toml() {
        let c = cluster();
        let dc = c.dc("dc1").unwrap();
        let m = ShardMap::initial(dc, c.shards);
        assert_eq!(m.epoch, FIRST_EPOCH);
        for s in 0..c.shards {
            assert_eq!(m.owner(s), dc.owner(s).id);
        }
        assert_eq!(m.shards_of("n2"), dc.shards_of(1, c.shards));
        assert_eq!(ShardMap::from_pb(&m.to_pb(), c.shards).unwrap(), m);
    }

    #[test]
    fn maps_of_a_wrong_shape_or_naming_unknown_nodes_are_refused() {
        let c = cluster();
        let m = ShardMap::initial(c.dc("dc1").unwrap(), c.shards).to_pb();
        assert!(ShardMap::from_pb(&m, 32).is_err());
        let mut bad = m.clone();
        bad.owners[3] = 7;
        assert!(ShardMap::from_pb(&bad, 16).is_err());
        let mut zero = m.clone();
        zero.epoch = 0;
        assert!(ShardMap::from_pb(&zero, 16).is_err());
        let stranger = ShardMap::from_pb(&m, 16).unwrap().with_owner(5, "n9");
        let e = stranger.check_against(c.dc("dc1").unwrap()).unwrap_err();
        assert!(e.message.contains("n9"), "{e}");
    }

    #[test]
    fn the_book_keeps_only_later_maps_and_resolves_owners_to_config_positions() {
        let c = cluster();
        let book = ShardMaps::new(&c);
        assert_eq!(book.owner_position(0, 4), 1);
        let first = book.get("dc1").unwrap();
        let moved = first.with_owner(4, "n3");
        assert!(book.learn(&moved.to_pb()).unwrap());
        assert_eq!(book.epoch("dc1"), 2);
        assert_eq!(book.owner_position(0, 4), 2);
        // An older or equal epoch changes nothing.
        assert!(!book.learn(&first.to_pb()).unwrap());
        assert!(!book.learn(&moved.to_pb()).unwrap());
        // A map whose node order differs from cluster.toml's still resolves by id.
        let mut reordered = moved.to_pb();
        reordered.nodes.reverse();
        reordered.owners = reordered.owners.iter().map(|o| 2 - o).collect();
        reordered.epoch = 3;
        assert!(book.learn(&reordered).unwrap());
        assert_eq!(book.owner_position(0, 4), 2);
        assert_eq!(book.owner_position(0, 1), 1);
        // Another DC's map is its own.
        assert_eq!(book.epoch("dc2"), 1);
        assert_eq!(book.owner_position(1, 3), 1);
    }
}
